// No secret reaches the log: passwords, tokens and JWTs that clients send (well-formed or not),
// over NATS and MQTT, with debug and trace logging on. The log is captured in-process.
import { describe, expect, it } from "vitest";
import { topologies, startBroker } from "../helpers/broker.js";
import { natsRefusal } from "../helpers/clients.js";
import { newAccount, newOperator, newUser, operatorConfig } from "../helpers/creds.js";
import { RawMqtt } from "../helpers/mqtt.js";
import { closedWithin, rawConnect } from "../helpers/raw.js";
import { cleanupAfterEach } from "../helpers/wait.js";

const c = cleanupAfterEach();

const SECRET = "s3cr3t-Pw";

describe.each(topologies)("secrets stay out of the log (%s)", (topology) => {
  async function broker(config: string) {
    const b = await startBroker({
      topology, captureLog: true,
      config: `debug: true\ntrace: true\nserver_name: logs\n${config}\nmqtt {\n  host: 127.0.0.1\n  port: -1\n}`,
    });
    c.push(() => b.stop());
    return b;
  }

  it("a CONNECT with malformed JSON around the password is logged with its position only", async () => {
    const b = await broker(`authorization { users: [ { user: u1, password: "${SECRET}" } ] }`);
    for (const line of [
      `CONNECT {"user":"u1","pass":'${SECRET}'}\r\n`, // V8 would quote the input around the quote
      `CONNECT {"user":"u1","pass":"${SECRET}\r\n`, // unterminated string
      `CONNECT {"user":"u1","pass":"${SECRET}" "verbose":false}\r\n`,
    ]) {
      const raw = await rawConnect(b.natsPort);
      c.push(() => raw.close());
      await raw.send(line);
      await closedWithin(raw);
    }
    expect(b.log.join("\n")).not.toContain(SECRET.slice(0, 5));
    expect(b.log.join("\n")).toMatch(/malformed CONNECT JSON/);
  });

  it("failed logins over NATS and MQTT (password, token, JWT) log the reason, never the credential", async () => {
    const op = await newOperator();
    const acc = await newAccount(op, "A");
    const expired = await newUser(acc, "old", { bearer_token: true }, { exp: Math.floor(Date.now() / 1000) - 60 });
    const b = await broker(operatorConfig(op, [acc]));
    await natsRefusal(b.natsPort, { user: "u1", pass: SECRET });
    await natsRefusal(b.natsPort, { token: SECRET });
    const { connack } = await RawMqtt.open(b.mqttPort!, { username: "u1", password: Buffer.from(SECRET) });
    expect(connack.returnCode).toBe(5);
    const jwt = await RawMqtt.open(b.mqttPort!, { username: "jwt", password: Buffer.from(expired.jwt) });
    expect(jwt.connack.returnCode).toBe(5);
    const log = b.log.join("\n");
    expect(log).toMatch(/authentication error/);
    expect(log).not.toContain(SECRET);
    for (const part of expired.jwt.split(".")) expect(log).not.toContain(part.slice(0, 16));
  });
});
