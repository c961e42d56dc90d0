/**
 * Argument arrays for every `zfs`/`zpool` command Skein runs. Pure: each
 * builder validates the names it is given (names.ts) and returns argv; the
 * runner executes it. Flags that only some ZFS versions know are emitted only
 * when the detected capabilities allow, and asking for one that is missing is
 * an error rather than a silently different command.
 *
 * Numbers are always read with `zfs get -H -p` (exact bytes, tab-separated):
 * zfs-fuse's `zfs list` has no `-p`, so `list` is used for names and types only.
 */
import { InvalidInputError } from "../../kit/errors.ts";
import type { Argv } from "../../kit/exec.ts";
import type { ZfsCapabilities } from "./capabilities.ts";
import { ZfsError } from "./errors.ts";
import {
  validateDatasetName,
  validateDatasetOrSnapshotName,
  validateHoldTag,
  validatePoolName,
  validateSnapshotName,
  validateUserPropertyName,
  validateUserPropertyValue,
} from "./names.ts";

export type Properties = Readonly<Record<string, string>>;

export type DatasetType = "filesystem" | "snapshot" | "volume" | "bookmark";

/** The columns `getProperties` asks for; parse.ts reads them back in this order. */
export const GET_COLUMNS = "name,property,value,source";

const NATIVE_PROPERTY = /^[a-z][a-z0-9_]*$/;

function validatePropertyName(name: string): string {
  if (name.includes(":")) return validateUserPropertyName(name);
  if (!NATIVE_PROPERTY.test(name))
    throw new InvalidInputError(`invalid ZFS property name ${JSON.stringify(name)}`);
  return name;
}

function validatePropertyValue(name: string, value: string): string {
  if (name.includes(":")) return validateUserPropertyValue(name, value);
  // biome-ignore lint/suspicious/noControlCharactersInRegex: control characters are what is refused
  if (value.length === 0 || /[\u0000-\u001f\u007f]/.test(value))
    throw new InvalidInputError(`invalid value ${JSON.stringify(value)} for ZFS property ${name}`);
  return value;
}

function assignment(name: string, value: string): string {
  return `${validatePropertyName(name)}=${validatePropertyValue(name, value)}`;
}

/** `-o k=v` pairs, in the order given. */
function propertyOptions(properties: Properties | undefined): string[] {
  return Object.entries(properties ?? {}).flatMap(([k, v]) => ["-o", assignment(k, v)]);
}

function bytes(what: string, value: number): string {
  if (!Number.isSafeInteger(value) || value < 0)
    throw new InvalidInputError(`${what} must be a whole number of bytes, got ${value}`);
  return String(value);
}

function depthOptions(options: { recursive?: boolean; depth?: number }): string[] {
  if (options.depth !== undefined) {
    if (!Number.isSafeInteger(options.depth) || options.depth < 0)
      throw new InvalidInputError(`depth must be a whole number ≥ 0, got ${options.depth}`);
    return ["-d", String(options.depth)];
  }
  return options.recursive ? ["-r"] : [];
}

function unsupported(what: string): never {
  throw new ZfsError("ZfsUnsupported", `this ZFS cannot ${what}; check capabilities before asking`);
}

export interface CreateOptions {
  /** Bytes the dataset itself may reference (snapshots do not count against it). */
  refquota?: number;
  properties?: Properties;
  /** Create missing parent datasets (`-p`). */
  parents?: boolean;
}

export function createArgs(dataset: string, options: CreateOptions = {}): Argv {
  return [
    "zfs",
    "create",
    ...(options.parents ? ["-p"] : []),
    ...(options.refquota !== undefined ? ["-o", `refquota=${bytes("refquota", options.refquota)}`] : []),
    ...propertyOptions(options.properties),
    validateDatasetName(dataset),
  ];
}

export interface DestroyOptions {
  /** Also destroy children and snapshots (`-r`). */
  recursive?: boolean;
  /** Snapshots only: destroy once the last hold or clone is gone (`-d`). */
  deferred?: boolean;
  /** Unmount even if busy (`-f`). */
  force?: boolean;
}

export function destroyArgs(name: string, options: DestroyOptions = {}): Argv {
  validateDatasetOrSnapshotName(name);
  if (options.deferred && !name.includes("@"))
    throw new InvalidInputError(`deferred destroy applies to snapshots only, not ${name}`);
  return [
    "zfs",
    "destroy",
    ...(options.recursive ? ["-r"] : []),
    ...(options.deferred ? ["-d"] : []),
    ...(options.force ? ["-f"] : []),
    name,
  ];
}

export interface SnapshotOptions {
  /** Snapshot every descendant too, atomically (`-r`). */
  recursive?: boolean;
  properties?: Properties;
}

export function snapshotArgs(snapshot: string, options: SnapshotOptions = {}): Argv {
  return [
    "zfs",
    "snapshot",
    ...(options.recursive ? ["-r"] : []),
    ...propertyOptions(options.properties),
    validateSnapshotName(snapshot),
  ];
}

export function cloneArgs(snapshot: string, dataset: string, options: CreateOptions = {}): Argv {
  return [
    "zfs",
    "clone",
    ...(options.parents ? ["-p"] : []),
    ...(options.refquota !== undefined ? ["-o", `refquota=${bytes("refquota", options.refquota)}`] : []),
    ...propertyOptions(options.properties),
    validateSnapshotName(snapshot),
    validateDatasetName(dataset),
  ];
}

/** Mounts a dataset at its mountpoint. */
export function mountArgs(dataset: string): Argv {
  return ["zfs", "mount", validateDatasetName(dataset)];
}

/** Unmounts a dataset; `force` (`-f`) also when it is called busy (the caller knows nothing uses it). */
export function unmountArgs(dataset: string, options: { force?: boolean } = {}): Argv {
  return ["zfs", "unmount", ...(options.force ? ["-f"] : []), validateDatasetName(dataset)];
}

/** Rolls back to `snapshot`; `destroyNewer` (`-r`) destroys the snapshots taken after it. */
export function rollbackArgs(snapshot: string, options: { destroyNewer?: boolean } = {}): Argv {
  return ["zfs", "rollback", ...(options.destroyNewer ? ["-r"] : []), validateSnapshotName(snapshot)];
}

/** One property per call: zfs-fuse's `set` takes exactly one `property=value`. */
export function setArgs(name: string, property: string, value: string): Argv {
  return ["zfs", "set", assignment(property, value), validateDatasetOrSnapshotName(name)];
}

export function inheritArgs(name: string, property: string, options: { recursive?: boolean } = {}): Argv {
  return [
    "zfs",
    "inherit",
    ...(options.recursive ? ["-r"] : []),
    validatePropertyName(property),
    validateDatasetOrSnapshotName(name),
  ];
}

export interface GetOptions {
  recursive?: boolean;
  /** Descend at most this many levels (`-d`; 1 = direct children and snapshots). */
  depth?: number;
}

/** `zfs get -H -p` of `properties` ("all" for every one) on `names`; one tab-separated row per value. */
export function getArgs(
  names: readonly string[],
  properties: readonly string[],
  options: GetOptions = {},
): Argv {
  if (names.length === 0) throw new InvalidInputError("zfs get needs at least one dataset");
  if (properties.length === 0) throw new InvalidInputError("zfs get needs at least one property");
  const list =
    properties.length === 1 && properties[0] === "all" ? ["all"] : properties.map(validatePropertyName);
  return [
    "zfs",
    "get",
    "-H",
    "-p",
    "-o",
    GET_COLUMNS,
    ...depthOptions(options),
    list.join(","),
    ...names.map(validateDatasetOrSnapshotName),
  ];
}

export interface ListOptions extends GetOptions {
  /** Columns to print; text-valued ones only (see the note at the top). Default: name. */
  columns?: readonly string[];
  types?: readonly DatasetType[];
}

/** `zfs list -H` under `roots` (or every pool when empty). */
export function listArgs(roots: readonly string[], options: ListOptions = {}): Argv {
  const columns = options.columns ?? ["name"];
  return [
    "zfs",
    "list",
    "-H",
    "-o",
    columns.map(validatePropertyName).join(","),
    ...(options.types?.length ? ["-t", options.types.join(",")] : []),
    ...depthOptions(options),
    ...roots.map(validateDatasetOrSnapshotName),
  ];
}

export interface SendOptions {
  /** Incremental from this earlier snapshot of the same dataset. */
  from?: string;
  /** With `from`: include every snapshot in between (`-I`) rather than only the delta (`-i`). */
  intermediates?: boolean;
  /** Carry the dataset's properties (`-p`). */
  properties?: boolean;
  /** Replicate descendants, their snapshots and properties (`-R`). */
  replicate?: boolean;
  /** Blocks as stored, encrypted (`-w`); needs capabilities.rawSend. */
  raw?: boolean;
  /** Blocks compressed as on disk (`-c`); needs capabilities.compressedSend. */
  compressed?: boolean;
  /** Keep records over 128 KiB (`-L`); needs capabilities.largeBlocks. */
  largeBlocks?: boolean;
}

export function sendArgs(snapshot: string, options: SendOptions, capabilities: ZfsCapabilities): Argv {
  if (options.raw && !capabilities.rawSend) unsupported("send raw streams (-w)");
  if (options.compressed && !capabilities.compressedSend) unsupported("send compressed streams (-c)");
  if (options.largeBlocks && !capabilities.largeBlocks) unsupported("send large blocks (-L)");
  if (options.intermediates && options.from === undefined)
    throw new InvalidInputError("intermediates (-I) needs a from snapshot");
  return [
    "zfs",
    "send",
    ...(options.replicate ? ["-R"] : []),
    ...(options.properties ? ["-p"] : []),
    ...(options.raw ? ["-w"] : []),
    ...(options.compressed ? ["-c"] : []),
    ...(options.largeBlocks ? ["-L"] : []),
    ...(options.from !== undefined
      ? [options.intermediates ? "-I" : "-i", validateSnapshotName(options.from)]
      : []),
    validateSnapshotName(snapshot),
  ];
}

/** The fastest stream options this ZFS offers that keep the data as it is. */
export function streamOptions(
  capabilities: ZfsCapabilities,
): Pick<SendOptions, "compressed" | "largeBlocks"> {
  return { compressed: capabilities.compressedSend, largeBlocks: capabilities.largeBlocks };
}

const RESUME_TOKEN = /^[0-9A-Za-z][0-9A-Za-z-]*$/;

/** Resumes an interrupted send from the receiver's `receive_resume_token`. */
export function resumeSendArgs(token: string, capabilities: ZfsCapabilities): Argv {
  if (!capabilities.resumable) unsupported("resume a send (-t)");
  if (!RESUME_TOKEN.test(token)) throw new InvalidInputError("invalid receive_resume_token");
  return ["zfs", "send", "-t", token];
}

export interface ReceiveOptions {
  /** Roll the destination back to its latest snapshot first, and allow replacing it (`-F`). */
  force?: boolean;
  /** Keep partial state so the transfer can resume (`-s`); needs capabilities.resumable. */
  resumable?: boolean;
  /** Do not mount what was received (`-u`); needs capabilities.receiveNoMount. */
  noMount?: boolean;
}

export function receiveArgs(dataset: string, options: ReceiveOptions, capabilities: ZfsCapabilities): Argv {
  if (options.resumable && !capabilities.resumable) unsupported("keep a resumable receive (-s)");
  if (options.noMount && !capabilities.receiveNoMount) unsupported("receive without mounting (-u)");
  return [
    "zfs",
    "receive",
    ...(options.force ? ["-F"] : []),
    ...(options.resumable ? ["-s"] : []),
    ...(options.noMount ? ["-u"] : []),
    validateDatasetName(dataset),
  ];
}

/** Discards the partial state of an interrupted resumable receive. */
export function abortReceiveArgs(dataset: string, capabilities: ZfsCapabilities): Argv {
  if (!capabilities.resumable) unsupported("abort a resumable receive (-A)");
  return ["zfs", "receive", "-A", validateDatasetName(dataset)];
}

function snapshotsArg(snapshots: readonly string[]): string[] {
  if (snapshots.length === 0) throw new InvalidInputError("at least one snapshot is needed");
  return snapshots.map(validateSnapshotName);
}

/** `zfs hold` and `zfs release` take the same arguments. */
function holdVerbArgs(
  verb: "hold" | "release",
  tag: string,
  snapshots: readonly string[],
  options: { recursive?: boolean },
): Argv {
  return [
    "zfs",
    verb,
    ...(options.recursive ? ["-r"] : []),
    validateHoldTag(tag),
    ...snapshotsArg(snapshots),
  ];
}

export function holdArgs(
  tag: string,
  snapshots: readonly string[],
  options: { recursive?: boolean } = {},
): Argv {
  return holdVerbArgs("hold", tag, snapshots, options);
}

export function releaseArgs(
  tag: string,
  snapshots: readonly string[],
  options: { recursive?: boolean } = {},
): Argv {
  return holdVerbArgs("release", tag, snapshots, options);
}

/** Lists hold tags (`name<TAB>tag<TAB>timestamp`); needs capabilities.listHolds. */
export function holdsArgs(snapshots: readonly string[], capabilities: ZfsCapabilities): Argv {
  if (!capabilities.listHolds) unsupported("list holds (count them with the userrefs property)");
  return ["zfs", "holds", "-H", ...snapshotsArg(snapshots)];
}

/** Renames a dataset (`parents` creates missing parents of the new name) or a snapshot within its dataset. */
export function renameArgs(from: string, to: string, options: { parents?: boolean } = {}): Argv {
  const snapshots = from.includes("@");
  if (snapshots !== to.includes("@"))
    throw new InvalidInputError(`cannot rename ${from} to ${to}: both must be datasets or both snapshots`);
  if (snapshots) {
    if (options.parents) throw new InvalidInputError("parents (-p) applies to datasets only");
    const fromDataset = validateSnapshotName(from).split("@")[0];
    const toDataset = validateSnapshotName(to).split("@")[0];
    if (fromDataset !== toDataset)
      throw new InvalidInputError(`a snapshot is renamed within its dataset: ${from} → ${to}`);
  }
  return [
    "zfs",
    "rename",
    ...(options.parents ? ["-p"] : []),
    validateDatasetOrSnapshotName(from),
    validateDatasetOrSnapshotName(to),
  ];
}

/** The columns `zpoolListArgs` prints, in order. */
export const ZPOOL_COLUMNS = ["name", "size", "allocated", "free", "health"] as const;

/** Pool size, allocation and health; `-p` (exact bytes) where this ZFS has it. */
export function zpoolListArgs(pools: readonly string[], capabilities: ZfsCapabilities): Argv {
  return [
    "zpool",
    "list",
    "-H",
    ...(capabilities.parsableZpoolList ? ["-p"] : []),
    "-o",
    ZPOOL_COLUMNS.join(","),
    ...pools.map(validatePoolName),
  ];
}
