#!/usr/bin/env bash
# Builds the native TUN addon (offline, against the installed Node headers) and compiles the TypeScript.
set -euo pipefail
cd "$(dirname "$0")/.."
nodedir=/usr
[ -f "$nodedir/include/node/node_api.h" ] || nodedir="$(dirname "$(dirname "$(command -v node)")")"
if [ ! -f build/Release/kubetun_tun.node ] || [ -n "$(find native binding.gyp -newer build/Release/kubetun_tun.node 2>/dev/null)" ]; then
  npx node-gyp rebuild --nodedir="$nodedir" --loglevel=warn
fi
rm -rf dist
npx tsc -p tsconfig.json
