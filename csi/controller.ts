/**
 * The CSI Controller service. It never touches ZFS: it writes Volume and
 * Snapshot objects and waits for the owning node's agent to report them, then
 * answers with the gRPC code the agent chose when it failed (TopoLVM's
 * pattern). Reads (List*, GetCapacity) come from informer caches, which the
 * waits keep in step with what earlier calls returned.
 *
 * A create that fails deletes the object it made, so a failed request leaves
 * nothing behind and its retry starts afresh. Secrets in requests are never
 * logged: only names and codes are.
 */
import type { KubeConfig } from "@kubernetes/client-node";
import {
  PUBLISH_MIGRATION_REASON,
  type Snapshot,
  type StoragePool,
  type Volume,
  type VolumeError,
  type VolumeMigration,
} from "../api/v1alpha1/index.ts";
import { InvalidInputError } from "../kit/errors.ts";
import { isConflict, isNotFound } from "../kit/k8s/api-status.ts";
import type { Informer } from "../kit/k8s/informer.ts";
import type { Logger } from "../kit/log.ts";
import { holderOf } from "./agent/context.ts";
import { isTerminal } from "./agent/migration-plan.ts";
import { CsiError } from "./grpc/status.ts";
import type * as csi from "./proto/types.ts";
import {
  capacityFor,
  checkCapabilities,
  chooseOwner,
  clusterTopology,
  fitsRange,
  migrationName,
  objectName,
  page,
  poolsInTopology,
  required,
  unsupportedCapability,
} from "./requests.ts";
import {
  CSI_NAME_ANNOTATION,
  DATASET_FINALIZER,
  DELETE_REQUESTED_ANNOTATION,
  SkeinApi,
  SNAPSHOT_FINALIZER,
} from "./skein-api.ts";
import { ObjectWaiter, OperationLocks } from "./wait.ts";
import { zfsPropertiesFromParameters } from "./zfs/properties.ts";

export interface ControllerOptions {
  kubeConfig: KubeConfig;
  /** The value of the cluster-wide topology key every Skein node reports. */
  cluster: string;
  logger: Logger;
  /** How long a call waits for an agent before answering DEADLINE_EXCEEDED. Default 60 s. */
  waitTimeoutMs?: number;
}

const CAPABILITIES: csi.ControllerRpcType[] = [
  "CREATE_DELETE_VOLUME",
  "PUBLISH_UNPUBLISH_VOLUME",
  "LIST_VOLUMES",
  "GET_CAPACITY",
  "CREATE_DELETE_SNAPSHOT",
  "LIST_SNAPSHOTS",
  "CLONE_VOLUME",
  "EXPAND_VOLUME",
  "GET_VOLUME",
];

type Reply<T> = Promise<csi.Reply<T>>;

export class ControllerServer {
  private readonly api: SkeinApi;
  private readonly volumes: Informer<Volume>;
  private readonly snapshots: Informer<Snapshot>;
  private readonly pools: Informer<StoragePool>;
  private readonly volumeWaiter: ObjectWaiter<Volume>;
  private readonly snapshotWaiter: ObjectWaiter<Snapshot>;
  private readonly locks = new OperationLocks();
  private readonly log: Logger;
  private readonly timeoutMs: number;

  constructor(private readonly options: ControllerOptions) {
    this.api = new SkeinApi(options.kubeConfig);
    this.log = options.logger;
    this.volumes = this.api.informer("Volume", this.log);
    this.snapshots = this.api.informer("Snapshot", this.log);
    this.pools = this.api.informer("StoragePool", this.log);
    this.volumeWaiter = new ObjectWaiter(this.volumes);
    this.snapshotWaiter = new ObjectWaiter(this.snapshots);
    this.timeoutMs = options.waitTimeoutMs ?? 60_000;
  }

  async start(): Promise<void> {
    for (const i of [this.volumes, this.snapshots, this.pools]) i.start();
    await Promise.all([this.volumes.waitForSync(), this.snapshots.waitForSync(), this.pools.waitForSync()]);
  }

  async stop(): Promise<void> {
    await Promise.all([this.volumes.stop(), this.snapshots.stop(), this.pools.stop()]);
  }

  /** The handlers, bound, for the gRPC server; GetSnapshot and ModifyVolume are left UNIMPLEMENTED. */
  service(): Partial<csi.ControllerService> {
    return {
      CreateVolume: (r, c) => this.createVolume(r, c),
      DeleteVolume: (r, c) => this.deleteVolume(r, c),
      ControllerPublishVolume: (r) => this.publish(r),
      ControllerUnpublishVolume: (r) => this.unpublish(r),
      ValidateVolumeCapabilities: (r) => this.validateCapabilities(r),
      ListVolumes: (r) => this.listVolumes(r),
      GetCapacity: (r) => this.getCapacity(r),
      ControllerGetCapabilities: async () => ({
        capabilities: CAPABILITIES.map((type) => ({ rpc: { type } })),
      }),
      CreateSnapshot: (r, c) => this.createSnapshot(r, c),
      DeleteSnapshot: (r, c) => this.deleteSnapshot(r, c),
      ListSnapshots: (r) => this.listSnapshots(r),
      ControllerExpandVolume: (r, c) => this.expandVolume(r, c),
      ControllerGetVolume: (r) => this.getVolume(r),
    };
  }

  // ---- volumes ----

  private async createVolume(
    req: csi.CreateVolumeRequest,
    call: csi.CallContext,
  ): Reply<csi.CreateVolumeResponse> {
    required(req.name, "name");
    checkCapabilities(req.volume_capabilities);
    if (Object.keys(req.mutable_parameters).length > 0) {
      throw new CsiError(
        "INVALID_ARGUMENT",
        "mutable_parameters are not supported (Skein has no MODIFY_VOLUME)",
      );
    }
    const zfsProperties = parameters(req.parameters);
    const capacityBytes = capacityFor(req.capacity_range);
    const name = objectName(req.name);
    return this.locks.run([`volume/${name}`], "CreateVolume", async () => {
      let volume = await this.api.get("Volume", name);
      if (!volume) {
        const source = await this.resolveSource(req.volume_content_source, capacityBytes);
        const ownerNode =
          source?.node ??
          chooseOwner(req.accessibility_requirements, this.pools.list(), this.options.cluster);
        try {
          volume = await this.api.create("Volume", {
            metadata: {
              name,
              annotations: { [CSI_NAME_ANNOTATION]: req.name },
              finalizers: [DATASET_FINALIZER],
            },
            spec: {
              capacityBytes,
              ownerNode,
              ...(Object.keys(zfsProperties).length > 0 ? { zfsProperties } : {}),
              ...(source ? { source: source.spec } : {}),
            },
          });
          this.log.info({ volume: name, ownerNode, capacityBytes }, "CreateVolume: created Volume");
        } catch (err) {
          if (!isConflict(err)) throw err;
          volume = await this.api.get("Volume", name);
          if (!volume)
            throw new CsiError("ABORTED", `volume ${name} changed while it was being created; retry`);
        }
      }
      this.checkSameVolume(volume, req, capacityBytes, zfsProperties);
      if (volume.metadata.deletionTimestamp) {
        throw new CsiError(
          "ABORTED",
          `volume ${name} from an earlier attempt is still being deleted; retry shortly`,
        );
      }
      const ready = await this.waitVolume(name, volume.metadata.generation ?? 1, call, "created");
      if ("failure" in ready) {
        // A failed create leaves nothing behind; the retry starts afresh.
        await this.api.delete("Volume", name);
        throw new CsiError(ready.failure.grpcCode, ready.failure.message);
      }
      return { volume: this.csiVolume(ready.volume) };
    });
  }

  private checkSameVolume(
    volume: Volume,
    req: csi.CreateVolumeRequest,
    capacityBytes: number,
    zfsProperties: Record<string, string>,
  ): void {
    const name = volume.metadata.name;
    const asked = volume.metadata.annotations?.[CSI_NAME_ANNOTATION];
    if (asked !== req.name) {
      throw new CsiError(
        "ALREADY_EXISTS",
        `volume ${name} exists for another name (${asked ?? "not made by CSI"})`,
      );
    }
    const capacity = volume.spec.capacityBytes;
    if (!fitsRange(capacity, req.capacity_range) && capacity !== capacityBytes) {
      throw new CsiError(
        "ALREADY_EXISTS",
        `volume ${req.name} exists with ${capacity} bytes, which this request does not accept`,
      );
    }
    if (JSON.stringify(volume.spec.zfsProperties ?? {}) !== JSON.stringify(zfsProperties)) {
      throw new CsiError("ALREADY_EXISTS", `volume ${req.name} exists with other parameters`);
    }
    const source = req.volume_content_source;
    const wanted = source?.snapshot
      ? { snapshot: source.snapshot.snapshot_id }
      : source?.volume
        ? { volume: source.volume.volume_id }
        : {};
    if (JSON.stringify(volume.spec.source ?? {}) !== JSON.stringify(wanted)) {
      throw new CsiError("ALREADY_EXISTS", `volume ${req.name} exists with another content source`);
    }
  }

  /** Where a clone's data is, and the Volume source for it; clones are made on the source's node. */
  private async resolveSource(
    source: csi.VolumeContentSource | null,
    capacityBytes: number,
  ): Promise<{ node: string; spec: { snapshot?: string; volume?: string } } | undefined> {
    if (source?.snapshot) {
      const id = source.snapshot.snapshot_id;
      const snapshot = id ? await this.api.get("Snapshot", id) : undefined;
      if (!snapshot || snapshot.metadata.deletionTimestamp)
        throw new CsiError("NOT_FOUND", `snapshot ${id} does not exist`);
      if (!snapshot.status?.readyToUse || !snapshot.status.node) {
        throw new CsiError("UNAVAILABLE", `snapshot ${id} is not ready to use yet; retry`);
      }
      const origin = await this.api.get("Volume", snapshot.spec.volume);
      const needed = origin?.status?.capacityBytes ?? snapshot.status.sizeBytes ?? 0;
      if (capacityBytes < needed) {
        throw new CsiError(
          "OUT_OF_RANGE",
          `snapshot ${id} comes from a ${needed}-byte volume; ask for at least that much`,
        );
      }
      return { node: snapshot.status.node, spec: { snapshot: id } };
    }
    if (source?.volume) {
      const id = source.volume.volume_id;
      const volume = id ? await this.api.get("Volume", id) : undefined;
      if (!volume || volume.metadata.deletionTimestamp)
        throw new CsiError("NOT_FOUND", `volume ${id} does not exist`);
      if (volume.status?.phase !== "Ready")
        throw new CsiError("UNAVAILABLE", `volume ${id} is not ready yet; retry`);
      if (capacityBytes < volume.spec.capacityBytes) {
        throw new CsiError(
          "OUT_OF_RANGE",
          `a clone of volume ${id} needs at least its ${volume.spec.capacityBytes} bytes; ask for at least that much`,
        );
      }
      return { node: holderOf(volume), spec: { volume: id } };
    }
    return undefined;
  }

  /** Waits until the agent has looked at `generation`: Ready, or its failure. */
  private waitVolume(
    name: string,
    generation: number,
    call: csi.CallContext,
    what: string,
  ): Promise<{ volume: Volume } | { failure: VolumeError }> {
    return this.volumeWaiter.wait(
      name,
      (v) => {
        // Not in the cache yet: an object this call just wrote is seen a moment later.
        if (!v) return undefined;
        const status = v.status;
        if ((status?.observedGeneration ?? 0) < generation) return undefined;
        if (status?.error) return { failure: status.error };
        return status?.phase === "Ready" ? { volume: v } : undefined;
      },
      { timeoutMs: this.timeoutMs, signal: call.signal, what: `volume ${name} to be ${what} by its node` },
    );
  }

  private csiVolume(volume: Volume): csi.Reply<csi.Volume> {
    const source = volume.spec.source;
    return {
      volume_id: volume.metadata.name ?? "",
      capacity_bytes: volume.status?.capacityBytes ?? volume.spec.capacityBytes,
      accessible_topology: clusterTopology(this.options.cluster),
      content_source: source?.snapshot
        ? { snapshot: { snapshot_id: source.snapshot } }
        : source?.volume
          ? { volume: { volume_id: source.volume } }
          : null,
    };
  }

  private async deleteVolume(
    req: csi.DeleteVolumeRequest,
    call: csi.CallContext,
  ): Reply<csi.DeleteVolumeResponse> {
    const name = required(req.volume_id, "volume_id");
    return this.locks.run([`volume/${name}`], "DeleteVolume", async () => {
      const volume = await this.api.get("Volume", name);
      if (!volume) return {};
      const snapshots = (await this.api.list("Snapshot")).items.filter((s) => s.spec.volume === name);
      if (snapshots.length > 0) {
        const names = snapshots.map((s) => s.metadata.name).join(", ");
        throw new CsiError(
          "FAILED_PRECONDITION",
          `volume ${name} has snapshots (${names}); delete them first`,
        );
      }
      // A retry of a delete that failed (say, the volume was still published) asks the
      // agent to try again now; only what the agent reports after that counts.
      const nudge = volume.metadata.deletionTimestamp ? new Date().toISOString() : undefined;
      let requested: Volume | undefined;
      try {
        requested = nudge
          ? await this.api.patch("Volume", name, {
              metadata: { annotations: { [DELETE_REQUESTED_ANNOTATION]: nudge } },
            })
          : await this.deleteObject(name);
      } catch (err) {
        // The agent finished an earlier attempt just now: deleted is what was asked.
        if (isNotFound(err)) return {};
        throw err;
      }
      const since = requested?.metadata.resourceVersion;
      this.log.info({ volume: name }, "DeleteVolume: deleting Volume");
      await this.volumeWaiter.wait(
        name,
        (v) => {
          if (!v) return true;
          const error = v.status?.error;
          // The cache may still hold versions from before this call: skip them.
          const afterNudge =
            nudge === undefined || v.metadata.annotations?.[DELETE_REQUESTED_ANNOTATION] === nudge;
          const fresh = afterNudge && v.metadata.resourceVersion !== since;
          if (fresh && v.metadata.deletionTimestamp && error && v.status?.phase === "Deleting") {
            throw new CsiError(error.grpcCode, error.message);
          }
          return undefined;
        },
        {
          timeoutMs: this.timeoutMs,
          signal: call.signal,
          what: `volume ${name} to be destroyed by its node`,
        },
      );
      return {};
    });
  }

  /** Deletes the Volume; the object as it is now (held by its finalizer), or undefined once gone. */
  private async deleteObject(name: string): Promise<Volume | undefined> {
    if (!(await this.api.delete("Volume", name))) return undefined;
    return this.api.get("Volume", name);
  }

  private async expandVolume(
    req: csi.ControllerExpandVolumeRequest,
    call: csi.CallContext,
  ): Reply<csi.ControllerExpandVolumeResponse> {
    const name = required(req.volume_id, "volume_id");
    if (!req.capacity_range) throw new CsiError("INVALID_ARGUMENT", "capacity_range is required");
    if (req.volume_capability) {
      const why = unsupportedCapability(req.volume_capability);
      if (why) throw new CsiError("INVALID_ARGUMENT", why);
    }
    const wanted = capacityFor(req.capacity_range);
    return this.locks.run([`volume/${name}`], "ControllerExpandVolume", async () => {
      let volume = await this.api.get("Volume", name);
      if (!volume || volume.metadata.deletionTimestamp)
        throw new CsiError("NOT_FOUND", `volume ${name} does not exist`);
      if (req.capacity_range?.limit_bytes && volume.spec.capacityBytes > req.capacity_range.limit_bytes) {
        throw new CsiError(
          "OUT_OF_RANGE",
          `volume ${name} already has ${volume.spec.capacityBytes} bytes; volumes never shrink`,
        );
      }
      if (wanted > volume.spec.capacityBytes) {
        volume = await this.api.patch("Volume", name, {
          metadata: { resourceVersion: volume.metadata.resourceVersion },
          spec: { capacityBytes: wanted },
        });
        this.log.info({ volume: name, capacityBytes: wanted }, "ControllerExpandVolume: raised capacity");
      }
      const target = volume.spec.capacityBytes;
      const done = await this.volumeWaiter.wait(
        name,
        (v) => {
          if (!v) throw new CsiError("NOT_FOUND", `volume ${name} was deleted`);
          const status = v.status;
          if ((status?.observedGeneration ?? 0) < (volume?.metadata.generation ?? 0)) return undefined;
          if ((status?.capacityBytes ?? 0) >= target) return status?.capacityBytes ?? target;
          if (status?.error) throw new CsiError(status.error.grpcCode, status.error.message);
          return undefined;
        },
        { timeoutMs: this.timeoutMs, signal: call.signal, what: `volume ${name} to grow to ${target} bytes` },
      );
      return { capacity_bytes: done, node_expansion_required: false };
    });
  }

  private async publish(req: csi.ControllerPublishVolumeRequest): Reply<csi.ControllerPublishVolumeResponse> {
    const name = required(req.volume_id, "volume_id");
    const node = required(req.node_id, "node_id");
    if (!req.volume_capability) throw new CsiError("INVALID_ARGUMENT", "volume_capability is required");
    const why = unsupportedCapability(req.volume_capability);
    if (why) throw new CsiError("INVALID_ARGUMENT", why);
    const volume = await this.api.get("Volume", name);
    if (!volume || volume.metadata.deletionTimestamp)
      throw new CsiError("NOT_FOUND", `volume ${name} does not exist`);
    if (!(await this.api.get("StoragePool", node))) {
      throw new CsiError(
        "NOT_FOUND",
        `node ${node} is not a Skein node (it has no StoragePool; is the node plugin running there?)`,
      );
    }
    const holder = holderOf(volume);
    if (holder === node && volume.spec.ownerNode === node) return { publish_context: {} };
    // The data is elsewhere: move it here (Flocker's promise), and say "not yet" until it is.
    const { migration, previousFailure } = await this.moveHere(volume, node);
    const s = migration.status;
    const progress =
      s?.phase === undefined
        ? `waiting for the operator to start it${previousFailure ? `; the last attempt failed: ${previousFailure}` : ""}`
        : `${s.phase}, round ${s.round ?? 0}, ${s.progressPercent ?? 0}% of the current round${s.transferError ? `; last error on ${s.transferError.node}: ${s.transferError.message}` : ""}`;
    throw new CsiError(
      "ABORTED",
      `volume ${name} is moving from node ${holder} to ${node} (VolumeMigration ${migration.metadata.name}: ${progress}); retry until it is there`,
    );
  }

  /**
   * The migration that brings `volume` to `node`, found or created under a name
   * derived from both, so retries of the same publish find the same one. A
   * finished one that did not bring it here (it failed, or the volume moved on
   * since) is replaced: a publish retried after a failure is a new attempt.
   */
  private async moveHere(
    volume: Volume,
    node: string,
  ): Promise<{ migration: VolumeMigration; previousFailure?: string }> {
    const volumeName = volume.metadata.name ?? "";
    const name = migrationName(volumeName, node);
    const existing = await this.api.get("VolumeMigration", name);
    let previousFailure: string | undefined;
    if (existing) {
      const phase = existing.status?.phase;
      const over = phase === "Failed" || phase === "RolledBack" || phase === "Completed";
      if (!over) return { migration: existing };
      // Said in the next answer, so a caller retrying in vain learns why (say, the owner node is lost).
      if (phase !== "Completed")
        previousFailure = existing.status?.conditions?.find((c) => c.type === "Succeeded")?.message ?? phase;
      await this.api.delete("VolumeMigration", name);
      this.log.info(
        { volume: volumeName, node, migration: name, phase },
        "ControllerPublishVolume: replacing a finished migration",
      );
    }
    try {
      const created = await this.api.create("VolumeMigration", {
        metadata: { name },
        spec: { volume: volumeName, targetNode: node, force: false, reason: PUBLISH_MIGRATION_REASON },
      });
      this.log.info(
        { volume: volumeName, node, migration: name },
        "ControllerPublishVolume: started a migration",
      );
      return { migration: created, previousFailure };
    } catch (err) {
      // A concurrent retry created it (or the deleted one is still going): the next retry finds it.
      if (isConflict(err)) throw new CsiError("ABORTED", `migration ${name} is being replaced; retry`);
      throw err;
    }
  }

  private async unpublish(
    req: csi.ControllerUnpublishVolumeRequest,
  ): Reply<csi.ControllerUnpublishVolumeResponse> {
    required(req.volume_id, "volume_id");
    // Publishing records nothing (the data stays where it is), so there is nothing to undo.
    return {};
  }

  private async validateCapabilities(
    req: csi.ValidateVolumeCapabilitiesRequest,
  ): Reply<csi.ValidateVolumeCapabilitiesResponse> {
    const name = required(req.volume_id, "volume_id");
    if (req.volume_capabilities.length === 0)
      throw new CsiError("INVALID_ARGUMENT", "volume_capabilities is required");
    const volume = await this.api.get("Volume", name);
    if (!volume) throw new CsiError("NOT_FOUND", `volume ${name} does not exist`);
    const problems = req.volume_capabilities
      .map(unsupportedCapability)
      .filter((w): w is string => w !== undefined);
    try {
      parameters(req.parameters);
    } catch (err) {
      problems.push((err as Error).message);
    }
    if (problems.length > 0) return { confirmed: null, message: problems.join("; ") };
    return {
      confirmed: {
        volume_context: req.volume_context,
        volume_capabilities: req.volume_capabilities,
        parameters: req.parameters,
      },
    };
  }

  private async listVolumes(req: csi.ListVolumesRequest): Reply<csi.ListVolumesResponse> {
    const ready = this.volumes
      .list()
      .filter((v) => !v.metadata.deletionTimestamp && v.status?.phase === "Ready");
    const { entries, nextToken } = page(
      ready,
      (v) => v.metadata.name ?? "",
      req.max_entries,
      req.starting_token,
    );
    return { entries: entries.map((v) => ({ volume: this.csiVolume(v) })), next_token: nextToken };
  }

  private async getVolume(req: csi.ControllerGetVolumeRequest): Reply<csi.ControllerGetVolumeResponse> {
    const name = required(req.volume_id, "volume_id");
    const volume = await this.api.get("Volume", name);
    if (!volume || volume.metadata.deletionTimestamp)
      throw new CsiError("NOT_FOUND", `volume ${name} does not exist`);
    return { volume: this.csiVolume(volume), status: {} };
  }

  private async getCapacity(req: csi.GetCapacityRequest): Reply<csi.GetCapacityResponse> {
    for (const c of req.volume_capabilities) {
      if (unsupportedCapability(c)) return { available_capacity: 0 };
    }
    parameters(req.parameters);
    const pools = poolsInTopology(req.accessible_topology, this.pools.list(), this.options.cluster);
    const free = pools.map((p) => p.status?.freeBytes ?? 0);
    return {
      available_capacity: free.reduce((a, b) => a + b, 0),
      // A volume lives in one pool: the largest one it can get is the freest pool.
      maximum_volume_size: { value: Math.max(0, ...free) },
    };
  }

  // ---- snapshots ----

  private async createSnapshot(
    req: csi.CreateSnapshotRequest,
    call: csi.CallContext,
  ): Reply<csi.CreateSnapshotResponse> {
    required(req.name, "name");
    const volumeName = required(req.source_volume_id, "source_volume_id");
    if (Object.keys(req.parameters).length > 0) {
      throw new CsiError(
        "INVALID_ARGUMENT",
        `snapshot parameters are not supported: ${Object.keys(req.parameters).join(", ")}`,
      );
    }
    const name = objectName(req.name);
    return this.locks.run([`snapshot/${name}`], "CreateSnapshot", async () => {
      let snapshot = await this.api.get("Snapshot", name);
      if (!snapshot) {
        const volume = await this.api.get("Volume", volumeName);
        if (!volume || volume.metadata.deletionTimestamp)
          throw new CsiError("NOT_FOUND", `volume ${volumeName} does not exist`);
        // A snapshot taken while the volume moves would stay behind with the old copy (migrations
        // do not carry snapshots yet), and be destroyed with it.
        const moving = (await this.api.list("VolumeMigration")).items.find(
          (m) => m.spec.volume === volumeName && !isTerminal(m),
        );
        if (moving) {
          throw new CsiError(
            "ABORTED",
            `volume ${volumeName} is being moved by VolumeMigration ${moving.metadata.name} (${moving.status?.phase ?? "Pending"}); snapshots are taken once it is over, retry then`,
          );
        }
        try {
          snapshot = await this.api.create("Snapshot", {
            metadata: {
              name,
              annotations: { [CSI_NAME_ANNOTATION]: req.name },
              finalizers: [SNAPSHOT_FINALIZER],
            },
            spec: { volume: volumeName },
          });
          this.log.info({ snapshot: name, volume: volumeName }, "CreateSnapshot: created Snapshot");
        } catch (err) {
          if (!isConflict(err)) throw err;
          snapshot = await this.api.get("Snapshot", name);
          if (!snapshot)
            throw new CsiError("ABORTED", `snapshot ${name} changed while it was being created; retry`);
        }
      }
      if (
        snapshot.metadata.annotations?.[CSI_NAME_ANNOTATION] !== req.name ||
        snapshot.spec.volume !== volumeName
      ) {
        throw new CsiError(
          "ALREADY_EXISTS",
          `snapshot ${req.name} exists for another source volume (${snapshot.spec.volume})`,
        );
      }
      if (snapshot.metadata.deletionTimestamp) {
        throw new CsiError(
          "ABORTED",
          `snapshot ${name} from an earlier attempt is still being deleted; retry shortly`,
        );
      }
      const generation = snapshot.metadata.generation ?? 1;
      const outcome = await this.snapshotWaiter.wait<{ snapshot: Snapshot } | { failure: VolumeError }>(
        name,
        (s) => {
          if (!s) return undefined;
          if ((s.status?.observedGeneration ?? 0) < generation) return undefined;
          const error = s.status?.error;
          if (error && !s.status?.readyToUse) return { failure: error };
          return s.status?.readyToUse ? { snapshot: s } : undefined;
        },
        { timeoutMs: this.timeoutMs, signal: call.signal, what: `snapshot ${name} to be taken by its node` },
      );
      if ("failure" in outcome) {
        await this.api.delete("Snapshot", name);
        throw new CsiError(outcome.failure.grpcCode, outcome.failure.message);
      }
      return { snapshot: csiSnapshot(outcome.snapshot) };
    });
  }

  private async deleteSnapshot(
    req: csi.DeleteSnapshotRequest,
    call: csi.CallContext,
  ): Reply<csi.DeleteSnapshotResponse> {
    const name = required(req.snapshot_id, "snapshot_id");
    return this.locks.run([`snapshot/${name}`], "DeleteSnapshot", async () => {
      if (!(await this.api.delete("Snapshot", name))) return {};
      await this.snapshotWaiter.wait(
        name,
        (s) => {
          if (!s) return true;
          const error = s.status?.error;
          if (error && s.metadata.deletionTimestamp) throw new CsiError(error.grpcCode, error.message);
          return undefined;
        },
        {
          timeoutMs: this.timeoutMs,
          signal: call.signal,
          what: `snapshot ${name} to be destroyed by its node`,
        },
      );
      return {};
    });
  }

  private async listSnapshots(req: csi.ListSnapshotsRequest): Reply<csi.ListSnapshotsResponse> {
    const all = this.snapshots
      .list()
      .filter((s) => !s.metadata.deletionTimestamp && s.status?.creationTime)
      .filter((s) => !req.snapshot_id || s.metadata.name === req.snapshot_id)
      .filter((s) => !req.source_volume_id || s.spec.volume === req.source_volume_id);
    const { entries, nextToken } = page(
      all,
      (s) => s.metadata.name ?? "",
      req.max_entries,
      req.starting_token,
    );
    return { entries: entries.map((s) => ({ snapshot: csiSnapshot(s) })), next_token: nextToken };
  }
}

function parameters(params: Record<string, string>): Record<string, string> {
  try {
    return { ...zfsPropertiesFromParameters(params) };
  } catch (err) {
    if (err instanceof InvalidInputError) throw new CsiError("INVALID_ARGUMENT", err.message, { cause: err });
    throw err;
  }
}

function csiSnapshot(snapshot: Snapshot): csi.Reply<csi.Snapshot> {
  const created = Date.parse(snapshot.status?.creationTime ?? "") || 0;
  return {
    snapshot_id: snapshot.metadata.name ?? "",
    source_volume_id: snapshot.spec.volume,
    size_bytes: snapshot.status?.sizeBytes ?? 0,
    ready_to_use: snapshot.status?.readyToUse === true,
    creation_time: { seconds: Math.floor(created / 1000), nanos: 0 },
  };
}
