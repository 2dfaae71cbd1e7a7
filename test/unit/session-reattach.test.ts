// The session service when the same connection of an edge attaches its session again (the edge
// re-attached to this router and replayed it, or sent an unanswered attach once more): no
// takeover, so the connection is not closed, and it keeps its session (a clean one too) and
// what is delivered to it. A real Router and SessionService on the memory store.
import { describe, expect, it } from "vitest";
import type { Connection, SessionAttach } from "../../services/router/link.js";
import { recordingClient as client, sessionRouter } from "../helpers/session-client.js";

describe("an edge's connection attaching its session again", () => {
  // Without a resume after it: an attach the edge sent again behind its replay's resume.
  for (const [clean, resumeAgain] of [[false, true], [true, true], [false, false]]) {
    it(`${clean ? "clean" : "persistent"}${resumeAgain ? "" : ", no resume after it"}: not taken over, keeps its subscription`, async () => {
      const { service } = sessionRouter();
      const conn: Connection = { edgeId: "e1", cid: 5, echo: true };
      const req: SessionAttach = { conn, clientId: "again", account: "$G", clean, subscribe: undefined, will: undefined };
      const first = client();
      await service.attach(req, first.c);
      service.resume(conn);
      service.subscribe(conn, [{ filter: "r/t", qos: 1 }]);
      // The same connection again, as an edge re-attaching sends it: attach, its subscriptions, resume.
      const second = client();
      const again = service.attach({ ...req, conn: { ...conn } }, second.c);
      if (clean) service.subscribe({ ...conn }, [{ filter: "r/t", qos: 1 }]);
      if (resumeAgain) service.resume({ ...conn });
      expect((await again).present).toBe(true);
      expect(first.closed()).toBe(0);
      const pub: Connection = { edgeId: "e2", cid: 1, echo: true };
      await service.attach({ conn: pub, clientId: "pub", account: "$G", clean: true, subscribe: undefined, will: undefined }, client().c);
      await service.publish(pub, "r.t", { topic: "r/t", payload: Buffer.from("m"), qos: 1, retain: false });
      expect(second.got).toEqual(["m"]);
      expect(first.got).toEqual([]);
      await service.close();
    });
  }
});
