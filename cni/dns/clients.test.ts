import { describe, expect, it } from "vitest";
import { ClientPolicy } from "./clients.ts";

describe("ClientPolicy", () => {
  const policy = (cidrs: string[], locals = ["198.18.0.1", "fd00::1"], allowAll = false) =>
    new ClientPolicy({ cidrs: () => cidrs, localAddresses: () => locals, allowAll });

  it.each([
    ["a pod on the overlay", "10.244.3.4", true],
    ["the node itself", "198.18.0.1", true],
    ["the node's IPv6 address", "fd00::1", true],
    ["loopback", "127.0.0.1", true],
    ["IPv6 loopback", "::1", true],
    ["an IPv4-mapped overlay address", "::ffff:10.244.3.4", true],
    ["another node", "198.18.0.2", false],
    ["the internet", "203.0.113.9", false],
    ["garbage", "not-an-address", false],
  ])("%s (%s) → %s", (_, address, want) => {
    expect(policy(["10.244.0.0/16"]).allows(address)).toBe(want);
  });

  it("answers anyone when told to", () => {
    expect(policy([], [], true).allows("203.0.113.9")).toBe(true);
  });

  it("follows changes of the allowed networks after the refresh", () => {
    let now = 0;
    let cidrs = ["10.244.0.0/16"];
    const p = new ClientPolicy({
      cidrs: () => cidrs,
      localAddresses: () => [],
      refreshMs: 1000,
      now: () => now,
    });
    expect(p.allows("10.245.0.1")).toBe(false);
    cidrs = ["10.245.0.0/16"];
    expect(p.allows("10.245.0.1")).toBe(false);
    now += 1000;
    expect(p.allows("10.245.0.1")).toBe(true);
    expect(p.allows("10.244.0.1")).toBe(false);
  });
});
