/**
 * A host-wide mutex between plugin processes: an exclusively created lock file
 * naming its holder (pid, process start time, boot id).
 *
 * Why not flock(2): Node has no binding for it, the npm bindings are native
 * addons that a single-executable build cannot carry, and mtime-lease locks
 * (proper-lockfile) can hand a lock away from a live holder that was merely
 * descheduled for longer than the lease on a loaded node. Here a lock is stale
 * only when its holder provably no longer exists: its pid is gone, the pid now
 * names a process that started at another time, or the machine rebooted since.
 * That is exact on one host, which is the only scope a CNI plugin's lock needs;
 * it assumes the plugin runs in the host PID namespace, as runtimes run it.
 *
 * The lock file appears with its content in one step (written to a temp file,
 * then link(2), which fails if the name exists), so nobody sees it empty.
 * Stale locks are broken by one process at a time (see breakStale). The one
 * case this cannot make exact is a breaker dying inside its few-microsecond
 * window, whose claim then waits out a timeout; and if exclusion were ever
 * lost, address uniqueness still holds: it rests on each address record being
 * created exclusively, not on this lock.
 *
 * File operations are synchronous on purpose. The plugin process does one
 * thing at a time, and a critical section that is one unbroken run of
 * syscalls stays held for microseconds even on a loaded node, where each
 * event-loop turn of an async version waits to be scheduled again (measured:
 * holds of 700 ms under 100 concurrent ADDs on 2 busy cores).
 */
import { linkSync, readFileSync, statSync, unlinkSync, writeFileSync } from "node:fs";
import { CniCode, CniError } from "./errors.ts";
import { uniqueSuffix } from "./unique.ts";

export interface LockOptions {
  /** Give up (CNI code 11, try again later) after this long. Default 60 s. */
  timeoutMs?: number;
}

/**
 * Generous: the lock guards microseconds of work, so a long wait only ever
 * means a CPU-starved node, and giving up early makes the runtime retry from
 * scratch, paying process start-up again on that same starved node.
 */
const DEFAULT_TIMEOUT_MS = 60_000;
const BREAKER_MAX_AGE_MS = 10_000;

let currentBoot: string | undefined;

function bootId(): string {
  currentBoot ??= readFileSync("/proc/sys/kernel/random/boot_id", "utf8").trim();
  return currentBoot;
}

/** Field 22 of /proc/<pid>/stat, read after the command name (which may hold spaces or parentheses). */
function processStartTime(pid: number): string | undefined {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
    return stat.slice(stat.lastIndexOf(")") + 2).split(" ")[19];
  } catch {
    return undefined;
  }
}

/** What a lock file held by process `pid` contains. */
export function holderIdentity(pid: number): string {
  return `${pid} ${processStartTime(pid)} ${bootId()}\n`;
}

/** True when the holder named by `content` is certainly gone. */
function holderGone(content: string): boolean {
  const [pidText, start, boot] = content.trim().split(" ");
  const pid = Number(pidText);
  if (!Number.isInteger(pid) || pid <= 0 || !start || !boot) return true;
  if (boot !== bootId()) return true;
  return processStartTime(pid) !== start;
}

function readOrUndefined(path: string): string | undefined {
  try {
    return readFileSync(path, "utf8");
  } catch {
    return undefined;
  }
}

function errno(err: unknown): string | undefined {
  return (err as NodeJS.ErrnoException).code;
}

/**
 * Removes the lock at `path` if it still holds `staleContent`; true if it did
 * (then the caller retries at once, else it waits its turn). Breakers take
 * turns through a second lock file (same link(2) claim), so that between
 * re-reading the lock and unlinking it nobody else can remove it: its holder
 * is dead, and no one can take a lock that still exists.
 */
function breakStale(path: string, staleContent: string, claim: string): boolean {
  const breaker = `${path}.break`;
  try {
    linkSync(claim, breaker);
  } catch (err) {
    if (errno(err) !== "EEXIST") throw err;
    // Another process is breaking it. A breaker holds its claim for microseconds;
    // one that was linked (ctime) long ago belongs to a breaker that died.
    try {
      if (Date.now() - statSync(breaker).ctimeMs > BREAKER_MAX_AGE_MS) unlinkSync(breaker);
    } catch {
      // gone meanwhile
    }
    return false;
  }
  try {
    if (readOrUndefined(path) !== staleContent) return false;
    unlinkSync(path);
    return true;
  } finally {
    unlinkSync(breaker);
  }
}

/** Runs `fn` while holding the lock at `path`; the directory must exist. */
export async function withLock<T>(path: string, fn: () => T, options: LockOptions = {}): Promise<T> {
  const timeoutMs = options.timeoutMs ?? DEFAULT_TIMEOUT_MS;
  const deadline = Date.now() + timeoutMs;
  const temp = `${path}.${uniqueSuffix()}`;
  writeFileSync(temp, holderIdentity(process.pid), { mode: 0o600 });
  try {
    let delayMs = 1;
    for (;;) {
      try {
        linkSync(temp, path);
        break;
      } catch (err) {
        if (errno(err) !== "EEXIST") throw err;
      }
      const holder = readOrUndefined(path);
      if (holder !== undefined && holderGone(holder) && breakStale(path, holder, temp)) continue;
      if (Date.now() > deadline) {
        throw new CniError(
          CniCode.TryAgainLater,
          "address store is busy",
          `could not take ${path} within ${timeoutMs} ms (held by: ${holder?.trim() ?? "?"})`,
        );
      }
      // Jittered exponential backoff: many plugins start at once when a node fills up.
      await sleep(delayMs * (0.5 + Math.random()));
      delayMs = Math.min(delayMs * 2, 50);
    }
  } finally {
    unlinkSync(temp);
  }
  try {
    return fn();
  } finally {
    unlinkSync(path);
  }
}

/**
 * The global timer, not node:timers/promises: loading that module costs the
 * compiled plugin about half a millisecond of every start (measured), and
 * only a contended lock ever waits.
 */
function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}
