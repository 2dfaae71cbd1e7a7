// Where an edge's routers are: a fixed list (`edge { routers: [...] }`, tried in order), or every
// A and AAAA record of a DNS name (`discovery { dns: "name:port" }`), resolved again every
// `refresh` so that routers added later are used when the edge re-attaches. Queries go to the
// system's name servers (/etc/resolv.conf), or to MESHBROKER_DNS_SERVERS ("ip[:port],..."),
// without a cache of their own. A failed or empty resolution keeps the last known list. Or the
// ready endpoints of a Kubernetes Service (`discovery { kubernetes { service } }`), watched.
import { existsSync, readFileSync } from "node:fs";
import { Resolver } from "node:dns/promises";
import { hostPort } from "../../common/address.js";
import { DEFAULTS } from "../../common/config/options.js";

const DEFAULT_PORT = DEFAULTS.router.port;

export interface RouterSource {
  /** The router addresses (host:port) known now; may be empty until a first resolution. */
  current(): string[];
  /** Where to start in the list: the first for a fixed list (the operator's preference),
   *  a random one for DNS (records come in no meaningful order: spread the edges). */
  readonly randomStart: boolean;
  close(): void;
}

export function staticRouters(routers: { host: string; port: number }[]): RouterSource {
  const list = routers.map(({ host, port }) => hostPort(host, port));
  return { current: () => list, randomStart: false, close() {} };
}

export class DnsRouters implements RouterSource {
  readonly randomStart = true;
  private list: string[] = [];
  private readonly resolver = new Resolver();
  private readonly timer: NodeJS.Timeout;
  private lastError = "";

  constructor(private readonly name: { host: string; port: number }, refreshMs: number,
              private readonly log: { notice(m: string): void; warn(m: string): void }) {
    const servers = process.env.MESHBROKER_DNS_SERVERS;
    if (servers) this.resolver.setServers(servers.split(",").map((s) => s.trim()).filter(Boolean));
    this.timer = setInterval(() => void this.resolve(), refreshMs).unref();
  }

  current(): string[] {
    return this.list;
  }

  /** One resolution: A and AAAA records, sorted so that a change is one comparison. */
  async resolve(): Promise<void> {
    const { host, port } = this.name;
    const [v4, v6] = await Promise.allSettled([this.resolver.resolve4(host), this.resolver.resolve6(host)]);
    const addrs = [...(v4.status === "fulfilled" ? v4.value : []), ...(v6.status === "fulfilled" ? v6.value : [])];
    if (addrs.length === 0) {
      const why = v4.status === "rejected" ? (v4.reason as Error).message : "no A or AAAA records";
      if (why !== this.lastError) this.log.warn(`discovery: ${hostPort(host, port)}: ${why}${this.list.length > 0 ? "; keeping the last known routers" : ""}`);
      this.lastError = why;
      return;
    }
    this.lastError = "";
    const list = addrs.map((a) => hostPort(a, port)).sort();
    if (list.join() === this.list.join()) return;
    this.list = list;
    this.log.notice(`discovery: ${hostPort(host, port)} resolves to ${list.join(", ")}`);
  }

  close(): void {
    clearInterval(this.timer);
    this.resolver.cancel();
  }
}

/** `discovery { kubernetes { service, namespace, port } }`. */
export interface KubernetesDiscovery { service: string; namespace?: string; port?: number }

const SA_NAMESPACE = "/var/run/secrets/kubernetes.io/serviceaccount/namespace";
/** The port of a slice used when the config names none: this name, or the slice's only port. */
const PORT_NAME = "grpc";
const BACKOFF_MS = [250, 500, 1_000, 2_000, 5_000, 10_000];
/** The API server ends a watch after this long (timeoutSeconds); the source then watches again. */
const WATCH_SECONDS = 300;

interface Slice {
  metadata?: { name?: string; resourceVersion?: string };
  endpoints?: { addresses?: string[]; conditions?: { ready?: boolean | null } }[] | null;
  ports?: { name?: string | null; port?: number | null }[] | null;
}

/**
 * The ready endpoints of a Service's EndpointSlices (`discovery.k8s.io/v1`, label
 * `kubernetes.io/service-name`): a list, then a watch from the list's resourceVersion; a watch
 * that fails or answers 410 Gone (its resourceVersion is too old) leads to a new list, after a
 * backoff when it failed. Credentials: the file of env KUBECONFIG when set, else the pod's
 * service account (in-cluster). @kubernetes/client-node is loaded only here, so other roles
 * never pay for it.
 */
export class KubernetesRouters implements RouterSource {
  readonly randomStart = true;
  private readonly slices = new Map<string, string[]>();
  private list: string[] = [];
  private resourceVersion = "";
  private watchAbort: AbortController | undefined;
  private retryTimer: NodeJS.Timeout | undefined;
  /** Counts lists and watches: a callback of an older one is ignored. */
  private generation = 0;
  private failures = 0;
  private lastError = "";
  private closed = false;
  private readonly what: string;

  private constructor(private readonly cfg: KubernetesDiscovery & { namespace: string },
                      private readonly api: { list(): Promise<{ metadata?: { resourceVersion?: string }; items: Slice[] }>;
                        watch(rv: string, onEvent: (type: string, obj: unknown) => void, done: (err: unknown) => void): Promise<AbortController> },
                      private readonly log: { notice(m: string): void; warn(m: string): void }) {
    this.what = `kubernetes service ${cfg.namespace}/${cfg.service}`;
  }

  /** Loads the credentials (an Error names what is missing) and makes the first list (a failure is logged and retried). */
  static async start(cfg: KubernetesDiscovery, log: { notice(m: string): void; warn(m: string): void }): Promise<KubernetesRouters> {
    const k8s = await import("@kubernetes/client-node");
    const kc = new k8s.KubeConfig();
    let namespace = cfg.namespace;
    if (process.env.KUBECONFIG) {
      kc.loadFromDefault();
      namespace ??= kc.getContextObject(kc.getCurrentContext())?.namespace;
    } else {
      if (!process.env.KUBERNETES_SERVICE_HOST) {
        throw new Error("kubernetes discovery needs in-cluster credentials (KUBERNETES_SERVICE_HOST and a service account token) or env KUBECONFIG");
      }
      kc.loadFromCluster();
      namespace ??= existsSync(SA_NAMESPACE) ? readFileSync(SA_NAMESPACE, "utf8").trim() : undefined;
    }
    namespace ??= "default";
    const labelSelector = `kubernetes.io/service-name=${cfg.service}`;
    const discovery = kc.makeApiClient(k8s.DiscoveryV1Api);
    const watcher = new k8s.Watch(kc);
    const source = new KubernetesRouters({ ...cfg, namespace }, {
      list: () => discovery.listNamespacedEndpointSlice({ namespace: namespace!, labelSelector }),
      watch: (resourceVersion, onEvent, done) => watcher.watch(`/apis/discovery.k8s.io/v1/namespaces/${namespace}/endpointslices`,
        { labelSelector, resourceVersion, allowWatchBookmarks: true, timeoutSeconds: WATCH_SECONDS }, onEvent, done),
    }, log);
    await source.relist();
    return source;
  }

  current(): string[] {
    return this.list;
  }

  close(): void {
    this.closed = true;
    this.generation++;
    clearTimeout(this.retryTimer);
    this.watchAbort?.abort();
  }

  private async relist(): Promise<void> {
    const gen = ++this.generation;
    this.watchAbort?.abort();
    let res;
    try {
      res = await this.api.list();
    } catch (err) {
      if (gen === this.generation) this.retry(`list: ${errorText(err)}`);
      return;
    }
    if (gen !== this.generation) return;
    this.slices.clear();
    for (const s of res.items) this.setSlice(s);
    this.publish();
    this.resourceVersion = res.metadata?.resourceVersion ?? "";
    void this.watch(gen);
  }

  private async watch(gen: number): Promise<void> {
    const started = Date.now();
    let events = 0;
    const onEvent = (type: string, obj: unknown) => {
      if (gen !== this.generation) return;
      const s = obj as Slice & { code?: number; message?: string };
      if (type === "ERROR") {
        // 410 Gone: the resourceVersion is older than the API server keeps; anything else: list again too.
        if (s.code === 410) void this.relist();
        else this.retry(`watch: ${s.message ?? JSON.stringify(obj)}`);
        return;
      }
      if (s.metadata?.resourceVersion) this.resourceVersion = s.metadata.resourceVersion;
      events++;
      if (type === "BOOKMARK") return;
      if (type === "DELETED") this.slices.delete(s.metadata?.name ?? "");
      else this.setSlice(s);
      this.failures = 0;
      this.publish();
    };
    const done = (err: unknown) => {
      if (gen !== this.generation) return;
      const status = (err as { statusCode?: number } | null)?.statusCode;
      if (status === 410) void this.relist();
      else if (err) this.retry(`watch: ${errorText(err)}`);
      // The API server ended the watch (timeoutSeconds): go on from where it stopped, unless it
      // ends at once with nothing said (that would be a loop).
      else if (events > 0 || Date.now() - started > 1_000) void this.watch(gen);
      else this.retry("watch: the API server closed the watch at once");
    };
    try {
      const abort = await this.api.watch(this.resourceVersion, onEvent, done);
      if (gen === this.generation) this.watchAbort = abort;
      else abort.abort();
    } catch (err) {
      done(err);
    }
  }

  /** A list again after a backoff, growing with consecutive failures; the last routers stay in use. */
  private retry(why: string): void {
    if (this.closed) return;
    const gen = ++this.generation;
    this.watchAbort?.abort();
    const delay = BACKOFF_MS[Math.min(this.failures++, BACKOFF_MS.length - 1)];
    if (why !== this.lastError) {
      this.log.warn(`discovery: ${this.what}: ${why}; listing again in ${delay} ms${this.list.length > 0 ? ", keeping the last known routers" : ""}`);
    }
    this.lastError = why;
    clearTimeout(this.retryTimer);
    this.retryTimer = setTimeout(() => { if (gen === this.generation) void this.relist(); }, delay).unref();
  }

  private setSlice(s: Slice): void {
    const port = this.cfg.port ?? s.ports?.find((p) => p.name === PORT_NAME)?.port
      ?? (s.ports?.length === 1 ? s.ports[0].port : undefined) ?? DEFAULT_PORT;
    const ready = (s.endpoints ?? []).filter((e) => e.conditions?.ready !== false); // unset = ready (the API's rule)
    this.slices.set(s.metadata?.name ?? "", ready.flatMap((e) => (e.addresses ?? []).map((a) => hostPort(a, port))));
  }

  private publish(): void {
    this.lastError = "";
    const list = [...new Set([...this.slices.values()].flat())].sort();
    if (list.join() === this.list.join()) return;
    this.list = list;
    this.log.notice(`discovery: ${this.what} has ready routers ${list.length > 0 ? list.join(", ") : "(none)"}`);
  }
}

function errorText(err: unknown): string {
  const e = err as { code?: number; statusCode?: number; message?: string };
  const code = e?.code ?? e?.statusCode;
  const msg = (e?.message ?? String(err)).split("\n")[0];
  return typeof code === "number" && !msg.includes(String(code)) ? `HTTP ${code}: ${msg}` : msg;
}
