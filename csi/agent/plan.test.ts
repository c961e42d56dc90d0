import { describe, expect, it } from "vitest";
import type { Volume } from "../../api/v1alpha1/index.ts";
import { ZfsError } from "../zfs/errors.ts";
import type { PropertyRow } from "../zfs/parse.ts";
import { failureOf, reasonOf } from "./failure.ts";
import {
  createProperties,
  ownership,
  propertyChanges,
  spaceOf,
  statusPatch,
  TAG_UID,
  TAG_VOLUME,
  volumeStatus,
} from "./plan.ts";

const volume = (over: Partial<Volume["spec"]> = {}, status?: Volume["status"]): Volume => ({
  apiVersion: "skein.io/v1alpha1",
  kind: "Volume",
  metadata: { name: "v1", uid: "u1", generation: 2, resourceVersion: "7" },
  spec: { capacityBytes: 1000, ownerNode: "n1", ...over },
  ...(status ? { status } : {}),
});

function props(values: Record<string, string>): Map<string, PropertyRow> {
  return new Map(
    Object.entries(values).map(([property, value]) => [
      property,
      { name: "ds", property, value, source: "local" },
    ]),
  );
}

const now = new Date("2026-01-02T03:04:05Z");

describe("createProperties", () => {
  it("reserves and limits the capacity, sets the tuning, and tags the dataset", () => {
    expect(createProperties(volume({ zfsProperties: { compression: "lz4" } }))).toEqual({
      refquota: "1000",
      refreservation: "1000",
      compression: "lz4",
      [TAG_VOLUME]: "v1",
      [TAG_UID]: "u1",
    });
  });
});

describe("ownership", () => {
  it.each([
    [{ [TAG_VOLUME]: "v1", [TAG_UID]: "u1" }, "ours"],
    [{ [TAG_VOLUME]: "v1" }, "ours"],
    [{}, "untagged"],
    [{ [TAG_VOLUME]: "-" }, "untagged"],
    [{ [TAG_VOLUME]: "v1", [TAG_UID]: "older" }, "foreign"],
    [{ [TAG_VOLUME]: "other" }, "foreign"],
  ])("%j is %s", (tags, expected) => {
    expect(ownership(volume(), props(tags))).toBe(expected);
  });
});

describe("propertyChanges", () => {
  it("raises quota and reservation to a larger capacity", () => {
    expect(
      propertyChanges(volume({ capacityBytes: 2000 }), props({ refquota: "1000", refreservation: "1000" })),
    ).toEqual({
      refquota: "2000",
      refreservation: "2000",
    });
  });

  it("never shrinks, and sets only tuning that differs", () => {
    expect(
      propertyChanges(
        volume({ capacityBytes: 500, zfsProperties: { compression: "lz4", atime: "off" } }),
        props({ refquota: "1000", refreservation: "1000", compression: "off", atime: "off" }),
      ),
    ).toEqual({ compression: "lz4" });
  });

  it.each([
    ["a received copy its node now owns is made writable", {}, { readonly: "off" }],
    ["a volume released for a cutover stays read-only", { released: true }, {}],
  ])("%s", (_what, options, expected) => {
    expect(
      propertyChanges(
        volume({ capacityBytes: 1000 }),
        props({ refquota: "1000", refreservation: "1000", readonly: "on" }),
        options,
      ),
    ).toEqual(expected);
  });

  it('sees zfs-fuse\'s mounted read-only dataset ("off", temporary) as read-only', () => {
    const row = { name: "ds", property: "readonly", value: "off", source: "temporary" };
    const p = props({ refquota: "1000", refreservation: "1000" });
    p.set("readonly", row);
    expect(propertyChanges(volume({ capacityBytes: 1000 }), p)).toEqual({ readonly: "off" });
  });

  it("leaves readonly alone when the volume asks for it", () => {
    expect(
      propertyChanges(
        volume({ capacityBytes: 1000, zfsProperties: { readonly: "on" } }),
        props({ refquota: "1000", refreservation: "1000", readonly: "on" }),
      ),
    ).toEqual({});
  });
});

describe("spaceOf", () => {
  it("does not count the reservation as used", () => {
    expect(
      spaceOf(props({ used: "1500", usedbyrefreservation: "1000", available: "900", refquota: "1000" })),
    ).toEqual({ usedBytes: 500, availableBytes: 900, capacityBytes: 1000 });
  });
});

describe("volumeStatus", () => {
  const space = { usedBytes: 1, availableBytes: 2, capacityBytes: 1000 };

  it("reports Ready with the observed generation and clears an old error", () => {
    const old = volume({}, { phase: "Failed", error: { grpcCode: "RESOURCE_EXHAUSTED", message: "full" } });
    const status = volumeStatus(old, { kind: "ready", node: "n1", dataset: "tank/skein/v1", space }, now);
    expect(status).toMatchObject({ phase: "Ready", observedGeneration: 2, node: "n1", capacityBytes: 1000 });
    expect(status.error).toBeUndefined();
    expect(status.conditions).toEqual([
      expect.objectContaining({
        type: "Ready",
        status: "True",
        reason: "DatasetReady",
        observedGeneration: 2,
      }),
    ]);
  });

  it("reports a failed create as Failed with the code, and a failed expansion as still Ready", () => {
    const failure = { grpcCode: "RESOURCE_EXHAUSTED" as const, message: "pool full" };
    const created = volumeStatus(volume(), { kind: "failed", node: "n1", dataset: "d", failure }, now);
    expect(created).toMatchObject({ phase: "Failed", error: failure });
    expect(created.conditions?.[0]).toMatchObject({ status: "False", reason: "ResourceExhausted" });
    const expanded = volumeStatus(
      volume(),
      { kind: "failed", node: "n1", dataset: "d", failure, space },
      now,
    );
    expect(expanded).toMatchObject({ phase: "Ready", error: failure, capacityBytes: 1000 });
  });

  it("keeps lastTransitionTime while the condition's status holds", () => {
    const first = volumeStatus(volume(), { kind: "ready", node: "n1", dataset: "d", space }, now);
    const later = new Date(now.getTime() + 60_000);
    const second = volumeStatus(volume({}, first), { kind: "ready", node: "n1", dataset: "d", space }, later);
    expect(second.conditions?.[0]?.lastTransitionTime).toBe(first.conditions?.[0]?.lastTransitionTime);
    expect(statusPatch(first, second)).toBeUndefined();
  });
});

describe("statusPatch", () => {
  it("nulls removed fields and carries changed ones only", () => {
    expect(statusPatch({ a: 1, b: 2, c: { x: 1 } }, { a: 1, c: { x: 2 } })).toEqual({ b: null, c: { x: 2 } });
    expect(statusPatch(undefined, { a: 1 })).toEqual({ a: 1 });
  });
});

describe("failureOf", () => {
  it.each([
    [new ZfsError("ZfsOutOfSpace", "out of space"), "RESOURCE_EXHAUSTED"],
    [new ZfsError("ZfsQuotaBelowUsage", "too small"), "OUT_OF_RANGE"],
    [new ZfsError("ZfsBusy", "busy"), "FAILED_PRECONDITION"],
    [new Error("bug"), "INTERNAL"],
  ])("%s → %s", (err, code) => {
    expect(failureOf(err).grpcCode).toBe(code);
  });

  it("keeps messages within the CRD's limit and makes CamelCase reasons", () => {
    expect(failureOf(new Error("x".repeat(10_000))).message.length).toBeLessThanOrEqual(4096);
    expect(reasonOf("RESOURCE_EXHAUSTED")).toBe("ResourceExhausted");
    expect(reasonOf("NOT_FOUND")).toBe("NotFound");
  });
});
