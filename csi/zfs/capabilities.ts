/**
 * What this machine's ZFS can do, found once at start-up so the same code uses
 * OpenZFS features where they exist and still works on zfs-fuse 0.7, whose
 * `send` only knows `[-RDp] [-[iI] snapshot]`, whose `receive` has no `-s`/`-u`,
 * and which has no zvols, bookmarks, JSON output or parsable `zpool list`.
 *
 * The probe reads the usage text `zfs` and `zpool` print when run without a
 * command: every implementation lists each subcommand with its flags there, so
 * no pool or dataset is needed. Two things the usage cannot tell are probed
 * directly: `zfs version` (OpenZFS ≥ 0.8; `zfs-kmod-…` means the kernel module,
 * hence zvols) and `zfs holds`, which zfs-fuse lists in its usage but
 * implements with a Python helper it does not ship (its complaint goes to
 * stdout, which a failed run does not keep, so the probe looks for the usage a
 * working `holds` prints instead).
 */
import { type Argv, ExecError, run } from "../../kit/exec.ts";
import { ZfsError } from "./errors.ts";

export interface ZfsCapabilities {
  /** `zfs version` output's first line (`zfs-2.2.2-1`), or undefined before OpenZFS 0.8 and on zfs-fuse. */
  version: string | undefined;
  /** `receive -s`, `receive -A` and `send -t <token>`: interrupted transfers resume. */
  resumable: boolean;
  /** `receive -u`: a received dataset is not mounted. */
  receiveNoMount: boolean;
  /** `send -w`: encrypted datasets are sent as they are stored. */
  rawSend: boolean;
  /** `send -c`: blocks travel compressed as they are on disk. */
  compressedSend: boolean;
  /** `send -L`: records over 128 KiB are kept. */
  largeBlocks: boolean;
  /** `zfs bookmark`: incremental sources that cost no space. */
  bookmarks: boolean;
  /** Block volumes (`create -V`) backed by the kernel module. */
  zvols: boolean;
  /** `zfs list -j`/`zfs get -j`. */
  jsonOutput: boolean;
  /** `zpool list -p`: exact byte counts instead of `1.5G`. */
  parsableZpoolList: boolean;
  /** `zfs holds`: the tags on a snapshot can be listed (otherwise only counted, via `userrefs`). */
  listHolds: boolean;
}

/** What the probe reads; each is a command's combined output, whatever its exit code. */
export interface ProbeOutput {
  zfsUsage: string;
  zpoolUsage: string;
  /** Output of `zfs version`. */
  version: string;
  /** Output of `zfs holds` without arguments (stderr only when it fails). */
  holds: string;
}

/**
 * The usage lines of subcommand `command`: every line that starts with it, with
 * its indented continuation lines joined on.
 */
export function usageOf(usage: string, command: string): string[] {
  const lines: string[] = [];
  let current: string | undefined;
  for (const raw of usage.split("\n")) {
    const line = raw.replace(/\s+$/, "");
    const trimmed = line.trim();
    const starts = trimmed === command || trimmed.startsWith(`${command} `);
    // Continuation lines are indented further than the subcommand lines (a tab plus spaces).
    const continuation = current !== undefined && /^\t? {2,}|^\t\t/.test(line) && !starts;
    if (starts) {
      if (current !== undefined) lines.push(current);
      current = trimmed;
    } else if (continuation) {
      current = `${current} ${trimmed}`;
    } else if (current !== undefined) {
      lines.push(current);
      current = undefined;
    }
  }
  if (current !== undefined) lines.push(current);
  return lines;
}

/** Single-letter flags a usage line offers, from `[-abc]` groups and lone `-x` tokens. */
export function flagsOf(lines: readonly string[]): Set<string> {
  const flags = new Set<string>();
  for (const line of lines) {
    for (const m of line.matchAll(/(?:^|[\s[|])-([A-Za-z]+)\b/g)) {
      for (const letter of m[1] ?? "") flags.add(letter);
    }
  }
  return flags;
}

/** Decides the capabilities from what the probe read. Pure, so every ZFS flavour is a table row. */
export function parseCapabilities(probe: ProbeOutput): ZfsCapabilities {
  const send = usageOf(probe.zfsUsage, "send");
  const sendFlags = flagsOf(send);
  const receiveFlags = flagsOf(usageOf(probe.zfsUsage, "receive"));
  const listFlags = flagsOf(usageOf(probe.zfsUsage, "list"));
  const zpoolListFlags = flagsOf(usageOf(probe.zpoolUsage, "list"));
  const versionLine = /^zfs-\d\S*/m.exec(probe.version)?.[0];
  const kernelModule = /^zfs-kmod-\d/m.test(probe.version);
  const createsVolumes = usageOf(probe.zfsUsage, "create").some((l) => l.includes("-V <size>"));
  return {
    version: versionLine,
    resumable: send.some((l) => /-t <[^>]*token>/.test(l)) && receiveFlags.has("s") && receiveFlags.has("A"),
    receiveNoMount: receiveFlags.has("u"),
    rawSend: sendFlags.has("w"),
    compressedSend: sendFlags.has("c"),
    largeBlocks: sendFlags.has("L"),
    bookmarks: usageOf(probe.zfsUsage, "bookmark").length > 0,
    zvols: createsVolumes && kernelModule,
    jsonOutput: listFlags.has("j"),
    parsableZpoolList: zpoolListFlags.has("p"),
    // A working `zfs holds` answers a call without arguments with its usage; zfs-fuse's prints
    // an internal error about its missing Python helper instead.
    listHolds: /usage:/.test(probe.holds) && usageOf(probe.holds, "holds").length > 0,
  };
}

async function outputOf(argv: Argv): Promise<string> {
  try {
    const { stdout, stderr } = await run(argv, { timeoutMs: 15_000 });
    return `${stdout}${stderr}`;
  } catch (err) {
    // Usage goes to stderr with a non-zero exit; only a missing program is a real failure.
    if (err instanceof ExecError && err.exitCode !== null) return err.stderr;
    throw err;
  }
}

/** Probes the local `zfs` and `zpool` once. */
export async function detectCapabilities(): Promise<ZfsCapabilities> {
  const [zfsUsage, zpoolUsage, version, holds] = await Promise.all([
    outputOf(["zfs"]),
    outputOf(["zpool"]),
    outputOf(["zfs", "version"]),
    outputOf(["zfs", "holds"]),
  ]);
  if (!/usage:/.test(zfsUsage)) {
    throw new ZfsError("ZfsUnavailable", `cannot probe ZFS: 'zfs' printed no usage: ${zfsUsage.trim()}`);
  }
  return parseCapabilities({ zfsUsage, zpoolUsage, version, holds });
}
