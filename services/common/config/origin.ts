// WebSocket `allowed_origins` entries, read as nats-server 2.9 reads them: Go's net/url Parse
// must accept the text (else the server refuses to start with "unable to parse allowed origin:
// parse "...": ..."), then ParseRequestURI gives the scheme and host, and the port defaults to
// 80, or 443 for https (websocket.go wsSetOriginOptions / wsGetHostAndPort).
//
// Where nats-server only logs an entry it cannot use and skips it (no scheme, e.g.
// "www.example.com"), which silently allows every origin when it was the only entry, meshbroker
// refuses the config instead; it also refuses origins that are not http(s) with a host, which
// no browser can send.

import type { AllowedOrigin } from "./options.js";

/** Throws an Error whose message is what to report (without `file:line:`). */
export function parseAllowedOrigin(raw: string): AllowedOrigin {
  // url.Parse: the fragment is cut off first and checked last.
  const hash = raw.indexOf("#");
  const noFragment = hash < 0 ? raw : raw.slice(0, hash);
  try {
    parseUrl(noFragment, false);
  } catch (err) {
    throw new Error(`unable to parse allowed origin: parse ${goQuote(noFragment)}: ${(err as Error).message}`);
  }
  if (hash >= 0) {
    try {
      unescape(raw.slice(hash + 1), "fragment");
    } catch (err) {
      throw new Error(`unable to parse allowed origin: parse ${goQuote(raw)}: ${(err as Error).message}`);
    }
  }
  // url.ParseRequestURI, as the server does when it builds its origin table.
  let u: ParsedUrl;
  try {
    u = parseUrl(raw, true);
  } catch (err) {
    throw new Error(`error parsing allowed origin: parse ${goQuote(raw)}: ${(err as Error).message}`);
  }
  const hp = u.host === undefined ? undefined : splitOriginHost(u.host, u.scheme === "https");
  if ((u.scheme !== "http" && u.scheme !== "https") || !hp || hp.host === "") {
    throw new Error(`allowed origin ${goQuote(raw)} is not an http:// or https:// origin with a host`);
  }
  return { scheme: u.scheme, host: hp.host, port: hp.port };
}

interface ParsedUrl {
  scheme: string;
  /** Unescaped host[:port], when the URL has an authority. */
  host?: string;
}

type Mode = "host" | "userinfo" | "path" | "fragment";

/** Go's url.parse(rawURL, viaRequest); throws with Go's error text. */
function parseUrl(raw: string, viaRequest: boolean): ParsedUrl {
  if (/[\x00-\x1f\x7f]/.test(raw)) throw new Error("net/url: invalid control character in URL");
  if (raw === "" && viaRequest) throw new Error("empty url");
  if (raw === "*") return { scheme: "" };
  const { scheme, rest: afterScheme } = getScheme(raw);
  let rest = afterScheme;
  // The query is not checked by Parse.
  const q = rest.indexOf("?");
  if (q >= 0) rest = rest.slice(0, q);
  if (!rest.startsWith("/")) {
    if (scheme !== "") return { scheme }; // opaque, e.g. "mailto:x"
    if (viaRequest) throw new Error("invalid URI for request");
    const slash = rest.indexOf("/");
    if ((slash < 0 ? rest : rest.slice(0, slash)).includes(":")) {
      throw new Error("first path segment in URL cannot contain colon");
    }
  }
  let host: string | undefined;
  if ((scheme !== "" || (!viaRequest && !rest.startsWith("///"))) && rest.startsWith("//")) {
    let authority = rest.slice(2);
    const slash = authority.indexOf("/");
    rest = slash < 0 ? "" : authority.slice(slash);
    if (slash >= 0) authority = authority.slice(0, slash);
    host = parseAuthority(authority);
  }
  unescape(rest, "path");
  return { scheme, host };
}

function getScheme(raw: string): { scheme: string; rest: string } {
  for (let i = 0; i < raw.length; i++) {
    const c = raw[i];
    if (/[A-Za-z]/.test(c)) continue;
    if (/[0-9+.-]/.test(c)) {
      if (i === 0) return { scheme: "", rest: raw };
      continue;
    }
    if (c === ":") {
      if (i === 0) throw new Error("missing protocol scheme");
      return { scheme: raw.slice(0, i).toLowerCase(), rest: raw.slice(i + 1) };
    }
    return { scheme: "", rest: raw };
  }
  return { scheme: "", rest: raw };
}

function parseAuthority(authority: string): string {
  const at = authority.lastIndexOf("@");
  const host = parseHost(at < 0 ? authority : authority.slice(at + 1));
  if (at >= 0) {
    const userinfo = authority.slice(0, at);
    if (!/^[A-Za-z0-9\-._:~!$&'()*+,;=%@]*$/.test(userinfo)) throw new Error("net/url: invalid userinfo");
    unescape(userinfo, "userinfo");
  }
  return host;
}

function parseHost(host: string): string {
  if (host.startsWith("[")) {
    const end = host.lastIndexOf("]");
    if (end < 0) throw new Error("missing ']' in host");
    checkOptionalPort(host.slice(end + 1));
  } else {
    const colon = host.lastIndexOf(":");
    if (colon >= 0) checkOptionalPort(host.slice(colon));
  }
  return unescape(host, "host");
}

function checkOptionalPort(colonPort: string): void {
  if (colonPort !== "" && !/^:[0-9]*$/.test(colonPort)) throw new Error(`invalid port ${goQuote(colonPort)} after host`);
}

/** Go's url.unescape: %XX sequences must be well formed; a host may only escape non-ASCII
 *  bytes (or "%25") and may not hold characters a URL would escape. */
function unescape(s: string, mode: Mode): string {
  const bytes: number[] = [];
  for (let i = 0; i < s.length; ) {
    const c = s[i];
    if (c === "%") {
      const hex = s.slice(i + 1, i + 3);
      if (!/^[0-9A-Fa-f]{2}$/.test(hex)) throw new Error(`invalid URL escape ${goQuote(s.slice(i, i + 3))}`);
      const b = parseInt(hex, 16);
      if (mode === "host" && b < 0x80 && hex !== "25") throw new Error(`invalid URL escape ${goQuote(s.slice(i, i + 3))}`);
      bytes.push(b);
      i += 3;
      continue;
    }
    if (mode === "host" && c < "\x80" && !/[A-Za-z0-9\-_.~!$&'()*+,;=:[\]<>"]/.test(c)) {
      throw new Error(`invalid character ${goQuote(c)} in host name`);
    }
    bytes.push(...Buffer.from(c, "utf8"));
    i++;
  }
  return Buffer.from(bytes).toString("utf8");
}

/** nats-server's wsGetHostAndPort: host lowercased (IPv6 without brackets here), port from the
 *  text or the scheme's default. Undefined when it is not host[:port]. */
function splitOriginHost(hostPort: string, tls: boolean): { host: string; port: number } | undefined {
  const defaultPort = tls ? 443 : 80;
  let host: string;
  let port: string;
  if (hostPort.startsWith("[")) {
    const end = hostPort.indexOf("]");
    host = hostPort.slice(1, end);
    const after = hostPort.slice(end + 1);
    if (after !== "" && !after.startsWith(":")) return undefined;
    port = after.slice(1);
  } else {
    const colon = hostPort.lastIndexOf(":");
    if (colon >= 0 && hostPort.slice(0, colon).includes(":")) return undefined; // "too many colons"
    host = colon < 0 ? hostPort : hostPort.slice(0, colon);
    port = colon < 0 ? "" : hostPort.slice(colon + 1);
  }
  return { host: host.toLowerCase(), port: port === "" ? defaultPort : Number(port) };
}

/** Go's %q for the ASCII-ish texts in these messages. */
export function goQuote(s: string): string {
  const named: Record<string, string> = { "\x07": "\\a", "\b": "\\b", "\f": "\\f", "\n": "\\n", "\r": "\\r", "\t": "\\t", "\v": "\\v" };
  let out = '"';
  for (const c of s) {
    if (c === '"' || c === "\\") out += `\\${c}`;
    else if (named[c]) out += named[c];
    else if (c < " " || c === "\x7f") out += `\\x${c.charCodeAt(0).toString(16).padStart(2, "0")}`;
    else out += c;
  }
  return `${out}"`;
}
