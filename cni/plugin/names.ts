/**
 * Names and hardware addresses derived from an attachment, so that DEL and GC
 * can find what ADD made without any state beyond the address records.
 */
import type { Attachment } from "./request.ts";

const HOST_PREFIX = "sk";

/**
 * The host end of an attachment's veth: "sk" + the first 12 hex digits of the
 * SHA-256 of the attachment (15 bytes at most, as the kernel allows). Web
 * Crypto rather than `node:crypto`, whose loading costs milliseconds of every
 * plugin start under Bun.
 */
export async function hostInterfaceName(attachment: Attachment): Promise<string> {
  const data = new TextEncoder().encode(`${attachment.containerID}\u0000${attachment.ifname}`);
  const digest = new Uint8Array(await crypto.subtle.digest("SHA-256", data));
  const hex = Array.from(digest.subarray(0, 6), (b) => b.toString(16).padStart(2, "0")).join("");
  return `${HOST_PREFIX}${hex}`;
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
