// Operator-mode identities for tests, made with @nats-io/jwt and @nats-io/nkeys as `nsc` would:
// an operator (with a system account), accounts it signs, users the accounts sign, creds files,
// and the `operator` / `resolver: MEMORY` / `resolver_preload` config text that trusts them.
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import {
  encodeAccount, encodeOperator, encodeUser, fmtCreds,
  type Account, type EncodingOptions, type User,
} from "@nats-io/jwt";
import { createAccount, createOperator, createUser, type KeyPair } from "@nats-io/nkeys";

export interface TestOperator {
  kp: KeyPair;
  jwt: string;
  system: TestAccount;
}

export interface TestAccount {
  name: string;
  kp: KeyPair;
  /** The account's public key (its name in operator mode). */
  pub: string;
  jwt: string;
}

export interface TestUser {
  kp: KeyPair;
  pub: string;
  /** The user's NKEY seed, as nats.js authenticators take it. */
  seed: Uint8Array;
  jwt: string;
  /** Contents of a `.creds` file (JWT + seed between the usual armour lines). */
  creds: Uint8Array;
}

/** An operator whose system account is `SYS`. */
export async function newOperator(name = "TEST_OP"): Promise<TestOperator> {
  const kp = createOperator();
  const sysKp = createAccount();
  const system = await signAccount(kp, "SYS", sysKp);
  const jwt = await encodeOperator(name, kp, { system_account: system.pub });
  return { kp, jwt, system };
}

/** An account JWT signed by the operator. */
export function newAccount(op: TestOperator, name: string, claims: Partial<Account> = {}, opts: Partial<EncodingOptions> = {}): Promise<TestAccount> {
  return signAccount(op.kp, name, createAccount(), claims, opts);
}

/** Re-issue an account's JWT (same key) with other claims, e.g. revocations. */
export function reissueAccount(op: TestOperator, acc: TestAccount, claims: Partial<Account>): Promise<TestAccount> {
  return signAccount(op.kp, acc.name, acc.kp, claims);
}

/** What nsc writes by default: no limit. (nats-server reads a JWT without `limits` as all zero,
 *  so an account JWT without them admits no connection at all.) */
export const UNLIMITED = { subs: -1, data: -1, payload: -1, imports: -1, exports: -1, wildcards: true, conn: -1, leaf: -1 };

async function signAccount(opKp: KeyPair, name: string, kp: KeyPair, claims: Partial<Account> = {}, opts: Partial<EncodingOptions> = {}): Promise<TestAccount> {
  const jwt = await encodeAccount(name, kp, { ...claims, limits: { ...UNLIMITED, ...claims.limits } }, { signer: opKp, ...opts });
  return { name, kp, pub: kp.getPublicKey(), jwt };
}

/** A user JWT signed by the account (its permissions, bearer_token, exp, ... in `claims`/`opts`). */
export async function newUser(acc: TestAccount, name: string, claims: Partial<User> = {}, opts: Partial<EncodingOptions> = {}): Promise<TestUser> {
  const kp = createUser();
  const jwt = await encodeUser(name, kp, acc.kp, claims, opts);
  return { kp, pub: kp.getPublicKey(), seed: kp.getSeed(), jwt, creds: fmtCreds(jwt, kp) };
}

/** The config lines that trust the operator and preload the accounts (and its system account). */
export function operatorConfig(op: TestOperator, accounts: TestAccount[]): string {
  const preload = [op.system, ...accounts].map((a) => `  ${a.pub}: "${a.jwt}"`).join("\n");
  return `operator: "${op.jwt}"\nsystem_account: ${op.system.pub}\nresolver: MEMORY\nresolver_preload {\n${preload}\n}\n`;
}

/** A temp dir for creds files; `cleanup()` removes it. */
export async function credsDir(): Promise<{ dir: string; write(name: string, user: TestUser): Promise<string>; cleanup(): Promise<void> }> {
  const dir = await mkdtemp(path.join(os.tmpdir(), "meshbroker-creds-"));
  return {
    dir,
    async write(name, user) {
      const file = path.join(dir, `${name}.creds`);
      await writeFile(file, user.creds, { mode: 0o600 });
      return file;
    },
    cleanup: () => rm(dir, { recursive: true, force: true }),
  };
}
