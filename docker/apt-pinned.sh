#!/usr/bin/env bash
# Runs in a Debian stage of the Dockerfile (after `apt-get update`): makes
# the stage's installed packages exactly the ones docker/packages.lock pins
# for it, at exactly the pinned versions. This replaces `apt-get upgrade`:
# a build takes no version the lock does not name, so two builds from the
# same lock and the same base digest install the same packages (D2, D4).
#
#   1. apt-get install --no-install-recommends --allow-downgrades PKG=VER for
#      every "STAGE PKG=VER" line of the lock (packages the base already has
#      at that version are left alone; a newer one in the base is moved to
#      the pinned version);
#   2. every package in REQUIRED (one name a line, e.g. the builder's
#      runtime-packages.txt) must be pinned for this stage;
#   3. the installed set must equal the pinned set, name for name and version
#      for version: anything else (a dependency the lock lacks, a base with
#      other packages) fails the build with the difference.
# A pinned version the mirror no longer offers (bookworm-security keeps only
# the newest) fails step 1 with apt's "Version ... was not found": refresh
# the lock with scripts/lock-packages.sh (docker/README.md).
#
# Usage: docker/apt-pinned.sh STAGE LOCK [REQUIRED]
set -euo pipefail
stage=${1:?usage: apt-pinned.sh STAGE LOCK [REQUIRED]} lock=${2:?lock file} required=${3:-}

die() { printf 'apt-pinned: ERROR: %s\n' "$*" >&2; exit 1; }
[[ -r $lock ]] || die "no lock file $lock"
mapfile -t pins < <(awk -v s="$stage" '$1 == s && $2 ~ /=/ {print $2}' "$lock")
((${#pins[@]})) || die "$lock pins nothing for stage '$stage'"

if [[ -n $required ]]; then
  missing=()
  while read -r pkg; do
    [[ -z $pkg ]] && continue
    printf '%s\n' "${pins[@]}" | grep -q "^${pkg}=" || missing+=("$pkg")
  done <"$required"
  ((${#missing[@]} == 0)) ||
    die "stage '$stage' needs ${missing[*]}, which $lock does not pin: run scripts/lock-packages.sh"
fi

export DEBIAN_FRONTEND=noninteractive
apt-get install -y -qq --no-install-recommends --allow-downgrades "${pins[@]}" >/dev/null ||
  die "apt-get could not install the pinned versions (above); if a version is gone from the mirror, run scripts/lock-packages.sh"

want=$(printf '%s\n' "${pins[@]}" | sort)
have=$(dpkg-query -W -f='${db:Status-Abbrev} ${Package}=${Version}\n' | awk '$1 == "ii" {print $2}' | sort)
if [[ $want != "$have" ]]; then
  diff <(echo "$want") <(echo "$have") | sed -n 's/^</  pinned, not installed:/p; s/^>/  installed, not pinned:/p' >&2
  die "stage '$stage': the installed packages differ from $lock (above): run scripts/lock-packages.sh"
fi
echo "apt-pinned: stage '$stage': ${#pins[@]} packages at the versions of $lock"
