/**
 * Leader election on a `coordination.k8s.io/v1` Lease, with client-go's rules.
 *
 * Why two candidates never both lead:
 * - Every write is a compare-and-swap (replace with the resourceVersion we
 *   read), so only one candidate can take or renew the Lease per version.
 * - A candidate judges the holder's Lease expired by its *own* clock: it notes
 *   when it last saw the Lease change (a new resourceVersion) and waits a full
 *   `leaseDuration` after that. No clock is compared across machines.
 * - The leader gives up leading when it has not renewed for `renewDeadline`
 *   (< `leaseDuration`), on a timer, even if a renew request is still hanging.
 *   So it has stopped before anyone else may conclude its Lease has expired.
 *
 * On shutdown the leader first lets its leading work wind down, then releases
 * the Lease (holder cleared, again compare-and-swap) so a standby takes over at
 * its next retry instead of waiting out the lease.
 */
import { setTimeout as sleep } from "node:timers/promises";
import { CoordinationV1Api, type KubeConfig, type V1Lease, V1MicroTime } from "@kubernetes/client-node";
import { Gauge, type Registry } from "prom-client";
import { describeError, InvalidInputError } from "../errors.ts";
import { createLogger, type Logger } from "../log.ts";
import { statusOf } from "./api-status.ts";

export interface LeaderElectionOptions {
  kubeConfig: KubeConfig;
  namespace: string;
  /** The Lease's name, one per elected component, e.g. "skein-operator". */
  name: string;
  /** Unique per candidate; the pod name is the usual choice. */
  identity: string;
  /** How long a Lease holds without renewal; default 15 s. Whole seconds (the Lease stores seconds). */
  leaseDurationMs?: number;
  /** The leader steps down when it could not renew for this long; default 10 s. */
  renewDeadlineMs?: number;
  /** Pause between attempts; default 2 s. */
  retryPeriodMs?: number;
  /**
   * Runs while this candidate leads. `signal` aborts when leadership ends (lost,
   * or shutdown); the returned promise should settle once the work has wound
   * down, because the Lease is released only after that.
   */
  onStartedLeading: (signal: AbortSignal) => void | Promise<void>;
  onStoppedLeading?: () => void;
  /** Called when the observed holder changes (including to this candidate). */
  onNewLeader?: (identity: string) => void;
  /** Clear the holder when leadership ends so others need not wait; default true. */
  releaseOnStop?: boolean;
  logger?: Logger;
  /** Registers client-go's `leader_election_master_status{name}` gauge. */
  registry?: Registry;
}

const JITTER_FACTOR = 1.2;

/** The timings checked the way client-go checks them; throws with what to change. */
export function leaderElectionTimings(options: {
  leaseDurationMs?: number;
  renewDeadlineMs?: number;
  retryPeriodMs?: number;
}): { leaseDurationMs: number; renewDeadlineMs: number; retryPeriodMs: number } {
  const leaseDurationMs = options.leaseDurationMs ?? 15_000;
  const renewDeadlineMs = options.renewDeadlineMs ?? 10_000;
  const retryPeriodMs = options.retryPeriodMs ?? 2_000;
  if (!(leaseDurationMs >= 1000 && leaseDurationMs % 1000 === 0)) {
    throw new InvalidInputError(`leaseDuration ${leaseDurationMs} ms must be whole seconds, at least 1 s`);
  }
  if (!(retryPeriodMs > 0)) throw new InvalidInputError(`retryPeriod ${retryPeriodMs} ms must be positive`);
  if (!(leaseDurationMs > renewDeadlineMs)) {
    throw new InvalidInputError(
      `leaseDuration (${leaseDurationMs} ms) must be greater than renewDeadline (${renewDeadlineMs} ms), or a new leader could start before the old one steps down`,
    );
  }
  if (!(renewDeadlineMs > JITTER_FACTOR * retryPeriodMs)) {
    throw new InvalidInputError(
      `renewDeadline (${renewDeadlineMs} ms) must be greater than ${JITTER_FACTOR} × retryPeriod (${retryPeriodMs} ms) so a leader gets more than one try to renew`,
    );
  }
  return { leaseDurationMs, renewDeadlineMs, retryPeriodMs };
}

interface Observed {
  holder: string;
  resourceVersion: string;
  leaseDurationSeconds: number;
  /** When this version was first seen, on the local monotonic clock (immune to wall-clock steps). */
  at: number;
}

export class LeaderElector {
  private readonly api: CoordinationV1Api;
  private readonly log: Logger;
  private readonly timings: ReturnType<typeof leaderElectionTimings>;
  private readonly masterStatus: Gauge | undefined;
  private observed: Observed | undefined;
  private leading = false;

  constructor(private readonly options: LeaderElectionOptions) {
    this.timings = leaderElectionTimings(options);
    if (!options.identity)
      throw new InvalidInputError("leader election needs a non-empty identity (the pod name)");
    this.api = options.kubeConfig.makeApiClient(CoordinationV1Api);
    this.log = (options.logger ?? createLogger("leader-election")).child({
      lease: `${options.namespace}/${options.name}`,
      identity: options.identity,
    });
    if (options.registry) {
      const existing = options.registry.getSingleMetric("leader_election_master_status");
      this.masterStatus =
        (existing as Gauge | undefined) ??
        new Gauge({
          name: "leader_election_master_status",
          help: "Gauge of if the reporting system is master of the relevant lease, 0 indicates backup, 1 indicates master. 'name' is the string used to identify the lease.",
          labelNames: ["name"],
          registers: [options.registry],
        });
      this.masterStatus.set({ name: options.name }, 0);
    }
  }

  isLeader(): boolean {
    return this.leading;
  }

  /** The holder last seen on the Lease ("" when none). */
  observedLeader(): string | undefined {
    return this.observed?.holder;
  }

  /**
   * Campaigns until leading, leads until leadership is lost or `signal`
   * aborts, then (after the leading work settles) releases the Lease.
   * Resolves when all that is done; it never rejects. After a lost leadership
   * the caller should exit (as controller-runtime does) or campaign again.
   */
  async run(signal: AbortSignal): Promise<void> {
    const { retryPeriodMs, renewDeadlineMs } = this.timings;
    let attemptStart = performance.now();
    while (!signal.aborted && !(await this.tryAcquireOrRenew())) {
      await pause(retryPeriodMs * (1 + Math.random() * JITTER_FACTOR), signal);
      attemptStart = performance.now();
    }
    if (signal.aborted) return;

    const leadership = new AbortController();
    const stepDown = () => leadership.abort();
    // The deadline counts from when the successful write was *sent*: others
    // count their lease duration from no earlier than that, however slow the
    // response was.
    const armDeadline = (sentAt: number) =>
      setTimeout(stepDown, sentAt + renewDeadlineMs - performance.now());
    let deadline = armDeadline(attemptStart);
    const onShutdown = () => leadership.abort();
    signal.addEventListener("abort", onShutdown, { once: true });
    this.setLeading(true);
    this.log.info("became leader");
    // Leading work that ends on its own (done, or failed) is no reason to
    // keep the Lease: step down so a healthy replica can take over.
    let workEnded = false;
    const work = Promise.resolve()
      .then(() => this.options.onStartedLeading(leadership.signal))
      .then(
        () => {
          if (!leadership.signal.aborted) this.log.warn("leading work ended by itself; stepping down");
        },
        (err: unknown) => this.log.error({ err: describeError(err) }, "leading work failed; stepping down"),
      )
      .finally(() => {
        workEnded = true;
        stepDown();
      });

    while (!leadership.signal.aborted) {
      await pause(retryPeriodMs, leadership.signal);
      if (leadership.signal.aborted) break;
      const sentAt = performance.now();
      const renewed = await this.tryAcquireOrRenew();
      // The deadline may have passed while the request was in flight: once
      // stepped down, a late success must not resume leading.
      if (leadership.signal.aborted) break;
      if (renewed) {
        clearTimeout(deadline);
        deadline = armDeadline(sentAt);
      }
    }
    clearTimeout(deadline);
    signal.removeEventListener("abort", onShutdown);
    this.setLeading(false);
    if (signal.aborted) this.log.info("stepping down: shutting down");
    else if (!workEnded)
      this.log.warn({ renewDeadlineMs }, "lost leadership: could not renew the lease in time");
    await work;
    try {
      this.options.onStoppedLeading?.();
    } catch (err) {
      this.log.error({ err: describeError(err) }, "onStoppedLeading threw");
    }
    if (this.options.releaseOnStop ?? true) await this.release();
  }

  private setLeading(value: boolean): void {
    this.leading = value;
    this.masterStatus?.set({ name: this.options.name }, value ? 1 : 0);
  }

  /** One client-go `tryAcquireOrRenew` round; false on any failure (logged), never throws. */
  private async tryAcquireOrRenew(): Promise<boolean> {
    const { namespace, name, identity } = this.options;
    const leaseDurationSeconds = this.timings.leaseDurationMs / 1000;
    const now = new V1MicroTime(Date.now());
    let lease: V1Lease;
    try {
      lease = await this.api.readNamespacedLease({ name, namespace });
    } catch (err) {
      if (statusOf(err) !== 404) {
        this.log.warn({ err: describeError(err) }, "cannot read the lease");
        return false;
      }
      try {
        const created = await this.api.createNamespacedLease({
          namespace,
          body: {
            metadata: { name, namespace },
            spec: {
              holderIdentity: identity,
              leaseDurationSeconds,
              acquireTime: now,
              renewTime: now,
              leaseTransitions: 0,
            },
          },
        });
        this.observe(created);
        return true;
      } catch (createErr) {
        if (statusOf(createErr) !== 409)
          this.log.warn({ err: describeError(createErr) }, "cannot create the lease");
        return false;
      }
    }

    this.observe(lease);
    const spec = lease.spec ?? {};
    const holder = spec.holderIdentity ?? "";
    if (holder && holder !== identity && !this.observedExpired()) return false;

    const taking = holder !== identity;
    const body: V1Lease = {
      ...lease,
      spec: {
        ...spec,
        holderIdentity: identity,
        leaseDurationSeconds,
        renewTime: now,
        acquireTime: taking ? now : (spec.acquireTime ?? now),
        leaseTransitions: (spec.leaseTransitions ?? 0) + (taking && holder ? 1 : 0),
      },
    };
    try {
      this.observe(await this.api.replaceNamespacedLease({ name, namespace, body }));
      return true;
    } catch (err) {
      // 409: someone else wrote first; we will read their version next round.
      if (statusOf(err) !== 409) this.log.warn({ err: describeError(err) }, "cannot update the lease");
      return false;
    }
  }

  private observe(lease: V1Lease): void {
    const resourceVersion = lease.metadata?.resourceVersion ?? "";
    if (this.observed?.resourceVersion === resourceVersion) return;
    const holder = lease.spec?.holderIdentity ?? "";
    if (holder !== (this.observed?.holder ?? "")) {
      if (holder) this.log.info({ leader: holder }, "new leader observed");
      if (holder) this.options.onNewLeader?.(holder);
    }
    this.observed = {
      holder,
      resourceVersion,
      leaseDurationSeconds: lease.spec?.leaseDurationSeconds ?? this.timings.leaseDurationMs / 1000,
      at: performance.now(),
    };
  }

  private observedExpired(): boolean {
    if (!this.observed) return true;
    return this.observed.at + this.observed.leaseDurationSeconds * 1000 <= performance.now();
  }

  /** Clears the holder if the Lease is still ours at the version we last saw. */
  private async release(): Promise<void> {
    const { namespace, name, identity } = this.options;
    try {
      const lease = await this.api.readNamespacedLease({ name, namespace });
      if (lease.spec?.holderIdentity !== identity) return;
      const now = new V1MicroTime(Date.now());
      await this.api.replaceNamespacedLease({
        name,
        namespace,
        body: {
          ...lease,
          spec: {
            ...lease.spec,
            holderIdentity: undefined,
            leaseDurationSeconds: 1,
            renewTime: now,
            acquireTime: now,
          },
        },
      });
      this.log.info("released the lease");
    } catch (err) {
      this.log.warn(
        { err: describeError(err) },
        "could not release the lease; others take over when it expires",
      );
    }
  }
}

function pause(ms: number, signal: AbortSignal): Promise<void> {
  return sleep(ms, undefined, { signal }).catch(() => undefined);
}
