import { describe, expect, it } from "vitest";
import { splitHostPort } from "./host-port.ts";

describe("splitHostPort", () => {
  it.each([
    ["10.0.0.1:53", { host: "10.0.0.1", port: 53 }],
    [":8080", { host: "", port: 8080 }],
    ["[fd00::1]:53", { host: "fd00::1", port: 53 }],
    ["localhost:0", { host: "localhost", port: 0 }],
    ["10.0.0.1", { host: "10.0.0.1" }],
    ["fd00::1", { host: "fd00::1" }],
  ])("%j", (text, want) => {
    expect(splitHostPort(text)).toEqual(want);
  });

  it.each(["host:", "a:b", ":99999", "::1:80x", "[fd00::1]", "[fd00::1]:", "fd00::1]:53", "1:2:3"])(
    "rejects %j",
    (text) => {
      expect(splitHostPort(text)).toBeUndefined();
    },
  );
});
