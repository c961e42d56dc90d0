/**
 * The ADD result (SPEC.md section 5) in the shape each supported spec version
 * expects, and the reading of a `prevResult`. Versions differ only in small
 * ways here: 0.4.0 tags each IP with `"version": "4"`; 1.1.0 adds `mtu` to
 * interfaces.
 */
import { CniCode, CniError } from "./errors.ts";

export const SUPPORTED_VERSIONS = ["0.4.0", "1.0.0", "1.1.0"] as const;
export const LATEST_VERSION = "1.1.0";

export interface Interface {
  name: string;
  mac?: string;
  mtu?: number;
  /** The netns path for interfaces inside the container; absent on the host. */
  sandbox?: string;
}

export interface IpConfig {
  /** CIDR notation, e.g. "10.32.1.5/12". */
  address: string;
  gateway?: string;
  /** Index into `interfaces`. */
  interface?: number;
}

export interface Route {
  dst: string;
  gw?: string;
}

export interface Dns {
  nameservers?: string[];
  domain?: string;
  search?: string[];
  options?: string[];
}

export interface Result {
  interfaces: Interface[];
  ips: IpConfig[];
  routes: Route[];
  dns?: Dns;
}

/** Compares two "x.y.z" versions. */
export function compareVersions(a: string, b: string): number {
  const pa = a.split(".").map(Number);
  const pb = b.split(".").map(Number);
  for (let i = 0; i < 3; i++) {
    const d = (pa[i] ?? 0) - (pb[i] ?? 0);
    if (d !== 0) return d;
  }
  return 0;
}

export function formatResult(result: Result, cniVersion: string): Record<string, unknown> {
  const pre11 = compareVersions(cniVersion, "1.1.0") < 0;
  const pre10 = compareVersions(cniVersion, "1.0.0") < 0;
  const out: Record<string, unknown> = {
    cniVersion,
    interfaces: result.interfaces.map((iface) => {
      if (!pre11 || iface.mtu === undefined) return iface;
      const { mtu: _mtu, ...rest } = iface;
      return rest;
    }),
    ips: result.ips.map((ip) => (pre10 ? { version: "4", ...ip } : ip)),
    routes: result.routes,
  };
  if (result.dns) out.dns = result.dns;
  return out;
}

function invalid(detail: string): CniError {
  return new CniError(CniCode.InvalidConfig, "invalid prevResult", detail);
}

function isObject(value: unknown): value is Record<string, unknown> {
  return typeof value === "object" && value !== null && !Array.isArray(value);
}

function list(value: unknown, key: string): Record<string, unknown>[] {
  if (value === undefined) return [];
  if (!Array.isArray(value) || !value.every(isObject)) throw invalid(`${key} must be a list of objects`);
  return value;
}

/** Reads a prevResult of any supported version into the common shape. */
export function parsePrevResult(value: unknown): Result {
  if (!isObject(value)) throw invalid("it is not an object");
  const interfaces = list(value.interfaces, "interfaces").map((i): Interface => {
    if (typeof i.name !== "string") throw invalid("an interface has no name");
    const iface: Interface = { name: i.name };
    if (typeof i.mac === "string") iface.mac = i.mac;
    if (typeof i.mtu === "number") iface.mtu = i.mtu;
    if (typeof i.sandbox === "string" && i.sandbox !== "") iface.sandbox = i.sandbox;
    return iface;
  });
  const ips = list(value.ips, "ips").map((i): IpConfig => {
    if (typeof i.address !== "string") throw invalid("an IP has no address");
    const ip: IpConfig = { address: i.address };
    if (typeof i.gateway === "string") ip.gateway = i.gateway;
    if (typeof i.interface === "number") ip.interface = i.interface;
    return ip;
  });
  const routes = list(value.routes, "routes").map((r): Route => {
    if (typeof r.dst !== "string") throw invalid("a route has no dst");
    return typeof r.gw === "string" ? { dst: r.dst, gw: r.gw } : { dst: r.dst };
  });
  const result: Result = { interfaces, ips, routes };
  if (isObject(value.dns)) result.dns = value.dns as Dns;
  return result;
}

/** Appends this plugin's part to what earlier plugins in the chain reported. */
export function appendResult(prev: Result | undefined, own: Result): Result {
  if (!prev) return own;
  const offset = prev.interfaces.length;
  const merged: Result = {
    interfaces: [...prev.interfaces, ...own.interfaces],
    ips: [
      ...prev.ips,
      ...own.ips.map((ip) => (ip.interface === undefined ? ip : { ...ip, interface: ip.interface + offset })),
    ],
    routes: [...prev.routes, ...own.routes],
  };
  const dns = own.dns ?? prev.dns;
  if (dns) merged.dns = dns;
  return merged;
}
