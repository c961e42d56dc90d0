/**
 * What went wrong in a `zfs`/`zpool` run, as a stable code callers branch on
 * (the CSI layer turns it into a gRPC status; the agent into a condition). The
 * code is read from the tool's stderr, whose wording is the same in zfs-fuse and
 * OpenZFS for every case classified here.
 */
import { SkeinError } from "../../kit/errors.ts";
import { type Argv, ExecError } from "../../kit/exec.ts";

export type ZfsErrorCode =
  /** The dataset, snapshot or hold tag to be created already exists. */
  | "ZfsAlreadyExists"
  /** The pool, dataset, snapshot, parent or hold tag does not exist. */
  | "ZfsNotFound"
  /** The pool is full or a quota would be exceeded. */
  | "ZfsOutOfSpace"
  /** A quota would fall below what the dataset already uses. */
  | "ZfsQuotaBelowUsage"
  /** Something holds the dataset or snapshot open (a mount in use, a hold). */
  | "ZfsBusy"
  /** Children, clones or (for rollback) newer snapshots stand in the way. */
  | "ZfsHasDependents"
  /** An incremental stream does not fit the destination's history. */
  | "ZfsDiverged"
  /** A property name or value, or a name, that ZFS refuses. */
  | "ZfsInvalidArgument"
  /** A flag or feature this ZFS lacks (see capabilities.ts). */
  | "ZfsUnsupported"
  /** The ZFS daemon or kernel module cannot be reached. */
  | "ZfsUnavailable"
  | "ZfsTimeout"
  /** Anything else; the message carries the tool's own words. */
  | "ZfsFailed";

export class ZfsError extends SkeinError {
  declare readonly code: ZfsErrorCode;
  readonly argv: Argv | undefined;
  readonly stderr: string;

  constructor(
    code: ZfsErrorCode,
    message: string,
    options: { argv?: Argv; stderr?: string; cause?: unknown } = {},
  ) {
    super(code, message, { cause: options.cause });
    this.argv = options.argv;
    this.stderr = options.stderr ?? "";
  }
}

// Order matters: the first pattern that matches decides.
const STDERR_CODES: ReadonlyArray<readonly [RegExp, ZfsErrorCode]> = [
  [
    /failed to initialize ZFS library|zfs-fuse daemon is running|ZFS modules are not loaded/i,
    "ZfsUnavailable",
  ],
  [/invalid option|unrecognized command|pyzfs\.py not found/i, "ZfsUnsupported"],
  [/already exists|destination '[^']*' exists/i, "ZfsAlreadyExists"],
  [/does not exist|no such pool|no such tag|could not find any snapshots/i, "ZfsNotFound"],
  [/size is less than current used or reserved space/i, "ZfsQuotaBelowUsage"],
  [/out of space|quota exceeded|greater than available space/i, "ZfsOutOfSpace"],
  [/has children|dependent clones|more recent snapshots/i, "ZfsHasDependents"],
  [
    /has been modified|does not\s+match incremental source|incremental source .* no longer exists/i,
    "ZfsDiverged",
  ],
  [/\bbusy\b/i, "ZfsBusy"],
  [/invalid|bad (numeric|property) value|must be (a |one of|power of|an? )/i, "ZfsInvalidArgument"],
];

/** The code for a failed run's stderr. */
export function classifyStderr(stderr: string): ZfsErrorCode {
  for (const [pattern, code] of STDERR_CODES) if (pattern.test(stderr)) return code;
  return "ZfsFailed";
}

/** Turns a failed run of `zfs`/`zpool` into a ZfsError; other errors pass through. */
export function toZfsError(err: unknown): unknown {
  if (!(err instanceof ExecError)) return err;
  if (err.timedOut) {
    return new ZfsError("ZfsTimeout", `${err.argv.join(" ")} did not finish in time`, {
      argv: err.argv,
      cause: err,
    });
  }
  const code = err.exitCode === null ? "ZfsUnavailable" : classifyStderr(err.stderr);
  return new ZfsError(code, err.message, { argv: err.argv, stderr: err.stderr, cause: err });
}
