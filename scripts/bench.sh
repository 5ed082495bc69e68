#!/usr/bin/env bash
# npm run bench: set-up, then the stack benchmark and the tunnel benchmark (root; each works inside namespaces
# it creates and removes). Both print a table and write bench/results/latest.json.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
node --expose-gc dist/bench/stack-bench.js
node dist/bench/tunnel-bench.js
