/**
 * Names that reach `zfs`/`zpool` are checked here first. The rules are ZFS's
 * own (characters, length, reserved pool names) made stricter where Skein never
 * needs the freedom: no spaces, and no component that starts with `-`, so a name
 * can never be read as a flag. zfs-fuse accepts names like `pool/-x` and
 * `pool/a b` without complaint, so these checks are the only guard.
 *
 * Layout: every Skein dataset is `<pool>/skein/<volume>`, and a Skein snapshot
 * of it is `<pool>/skein/<volume>@<snapshot>`, where `<volume>` and
 * `<snapshot>` are the names of the `Volume` and `Snapshot` objects.
 */
import { InvalidInputError } from "../../kit/errors.ts";

/** ZFS_MAX_DATASET_NAME_LEN is 256 bytes including the terminating NUL. */
export const MAX_NAME_LENGTH = 255;
/** Kubernetes object names (DNS-1123 subdomains) are at most 253 characters. */
const MAX_OBJECT_NAME_LENGTH = 253;
/** Longest user property value Skein writes; zfs-fuse caps values at 1024 bytes. */
export const MAX_USER_PROPERTY_VALUE_LENGTH = 1024;

/** The dataset under each pool that holds all of Skein's volumes. */
export const SKEIN_ROOT = "skein";
/** Prefix of every user property Skein writes. */
export const USER_PROPERTY_PREFIX = "skein.io:";

const COMPONENT = /^[A-Za-z0-9_.:-]+$/;
const POOL = /^[A-Za-z][A-Za-z0-9_.:-]*$/;
const OBJECT_NAME = /^[a-z0-9]([a-z0-9.-]*[a-z0-9])?$/;
const USER_PROPERTY = /^[a-z0-9_.:-]+$/;
// Vdev keywords that `zpool` refuses as pool names, as prefixes or whole names.
const RESERVED_POOL_PREFIXES = ["mirror", "raidz", "draid", "spare"];
const RESERVED_POOL_NAMES = ["log", "cache", "special", "dedup"];

function fail(kind: string, name: string, why: string): never {
  throw new InvalidInputError(`invalid ZFS ${kind} name ${JSON.stringify(name)}: ${why}`);
}

function checkLength(kind: string, name: string): void {
  if (name.length === 0) fail(kind, name, "it is empty");
  if (name.length > MAX_NAME_LENGTH) fail(kind, name, `it is longer than ${MAX_NAME_LENGTH} characters`);
}

function checkComponent(kind: string, name: string, component: string): void {
  if (component.length === 0) fail(kind, name, "it has an empty component (leading, trailing or double '/')");
  if (!COMPONENT.test(component))
    fail(kind, name, `'${component}' may only contain letters, digits, '_', '.', ':' and '-'`);
  if (component.startsWith("-")) fail(kind, name, `'${component}' starts with '-'`);
  if (component === "." || component === "..") fail(kind, name, `'${component}' is not a valid component`);
}

function poolProblem(name: string): string | undefined {
  if (name.length === 0) return "it is empty";
  if (name.length > MAX_NAME_LENGTH) return `it is longer than ${MAX_NAME_LENGTH} characters`;
  if (!POOL.test(name))
    return "it must start with a letter and contain only letters, digits, '_', '.', ':' and '-'";
  if (RESERVED_POOL_PREFIXES.some((p) => name.startsWith(p)) || RESERVED_POOL_NAMES.includes(name))
    return "it is a reserved vdev keyword";
  if (/^c[0-9]/.test(name)) return "names like c0… are reserved for disk devices";
  return undefined;
}

export function validatePoolName(name: string): string {
  const problem = poolProblem(name);
  if (problem) fail("pool", name, problem);
  return name;
}

export function validateDatasetName(name: string): string {
  checkLength("dataset", name);
  const [pool = "", ...rest] = name.split("/");
  const problem = poolProblem(pool);
  if (problem) fail("dataset", name, `its pool name ${JSON.stringify(pool)} is invalid: ${problem}`);
  for (const component of rest) checkComponent("dataset", name, component);
  return name;
}

export function validateSnapshotName(name: string): string {
  checkLength("snapshot", name);
  const at = name.indexOf("@");
  if (at < 0) fail("snapshot", name, "it has no '@'");
  validateDatasetName(name.slice(0, at));
  checkComponent("snapshot", name, name.slice(at + 1));
  return name;
}

/** A dataset or a snapshot, as commands like `get` and `destroy` accept either. */
export function validateDatasetOrSnapshotName(name: string): string {
  return name.includes("@") ? validateSnapshotName(name) : validateDatasetName(name);
}

export function validateHoldTag(tag: string): string {
  checkLength("hold tag", tag);
  checkComponent("hold tag", tag, tag);
  return tag;
}

/** A `skein.io:` user property name (ZFS: lowercase, digits, `_ . : -`, must hold a colon). */
export function validateUserPropertyName(name: string): string {
  if (!name.startsWith(USER_PROPERTY_PREFIX) || name.length === USER_PROPERTY_PREFIX.length)
    fail("user property", name, `it must start with '${USER_PROPERTY_PREFIX}' followed by a name`);
  if (name.length > MAX_NAME_LENGTH) fail("user property", name, `it is longer than ${MAX_NAME_LENGTH}`);
  if (!USER_PROPERTY.test(name))
    fail("user property", name, "it may only contain lowercase letters, digits, '_', '.', ':' and '-'");
  return name;
}

/**
 * A user property value: `zfs get -H` separates columns with tabs and rows with
 * newlines, so control characters would corrupt what is read back; an empty
 * value cannot be set (remove the property with `inherit` instead).
 */
export function validateUserPropertyValue(name: string, value: string): string {
  const why =
    value.length === 0
      ? "it is empty (inherit the property to remove it)"
      : Buffer.byteLength(value) > MAX_USER_PROPERTY_VALUE_LENGTH
        ? `it is longer than ${MAX_USER_PROPERTY_VALUE_LENGTH} bytes`
        : // biome-ignore lint/suspicious/noControlCharactersInRegex: control characters are what is refused
          /[\u0000-\u001f\u007f]/.test(value)
          ? "it contains a control character (tab, newline, …)"
          : undefined;
  if (why) throw new InvalidInputError(`invalid value for ZFS user property ${name}: ${why}`);
  return value;
}

/** Volume and Snapshot objects are named like every Kubernetes object (DNS-1123 subdomain). */
function validateObjectName(kind: string, name: string): string {
  if (name.length === 0 || name.length > MAX_OBJECT_NAME_LENGTH || !OBJECT_NAME.test(name)) {
    throw new InvalidInputError(
      `invalid ${kind} name ${JSON.stringify(name)}: it must be 1-${MAX_OBJECT_NAME_LENGTH} lowercase letters, digits, '-' or '.', starting and ending with a letter or digit`,
    );
  }
  return name;
}

/** `<pool>/skein`: the parent of every Skein volume on a pool. */
export function skeinRoot(pool: string): string {
  return `${validatePoolName(pool)}/${SKEIN_ROOT}`;
}

/**
 * `<pool>/skein-incoming`: the parent under which a node receives the copy of a
 * volume it does not own yet. Copies inherit INCOMING_PROPERTIES from it (zfs-fuse
 * has no `receive -u`), so they are never mounted, let alone writable. Not under
 * `<pool>/skein`, where every child is a volume.
 */
export function incomingRoot(pool: string): string {
  return `${validatePoolName(pool)}/${SKEIN_ROOT}-incoming`;
}

export const INCOMING_PROPERTIES = { mountpoint: "none", readonly: "on" } as const;

/** Where a node receives the copy of `volume` before it owns it. */
export function incomingDataset(pool: string, volume: string): string {
  return validateDatasetName(`${incomingRoot(pool)}/${validateObjectName("Volume", volume)}`);
}

/** The dataset that holds Volume `volume` on `pool`. */
export function volumeDataset(pool: string, volume: string): string {
  return validateDatasetName(`${skeinRoot(pool)}/${validateObjectName("Volume", volume)}`);
}

/** The ZFS snapshot that holds Snapshot `snapshot` of Volume `volume` on `pool`. */
export function volumeSnapshot(pool: string, volume: string, snapshot: string): string {
  return validateSnapshotName(`${volumeDataset(pool, volume)}@${validateObjectName("Snapshot", snapshot)}`);
}

/** The Volume name a dataset holds, or undefined when it is not a Skein volume on `pool`. */
export function volumeOfDataset(pool: string, dataset: string): string | undefined {
  const prefix = `${skeinRoot(pool)}/`;
  if (!dataset.startsWith(prefix)) return undefined;
  const volume = dataset.slice(prefix.length);
  return OBJECT_NAME.test(volume) && volume.length <= MAX_OBJECT_NAME_LENGTH ? volume : undefined;
}

/** Splits `dataset@snap` into its parts. */
export function splitSnapshotName(name: string): { dataset: string; snapshot: string } {
  validateSnapshotName(name);
  const at = name.indexOf("@");
  return { dataset: name.slice(0, at), snapshot: name.slice(at + 1) };
}
