/**
 * `npm run bench -- overlay [--seconds S] [--rounds R]`: pod-to-pod TCP
 * throughput across two simulated nodes (iperf3, 1 and 8 streams) over three
 * paths between the same hosts:
 *
 * - skein: pods wired by the plugin, the node overlay converged by the agent's
 *   own code (veth → skein0 → VXLAN → underlay → VXLAN → skein0 → veth);
 * - kernel VXLAN: the same kind of pod namespaces joined by a switch built by
 *   hand with `ip`: per node a bridge, a VXLAN device on it (flood entry to
 *   the peer) and a veth to the pod, same MTU. What Skein builds, without
 *   Skein: the yardstick of `RATIO throughput_vs_kernel_vxlan`;
 * - bare VXLAN: a VXLAN device per node moved straight into a pod namespace
 *   (no bridge, no veth): the floor of VXLAN itself, which joins only one pod
 *   per node (`RATIO throughput_vs_bare_vxlan`);
 * - underlay: the node namespaces over their eth0.
 *
 * Runs are interleaved and each path's median is kept. The ratio lines take
 * the lower of the 1- and 8-stream ratios. All traffic stays inside the
 * namespaces created here.
 *
 * What separates a bridged overlay from the bare device under load is bridge
 * netfilter: with net.bridge.bridge-nf-call-iptables=1 (the kernel's default
 * once br_netfilter is in, and what kubeadm requires so that kube-proxy's NAT
 * sees bridged replies) every frame crossing a bridge goes through the node's
 * iptables and conntrack. Both bridged paths pay it alike. `--no-bridge-netfilter`
 * turns it off in the node namespaces to show that cost; the default leaves
 * the nodes as the machine has them (here: on, as on a Kubernetes node).
 */
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import { VXLAN_OVERHEAD } from "../cni/agent/plan.ts";
import { buildPluginExecutable, convergeWithoutApi, execIn, invokePlugin } from "../cni/agent/testing.ts";
import { FLOOD_MAC, fdbAppend } from "../cni/netlink/bridge.ts";
import { vxlanAdd } from "../cni/netlink/devices.ts";
import { addrAdd, linkSet } from "../cni/netlink/ip.ts";
import { createCluster, createPod, type Netns } from "../test/fixtures/netns.ts";
import { median, ratio, result } from "./stats.ts";

interface Path {
  name: string;
  client: Netns;
  server: Netns;
  serverAddress: string;
}

const IPERF_PORT = "5201";

function flag(args: string[], name: string, fallback: number): number {
  const i = args.indexOf(name);
  const value = i >= 0 ? Number(args[i + 1]) : fallback;
  if (!Number.isFinite(value) || value <= 0) throw new Error(`${name} must be a positive number`);
  return value;
}

async function iperf(path: Path, streams: number, seconds: number): Promise<number> {
  const { stdout } = await path.client.exec(
    [
      "iperf3",
      "-c",
      path.serverAddress,
      "-p",
      IPERF_PORT,
      "-t",
      String(seconds),
      "-P",
      String(streams),
      "-J",
      "--connect-timeout",
      "3000",
    ],
    { timeoutMs: (seconds + 20) * 1000 },
  );
  const report = JSON.parse(stdout) as { end: { sum_received: { bits_per_second: number } } };
  return report.end.sum_received.bits_per_second / 1e9;
}

async function listening(ns: Netns): Promise<void> {
  for (let i = 0; i < 100; i++) {
    if ((await ns.exec(["ss", "-Hltn", `sport = :${IPERF_PORT}`])).stdout.trim()) return;
    await sleep(50);
  }
  throw new Error(`iperf3 server in ${ns.name} did not start`);
}

export default async function overlayBench(args: string[]): Promise<void> {
  const seconds = flag(args, "--seconds", 3);
  const rounds = flag(args, "--rounds", 3);
  const bridgeNetfilter = !args.includes("--no-bridge-netfilter");
  const dir = mkdtempSync(join(tmpdir(), "skein-bench-overlay-"));
  const cluster = await createCluster(2);
  const pods: Netns[] = [];
  /** A pod namespace, destroyed at the end whatever happens. */
  const podNamespace = async () => {
    const pod = await createPod();
    pods.push(pod);
    return pod;
  };
  try {
    const [a, b] = cluster.nodes as [(typeof cluster.nodes)[0], (typeof cluster.nodes)[0]];
    const executable = await buildPluginExecutable(dir);

    if (!bridgeNetfilter) {
      for (const node of cluster.nodes) {
        await node.netns.exec(["sysctl", "-q", "-w", "net.bridge.bridge-nf-call-iptables=0"]);
      }
      console.log("bridge netfilter off in the node namespaces (--no-bridge-netfilter)");
    }

    // skein: the agent's convergence on both nodes, one pod each wired by the plugin.
    const skeinPods: { ns: Netns; ip: string }[] = [];
    for (const [i, node] of cluster.nodes.entries()) {
      const settingsFile = join(dir, `${node.name}.json`);
      await convergeWithoutApi(cluster.nodes, i, settingsFile);
      const pod = await podNamespace();
      const conf = {
        cniVersion: "1.1.0",
        name: "bench",
        type: "skein",
        settingsFile,
        dataDir: join(dir, node.name),
      };
      const out = await invokePlugin(
        node,
        [executable],
        { command: "ADD", containerID: `bench-${i}`, netns: pod.path },
        conf,
      );
      const ip = (JSON.parse(out) as { ips: { address: string }[] }).ips[0]!.address.split("/")[0]!;
      skeinPods.push({ ns: pod, ip });
    }

    const mtu = 1500 - VXLAN_OVERHEAD;
    // Kernel VXLAN, bridged, by hand: bridge + VXLAN port + veth to a pod, per node.
    const switchPods: Netns[] = [];
    for (const [i, node] of cluster.nodes.entries()) {
      const pod = await podNamespace();
      switchPods.push(pod);
      const peer = cluster.nodes[1 - i]!;
      const exec = execIn(node);
      await exec(["ip", "link", "add", "ysbr0", "mtu", String(mtu), "type", "bridge"]);
      const vxlan = ["type", "vxlan", "id", "98", "dstport", "4791", "local", node.address, "dev", "eth0"];
      await exec(["ip", "link", "add", "ysvx0", "mtu", String(mtu), ...vxlan]);
      await exec(["bridge", "fdb", "append", FLOOD_MAC, "dev", "ysvx0", "dst", peer.address]);
      await exec(["ip", "link", "add", "ysh0", "mtu", String(mtu), "type", "veth", "peer", "name", "ysp0"]);
      for (const port of ["ysvx0", "ysh0"]) await exec(linkSet(port, { master: "ysbr0", up: true }));
      await exec(linkSet("ysbr0", { up: true }));
      await exec(linkSet("ysp0", { netns: pod.path }));
      await pod.exec(addrAdd(`10.98.0.${i + 1}/24`, "ysp0"));
      await pod.exec(linkSet("ysp0", { up: true }));
    }

    // Bare VXLAN: one device per node, moved into its own pod namespace.
    const vxPods: Netns[] = [];
    for (const [i, node] of cluster.nodes.entries()) {
      const pod = await podNamespace();
      vxPods.push(pod);
      const peer = cluster.nodes[1 - i]!;
      const exec = execIn(node);
      const mac = `0a:bb:00:00:00:0${i + 1}`;
      await exec(
        vxlanAdd({
          name: "vxbench",
          vni: 99,
          port: 4790,
          local: node.address,
          underlay: "eth0",
          mtu,
          mac,
          learning: true,
        }),
      );
      await exec(fdbAppend(FLOOD_MAC, "vxbench", peer.address));
      await exec(linkSet("vxbench", { netns: pod.path }));
      await pod.exec(addrAdd(`10.99.0.${i + 1}/24`, "vxbench"));
      await pod.exec(linkSet("vxbench", { up: true }));
    }

    const paths: Path[] = [
      { name: "skein", client: skeinPods[0]!.ns, server: skeinPods[1]!.ns, serverAddress: skeinPods[1]!.ip },
      { name: "kernel_vxlan", client: switchPods[0]!, server: switchPods[1]!, serverAddress: "10.98.0.2" },
      { name: "bare_vxlan", client: vxPods[0]!, server: vxPods[1]!, serverAddress: "10.99.0.2" },
      { name: "underlay", client: a.netns, server: b.netns, serverAddress: b.address },
    ];
    for (const p of paths) {
      p.server.spawn(
        `iperf3 server (${p.name})`,
        ["iperf3", "-s", "-p", IPERF_PORT],
        join(dir, `iperf-${p.name}.log`),
      );
      await listening(p.server);
    }

    const gbps = new Map<string, number[]>();
    for (let round = 0; round < rounds; round++) {
      for (const streams of [1, 8]) {
        for (const p of paths) {
          const key = `${p.name}_${streams}`;
          gbps.set(key, [...(gbps.get(key) ?? []), await iperf(p, streams, seconds)]);
        }
      }
    }
    const med = (name: string, streams: number) => median(gbps.get(`${name}_${streams}`)!);
    for (const streams of [1, 8]) {
      for (const p of paths) result(`throughput_gbps_${p.name}_${streams}_streams`, med(p.name, streams));
      for (const baseline of ["kernel_vxlan", "bare_vxlan"])
        result(
          `throughput_vs_${baseline}_${streams}_streams`,
          med("skein", streams) / med(baseline, streams),
        );
      result(`throughput_vs_underlay_${streams}_streams`, med("skein", streams) / med("underlay", streams));
    }
    const worst = (baseline: string) => Math.min(...[1, 8].map((s) => med("skein", s) / med(baseline, s)));
    ratio("throughput_vs_kernel_vxlan", worst("kernel_vxlan"));
    ratio("throughput_vs_bare_vxlan", worst("bare_vxlan"));
    ratio("throughput_vs_underlay", worst("underlay"));
  } finally {
    for (const pod of pods) await pod.destroy();
    await cluster.destroy();
    rmSync(dir, { recursive: true, force: true });
  }
}
