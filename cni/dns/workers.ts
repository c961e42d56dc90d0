/**
 * Answering processes and their supervisor. A supervisor starts N processes
 * that each run `skein dns` on the same listen addresses, replaces one that
 * dies, and renders all their metrics as one. Two kinds of supervisor use it:
 *
 * - `skein dns --workers N` forks its workers with node:cluster, to answer on
 *   every core: under Node, cluster binds each UDP address once, in the
 *   primary, and hands that one socket to every worker; under Bun each worker
 *   binds its own socket with SO_REUSEPORT (datagram/index.ts). TCP
 *   connections are accepted by the primary and passed on.
 * - the network agent starts one process, the DNS program (the Bun-compiled
 *   `skein-dns`, scripts/build-dns.mjs), which may be the primary of workers
 *   of its own.
 *
 * Each process keeps its own informers, records and caches, so a dead pod
 * leaves every process's answers within the same second, and each rotates its
 * own answers fairly. Exactly one process probes pods (when asked), so health
 * is reported once.
 *
 * The protocol on the IPC channel (JSON, which Node and Bun both speak): the
 * process says `ready` once it answers, and answers each `metrics` request
 * with its registry as JSON (a primary: its workers' summed); the supervisor
 * sums the replies with prom-client's aggregation.
 *
 * A process that dies while starting fails the start (a bad address would
 * only die again); one that dies later is replaced, after a backoff that
 * grows while replacements keep dying.
 *
 * The price of one shared socket under Node: when queries are few, a datagram
 * wakes every idle worker and all but one find nothing, so two workers spend
 * more CPU per query than one; under load they answer more.
 */
import type { ChildProcess } from "node:child_process";
import { AggregatorRegistry, type Registry } from "prom-client";
import { describeError, SkeinError } from "../../kit/errors.ts";
import type { Logger } from "../../kit/log.ts";

export interface DnsWorkersOptions {
  workers: number;
  /**
   * Starts process `index` with an IPC channel. Exactly one process (index 0)
   * should probe pods, when probing is asked for.
   */
  launch: (index: number) => ChildProcess;
  logger: Logger;
}

/** One process's metrics, as `Registry.getMetricsAsJSON` gives them. */
type MetricsJson = Awaited<ReturnType<Registry["getMetricsAsJSON"]>>;

/** Messages on the IPC channel between a supervisor and an answering process. */
type WorkerMessage =
  | { skeinDns: "ready" }
  | { skeinDns: "metrics"; id: number }
  | { skeinDns: "metrics"; id: number; metrics: MetricsJson };

export class DnsWorkersError extends SkeinError {
  constructor(message: string) {
    super("DnsWorkersFailed", message);
  }
}

/** Longest a process may take to serve (caches filled, sockets bound). */
const START_TIMEOUT_MS = 120_000;
/** Longest a process may take to stop on SIGTERM before it is killed. */
const STOP_TIMEOUT_MS = 10_000;
/** Longest a metrics scrape waits for one process. */
const METRICS_TIMEOUT_MS = 5_000;
const FIRST_BACKOFF_MS = 1_000;
const MAX_BACKOFF_MS = 30_000;
/** A process that served this long counts as healthy: the next failure starts the backoff over. */
const STABLE_MS = 60_000;

interface Slot {
  process?: ChildProcess;
  ready: boolean;
  startedAt: number;
  failures: number;
  restart?: NodeJS.Timeout;
}

export class DnsWorkers {
  private readonly slots: Slot[];
  private readonly log: Logger;
  /** Set once every first process answered: from then on a process that exits is replaced. */
  private serving = false;
  private stopping: Promise<void> | undefined;
  private nextRequest = 0;

  constructor(private readonly options: DnsWorkersOptions) {
    this.log = options.logger;
    this.slots = Array.from({ length: options.workers }, () => ({ ready: false, startedAt: 0, failures: 0 }));
  }

  /**
   * Starts every process and resolves once all answer; rejects, with all
   * stopped, if one cannot start or `signal` aborts first.
   */
  async start(signal?: AbortSignal): Promise<void> {
    const started = this.slots.map((_, i) => this.launch(i));
    const abort = () => void this.stop();
    signal?.addEventListener("abort", abort, { once: true });
    try {
      if (signal?.aborted) throw new DnsWorkersError("stopped before the DNS workers started");
      await Promise.all(started);
    } catch (err) {
      await this.stop();
      await Promise.allSettled(started);
      throw err;
    } finally {
      signal?.removeEventListener("abort", abort);
    }
    this.serving = true;
    this.log.info({ workers: this.slots.length }, "DNS workers answering");
  }

  /** True while every process answers. */
  ready(): boolean {
    return this.slots.every((s) => s.ready);
  }

  /** Stops every process (SIGTERM, then SIGKILL after the stop timeout) and replaces none. */
  stop(): Promise<void> {
    this.stopping ??= this.stopAll();
    return this.stopping;
  }

  /**
   * Every answering process's metrics, summed (undefined before any answers).
   * A process that cannot answer (one still loading, or replaced right now)
   * costs the scrape its part only.
   */
  async metrics(): Promise<Registry | undefined> {
    const replies = await Promise.all(
      this.slots.map((slot, index) =>
        slot.process && slot.ready
          ? this.askMetrics(slot.process).catch((err: unknown) => {
              this.log.warn(
                { worker: index, err: describeError(err) },
                "a DNS worker's metrics are unavailable",
              );
              return undefined;
            })
          : undefined,
      ),
    );
    const known = replies.filter((r): r is MetricsJson => r !== undefined);
    return known.length === 0 ? undefined : AggregatorRegistry.aggregate(known);
  }

  private askMetrics(child: ChildProcess): Promise<MetricsJson> {
    const id = ++this.nextRequest;
    return new Promise((resolve, reject) => {
      const timer = setTimeout(
        () => done(new DnsWorkersError("no metrics within the scrape timeout")),
        METRICS_TIMEOUT_MS,
      );
      const onMessage = (message: WorkerMessage) => {
        if (message?.skeinDns === "metrics" && message.id === id && "metrics" in message)
          done(message.metrics);
      };
      const onExit = () => done(new DnsWorkersError("exited before answering"));
      const done = (result: MetricsJson | Error) => {
        clearTimeout(timer);
        child.off("message", onMessage);
        child.off("exit", onExit);
        if (result instanceof Error) reject(result);
        else resolve(result);
      };
      child.on("message", onMessage);
      child.once("exit", onExit);
      child.send({ skeinDns: "metrics", id } satisfies WorkerMessage, (err) => {
        if (err) done(err);
      });
    });
  }

  private async stopAll(): Promise<void> {
    const exits: Promise<void>[] = [];
    for (const slot of this.slots) {
      clearTimeout(slot.restart);
      const child = slot.process;
      if (!child || child.exitCode !== null || child.signalCode !== null) continue;
      exits.push(
        new Promise<void>((resolve) => {
          const kill = setTimeout(() => child.kill("SIGKILL"), STOP_TIMEOUT_MS);
          child.once("exit", () => {
            clearTimeout(kill);
            resolve();
          });
          child.kill("SIGTERM");
        }),
      );
    }
    await Promise.all(exits);
  }

  /** Starts slot `index`'s process; resolves when it answers, rejects if it exits or hangs first. */
  private launch(index: number): Promise<void> {
    const slot = this.slots[index]!;
    const child = this.options.launch(index);
    Object.assign(slot, { process: child, ready: false, startedAt: Date.now() });
    return new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => {
        reject(
          new DnsWorkersError(`DNS worker ${index} did not start within ${START_TIMEOUT_MS} ms; see its log`),
        );
        child.kill("SIGKILL");
      }, START_TIMEOUT_MS);
      child.on("message", (message: WorkerMessage) => {
        if (message?.skeinDns !== "ready") return;
        slot.ready = true;
        clearTimeout(timer);
        resolve();
      });
      child.once("error", (err) => {
        // Spawning failed (no such program): "exit" may not follow.
        clearTimeout(timer);
        slot.process = undefined;
        reject(new DnsWorkersError(`DNS worker ${index} could not be started: ${describeError(err)}`));
      });
      child.once("exit", (code, signal) => {
        clearTimeout(timer);
        slot.ready = false;
        slot.process = undefined;
        // A no-op once it answered: then the exit is news for replace() only.
        reject(
          new DnsWorkersError(
            `DNS worker ${index} exited while starting (${signal ?? `code ${code}`}); see its log`,
          ),
        );
        if (this.serving && !this.stopping) this.replace(index, code, signal);
      });
    });
  }

  private replace(index: number, code: number | null, signal: string | null): void {
    const slot = this.slots[index]!;
    if (Date.now() - slot.startedAt >= STABLE_MS) slot.failures = 0;
    const delayMs = Math.min(MAX_BACKOFF_MS, FIRST_BACKOFF_MS * 2 ** slot.failures);
    slot.failures += 1;
    this.log.error(
      { worker: index, code, signal, restartInMs: delayMs },
      "a DNS worker exited; replacing it",
    );
    slot.restart = setTimeout(() => {
      if (this.stopping) return;
      // Its exit, if it dies, schedules the next try.
      this.launch(index).catch((err: unknown) =>
        this.log.error({ worker: index, err: describeError(err) }, "a replacement DNS worker did not start"),
      );
    }, delayMs);
  }
}

/**
 * The answering side of the protocol, for a process started by a supervisor
 * (a no-op without an IPC channel): says it is ready, then answers metrics
 * requests from `metrics` (its own registry, or its workers' sum). Returns a
 * function that stops answering.
 */
export function reportToSupervisor(metrics: () => Promise<MetricsJson>, log: Logger): () => void {
  if (!process.send) return () => {};
  // A supervisor that died (SIGKILL) closes the channel: stop as on SIGTERM
  // rather than stay, unsupervised, on the ports its replacement needs.
  const onDisconnect = () => {
    log.warn("the supervisor is gone; stopping");
    process.kill(process.pid, "SIGTERM");
  };
  const onMessage = (message: WorkerMessage) => {
    if (message?.skeinDns !== "metrics" || "metrics" in message) return;
    metrics()
      .then((list) =>
        process.send?.({ skeinDns: "metrics", id: message.id, metrics: list } satisfies WorkerMessage),
      )
      .catch((err: unknown) =>
        log.warn({ err: describeError(err) }, "cannot report metrics to the supervisor"),
      );
  };
  process.on("message", onMessage);
  process.once("disconnect", onDisconnect);
  process.send({ skeinDns: "ready" } satisfies WorkerMessage);
  return () => {
    process.off("message", onMessage);
    process.off("disconnect", onDisconnect);
  };
}

/** A registry-like /metrics source: `own` metrics followed by the answering processes'. */
export function withWorkerMetrics(
  own: Registry,
  workers: () => DnsWorkers | undefined,
): Pick<Registry, "metrics" | "contentType"> {
  return {
    contentType: own.contentType,
    async metrics() {
      const mine = await own.metrics();
      const theirs = (await (await workers()?.metrics())?.metrics()) ?? "";
      return theirs ? `${mine}\n${theirs}` : mine;
    },
  };
}
