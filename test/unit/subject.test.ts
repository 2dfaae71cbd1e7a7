// Subject syntax, as nats-server 2.9 reads it: tokens split on ".", "*" one token, ">" one or
// more trailing tokens; wildcards count only as whole tokens.
import { describe, expect, it } from "vitest";
import {
  hasWildcard,
  isValidLiteralSubject,
  isValidSubject,
  subjectMatches,
} from "../../services/common/subject.js";

describe("isValidSubject (SUB subjects)", () => {
  it.each([
    "foo", "foo.bar", "foo.bar.baz", "*", ">", "foo.*", "foo.>", "*.*", "*.>", "foo.*.bar",
    "foo*", "foo>", "f>o", "*foo", "$SYS.REQ", "_INBOX.abc.1", "fóo.bär", "a-b_c~d", "1.2.3",
    "foo\vbar", // only the separators nats-server splits arguments on are whitespace to it
  ])("valid: %j", (s) => {
    expect(isValidSubject(s)).toBe(true);
  });

  it.each([
    "", ".", "..", "foo.", ".foo", "foo..bar", ">.foo", "foo.>.bar", ">.>", "foo bar", "foo\tbar",
    "foo\nbar", "foo\rbar", " foo", "foo ",
  ])("invalid: %j", (s) => {
    expect(isValidSubject(s)).toBe(false);
  });

  // nats-server 2.9 accepts `SUB foo\fbar 1` (checked against the real server; see
  // protocol-diff.test.ts): a form feed is not one of the characters it rejects.
  it("a form feed inside a token is accepted, as by nats-server", () => {
    expect(isValidSubject("foo\fbar")).toBe(true);
  });
});

describe("hasWildcard", () => {
  it.each([
    ["foo.*", true], ["*", true], [">", true], ["a.>", true], ["*.a", true], ["a.*.b", true],
    ["foo", false], ["foo*", false], ["a>", false], ["*a", false], ["a.b*", false], ["a.>b", false], ["", false],
  ] as const)("%j → %s", (s, want) => {
    expect(hasWildcard(s)).toBe(want);
  });
});

describe("isValidLiteralSubject (pedantic PUB subjects)", () => {
  it.each([
    ["foo.bar", true], ["foo*", true], ["a>b", true], ["foo.*", false], ["foo.>", false], [">", false],
    ["foo..bar", false], ["", false], ["foo bar", false],
  ] as const)("%j → %s", (s, want) => {
    expect(isValidLiteralSubject(s)).toBe(want);
  });
});

describe("subjectMatches(filter, subject)", () => {
  it.each([
    ["foo", "foo", true],
    ["foo", "bar", false],
    ["foo", "foo.bar", false],
    ["foo.bar", "foo", false],
    ["foo.*", "foo.bar", true],
    ["foo.*", "foo", false],
    ["foo.*", "foo.bar.baz", false],
    ["*", "foo", true],
    ["*", "foo.bar", false],
    ["*.bar", "foo.bar", true],
    ["*.bar", "foo.baz", false],
    ["foo.*.baz", "foo.bar.baz", true],
    ["foo.>", "foo.bar", true],
    ["foo.>", "foo.bar.baz", true],
    ["foo.>", "foo", false],
    [">", "foo", true],
    [">", "foo.bar.baz", true],
    ["*.>", "foo", false],
    ["*.>", "foo.bar", true],
    ["foo*", "foo*", true],
    ["foo*", "fooX", false],
    ["foo.*", "foo.*", true], // a literal "*" token in a subject is still one token
  ] as const)("%j matches %j: %s", (filter, subject, want) => {
    expect(subjectMatches(filter, subject)).toBe(want);
  });

  it("agrees with token-by-token matching on every filter and subject of up to 3 tokens", () => {
    // The oracle splits into tokens, the way the definition reads; subjectMatches must not.
    const byTokens = (f: string[], s: string[]): boolean => {
      for (let i = 0; i < f.length; i++) {
        if (f[i] === ">") return s.length > i;
        if (i >= s.length || (f[i] !== "*" && f[i] !== s[i])) return false;
      }
      return f.length === s.length;
    };
    const tokens = ["a", "b", "ab", "*", ">", ""];
    const all: string[][] = [];
    const grow = (prefix: string[]): void => {
      if (prefix.length > 0) all.push(prefix);
      if (prefix.length < 3) for (const t of tokens) grow([...prefix, t]);
    };
    grow([]);
    let checked = 0;
    for (const f of all) {
      for (const s of all) {
        if (subjectMatches(f.join("."), s.join(".")) !== byTokens(f, s)) expect.fail(`${f.join(".")} vs ${s.join(".")}`);
        checked++;
      }
    }
    expect(checked).toBe(all.length ** 2);
  });
});
