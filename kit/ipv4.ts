/**
 * IPv4 arithmetic for the overlay: addresses as unsigned 32-bit numbers, CIDR
 * blocks, and the checks the settings file and the allocator rely on. Pure.
 */
import { InvalidInputError } from "./errors.ts";

export interface Cidr {
  /** The network address (host bits cleared). */
  readonly network: number;
  readonly prefix: number;
}

const DOTTED_QUAD = /^(25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)(\.(25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)){3}$/;

export function parseAddress(text: string): number {
  if (!DOTTED_QUAD.test(text)) throw new InvalidInputError(`"${text}" is not an IPv4 address (a.b.c.d)`);
  return text.split(".").reduce((acc, octet) => acc * 256 + Number(octet), 0);
}

export function formatAddress(address: number): string {
  return [address >>> 24, (address >>> 16) & 255, (address >>> 8) & 255, address & 255].join(".");
}

export function isAddress(text: string): boolean {
  return DOTTED_QUAD.test(text);
}

function mask(prefix: number): number {
  return prefix === 0 ? 0 : (0xffffffff << (32 - prefix)) >>> 0;
}

/** Parses "a.b.c.d/n"; host bits must be zero, so a typo in the block is caught. */
export function parseCidr(text: string): Cidr {
  const match = /^([^/]+)\/(\d{1,2})$/.exec(text);
  const prefix = match ? Number(match[2]) : Number.NaN;
  if (!match || prefix > 32) throw new InvalidInputError(`"${text}" is not an IPv4 CIDR (a.b.c.d/n)`);
  const address = parseAddress(match[1]!);
  const network = (address & mask(prefix)) >>> 0;
  if (network !== address) {
    throw new InvalidInputError(
      `"${text}" has host bits set; did you mean ${formatAddress(network)}/${prefix}?`,
    );
  }
  return { network, prefix };
}

export function formatCidr(cidr: Cidr): string {
  return `${formatAddress(cidr.network)}/${cidr.prefix}`;
}

export function size(cidr: Cidr): number {
  return 2 ** (32 - cidr.prefix);
}

export function broadcast(cidr: Cidr): number {
  return cidr.network + size(cidr) - 1;
}

export function contains(cidr: Cidr, address: number): boolean {
  return (address & mask(cidr.prefix)) >>> 0 === cidr.network;
}

/** True when `inner` lies wholly inside `outer`. */
export function containsCidr(outer: Cidr, inner: Cidr): boolean {
  return inner.prefix >= outer.prefix && contains(outer, inner.network);
}
