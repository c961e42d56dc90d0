/**
 * `skein dns`: the responder on its own, for tests, benchmarks and nodes that
 * want DNS without the rest of the agent. Builds the informers, the record
 * source, the responder and (with a node name) the health reporter; serves
 * once the pod and node caches have filled; stops cleanly on SIGTERM/SIGINT.
 */
import { readFileSync } from "node:fs";
import { createServer } from "node:http";
import {
  CoreV1Api,
  CustomObjectsApi,
  type KubeConfig,
  type V1Node,
  type V1Pod,
} from "@kubernetes/client-node";
import { Registry } from "prom-client";
import { GROUP, KINDS, type Network, type SkeinList, VERSION } from "../../api/v1alpha1/index.ts";
import { describeError, InvalidInputError } from "../../kit/errors.ts";
import { Informer } from "../../kit/k8s/informer.ts";
import { loadKubeConfig } from "../../kit/k8s/kubeconfig.ts";
import { createLogger } from "../../kit/log.ts";
import { type DnsConfig, parseDnsFlags, USAGE } from "./flags.ts";
import { HealthReporter } from "./health.ts";
import { PodRecords } from "./pod-records.ts";
import { DnsResponder } from "./responder.ts";
import { resolvConfServers, type Upstream } from "./upstream.ts";

const log = createLogger("dns");

/** How long start waits for the Network before serving with defaults (its CRD may be missing). */
const NETWORK_WAIT_MS = 3_000;

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
  const { kubeConfig } = loadKubeConfig(config.kubeconfig ? { path: config.kubeconfig } : {});
  const stopSignal = new Promise<NodeJS.Signals>((resolve) => {
    process.once("SIGTERM", () => resolve("SIGTERM"));
    process.once("SIGINT", () => resolve("SIGINT"));
  });
  const service = await startService(config, kubeConfig);
  const signal = await stopSignal;
  log.info({ signal }, "stopping");
  await service.stop();
  return 0;
}

function defaultUpstreams(path: string): Upstream[] {
  try {
    return resolvConfServers(readFileSync(path, "utf8"));
  } catch (err) {
    log.warn(
      { path, err: describeError(err) },
      "cannot read resolv.conf; names outside the domain get REFUSED",
    );
    return [];
  }
}

async function startService(config: DnsConfig, kubeConfig: KubeConfig): Promise<{ stop(): Promise<void> }> {
  const core = kubeConfig.makeApiClient(CoreV1Api);
  const custom = kubeConfig.makeApiClient(CustomObjectsApi);
  const pods = new Informer<V1Pod>(kubeConfig, {
    name: "pods",
    path: "/api/v1/pods",
    list: (s) => core.listPodForAllNamespaces(s),
    logger: log,
  });
  const nodes = new Informer<V1Node>(kubeConfig, {
    name: "nodes",
    path: "/api/v1/nodes",
    list: (s) => core.listNode(s),
    logger: log,
  });
  const plural = KINDS.Network.plural;
  const networks = new Informer<Network>(kubeConfig, {
    name: "networks",
    path: `/apis/${GROUP}/${VERSION}/${plural}`,
    list: async (s) =>
      (await custom.listClusterCustomObject({
        group: GROUP,
        version: VERSION,
        plural,
        ...s,
      })) as SkeinList<Network>,
    fieldSelector: `metadata.name=${config.network}`,
    logger: log,
  });
  const overrides: ConstructorParameters<typeof PodRecords>[0]["overrides"] = {};
  if (config.domain !== undefined) overrides.domain = config.domain;
  if (config.ttlSeconds !== undefined) overrides.ttlSeconds = config.ttlSeconds;
  if (config.upstreams) overrides.upstreams = config.upstreams;
  if (config.cidr) overrides.cidr = config.cidr;
  const records = new PodRecords({
    pods,
    nodes,
    networks,
    networkName: config.network,
    defaults: { upstreams: defaultUpstreams(config.resolvConf) },
    overrides,
    logger: log,
  });
  const registry = new Registry();
  const responder = new DnsResponder({
    listen: config.listen,
    zone: records,
    upstreams: () => records.upstreams(),
    allowedCidrs: () => [...records.allowedCidrs(), ...config.allow],
    allowAnyClient: config.allowAnyClient,
    registry,
    logger: log,
    upstreamTimeoutMs: config.upstreamTimeoutMs,
  });
  const health =
    config.probes && config.node
      ? new HealthReporter({ node: config.node, pods, kubeConfig, logger: log })
      : undefined;

  const stopInformers = () => Promise.all([pods.stop(), nodes.stop(), networks.stop()]);
  pods.start();
  nodes.start();
  networks.start();
  try {
    await Promise.all([pods.waitForSync(), nodes.waitForSync()]);
    await Promise.race([networks.waitForSync(), new Promise((r) => setTimeout(r, NETWORK_WAIT_MS).unref())]);
    if (!networks.hasSynced())
      log.warn({ network: config.network }, "Network not readable yet; serving with defaults");
    await responder.start();
  } catch (err) {
    await stopInformers();
    throw err;
  }
  health?.start();
  const metricsServer = config.metricsAddress
    ? createServer((req, res) => {
        if (req.url !== "/metrics") {
          res.writeHead(404).end();
          return;
        }
        registry.metrics().then(
          (text) => res.writeHead(200, { "content-type": registry.contentType }).end(text),
          (err: unknown) => res.writeHead(500).end(describeError(err)),
        );
      }).listen(config.metricsAddress.port, config.metricsAddress.host)
    : undefined;
  log.info(
    { domain: records.domain, listen: responder.addresses(), node: config.node },
    "DNS responder ready",
  );
  return {
    async stop() {
      health?.stop();
      metricsServer?.close();
      await responder.stop();
      await stopInformers();
    },
  };
}
