/**
 * The agent's part in warm replicas (what and why: replica-plan.ts). On a
 * replica node: every sync interval, pull a round from the owner into the
 * copy and record it in the Volume's replica entry; discard the copy once the
 * node is no longer a replica (and no migration to it needs it). On the owner:
 * drop the snapshot series of nodes that are no longer replicas.
 */
import type { Volume } from "../../api/v1alpha1/index.ts";
import { describeError } from "../../kit/errors.ts";
import { isNotFound } from "../../kit/k8s/api-status.ts";
import { updateStatus } from "../../kit/k8s/status.ts";
import { TRANSFER_SNAPSHOT_PREFIX } from "../transfer/protocol.ts";
import { incomingDataset, volumeDataset } from "../zfs/names.ts";
import type { AgentContext, Outcome } from "./context.ts";
import { migratingTo } from "./migration-plan.ts";
import { destroyCopy, peerOf, pullRound, withCopy } from "./pull.ts";
import { isReplicaOn, replicaSnapshot, staleReplicaSnapshots, synced } from "./replica-plan.ts";

export async function reconcileReplica(ctx: AgentContext, name: string): Promise<Outcome> {
  const volume = ctx.volumes.get(name);
  if (volume?.spec.ownerNode === ctx.node) {
    await pruneStaleSeries(ctx, volume);
    return {};
  }
  const dataset = incomingDataset(ctx.pool, name);
  // A migration to this node works on the same copy: rounds wait until it ends.
  if (migratingTo(ctx.migrations.list(), name, ctx.node)) return {};
  if (!volume || !isReplicaOn(volume, ctx.node)) {
    if (await ctx.zfs.exists(dataset)) {
      // Asked again as the copy's one user: a migration to this node may have begun pulling into it.
      await withCopy(ctx, dataset, `discard the replica ${dataset}`, async () => {
        if (migratingTo(ctx.migrations.list(), name, ctx.node)) return;
        await destroyCopy(ctx, dataset);
        ctx.log.info({ volume: name, dataset }, "discarded the replica: this node no longer keeps one");
        ctx.lastReplicaSync.delete(name);
        ctx.poolChanged();
      });
    }
    return {};
  }
  const interval = ctx.replicaSyncMs;
  const since = Date.now() - (ctx.lastReplicaSync.get(name) ?? 0);
  if (since < interval) return { requeueAfterMs: interval - since };
  const owner = volume.spec.ownerNode;
  // Nothing to copy until the owner serves the volume.
  if (volume.status?.node !== owner || volume.status.phase !== "Ready") return { requeueAfterMs: interval };

  const takenAt = ctx.now();
  const snapshot = replicaSnapshot(ctx.node, takenAt.getTime());
  let bytes: number | undefined;
  try {
    bytes = await pullRound(ctx, {
      volume: name,
      peer: peerOf(ctx, owner),
      dataset,
      snapshot,
      take: true,
      prunePrefix: TRANSFER_SNAPSHOT_PREFIX,
    });
  } catch (err) {
    // The owner may be down, released for a cutover, or out of reach: the entry's
    // growing age says so, and the next interval tries again.
    ctx.log.warn(
      { volume: name, owner, err: describeError(err) },
      "could not sync the replica; trying again at the next interval",
    );
    ctx.lastReplicaSync.set(name, Date.now());
    return { requeueAfterMs: interval };
  }
  ctx.lastReplicaSync.set(name, Date.now());
  const finishedAt = ctx.now();
  try {
    await updateStatus<Volume>(
      ctx.api.statusAccess("Volume", name),
      (draft) => {
        const replicas = draft.status?.replicas ?? [];
        const at = replicas.findIndex((r) => r.node === ctx.node);
        if (at < 0) return false;
        replicas[at] = synced(replicas[at]!, snapshot, takenAt, finishedAt);
        return true;
      },
      { current: volume, describe: `Volume ${name}` },
    );
  } catch (err) {
    if (!isNotFound(err)) throw err;
  }
  ctx.log.info({ volume: name, owner, snapshot, bytes }, "synced the replica");
  ctx.poolChanged();
  return { requeueAfterMs: interval };
}

/** The owner's snapshots of replica series whose node is no longer a replica (held ones stay for now). */
async function pruneStaleSeries(ctx: AgentContext, volume: Volume): Promise<void> {
  const dataset = volumeDataset(ctx.pool, volume.metadata.name ?? "");
  if (!(await ctx.zfs.exists(dataset))) return;
  for (const s of staleReplicaSnapshots(volume, await ctx.zfs.snapshots(dataset))) {
    if ((await ctx.zfs.holdCount(s)) === 0) await ctx.zfs.destroy(s).catch(() => undefined);
  }
}
