/**
 * Exponential backoff, the one retry schedule the kit uses: informers that
 * reconnect, the work queue's per-key rate limiter, leader election retries.
 * Pure: the random source is a parameter so tests can pin it.
 */

export interface BackoffPolicy {
  /** Delay before the first retry. */
  initialMs: number;
  /** No delay is ever longer than this (after jitter). */
  maxMs: number;
  /** Growth per failure; 2 doubles. */
  factor?: number;
  /**
   * Spread as a fraction of the delay, 0..1: the delay is drawn uniformly from
   * [d·(1−jitter), d]. Jitter keeps many clients that failed together (an API
   * server restart) from retrying in lockstep.
   */
  jitter?: number;
}

/** The delay before retry number `failures` (0 = first retry), capped at `maxMs`. */
export function backoffDelay(
  policy: BackoffPolicy,
  failures: number,
  random: () => number = Math.random,
): number {
  const factor = policy.factor ?? 2;
  const jitter = policy.jitter ?? 0;
  if (!(policy.initialMs >= 0 && policy.maxMs >= policy.initialMs)) {
    throw new RangeError(
      `backoff needs 0 <= initialMs <= maxMs, got ${policy.initialMs} and ${policy.maxMs}`,
    );
  }
  if (!(factor >= 1)) throw new RangeError(`backoff factor must be >= 1, got ${factor}`);
  if (!(jitter >= 0 && jitter <= 1))
    throw new RangeError(`backoff jitter must be within 0..1, got ${jitter}`);
  // Exponent clamped so huge failure counts cannot overflow to Infinity·0 = NaN.
  const exponent = Math.min(Math.max(failures, 0), 1024);
  const base = Math.min(policy.initialMs * factor ** exponent, policy.maxMs);
  return base - base * jitter * random();
}

/** A stateful schedule for one retrying activity: `next()` after a failure, `reset()` after a success. */
export class Backoff {
  private failures = 0;

  constructor(
    private readonly policy: BackoffPolicy,
    private readonly random: () => number = Math.random,
  ) {
    backoffDelay(policy, 0, random);
  }

  next(): number {
    return backoffDelay(this.policy, this.failures++, this.random);
  }

  reset(): void {
    this.failures = 0;
  }

  get attempts(): number {
    return this.failures;
  }
}
