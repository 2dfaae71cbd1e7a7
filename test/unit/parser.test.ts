// The NATS client parser, table-driven. Every input is fed whole, split in two at every byte
// offset, and one byte at a time; each way must give the same sink calls and the same error.
// Expected errors are nats-server 2.9's: the -ERR text it sends (or none) and the close
// reason it records.
import { describe, expect, it } from "vitest";
import { NatsParser, type ParserSink, type ProtocolLimits } from "../../services/edge/nats/parser.js";
import type { MessageData } from "../../services/router/link.js";
import { ERR, ProtocolError } from "../../services/common/errors.js";

type Event =
  | ["connect", string]
  | ["pub", string, string | undefined, string, number]
  | ["sub", string, string | undefined, string]
  | ["unsub", string, number | undefined]
  | ["ping"]
  | ["pong"];

class Recorder implements ParserSink {
  events: Event[] = [];
  /** For the view tests: the bytes each call pointed at, as views of the same memory. */
  views: Buffer[] = [];
  onConnect(json: string): void { this.events.push(["connect", json]); }
  onPub(subject: string, reply: string | undefined, msg: MessageData): void {
    const data = msg.buf.subarray(msg.start, msg.end);
    this.views.push(data);
    // The view is only valid during the call: keep a decoded copy.
    this.events.push(["pub", subject, reply, data.toString("latin1"), msg.hdrLen]);
  }
  onSub(subject: string, queue: string | undefined, sid: string): void { this.events.push(["sub", subject, queue, sid]); }
  onUnsub(sid: string, max: number | undefined): void { this.events.push(["unsub", sid, max]); }
  onPing(): void { this.events.push(["ping"]); }
  onPong(): void { this.events.push(["pong"]); }
}

interface Outcome {
  events: Event[];
  /** undefined = no error; otherwise the -ERR text (null = closed without one) and the reason. */
  error?: { clientError: string | null; reason: string };
}

const LIMITS: ProtocolLimits = { maxControlLine: 4096, maxPayload: 1024 * 1024 };

function feed(chunks: Buffer[], limits: ProtocolLimits, headers: boolean): Outcome {
  const sink = new Recorder();
  const parser = new NatsParser(sink, { ...limits });
  parser.headersAllowed = headers;
  try {
    for (const c of chunks) parser.parse(c);
  } catch (err) {
    if (!(err instanceof ProtocolError)) throw err;
    return { events: sink.events, error: { clientError: err.clientError ?? null, reason: err.reason } };
  }
  return { events: sink.events };
}

/** Every way of cutting `input` this file checks, with a label for failure messages. */
function splits(input: Buffer): Array<[string, Buffer[]]> {
  const out: Array<[string, Buffer[]]> = [["whole", [input]]];
  for (let i = 1; i < input.length; i++) out.push([`split at ${i}`, [input.subarray(0, i), input.subarray(i)]]);
  out.push(["byte by byte", [...input].map((b) => Buffer.from([b]))]);
  return out;
}

interface Case {
  name: string;
  input: string;
  limits?: Partial<ProtocolLimits>;
  /** CONNECT said headers:true (HPUB allowed). */
  headers?: boolean;
  events?: Event[];
  error?: Outcome["error"];
}

const long = (n: number) => "a".repeat(n);
const VIOLATION = "Protocol Violation";
const noErr = (reason = VIOLATION) => ({ clientError: null, reason });
const unknownOp = { clientError: ERR.unknownOp, reason: VIOLATION };

const cases: Case[] = [
  // ---- valid input ----
  { name: "PING", input: "PING\r\n", events: [["ping"]] },
  { name: "PONG", input: "PONG\r\n", events: [["pong"]] },
  { name: "lower case op", input: "ping\r\npong\r\n", events: [["ping"], ["pong"]] },
  { name: "LF alone ends a control line", input: "PING\nPONG\n", events: [["ping"], ["pong"]] },
  { name: "PING with trailing text", input: "PING foo\r\n", events: [["ping"]] },
  { name: "CONNECT", input: 'CONNECT {"verbose":false}\r\n', events: [["connect", '{"verbose":false}']] },
  { name: "CONNECT after a tab, JSON with spaces", input: 'CONNECT\t{"name": "a b"}\r\n', events: [["connect", '{"name": "a b"}']] },
  { name: "SUB", input: "SUB foo 1\r\n", events: [["sub", "foo", undefined, "1"]] },
  { name: "SUB with queue", input: "SUB foo.* q 22\r\n", events: [["sub", "foo.*", "q", "22"]] },
  { name: "SUB with tabs and repeated spaces", input: "SUB\tfoo  \tq   7 \r\n", events: [["sub", "foo", "q", "7"]] },
  { name: "UNSUB", input: "UNSUB 1\r\n", events: [["unsub", "1", undefined]] },
  { name: "UNSUB with max", input: "UNSUB 1 5\r\n", events: [["unsub", "1", 5]] },
  { name: "PUB", input: "PUB foo 5\r\nhello\r\n", events: [["pub", "foo", undefined, "hello", 0]] },
  { name: "PUB with reply", input: "PUB foo r.1 5\r\nhello\r\n", events: [["pub", "foo", "r.1", "hello", 0]] },
  { name: "PUB with empty payload", input: "PUB foo 0\r\n\r\n", events: [["pub", "foo", undefined, "", 0]] },
  { name: "PUB whose payload holds CRLF and protocol text", input: "PUB foo 13\r\nPING\r\nPUB x 1\r\n",
    events: [["pub", "foo", undefined, "PING\r\nPUB x 1", 0]] },
  { name: "PUB with binary payload", input: "PUB foo 4\r\n\x00\xff\r\n\r\n", events: [["pub", "foo", undefined, "\x00\xff\r\n", 0]] },
  { name: "PUB of exactly max_payload", input: "PUB foo 10\r\n0123456789\r\n", limits: { maxPayload: 10 },
    events: [["pub", "foo", undefined, "0123456789", 0]] },
  { name: "HPUB", input: "HPUB foo 12 17\r\nNATS/1.0\r\n\r\nhello\r\n", headers: true,
    events: [["pub", "foo", undefined, "NATS/1.0\r\n\r\nhello", 12]] },
  { name: "HPUB with reply", input: "HPUB foo r 18 18\r\nNATS/1.0\r\nA: b\r\n\r\n\r\n", headers: true,
    events: [["pub", "foo", "r", "NATS/1.0\r\nA: b\r\n\r\n", 18]] },
  { name: "a sequence of ops", input: 'CONNECT {}\r\nSUB a 1\r\nPUB a 1\r\nx\r\nUNSUB 1\r\nPING\r\n',
    events: [["connect", "{}"], ["sub", "a", undefined, "1"], ["pub", "a", undefined, "x", 0], ["unsub", "1", undefined], ["ping"]] },
  { name: "INFO and +OK from a client are ignored", input: "INFO {}\r\n+OK\r\nPING\r\n", events: [["ping"]] },
  { name: "a control line of exactly max_control_line argument bytes", input: `SUB ${long(62)} 1\r\n`,
    limits: { maxControlLine: 64 }, events: [["sub", long(62), undefined, "1"]] },

  // ---- errors ----
  { name: "unknown op", input: "FOO\r\n", events: [], error: unknownOp },
  { name: "unknown op is rejected before its newline", input: "XYZ", events: [], error: unknownOp },
  { name: "op followed by a letter", input: "PUBX foo 1\r\n", events: [], error: unknownOp },
  { name: "unknown op after valid ones", input: "PING\r\nBAD\r\n", events: [["ping"]], error: unknownOp },
  { name: "SUB with no arguments at all", input: "SUB\r\n", events: [], error: unknownOp },
  { name: "UNSUB with no arguments at all", input: "UNSUB\r\n", events: [], error: unknownOp },
  { name: "SUB with one argument", input: "SUB foo\r\n", events: [], error: noErr() },
  { name: "SUB with four arguments", input: "SUB a b c d\r\n", events: [], error: noErr() },
  { name: "PUB with a non-numeric size", input: "PUB foo x\r\n", events: [], error: noErr() },
  { name: "PUB with a negative size", input: "PUB foo -1\r\n", events: [], error: noErr() },
  { name: "PUB with four arguments", input: "PUB foo a b 1\r\n", events: [], error: noErr() },
  // nats-server reads sizes of at most 9 digits; a longer one is a bad size, not a payload violation.
  { name: "PUB with a 10-digit size", input: "PUB foo 1234567890\r\n", events: [], error: noErr() },
  { name: "payload longer than its size", input: "PUB foo 1\r\nxy\r\n", events: [], error: unknownOp },
  { name: "payload ended by LF alone", input: "PUB foo 1\r\nx\nPING\r\n", events: [], error: unknownOp },
  { name: "HPUB without headers:true", input: "HPUB foo 12 12\r\n", events: [], error: noErr() },
  { name: "HPUB header size over total size", input: "HPUB foo 5 3\r\n", headers: true, events: [], error: noErr() },
  { name: "PUB over max_payload", input: "PUB foo 11\r\n", limits: { maxPayload: 10 }, events: [],
    error: { clientError: ERR.maxPayload, reason: "Maximum Message Payload Exceeded" } },
  { name: "HPUB over max_payload", input: "HPUB foo 12 21\r\n", headers: true, limits: { maxPayload: 20 }, events: [],
    error: { clientError: ERR.maxPayload, reason: "Maximum Message Payload Exceeded" } },
  { name: "control line over max_control_line", input: `SUB ${long(63)} 1\r\n`, limits: { maxControlLine: 64 }, events: [],
    error: { clientError: ERR.maxControlLine, reason: "Maximum Control Line Exceeded" } },
  { name: "long control line without its newline", input: `SUB ${long(80)}`, limits: { maxControlLine: 64 }, events: [],
    error: { clientError: ERR.maxControlLine, reason: "Maximum Control Line Exceeded" } },
  { name: "long CONNECT", input: `CONNECT {"name":"${long(80)}"}\r\n`, limits: { maxControlLine: 64 }, events: [],
    error: { clientError: ERR.maxControlLine, reason: "Maximum Control Line Exceeded" } },
];

describe("NatsParser", () => {
  // Each case: fed whole, split in two at every offset, and byte by byte.
  it.each(cases.map((c) => [c.name, c] as const))("%s", (_name, c) => {
    const limits = { ...LIMITS, ...c.limits };
    const input = Buffer.from(c.input, "latin1");
    const want: Outcome = c.error ? { events: c.events ?? [], error: c.error } : { events: c.events ?? [] };
    for (const [how, chunks] of splits(input)) {
      expect(feed(chunks, limits, c.headers ?? false), how).toEqual(want);
    }
  });

  it.each(["x", "1234567890"])("UNSUB with max %j is not a protocol error (nats-server removes the sub at once)", (arg) => {
    const out = feed([Buffer.from(`UNSUB 1 ${arg}\r\nPING\r\n`)], LIMITS, false);
    expect(out.error).toBeUndefined();
    expect(out.events).toHaveLength(2);
    const [op, sid, max] = out.events[0] as ["unsub", string, number | undefined];
    expect([op, sid]).toEqual(["unsub", "1"]);
    // Whatever it passes, it must not be a positive max (that would keep the subscription).
    expect(max === undefined || max <= 0).toBe(true);
  });

  describe("payload views", () => {
    it("a payload inside one chunk is passed as a view into that chunk, not a copy", () => {
      const sink = new Recorder();
      const chunk = Buffer.from("PUB a 5\r\nhello\r\nPUB b 3\r\nxyz\r\n");
      new NatsParser(sink, LIMITS).parse(chunk);
      expect(sink.views).toHaveLength(2);
      const [v1, v2] = sink.views;
      expect(v1.buffer).toBe(chunk.buffer);
      expect(v1.byteOffset).toBe(chunk.byteOffset + "PUB a 5\r\n".length);
      expect(v1.length).toBe(5);
      expect(v2.buffer).toBe(chunk.buffer);
      expect(v2.byteOffset).toBe(chunk.byteOffset + "PUB a 5\r\nhello\r\nPUB b 3\r\n".length);
      expect(v2.length).toBe(3);
    });

    it("a payload spanning chunks is assembled once and excludes the CRLF", () => {
      const sink = new Recorder();
      const p = new NatsParser(sink, LIMITS);
      p.parse(Buffer.from("PUB a 10\r\n01234"));
      expect(sink.views).toHaveLength(0);
      p.parse(Buffer.from("56789\r"));
      expect(sink.views).toHaveLength(0);
      p.parse(Buffer.from("\nPING\r\n"));
      expect(sink.views).toHaveLength(1);
      expect(sink.views[0].toString()).toBe("0123456789");
      expect(sink.events).toEqual([["pub", "a", undefined, "0123456789", 0], ["ping"]]);
    });

    it("HPUB: the view holds headers then payload, hdrLen marks the boundary", () => {
      const sink = new Recorder();
      const p = new NatsParser(sink, LIMITS);
      p.headersAllowed = true;
      const chunk = Buffer.from("HPUB s 17 19\r\nNATS/1.0\r\nA:b\r\n\r\nhi\r\n");
      p.parse(chunk);
      const [v] = sink.views;
      expect(v.buffer).toBe(chunk.buffer);
      expect(v.subarray(0, 17).toString()).toBe("NATS/1.0\r\nA:b\r\n\r\n");
      expect(v.subarray(17).toString()).toBe("hi");
    });

    it("a large payload fed in many small chunks arrives intact", () => {
      const sink = new Recorder();
      const p = new NatsParser(sink, LIMITS);
      const body = Buffer.alloc(100_000);
      for (let i = 0; i < body.length; i++) body[i] = (i * 31) & 0xff;
      const all = Buffer.concat([Buffer.from(`PUB big ${body.length}\r\n`), body, Buffer.from("\r\n")]);
      for (let i = 0; i < all.length; i += 997) p.parse(all.subarray(i, i + 997));
      expect(sink.views).toHaveLength(1);
      expect(Buffer.compare(sink.views[0], body)).toBe(0);
    });
  });

  describe("limits", () => {
    it("limits can be changed on a live parser (config reload)", () => {
      const sink = new Recorder();
      const p = new NatsParser(sink, { maxControlLine: 4096, maxPayload: 100 });
      p.parse(Buffer.from("PUB a 50\r\n" + long(50) + "\r\n"));
      p.limits = { maxControlLine: 4096, maxPayload: 10 };
      expect(() => p.parse(Buffer.from("PUB a 50\r\n"))).toThrow(ProtocolError);
      expect(sink.events).toHaveLength(1);
    });

    it("HPUB becomes legal once headersAllowed is set", () => {
      const sink = new Recorder();
      const p = new NatsParser(sink, LIMITS);
      expect(() => p.parse(Buffer.from("HPUB a 12 12\r\nNATS/1.0\r\n\r\n\r\n"))).toThrow(ProtocolError);
      const q = new NatsParser(sink, LIMITS);
      q.headersAllowed = true;
      q.parse(Buffer.from("HPUB a 12 12\r\nNATS/1.0\r\n\r\n\r\n"));
      expect(sink.events).toEqual([["pub", "a", undefined, "NATS/1.0\r\n\r\n", 12]]);
    });

    it("a payload split over many reads arrives whole, in its buffer grown as bytes came", () => {
      const sink = new Recorder();
      const p = new NatsParser(sink, LIMITS);
      const payload = Buffer.alloc(LIMITS.maxPayload, "abcdefghij");
      const input = Buffer.concat([Buffer.from(`PUB big ${payload.length}\r\n`), payload, Buffer.from("\r\nPING\r\n")]);
      for (let at = 0; at < input.length; at += 3_001) p.parse(input.subarray(at, at + 3_001));
      expect(sink.events.map((e) => e[0])).toEqual(["pub", "ping"]);
      expect(sink.views[0].equals(payload)).toBe(true);
    });

    it("a payload announced but not sent holds memory for what arrived, not for its announced size", () => {
      // 200 clients each announce 1 MB and send 100 bytes: sized in advance, that was 200 MB.
      const parsers = Array.from({ length: 200 }, () => new NatsParser(new Recorder(), LIMITS));
      const before = process.memoryUsage().arrayBuffers;
      for (const p of parsers) p.parse(Buffer.from(`PUB big ${LIMITS.maxPayload}\r\n${"x".repeat(100)}`));
      expect(process.memoryUsage().arrayBuffers - before).toBeLessThan(200 * 80 * 1024);
      expect(parsers).toHaveLength(200); // alive until here
    });

    it("after halt() the rest of the chunk is dropped", () => {
      const events: string[] = [];
      let p!: NatsParser;
      const sink: ParserSink = {
        onConnect: () => { events.push("connect"); },
        onPub: () => { events.push("pub"); },
        onSub: () => { events.push("sub"); },
        onUnsub: () => { events.push("unsub"); },
        onPing: () => { events.push("ping"); p.halt(); },
        onPong: () => { events.push("pong"); },
      };
      p = new NatsParser(sink, LIMITS);
      p.parse(Buffer.from("PING\r\nPING\r\nPONG\r\n"));
      p.parse(Buffer.from("PONG\r\n"));
      expect(events).toEqual(["ping"]);
    });
  });
});
