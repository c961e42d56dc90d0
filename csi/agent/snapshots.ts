/**
 * Converges one Snapshot of a volume this node holds into the ZFS snapshot
 * `<pool>/skein/<volume>@<snapshot>`: take it once, report it ready with its
 * size and creation time, destroy it when the Snapshot is deleted. A ZFS
 * snapshot lives inside its volume's dataset, so it moves with the volume and
 * survives agent restarts; the agent only reads it back.
 */
import type { Snapshot } from "../../api/v1alpha1/index.ts";
import { isConflict, isNotFound } from "../../kit/k8s/api-status.ts";
import { formatTime } from "../../kit/k8s/conditions.ts";
import { CsiError } from "../grpc/status.ts";
import { finalizerPatch, SNAPSHOT_FINALIZER } from "../skein-api.ts";
import { ZfsError } from "../zfs/errors.ts";
import { volumeSnapshot } from "../zfs/names.ts";
import type { PropertyRow } from "../zfs/parse.ts";
import { type AgentContext, holderOf, type Outcome, volumeKey } from "./context.ts";
import { type Failure, failureOf } from "./failure.ts";
import { snapshotFailedStatus, snapshotReadyStatus, statusPatch, TAG_SNAPSHOT, TAG_UID } from "./plan.ts";

const WAIT_MS = 1_000;

export async function reconcileSnapshot(ctx: AgentContext, name: string): Promise<Outcome> {
  const snapshot = ctx.snapshots.get(name);
  if (!snapshot) return {};
  const volume = ctx.volumes.get(snapshot.spec.volume);
  const holder = snapshot.status?.node ?? (volume ? holderOf(volume) : undefined);
  if (holder !== ctx.node) return {};
  const zfsName = volumeSnapshot(ctx.pool, snapshot.spec.volume, name);

  if (snapshot.metadata.deletionTimestamp) {
    if (!snapshot.metadata.finalizers?.includes(SNAPSHOT_FINALIZER)) return {};
    try {
      await ctx.zfs.destroy(zfsName);
      ctx.poolChanged();
      ctx.log.info({ snapshot: name, zfsSnapshot: zfsName }, "destroyed snapshot");
    } catch (err) {
      if (!(err instanceof ZfsError && err.code === "ZfsNotFound")) {
        await report(ctx, snapshot, failureOf(err));
        throw err;
      }
    }
    const patch = finalizerPatch(snapshot.metadata, SNAPSHOT_FINALIZER, false);
    if (patch) await ctx.api.patch("Snapshot", name, patch).catch(ignoreGone);
    ctx.enqueue(volumeKey(snapshot.spec.volume));
    return {};
  }

  if (!volume) {
    return report(ctx, snapshot, {
      grpcCode: "NOT_FOUND",
      message: `volume ${snapshot.spec.volume} does not exist`,
    });
  }
  const withFinalizer = finalizerPatch(snapshot.metadata, SNAPSHOT_FINALIZER, true);
  if (withFinalizer) {
    await ctx.api.patch("Snapshot", name, withFinalizer);
    return {};
  }
  let props = await readSnapshot(ctx, zfsName);
  if (!props) {
    if (volume.metadata.deletionTimestamp) {
      return report(ctx, snapshot, {
        grpcCode: "FAILED_PRECONDITION",
        message: `volume ${snapshot.spec.volume} is being deleted; snapshot a volume that is not`,
      });
    }
    if (volume.status?.phase !== "Ready") return { requeueAfterMs: WAIT_MS };
    if (snapshot.status?.readyToUse) {
      return report(ctx, snapshot, {
        grpcCode: "NOT_FOUND",
        message: `ZFS snapshot ${zfsName} is gone although it was ready (destroyed outside Skein?); delete this Snapshot`,
      });
    }
    try {
      await ctx.zfs.snapshot(zfsName, {
        properties: { [TAG_SNAPSHOT]: name, [TAG_UID]: snapshot.metadata.uid ?? "" },
      });
      ctx.poolChanged();
      ctx.log.info({ snapshot: name, zfsSnapshot: zfsName }, "took snapshot");
    } catch (err) {
      if (!(err instanceof ZfsError && err.code === "ZfsAlreadyExists"))
        return report(ctx, snapshot, failureOf(err));
    }
    props = await readSnapshot(ctx, zfsName);
    if (!props) throw new Error(`ZFS snapshot ${zfsName} vanished right after it was taken`);
  }
  const created = Number(props.get("creation")?.value ?? "0");
  const next = snapshotReadyStatus(
    snapshot,
    {
      node: ctx.node,
      zfsSnapshot: zfsName,
      sizeBytes: Number(props.get("referenced")?.value ?? "0"),
      creationTime: formatTime(new Date(created * 1000)),
    },
    ctx.now(),
  );
  await writeStatus(ctx, snapshot, next);
  return {};
}

async function readSnapshot(
  ctx: AgentContext,
  zfsName: string,
): Promise<Map<string, PropertyRow> | undefined> {
  try {
    return await ctx.zfs.properties(zfsName, ["creation", "referenced"]);
  } catch (err) {
    if (err instanceof ZfsError && err.code === "ZfsNotFound") return undefined;
    throw err;
  }
}

async function report(ctx: AgentContext, snapshot: Snapshot, failure: Failure): Promise<Outcome> {
  await writeStatus(ctx, snapshot, snapshotFailedStatus(snapshot, ctx.node, failure, ctx.now()));
  ctx.log.warn(
    { snapshot: snapshot.metadata.name, code: failure.grpcCode, err: failure.message },
    "snapshot not converged",
  );
  throw new CsiError(failure.grpcCode, failure.message);
}

async function writeStatus(ctx: AgentContext, snapshot: Snapshot, next: object): Promise<void> {
  const patch = statusPatch(snapshot.status, next);
  if (!patch) return;
  try {
    await ctx.api.patchStatus("Snapshot", snapshot.metadata.name ?? "", {
      metadata: { resourceVersion: snapshot.metadata.resourceVersion },
      status: patch,
    });
  } catch (err) {
    if (!(isConflict(err) || isNotFound(err))) throw err;
  }
}

function ignoreGone(err: unknown): void {
  if (!isNotFound(err)) throw err;
}
