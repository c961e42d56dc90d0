/**
 * Warm replicas, as this node's agent sees them (the shell is replica.ts). The
 * operator chooses the replica nodes (`Volume.status.replicas[].node`); on each
 * of them the agent pulls a round from the owner every sync interval into its
 * copy, the same read-only, unmounted `<pool>/skein-incoming/<volume>` a
 * migration to that node would build, so a move to a replica node sends only
 * the delta. Each replica's snapshots on the owner form one series (one name
 * prefix per replica node), which the owner's transfer endpoint prunes as the
 * rounds go by; the owner drops the series of nodes that are no longer replicas.
 */
import { createHash } from "node:crypto";
import type { Volume } from "../../api/v1alpha1/index.ts";
import { formatTime } from "../../kit/k8s/conditions.ts";
import { TRANSFER_SNAPSHOT_PREFIX } from "../transfer/protocol.ts";

export type ReplicaStatus = NonNullable<NonNullable<Volume["status"]>["replicas"]>[number];

/** The name prefix of `node`'s replica snapshots (node names are too long and free-form to use as they are). */
export function replicaSeries(node: string): string {
  return `${TRANSFER_SNAPSHOT_PREFIX}r${createHash("sha256").update(node).digest("hex").slice(0, 12)}-`;
}

/** The snapshot a replica round on `node` asks the owner to take at `atMs`: increasing with time. */
export const replicaSnapshot = (node: string, atMs: number) => `${replicaSeries(node)}${atMs}`;

/** Whether `node` should keep a replica of the volume: listed, not the owner, the volume not being deleted. */
export function isReplicaOn(volume: Volume | undefined, node: string): boolean {
  return (
    volume !== undefined &&
    !volume.metadata.deletionTimestamp &&
    volume.spec.ownerNode !== node &&
    (volume.status?.replicas ?? []).some((r) => r.node === node)
  );
}

const REPLICA_SNAPSHOT = /^skein-xfer-r[0-9a-f]{12}-\d+$/;

/** Whether a snapshot (short name) is one of some node's replica rounds. */
export const isReplicaSnapshot = (short: string): boolean => REPLICA_SNAPSHOT.test(short);

/** The owner's snapshots (full names) that belong to replica series of nodes no longer replicas. */
export function staleReplicaSnapshots(volume: Volume, snapshots: readonly string[]): string[] {
  const live = (volume.status?.replicas ?? []).map((r) => replicaSeries(r.node));
  return snapshots.filter((full) => {
    const short = full.slice(full.indexOf("@") + 1);
    return isReplicaSnapshot(short) && !live.some((prefix) => short.startsWith(prefix));
  });
}

/** The replica's entry after a round: the snapshot it holds, when it landed, and how old its data was then. */
export function synced(
  entry: ReplicaStatus,
  snapshot: string,
  takenAt: Date,
  finishedAt: Date,
): ReplicaStatus {
  return {
    ...entry,
    lastSyncedSnapshot: snapshot,
    lastSyncTime: formatTime(finishedAt),
    lagSeconds: Math.max(0, Math.ceil((finishedAt.getTime() - takenAt.getTime()) / 1000)),
  };
}
