import { describe, it, expect } from "vitest";
import { generateKeyPairSync, sign } from "node:crypto";
import { createAccount, createOperator, createUser, fromPublic, type KeyPair } from "@nats-io/nkeys";
import { encodeAccount, encodeOperator, encodeUser } from "@nats-io/jwt";
import {
  base32Decode, base32Encode, crc16, decodePublicNkey, decodeSignature, encodePublicNkey, isPublicNkey,
  verifyNkeySignature,
} from "../../services/common/nkeys.js";
import {
  decodeNatsJwt, isNatsJwt, natsClaimsOf, unarmorNatsJwt, type NatsJwtErrorCode,
} from "../../services/common/nats-jwt.js";

const te = new TextEncoder();
const b64 = (v: unknown) => Buffer.from(JSON.stringify(v)).toString("base64url");
const flip = (s: string, at: number) => s.slice(0, at) + (s[at] === "A" ? "B" : "A") + s.slice(at + 1);

/** A JWT signed by `kp` over `signed(header, claims)`, as nsc (v2) or the old v1 libraries make them. */
function mint(kp: KeyPair, header: object, claims: object, v1 = false): string {
  const h = b64(header), c = b64(claims);
  const sig = Buffer.from(kp.sign(te.encode(v1 ? c : `${h}.${c}`))).toString("base64url");
  return `${h}.${c}.${sig}`;
}

describe("nkeys", () => {
  it("base32 and CRC-16 match RFC 4648 and CRC-16/XMODEM", () => {
    const vectors = [["", ""], ["f", "MY"], ["fo", "MZXQ"], ["foo", "MZXW6"], ["foob", "MZXW6YQ"], ["fooba", "MZXW6YTB"], ["foobar", "MZXW6YTBOI"]];
    for (const [plain, coded] of vectors) {
      expect(base32Encode(Buffer.from(plain))).toBe(coded);
      expect(base32Decode(coded)?.toString()).toBe(plain);
    }
    expect(base32Decode("MZXW6y")).toBeUndefined();
    expect(base32Decode("MZXW61")).toBeUndefined();
    expect(crc16(Buffer.from("123456789"))).toBe(0x31c3);
  });

  it("decodes public keys of each role, checking length, alphabet, role and checksum", () => {
    const keys = { operator: createOperator(), account: createAccount(), user: createUser() };
    for (const [role, kp] of Object.entries(keys) as [keyof typeof keys, KeyPair][]) {
      const pk = kp.getPublicKey();
      const raw = decodePublicNkey(pk, role);
      expect(raw).toHaveLength(32);
      expect(encodePublicNkey(raw!, role)).toBe(pk);
      expect(decodePublicNkey(pk)).toEqual(raw); // no role named: any of the three
      expect(isPublicNkey(pk, role)).toBe(true);
      expect(isPublicNkey(pk, ...(["operator", "account", "user"] as const).filter((r) => r !== role))).toBe(false);
      for (let i = 1; i < pk.length; i += 11) expect(decodePublicNkey(flip(pk, i))).toBeUndefined();
      expect(decodePublicNkey(pk.slice(0, -1))).toBeUndefined();
      expect(decodePublicNkey(pk.toLowerCase())).toBeUndefined();
    }
    expect(decodePublicNkey(new TextDecoder().decode(createUser().getSeed()))).toBeUndefined(); // a seed is not a public key
    expect(isPublicNkey(42)).toBe(false);
    expect(() => encodePublicNkey(new Uint8Array(31), "user")).toThrow(RangeError);
  });

  it("encodes node:crypto keys as nkeys do, and verifies their signatures", () => {
    const { publicKey, privateKey } = generateKeyPairSync("ed25519");
    const pk = encodePublicNkey(Buffer.from(publicKey.export({ format: "jwk" }).x!, "base64url"), "account");
    expect(pk[0]).toBe("A");
    const sig = sign(null, Buffer.from("nonce"), privateKey);
    expect(fromPublic(pk).verify(te.encode("nonce"), sig)).toBe(true);
    expect(verifyNkeySignature(pk, "nonce", sig)).toBe(true);
    expect(verifyNkeySignature(pk, te.encode("nonce"), sig)).toBe(true);
    expect(verifyNkeySignature(pk, "other", sig)).toBe(false);
    expect(verifyNkeySignature(createAccount().getPublicKey(), "nonce", sig)).toBe(false);
    expect(verifyNkeySignature(pk, "nonce", sig.subarray(1))).toBe(false);
    expect(verifyNkeySignature("not a key", "nonce", sig)).toBe(false);
  });

  it("decodes CONNECT signatures in base64url, padded or standard base64", () => {
    const sig = Buffer.from(createUser().sign(te.encode("n")));
    for (const text of [sig.toString("base64url"), `${sig.toString("base64url")}==`, sig.toString("base64")]) {
      expect(decodeSignature(text)).toEqual(sig);
    }
    expect(decodeSignature("abc")).toBeUndefined();
    expect(decodeSignature(`${sig.toString("base64url")}!`)).toBeUndefined();
    expect(decodeSignature(Buffer.alloc(63).toString("base64url"))).toBeUndefined();
  });
});

describe("NATS JWTs", () => {
  const op = createOperator(), acc = createAccount(), user = createUser();

  it("decodes v2 JWTs: kind, version, claims; the issuer must be of an expected role", async () => {
    const opJwt = await encodeOperator("OP", op, { system_account: acc.getPublicKey() });
    const accJwt = await encodeAccount("ACC", acc, {}, { signer: op });
    const userJwt = await encodeUser("u", user, acc);
    expect(decodeNatsJwt(opJwt, "operator")).toMatchObject({
      kind: "operator", version: 2, claims: { iss: op.getPublicKey(), sub: op.getPublicKey(), name: "OP", nats: { system_account: acc.getPublicKey() } },
    });
    expect(decodeNatsJwt(accJwt, "operator", "account")).toMatchObject({ kind: "account", claims: { sub: acc.getPublicKey() } });
    expect(decodeNatsJwt(userJwt, "account")).toMatchObject({ kind: "user", claims: { sub: user.getPublicKey() } });
    expect(() => decodeNatsJwt(accJwt, "account")).toThrow(expect.objectContaining({ code: "issuer", message: "claim failed V2 signature verification" }));
    expect(natsClaimsOf(opJwt).nats.system_account).toBe(acc.getPublicKey());
    expect(natsClaimsOf("nonsense")).toEqual({ iss: "", sub: "", nats: {} });
    expect(isNatsJwt(userJwt)).toBe(true);
    expect(isNatsJwt(`${b64({ alg: "RS256", typ: "JWT" })}.e30.sig`)).toBe(false);
    expect(isNatsJwt(b64({ alg: "ed25519-nkey" }))).toBe(false);
  });

  it("verifies v1 JWTs over the claims chunk only", () => {
    const claims = { type: "operator", iss: op.getPublicKey(), sub: op.getPublicKey(), name: "v1" };
    const v1 = mint(op, { typ: "jwt", alg: "ed25519" }, claims, true);
    expect(decodeNatsJwt(v1, "operator")).toMatchObject({ kind: "operator", version: 1, claims: { type: "operator", name: "v1" } });
    expect(() => decodeNatsJwt(mint(op, { typ: "jwt", alg: "ed25519" }, claims), "operator"))
      .toThrow(expect.objectContaining({ code: "signature", message: "claim failed V1 signature verification" }));
  });

  it("names what is wrong with a token", async () => {
    const good = await encodeUser("u", user, acc);
    const [h, c, s] = good.split(".");
    const claims = JSON.parse(Buffer.from(c, "base64url").toString());
    const cases: [string, NatsJwtErrorCode, string][] = [
      ["a.b", "chunks", "expected 3 chunks"],
      [`${h}.${c}.${s}.x`, "chunks", "expected 3 chunks"],
      [`${h}.${c}.`, "encoding", "invalid JWT segment"],
      [`${h}=.${c}.${s}`, "encoding", "invalid JWT segment"],
      [`abc.${c}.${s}`, "segment", "invalid JWT segment"],
      [`${b64([1])}.${c}.${s}`, "segment", "invalid JWT segment"],
      [`${h}.${Buffer.from([0xff, 0xfe]).toString("base64url")}.${s}`, "segment", "invalid JWT segment"],
      [`${b64({ typ: "JWS", alg: "ed25519-nkey" })}.${c}.${s}`, "type", 'not supported type "JWS"'],
      [`${b64({ typ: "JWT", alg: "HS256" })}.${c}.${s}`, "algorithm", 'unexpected "HS256" algorithm'],
      [mint(acc, { typ: "JWT", alg: "ed25519-nkey" }, { ...claims, nats: { ...claims.nats, version: 3 } }), "version", "JWT was generated by a newer version"],
      [`${h}.${c}.${s.slice(0, -4)}AAAA`, "signature", "claim failed V2 signature verification"],
      [`${h}.${b64({ ...claims, name: "evil" })}.${s}`, "signature", "claim failed V2 signature verification"],
    ];
    for (const [token, code, message] of cases) {
      expect(() => decodeNatsJwt(token, "account"), token).toThrow(expect.objectContaining({ name: "NatsJwtError", code, message }));
    }
  });

  it("unarmors decorated JWT files", () => {
    const jwt = "eyJ0eXAiOiJKV1QifQ.e30.c2ln";
    expect(unarmorNatsJwt(`-----BEGIN NATS OPERATOR JWT-----\n${jwt}\n------END NATS OPERATOR JWT------\n\n*** seed below ***\n`)).toBe(jwt);
    expect(unarmorNatsJwt(`  ${jwt}\n`)).toBe(jwt);
  });
});
