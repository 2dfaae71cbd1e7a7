// Bounds MQTT packets before mqtt-packet buffers them: mqtt-packet keeps every byte of a packet
// until its announced remaining length (up to 256 MB) has arrived. This walks the fixed headers
// of the byte stream (type byte, then the 1-4 byte remaining length) and skips bodies, so a
// packet announcing more than the limit is refused when its header arrives. It also frames the
// stream: takeWhole() gives whole packets only, for the decoder all connections share, and keeps
// the bytes of an unfinished packet until the rest arrives.

/** The CONNECT packet (and anything sent before the CONNACK) may be this large. */
export const MQTT_MAX_CONNECT_PACKET = 64 * 1024;
/** After CONNECT a packet may hold max_payload plus this much (topic, ids, properties). */
export const MQTT_PACKET_MARGIN = 64 * 1024;

export const PACKET_OK = -1;
/** A remaining length longer than 4 bytes [MQTT-2.2.3]. */
export const PACKET_MALFORMED = -2;

export class PacketSizeGuard {
  /** Body bytes of the current packet still to skip. */
  private left = 0;
  /** Remaining-length bytes read of the current header; -1 = at a packet's first byte. */
  private lenBytes = -1;
  private len = 0;
  private mul = 1;
  /** After check(): the offset in the chunk where its whole packets end (the chunk's length when
   *  it ends at a packet boundary; 0 when no packet was completed in it). */
  whole = 0;
  /** The received bytes of the packet not complete yet. */
  private partial: Buffer[] | undefined;

  constructor(public limit: number) {}

  /** After check(chunk): the whole packets received so far and not taken (undefined: none yet). */
  takeWhole(chunk: Buffer): Buffer | undefined {
    const whole = this.whole;
    if (whole === chunk.length && !this.partial) return chunk;
    let packets: Buffer | undefined;
    if (whole > 0) {
      const head = chunk.subarray(0, whole);
      packets = this.partial ? Buffer.concat([...this.partial, head]) : head;
      this.partial = undefined;
    }
    if (whole < chunk.length) (this.partial ??= []).push(chunk.subarray(whole));
    return packets;
  }

  /** PACKET_OK, PACKET_MALFORMED, or the remaining length a packet announced over the limit. */
  check(chunk: Buffer): number {
    const n = chunk.length;
    let i = 0;
    this.whole = 0;
    while (i < n) {
      if (this.left > 0) {
        const skip = Math.min(this.left, n - i);
        this.left -= skip;
        i += skip;
        if (this.left === 0) this.whole = i;
        continue;
      }
      if (this.lenBytes < 0) { // the packet type and flags
        this.lenBytes = 0;
        this.len = 0;
        this.mul = 1;
        i++;
        continue;
      }
      const b = chunk[i++];
      this.len += (b & 0x7f) * this.mul;
      this.mul *= 128;
      this.lenBytes++;
      if (this.len > this.limit) return this.len;
      if ((b & 0x80) === 0) {
        this.left = this.len;
        this.lenBytes = -1;
        if (this.len === 0) this.whole = i;
      } else if (this.lenBytes === 4) {
        return PACKET_MALFORMED;
      }
    }
    return PACKET_OK;
  }
}
