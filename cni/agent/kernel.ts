/**
 * The node's overlay as small idempotent verbs: each reads what the kernel
 * holds, compares it with what is wanted (diff.ts) and changes only the
 * difference, returning what it did so the agent can log and count it. A
 * device that cannot be fixed in place is deleted and recreated, with the
 * reason. The commands come from the pure builders in cni/netlink/.
 */

import { SkeinError } from "../../kit/errors.ts";
import { type Argv, ExecError, type RunOptions, type RunResult, run } from "../../kit/exec.ts";
import { FLOOD_MAC, fdbAppend, fdbDel, fdbReplace, fdbShow } from "../netlink/bridge.ts";
import {
  addrDel,
  addrReplace,
  bridgeAdd,
  bridgeSetMulticastSnooping,
  type LinkDetails,
  linkShowDetails,
  neighDel,
  neighReplace,
  neighShow,
  parseLinkDetails,
  parseNeighbours,
  type VxlanSpec,
  vxlanAdd,
} from "../netlink/devices.ts";
import {
  addrShow,
  isNoSuchDevice,
  linkDel,
  linkSet,
  linkShow,
  type RouteSpec,
  routeReplace,
} from "../netlink/ip.ts";
import { isRuleMissing, type Rule, ruleAppend, ruleCheck } from "../netlink/iptables.ts";
import { parseFdb, parseLinkAddresses, parseLinks } from "../netlink/parse.ts";
import { isHostInterfaceName } from "../plugin/names.ts";
import { bridgeIncompatibility, diffFdb, diffNeighbours, vxlanIncompatibility } from "./diff.ts";
import type { FdbTarget, NeighbourTarget, OverlayPlan, UnderlayInterface } from "./plan.ts";

/** Runs a program in the node's network namespace (the agent's own, or one named by a test). */
export type Exec = (argv: Argv, options?: RunOptions) => Promise<RunResult>;

export const hostExec: Exec = (argv, options) => run(argv, { timeoutMs: 15_000, ...options });

/** One change made to the kernel, for logs and metrics. */
export interface Change {
  what: string;
  /** Set when a device was recreated: why the old one could not stay. */
  reason?: string;
}

async function json(exec: Exec, argv: Argv): Promise<unknown> {
  const { stdout } = await exec(argv);
  try {
    return JSON.parse(stdout || "null");
  } catch (cause) {
    throw new SkeinError("BadOutput", `${argv.join(" ")} printed output that is not JSON`, { cause });
  }
}

/** The link, or undefined when there is none by that name. */
export async function readLink(exec: Exec, name: string): Promise<LinkDetails | undefined> {
  try {
    return parseLinkDetails(await json(exec, linkShowDetails(name)))[0];
  } catch (err) {
    if (err instanceof ExecError && isNoSuchDevice(err.stderr)) return undefined;
    throw err;
  }
}

export class UnderlayNotFoundError extends SkeinError {
  constructor(message: string) {
    super("UnderlayNotFound", message);
  }
}

/**
 * The interface VXLAN runs over: `name` when given, else the one holding
 * `address` (the node's VTEP address from its NodeSubnet).
 */
export async function findUnderlay(exec: Exec, address: string, name?: string): Promise<UnderlayInterface> {
  const links = parseLinkAddresses(await json(exec, ["ip", "-j", "addr", "show"]));
  if (name !== undefined) {
    const link = links.find((l) => l.ifname === name);
    if (!link)
      throw new UnderlayNotFoundError(
        `the underlay interface ${name} (--underlay-interface) does not exist on this node`,
      );
    const inet = link.addresses.filter((a) => a.family === "inet");
    const chosen = inet.find((a) => a.local === address) ?? inet[0];
    if (!chosen) throw new UnderlayNotFoundError(`the underlay interface ${name} has no IPv4 address`);
    return { name, mtu: link.mtu, address: chosen.local };
  }
  const link = links.find((l) => l.addresses.some((a) => a.family === "inet" && a.local === address));
  if (!link) {
    throw new UnderlayNotFoundError(
      `no interface on this node holds the VTEP address ${address} from its NodeSubnet; pass --underlay-interface, or fix the node's InternalIP`,
    );
  }
  return { name: link.ifname, mtu: link.mtu, address };
}

/** Fixes what can be fixed in place on an existing link: MTU, MAC, master, up. */
async function fixLink(
  exec: Exec,
  link: LinkDetails,
  wanted: { mtu: number; mac: string; master?: string },
  changes: Change[],
): Promise<void> {
  const name = link.ifname;
  if (link.mtu !== wanted.mtu) {
    await exec(linkSet(name, { mtu: wanted.mtu }));
    changes.push({ what: `${name}: MTU ${link.mtu} → ${wanted.mtu}` });
  }
  if (link.address !== wanted.mac) {
    await exec(linkSet(name, { mac: wanted.mac }));
    changes.push({ what: `${name}: MAC ${link.address} → ${wanted.mac}` });
  }
  if (wanted.master !== undefined && link.master !== wanted.master) {
    await exec(linkSet(name, { master: wanted.master }));
    changes.push({ what: `${name}: enslaved to ${wanted.master}` });
  }
  if (!link.flags.includes("UP")) {
    await exec(linkSet(name, { up: true }));
    changes.push({ what: `${name}: set up` });
  }
}

/** The bridge, up, with its MAC, MTU, multicast flooding and exactly one IPv4 address. */
export async function ensureBridge(exec: Exec, spec: OverlayPlan["bridge"]): Promise<Change[]> {
  const changes: Change[] = [];
  let link = await readLink(exec, spec.name);
  const reason = link && bridgeIncompatibility(link);
  if (link && reason) {
    await exec(linkDel(spec.name));
    link = undefined;
  }
  if (!link) {
    await exec(bridgeAdd(spec));
    changes.push(reason ? { what: `${spec.name}: recreated`, reason } : { what: `${spec.name}: created` });
    link = await readLink(exec, spec.name);
    if (!link) throw new SkeinError("DeviceVanished", `${spec.name} disappeared right after it was created`);
  }
  await fixLink(exec, link, spec, changes);
  if (link.bridge?.multicastSnooping) {
    await exec(bridgeSetMulticastSnooping(spec.name, false));
    changes.push({ what: `${spec.name}: multicast snooping off` });
  }
  const [addrs] = parseLinkAddresses(await json(exec, addrShow(spec.name)));
  const inet = (addrs?.addresses ?? [])
    .filter((a) => a.family === "inet")
    .map((a) => `${a.local}/${a.prefixlen}`);
  for (const stale of inet.filter((a) => a !== spec.address)) {
    await exec(addrDel(stale, spec.name));
    changes.push({ what: `${spec.name}: removed address ${stale}` });
  }
  if (!inet.includes(spec.address)) {
    await exec(addrReplace(spec.address, spec.name));
    changes.push({ what: `${spec.name}: address ${spec.address}` });
  }
  // A bridge deleted by hand takes its ports with it: give running pods their switch back.
  const orphans = parseLinks(await json(exec, linkShow())).filter(
    (l) => isHostInterfaceName(l.ifname) && !l.master,
  );
  for (const orphan of orphans) {
    await exec(linkSet(orphan.ifname, { master: spec.name }));
    changes.push({ what: `${orphan.ifname}: pod port re-attached to ${spec.name}` });
  }
  return changes;
}

/** The VXLAN device, compatible with the Network, enslaved to the bridge and up. */
export async function ensureVxlan(exec: Exec, spec: VxlanSpec, bridge: string): Promise<Change[]> {
  const changes: Change[] = [];
  let link = await readLink(exec, spec.name);
  const reason = link && vxlanIncompatibility(link, spec);
  if (link && reason) {
    await exec(linkDel(spec.name));
    link = undefined;
  }
  if (!link) {
    await exec(vxlanAdd(spec));
    changes.push(reason ? { what: `${spec.name}: recreated`, reason } : { what: `${spec.name}: created` });
    link = await readLink(exec, spec.name);
    if (!link) throw new SkeinError("DeviceVanished", `${spec.name} disappeared right after it was created`);
  }
  await fixLink(exec, link, { ...spec, master: bridge }, changes);
  return changes;
}

export async function readFdb(exec: Exec, device: string) {
  const raw = await json(exec, fdbShow(device));
  // `bridge -j fdb show dev X` leaves out "ifname" (iproute2 6.1); parseFdb requires it.
  const withName = Array.isArray(raw) ? raw.map((e: object) => ({ ifname: device, ...e })) : raw;
  return parseFdb(withName);
}

/** Brings the device's flood list and static entries exactly in line with the plan; returns the entries it now owns. */
export async function syncFdb(
  exec: Exec,
  device: string,
  floodList: readonly string[],
  staticFdb: readonly FdbTarget[],
): Promise<{ changes: Change[]; entries: number }> {
  const diff = diffFdb(floodList, staticFdb, await readFdb(exec, device));
  const changes: Change[] = [];
  for (const t of diff.remove) {
    await exec(fdbDel(t.mac, device, t.dst));
    changes.push({ what: `${device}: fdb del ${t.mac} dst ${t.dst}` });
  }
  for (const dst of diff.appendFlood) {
    await exec(fdbAppend(FLOOD_MAC, device, dst));
    changes.push({ what: `${device}: flood to ${dst}` });
  }
  for (const t of diff.replace) {
    await exec(fdbReplace(t.mac, device, t.dst));
    changes.push({ what: `${device}: fdb ${t.mac} dst ${t.dst}` });
  }
  return { changes, entries: floodList.length + staticFdb.length };
}

export async function syncNeighbours(
  exec: Exec,
  bridge: string,
  wanted: readonly NeighbourTarget[],
): Promise<Change[]> {
  const diff = diffNeighbours(wanted, parseNeighbours(await json(exec, neighShow(bridge))));
  const changes: Change[] = [];
  for (const address of diff.remove) {
    await exec(neighDel(address, bridge));
    changes.push({ what: `${bridge}: neigh del ${address}` });
  }
  for (const n of diff.replace) {
    await exec(neighReplace(n.address, n.mac, bridge));
    changes.push({ what: `${bridge}: neigh ${n.address} lladdr ${n.mac}` });
  }
  return changes;
}

/** `ip route replace` is idempotent on its own. */
export async function ensureRoute(exec: Exec, route: RouteSpec): Promise<void> {
  await exec(routeReplace(route));
}

/** Each rule once: checked (`-C`), appended only when missing. */
export async function ensureRules(exec: Exec, rules: readonly Rule[]): Promise<Change[]> {
  const changes: Change[] = [];
  for (const rule of rules) {
    try {
      await exec(ruleCheck(rule));
      continue;
    } catch (err) {
      if (!(err instanceof ExecError && isRuleMissing(err.exitCode, err.stderr))) throw err;
    }
    await exec(ruleAppend(rule));
    changes.push({ what: `iptables -t ${rule.table} -A ${rule.chain} ${rule.spec.join(" ")}` });
  }
  return changes;
}

/** Pods reach beyond their node only if it forwards. */
export async function enableForwarding(exec: Exec): Promise<void> {
  await exec(["sysctl", "-q", "-w", "net.ipv4.ip_forward=1"]);
}

/** Everything in the plan, in dependency order; the settings file is the caller's (it comes last). */
export async function applyPlan(
  exec: Exec,
  plan: OverlayPlan,
): Promise<{ changes: Change[]; fdbEntries: number }> {
  const changes = [
    ...(await ensureBridge(exec, plan.bridge)),
    ...(await ensureVxlan(exec, plan.vxlan, plan.bridge.name)),
  ];
  const fdb = await syncFdb(exec, plan.vxlan.name, plan.floodList, plan.staticFdb);
  changes.push(...fdb.changes, ...(await syncNeighbours(exec, plan.bridge.name, plan.neighbours)));
  await ensureRoute(exec, plan.route);
  await enableForwarding(exec);
  changes.push(...(await ensureRules(exec, plan.rules)));
  return { changes, fdbEntries: fdb.entries };
}
