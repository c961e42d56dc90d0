/** Informers for the skein.io kinds, the one way components watch them. */
import { CustomObjectsApi, type KubeConfig, type KubernetesListObject } from "@kubernetes/client-node";
import { Informer, type InformerOptions } from "../../kit/k8s/informer.ts";
import type { Logger } from "../../kit/log.ts";
import {
  GROUP,
  KINDS,
  type Kind,
  type Network,
  type NodeSubnet,
  type Snapshot,
  type StoragePool,
  VERSION,
  type Volume,
  type VolumeMigration,
} from "./index.ts";

export interface ObjectOfKind {
  Volume: Volume;
  Snapshot: Snapshot;
  VolumeMigration: VolumeMigration;
  Network: Network;
  NodeSubnet: NodeSubnet;
  StoragePool: StoragePool;
}

export interface SkeinInformerOptions {
  labelSelector?: string;
  /** Field selectors the CRDs declare (e.g. `spec.ownerNode=node-1`). */
  fieldSelector?: string;
  logger?: Logger;
  backoff?: InformerOptions<never>["backoff"];
}

export function skeinInformer<K extends Kind>(
  kubeConfig: KubeConfig,
  kind: K,
  options: SkeinInformerOptions = {},
): Informer<ObjectOfKind[K]> {
  const api = kubeConfig.makeApiClient(CustomObjectsApi);
  const plural = KINDS[kind].plural;
  return new Informer<ObjectOfKind[K]>(kubeConfig, {
    name: plural,
    path: `/apis/${GROUP}/${VERSION}/${plural}`,
    list: (s) =>
      api.listClusterCustomObject({ group: GROUP, version: VERSION, plural, ...s }) as Promise<
        KubernetesListObject<ObjectOfKind[K]>
      >,
    ...options,
  });
}
