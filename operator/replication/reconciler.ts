/**
 * Warm replicas and failover, per Volume (place.ts decides; this acts):
 *
 * - chooses the nodes that hold a volume's replicas (`status.replicas[].node`,
 *   written by compare-and-swap, since the replica agents write their sync
 *   state into the same list); the agents do the copying;
 * - when the owner node is lost and the volume asks for `autoFailover`,
 *   creates a forced VolumeMigration to the freshest replica, under a name
 *   derived from the volume and the lost owner, so it is made once however
 *   often this runs. The migration controller does the promotion.
 */
import { createHash } from "node:crypto";
import type { KubeConfig, V1Node } from "@kubernetes/client-node";
import {
  GROUP,
  KINDS,
  type StoragePool,
  VERSION,
  type Volume,
  type VolumeMigration,
} from "../../api/v1alpha1/index.ts";
import { SkeinApi } from "../../csi/skein-api.ts";
import { isConflict } from "../../kit/k8s/api-status.ts";
import { type EventRecorder, objectReference } from "../../kit/k8s/events.ts";
import type { Informer } from "../../kit/k8s/informer.ts";
import { customStatusAccess, updateStatus } from "../../kit/k8s/status.ts";
import type { Logger } from "../../kit/log.ts";
import { type Candidate, freshestReplica, isLost, placeReplicas } from "./place.ts";

export interface ReplicationDeps {
  kubeConfig: KubeConfig;
  volumes: Informer<Volume>;
  nodes: Informer<V1Node>;
  pools: Informer<StoragePool>;
  migrations: Informer<VolumeMigration>;
  events: EventRecorder;
  log: Logger;
}

const volumeResource = { group: GROUP, version: VERSION, plural: KINDS.Volume.plural };
/** A lost owner with no replica to promote is looked at again this often (a replica may finish syncing). */
const NO_REPLICA_RETRY_MS = 10_000;

const TERMINAL = new Set(["Completed", "Failed", "RolledBack"]);

/** The forced migration of `volume` away from its lost owner: one name per (volume, owner). */
export function failoverName(volume: Volume): string {
  const hash = createHash("sha256")
    .update(`${volume.metadata.uid ?? volume.metadata.name}/${volume.spec.ownerNode}`)
    .digest("hex")
    .slice(0, 10);
  return `${(volume.metadata.name ?? "").slice(0, 200)}-failover-${hash}`;
}

export class ReplicationReconciler {
  private readonly api: SkeinApi;

  constructor(private readonly deps: ReplicationDeps) {
    this.api = new SkeinApi(deps.kubeConfig);
  }

  /** Volumes whose placement or failover a change of nodes or pools may affect. */
  keysForCluster = (): string[] =>
    this.deps.volumes
      .list()
      .filter((v) => (v.spec.replicas ?? 0) > 0 || (v.status?.replicas?.length ?? 0) > 0)
      .map((v) => v.metadata.name ?? "");

  async reconcile(name: string): Promise<{ requeueAfterMs?: number } | undefined> {
    const volume = this.deps.volumes.get(name);
    if (!volume) return;
    await this.place(volume);
    return this.failover(volume);
  }

  private async place(volume: Volume): Promise<void> {
    const pools = new Map(this.deps.pools.list().map((p) => [p.spec.node, p]));
    const candidates: Candidate[] = this.deps.nodes
      .list()
      .map((node) => ({ node, pool: pools.get(node.metadata?.name ?? "") }));
    if (!placeReplicas(volume, candidates)) return;
    const name = volume.metadata.name ?? "";
    const before = (volume.status?.replicas ?? []).map((r) => r.node);
    const written = await updateStatus<Volume>(
      customStatusAccess(this.deps.kubeConfig, volumeResource, name),
      (draft) => {
        const next = placeReplicas(draft, candidates);
        if (!next) return false;
        draft.status = { ...draft.status, replicas: next };
        return true;
      },
      { current: volume, describe: `Volume ${name}` },
    );
    const after = (written.status?.replicas ?? []).map((r) => r.node);
    const wanted = volume.spec.replicas ?? 0;
    this.deps.log.info({ volume: name, before, after, wanted }, "placed the volume's replicas");
    const short = after.length < wanted && !volume.metadata.deletionTimestamp;
    this.deps.events.record({
      regarding: objectReference(volume),
      type: short ? "Warning" : "Normal",
      reason: short ? "TooFewReplicaNodes" : "ReplicasPlaced",
      action: "PlaceReplicas",
      note: `replicas of volume ${name} on ${after.length > 0 ? after.join(", ") : "no node"}${short ? `: ${wanted} wanted, but no other node is fit (a pool with ${volume.spec.capacityBytes} bytes free, schedulable, not out of service)` : ""}`,
    });
  }

  private async failover(volume: Volume): Promise<{ requeueAfterMs?: number } | undefined> {
    const name = volume.metadata.name ?? "";
    const owner = volume.spec.ownerNode;
    if (!volume.spec.autoFailover || volume.metadata.deletionTimestamp) return;
    if (!isLost(this.deps.nodes.get(owner))) return;
    const moving = this.deps.migrations
      .list()
      .some((m) => m.spec.volume === name && m.spec.force && !TERMINAL.has(m.status?.phase ?? ""));
    if (moving) return;
    const replica = freshestReplica(volume, (n) => this.deps.nodes.get(n));
    if (!replica) {
      this.deps.log.warn(
        { volume: name, owner },
        "the owner node is lost and no synced replica is left to promote; waiting for one",
      );
      return { requeueAfterMs: NO_REPLICA_RETRY_MS };
    }
    const migration = failoverName(volume);
    try {
      await this.api.create("VolumeMigration", {
        metadata: { name: migration },
        spec: {
          volume: name,
          targetNode: replica.node,
          force: true,
          reason: `autoFailover: node ${owner} is lost`,
        },
      });
    } catch (err) {
      // Made before (by this operator before a restart, or an earlier attempt that failed and waits for a user).
      if (isConflict(err)) return;
      throw err;
    }
    this.deps.log.warn({ volume: name, owner, target: replica.node, migration }, "failing over to a replica");
    this.deps.events.record({
      regarding: objectReference(volume),
      type: "Warning",
      reason: "FailingOver",
      action: "Failover",
      note: `node ${owner} is lost; promoting the replica of volume ${name} on ${replica.node} (VolumeMigration ${migration})`,
    });
    return;
  }
}
