import { CoreV1Api, EventsV1Api, type V1ObjectReference } from "@kubernetes/client-node";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { sharedApiServer } from "../../test/fixtures/shared.ts";
import { InvalidInputError } from "../errors.ts";
import { createLogger } from "../log.ts";
import { EventRecorder, objectReference, truncateNote, validateEvent } from "./events.ts";
import { testNamespace } from "./testing.ts";

const ref: V1ObjectReference = { apiVersion: "v1", kind: "ConfigMap", name: "x", namespace: "n" };

describe("event validation", () => {
  it.each([
    { change: { type: "Info" }, message: /Normal or Warning/ },
    { change: { reason: "not camel" }, message: /reason .* CamelCase/ },
    { change: { reason: "" }, message: /reason .* CamelCase/ },
    { change: { action: "allocate" }, message: /action .* CamelCase/ },
    { change: { regarding: { kind: "ConfigMap" } }, message: /kind and a name/ },
  ])("rejects $change", ({ change, message }) => {
    const input = { regarding: ref, type: "Normal", reason: "Synced", action: "Sync", note: "", ...change };
    expect(() => validateEvent(input as Parameters<typeof validateEvent>[0])).toThrow(InvalidInputError);
    expect(() => validateEvent(input as Parameters<typeof validateEvent>[0])).toThrow(message);
  });

  it("cuts notes to 1 KiB on a character boundary", () => {
    expect(truncateNote("short")).toBe("short");
    const cut = truncateNote("é".repeat(2000));
    expect(Buffer.byteLength(cut)).toBeLessThanOrEqual(1024);
    expect(cut.endsWith("…")).toBe(true);
    expect(cut).not.toContain("\uFFFD");
  });

  it("builds an object reference", () => {
    expect(
      objectReference({
        apiVersion: "skein.io/v1alpha1",
        kind: "Network",
        metadata: { name: "net", uid: "u1" },
      }),
    ).toEqual({ apiVersion: "skein.io/v1alpha1", kind: "Network", name: "net", uid: "u1" });
  });
});

describe("EventRecorder against the API server", () => {
  const kc = sharedApiServer().kubeConfig();
  const events = kc.makeApiClient(EventsV1Api);
  const core = kc.makeApiClient(CoreV1Api);
  let ns: Awaited<ReturnType<typeof testNamespace>>;
  let regarding: V1ObjectReference;

  beforeAll(async () => {
    ns = await testNamespace(kc, "kit-events");
    const cm = await core.createNamespacedConfigMap({
      namespace: ns.name,
      body: { metadata: { name: "subject" } },
    });
    regarding = objectReference({ ...cm, apiVersion: "v1", kind: "ConfigMap" });
  });
  afterAll(async () => ns?.delete());

  const recorder = (extra: { seriesWindowMs?: number } = {}) =>
    new EventRecorder({
      kubeConfig: kc,
      reportingController: "skein.io/kit-test",
      reportingInstance: "test-0",
      flushMs: 50,
      logger: createLogger("events-test", "silent"),
      ...extra,
    });

  const listFor = async (reason: string) =>
    (await events.listNamespacedEvent({ namespace: ns.name })).items.filter((e) => e.reason === reason);

  it("creates one Event and counts repeats as a series instead of flooding", async () => {
    const r = recorder();
    for (let i = 0; i < 7; i++)
      r.warning(regarding, "PoolExhausted", "Allocate", "no free block in 10.0.0.0/16");
    await r.flush();
    const found = await listFor("PoolExhausted");
    expect(found).toHaveLength(1);
    const [e] = found;
    expect(e?.series?.count).toBe(7);
    expect(e?.type).toBe("Warning");
    expect(e?.action).toBe("Allocate");
    expect(e?.note).toBe("no free block in 10.0.0.0/16");
    expect(e?.reportingController).toBe("skein.io/kit-test");
    expect(e?.reportingInstance).toBe("test-0");
    expect(e?.regarding).toMatchObject({ kind: "ConfigMap", name: "subject", uid: regarding.uid });

    r.warning(regarding, "PoolExhausted", "Allocate", "no free block in 10.0.0.0/16");
    await r.flush();
    const again = await listFor("PoolExhausted");
    expect(again).toHaveLength(1);
    expect(again[0]?.series?.count).toBe(8);
  });

  it("keeps different reasons and notes apart", async () => {
    const r = recorder();
    r.normal(regarding, "BlockAllocated", "Allocate", "node-1 got 10.0.1.0/24");
    r.normal(regarding, "BlockAllocated", "Allocate", "node-2 got 10.0.2.0/24");
    r.normal(regarding, "BlockReleased", "Release", "node-1 gone");
    await r.flush();
    expect(await listFor("BlockAllocated")).toHaveLength(2);
    expect((await listFor("BlockReleased"))[0]?.series).toBeFalsy();
  });

  it("starts a new Event once the series window has passed", async () => {
    const r = recorder({ seriesWindowMs: 100 });
    r.normal(regarding, "Resynced", "Sync", "same");
    await r.flush();
    await new Promise((res) => setTimeout(res, 200));
    r.normal(regarding, "Resynced", "Sync", "same");
    await r.flush();
    expect(await listFor("Resynced")).toHaveLength(2);
  });

  it("starts a new Event when the old one expired", async () => {
    const r = recorder();
    r.normal(regarding, "Expiring", "Sync", "n");
    await r.flush();
    const [first] = await listFor("Expiring");
    await events.deleteNamespacedEvent({ name: first?.metadata?.name ?? "", namespace: ns.name });
    r.normal(regarding, "Expiring", "Sync", "n");
    await r.flush();
    const now = await listFor("Expiring");
    expect(now).toHaveLength(1);
    expect(now[0]?.metadata?.name).not.toBe(first?.metadata?.name);
  });

  it("logs and survives API failures (namespace does not exist)", async () => {
    const r = recorder();
    r.normal({ ...regarding, namespace: "no-such-namespace-kit" }, "Lost", "Sync", "x");
    await expect(r.flush()).resolves.toBeUndefined();
  });
});
