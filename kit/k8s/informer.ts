/**
 * A typed informer: list, then watch from the list's resourceVersion, keeping an
 * in-memory cache keyed by `namespace/name` (just `name` for cluster-scoped
 * kinds) and telling handlers what changed.
 *
 * Why not client-node's `makeInformer`/`ListWatch`: it stops for good after a
 * watch or list error and leaves restarting to the caller, its update handler
 * never sees the old object, and it cannot say when its cache first filled.
 * This one is a single loop that cannot stop by accident:
 *
 *   loop until stopped:
 *     no resourceVersion?  list, diff against the cache (adds, updates, deletes)
 *     watch from resourceVersion until the stream ends
 *       410 Gone (too old)  → forget the resourceVersion, relist at once
 *       clean end           → watch again at once (the server times watches out)
 *       error               → wait (exponential backoff, capped, jittered), retry
 *
 * After an API server restart the watch resumes from the last resourceVersion
 * when etcd still has it, and relists when it does not. Watches ask the server
 * to end them after 5–10 minutes (client-go's spread), so no connection lives
 * forever unnoticed.
 */
import { setTimeout as sleep } from "node:timers/promises";
import {
  type KubeConfig,
  type KubernetesListObject,
  type KubernetesObject,
  Watch,
} from "@kubernetes/client-node";
import { describeError } from "../errors.ts";
import { createLogger, type Logger } from "../log.ts";
import { Backoff, type BackoffPolicy } from "./backoff.ts";

export interface Selectors {
  labelSelector?: string;
  fieldSelector?: string;
}

export interface InformerOptions<T extends KubernetesObject> {
  /** Names the informer in logs, e.g. "networks". */
  name: string;
  /** The collection's URL path, e.g. `/apis/skein.io/v1alpha1/networks`; watched with `?watch=true`. */
  path: string;
  /**
   * Lists the same collection, honouring the selectors, e.g.
   * `(s) => core.listNode(s)`. Objects from the watch are wire JSON; pass
   * `decode` when the list returns client-node model objects (Dates and all)
   * and handlers need both to look alike.
   */
  list: (selectors: Selectors) => Promise<KubernetesListObject<T>>;
  decode?: (wire: unknown) => T;
  labelSelector?: string;
  fieldSelector?: string;
  /** Delay between failed attempts; default 800 ms doubling to 30 s, half jittered. */
  backoff?: BackoffPolicy;
  logger?: Logger;
  /** Called after each failed list or watch, before waiting `delayMs`. */
  onRetry?: (err: unknown, delayMs: number) => void;
  /** The watch client; tests script one to drive the loop through failures. */
  watch?: Pick<Watch, "watch">;
}

export interface InformerHandlers<T> {
  add?(obj: T): void;
  update?(oldObj: T, newObj: T): void;
  /** The last state the informer saw (from the delete event, or the cache when a relist found it gone). */
  delete?(obj: T): void;
}

export const DEFAULT_INFORMER_BACKOFF: BackoffPolicy = { initialMs: 800, maxMs: 30_000, jitter: 0.5 };

/** The cache key client-go uses: `namespace/name`, or `name` when cluster-scoped. */
export function objectKey(obj: KubernetesObject): string {
  const name = obj.metadata?.name ?? "";
  const ns = obj.metadata?.namespace;
  return ns ? `${ns}/${name}` : name;
}

/** Splits a key made by `objectKey`. */
export function splitKey(key: string): { namespace?: string; name: string } {
  const slash = key.indexOf("/");
  return slash < 0 ? { name: key } : { namespace: key.slice(0, slash), name: key.slice(slash + 1) };
}

interface WatchOutcome {
  error?: unknown;
  /** The server said our resourceVersion is too old (410 Gone). */
  gone: boolean;
  events: number;
  durationMs: number;
}

/** A watch that ends this soon without an event is a failure, not a routine close. */
const MIN_HEALTHY_WATCH_MS = 1_000;

export class Informer<T extends KubernetesObject> {
  private readonly cache = new Map<string, T>();
  private readonly handlers: InformerHandlers<T>[] = [];
  private readonly watch: Pick<Watch, "watch">;
  private readonly log: Logger;
  private readonly backoff: Backoff;
  private readonly stopper = new AbortController();
  private resourceVersion = "";
  private synced = false;
  private syncWaiters: Array<() => void> = [];
  private loop: Promise<void> | undefined;
  private abortWatch: (() => void) | undefined;

  constructor(
    kubeConfig: KubeConfig,
    private readonly options: InformerOptions<T>,
  ) {
    this.watch = options.watch ?? new Watch(kubeConfig);
    this.log = (options.logger ?? createLogger("informer")).child({ informer: options.name });
    this.backoff = new Backoff(options.backoff ?? DEFAULT_INFORMER_BACKOFF);
  }

  /** Registers handlers; objects already cached are replayed to `add` so late registrants miss nothing. */
  on(handlers: InformerHandlers<T>): void {
    this.handlers.push(handlers);
    if (handlers.add) for (const obj of this.cache.values()) this.call(() => handlers.add?.(obj));
  }

  start(): void {
    if (this.loop || this.stopper.signal.aborted) return;
    this.loop = this.run();
  }

  async stop(): Promise<void> {
    this.stopper.abort();
    this.abortWatch?.();
    await this.loop;
  }

  /** True once the first list has filled the cache. */
  hasSynced(): boolean {
    return this.synced;
  }

  /** Resolves when the cache first fills; rejects if `signal` aborts first. */
  waitForSync(signal?: AbortSignal): Promise<void> {
    if (this.synced) return Promise.resolve();
    return new Promise((resolve, reject) => {
      const onAbort = () =>
        reject(new Error(`informer ${this.options.name}: stopped before its cache synced`));
      if (signal?.aborted) return onAbort();
      signal?.addEventListener("abort", onAbort, { once: true });
      this.syncWaiters.push(() => {
        signal?.removeEventListener("abort", onAbort);
        resolve();
      });
    });
  }

  get(key: string): T | undefined {
    return this.cache.get(key);
  }

  list(): T[] {
    return [...this.cache.values()];
  }

  keys(): string[] {
    return [...this.cache.keys()];
  }

  private async run(): Promise<void> {
    const signal = this.stopper.signal;
    while (!signal.aborted) {
      let failure: unknown;
      try {
        if (!this.resourceVersion) await this.relist();
        if (signal.aborted) break;
        const outcome = await this.watchOnce();
        if (signal.aborted) break;
        if (outcome.gone) {
          this.log.info(
            { resourceVersion: this.resourceVersion },
            "watch resourceVersion expired; relisting",
          );
          this.resourceVersion = "";
          continue;
        }
        if (outcome.error !== undefined) failure = outcome.error;
        else if (outcome.events === 0 && outcome.durationMs < MIN_HEALTHY_WATCH_MS) {
          failure = new Error("watch closed as soon as it opened");
        } else {
          this.backoff.reset();
          continue;
        }
      } catch (err) {
        failure = err;
      }
      if (signal.aborted) break;
      const delayMs = this.backoff.next();
      this.log.warn(
        { err: describeError(failure), delayMs: Math.round(delayMs) },
        "list/watch failed; retrying",
      );
      this.options.onRetry?.(failure, delayMs);
      await sleep(delayMs, undefined, { signal }).catch(() => undefined);
    }
  }

  private selectors(): Selectors {
    const s: Selectors = {};
    if (this.options.labelSelector !== undefined) s.labelSelector = this.options.labelSelector;
    if (this.options.fieldSelector !== undefined) s.fieldSelector = this.options.fieldSelector;
    return s;
  }

  private async relist(): Promise<void> {
    const list = await this.options.list(this.selectors());
    const fresh = new Map<string, T>();
    for (const item of list.items) fresh.set(objectKey(item), item);
    const previous = new Map(this.cache);
    this.cache.clear();
    for (const [key, obj] of fresh) this.cache.set(key, obj);
    for (const [key, old] of previous) if (!fresh.has(key)) this.emit((h) => h.delete?.(old));
    for (const [key, obj] of fresh) {
      const old = previous.get(key);
      if (!old) this.emit((h) => h.add?.(obj));
      else if (old.metadata?.resourceVersion !== obj.metadata?.resourceVersion)
        this.emit((h) => h.update?.(old, obj));
    }
    this.resourceVersion = list.metadata?.resourceVersion ?? "";
    this.backoff.reset();
    this.log.debug({ count: fresh.size, resourceVersion: this.resourceVersion }, "listed");
    if (!this.synced) {
      this.synced = true;
      for (const resolve of this.syncWaiters.splice(0)) resolve();
    }
  }

  private watchOnce(): Promise<WatchOutcome> {
    const started = Date.now();
    const timeoutSeconds = 300 + Math.floor(Math.random() * 300);
    const params: Record<string, string | number | boolean | undefined> = {
      resourceVersion: this.resourceVersion,
      allowWatchBookmarks: true,
      timeoutSeconds,
      ...this.selectors(),
    };
    return new Promise((resolve) => {
      let events = 0;
      let gone = false;
      let streamError: unknown;
      let settled = false;
      let request: AbortController | undefined;
      // The server ends the watch at timeoutSeconds; a connection still open
      // well after that is dead without having said so.
      const watchdog = setTimeout(() => request?.abort(), (timeoutSeconds + 30) * 1000);
      const finish = (err: unknown) => {
        if (settled) return;
        settled = true;
        clearTimeout(watchdog);
        this.abortWatch = undefined;
        const error = streamError ?? (err === null || err === undefined ? undefined : err);
        resolve({
          error: gone ? undefined : error,
          gone: gone || isGone(err),
          events,
          durationMs: Date.now() - started,
        });
      };
      const onEvent = (type: string, wire: unknown) => {
        if (settled) return;
        if (type === "ERROR") {
          if (isGone(wire)) gone = true;
          else streamError = new Error(`watch error event: ${statusMessage(wire)}`);
          request?.abort();
          return;
        }
        const obj = (this.options.decode ? this.options.decode(wire) : wire) as T;
        const rv = obj.metadata?.resourceVersion;
        events++;
        if (type !== "BOOKMARK") this.apply(type, obj);
        if (rv) this.resourceVersion = rv;
      };
      this.watch.watch(this.options.path, params, onEvent, finish).then(
        (controller) => {
          request = controller;
          if (settled) return;
          if (this.stopper.signal.aborted) controller.abort();
          else this.abortWatch = () => controller.abort();
        },
        (err: unknown) => finish(err ?? new Error("watch failed")),
      );
    });
  }

  private apply(type: string, obj: T): void {
    const key = objectKey(obj);
    const old = this.cache.get(key);
    if (type === "DELETED") {
      this.cache.delete(key);
      if (old) this.emit((h) => h.delete?.(obj));
      return;
    }
    // ADDED or MODIFIED: a reconnect can replay either for an object we already hold.
    this.cache.set(key, obj);
    if (!old) this.emit((h) => h.add?.(obj));
    else if (old.metadata?.resourceVersion !== obj.metadata?.resourceVersion)
      this.emit((h) => h.update?.(old, obj));
  }

  private emit(fn: (h: InformerHandlers<T>) => void): void {
    for (const h of this.handlers) this.call(() => fn(h));
  }

  private call(fn: () => void): void {
    try {
      fn();
    } catch (err) {
      // A handler's bug must not stop the informer that every controller shares.
      this.log.error({ err: describeError(err) }, "informer handler threw");
    }
  }
}

function isGone(value: unknown): boolean {
  if (typeof value !== "object" || value === null) return false;
  const v = value as { code?: unknown; statusCode?: unknown };
  return v.code === 410 || v.statusCode === 410;
}

function statusMessage(wire: unknown): string {
  if (typeof wire === "object" && wire !== null) {
    const s = wire as { code?: number; message?: string; reason?: string };
    return `${s.code ?? "?"} ${s.reason ?? ""} ${s.message ?? ""}`.trim();
  }
  return String(wire);
}
