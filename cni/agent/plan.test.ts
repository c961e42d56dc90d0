import { describe, expect, it } from "vitest";
import type { Network, NodeSubnet } from "../../api/v1alpha1/index.ts";
import { gatewayMac, OverlayConfigError, planOverlay, type UnderlayInterface } from "./plan.ts";

function network(spec: Partial<Network["spec"]> = {}): Network {
  return {
    apiVersion: "skein.io/v1alpha1",
    kind: "Network",
    metadata: { name: "skein" },
    spec: { cidr: "10.32.0.0/16", vni: 42, nodeBlockPrefixLength: 24, ...spec },
  };
}

function subnet(node: string, i: number, spec: Partial<NodeSubnet["spec"]> = {}): NodeSubnet {
  return {
    apiVersion: "skein.io/v1alpha1",
    kind: "NodeSubnet",
    metadata: { name: `skein-${node}` },
    spec: {
      network: "skein",
      node,
      block: `10.32.${i}.0/24`,
      gateway: `10.32.${i}.1`,
      vtepAddress: `198.18.0.${i}`,
      vtepMAC: `0a:aa:00:00:00:0${i}`,
      ...spec,
    },
  };
}

const underlay: UnderlayInterface = { name: "eth0", mtu: 1500, address: "198.18.0.1" };
const own = subnet("node-1", 1);

describe("planOverlay", () => {
  it("puts the gateway on the bridge with the whole network's prefix and derives MTU from the underlay", () => {
    const plan = planOverlay({ network: network(), own, subnets: [own], underlay });
    expect(plan.bridge).toEqual({
      name: "skein0",
      mtu: 1450,
      mac: "0a:58:0a:20:01:01",
      address: "10.32.1.1/16",
    });
    expect(plan.vxlan).toEqual({
      name: "skein-vxlan",
      vni: 42,
      port: 4789,
      local: "198.18.0.1",
      underlay: "eth0",
      mtu: 1450,
      mac: "0a:aa:00:00:00:01",
      learning: true,
    });
    expect(plan.route).toEqual({ dst: "10.32.0.0/16", dev: "skein0", src: "10.32.1.1" });
    expect(plan.settings).toEqual({
      version: 1,
      network: "skein",
      networkCIDR: "10.32.0.0/16",
      blockCIDR: "10.32.1.0/24",
      gateway: "10.32.1.1",
      mtu: 1450,
      bridge: "skein0",
    });
    expect(plan.floodList).toEqual([]);
  });

  it("takes the Network's MTU and port when it sets them", () => {
    const plan = planOverlay({ network: network({ mtu: 1400, port: 8472 }), own, subnets: [own], underlay });
    expect(plan.bridge.mtu).toBe(1400);
    expect(plan.vxlan.port).toBe(8472);
    expect(plan.settings.mtu).toBe(1400);
  });

  it("floods to every peer once, with static entries for their gateways", () => {
    const peers = [
      subnet("node-3", 3),
      subnet("node-2", 2),
      subnet("node-2b", 4, { vtepAddress: "198.18.0.2" }),
    ];
    const plan = planOverlay({ network: network(), own, subnets: [own, ...peers], underlay });
    expect(plan.floodList).toEqual(["198.18.0.2", "198.18.0.3"]);
    expect(plan.staticFdb).toContainEqual({ mac: gatewayMac("10.32.2.1"), dst: "198.18.0.2" });
    expect(plan.neighbours).toContainEqual({ address: "10.32.3.1", mac: "0a:58:0a:20:03:01" });
  });

  it.each<[string, NodeSubnet, RegExp]>([
    ["an IPv6 VTEP", subnet("n6", 6, { vtepAddress: "fd00::6" }), /not IPv4/],
    ["this node's VTEP", subnet("dup", 7, { vtepAddress: "198.18.0.1" }), /this node's VTEP/],
    ["a gateway outside the network", subnet("out", 8, { gateway: "10.99.0.1" }), /not inside the network/],
    ["this node's gateway", subnet("gw", 9, { gateway: "10.32.1.1" }), /this node's gateway/],
  ])("leaves out a peer with %s and says why", (_what, peer, reason) => {
    const plan = planOverlay({ network: network(), own, subnets: [own, peer], underlay });
    expect(plan.floodList).toEqual([]);
    expect(plan.skippedPeers).toEqual([{ name: peer.metadata.name, reason: expect.stringMatching(reason) }]);
  });

  it("ignores NodeSubnets of other networks", () => {
    const other = subnet("node-5", 5, { network: "other" });
    expect(planOverlay({ network: network(), own, subnets: [own, other], underlay }).floodList).toEqual([]);
  });

  it.each<[string, NodeSubnet, RegExp]>([
    [
      "a block outside the network",
      subnet("node-1", 1, { block: "10.33.1.0/24", gateway: "10.33.1.1" }),
      /outside Network/,
    ],
    [
      "a VTEP that is not the node's address",
      subnet("node-1", 1, { vtepAddress: "198.18.0.9" }),
      /not the node's underlay address/,
    ],
    ["a malformed block", subnet("node-1", 1, { block: "10.32.1.7/24" }), /malformed/],
  ])("refuses an own NodeSubnet with %s", (_what, bad, error) => {
    const plan = () => planOverlay({ network: network(), own: bad, subnets: [bad], underlay });
    expect(plan).toThrow(OverlayConfigError);
    expect(plan).toThrow(error);
  });

  it("masquerades only traffic leaving the overlay and lets the overlay forward", () => {
    const { rules } = planOverlay({ network: network(), own, subnets: [own], underlay });
    expect(rules[0]).toEqual({
      table: "nat",
      chain: "POSTROUTING",
      spec: [
        "-s",
        "10.32.0.0/16",
        "!",
        "-d",
        "10.32.0.0/16",
        "-m",
        "comment",
        "--comment",
        "skein skein",
        "-j",
        "MASQUERADE",
        "--random-fully",
      ],
    });
    expect(rules.slice(1).map((r) => [r.chain, r.spec[0], r.spec.at(-1)])).toEqual([
      ["FORWARD", "-s", "ACCEPT"],
      ["FORWARD", "-d", "ACCEPT"],
    ]);
  });
});
