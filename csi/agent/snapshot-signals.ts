/**
 * Snapshots the agent has taken and committed (a cutover's final one, once
 * the release is recorded), with their GUIDs, told to whoever waits for them:
 * a target's request for the final increment waits at the source's transfer
 * endpoint and starts the moment the volume is released, instead of when the
 * target hears of it through the API server. Remembered for the process's
 * life, so a retried release knows a snapshot of its own from one a killed
 * agent left.
 */
export class SnapshotSignals {
  private readonly committed = new Map<string, string>();
  private readonly waiting = new Map<string, Set<(guid: string | undefined) => void>>();

  /** Resolves to the GUID of `snapshot` (full name) once committed, at once if it is; undefined after `ms` without. */
  wait(snapshot: string, ms: number): Promise<string | undefined> {
    const known = this.committed.get(snapshot);
    if (known !== undefined) return Promise.resolve(known);
    return new Promise((resolve) => {
      const waiters = this.waiting.get(snapshot) ?? new Set();
      this.waiting.set(snapshot, waiters);
      const done = (guid: string | undefined) => {
        clearTimeout(timer);
        waiters.delete(done);
        if (waiters.size === 0) this.waiting.delete(snapshot);
        resolve(guid);
      };
      const timer = setTimeout(() => done(undefined), ms);
      waiters.add(done);
    });
  }

  /** Whether this process committed `snapshot`. */
  has(snapshot: string): boolean {
    return this.committed.has(snapshot);
  }

  /** `snapshot` is taken and recorded: wake its waiters. */
  commit(snapshot: string, guid: string): void {
    this.committed.set(snapshot, guid);
    for (const done of [...(this.waiting.get(snapshot) ?? [])]) done(guid);
  }
}
