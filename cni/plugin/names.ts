/**
 * Names and hardware addresses derived from an attachment, so that DEL and GC
 * can find what ADD made without any state beyond the address records.
 */
import { createHash } from "node:crypto";
import type { Attachment } from "./request.ts";

const HOST_PREFIX = "sk";

/** The host end of an attachment's veth: "sk" + 12 hex digits (15 bytes at most, as the kernel allows). */
export function hostInterfaceName(attachment: Attachment): string {
  const digest = createHash("sha256")
    .update(`${attachment.containerID}\u0000${attachment.ifname}`)
    .digest("hex");
  return `${HOST_PREFIX}${digest.slice(0, 12)}`;
}

/** Whether a host link name is one this plugin makes. */
export function isHostInterfaceName(name: string): boolean {
  return (
    name.length === HOST_PREFIX.length + 12 &&
    name.startsWith(HOST_PREFIX) &&
    /^[0-9a-f]+$/.test(name.slice(HOST_PREFIX.length))
  );
}

function macFrom(prefix: string, address: number): string {
  const octets = [address >>> 24, (address >>> 16) & 255, (address >>> 8) & 255, address & 255];
  return `${prefix}:${octets.map((o) => o.toString(16).padStart(2, "0")).join(":")}`;
}

/**
 * The pod's MAC follows its IPv4 address (locally administered 0a:58 prefix),
 * unique across the overlay because addresses are, and stable for an address
 * so that peers' ARP entries stay right when an address is reused.
 */
export function podMac(address: number): string {
  return macFrom("0a:58", address);
}

/** The host end's MAC: same scheme, a different prefix. */
export function hostMac(address: number): string {
  return macFrom("0a:59", address);
}
