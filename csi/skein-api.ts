/**
 * The few calls the CSI services and the volume agent make on skein.io objects
 * (all cluster-scoped), typed, and their informers. Every write that replaces
 * a list (finalizers, conditions) carries the resourceVersion it was computed
 * from, so a concurrent writer makes it fail with 409 instead of being undone.
 */
import { CustomObjectsApi, type KubeConfig, PatchStrategy, setHeaderOptions } from "@kubernetes/client-node";
import {
  API_VERSION,
  GROUP,
  KINDS,
  type Kind,
  type SkeinList,
  type Snapshot,
  type StoragePool,
  VERSION,
  type Volume,
  type VolumeMigration,
} from "../api/v1alpha1/index.ts";
import { isNotFound } from "../kit/k8s/api-status.ts";
import { Informer } from "../kit/k8s/informer.ts";
import { customStatusAccess, type StatusAccess } from "../kit/k8s/status.ts";
import type { Logger } from "../kit/log.ts";

export interface ObjectsByKind {
  Volume: Volume;
  Snapshot: Snapshot;
  StoragePool: StoragePool;
  VolumeMigration: VolumeMigration;
}

export type StorageKind = keyof ObjectsByKind;

const MERGE_PATCH = setHeaderOptions("Content-Type", PatchStrategy.MergePatch);

/** The annotation that keeps the name the CSI caller asked for (object names are derived from it). */
export const CSI_NAME_ANNOTATION = "skein.io/csi-name";
/** Set by DeleteVolume when it retries a deletion: wakes the agent to try again at once. */
export const DELETE_REQUESTED_ANNOTATION = "skein.io/delete-requested";
/** Held by a Volume until its dataset is destroyed. */
export const DATASET_FINALIZER = "skein.io/dataset";
/** Held by a Snapshot until its ZFS snapshot is destroyed. */
export const SNAPSHOT_FINALIZER = "skein.io/snapshot";

export class SkeinApi {
  private readonly custom: CustomObjectsApi;

  constructor(private readonly kubeConfig: KubeConfig) {
    this.custom = kubeConfig.makeApiClient(CustomObjectsApi);
  }

  private target(kind: Kind) {
    return { group: GROUP, version: VERSION, plural: KINDS[kind].plural };
  }

  async get<K extends StorageKind>(kind: K, name: string): Promise<ObjectsByKind[K] | undefined> {
    try {
      return (await this.custom.getClusterCustomObject({ ...this.target(kind), name })) as ObjectsByKind[K];
    } catch (err) {
      if (isNotFound(err)) return undefined;
      throw err;
    }
  }

  async list<K extends StorageKind>(
    kind: K,
    selectors: { labelSelector?: string; fieldSelector?: string } = {},
  ) {
    return (await this.custom.listClusterCustomObject({ ...this.target(kind), ...selectors })) as SkeinList<
      ObjectsByKind[K]
    >;
  }

  async create<K extends StorageKind>(
    kind: K,
    object: Omit<ObjectsByKind[K], "apiVersion" | "kind">,
  ): Promise<ObjectsByKind[K]> {
    const body = { apiVersion: API_VERSION, kind: KINDS[kind].kind, ...object };
    return (await this.custom.createClusterCustomObject({ ...this.target(kind), body })) as ObjectsByKind[K];
  }

  /** JSON merge patch of metadata/spec; include metadata.resourceVersion to make it a compare-and-swap. */
  async patch<K extends StorageKind>(kind: K, name: string, patch: object): Promise<ObjectsByKind[K]> {
    return (await this.custom.patchClusterCustomObject(
      { ...this.target(kind), name, body: patch },
      MERGE_PATCH,
    )) as ObjectsByKind[K];
  }

  /** JSON merge patch of the status subresource. */
  async patchStatus<K extends StorageKind>(kind: K, name: string, patch: object): Promise<ObjectsByKind[K]> {
    return (await this.custom.patchClusterCustomObjectStatus(
      { ...this.target(kind), name, body: patch },
      MERGE_PATCH,
    )) as ObjectsByKind[K];
  }

  /** Compare-and-swap access to the status of `name`, for kit/k8s/status.ts updateStatus (lists it holds are never replaced from a stale read). */
  statusAccess<K extends StorageKind>(kind: K, name: string): StatusAccess<ObjectsByKind[K]> {
    return customStatusAccess<ObjectsByKind[K]>(this.kubeConfig, this.target(kind), name);
  }

  /** Deletes `name`; false when it was already gone. */
  async delete(kind: StorageKind, name: string): Promise<boolean> {
    try {
      await this.custom.deleteClusterCustomObject({ ...this.target(kind), name });
      return true;
    } catch (err) {
      if (isNotFound(err)) return false;
      throw err;
    }
  }

  informer<K extends StorageKind>(kind: K, logger: Logger): Informer<ObjectsByKind[K]> {
    return new Informer<ObjectsByKind[K]>(this.kubeConfig, {
      name: KINDS[kind].plural,
      path: `/apis/${GROUP}/${VERSION}/${KINDS[kind].plural}`,
      list: (selectors) => this.list(kind, selectors),
      logger,
    });
  }
}

/** Sets or removes `finalizer`, as a patch guarded by the object's resourceVersion; undefined when nothing changes. */
export function finalizerPatch(
  metadata: { finalizers?: string[]; resourceVersion?: string },
  finalizer: string,
  present: boolean,
): object | undefined {
  const current = metadata.finalizers ?? [];
  if (current.includes(finalizer) === present) return undefined;
  const finalizers = present ? [...current, finalizer] : current.filter((f) => f !== finalizer);
  return { metadata: { resourceVersion: metadata.resourceVersion, finalizers } };
}
