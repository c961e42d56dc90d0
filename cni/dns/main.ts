/**
 * `skein dns`: the responder on its own, for tests, benchmarks and nodes that
 * want DNS without the rest of the agent (which otherwise hosts it). Stops
 * cleanly on SIGTERM/SIGINT.
 *
 * With --workers N this process becomes the primary of N answering workers
 * (workers.ts), each an ordinary `skein dns`, and serves their metrics as one.
 */
import cluster from "node:cluster";
import { Registry } from "prom-client";
import { describeError, InvalidInputError } from "../../kit/errors.ts";
import { loadKubeConfig } from "../../kit/k8s/kubeconfig.ts";
import { exitCodeFor, handleTermination, type Termination } from "../../kit/lifecycle.ts";
import { createLogger, type Logger } from "../../kit/log.ts";
import { ProbeServer } from "../../kit/serve.ts";
import { type DnsConfig, dnsArgv, parseDnsFlags, USAGE } from "./flags.ts";
import { startDnsService } from "./service.ts";
import { DnsWorkers, reportToSupervisor, withWorkerMetrics } from "./workers.ts";

/** `invocation`: the arguments before the flags that make this program `skein dns` (see supervise). */
export async function main(argv: string[], invocation: readonly string[] = ["dns"]): Promise<number> {
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
    if (config.workers > 1 && cluster.isPrimary) return await supervise(config, invocation, termination, log);
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
  // Workers report through their supervisor's /metrics.
  const probes =
    config.metricsAddress && worker === undefined
      ? new ProbeServer({ ...config.metricsAddress, registry, logger: log })
      : undefined;
  let unlink = () => {};
  try {
    await probes?.start();
    const service = await startDnsService(config, kubeConfig, registry, workerLog);
    unlink = reportToSupervisor(() => registry.getMetricsAsJSON(), workerLog);
    await stopped(termination);
    await service.stop();
    return 0;
  } catch (err) {
    workerLog.error({ err: describeError(err) }, "DNS responder failed");
    return 1;
  } finally {
    unlink();
    await probes?.stop();
    disconnectFromSupervisor();
  }
}

/** The IPC channel to a supervisor would keep this process alive after its work is done. */
function disconnectFromSupervisor(): void {
  if (process.connected) process.disconnect?.();
}

/**
 * Runs the workers and serves their aggregated metrics until a signal.
 * `invocation` is how the workers run `skein dns` with this program
 * (`["dns"]` for `skein`, nothing for `skein-dns`).
 */
async function supervise(
  config: DnsConfig,
  invocation: readonly string[],
  termination: Termination,
  log: Logger,
): Promise<number> {
  const { metricsAddress, workers: count, ...workerConfig } = config;
  const workers = new DnsWorkers({
    workers: count,
    // The workers run this same program (argv[1] under Node; the executable itself under Bun).
    launch: (index) => {
      const probes = workerConfig.probes && index === 0;
      cluster.setupPrimary({ args: [...invocation, ...dnsArgv({ ...workerConfig, probes })] });
      return cluster.fork().process;
    },
    logger: log,
  });
  const probes = metricsAddress
    ? new ProbeServer({
        ...metricsAddress,
        registry: withWorkerMetrics(new Registry(), () => workers),
        logger: log,
      })
    : undefined;
  probes?.addReadinessCheck("workers", () => workers.ready());
  let unlink = () => {};
  try {
    await probes?.start();
    await workers.start(termination.signal);
    unlink = reportToSupervisor(async () => (await workers.metrics())?.getMetricsAsJSON() ?? [], log);
    await stopped(termination);
    await workers.stop();
    return 0;
  } catch (err) {
    // A signal while starting stops the workers, which fails the start for that reason alone.
    if (termination.signal.aborted) return 0;
    log.error({ err: describeError(err) }, "DNS workers failed");
    return 1;
  } finally {
    unlink();
    await probes?.stop();
    disconnectFromSupervisor();
  }
}
