// Node's floor, the bench's "node" column: a server that does only the handshake of the connect
// and idle cases, on the same Node sockets meshbroker uses (net, tls, and the ws library), with no
// broker behind it. NATS: INFO on connect, PONG to each PING; WebSocket: the same, in binary
// frames; MQTT: CONNACK to the CONNECT, PINGRESP to a PINGREQ. What meshbroker costs beyond this
// column is the broker's own; what this column costs beyond a reference server is the platform's.
//
//   node dist/test/bench/node-floor.js LISTENER HOST NATS_PORT [WS_OR_MQTT_PORT] [CERT KEY]
//
// LISTENER: nats, ws, mqtt, nats-tls, ws-tls, mqtt-tls. The NATS port always answers with a
// plain INFO (the bench's readiness probe); with nats-tls, TLS starts after it, as nats-server 2.9.
import fs from "node:fs";
import https from "node:https";
import net from "node:net";
import tls from "node:tls";
import { WebSocketServer } from "ws";

const [listener, host, natsPort, ...rest] = process.argv.slice(2);
const secure = listener?.endsWith("-tls") ?? false;
const kind = listener?.replace(/-tls$/, "");
const otherPort = kind === "nats" ? undefined : rest.shift();
const [certFile, keyFile] = rest;
if (!["nats", "ws", "mqtt"].includes(kind ?? "") || !host || !natsPort || (kind !== "nats" && !otherPort) || (secure && !keyFile)) {
  process.stderr.write("usage: node-floor.js nats|ws|mqtt[-tls] HOST NATS_PORT [WS_OR_MQTT_PORT] [CERT KEY]\n");
  process.exit(2);
}
const credentials = secure ? { cert: fs.readFileSync(certFile), key: fs.readFileSync(keyFile) } : undefined;

const info = (tlsRequired: boolean): Buffer =>
  Buffer.from(`INFO {"server_id":"node-floor","version":"0.0.0","proto":1,"headers":true,"max_payload":1048576` +
    `${tlsRequired ? ',"tls_required":true' : ""}}\r\n`, "latin1");
const PONG = Buffer.from("PONG\r\n", "latin1");
const CONNACK = Buffer.from([0x20, 0x02, 0x00, 0x00]);
const PINGRESP = Buffer.from([0xd0, 0x00]);

/** Handshakes arrive whole in one read here (a few dozen bytes on loopback): no parser needed. */
const pings = (chunk: Buffer): number => {
  let n = 0;
  for (let at = chunk.indexOf("PING\r\n"); at >= 0; at = chunk.indexOf("PING\r\n", at + 6)) n++;
  return n;
};

function natsClient(socket: net.Socket | tls.TLSSocket): void {
  socket.on("error", () => {});
  socket.on("data", (chunk: Buffer) => {
    for (let n = pings(chunk); n > 0; n--) socket.write(PONG);
  });
}

// nats-tls: a tls.Server that does not listen runs the handshake of each socket after its INFO
// (one secure context for all, as meshbroker's NATS listener does it).
const natsTls = kind === "nats" && secure ? tls.createServer(credentials!, natsClient) : undefined;
net.createServer({ noDelay: true }, (socket) => {
  socket.write(info(natsTls !== undefined));
  if (!natsTls) return natsClient(socket);
  socket.on("error", () => {});
  natsTls.emit("connection", socket);
}).listen(Number(natsPort), host);

if (kind === "mqtt") {
  const onClient = (socket: net.Socket): void => {
    let connected = false;
    socket.on("error", () => {});
    socket.on("data", (chunk: Buffer) => {
      if (!connected) {
        connected = true;
        socket.write(CONNACK);
      } else if (chunk[0] === 0xc0) {
        socket.write(PINGRESP);
      }
    });
  };
  const server = secure ? tls.createServer(credentials!, onClient) : net.createServer({ noDelay: true }, onClient);
  server.listen(Number(otherPort), host);
}

if (kind === "ws") {
  const http = secure ? https.createServer(credentials!) : undefined;
  const wss = http ? new WebSocketServer({ server: http, perMessageDeflate: false })
    : new WebSocketServer({ host, port: Number(otherPort), perMessageDeflate: false });
  wss.on("connection", (ws) => {
    ws.on("error", () => {});
    ws.send(info(false));
    ws.on("message", (data: Buffer) => {
      for (let n = pings(data); n > 0; n--) ws.send(PONG);
    });
  });
  http?.listen(Number(otherPort), host);
}

for (const sig of ["SIGTERM", "SIGINT"] as const) process.on(sig, () => process.exit(0));
