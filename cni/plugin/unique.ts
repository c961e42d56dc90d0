/**
 * Random suffixes for temp file names. Web Crypto's global, not `node:crypto`:
 * loading that module costs the plugin milliseconds of start-up on every
 * invocation under Bun, which the compiled plugin runs on.
 */

/** `<pid>.<8 random hex digits>`: unique among concurrent plugin processes. */
export function uniqueSuffix(): string {
  const bytes = crypto.getRandomValues(new Uint8Array(4));
  return `${process.pid}.${Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("")}`;
}
