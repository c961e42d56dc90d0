/**
 * The node network agent running the Bun-compiled DNS program with two worker
 * processes (`skein net-agent --dns-workers 2 --dns-program skein-dns`), as
 * shipped, as a real process tree in a node namespace against the real API
 * server: the workers answer on the gateway
 * and on an extra address, rotate fairly between them, drop a deleted pod
 * within a second, are replaced when one dies, report through the agent's one
 * /metrics, and leave nothing behind when the agent stops.
 */
import { chmodSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { CoreV1Api } from "@kubernetes/client-node";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { applyCrds } from "../../api/v1alpha1/install.ts";
import { eventually, testNamespace } from "../../kit/k8s/testing.ts";
import { type Cluster, createCluster, type Node } from "../../test/fixtures/netns.ts";
import { createNode } from "../../test/fixtures/objects.ts";
import type { OwnedProcess } from "../../test/fixtures/process.ts";
import { isRunning } from "../../test/fixtures/process.ts";
import { sharedApiServer } from "../../test/fixtures/shared.ts";
import { type NodeDirs, networkObject, nodeDirs, nodeSubnetObject, SkeinObjects } from "../agent/testing.ts";
import { buildDnsExecutable } from "./testing.ts";

const tag = `${process.pid}${Math.random().toString(36).slice(2, 6)}`;
const NETWORK = `agentdns${tag}`;
const WEB = `web${tag}`;
const NAME = `${WEB}.skein.local`;
const GATEWAY = "10.32.1.1";
const EXTRA_PORT = 5353;
const POD_IPS = ["10.32.1.10", "10.32.1.11"];

function children(pid: number): number[] {
  try {
    return readFileSync(`/proc/${pid}/task/${pid}/children`, "utf8").split(" ").filter(Boolean).map(Number);
  } catch {
    return [];
  }
}

function commandOf(pid: number): string {
  try {
    return readFileSync(`/proc/${pid}/cmdline`, "utf8").split("\0")[0] ?? "";
  } catch {
    return "";
  }
}

/** The agent's DNS program (it also runs short-lived `ip` and `bridge` commands). */
function dnsProgram(agentPid: number, program: string): number | undefined {
  return children(agentPid).find((pid) => commandOf(pid) === program);
}

/** The answering workers the agent's DNS program forked. */
function dnsWorkers(agentPid: number, program: string): number[] {
  const primary = dnsProgram(agentPid, program);
  return primary === undefined ? [] : children(primary);
}

describe("skein net-agent --dns-workers 2, with the Bun-compiled DNS program", () => {
  const api = sharedApiServer();
  const kc = api.kubeConfig();
  const core = kc.makeApiClient(CoreV1Api);
  const objects = new SkeinObjects(kc);
  const root = mkdtempSync(join(tmpdir(), "skein-agent-dns-"));
  const nodeName = `skt${tag}-dns-node`;
  let cluster: Cluster | undefined;
  let namespace: Awaited<ReturnType<typeof testNamespace>> | undefined;
  let node: Node;
  let dirs: NodeDirs;
  let agent: OwnedProcess;
  let program = "";
  let subnetName = "";

  async function dig(server: string, extra: string[] = []): Promise<string[]> {
    const { stdout } = await node.netns.exec(
      ["dig", `@${server}`, "+short", "+tries=1", "+time=2", ...extra, NAME],
      { timeoutMs: 10_000 },
    );
    return stdout.split("\n").filter((l) => /^\d+\.\d+\.\d+\.\d+$/.test(l));
  }

  async function metrics(): Promise<string> {
    return (await node.netns.exec(["curl", "-sf", "http://127.0.0.1:9402/metrics"])).stdout;
  }

  function total(text: string, name: string): number {
    return [...text.matchAll(new RegExp(`^${name}(?:\\{[^}]*\\})? (\\S+)$`, "gm"))].reduce(
      (sum, m) => sum + Number(m[1]),
      0,
    );
  }

  async function createWebPod(i: number): Promise<void> {
    const name = `web-${i}`;
    const pod = await core.createNamespacedPod({
      namespace: namespace!.name,
      body: {
        metadata: { name, annotations: { "skein.io/dns-name": WEB } },
        spec: { nodeName, containers: [{ name: "web", image: "web" }] },
      },
    });
    pod.status = { phase: "Running", podIP: POD_IPS[i], conditions: [{ type: "Ready", status: "True" }] };
    await core.replaceNamespacedPodStatus({ namespace: namespace!.name, name, body: pod });
  }

  beforeAll(async () => {
    await applyCrds(kc);
    cluster = await createCluster(1, { apiServer: api });
    node = cluster.nodes[0]!;
    await objects.create(networkObject(NETWORK));
    const subnet = nodeSubnetObject(NETWORK, node, 1);
    subnetName = subnet.metadata.name!;
    await objects.create(subnet);
    await createNode(kc, nodeName, "198.18.0.3");
    namespace = await testNamespace(kc, "skt-agent-dns");
    for (const i of [0, 1]) await createWebPod(i);
    dirs = nodeDirs(root, node);
    // The agent only copies the plugin into place; no pod is wired here.
    const plugin = join(root, "skein-cni");
    writeFileSync(plugin, "#!/bin/sh\nexit 0\n");
    chmodSync(plugin, 0o755);
    program = await buildDnsExecutable(root);
    agent = node.netns.spawn(
      "net-agent with DNS workers",
      [
        process.execPath,
        "--import",
        "tsx",
        resolve("cmd/skein.ts"),
        "net-agent",
        `--node=${node.name}`,
        `--kubeconfig=${node.kubeconfigPath}`,
        `--network=${NETWORK}`,
        `--cni-bin-dir=${dirs.bin}`,
        `--cni-conf-dir=${dirs.conf}`,
        `--settings-file=${dirs.settings}`,
        `--plugin-data-dir=${dirs.data}`,
        `--plugin-source=${plugin}`,
        "--metrics-address=127.0.0.1:9402",
        `--dns-listen=127.0.0.1:${EXTRA_PORT}`,
        "--dns-workers=2",
        `--dns-program=${program}`,
      ],
      join(dirs.logs, "net-agent.log"),
      { ...process.env, SKEIN_LOG_LEVEL: "info" },
    );
    await eventually(
      `both pods answered on the gateway: ${agent.logTail(5)}`,
      async () => (await dig(GATEWAY).catch(() => [])).length === 2,
      90_000,
    );
  }, 150_000);

  afterAll(async () => {
    try {
      await cluster?.destroy();
      await namespace?.delete();
      await core.deleteNode({ name: nodeName }).catch(() => undefined);
      if (subnetName) await objects.delete("NodeSubnet", subnetName);
      await objects.delete("Network", NETWORK);
    } finally {
      rmSync(root, { recursive: true, force: true });
    }
  });

  it("answers from two worker processes on the gateway and the extra address", async () => {
    expect(dnsWorkers(agent.pid, program)).toHaveLength(2);
    expect((await dig(GATEWAY)).sort()).toEqual(POD_IPS);
    expect((await dig("127.0.0.1", ["-p", String(EXTRA_PORT)])).sort()).toEqual(POD_IPS);
  });

  it("rotates fairly across workers: each worker alternates, so the shares differ by at most one per worker", async () => {
    const firsts = new Map<string, number>();
    for (let i = 0; i < 24; i++) {
      const [first] = await dig(GATEWAY);
      firsts.set(first!, (firsts.get(first!) ?? 0) + 1);
    }
    expect([...firsts.keys()].sort()).toEqual(POD_IPS);
    const [a = 0, b = 0] = firsts.values();
    expect(Math.abs(a - b)).toBeLessThanOrEqual(2);
  });

  it("serves the workers' DNS metrics, summed, with the agent's own on one /metrics", async () => {
    const before = total(await metrics(), "skein_dns_queries_total");
    for (let i = 0; i < 10; i++) await dig(GATEWAY);
    const text = await metrics();
    expect(total(text, "skein_dns_queries_total") - before).toBeGreaterThanOrEqual(10);
    expect(text).toMatch(/^skein_net_agent_peers /m);
    // One worker's count of the same records, not the sum over workers.
    expect(total(text, "skein_dns_records")).toBeGreaterThanOrEqual(2);
    expect(text.match(/^skein_dns_records /gm)).toHaveLength(1);
  });

  it("drops a deleted pod from every worker's answers within a second", async () => {
    await core.deleteNamespacedPod({ name: "web-1", namespace: namespace!.name, gracePeriodSeconds: 0 });
    const deletedAt = Date.now();
    await new Promise((r) => setTimeout(r, Math.max(0, deletedAt + 1000 - Date.now())));
    // Datagrams go to whichever worker reads first: enough queries to reach both.
    for (let i = 0; i < 8; i++) expect(await dig(GATEWAY)).toEqual([POD_IPS[0]]);
    await createWebPod(1);
    await eventually("web-1 back in the answers", async () => (await dig(GATEWAY)).length === 2);
  });

  it("replaces a worker that dies, and keeps answering meanwhile", async () => {
    const [victim, survivor] = dnsWorkers(agent.pid, program);
    process.kill(victim!, "SIGKILL");
    for (let i = 0; i < 4; i++) expect((await dig(GATEWAY)).sort()).toEqual(POD_IPS);
    const replaced = await eventually(
      "a replacement worker",
      async () => {
        const now = dnsWorkers(agent.pid, program);
        return now.length === 2 && !now.includes(victim!) ? now : undefined;
      },
      60_000,
    );
    expect(replaced).toContain(survivor);
    expect(agent.exited()).toBe(false);
  });

  it("stops its DNS program and workers when it stops", async () => {
    const workers = [dnsProgram(agent.pid, program)!, ...dnsWorkers(agent.pid, program)];
    expect(workers).toHaveLength(3);
    const stopping = Date.now();
    agent.kill("SIGTERM");
    await eventually("the agent to exit", async () => agent.exited(), 15_000);
    // Well inside the fixture's 5 s grace: it stopped on SIGTERM, it was not killed.
    expect(Date.now() - stopping).toBeLessThan(5_000);
    for (const pid of workers) expect(isRunning(pid)).toBe(false);
    expect(readFileSync(agent.logPath, "utf8")).not.toMatch(/exiting without finishing/);
  });
});
