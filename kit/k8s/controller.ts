/**
 * A level-triggered controller: informers say *that* something changed, the
 * controller queues the affected keys, and N workers call `reconcile(key)`,
 * which reads the current state (from the caches) and converges it. What the
 * event said is never trusted, so a missed or merged event costs nothing:
 *
 * - keys are de-duplicated while they wait and never run on two workers at once;
 * - a throw requeues the key with per-key exponential backoff (and is logged);
 * - `{ requeueAfterMs }` asks to look again later (polling something external);
 * - every `resyncPeriodMs` all cached keys are queued again, which repairs any
 *   drift that no event announced;
 * - workers start only once every watched informer has synced, so a reconcile
 *   never mistakes an unfilled cache for "nothing exists".
 *
 * Shutdown (the `run` signal) stops taking work and waits for in-flight
 * reconciles; the reconcile's own signal lets a long one checkpoint early.
 */
import type { KubernetesObject } from "@kubernetes/client-node";
import { Registry } from "prom-client";
import { describeError } from "../errors.ts";
import { createLogger, type Logger } from "../log.ts";
import { type InformerHandlers, objectKey } from "./informer.ts";
import { type ControllerMetrics, controllerMetrics, RECONCILE_RESULTS } from "./metrics.ts";
import { type RateLimiter, WorkQueue } from "./workqueue.ts";

export interface ReconcileResult {
  /** Look at this key again after this long, even if nothing changes. */
  requeueAfterMs?: number;
}

// biome-ignore lint/suspicious/noConfusingVoidType: `void` lets a plain `async (key) => { … }` be a reconcile (nothing returned = done).
export type Reconcile = (key: string, signal: AbortSignal) => Promise<ReconcileResult | void>;

/** What the controller needs from an informer (an `Informer` is one). */
export interface Source<T> {
  on(handlers: InformerHandlers<T>): void;
  list(): T[];
  hasSynced(): boolean;
  waitForSync(signal?: AbortSignal): Promise<void>;
}

/** Maps a changed object to the keys to reconcile (none, one, or several). */
export type KeyMapper<T> = (obj: T) => string | readonly string[] | undefined;

export interface ControllerOptions {
  /** The `controller` label in metrics and logs, e.g. "network". */
  name: string;
  reconcile: Reconcile;
  /** Concurrent reconciles (of different keys); default 1. */
  workers?: number;
  /** Queue every cached key again this often; default 10 minutes, 0 turns it off. */
  resyncPeriodMs?: number;
  rateLimiter?: RateLimiter;
  /** Where metrics go; a private registry when omitted. */
  registry?: Registry;
  logger?: Logger;
}

export class Controller {
  readonly queue: WorkQueue;
  private readonly sources: Array<{ source: Source<unknown>; keys: KeyMapper<unknown> }> = [];
  private readonly log: Logger;
  private readonly metrics: ControllerMetrics;
  private readonly workers: number;
  private readonly resyncPeriodMs: number;
  private running = false;

  constructor(private readonly options: ControllerOptions) {
    this.workers = options.workers ?? 1;
    if (!(Number.isInteger(this.workers) && this.workers >= 1)) {
      throw new RangeError(
        `controller ${options.name}: workers must be a positive integer, got ${options.workers}`,
      );
    }
    this.resyncPeriodMs = options.resyncPeriodMs ?? 10 * 60_000;
    this.log = (options.logger ?? createLogger("controller")).child({ controller: options.name });
    this.metrics = controllerMetrics(options.registry ?? new Registry());
    const labels = { name: options.name, controller: options.name };
    const m = this.metrics;
    this.queue = new WorkQueue({
      rateLimiter: options.rateLimiter,
      observer: {
        added: () => m.queueAdds.inc(labels),
        retried: () => m.queueRetries.inc(labels),
        waited: (s) => m.queueDuration.observe(labels, s),
        worked: (s) => m.workDuration.observe(labels, s),
      },
    });
    m.queues.set(options.name, this.queue);
    // Zeroed series exist from the start, as controller-runtime does, so rates and alerts work before the first event.
    for (const result of RECONCILE_RESULTS) m.reconcileTotal.inc({ controller: options.name, result }, 0);
    m.reconcileErrors.inc({ controller: options.name }, 0);
    m.queueAdds.inc(labels, 0);
    m.queueRetries.inc(labels, 0);
    m.activeWorkers.set({ controller: options.name }, 0);
    m.maxConcurrentReconciles.set({ controller: options.name }, this.workers);
  }

  /**
   * Queues keys for changes `source` reports. By default the key is the
   * object's own (`namespace/name`); pass `keys` to reconcile a related
   * object instead (a Node change → every Network).
   */
  watch<T extends KubernetesObject>(source: Source<T>, keys: KeyMapper<T> = objectKey): this {
    if (this.running) throw new Error(`controller ${this.options.name}: watch() after run()`);
    const enqueue = (obj: T) => {
      for (const key of asList(keys(obj))) this.queue.add(key);
    };
    source.on({ add: enqueue, update: (_old, obj) => enqueue(obj), delete: enqueue });
    this.sources.push({ source: source as Source<unknown>, keys: keys as KeyMapper<unknown> });
    return this;
  }

  /** Queues `key` now (e.g. from a timer or another controller). */
  enqueue(key: string): void {
    this.queue.add(key);
  }

  /** True once every watched informer has filled its cache (a readiness check). */
  hasSynced(): boolean {
    return this.sources.every((s) => s.source.hasSynced());
  }

  /**
   * Waits for caches, runs the workers until `signal` aborts, then stops
   * taking work and resolves once in-flight reconciles have finished.
   */
  async run(signal: AbortSignal): Promise<void> {
    if (this.running) throw new Error(`controller ${this.options.name} is already running`);
    this.running = true;
    try {
      await Promise.all(this.sources.map((s) => s.source.waitForSync(signal)));
    } catch (err) {
      if (signal.aborted) {
        await this.queue.shutDown();
        return;
      }
      throw err;
    }
    this.log.info({ workers: this.workers }, "caches synced; starting workers");
    const stop = () => void this.queue.shutDown();
    signal.addEventListener("abort", stop, { once: true });
    if (signal.aborted) stop();
    const resync =
      this.resyncPeriodMs > 0 ? setInterval(() => this.resync(), this.resyncPeriodMs).unref() : undefined;
    try {
      await Promise.all(Array.from({ length: this.workers }, () => this.worker(signal)));
      await this.queue.shutDown();
    } finally {
      if (resync) clearInterval(resync);
      signal.removeEventListener("abort", stop);
      this.log.info("stopped");
    }
  }

  private resync(): void {
    for (const { source, keys } of this.sources) {
      for (const obj of source.list()) for (const key of asList(keys(obj))) this.queue.add(key);
    }
  }

  private async worker(signal: AbortSignal): Promise<void> {
    const controller = this.options.name;
    const m = this.metrics;
    for (;;) {
      const key = await this.queue.get();
      if (key === undefined) return;
      m.activeWorkers.inc({ controller });
      const endTimer = m.reconcileTime.startTimer({ controller });
      try {
        const result = await this.options.reconcile(key, signal);
        this.queue.forget(key);
        const after = result?.requeueAfterMs;
        if (after !== undefined && after > 0) {
          this.queue.addAfter(key, after);
          m.reconcileTotal.inc({ controller, result: "requeue_after" });
        } else {
          m.reconcileTotal.inc({ controller, result: "success" });
        }
      } catch (err) {
        const retries = this.queue.numRequeues(key);
        this.log.error(
          { key, retries, err: describeError(err) },
          "reconcile failed; will retry with backoff",
        );
        m.reconcileErrors.inc({ controller });
        m.reconcileTotal.inc({ controller, result: "error" });
        this.queue.addRateLimited(key);
      } finally {
        endTimer();
        m.activeWorkers.dec({ controller });
        this.queue.done(key);
      }
    }
  }
}

function asList(keys: string | readonly string[] | undefined): readonly string[] {
  if (keys === undefined) return [];
  return typeof keys === "string" ? [keys] : keys;
}
