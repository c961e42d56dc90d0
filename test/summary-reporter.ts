/**
 * A vitest reporter that writes what the run's closing lines need to a JSON
 * file (the path in SKEIN_TEST_SUMMARY): the counts, and every failure with
 * its first error, hooks included. vitest's own JSON report drops hook errors
 * (a failed beforeAll shows only as skipped tests), and CI keeps only the tail
 * of a run's output, so scripts/test-summary.mjs restates them last from here.
 */
import { writeFileSync } from "node:fs";
import { relative } from "node:path";
import type { Reporter, SerializedError, TestModule } from "vitest/node";

/** What scripts/test-summary.mjs reads; a run's failed count is the number of failures. */
interface Summary {
  passed: number;
  skipped: number;
  /** Failed tests, and errors outside any test (collection, beforeAll/afterAll, unhandled). */
  failures: { what: string; error: string }[];
}

function describeError(error: SerializedError | undefined): string {
  if (!error) return "(no error recorded)";
  return error.stack || `${error.name ?? "Error"}: ${error.message}`;
}

export default class SummaryReporter implements Reporter {
  onTestRunEnd(modules: ReadonlyArray<TestModule>, unhandled: ReadonlyArray<SerializedError>): void {
    const path = process.env.SKEIN_TEST_SUMMARY;
    if (!path) return;
    const summary: Summary = { passed: 0, skipped: 0, failures: [] };
    const fail = (what: string, error: SerializedError | undefined) =>
      summary.failures.push({ what, error: describeError(error) });
    for (const module of modules) {
      const file = relative(process.cwd(), module.moduleId);
      for (const e of module.errors()) fail(file, e);
      for (const suite of module.children.allSuites())
        for (const e of suite.errors()) fail(`${file} > ${suite.fullName}`, e);
      for (const test of module.children.allTests()) {
        const result = test.result();
        if (result.state === "passed") summary.passed += 1;
        else if (result.state === "failed") fail(`${file} > ${test.fullName}`, result.errors[0]);
        else summary.skipped += 1;
      }
    }
    for (const e of unhandled) fail("unhandled error", e);
    writeFileSync(path, JSON.stringify(summary));
  }
}
