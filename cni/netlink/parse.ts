/**
 * Typed views of what `ip -j` and `bridge -j` print. Only the fields Skein
 * reads are kept; output that does not have the expected shape is an error, so
 * a changed iproute2 cannot silently turn into "no links".
 */
import { SkeinError } from "../../kit/errors.ts";

export interface Link {
  ifindex: number;
  ifname: string;
  mtu: number;
  address: string;
  flags: string[];
  operstate: string;
  master?: string;
}

export interface Address {
  family: "inet" | "inet6";
  local: string;
  prefixlen: number;
}

export interface LinkAddresses extends Link {
  addresses: Address[];
}

export interface Route {
  /** "default" or a CIDR / address. */
  dst: string;
  gateway?: string;
  dev?: string;
}

export interface FdbEntry {
  mac: string;
  ifname: string;
  dst?: string;
  master?: string;
  flags: string[];
  state?: string;
}

class BadIpOutputError extends SkeinError {
  constructor(what: string, detail: string) {
    super("BadIpOutput", `unexpected ${what} output from iproute2: ${detail}`);
  }
}

type Json = Record<string, unknown>;

function entries(what: string, value: unknown): Json[] {
  // `ip -j … show dev X` prints nothing at all on some versions when X has no entries.
  if (value === null || value === undefined) return [];
  if (!Array.isArray(value)) throw new BadIpOutputError(what, "not a JSON array");
  return value.map((item) => {
    if (typeof item !== "object" || item === null)
      throw new BadIpOutputError(what, "an entry is not an object");
    return item as Json;
  });
}

function str(what: string, entry: Json, key: string): string {
  const value = entry[key];
  if (typeof value !== "string")
    throw new BadIpOutputError(what, `"${key}" is not a string in ${JSON.stringify(entry)}`);
  return value;
}

function num(what: string, entry: Json, key: string): number {
  const value = entry[key];
  if (typeof value !== "number")
    throw new BadIpOutputError(what, `"${key}" is not a number in ${JSON.stringify(entry)}`);
  return value;
}

function optionalStr(entry: Json, key: string): string | undefined {
  return typeof entry[key] === "string" ? (entry[key] as string) : undefined;
}

function flags(entry: Json): string[] {
  return Array.isArray(entry.flags) ? entry.flags.filter((f): f is string => typeof f === "string") : [];
}

function link(entry: Json): Link {
  const parsed: Link = {
    ifindex: num("link", entry, "ifindex"),
    ifname: str("link", entry, "ifname"),
    mtu: num("link", entry, "mtu"),
    address: optionalStr(entry, "address") ?? "",
    flags: flags(entry),
    operstate: optionalStr(entry, "operstate") ?? "UNKNOWN",
  };
  const master = optionalStr(entry, "master");
  if (master !== undefined) parsed.master = master;
  return parsed;
}

/** `ip -j link show`. */
export function parseLinks(value: unknown): Link[] {
  return entries("link", value).map(link);
}

/** `ip -j addr show`. */
export function parseLinkAddresses(value: unknown): LinkAddresses[] {
  return entries("addr", value).map((entry) => ({
    ...link(entry),
    addresses: entries("addr", entry.addr_info ?? [])
      .filter((a) => a.family === "inet" || a.family === "inet6")
      .map((a) => ({
        family: a.family as "inet" | "inet6",
        local: str("addr", a, "local"),
        prefixlen: num("addr", a, "prefixlen"),
      })),
  }));
}

/** `ip -j route show`. */
export function parseRoutes(value: unknown): Route[] {
  return entries("route", value).map((entry) => {
    const route: Route = { dst: str("route", entry, "dst") };
    const gateway = optionalStr(entry, "gateway");
    const dev = optionalStr(entry, "dev");
    if (gateway !== undefined) route.gateway = gateway;
    if (dev !== undefined) route.dev = dev;
    return route;
  });
}

/** `bridge -j fdb show`. */
export function parseFdb(value: unknown): FdbEntry[] {
  return entries("fdb", value).map((entry) => {
    const fdb: FdbEntry = {
      mac: str("fdb", entry, "mac"),
      ifname: str("fdb", entry, "ifname"),
      flags: flags(entry),
    };
    for (const key of ["dst", "master", "state"] as const) {
      const value = optionalStr(entry, key);
      if (value !== undefined) fdb[key] = value;
    }
    return fdb;
  });
}
