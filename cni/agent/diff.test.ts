import { describe, expect, it } from "vitest";
import { FLOOD_MAC } from "../netlink/bridge.ts";
import type { LinkDetails } from "../netlink/devices.ts";
import type { FdbEntry } from "../netlink/parse.ts";
import { bridgeIncompatibility, diffFdb, diffNeighbours, vxlanIncompatibility } from "./diff.ts";

const flood = (dst: string): FdbEntry => ({
  mac: FLOOD_MAC,
  ifname: "vx",
  dst,
  flags: ["self"],
  state: "permanent",
});
const fixed = (mac: string, dst: string): FdbEntry => ({
  mac,
  ifname: "vx",
  dst,
  flags: ["self"],
  state: "permanent",
});

describe("diffFdb", () => {
  it("appends missing peers and removes peers that left", () => {
    const diff = diffFdb(["198.18.0.2", "198.18.0.3"], [], [flood("198.18.0.2"), flood("198.18.0.9")]);
    expect(diff).toEqual({
      appendFlood: ["198.18.0.3"],
      replace: [],
      remove: [{ mac: FLOOD_MAC, dst: "198.18.0.9" }],
    });
  });

  it("changes nothing when the kernel already agrees", () => {
    const entries = [flood("198.18.0.2"), fixed("0a:58:0a:20:02:01", "198.18.0.2")];
    const diff = diffFdb(["198.18.0.2"], [{ mac: "0a:58:0a:20:02:01", dst: "198.18.0.2" }], entries);
    expect(diff).toEqual({ appendFlood: [], replace: [], remove: [] });
  });

  it("repoints a static entry by replacing it, without deleting it afterwards", () => {
    const diff = diffFdb(
      [],
      [{ mac: "0a:58:0a:20:02:01", dst: "198.18.0.7" }],
      [fixed("0a:58:0a:20:02:01", "198.18.0.2")],
    );
    expect(diff.replace).toEqual([{ mac: "0a:58:0a:20:02:01", dst: "198.18.0.7" }]);
    expect(diff.remove).toEqual([]);
  });

  it("leaves learned and bridge-local entries alone", () => {
    const learned: FdbEntry = { mac: "0a:58:0a:20:02:05", ifname: "vx", dst: "198.18.0.2", flags: ["self"] };
    const local: FdbEntry = {
      mac: "0a:aa:00:00:00:01",
      ifname: "vx",
      flags: [],
      master: "skein0",
      state: "permanent",
    };
    expect(diffFdb([], [], [learned, local])).toEqual({ appendFlood: [], replace: [], remove: [] });
  });
});

describe("diffNeighbours", () => {
  it("replaces missing or wrong permanent entries and deletes stale ones, ignoring dynamic ARP", () => {
    const diff = diffNeighbours(
      [
        { address: "10.32.2.1", mac: "0a:58:0a:20:02:01" },
        { address: "10.32.3.1", mac: "0a:58:0a:20:03:01" },
      ],
      [
        { dst: "10.32.2.1", lladdr: "0a:58:0a:20:02:01", state: ["PERMANENT"] },
        { dst: "10.32.3.1", lladdr: "0a:00:00:00:00:01", state: ["PERMANENT"] },
        { dst: "10.32.9.1", lladdr: "0a:58:0a:20:09:01", state: ["PERMANENT"] },
        { dst: "10.32.2.5", lladdr: "0a:58:0a:20:02:05", state: ["REACHABLE"] },
      ],
    );
    expect(diff).toEqual({
      replace: [{ address: "10.32.3.1", mac: "0a:58:0a:20:03:01" }],
      remove: ["10.32.9.1"],
    });
  });
});

describe("device compatibility", () => {
  const wanted = {
    name: "vx",
    vni: 42,
    port: 4789,
    local: "198.18.0.1",
    underlay: "eth0",
    mtu: 1450,
    mac: "0a:aa:00:00:00:01",
    learning: true,
  };
  const link = (vxlan: Partial<NonNullable<LinkDetails["vxlan"]>>, kind = "vxlan"): LinkDetails => ({
    ifindex: 5,
    ifname: "vx",
    mtu: 1400,
    address: "0a:00:00:00:00:09",
    flags: [],
    operstate: "DOWN",
    kind,
    vxlan: { vni: 42, port: 4789, local: "198.18.0.1", underlay: "eth0", learning: true, ...vxlan },
  });

  it.each<[string, LinkDetails, RegExp | null]>([
    ["a matching device (MTU and MAC are fixed in place)", link({}), null],
    ["another VNI", link({ vni: 7 }), /VNI is 7, the Network says 42/],
    ["another port", link({ port: 8472 }), /UDP port is 8472/],
    ["another local address", link({ local: "198.18.0.9" }), /local VTEP address is 198.18.0.9/],
    ["another underlay", link({ underlay: "eth1" }), /runs over eth1/],
    ["learning off", link({ learning: false }), /learning is off/],
    ["a device of another kind", link({}, "dummy"), /dummy device, not vxlan/],
  ])("%s", (_what, existing, reason) => {
    const got = vxlanIncompatibility(existing, wanted);
    if (reason === null) expect(got).toBeNull();
    else expect(got).toMatch(reason);
  });

  it("accepts only a bridge as the bridge", () => {
    expect(bridgeIncompatibility({ ...link({}), kind: "bridge" })).toBeNull();
    expect(bridgeIncompatibility({ ...link({}), kind: "veth" })).toMatch(/veth device, not a bridge/);
  });
});
