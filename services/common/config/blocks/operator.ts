// Operator mode: `operator` JWTs, the account `resolver` and `resolver_preload`.

import { readFileSync } from "node:fs";
import { decodeNatsJwt, unarmorNatsJwt } from "../../nats-jwt.js";
import { isConfigMap, type ConfigMap, type ConfigValue } from "../parser.js";
import { describe, ERRNO_TEXT, type Reader } from "../reader.js";

/** Operator JWTs: inline, or files holding one (bare or between armor lines), or a list. */
export function readOperators(r: Reader, m: ConfigMap, key: string): string[] {
  const v = m[key];
  const list = Array.isArray(v) ? v : [v];
  return list.map((item, i) => {
    const [c, k]: [ConfigMap | ConfigValue[], string | number] = Array.isArray(v) ? [v, i] : [m, key];
    if (typeof item !== "string") return r.fail(c, k, `error parsing operators: unsupported type ${describe(item)}`);
    let text: string;
    try {
      text = readFileSync(item, "utf8");
    } catch (err) {
      // Not a readable file: maybe the JWT itself.
      if (!item.startsWith("eyJ")) {
        const code = (err as NodeJS.ErrnoException).code ?? "";
        return r.fail(c, k, `error parsing operator JWT: open ${item}: ${ERRNO_TEXT[code] ?? code}`);
      }
      text = item;
    }
    const jwt = unarmorNatsJwt(text);
    try {
      checkNatsJwt(jwt, "operator");
    } catch (err) {
      return r.fail(c, k, `error parsing operator JWT: ${(err as Error).message}`);
    }
    return jwt;
  });
}

/** "MEMORY" (or "MEM"); undefined for the kinds meshbroker does not implement (URL(...),
 *  {type: full|cache, dir}), which the caller keeps pending. */
export function readResolver(r: Reader, m: ConfigMap, key: string): "MEMORY" | undefined {
  const v = m[key];
  const invalid = () =>
    r.fail(m, key, `error parsing account resolver, should be MEM or URL("url") or a map containing dir and type state=[FULL|CACHE])`);
  if (typeof v === "string") {
    const s = v.trim().toUpperCase();
    if (s === "MEM" || s === "MEMORY") return "MEMORY";
    if (/^URL\(\s*"?[^\s"]+"?\s*\)$/i.test(v.trim())) return undefined;
    return invalid();
  }
  if (!isConfigMap(v)) return r.fail(m, key, `error parsing operator resolver, wrong type ${describe(v)}`);
  const lower = new Map(Object.keys(v).map((k) => [k.toLowerCase(), v[k]]));
  const dir = lower.get("dir");
  if (typeof dir !== "string" || dir === "") r.fail(m, key, "dir has no value and needs to point to a directory");
  const type = lower.get("type");
  if (typeof type !== "string" || !["FULL", "CACHE"].includes(type.toUpperCase())) return invalid();
  return undefined;
}

/** `resolver_preload { ACCOUNT_PUBKEY: "account JWT" }`. */
export function readResolverPreload(r: Reader, m: ConfigMap, key: string): Record<string, string> {
  const v = m[key];
  if (!isConfigMap(v)) return r.fail(m, key, "preload should be a map of account_public_key:account_jwt");
  const out: Record<string, string> = {};
  for (const k of Object.keys(v)) {
    const jwt = v[k];
    if (typeof jwt !== "string") r.fail(v, k, "preload map value should be a string JWT");
    try {
      checkNatsJwt(jwt, "account");
    } catch {
      r.fail(v, k, "invalid account JWT");
    }
    out[k] = jwt;
  }
  return out;
}

/** nats-io/jwt DecodeOperatorClaims / DecodeAccountClaims: a JWT of that claim type, signed by
 *  an operator key. Throws an Error with nats-io/jwt's wording. */
function checkNatsJwt(jwt: string, kind: "operator" | "account"): void {
  if (decodeNatsJwt(jwt, "operator").kind !== kind) throw new Error(`not ${kind} claim`);
}
