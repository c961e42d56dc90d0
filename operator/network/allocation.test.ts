import { describe, expect, it } from "vitest";
import {
  blockCapacity,
  type HeldBlock,
  overlappingNetworks,
  planAllocation,
  subnetObjectName,
  vtepMAC,
} from "./allocation.ts";

const net = { name: "pods", cidr: "10.244.0.0/22", nodeBlockPrefixLength: 24 };
const node = (i: number) => ({ name: `node-${i}`, internalIP: `198.18.0.${i}` });

describe("planAllocation", () => {
  it("gives each new node the lowest free block, gateway .1 and a stable MAC", () => {
    const plan = planAllocation(net, [node(2), node(1)], []);
    expect(plan.create).toEqual([
      {
        objectName: "pods.10-244-0-0-24",
        node: "node-1",
        block: "10.244.0.0/24",
        gateway: "10.244.0.1",
        vtepAddress: "198.18.0.1",
        vtepMAC: vtepMAC("pods", "node-1"),
      },
      {
        objectName: "pods.10-244-1-0-24",
        node: "node-2",
        block: "10.244.1.0/24",
        gateway: "10.244.1.1",
        vtepAddress: "198.18.0.2",
        vtepMAC: vtepMAC("pods", "node-2"),
      },
    ]);
    expect(plan).toMatchObject({ release: [], readdress: [], unallocated: [], capacity: 4, allocated: 2 });
  });

  it("keeps what nodes hold and fills holes first", () => {
    const held: HeldBlock[] = [
      { objectName: "pods.10-244-1-0-24", node: "node-1", block: "10.244.1.0/24", vtepAddress: "198.18.0.1" },
    ];
    const plan = planAllocation(net, [node(1), node(2)], held);
    expect(plan.create.map((c) => [c.node, c.block])).toEqual([["node-2", "10.244.0.0/24"]]);
    expect(plan.release).toEqual([]);
  });

  it("is a fixed point: applying a plan and planning again changes nothing", () => {
    const nodes = Array.from({ length: 3 }, (_, i) => node(i + 1));
    const first = planAllocation(net, nodes, []);
    const held = first.create.map((c) => ({
      objectName: c.objectName,
      node: c.node,
      block: c.block,
      vtepAddress: c.vtepAddress,
    }));
    expect(planAllocation(net, nodes, held)).toMatchObject({
      create: [],
      release: [],
      readdress: [],
      allocated: 3,
    });
  });

  it("releases the blocks of nodes that are gone", () => {
    const held = [
      { objectName: "pods.10-244-0-0-24", node: "node-9", block: "10.244.0.0/24", vtepAddress: "198.18.0.9" },
    ];
    const plan = planAllocation(net, [node(1)], held);
    expect(plan.release).toEqual([{ objectName: "pods.10-244-0-0-24", reason: "node node-9 is gone" }]);
    expect(plan.create.map((c) => c.block)).toEqual(["10.244.0.0/24"]);
  });

  it("releases a block held twice and a second block of one node", () => {
    const held = [
      { objectName: "a", node: "node-1", block: "10.244.0.0/24", vtepAddress: "198.18.0.1" },
      { objectName: "b", node: "node-2", block: "10.244.0.0/24", vtepAddress: "198.18.0.2" },
      { objectName: "c", node: "node-1", block: "10.244.3.0/24", vtepAddress: "198.18.0.1" },
    ];
    const plan = planAllocation(net, [node(1), node(2)], held);
    expect(plan.release).toEqual([
      { objectName: "b", reason: "block 10.244.0.0/24 is held by another node" },
      { objectName: "c", reason: "node node-1 already holds another block" },
    ]);
    expect(plan.create.map((c) => [c.node, c.block])).toEqual([["node-2", "10.244.1.0/24"]]);
  });

  it.each([
    ["outside the network", "10.99.0.0/24"],
    ["of the wrong size", "10.244.0.0/25"],
    ["not a CIDR", "banana"],
  ])("releases a block %s", (_what, block) => {
    const plan = planAllocation(
      net,
      [node(1)],
      [{ objectName: "x", node: "node-1", block, vtepAddress: "198.18.0.1" }],
    );
    expect(plan.release.map((r) => r.objectName)).toEqual(["x"]);
    expect(plan.create).toHaveLength(1);
  });

  it("follows a node whose InternalIP changed", () => {
    const held = [
      {
        objectName: "pods.10-244-0-0-24",
        node: "node-1",
        block: "10.244.0.0/24",
        vtepAddress: "198.18.0.77",
      },
    ];
    expect(planAllocation(net, [node(1)], held).readdress).toEqual([
      { objectName: "pods.10-244-0-0-24", vtepAddress: "198.18.0.1" },
    ]);
  });

  it("reports the nodes a full network cannot take", () => {
    const plan = planAllocation(
      net,
      Array.from({ length: 6 }, (_, i) => node(i + 1)),
      [],
    );
    expect(plan.create).toHaveLength(4);
    expect(plan.unallocated).toEqual(["node-5", "node-6"]);
    expect(plan.allocated).toBe(4);
  });
});

describe("blockCapacity", () => {
  it.each([
    ["10.244.0.0/16", 24, 256],
    ["10.244.0.0/22", 24, 4],
    ["10.0.0.0/8", 26, 2 ** 18],
  ])("%s in /%i blocks has room for %i nodes", (cidr, len, want) => {
    expect(blockCapacity({ name: "n", cidr, nodeBlockPrefixLength: len })).toBe(want);
  });
});

describe("vtepMAC", () => {
  it("is stable, unicast and locally administered, and differs per node", () => {
    const mac = vtepMAC("pods", "node-1");
    expect(mac).toBe(vtepMAC("pods", "node-1"));
    expect(mac).toMatch(/^([0-9a-f]{2}:){5}[0-9a-f]{2}$/);
    const first = Number.parseInt(mac.slice(0, 2), 16);
    expect(first & 1).toBe(0);
    expect(first & 2).toBe(2);
    expect(vtepMAC("pods", "node-2")).not.toBe(mac);
  });
});

describe("subnetObjectName", () => {
  it("names a block so that it is a valid object name", () => {
    expect(subnetObjectName("pods", { network: 0x0af40300, prefix: 24 })).toBe("pods.10-244-3-0-24");
  });
});

describe("overlappingNetworks", () => {
  it("refuses the newer of two overlapping networks and names the older", () => {
    const refused = overlappingNetworks([
      { name: "b", cidr: "10.244.128.0/17", created: "2026-01-02T00:00:00Z" },
      { name: "a", cidr: "10.244.0.0/16", created: "2026-01-01T00:00:00Z" },
      { name: "c", cidr: "10.245.0.0/16", created: "2026-01-03T00:00:00Z" },
    ]);
    expect([...refused]).toEqual([["b", "a"]]);
  });
});
