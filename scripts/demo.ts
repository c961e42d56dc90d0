/**
 * `make demo`: Skein's main job on simulated nodes, with real parts only — a
 * real API server, network namespaces as nodes and pods, a zfs-fuse pool per
 * node. It sets up a three-node cluster, lets the operator carve the overlay
 * into per-node blocks, and shows what `kubectl` shows; then tears it all down.
 */

import { applyCrds } from "../api/v1alpha1/install.ts";
import { run } from "../kit/exec.ts";
import { startApiServer } from "../test/fixtures/apiserver.ts";
import { type Cluster, createCluster } from "../test/fixtures/netns.ts";
import { createNode, createSkeinObject } from "../test/fixtures/objects.ts";
import { createPool, type Pool } from "../test/fixtures/pool.ts";
import { startProcess } from "../test/fixtures/process.ts";
import { toolPath } from "../test/fixtures/tools.ts";
import { ensureZfsDaemon } from "../test/fixtures/zfs-daemon.ts";

const NODES = 3;

function step(title: string): void {
  console.log(`\n\x1b[1m== ${title}\x1b[0m`);
}

async function until(what: string, check: () => Promise<boolean>, timeoutMs = 60_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await check().catch(() => false))) {
    if (Date.now() > deadline) throw new Error(`demo: timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 200));
  }
}

async function main(): Promise<void> {
  const cleanups: Array<() => Promise<void>> = [];
  try {
    step("control plane: etcd + kube-apiserver, skein.io CRDs");
    const stopZfs = await ensureZfsDaemon();
    cleanups.push(stopZfs);
    const api = await startApiServer();
    cleanups.push(() => api.stop());
    const kc = api.kubeConfig();
    const kubectl = async (...args: string[]) => {
      const { stdout } = await run([toolPath("kubectl"), `--kubeconfig=${api.kubeconfigPath}`, ...args]);
      console.log(stdout.trimEnd());
      return stdout;
    };
    await applyCrds(kc);
    await kubectl("get", "crds");

    step(`${NODES} nodes: network namespaces on one underlay bridge, a ZFS pool each`);
    const cluster: Cluster = await createCluster(NODES, { apiServer: api });
    cleanups.push(() => cluster.destroy());
    const pools: Pool[] = [];
    for (const node of cluster.nodes) {
      const pool = await createPool({ sizeMiB: 256 });
      pools.push(pool);
      cleanups.push(() => pool.destroy());
      await createNode(kc, node.name, node.address);
      console.log(`${node.name}: namespace ${node.netns.name}, underlay ${node.address}, pool ${pool.name}`);
    }
    await kubectl("get", "nodes", "-o", "wide");

    step("operator: a Network, carved into one address block per node");
    const operator = startProcess(
      "operator",
      [
        process.execPath,
        "--import",
        "tsx",
        "cmd/skein.ts",
        "operator",
        `--kubeconfig=${api.kubeconfigPath}`,
        "--leader-elect=false",
        "--metrics-address=127.0.0.1:0",
      ],
      `${api.dir}/operator.log`,
    );
    cleanups.push(() => operator.stop());
    await createSkeinObject(kc, "Network", "pods", { cidr: "10.244.0.0/16", vni: 42 });
    await until("one NodeSubnet per node", async () => {
      const out = await run([
        toolPath("kubectl"),
        `--kubeconfig=${api.kubeconfigPath}`,
        "get",
        "nodesubnets",
        "-o",
        "name",
      ]);
      return out.stdout.trim().split("\n").filter(Boolean).length === NODES;
    });
    await kubectl("get", "networks");
    await kubectl("get", "nodesubnets");

    step("done: tearing everything down");
  } finally {
    for (const c of cleanups.reverse()) await c().catch((err: unknown) => console.error(`cleanup: ${err}`));
  }
}

main().catch((err: unknown) => {
  console.error(`demo failed: ${err instanceof Error ? err.message : String(err)}`);
  process.exitCode = 1;
});
