import { afterEach, beforeEach, describe, expect, it, vi } from "vitest";
import { ItemExponentialRateLimiter, type QueueObserver, WorkQueue } from "./workqueue.ts";

/** Resolves `get()` if it is already settled, else reports that it is still waiting. */
async function poll(p: Promise<string | undefined>): Promise<string | undefined | "waiting"> {
  return Promise.race([p, new Promise<"waiting">((r) => setImmediate(() => r("waiting")))]);
}

describe("WorkQueue de-duplication and ordering", () => {
  it("hands out keys in FIFO order", async () => {
    const q = new WorkQueue();
    for (const k of ["a", "b", "c"]) q.add(k);
    expect([await q.get(), await q.get(), await q.get()]).toEqual(["a", "b", "c"]);
  });

  it("queues a key added twice while waiting once", async () => {
    const q = new WorkQueue();
    q.add("a");
    q.add("b");
    q.add("a");
    expect(q.length).toBe(2);
    expect(await q.get()).toBe("a");
    expect(await q.get()).toBe("b");
    expect(q.length).toBe(0);
  });

  it("does not hand a key in flight to a second worker; re-adds run after done", async () => {
    const q = new WorkQueue();
    q.add("a");
    const key = await q.get();
    expect(key).toBe("a");
    q.add("a");
    q.add("a");
    expect(q.length).toBe(0);
    const second = q.get();
    expect(await poll(second)).toBe("waiting");
    q.done("a");
    expect(await second).toBe("a");
    q.done("a");
    expect(q.length).toBe(0);
  });

  it("a key in flight that is not re-added is not processed again", async () => {
    const q = new WorkQueue();
    q.add("a");
    q.done((await q.get())!);
    expect(q.length).toBe(0);
    expect(await poll(q.get())).toBe("waiting");
  });

  it("wakes a waiting worker on add", async () => {
    const q = new WorkQueue();
    const pending = q.get();
    expect(await poll(pending)).toBe("waiting");
    q.add("x");
    expect(await pending).toBe("x");
  });

  it("refuses done() for a key no worker holds", () => {
    const q = new WorkQueue();
    expect(() => q.done("nope")).toThrow(/no worker holds/);
  });
});

describe("WorkQueue delays and rate limiting (fake time)", () => {
  beforeEach(() => vi.useFakeTimers());
  afterEach(() => vi.useRealTimers());

  it("addAfter holds a key back until its time", () => {
    const q = new WorkQueue();
    q.addAfter("a", 1_000);
    vi.advanceTimersByTime(999);
    expect(q.length).toBe(0);
    vi.advanceTimersByTime(1);
    expect(q.length).toBe(1);
  });

  it("addAfter keeps the earliest pending time for a key", () => {
    const q = new WorkQueue();
    q.addAfter("a", 1_000);
    q.addAfter("a", 5_000);
    q.addAfter("a", 300);
    vi.advanceTimersByTime(300);
    expect(q.length).toBe(1);
    vi.advanceTimersByTime(10_000);
    expect(q.length).toBe(1);
  });

  it("addAfter with no delay adds at once", () => {
    const q = new WorkQueue();
    q.addAfter("a", 0);
    expect(q.length).toBe(1);
  });

  it("addRateLimited backs off per key exponentially until forget", async () => {
    const q = new WorkQueue({ rateLimiter: new ItemExponentialRateLimiter({ initialMs: 10, maxMs: 80 }) });
    const waitFor = (ms: number) => {
      q.addRateLimited("a");
      vi.advanceTimersByTime(ms - 1);
      const early = q.length;
      vi.advanceTimersByTime(1);
      return [early, q.length];
    };
    expect(waitFor(10)).toEqual([0, 1]);
    q.done((await q.get())!);
    expect(waitFor(20)).toEqual([0, 1]);
    q.done((await q.get())!);
    expect(waitFor(40)).toEqual([0, 1]);
    q.done((await q.get())!);
    expect(waitFor(80)).toEqual([0, 1]);
    q.done((await q.get())!);
    expect(waitFor(80)).toEqual([0, 1]);
    expect(q.numRequeues("a")).toBe(5);
    q.forget("a");
    expect(q.numRequeues("a")).toBe(0);
    q.done((await q.get())!);
    expect(waitFor(10)).toEqual([0, 1]);
  });

  it("keys back off independently", () => {
    const limiter = new ItemExponentialRateLimiter({ initialMs: 5, maxMs: 1_000_000 });
    expect([limiter.when("a"), limiter.when("a"), limiter.when("b"), limiter.when("a")]).toEqual([
      5, 10, 5, 20,
    ]);
  });

  it("reports queue and work durations, adds and retries", async () => {
    const seen: Record<string, number[]> = { added: [], retried: [], waited: [], worked: [] };
    const observer: QueueObserver = {
      added: () => seen.added!.push(1),
      retried: () => seen.retried!.push(1),
      waited: (s) => seen.waited!.push(s),
      worked: (s) => seen.worked!.push(s),
    };
    const q = new WorkQueue({ observer });
    q.add("a");
    q.add("a");
    vi.advanceTimersByTime(2_000);
    const key = (await q.get())!;
    vi.advanceTimersByTime(500);
    expect(q.inFlight()).toEqual({ count: 1, unfinishedSeconds: 0.5, longestSeconds: 0.5 });
    q.done(key);
    q.addRateLimited("b");
    expect(seen).toEqual({ added: [1], retried: [1], waited: [2], worked: [0.5] });
  });
});

describe("WorkQueue shutdown", () => {
  it("stops taking work and waits for in-flight keys", async () => {
    const q = new WorkQueue();
    q.add("a");
    q.add("b");
    const inFlight = (await q.get())!;
    const waiter = new WorkQueue();
    const idle = waiter.get();

    let drained = false;
    const shut = q.shutDown().then(() => {
      drained = true;
    });
    expect(q.shuttingDown).toBe(true);
    expect(await q.get()).toBeUndefined();
    q.add("c");
    q.add(inFlight);
    expect(q.length).toBe(0);
    await new Promise((r) => setImmediate(r));
    expect(drained).toBe(false);
    q.done(inFlight);
    await shut;
    expect(drained).toBe(true);
    expect(q.length).toBe(0);

    await waiter.shutDown();
    expect(await idle).toBeUndefined();
  });

  it("cancels delayed adds", () => {
    vi.useFakeTimers();
    try {
      const q = new WorkQueue();
      q.addAfter("a", 100);
      q.addRateLimited("b");
      void q.shutDown();
      vi.advanceTimersByTime(10_000);
      expect(q.length).toBe(0);
    } finally {
      vi.useRealTimers();
    }
  });

  it("resolves at once when nothing is in flight, and is idempotent", async () => {
    const q = new WorkQueue();
    await q.shutDown();
    await q.shutDown();
    expect(await q.get()).toBeUndefined();
  });
});
