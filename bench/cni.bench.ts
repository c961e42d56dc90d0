/**
 * `npm run bench -- cni [--iterations N]`: the plugin's ADD+DEL latency against
 * the reference `bridge` + `host-local` chain (Debian's containernetworking-plugins)
 * on one simulated node, each plugin exec'd as a runtime does it (fresh pod
 * namespace per attachment, stdin config, CNI_* environment), the plugin as the
 * build ships it (the executable scripts/build-cni.mjs compiles). Also the bare
 * start-up of each (VERSION), the part of the latency that is process start.
 * All traffic stays inside the namespaces created here.
 */
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import {
  buildPluginExecutable,
  convergeWithoutApi,
  invokePlugin,
  REFERENCE_PLUGINS,
} from "../cni/agent/testing.ts";
import { createCluster, createPod, type Node } from "../test/fixtures/netns.ts";
import { median, percentile, ratio, result, timeMs } from "./stats.ts";

interface Contender {
  name: string;
  plugin: readonly string[];
  conf: object;
}

interface Sample {
  add: number;
  del: number;
}

async function addDel(node: Node, c: Contender, id: string): Promise<Sample> {
  const pod = await createPod();
  try {
    const env = { containerID: id, netns: pod.path };
    const add = await timeMs(() => invokePlugin(node, c.plugin, { command: "ADD", ...env }, c.conf));
    const del = await timeMs(() => invokePlugin(node, c.plugin, { command: "DEL", ...env }, c.conf));
    return { add, del };
  } finally {
    await pod.destroy();
  }
}

async function versionStartup(node: Node, plugin: readonly string[]): Promise<number> {
  return timeMs(() =>
    invokePlugin(node, plugin, { command: "VERSION", containerID: "v" }, { cniVersion: "1.0.0" }),
  );
}

export default async function cniBench(args: string[]): Promise<void> {
  const flag = args.indexOf("--iterations");
  const iterations = flag >= 0 ? Number(args[flag + 1]) : 40;
  if (!Number.isInteger(iterations) || iterations < 2) throw new Error("--iterations must be an integer ≥ 2");
  const dir = mkdtempSync(join(tmpdir(), "skein-bench-cni-"));
  const cluster = await createCluster(1);
  try {
    const node = cluster.nodes[0]!;
    const executable = await buildPluginExecutable(dir);
    const settingsFile = join(dir, "network.json");
    await convergeWithoutApi(cluster.nodes, 0, settingsFile);
    const skeinConf = {
      cniVersion: "1.1.0",
      name: "bench",
      type: "skein",
      settingsFile,
      dataDir: join(dir, "skein"),
    };
    const contenders: Contender[] = [
      { name: "skein", plugin: [executable], conf: skeinConf },
      {
        name: "reference",
        plugin: [join(REFERENCE_PLUGINS, "bridge")],
        conf: {
          cniVersion: "1.0.0",
          name: "reference",
          type: "bridge",
          bridge: "cni-bench0",
          isGateway: true,
          ipam: {
            type: "host-local",
            ranges: [[{ subnet: "10.88.0.0/16" }]],
            dataDir: join(dir, "host-local"),
          },
        },
      },
    ];
    const samples = new Map<string, Sample[]>(contenders.map((c) => [c.name, []]));
    const startup = new Map<string, number[]>(contenders.map((c) => [c.name, []]));
    // Warm up page cache and the bridges, then interleave so drift hits all alike, and
    // alternate who goes first: the kernel tears a pod's namespace down after its DEL
    // returns, in the background, and whoever goes next runs beside that.
    for (const c of contenders) await addDel(node, c, `warm-${c.name}`);
    for (let i = 0; i < iterations; i++) {
      const order = i % 2 === 0 ? contenders : [...contenders].reverse();
      for (const c of order) samples.get(c.name)!.push(await addDel(node, c, `${c.name}-${i}`));
      for (const c of order) startup.get(c.name)!.push(await versionStartup(node, c.plugin));
    }
    const totals = new Map([...samples].map(([name, s]) => [name, s.map((x) => x.add + x.del)]));
    for (const [name, s] of samples) {
      const total = totals.get(name)!;
      console.log(
        `${name}: ADD+DEL p50 ${median(total).toFixed(1)} ms, p99 ${percentile(total, 99).toFixed(1)} ms (${s.length} runs); ADD p50 ${median(s.map((x) => x.add)).toFixed(1)} ms, DEL p50 ${median(s.map((x) => x.del)).toFixed(1)} ms`,
      );
      result(`add_del_p50_ms_${name}`, median(total));
      result(`add_del_p99_ms_${name}`, percentile(total, 99));
    }
    for (const [name, s] of startup) result(`version_startup_p50_ms_${name}`, median(s));
    ratio(
      "add_del_p99_vs_reference",
      percentile(totals.get("skein")!, 99) / percentile(totals.get("reference")!, 99),
    );
    ratio("add_del_p50_vs_reference", median(totals.get("skein")!) / median(totals.get("reference")!));
  } finally {
    await cluster.destroy();
    rmSync(dir, { recursive: true, force: true });
  }
}
