// A client connection's reading, stopped while the cluster link is congested (RouterLink.stall),
// as nats-server stalls a fast producer: the backlog then waits in the client's socket (TCP
// backpressure up to the client), not in the edge's heap. NATS and MQTT clients, over TCP, TLS
// and WebSocket alike, check after input that published.
import type { RouterLink } from "../router/link.js";

export class ReadStall {
  /**
   * After input that published: stops `client` reading while `link` is congested. Returns its
   * ReadStall (`stall`, or one made now: a connection gets one on a cluster link only).
   */
  static after(stall: ReadStall | undefined, link: Pick<RouterLink, "stall">, client: { readonly closed: boolean },
               transport: { pause(): void; resume(): void }): ReadStall | undefined {
    if (link.stall === undefined) return stall;
    stall ??= new ReadStall(client, transport);
    stall.check(link);
    return stall;
  }

  private stalled = false;
  private readonly resume = (): void => {
    this.stalled = false;
    if (!this.client.closed) this.transport.resume();
  };

  constructor(private readonly client: { readonly closed: boolean }, private readonly transport: { pause(): void; resume(): void }) {}

  /** Stops reading if `link` is congested; reading resumes once it drains (bounded: writer.ts). */
  private check(link: Pick<RouterLink, "stall">): void {
    if (this.stalled || link.stall?.(this.resume) !== true) return;
    this.stalled = true;
    this.transport.pause();
  }
}
