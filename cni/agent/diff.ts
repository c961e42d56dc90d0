/**
 * Wanted against observed kernel state (pure). The agent is level-triggered:
 * whatever woke it, it reads what the kernel holds now and applies only the
 * difference, so a restart, a missed event or a hand edit all converge.
 */

import { FLOOD_MAC } from "../netlink/bridge.ts";
import type { LinkDetails, Neighbour, VxlanSpec } from "../netlink/devices.ts";
import type { FdbEntry } from "../netlink/parse.ts";
import type { FdbTarget, NeighbourTarget } from "./plan.ts";

export interface FdbChanges {
  /** Flood-list entries to append (all-zero MAC). */
  appendFlood: string[];
  /** Static unicast entries to add or repoint. */
  replace: FdbTarget[];
  /** Entries the agent owns that no peer wants any more. */
  remove: FdbTarget[];
}

/**
 * The entries the agent owns are the permanent, remote (`dst`) ones on the
 * VXLAN device itself; what the device learned from traffic ages out on its
 * own and is left alone.
 */
function owned(entries: readonly FdbEntry[]): FdbTarget[] {
  return entries
    .filter((e) => e.dst !== undefined && e.flags.includes("self") && e.state === "permanent")
    .map((e) => ({ mac: e.mac, dst: e.dst! }));
}

const key = (t: FdbTarget) => `${t.mac} ${t.dst}`;

export function diffFdb(
  floodList: readonly string[],
  staticFdb: readonly FdbTarget[],
  actual: readonly FdbEntry[],
): FdbChanges {
  const have = owned(actual);
  const haveKeys = new Set(have.map(key));
  const wanted = [...floodList.map((dst) => ({ mac: FLOOD_MAC, dst })), ...staticFdb];
  const wantedKeys = new Set(wanted.map(key));
  return {
    appendFlood: floodList.filter((dst) => !haveKeys.has(key({ mac: FLOOD_MAC, dst }))),
    replace: staticFdb.filter((t) => !haveKeys.has(key(t))),
    // A repointed static MAC is fixed by `replace`; deleting it as well would undo that.
    remove: have.filter(
      (t) => !wantedKeys.has(key(t)) && (t.mac === FLOOD_MAC || !staticFdb.some((s) => s.mac === t.mac)),
    ),
  };
}

export interface NeighbourChanges {
  replace: NeighbourTarget[];
  remove: string[];
}

/** Permanent entries on the bridge are the agent's; dynamic ones belong to ARP. */
export function diffNeighbours(
  wanted: readonly NeighbourTarget[],
  actual: readonly Neighbour[],
): NeighbourChanges {
  const permanent = actual.filter((n) => n.state.includes("PERMANENT"));
  const wantedAddresses = new Set(wanted.map((w) => w.address));
  return {
    replace: wanted.filter((w) => !permanent.some((n) => n.dst === w.address && n.lladdr === w.mac)),
    remove: permanent.filter((n) => !wantedAddresses.has(n.dst)).map((n) => n.dst),
  };
}

/**
 * Why an existing link cannot serve as the VXLAN device and must be recreated
 * (VNI, port, local address and underlay are fixed at creation), or null.
 * MTU, MAC, master and up/down are fixed in place instead.
 */
export function vxlanIncompatibility(link: LinkDetails, wanted: VxlanSpec): string | null {
  if (link.kind !== "vxlan" || !link.vxlan)
    return `${link.ifname} is a ${link.kind ?? "plain"} device, not vxlan`;
  const v = link.vxlan;
  if (v.vni !== wanted.vni) return `its VNI is ${v.vni}, the Network says ${wanted.vni}`;
  if (v.port !== wanted.port) return `its UDP port is ${v.port}, the Network says ${wanted.port}`;
  if (v.local !== wanted.local)
    return `its local VTEP address is ${v.local ?? "unset"}, the node's is ${wanted.local}`;
  if (v.underlay !== wanted.underlay)
    return `it runs over ${v.underlay ?? "no device"}, the underlay is ${wanted.underlay}`;
  if (v.learning !== wanted.learning)
    return `MAC learning is ${v.learning ? "on" : "off"}, wanted ${wanted.learning ? "on" : "off"}`;
  return null;
}

/** Why an existing link named like the bridge cannot be the bridge, or null. */
export function bridgeIncompatibility(link: LinkDetails): string | null {
  return link.kind === "bridge" ? null : `${link.ifname} is a ${link.kind ?? "plain"} device, not a bridge`;
}
