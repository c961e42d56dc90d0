/**
 * The node agent's part in a VolumeMigration, as pure decisions (the shell is
 * migration.ts): which role this node plays, what the snapshots of a round are
 * called, when the source may release the volume, and which peer may pull what.
 */
import type { Volume, VolumeMigration } from "../../api/v1alpha1/index.ts";
import type { Request } from "../transfer/protocol.ts";
import { TRANSFER_SNAPSHOT_PREFIX } from "../transfer/protocol.ts";
import { isReplicaOn, replicaSeries } from "./replica-plan.ts";

export type MigrationPhase = NonNullable<NonNullable<VolumeMigration["status"]>["phase"]>;

const TERMINAL: ReadonlySet<MigrationPhase> = new Set(["Completed", "Failed", "RolledBack"]);

export const isTerminal = (m: VolumeMigration): boolean =>
  m.status?.phase !== undefined && TERMINAL.has(m.status.phase);

/** Started by the operator (it resolved the source) and not finished. */
export const isMoving = (m: VolumeMigration): boolean =>
  (m.status?.phase === "Replicating" || m.status?.phase === "CuttingOver") && !!m.status.sourceNode;

/**
 * A round's delta at most this big means the copy is close behind: the source
 * may release the volume once no pod uses it, and the final delta is as small.
 */
export const SMALL_DELTA_BYTES = 16 * 1024 * 1024;

export function roleOf(m: VolumeMigration, node: string): "source" | "target" | undefined {
  if (m.spec.targetNode === node) return "target";
  if (m.status?.sourceNode === node) return "source";
  return undefined;
}

/** Transfer snapshots of one migration share a prefix, so each side prunes only its own. */
export function migrationSnapshotPrefix(m: VolumeMigration): string {
  return `${TRANSFER_SNAPSHOT_PREFIX}${(m.metadata.uid ?? m.metadata.name ?? "x").replace(/[^a-z0-9]/g, "").slice(0, 12)}-`;
}

export const roundSnapshot = (m: VolumeMigration, round: number) => `${migrationSnapshotPrefix(m)}${round}`;
export const finalSnapshot = (m: VolumeMigration) => `${migrationSnapshotPrefix(m)}final`;

/** A migration of the volume to `node` is under way: it works on the copy, so replica rounds wait. */
export function migratingTo(migrations: readonly VolumeMigration[], volume: string, node: string): boolean {
  return migrations.some((m) => m.spec.volume === volume && m.spec.targetNode === node && !isTerminal(m));
}

/**
 * The source releases the volume (no new mounts, dataset read-only, final
 * snapshot) only when the copy is close behind: at least one round landed,
 * and its delta was small.
 */
export function closeBehind(m: VolumeMigration): boolean {
  const s = m.status;
  return (
    s?.phase === "Replicating" &&
    !s.finalSnapshot &&
    (s.round ?? 0) >= 1 &&
    (s.lastRoundBytes ?? Number.POSITIVE_INFINITY) <= SMALL_DELTA_BYTES
  );
}

/** The migration, if any, for which this node has released (fenced) `volume`: no mount may be made. */
export function releasedFor(
  migrations: readonly VolumeMigration[],
  volume: string,
  node: string,
): VolumeMigration | undefined {
  return migrations.find(
    (m) =>
      m.spec.volume === volume && m.status?.sourceNode === node && !!m.status.finalSnapshot && !isTerminal(m),
  );
}

/**
 * Whether `peer` may make this transfer request of this node: only the target
 * of a started migration that moves the volume away from here, or a node that
 * keeps a replica of a volume this node owns (its rounds only in its own
 * snapshot series). Undefined = yes.
 */
export function refusal(
  migrations: readonly VolumeMigration[],
  volumes: (name: string) => Volume | undefined,
  node: string,
  peer: string,
  request: Request,
): string | undefined {
  const volume = volumes(request.volume);
  if (!volume) return `volume ${request.volume} does not exist`;
  const migrating = migrations.some(
    (m) =>
      m.spec.volume === request.volume &&
      m.spec.targetNode === peer &&
      m.status?.sourceNode === node &&
      isMoving(m),
  );
  if (migrating) return undefined;
  if (volume.spec.ownerNode === node && isReplicaOn(volume, peer)) {
    const series = replicaSeries(peer);
    return request.op === "round" && !request.snapshot.startsWith(series)
      ? `node ${peer} keeps a replica of volume ${request.volume}: its rounds must be named ${series}<time>`
      : undefined;
  }
  return `node ${peer} has no migration of volume ${request.volume} from ${node} under way, and keeps no replica of it`;
}
