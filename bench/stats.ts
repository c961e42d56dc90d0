/** Summaries for benchmark samples: machines are noisy, so report medians and tails, never one run. */

export function percentile(samples: readonly number[], p: number): number {
  if (samples.length === 0) throw new Error("no samples");
  const sorted = [...samples].sort((a, b) => a - b);
  const rank = Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1));
  return sorted[rank]!;
}

export function median(samples: readonly number[]): number {
  if (samples.length === 0) throw new Error("no samples");
  const sorted = [...samples].sort((a, b) => a - b);
  const mid = Math.floor(sorted.length / 2);
  return sorted.length % 2 ? sorted[mid]! : (sorted[mid - 1]! + sorted[mid]!) / 2;
}

function format(value: number): string {
  return Number.isInteger(value) ? String(value) : value.toPrecision(4);
}

/** A ratio line, the benchmark's verdict against its yardstick. */
export function ratio(metric: string, value: number): void {
  console.log(`RATIO ${metric} ${format(value)}`);
}

/** An absolute measurement. */
export function result(metric: string, value: number): void {
  console.log(`RESULT ${metric} ${format(value)}`);
}

/** Times `fn` once, in milliseconds. */
export async function timeMs(fn: () => Promise<unknown>): Promise<number> {
  const start = process.hrtime.bigint();
  await fn();
  return Number(process.hrtime.bigint() - start) / 1e6;
}
