/**
 * Answering workers: N processes that each run `skein dns` on the same listen
 * addresses, so answering uses every core. Node's own per-datagram cost, not
 * Skein's, bounds what one process answers.
 *
 * Design note. The primary (`skein dns --workers N`, or the network agent)
 * forks the workers with node:cluster and plain `skein dns` flags. Cluster
 * binds each UDP address once, in the primary, and hands that one socket to
 * every worker: the kernel gives each datagram to whichever worker reads
 * first. TCP connections are accepted by the primary and passed on. Each
 * worker keeps its own informers, records and caches, so a dead pod leaves
 * every worker's answers within the same second, and each rotates its own
 * answers fairly. Exactly one worker probes pods (when asked), so health is
 * reported once. The primary renders all workers' metrics as one.
 *
 * A worker that dies while starting fails the start (a bad address would
 * only die again); one that dies later is replaced, after a backoff that
 * grows while replacements keep dying.
 *
 * The price of one shared socket: when queries are few, a datagram wakes
 * every idle worker and all but one find nothing, so two workers spend more
 * CPU per query than one; under load they answer more.
 */
import cluster, { type Worker } from "node:cluster";
import { AggregatorRegistry, type Registry } from "prom-client";
import { describeError, SkeinError } from "../../kit/errors.ts";
import type { Logger } from "../../kit/log.ts";
import { type DnsConfig, dnsArgv } from "./flags.ts";

export interface DnsWorkersOptions {
  /** What every worker serves; `probes` is given to one worker only. */
  config: Omit<DnsConfig, "metricsAddress" | "workers">;
  workers: number;
  logger: Logger;
}

/** The message a worker sends once it answers. */
export const WORKER_READY = { skeinDns: "ready" } as const;

export class DnsWorkersError extends SkeinError {
  constructor(message: string) {
    super("DnsWorkersFailed", message);
  }
}

/** Longest a worker may take to serve (caches filled, sockets bound). */
const START_TIMEOUT_MS = 120_000;
/** Longest a worker may take to stop on SIGTERM before it is killed. */
const STOP_TIMEOUT_MS = 10_000;
const FIRST_BACKOFF_MS = 1_000;
const MAX_BACKOFF_MS = 30_000;
/** A worker that served this long counts as healthy: the next failure starts the backoff over. */
const STABLE_MS = 60_000;

interface Slot {
  worker?: Worker;
  ready: boolean;
  startedAt: number;
  failures: number;
  restart?: NodeJS.Timeout;
}

export class DnsWorkers {
  private readonly slots: Slot[];
  private readonly log: Logger;
  /** Set once every first worker answered: from then on a worker that exits is replaced. */
  private serving = false;
  private stopping: Promise<void> | undefined;

  constructor(private readonly options: DnsWorkersOptions) {
    if (!cluster.isPrimary) throw new DnsWorkersError("DNS workers can only be started by a primary process");
    this.log = options.logger;
    this.slots = Array.from({ length: options.workers }, () => ({ ready: false, startedAt: 0, failures: 0 }));
  }

  /**
   * Forks every worker and resolves once all answer; rejects, with all
   * stopped, if one cannot start or `signal` aborts first.
   */
  async start(signal?: AbortSignal): Promise<void> {
    const started = this.slots.map((_, i) => this.fork(i));
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

  /** True while every worker answers. */
  ready(): boolean {
    return this.slots.every((s) => s.ready);
  }

  /** Stops every worker (SIGTERM, then SIGKILL after the stop timeout) and replaces none. */
  stop(): Promise<void> {
    this.stopping ??= this.stopAll();
    return this.stopping;
  }

  private async stopAll(): Promise<void> {
    const exits: Promise<void>[] = [];
    for (const slot of this.slots) {
      clearTimeout(slot.restart);
      const worker = slot.worker;
      if (!worker || worker.isDead()) continue;
      exits.push(
        new Promise<void>((resolve) => {
          const kill = setTimeout(() => worker.process.kill("SIGKILL"), STOP_TIMEOUT_MS);
          worker.once("exit", () => {
            clearTimeout(kill);
            resolve();
          });
          worker.process.kill("SIGTERM");
        }),
      );
    }
    await Promise.all(exits);
  }

  /** Starts slot `index`'s worker; resolves when it answers, rejects if it exits or hangs first. */
  private fork(index: number): Promise<void> {
    const slot = this.slots[index]!;
    const config = { ...this.options.config, probes: this.options.config.probes && index === 0 };
    // The workers run this same program (argv[1], `skein`) as `skein dns`.
    cluster.setupPrimary({ args: ["dns", ...dnsArgv(config)] });
    const worker = cluster.fork();
    Object.assign(slot, { worker, ready: false, startedAt: Date.now() });
    return new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => {
        reject(
          new DnsWorkersError(`DNS worker ${index} did not start within ${START_TIMEOUT_MS} ms; see its log`),
        );
        worker.process.kill("SIGKILL");
      }, START_TIMEOUT_MS);
      worker.on("message", (message: unknown) => {
        if ((message as typeof WORKER_READY)?.skeinDns !== WORKER_READY.skeinDns) return;
        slot.ready = true;
        clearTimeout(timer);
        resolve();
      });
      worker.once("exit", (code, signal) => {
        clearTimeout(timer);
        slot.ready = false;
        slot.worker = undefined;
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
      this.fork(index).catch((err: unknown) =>
        this.log.error({ worker: index, err: describeError(err) }, "a replacement DNS worker did not start"),
      );
    }, delayMs);
  }
}

/**
 * One /metrics for a process with metrics of its own that may have forked DNS
 * workers: theirs are added, summed across workers. Workers that cannot
 * answer (one still loading) cost the scrape their part only.
 */
export function withWorkerMetrics(own: Registry, log: Logger): Pick<Registry, "metrics" | "contentType"> {
  const aggregator = new AggregatorRegistry<typeof AggregatorRegistry.PROMETHEUS_CONTENT_TYPE>();
  return {
    contentType: own.contentType,
    async metrics() {
      const mine = await own.metrics();
      if (Object.keys(cluster.workers ?? {}).length === 0) return mine;
      const theirs = await aggregator.clusterMetrics().catch((err: unknown) => {
        log.warn({ err: describeError(err) }, "DNS workers' metrics unavailable for this scrape");
        return "";
      });
      return theirs ? `${mine}\n${theirs}` : mine;
    },
  };
}
