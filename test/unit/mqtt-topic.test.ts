// MQTT topic ↔ NATS subject mapping (services/common/mqtt-topic.ts): the rows of NATS-BEHAVIOUR.md and
// of nats-server's documentation (nats.docs mqtt "Topics and subjects", 2.10 rules), nats-server
// 2.10's conversion cases, round trips, wildcard rules, and MQTT 3.1.1 validity.
import { describe, it, expect } from "vitest";
import {
  filterNeedsParent,
  isValidTopicFilter,
  isValidTopicName,
  subjectToTopic,
  topicToSubject,
} from "../../services/common/mqtt-topic.js";
import { isValidSubject, subjectMatches } from "../../services/common/subject.js";

describe("topicToSubject: topic names", () => {
  // [MQTT topic, NATS subject]; each also converts back (subjectToTopic).
  const rows: [string, string][] = [
    // NATS-BEHAVIOUR.md
    ["foo/bar", "foo.bar"],
    ["/foo/bar", "/.foo.bar"],
    ["foo/bar/", "foo.bar./"],
    ["foo//bar", "foo./.bar"],
    ["//foo/bar", "/./.foo.bar"],
    ["foo.bar", "foo//bar"],
    // nats.docs "Topics and subjects"
    ["sensors/cold-1/temp", "sensors.cold-1.temp"],
    ["/sensors/temp", "/.sensors.temp"],
    ["sensors/temp/", "sensors.temp./"],
    ["sensors//temp", "sensors./.temp"],
    ["//sensors/temp", "/./.sensors.temp"],
    ["cold-1.temp", "cold-1//temp"],
    ["sensors/warehouse/cold-1/temp", "sensors.warehouse.cold-1.temp"],
    ["spBv1.0/plant1", "spBv1//0.plant1"],
    // Empty levels only.
    ["/", "/./"],
    ["//", "/././"],
    ["///", "/./././"],
    ["////", "/././././"],
    // One level.
    ["foo", "foo"],
    ["a", "a"],
    // Leading and trailing runs of "/".
    ["//foo", "/./.foo"],
    ["///foo", "/././.foo"],
    ["///foo/", "/././.foo./"],
    ["///foo//", "/././.foo././"],
    ["///foo///", "/././.foo./././"],
    ["/foo/", "/.foo./"],
    ["/foo/bar/baz", "/.foo.bar.baz"],
    ["/foo/bar/baz/", "/.foo.bar.baz./"],
    ["foo/bar/baz", "foo.bar.baz"],
    ["bar/", "bar./"],
    ["bar//", "bar././"],
    ["bar///", "bar./././"],
    ["foo///bar", "foo././.bar"],
    ["foo////bar", "foo./././.bar"],
    // Dots.
    [".", "//"],
    ["..", "////"],
    ["...", "//////"],
    ["./", "//./"],
    ["/.", "/.//"],
    [".//.", "//././/"],
    ["././.", "//.//.//"],
    ["././/.", "//.//././/"],
    [".foo", "//foo"],
    ["foo.", "foo//"],
    [".foo.", "//foo//"],
    ["//.foo.//", "/././/foo//././"],
    ["foo../bar/", "foo////.bar./"],
    ["foo../bar/.", "foo////.bar.//"],
    ["./foo/.", "//.foo.//"],
    ["foo.bar/baz", "foo//bar.baz"],
    ["a.b.c/d.e", "a//b//c.d//e"],
    // "*" and ">" are not escaped, as nats-server (which delivers "foo/*" to NATS "foo.*").
    ["foo/*", "foo.*"],
    ["foo/>", "foo.>"],
    ["foo/a*b", "foo.a*b"],
    [">", ">"],
    // Other characters pass through, multi-byte ones included.
    ["$SYS/x", "$SYS.x"],
    ["tëst/ünï/😀", "tëst.ünï.😀"],
    ["a-b_c:d", "a-b_c:d"],
  ];
  it.each(rows)("%j → %j", (topic, subject) => {
    expect(topicToSubject(topic, false)).toBe(subject);
    // A topic name converts the same way as a filter.
    expect(topicToSubject(topic, true)).toBe(subject);
    expect(subjectToTopic(subject)).toBe(topic);
  });

  // [topic, why]
  const invalid: [string, string][] = [
    ["", "empty [MQTT-4.7.3-1]"],
    ["foo bar", "a space (nats-server: not supported)"],
    [" ", "only a space"],
    ["foo/ bar", "a space in a level"],
    ["foo\tbar", "a tab"],
    ["foo\nbar", "a line feed"],
    ["foo\rbar", "a carriage return"],
    ["foo\fbar", "a form feed"],
    ["foo\u0000bar", "U+0000 [MQTT-4.7.3-2]"],
    ["foo/+", "a + in a topic name [MQTT-3.3.2-2]"],
    ["foo/#", "a # in a topic name"],
    ["+", "a lone +"],
    ["#", "a lone #"],
    ["foo+", "+ inside a level"],
    ["a#b", "# inside a level"],
    ["foo\ud800bar", "a lone high surrogate"],
    ["foo\udc00", "a lone low surrogate"],
    ["foo\ud800", "a high surrogate at the end"],
  ];
  it.each(invalid)("invalid: %j (%s)", (topic) => {
    expect(topicToSubject(topic, false)).toBeUndefined();
  });
});

describe("topicToSubject: filters", () => {
  // [MQTT filter, NATS subject]
  const rows: [string, string][] = [
    ["+", "*"],
    ["/+", "/.*"],
    ["+/", "*./"],
    ["/+/", "/.*./"],
    ["foo/+", "foo.*"],
    ["foo/+/", "foo.*./"],
    ["foo/+/bar", "foo.*.bar"],
    ["foo/+/+", "foo.*.*"],
    ["foo/+/+/", "foo.*.*./"],
    ["foo/+/+/bar", "foo.*.*.bar"],
    ["foo//+", "foo./.*"],
    ["foo//+/", "foo./.*./"],
    ["foo//+//", "foo./.*././"],
    ["foo//+//bar", "foo./.*./.bar"],
    ["foo///+///bar", "foo././.*././.bar"],
    ["foo.bar///+///baz", "foo//bar././.*././.baz"],
    ["+/+", "*.*"],
    ["#", ">"],
    ["/#", "/.>"],
    ["/foo/#", "/.foo.>"],
    ["foo/#", "foo.>"],
    ["foo//#", "foo./.>"],
    ["foo///#", "foo././.>"],
    ["foo/bar/#", "foo.bar.>"],
    ["foo/bar.baz/#", "foo.bar//baz.>"],
    ["+/#", "*.>"],
    ["+/+/#", "*.*.>"],
    ["sport/tennis/+", "sport.tennis.*"],
    ["sport/+/player1", "sport.*.player1"],
    ["spBv1.0/+", "spBv1//0.*"],
    // Not escaped: a "*" level matches like "+".
    ["foo/*", "foo.*"],
  ];
  it.each(rows)("%j → %j", (filter, subject) => {
    expect(topicToSubject(filter, true)).toBe(subject);
    expect(isValidSubject(subject)).toBe(true);
  });

  // [filter, why]: MQTT 3.1.1 4.7.1 (SUBACK 0x80 in nats-server and meshbroker)
  const invalid: [string, string][] = [
    ["", "empty"],
    ["foo+", "+ not a whole level [MQTT-4.7.1-3]"],
    ["+foo", "+ not a whole level"],
    ["foo/+bar/baz", "+ inside a level"],
    ["foo/ba+r", "+ inside a level"],
    ["++", "two + in a level"],
    ["foo#", "# not a whole level [MQTT-4.7.1-2]"],
    ["#foo", "# followed by more"],
    ["foo/#/bar", "# not last"],
    ["#/", "# then an empty level"],
    ["foo/##", "two #"],
    ["sport/tennis#", "the spec's own example"],
    ["sport/tennis/#/ranking", "the spec's own example"],
    ["foo bar/#", "a space"],
    ["foo/\u0000", "U+0000"],
  ];
  it.each(invalid)("invalid: %j (%s)", (filter) => {
    expect(topicToSubject(filter, true)).toBeUndefined();
  });
});

describe("subjectToTopic", () => {
  // NATS subjects that no MQTT topic maps to (published by NATS clients). [subject, topic]
  const rows: [string, string][] = [
    ["foo", "foo"],
    ["foo.bar.baz", "foo/bar/baz"],
    ["spBv1//0.plant1", "spBv1.0/plant1"],
    ["q./", "q/"],
    ["/.q", "/q"],
    ["x//y.z", "x.y/z"],
    // A lone "/" inside a token is kept (it separates MQTT levels), as 2.9; 2.10 drops it.
    ["a/b.c", "a/b/c"],
    ["///x", "./x"],
    // The subject "/" (the "/#" filter's parent subscription): "/", not an empty topic.
    ["/", "/"],
    // Wildcard characters pass through, as nats-server.
    ["k.+", "k/+"],
    ["k.#", "k/#"],
    ["$MQTT.sess.abc", "$MQTT/sess/abc"],
  ];
  it.each(rows)("%j → %j", (subject, topic) => {
    expect(subjectToTopic(subject)).toBe(topic);
  });
});

describe("filterNeedsParent", () => {
  // [filter, parent subject]: "foo/#" also matches "foo", which "foo.>" does not.
  const rows: [string, string | undefined][] = [
    ["foo/#", "foo"],
    ["foo/bar/#", "foo.bar"],
    ["foo//#", "foo./"],
    ["/foo/#", "/.foo"],
    ["/#", "/"],
    ["+/#", "*"],
    ["foo.bar/#", "foo//bar"],
    ["#", undefined],
    ["foo", undefined],
    ["foo/+", undefined],
    ["foo/", undefined],
    ["", undefined],
    ["foo/#/", undefined],
    ["foo/a#", undefined],
    // Invalid filters have no parent either.
    ["foo bar/#", undefined],
    ["a+/#", undefined],
  ];
  it.each(rows)("%j → %j", (filter, parent) => {
    expect(filterNeedsParent(filter)).toBe(parent);
  });
});

describe("isValidTopicName / isValidTopicFilter (MQTT 3.1.1)", () => {
  // [topic, valid name, valid filter]
  const rows: [string, boolean, boolean][] = [
    ["foo/bar", true, true],
    ["/", true, true],
    ["foo.bar", true, true],
    ["foo bar", true, true], // valid MQTT, refused by the NATS mapping
    ["foo\tbar", true, true],
    ["$SYS/x", true, true],
    ["", false, false],
    ["foo\u0000", false, false],
    ["+", false, true],
    ["#", false, true],
    ["foo/+/bar", false, true],
    ["foo/#", false, true],
    ["/#", false, true],
    ["+/+/#", false, true],
    ["foo+", false, false],
    ["foo/#/bar", false, false],
    ["foo#", false, false],
    ["a\ud83d\ude00b", true, true], // a surrogate pair
    ["a\ud83d", false, false],
    ["\ude00a", false, false],
  ];
  it.each(rows)("%j: name %s, filter %s", (topic, name, filter) => {
    expect(isValidTopicName(topic)).toBe(name);
    expect(isValidTopicFilter(topic)).toBe(filter);
  });

  it("allows up to 65535 UTF-8 bytes [MQTT-1.5.3]", () => {
    expect(isValidTopicName("a".repeat(65535))).toBe(true);
    expect(isValidTopicName("a".repeat(65536))).toBe(false);
    // 2 bytes each.
    expect(isValidTopicName("é".repeat(32767) + "a")).toBe(true);
    expect(isValidTopicName("é".repeat(32768))).toBe(false);
    // 3 bytes each: 21845 × 3 = 65535.
    expect(isValidTopicName("€".repeat(21845))).toBe(true);
    expect(isValidTopicName("€".repeat(21845) + "a")).toBe(false);
    // 4 bytes per surrogate pair.
    expect(isValidTopicFilter("😀".repeat(16383) + "a/#")).toBe(true);
    expect(isValidTopicFilter("😀".repeat(16384))).toBe(false);
    expect(topicToSubject("a/".repeat(32767) + "b", false)).toBe("a.".repeat(32767) + "b");
    expect(topicToSubject("a/".repeat(32768), false)).toBeUndefined();
  });
});

// Every string over a small alphabet, up to a length: exhaustive checks of the properties.
function* strings(alphabet: string[], maxLength: number): Generator<string> {
  let level = [""];
  for (let n = 1; n <= maxLength; n++) {
    const next: string[] = [];
    for (const s of level) for (const c of alphabet) next.push(s + c);
    yield* next;
    level = next;
  }
}

/** MQTT 3.1.1 4.7 matching (no "$" topics here): "+" one level, "#" the rest, parent included. */
function mqttMatches(filter: string, topic: string): boolean {
  const f = filter.split("/"), t = topic.split("/");
  for (let i = 0; i < f.length; i++) {
    if (f[i] === "#") return true;
    if (i >= t.length) return false;
    if (f[i] !== "+" && f[i] !== t[i]) return false;
  }
  return f.length === t.length;
}

describe("properties", () => {
  // expect() only on a failure: these loops run ~100k cases.
  it("round-trips every topic name and gives a valid NATS subject", () => {
    let n = 0;
    for (const topic of strings(["a", "b", "/", ".", "é"], 7)) {
      const subject = topicToSubject(topic, false);
      if (subject === undefined || !isValidSubject(subject) || subjectToTopic(subject) !== topic) {
        expect.fail(`${JSON.stringify(topic)} → ${JSON.stringify(subject)} → ${subject && JSON.stringify(subjectToTopic(subject))}`);
      }
      n++;
    }
    expect(n).toBeGreaterThan(90_000);
  });

  it("agrees with isValidTopicName / isValidTopicFilter apart from whitespace", () => {
    for (const t of strings(["a", "/", "+", "#", " ", ".", "\u0000"], 5)) {
      const hasSpace = t.includes(" ");
      for (const filter of [false, true]) {
        const valid = filter ? isValidTopicFilter(t) : isValidTopicName(t);
        const converted = topicToSubject(t, filter) !== undefined;
        if (converted !== (valid && !hasSpace)) expect.fail(`${JSON.stringify(t)} (filter ${filter}): converted ${converted}, valid ${valid}`);
      }
    }
  });

  it("matches in NATS as MQTT does (with the parent subscription of a trailing #)", () => {
    const filters = [...strings(["a", "/", "+", "#", "."], 5)].filter(isValidTopicFilter);
    const topics = [...strings(["a", "b", "/", "."], 5)];
    expect(filters.length).toBeGreaterThan(300);
    for (const f of filters) {
      const subject = topicToSubject(f, true)!;
      const parent = filterNeedsParent(f);
      for (const t of topics) {
        const s = topicToSubject(t, false)!;
        const nats = subjectMatches(subject, s) || (parent !== undefined && subjectMatches(parent, s));
        if (nats !== mqttMatches(f, t)) expect.fail(`filter ${f} (${subject}, parent ${parent}) topic ${t} (${s}): NATS ${nats}`);
        // Never both: no message is delivered twice.
        if (parent !== undefined && subjectMatches(subject, s) && subjectMatches(parent, s)) expect.fail(`${f}: ${t} matched twice`);
      }
    }
  });
});
