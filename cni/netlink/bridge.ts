/**
 * Argument builders for iproute2's `bridge`: the forwarding database of a
 * VXLAN device (the flood list is one all-zero entry per peer VTEP). Pure.
 */

import { InvalidInputError } from "../../kit/errors.ts";
import type { Argv } from "../../kit/exec.ts";
import { isAddress } from "../../kit/ipv4.ts";
import { checkedInterfaceName } from "./ifname.ts";

/** The MAC that marks a flood-list entry: unknown and broadcast frames go to every such dst. */
export const FLOOD_MAC = "00:00:00:00:00:00";

const dev = checkedInterfaceName;

function entry(mac: string, name: string, dst: string): string[] {
  if (!/^[0-9a-f]{2}(:[0-9a-f]{2}){5}$/.test(mac))
    throw new InvalidInputError(`${JSON.stringify(mac)} is not a MAC`);
  if (!isAddress(dst)) throw new InvalidInputError(`${JSON.stringify(dst)} is not an IPv4 address`);
  return [mac, "dev", dev(name), "dst", dst];
}

export function fdbShow(name?: string): Argv {
  return name === undefined
    ? ["bridge", "-j", "fdb", "show"]
    : ["bridge", "-j", "fdb", "show", "dev", dev(name)];
}

/** `append` (not `add`): several entries may share the all-zero MAC, one per peer. */
export function fdbAppend(mac: string, name: string, dst: string): Argv {
  return ["bridge", "fdb", "append", ...entry(mac, name, dst)];
}

export function fdbReplace(mac: string, name: string, dst: string): Argv {
  return ["bridge", "fdb", "replace", ...entry(mac, name, dst)];
}

export function fdbDel(mac: string, name: string, dst: string): Argv {
  return ["bridge", "fdb", "del", ...entry(mac, name, dst)];
}
