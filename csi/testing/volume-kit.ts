/**
 * What migration and replica tests do to volumes on a MigrationCluster, as a
 * user and kubelet would: create a Volume and fill it with files whose
 * checksums are kept, publish and unpublish it through the node's CSI socket,
 * move it with a VolumeMigration, and wait for a state to be reached.
 */
import { createHash, randomBytes } from "node:crypto";
import { existsSync, readdirSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import { status as grpcStatus, type ServiceError } from "@grpc/grpc-js";
import { expect } from "vitest";
import type { Volume, VolumeMigration } from "../../api/v1alpha1/index.ts";
import { run } from "../../kit/exec.ts";
import { eventually } from "../../kit/k8s/testing.ts";
import { volumeDataset } from "../zfs/names.ts";
import type { MigrationCluster, SimNode } from "./migration-cluster.ts";

export const MiB = 1024 * 1024;
export const capability = { mount: { fs_type: "" }, access_mode: { mode: "SINGLE_NODE_WRITER" as const } };

/** File name → sha256 of its content. */
export type Sums = Record<string, string>;

/** Retries `check` (which asserts) until it passes; resolves with what it returned. */
export async function settles<T>(what: string, check: () => Promise<T>, timeoutMs: number): Promise<T> {
  const [value] = await eventually(what, async () => [await check()] as const, timeoutMs);
  return value;
}

/** `cluster` is read at each call: the kit can be made before the cluster starts. */
export function volumeKit(cluster: () => MigrationCluster, prefix: string) {
  let created = 0;

  const mountpoint = (node: SimNode, volume: string) => join(node.pool.mountRoot, "skein", volume);

  function checksums(dir: string): Sums {
    const out: Sums = {};
    // Files only: the one-writer probe may have a directory there for a moment.
    for (const f of readdirSync(dir, { withFileTypes: true })
      .filter((e) => e.isFile())
      .map((e) => e.name)
      .sort())
      out[f] = createHash("sha256")
        .update(readFileSync(join(dir, f)))
        .digest("hex");
    return out;
  }

  function writeFile(node: SimNode, volume: string, name: string, bytes: number, sums: Sums): void {
    const data = randomBytes(bytes);
    writeFileSync(join(mountpoint(node, volume), name), data);
    sums[name] = createHash("sha256").update(data).digest("hex");
  }

  async function createVolume(
    owner: SimNode,
    files = 4,
    fileMiB = 4,
    spec: Partial<Volume["spec"]> = {},
  ): Promise<{ name: string; sums: Sums }> {
    created += 1;
    const name = `${prefix}-${created}`;
    await cluster().api.create("Volume", {
      metadata: { name },
      spec: { capacityBytes: 80 * MiB, ownerNode: owner.name, ...spec },
    });
    await settles(
      `volume ${name} ready`,
      async () => {
        const v = await cluster().api.get("Volume", name);
        expect(v?.status?.phase).toBe("Ready");
        expect(v?.status?.node).toBe(owner.name);
      },
      60_000,
    );
    await settles(
      `the dataset of ${name} to be mounted`,
      async () => {
        const info = await run([
          "zfs",
          "get",
          "-H",
          "-o",
          "value",
          "mountpoint,mounted",
          volumeDataset(owner.pool.name, name),
        ]);
        expect(existsSync(mountpoint(owner, name)), info.stdout).toBe(true);
      },
      10_000,
    );
    const sums: Sums = {};
    for (let i = 0; i < files; i++) writeFile(owner, name, `f${i}.bin`, fileMiB * MiB, sums);
    return { name, sums };
  }

  async function publish(node: SimNode, volume: string): Promise<string> {
    const target = join(cluster().dir, `publish-${volume}-${node.name}-${Date.now()}`);
    const client = node.client();
    try {
      await client.call("NodePublishVolume", {
        volume_id: volume,
        target_path: target,
        volume_capability: capability,
      });
    } finally {
      client.close();
    }
    return target;
  }

  /** As kubelet does, retried while the node answers ABORTED (another operation on the volume). */
  async function unpublish(node: SimNode, volume: string, target: string): Promise<void> {
    const client = node.client();
    try {
      for (let attempt = 0; ; attempt++) {
        try {
          await client.call("NodeUnpublishVolume", { volume_id: volume, target_path: target });
          return;
        } catch (err) {
          if ((err as ServiceError).code !== grpcStatus.ABORTED || attempt > 20) throw err;
          await sleep(200);
        }
      }
    } finally {
      client.close();
    }
  }

  async function migrate(
    volume: string,
    to: SimNode,
    name = `${volume}-to-${to.name}`,
    force = false,
  ): Promise<string> {
    await cluster().api.create("VolumeMigration", {
      metadata: { name },
      spec: { volume, targetNode: to.name, force, reason: "test" },
    });
    return name;
  }

  async function migration(name: string): Promise<VolumeMigration> {
    const m = await cluster().api.get("VolumeMigration", name);
    if (!m) throw new Error(`migration ${name} is gone`);
    return m;
  }

  const until = (name: string, ok: (m: VolumeMigration) => boolean, timeoutMs = 90_000) =>
    settles(
      `migration ${name}`,
      async () => {
        const m = await migration(name);
        expect(ok(m), JSON.stringify(m.status)).toBe(true);
        return m;
      },
      timeoutMs,
    );

  /** Whether a dataset exists on this machine's pools. */
  const exists = (dataset: string) =>
    run(["zfs", "list", dataset]).then(
      () => true,
      () => false,
    );

  return {
    mountpoint,
    checksums,
    writeFile,
    createVolume,
    publish,
    unpublish,
    migrate,
    migration,
    until,
    exists,
  };
}
