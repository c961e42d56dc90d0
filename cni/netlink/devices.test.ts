import { describe, expect, it } from "vitest";
import type { Argv } from "../../kit/exec.ts";
import {
  addrDel,
  addrReplace,
  bridgeAdd,
  bridgeSetMulticastSnooping,
  linkShowDetails,
  neighReplace,
  parseLinkDetails,
  parseNeighbours,
  vxlanAdd,
} from "./devices.ts";
import { isRuleMissing, ruleAppend, ruleCheck, ruleDelete } from "./iptables.ts";

const vxlan = {
  name: "skein-vxlan",
  vni: 42,
  port: 4789,
  local: "198.18.0.1",
  underlay: "eth0",
  mtu: 1450,
  mac: "0a:aa:00:00:00:01",
  learning: true,
};

describe("device argument builders", () => {
  it.each<[string, () => Argv, string[]]>([
    [
      "a bridge that floods multicast",
      () => bridgeAdd({ name: "skein0", mtu: 1450, mac: "0a:58:0a:20:01:01" }),
      [
        "ip",
        "link",
        "add",
        "skein0",
        "mtu",
        "1450",
        "address",
        "0a:58:0a:20:01:01",
        "type",
        "bridge",
        "mcast_snooping",
        "0",
      ],
    ],
    [
      "snooping off",
      () => bridgeSetMulticastSnooping("skein0", false),
      ["ip", "link", "set", "dev", "skein0", "type", "bridge", "mcast_snooping", "0"],
    ],
    [
      "a learning VXLAN device",
      () => vxlanAdd(vxlan),
      [
        "ip",
        "link",
        "add",
        "skein-vxlan",
        "mtu",
        "1450",
        "address",
        "0a:aa:00:00:00:01",
        "type",
        "vxlan",
        "id",
        "42",
        "dstport",
        "4789",
        "local",
        "198.18.0.1",
        "dev",
        "eth0",
        "learning",
      ],
    ],
    ["details", () => linkShowDetails("skein0"), ["ip", "-d", "-j", "link", "show", "dev", "skein0"]],
    [
      "an address",
      () => addrReplace("10.32.1.1/16", "skein0"),
      ["ip", "addr", "replace", "10.32.1.1/16", "dev", "skein0"],
    ],
    [
      "an address removal",
      () => addrDel("10.32.9.1/16", "skein0"),
      ["ip", "addr", "del", "10.32.9.1/16", "dev", "skein0"],
    ],
    [
      "a permanent neighbour",
      () => neighReplace("10.32.2.1", "0a:58:0a:20:02:01", "skein0"),
      [
        "ip",
        "neigh",
        "replace",
        "10.32.2.1",
        "lladdr",
        "0a:58:0a:20:02:01",
        "dev",
        "skein0",
        "nud",
        "permanent",
      ],
    ],
    [
      "an iptables check",
      () =>
        ruleCheck({ table: "nat", chain: "POSTROUTING", spec: ["-s", "10.32.0.0/16", "-j", "MASQUERADE"] }),
      ["iptables", "-w", "5", "-t", "nat", "-C", "POSTROUTING", "-s", "10.32.0.0/16", "-j", "MASQUERADE"],
    ],
    [
      "an iptables append",
      () => ruleAppend({ table: "filter", chain: "FORWARD", spec: ["-j", "ACCEPT"] }),
      ["iptables", "-w", "5", "-t", "filter", "-A", "FORWARD", "-j", "ACCEPT"],
    ],
    [
      "an iptables delete",
      () => ruleDelete({ table: "filter", chain: "FORWARD", spec: ["-j", "ACCEPT"] }),
      ["iptables", "-w", "5", "-t", "filter", "-D", "FORWARD", "-j", "ACCEPT"],
    ],
  ])("builds %s", (_what, build, argv) => {
    expect(build()).toEqual(argv);
  });

  it.each<[string, () => Argv, RegExp]>([
    ["a VNI of 0", () => vxlanAdd({ ...vxlan, vni: 0 }), /VNI 0 is out of range/],
    ["a VNI over 24 bits", () => vxlanAdd({ ...vxlan, vni: 16_777_216 }), /out of range/],
    ["port 0", () => vxlanAdd({ ...vxlan, port: 0 }), /UDP port 0/],
    ["a hostname as local address", () => vxlanAdd({ ...vxlan, local: "node1" }), /not an IPv4 address/],
    ["an IPv6 local address", () => vxlanAdd({ ...vxlan, local: "fd00::1" }), /not an IPv4 address/],
    [
      "an upper-case MAC",
      () => bridgeAdd({ name: "b", mtu: 1500, mac: "0A:58:00:00:00:01" }),
      /lower-case MAC/,
    ],
    [
      "a long bridge name",
      () => bridgeAdd({ name: "skein0123456789ab", mtu: 1500, mac: "0a:58:00:00:00:01" }),
      /longer than 15/,
    ],
    ["an address without prefix", () => addrReplace("10.32.1.1", "skein0"), /interface address/],
    ["a bad neighbour MAC", () => neighReplace("10.32.2.1", "zz", "skein0"), /MAC/],
    [
      "a chain with spaces",
      () => ruleCheck({ table: "nat", chain: "A B", spec: ["-j", "ACCEPT"] }),
      /chain name/,
    ],
    ["a rule without target", () => ruleAppend({ table: "nat", chain: "POSTROUTING", spec: [] }), /target/],
  ])("refuses %s", (_what, build, error) => {
    expect(build).toThrow(error);
  });

  it("tells a missing rule from a broken iptables", () => {
    expect(isRuleMissing(1, "iptables: Bad rule (does a matching rule exist in that chain?).")).toBe(true);
    expect(isRuleMissing(1, "iptables: No chain/target/match by that name.")).toBe(false);
    expect(isRuleMissing(2, "iptables v1.8.9: unknown option")).toBe(false);
  });
});

describe("ip -d -j parsers", () => {
  // Trimmed from iproute2 6.1 output.
  const LINKS = [
    {
      ifindex: 5,
      ifname: "skein-vxlan",
      flags: ["BROADCAST", "MULTICAST", "UP"],
      mtu: 1450,
      master: "skein0",
      operstate: "UNKNOWN",
      address: "0a:aa:00:00:00:01",
      linkinfo: {
        info_kind: "vxlan",
        info_data: {
          id: 42,
          local: "198.18.0.1",
          link: "eth0",
          port_range: { low: 0, high: 0 },
          port: 4789,
          learning: true,
        },
        info_slave_kind: "bridge",
      },
    },
    {
      ifindex: 4,
      ifname: "skein0",
      flags: ["BROADCAST"],
      mtu: 1450,
      operstate: "DOWN",
      address: "0a:58:0a:20:01:01",
      linkinfo: { info_kind: "bridge", info_data: { stp_state: 0, mcast_snooping: 1 } },
    },
    {
      ifindex: 1,
      ifname: "lo",
      flags: ["LOOPBACK"],
      mtu: 65536,
      operstate: "UNKNOWN",
      address: "00:00:00:00:00:00",
    },
  ];

  it("reads VXLAN and bridge attributes", () => {
    const [vx, br, lo] = parseLinkDetails(LINKS);
    expect(vx).toMatchObject({
      ifname: "skein-vxlan",
      master: "skein0",
      kind: "vxlan",
      vxlan: { vni: 42, port: 4789, local: "198.18.0.1", underlay: "eth0", learning: true },
    });
    expect(br).toMatchObject({ kind: "bridge", bridge: { multicastSnooping: true } });
    expect(lo?.kind).toBeUndefined();
  });

  it("reads neighbours and skips entries without an address", () => {
    expect(
      parseNeighbours([
        { dst: "10.32.2.1", lladdr: "0a:58:0a:20:02:01", state: ["PERMANENT"] },
        { dst: "10.32.2.9", state: ["FAILED"] },
        { bogus: true },
      ]),
    ).toEqual([
      { dst: "10.32.2.1", lladdr: "0a:58:0a:20:02:01", state: ["PERMANENT"] },
      { dst: "10.32.2.9", state: ["FAILED"] },
    ]);
    expect(parseNeighbours(null)).toEqual([]);
    expect(() => parseNeighbours({})).toThrow(/JSON array/);
  });
});
