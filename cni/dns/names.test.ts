import { describe, expect, it } from "vitest";
import {
  canonicalAddress,
  isDnsLabel,
  isDomain,
  normaliseName,
  parentNames,
  relativeName,
  reverseName,
  reverseNameAddress,
} from "./names.ts";

describe("normaliseName", () => {
  it.each([
    ["Web.Skein.Local", "web.skein.local"],
    ["web.skein.local.", "web.skein.local"],
    [".", ""],
    ["", ""],
    ["ÄB.x", "Äb.x"],
  ])("%j → %j", (input, want) => {
    expect(normaliseName(input)).toBe(want);
  });
});

describe("isDnsLabel / isDomain", () => {
  it.each([
    ["web", true],
    ["web-1", true],
    ["-web", false],
    ["web-", false],
    ["Web", false],
    ["a".repeat(63), true],
    ["a".repeat(64), false],
    ["", false],
    ["we.b", false],
  ])("label %j → %j", (label, want) => {
    expect(isDnsLabel(label)).toBe(want);
  });

  it.each([
    ["skein.local", true],
    ["cluster", true],
    ["a..b", false],
    ["skein.local.", false],
    [`${"a".repeat(64)}.local`, false],
    [Array(130).fill("a").join("."), false],
  ])("domain %j → %j", (domain, want) => {
    expect(isDomain(domain)).toBe(want);
  });
});

describe("relativeName", () => {
  it.each([
    ["web.skein.local", "skein.local", "web"],
    ["db-0.prod.skein.local", "skein.local", "db-0.prod"],
    ["skein.local", "skein.local", "apex"],
    ["xskein.local", "skein.local", undefined],
    ["skein.local.evil", "skein.local", undefined],
    ["web.other", "skein.local", undefined],
    ["", "skein.local", undefined],
  ])("%j in %j → %j", (name, domain, want) => {
    expect(relativeName(name, domain)).toBe(want);
  });
});

describe("parentNames", () => {
  it.each([
    ["web", []],
    ["db-0.prod", ["prod"]],
    ["a.b.c", ["b.c", "c"]],
  ])("%j → %j", (name, want) => {
    expect(parentNames(name)).toEqual(want);
  });
});

describe("reverse names", () => {
  it.each([
    ["4.3.2.1.in-addr.arpa", "1.2.3.4"],
    ["10.1.244.10.in-addr.arpa", "10.244.1.10"],
    ["1.244.10.in-addr.arpa", undefined],
    ["256.1.244.10.in-addr.arpa", undefined],
    ["01.1.244.10.in-addr.arpa", undefined],
    ["x.1.244.10.in-addr.arpa", undefined],
    [`1.${"0.".repeat(29)}d.f.ip6.arpa`, "fd00::1"],
    [`${"0.".repeat(31)}ip6.arpa`, undefined],
    ["web.skein.local", undefined],
  ])("%j → %j", (name, want) => {
    expect(reverseNameAddress(name)).toBe(want);
  });

  it("round-trips IPv4 through reverseName", () => {
    expect(reverseNameAddress(reverseName("10.244.3.7"))).toBe("10.244.3.7");
    expect(() => reverseName("fd00::1")).toThrow(RangeError);
  });

  it.each([
    ["10.0.0.1", "10.0.0.1"],
    ["FD00:0:0::0010", "fd00::10"],
    ["not-an-ip", undefined],
  ])("canonicalAddress(%j) → %j", (address, want) => {
    expect(canonicalAddress(address)).toBe(want);
  });
});
