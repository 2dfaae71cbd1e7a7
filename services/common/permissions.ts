// Publish and subscribe permissions of one authenticated user, as nats-server applies them:
// an allow list (absent = everything) minus a deny list, plus the reply subjects of requests
// the user received when it may answer them (allow_responses). Results for literal subjects
// are cached per user, since publishers repeat subjects.
import type { Permissions } from "./config/options.js";
import { subjectMatches } from "./subject.js";

const CACHE_MAX = 512;
/** nats-server's defaults for `allow_responses: true`. */
const RESPONSE_MAX_MSGS = 1;
const RESPONSE_EXPIRES_MS = 2 * 60_000;

interface ReplyGrant { remaining: number; expires: number }

export class PermissionChecker {
  private readonly pubCache = new Map<string, boolean>();
  private readonly denyCache = new Map<string, boolean>();
  private readonly replies = new Map<string, ReplyGrant>();
  /** undefined = any subject may be published (an empty list in the config counts as none). */
  private readonly pubAllow: string[] | undefined;
  private readonly pubDeny: string[];
  /** True when some messages a wildcard subscription matches must not be delivered. */
  readonly hasSubscribeDeny: boolean;
  readonly allowsResponses: boolean;

  constructor(private readonly perms: Permissions) {
    const allow = perms.publish?.allow;
    // With allow_responses and no allow list, only responses may be published (nats-server).
    this.pubAllow = allow && allow.length > 0 ? allow : perms.allowResponses ? [] : undefined;
    this.pubDeny = perms.publish?.deny ?? [];
    this.hasSubscribeDeny = (perms.subscribe?.deny?.length ?? 0) > 0;
    this.allowsResponses = perms.allowResponses !== undefined;
  }

  canPublish(subject: string): boolean {
    if (this.pubAllow === undefined && this.pubDeny.length === 0) return true;
    let ok = this.pubCache.get(subject);
    if (ok === undefined) {
      ok = (this.pubAllow === undefined || this.pubAllow.some((f) => subjectMatches(f, subject))) &&
        !this.pubDeny.some((f) => subjectMatches(f, subject));
      if (this.pubCache.size >= CACHE_MAX) this.pubCache.clear();
      this.pubCache.set(subject, ok);
    }
    return ok || this.useReplyGrant(subject);
  }

  /** The subscription subject is matched token by token as if literal, as nats-server's
   *  sublist does (so an allowed "bar.*" also admits "bar.>"). A permission may name a
   *  queue group as "subject queue". */
  canSubscribe(subject: string, queue?: string): boolean {
    const p = this.perms.subscribe;
    if (!p) return true;
    const check = (list: string[] | undefined) => list?.some((f) => {
      const [fs, fq] = f.split(" ");
      return subjectMatches(fs, subject) && (fq === undefined || fq === queue);
    }) ?? false;
    if (p.allow?.length && !check(p.allow)) return false;
    return !check(p.deny);
  }

  /** For wildcard subscriptions: is this message's subject one the user may not receive? */
  deniedDelivery(subject: string): boolean {
    let denied = this.denyCache.get(subject);
    if (denied === undefined) {
      denied = this.perms.subscribe?.deny?.some((f) => subjectMatches(f.split(" ")[0], subject)) ?? false;
      if (this.denyCache.size >= CACHE_MAX) this.denyCache.clear();
      this.denyCache.set(subject, denied);
    }
    return denied;
  }

  /** A request with this reply subject was delivered: the user may answer it. */
  grantReply(reply: string): void {
    const r = this.perms.allowResponses!;
    if (this.replies.size >= CACHE_MAX * 8) this.expireReplies();
    this.replies.set(reply, {
      remaining: r.maxMsgs > 0 ? r.maxMsgs : RESPONSE_MAX_MSGS,
      expires: Date.now() + (r.expiresMs > 0 ? r.expiresMs : RESPONSE_EXPIRES_MS),
    });
  }

  private useReplyGrant(subject: string): boolean {
    const grant = this.replies.get(subject);
    if (!grant) return false;
    if (grant.expires < Date.now()) {
      this.replies.delete(subject);
      return false;
    }
    if (--grant.remaining <= 0) this.replies.delete(subject);
    return true;
  }

  private expireReplies(): void {
    const now = Date.now();
    for (const [k, g] of this.replies) if (g.expires < now) this.replies.delete(k);
  }
}

/**
 * May a user with `perms` hold an MQTT subscription to `subject` at `qos`? nats-server 2.9
 * delivers QoS 1/2 subscriptions through "$MQTT.sub.<cid>", so a user whose permissions do not
 * allow that subject cannot have one, and nobody may subscribe to those subjects directly. The
 * one rule for a SUBSCRIBE (edge) and for a session re-checked against a new user (router side).
 */
export function mqttMaySubscribe(perms: PermissionChecker | undefined, subject: string, qos: number, cid: number): boolean {
  if (subject.startsWith("$MQTT.sub.")) return false;
  if (!perms) return true;
  if (!perms.canSubscribe(subject)) return false;
  return qos === 0 || perms.canSubscribe(`$MQTT.sub.${cid}`);
}
