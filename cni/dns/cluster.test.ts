/**
 * The responder on simulated nodes against the real API server: three node
 * namespaces each running the DNS program as shipped (`skein-dns`, `skein dns`
 * compiled with Bun: responder + health reporter), pods as
 * namespaces wired to a bridge on their node, Pod objects whose status the
 * test writes (no kubelet runs here), dig from a pod, and dnsmasq in a node
 * namespace as the upstream. No traffic leaves the test's namespaces.
 */
import { mkdtempSync, rmSync, unlinkSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import {
  CoreV1Api,
  CustomObjectsApi,
  type KubeConfig,
  PatchStrategy,
  setHeaderOptions,
  type V1Pod,
} from "@kubernetes/client-node";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { API_VERSION, GROUP, KINDS, VERSION } from "../../api/v1alpha1/index.ts";
import { applyCrds } from "../../api/v1alpha1/install.ts";
import { eventually, testNamespace } from "../../kit/k8s/testing.ts";
import { type Cluster, createCluster, createPod, type Netns, type Node } from "../../test/fixtures/netns.ts";
import { createNode } from "../../test/fixtures/objects.ts";
import type { OwnedProcess } from "../../test/fixtures/process.ts";
import { waitUntilReady } from "../../test/fixtures/process.ts";
import { sharedApiServer } from "../../test/fixtures/shared.ts";
import { buildDnsExecutable } from "./testing.ts";

const MERGE = setHeaderOptions("Content-Type", PatchStrategy.MergePatch);
const tag = `${process.pid}${Math.random().toString(36).slice(2, 6)}`;
const DOMAIN = `d${tag}.test`;
const WEB = `web${tag}`;
const NETWORK = `dns${tag}`;

/** What one node of the test runs: its overlay gateway and its `skein dns` process. */
interface TestNode {
  node: Node;
  name: string;
  gateway: string;
  dns?: OwnedProcess;
}

/** Wires `pod` to a bridge in `node` (made on first use) with `address`/24, default route via the gateway. */
async function attachPod(node: TestNode, pod: Netns, address: string, hostLink: string): Promise<void> {
  const ns = node.node.netns;
  const hasBridge = await ns.exec(["ip", "link", "show", "dns0"]).then(
    () => true,
    () => false,
  );
  if (!hasBridge) {
    await ns.exec(["ip", "link", "add", "dns0", "type", "bridge"]);
    await ns.exec(["ip", "addr", "add", `${node.gateway}/24`, "dev", "dns0"]);
    await ns.exec(["ip", "link", "set", "dns0", "up"]);
  }
  await ns.exec(["ip", "link", "add", hostLink, "type", "veth", "peer", "name", "eth0", "netns", pod.name]);
  await ns.exec(["ip", "link", "set", hostLink, "master", "dns0", "up"]);
  await pod.exec(["ip", "addr", "add", `${address}/24`, "dev", "eth0"]);
  await pod.exec(["ip", "link", "set", "eth0", "up"]);
  await pod.exec(["ip", "route", "add", "default", "via", node.gateway]);
}

function dig(from: Netns, server: string, name: string, extra: string[] = []) {
  const target = name ? [name] : [];
  return from.exec(["dig", `@${server}`, "+tries=1", "+time=2", ...extra, ...target], { timeoutMs: 10_000 });
}

/** The addresses a dig +short answer lists, in order. */
async function digShort(from: Netns, server: string, name: string): Promise<string[]> {
  const { stdout } = await dig(from, server, name, ["+short"]);
  return stdout.split("\n").filter((l) => /^\d+\.\d+\.\d+\.\d+$/.test(l));
}

async function digStatus(from: Netns, server: string, name: string, extra: string[] = []): Promise<string> {
  const { stdout } = await dig(from, server, name, extra);
  return /status: (\w+)/.exec(stdout)?.[1] ?? `no status in: ${stdout}`;
}

describe("skein dns on simulated nodes", () => {
  const api = sharedApiServer();
  let kc: KubeConfig;
  let core: CoreV1Api;
  let cluster: Cluster;
  let namespace: { name: string; delete(): Promise<void> };
  const nodes: TestNode[] = [];
  const pods: Netns[] = [];
  const podNames: string[] = [];
  const nodeNames: string[] = [];
  let client: Netns;
  let dir: string;
  let program: string;
  let upstream: OwnedProcess;

  async function createPodObject(
    name: string,
    nodeName: string,
    ip: string,
    annotations: Record<string, string>,
  ) {
    await core.createNamespacedPod({
      namespace: namespace.name,
      body: {
        metadata: { name, annotations },
        spec: { nodeName, containers: [{ name: "app", image: "registry.invalid/app" }] },
      },
    });
    podNames.push(name);
    await setPodStatus(name, ip, true);
  }

  async function setPodStatus(name: string, ip: string, ready: boolean) {
    await core.patchNamespacedPodStatus(
      {
        name,
        namespace: namespace.name,
        body: {
          status: {
            phase: "Running",
            podIP: ip,
            podIPs: [{ ip }],
            conditions: [{ type: "Ready", status: ready ? "True" : "False" }],
          },
        },
      },
      MERGE,
    );
  }

  async function readPod(name: string): Promise<V1Pod> {
    return core.readNamespacedPod({ name, namespace: namespace.name });
  }

  function startDns(n: TestNode, extra: string[] = []): OwnedProcess {
    const proc = n.node.netns.spawn(
      `skein dns on ${n.name}`,
      [
        program,
        `--kubeconfig=${n.node.kubeconfigPath}`,
        `--node=${n.name}`,
        `--network=${NETWORK}`,
        `--listen=${n.gateway}`,
        "--upstream-timeout-ms=600",
        ...extra,
      ],
      join(dir, `${n.name}-dns.log`),
      { ...process.env, SKEIN_LOG_LEVEL: "info" },
    );
    n.dns = proc;
    return proc;
  }

  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), "skein-dns-test-"));
    program = await buildDnsExecutable(dir);
    kc = api.kubeConfig();
    core = kc.makeApiClient(CoreV1Api);
    await applyCrds(kc);
    await kc.makeApiClient(CustomObjectsApi).createClusterCustomObject({
      group: GROUP,
      version: VERSION,
      plural: KINDS.Network.plural,
      body: {
        apiVersion: API_VERSION,
        kind: "Network",
        metadata: { name: NETWORK },
        spec: {
          cidr: "10.244.0.0/16",
          vni: 4000,
          dns: { domain: DOMAIN, ttlSeconds: 1, upstreams: ["127.0.0.1:5353"] },
        },
      },
    });
    namespace = await testNamespace(kc, "dns");
    cluster = await createCluster(3, { apiServer: api });
    for (const [i, node] of cluster.nodes.entries()) {
      const name = `dns-${tag}-${i + 1}`;
      await createNode(kc, name, node.address);
      nodeNames.push(name);
      nodes.push({ node, name, gateway: `10.244.${i + 1}.1` });
    }
    const [a, b, c] = nodes as [TestNode, TestNode, TestNode];

    // The client pod on A; web pods on B (one with a TCP probe, one without) and C (HTTP probe).
    client = await createPod();
    pods.push(client);
    await attachPod(a, client, "10.244.1.10", "vclient");
    const webB1 = await createPod();
    pods.push(webB1);
    await attachPod(b, webB1, "10.244.2.10", "vwebb1");
    const webC1 = await createPod();
    pods.push(webC1);
    await attachPod(c, webC1, "10.244.3.10", "vwebc1");
    // A TCP listener and an HTTP health endpoint that answers 200 while its file exists.
    webB1.spawn(
      "tcp listener",
      [process.execPath, "-e", LISTENER, "10.244.2.10", "8080"],
      join(dir, "tcp.log"),
    );
    writeFileSync(join(dir, "healthy"), "");
    webC1.spawn(
      "http health",
      [process.execPath, "-e", HEALTH_SERVER, "10.244.3.10", "8080", join(dir, "healthy")],
      join(dir, "http.log"),
    );

    await createPodObject("web-b1", b.name, "10.244.2.10", {
      "skein.io/dns-name": WEB,
      "skein.io/probe-tcp": "8080",
    });
    await createPodObject("web-b2", b.name, "10.244.2.11", { "skein.io/dns-name": WEB });
    await createPodObject("web-c1", c.name, "10.244.3.10", {
      "skein.io/dns-name": WEB,
      "skein.io/probe-http": ":8080/healthz",
    });

    // The upstream: dnsmasq on node A's loopback, answering one made-up domain.
    upstream = a.node.netns.spawn(
      "dnsmasq upstream",
      [
        "dnsmasq",
        "--keep-in-foreground",
        "--conf-file=/dev/null",
        "--no-resolv",
        "--no-hosts",
        "--listen-address=127.0.0.1",
        "--bind-interfaces",
        "--port=5353",
        "--pid-file=",
        "--address=/upstream.test/192.0.2.99",
        // dnsmasq answers its own records with TTL 0 unless told; the responder caches only what has a TTL.
        "--local-ttl=60",
      ],
      join(dir, "dnsmasq.log"),
    );

    startDns(a, [`--listen=${a.node.address}`]);
    startDns(b);
    startDns(c);
    for (const n of nodes) {
      await waitUntilReady(
        n.dns!,
        async () =>
          (await digStatus(n.node.netns, n.gateway, `web-b2.${namespace.name}.${DOMAIN}`)) === "NOERROR",
        90_000,
      );
    }
  });

  afterAll(async () => {
    for (const name of podNames) {
      await core
        .deleteNamespacedPod({ name, namespace: namespace.name, gracePeriodSeconds: 0 })
        .catch(() => {});
    }
    await namespace?.delete();
    for (const name of nodeNames) await core.deleteNode({ name }).catch(() => {});
    await kc
      ?.makeApiClient(CustomObjectsApi)
      .deleteClusterCustomObject({
        group: GROUP,
        version: VERSION,
        plural: KINDS.Network.plural,
        name: NETWORK,
      })
      .catch(() => {});
    for (const pod of pods) await pod.destroy();
    await cluster?.destroy();
    rmSync(dir, { recursive: true, force: true });
  });

  it("probes pods on their own node and reports health on the pod", async () => {
    for (const name of ["web-b1", "web-c1"]) {
      await eventually(`${name} to be probed healthy`, async () => {
        const condition = (await readPod(name)).status?.conditions?.find(
          (c) => c.type === "skein.io/dns-healthy",
        );
        return condition?.status === "True" && condition.reason === "ProbeSucceeded";
      });
    }
    const plain = (await readPod("web-b2")).status?.conditions?.find(
      (c) => c.type === "skein.io/dns-healthy",
    );
    expect(plain).toBeUndefined();
  });

  it("finds the pods named web on nodes B and C from a pod on node A", async () => {
    const gateway = nodes[0]!.gateway;
    const answer = await eventually("all three web pods", async () => {
      const addresses = await digShort(client, gateway, `${WEB}.${DOMAIN}`);
      return addresses.length === 3 ? addresses : undefined;
    });
    expect([...answer].sort()).toEqual(["10.244.2.10", "10.244.2.11", "10.244.3.10"]);
    const { stdout } = await dig(client, gateway, `${WEB}.${DOMAIN}`);
    expect(stdout).toMatch(/flags: qr aa rd ra/);
    expect(stdout).toMatch(new RegExp(`${WEB}\\.${DOMAIN.replace(".", "\\.")}\\.\\s+1\\s+IN\\s+A`));
  });

  it("rotates the order across queries and gives every healthy pod a fair share of first places", async () => {
    const gateway = nodes[0]!.gateway;
    const first = new Map<string, number>();
    const orders = new Set<string>();
    for (let i = 0; i < 12; i++) {
      const addresses = await digShort(client, gateway, `${WEB}.${DOMAIN}`);
      expect(addresses).toHaveLength(3);
      orders.add(addresses.join(","));
      first.set(addresses[0]!, (first.get(addresses[0]!) ?? 0) + 1);
    }
    expect(orders.size).toBe(3);
    expect([...first.values()]).toEqual([4, 4, 4]);
  });

  it("answers <pod>.<namespace>, reverse lookups, NXDOMAIN and NODATA", async () => {
    const gateway = nodes[0]!.gateway;
    expect(await digShort(client, gateway, `web-c1.${namespace.name}.${DOMAIN}`)).toEqual(["10.244.3.10"]);
    const { stdout } = await dig(client, gateway, "", ["+short", "-x", "10.244.2.11"]);
    expect(stdout.trim()).toBe(`web-b2.${namespace.name}.${DOMAIN}.`);
    expect(await digStatus(client, gateway, `nobody.${DOMAIN}`)).toBe("NXDOMAIN");
    const nodata = await dig(client, gateway, `${WEB}.${DOMAIN}`, ["AAAA"]);
    expect(nodata.stdout).toMatch(/status: NOERROR/);
    expect(nodata.stdout).toMatch(/ANSWER: 0/);
    expect(nodata.stdout).toMatch(/IN\s+SOA/);
  });

  it("falls back to TCP when the UDP answer is cut (dig retries on TC)", async () => {
    const { stdout } = await dig(client, nodes[0]!.gateway, `${WEB}.${DOMAIN}`, ["+tcp"]);
    expect(stdout).toMatch(/ANSWER: 3/);
  });

  it("forwards other names to the upstream, and fails cleanly when it is silent or down", async () => {
    const gateway = nodes[0]!.gateway;
    expect(await digShort(client, gateway, "www.upstream.test")).toEqual(["192.0.2.99"]);
    upstream.kill("SIGSTOP");
    try {
      const began = Date.now();
      expect(await digStatus(client, gateway, "silent.upstream.test")).toBe("SERVFAIL");
      const took = Date.now() - began;
      expect(took).toBeGreaterThanOrEqual(550);
      expect(took).toBeLessThan(1900);
      // Cached from before: the answer survives the upstream's silence.
      expect(await digShort(client, gateway, "www.upstream.test")).toEqual(["192.0.2.99"]);
    } finally {
      upstream.kill("SIGCONT");
    }
    await upstream.stop();
    const began = Date.now();
    expect(await digStatus(client, gateway, "down.upstream.test")).toBe("SERVFAIL");
    expect(Date.now() - began).toBeLessThan(1900);
  });

  it("answers the node itself but not other hosts on the underlay", async () => {
    const a = nodes[0]!;
    expect(await digStatus(a.node.netns, a.node.address, `${WEB}.${DOMAIN}`)).toBe("NOERROR");
    const fromB = nodes[1]!.node.netns.exec([
      "dig",
      `@${a.node.address}`,
      "+tries=1",
      "+time=1",
      `${WEB}.${DOMAIN}`,
    ]);
    // dig's exit code 9: no reply from the server.
    await expect(fromB).rejects.toMatchObject({ exitCode: 9 });
  });

  /** After `change`, every answer from one second on leaves `address` out. */
  async function goneWithinASecond(change: () => Promise<void>, address: string): Promise<void> {
    const gateway = nodes[0]!.gateway;
    expect(await digShort(client, gateway, `${WEB}.${DOMAIN}`)).toContain(address);
    await change();
    const changedAt = Date.now();
    await new Promise((r) => setTimeout(r, Math.max(0, changedAt + 1000 - Date.now())));
    for (let i = 0; i < 3; i++) {
      const addresses = await digShort(client, gateway, `${WEB}.${DOMAIN}`);
      expect(addresses).not.toContain(address);
      expect(addresses.length).toBeGreaterThan(0);
    }
  }

  it("drops a pod whose HTTP probe fails within a second, and takes it back when it passes", async () => {
    await goneWithinASecond(async () => unlinkSync(join(dir, "healthy")), "10.244.3.10");
    const condition = (await readPod("web-c1")).status?.conditions?.find(
      (c) => c.type === "skein.io/dns-healthy",
    );
    expect(condition).toMatchObject({ status: "False", reason: "ProbeFailed" });
    expect(condition?.message).toMatch(/HTTP 404/);
    writeFileSync(join(dir, "healthy"), "");
    await eventually("web-c1 back in the answers", async () =>
      (await digShort(client, nodes[0]!.gateway, `${WEB}.${DOMAIN}`)).includes("10.244.3.10"),
    );
  });

  it("drops a pod that turns unready within a second", async () => {
    await goneWithinASecond(() => setPodStatus("web-b2", "10.244.2.11", false), "10.244.2.11");
    await setPodStatus("web-b2", "10.244.2.11", true);
  });

  it("drops the pods of a node that is gone within a second", async () => {
    const c = nodes[2]!;
    await goneWithinASecond(async () => void (await core.deleteNode({ name: c.name })), "10.244.3.10");
    await createNode(kc, c.name, c.node.address);
    await eventually("web-c1 back once its node is", async () =>
      (await digShort(client, nodes[0]!.gateway, `${WEB}.${DOMAIN}`)).includes("10.244.3.10"),
    );
  });

  it("drops a deleted pod within a second", async () => {
    await goneWithinASecond(
      async () => void (await core.deleteNamespacedPod({ name: "web-b2", namespace: namespace.name })),
      "10.244.2.11",
    );
    expect(await digStatus(client, nodes[0]!.gateway, `web-b2.${namespace.name}.${DOMAIN}`)).toBe("NXDOMAIN");
  });
});

/** argv: address port. Accepts TCP connections and closes them. */
const LISTENER = `
const [address, port] = process.argv.slice(1);
require("node:net").createServer((c) => c.end()).listen(Number(port), address);
`;

/** argv: address port file. GET /healthz answers 200 while the file exists, 404 after. */
const HEALTH_SERVER = `
const [address, port, file] = process.argv.slice(1);
const fs = require("node:fs");
require("node:http")
  .createServer((req, res) => res.writeHead(req.url === "/healthz" && fs.existsSync(file) ? 200 : 404).end())
  .listen(Number(port), address);
`;
