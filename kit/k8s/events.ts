/**
 * An `events.k8s.io/v1` Event recorder that aggregates instead of flooding.
 *
 * The first occurrence creates an Event. A repeat (same regarding object,
 * related object, type, reason, action and note) within `seriesWindowMs` of
 * the previous one only counts; one merge patch per `flushMs` writes the
 * series' count and lastObservedTime to that Event, the way `kubectl get
 * events` shows "(x12 over 3m)". Recording never blocks, and throws only for
 * input the API would reject: writes run in the background and their failures
 * are logged, because a controller must not fail a reconcile over an Event.
 */
import {
  EventsV1Api,
  type EventsV1Event,
  type KubeConfig,
  type KubernetesObject,
  PatchStrategy,
  setHeaderOptions,
  V1MicroTime,
  type V1ObjectReference,
} from "@kubernetes/client-node";
import { describeError, InvalidInputError } from "../errors.ts";
import { createLogger, type Logger } from "../log.ts";
import { isNotFound } from "./api-status.ts";

export type EventType = "Normal" | "Warning";

export interface EventInput {
  regarding: V1ObjectReference;
  related?: V1ObjectReference;
  type: EventType;
  /** CamelCase, constant per situation (e.g. "BlockAllocated"); what tools group by. */
  reason: string;
  /** What the controller did or failed to do, CamelCase (e.g. "Allocate"). */
  action: string;
  /** Human-readable detail, at most 1 KiB. */
  note: string;
}

export interface EventRecorderOptions {
  kubeConfig: KubeConfig;
  /** e.g. "skein.io/network-controller". */
  reportingController: string;
  /** This replica, e.g. the pod name. */
  reportingInstance: string;
  /** A repeat within this long of the previous occurrence joins its series; default 6 minutes. */
  seriesWindowMs?: number;
  /** At most one series update per Event this often; default 1 s. */
  flushMs?: number;
  /** How many distinct Events to remember; the oldest are forgotten first. */
  cacheSize?: number;
  logger?: Logger;
}

/** A reference to `obj` for `regarding`/`related`. */
export function objectReference(obj: KubernetesObject): V1ObjectReference {
  const ref: V1ObjectReference = { apiVersion: obj.apiVersion, kind: obj.kind, name: obj.metadata?.name };
  if (obj.metadata?.namespace) ref.namespace = obj.metadata.namespace;
  if (obj.metadata?.uid) ref.uid = obj.metadata.uid;
  return ref;
}

const CAMEL = /^[A-Z][A-Za-z0-9]*$/;
const MAX_NOTE_BYTES = 1024;

/** Checks what the API server would reject, with a message saying what to change. */
export function validateEvent(input: EventInput): void {
  if (input.type !== "Normal" && input.type !== "Warning") {
    throw new InvalidInputError(`event type ${JSON.stringify(input.type)} must be Normal or Warning`);
  }
  if (!CAMEL.test(input.reason) || input.reason.length > 128) {
    throw new InvalidInputError(
      `event reason ${JSON.stringify(input.reason)} must be one CamelCase word of at most 128 characters, e.g. BlockAllocated`,
    );
  }
  if (!CAMEL.test(input.action) || input.action.length > 128) {
    throw new InvalidInputError(
      `event action ${JSON.stringify(input.action)} must be one CamelCase word of at most 128 characters, e.g. Allocate`,
    );
  }
  if (!input.regarding.name || !input.regarding.kind) {
    throw new InvalidInputError("an event's regarding object needs at least a kind and a name");
  }
}

/** Cuts `note` to the API's 1 KiB limit without splitting a character. */
export function truncateNote(note: string): string {
  if (Buffer.byteLength(note) <= MAX_NOTE_BYTES) return note;
  let cut = note.slice(0, MAX_NOTE_BYTES - 3);
  while (Buffer.byteLength(`${cut}…`) > MAX_NOTE_BYTES) cut = cut.slice(0, -1);
  return `${cut}…`;
}

interface Series {
  input: EventInput;
  namespace: string;
  /** Set once the create succeeded. */
  name?: string;
  count: number;
  /** Count already written to the API. */
  written: number;
  lastObserved: Date;
  lastSeen: number;
  timer?: NodeJS.Timeout;
  /** The write in flight, if any. */
  writing?: Promise<void>;
}

export class EventRecorder {
  private readonly api: EventsV1Api;
  private readonly log: Logger;
  private readonly series = new Map<string, Series>();
  private readonly pending = new Set<Promise<void>>();
  private readonly seriesWindowMs: number;
  private readonly flushMs: number;
  private readonly cacheSize: number;
  private sequence = 0;

  constructor(private readonly options: EventRecorderOptions) {
    if (!options.reportingController || !options.reportingInstance) {
      throw new InvalidInputError("an event recorder needs reportingController and reportingInstance");
    }
    this.api = options.kubeConfig.makeApiClient(EventsV1Api);
    this.log = options.logger ?? createLogger("events");
    this.seriesWindowMs = options.seriesWindowMs ?? 6 * 60_000;
    this.flushMs = options.flushMs ?? 1_000;
    this.cacheSize = options.cacheSize ?? 4096;
  }

  normal(regarding: V1ObjectReference, reason: string, action: string, note: string): void {
    this.record({ regarding, type: "Normal", reason, action, note });
  }

  warning(regarding: V1ObjectReference, reason: string, action: string, note: string): void {
    this.record({ regarding, type: "Warning", reason, action, note });
  }

  /** Records an occurrence; throws only for input the API would reject (a bug in the caller). */
  record(input: EventInput): void {
    validateEvent(input);
    const note = truncateNote(input.note);
    const key = JSON.stringify([
      refKey(input.regarding),
      input.related ? refKey(input.related) : "",
      input.type,
      input.reason,
      input.action,
      note,
    ]);
    const now = Date.now();
    const existing = this.series.get(key);
    if (existing && now - existing.lastSeen <= this.seriesWindowMs) {
      existing.count++;
      existing.lastObserved = new Date(now);
      existing.lastSeen = now;
      // Refresh its place in the insertion-ordered map: most recent last.
      this.series.delete(key);
      this.series.set(key, existing);
      this.scheduleSeriesWrite(existing);
      return;
    }
    if (existing?.timer) {
      clearTimeout(existing.timer);
      existing.timer = undefined;
      this.track(this.writeSeries(existing));
    }
    const fresh: Series = {
      input: { ...input, note },
      namespace: input.regarding.namespace || "default",
      count: 1,
      written: 1,
      lastObserved: new Date(now),
      lastSeen: now,
    };
    this.series.delete(key);
    this.series.set(key, fresh);
    this.evictOldest();
    fresh.writing = this.track(this.create(fresh, now));
  }

  /** Writes what is pending and waits for all writes; for shutdown and tests. */
  async flush(): Promise<void> {
    for (const s of this.series.values()) {
      if (s.timer) {
        clearTimeout(s.timer);
        s.timer = undefined;
        this.track(this.writeSeries(s));
      }
    }
    while (this.pending.size > 0) await Promise.all(this.pending);
  }

  private track(p: Promise<void>): Promise<void> {
    this.pending.add(p);
    void p.finally(() => this.pending.delete(p));
    return p;
  }

  private evictOldest(): void {
    while (this.series.size > this.cacheSize) {
      const [oldestKey, oldest] = this.series.entries().next().value as [string, Series];
      this.series.delete(oldestKey);
      if (oldest.timer) {
        clearTimeout(oldest.timer);
        oldest.timer = undefined;
        this.track(this.writeSeries(oldest));
      }
    }
  }

  private scheduleSeriesWrite(s: Series): void {
    if (s.timer) return;
    s.timer = setTimeout(() => {
      s.timer = undefined;
      this.track(this.writeSeries(s));
    }, this.flushMs);
    s.timer.unref();
  }

  private async create(s: Series, now: number): Promise<void> {
    const input = s.input;
    const time = new V1MicroTime(now);
    // client-go's naming (<object>.<hex nanoseconds>); the sequence keeps two
    // Events about one object in the same millisecond apart.
    const nanos = BigInt(now) * 1_000_000n + BigInt(this.sequence++ % 1_000_000);
    const body: EventsV1Event = {
      apiVersion: "events.k8s.io/v1",
      kind: "Event",
      metadata: { name: `${input.regarding.name}.${nanos.toString(16)}`, namespace: s.namespace },
      eventTime: time,
      regarding: input.regarding,
      type: input.type,
      reason: input.reason,
      action: input.action,
      note: input.note,
      reportingController: this.options.reportingController,
      reportingInstance: this.options.reportingInstance,
    };
    if (input.related) body.related = input.related;
    try {
      const created = await this.api.createNamespacedEvent({ namespace: s.namespace, body });
      s.name = created.metadata?.name;
    } catch (err) {
      this.log.warn({ err: describeError(err), reason: input.reason }, "could not record an event");
    }
  }

  /** Writes the series' count; recreates the Event if it expired meanwhile. */
  private async writeSeries(s: Series): Promise<void> {
    await s.writing;
    if (s.count === s.written) return;
    const count = s.count;
    const write = async () => {
      if (!s.name) return;
      try {
        await this.api.patchNamespacedEvent(
          {
            name: s.name,
            namespace: s.namespace,
            body: { series: { count, lastObservedTime: new V1MicroTime(s.lastObserved.getTime()) } },
          },
          setHeaderOptions("Content-Type", PatchStrategy.MergePatch),
        );
        s.written = count;
      } catch (err) {
        if (isNotFound(err)) {
          // Events expire (the API server's TTL); start a new one rather than lose the signal.
          s.count = 1;
          s.written = 1;
          await this.create(s, Date.now());
          return;
        }
        this.log.warn({ err: describeError(err), event: s.name }, "could not update an event series");
      }
    };
    s.writing = write();
    await s.writing;
  }
}

function refKey(ref: V1ObjectReference): string {
  return [ref.apiVersion, ref.kind, ref.namespace ?? "", ref.name, ref.uid ?? ""].join("|");
}
