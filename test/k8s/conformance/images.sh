#!/usr/bin/env bash
# The images the Gateway API conformance suite's base manifests name
# (src/conformance/base/manifests.yaml), made from the binaries build.sh
# built, as docker-archive files for `ctr -n k8s.io images import`. Nothing
# can be pulled here; the manifests' images have non-latest tags, so the
# kubelet's default pull policy (IfNotPresent) uses the imported ones.
#
#   registry.k8s.io/gateway-api/echo-basic:<each tag named>   /echo-basic, uid 65532
#                                                   (as upstream's distroless nonroot image)
#   registry.k8s.io/coredns/coredns:<tag named>     /coredns, uid 0 (the manifest
#                                                   adds NET_BIND_SERVICE for port 53)
#
# Usage: images.sh <directory printed by build.sh>
# Stdout: one "<image name> <archive file>" line per image. Archives are
# content-addressed (binary + name) and kept while used in the last 12 hours,
# next to those of ../images.sh, in the same buildah storage and under its lock.
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
ROOT="$(cd "$HERE/../../.." && pwd)"
log() { printf '[gateway-api-images] %s\n' "$*" >&2; }
die() { log "ERROR: $*"; exit 1; }

BUILT="${1:?usage: images.sh <directory printed by build.sh>}"
command -v buildah >/dev/null 2>&1 || die "buildah is required (Debian package buildah)"
[[ $(id -u) == 0 ]] || die "building images needs root (buildah)"
MANIFESTS="$BUILT/src/conformance/base/manifests.yaml"
[[ -f "$MANIFESTS" ]] || die "$MANIFESTS is missing: run build.sh first"

CACHE_ROOT="${NANOPROXY_K8S_CACHE:-$ROOT/.cache/k8s}"
OUT="$CACHE_ROOT/images"
mkdir -p "$OUT"
exec 9>"$OUT/.lock"
flock 9
BUILDAH=(buildah --root "$CACHE_ROOT/buildah/storage" --runroot "$CACHE_ROOT/buildah/run" --storage-driver vfs)
export BUILDAH_ISOLATION=chroot

image() { # <image name> <binary> <path in image> <uid>
  local name="$1" bin="$2" path="$3" uid="$4" key file c
  key="$( { printf '%s %s %s\n' "$name" "$path" "$uid"; sha256sum <"$bin"; } | sha256sum | cut -c1-16)"
  file="$OUT/gwapi-$key.tar"
  if [[ -f "$file" ]]; then
    log "$name: cached ($key)"
    touch "$file"
  else
    log "$name: building ($key)"
    c="$("${BUILDAH[@]}" from scratch)"
    "${BUILDAH[@]}" copy --chmod 0755 "$c" "$bin" "$path" >/dev/null
    "${BUILDAH[@]}" config --entrypoint "[\"$path\"]" --cmd '' --user "$uid:$uid" "$c"
    "${BUILDAH[@]}" commit --quiet --rm "$c" "$name" >/dev/null
    rm -f "$file.tmp"
    "${BUILDAH[@]}" push --quiet "$name" "docker-archive:$file.tmp:$name" >&2
    mv -f "$file.tmp" "$file"
    "${BUILDAH[@]}" rmi "$name" >/dev/null
  fi
  printf '%s %s\n' "$name" "$file"
}

# Every image the manifests name must be one we can make: fail loudly on a
# new one rather than let its pods sit in ErrImageNeverPull/ImagePullBackOff.
mapfile -t NAMES < <(sed -n 's/^ *image: *\([^ ]*\) *$/\1/p' "$MANIFESTS" | sort -u)
for name in "${NAMES[@]}"; do
  case "$name" in
    registry.k8s.io/gateway-api/echo-basic:*) image "$name" "$BUILT/image-echo-basic" /echo-basic 65532 ;;
    registry.k8s.io/coredns/coredns:*) image "$name" "$BUILT/image-coredns" /coredns 0 ;;
    *) die "the base manifests name $name, which this script cannot build" ;;
  esac
done
find "$OUT" -maxdepth 1 -name 'gwapi-*.tar' -mmin +720 -delete
