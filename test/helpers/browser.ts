// A real browser for WebSocket tests: Debian's chromium driven by playwright-core (no browser
// download: the system binary), and a tiny static file server on 127.0.0.1 for the pages in
// test/fixtures/web. Each page server is its own origin (http://127.0.0.1:<port>), so two of
// them give an allowed and a refused Origin. playwright gives the browser a fresh temporary
// profile and removes it on close.
import { existsSync } from "node:fs";
import { readFile } from "node:fs/promises";
import http from "node:http";
import type { AddressInfo } from "node:net";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { chromium, type Browser } from "playwright-core";

export const CHROMIUM_BIN = process.env.CHROMIUM_BIN ?? "/usr/bin/chromium";
export const WEB_FIXTURES = fileURLToPath(new URL("../fixtures/web/", import.meta.url));

const ARGS = [
  "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
  "--disable-component-update", "--disable-sync", "--no-first-run",
];

/** Launches headless chromium; close it with `browser.close()` (afterAll). */
export async function launchBrowser(): Promise<Browser> {
  if (!existsSync(CHROMIUM_BIN)) {
    throw new Error(`${CHROMIUM_BIN} is missing: install Debian's chromium (apt-get install -y chromium) or set CHROMIUM_BIN`);
  }
  return chromium.launch({ executablePath: CHROMIUM_BIN, args: ARGS, timeout: 15_000 });
}

export interface PageServer {
  port: number;
  /** "http://127.0.0.1:<port>", the Origin its pages send. */
  origin: string;
  /** The URL of a fixture file with a query string. */
  url(file: string, query?: Record<string, string>): string;
  close(): Promise<void>;
}

const TYPES: Record<string, string> = { ".html": "text/html; charset=utf-8", ".js": "text/javascript; charset=utf-8" };

/** Serves the files of `dir` (GET only, no directory listing) on 127.0.0.1, port 0. */
export async function servePages(dir = WEB_FIXTURES): Promise<PageServer> {
  const server = http.createServer(async (req, res) => {
    const name = decodeURIComponent(new URL(req.url ?? "/", "http://x").pathname).replace(/^\/+/, "");
    const file = path.join(dir, name);
    if (req.method !== "GET" || name === "" || name.includes("..") || !file.startsWith(dir)) {
      res.writeHead(404).end();
      return;
    }
    try {
      const body = await readFile(file);
      res.writeHead(200, { "Content-Type": TYPES[path.extname(file)] ?? "application/octet-stream", "Cache-Control": "no-store" });
      res.end(body);
    } catch {
      res.writeHead(404).end();
    }
  });
  await new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    server.listen(0, "127.0.0.1", () => resolve());
  });
  const port = (server.address() as AddressInfo).port;
  const origin = `http://127.0.0.1:${port}`;
  return {
    port,
    origin,
    url: (file, query = {}) => `${origin}/${file}?${new URLSearchParams(query).toString()}`,
    close: () => new Promise<void>((resolve) => {
      server.closeAllConnections();
      server.close(() => resolve());
    }),
  };
}
