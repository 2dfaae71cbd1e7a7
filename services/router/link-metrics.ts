// Counters every link (edge↔router, router↔router) keeps in plain fields and Prometheus reads at
// scrape: frames and ops each way, so ops per frame (the batching achieved) is ops/frames.
import { Counter, type Registry } from "prom-client";

export interface LinkCounts {
  readonly framesIn: number;
  readonly opsIn: number;
  readonly framesOut: number;
  readonly opsOut: number;
}

/**
 * meshbroker_<kind>_frames_total and meshbroker_<kind>_ops_total, labelled by the link's peer
 * and direction. A link that is replaced starts again from 0, which Prometheus reads as a reset.
 */
export function linkCounters(register: Registry, kind: string, what: string,
                             links: () => { name: string; link: LinkCounts }[]): void {
  const counter = (unit: "frames" | "ops", read: (l: LinkCounts, dir: "in" | "out") => number) => new Counter({
    name: `meshbroker_${kind}_${unit}_total`, labelNames: ["peer", "direction"], registers: [register],
    help: `${unit === "frames" ? "Frames" : "Operations"} on each ${what} link, by direction (ops/frames: the batch size).`,
    collect() {
      this.reset();
      for (const { name, link } of links()) {
        this.inc({ peer: name, direction: "in" }, read(link, "in"));
        this.inc({ peer: name, direction: "out" }, read(link, "out"));
      }
    },
  });
  counter("frames", (l, dir) => (dir === "in" ? l.framesIn : l.framesOut));
  counter("ops", (l, dir) => (dir === "in" ? l.opsIn : l.opsOut));
}
