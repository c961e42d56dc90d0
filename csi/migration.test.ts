/**
 * Volumes follow their pods, on two simulated nodes as real processes (see
 * testing/migration-cluster.ts): the operator issues each node's transfer
 * certificate; a VolumeMigration copies the data while it is in use and hands
 * ownership over once it is unpublished; ControllerPublishVolume on the other
 * node starts one. Then the failures: an agent killed, the operator killed, the
 * link cut, the target's pool full, at the full send, at an incremental round
 * and at the cutover. Each must keep every committed byte, leave the source
 * usable until the handoff, never have two read-write mounts, and complete.
 */
import { X509Certificate } from "node:crypto";
import { existsSync, mkdirSync, writeFileSync } from "node:fs";
import { mkdir, rmdir, stat } from "node:fs/promises";
import { join } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import { status as grpcStatus, type ServiceError } from "@grpc/grpc-js";
import { CoreV1Api } from "@kubernetes/client-node";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import type { VolumeMigration } from "../api/v1alpha1/index.ts";
import { run } from "../kit/exec.ts";
import {
  type MigrationCluster,
  NAMESPACE,
  type SimNode,
  startMigrationCluster,
} from "./testing/migration-cluster.ts";
import { capability, MiB, type Sums, settles, volumeKit } from "./testing/volume-kit.ts";
import { incomingDataset, volumeDataset } from "./zfs/names.ts";

/**
 * Longer than a fault at the cutover lasts in these tests: the checks made while the link is
 * cut (the released source read through a clone, a refused publish, a pause) took over 20 s on
 * a loaded 2-core machine, and a fault that outlasts the timeout rolls the move back instead.
 */
const CUTOVER_TIMEOUT_S = 45;

// Cases wait on zfs-fuse, which can call a dataset busy for minutes (see expectCompletedOn).
describe("volume migration between two nodes", { timeout: 300_000 }, () => {
  let c: MigrationCluster;
  let a: SimNode;
  let b: SimNode;
  const { mountpoint, checksums, writeFile, createVolume, publish, unpublish, migrate, migration, until } =
    volumeKit(() => c, "mig");

  beforeAll(async () => {
    c = await startMigrationCluster({ nodes: 2, cutoverTimeoutS: CUTOVER_TIMEOUT_S });
    [a, b] = c.nodes as [SimNode, SimNode];
  }, 300_000);

  afterAll(async () => {
    await c?.stop();
  });

  // A failed test must not leave its fault behind for the next ones; and volumes are thick
  // (their capacity is reserved): each test's go, so the pools do not fill up.
  afterEach(async () => {
    await a.node.restore().catch(() => undefined);
    for (const n of c.nodes) if (!n.agentRunning()) await n.startAgent();
    if (!c.operatorRunning()) await c.startOperator();
    for (const v of (await c.api.list("Volume")).items) await c.api.delete("Volume", v.metadata.name ?? "");
  });

  /**
   * Probes both copies while `during` runs (a directory made and removed: a
   * read-only dataset refuses it; zfs-fuse's `readonly` property cannot be
   * trusted while mounted): at no moment may both accept writes.
   */
  async function oneWriter<T>(
    volume: string,
    source: SimNode,
    target: SimNode,
    during: () => Promise<T>,
  ): Promise<T> {
    const [sourceDir, targetDir] = [mountpoint(source, volume), mountpoint(target, volume)];
    const violations: string[] = [];
    let done = false;
    const writable = async (dir: string) => {
      // Only a mounted dataset counts, not a directory its unmount left behind.
      const [self, parent] = await Promise.all([
        stat(dir).catch(() => undefined),
        stat(join(dir, "..")).catch(() => undefined),
      ]);
      if (!self || !parent || self.dev === parent.dev) return false;
      const probe = join(dir, `.probe-${process.pid}`);
      try {
        await mkdir(probe);
      } catch {
        return false;
      }
      await rmdir(probe).catch(() => undefined);
      return true;
    };
    // Probes take time on a loaded machine, so two successes in one round prove
    // nothing. What does: the source accepting a write in a probe that *started
    // after* the target had accepted one (once writable, the target stays the
    // writer), since then both were writable at the source's moment.
    const sampler = (async () => {
      let targetWritableAt: number | undefined;
      while (!done) {
        const started = Date.now();
        if ((await writable(sourceDir)) && targetWritableAt !== undefined && started > targetWritableAt) {
          violations.push(`${new Date(started).toISOString()} ${sourceDir} after ${targetDir} took writes`);
        }
        if (await writable(targetDir)) targetWritableAt ??= Date.now();
        await sleep(100);
      }
    })();
    try {
      return await during();
    } finally {
      done = true;
      await sampler;
      expect(violations, "two writable copies at once").toEqual([]);
    }
  }

  async function expectCompletedOn(
    volume: string,
    name: string,
    node: SimNode,
    sums: Sums,
  ): Promise<VolumeMigration> {
    const m = await until(name, (x) => x.status?.phase === "Completed", 120_000);
    const v = await c.api.get("Volume", volume);
    expect(v?.spec.ownerNode).toBe(node.name);
    await settles(
      "the new owner to report the volume",
      async () => expect((await c.api.get("Volume", volume))?.status?.node).toBe(node.name),
      30_000,
    );
    expect(checksums(mountpoint(node, volume))).toEqual(sums);
    const other = node === a ? b : a;
    // The old owner's copy goes once the new owner has confirmed. zfs-fuse may call it busy
    // for a minute or more after an agent was killed mid-send (its daemon still holds the
    // dataset); the agent keeps retrying.
    await settles(
      "the old copy to go",
      async () => {
        const exists = await run(["zfs", "list", volumeDataset(other.pool.name, volume)]).then(
          () => true,
          () => false,
        );
        expect(exists).toBe(false);
      },
      180_000,
    );
    return m;
  }

  it("issues every node a transfer certificate from one cluster CA", async () => {
    const core = c.kc.makeApiClient(CoreV1Api);
    const ca = await core.readNamespacedSecret({ name: "skein-transfer-ca", namespace: NAMESPACE });
    const caCert = new X509Certificate(Buffer.from(ca.data!["tls.crt"]!, "base64"));
    for (const n of [a, b]) {
      const s = await core.readNamespacedSecret({ name: `skein-transfer-${n.name}`, namespace: NAMESPACE });
      const cert = new X509Certificate(Buffer.from(s.data!["tls.crt"]!, "base64"));
      expect(cert.subject).toContain(`CN=${n.name}`);
      expect(cert.subjectAltName).toBe(`DNS:${n.name}`);
      expect(cert.verify(caCert.publicKey)).toBe(true);
      expect(s.data!["tls.key"]).toBeTruthy();
    }
  });

  it("moves a volume while a writer keeps writing, then hands over after it is unpublished", async () => {
    const { name: volume, sums } = await createVolume(a, 4, 8);
    const target = await publish(a, volume);
    await oneWriter(volume, a, b, async () => {
      let writing = true;
      let n = 0;
      const writer = (async () => {
        while (writing) {
          writeFile(a, volume, `w${n++}.bin`, 256 * 1024, sums);
          await sleep(50);
        }
      })();
      const name = await migrate(volume, b);
      // Rounds go on while the pod writes; the source is not released while it is published.
      const replicating = await until(name, (m) => (m.status?.round ?? 0) >= 3);
      expect(replicating.status?.phase).toBe("Replicating");
      expect(replicating.status?.finalSnapshot).toBeUndefined();
      expect(replicating.status?.bytesSent).toBeGreaterThan(32 * MiB);
      // The target's copy is received under its read-only, unmounted parent.
      const copy = await run([
        "zfs",
        "get",
        "-H",
        "-o",
        "value",
        "mounted,readonly",
        incomingDataset(b.pool.name, volume),
      ]);
      expect(copy.stdout.trim().split("\n")).toEqual(["no", "on"]);
      // No snapshot while it moves: it would stay behind with the old copy.
      const controller = c.controller();
      try {
        await expect(
          controller.call("CreateSnapshot", {
            name: `snap-of-${volume}`,
            source_volume_id: volume,
            parameters: {},
          }),
        ).rejects.toMatchObject({ code: grpcStatus.ABORTED, details: expect.stringContaining(name) });
      } finally {
        controller.close();
      }
      writing = false;
      await writer;
      expect(n).toBeGreaterThan(5);
      await unpublish(a, volume, target);
      const done = await expectCompletedOn(volume, name, b, sums);
      expect(done.status?.downtimeMilliseconds).toBeGreaterThanOrEqual(0);
      expect(done.status?.downtimeMilliseconds).toBeLessThan(15_000);
      expect(done.status?.sourceNode).toBe(a.name);
    });
    // The new owner mounts it read-write; the old one refuses.
    const onB = await publish(b, volume);
    await unpublish(b, volume, onB);
    await expect(publish(a, volume)).rejects.toMatchObject({ code: grpcStatus.FAILED_PRECONDITION });
  });

  it("ControllerPublishVolume on another node moves the data there and answers ABORTED until it has", async () => {
    const { name: volume, sums } = await createVolume(b, 2, 4);
    const controller = c.controller();
    const request = { volume_id: volume, node_id: a.name, volume_capability: capability, readonly: false };
    const codes = new Set<string>();
    try {
      await oneWriter(volume, b, a, () =>
        settles(
          "ControllerPublishVolume to succeed",
          async () => {
            try {
              await controller.call("ControllerPublishVolume", request);
            } catch (err) {
              codes.add(grpcStatus[(err as ServiceError).code] ?? "?");
              throw err;
            }
          },
          120_000,
        ),
      );
      expect([...codes]).toEqual(["ABORTED"]);
      // Idempotent once there.
      await controller.call("ControllerPublishVolume", request);
    } finally {
      controller.close();
    }
    await expectCompletedOn(volume, `${volume}-to-${a.name}`, a, sums);
  });

  // ---- failures ----

  type Fault = { name: string; inject(): Promise<void> | void; heal(): Promise<void> };
  const faults: Record<string, () => Fault> = {
    "the source agent is killed": () => ({
      name: "source agent",
      inject: () => a.killAgent(),
      heal: () => a.startAgent(),
    }),
    "the target agent is killed": () => ({
      name: "target agent",
      inject: () => b.killAgent(),
      heal: () => b.startAgent(),
    }),
    "the operator is killed": () => ({
      name: "operator",
      inject: () => c.killOperator(),
      heal: () => c.startOperator(),
    }),
    "the link between the nodes is cut": () => ({
      name: "link",
      inject: () => a.node.cut(),
      heal: () => a.node.restore(),
    }),
  };

  /** Source still serves: readable, and (before it is released) writable. */
  /** Source still serves before it is released: every byte readable, and writable. */
  function sourceUsable(volume: string, sums: Sums): void {
    expect(checksums(mountpoint(a, volume))).toEqual(sums);
    writeFile(a, volume, `during-fault-${Date.now()}.bin`, 64 * 1024, sums);
  }

  /**
   * Source released for the cutover: read-only and unmounted (no pod can write),
   * and its final snapshot holds every byte (read through a throwaway clone).
   */
  async function sourceReleasedIntact(volume: string, sums: Sums, final: string): Promise<void> {
    const dataset = volumeDataset(a.pool.name, volume);
    const state = (await run(["zfs", "get", "-H", "-o", "value", "readonly,mounted", dataset])).stdout;
    expect(state.trim().split("\n")).toEqual(["on", "no"]);
    const clone = `${a.pool.name}/verify-${volume}`;
    const at = join(c.dir, `verify-${volume}`);
    await run(["zfs", "clone", "-o", `mountpoint=${at}`, `${dataset}@${final}`, clone]);
    try {
      expect(checksums(at)).toEqual(sums);
    } finally {
      await settles("the verification clone to go", () => run(["zfs", "destroy", "-f", clone]), 30_000);
    }
  }

  it.each(Object.keys(faults))("survives when %s during the full send", async (fault) => {
    const f = faults[fault]!();
    const { name: volume, sums } = await createVolume(a, 3, 8);
    const target = await publish(a, volume);
    await oneWriter(volume, a, b, async () => {
      if (f.name !== "operator") await f.inject();
      const name = await migrate(volume, b);
      if (f.name === "operator") {
        await until(name, (m) => m.status?.phase === "Replicating");
        await f.inject();
      }
      await sleep(4_000);
      sourceUsable(volume, sums);
      const m = await migration(name);
      expect(m.status?.finalSnapshot).toBeUndefined();
      expect((await c.api.get("Volume", volume))?.spec.ownerNode).toBe(a.name);
      await f.heal();
      await until(name, (x) => (x.status?.round ?? 0) >= 2);
      await unpublish(a, volume, target);
      await expectCompletedOn(volume, name, b, sums);
    });
    await migrate(volume, a, `${volume}-back`);
    await expectCompletedOn(volume, `${volume}-back`, a, sums);
  });

  it.each(Object.keys(faults))("survives when %s during an incremental round", async (fault) => {
    const f = faults[fault]!();
    const { name: volume, sums } = await createVolume(a, 2, 4);
    const target = await publish(a, volume);
    await oneWriter(volume, a, b, async () => {
      const name = await migrate(volume, b);
      await until(name, (m) => (m.status?.round ?? 0) >= 1);
      // A big delta, so the next round is under way when the fault hits.
      writeFile(a, volume, "delta.bin", 24 * MiB, sums);
      await sleep(300);
      await f.inject();
      await sleep(3_000);
      sourceUsable(volume, sums);
      expect((await migration(name)).status?.finalSnapshot).toBeUndefined();
      await f.heal();
      await until(name, (x) => (x.status?.lastRoundBytes ?? Number.POSITIVE_INFINITY) < 16 * MiB);
      await unpublish(a, volume, target);
      await expectCompletedOn(volume, name, b, sums);
    });
  });

  it.each(Object.keys(faults))("survives when %s at the cutover", async (fault) => {
    const f = faults[fault]!();
    const { name: volume, sums } = await createVolume(a, 2, 4);
    const target = await publish(a, volume);
    await oneWriter(volume, a, b, async () => {
      const name = await migrate(volume, b);
      await until(name, (m) => (m.status?.round ?? 0) >= 1);
      writeFile(a, volume, "last.bin", 8 * MiB, sums);
      if (f.name === "link" || f.name === "target agent") {
        // The final increment cannot reach the target: the cutover waits (shorter than its timeout).
        await until(
          name,
          (m) =>
            (m.status?.lastRoundBytes ?? Number.POSITIVE_INFINITY) < 16 * MiB && (m.status?.round ?? 0) >= 2,
        );
        await f.inject();
        await unpublish(a, volume, target);
        const released = await until(name, (m) => !!m.status?.finalSnapshot, 30_000);
        // Released: read-only, and no pod may mount it any more; the data is all there.
        expect(released.status?.phase === "CuttingOver" || released.status?.phase === "Replicating").toBe(
          true,
        );
        await sourceReleasedIntact(volume, sums, released.status?.finalSnapshot ?? "");
        await expect(publish(a, volume)).rejects.toMatchObject({ code: grpcStatus.ABORTED });
        await sleep(3_000);
        expect((await c.api.get("Volume", volume))?.spec.ownerNode).toBe(a.name);
        expect(
          (await migration(name)).status?.phase,
          "the checks during the fault outlasted the cutover timeout (raise CUTOVER_TIMEOUT_S)",
        ).not.toBe("RolledBack");
      } else {
        await unpublish(a, volume, target);
        // Hit the moment the source has released the volume.
        await until(name, (m) => !!m.status?.finalSnapshot, 60_000);
        await f.inject();
        await sleep(3_000);
      }
      await f.heal();
      await expectCompletedOn(volume, name, b, sums);
    });
  });

  it("survives the target's pool filling up: the send fails, the source stays intact, and completes once there is room", async () => {
    const { name: volume, sums } = await createVolume(a, 4, 8);
    // Leave less room on the target than the volume's data.
    const filler = `${b.pool.name}/filler`;
    await run(["zfs", "create", filler]);
    try {
      const free = Number(
        (await run(["zfs", "get", "-Hp", "-o", "value", "available", b.pool.name])).stdout.trim(),
      );
      await run(["zfs", "set", `refreservation=${free - 16 * MiB}`, filler]);
      const name = await migrate(volume, b);
      const failing = await until(name, (m) => m.status?.transferError?.node === b.name, 60_000);
      expect(failing.status?.transferError?.message).toMatch(/space|ENOSPC|quota|failed/i);
      expect(failing.status?.phase).toBe("Replicating");
      sourceUsable(volume, sums);
      // Room again (dropping the reservation needs no unmount, which zfs-fuse may call busy).
      await run(["zfs", "set", "refreservation=none", filler]);
      await expectCompletedOn(volume, name, b, sums);
    } finally {
      await run(["zfs", "set", "refreservation=none", filler]).catch(() => undefined);
      await run(["zfs", "destroy", "-f", filler]).catch(() => undefined);
    }
  });

  it("rolls back a cutover the target cannot finish, leaving the source writable, and a retry completes", async () => {
    const { name: volume, sums } = await createVolume(a, 2, 4);
    const published = await publish(a, volume);
    const name = await migrate(volume, b);
    await until(name, (m) => (m.status?.round ?? 0) >= 1);
    await a.node.cut();
    try {
      // The pod leaves: the source releases the volume, but the final increment cannot travel.
      await unpublish(a, volume, published);
      const m = await until(name, (x) => x.status?.phase === "RolledBack", (CUTOVER_TIMEOUT_S + 60) * 1000);
      expect(m.status?.finalSnapshot).toBeTruthy();
      expect((await c.api.get("Volume", volume))?.spec.ownerNode).toBe(a.name);
      // Writable and mounted on the source again (released, it was read-only and unmounted).
      await settles(
        "the source to be writable again",
        async () => {
          const props = (
            await run([
              "zfs",
              "get",
              "-H",
              "-o",
              "value",
              "readonly,mounted",
              volumeDataset(a.pool.name, volume),
            ])
          ).stdout
            .trim()
            .split("\n");
          expect(props).toEqual(["off", "yes"]);
        },
        30_000,
      );
      writeFile(a, volume, "after-rollback.bin", 1 * MiB, sums);
      const again = await publish(a, volume);
      await unpublish(a, volume, again);
    } finally {
      await a.node.restore();
    }
    const retry = await migrate(volume, b, `${volume}-retry`);
    await expectCompletedOn(volume, retry, b, sums);
  });

  it("refuses a transfer to a node that no migration names", async () => {
    // Node b asks node a for a volume with no migration under way: refused.
    const { name: volume } = await createVolume(a, 1, 1);
    const script = join(c.dir, "probe.mts");
    mkdirSync(c.dir, { recursive: true });
    writeFileSync(
      script,
      `import { listPeerSnapshots } from ${JSON.stringify(new URL("./transfer/client.ts", import.meta.url).pathname)};
import { loadTransferTls } from ${JSON.stringify(new URL("./transfer/credentials.ts", import.meta.url).pathname)};
import { loadKubeConfig } from ${JSON.stringify(new URL("../kit/k8s/kubeconfig.ts", import.meta.url).pathname)};
import { createLogger } from ${JSON.stringify(new URL("../kit/log.ts", import.meta.url).pathname)};
const { kubeConfig } = loadKubeConfig({ path: process.argv[2] });
const tls = await loadTransferTls({ namespace: ${JSON.stringify(NAMESPACE)} }, { node: ${JSON.stringify(b.name)}, kubeConfig, log: createLogger("probe") });
try {
  await listPeerSnapshots({ node: ${JSON.stringify(a.name)}, host: ${JSON.stringify(a.node.address)}, port: 7480 }, tls, ${JSON.stringify(volume)});
  console.log("ALLOWED");
} catch (err) { console.log("REFUSED " + err.message); }
`,
    );
    expect(existsSync(script)).toBe(true);
    const { stdout } = await b.node.netns.exec([
      process.execPath,
      "--import",
      "tsx",
      script,
      b.node.kubeconfigPath!,
    ]);
    expect(stdout).toMatch(/REFUSED .*no migration of volume/);
  });
});
