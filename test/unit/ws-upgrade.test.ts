// Which upgrade paths are MQTT over WebSocket (services/edge/websocket/upgrade.ts): a path that
// ends in /mqtt, trailing slashes and the query string aside, so that an ingress prefix works.
import { describe, expect, it } from "vitest";
import { isMqttPath } from "../../services/edge/websocket/upgrade.js";

describe("isMqttPath", () => {
  it.each([
    ["/mqtt", true], ["/mqtt/", true], ["/mqtt//", true], ["/mqtt?x=1", true], ["/mqtt/?x=/mqtt", true],
    ["/prefix/mqtt", true], ["/a/b/mqtt/", true], ["/MQTT", false], ["/mqttx", false], ["/xmqtt", false],
    ["/mqtt/x", false], ["/", false], ["", false], ["mqtt", false], ["/mqt", false], ["?/mqtt", false],
    ["/?a=/mqtt", false], ["///", false],
  ])("%j is %s", (url, mqtt) => {
    expect(isMqttPath(url)).toBe(mqtt);
  });
});
