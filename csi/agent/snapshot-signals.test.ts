import { describe, expect, it } from "vitest";
import { SnapshotSignals } from "./snapshot-signals.ts";

describe("snapshot signals", () => {
  it("wakes every waiter of the snapshot committed with its GUID, and only those", async () => {
    const signals = new SnapshotSignals();
    const a1 = signals.wait("p/v@a", 5_000);
    const a2 = signals.wait("p/v@a", 5_000);
    const b = signals.wait("p/v@b", 50);
    signals.commit("p/v@a", "123");
    expect(await Promise.all([a1, a2, b])).toEqual(["123", "123", undefined]);
  });

  it("answers at once for a snapshot committed before, and remembers it", async () => {
    const signals = new SnapshotSignals();
    signals.commit("p/v@early", "7");
    // Not woken by anything: only the memory of the commit answers within the wait.
    expect(await signals.wait("p/v@early", 50)).toBe("7");
    expect(signals.has("p/v@early")).toBe(true);
    expect(signals.has("p/v@other")).toBe(false);
  });

  it("answers undefined when the snapshot is not committed in time", async () => {
    const signals = new SnapshotSignals();
    expect(await signals.wait("p/v@late", 20)).toBeUndefined();
    expect(signals.has("p/v@late")).toBe(false);
  });
});
