#!/usr/bin/env bash
# One-time and idempotent set-up: Debian packages, npm dependencies, the native TUN addon, the TypeScript build.
set -euo pipefail
cd "$(dirname "$0")/.."

packages=(iproute2 iputils-ping iperf3 curl dnsutils socat nftables ethtool procps openssl dnsmasq-base redis-server redis-tools)
missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
if [ "${#missing[@]}" -gt 0 ]; then
  if [ "$(id -u)" -ne 0 ]; then
    echo "kubetun setup: missing Debian packages: ${missing[*]}; run as root or install them with apt-get." >&2
    exit 1
  fi
  echo "kubetun setup: installing ${missing[*]}"
  apt-get update -qq
  # Packages such as redis-server start a host service on install: a policy-rc.d that answers 101 forbids it
  # (the sandbox runs its own servers in namespaces). Ours is removed afterwards; one already there is kept.
  policy=/usr/sbin/policy-rc.d
  created_policy=0
  if [ ! -e "$policy" ]; then
    printf '#!/bin/sh\nexit 101\n' >"$policy"
    chmod 755 "$policy"
    created_policy=1
    trap 'rm -f /usr/sbin/policy-rc.d' EXIT
  fi
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
  if [ "$created_policy" -eq 1 ]; then
    rm -f "$policy"
    trap - EXIT
  fi
  # Nor should it start at the next boot.
  if [[ " ${missing[*]} " == *" redis-server "* ]] && command -v systemctl >/dev/null; then
    systemctl disable redis-server.service >/dev/null 2>&1 || true
  fi
fi

if [ ! -d node_modules ] || [ package-lock.json -nt node_modules/.package-lock.json ]; then
  npm ci --no-audit --no-fund
fi

bash scripts/build.sh
