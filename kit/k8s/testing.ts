/**
 * Helpers for the kit's own tests against a real API server: polling for a
 * state to converge, and a throwaway namespace that is always deleted.
 */
import { setTimeout as sleep } from "node:timers/promises";
import { CoreV1Api, type KubeConfig } from "@kubernetes/client-node";

/** Polls `check` until it returns a value other than undefined/false; fails with `what` on timeout. */
export async function eventually<T>(
  what: string,
  check: () => T | undefined | false | Promise<T | undefined | false>,
  timeoutMs = 15_000,
): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  let last: unknown;
  for (;;) {
    try {
      const value = await check();
      if (value !== undefined && value !== false) return value;
      last = undefined;
    } catch (err) {
      last = err;
    }
    if (Date.now() > deadline) {
      throw new Error(
        `timed out after ${timeoutMs} ms waiting for ${what}${last ? `: ${String(last)}` : ""}`,
      );
    }
    await sleep(50);
  }
}

/** Creates a uniquely named namespace; the returned `delete` removes it. */
export async function testNamespace(
  kc: KubeConfig,
  prefix: string,
): Promise<{ name: string; delete: () => Promise<void> }> {
  const core = kc.makeApiClient(CoreV1Api);
  const name = `${prefix}-${process.pid}-${Math.random().toString(36).slice(2, 8)}`;
  await core.createNamespace({ body: { metadata: { name } } });
  return {
    name,
    delete: async () => {
      await core.deleteNamespace({ name }).catch((err: { code?: number }) => {
        if (err.code !== 404) throw err;
      });
    },
  };
}
