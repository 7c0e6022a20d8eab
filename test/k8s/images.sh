#!/usr/bin/env bash
# Build the images of the one-node test cluster (test/helpers/node-cluster.ts)
# as docker-archive files that `ctr -n k8s.io images import` loads. Nothing
# can be pulled here, so every image is made locally:
#
#   localhost/nanoproxy-test/pause:v1   the pod sandbox (images/pause, Go)
#   localhost/nanoproxy-test/echo:v1    the test backend (images/echo, Go)
#   docker.io/library/node:24-bookworm-slim
#                                       the Dockerfile's FROM (NODE_IMAGE's
#                                       default), made from a minimal Debian
#                                       bookworm root filesystem (mmdebstrap)
#                                       + the Node 24 binary of the `node`
#                                       npm package + the host's npm; kept in
#                                       buildah's storage, never imported
#   localhost/nanoproxy:<appVersion>    the project's Dockerfile, built by
#                                       buildah (`bud --pull=never`) on that
#                                       base: what the chart installs with
#                                       --set image.repository=localhost/nanoproxy
#
# Every output is content-addressed on its inputs (binaries, Dockerfile,
# build context, base image) and reused while they are unchanged.
# Progress goes to stderr; stdout is one "<image name> <archive file>" line
# per image (nothing shared is written for it: several worktrees may use one
# cache at once). An archive is kept while it has been used in the last 12
# hours, so a run never deletes one another run is about to import.
#
# Usage: images.sh <directory of build.sh --node's binaries>
# Environment: NANOPROXY_K8S_CACHE (cache root, as build.sh),
#   DEBIAN_MIRROR (default http://deb.debian.org/debian),
#   HOST_CA_BUNDLE (default /etc/ssl/certs/ca-certificates.crt): the CA
#   bundle npm uses inside the image build (bind-mounted into RUN steps only,
#   so it is not part of any image layer).
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
ROOT="$(cd "$HERE/../.." && pwd)"
log() { printf '[k8s-images] %s\n' "$*" >&2; }
die() { log "ERROR: $*"; exit 1; }

BIN="${1:?usage: images.sh <binaries directory>}"
for t in buildah mmdebstrap; do command -v "$t" >/dev/null 2>&1 || die "$t is required (Debian package $t)"; done
[[ $(id -u) == 0 ]] || die "building images needs root (buildah, mmdebstrap)"

CACHE_ROOT="${NANOPROXY_K8S_CACHE:-$ROOT/.cache/k8s}"
OUT="$CACHE_ROOT/images"
mkdir -p "$OUT"
exec 9>"$OUT/.lock"
flock 9

# buildah's storage lives in the cache (never /var/lib/containers): vfs
# works on any filesystem, chroot isolation needs no user namespaces.
BUILDAH=(buildah --root "$CACHE_ROOT/buildah/storage" --runroot "$CACHE_ROOT/buildah/run" --storage-driver vfs)
export BUILDAH_ISOLATION=chroot
TMP="$(mktemp -d /tmp/nanoproxy-images.XXXXXX)"
export TMPDIR="$TMP"
cleanup() { rm -rf "$TMP"; }
trap cleanup EXIT

sha() { sha256sum | cut -c1-16; }

# A container made in `fn` and committed as `name` is pushed to an archive.
archive() { # <image name> <archive path>
  local tmp="$2.tmp.$$"
  rm -f "$tmp"
  "${BUILDAH[@]}" push --quiet "$1" "docker-archive:$tmp:$1" >&2
  mv -f "$tmp" "$2"
}

LIST="$TMP/images.txt"
: >"$LIST"
# Archives of `kind` other than `keep` that no run used for 12 hours.
prune() { # <kind> <keep>
  find "$OUT" -maxdepth 1 -name "$1-*.tar" ! -name "$(basename "$2")" -mmin +720 -delete
}

# --- the two Go programs: one static binary on an empty image -------------
small_image() { # <program> <uid>
  local name="localhost/nanoproxy-test/$1:v1"
  local key
  key="$(sha <"$BIN/image-$1")"
  local file="$OUT/$1-$key.tar"
  if [[ ! -f "$file" ]]; then
    log "$name: building ($key)"
    local c
    c="$("${BUILDAH[@]}" from scratch)"
    "${BUILDAH[@]}" copy --chmod 0755 "$c" "$BIN/image-$1" "/$1" >/dev/null
    "${BUILDAH[@]}" config --entrypoint "[\"/$1\"]" --cmd '' --user "$2:$2" --port 8080 "$c"
    "${BUILDAH[@]}" commit --quiet --rm "$c" "$name" >/dev/null
    archive "$name" "$file"
    "${BUILDAH[@]}" rmi "$name" >/dev/null
  else
    log "$name: cached ($key)"
    touch "$file"
  fi
  prune "$1" "$file"
  printf '%s %s\n' "$name" "$file" >>"$LIST"
}
small_image pause 65535
small_image echo 65534

# --- the Dockerfile's base image --------------------------------------------
NODE_BIN="$ROOT/node_modules/node/bin/node"
[[ -x "$NODE_BIN" ]] || die "$NODE_BIN is missing: run npm ci (the node dev dependency ships Node 24)"
NODE_VERSION="$("$NODE_BIN" --version)"
[[ "$NODE_VERSION" == v24.* ]] || die "node_modules/node is $NODE_VERSION, the base image needs Node 24"
# npm is not part of the `node` npm package: the host's npm is copied in.
NPM_DIR="$(cd "$(dirname "$(readlink -f "$(command -v npm)")")/.." && pwd)"
[[ -f "$NPM_DIR/package.json" ]] || die "cannot find the host's npm (needed inside the base image)"
NPM_VERSION="$(sed -n 's/^  "version": "\(.*\)",$/\1/p' "$NPM_DIR/package.json")"
BASE_NAME="docker.io/library/node:24-bookworm-slim"
DEBIAN_MIRROR="${DEBIAN_MIRROR:-http://deb.debian.org/debian}"
MMDEBSTRAP_ARGS=(--variant=essential --include=passwd,libstdc++6
  --dpkgopt='path-exclude=/usr/share/doc/*' --dpkgopt='path-exclude=/usr/share/man/*'
  --dpkgopt='path-exclude=/usr/share/locale/*' bookworm)
BASE_KEY="$( { printf '%s\n' "${MMDEBSTRAP_ARGS[@]}" "$NODE_VERSION" "$NPM_VERSION" "base-v1"; sha256sum "$NODE_BIN"; } | sha)"
have_base() {
  [[ "$("${BUILDAH[@]}" inspect --type image --format '{{index .ImageAnnotations "io.nanoproxy.test.key"}}' "$BASE_NAME" 2>/dev/null || true)" == "$BASE_KEY" ]]
}
if have_base; then
  log "$BASE_NAME: cached ($BASE_KEY, Node $NODE_VERSION, npm $NPM_VERSION)"
else
  log "$BASE_NAME: making it from a Debian bookworm root filesystem + Node $NODE_VERSION + npm $NPM_VERSION ($BASE_KEY)"
  start=$SECONDS
  mmdebstrap --quiet "${MMDEBSTRAP_ARGS[@]}" "$TMP/rootfs.tar" "$DEBIAN_MIRROR" >&2
  c="$("${BUILDAH[@]}" from scratch)"
  mnt="$("${BUILDAH[@]}" mount "$c")"
  tar -C "$mnt" -xf "$TMP/rootfs.tar"
  install -D -m 0755 "$NODE_BIN" "$mnt/usr/local/bin/node"
  mkdir -p "$mnt/usr/local/lib/node_modules"
  cp -a "$NPM_DIR" "$mnt/usr/local/lib/node_modules/npm"
  ln -s ../lib/node_modules/npm/bin/npm-cli.js "$mnt/usr/local/bin/npm"
  ln -s ../lib/node_modules/npm/bin/npx-cli.js "$mnt/usr/local/bin/npx"
  "${BUILDAH[@]}" umount "$c" >/dev/null
  "${BUILDAH[@]}" config --env PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
    --env NODE_VERSION="${NODE_VERSION#v}" --cmd node --annotation "io.nanoproxy.test.key=$BASE_KEY" "$c"
  "${BUILDAH[@]}" rmi --force "$BASE_NAME" >/dev/null 2>&1 || true
  "${BUILDAH[@]}" commit --quiet --rm "$c" "$BASE_NAME" >/dev/null
  have_base || die "the committed base image does not carry its key"
  log "$BASE_NAME: made in $((SECONDS - start))s"
fi

# --- NanoProxy's image, from the project's Dockerfile ----------------------
APP_VERSION="$(sed -n 's/^appVersion: *"\{0,1\}\([^" ]*\)"\{0,1\} *$/\1/p' "$ROOT/deploy/helm/nanoproxy/Chart.yaml")"
[[ -n "$APP_VERSION" ]] || die "cannot read appVersion from deploy/helm/nanoproxy/Chart.yaml"
NANOPROXY_NAME="localhost/nanoproxy:$APP_VERSION"
# The build context is what .dockerignore lets in; all of it goes in the key.
CONTEXT_KEY="$(cd "$ROOT" && {
  printf '%s\n' "$BASE_KEY" "$NANOPROXY_NAME"
  sha256sum "$HERE/images.sh" # how it is built
  find Dockerfile .dockerignore package.json package-lock.json .npmrc tsconfig.json tsconfig.build.json bin src -type f -print0 \
    | sort -z | xargs -0 sha256sum
} | sha)"
NANOPROXY_FILE="$OUT/nanoproxy-$CONTEXT_KEY.tar"
if [[ -f "$NANOPROXY_FILE" ]]; then
  log "$NANOPROXY_NAME: cached ($CONTEXT_KEY)"
else
  log "$NANOPROXY_NAME: building the Dockerfile with buildah ($CONTEXT_KEY)"
  start=$SECONDS
  CA="${HOST_CA_BUNDLE:-/etc/ssl/certs/ca-certificates.crt}"
  [[ -f "$CA" ]] || die "$CA (the CA bundle npm needs inside the build) is missing; set HOST_CA_BUNDLE"
  # npm inside the build reaches the registry through this machine's
  # network, whose certificate chain Node does not trust by default. The RUN
  # steps get a host directory mounted over /root (HOME, which exists in
  # the base image, so no mount point is left in a layer) holding a .npmrc
  # that names the host's CA bundle, copied next to it; npm's cache goes
  # there too, outside the image.
  mkdir -p "$TMP/home"
  cp "$CA" "$TMP/home/host-ca.crt"
  printf 'cafile=/root/host-ca.crt\n' >"$TMP/home/.npmrc"
  # The Dockerfile may also take the bundle as the build secret npm_ca
  # (docs/kubernetes.md, "What the build needs"): given too.
  "${BUILDAH[@]}" bud --quiet --pull=never --isolation chroot --layers=false \
    --secret "id=npm_ca,src=$CA" --volume "$TMP/home:/root" --tag "$NANOPROXY_NAME" --file "$ROOT/Dockerfile" "$ROOT" >&2
  archive "$NANOPROXY_NAME" "$NANOPROXY_FILE"
  "${BUILDAH[@]}" rmi "$NANOPROXY_NAME" >/dev/null
  log "$NANOPROXY_NAME: built in $((SECONDS - start))s ($(du -h "$NANOPROXY_FILE" | cut -f1))"
fi
touch "$NANOPROXY_FILE"
prune nanoproxy "$NANOPROXY_FILE"
printf '%s %s\n' "$NANOPROXY_NAME" "$NANOPROXY_FILE" >>"$LIST"

# Images that buildah left without a name (the Dockerfile's stages).
"${BUILDAH[@]}" rmi --prune >/dev/null 2>&1 || true
cat "$LIST"
