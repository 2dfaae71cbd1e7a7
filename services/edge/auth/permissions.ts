// Publish and subscribe permissions of one authenticated user, as nats-server applies them:
// an allow list (empty = everything) minus a deny list. Results for literal publish subjects
// are cached per user, since publishers repeat subjects.
import type { Permissions, SubjectPermission } from "../../common/config/options.js";
import { subjectMatches } from "../../common/subject.js";

const CACHE_MAX = 512;

export class PermissionChecker {
  private readonly pubCache = new Map<string, boolean>();

  constructor(private readonly perms: Permissions) {}

  canPublish(subject: string): boolean {
    const p = this.perms.publish;
    if (!p) return true;
    let ok = this.pubCache.get(subject);
    if (ok === undefined) {
      ok = allowed(p, subject);
      if (this.pubCache.size >= CACHE_MAX) this.pubCache.clear();
      this.pubCache.set(subject, ok);
    }
    return ok;
  }

  /** The subscription subject is matched token by token as if literal, as nats-server's
   *  sublist does (so an allowed "bar.*" also admits "bar.>"). */
  canSubscribe(subject: string, queue?: string): boolean {
    const p = this.perms.subscribe;
    if (!p) return true;
    // nats-server lets a permission name a queue group as "subject queue".
    const check = (list: string[] | undefined) => list?.some((f) => {
      const [fs, fq] = f.split(" ");
      return subjectMatches(fs, subject) && (fq === undefined || fq === queue);
    }) ?? false;
    if (p.allow && p.allow.length > 0 && !check(p.allow)) return false;
    return !check(p.deny);
  }
}

function allowed(p: SubjectPermission, subject: string): boolean {
  if (p.allow && p.allow.length > 0 && !p.allow.some((f) => subjectMatches(f, subject))) return false;
  return !(p.deny?.some((f) => subjectMatches(f, subject)) ?? false);
}
