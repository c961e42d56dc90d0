/**
 * StorageClass parameters → ZFS properties of a volume's dataset. Only an
 * allow-list of tuning properties is accepted, each with its values checked, so
 * a typo fails the CreateVolume call instead of silently doing nothing, and
 * properties that Skein manages itself (quota, mountpoint, …) cannot be
 * overridden. ZFS still has the last word: a value this pool's ZFS does not
 * know (say `compression=zstd` on zfs-fuse) is refused by `zfs create`.
 *
 * Keys under `csi.storage.k8s.io/` (added by the external-provisioner) and
 * `skein.io/` (Skein's own settings, read elsewhere) are not ZFS properties
 * and are skipped here.
 */
import { InvalidInputError } from "../../kit/errors.ts";
import type { Properties } from "./commands.ts";

type Check = (value: string) => string | undefined;

const oneOf =
  (...values: string[]): Check =>
  (v) =>
    values.includes(v) ? v : undefined;

const ON_OFF = oneOf("on", "off");

const SIZE = /^(\d+)([KMkm]?)$/;

/** A power of two from 512 bytes to 16 MiB, as bytes (`128K` → `131072`). */
function recordsize(value: string): string | undefined {
  const m = SIZE.exec(value);
  if (!m) return undefined;
  const unit = (m[2] ?? "").toUpperCase();
  const n = Number(m[1]) * (unit === "K" ? 1024 : unit === "M" ? 1024 * 1024 : 1);
  const powerOfTwo = n > 0 && (n & (n - 1)) === 0;
  return powerOfTwo && n >= 512 && n <= 16 * 1024 * 1024 ? String(n) : undefined;
}

function compression(value: string): string | undefined {
  if (["on", "off", "lzjb", "lz4", "zle", "gzip", "zstd", "zstd-fast"].includes(value)) return value;
  const level = /^(gzip|zstd|zstd-fast)-(\d+)$/.exec(value);
  if (!level) return undefined;
  const n = Number(level[2]);
  const max = level[1] === "gzip" ? 9 : level[1] === "zstd" ? 19 : 1000;
  return n >= 1 && n <= max ? value : undefined;
}

/** The allowed keys, each with what it accepts (for the error message) and its check. */
const ALLOWED: ReadonlyMap<string, { accepts: string; check: Check }> = new Map([
  [
    "compression",
    { accepts: "on, off, lz4, lzjb, zle, gzip[-1..9], zstd[-1..19], zstd-fast[-N]", check: compression },
  ],
  ["recordsize", { accepts: "a power of two from 512 to 16M (e.g. 128K)", check: recordsize }],
  ["atime", { accepts: "on, off", check: ON_OFF }],
  ["relatime", { accepts: "on, off", check: ON_OFF }],
  [
    "checksum",
    {
      accepts: "on, fletcher2, fletcher4, sha256, sha512, skein, edonr, blake3",
      check: oneOf("on", "fletcher2", "fletcher4", "sha256", "sha512", "skein", "edonr", "blake3"),
    },
  ],
  ["sync", { accepts: "standard, always, disabled", check: oneOf("standard", "always", "disabled") }],
  ["logbias", { accepts: "latency, throughput", check: oneOf("latency", "throughput") }],
  ["primarycache", { accepts: "all, metadata, none", check: oneOf("all", "metadata", "none") }],
  ["secondarycache", { accepts: "all, metadata, none", check: oneOf("all", "metadata", "none") }],
  ["copies", { accepts: "1, 2, 3", check: oneOf("1", "2", "3") }],
  ["xattr", { accepts: "on, off, sa, dir", check: oneOf("on", "off", "sa", "dir") }],
  ["acltype", { accepts: "off, posix, nfsv4", check: oneOf("off", "posix", "posixacl", "nfsv4", "noacl") }],
  ["snapdir", { accepts: "hidden, visible", check: oneOf("hidden", "visible") }],
  ["exec", { accepts: "on, off", check: ON_OFF }],
  ["setuid", { accepts: "on, off", check: ON_OFF }],
  ["redundant_metadata", { accepts: "all, most, some, none", check: oneOf("all", "most", "some", "none") }],
]);

const MANAGED_BY_SKEIN =
  "Skein manages it (capacity sets refquota; publishing sets the mountpoint and read-only state)";

/** Keys refused with a reason, because they look like tuning but are not safe to pass through. */
const REFUSED: ReadonlyMap<string, string> = new Map([
  [
    "dedup",
    "deduplication keeps a table in memory that grows with the pool and slows every write once it spills, " +
      "and a volume moved to another node arrives without it; use compression instead",
  ],
  ["encryption", "encrypted volumes need key management, which Skein does not provide yet"],
  ["keyformat", "encrypted volumes need key management, which Skein does not provide yet"],
  ["keylocation", "encrypted volumes need key management, which Skein does not provide yet"],
  ["quota", MANAGED_BY_SKEIN],
  ["refquota", MANAGED_BY_SKEIN],
  ["reservation", MANAGED_BY_SKEIN],
  ["refreservation", MANAGED_BY_SKEIN],
  ["mountpoint", MANAGED_BY_SKEIN],
  ["canmount", MANAGED_BY_SKEIN],
  ["readonly", MANAGED_BY_SKEIN],
  ["volsize", "Skein volumes are filesystems; capacity sets their size"],
  ["sharenfs", "a volume is only ever mounted by the node that owns it"],
  ["sharesmb", "a volume is only ever mounted by the node that owns it"],
]);

const SKIPPED_PREFIXES = ["csi.storage.k8s.io/", "skein.io/"];

/** The StorageClass keys that become ZFS properties, for messages and docs. */
export const ALLOWED_PARAMETER_KEYS: readonly string[] = [...ALLOWED.keys()].sort();

/** Maps StorageClass parameters to ZFS properties, or throws an InvalidInputError naming the first bad key. */
export function zfsPropertiesFromParameters(parameters: Readonly<Record<string, string>>): Properties {
  const properties: Record<string, string> = {};
  for (const key of Object.keys(parameters).sort()) {
    if (SKIPPED_PREFIXES.some((p) => key.startsWith(p))) continue;
    const value = parameters[key] ?? "";
    const refusal = REFUSED.get(key);
    if (refusal) throw new InvalidInputError(`StorageClass parameter '${key}' is not allowed: ${refusal}`);
    const rule = ALLOWED.get(key);
    if (!rule) {
      throw new InvalidInputError(
        `unknown StorageClass parameter '${key}'; the ZFS properties Skein accepts are: ${ALLOWED_PARAMETER_KEYS.join(", ")}`,
      );
    }
    const normalized = rule.check(value);
    if (normalized === undefined) {
      throw new InvalidInputError(
        `invalid value ${JSON.stringify(value)} for StorageClass parameter '${key}'; it accepts ${rule.accepts}`,
      );
    }
    properties[key] = normalized;
  }
  return properties;
}
