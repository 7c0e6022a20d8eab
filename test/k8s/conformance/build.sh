#!/usr/bin/env bash
# Build what the Gateway API conformance run needs (test/conformance/run.ts),
# from the pinned Go modules only (the Go module proxy is the one source we
# can reach):
#
#   conformance.test   `go test -c` of sigs.k8s.io/gateway-api/conformance,
#                      run unmodified from src/conformance (its working dir)
#   crds.yaml          the standard-channel CRDs (config/crd/standard)
#   image-echo-basic   the suite's backend (conformance/echo-basic), static
#   image-coredns      CoreDNS with the plugins the base manifests' Corefile
#                      names (./coredns, a wrapper module)
#
# The two modules are laid out as the gateway-api repository is: the
# conformance module's go.mod says `replace sigs.k8s.io/gateway-api => ../`,
# so src/ is the gateway-api module and src/conformance the conformance one
# (GOWORK=off: the repository's go.work names modules the zips do not hold).
#
# Output: <cache>/gateway-api/<version>/ ; the last stdout line is that
# directory. Idempotent: a part is rebuilt only when its stamp differs.
# `--crds`: only the modules and crds.yaml (seconds; no Go build), for the
# controller's tests against a bare API server.
# Environment: NANOPROXY_K8S_CACHE (cache root, as build.sh), GO,
#   GATEWAY_API_VERSION (default: the version pinned below), K8S_BUILD_JOBS.
set -euo pipefail
CRDS_ONLY=0
[[ "${1:-}" == --crds ]] && CRDS_ONLY=1

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
ROOT="$(cd "$HERE/../../.." && pwd)"
log() { printf '[gateway-api-build] %s\n' "$*" >&2; }
die() { log "ERROR: $*"; exit 1; }

# v1.6.3: the newest v1.6.x on the module proxy (Dec 2026). The CRDs a user
# installs must be the same minor (the chart's README says which).
VERSION="${GATEWAY_API_VERSION:-v1.6.3}"

GO="${GO:-}"
if [[ -z "$GO" ]]; then
  if command -v go >/dev/null 2>&1; then GO="$(command -v go)"
  elif [[ -x /usr/local/go/bin/go ]]; then GO=/usr/local/go/bin/go
  else die "go not found (install Go >= 1.26 or set GO=/path/to/go)"; fi
fi
export CGO_ENABLED=0 GOWORK=off
export GOFLAGS="-mod=readonly -buildvcs=false"
JOBS="${K8S_BUILD_JOBS:-2}"

CACHE_ROOT="${NANOPROXY_K8S_CACHE:-$ROOT/.cache/k8s}"
OUT="$CACHE_ROOT/gateway-api/$VERSION"
mkdir -p "$OUT"
exec 9>"$OUT/.lock"
flock 9

stamp_ok() { [[ -f "$OUT/$1.stamp" && "$(cat "$OUT/$1.stamp")" == "$2" ]]; }
stamp() { printf '%s\n' "$2" >"$OUT/$1.stamp"; }

# --- the two modules, laid out as the repository --------------------------
if ! stamp_ok src "$VERSION"; then
  start=$SECONDS
  log "downloading sigs.k8s.io/gateway-api@$VERSION and .../conformance@$VERSION"
  dir_of() { # <module@version>: its directory in the module cache
    (cd "$OUT" && "$GO" mod download -json "$1") | sed -n 's/^\t"Dir": "\(.*\)",$/\1/p'
  }
  API_DIR="$(dir_of "sigs.k8s.io/gateway-api@$VERSION")"
  CONF_DIR="$(dir_of "sigs.k8s.io/gateway-api/conformance@$VERSION")"
  [[ -d "$API_DIR" && -d "$CONF_DIR" ]] || die "go mod download gave no directory for $VERSION"
  rm -rf "$OUT/src" "$OUT/src.tmp"
  cp -r "$API_DIR" "$OUT/src.tmp"
  rm -rf "$OUT/src.tmp/conformance"
  cp -r "$CONF_DIR" "$OUT/src.tmp/conformance"
  chmod -R u+w "$OUT/src.tmp" # the module cache is read-only
  mv "$OUT/src.tmp" "$OUT/src"
  # The standard channel only (experimental CRDs are not what users install).
  for f in "$OUT"/src/config/crd/standard/*.yaml; do printf -- '---\n'; cat "$f"; done >"$OUT/crds.yaml"
  rm -f "$OUT"/*.stamp
  stamp src "$VERSION"
  log "modules laid out in $((SECONDS - start))s"
fi

if [[ "$CRDS_ONLY" == 1 ]]; then echo "$OUT"; exit 0; fi

build() { # <name> <stamp> <dir> <package> <go command...>
  local name="$1" key="$2" dir="$3" pkg="$4"; shift 4
  if stamp_ok "$name" "$key"; then log "$name: cached"; return; fi
  local start=$SECONDS
  log "$name: building (the first build downloads its dependencies)..."
  (cd "$dir" && "$@" -o "$OUT/$name.tmp" "$pkg") >&2 || { rm -f "$OUT/$name.tmp"; die "building $name failed"; }
  mv -f "$OUT/$name.tmp" "$OUT/$name"
  stamp "$name" "$key"
  log "$name: built in $((SECONDS - start))s ($(du -h "$OUT/$name" | cut -f1))"
}

GOV="$("$GO" env GOVERSION)"
build conformance.test "$VERSION $GOV" "$OUT/src/conformance" . "$GO" test -c -p "$JOBS" -trimpath -ldflags "-s -w"
build image-echo-basic "$VERSION $GOV" "$OUT/src/conformance" ./echo-basic "$GO" build -p "$JOBS" -trimpath -ldflags "-s -w"
COREDNS_KEY="$(cd "$HERE/coredns" && cat go.mod go.sum main.go | sha256sum | cut -c1-16) $GOV"
build image-coredns "$COREDNS_KEY" "$HERE/coredns" . "$GO" build -p "$JOBS" -trimpath -ldflags "-s -w"

echo "$OUT"
