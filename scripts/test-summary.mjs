// Prints the test run's closing lines from the summary test/summary-reporter.ts
// wrote: what failed (each failure with the first lines of its error, hooks
// included), then "tests: N passed, N failed, N skipped", where "failed" also
// counts errors outside any test (a failed hook, an unhandled error). CI keeps
// only the tail of a run's output, so the failures are restated here, last.
//
// Usage: node scripts/test-summary.mjs SUMMARY.json   (exit 1 when no test ran)

import { readFileSync } from "node:fs";

const MAX_LISTED = 20;
const MAX_LINES = 4;

// biome-ignore lint/suspicious/noControlCharactersInRegex: ANSI colour codes in error messages
const ANSI = /\u001b\[[0-9;]*m/g;

function firstLines(text) {
  return text
    .replace(ANSI, "")
    .split("\n")
    .map((line) => line.trimEnd())
    .filter(Boolean)
    .slice(0, MAX_LINES)
    .map((line) => `      ${line.slice(0, 300)}`)
    .join("\n");
}

let summary;
try {
  summary = JSON.parse(readFileSync(process.argv[2], "utf8"));
} catch (err) {
  console.error(`test: vitest wrote no summary (${err.message}); it failed before running tests`);
  process.exit(1);
}
const { passed, skipped, failures } = summary;
const failed = failures.length;
if (failures.length > 0) {
  console.log(`\ntest: what failed (${failures.length})`);
  for (const f of failures.slice(0, MAX_LISTED)) console.log(`  ✗ ${f.what}\n${firstLines(f.error)}`);
  if (failures.length > MAX_LISTED) console.log(`  … and ${failures.length - MAX_LISTED} more`);
}
console.log(`tests: ${passed} passed, ${failed} failed, ${skipped} skipped`);
if (passed + failed + skipped === 0) {
  console.error("test: no test ran");
  process.exit(1);
}
