/**
 * What the agent's reconcilers share: who and where this node is, the ZFS
 * runner, the API, and the informer caches every decision is read from.
 */
import type { Snapshot, Volume } from "../../api/v1alpha1/index.ts";
import type { Informer } from "../../kit/k8s/informer.ts";
import type { Logger } from "../../kit/log.ts";
import type { SkeinApi } from "../skein-api.ts";
import type { Zfs } from "../zfs/runner.ts";

export interface AgentContext {
  node: string;
  pool: string;
  zfs: Zfs;
  api: SkeinApi;
  log: Logger;
  volumes: Informer<Volume>;
  snapshots: Informer<Snapshot>;
  now(): Date;
  /** Per volume, the last DeleteVolume retry (annotation value) the agent has acted on. */
  deleteRequests: Map<string, string>;
  /** Something changed the pool's free space: refresh the StoragePool soon. */
  poolChanged(): void;
  /** Look at this key again soon (`volume/<name>` or `snapshot/<name>`). */
  enqueue(key: string): void;
}

/** A reconcile that is not finished yet (waiting on another object) asks to be called again. */
export interface Outcome {
  requeueAfterMs?: number;
}

export const volumeKey = (name: string) => `volume/${name}`;
export const snapshotKey = (name: string) => `snapshot/${name}`;

/** The node whose pool holds a volume's data now: where the agent acts on it. */
export function holderOf(volume: Volume): string {
  return volume.status?.node ?? volume.spec.ownerNode;
}
