import { describe, expect, it } from "vitest";
import { InvalidInputError } from "../errors.ts";
import {
  type Condition,
  type ConditionUpdate,
  findCondition,
  formatTime,
  isConditionTrue,
  removeCondition,
  setCondition,
} from "./conditions.ts";

const T0 = "2025-01-01T00:00:00Z";
const now = new Date("2025-06-01T12:34:56.789Z");
const NOW = "2025-06-01T12:34:56Z";

const ready: Condition = {
  type: "Ready",
  status: "True",
  reason: "Allocated",
  message: "all nodes have a block",
  observedGeneration: 1,
  lastTransitionTime: T0,
};

describe("setCondition", () => {
  const cases: Array<{
    name: string;
    before: Condition[] | undefined;
    update: ConditionUpdate;
    want: Condition[];
  }> = [
    {
      name: "adds a new condition stamped now",
      before: undefined,
      update: { type: "Ready", status: "False", reason: "Pending", message: "" },
      want: [{ type: "Ready", status: "False", reason: "Pending", message: "", lastTransitionTime: NOW }],
    },
    {
      name: "appends after other types, keeping their order",
      before: [ready],
      update: { type: "Degraded", status: "False", reason: "AsExpected", message: "", observedGeneration: 2 },
      want: [
        ready,
        {
          type: "Degraded",
          status: "False",
          reason: "AsExpected",
          message: "",
          observedGeneration: 2,
          lastTransitionTime: NOW,
        },
      ],
    },
    {
      name: "keeps lastTransitionTime when status stays, but takes new reason, message and generation",
      before: [ready],
      update: {
        type: "Ready",
        status: "True",
        reason: "Rebalanced",
        message: "moved",
        observedGeneration: 3,
      },
      want: [{ ...ready, reason: "Rebalanced", message: "moved", observedGeneration: 3 }],
    },
    {
      name: "moves lastTransitionTime when status flips",
      before: [ready],
      update: {
        type: "Ready",
        status: "False",
        reason: "Exhausted",
        message: "no free block",
        observedGeneration: 1,
      },
      want: [
        {
          ...ready,
          status: "False",
          reason: "Exhausted",
          message: "no free block",
          lastTransitionTime: NOW,
        },
      ],
    },
    {
      name: "True → Unknown is a flip too",
      before: [ready],
      update: {
        type: "Ready",
        status: "Unknown",
        reason: "ApiUnreachable",
        message: "",
        observedGeneration: 1,
      },
      want: [{ ...ready, status: "Unknown", reason: "ApiUnreachable", message: "", lastTransitionTime: NOW }],
    },
    {
      name: "keeps the old observedGeneration when the update has none",
      before: [ready],
      update: { type: "Ready", status: "True", reason: "Allocated", message: "again" },
      want: [{ ...ready, message: "again" }],
    },
  ];

  it.each(cases)("$name", ({ before, update, want }) => {
    const snapshot = structuredClone(before);
    expect(setCondition(before, update, now)).toEqual(want);
    expect(before).toEqual(snapshot);
  });

  it("returns the same array when nothing changed", () => {
    const list = [ready];
    const same = setCondition(list, { ...ready }, now);
    expect(same).toBe(list);
  });

  it("truncates an overlong message to the API limit", () => {
    const [c] = setCondition(
      [],
      { type: "Ready", status: "True", reason: "Ok", message: "x".repeat(40_000) },
      now,
    );
    expect(c?.message.length).toBe(32_768);
  });

  it.each([
    {
      update: { type: "Ready", status: "Yes", reason: "Ok", message: "" },
      message: /True, False or Unknown/,
    },
    { update: { type: "Ready", status: "True", reason: "not ok", message: "" }, message: /CamelCase word/ },
    { update: { type: "Ready", status: "True", reason: "", message: "" }, message: /CamelCase word/ },
    {
      update: { type: "Ready", status: "True", reason: "Ends_With,", message: "" },
      message: /CamelCase word/,
    },
    { update: { type: "", status: "True", reason: "Ok", message: "" }, message: /not a valid name/ },
    { update: { type: "has space", status: "True", reason: "Ok", message: "" }, message: /not a valid name/ },
    {
      update: { type: "Ready", status: "True", reason: "Ok", message: "", observedGeneration: -1 },
      message: /observedGeneration/,
    },
  ])("rejects invalid input: $update", ({ update, message }) => {
    const attempt = () => setCondition([], update as ConditionUpdate, now);
    expect(attempt).toThrow(InvalidInputError);
    expect(attempt).toThrow(message);
  });

  it("accepts a domain-prefixed type and reasons with : , _", () => {
    const list = setCondition(
      [],
      { type: "skein.io/Allocated", status: "True", reason: "A_b,c:D", message: "" },
      now,
    );
    expect(findCondition(list, "skein.io/Allocated")?.reason).toBe("A_b,c:D");
  });
});

describe("condition lookups", () => {
  it("finds, tests and removes by type", () => {
    const list = [ready, { ...ready, type: "Degraded", status: "False" as const }];
    expect(isConditionTrue(list, "Ready")).toBe(true);
    expect(isConditionTrue(list, "Degraded")).toBe(false);
    expect(isConditionTrue(undefined, "Ready")).toBe(false);
    expect(removeCondition(list, "Ready").map((c) => c.type)).toEqual(["Degraded"]);
    expect(removeCondition(list, "Missing")).toBe(list);
  });

  it("formats times the way the API server does", () => {
    expect(formatTime(new Date("2025-01-02T03:04:05.678Z"))).toBe("2025-01-02T03:04:05Z");
  });
});
