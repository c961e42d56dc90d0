/**
 * For migration tests and the benchmark: a small cluster as real processes.
 * Its own API server (Nodes and Volumes are cluster-scoped and would meet other
 * suites' objects), N simulated nodes (network namespaces on one underlay,
 * each with a Node object carrying its InternalIP, its own zfs-fuse pool and
 * its own `skein csi-node` with the transfer endpoint), `skein operator` (which
 * issues the transfer certificates and drives migrations) and
 * `skein csi-controller`. Every part can be killed and started again.
 */
import { cpSync, rmSync } from "node:fs";
import { join } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import { fileURLToPath } from "node:url";
import { CoreV1Api, type KubeConfig } from "@kubernetes/client-node";
import { applyCrds } from "../../api/v1alpha1/install.ts";
import { run } from "../../kit/exec.ts";
import { type ApiServer, startApiServer } from "../../test/fixtures/apiserver.ts";
import { type Cluster, createCluster, type Node } from "../../test/fixtures/netns.ts";
import { createNode } from "../../test/fixtures/objects.ts";
import { createPool, type Pool } from "../../test/fixtures/pool.ts";
import { type OwnedProcess, startProcess, waitUntilReady } from "../../test/fixtures/process.ts";
import { scratchDir } from "../../test/fixtures/scratch.ts";
import { CsiClient } from "../grpc/load.ts";
import { SkeinApi } from "../skein-api.ts";
import { incomingRoot, skeinRoot } from "../zfs/names.ts";

const ENTRY = fileURLToPath(new URL("../../cmd/skein.ts", import.meta.url));
export const NAMESPACE = "skein-system";
export const TRANSFER_PORT = 7480;

const skein = (args: string[]): [string, ...string[]] => [
  process.execPath,
  "--import",
  "tsx",
  ENTRY,
  ...args,
];

export interface SimNode {
  name: string;
  node: Node;
  pool: Pool;
  endpoint: string;
  client(): CsiClient<"Node">;
  agentRunning(): boolean;
  /** SIGKILL: a crash, no cleanup. */
  killAgent(): void;
  startAgent(): Promise<void>;
}

export interface MigrationCluster {
  dir: string;
  kc: KubeConfig;
  api: SkeinApi;
  nodes: SimNode[];
  controller(): CsiClient<"Controller">;
  killOperator(): void;
  startOperator(): Promise<void>;
  operatorRunning(): boolean;
  stop(): Promise<void>;
}

async function ready(proc: OwnedProcess, check: () => Promise<unknown>): Promise<void> {
  await waitUntilReady(
    proc,
    async () => {
      await check();
      return true;
    },
    120_000,
  );
}

export async function startMigrationCluster(options: {
  nodes: number;
  poolMiB?: number;
  cutoverTimeoutS?: number;
  resyncS?: number;
  /** How often warm replicas pull (the agents' --replica-sync). */
  replicaSyncS?: number;
}): Promise<MigrationCluster> {
  const dir = scratchDir("migration");
  const cleanups: Array<() => Promise<void>> = [];
  const processes: Array<() => Promise<void>> = [];
  const stop = async () => {
    for (const c of processes.reverse()) await c().catch(() => undefined);
    processes.length = 0;
    // SKEIN_KEEP_LOGS=DIR keeps the processes' logs for a post-mortem.
    const keep = process.env.SKEIN_KEEP_LOGS;
    if (keep) cpSync(dir, keep, { recursive: true, filter: (src) => src.endsWith(".log") || src === dir });
    // A killed agent leaves its pods' bind mounts behind: take them off before the directory goes.
    const { stdout } = await run(["findmnt", "--list", "--noheadings", "--output", "TARGET"]);
    for (const target of stdout
      .split("\n")
      .filter((t) => t.startsWith(`${dir}/`))
      .reverse())
      await run(["umount", target]).catch(() => undefined);
    for (const c of cleanups.reverse()) await c().catch(() => undefined);
    cleanups.length = 0;
    rmSync(dir, { recursive: true, force: true });
  };
  const env = { ...process.env, SKEIN_LOG_LEVEL: process.env.SKEIN_LOG_LEVEL ?? "info" };
  try {
    const apiServer: ApiServer = await startApiServer();
    cleanups.push(() => apiServer.stop());
    const kc = apiServer.kubeConfig();
    await applyCrds(kc);
    await kc.makeApiClient(CoreV1Api).createNamespace({ body: { metadata: { name: NAMESPACE } } });
    const cluster: Cluster = await createCluster(options.nodes, { apiServer });
    cleanups.push(() => cluster.destroy());
    for (const n of cluster.nodes) await createNode(kc, n.name, n.address);

    let operator: OwnedProcess | undefined;
    const startOperator = async () => {
      operator = startProcess(
        "skein operator",
        skein([
          "operator",
          `--kubeconfig=${apiServer.kubeconfigPath}`,
          `--namespace=${NAMESPACE}`,
          "--id=migration-test",
          "--metrics-address=127.0.0.1:0",
          "--leader-elect=false",
          `--cutover-timeout=${options.cutoverTimeoutS ?? 60}`,
        ]),
        join(dir, "operator.log"),
        { env },
      );
      const core = kc.makeApiClient(CoreV1Api);
      // Ready when it has issued the first node's certificate.
      await ready(operator, () =>
        core.readNamespacedSecret({ name: `skein-transfer-${cluster.nodes[0]!.name}`, namespace: NAMESPACE }),
      );
    };
    processes.push(async () => operator?.stop());
    await startOperator();

    const controllerEndpoint = `unix://${join(dir, "controller.sock")}`;
    const controller = startProcess(
      "skein csi-controller",
      skein([
        "csi-controller",
        `--endpoint=${controllerEndpoint}`,
        `--kubeconfig=${apiServer.kubeconfigPath}`,
      ]),
      join(dir, "controller.log"),
      { env },
    );
    processes.push(() => controller.stop());

    const nodes: SimNode[] = [];
    for (const n of cluster.nodes) {
      const pool = await createPool({ sizeMiB: options.poolMiB ?? 1024 });
      cleanups.push(async () => {
        // zfs-fuse calls a pool busy for a while after heavy writes.
        for (let attempt = 0; ; attempt++) {
          try {
            return await pool.destroy();
          } catch (err) {
            if (attempt >= 4) throw err;
            await sleep(2_000);
          }
        }
      });
      await run(["zfs", "create", skeinRoot(pool.name)]);
      await run(["zfs", "create", "-o", "mountpoint=none", "-o", "readonly=on", incomingRoot(pool.name)]);
      const endpoint = `unix://${join(dir, `${n.name}.sock`)}`;
      let agent: OwnedProcess | undefined;
      const startAgent = async () => {
        // nsenter --net, not ip netns exec: the agent keeps this machine's mount namespace,
        // where zfs-fuse mounts datasets (libzfs reads the caller's mount table, and a private
        // copy of it would never show them).
        agent = startProcess(
          `skein csi-node on ${n.name}`,
          [
            "nsenter",
            `--net=${n.netns.path}`,
            ...skein([
              "csi-node",
              `--endpoint=${endpoint}`,
              `--kubeconfig=${n.kubeconfigPath}`,
              `--node-id=${n.name}`,
              `--pool=${pool.name}`,
              `--resync=${options.resyncS ?? 5}`,
              `--replica-sync=${options.replicaSyncS ?? 30}`,
              `--transfer-secret-namespace=${NAMESPACE}`,
              `--transfer-address=${n.address}:${TRANSFER_PORT}`,
              // Outlives a killed agent, as the chart's host path does.
              `--state-dir=${join(dir, `${n.name}-state`)}`,
            ]),
          ],
          join(dir, `${n.name}.log`),
          { env },
        );
        const client = new CsiClient("Node", endpoint);
        try {
          await ready(agent, () => client.call("NodeGetInfo", {}, { deadlineMs: 2_000 }));
        } finally {
          client.close();
        }
      };
      processes.push(async () => agent?.stop());
      nodes.push({
        name: n.name,
        node: n,
        pool,
        endpoint,
        client: () => new CsiClient("Node", endpoint),
        agentRunning: () => agent !== undefined && !agent.exited(),
        killAgent: () => agent?.kill("SIGKILL"),
        startAgent,
      });
    }
    await Promise.all(nodes.map((n) => n.startAgent()));
    const controllerClient = new CsiClient("Controller", controllerEndpoint);
    try {
      await ready(controller, () =>
        controllerClient.call("ControllerGetCapabilities", {}, { deadlineMs: 2_000 }),
      );
    } finally {
      controllerClient.close();
    }
    return {
      dir,
      kc,
      api: new SkeinApi(kc),
      nodes,
      controller: () => new CsiClient("Controller", controllerEndpoint),
      killOperator: () => operator?.kill("SIGKILL"),
      startOperator,
      operatorRunning: () => operator !== undefined && !operator.exited(),
      stop,
    };
  } catch (err) {
    await stop();
    throw err;
  }
}
