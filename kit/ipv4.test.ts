import { describe, expect, it } from "vitest";
import {
  broadcast,
  contains,
  containsCidr,
  formatAddress,
  formatCidr,
  parseAddress,
  parseCidr,
  size,
} from "./ipv4.ts";

describe("IPv4 addresses", () => {
  it.each([
    ["0.0.0.0", 0],
    ["10.32.1.5", 0x0a200105],
    ["255.255.255.255", 0xffffffff],
  ])("parses and formats %s", (text, value) => {
    expect(parseAddress(text)).toBe(value);
    expect(formatAddress(value)).toBe(text);
  });

  it.each(["", "10.32.1", "10.32.1.256", "010.1.1.1", "1.2.3.4 ", "a.b.c.d", "::1"])("rejects %j", (text) => {
    expect(() => parseAddress(text)).toThrow(/not an IPv4 address/);
  });
});

describe("CIDR blocks", () => {
  it("parses a block and derives its size and broadcast", () => {
    const block = parseCidr("10.32.1.0/24");
    expect(formatCidr(block)).toBe("10.32.1.0/24");
    expect(size(block)).toBe(256);
    expect(formatAddress(broadcast(block))).toBe("10.32.1.255");
    expect(formatAddress(broadcast(parseCidr("0.0.0.0/0")))).toBe("255.255.255.255");
  });

  it.each(["10.32.1.0", "10.32.1.0/33", "10.32.1.0/-1", "10.32.1.0/x", "10.32.1.999/24"])(
    "rejects %j",
    (text) => {
      expect(() => parseCidr(text)).toThrow(/not an IPv4 CIDR|not an IPv4 address/);
    },
  );

  it("rejects host bits and suggests the block meant", () => {
    expect(() => parseCidr("10.32.1.7/24")).toThrow(/did you mean 10\.32\.1\.0\/24/);
  });

  it("tells whether an address or block lies inside", () => {
    const network = parseCidr("10.32.0.0/12");
    expect(contains(network, parseAddress("10.47.255.255"))).toBe(true);
    expect(contains(network, parseAddress("10.48.0.0"))).toBe(false);
    expect(containsCidr(network, parseCidr("10.33.4.0/24"))).toBe(true);
    expect(containsCidr(network, parseCidr("10.0.0.0/8"))).toBe(false);
    expect(containsCidr(network, parseCidr("10.48.0.0/24"))).toBe(false);
  });
});
