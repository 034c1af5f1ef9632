#!/usr/bin/env bash
# `make image`: builds hale's container images on this machine, whose Docker
# engine cannot pull from any registry.
#
#  1. Local base images, made only when missing (cached by tag):
#       hale-local/bookworm:slim           stand-in for debian:bookworm-slim:
#                                          debootstrap --variant=minbase from
#                                          the machine's Debian mirror, with
#                                          bookworm-security in its sources
#                                          (docker/mkbase.sh, about a minute)
#       hale-local/distroless-base:debian12  stand-in for the distroless base:
#                                          passwd/group/CA bundle/tmp, no libc
#                                          (docker/distroless-base/Dockerfile)
#  2. `docker build --target T` of the Dockerfile for the builder, runtime,
#     distroless and sqlite targets (sqlite also builds builder-sqlite), with
#     --build-arg pointing the bases at those images (the local distroless
#     base is a static-debian12 stand-in: it serves both distroless bases).
#     (There is no static target: docker/STATIC.md says why.)
#  3. An SBOM per image with the security-update check (docker/sbom.py):
#     build/sbom/<target>.cdx.json.
#  4. The sizes, also written to build/image/sizes.tsv, and the verdict on the
#     minimal image's goal (sqlite <= 12 MiB).
#
# Network: RUN steps of a build reach the Debian mirror through Docker's
# default bridge here (measured: `apt-get update` in a RUN step fetches from
# deb.debian.org like the host does), so the builds use the default network
# and the builder stage installs its packages itself, as it would anywhere.
# Where a build cannot reach the mirror but the host can, set
# HALE_BUILD_NETWORK=host.
#
# Usage: scripts/image.sh [--rebuild-base] [TARGET...]   (default: runtime distroless sqlite)
# Env:   HALE_IMAGE            image repository (default hale): hale:runtime, ...
#        HALE_BASE_IMAGE       Debian base (default hale-local/bookworm:slim);
#                              debian:bookworm-slim where a registry is reachable
#        HALE_DISTROLESS_BASE  (default hale-local/distroless-base:debian12)
#        HALE_BUILD_NETWORK    docker build --network value (default: Docker's)
set -euo pipefail
cd "$(dirname "$0")/.."

IMAGE=${HALE_IMAGE:-hale}
BASE=${HALE_BASE_IMAGE:-hale-local/bookworm:slim}
DISTROLESS_BASE=${HALE_DISTROLESS_BASE:-hale-local/distroless-base:debian12}
rebuild_base=0
targets=()
for a in "$@"; do
  case $a in
    --rebuild-base) rebuild_base=1 ;;
    runtime | distroless | sqlite) targets+=("$a") ;;
    static) echo "image: no static target: docker/STATIC.md has the linker errors" >&2; exit 2 ;;
    *) echo "usage: $0 [--rebuild-base] [runtime|distroless|sqlite]..." >&2; exit 2 ;;
  esac
done
((${#targets[@]})) || targets=(runtime distroless sqlite)

log() { printf 'image: %s\n' "$*"; }
die() { printf 'image: ERROR: %s\n' "$*" >&2; exit 1; }
docker info >/dev/null 2>&1 || die "no Docker engine answers (docker info)"
mkdir -p build/image build/sbom
t_start=$SECONDS

have() { docker image inspect "$1" >/dev/null 2>&1; }
net=()
[[ -n ${HALE_BUILD_NETWORK:-} ]] && net=(--network "$HALE_BUILD_NETWORK")

# build TAG LOGNAME ARGS...: docker build, output in build/image/LOGNAME.log
build() {
  local tag=$1 name=$2 t0=$SECONDS
  shift 2
  if ! docker build "${net[@]}" -t "$tag" "$@" >"build/image/$name.log" 2>&1; then
    tail -30 "build/image/$name.log" >&2
    die "docker build of $tag failed (full log: build/image/$name.log)"
  fi
  log "$tag built in $((SECONDS - t0)) s"
}

# --- 1. bases ---------------------------------------------------------------
if ((rebuild_base)) || ! have "$BASE"; then
  if [[ $BASE == hale-local/* ]]; then
    docker/mkbase.sh "$BASE"
  else
    have "$BASE" || die "base image $BASE is missing and cannot be pulled here"
  fi
else
  log "base $BASE present ($(docker image inspect -f '{{index .Config.Labels "org.opencontainers.image.created"}}' "$BASE"))"
fi
if ((rebuild_base)) || ! have "$DISTROLESS_BASE"; then
  build "$DISTROLESS_BASE" distroless-base --build-arg DEBIAN_IMAGE="$BASE" docker/distroless-base
else
  log "base $DISTROLESS_BASE present"
fi

# --- 2. images --------------------------------------------------------------
version=$(sed -n 's/^project(hale VERSION \([0-9.]*\).*/\1/p' CMakeLists.txt)
revision=$(git rev-parse --short=12 HEAD 2>/dev/null || echo unknown)
[[ -z $(git status --porcelain -- src CMakeLists.txt config 2>/dev/null) ]] || revision+=-dirty
args=(--build-arg BUILDER_IMAGE="$BASE" --build-arg RUNTIME_IMAGE="$BASE"
      --build-arg DISTROLESS_IMAGE="$DISTROLESS_BASE" --build-arg STATIC_IMAGE="$DISTROLESS_BASE"
      --build-arg HALE_VERSION="$version" --build-arg HALE_REVISION="$revision")
# One snapshot of the build context for every target: the tree may change
# while the builds run (others edit src/), and the classic builder rebuilds
# the builder stage for each --target, so building from the live tree could
# give images from different sources (docker/sbom.py checks they match).
# What goes in is what .dockerignore lets through (its "!" lines).
ctx=$(mktemp -d /tmp/hale-image-context.XXXXXX)
trap 'rm -rf "$ctx"' EXIT
mapfile -t keep < <(sed -n 's/^!//p' .dockerignore)
cp -a --parents Dockerfile .dockerignore "${keep[@]%/}" "$ctx/"
# The lock pins what the mirror offered when it was made; once Debian
# publishes an update of a pinned package the old version is gone
# (bookworm-security keeps only the newest) and docker/apt-pinned.sh fails
# the builder. Built on a local base (the tests, a fresh machine) that is
# no fault of the tree: the lock is refreshed (scripts/lock-packages.sh),
# the build retried once and the refresh reported (commit the new lock).
# On a pinned upstream base it stays an error. HALE_LOCK_REFRESH=0: never.
if ! docker build "${net[@]}" -t "$IMAGE:builder" "${args[@]}" --target builder "$ctx" \
     >build/image/builder.log 2>&1; then
  if [[ $BASE == hale-local/* && ${HALE_LOCK_REFRESH:-1} == 1 ]] &&
     grep -q "apt-pinned: ERROR" build/image/builder.log; then
    log "WARNING: docker/packages.lock is stale against the mirror: refreshing it (commit the result)"
    grep "apt-pinned: ERROR" build/image/builder.log | head -3 >&2
    scripts/lock-packages.sh "$BASE" || die "scripts/lock-packages.sh failed"
    cp docker/packages.lock "$ctx/docker/packages.lock"
    build "$IMAGE:builder" builder "${args[@]}" --target builder "$ctx"
  else
    tail -30 build/image/builder.log >&2
    die "docker build of $IMAGE:builder failed (full log: build/image/builder.log)"
  fi
fi
[[ " ${targets[*]} " == *" sqlite "* ]] &&
  build "$IMAGE:builder-sqlite" builder-sqlite "${args[@]}" --target builder-sqlite "$ctx"
for t in "${targets[@]}"; do
  build "$IMAGE:$t" "$t" "${args[@]}" --target "$t" "$ctx"
done
[[ " ${targets[*]} " == *" distroless "* ]] && docker tag "$IMAGE:distroless" "$IMAGE:latest"
# the previous builds' images, untagged now
docker image prune -f --filter label=org.opencontainers.image.title=hale >/dev/null || true

# --- 3. SBOMs ---------------------------------------------------------------
sbom_rc=0
for t in "${targets[@]}"; do
  b=$IMAGE:builder
  [[ $t == sqlite ]] && b=$IMAGE:builder-sqlite
  docker/sbom.py "$IMAGE:$t" --builder "$b" -o "build/sbom/$t.cdx.json" --check ||
    sbom_rc=1
done

# --- 4. sizes ---------------------------------------------------------------
printf 'image\tbytes\tMiB\n' >build/image/sizes.tsv
for t in "${targets[@]}"; do
  bytes=$(docker image inspect -f '{{.Size}}' "$IMAGE:$t")
  printf '%s\t%s\t%s\n' "$IMAGE:$t" "$bytes" "$(awk -v b="$bytes" 'BEGIN{printf "%.1f", b/1048576}')" \
    >>build/image/sizes.tsv
done
log "sizes (uncompressed, as docker images reports them):"
awk -F'\t' '{printf "  %-20s %12s %8s\n", $1, $2, $3}' build/image/sizes.tsv
if [[ " ${targets[*]} " == *" sqlite "* ]]; then
  mib=$(awk -F'\t' -v i="$IMAGE:sqlite" '$1 == i {print $3}' build/image/sizes.tsv)
  verdict="NOT met"
  awk -v m="$mib" 'BEGIN{exit !(m <= 12)}' && verdict=met
  log "minimal image $IMAGE:sqlite (SQLite only): $mib MiB (goal <= 12 MiB: $verdict)"
fi
log "done in $((SECONDS - t_start)) s"
((sbom_rc == 0)) || die "SBOM security check failed (above)"
