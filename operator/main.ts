/**
 * `skein operator`: the cluster-wide brain. Every replica keeps warm caches;
 * only the holder of the `skein-operator` Lease runs the controllers, so two
 * replicas never act at once (and every write is compare-and-swap besides).
 */
import { hostname } from "node:os";
import { parseArgs } from "node:util";
import { collectDefaultMetrics, Registry } from "prom-client";
import { skeinInformer } from "../api/v1alpha1/informers.ts";
import { describeError } from "../kit/errors.ts";
import { Controller } from "../kit/k8s/controller.ts";
import { nodeInformer } from "../kit/k8s/core-informers.ts";
import { EventRecorder } from "../kit/k8s/events.ts";
import { loadKubeConfig } from "../kit/k8s/kubeconfig.ts";
import { LeaderElector } from "../kit/k8s/leader-election.ts";
import { exitCodeFor, handleTermination } from "../kit/lifecycle.ts";
import { createLogger } from "../kit/log.ts";
import { ProbeServer, parseListenAddress } from "../kit/serve.ts";
import { MigrationReconciler } from "./migration/reconciler.ts";
import { NetworkReconciler } from "./network/reconciler.ts";
import { NodeGcReconciler } from "./nodegc/reconciler.ts";
import { ReplicationReconciler } from "./replication/reconciler.ts";
import { TransferPkiReconciler } from "./transfer-pki/reconciler.ts";

const HELP = `usage: skein operator [flags]

Watches the skein.io API and converges the cluster: allocates every node's
address block of each Network (NodeSubnets), drives VolumeMigrations (moving a
Volume's ownership once its data is on the target), issues every node's
transfer certificate from the cluster's transfer CA (Secrets in --namespace),
places Volumes' warm replicas and fails a volume over to its freshest replica
when its owner node is lost and the volume asks for autoFailover, and cleans up
after deleted nodes (their StoragePools).

flags:
  --kubeconfig PATH        kubeconfig (default: $KUBECONFIG, in-cluster, ~/.kube/config)
  --namespace NAME         namespace of the leader Lease (Events about cluster-scoped
                           objects go to "default", where kubectl describe finds them)
                           (default: $POD_NAMESPACE, else skein-system)
  --id NAME                this replica's identity in the Lease (default: $POD_NAME, else host-pid)
  --metrics-address ADDR   /metrics, /healthz, /readyz listen address (default :8080)
  --leader-elect BOOL      elect a leader among replicas (default true)
  --lease-duration SECS    how long a Lease holds without renewal (default 15)
  --renew-deadline SECS    the leader steps down when it cannot renew for this long (default 10)
  --retry-period SECS      pause between election attempts (default 2)
  --workers N              concurrent reconciles per controller (default 2)
  --cutover-timeout SECS   a migration whose target is not ready this long after the source
                           released the volume is rolled back (default 60)
  --help                   this text`;

export async function main(argv: string[]): Promise<number> {
  const { values } = parseArgs({
    args: argv,
    options: {
      kubeconfig: { type: "string" },
      namespace: { type: "string", default: process.env.POD_NAMESPACE ?? "skein-system" },
      id: { type: "string", default: process.env.POD_NAME ?? `${hostname()}-${process.pid}` },
      "metrics-address": { type: "string", default: ":8080" },
      "leader-elect": { type: "string", default: "true" },
      "lease-duration": { type: "string", default: "15" },
      "renew-deadline": { type: "string", default: "10" },
      "retry-period": { type: "string", default: "2" },
      workers: { type: "string", default: "2" },
      "cutover-timeout": { type: "string", default: "60" },
      help: { type: "boolean", default: false },
    },
    strict: true,
  });
  if (values.help) {
    console.log(HELP);
    return 0;
  }
  const seconds = (flag: "lease-duration" | "renew-deadline" | "retry-period" | "cutover-timeout") => {
    const n = Number(values[flag]);
    if (!(n > 0))
      throw new Error(`--${flag} must be a positive number of seconds, got ${JSON.stringify(values[flag])}`);
    return n * 1000;
  };
  const workers = Number(values.workers);
  if (!(Number.isInteger(workers) && workers > 0)) throw new Error(`--workers must be a positive integer`);
  if (!["true", "false"].includes(values["leader-elect"]))
    throw new Error("--leader-elect must be true or false");

  const log = createLogger("operator");
  const { kubeConfig, source } = loadKubeConfig({ path: values.kubeconfig });
  log.info({ id: values.id, kubeconfig: source }, "starting");

  const registry = new Registry();
  collectDefaultMetrics({ register: registry });
  const networks = skeinInformer(kubeConfig, "Network", { logger: log });
  const subnets = skeinInformer(kubeConfig, "NodeSubnet", { logger: log });
  const pools = skeinInformer(kubeConfig, "StoragePool", { logger: log });
  const volumes = skeinInformer(kubeConfig, "Volume", { logger: log });
  const snapshots = skeinInformer(kubeConfig, "Snapshot", { logger: log });
  const migrations = skeinInformer(kubeConfig, "VolumeMigration", { logger: log });
  const nodes = nodeInformer(kubeConfig, { logger: log });
  const informers = [networks, subnets, pools, volumes, snapshots, migrations, nodes];
  const events = new EventRecorder({
    kubeConfig,
    reportingController: "skein.io/operator",
    reportingInstance: values.id,
    logger: log,
  });

  const network = new NetworkReconciler({ kubeConfig, networks, nodes, subnets, events, log });
  const networkController = new Controller({
    name: "network",
    reconcile: (key) => network.reconcile(key),
    workers,
    registry,
    logger: log,
  })
    .watch(networks)
    .watch(subnets, NetworkReconciler.keysForSubnet)
    .watch(nodes, () => networks.keys());
  const nodeGc = new NodeGcReconciler({ kubeConfig, nodes, pools, log });
  const nodeGcController = new Controller({
    name: "nodegc",
    reconcile: (key) => nodeGc.reconcile(key),
    workers: 1,
    registry,
    logger: log,
  })
    .watch(nodes)
    .watch(pools, (p) => p.spec.node);
  const replication = new ReplicationReconciler({
    kubeConfig,
    volumes,
    nodes,
    pools,
    migrations,
    events,
    log,
  });
  const replicationController = new Controller({
    name: "replication",
    reconcile: (key) => replication.reconcile(key),
    workers,
    resyncPeriodMs: 30_000,
    registry,
    logger: log,
  })
    .watch(volumes)
    .watch(nodes, replication.keysForCluster)
    .watch(pools, replication.keysForCluster)
    .watch(migrations, (m) => [m.spec.volume]);
  const migration = new MigrationReconciler({
    kubeConfig,
    migrations,
    volumes,
    snapshots,
    nodes,
    events,
    log,
    cutoverTimeoutMs: seconds("cutover-timeout"),
  });
  const migrationController = new Controller({
    name: "migration",
    reconcile: (key) => migration.reconcile(key),
    workers,
    resyncPeriodMs: 30_000,
    registry,
    logger: log,
  })
    .watch(migrations)
    .watch(volumes, migration.keysForVolume);
  const pki = new TransferPkiReconciler({ kubeConfig, namespace: values.namespace, nodes, log });
  const pkiController = new Controller({
    name: "transfer-pki",
    reconcile: (key) => pki.reconcile(key),
    workers: 1,
    registry,
    logger: log,
  }).watch(nodes);
  const controllers = [
    networkController,
    nodeGcController,
    replicationController,
    migrationController,
    pkiController,
  ];

  const { host, port } = parseListenAddress(values["metrics-address"]);
  const probes = new ProbeServer({ host, port, registry, logger: log }).addReadinessCheck(
    "caches-synced",
    () => informers.every((i) => i.hasSynced()),
  );
  const termination = handleTermination({ logger: log, onForce: (s) => process.exit(exitCodeFor(s)) });
  for (const i of informers) i.start();
  const bound = await probes.start();
  log.info({ address: `${bound.host}:${bound.port}` }, "serving /metrics, /healthz, /readyz");

  const lead = async (signal: AbortSignal) => {
    log.info("leading: running controllers");
    await Promise.all(controllers.map((c) => c.run(signal)));
  };
  let exitCode = 0;
  try {
    if (values["leader-elect"] === "true") {
      const elector = new LeaderElector({
        kubeConfig,
        namespace: values.namespace,
        name: "skein-operator",
        identity: values.id,
        leaseDurationMs: seconds("lease-duration"),
        renewDeadlineMs: seconds("renew-deadline"),
        retryPeriodMs: seconds("retry-period"),
        onStartedLeading: lead,
        registry,
        logger: log,
      });
      await elector.run(termination.signal);
      // Leadership lost without a shutdown: exit so a restart campaigns afresh with clean state.
      if (!termination.signal.aborted) exitCode = 1;
    } else {
      await lead(termination.signal);
    }
  } catch (err) {
    log.error({ err: describeError(err) }, "operator failed");
    exitCode = 1;
  } finally {
    await Promise.all(informers.map((i) => i.stop()));
    await events.flush();
    await probes.stop();
    termination.dispose();
  }
  log.info({ exitCode }, "stopped");
  return exitCode;
}
