/**
 * The network controller's reconcile: for one Network, make the NodeSubnets
 * match planAllocation() over the nodes the cluster has now, and say in the
 * Network's status how full it is. Level-triggered: it reads the informers'
 * caches, never the event that woke it.
 */
import { CustomObjectsApi, type KubeConfig, type V1Node } from "@kubernetes/client-node";
import {
  API_VERSION,
  GROUP,
  KINDS,
  type Network,
  type NodeSubnet,
  VERSION,
} from "../../api/v1alpha1/index.ts";
import { isConflict, isNotFound } from "../../kit/k8s/api-status.ts";
import { setCondition } from "../../kit/k8s/conditions.ts";
import { type EventRecorder, objectReference } from "../../kit/k8s/events.ts";
import type { Informer } from "../../kit/k8s/informer.ts";
import { customStatusAccess, updateStatus } from "../../kit/k8s/status.ts";
import type { Logger } from "../../kit/log.ts";
import { type AllocationPlan, type HeldBlock, overlappingNetworks, planAllocation } from "./allocation.ts";

export const DEFAULT_BLOCK_PREFIX_LENGTH = 24;
/** NodeSubnets created at once: distinct names, so order does not matter; bounded to spare the API server. */
const CREATE_CONCURRENCY = 8;
/** Labels on every NodeSubnet, so agents can select their own. */
export const NETWORK_LABEL = "skein.io/network";
export const NODE_LABEL = "skein.io/node";

export interface NetworkReconcilerDeps {
  kubeConfig: KubeConfig;
  networks: Informer<Network>;
  nodes: Informer<V1Node>;
  subnets: Informer<NodeSubnet>;
  events: EventRecorder;
  log: Logger;
}

const subnetTarget = { group: GROUP, version: VERSION, plural: KINDS.NodeSubnet.plural };

export function internalIP(node: V1Node): string | undefined {
  return node.status?.addresses?.find((a) => a.type === "InternalIP")?.address;
}

export class NetworkReconciler {
  private readonly api: CustomObjectsApi;

  constructor(private readonly deps: NetworkReconcilerDeps) {
    this.api = deps.kubeConfig.makeApiClient(CustomObjectsApi);
  }

  /** The Networks a change to `subnet` concerns. */
  static keysForSubnet(subnet: NodeSubnet): string[] {
    return subnet.spec?.network ? [subnet.spec.network] : [];
  }

  async reconcile(name: string): Promise<void> {
    const { networks, subnets, log } = this.deps;
    const held = subnets.list().filter((s) => s.spec.network === name);
    const network = networks.get(name);
    if (!network || network.metadata.deletionTimestamp) {
      // The API server's garbage collector removes them through owner references; this covers clusters without one.
      for (const s of held) await this.deleteSubnet(s, `network ${name} is gone`);
      return;
    }
    const refusedBy = overlappingNetworks(
      networks.list().map((n) => ({
        name: n.metadata.name!,
        cidr: n.spec.cidr,
        created: String(n.metadata.creationTimestamp ?? ""),
      })),
    ).get(name);
    if (refusedBy) {
      const other = networks.get(refusedBy);
      await this.setStatus(network, undefined, {
        status: "False",
        reason: "CIDROverlap",
        message: `cidr ${network.spec.cidr} overlaps network ${refusedBy} (${other?.spec.cidr}), which is older; choose a cidr that overlaps no other Network`,
      });
      return;
    }

    const nodes = this.deps.nodes.list().filter((n) => !n.metadata?.deletionTimestamp);
    const withAddress = nodes.flatMap((n) => {
      const ip = internalIP(n);
      return ip ? [{ name: n.metadata!.name!, internalIP: ip }] : [];
    });
    const plan = planAllocation(
      {
        name,
        cidr: network.spec.cidr,
        nodeBlockPrefixLength: network.spec.nodeBlockPrefixLength ?? DEFAULT_BLOCK_PREFIX_LENGTH,
      },
      withAddress,
      held.map(
        (s): HeldBlock => ({
          objectName: s.metadata.name!,
          node: s.spec.node,
          block: s.spec.block,
          vtepAddress: s.spec.vtepAddress,
        }),
      ),
    );
    const byName = new Map(held.map((s) => [s.metadata.name!, s]));
    for (const r of plan.release) await this.deleteSubnet(byName.get(r.objectName)!, r.reason);
    for (const r of plan.readdress) await this.readdress(byName.get(r.objectName)!, r.vtepAddress);
    await inBatches(plan.create, CREATE_CONCURRENCY, (c) => this.createSubnet(network, c));
    if (plan.create.length) {
      const list = plan.create.map((c) => `${c.node}=${c.block}`).join(", ");
      this.deps.events.normal(
        objectReference(network),
        "BlocksAllocated",
        "Allocate",
        `${plan.create.length} node block(s) allocated: ${list}`,
      );
    }
    if (plan.create.length || plan.release.length) {
      log.info(
        {
          network: name,
          created: plan.create.length,
          released: plan.release.length,
          allocated: plan.allocated,
        },
        "node blocks converged",
      );
    }
    await this.setStatus(network, plan, this.readiness(network, plan));
  }

  private readiness(network: Network, plan: AllocationPlan) {
    if (plan.unallocated.length === 0) {
      return {
        status: "True" as const,
        reason: "Allocated",
        message: `${plan.allocated} of ${plan.capacity} node blocks allocated`,
      };
    }
    const len = network.spec.nodeBlockPrefixLength ?? DEFAULT_BLOCK_PREFIX_LENGTH;
    return {
      status: "False" as const,
      reason: "AddressSpaceExhausted",
      message: `nodes ${plan.unallocated.join(", ")} have no address block: ${network.spec.cidr} has room for ${plan.capacity} /${len} blocks; use a larger cidr, or a longer nodeBlockPrefixLength in a new Network`,
    };
  }

  private async createSubnet(network: Network, c: AllocationPlan["create"][number]): Promise<void> {
    const body: NodeSubnet = {
      apiVersion: API_VERSION,
      kind: "NodeSubnet",
      metadata: {
        name: c.objectName,
        labels: { [NETWORK_LABEL]: network.metadata.name!, [NODE_LABEL]: c.node },
        ownerReferences: [
          {
            apiVersion: API_VERSION,
            kind: "Network",
            name: network.metadata.name!,
            uid: network.metadata.uid!,
            controller: true,
            blockOwnerDeletion: true,
          },
        ],
      },
      spec: {
        network: network.metadata.name!,
        node: c.node,
        block: c.block,
        gateway: c.gateway,
        vtepAddress: c.vtepAddress,
        vtepMAC: c.vtepMAC,
      },
    };
    try {
      await this.api.createClusterCustomObject({ ...subnetTarget, body });
    } catch (err) {
      // The block's name is its lock: AlreadyExists means another writer got there first. Retry on fresh caches.
      if (isConflict(err))
        throw new Error(`block ${c.block} of ${network.metadata.name} was taken concurrently; retrying`);
      throw err;
    }
  }

  private async deleteSubnet(subnet: NodeSubnet, reason: string): Promise<void> {
    try {
      await this.api.deleteClusterCustomObject({
        ...subnetTarget,
        name: subnet.metadata.name!,
        body: {
          preconditions: { uid: subnet.metadata.uid, resourceVersion: subnet.metadata.resourceVersion },
        },
      });
    } catch (err) {
      if (isNotFound(err)) return;
      throw err;
    }
    this.deps.log.info(
      { subnet: subnet.metadata.name, block: subnet.spec.block, node: subnet.spec.node, reason },
      "released node block",
    );
    const network = this.deps.networks.get(subnet.spec.network);
    if (network)
      this.deps.events.normal(
        objectReference(network),
        "BlockReleased",
        "Release",
        `${subnet.spec.block} of node ${subnet.spec.node} released: ${reason}`,
      );
  }

  private async readdress(subnet: NodeSubnet, vtepAddress: string): Promise<void> {
    const body = structuredClone(subnet);
    body.spec.vtepAddress = vtepAddress;
    // Replace with the cached resourceVersion: a compare-and-swap.
    await this.api.replaceClusterCustomObject({ ...subnetTarget, name: subnet.metadata.name!, body });
  }

  private async setStatus(
    network: Network,
    plan: AllocationPlan | undefined,
    ready: { status: "True" | "False"; reason: string; message: string },
  ): Promise<void> {
    const before = network.status?.conditions?.find((c) => c.type === "Ready");
    await updateStatus<Network>(
      customStatusAccess(
        this.deps.kubeConfig,
        { group: GROUP, version: VERSION, plural: KINDS.Network.plural },
        network.metadata.name!,
      ),
      (draft) => {
        const status = { ...(draft.status ?? {}) };
        status.observedGeneration = draft.metadata.generation;
        if (plan) {
          status.allocatedBlocks = plan.allocated;
          status.capacityBlocks = plan.capacity;
        }
        status.conditions = setCondition(
          status.conditions ?? [],
          {
            type: "Ready",
            observedGeneration: draft.metadata.generation,
            ...ready,
          },
          new Date(),
        ) as typeof status.conditions;
        const changed = JSON.stringify(status) !== JSON.stringify(draft.status ?? {});
        draft.status = status;
        return changed;
      },
      { current: network },
    ).catch((err: unknown) => {
      if (!isNotFound(err)) throw err;
    });
    if (ready.status === "False" && (before?.reason !== ready.reason || before?.status !== "False")) {
      this.deps.events.warning(objectReference(network), ready.reason, "Allocate", ready.message);
      this.deps.log.warn({ network: network.metadata.name, reason: ready.reason }, ready.message);
    }
  }
}

async function inBatches<T>(
  items: readonly T[],
  limit: number,
  fn: (item: T) => Promise<void>,
): Promise<void> {
  for (let i = 0; i < items.length; i += limit) await Promise.all(items.slice(i, i + limit).map(fn));
}
