/**
 * Per-node address blocks of a Network: which node holds which block, decided
 * by a pure plan over what the cluster has now.
 *
 * Design note. Allocation must be stable (a node keeps its block across
 * operator restarts, because its pods' addresses come from it) and unique (two
 * nodes with one block break the overlay). Stability comes from keeping every
 * valid existing NodeSubnet; uniqueness is enforced twice: the plan never hands
 * out a block that is held, and a NodeSubnet is named after its block, so
 * creating it is a compare-and-swap on the block itself (a second writer gets
 * AlreadyExists instead of a duplicate).
 */
import { createHash } from "node:crypto";
import { type Cidr, containsCidr, formatAddress, formatCidr, parseCidr, size } from "../../kit/ipv4.ts";

export interface NetworkShape {
  name: string;
  cidr: string;
  nodeBlockPrefixLength: number;
}

export interface NodeAddress {
  name: string;
  /** The node's InternalIP: its VTEP on the underlay. */
  internalIP: string;
}

export interface HeldBlock {
  /** Name of the NodeSubnet object that holds it. */
  objectName: string;
  node: string;
  block: string;
  vtepAddress: string;
}

export interface NewBlock {
  objectName: string;
  node: string;
  block: string;
  gateway: string;
  vtepAddress: string;
  vtepMAC: string;
}

export interface AllocationPlan {
  create: NewBlock[];
  /** NodeSubnets to delete: their node is gone, or the block is invalid or held twice. */
  release: { objectName: string; reason: string }[];
  /** Held blocks whose VTEP address must follow the node's new InternalIP. */
  readdress: { objectName: string; vtepAddress: string }[];
  /** Nodes left without a block because the network is full. */
  unallocated: string[];
  capacity: number;
  /** Blocks held once the plan is applied. */
  allocated: number;
}

/** How many node blocks the network has room for. */
export function blockCapacity(network: NetworkShape): number {
  return 2 ** (network.nodeBlockPrefixLength - parseCidr(network.cidr).prefix);
}

/** `<network>.<a>-<b>-<c>-<d>-<prefix>`: a valid object name that is unique per block. */
export function subnetObjectName(network: string, block: Cidr): string {
  return `${network}.${formatAddress(block.network).replaceAll(".", "-")}-${block.prefix}`;
}

/**
 * A stable, locally administered unicast MAC for a node's VXLAN device in a
 * network, so that peers' FDB entries survive the device being recreated.
 */
export function vtepMAC(network: string, node: string): string {
  const bytes = createHash("sha256").update(`skein.io/vtep/${network}/${node}`).digest().subarray(0, 6);
  bytes[0] = (bytes[0]! & 0xfe) | 0x02;
  return [...bytes].map((b) => b.toString(16).padStart(2, "0")).join(":");
}

export function planAllocation(
  network: NetworkShape,
  nodes: NodeAddress[],
  held: HeldBlock[],
): AllocationPlan {
  const cidr = parseCidr(network.cidr);
  const blockSize = 2 ** (32 - network.nodeBlockPrefixLength);
  const capacity = blockCapacity(network);
  const byNode = new Map(nodes.map((n) => [n.name, n]));
  const plan: AllocationPlan = {
    create: [],
    release: [],
    readdress: [],
    unallocated: [],
    capacity,
    allocated: 0,
  };

  const usedBlocks = new Set<number>();
  const nodesWithBlock = new Set<string>();
  // Oldest-first is the caller's order; sorting by name makes the plan deterministic when it is not.
  for (const h of [...held].sort((a, b) => a.objectName.localeCompare(b.objectName))) {
    const block = tryParse(h.block);
    const node = byNode.get(h.node);
    const reason = !node
      ? `node ${h.node} is gone`
      : !block || block.prefix !== network.nodeBlockPrefixLength || !containsCidr(cidr, block)
        ? `block ${h.block} is not a /${network.nodeBlockPrefixLength} inside ${network.cidr}`
        : usedBlocks.has(block.network)
          ? `block ${h.block} is held by another node`
          : nodesWithBlock.has(h.node)
            ? `node ${h.node} already holds another block`
            : undefined;
    if (reason || !block || !node) {
      plan.release.push({ objectName: h.objectName, reason: reason ?? "invalid" });
      continue;
    }
    usedBlocks.add(block.network);
    nodesWithBlock.add(h.node);
    if (node.internalIP !== h.vtepAddress)
      plan.readdress.push({ objectName: h.objectName, vtepAddress: node.internalIP });
  }

  let next = 0;
  for (const node of [...nodes].sort((a, b) => a.name.localeCompare(b.name))) {
    if (nodesWithBlock.has(node.name)) continue;
    while (next < capacity && usedBlocks.has(cidr.network + next * blockSize)) next++;
    if (next >= capacity) {
      plan.unallocated.push(node.name);
      continue;
    }
    const block: Cidr = { network: cidr.network + next * blockSize, prefix: network.nodeBlockPrefixLength };
    usedBlocks.add(block.network);
    plan.create.push({
      objectName: subnetObjectName(network.name, block),
      node: node.name,
      block: formatCidr(block),
      gateway: formatAddress(block.network + 1),
      vtepAddress: node.internalIP,
      vtepMAC: vtepMAC(network.name, node.name),
    });
  }
  plan.allocated = usedBlocks.size;
  return plan;
}

function tryParse(text: string): Cidr | undefined {
  try {
    return parseCidr(text);
  } catch {
    return undefined;
  }
}

/** Networks whose CIDRs overlap an older network's: the older keeps working, the newer is refused. */
export function overlappingNetworks(
  networks: { name: string; cidr: string; created: string }[],
): Map<string, string> {
  const ordered = [...networks].sort(
    (a, b) => a.created.localeCompare(b.created) || a.name.localeCompare(b.name),
  );
  const refused = new Map<string, string>();
  const accepted: { name: string; cidr: Cidr }[] = [];
  for (const n of ordered) {
    const cidr = tryParse(n.cidr);
    if (!cidr) continue;
    const clash = accepted.find((a) => overlaps(a.cidr, cidr));
    if (clash) refused.set(n.name, clash.name);
    else accepted.push({ name: n.name, cidr });
  }
  return refused;
}

function overlaps(a: Cidr, b: Cidr): boolean {
  return a.network < b.network + size(b) && b.network < a.network + size(a);
}
