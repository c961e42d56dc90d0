/**
 * Where a Volume's warm replicas live, as a pure function of the cluster. The
 * operator only chooses the nodes (it writes `status.replicas[].node`); the
 * agent on each chosen node keeps its copy in sync and fills in the rest of
 * its entry. Placement is sticky: a replica that exists is never moved for a
 * "better" node, since a new one costs a full send.
 */
import type { V1Node } from "@kubernetes/client-node";
import type { StoragePool, Volume } from "../../api/v1alpha1/index.ts";

export type ReplicaStatus = NonNullable<NonNullable<Volume["status"]>["replicas"]>[number];

/** The taint of Kubernetes' non-graceful node shutdown: the node is down and will not come back as it was. */
export const OUT_OF_SERVICE_TAINT = "node.kubernetes.io/out-of-service";

/** A node that can hold nothing any more: deleted, being deleted, or marked out of service. */
export function isLost(node: V1Node | undefined): boolean {
  return (
    node === undefined ||
    node.metadata?.deletionTimestamp !== undefined ||
    (node.spec?.taints ?? []).some((t) => t.key === OUT_OF_SERVICE_TAINT)
  );
}

export interface Candidate {
  node: V1Node;
  /** The node's StoragePool, when its agent has published one (no pool: no agent, no replica). */
  pool: StoragePool | undefined;
}

/**
 * The replica list the volume should have: the entries it has on nodes that
 * are still fit (not lost, not the owner), topped up to `spec.replicas` from
 * schedulable nodes with a pool that has room for the whole volume, the
 * roomiest first, or trimmed (the most recently added go first). Undefined
 * when the list is right as it is.
 */
export function placeReplicas(volume: Volume, candidates: readonly Candidate[]): ReplicaStatus[] | undefined {
  const wanted = volume.metadata.deletionTimestamp ? 0 : (volume.spec.replicas ?? 0);
  const owner = volume.spec.ownerNode;
  const current = volume.status?.replicas ?? [];
  const byName = new Map(candidates.map((c) => [c.node.metadata?.name ?? "", c]));
  const kept = current.filter((r) => r.node !== owner && !isLost(byName.get(r.node)?.node)).slice(0, wanted);
  const taken = new Set([owner, ...kept.map((r) => r.node)]);
  const room = (c: Candidate) => c.pool?.status?.freeBytes ?? 0;
  const fresh = candidates
    .filter(
      (c) =>
        !taken.has(c.node.metadata?.name ?? "") &&
        !isLost(c.node) &&
        !c.node.spec?.unschedulable &&
        c.pool !== undefined &&
        room(c) >= volume.spec.capacityBytes,
    )
    .sort(
      (x, y) => room(y) - room(x) || (x.node.metadata?.name ?? "").localeCompare(y.node.metadata?.name ?? ""),
    )
    .slice(0, Math.max(0, wanted - kept.length))
    .map((c): ReplicaStatus => ({ node: c.node.metadata?.name ?? "" }));
  const next = [...kept, ...fresh];
  const same = next.length === current.length && next.every((r, i) => r.node === current[i]?.node);
  return same ? undefined : next;
}

/**
 * The replica a lost owner's volume fails over to: the one whose data is the
 * newest (its last sync minus the lag it had then), on a node that is not
 * lost itself. Undefined when there is none that ever synced.
 */
export function freshestReplica(
  volume: Volume,
  nodes: (name: string) => V1Node | undefined,
): ReplicaStatus | undefined {
  return (volume.status?.replicas ?? [])
    .filter((r) => r.lastSyncedSnapshot && r.lastSyncTime && !isLost(nodes(r.node)))
    .sort((x, y) => dataTime(y) - dataTime(x))[0];
}

/** When the data a replica holds was written up to (ms since the epoch). */
export function dataTime(r: ReplicaStatus): number {
  return Date.parse(r.lastSyncTime ?? "") - 1000 * (r.lagSeconds ?? 0);
}
