import { describe, expect, it } from "vitest";
import type { Argv } from "../../kit/exec.ts";
import {
  addrAdd,
  addrFlush,
  addrShow,
  isNoSuchDevice,
  linkDel,
  linkSet,
  linkShow,
  linkShowMaster,
  routeReplace,
  routeShow,
} from "./ip.ts";

describe("ip argument builders", () => {
  it.each<[string, () => Argv, string[]]>([
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
    ["a name with whitespace", () => linkDel("b c"), /whitespace/],
  ])("refuses %s", (_what, build, error) => {
    expect(build).toThrow(error);
  });
});

describe("ip error classification", () => {
  it.each([
    ['Cannot find device "skabd"', true],
    ['Device "x" does not exist.', true],
    ["RTNETLINK answers: File exists", false],
    ['Error: argument "/nonexistent" is wrong: Invalid "netns" value', false],
  ])("%s", (stderr, noDevice) => {
    expect(isNoSuchDevice(stderr)).toBe(noDevice);
  });
});
