/**
 * `skein dns`: the responder on its own, for tests, benchmarks and nodes that
 * want DNS without the rest of the agent (which otherwise hosts it). Stops
 * cleanly on SIGTERM/SIGINT.
 *
 * With --workers N the process forks N workers that bind the same addresses
 * (node:cluster shares one UDP socket among them, and spreads TCP
 * connections), so answering uses every core: Node's per-datagram cost, not
 * Skein's, bounds what one process can answer. Each worker keeps its own
 * record caches; only the first probes pods, so health is reported once.
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
    const service = await startDnsService(
      { ...config, probes: config.probes && (worker === undefined || worker === 1) },
      kubeConfig,
      registry,
      workerLog,
    );
    if (worker !== undefined) process.send?.({ skeinDns: "ready" });
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

/** Forks the workers, serves their aggregated metrics, and stops them on a signal. */
async function supervise(config: DnsConfig, termination: Termination, log: Logger): Promise<number> {
  const aggregator = new AggregatorRegistry<typeof Registry.PROMETHEUS_CONTENT_TYPE>();
  const probes = config.metricsAddress
    ? new ProbeServer({
        ...config.metricsAddress,
        registry: { metrics: () => aggregator.clusterMetrics(), contentType: aggregator.contentType },
        logger: log,
      })
    : undefined;
  let ready = 0;
  probes?.addReadinessCheck("workers", () => ready === config.workers);
  await probes?.start();
  const exits: Promise<number>[] = [];
  for (let i = 0; i < config.workers; i++) {
    const worker = cluster.fork();
    worker.on("message", (m: { skeinDns?: string }) => {
      if (m?.skeinDns === "ready") ready += 1;
    });
    exits.push(new Promise((resolve) => worker.once("exit", (code) => resolve(code ?? 1))));
  }
  const firstExit = Promise.race(exits).then((code) => ({ code }));
  const outcome = await Promise.race([stopped(termination).then(() => undefined), firstExit]);
  if (outcome) log.error({ code: outcome.code }, "a DNS worker exited; stopping the others");
  for (const w of Object.values(cluster.workers ?? {})) w?.process.kill("SIGTERM");
  const codes = await Promise.all(exits);
  await probes?.stop();
  return outcome ? 1 : Math.max(0, ...codes);
}
