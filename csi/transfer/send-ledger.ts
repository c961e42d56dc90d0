/**
 * The `zfs send` processes under way, on disk. zfs-fuse's `zfs send -I`
 * places temporary holds tagged `.send-<pid>-0` on the snapshots it sends and
 * leaks them when the process is killed (kernel ZFS drops them as the process
 * dies): a killed agent's sends keep their snapshots, hence the dataset,
 * "busy" until the pool is re-imported. Those tags can only be released by
 * name, and zfs-fuse cannot list them, so the endpoint writes down each send's
 * pid while it runs and, on its next start, releases what the recorded pids
 * may have left.
 */
import { mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { dirname } from "node:path";

export class SendLedger {
  private readonly running = new Set<number>();

  /** `path` is a file that outlives the process (a host path or the pod's emptyDir). */
  constructor(private readonly path: string) {}

  /** The pids a previous run left recorded: its sends that never finished. */
  leftover(): number[] {
    let text: string;
    try {
      text = readFileSync(this.path, "utf8");
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === "ENOENT") return [];
      throw err;
    }
    // A write cut short by the kill leaves a partial line: what parses is still worth trying.
    return [
      ...new Set(
        text
          .split("\n")
          .map((line) => Number(line))
          .filter((pid) => Number.isInteger(pid) && pid > 0),
      ),
    ];
  }

  /** The previous run's sends are dealt with: start a fresh record. */
  reset(): void {
    mkdirSync(dirname(this.path), { recursive: true });
    this.running.clear();
    this.save();
  }

  started(pid: number): void {
    this.running.add(pid);
    this.save();
  }

  finished(pid: number): void {
    this.running.delete(pid);
    this.save();
  }

  // Synchronous and tiny: recorded before the send can place a hold, and never out of order.
  private save(): void {
    writeFileSync(this.path, [...this.running].map((pid) => `${pid}\n`).join(""));
  }
}

/** The temporary hold tag zfs-fuse's `zfs send -I` run as `pid` places. */
export const temporarySendTag = (pid: number) => `.send-${pid}-0`;
