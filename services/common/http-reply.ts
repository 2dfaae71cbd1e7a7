// Plain HTTP answers of the monitoring listeners (the edge's and the router's).
import type http from "node:http";

export function send(res: http.ServerResponse, status: number, type: string, body: string): void {
  res.writeHead(status, { "Content-Type": type, "Content-Length": Buffer.byteLength(body) });
  res.end(body);
}

export function sendJson(res: http.ServerResponse, body: unknown, status = 200): void {
  send(res, status, "application/json", JSON.stringify(body, null, 2) + "\n");
}
