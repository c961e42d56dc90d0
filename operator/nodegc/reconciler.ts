/**
 * Node garbage collection: once a Node object is gone, what Skein kept for it
 * goes too. NodeSubnets are released by the network controller (it owns the
 * allocation); this removes the node's StoragePool, so the CSI controller stops
 * counting capacity that no longer exists, and the node's entries in Volumes'
 * replica lists, which no agent will ever refresh again. (A Volume the gone
 * node owned is not touched here: moving its ownership is failover, which only
 * a VolumeMigration does.)
 */
import { CustomObjectsApi, type KubeConfig, type V1Node } from "@kubernetes/client-node";
import { GROUP, KINDS, type StoragePool, VERSION, type Volume } from "../../api/v1alpha1/index.ts";
import { isNotFound } from "../../kit/k8s/api-status.ts";
import type { Informer } from "../../kit/k8s/informer.ts";
import { customStatusAccess, updateStatus } from "../../kit/k8s/status.ts";
import type { Logger } from "../../kit/log.ts";

export interface NodeGcDeps {
  kubeConfig: KubeConfig;
  nodes: Informer<V1Node>;
  pools: Informer<StoragePool>;
  volumes: Informer<Volume>;
  log: Logger;
}

const poolTarget = { group: GROUP, version: VERSION, plural: KINDS.StoragePool.plural };
const volumeResource = { group: GROUP, version: VERSION, plural: KINDS.Volume.plural };

export class NodeGcReconciler {
  private readonly api: CustomObjectsApi;

  constructor(private readonly deps: NodeGcDeps) {
    this.api = deps.kubeConfig.makeApiClient(CustomObjectsApi);
  }

  /** The nodes a Volume's replica list names: each is a key to check. */
  static keysForVolume(volume: Volume): string[] {
    return volume.status?.replicas?.map((r) => r.node) ?? [];
  }

  /** Reconciles one node name (the key), whether or not the Node still exists. */
  async reconcile(node: string): Promise<void> {
    if (this.deps.nodes.get(node)) return;
    for (const pool of this.deps.pools.list().filter((p) => p.spec.node === node)) {
      try {
        await this.api.deleteClusterCustomObject({
          ...poolTarget,
          name: pool.metadata.name!,
          body: { preconditions: { uid: pool.metadata.uid } },
        });
        this.deps.log.info(
          { node, storagePool: pool.metadata.name },
          "removed the storage pool of a deleted node",
        );
      } catch (err) {
        if (!isNotFound(err)) throw err;
      }
    }
    for (const volume of this.deps.volumes.list()) {
      if (!volume.status?.replicas?.some((r) => r.node === node)) continue;
      await updateStatus<Volume>(
        customStatusAccess(this.deps.kubeConfig, volumeResource, volume.metadata.name!),
        (draft) => {
          const before = draft.status?.replicas ?? [];
          const after = before.filter((r) => r.node !== node);
          if (after.length === before.length) return false;
          draft.status = { ...draft.status, replicas: after };
          return true;
        },
        { current: volume },
      ).catch((err: unknown) => {
        if (!isNotFound(err)) throw err;
      });
      this.deps.log.info(
        { node, volume: volume.metadata.name },
        "dropped the replica record of a deleted node",
      );
    }
  }
}
