/**
 * The node's StoragePool object: its pool's size and free space (what the CSI
 * controller answers GetCapacity with and places volumes by), the ZFS
 * capabilities that change how data moves, and the datasets Skein tagged that
 * no Volume names any more (orphans: reported, never destroyed by the agent).
 */
import type { StoragePool, StoragePoolStatus, Volume } from "../../api/v1alpha1/index.ts";
import { isConflict, isNotFound } from "../../kit/k8s/api-status.ts";
import { type Condition, formatTime, setCondition } from "../../kit/k8s/conditions.ts";
import type { ZfsCapabilities } from "../zfs/capabilities.ts";
import type { ManagedDataset, PoolSpace } from "../zfs/runner.ts";
import type { AgentContext } from "./context.ts";
import { statusPatch, TAG_UID } from "./plan.ts";

export interface Orphan {
  dataset: string;
  volume: string;
  why: string;
}

/** Tagged datasets with no Volume of that name, or whose Volume is a later one of the same name. */
export function findOrphans(
  datasets: readonly ManagedDataset[],
  volumes: ReadonlyMap<string, Volume>,
): Orphan[] {
  const orphans: Orphan[] = [];
  for (const d of datasets) {
    const volume = volumes.get(d.volume);
    const uid = d.userProperties[TAG_UID];
    if (!volume)
      orphans.push({ dataset: d.dataset, volume: d.volume, why: `no Volume named ${d.volume} exists` });
    else if (uid !== undefined && volume.metadata.uid !== undefined && uid !== volume.metadata.uid) {
      orphans.push({
        dataset: d.dataset,
        volume: d.volume,
        why: `it belongs to an earlier Volume named ${d.volume}`,
      });
    }
  }
  return orphans;
}

/** Capability names as the StoragePool lists them: the flags this ZFS has. */
export function capabilityNames(capabilities: ZfsCapabilities): string[] {
  return Object.entries(capabilities)
    .filter(([, v]) => v === true)
    .map(([k]) => k)
    .sort();
}

const MAX_LISTED = 20;

export function poolStatus(
  old: StoragePool | undefined,
  space: PoolSpace,
  capabilities: ZfsCapabilities,
  orphans: readonly Orphan[],
  generation: number | undefined,
  now: Date,
): StoragePoolStatus {
  const healthy = space.health === "ONLINE";
  let conditions = setCondition(
    old?.status?.conditions as Condition[] | undefined,
    {
      type: "Ready",
      status: healthy ? "True" : "False",
      reason: healthy ? "PoolOnline" : "PoolDegraded",
      message: healthy
        ? `pool ${space.name} is online`
        : `pool ${space.name} is ${space.health}; check zpool status`,
    },
    now,
  );
  const listed = orphans.slice(0, MAX_LISTED).map((o) => `${o.dataset} (${o.why})`);
  const more = orphans.length > MAX_LISTED ? ` and ${orphans.length - MAX_LISTED} more` : "";
  conditions = setCondition(
    conditions,
    {
      type: "OrphanedDatasets",
      status: orphans.length > 0 ? "True" : "False",
      reason: orphans.length > 0 ? "OrphansFound" : "NoOrphans",
      message:
        orphans.length > 0
          ? `datasets tagged by Skein that no Volume owns: ${listed.join(", ")}${more}; back them up or destroy them`
          : "every dataset Skein tagged belongs to a Volume",
    },
    now,
  );
  const status: StoragePoolStatus = {
    sizeBytes: space.size,
    freeBytes: space.available,
    capabilities: capabilityNames(capabilities),
    lastUpdateTime: formatTime(now),
    conditions: [...conditions],
  };
  if (generation !== undefined) status.observedGeneration = generation;
  return status;
}

/** Creates the node's StoragePool if missing and writes its status. */
export async function publishPool(ctx: AgentContext, orphans: readonly Orphan[]): Promise<void> {
  const space = await ctx.zfs.poolSpace(ctx.pool);
  let pool = await ctx.api.get("StoragePool", ctx.node);
  if (!pool) {
    try {
      pool = await ctx.api.create("StoragePool", {
        metadata: { name: ctx.node },
        spec: { node: ctx.node, pool: ctx.pool },
      });
    } catch (err) {
      if (!isConflict(err)) throw err;
      pool = await ctx.api.get("StoragePool", ctx.node);
      if (!pool) return;
    }
  }
  if (pool.spec.pool !== ctx.pool) await ctx.api.patch("StoragePool", ctx.node, { spec: { pool: ctx.pool } });
  const next = poolStatus(pool, space, ctx.zfs.capabilities, orphans, pool.metadata.generation, ctx.now());
  const patch = statusPatch(pool.status, next);
  if (!patch) return;
  try {
    await ctx.api.patchStatus("StoragePool", ctx.node, { status: patch });
  } catch (err) {
    if (!isNotFound(err)) throw err;
  }
}
