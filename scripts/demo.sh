#!/usr/bin/env bash
# npm run demo: set-up, then the demo. Exit status 0 only when every step worked.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
exec node dist/src/cli/main.js demo
