#!/usr/bin/env bash
# ABI discipline for libhale (R3): compares the ABI of a freshly built
# libhale.so with the committed baseline abi/<SONAME>.abi (abidw/abidiff
# from Debian's abigail-tools).
#   scripts/abi-check.sh            build build/debug's libhale and check it
#   scripts/abi-check.sh --update   rewrite abi/<SONAME>.abi from it (make abi-baseline)
#   scripts/abi-check.sh --lib PATH check PATH instead (tests build tweaked copies)
# Verdicts (abidiff's exit status is a bit mask: 4 = ABI change, 8 =
# incompatible change):
#   no change, or only added symbols         -> 0
#   any change to an existing symbol or to a
#   type it reaches (abidiff bit 4 or 8),
#   same SONAME                              -> 1: bump the SONAME
#                                               (HALE_SOVERSION in
#                                               cmake/library.cmake) or undo it
#   a SONAME with no baseline yet            -> 1: a bumped SONAME needs its
#                                               baseline: make abi-baseline
# The debug build is the reference: -g for the DWARF abidw reads, and the
# same flags as the baseline was made with.
set -euo pipefail
cd "$(dirname "$0")/.." || exit 1

update=0
lib=""
while (($#)); do
  case $1 in
    --update) update=1 ;;
    --lib) lib=${2:?--lib needs a path}; shift ;;
    *) echo "usage: $0 [--update] [--lib PATH]" >&2; exit 2 ;;
  esac
  shift
done
for t in abidw abidiff readelf; do
  command -v "$t" >/dev/null || { echo "abi-check: $t not found (scripts/install-deps.sh test)" >&2; exit 1; }
done
if [[ -z $lib ]]; then
  scripts/build.sh debug --target hale_shared >/dev/null
  lib=build/debug/libhale.so
fi
[[ -f $lib ]] || { echo "abi-check: $lib not found" >&2; exit 1; }
soname=$(readelf -d "$lib" | sed -n 's/.*Library soname: \[\(.*\)\].*/\1/p')
[[ -n $soname ]] || { echo "abi-check: $lib has no SONAME" >&2; exit 1; }
baseline=abi/$soname.abi
abiargs=(--no-corpus-path --no-comp-dir-path)

if ((update)); then
  mkdir -p abi
  abidw "${abiargs[@]}" --out-file "$baseline" "$lib"
  echo "abi-check: wrote $baseline from $lib"
  exit 0
fi
if [[ ! -f $baseline ]]; then
  echo "abi-check: FAIL: no baseline $baseline for SONAME $soname" >&2
  echo "abi-check: a bumped SONAME starts a new ABI: record it with 'make abi-baseline' and commit it" >&2
  exit 1
fi
tmp=$(mktemp -d /tmp/hale-abi.XXXXXX)
trap 'rm -rf "$tmp"' EXIT
abidw "${abiargs[@]}" --out-file "$tmp/current.abi" "$lib"
# Only the installed headers (HALE_PUBLIC_HEADERS) make types public: an
# opaque type (hale_health, hale_service: declared there, defined in a .c)
# is not ABI, and abidiff ignores changes to types no public header defines.
mkdir "$tmp/include"
sed -n '/^set(HALE_PUBLIC_HEADERS/,/)/p' cmake/library.cmake | grep -o 'src/runtime/[a-z_/]*\.h' |
  while read -r h; do cp "$h" "$tmp/include/"; done
[[ -n $(ls "$tmp/include") ]] || { echo "abi-check: no public headers found in cmake/library.cmake" >&2; exit 1; }
hd=(--hd1 "$tmp/include" --hd2 "$tmp/include")
rc=0
abidiff "${hd[@]}" --no-added-syms "$baseline" "$tmp/current.abi" >"$tmp/diff.txt" 2>&1 || rc=$?
abidiff "${hd[@]}" "$baseline" "$tmp/current.abi" >"$tmp/full.txt" 2>&1 || true
if ((rc & 3)); then
  cat "$tmp/diff.txt" >&2
  echo "abi-check: FAIL: abidiff could not compare (status $rc)" >&2
  exit 1
fi
if ((rc & 8)); then
  cat "$tmp/diff.txt"
  echo "abi-check: FAIL: incompatible ABI change in $soname against $baseline" >&2
  echo "abi-check: undo it, or bump HALE_SOVERSION (cmake/library.cmake) and run make abi-baseline" >&2
  exit 1
fi
if ((rc & 4)); then
  # abidiff flags only removed symbols as "incompatible"; a changed type or
  # signature of an existing symbol is an "ABI change" it cannot judge, and
  # callers compiled against the old headers may break: fail on it too.
  cat "$tmp/diff.txt"
  echo "abi-check: FAIL: the ABI of existing symbols of $soname changed against $baseline" >&2
  echo "abi-check: undo it, or bump HALE_SOVERSION (cmake/library.cmake) and run make abi-baseline" >&2
  exit 1
fi
added=$(grep -c "^  \[A\]" "$tmp/full.txt" || true)
echo "abi-check: ok: $soname matches $baseline (${added:-0} symbols added)"
