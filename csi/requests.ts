/**
 * Pure checks and decisions behind the CSI services: object names from CSI
 * names, capacity from a capacity range, supported capabilities, placement
 * from topology requirements, and list pagination. Each failure is a CsiError
 * with the code the CSI spec gives for it.
 */
import { createHash } from "node:crypto";
import type { StoragePool } from "../api/v1alpha1/index.ts";
import { CsiError } from "./grpc/status.ts";
import type { CapacityRange, Topology, TopologyRequirement, VolumeCapability } from "./proto/types.ts";

/** A segment every Skein node carries with the same value: volumes reachable from every node. */
export const TOPOLOGY_CLUSTER_KEY = "skein.io/cluster";
/**
 * A segment naming one node. Nodes report it (so the scheduler's pick reaches
 * CreateVolume as the preferred topology); volumes never do, so their PVs are
 * not pinned to a node.
 */
export const TOPOLOGY_NODE_KEY = "skein.io/node";

export const MIN_VOLUME_BYTES = 1024 * 1024;
export const DEFAULT_VOLUME_BYTES = 1024 * 1024 * 1024;

const SIMPLE_NAME = /^[a-z0-9]([a-z0-9-]*[a-z0-9])?$/;
/** Keeps `<pool>/skein/<volume>@<snapshot>` well inside ZFS's 255 characters. */
const MAX_SIMPLE_NAME = 63;

/**
 * The Volume or Snapshot object name for a CSI name. Names that are already
 * short DNS labels are kept (PV names like `pvc-<uid>` stay readable); others
 * (upper case, 128 characters, …) become a readable prefix plus a hash. The
 * caller's name is kept in an annotation and compared, so the mapping can
 * never silently merge two requests.
 */
export function objectName(csiName: string): string {
  if (csiName.length <= MAX_SIMPLE_NAME && SIMPLE_NAME.test(csiName)) return csiName;
  const hash = createHash("sha256").update(csiName).digest("hex").slice(0, 20);
  const prefix = csiName
    .toLowerCase()
    .replace(/[^a-z0-9-]+/g, "-")
    .replace(/^-+/, "")
    .slice(0, 36)
    .replace(/-+$/, "");
  return prefix ? `${prefix}-${hash}` : `csi-${hash}`;
}

export function required(value: string, what: string): string {
  if (!value) throw new CsiError("INVALID_ARGUMENT", `${what} is required`);
  return value;
}

/** The bytes to provision for a capacity range: the least it asks for, at least 1 MiB. */
export function capacityFor(range: CapacityRange | null): number {
  const requiredBytes = range?.required_bytes ?? 0;
  const limitBytes = range?.limit_bytes ?? 0;
  if (requiredBytes < 0 || limitBytes < 0) {
    throw new CsiError("INVALID_ARGUMENT", "capacity_range bytes must not be negative");
  }
  if (limitBytes > 0 && requiredBytes > limitBytes) {
    throw new CsiError(
      "INVALID_ARGUMENT",
      `capacity_range asks for at least ${requiredBytes} but at most ${limitBytes} bytes`,
    );
  }
  const wanted =
    requiredBytes > 0
      ? requiredBytes
      : limitBytes > 0
        ? Math.min(limitBytes, DEFAULT_VOLUME_BYTES)
        : DEFAULT_VOLUME_BYTES;
  const bytes = Math.max(wanted, MIN_VOLUME_BYTES);
  if (limitBytes > 0 && bytes > limitBytes) {
    throw new CsiError(
      "OUT_OF_RANGE",
      `volumes are at least ${MIN_VOLUME_BYTES} bytes; limit_bytes ${limitBytes} is below that`,
    );
  }
  return bytes;
}

/** Whether a volume of `capacityBytes` satisfies `range`. */
export function fitsRange(capacityBytes: number, range: CapacityRange | null): boolean {
  const requiredBytes = range?.required_bytes ?? 0;
  const limitBytes = range?.limit_bytes ?? 0;
  return capacityBytes >= requiredBytes && (limitBytes === 0 || capacityBytes <= limitBytes);
}

const SINGLE_NODE_MODES = new Set([
  "SINGLE_NODE_WRITER",
  "SINGLE_NODE_READER_ONLY",
  "SINGLE_NODE_SINGLE_WRITER",
  "SINGLE_NODE_MULTI_WRITER",
]);
const READ_ONLY_MODES = new Set(["SINGLE_NODE_READER_ONLY", "MULTI_NODE_READER_ONLY"]);

/** Why Skein cannot serve `capability`, or undefined when it can. */
export function unsupportedCapability(capability: VolumeCapability): string | undefined {
  const mode = capability.access_mode?.mode ?? "UNKNOWN";
  if (capability.block)
    return "block volumes are not supported: Skein volumes are ZFS filesystems (use a mount volume)";
  if (!capability.mount) return "the volume capability names no access type; use mount";
  const fsType = capability.mount.fs_type;
  if (fsType !== "" && fsType !== "zfs")
    return `fs_type ${fsType} is not supported: Skein volumes are ZFS filesystems (leave it empty or use zfs)`;
  if (!SINGLE_NODE_MODES.has(mode) && mode !== "MULTI_NODE_READER_ONLY") {
    return `access mode ${mode} is not supported: a Skein volume is written on one node at a time`;
  }
  return undefined;
}

export function checkCapabilities(capabilities: readonly VolumeCapability[]): void {
  if (capabilities.length === 0) throw new CsiError("INVALID_ARGUMENT", "volume_capabilities is required");
  for (const c of capabilities) {
    const why = unsupportedCapability(c);
    if (why) throw new CsiError("INVALID_ARGUMENT", why);
  }
}

export function isReadOnlyMode(capability: VolumeCapability | null): boolean {
  return READ_ONLY_MODES.has(capability?.access_mode?.mode ?? "UNKNOWN");
}

/** The accessible topology of every Skein volume: the whole cluster. */
export function clusterTopology(cluster: string): Topology[] {
  return [{ segments: { [TOPOLOGY_CLUSTER_KEY]: cluster } }];
}

/**
 * The node whose pool gets a new volume: the first preferred, then requisite,
 * topology that names a node with a pool; else, among the pools the
 * requirements allow, the one with the most free space.
 */
export function chooseOwner(
  requirements: TopologyRequirement | null,
  pools: readonly StoragePool[],
  cluster: string,
): string {
  const withPool = new Map(pools.map((p) => [p.spec.node, p]));
  const segments = [...(requirements?.preferred ?? []), ...(requirements?.requisite ?? [])].map(
    (t) => t.segments,
  );
  const inCluster = segments.filter((s) => {
    const c = s[TOPOLOGY_CLUSTER_KEY];
    return c === undefined || c === cluster;
  });
  if (segments.length > 0 && inCluster.length === 0) {
    throw new CsiError("RESOURCE_EXHAUSTED", `no requested topology is in Skein cluster ${cluster}`);
  }
  for (const s of inCluster) {
    const node = s[TOPOLOGY_NODE_KEY];
    if (node !== undefined && withPool.has(node)) return node;
  }
  const named = inCluster.map((s) => s[TOPOLOGY_NODE_KEY]).filter((n): n is string => n !== undefined);
  if (named.length > 0 && named.length === inCluster.length) {
    throw new CsiError(
      "RESOURCE_EXHAUSTED",
      `none of the requested nodes (${named.join(", ")}) has a Skein storage pool`,
    );
  }
  const best = [...pools].sort(
    (a, b) =>
      (b.status?.freeBytes ?? 0) - (a.status?.freeBytes ?? 0) || a.spec.node.localeCompare(b.spec.node),
  )[0];
  if (!best)
    throw new CsiError(
      "RESOURCE_EXHAUSTED",
      "no Skein node has published a storage pool yet; is the node plugin running?",
    );
  return best.spec.node;
}

/** The pools a GetCapacity topology covers. */
export function poolsInTopology(
  topology: Topology | null,
  pools: readonly StoragePool[],
  cluster: string,
): StoragePool[] {
  const segments = topology?.segments ?? {};
  const c = segments[TOPOLOGY_CLUSTER_KEY];
  if (c !== undefined && c !== cluster) return [];
  const node = segments[TOPOLOGY_NODE_KEY];
  return node === undefined ? [...pools] : pools.filter((p) => p.spec.node === node);
}

const TOKEN_PREFIX = "after:";

/**
 * One page of `names` (sorted) after `token`. Tokens name the last entry
 * returned, so entries added or deleted between pages neither repeat nor shift
 * the rest; a token that was not made here is ABORTED, as the spec asks.
 */
export function page<T>(
  items: readonly T[],
  nameOf: (item: T) => string,
  maxEntries: number,
  token: string,
): { entries: T[]; nextToken: string } {
  if (maxEntries < 0) throw new CsiError("INVALID_ARGUMENT", "max_entries must not be negative");
  let after = "";
  if (token) {
    const decoded = Buffer.from(token, "base64url").toString("utf8");
    if (!decoded.startsWith(TOKEN_PREFIX) || Buffer.from(decoded).toString("base64url") !== token) {
      throw new CsiError(
        "ABORTED",
        `starting_token ${JSON.stringify(token)} was not issued by this plugin; list from the start`,
      );
    }
    after = decoded.slice(TOKEN_PREFIX.length);
  }
  const sorted = [...items].sort((a, b) => (nameOf(a) < nameOf(b) ? -1 : nameOf(a) > nameOf(b) ? 1 : 0));
  const rest = after ? sorted.filter((i) => nameOf(i) > after) : sorted;
  const entries = maxEntries > 0 ? rest.slice(0, maxEntries) : rest;
  const last = entries[entries.length - 1];
  const more = entries.length < rest.length && last !== undefined;
  return {
    entries,
    nextToken: more ? Buffer.from(`${TOKEN_PREFIX}${nameOf(last)}`).toString("base64url") : "",
  };
}

/**
 * The VolumeMigration ControllerPublishVolume makes to bring `volume` to
 * `node`: one name per pair, so its retries find the one they started. Long
 * pairs are shortened with a hash of the whole (object names stop at 253).
 */
export function migrationName(volume: string, node: string): string {
  const name = `${volume}-to-${node}`;
  if (name.length <= 253) return name;
  const hash = createHash("sha256").update(`${volume}\n${node}`).digest("hex").slice(0, 16);
  return `${name.slice(0, 253 - hash.length - 1).replace(/[-.]+$/, "")}-${hash}`;
}
