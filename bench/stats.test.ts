import { describe, expect, it } from "vitest";
import { median, percentile } from "./stats.ts";

describe("median", () => {
  it.each([
    [[3, 1, 2], 2],
    [[4, 1, 3, 2], 2.5],
    [[7], 7],
  ])("of %j is %d", (samples, want) => expect(median(samples)).toBe(want));
  it("refuses no samples", () => expect(() => median([])).toThrow(/no samples/));
});

describe("percentile", () => {
  const hundred = Array.from({ length: 100 }, (_, i) => i + 1);
  it.each([
    [50, 50],
    [99, 99],
    [100, 100],
    [1, 1],
  ])("p%d of 1..100 is %d", (p, want) => expect(percentile(hundred, p)).toBe(want));
});
