#!/usr/bin/env bash
# npm run demo: set-up, then the sandbox cluster (a real Kubernetes API server), `kubetun install` and
# `kubetun connect` in its workstation through that API, and curl/dig/redis-cli reaching the cluster's services
# by name. Exit status 0 only when every step worked; the sandbox (and with it
# everything kubetun changed) is removed at the end whatever happened.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh

kubetun() { node -- dist/src/cli/main.js "$@"; }
in_workstation() { kubetun sandbox exec -- "$@"; }
step() { printf '\n\033[1m$ %s\033[0m\n' "$*"; }

laptop=""
trap '[ -z "$laptop" ] || kill "$laptop" 2>/dev/null; step "kubetun sandbox down"; kubetun sandbox down >/dev/null && echo "sandbox removed"' EXIT

# A client inside the cluster: a process in the redis pod's network namespace (the sandbox's pods are namespaces).
in_pod() { ip netns exec "$(ip netns list | awk '/^kt-pod-redis-/ { print $1; exit }')" "$@"; }
# Who answered: the echo server puts its pod's name (or "laptop") in x-served-by.
served_by() { in_pod curl -sS --max-time 5 -o /dev/null -D - "$@" | tr -d '\r' | awk -F': ' 'tolower($1) == "x-served-by" { print $2 }'; }

step "kubetun sandbox up          (control plane, two nodes, workloads as Deployments; the first run builds Kubernetes)"
kubetun sandbox up | sed -n '1,2p;/^nodes/,/^processes/p' | grep -v '^processes'
step "kubetun install             (in the workstation namespace, with its kubeconfig: the traffic manager through the API)"
in_workstation kubetun install
step "kubetun connect             (the workstation has no route to the cluster: the session goes through the API server's port-forward)"
in_workstation kubetun connect
step "curl http://echo.default"
in_workstation curl -sS --max-time 5 http://echo.default
step "curl http://orders.shop"
in_workstation curl -sS --max-time 5 http://orders.shop
step "dig +short echo.default.svc.cluster.local A and AAAA"
in_workstation dig +short echo.default.svc.cluster.local
in_workstation dig +short AAAA echo.default.svc.cluster.local
step "redis-cli -h redis SET greeting hello; GET greeting"
in_workstation redis-cli -h redis SET greeting hello
in_workstation redis-cli -h redis GET greeting
step "dig +short www.upstream.test   (a name outside the cluster still resolves as before)"
in_workstation dig +short www.upstream.test
step "a server on the laptop: localhost:8080 (the echo server again, calling itself \"laptop\")"
node -- dist/src/cli/main.js sandbox exec -- node dist/src/sandbox/workloads/echo-server.js --pod laptop --port 8080 >/dev/null &
laptop=$!
step "kubetun intercept echo --port 8080   (global: the first intercept rolls echo's pods out with the traffic agent)"
in_workstation kubetun intercept echo --port 8080
step "curl http://echo.default from a pod in the cluster   (answered by the laptop)"
who=$(served_by http://echo.default/); echo "x-served-by: $who"; [ "$who" = laptop ]
step "kubetun leave echo; kubetun intercept echo --port 8080 --http-header x-dev=alice   (personal)"
in_workstation kubetun leave echo
in_workstation kubetun intercept echo --port 8080 --http-header x-dev=alice
step "curl -H 'x-dev: alice' http://echo.default, then without the header   (the laptop, then the pod)"
who=$(served_by -H 'x-dev: alice' http://echo.default/); echo "x-served-by: $who"; [ "$who" = laptop ]
who=$(served_by http://echo.default/); echo "x-served-by: $who"; [ "${who#echo-}" != "$who" ]
step "kubetun status"
in_workstation kubetun status
step "kubetun leave echo"
in_workstation kubetun leave echo
step "kubetun quit"
in_workstation kubetun quit
in_workstation cat /etc/resolv.conf
step "kubetun uninstall"
in_workstation kubetun uninstall
echo
echo "demo: every step worked"
