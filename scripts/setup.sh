#!/usr/bin/env bash
# One-time and idempotent set-up: Debian packages, npm dependencies, the native TUN addon, the TypeScript build.
set -euo pipefail
cd "$(dirname "$0")/.."

# sudo: the tests run kubetun as unprivileged accounts, which start the root daemon through it.
# etcd-server: the sandbox control plane's store (like redis-server, its host service is kept from starting).
packages=(iproute2 iputils-ping sudo iperf3 curl dnsutils socat nftables ethtool procps openssl dnsmasq-base redis-server redis-tools etcd-server util-linux python3 wrk tcpdump)
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
  # Nor should they start at the next boot.
  if command -v systemctl >/dev/null; then
    # package:service
    for pair in redis-server:redis-server etcd-server:etcd; do
      if [[ " ${missing[*]} " == *" ${pair%%:*} "* ]]; then systemctl disable "${pair##*:}.service" >/dev/null 2>&1 || true; fi
    done
  fi
fi

# The sandbox's Kubernetes control plane: built once from Debian's source (5-10 minutes), then cached.
if [ "$(id -u)" -eq 0 ]; then
  bash scripts/build-kubernetes.sh >/dev/null
else
  echo "kubetun setup: not root, so the sandbox's Kubernetes binaries are not built (scripts/build-kubernetes.sh); its tests will skip." >&2
fi

if [ ! -d node_modules ] || [ package-lock.json -nt node_modules/.package-lock.json ]; then
  npm ci --no-audit --no-fund
fi

bash scripts/build.sh
