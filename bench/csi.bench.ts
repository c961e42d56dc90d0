/**
 * `npm run bench -- csi [--runs N] [--volumes M]`: what a volume costs through
 * Skein's CSI driver against the yardstick of a bare `zfs create` on the same
 * pool, in the same run.
 *
 * - Create-to-ready latency: CreateVolume (Volume object → the node agent's
 *   `zfs create` → status Ready → reply) vs `zfs create` of a dataset with the
 *   same quota and reservation. Runs alternate which goes first; medians of
 *   N runs each; the verdict is `RATIO create_latency_vs_zfs`.
 * - Throughput: M volumes created, then deleted, one call at a time (as the
 *   external-provisioner does per claim), in volumes per second.
 *
 * Real parts: `skein csi-controller` and `skein csi-node` as processes, a
 * zfs-fuse pool on a sparse file, etcd + kube-apiserver on loopback.
 */
import { parseArgs } from "node:util";
import { applyCrds } from "../api/v1alpha1/install.ts";
import { TOPOLOGY_NODE_KEY } from "../csi/requests.ts";
import { startDriver } from "../csi/testing/driver-processes.ts";
import { run } from "../kit/exec.ts";
import { startApiServer } from "../test/fixtures/apiserver.ts";
import { createPool } from "../test/fixtures/pool.ts";
import { ensureZfsDaemon } from "../test/fixtures/zfs-daemon.ts";
import { median, percentile, ratio, result, timeMs } from "./stats.ts";

const MiB = 1024 * 1024;
const SIZE = 4 * MiB;

export default async function csiBench(args: string[]): Promise<void> {
  const { values } = parseArgs({
    args,
    options: { runs: { type: "string", default: "15" }, volumes: { type: "string", default: "100" } },
  });
  const runs = Number(values.runs);
  const volumes = Number(values.volumes);
  if (!(Number.isInteger(runs) && runs >= 3)) throw new Error("--runs must be an integer ≥ 3");
  if (!(Number.isInteger(volumes) && volumes >= 1)) throw new Error("--volumes must be an integer ≥ 1");

  const stopZfs = await ensureZfsDaemon();
  const api = await startApiServer();
  // Thick provisioning reserves each volume's size: the pool must hold them all at once.
  const pool = await createPool({ sizeMiB: Math.max(256, Math.ceil(((volumes + 2) * SIZE) / MiB) + 128) });
  let driver: Awaited<ReturnType<typeof startDriver>> | undefined;
  try {
    await applyCrds(api.kubeConfig());
    driver = await startDriver({
      kubeconfigPath: api.kubeconfigPath,
      pool: pool.name,
      node: "bench-node",
      cluster: "bench",
    });
    const controller = driver.controller();
    const request = (name: string) => ({
      name,
      capacity_range: { required_bytes: SIZE },
      volume_capabilities: [{ mount: { fs_type: "" }, access_mode: { mode: "SINGLE_NODE_WRITER" as const } }],
      accessibility_requirements: { preferred: [{ segments: { [TOPOLOGY_NODE_KEY]: "bench-node" } }] },
    });
    const viaCsi = async (name: string) => {
      const ms = await timeMs(() => controller.call("CreateVolume", request(name)));
      await controller.call("DeleteVolume", { volume_id: name });
      return ms;
    };
    const viaZfs = async (name: string) => {
      const dataset = `${pool.name}/skein/${name}`;
      const props = ["-o", `refquota=${SIZE}`, "-o", `refreservation=${SIZE}`];
      const ms = await timeMs(() => run(["zfs", "create", ...props, dataset]));
      await destroy(dataset);
      return ms;
    };

    // Warm both paths (module loading, informer caches, the pool's first writes).
    await viaCsi("warm-csi");
    await viaZfs("warm-zfs");
    const csi: number[] = [];
    const zfs: number[] = [];
    for (let i = 0; i < runs; i++) {
      const order = i % 2 === 0 ? ["csi", "zfs"] : ["zfs", "csi"];
      for (const which of order) {
        if (which === "csi") csi.push(await viaCsi(`lat-csi-${i}`));
        else zfs.push(await viaZfs(`lat-zfs-${i}`));
      }
    }
    console.log(
      `create-to-ready, ${runs} runs: CSI median ${median(csi).toFixed(1)} ms (p90 ${percentile(csi, 90).toFixed(1)}), ` +
        `zfs create median ${median(zfs).toFixed(1)} ms (p90 ${percentile(zfs, 90).toFixed(1)})`,
    );

    const names = Array.from({ length: volumes }, (_, i) => `thr-${i}`);
    const createMs = await timeMs(async () => {
      for (const name of names) await controller.call("CreateVolume", request(name));
    });
    const deleteMs = await timeMs(async () => {
      for (const name of names) await controller.call("DeleteVolume", { volume_id: name });
    });
    console.log(
      `${volumes} volumes: created in ${(createMs / 1000).toFixed(2)} s, deleted in ${(deleteMs / 1000).toFixed(2)} s`,
    );
    controller.close();

    result("csi_create_latency_ms", median(csi));
    result("zfs_create_latency_ms", median(zfs));
    result("csi_creates_per_second", volumes / (createMs / 1000));
    result("csi_deletes_per_second", volumes / (deleteMs / 1000));
    ratio("create_latency_vs_zfs", median(csi) / median(zfs));
  } finally {
    await driver?.stop();
    await destroyPool(pool);
    await api.stop();
    await stopZfs();
  }
}

/** zfs-fuse can call a pool busy for seconds after heavy use; try again for a while. */
async function destroyPool(pool: Awaited<ReturnType<typeof createPool>>): Promise<void> {
  for (let attempt = 0; ; attempt++) {
    try {
      await pool.destroy();
      return;
    } catch (err) {
      if (attempt >= 10) throw err;
      await new Promise((r) => setTimeout(r, 1_000));
    }
  }
}

/** zfs-fuse may call a fresh dataset busy for a moment; try again briefly. */
async function destroy(dataset: string): Promise<void> {
  for (let attempt = 0; ; attempt++) {
    try {
      await run(["zfs", "destroy", dataset]);
      return;
    } catch (err) {
      if (attempt >= 10 || !String(err).includes("busy")) throw err;
      await new Promise((r) => setTimeout(r, 100));
    }
  }
}
