/**
 * Converges one Volume that this node owns into its dataset `<pool>/skein/<name>`:
 *
 *   being deleted      → destroy the dataset (once no Snapshot of it is left), drop the finalizer
 *   no dataset         → create it (or restore/clone it from a source), tagged last, so a
 *                        dataset without tags is a create that died half-way and is redone
 *   dataset exists     → raise the quota to the capacity, set tuning properties that differ
 *   always             → report space, phase and conditions; on failure the gRPC code
 *
 * A create that fails destroys what it made before reporting, so no half-made
 * dataset outlives the attempt.
 */
import { setTimeout as sleep } from "node:timers/promises";
import type { Volume } from "../../api/v1alpha1/index.ts";
import { describeError } from "../../kit/errors.ts";
import { isConflict, isNotFound } from "../../kit/k8s/api-status.ts";
import { CsiError } from "../grpc/status.ts";
import { publishedAt } from "../mount.ts";
import { DATASET_FINALIZER, DELETE_REQUESTED_ANNOTATION, finalizerPatch } from "../skein-api.ts";
import { ZfsError } from "../zfs/errors.ts";
import { volumeDataset, volumeSnapshot } from "../zfs/names.ts";
import type { PropertyRow } from "../zfs/parse.ts";
import { type AgentContext, holderOf, type Outcome, snapshotKey } from "./context.ts";
import { type Failure, failureOf } from "./failure.ts";
import { releasedFor } from "./migration-plan.ts";
import {
  capacityProperties,
  createProperties,
  observedPropertyNames,
  ownership,
  propertyChanges,
  spaceOf,
  statusPatch,
  tags,
  volumeStatus,
} from "./plan.ts";

/** How often a volume waiting on something outside the agent's events is looked at again. */
const WAIT_MS = 2_000;

export async function reconcileVolume(ctx: AgentContext, name: string): Promise<Outcome> {
  const volume = ctx.volumes.get(name);
  // The owner acts; a node that handed the volume over leaves it to the new owner.
  if (!volume || volume.spec.ownerNode !== ctx.node) return {};
  const dataset = volumeDataset(ctx.pool, name);
  if (volume.metadata.deletionTimestamp) return deleteVolume(ctx, volume, dataset);

  const withFinalizer = finalizerPatch(volume.metadata, DATASET_FINALIZER, true);
  if (withFinalizer) {
    // The patch event brings the volume back with the finalizer in place.
    await ctx.api.patch("Volume", name, withFinalizer);
    return {};
  }

  let props = await readProperties(ctx, volume, dataset);
  if (props && ownership(volume, props) === "foreign") {
    return report(ctx, volume, {
      kind: "failed",
      node: ctx.node,
      dataset,
      failure: {
        grpcCode: "FAILED_PRECONDITION",
        message: `dataset ${dataset} holds the data of an earlier volume named ${name} (its skein.io:uid differs); rename or destroy that dataset, or use another name`,
      },
    });
  }
  if (props && ownership(volume, props) === "untagged") {
    ctx.log.warn({ volume: name, dataset }, "destroying a dataset a failed create left behind");
    await destroyDataset(ctx, dataset);
    props = undefined;
  }

  if (!props) {
    try {
      await createDataset(ctx, volume, dataset);
    } catch (err) {
      // Made, tagged and all, but not mounted: the mount is retried below.
      if (err instanceof ZfsError && /successfully created, but not mounted/.test(err.message)) {
        ctx.log.warn(
          { volume: name, err: err.message },
          "dataset created but not mounted; mounting it again",
        );
      } else return report(ctx, volume, { kind: "failed", node: ctx.node, dataset, failure: failureOf(err) });
    } finally {
      ctx.poolChanged();
    }
    props = await readProperties(ctx, volume, dataset);
    if (!props) throw new Error(`dataset ${dataset} vanished right after it was created`);
  }

  // The dataset exists, so the volume stays usable as it is: the failure is reported beside its space.
  const failedWithData = (err: unknown, seen: Map<string, PropertyRow>) =>
    report(ctx, volume, {
      kind: "failed",
      node: ctx.node,
      dataset,
      failure: failureOf(err),
      space: spaceOf(seen),
    });
  // Released for a migration's cutover: read-only and unmounted until it ends.
  const released = ctx.fenced.has(name) || releasedFor(ctx.migrations.list(), name, ctx.node) !== undefined;
  if (props.get("mounted")?.value === "no" && !released) {
    // zfs-fuse can create a dataset yet fail to mount it ("Input/output error") under load; mount it now.
    try {
      await ctx.zfs.mount(dataset);
    } catch (err) {
      return failedWithData(err, props);
    }
  }
  const changes = propertyChanges(volume, props, { released });
  if (Object.keys(changes).length > 0) {
    try {
      await ctx.zfs.set(dataset, changes);
      ctx.poolChanged();
    } catch (err) {
      return failedWithData(err, props);
    }
    // Space is read again only when the change moved it (a takeover's readonly=off does not).
    if (changes.refquota !== undefined || changes.refreservation !== undefined)
      props = (await readProperties(ctx, volume, dataset)) ?? props;
  }
  return report(ctx, volume, { kind: "ready", node: ctx.node, dataset, space: spaceOf(props) });
}

async function readProperties(
  ctx: AgentContext,
  volume: Volume,
  dataset: string,
): Promise<Map<string, PropertyRow> | undefined> {
  try {
    return await ctx.zfs.properties(dataset, observedPropertyNames(volume));
  } catch (err) {
    if (err instanceof ZfsError && err.code === "ZfsNotFound") return undefined;
    throw err;
  }
}

async function createDataset(ctx: AgentContext, volume: Volume, dataset: string): Promise<void> {
  const source = volume.spec.source;
  if (!source) {
    // One command with every property: ZFS makes all of it or nothing. `-p`
    // recreates <pool>/skein should someone have destroyed it since start-up.
    await ctx.zfs.create(dataset, { properties: createProperties(volume), parents: true });
    ctx.log.info({ volume: volume.metadata.name, dataset }, "created dataset");
    return;
  }
  const origin = sourceSnapshot(ctx, volume);
  try {
    await copyFrom(ctx, volume, dataset, origin);
  } finally {
    if (origin.temporary) await ctx.zfs.destroy(origin.snapshot).catch(() => undefined);
  }
}

interface Origin {
  snapshot: string;
  /** Taken for this copy (a clone of a volume) and destroyed after it. */
  temporary: boolean;
}

/** The local ZFS snapshot a new volume's data comes from. */
function sourceSnapshot(ctx: AgentContext, volume: Volume): Origin {
  const source = volume.spec.source ?? {};
  if (source.snapshot) {
    const snapshot = ctx.snapshots.get(source.snapshot);
    if (!snapshot || snapshot.metadata.deletionTimestamp) {
      throw new CsiError("NOT_FOUND", `source snapshot ${source.snapshot} does not exist`);
    }
    if (!snapshot.status?.readyToUse) {
      throw new CsiError("UNAVAILABLE", `source snapshot ${source.snapshot} is not ready yet; retrying`);
    }
    if (snapshot.status.node !== ctx.node) {
      throw new CsiError(
        "FAILED_PRECONDITION",
        `source snapshot ${source.snapshot} is on node ${snapshot.status.node}, not on ${ctx.node} where this volume is owned; create the volume on that node`,
      );
    }
    return { snapshot: volumeSnapshot(ctx.pool, snapshot.spec.volume, source.snapshot), temporary: false };
  }
  const from = source.volume ?? "";
  const sourceVolume = ctx.volumes.get(from);
  if (!sourceVolume || sourceVolume.metadata.deletionTimestamp) {
    throw new CsiError("NOT_FOUND", `source volume ${from} does not exist`);
  }
  if (holderOf(sourceVolume) !== ctx.node) {
    throw new CsiError(
      "FAILED_PRECONDITION",
      `source volume ${from} is on node ${holderOf(sourceVolume)}, not on ${ctx.node} where this volume is owned; create the clone on that node`,
    );
  }
  // Not a Snapshot object's name: `_` cannot appear in one, so the two never meet.
  return {
    snapshot: `${volumeDataset(ctx.pool, from)}@skein_clone_${volume.metadata.name}`,
    temporary: true,
  };
}

/**
 * A full, independent copy (send/receive) rather than `zfs clone`: a clone
 * stays bound to its origin snapshot, which could then neither be deleted nor
 * move to another node without it.
 */
async function copyFrom(ctx: AgentContext, volume: Volume, dataset: string, origin: Origin): Promise<void> {
  if (origin.temporary) {
    await ctx.zfs.destroy(origin.snapshot).catch((err: unknown) => {
      if (!(err instanceof ZfsError && err.code === "ZfsNotFound")) throw err;
    });
    await ctx.zfs.snapshot(origin.snapshot);
  }
  try {
    await ctx.zfs.sendReceive(origin.snapshot, {}, dataset, {});
    const received = `${dataset}@${origin.snapshot.slice(origin.snapshot.indexOf("@") + 1)}`;
    await ctx.zfs.destroy(received);
    await ctx.zfs.set(dataset, {
      ...capacityProperties(volume.spec.capacityBytes),
      ...(volume.spec.zfsProperties ?? {}),
    });
    // Tagged last: until then the dataset is a half-made copy (see reconcileVolume).
    await ctx.zfs.set(dataset, tags(volume));
    ctx.log.info({ volume: volume.metadata.name, dataset, from: origin.snapshot }, "copied dataset");
  } catch (err) {
    await destroyDataset(ctx, dataset).catch((cleanup: unknown) => {
      if (!(cleanup instanceof ZfsError && cleanup.code === "ZfsNotFound")) {
        ctx.log.error(
          { dataset, err: describeError(cleanup) },
          "could not destroy a half-made copy; retrying later",
        );
      }
    });
    throw err;
  }
}

async function deleteVolume(ctx: AgentContext, volume: Volume, dataset: string): Promise<Outcome> {
  const name = volume.metadata.name ?? "";
  if (!volume.metadata.finalizers?.includes(DATASET_FINALIZER)) return {};
  const dependents = ctx.snapshots.list().filter((s) => s.spec.volume === name);
  const blocking = dependents.filter((s) => !s.metadata.deletionTimestamp);
  if (blocking.length > 0) {
    const names = blocking.map((s) => s.metadata.name).join(", ");
    await report(ctx, volume, {
      kind: "deleting",
      node: ctx.node,
      dataset,
      failure: {
        grpcCode: "FAILED_PRECONDITION",
        message: `volume ${name} still has snapshots (${names}); delete them first`,
      },
    });
    return { requeueAfterMs: WAIT_MS };
  }
  // Snapshots being deleted live inside the dataset: let their finalizers go first.
  if (dependents.length > 0) {
    for (const s of dependents) ctx.enqueue(snapshotKey(s.metadata.name ?? ""));
    return { requeueAfterMs: WAIT_MS };
  }
  const requested = volume.metadata.annotations?.[DELETE_REQUESTED_ANNOTATION];
  if (requested !== undefined && ctx.deleteRequests.get(name) !== requested) {
    // DeleteVolume asked again: clear the last attempt's error first, so the
    // waiting call reports only what this attempt finds.
    ctx.deleteRequests.set(name, requested);
    if (volume.status?.error) {
      await report(ctx, volume, { kind: "deleting", node: ctx.node, dataset });
      return {};
    }
  }
  let failure: Failure | undefined;
  try {
    const props = await readProperties(ctx, volume, dataset);
    if (props && ownership(volume, props) !== "foreign") {
      await destroyDataset(ctx, dataset);
      ctx.poolChanged();
      ctx.log.info({ volume: name, dataset }, "destroyed dataset");
    }
  } catch (err) {
    failure = failureOf(err);
  }
  if (failure) {
    await report(ctx, volume, { kind: "deleting", node: ctx.node, dataset, failure });
    throw new CsiError(failure.grpcCode, failure.message);
  }
  const patch = finalizerPatch(volume.metadata, DATASET_FINALIZER, false);
  if (patch) await ctx.api.patch("Volume", name, patch).catch(ignoreGone);
  ctx.deleteRequests.delete(name);
  return {};
}

// zfs-fuse can call a dataset busy for several seconds after its last use.
const BUSY_RETRIES_MS = [100, 300, 1000, 2000, 4000];

/**
 * `zfs destroy -r`, for a volume published nowhere. zfs-fuse can call a
 * dataset busy for a long while after files were written in it, with no mount
 * or process holding it; once no bind mount of the dataset is left on this
 * node (so no pod can be using it), force (`-f`) unmounts it anyway. A volume
 * that is still published is FAILED_PRECONDITION: unpublish it first.
 */
async function destroyDataset(ctx: AgentContext, dataset: string): Promise<void> {
  for (let attempt = 0; ; attempt++) {
    // Checked before every attempt: even a plain destroy unmounts the dataset,
    // which would pull the filesystem from under a pod's bind mount.
    const published = await publishedAt(dataset);
    if (published.length > 0) {
      throw new CsiError(
        "FAILED_PRECONDITION",
        `dataset ${dataset} is still published at ${published.join(", ")}; unpublish the volume first`,
      );
    }
    try {
      await ctx.zfs.destroy(dataset, { recursive: true, force: attempt > 0 });
      return;
    } catch (err) {
      const wait = BUSY_RETRIES_MS[attempt];
      if (!(err instanceof ZfsError && err.code === "ZfsBusy") || wait === undefined) throw err;
      await sleep(wait);
    }
  }
}

function ignoreGone(err: unknown): void {
  if (!isNotFound(err)) throw err;
}

type Observation = Parameters<typeof volumeStatus>[1];

async function report(ctx: AgentContext, volume: Volume, seen: Observation): Promise<Outcome> {
  const name = volume.metadata.name ?? "";
  const next = volumeStatus(volume, seen, ctx.now());
  const patch = statusPatch(volume.status, next);
  if (patch) {
    try {
      await ctx.api.patchStatus("Volume", name, {
        metadata: { resourceVersion: volume.metadata.resourceVersion },
        status: patch,
      });
    } catch (err) {
      // A newer version exists: its event will bring the volume back.
      if (isConflict(err) || isNotFound(err)) return {};
      throw err;
    }
  }
  if (seen.kind === "failed") {
    ctx.log.warn(
      { volume: name, code: seen.failure.grpcCode, err: seen.failure.message },
      "volume not converged",
    );
    throw new CsiError(seen.failure.grpcCode, seen.failure.message);
  }
  return {};
}
