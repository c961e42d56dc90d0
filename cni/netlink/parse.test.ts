import { describe, expect, it } from "vitest";
import { FLOOD_MAC, fdbAppend, fdbDel, fdbReplace, fdbShow } from "./bridge.ts";
import { parseFdb, parseLinkAddresses, parseLinks, parseRoutes } from "./parse.ts";

// Captured from iproute2 6.1 on Linux 6.x.
const LINKS = [
  {
    ifindex: 3,
    link_index: 2,
    ifname: "skabc",
    flags: ["NO-CARRIER", "BROADCAST", "MULTICAST", "UP"],
    mtu: 1400,
    qdisc: "noqueue",
    master: "skein0",
    operstate: "DOWN",
    address: "0a:59:0a:20:01:05",
  },
  {
    ifindex: 1,
    ifname: "lo",
    flags: ["LOOPBACK"],
    mtu: 65536,
    operstate: "DOWN",
    address: "00:00:00:00:00:00",
  },
];
const ADDRS = [
  {
    ifindex: 2,
    ifname: "eth0",
    flags: ["BROADCAST", "MULTICAST", "UP", "LOWER_UP"],
    mtu: 1400,
    operstate: "UP",
    address: "0a:58:0a:20:01:05",
    addr_info: [
      { family: "inet", local: "10.32.1.5", prefixlen: 16, scope: "global", label: "eth0" },
      { family: "inet6", local: "fe80::858:aff:fe20:105", prefixlen: 64, scope: "link", tentative: true },
    ],
  },
];
const ROUTES = [
  { dst: "default", gateway: "10.32.1.1", dev: "eth0", flags: [] },
  { dst: "10.32.0.0/16", dev: "eth0", protocol: "kernel", scope: "link", prefsrc: "10.32.1.5", flags: [] },
];
const FDB = [
  { mac: "2a:f6:67:78:d0:f5", ifname: "vx0", flags: [], master: "br0", state: "permanent" },
  { mac: "00:00:00:00:00:00", ifname: "vx0", dst: "192.168.5.2", flags: ["self"], state: "permanent" },
];

describe("ip -j parsers", () => {
  it("reads links, keeping the bridge master", () => {
    expect(parseLinks(LINKS)).toEqual([
      {
        ifindex: 3,
        ifname: "skabc",
        mtu: 1400,
        address: "0a:59:0a:20:01:05",
        flags: ["NO-CARRIER", "BROADCAST", "MULTICAST", "UP"],
        operstate: "DOWN",
        master: "skein0",
      },
      {
        ifindex: 1,
        ifname: "lo",
        mtu: 65536,
        address: "00:00:00:00:00:00",
        flags: ["LOOPBACK"],
        operstate: "DOWN",
      },
    ]);
  });

  it("reads addresses of both families", () => {
    const [eth0] = parseLinkAddresses(ADDRS);
    expect(eth0?.addresses).toEqual([
      { family: "inet", local: "10.32.1.5", prefixlen: 16 },
      { family: "inet6", local: "fe80::858:aff:fe20:105", prefixlen: 64 },
    ]);
    expect(eth0?.operstate).toBe("UP");
  });

  it("reads routes with and without a gateway", () => {
    expect(parseRoutes(ROUTES)).toEqual([
      { dst: "default", gateway: "10.32.1.1", dev: "eth0" },
      { dst: "10.32.0.0/16", dev: "eth0" },
    ]);
  });

  it("treats no output as no entries", () => {
    expect(parseLinks(null)).toEqual([]);
    expect(parseRoutes(undefined)).toEqual([]);
  });

  it.each<[string, () => unknown, RegExp]>([
    ["an object instead of an array", () => parseLinks({}), /not a JSON array/],
    ["a non-object entry", () => parseRoutes([1]), /not an object/],
    ["a link without ifindex", () => parseLinks([{ ifname: "x", mtu: 1 }]), /"ifindex" is not a number/],
    ["a route without dst", () => parseRoutes([{ dev: "x" }]), /"dst" is not a string/],
  ])("refuses %s", (_what, parse, error) => {
    expect(parse).toThrow(error);
  });
});

describe("bridge fdb", () => {
  it("parses flood-list and learned entries", () => {
    expect(parseFdb(FDB)).toEqual([
      { mac: "2a:f6:67:78:d0:f5", ifname: "vx0", flags: [], master: "br0", state: "permanent" },
      { mac: FLOOD_MAC, ifname: "vx0", dst: "192.168.5.2", flags: ["self"], state: "permanent" },
    ]);
  });

  it("builds fdb commands", () => {
    expect(fdbShow("vx0")).toEqual(["bridge", "-j", "fdb", "show", "dev", "vx0"]);
    expect(fdbShow()).toEqual(["bridge", "-j", "fdb", "show"]);
    expect(fdbAppend(FLOOD_MAC, "vx0", "192.168.5.2")).toEqual([
      "bridge",
      "fdb",
      "append",
      "00:00:00:00:00:00",
      "dev",
      "vx0",
      "dst",
      "192.168.5.2",
    ]);
    expect(fdbReplace("0a:58:0a:20:02:05", "vx0", "192.168.5.3")[2]).toBe("replace");
    expect(fdbDel(FLOOD_MAC, "vx0", "192.168.5.2")[2]).toBe("del");
  });

  it("refuses a bad MAC or destination", () => {
    expect(() => fdbAppend("zz", "vx0", "192.168.5.2")).toThrow(/not a MAC/);
    expect(() => fdbAppend(FLOOD_MAC, "vx0", "host.example")).toThrow(/not an IPv4 address/);
  });
});
