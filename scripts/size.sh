#!/usr/bin/env bash
# `make size`: the C analogue of `cargo bloat` (B5). For the release and
# minsize builds: stripped binary size, then the text size of every object
# file (before LTO, so attribution is per source file), then the largest
# functions of an unstripped -O2 build (symbols kept for the report only).
set -euo pipefail
cd "$(dirname "$0")/.." || exit 1

human() { numfmt --to=iec-i --suffix=B "$1"; }

echo "== stripped binaries"
for v in release minsize; do
  f=build/$v/hale
  [[ -f $f ]] && printf '  %-8s %8s  (%s bytes)\n' "$v" "$(human "$(stat -c %s "$f")")" "$(stat -c %s "$f")"
done

# Per-object and per-function attribution needs objects with real code and
# symbols: release objects are LTO bytecode. build/bloat is an -O2 build
# without LTO, kept unstripped for this report only.
cmake -S . -B build/bloat -G Ninja -DCMAKE_BUILD_TYPE=Debug \
  -DCMAKE_C_FLAGS="-O2 -g0" >/dev/null
cmake --build build/bloat --target hale >/dev/null

echo
echo "== per object file (text+data bytes, -O2 without LTO)"
find build/bloat/CMakeFiles -name '*.o' -path '*hale_*' -print0 |
  xargs -0 size --format=berkeley 2>/dev/null | awk 'NR>1 {printf "  %8d  %s\n", $1+$2, $6}' |
  sed 's|build/bloat/CMakeFiles/[^/]*/||' | sort -rn | head -40

echo
echo "== largest functions (-O2 without LTO)"
nm --size-sort --print-size --radix=d build/bloat/hale | awk '$3 ~ /[tT]/ {printf "  %8d  %s\n", $2, $4}' |
  tail -25 | sort -rn

echo
echo "== shared libraries linked"
ldd build/release/hale | awk '{print "  " $1}'
