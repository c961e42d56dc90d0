/**
 * Bind mounts of a dataset's mountpoint into a pod's target path. Argument
 * builders are pure; `mountOf` reads what is mounted at a path with findmnt.
 *
 * Why a bind mount rather than `zfs set mountpoint=<target>`: a dataset has one
 * mountpoint but kubelet may publish a volume at several target paths, each
 * read-only or not; the dataset keeps one stable mountpoint that snapshots and
 * send/receive never disturb; and zfs-fuse cannot mount a dataset with
 * mount(8) (no `mount -t zfs` helper), while a bind of its FUSE mount works the
 * same on zfs-fuse and OpenZFS.
 */
import type { Argv } from "../kit/exec.ts";
import { ExecError, run } from "../kit/exec.ts";

export function bindMountArgs(source: string, target: string): Argv {
  return ["mount", "--bind", "--", source, target];
}

/** A bind mount is made read-only by remounting it (the kernel ignores `ro` on the first bind). */
export function remountReadOnlyArgs(target: string): Argv {
  return ["mount", "-o", "remount,bind,ro", "--", target];
}

export function unmountArgs(target: string): Argv {
  return ["umount", "--", target];
}

export function findmntArgs(target: string): Argv {
  return ["findmnt", "--json", "--noheadings", "--mountpoint", target, "--output", "SOURCE,FSTYPE,OPTIONS"];
}

export interface MountInfo {
  source: string;
  fstype: string;
  readOnly: boolean;
}

/** Parses `findmnt --json` output; the last entry is the mount on top. */
export function parseFindmnt(stdout: string): MountInfo | undefined {
  const parsed = JSON.parse(stdout) as {
    filesystems?: { source?: string; fstype?: string; options?: string }[];
  };
  const top = parsed.filesystems?.[parsed.filesystems.length - 1];
  if (!top) return undefined;
  const options = (top.options ?? "").split(",");
  return { source: top.source ?? "", fstype: top.fstype ?? "", readOnly: options.includes("ro") };
}

/** What is mounted exactly at `target`, or undefined when nothing is. */
export async function mountOf(target: string): Promise<MountInfo | undefined> {
  try {
    return parseFindmnt((await run(findmntArgs(target), { timeoutMs: 10_000 })).stdout);
  } catch (err) {
    // findmnt exits 1 when nothing is mounted there.
    if (err instanceof ExecError && err.exitCode === 1) return undefined;
    throw err;
  }
}
