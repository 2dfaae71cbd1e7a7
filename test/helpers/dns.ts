// A real DNS server for discovery tests: dnsmasq in the foreground on 127.0.0.1 and a free port,
// answering only for the names of a hosts file it re-reads on SIGHUP (no upstream, no
// /etc/hosts). Readiness and reloads are dnsmasq's own "read <file> - N names" lines. Runs as
// root or unprivileged (checked as nobody): `--user` is the current user, so nothing changes.
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import { freePort, spawnCommand } from "./process.js";

export const DNSMASQ_BIN = process.env.DNSMASQ_BIN ?? "/usr/sbin/dnsmasq";

export interface DnsServer {
  /** "127.0.0.1:port", for MESHBROKER_DNS_SERVERS. */
  address: string;
  /** Replaces every record: name -> its A (or AAAA) addresses; resolves once dnsmasq re-read them. */
  setRecords(records: Record<string, string[]>): Promise<void>;
  stop(): Promise<void>;
}

export async function startDns(records: Record<string, string[]>, timeoutMs = 5_000): Promise<DnsServer> {
  const dir = await mkdtemp(path.join(os.tmpdir(), "meshbroker-dns-"));
  const hosts = path.join(dir, "hosts");
  const write = (r: Record<string, string[]>) =>
    writeFile(hosts, Object.entries(r).flatMap(([name, ips]) => ips.map((ip) => `${ip} ${name}\n`)).join(""));
  await write(records);
  const port = await freePort();
  const user = os.userInfo().username;
  const proc = spawnCommand(DNSMASQ_BIN, [
    "--keep-in-foreground", "--no-resolv", "--no-hosts", `--addn-hosts=${hosts}`, "--no-poll",
    "--listen-address=127.0.0.1", "--bind-interfaces", `--port=${port}`, `--user=${user}`, "--pid-file=",
    "--local-ttl=0", "--log-facility=-",
  ]);
  const reread = new RegExp(`read ${hosts.replace(/[.*+?^${}()|[\]\\/]/g, "\\$&")} - \\d+ names`);
  try {
    await proc.waitForLine(reread, timeoutMs);
  } catch (err) {
    await rm(dir, { recursive: true, force: true });
    throw err;
  }
  return {
    address: `127.0.0.1:${port}`,
    async setRecords(r) {
      await write(r);
      const since = proc.mark();
      proc.signal("SIGHUP");
      await proc.waitForLine(reread, timeoutMs, { since });
    },
    async stop() {
      await proc.kill();
      await rm(dir, { recursive: true, force: true });
    },
  };
}
