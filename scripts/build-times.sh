#!/usr/bin/env bash
# `make build-times` (B4): clean and incremental (one source file touched)
# build times of the debug and release variants, with ccache disabled for
# the clean build so the number means something.
set -euo pipefail
cd "$(dirname "$0")/.." || exit 1
t() { local s e; s=$(date +%s%N); "$@" >/dev/null; e=$(date +%s%N); awk -v d=$((e - s)) 'BEGIN{printf "%.2f", d/1e9}'; }
for v in debug:Debug release:Release; do
  dir=build/times-${v%%:*}; type=${v##*:}
  rm -rf "$dir"
  cmake -S . -B "$dir" -G Ninja -DCMAKE_BUILD_TYPE="$type" >/dev/null
  clean=$(CCACHE_DISABLE=1 t cmake --build "$dir" --target hale)
  touch src/runtime/http/router.c
  incr=$(t cmake --build "$dir" --target hale)
  printf '%-8s clean %6.2f s   incremental (router.c touched) %6.2f s\n' "${v%%:*}" "$clean" "$incr"
done
