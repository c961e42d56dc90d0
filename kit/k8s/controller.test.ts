import { CoreV1Api, type KubernetesObject, type V1ConfigMap } from "@kubernetes/client-node";
import { Registry } from "prom-client";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { sharedApiServer } from "../../test/fixtures/shared.ts";
import { createLogger } from "../log.ts";
import { ProbeServer } from "../serve.ts";
import { Controller, type Reconcile, type Source } from "./controller.ts";
import { Informer, type InformerHandlers, objectKey } from "./informer.ts";
import { eventually, testNamespace } from "./testing.ts";
import { ItemExponentialRateLimiter } from "./workqueue.ts";

const quiet = createLogger("controller-test", "silent");
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** An in-memory informer stand-in: tests set objects and decide when it has synced. */
class FakeSource implements Source<KubernetesObject> {
  private readonly handlers: InformerHandlers<KubernetesObject>[] = [];
  private readonly objects = new Map<string, KubernetesObject>();
  private synced = false;
  private waiters: Array<() => void> = [];

  on(h: InformerHandlers<KubernetesObject>) {
    this.handlers.push(h);
  }
  list() {
    return [...this.objects.values()];
  }
  hasSynced() {
    return this.synced;
  }
  waitForSync(signal?: AbortSignal) {
    if (this.synced) return Promise.resolve();
    return new Promise<void>((resolve, reject) => {
      signal?.addEventListener("abort", () => reject(new Error("aborted")));
      this.waiters.push(resolve);
    });
  }
  sync() {
    this.synced = true;
    for (const w of this.waiters.splice(0)) w();
  }
  set(name: string, generation = 1) {
    const obj = { metadata: { name, namespace: "ns", resourceVersion: String(generation) } };
    const old = this.objects.get(objectKey(obj));
    this.objects.set(objectKey(obj), obj);
    for (const h of this.handlers) old ? h.update?.(old, obj) : h.add?.(obj);
  }
}

function harness(reconcile: Reconcile, options: { workers?: number; resyncPeriodMs?: number } = {}) {
  const registry = new Registry();
  const source = new FakeSource();
  const controller = new Controller({
    name: "widgets",
    reconcile,
    registry,
    logger: quiet,
    rateLimiter: new ItemExponentialRateLimiter({ initialMs: 10, maxMs: 100 }),
    ...options,
  }).watch(source);
  const stop = new AbortController();
  let running: Promise<void> | undefined;
  return {
    registry,
    source,
    controller,
    stop,
    start: () => {
      running = controller.run(stop.signal);
      return running;
    },
    halt: async () => {
      stop.abort();
      await running;
    },
    metric: async (name: string, labels: Record<string, string>) => {
      const m = (await registry.getMetricsAsJSON()).find((x) => x.name === name);
      const v = m?.values.find((x) => Object.entries(labels).every(([k, val]) => x.labels[k] === val));
      return v?.value;
    },
  };
}

describe("Controller (in-memory source)", () => {
  it("waits for the caches before reconciling", async () => {
    const seen: string[] = [];
    const h = harness(async (key) => {
      seen.push(key);
    });
    h.source.set("a");
    void h.start();
    await sleep(50);
    expect(seen).toEqual([]);
    expect(h.controller.hasSynced()).toBe(false);
    h.source.sync();
    await eventually("the reconcile", () => seen.length === 1);
    expect(seen).toEqual(["ns/a"]);
    expect(h.controller.hasSynced()).toBe(true);
    await h.halt();
  });

  it("never reconciles one key on two workers, but runs different keys in parallel", async () => {
    const active = new Map<string, number>();
    let maxPerKey = 0;
    let maxTotal = 0;
    const calls = new Map<string, number>();
    const h = harness(
      async (key) => {
        active.set(key, (active.get(key) ?? 0) + 1);
        calls.set(key, (calls.get(key) ?? 0) + 1);
        maxPerKey = Math.max(maxPerKey, active.get(key) ?? 0);
        maxTotal = Math.max(
          maxTotal,
          [...active.values()].reduce((a, b) => a + b, 0),
        );
        await sleep(40);
        active.set(key, (active.get(key) ?? 1) - 1);
      },
      { workers: 4 },
    );
    h.source.sync();
    void h.start();
    for (let i = 1; i <= 20; i++) {
      h.source.set("a", i);
      h.source.set("b", i);
      h.source.set("c", i);
      await sleep(2);
    }
    await eventually(
      "the queue to drain",
      () => h.controller.queue.length === 0 && [...active.values()].every((n) => n === 0),
    );
    await sleep(60);
    expect(maxPerKey).toBe(1);
    expect(maxTotal).toBeGreaterThanOrEqual(2);
    // 20 changes per key while each reconcile takes 40 ms: merged into a few passes, not 20.
    for (const key of ["ns/a", "ns/b", "ns/c"]) expect(calls.get(key)).toBeLessThanOrEqual(4);
    expect(await h.metric("controller_runtime_max_concurrent_reconciles", { controller: "widgets" })).toBe(4);
    await h.halt();
  });

  it("requeues failures with backoff and counts them", async () => {
    let attempts = 0;
    const times: number[] = [];
    const h = harness(async () => {
      times.push(Date.now());
      attempts++;
      if (attempts <= 3) throw new Error(`transient ${attempts}`);
    });
    h.source.set("a");
    h.source.sync();
    void h.start();
    await eventually("success after retries", () => attempts === 4);
    // Backoff 10, 20, 40 ms between attempts.
    const gaps = times.slice(1).map((t, i) => t - (times[i] ?? t));
    expect(gaps[0]).toBeGreaterThanOrEqual(9);
    expect(gaps[2]).toBeGreaterThanOrEqual(39);
    expect(await h.metric("controller_runtime_reconcile_errors_total", { controller: "widgets" })).toBe(3);
    expect(
      await h.metric("controller_runtime_reconcile_total", { controller: "widgets", result: "error" }),
    ).toBe(3);
    expect(
      await h.metric("controller_runtime_reconcile_total", { controller: "widgets", result: "success" }),
    ).toBe(1);
    expect(await h.metric("workqueue_retries_total", { name: "widgets" })).toBe(3);
    expect(h.controller.queue.numRequeues("ns/a")).toBe(0);
    await h.halt();
  });

  it("looks again after requeueAfterMs", async () => {
    const times: number[] = [];
    const h = harness(async () => {
      times.push(Date.now());
      return times.length === 1 ? { requeueAfterMs: 80 } : undefined;
    });
    h.source.set("a");
    h.source.sync();
    void h.start();
    await eventually("the second pass", () => times.length === 2);
    expect((times[1] ?? 0) - (times[0] ?? 0)).toBeGreaterThanOrEqual(79);
    expect(
      await h.metric("controller_runtime_reconcile_total", {
        controller: "widgets",
        result: "requeue_after",
      }),
    ).toBe(1);
    await h.halt();
  });

  it("resyncs every cached key periodically without any event", async () => {
    let calls = 0;
    const h = harness(
      async () => {
        calls++;
      },
      { resyncPeriodMs: 50 },
    );
    h.source.set("a");
    h.source.sync();
    void h.start();
    await eventually("several resyncs", () => calls >= 4, 2_000);
    await h.halt();
  });

  it("on shutdown stops taking work and lets the in-flight reconcile finish", async () => {
    const finished: string[] = [];
    let sawAbort = false;
    const h = harness(async (key, signal) => {
      await sleep(150);
      sawAbort = signal.aborted;
      finished.push(key);
    });
    h.source.set("first");
    h.source.sync();
    void h.start();
    await eventually(
      "the reconcile to start",
      async () => (await h.metric("controller_runtime_active_workers", { controller: "widgets" })) === 1,
    );
    h.source.set("second");
    const stoppedAt = Date.now();
    await h.halt();
    expect(Date.now() - stoppedAt).toBeGreaterThanOrEqual(50);
    expect(finished).toEqual(["ns/first"]);
    expect(sawAbort).toBe(true);
    await sleep(200);
    expect(finished).toEqual(["ns/first"]);
  });

  it("stops cleanly when shut down before the caches sync", async () => {
    const h = harness(async () => undefined);
    const running = h.start();
    h.stop.abort();
    await expect(running).resolves.toBeUndefined();
  });

  it("maps related objects to other keys", async () => {
    const seen: string[] = [];
    const registry = new Registry();
    const related = new FakeSource();
    const controller = new Controller({
      name: "mapped",
      reconcile: async (key) => {
        seen.push(key);
      },
      registry,
      logger: quiet,
    }).watch(related, (obj) => [`net-${obj.metadata?.name}-1`, `net-${obj.metadata?.name}-2`]);
    related.sync();
    const stop = new AbortController();
    const running = controller.run(stop.signal);
    related.set("node");
    await eventually("both mapped keys", () => seen.length === 2);
    expect(seen.sort()).toEqual(["net-node-1", "net-node-2"]);
    stop.abort();
    await running;
  });
});

describe("Controller with a real informer, served metrics and readiness", () => {
  const kc = sharedApiServer().kubeConfig();
  const core = kc.makeApiClient(CoreV1Api);
  let ns: Awaited<ReturnType<typeof testNamespace>>;
  beforeAll(async () => {
    ns = await testNamespace(kc, "kit-controller");
  });
  afterAll(async () => ns?.delete());

  it("converges ConfigMaps, is ready only after sync, and serves controller-runtime's metric names", async () => {
    const namespace = ns.name;
    await core.createNamespacedConfigMap({
      namespace,
      body: { metadata: { name: "one" }, data: { want: "x" } },
    });
    const registry = new Registry();
    const informer = new Informer<V1ConfigMap>(kc, {
      name: "configmaps",
      path: `/api/v1/namespaces/${namespace}/configmaps`,
      list: (s) => core.listNamespacedConfigMap({ namespace, ...s }),
      logger: quiet,
    });
    // Level-triggered: copy data.want to data.have, reading the cache, whatever the event was.
    const reconcile: Reconcile = async (key) => {
      const cm = informer.get(key);
      if (!cm?.data || cm.data.have === cm.data.want) return;
      await core.replaceNamespacedConfigMap({
        name: cm.metadata?.name ?? "",
        namespace,
        body: { ...cm, data: { ...cm.data, have: cm.data.want ?? "" } },
      });
    };
    const controller = new Controller({
      name: "configmaps",
      reconcile,
      registry,
      logger: quiet,
      workers: 2,
    }).watch(informer);
    const probes = new ProbeServer({ registry, logger: quiet }).addReadinessCheck("caches-synced", () =>
      controller.hasSynced(),
    );
    const { port } = await probes.start();
    const get = async (path: string) => {
      const res = await fetch(`http://127.0.0.1:${port}${path}`);
      return { status: res.status, body: await res.text() };
    };
    const stop = new AbortController();
    let running: Promise<void> | undefined;
    try {
      expect((await get("/readyz")).status).toBe(503);
      informer.start();
      running = controller.run(stop.signal);
      await eventually("readiness", async () => (await get("/readyz")).status === 200);

      await core.createNamespacedConfigMap({
        namespace,
        body: { metadata: { name: "two" }, data: { want: "y" } },
      });
      await eventually("both maps converged", () => {
        const have = informer.list().map((c) => `${c.metadata?.name}=${c.data?.have}`);
        return have.sort().join() === "one=x,two=y";
      });

      const { status, body } = await get("/metrics");
      expect(status).toBe(200);
      for (const name of [
        "controller_runtime_reconcile_total",
        "controller_runtime_reconcile_errors_total",
        "controller_runtime_reconcile_time_seconds_bucket",
        "controller_runtime_active_workers",
        "controller_runtime_max_concurrent_reconciles",
        "workqueue_depth",
        "workqueue_adds_total",
        "workqueue_retries_total",
        "workqueue_queue_duration_seconds_bucket",
        "workqueue_work_duration_seconds_bucket",
        "workqueue_unfinished_work_seconds",
        "workqueue_longest_running_processor_seconds",
      ]) {
        expect(body, name).toContain(`${name}{`);
      }
      const success =
        /controller_runtime_reconcile_total\{controller="configmaps",result="success"\} (\d+)/.exec(body);
      expect(Number(success?.[1])).toBeGreaterThanOrEqual(2);
      expect(body).toContain('workqueue_depth{name="configmaps",controller="configmaps"} 0');
    } finally {
      stop.abort();
      await running;
      await informer.stop();
      await probes.stop();
    }
  });
});
