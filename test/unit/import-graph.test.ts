// The module structure as a test: services/ has no import cycle (type-only imports count: a
// cycle of types still couples the modules), the edge reaches the store only through the
// router link, and the embedded broker loads no cluster client.
import { spawnSync } from "node:child_process";
import { existsSync, readdirSync, readFileSync } from "node:fs";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { describe, expect, it } from "vitest";

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "../../services");
const IMPORT = /(?:^|\n)\s*(?:import|export)\b[^;]*?\bfrom\s*["'](\.{1,2}\/[^"']+)["']|\bimport\(\s*["'](\.{1,2}\/[^"']+)["']\s*\)/g;

/** Every .ts file under services/, as paths relative to it, with its relative imports resolved. */
function importGraph(): Map<string, string[]> {
  const graph = new Map<string, string[]>();
  const files = readdirSync(ROOT, { recursive: true, encoding: "utf8" }).filter((f) => f.endsWith(".ts"));
  for (const file of files) {
    const text = readFileSync(path.join(ROOT, file), "utf8");
    const deps: string[] = [];
    for (const m of text.matchAll(IMPORT)) {
      const spec = (m[1] ?? m[2]).replace(/\.js$/, ".ts");
      deps.push(path.relative(ROOT, path.resolve(ROOT, path.dirname(file), spec)));
    }
    graph.set(file, deps);
  }
  return graph;
}

/** The strongly connected components with more than one module, or one importing itself. */
function cycles(graph: Map<string, string[]>): string[][] {
  let index = 0;
  const idx = new Map<string, number>(), low = new Map<string, number>(), onStack = new Set<string>();
  const stack: string[] = [], out: string[][] = [];
  const visit = (v: string): void => {
    idx.set(v, index); low.set(v, index); index++;
    stack.push(v); onStack.add(v);
    for (const w of graph.get(v) ?? []) {
      if (!graph.has(w)) continue;
      if (!idx.has(w)) { visit(w); low.set(v, Math.min(low.get(v)!, low.get(w)!)); }
      else if (onStack.has(w)) low.set(v, Math.min(low.get(v)!, idx.get(w)!));
    }
    if (low.get(v) === idx.get(v)) {
      const scc: string[] = [];
      let w: string;
      do { w = stack.pop()!; onStack.delete(w); scc.push(w); } while (w !== v);
      if (scc.length > 1 || graph.get(v)!.includes(v)) out.push(scc.sort());
    }
  };
  for (const v of graph.keys()) if (!idx.has(v)) visit(v);
  return out;
}

describe("import graph of services/", () => {
  const graph = importGraph();

  it("finds the modules and their imports", () => {
    expect(graph.get("embedded.ts")).toContain(path.join("edge", "server.ts"));
  });

  it("has no import cycle", () => {
    expect(cycles(graph)).toEqual([]);
  });

  it("detects a cycle when there is one", () => {
    expect(cycles(new Map([["a.ts", ["b.ts"]], ["b.ts", ["a.ts"]], ["c.ts", ["a.ts"]]]))).toEqual([["a.ts", "b.ts"]]);
  });

  // MQTT durable state is the router side's session service: the edge reaches it only through
  // the link contract (SessionLink), never the store.
  it("no module under edge/ imports router/store", () => {
    const reaching = [...graph].filter(([file]) => file.startsWith(`edge${path.sep}`))
      .flatMap(([file, deps]) => deps.filter((d) => d.startsWith(path.join("router", "store"))).map((d) => `${file} → ${d}`));
    expect(reaching).toEqual([]);
  });

  it("no module under edge/ imports the router side beyond the link contract", () => {
    const allowed = new Set([path.join("router", "link.ts")]);
    const reaching = [...graph].filter(([file]) => file.startsWith(`edge${path.sep}`))
      .flatMap(([file, deps]) => deps.filter((d) => d.startsWith(`router${path.sep}`) && !allowed.has(d)).map((d) => `${file} → ${d}`));
    expect(reaching).toEqual([]);
  });

  // Every full GC marks the heap of every module loaded: gRPC and the Redis client (about 4 MB)
  // are loaded by the roles that use them (cli.ts, store/index.ts), not by the embedded broker.
  it("the embedded broker loads neither gRPC nor the Redis or LevelDB clients", () => {
    const dist = path.resolve(ROOT, "../dist/services");
    expect(existsSync(path.join(dist, "embedded.js")), "dist/ is built (make build)").toBe(true);
    /** The cluster clients loaded once the command and `role` (a module of dist/services) are. */
    const clientsLoaded = (role: string): string[] => {
      const script = `import { createRequire } from "node:module";
        await import(${JSON.stringify(path.join(dist, "cli.js"))});
        await import(${JSON.stringify(path.join(dist, role))});
        const loaded = Object.keys(createRequire(import.meta.url).cache);
        console.log(JSON.stringify(["@grpc/grpc-js", "ioredis", "classic-level"].filter((p) => loaded.some((f) => f.includes("/node_modules/" + p + "/")))));`;
      const run = spawnSync(process.execPath, ["--input-type=module", "-e", script], { encoding: "utf8", timeout: 20_000 });
      expect(run.status, run.stderr).toBe(0);
      return JSON.parse(run.stdout.trim()) as string[];
    };
    expect(clientsLoaded("embedded.js")).toEqual([]);
    expect(clientsLoaded("router-role.js")).toEqual(["@grpc/grpc-js", "ioredis"]); // the check sees them when loaded
  });
});
