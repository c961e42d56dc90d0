/**
 * The CSI Node service: mounts a volume's dataset into a pod's target path
 * (a bind mount, see mount.ts), unmounts it, and reports its space. It mounts
 * only volumes this node owns (one writer per volume), and needs no staging:
 * a dataset is mounted on its node already, so there is nothing to do once
 * per node before the per-pod publish.
 */
import { mkdir, rm, rmdir, statfs } from "node:fs/promises";
import type { Volume } from "../api/v1alpha1/index.ts";
import { run } from "../kit/exec.ts";
import type { Logger } from "../kit/log.ts";
import { holderOf } from "./agent/context.ts";
import { CsiError } from "./grpc/status.ts";
import { bindMountArgs, type Mount, mountOf, remountReadOnlyArgs, unmountArgs } from "./mount.ts";
import type * as csi from "./proto/types.ts";
import {
  isReadOnlyMode,
  required,
  TOPOLOGY_CLUSTER_KEY,
  TOPOLOGY_NODE_KEY,
  unsupportedCapability,
} from "./requests.ts";
import type { SkeinApi } from "./skein-api.ts";
import { OperationLocks } from "./wait.ts";
import { ZfsError } from "./zfs/errors.ts";
import { volumeDataset } from "./zfs/names.ts";
import type { Zfs } from "./zfs/runner.ts";

export interface NodeOptions {
  node: string;
  cluster: string;
  pool: string;
  zfs: Zfs;
  api: SkeinApi;
  /** The agent's cached Volume; the API is asked when the cache has not seen it yet. */
  cachedVolume: (name: string) => Volume | undefined;
  logger: Logger;
  /** Shared with the volume agent, which releases volumes for migrations under the same lock. */
  locks?: OperationLocks;
  /** The node a volume is being handed to, when this node released it (no new mount then). */
  releasedTo?: (name: string) => string | undefined;
  /** Called after a volume was unpublished here. */
  onUnpublished?: (name: string) => void;
}

type Reply<T> = Promise<csi.Reply<T>>;

export class NodeServer {
  private readonly locks: OperationLocks;

  constructor(private readonly options: NodeOptions) {
    this.locks = options.locks ?? new OperationLocks();
  }

  service(): Partial<csi.NodeService> {
    return {
      NodePublishVolume: (r) => this.publish(r),
      NodeUnpublishVolume: (r) => this.unpublish(r),
      NodeGetVolumeStats: (r) => this.stats(r),
      NodeExpandVolume: (r) => this.expand(r),
      NodeGetCapabilities: async () => ({
        capabilities: (["GET_VOLUME_STATS", "EXPAND_VOLUME"] as const).map((type) => ({ rpc: { type } })),
      }),
      NodeGetInfo: async () => ({
        node_id: this.options.node,
        accessible_topology: {
          segments: { [TOPOLOGY_CLUSTER_KEY]: this.options.cluster, [TOPOLOGY_NODE_KEY]: this.options.node },
        },
      }),
    };
  }

  private async volume(name: string): Promise<Volume> {
    const volume = this.options.cachedVolume(name) ?? (await this.options.api.get("Volume", name));
    if (!volume || volume.metadata.deletionTimestamp)
      throw new CsiError("NOT_FOUND", `volume ${name} does not exist`);
    return volume;
  }

  /** Where the dataset is mounted on this node. */
  private async datasetMount(name: string): Promise<{ dataset: string; mountpoint: string }> {
    const dataset = volumeDataset(this.options.pool, name);
    let props: Awaited<ReturnType<Zfs["properties"]>>;
    try {
      props = await this.options.zfs.properties(dataset, ["mountpoint", "mounted"]);
    } catch (err) {
      if (err instanceof ZfsError && err.code === "ZfsNotFound") {
        throw new CsiError("NOT_FOUND", `volume ${name} has no dataset on node ${this.options.node}`);
      }
      throw err;
    }
    const mountpoint = props.get("mountpoint")?.value ?? "";
    if (props.get("mounted")?.value !== "yes" || !mountpoint.startsWith("/")) {
      throw new CsiError(
        "FAILED_PRECONDITION",
        `dataset ${dataset} is not mounted on node ${this.options.node}; check the pool`,
      );
    }
    return { dataset, mountpoint };
  }

  private async publish(req: csi.NodePublishVolumeRequest): Reply<csi.NodePublishVolumeResponse> {
    const name = required(req.volume_id, "volume_id");
    const target = required(req.target_path, "target_path");
    if (!req.volume_capability) throw new CsiError("INVALID_ARGUMENT", "volume_capability is required");
    const why = unsupportedCapability(req.volume_capability);
    if (why) throw new CsiError("INVALID_ARGUMENT", why);
    const readOnly = req.readonly || isReadOnlyMode(req.volume_capability);
    return this.locks.run([name], "NodePublishVolume", async () => {
      const volume = await this.volume(name);
      if (volume.spec.ownerNode !== this.options.node || holderOf(volume) !== this.options.node) {
        throw new CsiError(
          "FAILED_PRECONDITION",
          `volume ${name} is owned by node ${volume.spec.ownerNode}, not ${this.options.node}; it is mounted only where it lives`,
        );
      }
      const handedTo = this.options.releasedTo?.(name);
      if (handedTo !== undefined) {
        throw new CsiError(
          "ABORTED",
          `volume ${name} is being handed over to node ${handedTo} (a migration is cutting over); retry on that node`,
        );
      }
      const { dataset, mountpoint } = await this.datasetMount(name);
      const existing = await mountOf(target);
      if (existing) {
        if (existing.source !== dataset || existing.readOnly !== readOnly) {
          throw new CsiError(
            "ALREADY_EXISTS",
            `${target} already has ${existing.source} mounted ${existing.readOnly ? "read-only" : "read-write"}; unpublish it first`,
          );
        }
        return {};
      }
      await mkdir(target, { recursive: true });
      await run(bindMountArgs(mountpoint, target));
      if (readOnly) {
        try {
          await run(remountReadOnlyArgs(target));
        } catch (err) {
          // Never leave a read-write mount where read-only was asked for.
          await run(unmountArgs(target));
          throw err;
        }
      }
      this.options.logger.info({ volume: name, target, readOnly }, "published volume");
      return {};
    });
  }

  private async unpublish(req: csi.NodeUnpublishVolumeRequest): Reply<csi.NodeUnpublishVolumeResponse> {
    const name = required(req.volume_id, "volume_id");
    const target = required(req.target_path, "target_path");
    return this.locks.run([name], "NodeUnpublishVolume", async () => {
      // Bind mounts can stack; take off every one at the target.
      while (await mountOf(target)) await run(unmountArgs(target));
      // rmdir, not rm -r: should an unmount not have happened, the volume's data is never deleted.
      await rmdir(target).catch(async (err: NodeJS.ErrnoException) => {
        if (err.code === "ENOTDIR") await rm(target, { force: true });
        else if (err.code !== "ENOENT") throw err;
      });
      this.options.logger.info({ volume: name, target }, "unpublished volume");
      this.options.onUnpublished?.(name);
      return {};
    });
  }

  /** The volume's mount at `path`, NOT_FOUND when the path is not where it is published. */
  private async publishedAt(name: string, path: string): Promise<Mount> {
    await this.volume(name);
    const dataset = volumeDataset(this.options.pool, name);
    const mount = await mountOf(path).catch(() => undefined);
    if (!mount || mount.source !== dataset) {
      throw new CsiError("NOT_FOUND", `volume ${name} is not published at ${path}`);
    }
    return mount;
  }

  private async stats(req: csi.NodeGetVolumeStatsRequest): Reply<csi.NodeGetVolumeStatsResponse> {
    const name = required(req.volume_id, "volume_id");
    const path = required(req.volume_path, "volume_path");
    await this.publishedAt(name, path);
    const s = await statfs(path);
    return {
      usage: [
        {
          unit: "BYTES",
          total: s.blocks * s.bsize,
          available: s.bavail * s.bsize,
          used: (s.blocks - s.bfree) * s.bsize,
        },
        { unit: "INODES", total: s.files, available: s.ffree, used: s.files - s.ffree },
      ],
    };
  }

  /** The quota was raised by the agent (ControllerExpandVolume); a ZFS filesystem needs nothing on the node. */
  private async expand(req: csi.NodeExpandVolumeRequest): Reply<csi.NodeExpandVolumeResponse> {
    const name = required(req.volume_id, "volume_id");
    const path = required(req.volume_path, "volume_path");
    await this.volume(name);
    await this.publishedAt(name, path);
    const space = await this.options.zfs.space(volumeDataset(this.options.pool, name));
    return { capacity_bytes: space.refquota ?? 0 };
  }
}
