/**
 * The skein.io/v1alpha1 API for TypeScript. Spec and status types are generated
 * from the CRDs (types.generated.ts; the CRD YAML in crds/ is the source of
 * truth); this file adds the names the API server knows them by and the
 * whole-object types.
 */
import type { V1ListMeta, V1ObjectMeta } from "@kubernetes/client-node";
import type {
  NetworkSpec,
  NetworkStatus,
  NodeSubnetSpec,
  NodeSubnetStatus,
  SnapshotSpec,
  SnapshotStatus,
  StoragePoolSpec,
  StoragePoolStatus,
  VolumeMigrationSpec,
  VolumeMigrationStatus,
  VolumeSpec,
  VolumeStatus,
} from "./types.generated.ts";

export type * from "./types.generated.ts";

export const GROUP = "skein.io";
export const VERSION = "v1alpha1";
export const API_VERSION = `${GROUP}/${VERSION}` as const;

/** How each kind is addressed: `kind` in objects, `plural` in URLs (`/apis/skein.io/v1alpha1/<plural>`). */
export const KINDS = {
  Volume: { kind: "Volume", plural: "volumes" },
  Snapshot: { kind: "Snapshot", plural: "snapshots" },
  VolumeMigration: { kind: "VolumeMigration", plural: "volumemigrations" },
  Network: { kind: "Network", plural: "networks" },
  NodeSubnet: { kind: "NodeSubnet", plural: "nodesubnets" },
  StoragePool: { kind: "StoragePool", plural: "storagepools" },
} as const;

export type Kind = keyof typeof KINDS;

/**
 * `VolumeMigration.spec.reason` of a move ControllerPublishVolume started: a
 * pod was scheduled on the target, so it has already left the source and
 * waits for its data from the migration's creation on.
 */
export const PUBLISH_MIGRATION_REASON = "ControllerPublishVolume";

/** A skein.io object as the API server stores it. All kinds are cluster-scoped. */
export interface SkeinObject<K extends Kind, Spec, Status> {
  apiVersion: typeof API_VERSION;
  kind: K;
  metadata: V1ObjectMeta;
  spec: Spec;
  status?: Status;
}

export interface SkeinList<T> {
  apiVersion: typeof API_VERSION;
  kind: string;
  metadata: V1ListMeta;
  items: T[];
}

export type Volume = SkeinObject<"Volume", VolumeSpec, VolumeStatus>;
export type Snapshot = SkeinObject<"Snapshot", SnapshotSpec, SnapshotStatus>;
export type VolumeMigration = SkeinObject<"VolumeMigration", VolumeMigrationSpec, VolumeMigrationStatus>;
export type Network = SkeinObject<"Network", NetworkSpec, NetworkStatus>;
export type NodeSubnet = SkeinObject<"NodeSubnet", NodeSubnetSpec, NodeSubnetStatus>;
export type StoragePool = SkeinObject<"StoragePool", StoragePoolSpec, StoragePoolStatus>;
