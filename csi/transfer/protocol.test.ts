import { describe, expect, it } from "vitest";
import { MAX_WAIT_MS, parseRequest } from "./protocol.ts";

const send = (extra: Record<string, unknown>) =>
  JSON.stringify({ v: 1, op: "send", volume: "vol-1", snapshot: "s2", from: "s1", ...extra });

describe("transfer request parsing", () => {
  it("keeps a send's wait when it is a whole number of milliseconds within bounds", () => {
    expect(parseRequest(send({ waitMs: 750 }))).toEqual({
      v: 1,
      op: "send",
      volume: "vol-1",
      snapshot: "s2",
      from: "s1",
      waitMs: 750,
    });
  });

  it.each([
    ["negative", -1],
    ["too long", MAX_WAIT_MS + 1],
    ["fractional", 1.5],
    ["a string", "100"],
  ])("refuses a wait that is %s, saying what it must be", (_what, waitMs) => {
    expect(() => parseRequest(send({ waitMs }))).toThrow(/"waitMs" must be a whole number from 0 to 5000/);
  });

  it.each([
    ["not JSON", "{", /not JSON/],
    [
      "another protocol version",
      JSON.stringify({ v: 2, op: "send", volume: "v", snapshot: "s" }),
      /version 2/,
    ],
    ["an unknown op", JSON.stringify({ v: 1, op: "push", volume: "v" }), /unknown op "push"/],
    [
      "a dataset path for a volume",
      JSON.stringify({ v: 1, op: "snapshots", volume: "pool/x" }),
      /volume name/,
    ],
    ["intermediates without a base", send({ from: undefined, intermediates: true }), /needs "from"/],
  ])("refuses %s", (_what, line, message) => {
    expect(() => parseRequest(line)).toThrow(message);
  });
});
