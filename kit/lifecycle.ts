/**
 * Graceful shutdown on SIGTERM/SIGINT, handled once. The first signal aborts
 * the returned `signal`, which a component threads through everything it runs:
 * controllers stop taking work and finish what is in flight, the leader
 * elector then releases its Lease, servers close. A second signal means the
 * operator is impatient (or the drain hangs): `onForce` is called, and the
 * entry point exits at once. Only entry points call process.exit, so this
 * module takes the exit as a callback.
 */
import type { EventEmitter } from "node:events";
import { constants } from "node:os";
import { createLogger, type Logger } from "./log.ts";

export type TerminationSignal = "SIGTERM" | "SIGINT";

export interface TerminationOptions {
  /** Called on the second signal; the entry point exits with `exitCodeFor(signal)`. */
  onForce: (signal: TerminationSignal) => void;
  logger?: Logger;
  /** What emits the signals; tests pass their own emitter. */
  emitter?: Pick<EventEmitter, "on" | "off">;
  signals?: readonly TerminationSignal[];
}

export interface Termination {
  /** Aborts on the first signal; its `reason` names the signal. */
  signal: AbortSignal;
  /** Removes the handlers (after a clean shutdown, so a late signal gets Node's default). */
  dispose(): void;
}

/** The shell's convention for death by signal: 128 + signal number (SIGTERM → 143, SIGINT → 130). */
export function exitCodeFor(signal: TerminationSignal): number {
  return 128 + constants.signals[signal];
}

export function handleTermination(options: TerminationOptions): Termination {
  const emitter = options.emitter ?? process;
  const signals = options.signals ?? ["SIGTERM", "SIGINT"];
  const log = options.logger ?? createLogger("lifecycle");
  const controller = new AbortController();
  const onSignal = (signal: TerminationSignal) => {
    if (!controller.signal.aborted) {
      log.info({ signal }, "shutting down: finishing in-flight work (send the signal again to force)");
      controller.abort(signal);
      return;
    }
    log.warn({ signal }, "second signal: exiting without finishing");
    options.onForce(signal);
  };
  const handlers = signals.map((s) => [s, () => onSignal(s)] as const);
  for (const [s, h] of handlers) emitter.on(s, h);
  return {
    signal: controller.signal,
    dispose: () => {
      for (const [s, h] of handlers) emitter.off(s, h);
    },
  };
}
