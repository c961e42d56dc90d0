import { describe, expect, it } from "vitest";
import { Backoff, type BackoffPolicy, backoffDelay } from "./backoff.ts";

describe("backoffDelay", () => {
  const policy: BackoffPolicy = { initialMs: 100, maxMs: 1_000 };
  it.each([
    { failures: 0, random: 0, want: 100 },
    { failures: 1, random: 0, want: 200 },
    { failures: 3, random: 0, want: 800 },
    { failures: 4, random: 0, want: 1_000 },
    { failures: 5_000, random: 0, want: 1_000 },
    { failures: -3, random: 0, want: 100 },
  ])("grows exponentially and caps: failures=$failures → $want ms", ({ failures, random, want }) => {
    expect(backoffDelay(policy, failures, () => random)).toBe(want);
  });

  it.each([
    { random: 0, want: 800 },
    { random: 0.5, want: 600 },
    { random: 0.999999, want: 400.0004 },
  ])("jitter draws from [d·(1−j), d] (random=$random)", ({ random, want }) => {
    const delay = backoffDelay({ ...policy, jitter: 0.5 }, 3, () => random);
    expect(delay).toBeCloseTo(want, 3);
  });

  it("never exceeds the cap with jitter", () => {
    for (let failures = 0; failures < 50; failures++) {
      const d = backoffDelay({ initialMs: 1, maxMs: 30_000, jitter: 0.2 }, failures);
      expect(d).toBeLessThanOrEqual(30_000);
      expect(d).toBeGreaterThanOrEqual(0);
    }
  });

  it("honours a custom factor", () => {
    expect(backoffDelay({ initialMs: 10, maxMs: 1e9, factor: 3 }, 2, () => 0)).toBe(90);
  });

  it.each([
    { policy: { initialMs: -1, maxMs: 10 }, message: /initialMs <= maxMs/ },
    { policy: { initialMs: 20, maxMs: 10 }, message: /initialMs <= maxMs/ },
    { policy: { initialMs: 1, maxMs: 10, factor: 0.5 }, message: /factor/ },
    { policy: { initialMs: 1, maxMs: 10, jitter: 1.5 }, message: /jitter/ },
  ])("rejects a nonsensical policy: $policy", ({ policy: bad, message }) => {
    expect(() => backoffDelay(bad, 0)).toThrow(message);
    expect(() => new Backoff(bad)).toThrow(message);
  });
});

describe("Backoff", () => {
  it("counts failures until reset", () => {
    const b = new Backoff({ initialMs: 1, maxMs: 100 }, () => 0);
    expect([b.next(), b.next(), b.next()]).toEqual([1, 2, 4]);
    expect(b.attempts).toBe(3);
    b.reset();
    expect(b.next()).toBe(1);
  });
});
