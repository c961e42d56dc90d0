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

export interface Failure {
  what: string;
  error: string;
}

export interface Summary {
  passed: number;
  failed: number;
  skipped: number;
  failures: Failure[];
}

function describeError(error: SerializedError | undefined): string {
  if (!error) return "(no error recorded)";
  return error.stack || `${error.name ?? "Error"}: ${error.message}`;
}

export default class SummaryReporter implements Reporter {
  onTestRunEnd(modules: ReadonlyArray<TestModule>, unhandled: ReadonlyArray<SerializedError>): void {
    const path = process.env.SKEIN_TEST_SUMMARY;
    if (!path) return;
    const summary: Summary = { passed: 0, failed: 0, skipped: 0, failures: [] };
    for (const module of modules) {
      const file = relative(process.cwd(), module.moduleId);
      // Errors outside any test: collection, or a beforeAll/afterAll of the file or a suite.
      const outside = [
        ...module.errors().map((e) => ({ what: file, error: e })),
        ...[...module.children.allSuites()].flatMap((s) =>
          s.errors().map((e) => ({ what: `${file} > ${s.fullName}`, error: e })),
        ),
      ];
      for (const o of outside) summary.failures.push({ what: o.what, error: describeError(o.error) });
      summary.failed += outside.length;
      for (const test of module.children.allTests()) {
        const result = test.result();
        if (result.state === "passed") summary.passed += 1;
        else if (result.state === "failed") {
          summary.failed += 1;
          summary.failures.push({
            what: `${file} > ${test.fullName}`,
            error: describeError(result.errors[0]),
          });
        } else summary.skipped += 1;
      }
    }
    for (const e of unhandled) {
      summary.failed += 1;
      summary.failures.push({ what: "unhandled error", error: describeError(e) });
    }
    writeFileSync(path, JSON.stringify(summary));
  }
}
