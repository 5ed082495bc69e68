#!/usr/bin/env bash
# npm test: set-up, typecheck (part of the build), lint, unit tests, end-to-end tests.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
npx eslint .
mapfile -t files < <(find dist/test -name '*.test.js' | sort)
# One file at a time: end-to-end tests create network namespaces and must not race each other.
exec node --test --test-concurrency=1 "${files[@]}"
