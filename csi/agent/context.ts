/**
 * What the agent's reconcilers share: who and where this node is, the ZFS
 * runner, the API, and the informer caches every decision is read from.
 */
import type { V1Node } from "@kubernetes/client-node";
import type { Snapshot, Volume, VolumeMigration } from "../../api/v1alpha1/index.ts";
import type { Informer } from "../../kit/k8s/informer.ts";
import type { Logger } from "../../kit/log.ts";
import type { SkeinApi } from "../skein-api.ts";
import type { TransferTls } from "../transfer/server.ts";
import type { OperationLocks } from "../wait.ts";
import type { Zfs } from "../zfs/runner.ts";
import type { SnapshotSignals } from "./snapshot-signals.ts";

export interface AgentContext {
  node: string;
  pool: string;
  zfs: Zfs;
  api: SkeinApi;
  log: Logger;
  volumes: Informer<Volume>;
  snapshots: Informer<Snapshot>;
  migrations: Informer<VolumeMigration>;
  /** Nodes, for their InternalIP: where a peer's transfer endpoint is. */
  nodes: Informer<V1Node>;
  /** Absent when the node has no transfer certificate: it then cannot move volumes. */
  transfer: { tls: TransferTls; peerPort: number } | undefined;
  /** Shared with the Node service: one operation per volume at a time (publish, release). */
  locks: OperationLocks;
  /** Volumes this node released for a migration's cutover: no new mount, and they stay read-only. */
  fenced: Set<string>;
  /** Final snapshots this process took and recorded; a target's pull waits on them at the transfer endpoint. */
  finals: SnapshotSignals;
  /** Per migration (uid), when this node last finished a round as its target. */
  lastRound: Map<string, number>;
  /** How often a replica on this node pulls the owner's changes. */
  replicaSyncMs: number;
  /** Per volume, when the replica on this node last finished a round. */
  lastReplicaSync: Map<string, number>;
  now(): Date;
  /** Per volume, the last DeleteVolume retry (annotation value) the agent has acted on. */
  deleteRequests: Map<string, string>;
  /** Something changed the pool's free space: refresh the StoragePool soon. */
  poolChanged(): void;
  /** Look at this key again soon (`volume/<name>`, `snapshot/<name>`, `migration/<name>` or `replica/<name>`). */
  enqueue(key: string): void;
}

/** A reconcile that is not finished yet (waiting on another object) asks to be called again. */
export interface Outcome {
  requeueAfterMs?: number;
}

export const volumeKey = (name: string) => `volume/${name}`;
export const snapshotKey = (name: string) => `snapshot/${name}`;
export const migrationKey = (name: string) => `migration/${name}`;
export const replicaKey = (name: string) => `replica/${name}`;

/** The node whose pool holds a volume's data now: where the agent acts on it. */
export function holderOf(volume: Volume): string {
  return volume.status?.node ?? volume.spec.ownerNode;
}
