import type { V1Node } from "@kubernetes/client-node";
import { describe, expect, it } from "vitest";
import type { StoragePool, Volume } from "../../api/v1alpha1/index.ts";
import {
  type Candidate,
  freshestReplica,
  isLost,
  OUT_OF_SERVICE_TAINT,
  placeReplicas,
  type ReplicaStatus,
} from "./place.ts";

const GiB = 1024 ** 3;

function node(name: string, extra: { unschedulable?: boolean; outOfService?: boolean } = {}): V1Node {
  return {
    metadata: { name },
    spec: {
      ...(extra.unschedulable ? { unschedulable: true } : {}),
      ...(extra.outOfService ? { taints: [{ key: OUT_OF_SERVICE_TAINT, effect: "NoExecute" }] } : {}),
    },
  };
}

function pool(nodeName: string, freeBytes: number): StoragePool {
  return {
    apiVersion: "skein.io/v1alpha1",
    kind: "StoragePool",
    metadata: { name: nodeName },
    spec: { node: nodeName, pool: "tank" },
    status: { freeBytes },
  };
}

const candidate = (name: string, free = 10 * GiB, extra = {}): Candidate => ({
  node: node(name, extra),
  pool: pool(name, free),
});

function volume(replicas: number, current: ReplicaStatus[] = [], owner = "a"): Volume {
  return {
    apiVersion: "skein.io/v1alpha1",
    kind: "Volume",
    metadata: { name: "v" },
    spec: { capacityBytes: GiB, ownerNode: owner, replicas },
    status: { node: owner, replicas: current },
  };
}

const nodesOf = (list: ReplicaStatus[] | undefined) => list?.map((r) => r.node);

describe("replica placement", () => {
  const cluster = [candidate("a"), candidate("b", 5 * GiB), candidate("c", 8 * GiB), candidate("d", 2 * GiB)];

  it("places new replicas on the roomiest other nodes, never on the owner", () => {
    expect(nodesOf(placeReplicas(volume(2), cluster))).toEqual(["c", "b"]);
  });

  it("keeps existing replicas with their sync state rather than moving to a roomier node", () => {
    const current = [{ node: "d", lastSyncedSnapshot: "s", lagSeconds: 1 }];
    expect(placeReplicas(volume(2, current), cluster)).toEqual([current[0], { node: "c" }]);
    expect(placeReplicas(volume(1, current), cluster)).toBeUndefined();
  });

  it("trims to the count asked for, dropping the most recently added", () => {
    expect(nodesOf(placeReplicas(volume(1, [{ node: "b" }, { node: "c" }]), cluster))).toEqual(["b"]);
    expect(nodesOf(placeReplicas(volume(0, [{ node: "b" }]), cluster))).toEqual([]);
  });

  it("drops the replica on a node that became the owner (a move to it) and places another", () => {
    // The old owner "a" is now the roomiest other node.
    expect(nodesOf(placeReplicas(volume(1, [{ node: "c" }], "c"), cluster))).toEqual(["a"]);
  });

  it("replaces replicas on lost nodes: deleted or tainted out of service", () => {
    const lostC = [candidate("a"), candidate("b"), candidate("c", 10 * GiB, { outOfService: true })];
    expect(nodesOf(placeReplicas(volume(1, [{ node: "c" }]), lostC))).toEqual(["b"]);
    expect(nodesOf(placeReplicas(volume(1, [{ node: "gone" }]), cluster))).toEqual(["c"]);
  });

  it("skips cordoned nodes, nodes without a pool, and pools without room for the volume", () => {
    const odd: Candidate[] = [
      candidate("a"),
      candidate("b", 10 * GiB, { unschedulable: true }),
      { node: node("c"), pool: undefined },
      candidate("d", GiB - 1),
    ];
    expect(placeReplicas(volume(2), odd)).toBeUndefined();
  });

  it("places fewer than asked when the cluster has too few nodes, and nothing for a volume being deleted", () => {
    expect(nodesOf(placeReplicas(volume(5), cluster))).toEqual(["c", "b", "d"]);
    const deleting = {
      ...volume(2, [{ node: "b" }]),
      metadata: { name: "v", deletionTimestamp: new Date() },
    };
    expect(nodesOf(placeReplicas(deleting, cluster))).toEqual([]);
  });
});

describe("failover choice", () => {
  const nodes = new Map([
    ["b", node("b")],
    ["c", node("c")],
    ["d", node("d", { outOfService: true })],
  ]);
  const v = volume(3, [
    { node: "b", lastSyncedSnapshot: "s1", lastSyncTime: "2026-01-01T00:00:10Z", lagSeconds: 1 },
    // Synced later but with more lag: its data is older.
    { node: "c", lastSyncedSnapshot: "s2", lastSyncTime: "2026-01-01T00:00:12Z", lagSeconds: 5 },
    { node: "d", lastSyncedSnapshot: "s3", lastSyncTime: "2026-01-01T00:00:20Z", lagSeconds: 0 },
    { node: "e" },
  ]);

  it("picks the replica with the newest data on a node that is not lost itself", () => {
    expect(freshestReplica(v, (n) => nodes.get(n))?.node).toBe("b");
  });

  it("finds none when no replica ever synced", () => {
    expect(freshestReplica(volume(1, [{ node: "b" }]), (n) => nodes.get(n))).toBeUndefined();
  });

  it("counts a deleted node, one being deleted, and one tainted out of service as lost", () => {
    expect(isLost(undefined)).toBe(true);
    expect(isLost({ metadata: { name: "x", deletionTimestamp: new Date() } })).toBe(true);
    expect(isLost(node("x", { outOfService: true }))).toBe(true);
    expect(isLost(node("x", { unschedulable: true }))).toBe(false);
  });
});
