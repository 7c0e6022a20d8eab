#!/usr/bin/env bash
# Build a real kube-apiserver and etcd from Go modules for the integration
# tests. Idempotent: binaries are cached per version and only built when
# missing. Progress goes to stderr; the LAST line on stdout is the directory
# holding `kube-apiserver` and `etcd`.
#
#   build.sh           kube-apiserver + etcd (the controller tests)
#   build.sh --node    also kube-controller-manager, kube-scheduler, kubelet,
#                      kube-proxy and the two programs of the test images
#                      (images/: pause, echo), for the one-node cluster
#                      (test/helpers/node-cluster.ts)
#
# Versions are pinned by the wrapper modules next to this script:
#   apiserver/go.mod  (k8s.io/kubernetes + published k8s.io/* staging modules)
#   etcd/go.mod       (go.etcd.io/etcd/server/v3)
#
# Environment:
#   NANOPROXY_K8S_CACHE  cache root (default: <repo>/.cache/k8s)
#   GO                   go binary (default: go on PATH, else /usr/local/go/bin/go)
#   K8S_BUILD_JOBS       go build -p (default: 2)
#   K8S_FORCE_REBUILD=1  rebuild even if the binaries exist
set -euo pipefail

NODE=0
case "${1:-}" in
  "") ;;
  --node) NODE=1 ;;
  *) printf 'usage: %s [--node]\n' "$0" >&2; exit 2 ;;
esac

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
ROOT="$(cd "$HERE/../.." && pwd)"

log() { printf '[k8s-build] %s\n' "$*" >&2; }
die() { log "ERROR: $*"; exit 1; }

GO="${GO:-}"
if [[ -z "$GO" ]]; then
  if command -v go >/dev/null 2>&1; then GO="$(command -v go)"
  elif [[ -x /usr/local/go/bin/go ]]; then GO=/usr/local/go/bin/go
  else die "go not found (install Go >= 1.26 or set GO=/path/to/go)"; fi
fi

# Reproducible, static, small binaries. go.sum is committed, so readonly mode
# never rewrites go.mod/go.sum; the module and build caches stay in their
# default places (~/go/pkg/mod, ~/.cache/go-build).
export CGO_ENABLED=0
export GOFLAGS="-mod=readonly -buildvcs=false"
JOBS="${K8S_BUILD_JOBS:-2}"

# Read a required module version from a wrapper go.mod without touching the
# network.
modver() { # <go.mod> <module path>
  awk -v m="$2" '($1 == m && $2 ~ /^v/) { print $2; exit } ($1 == "require" && $2 == m) { print $3; exit }' "$1"
}
KUBE_VERSION="$(modver "$HERE/apiserver/go.mod" k8s.io/kubernetes)"
ETCD_VERSION="$(modver "$HERE/etcd/go.mod" go.etcd.io/etcd/server/v3)"
[[ -n "$KUBE_VERSION" ]] || die "cannot read k8s.io/kubernetes version from apiserver/go.mod"
[[ -n "$ETCD_VERSION" ]] || die "cannot read go.etcd.io/etcd/server/v3 version from etcd/go.mod"

CACHE_ROOT="${NANOPROXY_K8S_CACHE:-$ROOT/.cache/k8s}"
OUT="$CACHE_ROOT/$KUBE_VERSION"
mkdir -p "$OUT"

# Serialise concurrent invocations (e.g. parallel test workers).
if command -v flock >/dev/null 2>&1; then
  exec 9>"$OUT/.lock"
  flock 9
fi

# A binary is up to date when it exists and its stamp file names the wanted
# version (the etcd version can change without the kube version changing).
up_to_date() { # <binary> <version>
  [[ "${K8S_FORCE_REBUILD:-0}" != 1 && -x "$OUT/$1" && -f "$OUT/$1.version" && "$(cat "$OUT/$1.version")" == "$2" ]]
}

build() { # <name> <module dir> <package> <version> <ldflags>
  local name="$1" dir="${2:-}" pkg="${3:-}" version="${4:-$KUBE_VERSION}" ldflags="${5:-}"
  if up_to_date "$name" "$version"; then
    log "$name $version: cached at $OUT/$name"
    return 0
  fi
  log "$name $version: building $pkg with $("$GO" version | awk '{print $3}') (-p $JOBS); the first build can take a long time..."
  local start=$SECONDS tmp="$OUT/.$name.tmp.$$"
  rm -f "$OUT/$name.version"
  ( cd "$dir" && "$GO" build -p "$JOBS" -trimpath -ldflags "$ldflags" -o "$tmp" "$pkg" ) >&2 || {
    rm -f "$tmp"; die "building $name failed"; }
  mv -f "$tmp" "$OUT/$name"
  printf '%s\n' "$version" >"$OUT/$name.version"
  log "$name $version: built in $((SECONDS - start))s ($(du -h "$OUT/$name" | cut -f1))"
}

# etcd: its version string is a constant in go.etcd.io/etcd/api/v3/version;
# only the git SHA is injected.
build etcd "$HERE/etcd" go.etcd.io/etcd/server/v3 "$ETCD_VERSION" \
  "-s -w -X go.etcd.io/etcd/api/v3/version.GitSHA=$ETCD_VERSION"

# kube-apiserver: gitVersion must be set, otherwise /version reports
# v0.0.0-master and the binary/emulation version logic gets confused.
# gitMajor/gitMinor are what `kubectl version` shows as Major/Minor. The build
# date is the release's module timestamp, so rebuilds are reproducible.
KUBE_MAJOR="${KUBE_VERSION#v}"; KUBE_MAJOR="${KUBE_MAJOR%%.*}"
KUBE_MINOR="${KUBE_VERSION#v*.}"; KUBE_MINOR="${KUBE_MINOR%%.*}"
V=k8s.io/component-base/version
BUILD_DATE=
kube() { # <command name>: builds k8s.io/kubernetes/cmd/<name> from the wrapper module
  if up_to_date "$1" "$KUBE_VERSION"; then build "$1"; return; fi
  if [[ -z "$BUILD_DATE" ]]; then
    BUILD_DATE="$(cd "$HERE/apiserver" && { "$GO" list -m -f '{{if .Time}}{{.Time.UTC.Format "2006-01-02T15:04:05Z"}}{{end}}' k8s.io/kubernetes 2>/dev/null || true; })"
    BUILD_DATE="${BUILD_DATE:-1970-01-01T00:00:00Z}"
  fi
  build "$1" "$HERE/apiserver" "k8s.io/kubernetes/cmd/$1" "$KUBE_VERSION" \
    "-s -w -X $V.gitVersion=$KUBE_VERSION -X $V.gitMajor=$KUBE_MAJOR -X $V.gitMinor=$KUBE_MINOR -X $V.gitTreeState=clean -X $V.gitCommit= -X $V.buildDate=$BUILD_DATE"
}
kube kube-apiserver

if [[ "$NODE" == 1 ]]; then
  # The node's components come from the same wrapper module (its go.mod
  # lists them as tools), so they share kube-apiserver's compiled packages.
  for c in kube-controller-manager kube-scheduler kubelet kube-proxy; do kube "$c"; done
  # The test images' programs (standard library only): their "version" is
  # a hash of their sources, so an edit rebuilds them.
  IMAGES_VERSION="$(cd "$HERE/images" && cat go.mod ./*/*.go | sha256sum | cut -c1-16)"
  for p in pause echo; do
    build "image-$p" "$HERE/images" "./$p" "$IMAGES_VERSION" "-s -w"
  done
fi

# (`go version -m <binary>` shows the Go toolchain and module versions used.)
printf 'kube-apiserver=%s\netcd=%s\n' "$KUBE_VERSION" "$ETCD_VERSION" >"$OUT/versions.txt"
echo "$OUT"
