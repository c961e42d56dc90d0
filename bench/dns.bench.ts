/**
 * `npm run bench -- dns [--rounds N] [--seconds S] [--workers N]`: Skein's DNS responder
 * against dnsmasq, serving the same records, in the same network namespace,
 * in the same run, measured by dnsperf.
 *
 * Skein runs as shipped: the DNS program the network agent runs (dist/skein-dns, `skein dns`
 * compiled with Bun; built here from this tree) with `--workers <cores>`, its records from Pod
 * objects in a real API server (100 pods, three shared names). dnsmasq serves the same
 * names from an --addn-hosts file and answers NXDOMAIN for the rest of the
 * domain, as Skein does. The query mix: shared names, per-pod names and
 * unknown names. Rounds alternate which server goes first; the verdict is the
 * ratio of the median queries per second, from runs that print only dnsperf's
 * summary. p99 latency comes from separate, shorter runs with dnsperf's
 * per-query report (whose writing costs CPU the servers would otherwise have).
 */
import { chmodSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { availableParallelism, loadavg, tmpdir } from "node:os";
import { join } from "node:path";
import { parseArgs } from "node:util";
import { CoreV1Api, CustomObjectsApi, PatchStrategy, setHeaderOptions } from "@kubernetes/client-node";
import { API_VERSION, GROUP, KINDS, VERSION } from "../api/v1alpha1/index.ts";
import { applyCrds } from "../api/v1alpha1/install.ts";
import { buildDnsExecutable } from "../cni/dns/testing.ts";
import { type ApiServer, startApiServer } from "../test/fixtures/apiserver.ts";
import { type Cluster, createCluster, type Netns } from "../test/fixtures/netns.ts";
import { createNode } from "../test/fixtures/objects.ts";
import { waitUntilReady } from "../test/fixtures/process.ts";
import { median, percentile, ratio, result } from "./stats.ts";

const DOMAIN = "skein.local";
const NAMESPACE = "bench";
const PODS = 100;
const SHARED = ["web", "api", "db"];
const SKEIN_PORT = 5301;
const DNSMASQ_PORT = 5302;
/** USER_HZ: the unit of /proc/<pid>/stat times on Linux. */
const CLOCK_TICKS = 100;

interface Pod {
  name: string;
  ip: string;
  shared?: string;
}

function pods(): Pod[] {
  return Array.from({ length: PODS }, (_, i) => ({
    name: `pod-${i}`,
    ip: `10.244.${1 + Math.floor(i / 200)}.${10 + (i % 200)}`,
    // The first 12 pods carry the shared names, four each.
    ...(i < 12 ? { shared: SHARED[i % 3] } : {}),
  }));
}

/** dnsperf input: 60% shared names, 30% pod names, 10% unknown names. */
function queryFile(all: Pod[]): string {
  const lines: string[] = [];
  for (let i = 0; i < 1000; i++) {
    const pick = i % 10;
    if (pick < 6) lines.push(`${SHARED[i % SHARED.length]}.${DOMAIN} A`);
    else if (pick < 9) lines.push(`${all[i % all.length]!.name}.${NAMESPACE}.${DOMAIN} A`);
    else lines.push(`missing-${i}.${DOMAIN} A`);
  }
  return `${lines.join("\n")}\n`;
}

function hostsFile(all: Pod[]): string {
  return all
    .flatMap((p) => [
      `${p.ip} ${p.name}.${NAMESPACE}.${DOMAIN}`,
      ...(p.shared ? [`${p.ip} ${p.shared}.${DOMAIN}`] : []),
    ])
    .join("\n")
    .concat("\n");
}

interface Throughput {
  qps: number;
  lost: number;
  /** Server CPU time per query: what the machine's load cannot skew. */
  cpuUsPerQuery: number;
}

/**
 * CPU time (user + system) a process and its live descendants (DNS workers)
 * have used, in microseconds, from /proc/<pid>/stat.
 */
function cpuMicros(pid: number): number {
  const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
  // Fields after the parenthesised command name; utime and stime are the 14th and 15th.
  const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
  const own = ((Number(fields[11]) + Number(fields[12])) / CLOCK_TICKS) * 1e6;
  let children: number[] = [];
  try {
    children = readFileSync(`/proc/${pid}/task/${pid}/children`, "utf8")
      .split(" ")
      .filter(Boolean)
      .map(Number);
  } catch {
    // the process is gone
  }
  return own + children.reduce((sum, child) => sum + cpuMicros(child), 0);
}

/**
 * One dnsperf run. Throughput runs print only the summary: with `-v` dnsperf
 * writes a line per query, and on two shared cores that writing takes CPU
 * from the server under test. Latency runs print every query, for the p99.
 */
async function dnsperf(
  ns: Netns,
  server: { port: number; pid: number },
  file: string,
  seconds: number,
  verbose: boolean,
): Promise<{ throughput: Throughput; latenciesMs: number[] }> {
  const cpuBefore = cpuMicros(server.pid);
  const options = ["-s", "127.0.0.1", "-p", String(server.port), "-d", file, "-l", String(seconds)];
  const { stdout } = await ns.exec(
    ["dnsperf", ...options, "-c", "8", "-q", "200", ...(verbose ? ["-v"] : [])],
    {
      timeoutMs: (seconds + 30) * 1000,
    },
  );
  const latenciesMs: number[] = [];
  for (const match of stdout.matchAll(/^> \w+ \S+ \S+ ([\d.]+)$/gm))
    latenciesMs.push(Number(match[1]) * 1000);
  const qps = Number(/Queries per second:\s+([\d.]+)/.exec(stdout)?.[1]);
  const completed = Number(/Queries completed:\s+(\d+)/.exec(stdout)?.[1]);
  const lost = Number(/Queries lost:\s+(\d+)/.exec(stdout)?.[1] ?? 0);
  if (!Number.isFinite(qps) || !(completed > 0) || (verbose && latenciesMs.length === 0))
    throw new Error(`dnsperf printed no results:\n${stdout.slice(-2000)}`);
  const cpuUsPerQuery = (cpuMicros(server.pid) - cpuBefore) / completed;
  return { throughput: { qps, lost, cpuUsPerQuery }, latenciesMs };
}

async function digOk(ns: Netns, port: number): Promise<boolean> {
  const { stdout } = await ns.exec([
    "dig",
    "@127.0.0.1",
    "-p",
    String(port),
    "+short",
    "+tries=1",
    "+time=1",
    `web.${DOMAIN}`,
  ]);
  return stdout.trim().split("\n").length === 4;
}

async function createRecords(api: ApiServer, nodeName: string, all: Pod[]): Promise<void> {
  const kc = api.kubeConfig();
  await applyCrds(kc);
  await kc.makeApiClient(CustomObjectsApi).createClusterCustomObject({
    group: GROUP,
    version: VERSION,
    plural: KINDS.Network.plural,
    body: {
      apiVersion: API_VERSION,
      kind: "Network",
      metadata: { name: "skein" },
      spec: { cidr: "10.244.0.0/16", vni: 1 },
    },
  });
  const core = kc.makeApiClient(CoreV1Api);
  await core.createNamespace({ body: { metadata: { name: NAMESPACE } } });
  await createNode(kc, nodeName, "198.18.0.1");
  const merge = setHeaderOptions("Content-Type", PatchStrategy.MergePatch);
  await Promise.all(
    all.map(async (p) => {
      await core.createNamespacedPod({
        namespace: NAMESPACE,
        body: {
          metadata: { name: p.name, annotations: p.shared ? { "skein.io/dns-name": p.shared } : {} },
          spec: { nodeName, containers: [{ name: "app", image: "registry.invalid/app" }] },
        },
      });
      await core.patchNamespacedPodStatus(
        {
          name: p.name,
          namespace: NAMESPACE,
          body: {
            status: { phase: "Running", podIP: p.ip, conditions: [{ type: "Ready", status: "True" }] },
          },
        },
        merge,
      );
    }),
  );
}

export default async function dnsBench(argv: string[]): Promise<void> {
  const { values } = parseArgs({
    args: argv,
    options: {
      rounds: { type: "string", default: "5" },
      seconds: { type: "string", default: "8" },
      // One per core: dnsmasq is single-threaded, Skein answers from as many processes as asked.
      workers: { type: "string", default: String(availableParallelism()) },
    },
  });
  const rounds = Number(values.rounds);
  const seconds = Number(values.seconds);
  const latencySeconds = Math.max(2, Math.round(seconds / 2));
  const dir = mkdtempSync(join(tmpdir(), "skein-dns-bench-"));
  // dnsmasq reads its hosts file after dropping root for nobody.
  chmodSync(dir, 0o755);
  let api: ApiServer | undefined;
  let cluster: Cluster | undefined;
  try {
    const all = pods();
    writeFileSync(join(dir, "queries.txt"), queryFile(all));
    writeFileSync(join(dir, "hosts"), hostsFile(all));
    console.log("starting the API server and creating the pods…");
    api = await startApiServer();
    cluster = await createCluster(1, { apiServer: api });
    const node = cluster.nodes[0]!;
    await createRecords(api, node.name, all);

    const program = await buildDnsExecutable(dir);
    const skein = node.netns.spawn(
      "skein-dns",
      [
        program,
        `--kubeconfig=${node.kubeconfigPath}`,
        `--listen=127.0.0.1:${SKEIN_PORT}`,
        "--no-probes",
        `--workers=${values.workers}`,
      ],
      join(dir, "skein-dns.log"),
      { ...process.env, SKEIN_LOG_LEVEL: "warn" },
    );
    const dnsmasq = node.netns.spawn(
      "dnsmasq",
      [
        "dnsmasq",
        "--keep-in-foreground",
        "--conf-file=/dev/null",
        "--no-resolv",
        "--no-hosts",
        `--addn-hosts=${join(dir, "hosts")}`,
        `--local=/${DOMAIN}/`,
        "--local-ttl=2",
        "--listen-address=127.0.0.1",
        "--bind-interfaces",
        `--port=${DNSMASQ_PORT}`,
        "--pid-file=",
      ],
      join(dir, "dnsmasq.log"),
    );
    await waitUntilReady(skein, () => digOk(node.netns, SKEIN_PORT), 120_000);
    await waitUntilReady(dnsmasq, () => digOk(node.netns, DNSMASQ_PORT), 30_000);

    const file = join(dir, "queries.txt");
    const servers = {
      skein: { port: SKEIN_PORT, pid: skein.pid },
      dnsmasq: { port: DNSMASQ_PORT, pid: dnsmasq.pid },
    };
    // Warm both up (JIT, caches) before anything counts.
    await dnsperf(node.netns, servers.skein, file, 2, false);
    await dnsperf(node.netns, servers.dnsmasq, file, 2, false);
    // Both servers and dnsperf share two cores with whatever else runs: say how busy the machine was.
    const load = () =>
      loadavg()
        .map((l) => l.toFixed(2))
        .join(" ");
    console.log(`load average before: ${load()}`);
    const runs: Record<"skein" | "dnsmasq", Throughput[]> = { skein: [], dnsmasq: [] };
    const p99s: Record<"skein" | "dnsmasq", number[]> = { skein: [], dnsmasq: [] };
    for (let round = 0; round < rounds; round++) {
      const order: ("skein" | "dnsmasq")[] = round % 2 ? ["dnsmasq", "skein"] : ["skein", "dnsmasq"];
      for (const who of order) {
        const { throughput: t } = await dnsperf(node.netns, servers[who], file, seconds, false);
        const { latenciesMs } = await dnsperf(node.netns, servers[who], file, latencySeconds, true);
        const p99 = percentile(latenciesMs, 99);
        runs[who].push(t);
        p99s[who].push(p99);
        console.log(
          `round ${round + 1} ${who}: ${Math.round(t.qps)} q/s, ${t.cpuUsPerQuery.toFixed(1)} µs CPU/query, ` +
            `lost ${t.lost}; p99 ${p99.toFixed(3)} ms (separate run with per-query output)`,
        );
      }
    }
    console.log(`load average after: ${load()}`);
    const skeinQps = median(runs.skein.map((m) => m.qps));
    const dnsmasqQps = median(runs.dnsmasq.map((m) => m.qps));
    result("qps_skein", Math.round(skeinQps));
    result("qps_dnsmasq", Math.round(dnsmasqQps));
    result("p99_ms_skein", median(p99s.skein));
    result("p99_ms_dnsmasq", median(p99s.dnsmasq));
    result("cpu_us_per_query_skein", median(runs.skein.map((m) => m.cpuUsPerQuery)));
    result("cpu_us_per_query_dnsmasq", median(runs.dnsmasq.map((m) => m.cpuUsPerQuery)));
    ratio("qps_vs_dnsmasq", skeinQps / dnsmasqQps);
  } finally {
    await cluster?.destroy();
    await api?.stop();
    rmSync(dir, { recursive: true, force: true });
  }
}
