/**
 * `npm run bench -- operator`: how fast the operator allocates node blocks
 * (100 nodes × 3 networks, from creating the Networks until all 300
 * NodeSubnets exist; median of runs), and its resident memory after it has
 * reconciled 1000 Volumes (each carrying a replica record of a gone node,
 * which node GC must drop: 1000 status writes).
 */
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import { CoreV1Api, CustomObjectsApi, type KubeConfig } from "@kubernetes/client-node";
import { GROUP, VERSION, type Volume } from "../api/v1alpha1/index.ts";
import { applyCrds } from "../api/v1alpha1/install.ts";
import { run } from "../kit/exec.ts";
import { eventually } from "../kit/k8s/testing.ts";
import { startApiServer } from "../test/fixtures/apiserver.ts";
import { createNode, createSkeinObject } from "../test/fixtures/objects.ts";
import { startProcess } from "../test/fixtures/process.ts";
import { median, result } from "./stats.ts";

const RUNS = 3;
const VOLUMES = 1000;

async function inParallel<T>(items: T[], limit: number, fn: (item: T) => Promise<unknown>): Promise<void> {
  let next = 0;
  await Promise.all(
    Array.from({ length: limit }, async () => {
      while (next < items.length) await fn(items[next++]!);
    }),
  );
}

function rssMiB(pid: number): number {
  const line = readFileSync(`/proc/${pid}/status`, "utf8")
    .split("\n")
    .find((l) => l.startsWith("VmRSS:"));
  return Number(line?.match(/(\d+)/)?.[1]) / 1024;
}

export default async function operatorBench(): Promise<void> {
  await run(["npm", "run", "--silent", "build"]);
  const logs = mkdtempSync(join(tmpdir(), "skein-bench-operator-"));
  const api = await startApiServer();
  const kc: KubeConfig = api.kubeConfig();
  const objects = kc.makeApiClient(CustomObjectsApi);
  const count = async (plural: string) =>
    (
      (await objects.listClusterCustomObject({ group: GROUP, version: VERSION, plural })) as {
        items: unknown[];
      }
    ).items.length;
  try {
    await applyCrds(kc);
    await kc.makeApiClient(CoreV1Api).createNamespace({ body: { metadata: { name: "skein-system" } } });
    await inParallel(
      Array.from({ length: 100 }, (_, i) => i + 1),
      8,
      (i) => createNode(kc, `node-${i}`, `198.18.0.${i}`),
    );
    const operator = startProcess(
      "operator",
      [
        process.execPath,
        "--import",
        "tsx",
        "cmd/skein.ts",
        "operator",
        `--kubeconfig=${api.kubeconfigPath}`,
        "--metrics-address=127.0.0.1:0",
      ],
      join(logs, "operator.log"),
    );
    try {
      await eventually(
        "the operator to lead",
        async () => readFileSync(operator.logPath, "utf8").includes("caches synced"),
        60_000,
      );
      const samples: number[] = [];
      for (let run = 1; run <= RUNS; run++) {
        const start = process.hrtime.bigint();
        for (const [i, cidr] of ["10.244.0.0/16", "10.245.0.0/16", "10.246.0.0/16"].entries()) {
          await createSkeinObject(kc, "Network", `net-${i}`, { cidr, vni: i + 1 });
        }
        await eventually("300 NodeSubnets", async () => (await count("nodesubnets")) === 300, 120_000);
        const seconds = Number(process.hrtime.bigint() - start) / 1e9;
        samples.push(seconds);
        console.log(`run ${run}: 100 nodes × 3 networks allocated in ${seconds.toFixed(2)} s`);
        for (let i = 0; i < 3; i++) {
          await objects.deleteClusterCustomObject({
            group: GROUP,
            version: VERSION,
            plural: "networks",
            name: `net-${i}`,
          });
        }
        await eventually("NodeSubnets released", async () => (await count("nodesubnets")) === 0, 120_000);
      }

      await inParallel(
        Array.from({ length: VOLUMES }, (_, i) => i),
        16,
        async (i) => {
          const v = (await createSkeinObject(kc, "Volume", `vol-${i}`, {
            capacityBytes: 1 << 30,
            ownerNode: `node-${(i % 100) + 1}`,
            replicas: 1,
          })) as Volume;
          v.status = { replicas: [{ node: "gone-node", lastSyncedSnapshot: "s1" }] };
          await objects.replaceClusterCustomObjectStatus({
            group: GROUP,
            version: VERSION,
            plural: "volumes",
            name: `vol-${i}`,
            body: v,
          });
        },
      );
      await eventually(
        `all ${VOLUMES} Volumes reconciled`,
        async () => {
          const list = (await objects.listClusterCustomObject({
            group: GROUP,
            version: VERSION,
            plural: "volumes",
          })) as { items: Volume[] };
          return (
            list.items.length === VOLUMES && list.items.every((v) => (v.status?.replicas?.length ?? 0) === 0)
          );
        },
        300_000,
      );
      await sleep(2_000);
      console.log(`allocation runs (s): ${samples.map((s) => s.toFixed(2)).join(", ")}`);
      result("allocate_100x3_seconds", median(samples));
      result("operator_rss_mib_1000_volumes", rssMiB(operator.pid));
      // Live heap vs RSS tells retained state from memory V8 has not handed back yet.
      const address = /"address":"([^"]+)"/.exec(readFileSync(operator.logPath, "utf8"))?.[1];
      const metrics = await (await fetch(`http://${address}/metrics`)).text();
      const heapUsed = Number(/^nodejs_heap_size_used_bytes (\S+)$/m.exec(metrics)?.[1]);
      result("operator_heap_used_mib_1000_volumes", heapUsed / 2 ** 20);
    } finally {
      await operator.stop();
    }
  } finally {
    await api.stop();
    rmSync(logs, { recursive: true, force: true });
  }
}
