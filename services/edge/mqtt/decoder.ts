// One mqtt-packet parser for all MQTT connections. A parser of its own cost each connection
// about 1.5 KB while idle (a BufferList duplex stream with its two stream states, two listeners,
// the packet under way and the CONNECT it last read). Connections hand it whole packets only
// (PacketSizeGuard.whole says where they end) and keep the bytes of an unfinished packet
// themselves, so the parser is back at a packet boundary after every call.
import mqtt, { type Packet } from "mqtt-packet";
import type { MqttLevel } from "./reason-codes.js";

/** Where decoded packets go (the connection whose bytes are decoded). */
export interface PacketSink {
  decoded(packet: Packet): void;
  malformed(message: string): void;
}

/** What mqtt-packet encodes and decodes with, one object per level. */
export const ENCODING: Readonly<Record<MqttLevel, { protocolVersion: MqttLevel }>> = {
  4: { protocolVersion: 4 },
  5: { protocolVersion: 5 },
};

/** mqtt-packet's parser, with the internals used here (settings: it replaces them with a CONNECT
 *  it reads, so a CONNECT's level applies to the packets after it). */
type Parser = ReturnType<typeof mqtt.parser> & {
  settings: { protocolVersion?: number };
  error: Error | null;
  _list: { length: number };
};

class Decoder {
  readonly parser = mqtt.parser(ENCODING[4]) as Parser;
  sink: PacketSink | undefined;

  constructor() {
    this.parser.on("packet", (p: Packet) => this.sink!.decoded(p));
    this.parser.on("error", (err: Error) => this.sink!.malformed(err.message));
  }
}

/** The parser not in use; undefined while a decode runs (a packet handler that decoded for
 *  another connection, which none does, would get a parser of its own). */
let idle: Decoder | undefined = new Decoder();

/** Decodes `packets` (whole packets) at `level`, handing each to `sink` synchronously. */
export function decodePackets(packets: Buffer, level: MqttLevel, sink: PacketSink): void {
  const d = idle ?? new Decoder();
  idle = undefined;
  d.sink = sink;
  const parser = d.parser;
  parser.settings = ENCODING[level];
  let clean = false;
  try {
    parser.parse(packets);
    clean = !parser.error && parser._list.length === 0;
  } finally {
    parser.settings = ENCODING[4]; // not the CONNECT (its password) it may have read
    d.sink = undefined;
    // After a malformed packet or a throwing handler, bytes or a half-handled packet are left
    // (and positions _resetState does not reset): the next decode gets a new parser.
    idle = clean ? d : new Decoder();
  }
}
