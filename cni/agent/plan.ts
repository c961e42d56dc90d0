/**
 * What the node's overlay should look like, decided from the API objects alone
 * (pure): the bridge, its VXLAN port, the flood list and static entries for the
 * peers, the masquerade rules and the settings file for the plugin.
 *
 * Design: one L2 segment across nodes, as Weave has it. The bridge carries the
 * node's gateway address with the *whole network's* prefix, so every pod
 * address is on-link from every node and pod; frames for pods on other nodes
 * leave through the VXLAN port. Unknown unicast, broadcast and multicast go to
 * every peer VTEP in the flood list (one all-zero FDB entry each); the VXLAN
 * device learns where each pod MAC lives from the packets it receives, so
 * unicast stops flooding once a peer has spoken. Each bridge's MAC is derived
 * from its gateway address, so peers can hold static FDB and neighbour entries
 * for every gateway and node-to-node overlay traffic never floods.
 */
import type { Network, NodeSubnet } from "../../api/v1alpha1/index.ts";
import { SkeinError } from "../../kit/errors.ts";
import * as ipv4 from "../../kit/ipv4.ts";
import type { BridgeSpec, VxlanSpec } from "../netlink/devices.ts";
import type { RouteSpec } from "../netlink/ip.ts";
import type { Rule } from "../netlink/iptables.ts";
import { podMac } from "../plugin/names.ts";
import { type NodeSettings, SETTINGS_VERSION } from "../settings.ts";

export const BRIDGE_NAME = "skein0";
export const VXLAN_NAME = "skein-vxlan";
/** Outer IPv4 (20) + UDP (8) + VXLAN (8) + inner Ethernet (14). */
export const VXLAN_OVERHEAD = 50;
export const DEFAULT_VXLAN_PORT = 4789;

export interface UnderlayInterface {
  name: string;
  mtu: number;
  /** The node's address on it: the local VTEP. */
  address: string;
}

export interface FdbTarget {
  mac: string;
  dst: string;
}

export interface NeighbourTarget {
  address: string;
  mac: string;
}

export interface OverlayPlan {
  bridge: BridgeSpec & { address: string };
  vxlan: VxlanSpec;
  route: RouteSpec;
  /** Peer VTEP addresses, sorted, each once. */
  floodList: string[];
  /** Static unicast entries on the VXLAN device: each peer gateway's MAC at its VTEP. */
  staticFdb: FdbTarget[];
  /** Permanent ARP entries on the bridge for the peer gateways. */
  neighbours: NeighbourTarget[];
  rules: Rule[];
  settings: NodeSettings;
  /** Peers left out, with why (bad or conflicting NodeSubnets); the agent logs them. */
  skippedPeers: { name: string; reason: string }[];
}

/** The node's own allocation or its Network cannot be used: nothing can be set up until it is fixed. */
export class OverlayConfigError extends SkeinError {
  constructor(message: string) {
    super("OverlayMisconfigured", message);
  }
}

/**
 * The MAC of a bridge holding `gateway`: the scheme pods use for their own
 * addresses (0a:58 + the IPv4 address), unique because addresses are, and
 * computable by every peer from the NodeSubnet alone.
 */
export function gatewayMac(gateway: string): string {
  return podMac(ipv4.parseAddress(gateway));
}

export function overlayMtu(network: Network, underlay: UnderlayInterface): number {
  return network.spec.mtu ?? underlay.mtu - VXLAN_OVERHEAD;
}

/** The rules that let pods reach beyond the overlay, and forwarding through this node at all. */
export function overlayRules(networkName: string, cidr: string): Rule[] {
  const comment = ["-m", "comment", "--comment", `skein ${networkName}`];
  return [
    {
      table: "nat",
      chain: "POSTROUTING",
      // --random-fully: without it, concurrent connections can race for the same
      // source port in conntrack and lose packets (the 5-second DNS timeouts).
      spec: ["-s", cidr, "!", "-d", cidr, ...comment, "-j", "MASQUERADE", "--random-fully"],
    },
    // A FORWARD policy of DROP (Docker sets one) would otherwise cut pods off.
    { table: "filter", chain: "FORWARD", spec: ["-s", cidr, ...comment, "-j", "ACCEPT"] },
    { table: "filter", chain: "FORWARD", spec: ["-d", cidr, ...comment, "-j", "ACCEPT"] },
  ];
}

function checkOwn(network: Network, own: NodeSubnet, underlay: UnderlayInterface): ipv4.Cidr {
  const where = `NodeSubnet ${own.metadata.name}`;
  let cidr: ipv4.Cidr;
  let block: ipv4.Cidr;
  try {
    cidr = ipv4.parseCidr(network.spec.cidr);
    block = ipv4.parseCidr(own.spec.block);
    ipv4.parseAddress(own.spec.gateway);
  } catch (err) {
    throw new OverlayConfigError(
      `${where} or Network ${network.metadata.name} is malformed: ${(err as Error).message}`,
    );
  }
  if (!ipv4.containsCidr(cidr, block)) {
    throw new OverlayConfigError(
      `${where}: block ${own.spec.block} is outside Network ${network.metadata.name} (${network.spec.cidr}); delete the NodeSubnet so the operator allocates a new one`,
    );
  }
  if (own.spec.vtepAddress !== underlay.address) {
    throw new OverlayConfigError(
      `${where}: vtepAddress ${own.spec.vtepAddress} is not the node's underlay address ${underlay.address} (on ${underlay.name}); fix the node's InternalIP or pass --underlay-interface`,
    );
  }
  return cidr;
}

/** Why a peer cannot be put in the flood list, or null. */
function peerProblem(peer: NodeSubnet, own: NodeSubnet, cidr: ipv4.Cidr): string | null {
  if (!ipv4.isAddress(peer.spec.vtepAddress))
    return `vtepAddress ${peer.spec.vtepAddress} is not IPv4 (the underlay is IPv4 only)`;
  if (peer.spec.vtepAddress === own.spec.vtepAddress)
    return `it claims this node's VTEP address ${own.spec.vtepAddress}`;
  if (!ipv4.isAddress(peer.spec.gateway) || !ipv4.contains(cidr, ipv4.parseAddress(peer.spec.gateway))) {
    return `gateway ${peer.spec.gateway} is not inside the network`;
  }
  if (peer.spec.gateway === own.spec.gateway) return `it has this node's gateway ${own.spec.gateway}`;
  return null;
}

export interface PlanInput {
  network: Network;
  own: NodeSubnet;
  /** Every NodeSubnet of the network; the node's own is skipped. */
  subnets: readonly NodeSubnet[];
  underlay: UnderlayInterface;
}

export function planOverlay({ network, own, subnets, underlay }: PlanInput): OverlayPlan {
  const cidr = checkOwn(network, own, underlay);
  const mtu = overlayMtu(network, underlay);
  const floodList = new Set<string>();
  const staticFdb: FdbTarget[] = [];
  const neighbours: NeighbourTarget[] = [];
  const skippedPeers: OverlayPlan["skippedPeers"] = [];
  const peers = subnets
    .filter((s) => s.spec.network === network.metadata.name && s.spec.node !== own.spec.node)
    .sort((a, b) => (a.spec.node < b.spec.node ? -1 : a.spec.node > b.spec.node ? 1 : 0));
  for (const peer of peers) {
    const problem = peerProblem(peer, own, cidr);
    if (problem) {
      skippedPeers.push({ name: peer.metadata.name ?? peer.spec.node, reason: problem });
      continue;
    }
    floodList.add(peer.spec.vtepAddress);
    const mac = gatewayMac(peer.spec.gateway);
    staticFdb.push({ mac, dst: peer.spec.vtepAddress });
    neighbours.push({ address: peer.spec.gateway, mac });
  }
  const networkCidr = ipv4.formatCidr(cidr);
  return {
    bridge: {
      name: BRIDGE_NAME,
      mtu,
      mac: gatewayMac(own.spec.gateway),
      address: `${own.spec.gateway}/${cidr.prefix}`,
    },
    vxlan: {
      name: VXLAN_NAME,
      vni: network.spec.vni,
      port: network.spec.port ?? DEFAULT_VXLAN_PORT,
      local: underlay.address,
      underlay: underlay.name,
      mtu,
      mac: own.spec.vtepMAC,
      learning: true,
    },
    route: { dst: networkCidr, dev: BRIDGE_NAME, src: own.spec.gateway },
    floodList: [...floodList].sort(),
    staticFdb,
    neighbours,
    rules: overlayRules(network.metadata.name ?? "", networkCidr),
    settings: {
      version: SETTINGS_VERSION,
      network: network.metadata.name ?? "",
      networkCIDR: networkCidr,
      blockCIDR: own.spec.block,
      gateway: own.spec.gateway,
      mtu,
      bridge: BRIDGE_NAME,
    },
    skippedPeers,
  };
}
