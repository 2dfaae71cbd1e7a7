import { describe, it, expect } from "vitest";
import { X509Certificate } from "node:crypto";
import { defaultOptions, type Options, type TlsConfig } from "../../services/common/config/index.js";
import { AuthPipeline, tlsPeerFromCertificate, type AuthContext, type AuthResult, type Credentials, type TlsPeer } from "../../services/edge/auth/index.js";
import { dnEqual, dnRdnsMatch, parseDn } from "../../services/edge/auth/tls-map.js";

const tls: TlsConfig = { certFile: "c.pem", keyFile: "k.pem", verify: true, verifyAndMap: true, timeoutMs: 2000 };

function pipeline(o: Partial<Options> = {}): AuthPipeline {
  return new AuthPipeline(defaultOptions({
    tls,
    authorization: {
      users: [
        { user: "alice@example.com", permissions: { publish: { allow: ["alice.>"] } } },
        { user: "bob.example.com" },
        { user: "CN=carol,OU=eng,O=Acme" },
        { user: "CN=dave, OU=ops, O=Acme\\, Inc." },
        { user: "CN=erin,O=Acme", allowedConnectionTypes: ["WEBSOCKET"] },
        { user: "CN=frank,O=Acme", password: "pw" },
        { user: "spiffe://acme/frontend" },
        { user: "plain", password: "pw" },
      ],
    },
    ...o,
  }));
}

function peer(p: Partial<TlsPeer>): TlsPeer {
  return { subject: "", emails: [], dnsNames: [], ...p };
}

async function auth(p: AuthPipeline, t: TlsPeer | undefined, creds: Credentials = {}, ctx: Partial<AuthContext> = {}): Promise<AuthResult> {
  return p.authenticate(creds, { connectionType: "STANDARD", tls: t, ...ctx });
}

const nameOf = (r: AuthResult) => (r.ok ? r.user.name : `refused: ${r.reason}`);

describe("TLS verify_and_map", () => {
  it("maps a SAN e-mail first", async () => {
    const r = await auth(pipeline(), peer({ subject: "CN=carol,OU=eng,O=Acme", emails: ["alice@example.com"], dnsNames: ["bob.example.com"] }));
    expect(r).toEqual({ ok: true, user: { name: "alice@example.com", account: "$G", permissions: { publish: { allow: ["alice.>"] } } } });
  });

  it("then a SAN DNS name, then a SAN URI", async () => {
    const p = pipeline();
    expect(nameOf(await auth(p, peer({ subject: "CN=carol,OU=eng,O=Acme", emails: ["nobody@x"], dnsNames: ["bob.example.com"] })))).toBe("bob.example.com");
    expect(nameOf(await auth(p, peer({ subject: "CN=zed", uris: ["spiffe://acme/frontend"] })))).toBe("spiffe://acme/frontend");
  });

  it("then the subject DN in RFC 2253 form", async () => {
    const p = pipeline();
    expect(nameOf(await auth(p, peer({ subject: "CN=carol,OU=eng,O=Acme", dnsNames: ["unknown.example.com"] })))).toBe("CN=carol,OU=eng,O=Acme");
  });

  it("compares DNs attribute by attribute: spacing, type case, escapes, RDN order", async () => {
    const p = pipeline();
    expect(nameOf(await auth(p, peer({ subject: "cn=carol, ou=eng, o=Acme" })))).toBe("CN=carol,OU=eng,O=Acme");
    expect(nameOf(await auth(p, peer({ subject: "CN=dave,OU=ops,O=Acme\\, Inc." })))).toBe("CN=dave, OU=ops, O=Acme\\, Inc.");
    expect(nameOf(await auth(p, peer({ subject: "O=Acme,OU=eng,CN=carol" })))).toBe("CN=carol,OU=eng,O=Acme");
    expect(nameOf(await auth(p, peer({ subject: "CN=Carol,OU=eng,O=Acme" })))).toBe("refused: no user for the TLS certificate");
    expect(nameOf(await auth(p, peer({ subject: "CN=carol,OU=eng,O=Acme,C=US" })))).toBe("refused: no user for the TLS certificate");
  });

  it("refuses without a match, without a certificate, and does not fall back to no_auth_user or passwords", async () => {
    const p = pipeline({ noAuthUser: "plain" });
    expect(await auth(p, peer({ subject: "CN=mallory,O=Evil" }))).toEqual({ ok: false, reason: "no user for the TLS certificate" });
    expect(await auth(p, undefined)).toEqual({ ok: false, reason: "no TLS client certificate" });
    expect(await auth(p, peer({ subject: "CN=mallory,O=Evil" }), { user: "plain", pass: "pw" })).toMatchObject({ ok: false });
  });

  it("skips users whose connection types refuse the connection", async () => {
    const p = pipeline();
    expect(await auth(p, peer({ subject: "CN=erin,O=Acme" }))).toEqual({ ok: false, reason: "connection type STANDARD not allowed" });
    expect(nameOf(await auth(p, peer({ subject: "CN=erin,O=Acme" }), {}, { connectionType: "WEBSOCKET", tlsMap: true }))).toBe("CN=erin,O=Acme");
  });

  it("a mapped user's password is still compared, as nats-server does", async () => {
    const p = pipeline();
    expect(await auth(p, peer({ subject: "CN=frank,O=Acme" }))).toMatchObject({ ok: false });
    expect(nameOf(await auth(p, peer({ subject: "CN=frank,O=Acme" }), { pass: "pw" }))).toBe("CN=frank,O=Acme");
    // A user without a password and a client that sends one: "" ≠ "x".
    expect(await auth(p, peer({ subject: "CN=carol,OU=eng,O=Acme" }), { pass: "x" })).toMatchObject({ ok: false });
  });

  it("applies to the main listener only unless the transport says so", async () => {
    const p = pipeline();
    const t = peer({ subject: "CN=carol,OU=eng,O=Acme" });
    // A websocket listener without its own verify_and_map: user/password as usual.
    expect(await auth(p, t, {}, { connectionType: "WEBSOCKET" })).toMatchObject({ ok: false });
    expect(nameOf(await auth(p, t, { user: "plain", pass: "pw" }, { connectionType: "WEBSOCKET" }))).toBe("plain");
    expect(nameOf(await auth(p, t, {}, { connectionType: "WEBSOCKET", tlsMap: true }))).toBe("CN=carol,OU=eng,O=Acme");
    // verify without map: certificates name nobody.
    const q = pipeline({ tls: { ...tls, verifyAndMap: false } });
    expect(await auth(q, t)).toMatchObject({ ok: false });
    expect(nameOf(await auth(q, t, { user: "plain", pass: "pw" }))).toBe("plain");
  });
});

describe("DN parsing", () => {
  it("parses RFC 4514 DNs", () => {
    expect(parseDn("CN=a\\,b,OU=x+UID=7,O=Acme")).toEqual([
      [{ type: "CN", value: "a,b" }],
      [{ type: "OU", value: "x" }, { type: "UID", value: "7" }],
      [{ type: "O", value: "Acme" }],
    ]);
    expect(parseDn("commonName=\\C3\\A9t\\C3\\A9")).toEqual([[{ type: "CN", value: "été" }]]);
    expect(parseDn('CN="Doe, John",O=Acme')).toEqual([[{ type: "CN", value: "Doe, John" }], [{ type: "O", value: "Acme" }]]);
    expect(parseDn("2.5.4.3=x")).toEqual([[{ type: "CN", value: "x" }]]);
    expect(parseDn("CN=trailing\\ ")).toEqual([[{ type: "CN", value: "trailing " }]]);
    expect(parseDn("not a dn")).toBeUndefined();
    expect(parseDn("CN=a,")).toBeUndefined();
    expect(parseDn("")).toBeUndefined();
  });

  it("equality keeps RDN order; the reordered match does not", () => {
    const a = parseDn("CN=x,OU=y,O=z")!, b = parseDn("O=z,OU=y,CN=x")!;
    expect(dnEqual(a, b)).toBe(false);
    expect(dnRdnsMatch(a, b)).toBe(true);
    expect(dnEqual(parseDn("OU=y+CN=x")!, parseDn("CN=x+OU=y")!)).toBe(true);
  });
});

// A throwaway self-signed certificate: /C=US/O=Acme, Inc./OU=eng/CN=carol with SANs
// email:carol@acme.example, DNS:carol.acme.example, URI:spiffe://acme/carol.
const CERT = `-----BEGIN CERTIFICATE-----
MIICITCCAcegAwIBAgIUQNannMxnUURj5PQI16yb980TMLowCgYIKoZIzj0EAwIw
QDELMAkGA1UEBhMCVVMxEzARBgNVBAoMCkFjbWUsIEluYy4xDDAKBgNVBAsMA2Vu
ZzEOMAwGA1UEAwwFY2Fyb2wwIBcNMjYxMTIyMTkzNjE5WhgPMjEyNjEwMjkxOTM2
MTlaMEAxCzAJBgNVBAYTAlVTMRMwEQYDVQQKDApBY21lLCBJbmMuMQwwCgYDVQQL
DANlbmcxDjAMBgNVBAMMBWNhcm9sMFkwEwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAE
02LOjNq+47IYEL/RnrKMYloWU301ziYow0dbAwX4dbwGDJFtE1Vv5A/tsi/HRzGq
IXFNUtsfJJfuEWYnVtNEeKOBnDCBmTAdBgNVHQ4EFgQU2hioKXgNDgpBacgmcYEQ
lru6zxIwHwYDVR0jBBgwFoAU2hioKXgNDgpBacgmcYEQlru6zxIwDwYDVR0TAQH/
BAUwAwEB/zBGBgNVHREEPzA9gRJjYXJvbEBhY21lLmV4YW1wbGWCEmNhcm9sLmFj
bWUuZXhhbXBsZYYTc3BpZmZlOi8vYWNtZS9jYXJvbDAKBggqhkjOPQQDAgNIADBF
AiEA3EqJRbEmaQeILX4ZsC9WTVRr0ZL+LWfCoPqYeHt/p8ICIAfh8bHARhufZ4OC
PgFBLG2KvZI5RkBPmIwf0hWpyiRW
-----END CERTIFICATE-----`;

describe("tlsPeerFromCertificate", () => {
  it("gives the subject in RFC 2253 order and the SANs", () => {
    const peerOf = tlsPeerFromCertificate(new X509Certificate(CERT));
    expect(peerOf).toEqual({
      subject: "CN=carol,OU=eng,O=Acme\\, Inc.,C=US",
      emails: ["carol@acme.example"],
      dnsNames: ["carol.acme.example"],
      uris: ["spiffe://acme/carol"],
    });
  });

  it("maps that certificate to a user named by its DN", async () => {
    const p = new AuthPipeline(defaultOptions({ tls, authorization: { users: [{ user: "CN=carol,OU=eng,O=Acme\\, Inc.,C=US" }] } }));
    expect(nameOf(await auth(p, tlsPeerFromCertificate(new X509Certificate(CERT))))).toBe("CN=carol,OU=eng,O=Acme\\, Inc.,C=US");
  });
});
