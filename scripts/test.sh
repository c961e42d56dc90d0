#!/usr/bin/env bash
# The whole test suite, as CI runs it: set up what is missing, lint, typecheck,
# build, then every test against the real parts. Ends with one plain line
# "tests: N passed, N failed, N skipped".
set -euo pipefail
cd "$(dirname "$0")/.."

bash scripts/setup.sh
echo "test: lint and format check"; npx biome check .
echo "test: typecheck"; npx tsc --noEmit
echo "test: build"; npm run --silent build

report=$(mktemp)
trap 'rm -f "$report"' EXIT
status=0
npx vitest run --reporter=default --reporter=json --outputFile.json="$report" "$@" || status=$?
node -e '
  const r = JSON.parse(require("fs").readFileSync(process.argv[1], "utf8"));
  const skipped = r.numPendingTests + r.numTodoTests;
  console.log(`tests: ${r.numPassedTests} passed, ${r.numFailedTests} failed, ${skipped} skipped`);
  if (r.numTotalTests === 0) { console.error("test: no test ran"); process.exit(1); }
' "$report" || status=1
exit $status
