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

/** True when an `ip` failure means the device does not exist. */
export function isNoSuchDevice(stderr: string): boolean {
  return /Cannot find device|does not exist|No such device/.test(stderr);
}
