#!/usr/bin/env bash
# npm run bench: set-up, then the stack benchmark (root; works inside its own network namespace).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
exec node --expose-gc dist/bench/stack-bench.js
