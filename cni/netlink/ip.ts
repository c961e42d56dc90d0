/**
 * Argument builders for iproute2's `ip`, shared by the CNI plugin and the node
 * network agent. Pure: each returns the argv to run with kit/exec (`run`,
 * `runJson`, or wrapped by `inNetns` to act inside a namespace given by path).
 *
 * `netns` may be a path: iproute2 opens any value containing "/" as a file
 * (verified with iproute2 6.1), which is what CNI hands us in CNI_NETNS.
 */

import { InvalidInputError } from "../../kit/errors.ts";
import type { Argv } from "../../kit/exec.ts";
import { checkedInterfaceName } from "./ifname.ts";

const MAC = /^[0-9a-f]{2}(:[0-9a-f]{2}){5}$/;

const dev = checkedInterfaceName;

function mtu(value: number): string {
  if (!Number.isInteger(value) || value < 68 || value > 65535)
    throw new InvalidInputError(`MTU ${value} is out of range`);
  return String(value);
}

function mac(value: string): string {
  if (!MAC.test(value))
    throw new InvalidInputError(`${JSON.stringify(value)} is not a lower-case MAC address`);
  return value;
}

/** Options that `ip link add` and `ip link set` share. */
export interface LinkOptions {
  mtu?: number;
  mac?: string;
  master?: string;
  /** Path (or name) of the network namespace to move the link into. */
  netns?: string;
  up?: boolean;
}

function linkOptions(options: LinkOptions): string[] {
  const args: string[] = [];
  if (options.mtu !== undefined) args.push("mtu", mtu(options.mtu));
  if (options.mac !== undefined) args.push("address", mac(options.mac));
  if (options.master !== undefined) args.push("master", dev(options.master));
  if (options.netns !== undefined) args.push("netns", options.netns);
  if (options.up) args.push("up");
  return args;
}

export interface VethSpec extends Omit<LinkOptions, "netns"> {
  name: string;
  peer: LinkOptions & { name: string };
}

/**
 * One veth pair in one call: the host end enslaved and up, the peer created
 * directly in its namespace under its final name, so no half-made pair with a
 * temporary name is ever visible.
 */
export function vethAdd(spec: VethSpec): Argv {
  const { name, peer, ...host } = spec;
  const { name: peerName, ...peerOptions } = peer;
  return [
    "ip",
    "link",
    "add",
    dev(name),
    ...linkOptions(host),
    "type",
    "veth",
    "peer",
    "name",
    dev(peerName),
    ...linkOptions(peerOptions),
  ];
}

export function linkDel(name: string): Argv {
  return ["ip", "link", "del", "dev", dev(name)];
}

export function linkSet(name: string, options: LinkOptions): Argv {
  return ["ip", "link", "set", "dev", dev(name), ...linkOptions(options)];
}

export function linkShow(name?: string): Argv {
  return name === undefined ? ["ip", "-j", "link", "show"] : ["ip", "-j", "link", "show", "dev", dev(name)];
}

/** The ports of a bridge. */
export function linkShowMaster(bridge: string): Argv {
  return ["ip", "-j", "link", "show", "master", dev(bridge)];
}

export function addrAdd(cidr: string, name: string): Argv {
  return ["ip", "addr", "add", cidr, "dev", dev(name)];
}

export function addrFlush(name: string): Argv {
  return ["ip", "addr", "flush", "dev", dev(name)];
}

export function addrShow(name: string): Argv {
  return ["ip", "-j", "addr", "show", "dev", dev(name)];
}

export interface RouteSpec {
  /** "default" or a CIDR. */
  dst: string;
  via?: string;
  dev: string;
  src?: string;
  onlink?: boolean;
}

export function routeReplace(route: RouteSpec): Argv {
  const args: [string, ...string[]] = ["ip", "route", "replace", route.dst];
  if (route.via !== undefined) args.push("via", route.via);
  args.push("dev", dev(route.dev));
  if (route.src !== undefined) args.push("src", route.src);
  if (route.onlink) args.push("onlink");
  return args;
}

export function routeShow(name: string): Argv {
  return ["ip", "-j", "route", "show", "dev", dev(name)];
}

/**
 * Several `ip` commands in one process (`ip -batch -`), to keep a CNI ADD to
 * as few process starts as possible. ip splits batch lines on whitespace, cuts
 * at "#" and treats a leading quote specially, so a word containing any of
 * those is refused rather than passed on altered.
 */
export function ipBatch(commands: readonly Argv[]): { argv: Argv; input: string } {
  const lines = commands.map((command) => {
    const [program, ...args] = command;
    if (program !== "ip" || args.length === 0 || args[0]!.startsWith("-")) {
      throw new InvalidInputError(
        `${command.join(" ")} cannot run in an ip batch (plain ip subcommands only)`,
      );
    }
    for (const word of args) {
      if (word === "" || /[\s#"'\\]/u.test(word)) {
        throw new InvalidInputError(`${JSON.stringify(word)} cannot be passed through an ip batch line`);
      }
    }
    return args.join(" ");
  });
  return { argv: ["ip", "-batch", "-"], input: `${lines.join("\n")}\n` };
}

/** True when an `ip` failure means the device does not exist. */
export function isNoSuchDevice(stderr: string): boolean {
  return /Cannot find device|does not exist|No such device/.test(stderr);
}

/** True when an `ip link add` failure means a name is already taken. */
export function isFileExists(stderr: string): boolean {
  return /File exists/.test(stderr);
}
