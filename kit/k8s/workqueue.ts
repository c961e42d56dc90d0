/**
 * The controller work queue, with client-go's semantics (the ones level-triggered
 * controllers rely on):
 *
 * - A key added while it already waits is queued once (`dirty` holds waiting keys).
 * - A key is handed to one worker at a time. Re-added while a worker holds it, it
 *   waits in `dirty` and is queued again when that worker calls `done`, so the
 *   newest state is always looked at, but never by two workers at once.
 * - `addAfter` holds a key back (the earliest pending time wins); `addRateLimited`
 *   holds it back by the key's own exponential backoff until `forget`.
 * - `shutDown` stops taking work: adds are ignored, waiting and delayed keys are
 *   dropped (a level-triggered controller finds them again when it next lists),
 *   and the promise it returns settles when the keys in flight are `done`.
 */
import { type BackoffPolicy, backoffDelay } from "./backoff.ts";

/** Hooks for metrics; the controller backs them with Prometheus. */
export interface QueueObserver {
  added?(): void;
  retried?(): void;
  /** A key left the queue for a worker after waiting this long. */
  waited?(seconds: number): void;
  /** A worker finished a key after working on it this long. */
  worked?(seconds: number): void;
}

export interface RateLimiter {
  /** How long `key` should wait now; each call counts as one more failure. */
  when(key: string): number;
  forget(key: string): void;
  failures(key: string): number;
}

/** client-go's default per-item limiter: 5 ms doubling to 1000 s. */
export const DEFAULT_ITEM_BACKOFF: BackoffPolicy = { initialMs: 5, maxMs: 1_000_000 };

/** Per-key exponential backoff: each key backs off on its own failures alone. */
export class ItemExponentialRateLimiter implements RateLimiter {
  private readonly counts = new Map<string, number>();

  constructor(private readonly policy: BackoffPolicy = DEFAULT_ITEM_BACKOFF) {
    backoffDelay(policy, 0);
  }

  when(key: string): number {
    const failures = this.counts.get(key) ?? 0;
    this.counts.set(key, failures + 1);
    return backoffDelay(this.policy, failures);
  }

  forget(key: string): void {
    this.counts.delete(key);
  }

  failures(key: string): number {
    return this.counts.get(key) ?? 0;
  }
}

export interface WorkQueueOptions {
  rateLimiter?: RateLimiter;
  observer?: QueueObserver;
  /** Milliseconds clock for the metrics; defaults to Date.now. */
  now?: () => number;
}

export class WorkQueue {
  private readonly queue: string[] = [];
  /** Keys that need processing: waiting in `queue`, or re-added while in flight. */
  private readonly dirty = new Set<string>();
  /** Keys a worker holds, with the time it took them. */
  private readonly processing = new Map<string, number>();
  /** When each waiting key was queued, for the queue-duration metric. */
  private readonly queuedAt = new Map<string, number>();
  private readonly delayed = new Map<string, { readyAt: number; timer: NodeJS.Timeout }>();
  private readonly waiters: Array<(key: string | undefined) => void> = [];
  private drainWaiters: Array<() => void> = [];
  private stopping = false;
  private readonly rateLimiter: RateLimiter;
  private readonly observer: QueueObserver;
  private readonly now: () => number;

  constructor(options: WorkQueueOptions = {}) {
    this.rateLimiter = options.rateLimiter ?? new ItemExponentialRateLimiter();
    this.observer = options.observer ?? {};
    this.now = options.now ?? Date.now;
  }

  add(key: string): void {
    if (this.stopping || this.dirty.has(key)) return;
    this.observer.added?.();
    this.dirty.add(key);
    if (this.processing.has(key)) return;
    this.enqueue(key);
  }

  addAfter(key: string, delayMs: number): void {
    if (this.stopping) return;
    if (!(delayMs > 0)) {
      this.add(key);
      return;
    }
    const readyAt = this.now() + delayMs;
    const pending = this.delayed.get(key);
    if (pending && pending.readyAt <= readyAt) return;
    if (pending) clearTimeout(pending.timer);
    const timer = setTimeout(() => {
      this.delayed.delete(key);
      this.add(key);
    }, delayMs);
    // A delayed retry alone must not keep a finished process alive.
    timer.unref();
    this.delayed.set(key, { readyAt, timer });
  }

  /** Requeue `key` after its own backoff; call after a failed attempt. */
  addRateLimited(key: string): void {
    if (this.stopping) return;
    this.observer.retried?.();
    this.addAfter(key, this.rateLimiter.when(key));
  }

  /** Clear `key`'s failure history; call after a successful attempt. */
  forget(key: string): void {
    this.rateLimiter.forget(key);
  }

  numRequeues(key: string): number {
    return this.rateLimiter.failures(key);
  }

  /** The next key to work on, or undefined once the queue shuts down. Call `done(key)` after. */
  get(): Promise<string | undefined> {
    if (this.stopping) return Promise.resolve(undefined);
    const key = this.queue.shift();
    if (key !== undefined) return Promise.resolve(this.take(key));
    return new Promise((resolve) => this.waiters.push(resolve));
  }

  done(key: string): void {
    const startedAt = this.processing.get(key);
    if (startedAt === undefined) throw new Error(`workqueue: done(${key}) for a key no worker holds`);
    this.processing.delete(key);
    this.observer.worked?.((this.now() - startedAt) / 1000);
    if (this.dirty.has(key) && !this.stopping) this.enqueue(key);
    if (this.processing.size === 0 && this.stopping) this.settleDrain();
  }

  /** Keys waiting for a worker (the `workqueue_depth` metric). */
  get length(): number {
    return this.queue.length;
  }

  get shuttingDown(): boolean {
    return this.stopping;
  }

  /** Seconds of work in flight, and the age of the oldest piece of it. */
  inFlight(): { count: number; unfinishedSeconds: number; longestSeconds: number } {
    const now = this.now();
    let unfinished = 0;
    let longest = 0;
    for (const startedAt of this.processing.values()) {
      const seconds = (now - startedAt) / 1000;
      unfinished += seconds;
      longest = Math.max(longest, seconds);
    }
    return { count: this.processing.size, unfinishedSeconds: unfinished, longestSeconds: longest };
  }

  /** Stops taking work; resolves when every key in flight is `done`. */
  shutDown(): Promise<void> {
    if (!this.stopping) {
      this.stopping = true;
      for (const { timer } of this.delayed.values()) clearTimeout(timer);
      this.delayed.clear();
      this.queue.length = 0;
      this.queuedAt.clear();
      for (const key of this.dirty) if (!this.processing.has(key)) this.dirty.delete(key);
      for (const resolve of this.waiters.splice(0)) resolve(undefined);
    }
    if (this.processing.size === 0) return Promise.resolve();
    return new Promise((resolve) => this.drainWaiters.push(resolve));
  }

  private enqueue(key: string): void {
    this.queuedAt.set(key, this.now());
    const waiter = this.waiters.shift();
    if (waiter) waiter(this.take(key));
    else this.queue.push(key);
  }

  private take(key: string): string {
    const now = this.now();
    this.observer.waited?.((now - (this.queuedAt.get(key) ?? now)) / 1000);
    this.queuedAt.delete(key);
    this.dirty.delete(key);
    this.processing.set(key, now);
    return key;
  }

  private settleDrain(): void {
    const waiters = this.drainWaiters;
    this.drainWaiters = [];
    for (const resolve of waiters) resolve();
  }
}
