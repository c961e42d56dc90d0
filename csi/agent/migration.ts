/**
 * The node agent's side of a VolumeMigration. Who does what:
 *
 *   operator       drives the phases (Pending → Replicating → CuttingOver →
 *                  Completed, or Failed / RolledBack) from what the agents
 *                  report, and moves `Volume.spec.ownerNode` by compare-and-swap
 *   target agent   pulls: each reconcile is one round (the source takes a
 *                  fresh snapshot and streams the increment from the newest
 *                  snapshot both have); the copy stays read-only and carries no
 *                  Skein tags, so nothing mounts or adopts it; after the final
 *                  increment it sets capacity and tags and reports targetReadyTime
 *   source agent   serves the rounds (transfer endpoint, holds while sending)
 *                  and, once the copy is close behind and no pod has the volume
 *                  mounted, releases it: fences new mounts, sets the dataset
 *                  read-only, takes the final snapshot and reports it with the
 *                  time (the start of the downtime). After Completed it
 *                  destroys its copy; after Failed/RolledBack it lifts the fence.
 *
 * Invariants: the source's dataset is never touched before the handoff except
 * to make it read-only (so it stays intact and, until released, in use); the
 * target's copy is read-only until its node owns the volume (reconcileVolume
 * then makes it writable), so at most one node has it mounted read-write; a
 * failed receive leaves the copy at its last snapshot and the next round
 * starts from there (zfs-fuse has no resumable receive).
 */
import { setTimeout as sleep } from "node:timers/promises";
import type { VolumeMigration, VolumeMigrationStatus } from "../../api/v1alpha1/index.ts";
import { describeError } from "../../kit/errors.ts";
import { run } from "../../kit/exec.ts";
import { isNotFound } from "../../kit/k8s/api-status.ts";
import { formatTime } from "../../kit/k8s/conditions.ts";
import { listPeerSnapshots, type Peer, pullSnapshot } from "../transfer/client.ts";
import { newestCommon, type SnapshotInfo } from "../transfer/protocol.ts";
import { ZfsError } from "../zfs/errors.ts";
import { incomingDataset, volumeDataset } from "../zfs/names.ts";
import type { AgentContext, Outcome } from "./context.ts";
import {
  closeBehind,
  finalSnapshot,
  isMoving,
  isTerminal,
  migrationSnapshotPrefix,
  roleOf,
  roundSnapshot,
  SMALL_DELTA_BYTES,
} from "./migration-plan.ts";
import { capacityProperties, readOnly, tags } from "./plan.ts";

/** How often a waiting side looks again (the source for "unpublished", the target between rounds). */
const POLL_MS = 1_000;
/** Progress is written at most this often during a round. */
const PROGRESS_MS = 1_000;

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
    return {};
  }
  if (!isMoving(m) || !volume || m.status?.targetReadyTime || volume.spec.ownerNode === ctx.node) return {};
  const source = m.status?.sourceNode ?? "";
  try {
    const peer = peerOf(ctx, source);
    const final = m.status?.finalSnapshot;
    if (final) {
      const renamed =
        !(await ctx.zfs.exists(dataset)) && (await ctx.zfs.exists(volumeDataset(ctx.pool, m.spec.volume)));
      const bytes = renamed ? 0 : ((await pullRound(ctx, m, peer, dataset, final, false)) ?? 0);
      const owned = volumeDataset(ctx.pool, m.spec.volume);
      if (await ctx.zfs.exists(dataset)) {
        // Stays read-only where it goes (a local setting now, not inherited) until this node
        // owns it; the mountpoint is inherited there again.
        await ctx.zfs.set(dataset, {
          ...capacityProperties(volume.spec.capacityBytes),
          ...(volume.spec.zfsProperties ?? {}),
          readonly: "on",
        });
        await ctx.zfs.destroy(owned, { recursive: true }).catch((err: unknown) => {
          if (!(err instanceof ZfsError && err.code === "ZfsNotFound")) throw err;
        });
        await ctx.zfs.rename(dataset, owned);
        await ctx.zfs.inherit(owned, "mountpoint");
      }
      // Tagged last: from here on the copy is this volume's data, ready to own.
      await ctx.zfs.set(owned, tags(volume));
      await patchStatus(ctx, m, {
        round: (m.status?.round ?? 0) + 1,
        bytesSent: (m.status?.bytesSent ?? 0) + bytes,
        lastRoundBytes: bytes,
        progressPercent: 100,
        targetReadyTime: formatTime(ctx.now()),
        transferError: null,
      });
      ctx.log.info({ migration: m.metadata.name, bytes }, "received the final increment; ready to take over");
      return {};
    }
    const key = m.metadata.uid ?? "";
    const since = Date.now() - (ctx.lastRound.get(key) ?? 0);
    if ((m.status?.lastRoundBytes ?? Number.POSITIVE_INFINITY) <= SMALL_DELTA_BYTES && since < POLL_MS) {
      // Close behind already: a round a second keeps it so without a busy loop.
      return { requeueAfterMs: POLL_MS - since };
    }
    const round = (m.status?.round ?? 0) + 1;
    const bytes = await pullRound(ctx, m, peer, dataset, roundSnapshot(m, round), true);
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
 * One pull: `snapshot` (taken by the source now when `take`) into the local
 * copy, incremental from the newest snapshot both have, full when they share
 * none. Returns the bytes carried, undefined when the copy had it already.
 */
async function pullRound(
  ctx: AgentContext,
  m: VolumeMigration,
  peer: Peer,
  dataset: string,
  snapshot: string,
  take: boolean,
): Promise<number | undefined> {
  const tls = transferTls(ctx);
  const theirs = await listPeerSnapshots(peer, tls, m.spec.volume).catch((err: unknown) => {
    // A round's first attempt: the source has no snapshot yet, or none of ours.
    if (take && /PeerNotFound/.test(String((err as { code?: string }).code))) return [] as SnapshotInfo[];
    throw err;
  });
  const ours = await localSnapshots(ctx, dataset);
  // A round whose status write was lost already landed: nothing to pull.
  if (ours.some((s) => s.name === snapshot) && theirs.some((s) => s.name === snapshot)) return undefined;
  // Only what the source took before `snapshot` can be its base (a round that raced the
  // release may have left a newer one on both sides).
  const at = theirs.findIndex((s) => s.name === snapshot);
  const base = newestCommon(at >= 0 ? theirs.slice(0, at) : theirs, ours);
  if (base && ours[ours.length - 1]?.name !== base.name) {
    await ctx.zfs.rollback(`${dataset}@${base.name}`, { destroyNewer: true });
  }
  if (!base && ours.length > 0) {
    ctx.log.warn(
      { dataset },
      "the local copy shares no snapshot with the source; starting over with a full send",
    );
    await destroyCopy(ctx, dataset);
  } else if (!base && (await ctx.zfs.exists(dataset))) {
    await destroyCopy(ctx, dataset);
  }
  let lastWrite = 0;
  // Progress writes go one after another, and all land before the round's own.
  let progress: Promise<void> = Promise.resolve();
  const started = m.status?.bytesSent ?? 0;
  const estimate = base ? undefined : ctx.volumes.get(m.spec.volume)?.status?.usedBytes;
  const result = await pullSnapshot(
    peer,
    tls,
    { volume: m.spec.volume, snapshot, from: base?.name, intermediates: base !== undefined, take },
    { zfs: ctx.zfs, dataset, force: base !== undefined },
    (bytes) => {
      const now = Date.now();
      if (now - lastWrite < PROGRESS_MS) return;
      lastWrite = now;
      const total = Math.max(estimate ?? bytes, bytes);
      progress = progress.then(() =>
        patchStatus(ctx, m, {
          bytesSent: started + bytes,
          bytesTotal: total,
          progressPercent: Math.min(99, Math.floor((100 * bytes) / total)),
        }).catch(() => undefined),
      );
    },
  ).finally(() => progress);
  await pruneLocal(ctx, m, dataset, snapshot);
  return result.bytes;
}

async function localSnapshots(ctx: AgentContext, dataset: string): Promise<SnapshotInfo[]> {
  if (!(await ctx.zfs.exists(dataset))) return [];
  const names = await ctx.zfs.snapshots(dataset);
  if (names.length === 0) return [];
  const rows = await ctx.zfs.get(names, ["guid"]);
  return rows.map((r) => ({ name: r.name.slice(r.name.indexOf("@") + 1), guid: r.value }));
}

/** Earlier snapshots of this migration on the copy: the newest is the only base the next round needs. */
async function pruneLocal(
  ctx: AgentContext,
  m: VolumeMigration,
  dataset: string,
  keep: string,
): Promise<void> {
  const prefix = `${dataset}@${migrationSnapshotPrefix(m)}`;
  for (const s of await ctx.zfs.snapshots(dataset)) {
    if (s.startsWith(prefix) && s !== `${dataset}@${keep}`) await ctx.zfs.destroy(s).catch(() => undefined);
  }
}

async function discardCopy(ctx: AgentContext, m: VolumeMigration, dataset: string): Promise<void> {
  // Another migration to this node may be using the copy as its base.
  const other = ctx.migrations
    .list()
    .some(
      (o) => o !== m && o.spec.volume === m.spec.volume && o.spec.targetNode === ctx.node && !isTerminal(o),
    );
  if (other || !(await ctx.zfs.exists(dataset))) return;
  ctx.log.info(
    { migration: m.metadata.name, dataset },
    "discarding the copy of a migration that did not complete",
  );
  await destroyCopy(ctx, dataset);
  ctx.poolChanged();
}

const BUSY_RETRIES_MS = [200, 500, 1000, 2000];

/** Destroys a copy this node does not own (never mounted into a pod: `-f` only gets past zfs-fuse's "busy"). */
async function destroyCopy(ctx: AgentContext, dataset: string): Promise<void> {
  const owner = ctx.volumes.get(dataset.slice(dataset.lastIndexOf("/") + 1))?.spec.ownerNode;
  if (owner === ctx.node) throw new Error(`refusing to destroy ${dataset}: this node owns it`);
  for (let attempt = 0; ; attempt++) {
    try {
      await ctx.zfs.destroy(dataset, { recursive: true, force: attempt > 0 });
      return;
    } catch (err) {
      if (err instanceof ZfsError && err.code === "ZfsNotFound") return;
      const wait = BUSY_RETRIES_MS[attempt];
      if (!(err instanceof ZfsError && err.code === "ZfsBusy") || wait === undefined) throw err;
      await sleep(wait);
    }
  }
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
        const stillNeeded = ctx.migrations
          .list()
          .some((o) => o.spec.volume === volumeName && o.status?.sourceNode === ctx.node && !isTerminal(o));
        if (!stillNeeded && (await ctx.zfs.exists(dataset))) {
          await destroyCopy(ctx, dataset).catch((err: unknown) => {
            ctx.log.warn(
              { dataset, err: describeError(err) },
              "could not destroy the source copy yet; retrying",
            );
            throw err;
          });
          ctx.log.info(
            { migration: m.metadata.name, dataset },
            "destroyed the source copy after the handoff",
          );
          ctx.poolChanged();
        }
        ctx.fenced.delete(volumeName);
      }
      return {};
    }
    // Still the owner (Failed or RolledBack): lift the fence and make the dataset writable again.
    if (ctx.fenced.delete(volumeName) || (await isReadOnly(ctx, dataset))) {
      if (volume.spec.zfsProperties?.readonly !== "on") await ctx.zfs.set(dataset, { readonly: "off" });
      ctx.log.info(
        { migration: m.metadata.name },
        "the migration ended without a handoff; the volume is writable here again",
      );
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
  if ((await publishedAt(ctx, dataset)).length > 0) return { requeueAfterMs: POLL_MS };
  const released = await ctx.locks
    .run([volumeName], "release for a migration", async () => {
      ctx.fenced.add(volumeName);
      const mounts = await publishedAt(ctx, dataset);
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
  await ctx.zfs.set(dataset, { readonly: "on" });
  if (!(await ctx.zfs.exists(final))) await ctx.zfs.snapshot(final);
  await patchStatus(ctx, m, { finalSnapshot: finalSnapshot(m), sourceReleasedTime: formatTime(releasedAt) });
  ctx.log.info(
    { migration: m.metadata.name, target: m.spec.targetNode },
    "released the volume for the cutover",
  );
  return {};
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

/** Bind mounts of the dataset on this node (pods using it), besides its own mountpoint. */
export async function publishedAt(ctx: AgentContext, dataset: string): Promise<string[]> {
  const mountpoint = (await ctx.zfs.properties(dataset, ["mountpoint"])).get("mountpoint")?.value;
  const { stdout } = await run(["findmnt", "--list", "--noheadings", "--output", "SOURCE,TARGET"]);
  return stdout
    .split("\n")
    .map((line) => line.trim().split(/\s+/))
    .filter(([src, tgt]) => (src === dataset || src?.startsWith(`${dataset}[`)) && tgt !== mountpoint)
    .map(([, tgt]) => tgt ?? "");
}

// ---- shared ----

function transferTls(ctx: AgentContext) {
  if (!ctx.transfer) {
    throw new Error(
      `node ${ctx.node} has no transfer certificate (start skein csi-node with --transfer-secret-namespace or --transfer-cert-dir)`,
    );
  }
  return ctx.transfer.tls;
}

function peerOf(ctx: AgentContext, node: string): Peer {
  transferTls(ctx);
  const addresses = ctx.nodes.get(node)?.status?.addresses ?? [];
  const ip = addresses.find((a) => a.type === "InternalIP")?.address;
  if (!ip)
    throw new Error(
      `node ${node} has no InternalIP to reach its transfer endpoint at; is the Node registered?`,
    );
  return { node, host: ip, port: ctx.transfer?.peerPort ?? 0 };
}

type StatusChange = { [K in keyof VolumeMigrationStatus]?: VolumeMigrationStatus[K] | null };

async function patchStatus(ctx: AgentContext, m: VolumeMigration, change: StatusChange): Promise<void> {
  try {
    await ctx.api.patchStatus("VolumeMigration", m.metadata.name ?? "", { status: change });
  } catch (err) {
    if (!isNotFound(err)) throw err;
  }
}
