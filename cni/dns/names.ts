/**
 * Domain names as the responder compares them: lowercase ASCII, no trailing
 * dot, the root as "". Names inside the served domain are kept relative to it
 * ("web", "db-0.prod"), so the domain can change without rebuilding records.
 * Pure.
 */
import { isIP, SocketAddress } from "node:net";

/** RFC 1035: at most 63 octets per label, 255 per name on the wire (253 as text). */
export const MAX_LABEL = 63;
export const MAX_NAME = 253;

const LABEL = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/;
const DOMAIN = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$/;

/**
 * Lowercases ASCII letters only (DNS compares case-insensitively in ASCII,
 * RFC 4343; other bytes compare exactly) and drops one trailing dot.
 */
export function normaliseName(name: string): string {
  const trimmed = name === "." ? "" : name.endsWith(".") ? name.slice(0, -1) : name;
  return /[A-Z]/.test(trimmed) ? trimmed.replace(/[A-Z]+/g, (s) => s.toLowerCase()) : trimmed;
}

/** A DNS-1123 label: what a name in `skein.io/dns-name` must be. */
export function isDnsLabel(text: string): boolean {
  return text.length <= MAX_LABEL && LABEL.test(text);
}

/** A served domain: lowercase LDH labels joined by dots (the Network CRD's rule). */
export function isDomain(text: string): boolean {
  return text.length <= MAX_NAME && DOMAIN.test(text) && text.split(".").every((l) => l.length <= MAX_LABEL);
}

/**
 * Where a normalised name stands relative to `domain`: "apex" for the domain
 * itself, the relative part ("web", "db-0.prod") for a name below it, or
 * undefined for a name outside it.
 */
export function relativeName(name: string, domain: string): string | "apex" | undefined {
  if (name === domain) return "apex";
  if (
    name.length > domain.length + 1 &&
    name.endsWith(domain) &&
    name[name.length - domain.length - 1] === "."
  ) {
    return name.slice(0, name.length - domain.length - 1);
  }
  return undefined;
}

/**
 * The names below `relative` that exist only because something deeper does
 * (RFC 8020 empty non-terminals): "db-0.prod" makes "prod" exist.
 */
export function parentNames(relative: string): string[] {
  const parents: string[] = [];
  for (let dot = relative.indexOf("."); dot >= 0; dot = relative.indexOf(".", dot + 1)) {
    parents.push(relative.slice(dot + 1));
  }
  return parents;
}

/**
 * The address a reverse-lookup name stands for: "4.3.2.1.in-addr.arpa" →
 * "1.2.3.4", a full 32-nibble ip6.arpa name → the IPv6 address in canonical
 * form. Partial or malformed reverse names give undefined.
 */
export function reverseNameAddress(name: string): string | undefined {
  if (name.endsWith(".in-addr.arpa")) {
    const octets = name.slice(0, -".in-addr.arpa".length).split(".");
    if (octets.length !== 4 || !octets.every((o) => /^(0|[1-9]\d{0,2})$/.test(o) && Number(o) <= 255)) {
      return undefined;
    }
    return octets.reverse().join(".");
  }
  if (name.endsWith(".ip6.arpa")) {
    const nibbles = name.slice(0, -".ip6.arpa".length).split(".");
    if (nibbles.length !== 32 || !nibbles.every((n) => /^[0-9a-f]$/.test(n))) return undefined;
    const hex = nibbles.reverse().join("");
    const groups = hex.match(/.{4}/g) ?? [];
    return canonicalAddress(groups.join(":"));
  }
  return undefined;
}

/** The reverse-lookup name of an IPv4 address: "1.2.3.4" → "4.3.2.1.in-addr.arpa". */
export function reverseName(address: string): string {
  if (isIP(address) !== 4) throw new RangeError(`not an IPv4 address: ${address}`);
  return `${address.split(".").reverse().join(".")}.in-addr.arpa`;
}

/** One spelling per address (inet_ntop's), so records and reverse lookups meet in one map key. */
export function canonicalAddress(address: string): string | undefined {
  const family = isIP(address);
  if (family === 0) return undefined;
  return new SocketAddress({ address, family: family === 4 ? "ipv4" : "ipv6" }).address;
}
