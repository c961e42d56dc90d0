/**
 * The agent's decisions, as pure functions of what it observed: which ZFS
 * properties a dataset needs for its Volume, and what status to report. The
 * shell (volumes.ts, snapshots.ts) reads ZFS and the API, asks these, and acts.
 */
import type { Snapshot, SnapshotStatus, Volume, VolumeStatus } from "../../api/v1alpha1/index.ts";
import { type Condition, setCondition } from "../../kit/k8s/conditions.ts";
import type { PropertyRow } from "../zfs/parse.ts";
import { type Failure, reasonOf } from "./failure.ts";

/** ZFS user properties that tag a dataset or snapshot as Skein's, and whose it is. */
export const TAG_VOLUME = "skein.io:volume";
export const TAG_SNAPSHOT = "skein.io:snapshot";
export const TAG_UID = "skein.io:uid";

/**
 * Capacity is both the quota and a reservation: a volume's pool space is held
 * for it from the start (thick provisioning), so a write within capacity never
 * fails because other volumes filled the pool, and a pool that cannot hold a
 * new volume refuses it at creation (RESOURCE_EXHAUSTED) instead of later.
 */
export function capacityProperties(capacityBytes: number): Record<string, string> {
  return { refquota: String(capacityBytes), refreservation: String(capacityBytes) };
}

/** Properties `zfs create` gets: capacity, the spec's tuning, and the tags that make it Skein's. */
export function createProperties(volume: Volume): Record<string, string> {
  return {
    ...capacityProperties(volume.spec.capacityBytes),
    ...(volume.spec.zfsProperties ?? {}),
    ...tags(volume),
  };
}

export function tags(volume: Volume): Record<string, string> {
  return { [TAG_VOLUME]: volume.metadata.name ?? "", [TAG_UID]: volume.metadata.uid ?? "" };
}

/** The properties to read back from a volume's dataset. */
export function observedPropertyNames(volume: Volume): string[] {
  return [
    "refquota",
    "refreservation",
    "used",
    "usedbyrefreservation",
    "available",
    "readonly",
    "mounted",
    TAG_VOLUME,
    TAG_UID,
    ...Object.keys(volume.spec.zfsProperties ?? {}),
  ];
}

export type Ownership = "ours" | "untagged" | "foreign";

/**
 * Whose data a dataset at the volume's path holds: this Volume's ("ours"), a
 * half-made one from a create that died before tagging it ("untagged"), or an
 * earlier Volume's of the same name ("foreign", never destroyed by the agent).
 */
export function ownership(volume: Volume, props: ReadonlyMap<string, PropertyRow>): Ownership {
  const tagged = value(props, TAG_VOLUME);
  if (tagged === undefined) return "untagged";
  const uid = value(props, TAG_UID);
  return tagged === volume.metadata.name && (uid === undefined || uid === volume.metadata.uid)
    ? "ours"
    : "foreign";
}

/**
 * Whether the dataset is read-only now. zfs-fuse reports a mounted dataset
 * whose `readonly` is on as "off", source "temporary" (yet refuses writes);
 * Skein never mounts with temporary options, so "temporary" means read-only.
 */
export function readOnly(props: ReadonlyMap<string, PropertyRow>): boolean {
  const row = props.get("readonly");
  return row?.value === "on" || row?.source === "temporary";
}

function value(props: ReadonlyMap<string, PropertyRow>, name: string): string | undefined {
  const row = props.get(name);
  return row === undefined || row.source === "-" || row.value === "-" ? undefined : row.value;
}

function bytes(props: ReadonlyMap<string, PropertyRow>, name: string): number {
  const v = value(props, name);
  return v === undefined || !/^\d+$/.test(v) ? 0 : Number(v);
}

/**
 * What to `zfs set` so an existing dataset matches its Volume: capacity only
 * ever grows (raising the quota is the whole of an expansion), and tuning
 * properties that differ from the spec are set again.
 */
export function propertyChanges(
  volume: Volume,
  props: ReadonlyMap<string, PropertyRow>,
  options: { released?: boolean } = {},
): Record<string, string> {
  const changes: Record<string, string> = {};
  // A copy received in a migration arrives read-only and its new owner makes it
  // writable; a volume released for a cutover stays read-only until it ends.
  if (!options.released && readOnly(props) && volume.spec.zfsProperties?.readonly === undefined) {
    changes.readonly = "off";
  }
  const capacity = volume.spec.capacityBytes;
  if (bytes(props, "refquota") < capacity) changes.refquota = String(capacity);
  if (bytes(props, "refreservation") < capacity) changes.refreservation = String(capacity);
  for (const [key, wanted] of Object.entries(volume.spec.zfsProperties ?? {})) {
    if (value(props, key) !== wanted) changes[key] = wanted;
  }
  return changes;
}

export interface DatasetSpace {
  usedBytes: number;
  availableBytes: number;
  capacityBytes: number;
}

/** Space as the Volume reports it: the reservation is not data, so it is not "used". */
export function spaceOf(props: ReadonlyMap<string, PropertyRow>): DatasetSpace {
  return {
    usedBytes: Math.max(0, bytes(props, "used") - bytes(props, "usedbyrefreservation")),
    availableBytes: bytes(props, "available"),
    capacityBytes: bytes(props, "refquota"),
  };
}

type Observation =
  | { kind: "ready"; node: string; dataset: string; space: DatasetSpace }
  | { kind: "failed"; node: string; dataset: string; failure: Failure; space?: DatasetSpace }
  | { kind: "deleting"; node: string; dataset: string; failure?: Failure };

/** The status a Volume should carry after an observation; conditions keep their transition times. */
export function volumeStatus(volume: Volume, seen: Observation, now: Date): VolumeStatus {
  const old = volume.status ?? {};
  const generation = volume.metadata.generation;
  const base: VolumeStatus = { ...old, node: seen.node, dataset: seen.dataset };
  if (generation !== undefined) base.observedGeneration = generation;
  let ready: Omit<Condition, "lastTransitionTime">;
  if (seen.kind === "ready") {
    Object.assign(base, seen.space, { phase: "Ready" });
    delete base.error;
    ready = {
      type: "Ready",
      status: "True",
      reason: "DatasetReady",
      message: `dataset ${seen.dataset} is ready`,
    };
  } else if (seen.kind === "failed") {
    if (seen.space) Object.assign(base, seen.space);
    // A volume whose dataset exists stays usable when, say, an expansion fails.
    base.phase = seen.space ? "Ready" : "Failed";
    base.error = seen.failure;
    ready = {
      type: "Ready",
      status: seen.space ? "True" : "False",
      reason: reasonOf(seen.failure.grpcCode),
      message: seen.failure.message,
    };
  } else {
    base.phase = "Deleting";
    if (seen.failure) base.error = seen.failure;
    else delete base.error;
    ready = {
      type: "Ready",
      status: "False",
      reason: seen.failure ? reasonOf(seen.failure.grpcCode) : "Deleting",
      message: seen.failure?.message ?? `dataset ${seen.dataset} is being destroyed`,
    };
  }
  if (generation !== undefined) ready.observedGeneration = generation;
  base.conditions = [...setCondition(old.conditions as Condition[] | undefined, ready, now)];
  return base;
}

export function snapshotReadyStatus(
  snapshot: Snapshot,
  seen: { node: string; zfsSnapshot: string; sizeBytes: number; creationTime: string },
  now: Date,
): SnapshotStatus {
  const old = snapshot.status ?? {};
  const status: SnapshotStatus = { ...old, ...seen, readyToUse: true };
  delete status.error;
  if (snapshot.metadata.generation !== undefined) status.observedGeneration = snapshot.metadata.generation;
  status.conditions = [
    ...setCondition(
      old.conditions as Condition[] | undefined,
      {
        type: "Ready",
        status: "True",
        reason: "SnapshotTaken",
        message: `ZFS snapshot ${seen.zfsSnapshot} exists`,
      },
      now,
    ),
  ];
  return status;
}

export function snapshotFailedStatus(
  snapshot: Snapshot,
  node: string,
  failure: Failure,
  now: Date,
): SnapshotStatus {
  const old = snapshot.status ?? {};
  const status: SnapshotStatus = { ...old, node, readyToUse: false, error: failure };
  if (snapshot.metadata.generation !== undefined) status.observedGeneration = snapshot.metadata.generation;
  status.conditions = [
    ...setCondition(
      old.conditions as Condition[] | undefined,
      { type: "Ready", status: "False", reason: reasonOf(failure.grpcCode), message: failure.message },
      now,
    ),
  ];
  return status;
}

/** A merge patch that turns `old` into `next` (removed top-level fields become null); undefined when equal. */
export function statusPatch(old: object | undefined, next: object): Record<string, unknown> | undefined {
  const before = (old ?? {}) as Record<string, unknown>;
  const after = next as Record<string, unknown>;
  const patch: Record<string, unknown> = {};
  for (const key of new Set([...Object.keys(before), ...Object.keys(after)])) {
    if (!(key in after)) patch[key] = null;
    else if (JSON.stringify(before[key]) !== JSON.stringify(after[key])) patch[key] = after[key];
  }
  return Object.keys(patch).length > 0 ? patch : undefined;
}
