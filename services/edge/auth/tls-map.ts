// TLS verify_and_map: the configured user named by the client certificate, tried in nats-server's
// order (auth.go checkClientTLSCertSubject): SAN e-mails, SAN DNS names, SAN URIs (literal user
// names), then the subject DN: equal to a user name parsed as a DN (same RDN order), then equal up
// to RDN order, then the subject string itself. Users whose allowed_connection_types refuse this
// connection are skipped, as there.
import type { X509Certificate } from "node:crypto";
import type { TlsPeer } from "./types.js";

/** One attribute: upper-case type (long names and OIDs folded to short names), unescaped value. */
interface Ava { type: string; value: string }
type Rdn = Ava[];
type Dn = Rdn[];

// The names Go and OpenSSL give the common attributes, folded to one spelling.
const TYPE_ALIASES: Record<string, string> = {
  COMMONNAME: "CN", "2.5.4.3": "CN",
  ORGANIZATIONALUNITNAME: "OU", "2.5.4.11": "OU",
  ORGANIZATIONNAME: "O", "2.5.4.10": "O",
  COUNTRYNAME: "C", "2.5.4.6": "C",
  LOCALITYNAME: "L", "2.5.4.7": "L",
  STATEORPROVINCENAME: "ST", S: "ST", "2.5.4.8": "ST",
  STREETADDRESS: "STREET", "2.5.4.9": "STREET",
  POSTALCODE: "POSTALCODE", "2.5.4.17": "POSTALCODE",
  SERIALNUMBER: "SERIALNUMBER", "2.5.4.5": "SERIALNUMBER",
  DOMAINCOMPONENT: "DC", "0.9.2342.19200300.100.1.25": "DC",
  USERID: "UID", "0.9.2342.19200300.100.1.1": "UID",
  EMAILADDRESS: "EMAILADDRESS", E: "EMAILADDRESS", "1.2.840.113549.1.9.1": "EMAILADDRESS",
};

function normalizeType(t: string): string {
  const u = t.trim().toUpperCase().replace(/^OID\./, "");
  return TYPE_ALIASES[u] ?? u;
}

/** Parses an RFC 4514 / 2253 DN ("CN=a\,b,OU=eng+UID=7,O=Acme"), also RFC 1779 quoted values
 *  and `;` separators. Undefined when it is not a DN. */
export function parseDn(s: string): Dn | undefined {
  const dn: Dn = [];
  let rdn: Rdn = [];
  let i = 0;
  const n = s.length;
  if (s.trim() === "") return undefined;
  while (i < n) {
    // attribute type
    const eq = s.indexOf("=", i);
    if (eq < 0) return undefined;
    const type = s.slice(i, eq).trim();
    if (!/^([A-Za-z][A-Za-z0-9-]*|(OID\.|oid\.)?\d+(\.\d+)*)$/.test(type)) return undefined;
    i = eq + 1;
    while (i < n && s[i] === " ") i++;
    // attribute value
    const bytes: number[] = [];
    let value = "";
    const flush = () => {
      if (bytes.length > 0) value += Buffer.from(bytes).toString("utf8");
      bytes.length = 0;
    };
    let trailingSpaces = 0; // unescaped spaces at the end do not belong to the value
    if (s[i] === '"') {
      i++;
      while (i < n && s[i] !== '"') {
        if (s[i] === "\\" && i + 1 < n) i++;
        value += s[i++];
      }
      if (s[i] !== '"') return undefined;
      i++;
      while (i < n && s[i] === " ") i++;
    } else {
      while (i < n && s[i] !== "," && s[i] !== ";" && s[i] !== "+") {
        const c = s[i];
        if (c === "\\") {
          const h = s.slice(i + 1, i + 3);
          if (/^[0-9A-Fa-f]{2}$/.test(h)) {
            bytes.push(parseInt(h, 16));
            i += 3;
          } else if (i + 1 < n) {
            flush();
            value += s[i + 1];
            i += 2;
          } else return undefined;
          trailingSpaces = 0;
          continue;
        }
        flush();
        value += c;
        trailingSpaces = c === " " ? trailingSpaces + 1 : 0;
        i++;
      }
      flush();
      if (trailingSpaces > 0) value = value.slice(0, value.length - trailingSpaces);
    }
    rdn.push({ type: normalizeType(type), value });
    if (i >= n) break;
    const sep = s[i++];
    if (sep !== "+") {
      dn.push(rdn);
      rdn = [];
    }
    while (i < n && s[i] === " ") i++;
    if (i >= n) return undefined; // a trailing separator
  }
  if (rdn.length > 0) dn.push(rdn);
  return dn;
}

function avaEqual(a: Ava, b: Ava): boolean {
  return a.type === b.type && a.value === b.value;
}

function rdnEqual(a: Rdn, b: Rdn): boolean {
  return a.length === b.length && a.every((x) => b.some((y) => avaEqual(x, y)));
}

/** Same RDNs in the same order (attributes within one RDN in any order). */
export function dnEqual(a: Dn, b: Dn): boolean {
  return a.length === b.length && a.every((r, i) => rdnEqual(r, b[i]));
}

/** Same RDNs in any order. */
export function dnRdnsMatch(a: Dn, b: Dn): boolean {
  return a.length === b.length && a.every((r) => b.some((q) => rdnEqual(r, q)));
}

// User names parsed as DNs; names come from the config, so the cache is bounded by it.
const dnCache = new Map<string, Dn | null>();

function userDn(name: string): Dn | undefined {
  let d = dnCache.get(name);
  if (d === undefined) {
    d = parseDn(name) ?? null;
    if (dnCache.size > 10_000) dnCache.clear();
    dnCache.set(name, d);
  }
  return d ?? undefined;
}

export type TlsMapResult<U> = { user: U; matched: string } | { user?: undefined; typeRefused: boolean };

/** The user a certificate maps to. `allowed` says whether a user may use this connection type. */
export function mapCertificateUser<U extends { name: string }>(
  peer: TlsPeer | undefined, users: ReadonlyMap<string, U>, allowed: (u: U) => boolean,
): TlsMapResult<U> {
  let typeRefused = false;
  if (!peer) return { typeRefused };
  const uris = peer.uris ?? [];
  if (peer.emails.length === 0 && peer.subject === "" && uris.length === 0) return { typeRefused };
  const literal = (name: string): U | undefined => {
    const u = users.get(name);
    if (u && !allowed(u)) {
      typeRefused = true;
      return undefined;
    }
    return u;
  };
  for (const list of [peer.emails, peer.dnsNames, uris]) {
    for (const name of list) {
      const u = literal(name);
      if (u) return { user: u, matched: name };
    }
  }
  const certDn = peer.subject !== "" ? parseDn(peer.subject) : undefined;
  if (certDn) {
    const reordered: U[] = [];
    for (const u of users.values()) {
      if (!allowed(u)) continue;
      const d = userDn(u.name);
      if (!d) continue;
      if (dnEqual(d, certDn)) return { user: u, matched: peer.subject };
      if (dnRdnsMatch(d, certDn)) reordered.push(u);
    }
    if (reordered.length > 0) return { user: reordered[0], matched: peer.subject };
  }
  if (peer.subject !== "") {
    const u = literal(peer.subject);
    if (u) return { user: u, matched: peer.subject };
  }
  return { typeRefused };
}

/** The TlsPeer of a verified client certificate (e.g. `new X509Certificate(socket.getPeerCertificate().raw)`).
 *  Node prints the subject one RDN per line, first RDN first, RFC 2253-escaped; RFC 2253 wants
 *  them last-first, comma-separated, as Go's RDNSequence.String() gives them. */
export function tlsPeerFromCertificate(cert: X509Certificate): TlsPeer {
  const subject = cert.subject
    .split("\n")
    .filter((l) => l !== "")
    .reverse()
    .map((l) => l.replace(/ \+ /g, "+"))
    .join(",");
  const emails: string[] = [], dnsNames: string[] = [], uris: string[] = [];
  for (const { kind, value } of parseSubjectAltName(cert.subjectAltName ?? "")) {
    if (kind === "email") emails.push(value);
    else if (kind === "DNS") dnsNames.push(value);
    else if (kind === "URI") uris.push(value);
  }
  return { subject, emails, dnsNames, uris };
}

/** Node's subjectAltName text: `DNS:a.example, email:x@y, URI:spiffe://z`; entries holding a
 *  separator are JSON-quoted (`DNS:"a, b"`). */
function parseSubjectAltName(s: string): { kind: string; value: string }[] {
  const out: { kind: string; value: string }[] = [];
  let i = 0;
  while (i < s.length) {
    const colon = s.indexOf(":", i);
    if (colon < 0) break;
    const kind = s.slice(i, colon).trim();
    let j = colon + 1;
    let value: string;
    if (s[j] === '"') {
      let k = j + 1;
      while (k < s.length && s[k] !== '"') k += s[k] === "\\" ? 2 : 1;
      try {
        value = JSON.parse(s.slice(j, k + 1)) as string;
      } catch {
        value = s.slice(j + 1, k);
      }
      j = k + 1;
    } else {
      const comma = s.indexOf(", ", j);
      value = s.slice(j, comma < 0 ? s.length : comma);
      j = comma < 0 ? s.length : comma;
    }
    out.push({ kind, value });
    const next = s.indexOf(", ", j);
    if (next < 0) break;
    i = next + 2;
  }
  return out;
}
