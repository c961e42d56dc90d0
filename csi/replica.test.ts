/**
 * Warm replicas and failover on three simulated nodes as real processes (see
 * testing/migration-cluster.ts): the operator places a volume's replicas, the
 * agents keep them in sync as read-only, unmounted copies, a move to a replica
 * node carries only the delta, and when the owner node is lost the freshest
 * replica is promoted (automatically with autoFailover, or by a forced
 * VolumeMigration), with the data-loss window stated.
 */
import { CoreV1Api, PatchStrategy, setHeaderOptions } from "@kubernetes/client-node";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import type { Volume } from "../api/v1alpha1/index.ts";
import { run } from "../kit/exec.ts";
import { OUT_OF_SERVICE_TAINT } from "../operator/replication/place.ts";
import { type MigrationCluster, type SimNode, startMigrationCluster } from "./testing/migration-cluster.ts";
import { MiB, settles, volumeKit } from "./testing/volume-kit.ts";
import { incomingDataset, volumeDataset } from "./zfs/names.ts";

const REPLICA_SYNC_S = 2;
const JSON_PATCH = setHeaderOptions("Content-Type", PatchStrategy.JsonPatch);

type Replica = NonNullable<NonNullable<Volume["status"]>["replicas"]>[number];

describe("warm replicas and failover on three nodes", () => {
  let c: MigrationCluster;
  let nodes: SimNode[];
  const kit = volumeKit(() => c, "rep");
  const byName = (name: string) => nodes.find((n) => n.name === name) as SimNode;

  beforeAll(async () => {
    c = await startMigrationCluster({ nodes: 3, replicaSyncS: REPLICA_SYNC_S, cutoverTimeoutS: 30 });
    nodes = c.nodes;
  }, 300_000);

  afterAll(async () => {
    await c?.stop();
  });

  afterEach(async () => {
    for (const v of (await c.api.list("Volume")).items) await c.api.delete("Volume", v.metadata.name ?? "");
  });

  async function volume(name: string): Promise<Volume> {
    const v = await c.api.get("Volume", name);
    if (!v) throw new Error(`volume ${name} is gone`);
    return v;
  }

  /** The replica entries once every one of them has synced at least `after` (a snapshot name to move past). */
  const synced = (name: string, count: number, after: Record<string, string | undefined> = {}) =>
    settles(
      `${count} synced replica(s) of ${name}`,
      async () => {
        const replicas = (await volume(name)).status?.replicas ?? [];
        expect(replicas).toHaveLength(count);
        for (const r of replicas) {
          expect(r.lastSyncedSnapshot, JSON.stringify(r)).toBeTruthy();
          if (after[r.node]) expect(r.lastSyncedSnapshot, JSON.stringify(r)).not.toBe(after[r.node]);
        }
        return replicas;
      },
      60_000,
    );

  const props = async (dataset: string) =>
    (await run(["zfs", "get", "-H", "-o", "value", "mounted,readonly", dataset])).stdout.trim().split("\n");

  it("keeps read-only, unmounted replicas in sync on other nodes, and a move to one sends only the delta", async () => {
    const [a] = nodes as [SimNode];
    const { name, sums } = await kit.createVolume(a, 4, 8, { replicas: 1 });
    const [first] = (await synced(name, 1)) as [Replica];
    const replicaNode = byName(first.node);
    expect(replicaNode).not.toBe(a);
    expect(first.lagSeconds).toBeGreaterThanOrEqual(0);
    expect(Date.parse(first.lastSyncTime ?? "")).toBeGreaterThan(Date.now() - 60_000);
    // The copy: received under the read-only, unmounted incoming root, nowhere a pod could mount it.
    expect(await props(incomingDataset(replicaNode.pool.name, name))).toEqual(["no", "on"]);
    expect(await kit.exists(volumeDataset(replicaNode.pool.name, name))).toBe(false);

    // New writes reach the replica at the next sync.
    kit.writeFile(a, name, "later.bin", 2 * MiB, sums);
    await synced(name, 1, { [first.node]: first.lastSyncedSnapshot });

    // Moving to the replica node sends the little that changed since, not the 32 MiB.
    kit.writeFile(a, name, "last.bin", MiB, sums);
    const moved = await kit.migrate(name, replicaNode);
    const done = await kit.until(moved, (m) => m.status?.phase === "Completed", 120_000);
    expect(done.status?.bytesSent).toBeLessThan(8 * MiB);
    await settles(
      "the new owner to report the volume",
      async () => expect((await volume(name)).status?.node).toBe(replicaNode.name),
      30_000,
    );
    expect(kit.checksums(kit.mountpoint(replicaNode, name))).toEqual(sums);

    // The new owner no longer counts as a replica; one is placed elsewhere and syncs.
    const [next] = (await synced(name, 1)) as [Replica];
    expect(next.node).not.toBe(replicaNode.name);
  });

  it("drops a replica when the count goes down, and its copy with it", async () => {
    const [a] = nodes as [SimNode];
    const { name } = await kit.createVolume(a, 1, 2, { replicas: 2 });
    const replicas = await synced(name, 2);
    await c.api.patch("Volume", name, { spec: { replicas: 0 } });
    await settles(
      "no replica left",
      async () => expect((await volume(name)).status?.replicas).toEqual([]),
      30_000,
    );
    for (const r of replicas) {
      await settles(
        `the copy on ${r.node} to go`,
        async () => expect(await kit.exists(incomingDataset(byName(r.node).pool.name, name))).toBe(false),
        30_000,
      );
    }
  });

  it("refuses to force a promotion while the owner serves the volume", async () => {
    const [a] = nodes as [SimNode];
    const { name, sums } = await kit.createVolume(a, 1, 1, { replicas: 1 });
    const [r] = (await synced(name, 1)) as [Replica];
    const forced = await kit.migrate(name, byName(r.node), `${name}-forced`, true);
    const failed = await kit.until(forced, (m) => m.status?.phase === "Failed", 30_000);
    const succeeded = failed.status?.conditions?.find((x) => x.type === "Succeeded");
    expect(succeeded).toMatchObject({ status: "False", reason: "OwnerNotLost" });
    expect(succeeded?.message).toMatch(/remove force/);
    expect((await volume(name)).spec.ownerNode).toBe(a.name);
    expect(kit.checksums(kit.mountpoint(a, name))).toEqual(sums);
  });

  it("promotes the freshest replica when the owner node is lost and the volume asks for autoFailover", async () => {
    const [a] = nodes as [SimNode];
    const { name, sums } = await kit.createVolume(a, 2, 4, { replicas: 2, autoFailover: true });
    const before = await synced(name, 2);
    // Written, then synced to both replicas: a failover keeps it.
    kit.writeFile(a, name, "synced.bin", MiB, sums);
    const after = await synced(
      name,
      2,
      Object.fromEntries(before.map((r) => [r.node, r.lastSyncedSnapshot])),
    );
    // The owner goes down for good: its agent dies, and the node is marked out of service.
    a.killAgent();
    const core = c.kc.makeApiClient(CoreV1Api);
    await core.patchNode(
      {
        name: a.name,
        body: [
          { op: "add", path: "/spec/taints", value: [{ key: OUT_OF_SERVICE_TAINT, effect: "NoExecute" }] },
        ],
      },
      JSON_PATCH,
    );
    try {
      const promoted = await settles(
        "a failover migration to complete",
        async () => {
          const m = (await c.api.list("VolumeMigration")).items.find(
            (x) => x.spec.volume === name && x.spec.force,
          );
          expect(m?.status?.phase, JSON.stringify(m?.status)).toBe("Completed");
          return m!;
        },
        90_000,
      );
      expect(after.map((r) => r.node)).toContain(promoted.spec.targetNode);
      expect(promoted.status?.dataLossWindowSeconds).toBeGreaterThanOrEqual(0);
      expect(promoted.status?.sourceNode).toBe(a.name);
      const owner = byName(promoted.spec.targetNode);
      await settles(
        "the promoted owner to report the volume",
        async () => {
          const v = await volume(name);
          expect(v.spec.ownerNode).toBe(owner.name);
          expect(v.status?.node).toBe(owner.name);
          expect(v.status?.phase).toBe("Ready");
        },
        30_000,
      );
      // Everything synced before the loss is there, and the new owner mounts it read-write.
      expect(kit.checksums(kit.mountpoint(owner, name))).toEqual(sums);
      const target = await kit.publish(owner, name);
      await kit.unpublish(owner, name, target);
    } finally {
      await core
        .patchNode({ name: a.name, body: [{ op: "remove", path: "/spec/taints" }] }, JSON_PATCH)
        .catch(() => undefined);
      await a.startAgent();
    }
    // The old owner, back, gives up its stale copy rather than serving it.
    await settles(
      "the lost owner's stale copy to go",
      async () => expect(await kit.exists(volumeDataset(a.pool.name, name))).toBe(false),
      60_000,
    );
  });
});
