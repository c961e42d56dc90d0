/**
 * Informers for the built-in kinds Skein watches (Nodes, Pods). Lists come back
 * as client-node models (timestamps as Dates); watch events are decoded to the
 * same models so handlers see one shape.
 */
import { CoreV1Api, type KubeConfig, type V1Node, type V1Pod } from "@kubernetes/client-node";
// Not re-exported by the package index; the generated models' own (de)serializer.
import { ObjectSerializer } from "@kubernetes/client-node/dist/serializer.js";
import type { Logger } from "../log.ts";
import { Informer } from "./informer.ts";

const decoder =
  <T>(type: string) =>
  (wire: unknown): T =>
    ObjectSerializer.deserialize(wire, type) as T;

export function nodeInformer(
  kubeConfig: KubeConfig,
  options: { logger?: Logger; labelSelector?: string } = {},
): Informer<V1Node> {
  const core = kubeConfig.makeApiClient(CoreV1Api);
  return new Informer<V1Node>(kubeConfig, {
    name: "nodes",
    path: "/api/v1/nodes",
    list: (s) => core.listNode(s),
    decode: decoder<V1Node>("V1Node"),
    ...options,
  });
}

export function podInformer(
  kubeConfig: KubeConfig,
  options: { logger?: Logger; labelSelector?: string; fieldSelector?: string } = {},
): Informer<V1Pod> {
  const core = kubeConfig.makeApiClient(CoreV1Api);
  return new Informer<V1Pod>(kubeConfig, {
    name: "pods",
    path: "/api/v1/pods",
    list: (s) => core.listPodForAllNamespaces(s),
    decode: decoder<V1Pod>("V1Pod"),
    ...options,
  });
}
