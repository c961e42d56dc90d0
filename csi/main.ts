/**
 * Entry points `skein csi-controller` and `skein csi-node`: parse flags
 * (driver.ts), start the parts in order, serve until SIGTERM/SIGINT, then stop
 * in reverse (the socket first, so no new call arrives while the rest winds
 * down). Exit codes: 0 after a clean stop, 2 for a usage error, 1 otherwise.
 */
import { join } from "node:path";
import { describeError, InvalidInputError } from "../kit/errors.ts";
import { loadKubeConfig } from "../kit/k8s/kubeconfig.ts";
import { exitCodeFor, handleTermination } from "../kit/lifecycle.ts";
import { createLogger, type Logger } from "../kit/log.ts";
import { ProbeServer } from "../kit/serve.ts";
import { VolumeAgent } from "./agent/agent.ts";
import { ControllerServer } from "./controller.ts";
import {
  CONTROLLER_HELP,
  type CommonConfig,
  NODE_HELP,
  parseControllerFlags,
  parseNodeFlags,
} from "./driver.ts";
import { CsiServer } from "./grpc/server.ts";
import { identityService } from "./identity.ts";
import { NodeServer } from "./node.ts";
import { SkeinApi } from "./skein-api.ts";
import { loadTransferTls } from "./transfer/credentials.ts";
import { TransferServer } from "./transfer/server.ts";
import { OperationLocks } from "./wait.ts";
import { Zfs } from "./zfs/runner.ts";

type Stop = () => Promise<void>;

async function serve(
  name: string,
  log: Logger,
  config: CommonConfig,
  start: (stops: Stop[]) => Promise<void>,
): Promise<number> {
  let forced: number | undefined;
  const termination = handleTermination({
    logger: log,
    onForce: (signal) => {
      forced = exitCodeFor(signal);
      process.exit(forced);
    },
  });
  const stops: Stop[] = [];
  try {
    await start(stops);
    if (config.metricsAddress) {
      const probes = new ProbeServer({ ...config.metricsAddress, logger: log });
      await probes.start();
      stops.push(() => probes.stop());
    }
    log.info({ endpoint: config.endpoint }, `${name} is serving`);
    await new Promise<void>((resolve) =>
      termination.signal.addEventListener("abort", () => resolve(), { once: true }),
    );
    return 0;
  } catch (err) {
    log.error({ err: describeError(err) }, `${name} failed`);
    return 1;
  } finally {
    for (const stop of stops.reverse()) {
      await stop().catch((err: unknown) => log.warn({ err: describeError(err) }, "error while stopping"));
    }
    termination.dispose();
  }
}

function usageError(err: unknown, help: string): number {
  if (!(err instanceof InvalidInputError)) throw err;
  console.error(`${err.message}\n\n${help}`);
  return 2;
}

export async function controllerMain(argv: string[]): Promise<number> {
  let parsed: ReturnType<typeof parseControllerFlags>;
  try {
    parsed = parseControllerFlags(argv);
  } catch (err) {
    return usageError(err, CONTROLLER_HELP);
  }
  if (parsed.help) {
    console.log(CONTROLLER_HELP);
    return 0;
  }
  const config = parsed.config;
  const log = createLogger("csi-controller");
  return serve("csi-controller", log, config, async (stops) => {
    const { kubeConfig } = loadKubeConfig({ path: config.kubeconfig });
    const controller = new ControllerServer({
      kubeConfig,
      cluster: config.cluster,
      logger: log,
      waitTimeoutMs: config.waitTimeoutMs,
    });
    await controller.start();
    stops.push(() => controller.stop());
    const server = await CsiServer.start({
      endpoint: config.endpoint,
      logger: log,
      services: { Identity: identityService({ ready: () => true }), Controller: controller.service() },
    });
    stops.push(() => server.stop());
  });
}

export async function nodeMain(argv: string[]): Promise<number> {
  let parsed: ReturnType<typeof parseNodeFlags>;
  try {
    parsed = parseNodeFlags(argv);
  } catch (err) {
    return usageError(err, NODE_HELP);
  }
  if (parsed.help) {
    console.log(NODE_HELP);
    return 0;
  }
  const config = parsed.config;
  const log = createLogger("csi-node").child({ node: config.nodeId });
  return serve("csi-node", log, config, async (stops) => {
    const { kubeConfig } = loadKubeConfig({ path: config.kubeconfig });
    const zfs = await Zfs.detect();
    const locks = new OperationLocks();
    const transfer = config.transfer;
    const tls = transfer
      ? await loadTransferTls(transfer.credentials, { node: config.nodeId, kubeConfig, log })
      : undefined;
    const agent = new VolumeAgent({
      transfer: tls && transfer ? { tls, peerPort: transfer.peerPort } : undefined,
      locks,
      kubeConfig,
      node: config.nodeId,
      pool: config.pool,
      zfs,
      logger: log,
      resyncMs: config.resyncMs,
      replicaSyncMs: config.replicaSyncMs,
      poolReportMs: config.resyncMs,
    });
    await agent.start();
    stops.push(() => agent.stop());
    if (tls && transfer) {
      const endpoint = new TransferServer({
        pool: config.pool,
        zfs,
        tls,
        host: transfer.listen.host,
        port: transfer.listen.port,
        logger: log,
        authorize: (peer, request) => agent.refuseTransfer(peer, request),
        awaitSnapshot: (volume, snapshot, ms) => agent.awaitFinal(volume, snapshot, ms),
        ledgerPath: join(config.stateDir, "sends"),
      });
      await endpoint.start();
      stops.push(() => endpoint.stop());
    }
    const node = new NodeServer({
      node: config.nodeId,
      cluster: config.cluster,
      pool: config.pool,
      zfs,
      api: new SkeinApi(kubeConfig),
      cachedVolume: (name) => agent.volume(name),
      logger: log,
      locks,
      releasedTo: (name) => agent.releasedTo(name),
      onUnpublished: (name) => agent.unpublished(name),
    });
    const server = await CsiServer.start({
      endpoint: config.endpoint,
      logger: log,
      services: { Identity: identityService({ ready: () => true }), Node: node.service() },
    });
    stops.push(() => server.stop());
  });
}
