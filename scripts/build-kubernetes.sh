#!/usr/bin/env bash
# Builds kube-apiserver, kube-controller-manager and kube-scheduler from Debian's kubernetes source package and
# caches them outside the checkout, keyed by version. Idempotent: with the cache present it prints the path and
# returns at once. Prints the cache's bin folder on stdout (and nothing else there); progress goes to stderr.
#
#   KUBETUN_KUBE_CACHE   cache root          (default /var/cache/kubetun)
#   KUBETUN_KUBE_WORK    build folder        (default $KUBETUN_KUBE_CACHE/build)
#   KUBETUN_KUBE_BUDGET  time limit, seconds (default 1200)
set -euo pipefail

readonly VERSION=v1.20.2
readonly CACHE_ROOT=${KUBETUN_KUBE_CACHE:-/var/cache/kubetun}
readonly WORK=${KUBETUN_KUBE_WORK:-$CACHE_ROOT/build}
readonly BUDGET=${KUBETUN_KUBE_BUDGET:-1200}
readonly BIN_DIR=$CACHE_ROOT/kubernetes-$VERSION/bin
readonly BINARIES=(kube-apiserver kube-controller-manager kube-scheduler)
readonly LOGS=$WORK/logs
# etcd-server: Debian's etcd 3.4, which this API server version works with.
readonly PACKAGES=(golang-go rsync etcd-server dpkg-dev golang-github-modern-go-reflect2-dev openssl)
readonly REFLECT2_SRC=/usr/share/gocode/src/github.com/modern-go/reflect2

say() { echo "build-kubernetes: $*" >&2; }
fail() { say "FAILED: $*"; exit 1; }

cached() {
  local b
  for b in "${BINARIES[@]}"; do [ -x "$BIN_DIR/$b" ] || return 1; done
}

if cached; then
  echo "$BIN_DIR"
  exit 0
fi

# The whole build runs under `timeout` (which signals its whole process group, so make and go stop too).
if [ -z "${KUBETUN_KUBE_BOUNDED:-}" ]; then
  set +e
  KUBETUN_KUBE_BOUNDED=1 timeout --kill-after=30 "$BUDGET" bash "$0" "$@"
  rc=$?
  set -e
  if [ "$rc" -eq 124 ] || [ "$rc" -eq 137 ]; then
    fail "the build took longer than ${BUDGET}s and was stopped; logs are in $LOGS (raise KUBETUN_KUBE_BUDGET to allow more)"
  fi
  exit "$rc"
fi

[ "$(id -u)" -eq 0 ] || fail "must run as root: it installs Debian packages and writes $CACHE_ROOT"
mkdir -p "$WORK" "$LOGS"

# One build at a time; a second caller waits, then finds the cache.
exec 9>"$WORK/.lock"
flock 9
if cached; then
  echo "$BIN_DIR"
  exit 0
fi

# step NAME COMMAND…: runs a step with its output in $LOGS/NAME.log and says which step failed.
step() {
  local name=$1
  shift
  say "$name… (log: $LOGS/$name.log)"
  if ! "$@" >"$LOGS/$name.log" 2>&1; then
    tail -n 20 "$LOGS/$name.log" >&2 || true
    fail "step '$name' failed; see $LOGS/$name.log"
  fi
}

installed() { dpkg-query -W -f='${Status}' "$1" 2>/dev/null | grep -q 'install ok installed'; }

# A deb-src entry for the suites the existing deb entries use (Debian's deb822 .sources or one-line .list).
has_deb_src() {
  local files=() f
  for f in /etc/apt/sources.list /etc/apt/sources.list.d/*.list /etc/apt/sources.list.d/*.sources; do
    [ -f "$f" ] && files+=("$f")
  done
  [ "${#files[@]}" -gt 0 ] && grep -qE '^\s*(deb-src\s|Types:.*deb-src)' "${files[@]}"
}

add_deb_src() {
  local suite keyring=/usr/share/keyrings/debian-archive-keyring.gpg signed_by=''
  suite=$(sed -n 's/^VERSION_CODENAME=//p' /etc/os-release | tr -d '"')
  [ -n "$suite" ] || return 1
  # apt refuses two entries for one URI and suite with different Signed-By values: use Debian's own keyring.
  [ -f "$keyring" ] && signed_by="Signed-By: $keyring"
  cat >/etc/apt/sources.list.d/kubetun-src.sources <<EOF
# Added by kubetun's scripts/build-kubernetes.sh: source packages, for apt-get source kubernetes.
Types: deb-src
URIs: http://deb.debian.org/debian
Suites: $suite
Components: main
$signed_by
EOF
}

apt_updated=0
apt_update_once() {
  if [ "$apt_updated" -eq 0 ]; then
    step apt-update apt-get update
    apt_updated=1
  fi
}

if ! has_deb_src; then
  add_deb_src || fail "cannot tell the Debian suite from /etc/os-release to add a deb-src entry"
  apt_updated=0
  apt_update_once
fi

missing=()
for p in "${PACKAGES[@]}"; do installed "$p" || missing+=("$p"); done
if [ "${#missing[@]}" -gt 0 ]; then
  apt_update_once
  # etcd-server would start a host etcd on install: policy-rc.d answering 101 forbids it (ours runs in a namespace).
  policy=/usr/sbin/policy-rc.d
  if [ ! -e "$policy" ]; then
    printf '#!/bin/sh\nexit 101\n' >"$policy"
    chmod 755 "$policy"
    trap 'rm -f /usr/sbin/policy-rc.d' EXIT
  fi
  step apt-install env DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends "${missing[@]}"
  if [[ " ${missing[*]} " == *" etcd-server "* ]] && command -v systemctl >/dev/null; then
    systemctl disable etcd.service >/dev/null 2>&1 || true
  fi
fi

# The source, unpacked once (Debian's patches applied by dpkg-source).
src=$(find "$WORK/source" -maxdepth 1 -type d -name 'kubernetes-*' 2>/dev/null | head -n 1 || true)
if [ -z "$src" ] || [ ! -f "$src/.kubetun-unpacked" ]; then
  rm -rf "$WORK/source"
  mkdir -p "$WORK/source"
  apt_update_once
  step apt-source bash -c "cd '$WORK/source' && apt-get source kubernetes"
  src=$(find "$WORK/source" -maxdepth 1 -type d -name 'kubernetes-*' | head -n 1)
  [ -n "$src" ] || fail "apt-get source kubernetes unpacked no kubernetes-* folder; see $LOGS/apt-source.log"
  # The upstream version must be the one the cache is named after.
  grep -q '1\.20\.2' "$src/debian/changelog" ||
    fail "Debian's kubernetes source is not $VERSION (see $src/debian/changelog); update VERSION in this script"
  # The vendored reflect2 1.0.1 panics under Go ≥ 1.18 when decoding JSON; Debian's packaged one does not.
  [ -d "$REFLECT2_SRC" ] || fail "$REFLECT2_SRC is missing (package golang-github-modern-go-reflect2-dev)"
  rm -rf "$src/vendor/github.com/modern-go/reflect2"
  cp -a "$REFLECT2_SRC" "$src/vendor/github.com/modern-go/reflect2"
  touch "$src/.kubetun-unpacked"
fi

# Offline: Go builds from the vendor tree by itself (go.mod says 1.15). Kubernetes' make keeps its Go build
# cache in _output/ of the source, so a rerun after a failure is quick. No GOFLAGS: hack/lib/golang.sh would
# take them for build tags.
export GOPROXY=off KUBE_GIT_VERSION=$VERSION
started=$SECONDS
step make bash -c "cd '$src' && make WHAT='cmd/kube-apiserver cmd/kube-controller-manager cmd/kube-scheduler'"
say "compiled in $((SECONDS - started))s"

out=$src/_output/bin
for b in "${BINARIES[@]}"; do
  [ -x "$out/$b" ] || fail "make finished but $out/$b is missing; see $LOGS/make.log"
done
# Into place atomically: a half-copied cache must never look complete.
staging=$CACHE_ROOT/.kubernetes-$VERSION.$$
rm -rf "$staging"
mkdir -p "$staging/bin"
for b in "${BINARIES[@]}"; do cp "$out/$b" "$staging/bin/$b"; done
rm -rf "$CACHE_ROOT/kubernetes-$VERSION"
mv "$staging" "$CACHE_ROOT/kubernetes-$VERSION"
say "cached in $BIN_DIR"
echo "$BIN_DIR"
