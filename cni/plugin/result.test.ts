import { describe, expect, it } from "vitest";
import { CniError, errorResult } from "./errors.ts";
import { appendResult, compareVersions, formatResult, parsePrevResult, type Result } from "./result.ts";

const RESULT: Result = {
  interfaces: [
    { name: "sk0123456789ab", mac: "0a:59:0a:20:01:05", mtu: 1450 },
    { name: "eth0", mac: "0a:58:0a:20:01:05", mtu: 1450, sandbox: "/run/netns/p" },
  ],
  ips: [{ address: "10.32.1.5/12", gateway: "10.32.1.1", interface: 1 }],
  routes: [{ dst: "0.0.0.0/0", gw: "10.32.1.1" }],
};

describe("formatResult", () => {
  it("reports interface MTUs at 1.1.0", () => {
    expect(formatResult(RESULT, "1.1.0")).toEqual({ cniVersion: "1.1.0", ...RESULT });
  });

  it("leaves out the 1.1.0 interface MTU at 1.0.0", () => {
    const out = formatResult(RESULT, "1.0.0") as { interfaces: object[]; ips: object[] };
    expect(out.interfaces[1]).toEqual({ name: "eth0", mac: "0a:58:0a:20:01:05", sandbox: "/run/netns/p" });
    expect(out.ips[0]).toEqual(RESULT.ips[0]);
  });

  it("tags IPs with their family at 0.4.0", () => {
    const out = formatResult({ ...RESULT, dns: { nameservers: ["10.32.1.1"] } }, "0.4.0") as Record<
      string,
      unknown
    >;
    expect(out.ips).toEqual([{ version: "4", address: "10.32.1.5/12", gateway: "10.32.1.1", interface: 1 }]);
    expect(out.dns).toEqual({ nameservers: ["10.32.1.1"] });
  });
});

describe("prevResult", () => {
  it("reads a 0.4.0 result into the common shape", () => {
    const prev = parsePrevResult({ cniVersion: "0.4.0", ...formatResult(RESULT, "0.4.0") });
    expect(prev.ips).toEqual(RESULT.ips);
    expect(prev.interfaces[1]?.sandbox).toBe("/run/netns/p");
  });

  it("appends this plugin's interfaces after earlier ones, shifting IP indexes", () => {
    const merged = appendResult(
      { interfaces: [{ name: "lo0" }], ips: [], routes: [{ dst: "10.0.0.0/8" }] },
      RESULT,
    );
    expect(merged.interfaces.map((i) => i.name)).toEqual(["lo0", "sk0123456789ab", "eth0"]);
    expect(merged.ips[0]?.interface).toBe(2);
    expect(merged.routes).toHaveLength(2);
  });
});

describe("errors", () => {
  it("carries the spec's fields", () => {
    expect(errorResult(new CniError(7, "invalid network config", "bad"), "1.0.0")).toEqual({
      cniVersion: "1.0.0",
      code: 7,
      msg: "invalid network config",
      details: "bad",
    });
  });

  it("reports anything unexpected as an internal error", () => {
    expect(errorResult(new Error("boom"), "1.1.0")).toEqual({
      cniVersion: "1.1.0",
      code: 999,
      msg: "internal error",
      details: "boom",
    });
  });

  it("compares versions numerically", () => {
    expect(compareVersions("0.4.0", "1.1.0")).toBeLessThan(0);
    expect(compareVersions("1.10.0", "1.9.0")).toBeGreaterThan(0);
    expect(compareVersions("1.1.0", "1.1.0")).toBe(0);
  });
});
