/**
 * Snapshots the agent has taken and committed (a cutover's final one, once
 * the release is recorded), told to whoever waits for them: a target's
 * request for the final increment waits at the source's transfer endpoint and
 * starts the moment the volume is released, instead of when the target hears
 * of it through the API server. Remembered for the process's life, so a
 * retried release knows a snapshot of its own from one a killed agent left.
 */
export class SnapshotSignals {
  private readonly committed = new Set<string>();
  private readonly waiting = new Map<string, Set<(taken: boolean) => void>>();

  /** Resolves true once `snapshot` (full name) is committed, at once if it is; false after `ms` without. */
  wait(snapshot: string, ms: number): Promise<boolean> {
    if (this.committed.has(snapshot)) return Promise.resolve(true);
    return new Promise((resolve) => {
      const waiters = this.waiting.get(snapshot) ?? new Set();
      this.waiting.set(snapshot, waiters);
      const done = (taken: boolean) => {
        clearTimeout(timer);
        waiters.delete(done);
        if (waiters.size === 0) this.waiting.delete(snapshot);
        resolve(taken);
      };
      const timer = setTimeout(() => done(false), ms);
      waiters.add(done);
    });
  }

  /** Whether this process committed `snapshot`. */
  has(snapshot: string): boolean {
    return this.committed.has(snapshot);
  }

  /** `snapshot` is taken and recorded: wake its waiters. */
  commit(snapshot: string): void {
    this.committed.add(snapshot);
    for (const done of [...(this.waiting.get(snapshot) ?? [])]) done(true);
  }
}
