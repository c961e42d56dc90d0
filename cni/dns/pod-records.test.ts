import type { V1Node, V1Pod } from "@kubernetes/client-node";
import { describe, expect, it } from "vitest";
import type { Network } from "../../api/v1alpha1/index.ts";
import { dnsNames, nodeIsGone, PodRecords, podRecord, wantsProbe } from "./pod-records.ts";
import { FakeSource } from "./testing.ts";

interface PodShape {
  name?: string;
  namespace?: string;
  ip?: string;
  ips?: string[];
  node?: string;
  ready?: boolean;
  names?: string;
  annotations?: Record<string, string>;
  healthy?: "True" | "False";
  phase?: string;
  deleting?: boolean;
  hostNetwork?: boolean;
  gate?: boolean;
}

function pod(p: PodShape = {}): V1Pod {
  const annotations: Record<string, string> = { ...(p.annotations ?? {}) };
  if (p.names !== undefined) annotations["skein.io/dns-name"] = p.names;
  const conditions = [{ type: "Ready", status: p.ready === false ? "False" : "True" }];
  if (p.healthy) conditions.push({ type: "skein.io/dns-healthy", status: p.healthy });
  return {
    metadata: {
      name: p.name ?? "web-1",
      namespace: p.namespace ?? "default",
      annotations,
      ...(p.deleting ? { deletionTimestamp: new Date() } : {}),
    },
    spec: {
      containers: [],
      nodeName: p.node ?? "node-1",
      ...(p.hostNetwork ? { hostNetwork: true } : {}),
      ...(p.gate ? { readinessGates: [{ conditionType: "skein.io/dns-healthy" }] } : {}),
    },
    status: {
      phase: p.phase ?? "Running",
      ...(p.ip === "" ? {} : { podIP: p.ip ?? "10.244.1.2" }),
      ...(p.ips ? { podIPs: p.ips.map((ip) => ({ ip })) } : {}),
      conditions,
    },
  };
}

function node(name: string, ready: "True" | "False" | "Unknown" = "True"): V1Node {
  return { metadata: { name }, status: { conditions: [{ type: "Ready", status: ready }] } };
}

const noNodeGone = () => false;

describe("podRecord", () => {
  it("gives a ready pod its own name, its dns-names and a pointer", () => {
    expect(podRecord(pod({ names: "web, API,bad_name,web" }), noNodeGone)).toEqual({
      record: {
        key: "default/web-1",
        names: ["web-1.default", "web", "api"],
        addresses: ["10.244.1.2"],
        pointer: "web-1.default",
      },
    });
  });

  it("takes every pod address, canonical and once", () => {
    const verdict = podRecord(pod({ ip: "10.244.1.2", ips: ["10.244.1.2", "FD00:0::2"] }), noNodeGone);
    expect("record" in verdict && verdict.record.addresses).toEqual(["10.244.1.2", "fd00::2"]);
  });

  it.each<[string, PodShape, string]>([
    ["being deleted", { deleting: true }, "Deleting"],
    ["succeeded", { phase: "Succeeded" }, "Finished"],
    ["failed", { phase: "Failed" }, "Finished"],
    ["on the host network", { hostNetwork: true }, "HostNetwork"],
    ["without an address", { ip: "" }, "NoAddress"],
    ["with a garbage address", { ip: "nope" }, "NoAddress"],
    ["not Ready", { ready: false }, "NotReady"],
    [
      "asking for a TCP probe, not yet probed",
      { annotations: { "skein.io/probe-tcp": "8080" } },
      "NotProbedHealthy",
    ],
    [
      "failing its HTTP probe",
      { annotations: { "skein.io/probe-http": ":8080/healthz" }, healthy: "False" },
      "NotProbedHealthy",
    ],
    ["with the readiness gate unset", { gate: true }, "NotProbedHealthy"],
  ])("leaves out a pod %s", (_, shape, reason) => {
    expect(podRecord(pod(shape), noNodeGone)).toEqual({ excluded: reason });
  });

  it("keeps a pod that passes its probe", () => {
    expect(
      "record" in
        podRecord(pod({ annotations: { "skein.io/probe-tcp": "8080" }, healthy: "True" }), noNodeGone),
    ).toBe(true);
  });

  it("leaves out a pod whose node is gone", () => {
    expect(podRecord(pod({ node: "node-9" }), (n) => n === "node-9")).toEqual({ excluded: "NodeGone" });
  });
});

describe("helpers", () => {
  it.each([
    [undefined, true],
    [node("a"), false],
    [node("a", "False"), false],
    [node("a", "Unknown"), true],
  ])("nodeIsGone(%j) → %j", (n, want) => {
    expect(nodeIsGone(n)).toBe(want);
  });

  it("reads dns names and probe wishes", () => {
    expect(dnsNames(pod({ names: "" }))).toEqual([]);
    expect(dnsNames(pod({ names: " a , B,-c" }))).toEqual(["a", "b"]);
    expect(wantsProbe(pod())).toBe(false);
    expect(wantsProbe(pod({ gate: true }))).toBe(true);
  });
});

function network(dns: Record<string, unknown>, cidr = "10.244.0.0/16"): Network {
  return {
    apiVersion: "skein.io/v1alpha1",
    kind: "Network",
    metadata: { name: "skein" },
    spec: { cidr, vni: 1, dns },
  };
}

describe("PodRecords", () => {
  function setup() {
    const pods = new FakeSource<V1Pod>();
    const nodes = new FakeSource<V1Node>();
    const networks = new FakeSource<Network>();
    nodes.put(node("node-1"));
    nodes.put(node("node-2"));
    const records = new PodRecords({
      pods,
      nodes,
      networks,
      networkName: "skein",
      defaults: { upstreams: [{ address: "10.0.0.2", port: 53 }] },
    });
    return { pods, nodes, networks, records };
  }

  it("follows pods as they come, turn unready and go", () => {
    const { pods, records } = setup();
    pods.put(pod({ name: "a", ip: "10.244.1.2", names: "web" }));
    pods.put(pod({ name: "b", ip: "10.244.2.2", names: "web", node: "node-2" }));
    expect(records.records.lookup("web")?.v4).toEqual(["10.244.1.2", "10.244.2.2"]);
    pods.put(pod({ name: "a", ip: "10.244.1.2", names: "web", ready: false }));
    expect(records.records.lookup("web")?.v4).toEqual(["10.244.2.2"]);
    pods.remove(pod({ name: "b", node: "node-2" }));
    expect(records.records.lookup("web")).toBeUndefined();
  });

  it("drops a node's pods when the node is deleted or stops reporting, and takes them back", () => {
    const { pods, nodes, records } = setup();
    pods.put(pod({ name: "a", ip: "10.244.1.2", names: "web" }));
    pods.put(pod({ name: "b", ip: "10.244.2.2", names: "web", node: "node-2" }));
    nodes.put(node("node-2", "Unknown"));
    expect(records.records.lookup("web")?.v4).toEqual(["10.244.1.2"]);
    nodes.put(node("node-2"));
    expect(records.records.lookup("web")?.v4).toHaveLength(2);
    nodes.remove(node("node-1"));
    expect(records.records.lookup("web")?.v4).toEqual(["10.244.2.2"]);
  });

  it("takes domain, TTL, upstreams and CIDR from its Network and moves the version", () => {
    const { networks, records } = setup();
    expect(records.domain).toBe("skein.local");
    expect(records.ttlSeconds).toBe(2);
    expect(records.upstreams()).toEqual([{ address: "10.0.0.2", port: 53 }]);
    expect(records.ownsAddress("10.244.0.1")).toBe(false);
    const v = records.version;
    networks.put(network({ domain: "Cluster.Test", ttlSeconds: 5, upstreams: ["10.96.0.10:5353", "bogus"] }));
    expect(records.version).toBeGreaterThan(v);
    expect(records.domain).toBe("cluster.test");
    expect(records.ttlSeconds).toBe(5);
    expect(records.upstreams()).toEqual([{ address: "10.96.0.10", port: 5353 }]);
    expect(records.ownsAddress("10.244.0.1")).toBe(true);
    expect(records.allowedCidrs()).toEqual(["10.244.0.0/16"]);
    networks.remove(network({}));
    expect(records.domain).toBe("skein.local");
  });

  it("ignores other Networks and lets overrides win", () => {
    const pods = new FakeSource<V1Pod>();
    const networks = new FakeSource<Network>();
    const records = new PodRecords({
      pods,
      networks,
      networkName: "skein",
      overrides: { domain: "fixed.test" },
    });
    networks.put({ ...network({ domain: "other.test" }), metadata: { name: "other" } });
    networks.put(network({ domain: "net.test", ttlSeconds: 9 }));
    expect(records.domain).toBe("fixed.test");
    expect(records.ttlSeconds).toBe(9);
  });

  it("never takes a node as gone without a node source", () => {
    const pods = new FakeSource<V1Pod>();
    const records = new PodRecords({ pods });
    pods.put(pod({ names: "web", node: "anything" }));
    expect(records.records.lookup("web")?.v4).toEqual(["10.244.1.2"]);
  });
});
