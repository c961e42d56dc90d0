/**
 * The runner against real zfs-fuse pools on sparse files (the daemon is
 * started by global setup).
 */

import { readFileSync, writeFileSync } from "node:fs";
import { constants } from "node:os";
import { join } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { InvalidInputError } from "../../kit/errors.ts";
import { run } from "../../kit/exec.ts";
import { createPool, type Pool } from "../../test/fixtures/pool.ts";
import { ZfsError } from "./errors.ts";
import { skeinRoot, volumeDataset, volumeSnapshot } from "./names.ts";
import { zfsPropertiesFromParameters } from "./properties.ts";
import { Zfs } from "./runner.ts";

const MiB = 1024 * 1024;

let zfs: Zfs;
let pool: Pool;
let other: Pool;

beforeAll(async () => {
  zfs = await Zfs.detect();
  pool = await createPool({ sizeMiB: 128 });
  other = await createPool({ sizeMiB: 128 });
  await zfs.create(skeinRoot(pool.name));
  await zfs.create(skeinRoot(other.name));
});

afterAll(async () => {
  await pool?.destroy();
  await other?.destroy();
});

function mountOf(dataset: string, on: Pool = pool): string {
  return join(on.mountRoot, dataset.slice(on.name.length + 1));
}

async function codeOf(promise: Promise<unknown>): Promise<string> {
  const err = await promise.then(
    () => undefined,
    (e: unknown) => e,
  );
  if (!(err instanceof ZfsError)) throw new Error(`expected a ZfsError, got ${String(err)}`);
  return err.code;
}

/** zfs-fuse keeps a dataset busy for a moment after a rollback remounts it. */
async function destroyOnceIdle(dataset: string): Promise<void> {
  for (let attempt = 1; ; attempt++) {
    try {
      return await zfs.destroy(dataset, { recursive: true });
    } catch (err) {
      if (!(err instanceof ZfsError && err.code === "ZfsBusy") || attempt === 20) throw err;
      await new Promise((r) => setTimeout(r, 250));
    }
  }
}

describe("datasets", () => {
  it("creates a volume with refquota and StorageClass properties, and reads them back", async () => {
    const v = volumeDataset(pool.name, "props");
    const properties = zfsPropertiesFromParameters({
      compression: "gzip-1",
      recordsize: "16K",
      atime: "off",
    });
    await zfs.create(v, { refquota: 8 * MiB, properties: { ...properties, "skein.io:volume": "props" } });
    const props = await zfs.properties(v, [
      "refquota",
      "compression",
      "recordsize",
      "atime",
      "skein.io:volume",
    ]);
    expect(Object.fromEntries([...props].map(([k, row]) => [k, [row.value, row.source]]))).toEqual({
      refquota: [String(8 * MiB), "local"],
      compression: ["gzip-1", "local"],
      recordsize: ["16384", "local"],
      atime: ["off", "local"],
      "skein.io:volume": ["props", "local"],
    });
    expect(await zfs.exists(v)).toBe(true);
    expect(await zfs.exists(volumeDataset(pool.name, "absent"))).toBe(false);
    expect((await zfs.space(v)).refquota).toBe(8 * MiB);
  });

  it("enforces refquota on writes, and raising it gives room", async () => {
    const v = volumeDataset(pool.name, "quota");
    await zfs.create(v, { refquota: 2 * MiB });
    const file = join(mountOf(v), "big");
    let writeError: NodeJS.ErrnoException | undefined;
    try {
      writeFileSync(file, Buffer.alloc(4 * MiB, 1));
    } catch (err) {
      writeError = err as NodeJS.ErrnoException;
    }
    // Node has no name for EDQUOT on this path ("UNKNOWN"); the number is what the kernel said.
    expect(writeError?.errno).toBe(-constants.errno.EDQUOT);
    // Shrinking below what is used is refused with its own code; growing works.
    expect(await codeOf(zfs.set(v, { refquota: String(64 * 1024) }))).toBe("ZfsQuotaBelowUsage");
    await zfs.set(v, { refquota: String(8 * MiB) });
    writeFileSync(file, Buffer.alloc(4 * MiB, 1));
    const space = await zfs.space(v);
    expect(space.refquota).toBe(8 * MiB);
    expect(space.referenced).toBeGreaterThan(3 * MiB);
  });

  it("maps a full pool to ZfsOutOfSpace", async () => {
    const v = volumeDataset(pool.name, "too-big");
    expect(await codeOf(zfs.create(v, { properties: { refreservation: String(1024 * MiB) } }))).toBe(
      "ZfsOutOfSpace",
    );
    expect(await zfs.exists(v)).toBe(false);
  });

  it("maps existing, missing and busy datasets to their codes", async () => {
    const v = volumeDataset(pool.name, "codes");
    await zfs.create(v);
    expect(await codeOf(zfs.create(v))).toBe("ZfsAlreadyExists");
    expect(await codeOf(zfs.destroy(volumeDataset(pool.name, "never")))).toBe("ZfsNotFound");
    expect(await codeOf(zfs.create(`${pool.name}/no/parent`))).toBe("ZfsNotFound");
    await zfs.snapshot(`${v}@s1`);
    await zfs.snapshot(`${v}@s2`);
    expect(await codeOf(zfs.snapshot(`${v}@s1`))).toBe("ZfsAlreadyExists");
    expect(await codeOf(zfs.destroy(v))).toBe("ZfsHasDependents");
    expect(await codeOf(zfs.rollback(`${v}@s1`))).toBe("ZfsHasDependents");
    await zfs.rollback(`${v}@s1`, { destroyNewer: true });
    expect(await zfs.snapshots(v)).toEqual([`${v}@s1`]);
    await destroyOnceIdle(v);
    expect(await zfs.exists(v)).toBe(false);
  });

  it("never passes a bad name to zfs", async () => {
    const before = await zfs.list([pool.name], { recursive: true });
    for (const bad of [`${pool.name}/skein/-x`, `${pool.name}/skein/a b`, `${pool.name}/../x`]) {
      await expect(zfs.create(bad)).rejects.toBeInstanceOf(InvalidInputError);
    }
    await expect(zfs.set(`${pool.name}/skein`, { "skein.io:x": "a\tb" })).rejects.toBeInstanceOf(
      InvalidInputError,
    );
    expect(await zfs.list([pool.name], { recursive: true })).toEqual(before);
  });
});

describe("snapshots, clones and holds", () => {
  it("clones a snapshot with the snapshot's content", async () => {
    const v = volumeDataset(pool.name, "src");
    await zfs.create(v, { refquota: 8 * MiB });
    writeFileSync(join(mountOf(v), "data"), "before");
    const snap = volumeSnapshot(pool.name, "src", "snap-1");
    await zfs.snapshot(snap, { properties: { "skein.io:snapshot": "snap-1" } });
    writeFileSync(join(mountOf(v), "data"), "after");

    const c = volumeDataset(pool.name, "clone");
    await zfs.clone(snap, c, { refquota: 8 * MiB, properties: { "skein.io:volume": "clone" } });
    expect(readFileSync(join(mountOf(c), "data"), "utf8")).toBe("before");
    expect((await zfs.properties(c, ["origin"])).get("origin")?.value).toBe(snap);
    expect((await zfs.properties(snap, ["skein.io:snapshot"])).get("skein.io:snapshot")?.value).toBe(
      "snap-1",
    );
    expect(await codeOf(zfs.destroy(snap))).toBe("ZfsHasDependents");
  });

  it("keeps a held snapshot until it is released", async () => {
    const v = volumeDataset(pool.name, "held");
    await zfs.create(v);
    const snap = `${v}@s`;
    await zfs.snapshot(snap);
    await zfs.hold("skein.io:migration", [snap]);
    expect(await zfs.holdCount(snap)).toBe(1);
    expect(await codeOf(zfs.hold("skein.io:migration", [snap]))).toBe("ZfsAlreadyExists");
    expect(await codeOf(zfs.destroy(snap))).toBe("ZfsBusy");
    if (zfs.capabilities.listHolds) {
      expect((await zfs.holds([snap])).map((h) => h.tag)).toEqual(["skein.io:migration"]);
    } else {
      expect(await codeOf(zfs.holds([snap]))).toBe("ZfsUnsupported");
    }
    await zfs.release("skein.io:migration", [snap]);
    expect(await codeOf(zfs.release("skein.io:migration", [snap]))).toBe("ZfsNotFound");
    expect(await zfs.holdCount(snap)).toBe(0);
    await zfs.destroy(snap);
    expect(await zfs.exists(snap)).toBe(false);
  });
});

describe("send and receive between pools", () => {
  it("sends a full stream, then an incremental one, and refuses to overwrite without force", async () => {
    const v = volumeDataset(pool.name, "moving");
    const target = volumeDataset(other.name, "moving");
    await zfs.create(v, { properties: { "skein.io:volume": "moving" } });
    writeFileSync(join(mountOf(v), "a"), "first");
    await zfs.snapshot(`${v}@r1`);
    await zfs.sendReceive(`${v}@r1`, {}, target, {});
    expect(readFileSync(join(mountOf(target, other), "a"), "utf8")).toBe("first");

    writeFileSync(join(mountOf(v), "b"), "second");
    await zfs.snapshot(`${v}@r2`);
    await zfs.snapshot(`${v}@r3`);
    await zfs.sendReceive(`${v}@r3`, { from: `${v}@r1`, intermediates: true }, target, { force: true });
    expect(readFileSync(join(mountOf(target, other), "b"), "utf8")).toBe("second");
    expect(await zfs.snapshots(target)).toEqual([`${target}@r1`, `${target}@r2`, `${target}@r3`]);

    // A full stream into an existing dataset, and an incremental whose base the target lacks.
    expect(await codeOf(zfs.sendReceive(`${v}@r1`, {}, target, {}))).toBe("ZfsAlreadyExists");
    await zfs.snapshot(`${v}@r4`);
    expect(await codeOf(zfs.sendReceive(`${v}@r4`, { from: `${v}@r1` }, target, {}))).toBe("ZfsDiverged");
  });

  it("carries skein.io: properties with -p", async () => {
    const v = volumeDataset(pool.name, "labelled");
    const target = volumeDataset(other.name, "labelled");
    await zfs.create(v, { refquota: 4 * MiB, properties: { "skein.io:volume": "labelled" } });
    await zfs.snapshot(`${v}@r1`);
    await zfs.sendReceive(`${v}@r1`, { properties: true }, target, {});
    const props = await zfs.properties(target, ["skein.io:volume", "refquota"]);
    expect(props.get("skein.io:volume")?.value).toBe("labelled");
    expect(props.get("refquota")?.value).toBe(String(4 * MiB));
  });

  it("refuses flags this ZFS lacks before running anything", async () => {
    const v = volumeDataset(pool.name, "moving");
    if (zfs.capabilities.receiveNoMount) return;
    expect(
      await codeOf(zfs.sendReceive(`${v}@r1`, {}, volumeDataset(other.name, "x"), { noMount: true })),
    ).toBe("ZfsUnsupported");
    expect(await zfs.exists(volumeDataset(other.name, "x"))).toBe(false);
  });
});

describe("state kept in ZFS", () => {
  it("lists managed datasets with their skein.io: properties, so orphans can be found", async () => {
    const p = await createPool({ sizeMiB: 64 });
    try {
      expect(await zfs.managedDatasets(p.name)).toEqual([]);
      await zfs.create(volumeDataset(p.name, "kept"), {
        parents: true,
        properties: { "skein.io:volume": "kept", "skein.io:owner": "node-a" },
      });
      await zfs.create(volumeDataset(p.name, "orphan"), { properties: { "skein.io:volume": "orphan" } });
      await zfs.create(`${skeinRoot(p.name)}/not_a_volume`);
      await zfs.snapshot(`${volumeDataset(p.name, "kept")}@s1`);

      // The pool survives an export and import, as it survives a node restart.
      // zfs-fuse calls a pool busy for seconds after writes, more so under load.
      for (let attempt = 0; ; attempt++) {
        try {
          await run(["zpool", "export", p.name]);
          break;
        } catch (err) {
          if (!/busy/.test(String(err)) || attempt >= 30) throw err;
          await sleep(1_000);
        }
      }
      await run(["zpool", "import", "-d", join(p.file, ".."), p.name]);

      const managed = await zfs.managedDatasets(p.name);
      expect(managed).toEqual([
        {
          dataset: volumeDataset(p.name, "kept"),
          volume: "kept",
          userProperties: { "skein.io:owner": "node-a", "skein.io:volume": "kept" },
        },
        {
          dataset: volumeDataset(p.name, "orphan"),
          volume: "orphan",
          userProperties: { "skein.io:volume": "orphan" },
        },
      ]);
      const known = new Set(["kept"]);
      expect(managed.filter((m) => !known.has(m.volume)).map((m) => m.volume)).toEqual(["orphan"]);
    } finally {
      await p.destroy();
    }
  });

  it("removes a user property with inherit", async () => {
    const v = volumeDataset(pool.name, "inherit");
    await zfs.create(v, { properties: { "skein.io:owner": "node-a" } });
    await zfs.inherit(v, "skein.io:owner");
    expect(
      (await zfs.managedDatasets(pool.name)).find((m) => m.volume === "inherit")?.userProperties,
    ).toEqual({});
  });
});

describe("pool space", () => {
  it("reports size, allocation, free and available bytes", async () => {
    const space = await zfs.poolSpace(pool.name);
    expect(space.name).toBe(pool.name);
    expect(space.health).toBe("ONLINE");
    expect(space.size).toBeGreaterThan(100 * MiB);
    expect(space.size).toBeLessThanOrEqual(128 * MiB);
    expect(space.free).toBeLessThanOrEqual(space.size);
    expect(space.allocated).toBeGreaterThan(0);
    expect(space.available).toBeGreaterThan(0);
    expect(space.available).toBeLessThanOrEqual(space.free);
    expect(space.exact).toBe(zfs.capabilities.parsableZpoolList);
  });

  it("reports a missing pool", async () => {
    expect(await codeOf(zfs.poolSpace("sktnosuchpool"))).toBe("ZfsNotFound");
  });
});
