#!/usr/bin/env bash
# npm run bench: set-up, then the stack, tunnel and intercept benchmarks (root; each works inside namespaces it
# creates and removes). Each prints a table and merges its rows into bench/results/latest.json.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
node --expose-gc dist/bench/stack-bench.js
node dist/bench/tunnel-bench.js
node dist/bench/intercept-bench.js
