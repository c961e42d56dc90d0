/**
 * The operator as it runs for real: separate processes (`skein operator`)
 * against a real API server of its own (cluster-scoped Networks and Nodes
 * would otherwise meet other suites' objects).
 */
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import {
  CoordinationV1Api,
  CoreV1Api,
  CustomObjectsApi,
  EventsV1Api,
  type KubeConfig,
} from "@kubernetes/client-node";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import {
  GROUP,
  type Network,
  type NodeSubnet,
  type StoragePool,
  VERSION,
  type Volume,
} from "../api/v1alpha1/index.ts";
import { applyCrds } from "../api/v1alpha1/install.ts";
import { eventually } from "../kit/k8s/testing.ts";
import { type ApiServer, startApiServer } from "../test/fixtures/apiserver.ts";
import { createNode as createNodeObject, createSkeinObject } from "../test/fixtures/objects.ts";
import { type OwnedProcess, startProcess } from "../test/fixtures/process.ts";

const NAMESPACE = "skein-system";
const LEASE = { durationS: 4, renewS: 3, retryS: 1 };

describe("skein operator", () => {
  let api: ApiServer;
  let kc: KubeConfig;
  let objects: CustomObjectsApi;
  let core: CoreV1Api;
  let logs: string;
  const running = new Set<OwnedProcess>();
  let started = 0;

  function startOperator(id: string): OwnedProcess {
    started += 1;
    const p = startProcess(
      `operator ${id}`,
      [
        process.execPath,
        "--import",
        "tsx",
        "cmd/skein.ts",
        "operator",
        `--kubeconfig=${api.kubeconfigPath}`,
        `--namespace=${NAMESPACE}`,
        `--id=${id}`,
        "--metrics-address=127.0.0.1:0",
        `--lease-duration=${LEASE.durationS}`,
        `--renew-deadline=${LEASE.renewS}`,
        `--retry-period=${LEASE.retryS}`,
      ],
      join(logs, `${id}-${started}.log`),
    );
    running.add(p);
    return p;
  }

  async function stop(p: OwnedProcess, signal: "SIGTERM" | "SIGKILL" = "SIGTERM") {
    if (signal === "SIGKILL") p.kill("SIGKILL");
    await p.stop();
    running.delete(p);
  }

  const list = async <T>(plural: string) =>
    ((await objects.listClusterCustomObject({ group: GROUP, version: VERSION, plural })) as { items: T[] })
      .items;
  const subnets = () => list<NodeSubnet>("nodesubnets");
  const network = async (name: string) =>
    (await objects.getClusterCustomObject({
      group: GROUP,
      version: VERSION,
      plural: "networks",
      name,
    })) as Network;

  const createNode = (name: string, ip: string) => createNodeObject(kc, name, ip);

  const createNetwork = (name: string, cidr: string, vni: number, nodeBlockPrefixLength = 24) =>
    createSkeinObject(kc, "Network", name, { cidr, vni, nodeBlockPrefixLength });

  /** node → block, per network. */
  async function allocation(): Promise<Map<string, Map<string, string>>> {
    const byNetwork = new Map<string, Map<string, string>>();
    for (const s of await subnets()) {
      const m = byNetwork.get(s.spec.network) ?? new Map<string, string>();
      m.set(s.spec.node, s.spec.block);
      byNetwork.set(s.spec.network, m);
    }
    return byNetwork;
  }

  beforeAll(async () => {
    logs = mkdtempSync(join(tmpdir(), "skein-operator-test-"));
    api = await startApiServer();
    kc = api.kubeConfig();
    objects = kc.makeApiClient(CustomObjectsApi);
    core = kc.makeApiClient(CoreV1Api);
    await applyCrds(kc);
    await core.createNamespace({ body: { metadata: { name: NAMESPACE } } });
    for (let i = 1; i <= 100; i++)
      await createNode(`node-${String(i).padStart(3, "0")}`, `198.18.${Math.floor(i / 250)}.${i % 250}`);
    await createNetwork("pods", "10.244.0.0/16", 1);
    await createNetwork("storage", "10.250.0.0/16", 2, 25);
    await createNetwork("tiny", "10.251.0.0/22", 3, 26);
  }, 300_000);

  afterAll(async () => {
    for (const p of running) await p.stop();
    await api?.stop();
    if (!process.env.SKEIN_KEEP_LOGS) rmSync(logs, { recursive: true, force: true });
  });

  it("allocates a unique block to each of 100 nodes in each of 3 networks", async () => {
    startOperator("op-a");
    // "tiny" has room for 16 nodes only (see the exhaustion test).
    const want = { pods: 100, storage: 100, tiny: 16 };
    const alloc = await eventually(
      "216 node blocks",
      async () => {
        const a = await allocation();
        return Object.entries(want).every(([n, count]) => a.get(n)?.size === count) ? a : undefined;
      },
      90_000,
    );
    for (const [name, blocks] of alloc) {
      expect(new Set(blocks.values()).size, `blocks of ${name} are unique`).toBe(
        want[name as keyof typeof want],
      );
    }
    const s = (await subnets()).find((x) => x.spec.network === "pods" && x.spec.node === "node-001")!;
    expect(s.spec.gateway).toBe(s.spec.block.replace(/0\/24$/, "1"));
    expect(s.spec.vtepAddress).toBe("198.18.0.1");
    expect(s.spec.vtepMAC).toMatch(/^([0-9a-f]{2}:){5}[0-9a-f]{2}$/);
    expect(s.metadata.ownerReferences?.[0]).toMatchObject({
      kind: "Network",
      name: "pods",
      controller: true,
    });
    const pods = await eventually("pods network status", async () => {
      const n = await network("pods");
      return n.status?.allocatedBlocks === 100 ? n : undefined;
    });
    expect(pods.status).toMatchObject({ capacityBlocks: 256, observedGeneration: 1 });
    expect(pods.status?.conditions?.find((c) => c.type === "Ready")).toMatchObject({
      status: "True",
      reason: "Allocated",
    });
  });

  it("keeps every allocation across an operator restart", async () => {
    const before = await allocation();
    const versions = new Map((await subnets()).map((s) => [s.metadata.name, s.metadata.resourceVersion]));
    for (const p of [...running]) await stop(p);
    const op = startOperator("op-a");
    await eventually(
      "the restarted operator to lead",
      async () => {
        const lease = await kc
          .makeApiClient(CoordinationV1Api)
          .readNamespacedLease({ name: "skein-operator", namespace: NAMESPACE });
        return lease.spec?.holderIdentity === "op-a" && !op.exited();
      },
      30_000,
    );
    // Give it time to reconcile everything it would change.
    await new Promise((r) => setTimeout(r, 3_000));
    expect(await allocation()).toEqual(before);
    const after = new Map((await subnets()).map((s) => [s.metadata.name, s.metadata.resourceVersion]));
    expect(after).toEqual(versions);
  });

  it("frees a deleted node's blocks and removes its storage pool and replica records", async () => {
    const volume = (await objects.createClusterCustomObject({
      group: GROUP,
      version: VERSION,
      plural: "volumes",
      body: {
        apiVersion: `${GROUP}/${VERSION}`,
        kind: "Volume",
        metadata: { name: "vol-1" },
        spec: { capacityBytes: 1048576, ownerNode: "node-001", replicas: 2 },
      },
    })) as Volume;
    volume.status = {
      replicas: [
        { node: "node-100", lastSyncedSnapshot: "s1" },
        { node: "node-002", lastSyncedSnapshot: "s1" },
      ],
    };
    await objects.replaceClusterCustomObjectStatus({
      group: GROUP,
      version: VERSION,
      plural: "volumes",
      name: "vol-1",
      body: volume,
    });
    await objects.createClusterCustomObject({
      group: GROUP,
      version: VERSION,
      plural: "storagepools",
      body: {
        apiVersion: `${GROUP}/${VERSION}`,
        kind: "StoragePool",
        metadata: { name: "node-100" },
        spec: { node: "node-100", pool: "tank" },
      },
    });
    await core.deleteNode({ name: "node-100" });
    await eventually(
      "node-100's blocks released",
      async () => (await subnets()).every((s) => s.spec.node !== "node-100"),
      30_000,
    );
    await eventually(
      "node-100's storage pool removed",
      async () => (await list<StoragePool>("storagepools")).length === 0,
      30_000,
    );
    expect((await allocation()).get("pods")?.size).toBe(99);
    const replicas = await eventually("node-100's replica record dropped", async () => {
      const v = (await objects.getClusterCustomObject({
        group: GROUP,
        version: VERSION,
        plural: "volumes",
        name: "vol-1",
      })) as Volume;
      return v.status?.replicas?.length === 1 ? v.status.replicas : undefined;
    });
    expect(replicas.map((r) => r.node)).toEqual(["node-002"]);
  });

  it("reports exhaustion as a condition and an event instead of failing silently", async () => {
    const tiny = await eventually("tiny to say it is full", async () => {
      const n = await network("tiny");
      const ready = n.status?.conditions?.find((c) => c.type === "Ready");
      return ready?.reason === "AddressSpaceExhausted" ? { n, ready } : undefined;
    });
    expect(tiny.ready.status).toBe("False");
    expect(tiny.ready.message).toMatch(
      /have no address block: 10\.251\.0\.0\/22 has room for 16 \/26 blocks/,
    );
    expect(tiny.n.status).toMatchObject({ allocatedBlocks: 16, capacityBlocks: 16 });
    const events = await kc.makeApiClient(EventsV1Api).listNamespacedEvent({ namespace: "default" });
    expect(
      events.items.some(
        (e) => e.regarding?.name === "tiny" && e.reason === "AddressSpaceExhausted" && e.type === "Warning",
      ),
    ).toBe(true);
  });

  it("refuses a network that overlaps an older one, with a reason", async () => {
    await createNetwork("clash", "10.244.128.0/17", 9);
    const ready = await eventually("clash to be refused", async () => {
      const c = (await network("clash")).status?.conditions?.find((x) => x.type === "Ready");
      return c?.reason === "CIDROverlap" ? c : undefined;
    });
    expect(ready.message).toMatch(/overlaps network pods \(10\.244\.0\.0\/16\)/);
    expect((await allocation()).get("clash")).toBeUndefined();
    await objects.deleteClusterCustomObject({
      group: GROUP,
      version: VERSION,
      plural: "networks",
      name: "clash",
    });
  });

  it("hands over to a standby within the lease when the leader is killed, and allocations stay unique", async () => {
    const standby = startOperator("op-b");
    const leases = kc.makeApiClient(CoordinationV1Api);
    const holder = async () =>
      (await leases.readNamespacedLease({ name: "skein-operator", namespace: NAMESPACE })).spec
        ?.holderIdentity;
    expect(await holder()).toBe("op-a");
    // op-b must be up and campaigning before the leader dies: its start-up (seconds on a loaded
    // machine) is not what the lease bounds.
    await eventually(
      "op-b to see the leader",
      () => readFileSync(standby.logPath, "utf8").includes('"leader":"op-a"'),
      30_000,
    );
    const leader = [...running].find((p) => p.name === "operator op-a")!;
    await stop(leader, "SIGKILL");
    const killedAt = Date.now();
    await createNode("node-new", "198.18.1.1");
    await eventually("op-b to lead", async () => (await holder()) === "op-b", 30_000);
    // The handover is what the lease bounds: op-b may lead once the record it last saw has
    // gone unrenewed for the lease duration, and it looks again every (jittered) retry
    // period; the slack is for a loaded 2-core machine. The reconcile after it is not
    // bounded by the lease (informers sync first), only required to happen.
    const handoverMs = Date.now() - killedAt;
    expect(handoverMs).toBeLessThan((LEASE.durationS + 3 * LEASE.retryS + 5) * 1000);
    await eventually(
      "node-new to get its blocks",
      // Two: "tiny" is full.
      async () => (await subnets()).filter((s) => s.spec.node === "node-new").length === 2,
      30_000,
    );
    for (const [name, blocks] of await allocation()) {
      expect(new Set(blocks.values()).size, `blocks of ${name} are unique`).toBe(blocks.size);
    }
    expect(standby.exited()).toBe(false);
  });

  it("releases the lease on SIGTERM so a standby takes over at once", async () => {
    const a = startOperator("op-c");
    const leases = kc.makeApiClient(CoordinationV1Api);
    const holder = async () =>
      (await leases.readNamespacedLease({ name: "skein-operator", namespace: NAMESPACE })).spec
        ?.holderIdentity;
    const b = [...running].find((p) => p.name === "operator op-b")!;
    // op-c must be up and campaigning before the leader leaves.
    await eventually(
      "op-c to see the leader",
      () => readFileSync(a.logPath, "utf8").includes('"leader":"op-b"'),
      30_000,
    );
    await stop(b);
    await eventually(
      "op-c to lead at once",
      async () => (await holder()) === "op-c",
      (LEASE.durationS - 1) * 1000,
    );
    await stop(a);
  });
});
