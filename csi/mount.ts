/**
 * Bind mounts of a dataset's mountpoint into a pod's target path, and what is
 * mounted where. Argument builders are pure; the mount table is read from
 * /proc/self/mountinfo in-process (no findmnt to start: a cutover asks it
 * twice on its critical path).
 *
 * Why a bind mount rather than `zfs set mountpoint=<target>`: a dataset has one
 * mountpoint but kubelet may publish a volume at several target paths, each
 * read-only or not; the dataset keeps one stable mountpoint that snapshots and
 * send/receive never disturb; and zfs-fuse cannot mount a dataset with
 * mount(8) (no `mount -t zfs` helper), while a bind of its FUSE mount works the
 * same on zfs-fuse and OpenZFS.
 */
import { readFile } from "node:fs/promises";
import type { Argv } from "../kit/exec.ts";

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

/** One mount, as /proc/self/mountinfo describes it. */
export interface Mount {
  id: number;
  /** The mount this one sits on. */
  parent: number;
  /** Where it is mounted. */
  target: string;
  fstype: string;
  /** For ZFS (FUSE or kernel), the dataset; a bind mount of it carries the same. */
  source: string;
  readOnly: boolean;
}

/** Paths in mountinfo escape space, tab, newline and backslash as octal. */
const unescapePath = (field: string) =>
  field.replace(/\\([0-7]{3})/g, (_, octal: string) => String.fromCharCode(Number.parseInt(octal, 8)));

/**
 * Parses /proc/self/mountinfo, in mount order (a mount stacked on a path comes
 * after the one below it). Lines it cannot read are skipped.
 */
export function parseMountInfo(text: string): Mount[] {
  const mounts: Mount[] = [];
  for (const line of text.split("\n")) {
    // id parent major:minor root target options [optional fields…] - fstype source super-options
    const fields = line.split(" ");
    const dash = fields.indexOf("-", 6);
    if (dash < 0 || fields.length < dash + 4) continue;
    const options = `${fields[5]},${fields[dash + 3]}`.split(",");
    mounts.push({
      id: Number(fields[0]),
      parent: Number(fields[1]),
      target: unescapePath(fields[4] ?? ""),
      fstype: fields[dash + 1] ?? "",
      source: unescapePath(fields[dash + 2] ?? ""),
      readOnly: options.includes("ro"),
    });
  }
  return mounts;
}

async function mountTable(): Promise<Mount[]> {
  return parseMountInfo(await readFile("/proc/self/mountinfo", "utf8"));
}

/** What is mounted exactly at `target` (the topmost mount), or undefined when nothing is. */
export async function mountOf(target: string): Promise<Mount | undefined> {
  return (await mountTable()).findLast((m) => m.target === target);
}

/**
 * Where `dataset` is mounted besides its own mountpoint: the bind mounts that
 * publish it into pods. Its own mount sits on its parent dataset's (Skein's
 * datasets inherit their mountpoints); a bind sits on whatever holds the pod's
 * target path. Should the parent not be mounted, the dataset's own mount
 * counts as a bind: a caller waits for none to be left, so it waits rather
 * than unmount anything under a pod.
 */
export function bindsOf(mounts: readonly Mount[], dataset: string): string[] {
  const parent = dataset.slice(0, dataset.lastIndexOf("/"));
  const byId = new Map(mounts.map((m) => [m.id, m]));
  return mounts
    .filter((m) => m.source === dataset && byId.get(m.parent)?.source !== parent)
    .map((m) => m.target);
}

/** Where `dataset` is published on this node (bind mounts into pods). */
export async function publishedAt(dataset: string): Promise<string[]> {
  return bindsOf(await mountTable(), dataset);
}
