import { CoordinationV1Api, type KubeConfig } from "@kubernetes/client-node";
import { Registry } from "prom-client";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { sharedApiServer } from "../../test/fixtures/shared.ts";
import { InvalidInputError } from "../errors.ts";
import { createLogger } from "../log.ts";
import { LeaderElector, leaderElectionTimings } from "./leader-election.ts";
import { eventually, testNamespace } from "./testing.ts";

describe("leaderElectionTimings", () => {
  it("defaults to client-go's 15 s / 10 s / 2 s", () => {
    expect(leaderElectionTimings({})).toEqual({
      leaseDurationMs: 15_000,
      renewDeadlineMs: 10_000,
      retryPeriodMs: 2_000,
    });
  });

  it.each([
    { t: { leaseDurationMs: 10_000, renewDeadlineMs: 10_000 }, message: /greater than renewDeadline/ },
    { t: { renewDeadlineMs: 2_000, retryPeriodMs: 2_000 }, message: /1.2 × retryPeriod/ },
    { t: { leaseDurationMs: 2_500 }, message: /whole seconds/ },
    { t: { retryPeriodMs: 0 }, message: /positive/ },
  ])("rejects $t", ({ t, message }) => {
    expect(() => leaderElectionTimings(t)).toThrow(InvalidInputError);
    expect(() => leaderElectionTimings(t)).toThrow(message);
  });
});

/** One candidate and a log of when it led, for checking that leadership never overlaps. */
class Candidate {
  readonly stop = new AbortController();
  readonly spans: Array<{ from: number; to?: number }> = [];
  readonly elector: LeaderElector;
  done: Promise<void> | undefined;

  constructor(
    kc: KubeConfig,
    namespace: string,
    readonly identity: string,
    timings: { leaseDurationMs: number; renewDeadlineMs: number; retryPeriodMs: number },
    releaseOnStop = true,
    registry?: Registry,
  ) {
    this.elector = new LeaderElector({
      kubeConfig: kc,
      namespace,
      name: "kit-test",
      identity,
      ...timings,
      releaseOnStop,
      registry,
      logger: createLogger(`elector-${identity}`, "silent"),
      onStartedLeading: (signal) => {
        const span: { from: number; to?: number } = { from: Date.now() };
        this.spans.push(span);
        return new Promise<void>((resolve) =>
          signal.addEventListener("abort", () => {
            span.to = Date.now();
            resolve();
          }),
        );
      },
    });
  }

  start(): this {
    this.done = this.elector.run(this.stop.signal);
    return this;
  }

  async halt(): Promise<void> {
    this.stop.abort();
    await this.done;
  }
}

function overlaps(a: Candidate, b: Candidate): boolean {
  const end = (s: { to?: number }) => s.to ?? Number.POSITIVE_INFINITY;
  return a.spans.some((x) => b.spans.some((y) => x.from < end(y) && y.from < end(x)));
}

describe("LeaderElector against the API server", () => {
  const api = sharedApiServer();
  const kc = api.kubeConfig();
  const leases = kc.makeApiClient(CoordinationV1Api);
  let ns: Awaited<ReturnType<typeof testNamespace>>;
  // Short timings keep the test quick; the ratios are client-go's.
  const timings = { leaseDurationMs: 3_000, renewDeadlineMs: 2_000, retryPeriodMs: 250 };

  beforeAll(async () => {
    ns = await testNamespace(kc, "kit-leader");
  });
  afterAll(async () => ns?.delete());

  /** Samples both candidates every few ms; any instant with two leaders fails the test. */
  function watchForTwoLeaders(a: Candidate, b: Candidate): () => void {
    let both = false;
    const timer = setInterval(() => {
      if (a.elector.isLeader() && b.elector.isLeader()) both = true;
    }, 5);
    return () => {
      clearInterval(timer);
      expect(both, "two candidates led at the same time").toBe(false);
      expect(overlaps(a, b), "leadership spans overlap").toBe(false);
    };
  }

  async function deleteLease() {
    await leases.deleteNamespacedLease({ name: "kit-test", namespace: ns.name }).catch(() => undefined);
  }

  it("elects one of two; when the leader stops renewing the other takes over within the lease duration", async () => {
    await deleteLease();
    const a = new Candidate(kc, ns.name, "a", timings, false).start();
    const b = new Candidate(kc, ns.name, "b", timings, false).start();
    const check = watchForTwoLeaders(a, b);
    try {
      const leader = await eventually("a leader", () =>
        a.elector.isLeader() ? a : b.elector.isLeader() ? b : undefined,
      );
      const standby = leader === a ? b : a;
      // Let a few renewals pass: the standby must keep waiting while the leader renews.
      await new Promise((r) => setTimeout(r, timings.leaseDurationMs + 500));
      expect(leader.elector.isLeader()).toBe(true);
      expect(standby.elector.isLeader()).toBe(false);
      expect(standby.elector.observedLeader()).toBe(leader.identity);

      // Without release, as if the process had died.
      const stoppedAt = Date.now();
      await leader.halt();
      await eventually("the standby to take over", () => standby.elector.isLeader(), 10_000);
      const takeover = Date.now() - stoppedAt;
      expect(takeover).toBeGreaterThanOrEqual(timings.leaseDurationMs - timings.retryPeriodMs * 3);
      expect(takeover).toBeLessThan(timings.leaseDurationMs + timings.retryPeriodMs * 2.2 + 1_500);
      const lease = await leases.readNamespacedLease({ name: "kit-test", namespace: ns.name });
      expect(lease.spec?.holderIdentity).toBe(standby.identity);
      expect(lease.spec?.leaseTransitions).toBe(1);
      await standby.halt();
    } finally {
      await a.halt();
      await b.halt();
      check();
    }
  });

  it("releases the lease on shutdown so the standby takes over at once", async () => {
    await deleteLease();
    const slow = { leaseDurationMs: 15_000, renewDeadlineMs: 10_000, retryPeriodMs: 250 };
    const registry = new Registry();
    const a = new Candidate(kc, ns.name, "a", slow, true, registry).start();
    await eventually("a to lead", () => a.elector.isLeader());
    expect(await registry.metrics()).toContain('leader_election_master_status{name="kit-test"} 1');
    const b = new Candidate(kc, ns.name, "b", slow).start();
    const check = watchForTwoLeaders(a, b);
    try {
      await new Promise((r) => setTimeout(r, 1_000));
      expect(b.elector.isLeader()).toBe(false);
      const stoppedAt = Date.now();
      await a.halt();
      expect(a.spans[0]?.to).toBeDefined();
      expect(await registry.metrics()).toContain('leader_election_master_status{name="kit-test"} 0');
      await eventually("b to take over", () => b.elector.isLeader(), 5_000);
      // Without the release b would wait out the whole 15 s lease; half of it leaves room for a loaded machine.
      expect(Date.now() - stoppedAt).toBeLessThan(slow.leaseDurationMs / 2);
    } finally {
      await a.halt();
      await b.halt();
      check();
    }
    const lease = await leases.readNamespacedLease({ name: "kit-test", namespace: ns.name });
    expect(lease.spec?.holderIdentity ?? "").toBe("");
  });

  it("steps down within the renew deadline when another writer takes the lease", async () => {
    await deleteLease();
    const a = new Candidate(kc, ns.name, "a", timings, false).start();
    try {
      await eventually("a to lead", () => a.elector.isLeader());
      // The intruder is a compare-and-swap writer too: it retries when a's renewal got in first.
      await eventually("the intruder to take the lease", async () => {
        const lease = await leases.readNamespacedLease({ name: "kit-test", namespace: ns.name });
        await leases.replaceNamespacedLease({
          name: "kit-test",
          namespace: ns.name,
          body: { ...lease, spec: { ...lease.spec, holderIdentity: "intruder" } },
        });
        return true;
      });
      const tookAt = Date.now();
      await eventually("a to step down", () => !a.elector.isLeader(), 5_000);
      expect(Date.now() - tookAt).toBeLessThanOrEqual(timings.renewDeadlineMs + timings.retryPeriodMs + 500);
      await a.done;
      const after = await leases.readNamespacedLease({ name: "kit-test", namespace: ns.name });
      expect(after.spec?.holderIdentity).toBe("intruder");
    } finally {
      await a.halt();
    }
  });

  it("steps down and releases the lease when its leading work fails", async () => {
    await deleteLease();
    const elector = new LeaderElector({
      kubeConfig: kc,
      namespace: ns.name,
      name: "kit-test",
      identity: "crashy",
      ...timings,
      logger: createLogger("elector-crashy", "silent"),
      onStartedLeading: async () => {
        throw new Error("controller crashed");
      },
    });
    await elector.run(new AbortController().signal);
    expect(elector.isLeader()).toBe(false);
    const lease = await leases.readNamespacedLease({ name: "kit-test", namespace: ns.name });
    expect(lease.spec?.holderIdentity ?? "").toBe("");
  });

  it("does not start leading work after shutdown during the campaign", async () => {
    await deleteLease();
    const holder = new Candidate(
      kc,
      ns.name,
      "holder",
      { ...timings, leaseDurationMs: 15_000 },
      false,
    ).start();
    await eventually("holder to lead", () => holder.elector.isLeader());
    const waiting = new Candidate(kc, ns.name, "waiting", timings).start();
    await new Promise((r) => setTimeout(r, 500));
    await waiting.halt();
    expect(waiting.spans).toEqual([]);
    await holder.halt();
  });
});
