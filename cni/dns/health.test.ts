import type { V1Pod } from "@kubernetes/client-node";
import { describe, expect, it } from "vitest";
import { conditionPatch, showsVerdict, type Verdict } from "./health.ts";

const healthy: Verdict = {
  status: "True",
  reason: "ProbeSucceeded",
  message: "tcp 10.244.1.2:8080: connected",
};
const failing: Verdict = {
  status: "False",
  reason: "ProbeFailed",
  message: "tcp 10.244.1.2:8080: ECONNREFUSED",
};

function podWith(condition?: { status: string; reason: string; lastTransitionTime?: Date }): V1Pod {
  return {
    metadata: { name: "p", namespace: "default" },
    status: {
      conditions: [
        { type: "Ready", status: "True" },
        ...(condition ? [{ type: "skein.io/dns-healthy", ...condition }] : []),
      ],
    },
  };
}

describe("conditionPatch", () => {
  const now = new Date("2025-01-02T03:04:05.678Z");

  it("sets only the DNS condition (strategic merge by type), stamped now when new", () => {
    expect(conditionPatch(podWith(), healthy, now)).toEqual({
      status: {
        conditions: [
          {
            type: "skein.io/dns-healthy",
            status: "True",
            reason: "ProbeSucceeded",
            message: healthy.message,
            lastProbeTime: null,
            lastTransitionTime: "2025-01-02T03:04:05Z",
          },
        ],
      },
    });
  });

  it("keeps the transition time when the status does not flip", () => {
    const then = new Date("2024-12-31T00:00:00Z");
    const patch = conditionPatch(
      podWith({ status: "True", reason: "Other", lastTransitionTime: then }),
      healthy,
      now,
    ) as {
      status: { conditions: { lastTransitionTime: string }[] };
    };
    expect(patch.status.conditions[0]!.lastTransitionTime).toBe("2024-12-31T00:00:00Z");
    const flipped = conditionPatch(
      podWith({ status: "True", reason: "x", lastTransitionTime: then }),
      failing,
      now,
    ) as {
      status: { conditions: { lastTransitionTime: string }[] };
    };
    expect(flipped.status.conditions[0]!.lastTransitionTime).toBe("2025-01-02T03:04:05Z");
  });
});

describe("showsVerdict", () => {
  it.each([
    [podWith(), healthy, false],
    [podWith({ status: "True", reason: "ProbeSucceeded" }), healthy, true],
    [podWith({ status: "True", reason: "ProbeSucceeded" }), failing, false],
    [podWith({ status: "False", reason: "InvalidProbe" }), failing, false],
  ])("%#", (pod, verdict, want) => {
    expect(showsVerdict(pod, verdict)).toBe(want);
  });
});
