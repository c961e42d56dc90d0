/**
 * What csi-sanity does not check, against `skein csi-controller` + `skein
 * csi-node` as real processes on a zfs-fuse pool and the shared API server:
 * the data-path promises (quota, expansion, clone content, snapshots across
 * an agent restart), the codes for a full pool and for bad requests (which
 * must change nothing), and orphan reporting.
 */
import { randomBytes } from "node:crypto";
import { readFileSync, writeFileSync } from "node:fs";
import { constants } from "node:os";
import { join } from "node:path";
import type { ServiceError } from "@grpc/grpc-js";
import { status as grpcStatus } from "@grpc/grpc-js";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { applyCrds } from "../api/v1alpha1/install.ts";
import { run } from "../kit/exec.ts";
import { eventually } from "../kit/k8s/testing.ts";
import { createPool, type Pool } from "../test/fixtures/pool.ts";
import { sharedApiServer } from "../test/fixtures/shared.ts";
import type { CsiClient } from "./grpc/load.ts";
import type { CreateVolumeRequest, Reply } from "./proto/types.ts";
import { migrationName, TOPOLOGY_CLUSTER_KEY, TOPOLOGY_NODE_KEY } from "./requests.ts";
import { SkeinApi } from "./skein-api.ts";
import { type DriverProcesses, startDriver } from "./testing/driver-processes.ts";

const MiB = 1024 * 1024;
const mountCapability = { mount: { fs_type: "" }, access_mode: { mode: "SINGLE_NODE_WRITER" as const } };

async function codeOf(promise: Promise<unknown>): Promise<string> {
  try {
    await promise;
    return "OK";
  } catch (err) {
    return grpcStatus[(err as ServiceError).code] ?? String(err);
  }
}

describe("CSI volumes on a real pool", () => {
  const api = sharedApiServer();
  const node = `it-node-${process.pid}`;
  const cluster = `it-${process.pid}`;
  let pool: Pool;
  let driver: DriverProcesses;
  let controller: CsiClient<"Controller">;
  let nodeClient: CsiClient<"Node">;
  let skein: SkeinApi;
  const created: string[] = [];
  const snapshots: string[] = [];
  let targets = 0;

  const createRequest = (name: string, bytes: number): Reply<CreateVolumeRequest> => ({
    name,
    capacity_range: { required_bytes: bytes },
    volume_capabilities: [mountCapability],
    accessibility_requirements: {
      preferred: [{ segments: { [TOPOLOGY_CLUSTER_KEY]: cluster, [TOPOLOGY_NODE_KEY]: node } }],
    },
  });

  async function createVolume(name: string, bytes: number, extra: Partial<Reply<CreateVolumeRequest>> = {}) {
    const res = await controller.call("CreateVolume", { ...createRequest(name, bytes), ...extra });
    created.push(res.volume?.volume_id ?? "");
    return res.volume?.volume_id ?? "";
  }

  async function publish(volumeId: string, readonly = false): Promise<string> {
    targets += 1;
    const target = join(driver.dir, `target-${targets}`);
    await nodeClient.call("NodePublishVolume", {
      volume_id: volumeId,
      target_path: target,
      volume_capability: mountCapability,
      readonly,
    });
    return target;
  }

  async function unpublish(volumeId: string, target: string): Promise<void> {
    await nodeClient.call("NodeUnpublishVolume", { volume_id: volumeId, target_path: target });
  }

  beforeAll(async () => {
    await applyCrds(api.kubeConfig());
    skein = new SkeinApi(api.kubeConfig());
    pool = await createPool({ sizeMiB: 256 });
    driver = await startDriver({
      kubeconfigPath: api.kubeconfigPath,
      pool: pool.name,
      node,
      cluster,
      nodeArgs: ["--resync=1"],
    });
    controller = driver.controller();
    nodeClient = driver.nodeClient();
  });

  afterAll(async () => {
    for (const id of snapshots.reverse())
      await controller?.call("DeleteSnapshot", { snapshot_id: id }).catch(() => undefined);
    for (const id of created.reverse())
      await controller?.call("DeleteVolume", { volume_id: id }).catch(() => undefined);
    controller?.close();
    nodeClient?.close();
    if (process.env.SKEIN_KEEP_LOGS)
      await run(["cp", "-r", driver.dir, process.env.SKEIN_KEEP_LOGS]).catch(() => undefined);
    await driver?.stop();
    await skein?.delete("StoragePool", node).catch(() => undefined);
    await skein?.delete("StoragePool", `${node}-other`).catch(() => undefined);
    await pool?.destroy();
  });

  it("enforces the capacity as a quota: writing past it fails", async () => {
    const id = await createVolume("quota", 16 * MiB);
    const target = await publish(id);
    try {
      writeFileSync(join(target, "fits"), randomBytes(8 * MiB));
      let errno: number | undefined;
      try {
        writeFileSync(join(target, "too-much"), randomBytes(16 * MiB));
      } catch (err) {
        errno = (err as NodeJS.ErrnoException).errno;
      }
      // EDQUOT (libuv has no name for it, so code is UNKNOWN) or ENOSPC.
      expect([-constants.errno.EDQUOT, -constants.errno.ENOSPC]).toContain(errno);
    } finally {
      await unpublish(id, target);
    }
  });

  it("refuses to delete a published volume (FAILED_PRECONDITION) and deletes it once unpublished", async () => {
    const id = await createVolume("in-use", 16 * MiB);
    const target = await publish(id);
    writeFileSync(join(target, "data"), randomBytes(MiB));
    expect(await codeOf(controller.call("DeleteVolume", { volume_id: id }))).toBe("FAILED_PRECONDITION");
    expect(readFileSync(join(target, "data")).length).toBe(MiB);
    await unpublish(id, target);
    await controller.call("DeleteVolume", { volume_id: id });
    expect(await skein.get("Volume", id)).toBeUndefined();
    const { stdout } = await run(["zfs", "list", "-H", "-o", "name", "-r", `${pool.name}/skein`]);
    expect(stdout).not.toContain("in-use");
  });

  it("expands a volume online: the larger quota takes effect at once", async () => {
    const id = await createVolume("grows", 16 * MiB);
    const target = await publish(id);
    try {
      const res = await controller.call("ControllerExpandVolume", {
        volume_id: id,
        capacity_range: { required_bytes: 48 * MiB },
      });
      expect(res).toMatchObject({ capacity_bytes: 48 * MiB, node_expansion_required: false });
      writeFileSync(join(target, "bigger"), randomBytes(32 * MiB));
      const stats = await nodeClient.call("NodeGetVolumeStats", { volume_id: id, volume_path: target });
      const bytes = stats.usage.find((u) => u.unit === "BYTES");
      expect(bytes?.total).toBeGreaterThan(40 * MiB);
      expect(bytes?.used).toBeGreaterThanOrEqual(30 * MiB);
      const expanded = await nodeClient.call("NodeExpandVolume", { volume_id: id, volume_path: target });
      expect(expanded.capacity_bytes).toBe(48 * MiB);
      // Shrinking is not a thing: asking for less keeps what is there.
      const same = await controller.call("ControllerExpandVolume", {
        volume_id: id,
        capacity_range: { required_bytes: 16 * MiB },
      });
      expect(same.capacity_bytes).toBe(48 * MiB);
    } finally {
      await unpublish(id, target);
    }
  });

  it("restores a snapshot and clones a volume with the source's content, and the snapshot survives an agent restart", async () => {
    const source = await createVolume("source", 16 * MiB);
    const content = randomBytes(3 * MiB);
    const target = await publish(source);
    writeFileSync(join(target, "data"), content);
    await unpublish(source, target);

    const snap = await controller.call("CreateSnapshot", { name: "source-snap", source_volume_id: source });
    snapshots.push(snap.snapshot?.snapshot_id ?? "");
    expect(snap.snapshot).toMatchObject({ ready_to_use: true, source_volume_id: source });

    // Written after the snapshot: the restore must not see it.
    const later = await publish(source);
    writeFileSync(join(later, "data"), randomBytes(1024));
    await unpublish(source, later);

    await driver.restartNode();
    const listed = await controller.call("ListSnapshots", { snapshot_id: snap.snapshot?.snapshot_id ?? "" });
    expect(listed.entries.map((e) => e.snapshot?.ready_to_use)).toEqual([true]);
    const { stdout } = await run([
      "zfs",
      "list",
      "-H",
      "-t",
      "snapshot",
      "-o",
      "name",
      "-r",
      `${pool.name}/skein/source`,
    ]);
    expect(stdout).toContain(`${pool.name}/skein/source@source-snap`);

    const restored = await createVolume("restored", 16 * MiB, {
      volume_content_source: { snapshot: { snapshot_id: snap.snapshot?.snapshot_id ?? "" } },
    });
    const clone = await createVolume("cloned", 16 * MiB, {
      volume_content_source: { volume: { volume_id: source } },
    });
    const restoredAt = await publish(restored, true);
    const cloneAt = await publish(clone);
    try {
      expect(readFileSync(join(restoredAt, "data")).equals(content)).toBe(true);
      expect(readFileSync(join(cloneAt, "data")).length).toBe(1024);
      // The restore is published read-only as asked.
      expect(() => writeFileSync(join(restoredAt, "x"), "x")).toThrow(/EROFS/);
      // Copies are independent: the snapshot can go while they stay.
      await controller.call("DeleteSnapshot", { snapshot_id: snap.snapshot?.snapshot_id ?? "" });
      expect(readFileSync(join(restoredAt, "data")).equals(content)).toBe(true);
    } finally {
      await unpublish(restored, restoredAt);
      await unpublish(clone, cloneAt);
    }
  });

  it("answers RESOURCE_EXHAUSTED when the pool cannot hold the volume, and leaves nothing behind", async () => {
    const code = await codeOf(controller.call("CreateVolume", createRequest("too-big", 1024 * MiB)));
    expect(code).toBe("RESOURCE_EXHAUSTED");
    await eventually(
      "the failed Volume to be gone",
      async () => (await skein.get("Volume", "too-big")) === undefined,
    );
    const { stdout } = await run(["zfs", "list", "-H", "-o", "name", "-r", `${pool.name}/skein`]);
    expect(stdout).not.toContain("too-big");
  });

  it("gives bad requests the spec's codes and changes nothing", async () => {
    await skein.create("StoragePool", {
      metadata: { name: `${node}-other` },
      spec: { node: `${node}-other`, pool: "tank" },
    });
    const id = await createVolume("stays", 16 * MiB);
    const before = await controller.call("ListVolumes", {});
    const cases: [string, () => Promise<unknown>, string][] = [
      [
        "unknown parameter",
        () =>
          controller.call("CreateVolume", {
            ...createRequest("bad1", 16 * MiB),
            parameters: { dedup: "on" },
          }),
        "INVALID_ARGUMENT",
      ],
      [
        "typo in a parameter",
        () =>
          controller.call("CreateVolume", {
            ...createRequest("bad2", 16 * MiB),
            parameters: { compresion: "lz4" },
          }),
        "INVALID_ARGUMENT",
      ],
      [
        "block volume",
        () =>
          controller.call("CreateVolume", {
            ...createRequest("bad3", 16 * MiB),
            volume_capabilities: [{ block: {}, access_mode: { mode: "SINGLE_NODE_WRITER" } }],
          }),
        "INVALID_ARGUMENT",
      ],
      [
        "same name, other size",
        () =>
          controller.call("CreateVolume", {
            ...createRequest("stays", 32 * MiB),
            capacity_range: { required_bytes: 32 * MiB, limit_bytes: 32 * MiB },
          }),
        "ALREADY_EXISTS",
      ],
      [
        "missing source snapshot",
        () =>
          controller.call("CreateVolume", {
            ...createRequest("bad4", 16 * MiB),
            volume_content_source: { snapshot: { snapshot_id: "nope" } },
          }),
        "NOT_FOUND",
      ],
      [
        "clone smaller than its source",
        () =>
          controller.call("CreateVolume", {
            ...createRequest("bad5", 8 * MiB),
            volume_content_source: { volume: { volume_id: id } },
          }),
        "OUT_OF_RANGE",
      ],
      [
        "snapshot of a missing volume",
        () => controller.call("CreateSnapshot", { name: "bad-snap", source_volume_id: "nope" }),
        "NOT_FOUND",
      ],
      [
        "publish to an unknown node",
        () =>
          controller.call("ControllerPublishVolume", {
            volume_id: id,
            node_id: "nowhere",
            volume_capability: mountCapability,
          }),
        "NOT_FOUND",
      ],
      [
        // Not a bad request: the data moves there (no operator runs here, so it never arrives).
        "publish to another node",
        () =>
          controller.call("ControllerPublishVolume", {
            volume_id: id,
            node_id: `${node}-other`,
            volume_capability: mountCapability,
          }),
        "ABORTED",
      ],
      [
        "node publish of a missing volume",
        () =>
          nodeClient.call("NodePublishVolume", {
            volume_id: "nope",
            target_path: join(driver.dir, "nope"),
            volume_capability: mountCapability,
          }),
        "NOT_FOUND",
      ],
      [
        "stats of an unpublished path",
        () => nodeClient.call("NodeGetVolumeStats", { volume_id: id, volume_path: driver.dir }),
        "NOT_FOUND",
      ],
      [
        "expand a missing volume",
        () =>
          controller.call("ControllerExpandVolume", {
            volume_id: "nope",
            capacity_range: { required_bytes: MiB },
          }),
        "NOT_FOUND",
      ],
    ];
    for (const [what, call, code] of cases)
      expect(`${what}: ${await codeOf(call())}`).toBe(`${what}: ${code}`);
    const after = await controller.call("ListVolumes", {});
    expect(after.entries.map((e) => e.volume?.volume_id)).toEqual(
      before.entries.map((e) => e.volume?.volume_id),
    );
    for (const name of ["bad1", "bad2", "bad3", "bad4", "bad5"])
      expect(await skein.get("Volume", name)).toBeUndefined();
    expect(await skein.get("Snapshot", "bad-snap")).toBeUndefined();
    const move = migrationName(id, `${node}-other`);
    expect((await skein.get("VolumeMigration", move))?.spec).toMatchObject({
      volume: id,
      targetNode: `${node}-other`,
    });
    await skein.delete("VolumeMigration", move);
    const published = await controller.call("ControllerPublishVolume", {
      volume_id: id,
      node_id: node,
      volume_capability: mountCapability,
    });
    expect(published.publish_context).toEqual({});
  });

  it("answers ABORTED to a second call for a volume while the first is in flight", async () => {
    const [a, b] = await Promise.all([
      codeOf(controller.call("CreateVolume", createRequest("racing", 16 * MiB))),
      codeOf(controller.call("CreateVolume", createRequest("racing", 16 * MiB))),
    ]);
    created.push("racing");
    expect([a, b].sort()).toEqual(["ABORTED", "OK"]);
  });

  it("reports datasets that Skein tagged but no Volume owns", async () => {
    const orphan = `${pool.name}/skein/orphaned`;
    await run(["zfs", "create", "-o", "skein.io:volume=orphaned", orphan]);
    try {
      const condition = await eventually(
        "the StoragePool to report the orphan",
        async () => {
          const sp = await skein.get("StoragePool", node);
          const c = sp?.status?.conditions?.find((x) => x.type === "OrphanedDatasets");
          return c?.status === "True" && c.message.includes(orphan) ? c : undefined;
        },
        20_000,
      );
      expect(condition.reason).toBe("OrphansFound");
      // Reported, never destroyed.
      expect((await run(["zfs", "list", "-H", "-o", "name", orphan])).stdout.trim()).toBe(orphan);
    } finally {
      await eventually("the orphan to be destroyed", async () => {
        await run(["zfs", "destroy", orphan]);
        return true;
      });
    }
  });

  it("publishes the pool's size and free space, and GetCapacity answers from it", async () => {
    const sp = await skein.get("StoragePool", node);
    expect(sp?.spec).toEqual({ node, pool: pool.name });
    expect(sp?.status?.sizeBytes).toBeGreaterThan(200 * MiB);
    const capacity = await controller.call("GetCapacity", {
      accessible_topology: { segments: { [TOPOLOGY_CLUSTER_KEY]: cluster, [TOPOLOGY_NODE_KEY]: node } },
    });
    expect(capacity.available_capacity).toBe(sp?.status?.freeBytes);
    expect(capacity.maximum_volume_size?.value).toBe(sp?.status?.freeBytes);
    const elsewhere = await controller.call("GetCapacity", {
      accessible_topology: { segments: { [TOPOLOGY_CLUSTER_KEY]: "other" } },
    });
    expect(elsewhere.available_capacity).toBe(0);
  });
});
