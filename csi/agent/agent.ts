/**
 * The node's volume agent. Level-triggered: informer events only enqueue a key
 * (`volume/<name>`, `snapshot/<name>`, `migration/<name>`, `replica/<name>`); workers take keys from one
 * de-duplicating queue (a key is never worked on twice at once), re-read the
 * object from the cache and converge it; failures come back after a per-key
 * backoff; every object is enqueued again on a periodic resync, so nothing
 * depends on an event having been seen and a restarted agent simply converges.
 *
 * It also keeps the node's StoragePool current: on a timer, and shortly after
 * anything changed the pool's free space.
 */
import type { KubeConfig, V1Node } from "@kubernetes/client-node";
import type { Snapshot, Volume, VolumeMigration } from "../../api/v1alpha1/index.ts";
import { describeError } from "../../kit/errors.ts";
import { nodeInformer } from "../../kit/k8s/core-informers.ts";
import type { Informer } from "../../kit/k8s/informer.ts";
import { ItemExponentialRateLimiter, WorkQueue } from "../../kit/k8s/workqueue.ts";
import type { Logger } from "../../kit/log.ts";
import { SkeinApi } from "../skein-api.ts";
import type { Request } from "../transfer/protocol.ts";
import type { TransferTls } from "../transfer/server.ts";
import { OperationLocks } from "../wait.ts";
import { INCOMING_PROPERTIES, incomingRoot, skeinRoot, volumeDataset } from "../zfs/names.ts";
import type { Zfs } from "../zfs/runner.ts";
import {
  type AgentContext,
  migrationKey,
  type Outcome,
  replicaKey,
  snapshotKey,
  volumeKey,
} from "./context.ts";
import { reconcileMigration } from "./migration.ts";
import { refusal, releasedFor } from "./migration-plan.ts";
import { findOrphans, type Orphan, publishPool } from "./pool.ts";
import { reconcileReplica } from "./replica.ts";
import { SnapshotSignals } from "./snapshot-signals.ts";
import { reconcileSnapshot } from "./snapshots.ts";
import { reconcileVolume } from "./volumes.ts";

export interface VolumeAgentOptions {
  kubeConfig: KubeConfig;
  node: string;
  pool: string;
  zfs: Zfs;
  logger: Logger;
  /** Every object is looked at again this often. Default 30 s. */
  resyncMs?: number;
  /** The StoragePool is refreshed at least this often. Default 30 s. */
  poolReportMs?: number;
  /** Each replica on this node pulls the owner's changes this often. Default 30 s. */
  replicaSyncMs?: number;
  workers?: number;
  /** This node's transfer certificate and the cluster's transfer port; without them no volume moves. */
  transfer?: { tls: TransferTls; peerPort: number };
  /** Shared with the Node service (one operation per volume at a time). */
  locks?: OperationLocks;
}

/** Changes to the pool within this window are reported together. */
const POOL_DEBOUNCE_MS = 300;

export class VolumeAgent {
  private readonly ctx: AgentContext;
  // Local work that waits on zfs-fuse being "busy" for seconds: retry soon, and never
  // later than half a minute (client-go's default backoff grows to 16 minutes).
  private readonly queue = new WorkQueue({
    rateLimiter: new ItemExponentialRateLimiter({ initialMs: 100, maxMs: 30_000 }),
  });
  private readonly volumes: Informer<Volume>;
  private readonly snapshots: Informer<Snapshot>;
  private readonly migrations: Informer<VolumeMigration>;
  private readonly nodes: Informer<V1Node>;
  private readonly timers: NodeJS.Timeout[] = [];
  private workers: Promise<void>[] = [];
  private poolTimer: NodeJS.Timeout | undefined;
  private poolReport: Promise<void> = Promise.resolve();
  private stopped = false;

  constructor(private readonly options: VolumeAgentOptions) {
    const log = options.logger;
    const api = new SkeinApi(options.kubeConfig);
    this.volumes = api.informer("Volume", log);
    this.snapshots = api.informer("Snapshot", log);
    this.migrations = api.informer("VolumeMigration", log);
    this.nodes = nodeInformer(options.kubeConfig, { logger: log });
    this.ctx = {
      node: options.node,
      pool: options.pool,
      zfs: options.zfs,
      api,
      log,
      volumes: this.volumes,
      snapshots: this.snapshots,
      migrations: this.migrations,
      nodes: this.nodes,
      transfer: options.transfer,
      locks: options.locks ?? new OperationLocks(),
      fenced: new Set(),
      finals: new SnapshotSignals(),
      lastRound: new Map(),
      replicaSyncMs: options.replicaSyncMs ?? 30_000,
      lastReplicaSync: new Map(),
      now: () => new Date(),
      deleteRequests: new Map(),
      poolChanged: () => this.schedulePoolReport(POOL_DEBOUNCE_MS),
      enqueue: (key) => this.queue.add(key),
    };
  }

  /** Starts watching and converging; resolves once the caches are filled and the pool is published. */
  async start(): Promise<void> {
    const { zfs, pool } = this.options;
    await zfs.poolSpace(pool);
    if (!(await zfs.exists(skeinRoot(pool)))) await zfs.create(skeinRoot(pool), { parents: true });
    if (!(await zfs.exists(incomingRoot(pool))))
      await zfs.create(incomingRoot(pool), { properties: INCOMING_PROPERTIES });
    this.volumes.on({
      add: (v) => this.onVolume(v),
      update: (_, v) => this.onVolume(v),
      delete: (v) => this.onVolume(v),
    });
    this.snapshots.on({
      add: (s) => this.queue.add(snapshotKey(s.metadata.name ?? "")),
      update: (_, s) => this.queue.add(snapshotKey(s.metadata.name ?? "")),
    });
    const byVolume = (m: VolumeMigration) => {
      this.queue.add(migrationKey(m.metadata.name ?? ""));
      // Released or handed back: the volume's properties follow, and a replica here resumes.
      this.queue.add(volumeKey(m.spec.volume));
      this.queue.add(replicaKey(m.spec.volume));
    };
    this.migrations.on({ add: byVolume, update: (_, m) => byVolume(m), delete: byVolume });
    const informers = [this.volumes, this.snapshots, this.migrations, this.nodes];
    for (const i of informers) i.start();
    await Promise.all(informers.map((i) => i.waitForSync()));
    const workers = this.options.workers ?? 4;
    this.workers = Array.from({ length: workers }, () => this.work());
    await this.enqueueCopies();
    this.timers.push(setInterval(() => this.resync(), this.options.resyncMs ?? 30_000));
    this.timers.push(setInterval(() => this.schedulePoolReport(0), this.options.poolReportMs ?? 30_000));
    this.poolReport = this.reportPool();
    await this.poolReport;
  }

  async stop(): Promise<void> {
    this.stopped = true;
    for (const t of this.timers) clearInterval(t);
    if (this.poolTimer) clearTimeout(this.poolTimer);
    await this.queue.shutDown();
    await Promise.all(this.workers);
    await this.poolReport;
    await Promise.all([this.volumes, this.snapshots, this.migrations, this.nodes].map((i) => i.stop()));
  }

  /** Why `peer` may not make this transfer request of this node, or undefined when it may. */
  refuseTransfer(peer: string, request: Request): string | undefined {
    // Once released, a round's snapshot would be newer than the final one the cutover sends.
    if (request.op === "round" && this.releasedTo(request.volume) !== undefined) {
      return `volume ${request.volume} was released for the cutover: pull its final snapshot instead`;
    }
    return refusal(this.migrations.list(), (n) => this.volumes.get(n), this.options.node, peer, request);
  }

  /**
   * The GUID of `volume@snapshot` once it is a final snapshot this node
   * released the volume with (at once if it is, else when the release is
   * recorded, within `ms`), else undefined: only then may the transfer
   * endpoint send it to a waiting target. A final snapshot a killed agent left
   * before recording its release is never it.
   */
  async awaitFinal(volume: string, snapshot: string, ms: number): Promise<string | undefined> {
    const full = `${volumeDataset(this.options.pool, volume)}@${snapshot}`;
    const recorded = releasedFor(this.migrations.list(), volume, this.options.node)?.status?.finalSnapshot;
    // Recorded by this node before a restart: the snapshot is the one, its GUID on disk.
    if (recorded === snapshot && !this.ctx.finals.has(full))
      return (await this.options.zfs.properties(full, ["guid"])).get("guid")?.value;
    return this.ctx.finals.wait(full, ms);
  }

  /** The node this volume is being handed to, when this node has released it for a cutover. */
  releasedTo(volume: string): string | undefined {
    if (this.ctx.fenced.has(volume)) {
      return (
        releasedFor(this.migrations.list(), volume, this.options.node)?.spec.targetNode ?? "another node"
      );
    }
    return releasedFor(this.migrations.list(), volume, this.options.node)?.spec.targetNode;
  }

  /** A pod stopped using the volume here: a migration waiting for that can release it now. */
  unpublished(volume: string): void {
    for (const m of this.migrations.list())
      if (m.spec.volume === volume) this.queue.add(migrationKey(m.metadata.name ?? ""));
  }

  /** The cached Volume, for the node service (which mounts only what this node owns). */
  volume(name: string): Volume | undefined {
    return this.volumes.get(name);
  }

  /** Datasets on this node's pool that Skein tagged and no Volume owns. */
  async orphans(): Promise<Orphan[]> {
    const datasets = await this.options.zfs.managedDatasets(this.options.pool);
    const volumes = new Map(this.volumes.list().map((v) => [v.metadata.name ?? "", v]));
    return findOrphans(datasets, volumes);
  }

  private onVolume(volume: Volume): void {
    const name = volume.metadata.name ?? "";
    this.queue.add(volumeKey(name));
    this.queue.add(replicaKey(name));
    // Clones wait for their source, and snapshots for their volume: wake them.
    for (const s of this.snapshots.list())
      if (s.spec.volume === name) this.queue.add(snapshotKey(s.metadata.name ?? ""));
    // Ownership moved or the new owner reported: the migration's sides act on it.
    for (const m of this.migrations.list())
      if (m.spec.volume === name) this.queue.add(migrationKey(m.metadata.name ?? ""));
  }

  /** Copies under the incoming root, whatever their Volume: each one's replica key decides whether it stays. */
  private async enqueueCopies(): Promise<void> {
    const root = incomingRoot(this.options.pool);
    try {
      for (const { name } of await this.options.zfs.list([root], { types: ["filesystem"], depth: 1 }))
        if (name !== root) this.queue.add(replicaKey(name.slice(root.length + 1)));
    } catch (err) {
      this.ctx.log.warn(
        { err: describeError(err) },
        "could not list the incoming copies; next resync tries again",
      );
    }
  }

  private resync(): void {
    void this.enqueueCopies();
    for (const v of this.volumes.list()) {
      if (v.spec.ownerNode === this.options.node) this.queue.add(volumeKey(v.metadata.name ?? ""));
      if (v.status?.replicas?.length) this.queue.add(replicaKey(v.metadata.name ?? ""));
    }
    for (const s of this.snapshots.list()) this.queue.add(snapshotKey(s.metadata.name ?? ""));
    for (const m of this.migrations.list()) this.queue.add(migrationKey(m.metadata.name ?? ""));
  }

  private async work(): Promise<void> {
    for (;;) {
      const key = await this.queue.get();
      if (key === undefined) return;
      try {
        const outcome = await this.reconcile(key);
        this.queue.forget(key);
        if (outcome.requeueAfterMs !== undefined) this.queue.addAfter(key, outcome.requeueAfterMs);
      } catch (err) {
        this.ctx.log.debug({ key, err: describeError(err) }, "reconcile failed; retrying with backoff");
        this.queue.addRateLimited(key);
      } finally {
        this.queue.done(key);
      }
    }
  }

  private reconcile(key: string): Promise<Outcome> {
    const slash = key.indexOf("/");
    const kind = key.slice(0, slash);
    const name = key.slice(slash + 1);
    if (kind === "volume") return reconcileVolume(this.ctx, name);
    if (kind === "migration") return reconcileMigration(this.ctx, name);
    if (kind === "replica") return reconcileReplica(this.ctx, name);
    return reconcileSnapshot(this.ctx, name);
  }

  private schedulePoolReport(delayMs: number): void {
    if (this.stopped || this.poolTimer) return;
    this.poolTimer = setTimeout(() => {
      this.poolTimer = undefined;
      this.poolReport = this.poolReport.then(() => this.reportPool());
    }, delayMs);
  }

  private async reportPool(): Promise<void> {
    try {
      await publishPool(this.ctx, await this.orphans());
    } catch (err) {
      this.ctx.log.warn({ err: describeError(err) }, "could not publish the StoragePool; retrying");
      this.schedulePoolReport(5_000);
    }
  }
}
