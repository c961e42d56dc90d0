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
 *   CuttingOver  → RolledBack    the target did not get ready within the
 *                                cutover timeout (the source still owns the
 *                                volume and lifts its fence)
 *   any          → Failed        the volume is gone, or moved by someone else
 *
 * Never: ownership moved before the target has the final snapshot, or a
 * rollback after ownership moved (the swap is checked against the observed
 * owner, and a migration whose volume the target owns only completes).
 */
import type { Volume, VolumeMigration, VolumeMigrationStatus } from "../../api/v1alpha1/index.ts";
import { formatTime } from "../../kit/k8s/conditions.ts";

export interface Observed {
  migration: VolumeMigration;
  volume: Volume | undefined;
  /** Whether the target Node exists. */
  targetExists: boolean;
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

export function decide(o: Observed): Step {
  const m = o.migration;
  const status = m.status ?? {};
  const phase = status.phase ?? "Pending";
  if (TERMINAL.has(phase)) return { kind: "none" };
  const volume = o.volume;
  const end = (
    to: "Failed" | "RolledBack" | "Completed",
    reason: string,
    note: string,
    extra: VolumeMigrationStatus = {},
  ): Step => ({
    kind: "status",
    status: {
      ...status,
      ...extra,
      phase: to,
      completionTime: formatTime(o.now),
      observedGeneration: m.metadata.generation,
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
    if (m.spec.force) {
      return end(
        "Failed",
        "ForceNotSupported",
        "forced promotion of a replica is not implemented yet; remove force to move the data from the owner",
      );
    }
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
      const released = ms(status.sourceReleasedTime);
      const downtime = Number.isNaN(released) ? undefined : Math.max(0, o.now.getTime() - released);
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
