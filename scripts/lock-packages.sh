#!/usr/bin/env bash
# Refreshes docker/packages.lock: the exact Debian package versions the
# Dockerfile's Debian stages install (docker/apt-pinned.sh), taken from the
# mirror the base image's apt sources name (bookworm, bookworm-updates,
# bookworm-security), as `apt-get upgrade` would have picked them today.
#
#   builder  a container of BASE: apt-get update + upgrade, then
#            scripts/install-deps.sh build; every installed package. hale is
#            compiled there (debug, same libraries) and docker/stage-rootfs.sh
#            names the packages of the libraries it links;
#   runtime  a fresh container of BASE: update + upgrade + those packages;
#            every installed package.
# Both lists are `dpkg-query` of what apt chose, so the lock is whole: the
# build fails if a stage would hold a package the lock does not name.
#
# When: after a Debian point release or security update (docker/sbom.py
# --check reports "installed X, but the sources offer Y"), when the build
# packages change (scripts/install-deps.sh build), or when a build fails with
# apt's "Version ... was not found" (bookworm-security keeps only the newest).
# Refresh the base digests in the Dockerfile at the same time
# (docker/README.md). Commit the new lock; the diff is the update.
#
# Usage: scripts/lock-packages.sh [BASE]   (default: $HALE_BASE_IMAGE, else
#        hale-local/bookworm:slim; use the digest the Dockerfile pins where a
#        registry is reachable)
set -euo pipefail
cd "$(dirname "$0")/.."
base=${1:-${HALE_BASE_IMAGE:-hale-local/bookworm:slim}}
lock=docker/packages.lock
die() { printf 'lock-packages: ERROR: %s\n' "$*" >&2; exit 1; }
docker image inspect "$base" >/dev/null 2>&1 || die "base image $base is missing (scripts/image.sh makes the local one)"
net=()
[[ -n ${HALE_BUILD_NETWORK:-} ]] && net=(--network "$HALE_BUILD_NETWORK")
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

# shellcheck disable=SC2016 # expanded inside the container
builder='set -euo pipefail
export DEBIAN_FRONTEND=noninteractive CCACHE_DISABLE=1
apt-get update -qq && apt-get -y -qq upgrade >/dev/null
scripts/install-deps.sh build >/dev/null
cmake -S . -B /tmp/b -G Ninja -DCMAKE_BUILD_TYPE=Debug -DHALE_REVISION=lock >/dev/null
cmake --build /tmp/b --target hale >/dev/null
docker/stage-rootfs.sh /tmp/b/hale config /tmp/out >/dev/null
cp /tmp/out/runtime-packages.txt /lock/
dpkg-query -W -f="\${db:Status-Abbrev} \${Package}=\${Version}\n" | awk "\$1 == \"ii\" {print \$2}" >/lock/builder'
# shellcheck disable=SC2016
runtime='set -euo pipefail
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq && apt-get -y -qq upgrade >/dev/null
xargs -a /lock/runtime-packages.txt apt-get install -y -qq --no-install-recommends >/dev/null
dpkg-query -W -f="\${db:Status-Abbrev} \${Package}=\${Version}\n" | awk "\$1 == \"ii\" {print \$2}" >/lock/runtime'

echo "lock-packages: builder packages from $base (compiles hale once: a few minutes)"
ctx=$tmp/src
mkdir -p "$ctx"
cp -a --parents CMakeLists.txt src config scripts/install-deps.sh docker/stage-rootfs.sh "$ctx/"
docker run --rm "${net[@]}" -v "$ctx:/src:ro" -v "$tmp:/lock" -w /src "$base" bash -c "$builder" ||
  die "the builder container failed"
echo "lock-packages: runtime packages: $(tr '\n' ' ' <"$tmp/runtime-packages.txt")"
docker run --rm "${net[@]}" -v "$tmp:/lock" "$base" bash -c "$runtime" || die "the runtime container failed"

{
  echo "# Exact Debian package versions of the Dockerfile's Debian stages: one"
  echo "# \"STAGE PACKAGE=VERSION\" line each; docker/apt-pinned.sh installs them and"
  echo "# fails on any other package. Made by scripts/lock-packages.sh (do not edit"
  echo "# by hand) from $base on $(date -u +%Y-%m-%d)."
  sed 's/^/builder /' "$tmp/builder"
  sed 's/^/runtime /' "$tmp/runtime"
} >"$lock.new"
if [[ -f $lock ]]; then
  diff -u <(grep -v '^#' "$lock") <(grep -v '^#' "$lock.new") | sed -n '3,$p' || true
fi
mv "$lock.new" "$lock"
echo "lock-packages: $lock: $(grep -c '^builder ' "$lock") builder, $(grep -c '^runtime ' "$lock") runtime packages"
