import { CoreV1Api, type KubeConfig, type V1ConfigMap, type Watch } from "@kubernetes/client-node";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type ApiServer, startApiServer } from "../../test/fixtures/apiserver.ts";
import { sharedApiServer } from "../../test/fixtures/shared.ts";
import { createLogger } from "../log.ts";
import { Informer, objectKey, splitKey } from "./informer.ts";
import { eventually, testNamespace } from "./testing.ts";

const quiet = createLogger("informer-test", "silent");
const fastBackoff = { initialMs: 50, maxMs: 500, jitter: 0.5 };

function configMapInformer(
  kc: KubeConfig,
  namespace: string,
  extra: { onRetry?: (err: unknown) => void } = {},
) {
  const core = kc.makeApiClient(CoreV1Api);
  return new Informer<V1ConfigMap>(kc, {
    name: "configmaps",
    path: `/api/v1/namespaces/${namespace}/configmaps`,
    list: (s) => core.listNamespacedConfigMap({ namespace, ...s }),
    backoff: fastBackoff,
    logger: quiet,
    ...extra,
  });
}

/** Records handler calls as "verb key" strings. */
function recorder() {
  const calls: string[] = [];
  return {
    calls,
    handlers: {
      add: (o: V1ConfigMap) => calls.push(`add ${objectKey(o)}`),
      update: (a: V1ConfigMap, b: V1ConfigMap) =>
        calls.push(`update ${objectKey(b)} ${a.data?.v ?? ""}->${b.data?.v ?? ""}`),
      delete: (o: V1ConfigMap) => calls.push(`delete ${objectKey(o)}`),
    },
  };
}

describe("objectKey", () => {
  it.each([
    { obj: { metadata: { name: "a", namespace: "ns" } }, key: "ns/a" },
    { obj: { metadata: { name: "node-1" } }, key: "node-1" },
  ])("keys $obj as $key and splits it back", ({ obj, key }) => {
    expect(objectKey(obj)).toBe(key);
    expect(splitKey(key)).toEqual(obj.metadata);
  });
});

describe("Informer against the shared API server", () => {
  const api = sharedApiServer();
  const kc = api.kubeConfig();
  const core = kc.makeApiClient(CoreV1Api);
  let ns: Awaited<ReturnType<typeof testNamespace>>;
  beforeAll(async () => {
    ns = await testNamespace(kc, "kit-informer");
  });
  afterAll(async () => ns?.delete());

  it("lists, then watches, and its cache converges with handlers told each change", async () => {
    const namespace = ns.name;
    const cm = (name: string, v: string) => ({ metadata: { name, namespace }, data: { v } });
    await core.createNamespacedConfigMap({ namespace, body: cm("before-1", "1") });
    await core.createNamespacedConfigMap({ namespace, body: cm("before-2", "1") });

    const informer = configMapInformer(kc, namespace);
    const rec = recorder();
    informer.on(rec.handlers);
    expect(informer.hasSynced()).toBe(false);
    informer.start();
    try {
      await informer.waitForSync();
      expect(informer.hasSynced()).toBe(true);
      expect(informer.keys().sort()).toEqual([`${namespace}/before-1`, `${namespace}/before-2`]);

      await core.createNamespacedConfigMap({ namespace, body: cm("after", "1") });
      await core.replaceNamespacedConfigMap({ name: "before-1", namespace, body: cm("before-1", "2") });
      await core.deleteNamespacedConfigMap({ name: "before-2", namespace });

      await eventually("the cache to converge", () => {
        const keys = informer.keys().sort();
        return (
          keys.join() === [`${namespace}/after`, `${namespace}/before-1`].join() &&
          informer.get(`${namespace}/before-1`)?.data?.v === "2"
        );
      });
      expect(rec.calls).toEqual([
        `add ${namespace}/before-1`,
        `add ${namespace}/before-2`,
        `add ${namespace}/after`,
        `update ${namespace}/before-1 1->2`,
        `delete ${namespace}/before-2`,
      ]);

      const late = recorder();
      informer.on(late.handlers);
      expect(late.calls.sort()).toEqual([`add ${namespace}/after`, `add ${namespace}/before-1`]);
    } finally {
      await informer.stop();
    }
  });

  it("keeps going when a handler throws", async () => {
    const informer = configMapInformer(kc, ns.name);
    const seen: string[] = [];
    informer.on({
      add: () => {
        throw new Error("handler bug");
      },
    });
    informer.on({ add: (o) => seen.push(o.metadata?.name ?? "") });
    informer.start();
    try {
      await informer.waitForSync();
      await core.createNamespacedConfigMap({
        namespace: ns.name,
        body: { metadata: { name: "after-throw" } },
      });
      await eventually("the second handler to see the add", () => seen.includes("after-throw"));
    } finally {
      await informer.stop();
    }
  });

  it("applies label selectors to both list and watch", async () => {
    const namespace = ns.name;
    const core2 = kc.makeApiClient(CoreV1Api);
    const informer = new Informer<V1ConfigMap>(kc, {
      name: "labelled",
      path: `/api/v1/namespaces/${namespace}/configmaps`,
      list: (s) => core2.listNamespacedConfigMap({ namespace, ...s }),
      labelSelector: "pick=yes",
      logger: quiet,
    });
    await core.createNamespacedConfigMap({
      namespace,
      body: { metadata: { name: "picked-1", labels: { pick: "yes" } } },
    });
    informer.start();
    try {
      await informer.waitForSync();
      await core.createNamespacedConfigMap({ namespace, body: { metadata: { name: "ignored" } } });
      await core.createNamespacedConfigMap({
        namespace,
        body: { metadata: { name: "picked-2", labels: { pick: "yes" } } },
      });
      await eventually("the second labelled map", () => informer.get(`${namespace}/picked-2`));
      expect(informer.keys().sort()).toEqual([`${namespace}/picked-1`, `${namespace}/picked-2`]);
    } finally {
      await informer.stop();
    }
  });

  it("waitForSync rejects when its signal aborts first", async () => {
    const informer = configMapInformer(kc, ns.name);
    const abort = new AbortController();
    const waiting = informer.waitForSync(abort.signal);
    abort.abort();
    await expect(waiting).rejects.toThrow(/stopped before its cache synced/);
  });
});

describe("Informer across an API server restart", () => {
  let api: ApiServer;
  beforeAll(async () => {
    api = await startApiServer();
  });
  afterAll(async () => api?.stop());

  it("survives the API server going away and coming back, and resumes watching", async () => {
    const kc = api.kubeConfig();
    const core = kc.makeApiClient(CoreV1Api);
    const ns = await testNamespace(kc, "kit-restart");
    const retries: unknown[] = [];
    const informer = configMapInformer(kc, ns.name, { onRetry: (err) => retries.push(err) });
    const rec = recorder();
    informer.on(rec.handlers);
    informer.start();
    try {
      await informer.waitForSync();
      await core.createNamespacedConfigMap({ namespace: ns.name, body: { metadata: { name: "before" } } });
      await eventually("the first map", () => informer.get(`${ns.name}/before`));

      await api.restart();
      // The server was gone for a while: the informer's watch broke and retried.
      await eventually("a failed attempt while the server was down", () => retries.length > 0);

      await core.createNamespacedConfigMap({ namespace: ns.name, body: { metadata: { name: "after" } } });
      await core.deleteNamespacedConfigMap({ name: "before", namespace: ns.name });
      await eventually(
        "the cache to follow changes made after the restart",
        () => informer.keys().join() === `${ns.name}/after`,
        30_000,
      );
      expect(rec.calls).toEqual([
        `add ${ns.name}/before`,
        `add ${ns.name}/after`,
        `delete ${ns.name}/before`,
      ]);
    } finally {
      await informer.stop();
      await ns.delete();
    }
  });
});

describe("Informer loop (scripted watch)", () => {
  type Script = (
    params: Record<string, unknown>,
    emit: (type: string, obj: unknown) => void,
    done: (err: unknown) => void,
  ) => void;

  /** A Watch stand-in that runs one script per watch call, then hangs until aborted. */
  function scriptedWatch(scripts: Script[]): Pick<Watch, "watch"> & { calls: Record<string, unknown>[] } {
    const calls: Record<string, unknown>[] = [];
    return {
      calls,
      async watch(_path, params, callback, done) {
        calls.push(params);
        const controller = new AbortController();
        controller.signal.addEventListener("abort", () => done(new Error("aborted")));
        const script = scripts.shift();
        setImmediate(() => script?.(params, callback, done));
        return controller;
      },
    };
  }

  const cm = (name: string, rv: string): V1ConfigMap => ({
    metadata: { name, namespace: "n", resourceVersion: rv },
  });

  it("relists after 410 Gone, emitting deletes for what vanished", async () => {
    const lists = [
      { metadata: { resourceVersion: "10" }, items: [cm("a", "5"), cm("b", "6")] },
      { metadata: { resourceVersion: "50" }, items: [cm("b", "40"), cm("c", "45")] },
    ];
    const watch = scriptedWatch([
      (_p, emit) => emit("ERROR", { kind: "Status", code: 410, reason: "Expired", message: "too old" }),
    ]);
    const informer = new Informer<V1ConfigMap>({} as KubeConfig, {
      name: "scripted",
      path: "/x",
      list: async () => lists.shift() ?? { items: [] },
      watch,
      logger: quiet,
    });
    const rec = recorder();
    informer.on(rec.handlers);
    informer.start();
    try {
      await eventually("the relist", () => watch.calls.length === 2);
      expect(watch.calls.map((c) => c.resourceVersion)).toEqual(["10", "50"]);
      expect(rec.calls).toEqual(["add n/a", "add n/b", "delete n/a", "update n/b ->", "add n/c"]);
    } finally {
      await informer.stop();
    }
  });

  it("backs off and retries after list failures, without losing the cache", async () => {
    let attempts = 0;
    const retries: number[] = [];
    const watch = scriptedWatch([]);
    const informer = new Informer<V1ConfigMap>({} as KubeConfig, {
      name: "flaky",
      path: "/x",
      list: async () => {
        attempts++;
        if (attempts < 4) throw new Error("connect ECONNREFUSED");
        return { metadata: { resourceVersion: "7" }, items: [cm("a", "1")] };
      },
      watch,
      backoff: { initialMs: 10, maxMs: 40 },
      onRetry: (_err, delay) => retries.push(delay),
      logger: quiet,
    });
    informer.start();
    try {
      await informer.waitForSync();
      expect(retries).toEqual([10, 20, 40]);
      expect(informer.keys()).toEqual(["n/a"]);
    } finally {
      await informer.stop();
    }
  });

  it("resumes from the last resourceVersion after a broken watch, bookmarks included", async () => {
    const watch = scriptedWatch([
      (_p, emit, done) => {
        emit("ADDED", cm("x", "11"));
        emit("BOOKMARK", { metadata: { resourceVersion: "15" } });
        done(new Error("socket hang up"));
      },
    ]);
    const informer = new Informer<V1ConfigMap>({} as KubeConfig, {
      name: "resume",
      path: "/x",
      list: async () => ({ metadata: { resourceVersion: "10" }, items: [] }),
      watch,
      backoff: { initialMs: 1, maxMs: 1 },
      logger: quiet,
    });
    informer.start();
    try {
      await eventually("the second watch", () => watch.calls.length === 2);
      expect(watch.calls.map((c) => c.resourceVersion)).toEqual(["10", "15"]);
      expect(watch.calls[0]).toMatchObject({ allowWatchBookmarks: true });
      expect(informer.keys()).toEqual(["n/x"]);
    } finally {
      await informer.stop();
    }
  });
});
