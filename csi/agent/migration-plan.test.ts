import { describe, expect, it } from "vitest";
import type { Volume, VolumeMigration, VolumeMigrationStatus } from "../../api/v1alpha1/index.ts";
import { closeBehind, finalSnapshot, refusal, releasedFor, roleOf, roundSnapshot } from "./migration-plan.ts";
import { replicaSeries } from "./replica-plan.ts";

const MiB = 1024 * 1024;

function migration(status: VolumeMigrationStatus = {}, target = "b"): VolumeMigration {
  return {
    apiVersion: "skein.io/v1alpha1",
    kind: "VolumeMigration",
    metadata: { name: "m", uid: "0123abcd-4567-89ef" },
    spec: { volume: "v", targetNode: target, force: false },
    status,
  };
}

const volume = { metadata: { name: "v" }, spec: { ownerNode: "a" } } as Volume;
const volumes = (name: string) => (name === "v" ? volume : undefined);
const round = { v: 1, op: "round", volume: "v", snapshot: "skein-xfer-x-1" } as const;

describe("a node's part in a migration", () => {
  it("knows its role", () => {
    const m = migration({ phase: "Replicating", sourceNode: "a" });
    expect([roleOf(m, "a"), roleOf(m, "b"), roleOf(m, "c")]).toEqual(["source", "target", undefined]);
  });

  it("names a migration's snapshots in one series, with the transfer prefix", () => {
    const m = migration();
    expect(roundSnapshot(m, 3)).toBe("skein-xfer-0123abcd4567-3");
    expect(finalSnapshot(m)).toBe("skein-xfer-0123abcd4567-final");
  });

  it.each<[string, VolumeMigrationStatus, boolean]>([
    ["no round yet", { phase: "Replicating", round: 0 }, false],
    ["a big last delta", { phase: "Replicating", round: 2, lastRoundBytes: 64 * MiB }, false],
    ["a small last delta", { phase: "Replicating", round: 2, lastRoundBytes: MiB }, true],
    ["already released", { phase: "Replicating", round: 2, lastRoundBytes: MiB, finalSnapshot: "f" }, false],
    ["not replicating", { phase: "Pending", round: 2, lastRoundBytes: MiB }, false],
  ])("releases the source only when the copy is close behind: %s", (_what, status, expected) => {
    expect(closeBehind(migration(status))).toBe(expected);
  });

  it("fences a volume only for a released, unfinished migration from this node", () => {
    const released = migration({ phase: "CuttingOver", sourceNode: "a", finalSnapshot: "f" });
    expect(releasedFor([released], "v", "a")).toBe(released);
    expect(releasedFor([released], "v", "b")).toBeUndefined();
    expect(
      releasedFor([migration({ phase: "RolledBack", sourceNode: "a", finalSnapshot: "f" })], "v", "a"),
    ).toBeUndefined();
  });

  it.each<[string, VolumeMigration[], string, string | undefined]>([
    [
      "the target of a started migration",
      [migration({ phase: "Replicating", sourceNode: "a" })],
      "b",
      undefined,
    ],
    ["another node", [migration({ phase: "Replicating", sourceNode: "a" })], "c", "no migration"],
    ["the target of a migration not started", [migration({ phase: "Pending" })], "b", "no migration"],
    [
      "the target of a finished migration",
      [migration({ phase: "Completed", sourceNode: "a" })],
      "b",
      "no migration",
    ],
    ["a node when no migration exists", [], "b", "no migration"],
  ])("lets %s pull", (_what, migrations, peer, refused) => {
    const why = refusal(migrations, volumes, "a", peer, round);
    if (refused === undefined) expect(why).toBeUndefined();
    else expect(why).toContain(refused);
  });

  it("refuses requests for a volume that does not exist", () => {
    expect(refusal([], volumes, "a", "b", { ...round, volume: "w" })).toMatch(/does not exist/);
  });

  describe("replica nodes", () => {
    const replicated = {
      metadata: { name: "v" },
      spec: { ownerNode: "a" },
      status: { node: "a", replicas: [{ node: "c" }] },
    } as Volume;
    const get = (name: string) => (name === "v" ? replicated : undefined);

    it("lets a replica node list snapshots and take rounds in its own series", () => {
      expect(refusal([], get, "a", "c", { v: 1, op: "snapshots", volume: "v" })).toBeUndefined();
      expect(refusal([], get, "a", "c", { ...round, snapshot: `${replicaSeries("c")}123` })).toBeUndefined();
    });

    it("refuses a replica's round named in another series, and nodes that keep no replica", () => {
      expect(refusal([], get, "a", "c", { ...round, snapshot: `${replicaSeries("d")}123` })).toMatch(
        /must be named skein-xfer-r/,
      );
      expect(refusal([], get, "a", "d", round)).toMatch(/keeps no replica/);
    });

    it("serves replicas only as the owner", () => {
      expect(refusal([], get, "b", "c", { v: 1, op: "snapshots", volume: "v" })).toMatch(/keeps no replica/);
    });
  });
});
