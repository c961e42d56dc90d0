/**
 * The overlay end to end, on real kernel networking: three node namespaces on
 * an underlay bridge, each running `skein net-agent` as a real process against
 * the shared API server, and pods wired by the installed plugin through
 * `cnitool` and the agent's conflist. The NodeSubnets are created here, as the
 * operator would.
 */
import { mkdtempSync, readFileSync, rmSync, statSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { CoreV1Api } from "@kubernetes/client-node";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { applyCrds } from "../../api/v1alpha1/install.ts";
import { eventually, testNamespace } from "../../kit/k8s/testing.ts";
import { type Cluster, createCluster, createPod, type Netns, type Node } from "../../test/fixtures/netns.ts";
import { createNode } from "../../test/fixtures/objects.ts";
import type { OwnedProcess } from "../../test/fixtures/process.ts";
import { sharedApiServer } from "../../test/fixtures/shared.ts";
import { buildDnsExecutable } from "../dns/testing.ts";
import { parseSettings } from "../settings.ts";
import { VXLAN_NAME } from "./plan.ts";
import {
  buildPluginExecutable,
  cnitool,
  type NodeDirs,
  networkObject,
  nodeDirs,
  nodeSubnetObject,
  SkeinObjects,
  startAgent,
} from "./testing.ts";

interface Pod {
  ns: Netns;
  node: number;
  ip: string;
  mac: string;
}

const api = sharedApiServer();
const objects = new SkeinObjects(api.kubeConfig());
const network = `skt${process.pid}net`;

let root: string;
let plugin: string;
let dnsProgram: string;
let cluster: Cluster | undefined;
let dirs: NodeDirs[] = [];
const agents: OwnedProcess[] = [];
const pods: Pod[] = [];
const subnetNames: string[] = [];

async function ready(node: Node): Promise<boolean> {
  const { stdout } = await node.netns.exec(["curl", "-sf", "http://127.0.0.1:9402/readyz"]);
  return stdout.trim().endsWith("ok");
}

async function metric(node: Node, name: string): Promise<number> {
  const { stdout } = await node.netns.exec(["curl", "-sf", "http://127.0.0.1:9402/metrics"]);
  const line = stdout.split("\n").find((l) => l.startsWith(`${name} `) || l.startsWith(`${name}{`));
  return line ? Number(line.split(" ").at(-1)) : Number.NaN;
}

async function floodList(node: Node): Promise<string[]> {
  const { stdout } = await node.netns.exec(["bridge", "-j", "fdb", "show", "dev", VXLAN_NAME]);
  return (JSON.parse(stdout) as { mac: string; dst?: string }[])
    .filter((e) => e.mac === "00:00:00:00:00:00")
    .map((e) => e.dst ?? "")
    .sort();
}

async function ping(from: Pod, to: Pod, extra: string[] = []): Promise<void> {
  await from.ns.exec(["ping", "-c", "1", "-W", "2", ...extra, to.ip]);
}

async function addPod(i: number, capabilityArgs?: object): Promise<Pod> {
  const node = cluster!.nodes[i]!;
  const ns = await createPod();
  const pod: Pod = { ns, node: i, ip: "", mac: "" };
  pods.push(pod);
  const result = JSON.parse(await cnitool(node, dirs[i]!, "add", network, ns, capabilityArgs)) as {
    ips: { address: string }[];
  };
  pod.ip = result.ips[0]!.address.split("/")[0]!;
  const [eth0] = JSON.parse((await ns.exec(["ip", "-j", "link", "show", "eth0"])).stdout) as {
    address: string;
  }[];
  pod.mac = eth0!.address;
  return pod;
}

async function removePod(pod: Pod): Promise<void> {
  await cnitool(cluster!.nodes[pod.node]!, dirs[pod.node]!, "del", network, pod.ns).catch(() => undefined);
  await pod.ns.destroy();
  pods.splice(pods.indexOf(pod), 1);
}

/** A UDP listener in `pod` whose received datagrams land in its log. */
async function udpListener(pod: Pod, port: number, options = ""): Promise<OwnedProcess> {
  const proc = pod.ns.spawn(
    `udp listener in ${pod.ip}`,
    ["socat", "-u", `UDP4-RECV:${port}${options}`, "STDOUT"],
    join(root, `udp-${pod.ip}-${port}.log`),
  );
  await eventually(`listener on ${pod.ip}:${port}`, async () => {
    const { stdout } = await pod.ns.exec(["ss", "-Hlun", `sport = :${port}`]);
    return stdout.trim() !== "";
  });
  return proc;
}

async function sendUdp(from: Pod, target: string, message: string): Promise<void> {
  await from.ns.exec(["socat", "-u", "STDIN", target], { input: message });
}

beforeAll(async () => {
  root = mkdtempSync(join(tmpdir(), "skein-overlay-"));
  plugin = await buildPluginExecutable(root);
  dnsProgram = await buildDnsExecutable(root);
  await applyCrds(api.kubeConfig());
  cluster = await createCluster(3, { apiServer: api });
  await objects.create(networkObject(network));
  for (const [i, node] of cluster.nodes.entries()) {
    const subnet = nodeSubnetObject(network, node, i + 1);
    await objects.create(subnet);
    subnetNames.push(subnet.metadata.name!);
  }
  dirs = cluster.nodes.map((node) => nodeDirs(root, node));
  for (const [i, node] of cluster.nodes.entries()) {
    agents.push(startAgent(node, dirs[i]!, { network, pluginSource: plugin, dnsProgram }));
  }
  for (const [i, node] of cluster.nodes.entries()) {
    await eventually(`agent ready on ${node.name}: ${agents[i]!.logTail(5)}`, () => ready(node), 60_000);
  }
  for (const i of [0, 0, 1, 1, 2, 2]) await addPod(i);
}, 240_000);

afterAll(async () => {
  try {
    for (const pod of [...pods]) await removePod(pod);
  } finally {
    await cluster?.destroy();
    for (const name of subnetNames) await objects.delete("NodeSubnet", name);
    await objects.delete("Network", network);
    rmSync(root, { recursive: true, force: true });
  }
});

describe("skein net-agent on three nodes", () => {
  it("installs the plugin, the node settings and a conflist that chains portmap", () => {
    const conflist = JSON.parse(readFileSync(join(dirs[0]!.conf, "10-skein.conflist"), "utf8"));
    // Debian's portmap speaks up to 1.0.0, so the chain does too.
    expect(conflist).toMatchObject({ cniVersion: "1.0.0", name: network });
    expect(conflist.plugins.map((p: { type: string }) => p.type)).toEqual(["skein", "portmap"]);
    expect(statSync(join(dirs[0]!.bin, "skein")).mode & 0o111).not.toBe(0);
    const settings = parseSettings(readFileSync(dirs[1]!.settings, "utf8"), dirs[1]!.settings);
    expect(settings).toMatchObject({
      networkCIDR: "10.32.0.0/16",
      blockCIDR: "10.32.2.0/24",
      gateway: "10.32.2.1",
      mtu: 1450,
    });
  });

  it("gives each node a flood list of exactly its peers", async () => {
    const [a, b, c] = cluster!.nodes;
    expect(await floodList(a!)).toEqual([b!.address, c!.address]);
    expect(await floodList(b!)).toEqual([a!.address, c!.address]);
    expect(await metric(a!, "skein_net_agent_peers")).toBe(2);
  });

  it("lets pods ping across nodes both ways", async () => {
    const [a1, a2, b1, , c1, c2] = pods;
    for (const [from, to] of [
      [a1!, b1!],
      [b1!, a1!],
      [a2!, c2!],
      [c2!, a2!],
      [c1!, b1!],
    ] as const) {
      await ping(from, to);
    }
  });

  it("resolves ARP across nodes: a pod learns the remote pod's own MAC", async () => {
    const [a1, , , , c1] = pods;
    await a1!.ns.exec(["ip", "neigh", "flush", "dev", "eth0"]);
    await ping(a1!, c1!);
    const neigh = JSON.parse(
      (await a1!.ns.exec(["ip", "-j", "neigh", "show", c1!.ip, "dev", "eth0"])).stdout,
    ) as {
      lladdr: string;
    }[];
    expect(neigh[0]?.lladdr).toBe(c1!.mac);
  });

  it("carries a broadcast to pods on the other nodes", async () => {
    const [a1, , b1, , , c2] = pods;
    const listeners = [await udpListener(b1!, 5555), await udpListener(c2!, 5555)];
    await eventually("broadcast received on both other nodes", async () => {
      await sendUdp(a1!, "UDP4-DATAGRAM:10.32.255.255:5555,broadcast", "hello-broadcast\n");
      return listeners.every((l) => readFileSync(l.logPath, "utf8").includes("hello-broadcast"));
    });
  });

  it("carries a multicast to subscribed pods on the other nodes", async () => {
    const [a1, , , b2, c1] = pods;
    const membership = ",ip-add-membership=239.7.7.7:eth0";
    const listeners = [await udpListener(b2!, 5556, membership), await udpListener(c1!, 5556, membership)];
    await eventually("multicast received on both other nodes", async () => {
      await sendUdp(a1!, "UDP4-DATAGRAM:239.7.7.7:5556", "hello-multicast\n");
      return listeners.every((l) => readFileSync(l.logPath, "utf8").includes("hello-multicast"));
    });
  });

  it("carries a full-MTU packet across without fragmentation, and no larger", async () => {
    const [a1, , b1] = pods;
    // 1450-byte pod MTU: 1422 bytes of ICMP payload + 8 ICMP + 20 IP.
    await ping(a1!, b1!, ["-M", "do", "-s", "1422"]);
    await expect(ping(a1!, b1!, ["-M", "do", "-s", "1423"])).rejects.toThrow();
  });

  it("forwards a host port to a pod with portmap chained after skein", async () => {
    const [a, b] = cluster!.nodes;
    const pod = await addPod(0, {
      portMappings: [{ hostPort: 18080, containerPort: 8080, protocol: "tcp" }],
    });
    try {
      pod.ns.spawn(
        "tcp server in pod",
        ["socat", "TCP4-LISTEN:8080,reuseaddr,fork", "EXEC:echo hello-portmap"],
        join(root, "portmap-server.log"),
      );
      await eventually(
        "server listening",
        async () => (await pod.ns.exec(["ss", "-Hltn", "sport = :8080"])).stdout !== "",
      );
      const { stdout } = await b!.netns.exec([
        "socat",
        "-u",
        `TCP4:${a!.address}:18080,connect-timeout=3`,
        "STDOUT",
      ]);
      expect(stdout).toContain("hello-portmap");
    } finally {
      await removePod(pod);
    }
  });

  it("recreates a VXLAN device deleted by hand, and connectivity returns", async () => {
    const [a1, , b1] = pods;
    const b = cluster!.nodes[1]!;
    await b.netns.exec(["ip", "link", "del", VXLAN_NAME]);
    await eventually(
      "VXLAN device back with its flood list",
      async () => (await floodList(b)).length === 2,
      20_000,
    );
    await eventually("pods reconnected", () => ping(a1!, b1!).then(() => true), 20_000);
    await eventually(
      "recreation counted",
      async () => (await metric(b, "skein_net_agent_device_recreations_total")) >= 1,
    );
    expect(readFileSync(agents[1]!.logPath, "utf8")).toContain(`${VXLAN_NAME}: created`);
  });

  it("leaves running pods connected while its agent is stopped and after it restarts", async () => {
    const [a1, , , , c1] = pods;
    const a = cluster!.nodes[0]!;
    const stopping = Date.now();
    await agents[0]!.stop();
    expect(agents[0]!.exited()).toBe(true);
    // Well inside the fixture's 5 s grace: it stopped on SIGTERM, it was not killed.
    expect(Date.now() - stopping).toBeLessThan(4_000);
    const links = JSON.parse((await a.netns.exec(["ip", "-j", "link", "show"])).stdout) as {
      ifname: string;
    }[];
    expect(links.map((l) => l.ifname)).toEqual(expect.arrayContaining(["skein0", VXLAN_NAME]));
    await ping(a1!, c1!);
    await ping(c1!, a1!);

    agents[0] = startAgent(a, dirs[0]!, {
      network,
      pluginSource: plugin,
      dnsProgram,
      logName: "net-agent-2.log",
    });
    await eventually("restarted agent ready", () => ready(a), 60_000);
    await ping(a1!, c1!);
    expect(await floodList(a)).toEqual([cluster!.nodes[1]!.address, cluster!.nodes[2]!.address]);
  });

  it("answers DNS on each node's gateway with the pods that share a name", async () => {
    const kc = api.kubeConfig();
    const core = kc.makeApiClient(CoreV1Api);
    const namespace = await testNamespace(kc, "skt-overlay-dns");
    const nodeName = `skt${process.pid}-dns-node`;
    const name = `web-${process.pid}`;
    await createNode(kc, nodeName, "198.18.0.2");
    try {
      for (const [i, target] of [pods[2]!, pods[4]!].entries()) {
        const pod = await core.createNamespacedPod({
          namespace: namespace.name,
          body: {
            metadata: { name: `web-${i}`, annotations: { "skein.io/dns-name": name } },
            spec: { nodeName, containers: [{ name: "web", image: "web" }] },
          },
        });
        pod.status = { phase: "Running", podIP: target.ip, conditions: [{ type: "Ready", status: "True" }] };
        await core.replaceNamespacedPodStatus({ namespace: namespace.name, name: `web-${i}`, body: pod });
      }
      const gateway = parseSettings(readFileSync(dirs[0]!.settings, "utf8"), dirs[0]!.settings).gateway;
      const answer = await eventually(
        "both pods in the answer",
        async () => {
          const { stdout } = await pods[0]!.ns.exec([
            "dig",
            "+short",
            "+time=1",
            "+tries=1",
            `@${gateway}`,
            `${name}.skein.local`,
          ]);
          const ips = stdout.trim().split("\n").filter(Boolean).sort();
          return ips.length === 2 ? ips : undefined;
        },
        20_000,
      );
      expect(answer).toEqual([pods[2]!.ip, pods[4]!.ip].sort());
    } finally {
      await namespace.delete();
      await core.deleteNode({ name: nodeName });
    }
  });

  it("drops a node whose NodeSubnet is deleted from its peers' flood lists", async () => {
    const [a, b, c] = cluster!.nodes;
    await objects.delete("NodeSubnet", subnetNames[2]!);
    await eventually(
      "node-3 gone from node-1's flood list",
      async () => (await floodList(a!)).join() === b!.address,
    );
    await eventually(
      "node-3 gone from node-2's flood list",
      async () => (await floodList(b!)).join() === a!.address,
    );
    await eventually("peer count down to 1", async () => (await metric(a!, "skein_net_agent_peers")) === 1);
    // Its own agent keeps what it has: running pods there are not torn down by an API change.
    expect(await floodList(c!)).toEqual([a!.address, b!.address]);
  });
});
