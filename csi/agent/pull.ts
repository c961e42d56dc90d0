/**
 * Pulling a volume's data from the node that owns it into this node's copy
 * (`<pool>/skein-incoming/<volume>`): what a migration's target and a warm
 * replica both do. A pull is incremental from the newest snapshot both sides
 * have (same GUID), full when they share none; the copy is rolled back to that
 * base first, so a receive never meets a diverged dataset. A failed receive
 * leaves the copy at its last snapshot (zfs-fuse has no resumable receive), and
 * the next pull starts from there.
 */
import { setTimeout as sleep } from "node:timers/promises";
import { describeError } from "../../kit/errors.ts";
import { listPeerSnapshots, type Peer, pullSnapshot, TransferError } from "../transfer/client.ts";
import { newestCommon, type SnapshotInfo } from "../transfer/protocol.ts";
import type { TransferTls } from "../transfer/server.ts";
import { ZfsError } from "../zfs/errors.ts";
import type { AgentContext } from "./context.ts";
import { isReplicaSnapshot, replicaSeries } from "./replica-plan.ts";

export interface Pull {
  volume: string;
  /** The owner, whose transfer endpoint streams the data. */
  peer: Peer;
  /** The local copy. */
  dataset: string;
  snapshot: string;
  /** Ask the peer to take `snapshot` now (a round), rather than send one it has. */
  take: boolean;
  /** Not ready yet, the peer waits this long for `snapshot` (a cutover's final one), then answers NotYet. */
  waitMs?: number;
  /**
   * Carry the snapshots between the base and `snapshot` along (`-I`, the
   * default) or not (`-i`). zfs-fuse's `-I` holds what it sends, and each hold
   * waits for a transaction group to sync: tens of milliseconds.
   */
  intermediates?: boolean;
  /**
   * After the pull, local transfer snapshots with this prefix go, but for those
   * the next pulls need; none go when absent (a cutover prunes after it is done).
   */
  prunePrefix?: string;
  /** Bytes a full send carries, when known (progress of a full send). */
  estimateBytes?: number;
  /** Bytes so far and the best guess of the total, at most once a second. */
  onProgress?: (bytes: number, total: number) => void;
}

const PROGRESS_MS = 1_000;

/**
 * Runs `fn` as the one user of the copy `dataset` on this node: a pull into it,
 * or its discarding. Another at the same time is ABORTED (and its reconcile
 * retried). Without this, a discard that found the copy unwanted could still
 * be destroying it, waiting out zfs-fuse's "busy", when a new pull into it (a
 * retried move) had started: the destroy then took the new copy.
 */
export function withCopy<R>(
  ctx: AgentContext,
  dataset: string,
  what: string,
  fn: () => Promise<R>,
): Promise<R> {
  return ctx.locks.run([`copy:${dataset}`], what, fn);
}

/** Pulls; returns the bytes carried, or undefined when the copy had `snapshot` already. */
export function pullRound(ctx: AgentContext, pull: Pull): Promise<number | undefined> {
  return withCopy(ctx, pull.dataset, `pull ${pull.snapshot} into ${pull.dataset}`, () => pullInto(ctx, pull));
}

async function pullInto(ctx: AgentContext, pull: Pull): Promise<number | undefined> {
  const { peer, dataset, snapshot, take } = pull;
  const tls = transferTls(ctx);
  const ours = await localSnapshots(ctx, dataset);
  const newest = ours[ours.length - 1];
  if (!take && newest !== undefined) {
    // A snapshot the source took already (a cutover's final one): its base is almost
    // always our newest, so ask for that increment at once, without listing the
    // source's snapshots first; only if it is refused is the base looked for.
    if (newest.name === snapshot) return undefined;
    try {
      return await receive(ctx, pull, newest.name);
    } catch (err) {
      if (!(err instanceof TransferError && /^(PeerNotFound|ReceiveFailed)$/.test(err.code))) throw err;
      ctx.log.info(
        { dataset, snapshot, err: describeError(err) },
        "looking for another base for the increment",
      );
    }
  }
  const theirs = await listPeerSnapshots(peer, tls, pull.volume).catch((err: unknown) => {
    // A round's first attempt: the source has no snapshot yet, or none of ours.
    if (take && /PeerNotFound/.test(String((err as { code?: string }).code))) return [] as SnapshotInfo[];
    throw err;
  });
  // A round whose report was lost already landed: nothing to pull.
  if (ours.some((s) => s.name === snapshot) && theirs.some((s) => s.name === snapshot)) return undefined;
  // Only what the source took before `snapshot` can be its base (a round that raced a
  // release may have left a newer one on both sides).
  const at = theirs.findIndex((s) => s.name === snapshot);
  const base = newestCommon(at >= 0 ? theirs.slice(0, at) : theirs, ours);
  if (base && newest?.name !== base.name) {
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
  return receive(ctx, pull, base?.name);
}

/** One stream from the peer into the copy: incremental (with the snapshots between) from `base`, else full. */
async function receive(ctx: AgentContext, pull: Pull, base: string | undefined): Promise<number> {
  let lastReport = 0;
  const result = await pullSnapshot(
    pull.peer,
    transferTls(ctx),
    {
      volume: pull.volume,
      snapshot: pull.snapshot,
      from: base,
      intermediates: base !== undefined && pull.intermediates !== false,
      take: pull.take,
      waitMs: pull.waitMs,
    },
    { zfs: ctx.zfs, dataset: pull.dataset, force: base !== undefined },
    (bytes) => {
      const now = Date.now();
      if (!pull.onProgress || now - lastReport < PROGRESS_MS) return;
      lastReport = now;
      pull.onProgress(bytes, Math.max(base ? bytes : (pull.estimateBytes ?? bytes), bytes));
    },
  );
  if (pull.prunePrefix !== undefined) await pruneLocal(ctx, pull.dataset, pull.prunePrefix, pull);
  return result.bytes;
}

async function localSnapshots(ctx: AgentContext, dataset: string): Promise<SnapshotInfo[]> {
  if (!(await ctx.zfs.exists(dataset))) return [];
  const names = await ctx.zfs.snapshots(dataset);
  if (names.length === 0) return [];
  const rows = await ctx.zfs.get(names, ["guid"]);
  return rows.map((r) => ({ name: r.name.slice(r.name.indexOf("@") + 1), guid: r.value }));
}

/**
 * Drops the copy's transfer snapshots under `prefix` but the one just
 * received (the next pull's base) and the newest of each live replica's
 * series: what the volume's other replicas have, so once this copy is
 * promoted they go on with increments from it instead of full sends.
 */
export async function pruneLocal(
  ctx: AgentContext,
  dataset: string,
  prefix: string,
  pull: Pick<Pull, "volume" | "snapshot">,
): Promise<void> {
  const ours = (await ctx.zfs.snapshots(dataset)).filter((s) => s.startsWith(`${dataset}@${prefix}`));
  const keep = new Set([`${dataset}@${pull.snapshot}`]);
  const live = new Set(
    (ctx.volumes.get(pull.volume)?.status?.replicas ?? []).map((r) => replicaSeries(r.node)),
  );
  const newest = new Map<string, string>();
  for (const s of ours) {
    const short = s.slice(s.indexOf("@") + 1);
    const series = short.slice(0, short.lastIndexOf("-") + 1);
    if (isReplicaSnapshot(short) && live.has(series)) newest.set(series, s);
  }
  for (const s of newest.values()) keep.add(s);
  for (const s of ours) if (!keep.has(s)) await ctx.zfs.destroy(s).catch(() => undefined);
}

const BUSY_RETRIES_MS = [200, 500, 1000, 2000];

/** Destroys a copy this node does not own (never mounted into a pod: `-f` only gets past zfs-fuse's "busy"). */
export async function destroyCopy(ctx: AgentContext, dataset: string): Promise<void> {
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

export function transferTls(ctx: AgentContext): TransferTls {
  if (!ctx.transfer) {
    throw new Error(
      `node ${ctx.node} has no transfer certificate (start skein csi-node with --transfer-secret-namespace or --transfer-cert-dir)`,
    );
  }
  return ctx.transfer.tls;
}

/** Where `node`'s transfer endpoint is: its InternalIP and the cluster's transfer port. */
export function peerOf(ctx: AgentContext, node: string): Peer {
  transferTls(ctx);
  const addresses = ctx.nodes.get(node)?.status?.addresses ?? [];
  const ip = addresses.find((a) => a.type === "InternalIP")?.address;
  if (!ip)
    throw new Error(
      `node ${node} has no InternalIP to reach its transfer endpoint at; is the Node registered?`,
    );
  return { node, host: ip, port: ctx.transfer?.peerPort ?? 0 };
}
