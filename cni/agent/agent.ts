/**
 * The node network agent: watches its Network and that Network's NodeSubnets,
 * and converges the node's overlay (plan.ts decides, kernel.ts acts, install.ts
 * writes the files the plugin and the runtime read).
 *
 * Level-triggered: every informer event, and a periodic resync, only queue the
 * one key this agent has ("overlay"); the worker then plans from the informer
 * caches and the kernel's current state, so a missed event, a restart or a
 * device deleted by hand all end in the same place. Failures retry with
 * per-key backoff. Stopping leaves every device and entry in place: pods that
 * run keep their network while the agent is away.
 */
import { join } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import {
  CustomObjectsApi,
  type KubeConfig,
  type KubernetesListObject,
  type KubernetesObject,
} from "@kubernetes/client-node";
import {
  API_VERSION,
  GROUP,
  KINDS,
  type Network,
  type NodeSubnet,
  VERSION,
} from "../../api/v1alpha1/index.ts";
import { describeError } from "../../kit/errors.ts";
import { Informer, type Selectors } from "../../kit/k8s/informer.ts";
import { ItemExponentialRateLimiter, WorkQueue } from "../../kit/k8s/workqueue.ts";
import type { Logger } from "../../kit/log.ts";
import { LATEST_VERSION } from "../plugin/result.ts";
import type { AgentConfig } from "./flags.ts";
import { buildConflist, CniInstaller, chainVersion, PORTMAP, pluginVersions } from "./install.ts";
import { applyPlan, type Exec, findUnderlay } from "./kernel.ts";
import type { AgentMetrics } from "./metrics.ts";
import { planOverlay } from "./plan.ts";

const KEY = "overlay";

export interface AgentDeps {
  config: AgentConfig;
  kubeConfig: KubeConfig;
  exec: Exec;
  log: Logger;
  metrics: AgentMetrics;
}

function lister<T extends KubernetesObject>(api: CustomObjectsApi, plural: string) {
  return async (selectors: Selectors) =>
    (await api.listClusterCustomObject({
      group: GROUP,
      version: VERSION,
      plural,
      ...selectors,
    })) as KubernetesListObject<T>;
}

export class NetworkAgent {
  private readonly networks: Informer<Network>;
  private readonly subnets: Informer<NodeSubnet>;
  private readonly queue = new WorkQueue({
    rateLimiter: new ItemExponentialRateLimiter({ initialMs: 500, maxMs: 30_000 }),
  });
  private readonly installer: CniInstaller;
  private readonly stopper = new AbortController();
  private worker: Promise<void> | undefined;
  private resync: Promise<void> | undefined;
  private converged = false;
  /** Why the node is not ready, or null when the last reconcile converged. */
  private notReady: string | null = "not reconciled yet";

  constructor(private readonly deps: AgentDeps) {
    const api = deps.kubeConfig.makeApiClient(CustomObjectsApi);
    const { config, log } = deps;
    const base = `/apis/${API_VERSION}`;
    this.networks = new Informer<Network>(deps.kubeConfig, {
      name: "networks",
      path: `${base}/${KINDS.Network.plural}`,
      list: lister<Network>(api, KINDS.Network.plural),
      fieldSelector: `metadata.name=${config.network}`,
      logger: log,
    });
    this.subnets = new Informer<NodeSubnet>(deps.kubeConfig, {
      name: "nodesubnets",
      path: `${base}/${KINDS.NodeSubnet.plural}`,
      list: lister<NodeSubnet>(api, KINDS.NodeSubnet.plural),
      // A selectable field of the CRD: each agent watches its own network only.
      fieldSelector: `spec.network=${config.network}`,
      logger: log,
    });
    this.installer = new CniInstaller({
      settingsFile: config.settingsFile,
      pluginSource: config.pluginSource,
      binDir: config.cniBinDir,
      confDir: config.cniConfDir,
    });
  }

  start(): void {
    const enqueue = () => this.queue.add(KEY);
    for (const informer of [this.networks, this.subnets] as Informer<Network | NodeSubnet>[]) {
      informer.on({ add: enqueue, update: enqueue, delete: enqueue });
      informer.start();
    }
    this.worker = this.work();
    this.resync = this.resyncLoop();
    // An empty list emits no event: reconcile once the caches are filled anyway, to report why not ready.
    Promise.all([
      this.networks.waitForSync(this.stopper.signal),
      this.subnets.waitForSync(this.stopper.signal),
    ]).then(enqueue, () => undefined);
  }

  /** Stops watching and working; devices, entries and files stay as they are. */
  async stop(): Promise<void> {
    this.stopper.abort();
    await Promise.all([this.networks.stop(), this.subnets.stop(), this.queue.shutDown()]);
    await Promise.all([this.worker, this.resync]);
  }

  /** Ready: the overlay matches the API objects and the plugin can be called. */
  readiness(): { ready: boolean; reason: string } {
    return this.notReady === null ? { ready: true, reason: "ok" } : { ready: false, reason: this.notReady };
  }

  /**
   * Which plugins the conflist chains, and the version they all speak. A
   * portmap the runtime cannot find would fail every pod's ADD, so it is left
   * out (hostPorts off, with a warning) until it is installed.
   */
  private async chain(): Promise<{ portmap: boolean; cniVersion: string }> {
    const { config, exec, log } = this.deps;
    if (!config.portmap) return { portmap: false, cniVersion: LATEST_VERSION };
    const portmapPath = join(config.cniBinDir, PORTMAP);
    const versions = await pluginVersions(exec, portmapPath);
    const cniVersion = versions && chainVersion([versions]);
    if (!cniVersion) {
      log.warn(
        { portmapPath, versions },
        versions
          ? "portmap speaks no CNI version skein does; hostPorts are off"
          : "portmap is not installed; hostPorts are off until it is",
      );
      return { portmap: false, cniVersion: LATEST_VERSION };
    }
    return { portmap: true, cniVersion };
  }

  private async work(): Promise<void> {
    for (;;) {
      const key = await this.queue.get();
      if (key === undefined) return;
      const timer = this.deps.metrics.reconcileSeconds.startTimer();
      try {
        await this.reconcile();
        this.queue.forget(key);
        this.deps.metrics.reconciles.inc({ result: "ok" });
      } catch (err) {
        this.notReady = describeError(err);
        this.deps.metrics.errors.inc();
        this.deps.metrics.reconciles.inc({ result: "error" });
        this.deps.log.error(
          { err: describeError(err), retries: this.queue.numRequeues(key) },
          "reconcile failed; retrying",
        );
        this.queue.addRateLimited(key);
      } finally {
        timer();
        this.queue.done(key);
      }
    }
  }

  private async resyncLoop(): Promise<void> {
    const signal = this.stopper.signal;
    while (!signal.aborted) {
      await sleep(this.deps.config.resyncSeconds * 1000, undefined, { signal }).catch(() => undefined);
      if (signal.aborted) return;
      this.deps.metrics.resyncs.inc();
      this.queue.add(KEY);
    }
  }

  /** One pass: plan from the caches, converge the kernel, then write the plugin's files. */
  async reconcile(): Promise<void> {
    const { config, exec, log, metrics } = this.deps;
    if (!this.networks.hasSynced() || !this.subnets.hasSynced()) {
      this.notReady = "waiting for the API server (informer caches not synced)";
      return;
    }
    const network = this.networks.get(config.network);
    if (!network) {
      this.notReady = `Network ${config.network} does not exist`;
      log.warn({ network: config.network }, "the Network does not exist; create it, or pass --network");
      return;
    }
    const subnets = this.subnets.list();
    const own = subnets.find((s) => s.spec.node === config.node);
    if (!own) {
      this.notReady = `no NodeSubnet of Network ${config.network} for node ${config.node} yet`;
      log.info(
        { network: config.network, node: config.node },
        "waiting for the operator to allocate this node's NodeSubnet",
      );
      return;
    }
    const underlay = await findUnderlay(exec, own.spec.vtepAddress, config.underlayInterface);
    const plan = planOverlay({ network, own, subnets, underlay });
    for (const skipped of plan.skippedPeers) log.warn(skipped, "peer NodeSubnet left out of the flood list");

    const { changes, fdbEntries } = await applyPlan(exec, plan);
    for (const change of changes) {
      if (change.reason) log.warn(change, "device was incompatible and has been recreated");
      else log.info(change, "kernel state changed");
      const device = /^(\S+): (re)?created$/.exec(change.what)?.[1];
      if (device && (change.reason || this.converged)) metrics.recreations.inc({ device });
    }
    metrics.changes.inc(changes.length);
    metrics.peers.set(plan.floodList.length);
    metrics.fdbEntries.set(fdbEntries);

    const chain = await this.chain();
    const conflist = buildConflist({
      network: plan.settings.network,
      settingsFile: config.settingsFile,
      dataDir: config.pluginDataDir,
      ...chain,
    });
    const written = await this.installer.install(plan.settings, conflist);
    if (written.length > 0) log.info({ written, ...chain }, "CNI files written");
    if (!this.converged || changes.length > 0) {
      log.info(
        { peers: plan.floodList, mtu: plan.settings.mtu, underlay: underlay.name },
        "node overlay converged",
      );
    }
    this.converged = true;
    this.notReady = null;
  }
}
