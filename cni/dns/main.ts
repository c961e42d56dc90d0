/**
 * `skein dns`: the responder on its own, for tests, benchmarks and nodes that
 * want DNS without the rest of the agent (which otherwise hosts it). Stops
 * cleanly on SIGTERM/SIGINT.
 */
import { Registry } from "prom-client";
import { describeError, InvalidInputError } from "../../kit/errors.ts";
import { loadKubeConfig } from "../../kit/k8s/kubeconfig.ts";
import { exitCodeFor, handleTermination } from "../../kit/lifecycle.ts";
import { createLogger } from "../../kit/log.ts";
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
  const { kubeConfig } = loadKubeConfig(config.kubeconfig ? { path: config.kubeconfig } : {});
  const termination = handleTermination({ onForce: (s) => process.exit(exitCodeFor(s)), logger: log });
  const registry = new Registry();
  const probes = config.metricsAddress
    ? new ProbeServer({ ...config.metricsAddress, registry, logger: log })
    : undefined;
  try {
    await probes?.start();
    const service = await startDnsService(config, kubeConfig, registry, log);
    if (!termination.signal.aborted) {
      await new Promise((done) => termination.signal.addEventListener("abort", done, { once: true }));
    }
    await service.stop();
    return 0;
  } catch (err) {
    log.error({ err: describeError(err) }, "DNS responder failed");
    return 1;
  } finally {
    await probes?.stop();
    termination.dispose();
  }
}
