import { describe, expect, it } from "vitest";
import type { Volume, VolumeMigration, VolumeMigrationStatus } from "../../api/v1alpha1/index.ts";
import { decide, type Observed } from "./decide.ts";

const NOW = new Date("2026-01-01T00:01:00Z");

function migration(
  status?: VolumeMigrationStatus,
  spec: Partial<VolumeMigration["spec"]> = {},
): VolumeMigration {
  return {
    apiVersion: "skein.io/v1alpha1",
    kind: "VolumeMigration",
    metadata: { name: "m", generation: 1, resourceVersion: "5" },
    spec: { volume: "v", targetNode: "b", force: false, ...spec },
    ...(status ? { status } : {}),
  };
}

function volume(ownerNode: string, statusNode = ownerNode, phase: "Ready" | "Pending" = "Ready"): Volume {
  return {
    apiVersion: "skein.io/v1alpha1",
    kind: "Volume",
    metadata: { name: "v", resourceVersion: "42" },
    spec: { capacityBytes: 1, ownerNode },
    status: { node: statusNode, phase },
  };
}

const observe = (o: Partial<Observed>): Observed => ({
  migration: migration(),
  volume: volume("a"),
  targetExists: true,
  ownerLost: false,
  olderActive: [],
  snapshots: [],
  now: NOW,
  cutoverTimeoutMs: 60_000,
  ...o,
});

const phaseOf = (o: Partial<Observed>) => {
  const step = decide(observe(o));
  return step.kind === "status" ? step.status.phase : step.kind;
};

describe("the VolumeMigration state machine", () => {
  it.each<[string, Partial<Observed>, string | undefined]>([
    ["starts replicating from the owner", {}, "Replicating"],
    ["fails when the volume is gone", { volume: undefined }, "Failed"],
    [
      "fails when the owner is not the expected source",
      { migration: migration(undefined, { sourceNode: "c" }) },
      "Failed",
    ],
    ["fails for a target node that does not exist", { targetExists: false }, "Failed"],
    ["refuses volumes with snapshots (their data does not move yet)", { snapshots: ["s1"] }, "Failed"],
    ["waits behind an older migration of the same volume", { olderActive: ["older"] }, "wait"],
    ["completes at once when the volume is already there", { volume: volume("b") }, "Completed"],
    [
      "keeps replicating until the source releases",
      { migration: migration({ phase: "Replicating", sourceNode: "a", round: 3 }) },
      "none",
    ],
    [
      "cuts over once the source released the volume",
      {
        migration: migration({
          phase: "Replicating",
          sourceNode: "a",
          finalSnapshot: "f",
          sourceReleasedTime: "2026-01-01T00:00:59Z",
        }),
      },
      "CuttingOver",
    ],
    [
      "waits for the final increment within the cutover timeout",
      {
        migration: migration({
          phase: "CuttingOver",
          sourceNode: "a",
          finalSnapshot: "f",
          sourceReleasedTime: "2026-01-01T00:00:30Z",
        }),
      },
      "wait",
    ],
    [
      "rolls back when the target is not ready within the timeout",
      {
        migration: migration({
          phase: "CuttingOver",
          sourceNode: "a",
          finalSnapshot: "f",
          sourceReleasedTime: "2025-12-31T23:59:00Z",
        }),
      },
      "RolledBack",
    ],
    [
      "moves ownership once the target holds the final snapshot",
      {
        migration: migration({
          phase: "CuttingOver",
          sourceNode: "a",
          finalSnapshot: "f",
          sourceReleasedTime: "2026-01-01T00:00:00Z",
          targetReadyTime: "2026-01-01T00:00:01Z",
        }),
      },
      "moveOwner",
    ],
    [
      "never rolls back after ownership moved, even past the timeout",
      {
        migration: migration({
          phase: "CuttingOver",
          sourceNode: "a",
          finalSnapshot: "f",
          sourceReleasedTime: "2026-01-01T00:00:00Z",
        }),
        volume: volume("b", "a"),
      },
      "wait",
    ],
    [
      "fails when someone else moved the volume",
      { migration: migration({ phase: "Replicating", sourceNode: "a" }), volume: volume("c") },
      "Failed",
    ],
    [
      "leaves finished migrations alone",
      { migration: migration({ phase: "RolledBack", sourceNode: "a" }) },
      "none",
    ],
  ])("%s", (_what, observed, expected) => {
    expect(phaseOf(observed)).toBe(expected);
  });

  it("compare-and-swaps ownership against the Volume it observed", () => {
    const step = decide(
      observe({
        migration: migration({
          phase: "CuttingOver",
          sourceNode: "a",
          finalSnapshot: "f",
          targetReadyTime: "2026-01-01T00:00:01Z",
        }),
      }),
    );
    expect(step).toEqual({ kind: "moveOwner", from: "a", to: "b", resourceVersion: "42" });
  });

  it("completes with the measured downtime once the new owner reports the volume ready", () => {
    const step = decide(
      observe({
        migration: migration({
          phase: "CuttingOver",
          sourceNode: "a",
          sourceReleasedTime: "2026-01-01T00:00:59Z",
        }),
        volume: volume("b"),
      }),
    );
    expect(step.kind === "status" && step.status).toMatchObject({
      phase: "Completed",
      downtimeMilliseconds: 1000,
    });
  });

  it("counts a move that a pod's scheduling started as downtime from the migration's creation", () => {
    const started = migration(
      { phase: "CuttingOver", sourceNode: "a", sourceReleasedTime: "2026-01-01T00:00:59.750Z" },
      { reason: "ControllerPublishVolume" },
    );
    // The pod had left the source already: it waited through the copy, not just the cutover.
    started.metadata.creationTimestamp = new Date("2026-01-01T00:00:48Z");
    const step = decide(observe({ migration: started, volume: volume("b") }));
    expect(step.kind === "status" && step.status.downtimeMilliseconds).toBe(12_000);
  });

  it("measures downtime to the millisecond", () => {
    const step = decide(
      observe({
        migration: migration({
          phase: "CuttingOver",
          sourceNode: "a",
          sourceReleasedTime: "2026-01-01T00:00:59.750Z",
        }),
        volume: volume("b"),
      }),
    );
    expect(step.kind === "status" && step.status.downtimeMilliseconds).toBe(250);
  });

  describe("forced promotion of a replica", () => {
    const forced = (status?: VolumeMigrationStatus) => migration(status, { force: true });
    const withReplica = (lastSyncTime = "2026-01-01T00:00:50Z", lagSeconds = 3): Volume => ({
      ...volume("a"),
      status: {
        node: "a",
        phase: "Ready",
        replicas: [
          { node: "b", lastSyncedSnapshot: "skein-xfer-rb-1", lastSyncTime, lagSeconds },
          { node: "c" },
        ],
      },
    });

    it("promotes the target's synced replica once the owner is lost, stating the data-loss window", () => {
      const step = decide(observe({ migration: forced(), volume: withReplica(), ownerLost: true }));
      expect(step.kind === "status" && step.status).toMatchObject({
        phase: "CuttingOver",
        sourceNode: "a",
        finalSnapshot: "skein-xfer-rb-1",
        // Data up to 00:00:47 (synced at :50 with 3 s of lag), lost at 00:01:00.
        dataLossWindowSeconds: 13,
      });
      expect(step.kind === "status" && step.event?.type).toBe("Warning");
    });

    it.each<[string, Partial<Observed>, string]>([
      ["the owner still serves the volume", { migration: forced(), volume: withReplica() }, "OwnerNotLost"],
      [
        "the target holds no synced replica",
        {
          migration: migration(undefined, { force: true, targetNode: "c" }),
          volume: withReplica(),
          ownerLost: true,
        },
        "NoReplica",
      ],
      ["the volume has no replica at all", { migration: forced(), ownerLost: true }, "NoReplica"],
    ])("refuses when %s", (_what, observed, reason) => {
      const step = decide(observe(observed));
      expect(step.kind === "status" && step.status.phase).toBe("Failed");
      expect(step.kind === "status" && step.event?.reason).toBe(reason);
    });

    it("fails a promotion the target does not finish in time, rather than rolling back to a lost owner", () => {
      const step = decide(
        observe({
          migration: forced({
            phase: "CuttingOver",
            sourceNode: "a",
            finalSnapshot: "skein-xfer-rb-1",
            sourceReleasedTime: "2025-12-31T23:59:00Z",
          }),
          volume: withReplica(),
          ownerLost: true,
        }),
      );
      expect(step.kind === "status" && step.event?.reason).toBe("PromotionTimedOut");
    });

    it("moves ownership away from the lost owner once the target promoted its copy", () => {
      const step = decide(
        observe({
          migration: forced({
            phase: "CuttingOver",
            sourceNode: "a",
            finalSnapshot: "skein-xfer-rb-1",
            sourceReleasedTime: "2026-01-01T00:00:59Z",
            targetReadyTime: "2026-01-01T00:01:00Z",
          }),
          volume: withReplica(),
          ownerLost: true,
        }),
      );
      expect(step).toEqual({ kind: "moveOwner", from: "a", to: "b", resourceVersion: "42" });
    });
  });

  it.each<[string, VolumeMigrationStatus | undefined]>([
    ["before it starts", undefined],
    ["while replicating", { phase: "Replicating", sourceNode: "a", round: 2 }],
  ])(
    "fails an ordinary migration whose source node is lost %s, pointing at forced promotion",
    (_w, status) => {
      const step = decide(observe({ migration: migration(status), ownerLost: true }));
      expect(step.kind === "status" && step.event?.reason).toBe("SourceLost");
      expect(step.kind === "status" && step.event?.note).toMatch(/force/);
    },
  );
});
