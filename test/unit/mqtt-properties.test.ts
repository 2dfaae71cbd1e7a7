// MQTT 5 properties ↔ NATS headers (services/common/mqtt-properties.ts) and shared subscription
// filters (filterInterest in services/common/mqtt-topic.ts).
import { describe, expect, it } from "vitest";
import { headersToProperties, propertiesToHeaderLines } from "../../services/common/mqtt-properties.js";
import { filterInterest } from "../../services/common/mqtt-topic.js";

const block = (lines: string) => Buffer.from(`NATS/1.0\r\nNmqtt-Pub:1\r\n${lines}\r\n`, "utf8");

describe("MQTT 5 properties as NATS headers", () => {
  it("round trip: user properties (repeated names), content type, correlation data, format, expiry", () => {
    const props = {
      userProperties: { a: "1", tag: ["x", "y"] }, contentType: "text/plain; charset=utf-8",
      correlationData: Buffer.from([0, 255, 7]), payloadFormatIndicator: true, messageExpiryInterval: 30,
    };
    const lines = propertiesToHeaderLines(props);
    expect(lines).toBe("a: 1\r\ntag: x\r\ntag: y\r\nNmqtt-Content-Type: text/plain; charset=utf-8\r\n" +
      "Nmqtt-Correlation-Data: AP8H\r\nNmqtt-Format: utf-8\r\nNmqtt-Expiry: 30\r\n");
    const buf = block(lines);
    expect(headersToProperties(buf, 0, buf.length)).toEqual(props);
  });

  it("names a header cannot hold, values with CR/LF and Nmqtt- names are not carried", () => {
    expect(propertiesToHeaderLines({ userProperties: { "a b": "1", "a:b": "2", ok: "3\r\nX: y", "nmqtt-pub": "2", fine: "yes" } }))
      .toBe("fine: yes\r\n");
  });

  it("a plain Nmqtt-Pub header carries no properties; unknown Nmqtt- headers are not user properties", () => {
    const plain = block("");
    expect(headersToProperties(plain, 0, plain.length)).toBeUndefined();
    const other = block("Nmqtt-Future: 1\r\n");
    expect(headersToProperties(other, 0, other.length)).toBeUndefined();
  });
});

describe("filterInterest: shared subscriptions", () => {
  it("$share/{group}/{filter} is the filter's subjects in queue group {group}", () => {
    expect(filterInterest("$share/g1/a/+")).toEqual({ subjects: ["a.*"], queue: "g1", filter: "a/+" });
    expect(filterInterest("$share/g/a/#")).toEqual({ subjects: ["a.>", "a"], queue: "g", filter: "a/#" });
    expect(filterInterest("a/b")).toEqual({ subjects: ["a.b"], queue: undefined, filter: "a/b" });
  });

  it("refuses an empty or wildcard share name, or no filter", () => {
    for (const f of ["$share/g", "$share//a", "$share/g+/a", "$share/#/a", "$share/g h/a", "$share/g/"]) {
      expect(filterInterest(f), f).toBeUndefined();
    }
  });
});
