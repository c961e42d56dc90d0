/**
 * The node agent's side of a VolumeMigration. Who does what:
 *
 *   operator       drives the phases (Pending → Replicating → CuttingOver →
 *                  Completed, or Failed / RolledBack) from what the agents
 *                  report, and moves `Volume.spec.ownerNode` by compare-and-swap
 *   target agent   pulls: each reconcile is one round (the source takes a
 *                  fresh snapshot and streams the increment from the newest
 *                  snapshot both have); the copy stays read-only and unmounted
 *                  under the incoming root, where nothing mounts or adopts it,
 *                  and gets the volume's capacity and tags during the rounds.
 *                  Once close behind, it waits between rounds at the source's
 *                  endpoint for the final increment; with it in, it renames the
 *                  copy into place and reports targetReadyTime
 *   source agent   serves the rounds (transfer endpoint, holds while sending)
 *                  and, once the copy is close behind and no pod has the volume
 *                  mounted, releases it: fences new mounts, unmounts it, sets it
 *                  read-only, takes the final snapshot and reports it with the
 *                  time (the start of the downtime), then lets the waiting
 *                  target have it. After Completed it destroys its copy; after
 *                  Failed/RolledBack it lifts the fence.
 *
 * Invariants: the source's dataset is never touched before the handoff except
 * to make it read-only (so it stays intact and, until released, in use); the
 * target's copy is read-only until its node owns the volume (reconcileVolume
 * then makes it writable), so at most one node has it mounted read-write; a
 * failed receive leaves the copy at its last snapshot and the next round
 * starts from there (zfs-fuse has no resumable receive).
 */
import type { Volume, VolumeMigration, VolumeMigrationStatus } from "../../api/v1alpha1/index.ts";
import { describeError } from "../../kit/errors.ts";
import { isNotFound } from "../../kit/k8s/api-status.ts";
import { formatPreciseTime } from "../../kit/k8s/conditions.ts";
import { publishedAt } from "../mount.ts";
import { TransferError } from "../transfer/client.ts";
import { ZfsError } from "../zfs/errors.ts";
import { incomingDataset, volumeDataset } from "../zfs/names.ts";
import { type AgentContext, type Outcome, volumeKey } from "./context.ts";
import {
  closeBehind,
  finalSnapshot,
  isMoving,
  isTerminal,
  migrationSnapshotPrefix,
  releasedFor,
  roleOf,
  roundSnapshot,
  SMALL_DELTA_BYTES,
} from "./migration-plan.ts";
import { capacityProperties, readOnly, tags } from "./plan.ts";
import { destroyCopy, type Pull, peerOf, pruneLocal, pullRound, withCopy } from "./pull.ts";
import { isReplicaOn } from "./replica-plan.ts";

/** How often a waiting side looks again (the source for "unpublished", the target between rounds). */
const POLL_MS = 1_000;

export async function reconcileMigration(ctx: AgentContext, name: string): Promise<Outcome> {
  const m = ctx.migrations.get(name);
  if (!m) return {};
  const role = roleOf(m, ctx.node);
  // The target counts rounds and bytes on top of what the status says: read it
  // fresh, as the cache may not have its own last write yet.
  if (role === "target") {
    const fresh = await ctx.api.get("VolumeMigration", name);
    return fresh ? target(ctx, fresh) : {};
  }
  if (role === "source") return source(ctx, m);
  return {};
}

// ---- target ----

async function target(ctx: AgentContext, m: VolumeMigration): Promise<Outcome> {
  const volume = ctx.volumes.get(m.spec.volume);
  const dataset = incomingDataset(ctx.pool, m.spec.volume);
  if (isTerminal(m)) {
    if (m.status?.phase !== "Completed" && volume?.spec.ownerNode !== ctx.node)
      await discardCopy(ctx, m, dataset);
    const uid = m.metadata.uid ?? "";
    const final = m.status?.finalSnapshot;
    if (m.status?.phase === "Completed" && final && ctx.lastRound.has(uid)) {
      // Taken over here: the rounds' snapshots are no base for anything any more (the final
      // one is kept). Pruned only now, so the cutover's downtime waits for none of it.
      await pruneLocal(ctx, volumeDataset(ctx.pool, m.spec.volume), migrationSnapshotPrefix(m), {
        volume: m.spec.volume,
        snapshot: final,
      });
      ctx.lastRound.delete(uid);
    }
    return {};
  }
  if (!isMoving(m) || !volume || m.status?.targetReadyTime || volume.spec.ownerNode === ctx.node) return {};
  const source = m.status?.sourceNode ?? "";
  try {
    const final = m.status?.finalSnapshot;
    if (final) {
      const copied = await ctx.zfs.exists(dataset);
      // A forced migration promotes the copy as it is: its owner is lost, there is nothing to pull.
      const bytes =
        !copied || m.spec.force
          ? 0
          : ((await pullRound(ctx, pullOf(ctx, m, source, dataset, final, false))) ?? 0);
      await takeOver(ctx, m, volume, copied, bytes);
      return {};
    }
    const key = m.metadata.uid ?? "";
    const since = Date.now() - (ctx.lastRound.get(key) ?? 0);
    if ((m.status?.lastRoundBytes ?? Number.POSITIVE_INFINITY) <= SMALL_DELTA_BYTES && since < POLL_MS) {
      // Close behind already: a round a second keeps it so. Until the next one, wait at the
      // source for its release: the final increment then starts the moment the volume is
      // released, not when this node hears of it through the API server.
      // Nothing of the volume's lies between the last round and the final snapshot but, at
      // most, a replica's sync from the last second, which replicas do without (they go on
      // from the one before): `-i`, whose holds-free send zfs-fuse starts sooner.
      const pull = {
        ...pullOf(ctx, m, source, dataset, finalSnapshot(m), false),
        waitMs: POLL_MS - since,
        intermediates: false,
      };
      const bytes = await pullRound(ctx, pull).then(
        (b) => b ?? 0,
        (err: unknown) => {
          if (err instanceof TransferError && err.code === "PeerNotYet") return undefined;
          throw err;
        },
      );
      if (bytes === undefined) return { requeueAfterMs: 0 };
      await takeOver(ctx, m, volume, true, bytes);
      return {};
    }
    const round = (m.status?.round ?? 0) + 1;
    const bytes = await pullRound(ctx, pullOf(ctx, m, source, dataset, roundSnapshot(m, round), true));
    // Ready for the takeover already, so the cutover has less to do.
    await prepareCopy(ctx, volume, dataset);
    ctx.lastRound.set(key, Date.now());
    await patchStatus(ctx, m, {
      round,
      // A round that had landed before (its status write was lost) says nothing about the delta.
      ...(bytes === undefined
        ? {}
        : { bytesSent: (m.status?.bytesSent ?? 0) + bytes, lastRoundBytes: bytes, bytesTotal: bytes }),
      progressPercent: 100,
      transferError: null,
    });
    ctx.log.info({ migration: m.metadata.name, round, bytes }, "finished a round");
    // Big deltas: go again at once; small ones: keep the copy close while the pod runs.
    return { requeueAfterMs: (bytes ?? 0) > SMALL_DELTA_BYTES ? 0 : POLL_MS };
  } catch (err) {
    await patchStatus(ctx, m, {
      transferError: { node: ctx.node, message: describeError(err).slice(0, 4000) },
    }).catch(() => undefined);
    throw err;
  }
}

/**
 * The cutover's last steps on the target, once the final increment is in (or,
 * for a forced migration, the replica is promoted as it is): the copy takes
 * the volume's place, read-only until ownership moves here, and the target
 * reports itself ready. The downtime runs until this is done: as few commands as will do.
 */
async function takeOver(
  ctx: AgentContext,
  m: VolumeMigration,
  volume: Volume,
  copied: boolean,
  bytes: number,
): Promise<void> {
  const dataset = incomingDataset(ctx.pool, m.spec.volume);
  const owned = volumeDataset(ctx.pool, m.spec.volume);
  if (copied) {
    // Prepared by the rounds already, unless this agent restarted since.
    if (!ctx.lastRound.has(m.metadata.uid ?? "")) await prepareCopy(ctx, volume, dataset);
    // Under the volume's lock: a stale source copy in the way goes, and its own cleanup
    // must not take the new one for it. The rename mounts it read-only where it belongs.
    await ctx.locks.run([m.spec.volume], "take over a migrated volume", async () => {
      await ctx.zfs.rename(dataset, owned).catch(async (err: unknown) => {
        if (!(err instanceof ZfsError && err.code === "ZfsAlreadyExists")) throw err;
        await ctx.zfs.destroy(owned, { recursive: true, force: true });
        await ctx.zfs.rename(dataset, owned);
      });
    });
  } else if (await ctx.zfs.exists(owned)) {
    // Renamed before a restart: finish what that attempt may have missed.
    await prepareCopy(ctx, volume, owned);
  } else {
    throw new Error(`neither ${dataset} nor ${owned} exists: the copy is gone; the migration will roll back`);
  }
  await patchStatus(ctx, m, {
    round: (m.status?.round ?? 0) + 1,
    bytesSent: (m.status?.bytesSent ?? 0) + bytes,
    lastRoundBytes: bytes,
    progressPercent: 100,
    targetReadyTime: formatPreciseTime(ctx.now()),
    transferError: null,
  });
  ctx.log.info(
    { migration: m.metadata.name, bytes, promoted: m.spec.force === true },
    m.spec.force
      ? "promoted the replica; ready to take over"
      : "received the final increment; ready to take over",
  );
  // The final increment was a round too; and the migration's end prunes the rounds it finds here.
  ctx.lastRound.set(m.metadata.uid ?? "", Date.now());
}

/**
 * The copy as the volume will need it, set while the rounds go on so the
 * cutover has less to do: its capacity and tuning; read-only as a local
 * setting, so it stays so where the takeover renames it (until this node owns
 * it); and the tags that make it this volume's data (the orphan scan does not
 * read incoming copies). Local properties outlive the increments received later.
 */
async function prepareCopy(ctx: AgentContext, volume: Volume, dataset: string): Promise<void> {
  const wanted: Record<string, string> = {
    ...capacityProperties(volume.spec.capacityBytes),
    ...(volume.spec.zfsProperties ?? {}),
    readonly: "on",
    ...tags(volume),
  };
  const have = await ctx.zfs.properties(dataset, Object.keys(wanted));
  const missing = Object.fromEntries(
    Object.entries(wanted).filter(([k, v]) => have.get(k)?.value !== v || have.get(k)?.source !== "local"),
  );
  if (Object.keys(missing).length > 0) await ctx.zfs.set(dataset, missing);
}

/** One of this migration's pulls, reporting its progress in the migration's status. */
function pullOf(
  ctx: AgentContext,
  m: VolumeMigration,
  source: string,
  dataset: string,
  snapshot: string,
  take: boolean,
): Pull {
  const started = m.status?.bytesSent ?? 0;
  // Progress writes go one after another; a late one never overwrites the round's own.
  let progress: Promise<void> = Promise.resolve();
  return {
    volume: m.spec.volume,
    peer: peerOf(ctx, source),
    dataset,
    snapshot,
    take,
    ...(take ? { prunePrefix: migrationSnapshotPrefix(m) } : {}),
    estimateBytes: ctx.volumes.get(m.spec.volume)?.status?.usedBytes,
    onProgress: (bytes, total) => {
      progress = progress.then(() =>
        patchStatus(ctx, m, {
          bytesSent: started + bytes,
          bytesTotal: total,
          progressPercent: Math.min(99, Math.floor((100 * bytes) / total)),
        }).catch(() => undefined),
      );
    },
  };
}

async function discardCopy(ctx: AgentContext, m: VolumeMigration, dataset: string): Promise<void> {
  const wanted = () =>
    // A replica on this node lives in the same copy: it stays (and goes on syncing).
    isReplicaOn(ctx.volumes.get(m.spec.volume), ctx.node) ||
    // Another migration to this node (a retry of this one) may be using the copy as its base.
    ctx.migrations
      .list()
      .some(
        (o) => o !== m && o.spec.volume === m.spec.volume && o.spec.targetNode === ctx.node && !isTerminal(o),
      );
  if (wanted() || !(await ctx.zfs.exists(dataset))) return;
  // Asked again as the copy's one user: a retry that came since may be pulling into it.
  await withCopy(ctx, dataset, `discard ${dataset}`, async () => {
    if (wanted()) return;
    ctx.log.info(
      { migration: m.metadata.name, dataset },
      "discarding the copy of a migration that did not complete",
    );
    await destroyCopy(ctx, dataset);
    ctx.poolChanged();
  });
}

// ---- source ----

async function source(ctx: AgentContext, m: VolumeMigration): Promise<Outcome> {
  const volumeName = m.spec.volume;
  const volume = ctx.volumes.get(volumeName);
  const dataset = volumeDataset(ctx.pool, volumeName);
  if (isTerminal(m)) {
    if (!volume) return {};
    if (volume.spec.ownerNode !== ctx.node) {
      // Handed over: the new owner has confirmed (it reported the volume Ready).
      if (m.status?.phase === "Completed" && volume.status?.node === volume.spec.ownerNode) {
        if (await ctx.zfs.exists(dataset)) await destroySourceCopy(ctx, m, dataset);
        ctx.fenced.delete(volumeName);
      }
      return {};
    }
    // Failed or RolledBack, so still the owner: lift the fence and make the dataset writable
    // again, unless a later migration has released it meanwhile. Ownership is read fresh, as
    // the Volume cache may lag behind the migration's: lifting on a stale "still mine" would
    // make a second writable copy beside the new owner's.
    if (
      m.status?.phase !== "Completed" &&
      releasedFor(ctx.migrations.list(), volumeName, ctx.node) === undefined
    ) {
      const fresh = await ctx.api.get("Volume", volumeName);
      if (
        fresh?.spec.ownerNode === ctx.node &&
        (ctx.fenced.has(volumeName) || (await isReadOnly(ctx, dataset)))
      ) {
        if (fresh.spec.zfsProperties?.readonly !== "on") await ctx.zfs.set(dataset, { readonly: "off" });
        ctx.fenced.delete(volumeName);
        // Mounted again by the volume's own reconcile, as any unmounted dataset it owns.
        ctx.enqueue(volumeKey(volumeName));
        ctx.log.info(
          { migration: m.metadata.name },
          "the migration ended without a handoff; the volume is writable here again",
        );
      }
    }
    await pruneSource(ctx, m, dataset);
    return {};
  }
  if (!isMoving(m) || !volume || volume.spec.ownerNode !== ctx.node) return {};
  if (m.status?.finalSnapshot) {
    // Released earlier (perhaps before a restart): keep it released.
    ctx.fenced.add(volumeName);
    return {};
  }
  if (!closeBehind(m)) return {};
  // Looked at without the lock first, so a pod still using the volume is not
  // kept from unpublishing it by the check itself.
  if ((await publishedAt(dataset)).length > 0) return { requeueAfterMs: POLL_MS };
  const released = await ctx.locks
    .run([volumeName], "release for a migration", async () => {
      ctx.fenced.add(volumeName);
      const mounts = await publishedAt(dataset);
      if (mounts.length > 0) {
        ctx.fenced.delete(volumeName);
        return false;
      }
      return true;
    })
    .catch(() => false);
  if (!released) return { requeueAfterMs: POLL_MS };
  const releasedAt = ctx.now();
  const final = `${dataset}@${finalSnapshot(m)}`;
  // Unmounted and read-only: nothing can write here any more. Read-only alone is not
  // enough on zfs-fuse, which may remount a dataset read-write (after a destroy that
  // found it busy, say). No pod uses it (checked under the lock), so `-f` is safe; and
  // unmounted first, the read-only setting costs no remount.
  await ctx.zfs.unmount(dataset, { force: true }).catch((err: unknown) => {
    if (!(err instanceof ZfsError && /not currently mounted/.test(err.message))) throw err;
  });
  await ctx.zfs.set(dataset, { readonly: "on" });
  await ctx.zfs.snapshot(final).catch(async (err: unknown) => {
    if (!(err instanceof ZfsError && err.code === "ZfsAlreadyExists")) throw err;
    // Taken by this process, whose record of the release failed: still the latest data.
    if (ctx.finals.has(final)) return;
    // Left by a killed agent before it recorded the release: pods may have written since.
    await ctx.zfs.destroy(final);
    await ctx.zfs.snapshot(final);
  });
  // The GUID is read while the record is written (the API server is no ZFS command to wait behind).
  const [guid] = await Promise.all([
    ctx.zfs.properties(final, ["guid"]).then((p) => p.get("guid")?.value ?? ""),
    patchStatus(ctx, m, {
      finalSnapshot: finalSnapshot(m),
      sourceReleasedTime: formatPreciseTime(releasedAt),
    }),
  ]);
  // Recorded: a target waiting at the transfer endpoint may have it now. Never before, or a
  // release whose record is lost could hand over data that later writes leave behind.
  ctx.finals.commit(final, guid);
  ctx.log.info(
    { migration: m.metadata.name, target: m.spec.targetNode },
    "released the volume for the cutover",
  );
  return {};
}

/**
 * The source's copy after a completed handoff. Never the volume's live data:
 * not while another migration moves the volume from or to this node (one
 * coming back renames its copy into the same place), and only when the API
 * server itself (the cache may lag) says another node owns and serves it; the
 * volume's lock keeps a returning migration's rename from slipping in between.
 */
async function destroySourceCopy(ctx: AgentContext, m: VolumeMigration, dataset: string): Promise<void> {
  const volumeName = m.spec.volume;
  const busy = () =>
    ctx.migrations
      .list()
      .some(
        (o) =>
          o.spec.volume === volumeName &&
          !isTerminal(o) &&
          (o.status?.sourceNode === ctx.node || o.spec.targetNode === ctx.node),
      );
  if (busy()) return;
  await ctx.locks.run([volumeName], "destroy the source copy after a handoff", async () => {
    const fresh = await ctx.api.get("Volume", volumeName);
    if (busy() || !fresh || fresh.spec.ownerNode === ctx.node || fresh.status?.node !== fresh.spec.ownerNode)
      return;
    await destroyCopy(ctx, dataset).catch((err: unknown) => {
      ctx.log.warn({ dataset, err: describeError(err) }, "could not destroy the source copy yet; retrying");
      throw err;
    });
    ctx.log.info({ migration: m.metadata.name, dataset }, "destroyed the source copy after the handoff");
    ctx.poolChanged();
  });
}

async function isReadOnly(ctx: AgentContext, dataset: string): Promise<boolean> {
  try {
    return readOnly(await ctx.zfs.properties(dataset, ["readonly"]));
  } catch {
    return false;
  }
}

/** This migration's transfer snapshots on the source, once it is over. */
async function pruneSource(ctx: AgentContext, m: VolumeMigration, dataset: string): Promise<void> {
  if (!(await ctx.zfs.exists(dataset))) return;
  const prefix = `${dataset}@${migrationSnapshotPrefix(m)}`;
  for (const s of await ctx.zfs.snapshots(dataset)) {
    if (s.startsWith(prefix) && (await ctx.zfs.holdCount(s)) === 0)
      await ctx.zfs.destroy(s).catch(() => undefined);
  }
}

// ---- shared ----

type StatusChange = { [K in keyof VolumeMigrationStatus]?: VolumeMigrationStatus[K] | null };

async function patchStatus(ctx: AgentContext, m: VolumeMigration, change: StatusChange): Promise<void> {
  try {
    await ctx.api.patchStatus("VolumeMigration", m.metadata.name ?? "", { status: change });
  } catch (err) {
    if (!isNotFound(err)) throw err;
  }
}
