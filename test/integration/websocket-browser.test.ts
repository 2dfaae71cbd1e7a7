// A real browser on the WebSocket listener: headless chromium (Debian's, through playwright-core)
// loads test/fixtures/web/raw-nats.html from a local page server; the page opens
// `new WebSocket("ws://127.0.0.1:<wsPort>")` and speaks the NATS text protocol itself (CONNECT,
// SUB, PING, PUB). nats.js over TCP publishes to it and receives from it. With
// `allowed_origins` the page from the listed origin connects and the same page from another
// port is refused (the handshake gets 403: onerror, then onclose, no INFO). With `compression`,
// Chromium agrees permessage-deflate and large messages cross both ways. Runs against
// meshbroker and nats-server 2.9.10.
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { Browser, BrowserContext, Page } from "playwright-core";
import { StringCodec, type NatsConnection } from "nats";
import { topologies } from "../helpers/broker.js";
import { pathToFileURL } from "node:url";
import { launchBrowser, servePages, WEB_FIXTURES, type PageServer } from "../helpers/browser.js";
import { wsTargets, type WsServer, type WsTarget } from "../helpers/ws-raw.js";
import { cleanupAfterEach, firstData } from "../helpers/wait.js";
import { natsClient } from "../helpers/clients.js";

const sc = StringCodec();

/** What raw-nats.html keeps on its window (this file has no DOM types: `globalThis` casts). */
interface PageState { events: string[]; received: string[]; info: Record<string, unknown> | null }
interface PageGlobals extends PageState { natsPublish(subject: string, text: string): void }

let browser: Browser;
beforeAll(async () => {
  browser = await launchBrowser();
});
afterAll(async () => {
  await browser?.close();
});

const cleanups = cleanupAfterEach();

async function pages(): Promise<PageServer> {
  const s = await servePages();
  cleanups.push(() => s.close());
  return s;
}

async function open(url: string): Promise<Page> {
  const context: BrowserContext = await browser.newContext();
  cleanups.push(() => context.close());
  const page = await context.newPage();
  await page.goto(url);
  return page;
}

async function tcp(server: WsServer): Promise<NatsConnection> {
  return natsClient(cleanups, server.natsPort);
}

const state = (page: Page): Promise<PageState> =>
  page.evaluate(() => {
    const w = globalThis as unknown as PageGlobals;
    return { events: w.events, received: w.received, info: w.info };
  });

/** A server with this websocket block, and the page connected to it and subscribed (ready). */
async function readyPage(target: WsTarget, ws: string): Promise<{ server: WsServer; page: Page }> {
  const server = await target.start({ ws });
  cleanups.push(() => server.stop());
  const web = await pages();
  const page = await open(web.url("raw-nats.html", { ws: `ws://127.0.0.1:${server.wsPort}`, sub: "browser.>" }));
  await page.waitForFunction(() => (globalThis as unknown as PageGlobals).events.includes("ready"), undefined, { timeout: 5_000 });
  return { server, page };
}

describe.each(wsTargets(topologies))("chromium on $name", (target) => {
  it("a page speaking raw NATS receives what nats.js publishes over TCP, and publishes back", async () => {
    const { server, page } = await readyPage(target, "no_tls: true");

    const nc = await tcp(server);
    const fromPage = nc.subscribe("from.browser", { max: 1 });
    await nc.flush();
    nc.publish("browser.news", sc.encode("hello, browser"));
    nc.publish("browser.more", sc.encode("ünïcode ✓"));
    await page.waitForFunction(() => (globalThis as unknown as PageGlobals).received.length >= 2, undefined, { timeout: 5_000 });
    expect((await state(page)).received).toEqual(["hello, browser", "ünïcode ✓"]);
    expect(await page.locator("#received li").allTextContents()).toEqual(["hello, browser", "ünïcode ✓"]);

    await page.evaluate(() => (globalThis as unknown as PageGlobals).natsPublish("from.browser", "hi from chromium"));
    expect(await firstData(fromPage)).toBe("hi from chromium");

    const s = await state(page);
    expect(s.events).toEqual(["open", "info", "ready"]);
    expect(s.info).toMatchObject({ proto: 1, headers: true });
  });

  it("with compression: Chromium's permessage-deflate, large messages both ways", async () => {
    const { server, page } = await readyPage(target, "no_tls: true\ncompression: true");
    // The page's socket (a top-level const of its script): what was agreed.
    expect(await page.evaluate("ws.extensions")).toMatch(/^permessage-deflate/);

    const nc = await tcp(server);
    const fromPage = nc.subscribe("from.browser", { max: 1 });
    await nc.flush();
    const big = Array.from({ length: 400 }, (_, i) => `line ${i} of a compressible text; `).join("");
    nc.publish("browser.big", sc.encode(big));
    nc.publish("browser.small", sc.encode("small"));
    await page.waitForFunction(() => (globalThis as unknown as PageGlobals).received.length >= 2, undefined, { timeout: 5_000 });
    expect((await state(page)).received).toEqual([big, "small"]);
    await page.evaluate((text) => (globalThis as unknown as PageGlobals).natsPublish("from.browser", text), big);
    expect(await firstData(fromPage)).toBe(big);
  });

  it("a page opened from disk (file://, so \"Origin: null\") connects when no origin checks are configured", async () => {
    const server = await target.start({ ws: "no_tls: true" });
    cleanups.push(() => server.stop());
    const page = await open(`${pathToFileURL(WEB_FIXTURES).href}raw-nats.html?ws=ws://127.0.0.1:${server.wsPort}`);
    await page.waitForFunction(() => (globalThis as unknown as PageGlobals).events.includes("ready") || (globalThis as unknown as PageGlobals).events.some((e) => e.startsWith("close")), undefined, { timeout: 5_000 });
    expect((await state(page)).events).toEqual(["open", "info", "ready"]);
  });

  it("allowed_origins: the page from the listed origin connects, from another port it is refused", async () => {
    const allowed = await pages();
    const other = await pages();
    const server = await target.start({ ws: `no_tls: true\nallowed_origins: ["${allowed.origin}"]` });
    cleanups.push(() => server.stop());
    const wsUrl = `ws://127.0.0.1:${server.wsPort}`;

    const good = await open(allowed.url("raw-nats.html", { ws: wsUrl }));
    await good.waitForFunction(() => (globalThis as unknown as PageGlobals).events.includes("ready"), undefined, { timeout: 5_000 });

    const bad = await open(other.url("raw-nats.html", { ws: wsUrl }));
    await bad.waitForFunction(() => (globalThis as unknown as PageGlobals).events.some((e) => e.startsWith("close")), undefined, { timeout: 5_000 });
    const s = await state(bad);
    expect(s.info).toBeNull();
    expect(s.events).toEqual(["error", "close 1006"]);
    if (!target.reference) expect(server.log()).toMatch(/websocket handshake error: origin not allowed: not in the allowed list/);

    // The allowed page is still connected and working.
    const nc = await tcp(server);
    nc.publish("browser.after", sc.encode("still here"));
    await good.waitForFunction(() => (globalThis as unknown as PageGlobals).received.includes("still here"), undefined, { timeout: 5_000 });
  });
});
