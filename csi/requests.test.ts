import { describe, expect, it } from "vitest";
import type { StoragePool } from "../api/v1alpha1/index.ts";
import { CsiError } from "./grpc/status.ts";
import type { VolumeCapability } from "./proto/types.ts";
import {
  TOPOLOGY_CLUSTER_KEY as CLUSTER,
  capacityFor,
  checkCapabilities,
  chooseOwner,
  DEFAULT_VOLUME_BYTES,
  fitsRange,
  MIN_VOLUME_BYTES,
  TOPOLOGY_NODE_KEY as NODE,
  objectName,
  page,
  poolsInTopology,
  unsupportedCapability,
} from "./requests.ts";

function codeOf(fn: () => unknown): string | undefined {
  try {
    fn();
    return undefined;
  } catch (err) {
    return err instanceof CsiError ? err.grpcCode : `not a CsiError: ${String(err)}`;
  }
}

const MiB = 1024 * 1024;

describe("objectName", () => {
  it.each([
    ["pvc-1234", "pvc-1234"],
    ["sanity", "sanity"],
  ])("keeps the short DNS label %s", (name, expected) => {
    expect(objectName(name)).toBe(expected);
  });

  it.each([
    "CreateSnapshot-snapshot-maxlen-aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa",
    "Upper",
    "under_score",
    "-leading",
    "x".repeat(64),
    "!!!",
  ])("maps %s to a short, valid, stable name", (name) => {
    const mapped = objectName(name);
    expect(mapped).toMatch(/^[a-z0-9]([a-z0-9-]*[a-z0-9])?$/);
    expect(mapped.length).toBeLessThanOrEqual(63);
    expect(objectName(name)).toBe(mapped);
  });

  it("gives different names to names that differ only in case", () => {
    expect(objectName("Volume-A")).not.toBe(objectName("volume-a"));
    expect(objectName("Volume-A")).not.toBe(objectName("Volume-a"));
  });
});

describe("capacityFor", () => {
  it.each([
    [null, DEFAULT_VOLUME_BYTES],
    [{ required_bytes: 0, limit_bytes: 0 }, DEFAULT_VOLUME_BYTES],
    [{ required_bytes: 16 * MiB, limit_bytes: 0 }, 16 * MiB],
    [{ required_bytes: 16 * MiB, limit_bytes: 16 * MiB }, 16 * MiB],
    [{ required_bytes: 0, limit_bytes: 8 * MiB }, 8 * MiB],
    [{ required_bytes: 10, limit_bytes: 0 }, MIN_VOLUME_BYTES],
  ])("%j → %d bytes", (range, bytes) => {
    expect(capacityFor(range)).toBe(bytes);
  });

  it.each([
    [{ required_bytes: -1, limit_bytes: 0 }, "INVALID_ARGUMENT"],
    [{ required_bytes: 20, limit_bytes: 10 }, "INVALID_ARGUMENT"],
    [{ required_bytes: 10, limit_bytes: 100 }, "OUT_OF_RANGE"],
  ])("refuses %j with %s", (range, code) => {
    expect(codeOf(() => capacityFor(range))).toBe(code);
  });

  it("fitsRange accepts a capacity within the range only", () => {
    expect(fitsRange(16 * MiB, { required_bytes: 16 * MiB, limit_bytes: 0 })).toBe(true);
    expect(fitsRange(16 * MiB, { required_bytes: 32 * MiB, limit_bytes: 32 * MiB })).toBe(false);
    expect(fitsRange(32 * MiB, { required_bytes: 0, limit_bytes: 16 * MiB })).toBe(false);
  });
});

const mount = (mode: string, fs_type = ""): VolumeCapability =>
  ({
    mount: { fs_type, mount_flags: [], volume_mount_group: "" },
    block: null,
    access_mode: { mode },
  }) as VolumeCapability;

describe("capabilities", () => {
  it.each([
    "SINGLE_NODE_WRITER",
    "SINGLE_NODE_READER_ONLY",
    "SINGLE_NODE_SINGLE_WRITER",
    "MULTI_NODE_READER_ONLY",
  ])("serves mount volumes in %s", (mode) => {
    expect(unsupportedCapability(mount(mode))).toBeUndefined();
    expect(unsupportedCapability(mount(mode, "zfs"))).toBeUndefined();
  });

  it.each([
    ["MULTI_NODE_MULTI_WRITER", /one node at a time/],
    ["MULTI_NODE_SINGLE_WRITER", /one node at a time/],
  ])("refuses %s", (mode, why) => {
    expect(unsupportedCapability(mount(mode))).toMatch(why);
  });

  it("refuses block volumes and other file systems", () => {
    const block = { block: {}, mount: null, access_mode: { mode: "SINGLE_NODE_WRITER" } } as VolumeCapability;
    expect(unsupportedCapability(block)).toMatch(/block volumes/);
    expect(unsupportedCapability(mount("SINGLE_NODE_WRITER", "ext4"))).toMatch(/ext4/);
  });

  it("an empty list is INVALID_ARGUMENT", () => {
    expect(codeOf(() => checkCapabilities([]))).toBe("INVALID_ARGUMENT");
    expect(codeOf(() => checkCapabilities([mount("SINGLE_NODE_WRITER")]))).toBeUndefined();
  });
});

const pool = (node: string, freeBytes: number): StoragePool => ({
  apiVersion: "skein.io/v1alpha1",
  kind: "StoragePool",
  metadata: { name: node },
  spec: { node, pool: "tank" },
  status: { freeBytes, sizeBytes: freeBytes * 2 },
});

describe("chooseOwner", () => {
  const pools = [pool("a", 10), pool("b", 30), pool("c", 20)];
  const topo = (segments: Record<string, string>) => ({ segments });

  it("takes the first preferred node that has a pool", () => {
    const req = {
      preferred: [topo({ [CLUSTER]: "k", [NODE]: "zz" }), topo({ [CLUSTER]: "k", [NODE]: "c" })],
      requisite: [],
    };
    expect(chooseOwner(req, pools, "k")).toBe("c");
  });

  it("falls back to requisite, then to the freest pool", () => {
    expect(chooseOwner({ preferred: [], requisite: [topo({ [NODE]: "a" })] }, pools, "k")).toBe("a");
    expect(chooseOwner(null, pools, "k")).toBe("b");
    expect(chooseOwner({ preferred: [], requisite: [topo({ [CLUSTER]: "k" })] }, pools, "k")).toBe("b");
  });

  it("refuses topologies outside the cluster and nodes without a pool", () => {
    expect(
      codeOf(() => chooseOwner({ preferred: [], requisite: [topo({ [CLUSTER]: "other" })] }, pools, "k")),
    ).toBe("RESOURCE_EXHAUSTED");
    expect(
      codeOf(() => chooseOwner({ preferred: [topo({ [NODE]: "zz" })], requisite: [] }, pools, "k")),
    ).toBe("RESOURCE_EXHAUSTED");
    expect(codeOf(() => chooseOwner(null, [], "k"))).toBe("RESOURCE_EXHAUSTED");
  });

  it("poolsInTopology narrows to a node, the cluster, or nothing", () => {
    expect(poolsInTopology(null, pools, "k")).toHaveLength(3);
    expect(poolsInTopology(topo({ [CLUSTER]: "k" }), pools, "k")).toHaveLength(3);
    expect(poolsInTopology(topo({ [NODE]: "b" }), pools, "k").map((p) => p.spec.node)).toEqual(["b"]);
    expect(poolsInTopology(topo({ [CLUSTER]: "other" }), pools, "k")).toEqual([]);
  });
});

describe("page", () => {
  const names = ["d", "a", "c", "b", "e"];
  const id = (s: string) => s;

  it("walks every entry once, in order, with tokens", () => {
    const seen: string[] = [];
    let token = "";
    do {
      const p = page(names, id, 2, token);
      seen.push(...p.entries);
      token = p.nextToken;
    } while (token);
    expect(seen).toEqual(["a", "b", "c", "d", "e"]);
  });

  it("returns the rest at once without max_entries, and no token at the end", () => {
    const first = page(names, id, 2, "");
    expect(first.entries).toEqual(["a", "b"]);
    expect(page(names, id, 0, first.nextToken)).toEqual({ entries: ["c", "d", "e"], nextToken: "" });
  });

  it("neither repeats nor skips when the last entry of a page is deleted", () => {
    const first = page(names, id, 2, "");
    expect(page(["a", "c", "d", "e"], id, 2, first.nextToken).entries).toEqual(["c", "d"]);
  });

  it("answers ABORTED for a token it did not issue, INVALID_ARGUMENT for negative max_entries", () => {
    expect(codeOf(() => page(names, id, 0, "invalid-token"))).toBe("ABORTED");
    expect(codeOf(() => page(names, id, -1, ""))).toBe("INVALID_ARGUMENT");
  });
});
