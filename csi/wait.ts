/**
 * Waiting for an object in an informer's cache to reach a state (a Volume
 * Ready, a Snapshot gone), driven by the informer's own events, so what a CSI
 * call returns after waiting is also what the next List reads from the cache.
 * And the per-object operation locks the CSI spec asks for (ABORTED when a
 * second call for the same volume arrives while one is in flight).
 */
import type { KubernetesObject } from "@kubernetes/client-node";
import type { Informer } from "../kit/k8s/informer.ts";
import { CsiError } from "./grpc/status.ts";

/** What a check says: keep waiting (undefined), or done with a value. */
export type Check<T, R> = (obj: T | undefined) => R | undefined;

export class ObjectWaiter<T extends KubernetesObject> {
  private readonly waiters = new Map<string, Set<() => void>>();

  constructor(private readonly informer: Informer<T>) {
    const wake = (obj: T) => {
      for (const w of this.waiters.get(obj.metadata?.name ?? "") ?? []) w();
    };
    informer.on({ add: wake, update: (_, obj) => wake(obj), delete: wake });
  }

  /** Resolves with `check`'s first defined answer; DEADLINE_EXCEEDED after `timeoutMs` or when `signal` aborts. */
  wait<R>(
    name: string,
    check: Check<T, R>,
    options: { timeoutMs: number; signal?: AbortSignal; what: string },
  ): Promise<R> {
    return new Promise<R>((resolve, reject) => {
      let set = this.waiters.get(name);
      if (!set) {
        set = new Set();
        this.waiters.set(name, set);
      }
      const waiters = set;
      const finish = () => {
        clearTimeout(timer);
        options.signal?.removeEventListener("abort", onAbort);
        waiters.delete(evaluate);
        if (waiters.size === 0) this.waiters.delete(name);
      };
      const evaluate = () => {
        let answer: R | undefined;
        try {
          answer = check(this.informer.get(name));
        } catch (err) {
          finish();
          reject(err);
          return;
        }
        if (answer !== undefined) {
          finish();
          resolve(answer);
        }
      };
      const timeout = () => {
        finish();
        reject(
          new CsiError("DEADLINE_EXCEEDED", `timed out waiting for ${options.what}; the call can be retried`),
        );
      };
      const onAbort = () => {
        finish();
        reject(new CsiError("CANCELLED", `gave up waiting for ${options.what}: the caller cancelled`));
      };
      const timer = setTimeout(timeout, options.timeoutMs);
      options.signal?.addEventListener("abort", onAbort, { once: true });
      waiters.add(evaluate);
      evaluate();
    });
  }
}

/** One operation per key at a time; a second concurrent one is ABORTED, as the CSI spec says. */
export class OperationLocks {
  private readonly held = new Set<string>();

  async run<R>(keys: readonly string[], what: string, fn: () => Promise<R>): Promise<R> {
    const busy = keys.find((k) => this.held.has(k));
    if (busy !== undefined) {
      throw new CsiError(
        "ABORTED",
        `an operation on ${busy} is already in progress; retry after it finishes (${what})`,
      );
    }
    for (const k of keys) this.held.add(k);
    try {
      return await fn();
    } finally {
      for (const k of keys) this.held.delete(k);
    }
  }
}
