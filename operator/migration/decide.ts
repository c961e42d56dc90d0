/**
 * The VolumeMigration state machine, as a pure function of what the operator
 * observes (the migration, its Volume, the cluster) to the one next step. The
 * agents do the data work and report it in the migration's status (see
 * csi/agent/migration.ts); this decides the phases from those reports:
 *
 *   Pending      → Replicating   the volume exists, is owned by the expected
 *                                source, and no older migration moves it
 *   Replicating  → CuttingOver   the source released the volume (finalSnapshot)
 *   CuttingOver  → (ownerNode := target, compare-and-swap)
 *                                the target holds the final snapshot
 *   CuttingOver  → Completed     the target reports the volume Ready as owner;
 *                                downtime = that moment − the source's release
 *                                (− the migration's creation, for a move that
 *                                ControllerPublishVolume started)
 *   CuttingOver  → RolledBack    the target did not get ready within the
 *                                cutover timeout (the source still owns the
 *                                volume and lifts its fence)
 *   any          → Failed        the volume is gone, or moved by someone else,
 *                                or its owner node is lost (only a forced
 *                                migration, which promotes a replica, goes on)
 *   Pending      → CuttingOver   forced: the owner is lost and the target holds
 *                                a synced replica (promote, below)
 *
 * Never: ownership moved before the target has the final snapshot, or a
 * rollback after ownership moved (the swap is checked against the observed
 * owner, and a migration whose volume the target owns only completes).
 */
import {
  PUBLISH_MIGRATION_REASON,
  type Volume,
  type VolumeMigration,
  type VolumeMigrationStatus,
} from "../../api/v1alpha1/index.ts";
import { type Condition, formatPreciseTime, formatTime, setCondition } from "../../kit/k8s/conditions.ts";
import { dataTime, OUT_OF_SERVICE_TAINT } from "../replication/place.ts";

export interface Observed {
  migration: VolumeMigration;
  volume: Volume | undefined;
  /** Whether the target Node exists. */
  targetExists: boolean;
  /** Whether the volume's owner node is lost (deleted, or tainted out of service). */
  ownerLost: boolean;
  /** Older migrations of the same volume that have not finished (they go first). */
  olderActive: string[];
  /** Names of the volume's Snapshot objects (their data does not move yet). */
  snapshots: string[];
  now: Date;
  cutoverTimeoutMs: number;
}

export type Step =
  | { kind: "none" }
  | { kind: "wait"; afterMs: number; why: string }
  | {
      kind: "status";
      status: VolumeMigrationStatus;
      event?: { type: "Normal" | "Warning"; reason: string; note: string };
    }
  | { kind: "moveOwner"; from: string; to: string; resourceVersion: string };

const TERMINAL = new Set(["Completed", "Failed", "RolledBack"]);

const ms = (t: string | undefined) => (t ? Date.parse(t) : Number.NaN);

type End = (
  to: "Failed" | "RolledBack" | "Completed",
  reason: string,
  note: string,
  extra?: VolumeMigrationStatus,
) => Step;

/**
 * A forced migration promotes the target's replica: only when the owner is
 * lost (a live owner could still be writing, and two writers lose data), and
 * only a replica that has synced. It goes straight to the cutover, with the
 * replica's last synced snapshot as the final one; what was written after it
 * is lost, and the status says how much time that covers.
 */
function promote(o: Observed, end: End): Step {
  const m = o.migration;
  const volume = o.volume as Volume;
  const owner = volume.spec.ownerNode;
  const target = m.spec.targetNode;
  if (!o.ownerLost) {
    return end(
      "Failed",
      "OwnerNotLost",
      `node ${owner} still serves volume ${m.spec.volume}; a forced migration only promotes a replica once the owner node is deleted or tainted ${OUT_OF_SERVICE_TAINT}: remove force to move the data without loss`,
    );
  }
  const replica = volume.status?.replicas?.find((r) => r.node === target && r.lastSyncedSnapshot);
  if (!replica?.lastSyncedSnapshot) {
    const synced = (volume.status?.replicas ?? []).filter((r) => r.lastSyncedSnapshot).map((r) => r.node);
    return end(
      "Failed",
      "NoReplica",
      `node ${target} holds no synced replica of volume ${m.spec.volume}; ${synced.length > 0 ? `promote one on ${synced.join(", ")}` : "it has no synced replica anywhere, so its data cannot be recovered by Skein"}`,
    );
  }
  const lossSeconds = Math.max(0, Math.ceil((o.now.getTime() - dataTime(replica)) / 1000));
  return {
    kind: "status",
    status: {
      ...m.status,
      phase: "CuttingOver",
      sourceNode: owner,
      round: 0,
      bytesSent: 0,
      finalSnapshot: replica.lastSyncedSnapshot,
      sourceReleasedTime: formatPreciseTime(o.now),
      startTime: formatTime(o.now),
      dataLossWindowSeconds: lossSeconds,
      observedGeneration: m.metadata.generation,
    },
    event: {
      type: "Warning",
      reason: "PromotingReplica",
      note: `node ${owner} is lost; promoting the replica of volume ${m.spec.volume} on ${target}: writes of the last ${lossSeconds} s before the loss are gone`,
    },
  };
}

function sourceLost(volume: string, owner: string, end: End): Step {
  return end(
    "Failed",
    "SourceLost",
    `node ${owner}, which owns volume ${volume}, is lost (deleted or tainted ${OUT_OF_SERVICE_TAINT}); its data can only come from a replica: create a VolumeMigration with force to promote one`,
  );
}

export function decide(o: Observed): Step {
  const m = o.migration;
  const status = m.status ?? {};
  const phase = status.phase ?? "Pending";
  if (TERMINAL.has(phase)) return { kind: "none" };
  const volume = o.volume;
  // The outcome is also a Succeeded condition, so `kubectl get -o yaml` says why without the Events.
  const end: End = (to, reason, note, extra = {}) => ({
    kind: "status",
    status: {
      ...status,
      ...extra,
      phase: to,
      completionTime: formatTime(o.now),
      observedGeneration: m.metadata.generation,
      conditions: [
        ...setCondition(
          status.conditions as Condition[] | undefined,
          {
            type: "Succeeded",
            status: to === "Completed" ? "True" : "False",
            reason,
            message: note,
            ...(m.metadata.generation === undefined ? {} : { observedGeneration: m.metadata.generation }),
          },
          o.now,
        ),
      ],
    },
    event: { type: to === "Completed" ? "Normal" : "Warning", reason, note },
  });
  if (!volume || volume.metadata.deletionTimestamp) {
    return end("Failed", "VolumeNotFound", `volume ${m.spec.volume} does not exist (or is being deleted)`);
  }
  const owner = volume.spec.ownerNode;
  const target = m.spec.targetNode;

  if (phase === "Pending") {
    if (owner === target && volume.status?.node === target) {
      return end("Completed", "AlreadyThere", `volume ${m.spec.volume} is already on node ${target}`, {
        sourceNode: target,
        round: 0,
        downtimeMilliseconds: 0,
      });
    }
    if (m.spec.sourceNode && m.spec.sourceNode !== owner) {
      return end(
        "Failed",
        "SourceMismatch",
        `volume ${m.spec.volume} is owned by ${owner}, not by ${m.spec.sourceNode} as the migration expects; create a new VolumeMigration without sourceNode to move it from ${owner}`,
      );
    }
    if (!o.targetExists) {
      return end(
        "Failed",
        "TargetNotFound",
        `node ${target} does not exist; create the migration for a node that does`,
      );
    }
    if (m.spec.force) return promote(o, end);
    if (o.snapshots.length > 0) {
      return end(
        "Failed",
        "HasSnapshots",
        `volume ${m.spec.volume} has snapshots (${o.snapshots.join(", ")}), which migrations do not carry yet; delete them, or keep the volume on ${owner}`,
      );
    }
    if (o.olderActive.length > 0) {
      return { kind: "wait", afterMs: 2_000, why: `migration ${o.olderActive[0]} moves this volume first` };
    }
    if (o.ownerLost) return sourceLost(m.spec.volume, owner, end);
    return {
      kind: "status",
      status: {
        ...status,
        phase: "Replicating",
        sourceNode: owner,
        round: 0,
        bytesSent: 0,
        progressPercent: 0,
        startTime: formatTime(o.now),
        observedGeneration: m.metadata.generation,
      },
      event: {
        type: "Normal",
        reason: "Replicating",
        note: `copying volume ${m.spec.volume} from ${owner} to ${target}`,
      },
    };
  }

  const source = status.sourceNode ?? "";
  if (owner === target) {
    // Ownership has moved (maybe by this operator before a restart): finish once the target reports it.
    if (volume.status?.node === target && volume.status.phase === "Ready") {
      // Unavailable since the release; or, for a move a pod's scheduling started (it had left the
      // source already), since the migration was created: it waited through the whole copy.
      const since =
        m.spec.reason === PUBLISH_MIGRATION_REASON
          ? new Date(m.metadata.creationTimestamp ?? Number.NaN).getTime()
          : ms(status.sourceReleasedTime);
      const downtime = Number.isNaN(since) ? undefined : Math.max(0, o.now.getTime() - since);
      return end(
        "Completed",
        "Completed",
        `volume ${m.spec.volume} moved from ${source} to ${target}${downtime === undefined ? "" : ` with ${downtime} ms of downtime`}`,
        {
          ...(downtime === undefined ? {} : { downtimeMilliseconds: downtime }),
          progressPercent: 100,
        },
      );
    }
    return { kind: "wait", afterMs: 500, why: `waiting for node ${target} to report the volume ready` };
  }
  if (owner !== source) {
    return end(
      "Failed",
      "OwnerChanged",
      `volume ${m.spec.volume} is now owned by ${owner}, not ${source}: something else moved it`,
    );
  }
  if (o.ownerLost && !m.spec.force && !status.targetReadyTime) return sourceLost(m.spec.volume, owner, end);
  if (phase === "Replicating") {
    if (status.finalSnapshot) {
      return {
        kind: "status",
        status: { ...status, phase: "CuttingOver", observedGeneration: m.metadata.generation },
        event: {
          type: "Normal",
          reason: "CuttingOver",
          note: `node ${source} released volume ${m.spec.volume}; sending the final increment`,
        },
      };
    }
    return { kind: "none" };
  }
  // CuttingOver
  if (status.targetReadyTime) {
    return {
      kind: "moveOwner",
      from: source,
      to: target,
      resourceVersion: volume.metadata.resourceVersion ?? "",
    };
  }
  const released = ms(status.sourceReleasedTime);
  const waited = o.now.getTime() - released;
  if (!Number.isNaN(released) && waited > o.cutoverTimeoutMs && m.spec.force) {
    return end(
      "Failed",
      "PromotionTimedOut",
      `node ${target} did not promote its replica within ${Math.round(o.cutoverTimeoutMs / 1000)} s${status.transferError ? ` (last error on ${status.transferError.node}: ${status.transferError.message})` : ""}; volume ${m.spec.volume} has no serving owner: fix the node and create a new forced VolumeMigration`,
    );
  }
  if (!Number.isNaN(released) && waited > o.cutoverTimeoutMs) {
    return end(
      "RolledBack",
      "CutoverTimedOut",
      `node ${target} did not receive the final increment within ${Math.round(o.cutoverTimeoutMs / 1000)} s${status.transferError ? ` (last error on ${status.transferError.node}: ${status.transferError.message})` : ""}; the volume stays on ${source}, retry the migration`,
    );
  }
  return {
    kind: "wait",
    afterMs: Number.isNaN(released) ? 1_000 : Math.max(100, o.cutoverTimeoutMs - waited + 10),
    why: "cutover in progress",
  };
}
