import { describe, expect, it } from "vitest";
import { SnapshotSignals } from "./snapshot-signals.ts";

describe("snapshot signals", () => {
  it("wakes every waiter of the snapshot committed, and only those", async () => {
    const signals = new SnapshotSignals();
    const a1 = signals.wait("p/v@a", 5_000);
    const a2 = signals.wait("p/v@a", 5_000);
    const b = signals.wait("p/v@b", 50);
    signals.commit("p/v@a");
    expect(await Promise.all([a1, a2, b])).toEqual([true, true, false]);
  });

  it("answers at once for a snapshot committed before, and remembers it", async () => {
    const signals = new SnapshotSignals();
    signals.commit("p/v@early");
    // Not woken by anything: only the memory of the commit makes this true.
    expect(await signals.wait("p/v@early", 50)).toBe(true);
    expect(signals.has("p/v@early")).toBe(true);
    expect(signals.has("p/v@other")).toBe(false);
  });

  it("answers false when the snapshot is not committed in time", async () => {
    const signals = new SnapshotSignals();
    expect(await signals.wait("p/v@late", 20)).toBe(false);
    expect(signals.has("p/v@late")).toBe(false);
  });
});
