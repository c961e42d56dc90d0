/**
 * Argument builders for the node network agent's devices (the overlay bridge
 * and its VXLAN port), their addresses and static neighbours, plus a typed
 * view of `ip -d -j link show` so the agent can compare what exists with what
 * it wants. Pure; the builders shared with the plugin live in ip.ts.
 */
import { InvalidInputError } from "../../kit/errors.ts";
import type { Argv } from "../../kit/exec.ts";
import { isAddress } from "../../kit/ipv4.ts";
import { checkedInterfaceName } from "./ifname.ts";
import { type Link, parseLinks } from "./parse.ts";

const MAC = /^[0-9a-f]{2}(:[0-9a-f]{2}){5}$/;
const MAX_VNI = 16_777_215;

const dev = checkedInterfaceName;

function mac(value: string): string {
  if (!MAC.test(value))
    throw new InvalidInputError(`${JSON.stringify(value)} is not a lower-case MAC address`);
  return value;
}

function mtu(value: number): string {
  if (!Number.isInteger(value) || value < 68 || value > 65535)
    throw new InvalidInputError(`MTU ${value} is out of range`);
  return String(value);
}

function address(value: string): string {
  if (!isAddress(value)) throw new InvalidInputError(`${JSON.stringify(value)} is not an IPv4 address`);
  return value;
}

/** "a.b.c.d/n" where the host bits may be set (an interface address, not a network). */
function interfaceCidr(value: string): string {
  const match = /^([^/]+)\/(\d{1,2})$/.exec(value);
  if (!match || !isAddress(match[1]!) || Number(match[2]) > 32) {
    throw new InvalidInputError(`${JSON.stringify(value)} is not an IPv4 interface address (a.b.c.d/n)`);
  }
  return value;
}

export interface BridgeSpec {
  name: string;
  mtu: number;
  /**
   * Set explicitly: a bridge without a MAC of its own takes the lowest MAC of
   * its ports, so its MAC (the pods' gateway MAC) would change as pods come and go.
   */
  mac: string;
}

/**
 * A bridge that floods multicast like broadcast: with IGMP snooping on and no
 * querier on the segment, the bridge would stop sending a group to the VXLAN
 * port once a local pod joins it, and pods on other nodes would miss it.
 */
export function bridgeAdd(spec: BridgeSpec): Argv {
  return [
    "ip",
    "link",
    "add",
    dev(spec.name),
    "mtu",
    mtu(spec.mtu),
    "address",
    mac(spec.mac),
    "type",
    "bridge",
    "mcast_snooping",
    "0",
  ];
}

export function bridgeSetMulticastSnooping(name: string, on: boolean): Argv {
  return ["ip", "link", "set", "dev", dev(name), "type", "bridge", "mcast_snooping", on ? "1" : "0"];
}

export interface VxlanSpec {
  name: string;
  vni: number;
  /** UDP destination port of the tunnel. */
  port: number;
  /** This node's VTEP address (source of the outer packets). */
  local: string;
  /** The underlay interface the tunnel runs over. */
  underlay: string;
  mtu: number;
  mac: string;
  /** Learn remote MACs from received packets (so unicast stops flooding once a peer has spoken). */
  learning: boolean;
}

export function vxlanAdd(spec: VxlanSpec): Argv {
  if (!Number.isInteger(spec.vni) || spec.vni < 1 || spec.vni > MAX_VNI) {
    throw new InvalidInputError(`VNI ${spec.vni} is out of range (1 to ${MAX_VNI})`);
  }
  if (!Number.isInteger(spec.port) || spec.port < 1 || spec.port > 65535) {
    throw new InvalidInputError(`UDP port ${spec.port} is out of range (1 to 65535)`);
  }
  return [
    "ip",
    "link",
    "add",
    dev(spec.name),
    "mtu",
    mtu(spec.mtu),
    "address",
    mac(spec.mac),
    "type",
    "vxlan",
    "id",
    String(spec.vni),
    "dstport",
    String(spec.port),
    "local",
    address(spec.local),
    "dev",
    dev(spec.underlay),
    spec.learning ? "learning" : "nolearning",
  ];
}

/** `ip -d -j link show`: with the kind-specific attributes (VNI, port, snooping, …). */
export function linkShowDetails(name?: string): Argv {
  return name === undefined
    ? ["ip", "-d", "-j", "link", "show"]
    : ["ip", "-d", "-j", "link", "show", "dev", dev(name)];
}

/** `ip addr replace`: adds the address, or keeps it when already there (unlike `add`, which fails). */
export function addrReplace(cidr: string, name: string): Argv {
  return ["ip", "addr", "replace", interfaceCidr(cidr), "dev", dev(name)];
}

export function addrDel(cidr: string, name: string): Argv {
  return ["ip", "addr", "del", interfaceCidr(cidr), "dev", dev(name)];
}

/** A permanent neighbour entry: the kernel never has to ARP for `ip`. */
export function neighReplace(ip: string, lladdr: string, name: string): Argv {
  return ["ip", "neigh", "replace", address(ip), "lladdr", mac(lladdr), "dev", dev(name), "nud", "permanent"];
}

export function neighDel(ip: string, name: string): Argv {
  return ["ip", "neigh", "del", address(ip), "dev", dev(name)];
}

export function neighShow(name: string): Argv {
  return ["ip", "-j", "neigh", "show", "dev", dev(name)];
}

export interface VxlanDetails {
  vni: number;
  port: number;
  local?: string;
  /** The underlay interface, when the device is bound to one. */
  underlay?: string;
  learning: boolean;
}

export interface LinkDetails extends Link {
  /** `info_kind`: "bridge", "vxlan", "veth", …; undefined for plain devices. */
  kind?: string;
  vxlan?: VxlanDetails;
  bridge?: { multicastSnooping: boolean };
}

type Json = Record<string, unknown>;

function kindData(raw: Json): { kind?: string; data: Json } {
  const info = raw.linkinfo as Json | undefined;
  if (typeof info !== "object" || info === null) return { data: {} };
  const data = (typeof info.info_data === "object" && info.info_data !== null ? info.info_data : {}) as Json;
  return typeof info.info_kind === "string" ? { kind: info.info_kind, data } : { data };
}

/** `ip -d -j link show`; the common fields are read (and checked) by parse.ts. */
export function parseLinkDetails(value: unknown): LinkDetails[] {
  const links = parseLinks(value);
  const raw = (value ?? []) as Json[];
  return links.map((link, i) => {
    const details: LinkDetails = { ...link };
    const { kind, data } = kindData(raw[i]!);
    if (kind === undefined) return details;
    details.kind = kind;
    if (kind === "vxlan") {
      const vxlan: VxlanDetails = {
        vni: typeof data.id === "number" ? data.id : -1,
        port: typeof data.port === "number" ? data.port : -1,
        learning: data.learning === true,
      };
      if (typeof data.local === "string") vxlan.local = data.local;
      if (typeof data.link === "string") vxlan.underlay = data.link;
      details.vxlan = vxlan;
    } else if (kind === "bridge") {
      details.bridge = { multicastSnooping: data.mcast_snooping !== 0 };
    }
    return details;
  });
}

export interface Neighbour {
  dst: string;
  lladdr?: string;
  state: string[];
}

/** `ip -j neigh show`. */
export function parseNeighbours(value: unknown): Neighbour[] {
  if (value === null || value === undefined) return [];
  if (!Array.isArray(value))
    throw new InvalidInputError("ip -j neigh printed something other than a JSON array");
  return value.flatMap((item: Json) => {
    if (typeof item !== "object" || item === null || typeof item.dst !== "string") return [];
    const n: Neighbour = {
      dst: item.dst,
      state: Array.isArray(item.state) ? item.state.filter((s): s is string => typeof s === "string") : [],
    };
    if (typeof item.lladdr === "string") n.lladdr = item.lladdr;
    return [n];
  });
}
