// Subject syntax shared by every transport: tokens separated by ".", "*" matches one token,
// ">" matches one or more trailing tokens. Wildcards count only as whole tokens ("foo*" is literal).

const DOT = 46, STAR = 42, GT = 62;

/** The whitespace nats-server rejects in subjects (a form feed is allowed). */
function isSpace(c: number): boolean {
  return c === 32 || c === 9 || c === 10 || c === 13;
}

/** A subscription subject: no empty tokens, no whitespace, ">" only as the last token. */
export function isValidSubject(subject: string): boolean {
  const n = subject.length;
  if (n === 0) return false;
  let tokenStart = 0;
  for (let i = 0; i <= n; i++) {
    const c = i === n ? DOT : subject.charCodeAt(i);
    if (c === DOT) {
      const len = i - tokenStart;
      if (len === 0) return false;
      if (len === 1 && subject.charCodeAt(tokenStart) === GT && i !== n) return false;
      tokenStart = i + 1;
    } else if (isSpace(c)) {
      return false;
    }
  }
  return true;
}

/** True when the subject has a "*" or ">" token. */
export function hasWildcard(subject: string): boolean {
  const n = subject.length;
  for (let i = 0; i < n; i++) {
    const c = subject.charCodeAt(i);
    if ((c === STAR || c === GT) && (i === 0 || subject.charCodeAt(i - 1) === DOT) &&
        (i + 1 === n || subject.charCodeAt(i + 1) === DOT)) return true;
  }
  return false;
}

/** A publish subject in pedantic mode: valid and without wildcards. */
export function isValidLiteralSubject(subject: string): boolean {
  return isValidSubject(subject) && !hasWildcard(subject);
}

/** Does the (possibly wildcard) filter match the literal subject? Walks both strings token by
 *  token in place, without splitting: it runs per publish for imports and uncached permissions. */
export function subjectMatches(filter: string, subject: string): boolean {
  let fi = 0, si = 0; // the starts of token i in each
  for (;;) {
    let fe = filter.indexOf(".", fi);
    if (fe < 0) fe = filter.length;
    let se = subject.indexOf(".", si);
    if (se < 0) se = subject.length;
    const len = fe - fi;
    if (len === 1 && filter.charCodeAt(fi) === 62 /* > */) return true; // the subject has token i
    if (!(len === 1 && filter.charCodeAt(fi) === 42 /* * */)) {
      if (len !== se - si) return false;
      for (let k = 0; k < len; k++) if (filter.charCodeAt(fi + k) !== subject.charCodeAt(si + k)) return false;
    }
    const filterDone = fe === filter.length, subjectDone = se === subject.length;
    if (filterDone || subjectDone) return filterDone && subjectDone;
    fi = fe + 1;
    si = se + 1;
  }
}

/** Is every subject `subject` matches also matched by `filter`? ("a.b" and "a.*" are within
 *  "a.>"; "a.>" is not within "a.*"). The one containment rule of imports against exports and
 *  of imports against activation tokens, for config-file and JWT accounts alike. */
export function subjectIsSubsetOf(subject: string, filter: string): boolean {
  const s = subject.split(".");
  const f = filter.split(".");
  for (let i = 0; i < f.length; i++) {
    if (i >= s.length) return false;
    if (f[i] === ">") return true;
    if (s[i] === ">") return false;
    if (s[i] === "*" && f[i] !== "*") return false;
    if (f[i] !== "*" && f[i] !== s[i]) return false;
  }
  return s.length === f.length;
}
