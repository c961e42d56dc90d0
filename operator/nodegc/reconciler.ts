/**
 * Node garbage collection: once a Node object is gone, what Skein kept for it
 * goes too. NodeSubnets are released by the network controller (it owns the
 * allocation); this removes the node's StoragePool, so the CSI controller stops
 * counting capacity that no longer exists. (Replicas on the gone node are
 * replaced by the replication controller, and a Volume it owned moves only by
 * failover, which only a VolumeMigration does.)
 */
import { CustomObjectsApi, type KubeConfig, type V1Node } from "@kubernetes/client-node";
import { GROUP, KINDS, type StoragePool, VERSION } from "../../api/v1alpha1/index.ts";
import { isNotFound } from "../../kit/k8s/api-status.ts";
import type { Informer } from "../../kit/k8s/informer.ts";
import type { Logger } from "../../kit/log.ts";

export interface NodeGcDeps {
  kubeConfig: KubeConfig;
  nodes: Informer<V1Node>;
  pools: Informer<StoragePool>;
  log: Logger;
}

const poolTarget = { group: GROUP, version: VERSION, plural: KINDS.StoragePool.plural };

export class NodeGcReconciler {
  private readonly api: CustomObjectsApi;

  constructor(private readonly deps: NodeGcDeps) {
    this.api = deps.kubeConfig.makeApiClient(CustomObjectsApi);
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
  }
}
