// The cluster credential a router checks in a Hello: the shared token, or an NKEY proof signed
// with a user seed (bare, or in a creds file) whose public key the router lists.
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import { createUser } from "@nats-io/nkeys";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { checkCredential, credentialSource } from "../../services/router/grpc/credential.js";
import { edgeFrames } from "../../services/router/wire/codec.js";
import type { Credential } from "../../services/router/wire/frames.js";

const user = createUser();
const seed = new TextDecoder().decode(user.getSeed());
const stranger = createUser();
let dir = "";
beforeAll(async () => { dir = await mkdtemp(path.join(os.tmpdir(), "meshbroker-nk-")); });
afterAll(() => rm(dir, { recursive: true, force: true }));

/** The credential as the router decodes it from a Hello. */
function onTheWire(source: ReturnType<typeof credentialSource>, id: string, at: number): Credential | undefined {
  const bytes = edgeFrames.encode({ ops: [{ op: "hello", hello: { edgeId: id, sentAtUs: at, credential: source?.(id, at) } }] });
  const frame = edgeFrames.decode(bytes);
  if (frame instanceof Error) throw frame;
  return frame.ops[0].hello!.credential;
}

describe("cluster credential", () => {
  const now = Date.now() * 1000;

  it("token: the same one passes, another or none is refused", () => {
    const auth = { token: "s3cret" };
    expect(checkCredential(auth, onTheWire(credentialSource(auth), "e1", now), "e1", now)).toBeUndefined();
    expect(checkCredential(auth, onTheWire(credentialSource({ token: "guess" }), "e1", now), "e1", now)).toBe("wrong cluster token");
    expect(checkCredential(auth, undefined, "e1", now)).toBe("no cluster credential");
  });

  it("no authorization on the router: anything is accepted", () => {
    expect(checkCredential(undefined, undefined, "e1", now)).toBeUndefined();
  });

  it("NKEY: a listed key's proof passes, from a bare seed or a creds file", async () => {
    const auth = { nkeys: [user.getPublicKey()] };
    await writeFile(path.join(dir, "edge.nk"), `${seed}\n`);
    await writeFile(path.join(dir, "edge.creds"), `-----BEGIN NATS USER JWT-----\neyJ0eXAi.x.y\n------END NATS USER JWT------\n\n-----BEGIN USER NKEY SEED-----\n${seed}\n------END USER NKEY SEED------\n`);
    for (const file of ["edge.nk", "edge.creds"]) {
      const source = credentialSource({ seedFile: path.join(dir, file) });
      expect(checkCredential(auth, onTheWire(source, "e1", now), "e1", now)).toBeUndefined();
    }
  });

  it("NKEY: an unlisted key, a proof for another Hello, an old one or a forged one are refused", async () => {
    const auth = { nkeys: [user.getPublicKey()] };
    await writeFile(path.join(dir, "stranger.nk"), new TextDecoder().decode(stranger.getSeed()));
    const theirs = credentialSource({ seedFile: path.join(dir, "stranger.nk") });
    expect(checkCredential(auth, onTheWire(theirs, "e1", now), "e1", now)).toMatch(/is not in this router's nkeys/);
    const ours = credentialSource({ seedFile: path.join(dir, "edge.nk") });
    const replayed = onTheWire(ours, "e1", now);
    expect(checkCredential(auth, replayed, "e2", now)).toBe("the NKEY proof signs another Hello");
    const old = now - 10 * 60 * 1_000_000;
    expect(checkCredential(auth, onTheWire(ours, "e1", old), "e1", old)).toMatch(/too old/);
    const forged = onTheWire(ours, "e1", now)!;
    forged.nkey!.signature = Buffer.from(forged.nkey!.signature).fill(1, 0, 8);
    expect(checkCredential(auth, forged, "e1", now)).toBe("bad NKEY signature");
    expect(checkCredential(auth, onTheWire(credentialSource({ token: "t" }), "e1", now), "e1", now)).toMatch(/NKEYs only/);
  });

  it("a seed file without a seed is an error naming the file", async () => {
    await writeFile(path.join(dir, "empty.nk"), "nothing here\n");
    expect(() => credentialSource({ seedFile: path.join(dir, "empty.nk") })).toThrow(/empty\.nk: no valid user NKEY seed/);
  });
});
