import { afterEach, describe, expect, it } from "vitest";
import { connect, StringCodec } from "nats";
import { startBroker, topologies, type TestBroker } from "../helpers/broker.js";

describe.each(topologies)("smoke (%s)", (topology) => {
  let b: TestBroker | undefined;
  afterEach(async () => { await b?.stop(); b = undefined; });

  it("delivers a request/reply between two nats.js clients", async () => {
    b = await startBroker({ topology, monitoring: true });
    const sc = StringCodec();
    const nc1 = await connect({ port: b.natsPort });
    const nc2 = await connect({ port: b.natsPort });
    const sub = nc1.subscribe("svc.echo");
    (async () => { for await (const m of sub) m.respond(sc.encode(`echo ${sc.decode(m.data)}`)); })();
    await nc1.flush();
    const reply = await nc2.request("svc.echo", sc.encode("hi"));
    expect(sc.decode(reply.data)).toBe("echo hi");
    expect(b.httpPort).toBeGreaterThan(0);
    await nc1.close();
    await nc2.close();
  });
});
