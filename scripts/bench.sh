#!/usr/bin/env bash
# npm run bench: set-up, then the stack, tunnel and intercept benchmarks (root; each works inside namespaces it
# creates and removes). Each prints a table and merges its rows into bench/results/latest.json.
# npm run bench -- --wan (or npm run bench:wan): the WAN bench instead, over an emulated link; bench/results/wan.json.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
if [[ "${1:-}" == "--wan" ]]; then
  node dist/bench/wan-bench.js
  exit 0
fi
if [[ $# -gt 0 ]]; then
  echo "kubetun bench: unknown argument $1 (the only one is --wan)" >&2
  exit 2
fi
node --expose-gc dist/bench/stack-bench.js
node dist/bench/tunnel-bench.js
node dist/bench/intercept-bench.js
