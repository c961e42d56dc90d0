import { describe, expect, it } from "vitest";
import type { Volume } from "../../api/v1alpha1/index.ts";
import {
  isReplicaOn,
  replicaSeries,
  replicaSnapshot,
  staleReplicaSnapshots,
  synced,
} from "./replica-plan.ts";

function volume(replicas: string[], owner = "a", deleting = false): Volume {
  return {
    apiVersion: "skein.io/v1alpha1",
    kind: "Volume",
    metadata: { name: "v", ...(deleting ? { deletionTimestamp: new Date() } : {}) },
    spec: { capacityBytes: 1, ownerNode: owner },
    status: { node: owner, replicas: replicas.map((node) => ({ node })) },
  };
}

describe("a node's part in warm replicas", () => {
  it("names each node's replica snapshots in a series of its own, valid as transfer snapshot names", () => {
    const b = replicaSeries("node-b.example.com");
    expect(b).toMatch(/^skein-xfer-r[0-9a-f]{12}-$/);
    expect(replicaSeries("node-c")).not.toBe(b);
    expect(replicaSnapshot("node-b.example.com", 1700000000123)).toBe(`${b}1700000000123`);
  });

  it("keeps a replica only where listed, never on the owner, and not for a volume being deleted", () => {
    expect(isReplicaOn(volume(["b"]), "b")).toBe(true);
    expect(isReplicaOn(volume(["b"]), "c")).toBe(false);
    expect(isReplicaOn(volume(["b"], "b"), "b")).toBe(false);
    expect(isReplicaOn(volume(["b"], "a", true), "b")).toBe(false);
    expect(isReplicaOn(undefined, "b")).toBe(false);
  });

  it("finds the owner's snapshots of replica series whose node is no longer a replica", () => {
    const ds = "tank/skein/v";
    const snapshots = [
      `${ds}@${replicaSnapshot("b", 1)}`,
      `${ds}@${replicaSnapshot("c", 2)}`,
      `${ds}@skein-xfer-0123abcd4567-3`,
      `${ds}@user-snapshot`,
    ];
    expect(staleReplicaSnapshots(volume(["b"]), snapshots)).toEqual([`${ds}@${replicaSnapshot("c", 2)}`]);
    expect(staleReplicaSnapshots(volume([]), snapshots)).toHaveLength(2);
  });

  it("records a round: the snapshot, when it landed, and the seconds of writes it lacked then", () => {
    const entry = synced(
      { node: "b", lagSeconds: 9 },
      "s",
      new Date("2026-01-01T00:00:00.500Z"),
      new Date("2026-01-01T00:00:02.100Z"),
    );
    expect(entry).toEqual({
      node: "b",
      lastSyncedSnapshot: "s",
      lastSyncTime: "2026-01-01T00:00:02Z",
      lagSeconds: 2,
    });
  });
});
