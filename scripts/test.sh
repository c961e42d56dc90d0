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

summary=$(mktemp)
trap 'rm -f "$summary"' EXIT
status=0
SKEIN_TEST_SUMMARY="$summary" npx vitest run --reporter=default --reporter=./test/summary-reporter.ts "$@" || status=$?
node scripts/test-summary.mjs "$summary" || status=1
exit $status
