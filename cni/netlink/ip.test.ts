import { describe, expect, it } from "vitest";
import type { Argv } from "../../kit/exec.ts";
import {
  addrAdd,
  addrFlush,
  addrShow,
  ipBatch,
  isFileExists,
  isNoSuchDevice,
  linkDel,
  linkSet,
  linkShow,
  linkShowMaster,
  routeReplace,
  routeShow,
  vethAdd,
} from "./ip.ts";

describe("ip argument builders", () => {
  it.each<[string, () => Argv, string[]]>([
    [
      "a veth pair with the peer born in its namespace",
      () =>
        vethAdd({
          name: "sk0123456789ab",
          mtu: 1450,
          mac: "0a:59:0a:20:01:05",
          master: "skein0",
          up: true,
          peer: { name: "eth0", mtu: 1450, mac: "0a:58:0a:20:01:05", netns: "/var/run/netns/pod" },
        }),
      [
        "ip",
        "link",
        "add",
        "sk0123456789ab",
        "mtu",
        "1450",
        "address",
        "0a:59:0a:20:01:05",
        "master",
        "skein0",
        "up",
        "type",
        "veth",
        "peer",
        "name",
        "eth0",
        "mtu",
        "1450",
        "address",
        "0a:58:0a:20:01:05",
        "netns",
        "/var/run/netns/pod",
      ],
    ],
    [
      "a bare veth pair",
      () => vethAdd({ name: "a", peer: { name: "b" } }),
      ["ip", "link", "add", "a", "type", "veth", "peer", "name", "b"],
    ],
    ["link deletion", () => linkDel("sk1"), ["ip", "link", "del", "dev", "sk1"]],
    [
      "moving a link by namespace path",
      () => linkSet("x", { netns: "/proc/42/ns/net" }),
      ["ip", "link", "set", "dev", "x", "netns", "/proc/42/ns/net"],
    ],
    [
      "master, mtu and up",
      () => linkSet("x", { master: "br", mtu: 9000, up: true }),
      ["ip", "link", "set", "dev", "x", "mtu", "9000", "master", "br", "up"],
    ],
    ["all links", () => linkShow(), ["ip", "-j", "link", "show"]],
    ["one link", () => linkShow("eth0"), ["ip", "-j", "link", "show", "dev", "eth0"]],
    ["a bridge's ports", () => linkShowMaster("skein0"), ["ip", "-j", "link", "show", "master", "skein0"]],
    [
      "an address",
      () => addrAdd("10.32.1.5/12", "eth0"),
      ["ip", "addr", "add", "10.32.1.5/12", "dev", "eth0"],
    ],
    ["an address flush", () => addrFlush("eth0"), ["ip", "addr", "flush", "dev", "eth0"]],
    ["addresses of a link", () => addrShow("eth0"), ["ip", "-j", "addr", "show", "dev", "eth0"]],
    [
      "a default route",
      () => routeReplace({ dst: "default", via: "10.32.1.1", dev: "eth0" }),
      ["ip", "route", "replace", "default", "via", "10.32.1.1", "dev", "eth0"],
    ],
    [
      "an onlink route with a source",
      () => routeReplace({ dst: "10.32.0.0/12", dev: "vx", src: "10.32.1.1", onlink: true }),
      ["ip", "route", "replace", "10.32.0.0/12", "dev", "vx", "src", "10.32.1.1", "onlink"],
    ],
    ["routes of a link", () => routeShow("eth0"), ["ip", "-j", "route", "show", "dev", "eth0"]],
  ])("builds %s", (_what, build, argv) => {
    expect(build()).toEqual(argv);
  });

  it.each<[string, () => Argv, RegExp]>([
    ["an interface name with a slash", () => linkDel("a/b"), /contains/],
    ["an empty interface name", () => linkShow(""), /is empty/],
    ["a 16-byte interface name", () => addrShow("0123456789abcdef"), /longer than 15/],
    ["an MTU out of range", () => linkSet("x", { mtu: 10 }), /MTU 10/],
    ["an upper-case MAC", () => linkSet("x", { mac: "0A:58:00:00:00:01" }), /not a lower-case MAC/],
    ["a bad peer name", () => vethAdd({ name: "a", peer: { name: "b c" } }), /whitespace/],
  ])("refuses %s", (_what, build, error) => {
    expect(build).toThrow(error);
  });
});

describe("ipBatch", () => {
  it("joins plain ip subcommands into one batch", () => {
    expect(
      ipBatch([
        addrAdd("10.32.1.5/12", "eth0"),
        routeReplace({ dst: "default", via: "10.32.1.1", dev: "eth0" }),
      ]),
    ).toEqual({
      argv: ["ip", "-batch", "-"],
      input: "addr add 10.32.1.5/12 dev eth0\nroute replace default via 10.32.1.1 dev eth0\n",
    });
  });

  it.each<[string, Argv, RegExp]>([
    ["another program", ["bridge", "fdb", "show"], /plain ip subcommands/],
    ["a global option", ["ip", "-j", "link", "show"], /plain ip subcommands/],
    ["a comment character", ["ip", "link", "show", "dev", "a#b"], /cannot be passed/],
    ["a quote", ["ip", "link", "show", "dev", "'a"], /cannot be passed/],
    ["an empty word", ["ip", "link", "show", ""], /cannot be passed/],
  ])("refuses %s", (_what, command, error) => {
    expect(() => ipBatch([command])).toThrow(error);
  });
});

describe("ip error classification", () => {
  it.each([
    ['Cannot find device "skabd"', true, false],
    ['Device "x" does not exist.', true, false],
    ["RTNETLINK answers: File exists", false, true],
    ['Error: argument "/nonexistent" is wrong: Invalid "netns" value', false, false],
  ])("%s", (stderr, noDevice, exists) => {
    expect(isNoSuchDevice(stderr)).toBe(noDevice);
    expect(isFileExists(stderr)).toBe(exists);
  });
});
