/**
 * The node's DNS service as one unit: informers on pods, nodes and the
 * Network, the record source, the responder and (with a node name) the health
 * reporter. The network agent hosts it on the node's gateway address; `skein
 * dns` runs it alone. It serves once the pod and node caches have filled.
 */
import { readFileSync } from "node:fs";
import type { KubeConfig } from "@kubernetes/client-node";
import type { Registry } from "prom-client";
import { skeinInformer } from "../../api/v1alpha1/informers.ts";
import { describeError } from "../../kit/errors.ts";
import { nodeInformer, podInformer } from "../../kit/k8s/core-informers.ts";
import type { Logger } from "../../kit/log.ts";
import type { DnsConfig } from "./flags.ts";
import { HealthReporter } from "./health.ts";
import { PodRecords } from "./pod-records.ts";
import { DnsResponder, type ListenAddress } from "./responder.ts";
import { resolvConfServers, type Upstream } from "./upstream.ts";

/** How long start waits for the Network before serving with defaults (its CRD may be missing). */
const NETWORK_WAIT_MS = 3_000;

export type DnsServiceConfig = Omit<DnsConfig, "kubeconfig" | "metricsAddress" | "workers">;

export interface DnsService {
  addresses(): ListenAddress[];
  stop(): Promise<void>;
}

function defaultUpstreams(path: string, log: Logger): Upstream[] {
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

export async function startDnsService(
  config: DnsServiceConfig,
  kubeConfig: KubeConfig,
  registry: Registry,
  log: Logger,
): Promise<DnsService> {
  const pods = podInformer(kubeConfig, { logger: log });
  const nodes = nodeInformer(kubeConfig, { logger: log });
  const networks = skeinInformer(kubeConfig, "Network", {
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
    defaults: { upstreams: defaultUpstreams(config.resolvConf, log) },
    overrides,
    logger: log,
  });
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
  log.info(
    { domain: records.domain, listen: responder.addresses(), node: config.node },
    "DNS responder ready",
  );
  return {
    addresses: () => responder.addresses(),
    async stop() {
      health?.stop();
      await responder.stop();
      await stopInformers();
    },
  };
}
