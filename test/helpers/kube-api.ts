// A stand-in for the Kubernetes API server, serving EndpointSlices (discovery.k8s.io/v1) the way
// the real one does, for the edges' Kubernetes discovery. The API server is the one component
// of that path that cannot run on these machines (no cluster); everything else (edge, routers,
// @kubernetes/client-node) is real. What it does as the real API does:
// - GET .../namespaces/<ns>/endpointslices?labelSelector=kubernetes.io/service-name=<s>: an
//   EndpointSliceList with metadata.resourceVersion;
// - the same with watch=true&resourceVersion=N: a chunked stream of JSON lines
//   {"type":"ADDED"|"MODIFIED"|"DELETED","object":slice}, every change after N, then the
//   changes as they happen; N older than the kept history gets one ERROR event with a Status
//   of code 410 (Gone, "too old resource version") and the end of the stream;
// - a request without the bearer token gets 401.
// Clients find it through a kubeconfig file (env KUBECONFIG), plain http (no CA to make).
import { createServer, type IncomingMessage, type ServerResponse } from "node:http";
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import type { AddressInfo } from "node:net";
import os from "node:os";
import path from "node:path";

export interface KubeEndpoint { address: string; ready: boolean }

export interface KubeApi {
  /** The kubeconfig file to put in env KUBECONFIG. */
  kubeconfig: string;
  /** Creates or replaces slice `name` of `service` (one port, named "grpc"). */
  setSlice(name: string, service: string, port: number, endpoints: KubeEndpoint[]): void;
  deleteSlice(name: string): void;
  /** Forgets the change history (as etcd compaction does) and ends every open watch: a watch
   *  resumed from an older resourceVersion gets 410 Gone. */
  compact(): void;
  /** Requests served so far, as "GET list" / "GET watch rv=N". */
  requests: string[];
  /** Answers every request with this HTTP status (a Status body) until set back to undefined. */
  failWith: number | undefined;
  stop(): Promise<void>;
}

const TOKEN = "stand-in-token";
const NAMESPACE = "meshbroker";

interface Event { rv: number; type: "ADDED" | "MODIFIED" | "DELETED"; object: object }

export async function startKubeApi(): Promise<KubeApi> {
  const slices = new Map<string, { service: string; object: object }>();
  let rv = 100;
  let history: Event[] = [];
  let oldestRv = rv;
  const watches = new Set<{ service: string; res: ServerResponse }>();

  const sliceObject = (name: string, service: string, port: number, endpoints: KubeEndpoint[], version: number) => ({
    apiVersion: "discovery.k8s.io/v1", kind: "EndpointSlice", addressType: "IPv4",
    metadata: { name, namespace: NAMESPACE, resourceVersion: String(version), labels: { "kubernetes.io/service-name": service } },
    endpoints: endpoints.map((e) => ({ addresses: [e.address], conditions: { ready: e.ready, serving: e.ready, terminating: false } })),
    ports: [{ name: "grpc", port, protocol: "TCP" }],
  });
  const emit = (service: string, e: Event) => {
    history.push(e);
    for (const w of watches) if (w.service === service) w.res.write(JSON.stringify({ type: e.type, object: e.object }) + "\n");
  };

  const server = createServer((req: IncomingMessage, res: ServerResponse) => {
    const url = new URL(req.url ?? "/", "http://x");
    const m = /^\/apis\/discovery\.k8s\.io\/v1\/namespaces\/([^/]+)\/endpointslices$/.exec(url.pathname);
    const selector = /^kubernetes\.io\/service-name=(.+)$/.exec(url.searchParams.get("labelSelector") ?? "");
    const json = (code: number, body: object) => {
      res.writeHead(code, { "content-type": "application/json" });
      res.end(JSON.stringify(body));
    };
    if (req.headers.authorization !== `Bearer ${TOKEN}`) return json(401, status(401, "Unauthorized", "Unauthorized"));
    if (api.failWith !== undefined) return json(api.failWith, status(api.failWith, "ServiceUnavailable", "the stand-in is failing on purpose"));
    if (req.method !== "GET" || !m || m[1] !== NAMESPACE || !selector) return json(404, status(404, "NotFound", `no route ${req.url}`));
    const service = selector[1];
    if (url.searchParams.get("watch") !== "true") {
      api.requests.push("GET list");
      const items = [...slices.values()].filter((s) => s.service === service).map((s) => s.object);
      return json(200, { apiVersion: "discovery.k8s.io/v1", kind: "EndpointSliceList", metadata: { resourceVersion: String(rv) }, items });
    }
    const from = Number(url.searchParams.get("resourceVersion") ?? rv);
    api.requests.push(`GET watch rv=${from}`);
    res.writeHead(200, { "content-type": "application/json", "transfer-encoding": "chunked" });
    if (from < oldestRv) {
      res.end(JSON.stringify({ type: "ERROR", object: status(410, "Expired", `too old resource version: ${from} (${oldestRv})`) }) + "\n");
      return;
    }
    for (const e of history) {
      if (e.rv > from && (e.object as { metadata: { labels: Record<string, string> } }).metadata.labels["kubernetes.io/service-name"] === service) {
        res.write(JSON.stringify({ type: e.type, object: e.object }) + "\n");
      }
    }
    const w = { service, res };
    watches.add(w);
    res.on("close", () => watches.delete(w));
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const { port } = server.address() as AddressInfo;
  const dir = await mkdtemp(path.join(os.tmpdir(), "meshbroker-kube-"));
  const kubeconfig = path.join(dir, "kubeconfig");
  await writeFile(kubeconfig, [
    "apiVersion: v1", "kind: Config", "current-context: test",
    "clusters:", "- name: test", "  cluster:", `    server: http://127.0.0.1:${port}`,
    "    insecure-skip-tls-verify: true", // client-node refuses plain http otherwise
    "users:", "- name: test", "  user:", `    token: ${TOKEN}`,
    "contexts:", "- name: test", "  context:", "    cluster: test", "    user: test", `    namespace: ${NAMESPACE}`, "",
  ].join("\n"));

  const api: KubeApi = {
    kubeconfig,
    requests: [],
    failWith: undefined,
    setSlice(name, service, p, endpoints) {
      const type = slices.has(name) ? "MODIFIED" : "ADDED";
      const object = sliceObject(name, service, p, endpoints, ++rv);
      slices.set(name, { service, object });
      emit(service, { rv, type, object });
    },
    deleteSlice(name) {
      const s = slices.get(name);
      if (!s) return;
      slices.delete(name);
      const object = { ...s.object, metadata: { ...(s.object as { metadata: object }).metadata, resourceVersion: String(++rv) } };
      emit(s.service, { rv, type: "DELETED", object });
    },
    compact() {
      history = [];
      oldestRv = ++rv;
      for (const w of watches) w.res.end();
      watches.clear();
    },
    async stop() {
      for (const w of watches) w.res.destroy();
      server.closeAllConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
      await rm(dir, { recursive: true, force: true });
    },
  };
  return api;
}

function status(code: number, reason: string, message: string): object {
  return { kind: "Status", apiVersion: "v1", metadata: {}, status: "Failure", message, reason, code };
}
