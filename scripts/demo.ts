/**
 * `make demo`: Skein's main job on simulated nodes, with real parts only — a
 * real API server, network namespaces as nodes and pods, a zfs-fuse pool per
 * node. It sets up a three-node cluster, lets the operator carve the overlay
 * into per-node blocks, runs a network agent per node and wires pods that ping
 * across nodes and find each other by name, provisions a ZFS volume through
 * the CSI driver, moves a volume in use to another node, and shows what
 * `kubectl` shows; then tears it all down.
 */

import { createHash, randomBytes } from "node:crypto";
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { CoreV1Api } from "@kubernetes/client-node";
import { applyCrds } from "../api/v1alpha1/install.ts";
import { VXLAN_NAME } from "../cni/agent/plan.ts";
import { cnitool, nodeDirs, startAgent } from "../cni/agent/testing.ts";
import { parseSettings } from "../cni/settings.ts";
import { TOPOLOGY_CLUSTER_KEY, TOPOLOGY_NODE_KEY } from "../csi/requests.ts";
import { startDriver } from "../csi/testing/driver-processes.ts";
import { type SimNode, startMigrationCluster } from "../csi/testing/migration-cluster.ts";
import { run } from "../kit/exec.ts";
import { eventually } from "../kit/k8s/testing.ts";
import { startApiServer } from "../test/fixtures/apiserver.ts";
import { type Cluster, createCluster, createPod, type Netns, type Node } from "../test/fixtures/netns.ts";
import { createNode, createSkeinObject } from "../test/fixtures/objects.ts";
import { createPool, type Pool } from "../test/fixtures/pool.ts";
import { startProcess } from "../test/fixtures/process.ts";
import { toolPath } from "../test/fixtures/tools.ts";
import { ensureZfsDaemon } from "../test/fixtures/zfs-daemon.ts";

const NODES = 3;
/** Components start slowly on a busy 2-core machine. */
const WAIT_MS = 60_000;

function step(title: string): void {
  console.log(`\n\x1b[1m== ${title}\x1b[0m`);
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
    await eventually(
      "one NodeSubnet per node",
      async () => {
        const out = await run([
          toolPath("kubectl"),
          `--kubeconfig=${api.kubeconfigPath}`,
          "get",
          "nodesubnets",
          "-o",
          "name",
        ]);
        return out.stdout.trim().split("\n").filter(Boolean).length === NODES;
      },
      WAIT_MS,
    );
    await kubectl("get", "networks");
    await kubectl("get", "nodesubnets");

    step(
      "overlay: a net-agent per node builds skein0 + VXLAN; one pod per node, wired by the skein CNI plugin",
    );
    const plugin = join(process.cwd(), "dist", "skein-cni");
    const dnsProgram = join(process.cwd(), "dist", "skein-dns");
    for (const built of [plugin, dnsProgram])
      if (!existsSync(built)) throw new Error(`${built} is missing: run 'make demo', which builds it first`);
    const root = mkdtempSync(join(tmpdir(), "skein-demo-"));
    cleanups.push(async () => rmSync(root, { recursive: true, force: true }));
    const dirs = cluster.nodes.map((node) => nodeDirs(root, node));
    for (const [i, node] of cluster.nodes.entries()) {
      const agent = startAgent(node, dirs[i]!, {
        network: "pods",
        pluginSource: plugin,
        dnsProgram,
      });
      cleanups.push(() => agent.stop());
    }
    for (const node of cluster.nodes) {
      await eventually(
        `the net-agent on ${node.name}`,
        async () => {
          const { stdout } = await node.netns.exec(["curl", "-sf", "http://127.0.0.1:9402/readyz"]);
          return stdout.trim().endsWith("ok");
        },
        WAIT_MS,
      );
    }
    const pods: { ns: Netns; ip: string; node: Node }[] = [];
    for (const [i, node] of cluster.nodes.entries()) {
      const ns = await createPod();
      const added = JSON.parse(await cnitool(node, dirs[i]!, "add", "pods", ns)) as {
        ips: { address: string }[];
      };
      pods.push({ ns, ip: added.ips[0]!.address.split("/")[0]!, node });
      cleanups.push(async () => {
        await cnitool(node, dirs[i]!, "del", "pods", ns).catch(() => undefined);
        await ns.destroy();
      });
      console.log(`pod on ${node.name}: ${added.ips[0]!.address}`);
    }
    const { stdout: fdb } = await cluster.nodes[0]!.netns.exec(["bridge", "fdb", "show", "dev", VXLAN_NAME]);
    console.log(
      `node-1's flood list (one entry per peer VTEP):\n${fdb
        .split("\n")
        .filter((l) => l.startsWith("00:00:00:00:00:00"))
        .join("\n")}`,
    );
    const { stdout: ping } = await pods[0]!.ns.exec(["ping", "-c", "3", "-i", "0.2", pods[2]!.ip]);
    console.log(ping.trimEnd().split("\n").slice(-2).join("\n"));

    step("DNS: pods that share a name, answered in rotated order by the node's responder");
    const core = kc.makeApiClient(CoreV1Api);
    await core.createNamespace({ body: { metadata: { name: "demo" } } });
    for (const [i, pod] of pods.entries()) {
      const name = `web-${i + 1}`;
      const obj = await core.createNamespacedPod({
        namespace: "demo",
        body: {
          metadata: { name, annotations: { "skein.io/dns-name": "web" } },
          spec: { nodeName: pod.node.name, containers: [{ name: "web", image: "web" }] },
        },
      });
      obj.status = { phase: "Running", podIP: pod.ip, conditions: [{ type: "Ready", status: "True" }] };
      await core.replaceNamespacedPodStatus({ namespace: "demo", name, body: obj });
    }
    const gateway = parseSettings(readFileSync(dirs[0]!.settings, "utf8"), dirs[0]!.settings).gateway;
    const dig = async () =>
      (
        await pods[0]!.ns.exec(["dig", "+short", "+time=1", "+tries=1", `@${gateway}`, "web.skein.local"])
      ).stdout.trim();
    await eventually(
      "web.skein.local to answer three pods",
      async () => (await dig()).split("\n").length === 3,
      WAIT_MS,
    );
    for (let q = 1; q <= 3; q++) console.log(`query ${q}: ${(await dig()).split("\n").join(" ")}`);

    step("storage: a ZFS volume through the CSI driver on node-1, published, written, snapshotted");
    const driver = await startDriver({
      kubeconfigPath: api.kubeconfigPath,
      pool: pools[0]!.name,
      node: "node-1",
      cluster: "demo",
    });
    cleanups.push(() => driver.stop());
    const controller = driver.controller();
    const nodeClient = driver.nodeClient();
    const capability = { mount: { fs_type: "" }, access_mode: { mode: "SINGLE_NODE_WRITER" as const } };
    const created = await controller.call("CreateVolume", {
      name: "pgdata",
      capacity_range: { required_bytes: 64 * 2 ** 20 },
      volume_capabilities: [capability],
      // zfs-fuse predates lz4; OpenZFS takes compression: lz4 (the chart's default).
      parameters: { compression: "on" },
      accessibility_requirements: {
        preferred: [{ segments: { [TOPOLOGY_CLUSTER_KEY]: "demo", [TOPOLOGY_NODE_KEY]: "node-1" } }],
      },
    });
    const volumeId = created.volume?.volume_id ?? "";
    console.log(
      `CreateVolume: ${volumeId}, accessible from ${JSON.stringify(created.volume?.accessible_topology)} (every node: the volume is not pinned)`,
    );
    const target = join(root, "target");
    await nodeClient.call("NodePublishVolume", {
      volume_id: volumeId,
      target_path: target,
      volume_capability: capability,
      readonly: false,
    });
    cleanups.push(
      async () =>
        void (await nodeClient.call("NodeUnpublishVolume", { volume_id: volumeId, target_path: target })),
    );
    writeFileSync(join(target, "hello.txt"), "written through a bind mount of the ZFS dataset\n");
    await controller.call("CreateSnapshot", { name: "pgdata-before-upgrade", source_volume_id: volumeId });
    await kubectl("get", "volumes");
    await kubectl("get", "snapshots");
    const { stdout: zfs } = await run([
      "zfs",
      "list",
      "-t",
      "all",
      "-r",
      "-o",
      "name,used,refquota,compression",
      `${pools[0]!.name}/skein`,
    ]);
    console.log(zfs.trimEnd());

    await volumesFollowPods(cleanups);

    step("done: tearing everything down");
  } finally {
    for (const c of cleanups.reverse()) await c().catch((err: unknown) => console.error(`cleanup: ${err}`));
  }
}

/**
 * The move, on a storage cluster of its own (two more nodes with their own
 * pools, agents with transfer certificates, the operator): a volume in use on
 * node-1 is copied to node-2 in rounds while a pod writes, then handed over
 * once the pod leaves; every byte arrives.
 */
async function volumesFollowPods(cleanups: Array<() => Promise<void>>): Promise<void> {
  step("volumes follow their pods: a volume in use moves from node-1 to node-2 of a storage cluster");
  const c = await startMigrationCluster({ nodes: 2, poolMiB: 512, replicaSyncS: 2 });
  cleanups.push(() => c.stop());
  const [a, b] = c.nodes as [SimNode, SimNode];
  const name = "orders-db";
  await c.api.create("Volume", {
    metadata: { name },
    spec: { capacityBytes: 64 * 2 ** 20, ownerNode: a.name, replicas: 1 },
  });
  await eventually(
    `volume ${name} ready`,
    async () => (await c.api.get("Volume", name))?.status?.phase === "Ready",
    WAIT_MS,
  );
  const csi = a.client();
  const target = join(c.dir, "pod-on-node-1");
  const capability = { mount: { fs_type: "" }, access_mode: { mode: "SINGLE_NODE_WRITER" as const } };
  await csi.call("NodePublishVolume", {
    volume_id: name,
    target_path: target,
    volume_capability: capability,
  });
  const sums = new Map<string, string>();
  const write = (file: string, bytes: number) => {
    const data = randomBytes(bytes);
    writeFileSync(join(target, file), data);
    sums.set(file, createHash("sha256").update(data).digest("hex"));
  };
  for (let i = 0; i < 4; i++) write(`table-${i}.dat`, 4 * 2 ** 20);
  const replica = await eventually(
    "the warm replica to sync",
    async () => (await c.api.get("Volume", name))?.status?.replicas?.find((r) => r.lastSyncedSnapshot),
    WAIT_MS,
  );
  console.log(
    `${name}: 16 MiB written on ${a.name}; warm replica on ${replica.node}, ${replica.lagSeconds ?? 0} s behind`,
  );
  await c.api.create("VolumeMigration", {
    metadata: { name: `${name}-to-${b.name}` },
    spec: { volume: name, targetNode: b.name, force: false, reason: "demo" },
  });
  // The pod keeps writing while the rounds go on.
  for (let i = 0; i < 10; i++) {
    write(`log-${i}.dat`, 256 * 1024);
    await new Promise((r) => setTimeout(r, 200));
  }
  await csi.call("NodeUnpublishVolume", { volume_id: name, target_path: target });
  csi.close();
  console.log(`the pod on ${a.name} stopped: the last increment goes over and ${b.name} takes the volume`);
  await eventually(
    "the migration to complete",
    async () => (await c.api.get("VolumeMigration", `${name}-to-${b.name}`))?.status?.phase === "Completed",
    WAIT_MS,
  );
  const m = await c.api.get("VolumeMigration", `${name}-to-${b.name}`);
  const s = m?.status;
  console.log(
    `VolumeMigration ${m?.metadata.name}: ${s?.phase} in ${s?.round} rounds, ${((s?.bytesSent ?? 0) / 2 ** 20).toFixed(1)} MiB sent, ${s?.downtimeMilliseconds} ms of downtime`,
  );
  const moved = join(b.pool.mountRoot, "skein", name);
  const intact = [...sums].every(
    ([file, sum]) =>
      createHash("sha256")
        .update(readFileSync(join(moved, file)))
        .digest("hex") === sum,
  );
  console.log(
    `on ${b.name}: ${sums.size} files, checksums ${intact ? "all equal" : "DIFFERENT"} to what the pod wrote`,
  );
  if (!intact) throw new Error("the moved volume's data differs from what was written");
  const v = await c.api.get("Volume", name);
  console.log(`Volume ${name}: owner ${v?.spec.ownerNode}, ready on ${v?.status?.node}`);
  await c.api.delete("Volume", name);
}

main().catch((err: unknown) => {
  console.error(`demo failed: ${err instanceof Error ? err.message : String(err)}`);
  process.exitCode = 1;
});
