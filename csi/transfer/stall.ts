/**
 * Stall detection for a transfer stream. A link that is cut mid-stream drops
 * packets without a reset, so neither end hears of it until TCP gives up,
 * some fifteen minutes later; meanwhile the sender's `zfs send` blocks with its
 * snapshots held and the dataset busy, and the receiver's worker waits. Each
 * end therefore watches its own stream move and aborts it when no byte has
 * passed for a while; the caller retries from the newest common snapshot.
 */

/** No byte for this long and the stream is given up. zfs-fuse can pause a send or receive for seconds under load. */
export const STALL_TIMEOUT_MS = 30_000;

export interface StallWatch {
  /** Bytes moved: the stream is alive. */
  progress(): void;
  stop(): void;
}

/** Calls `onStall` once, when `progress` has not been called for `timeoutMs`. */
export function watchForStall(timeoutMs: number, onStall: (error: Error) => void): StallWatch {
  let last = Date.now();
  const timer = setInterval(
    () => {
      if (Date.now() - last < timeoutMs) return;
      clearInterval(timer);
      onStall(
        new Error(
          `no byte moved for ${Math.round(timeoutMs / 1000)} s: the peer or the link between the nodes stalled`,
        ),
      );
    },
    Math.min(1_000, timeoutMs / 4),
  );
  timer.unref();
  return {
    progress: () => {
      last = Date.now();
    },
    stop: () => clearInterval(timer),
  };
}
