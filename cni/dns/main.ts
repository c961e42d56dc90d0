/**
 * `skein dns`: the responder on its own, for tests, benchmarks and nodes that
 * want DNS without the rest of the agent (which otherwise hosts it). Stops
 * cleanly on SIGTERM/SIGINT.
 *
 * With --workers N this process becomes the primary of N answering workers
 * (workers.ts), each an ordinary `skein dns`, and serves their metrics as one.
 */
import cluster from "node:cluster";
import { AggregatorRegistry, Registry } from "prom-client";
import { describeError, InvalidInputError } from "../../kit/errors.ts";
import { loadKubeConfig } from "../../kit/k8s/kubeconfig.ts";
import { exitCodeFor, handleTermination, type Termination } from "../../kit/lifecycle.ts";
import { createLogger, type Logger } from "../../kit/log.ts";
import { ProbeServer } from "../../kit/serve.ts";
import { type DnsConfig, parseDnsFlags, USAGE } from "./flags.ts";
import { startDnsService } from "./service.ts";
import { DnsWorkers, WORKER_READY, withWorkerMetrics } from "./workers.ts";

export async function main(argv: string[]): Promise<number> {
  let config: DnsConfig | "help";
  try {
    config = parseDnsFlags(argv, process.env);
  } catch (err) {
    if (err instanceof InvalidInputError) {
      console.error(`skein dns: ${err.message}`);
      return 2;
    }
    throw err;
  }
  if (config === "help") {
    console.log(USAGE);
    return 0;
  }
  const log = createLogger("dns");
  const termination = handleTermination({ onForce: (s) => process.exit(exitCodeFor(s)), logger: log });
  try {
    if (config.workers > 1 && cluster.isPrimary) return await supervise(config, termination, log);
    return await serve(config, termination, log);
  } finally {
    termination.dispose();
  }
}

function stopped(termination: Termination): Promise<unknown> {
  if (termination.signal.aborted) return Promise.resolve();
  return new Promise((done) => termination.signal.addEventListener("abort", done, { once: true }));
}

/** One answering process: the whole service, or one of the workers. */
async function serve(config: DnsConfig, termination: Termination, log: Logger): Promise<number> {
  const worker = cluster.isWorker ? cluster.worker?.id : undefined;
  const workerLog = worker === undefined ? log : log.child({ worker });
  const { kubeConfig } = loadKubeConfig(config.kubeconfig ? { path: config.kubeconfig } : {});
  const registry = new Registry();
  // Workers report through the primary's aggregated /metrics.
  if (worker !== undefined) {
    // prom-client answers the primary's metrics requests only once an
    // AggregatorRegistry exists in the worker; its constructor installs that listener.
    new AggregatorRegistry();
    AggregatorRegistry.setRegistries(registry);
  }
  const probes =
    config.metricsAddress && worker === undefined
      ? new ProbeServer({ ...config.metricsAddress, registry, logger: log })
      : undefined;
  try {
    await probes?.start();
    const service = await startDnsService(config, kubeConfig, registry, workerLog);
    if (worker !== undefined) process.send?.(WORKER_READY);
    await stopped(termination);
    await service.stop();
    return 0;
  } catch (err) {
    workerLog.error({ err: describeError(err) }, "DNS responder failed");
    return 1;
  } finally {
    await probes?.stop();
    // The IPC channel to the primary would keep a worker alive after its work is done.
    cluster.worker?.disconnect();
  }
}

/** Runs the workers and serves their aggregated metrics until a signal. */
async function supervise(config: DnsConfig, termination: Termination, log: Logger): Promise<number> {
  const { metricsAddress, workers: count, ...workerConfig } = config;
  const workers = new DnsWorkers({ config: workerConfig, workers: count, logger: log });
  const probes = metricsAddress
    ? new ProbeServer({ ...metricsAddress, registry: withWorkerMetrics(new Registry(), log), logger: log })
    : undefined;
  probes?.addReadinessCheck("workers", () => workers.ready());
  try {
    await probes?.start();
    await workers.start(termination.signal);
    await stopped(termination);
    await workers.stop();
    return 0;
  } catch (err) {
    // A signal while starting stops the workers, which fails the start for that reason alone.
    if (termination.signal.aborted) return 0;
    log.error({ err: describeError(err) }, "DNS workers failed");
    return 1;
  } finally {
    await probes?.stop();
  }
}
