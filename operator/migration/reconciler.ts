/**
 * Drives VolumeMigrations (decide.ts says what; this does it): writes the
 * phase, records Events, and moves `Volume.spec.ownerNode` by a
 * compare-and-swap update (the Volume's resourceVersion), so an owner changed
 * by anyone else in between makes the swap fail instead of being overwritten.
 */
import type { KubeConfig, V1Node } from "@kubernetes/client-node";
import type { Snapshot, Volume, VolumeMigration } from "../../api/v1alpha1/index.ts";
import { SkeinApi } from "../../csi/skein-api.ts";
import { isNotFound } from "../../kit/k8s/api-status.ts";
import { type EventRecorder, objectReference } from "../../kit/k8s/events.ts";
import type { Informer } from "../../kit/k8s/informer.ts";
import type { Logger } from "../../kit/log.ts";
import { isLost } from "../replication/place.ts";
import { decide } from "./decide.ts";

export interface MigrationDeps {
  kubeConfig: KubeConfig;
  migrations: Informer<VolumeMigration>;
  volumes: Informer<Volume>;
  snapshots: Informer<Snapshot>;
  nodes: Informer<V1Node>;
  events: EventRecorder;
  log: Logger;
  /** How long the source stays released without the target getting ready before the move is rolled back. */
  cutoverTimeoutMs: number;
}

export class MigrationReconciler {
  private readonly api: SkeinApi;

  constructor(private readonly deps: MigrationDeps) {
    this.api = new SkeinApi(deps.kubeConfig);
  }

  /** The migrations of a changed Volume. */
  keysForVolume = (volume: Volume): string[] =>
    this.deps.migrations
      .list()
      .filter((m) => m.spec.volume === volume.metadata.name)
      .map((m) => m.metadata.name ?? "");

  async reconcile(name: string): Promise<{ requeueAfterMs?: number } | undefined> {
    const migration = this.deps.migrations.get(name);
    if (!migration) return;
    const created = (m: VolumeMigration) => `${m.metadata.creationTimestamp ?? ""}/${m.metadata.name}`;
    const olderActive = this.deps.migrations
      .list()
      .filter(
        (o) =>
          o.spec.volume === migration.spec.volume &&
          o.metadata.name !== name &&
          !["Completed", "Failed", "RolledBack"].includes(o.status?.phase ?? "") &&
          created(o) < created(migration),
      )
      .map((o) => o.metadata.name ?? "");
    const volume = this.deps.volumes.get(migration.spec.volume);
    const step = decide({
      migration,
      volume,
      targetExists: this.deps.nodes.get(migration.spec.targetNode) !== undefined,
      ownerLost: volume !== undefined && isLost(this.deps.nodes.get(volume.spec.ownerNode)),
      olderActive,
      snapshots: this.deps.snapshots
        .list()
        .filter((s) => s.spec.volume === migration.spec.volume)
        .map((s) => s.metadata.name ?? ""),
      now: new Date(),
      cutoverTimeoutMs: this.deps.cutoverTimeoutMs,
    });
    const log = this.deps.log.child({ migration: name, volume: migration.spec.volume });
    switch (step.kind) {
      case "none":
        return;
      case "wait":
        return { requeueAfterMs: step.afterMs };
      case "status":
        try {
          await this.api.patchStatus("VolumeMigration", name, {
            metadata: { resourceVersion: migration.metadata.resourceVersion },
            status: step.status,
          });
        } catch (err) {
          if (isNotFound(err)) return;
          throw err;
        }
        log.info({ phase: step.status.phase }, step.event?.note ?? "migration status changed");
        if (step.event) {
          this.deps.events.record({
            regarding: objectReference(migration),
            type: step.event.type,
            reason: step.event.reason,
            action: "Migrate",
            note: step.event.note,
          });
        }
        return;
      case "moveOwner":
        // The swap: fails with 409 when the Volume changed since it was observed.
        await this.api.patch("Volume", migration.spec.volume, {
          metadata: { resourceVersion: step.resourceVersion },
          spec: { ownerNode: step.to },
        });
        log.info({ from: step.from, to: step.to }, "moved ownership");
        this.deps.events.record({
          regarding: objectReference(migration),
          type: "Normal",
          reason: "OwnerMoved",
          action: "Migrate",
          note: `volume ${migration.spec.volume} is now owned by ${step.to}`,
        });
        return { requeueAfterMs: 500 };
    }
  }
}
