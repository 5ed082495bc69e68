#!/usr/bin/env bash
# npm run fuzz: the fuzz tests with 10^7 inputs per parser and a random seed (printed by each test, so a failure
# can be replayed with FUZZ_SEED, or one input with FUZZ_INPUT_HEX). npm test runs the same tests with 10^6 inputs
# and a fixed seed. FUZZ_INPUTS and FUZZ_SEED given by the caller are kept.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/build.sh
export FUZZ_INPUTS="${FUZZ_INPUTS:-10000000}"
export FUZZ_SEED="${FUZZ_SEED:-$(od -An -N4 -tu4 /dev/urandom | tr -d ' ')}"
echo "kubetun fuzz: FUZZ_SEED=$FUZZ_SEED FUZZ_INPUTS=$FUZZ_INPUTS"
mapfile -t files < <(find dist/test/fuzz -name '*.test.js' | sort)
exec node --test "${files[@]}"
