#!/usr/bin/env bash
# The one build function of the Makefile and scripts/run-tests.sh:
#   scripts/build.sh [--configure-only] VARIANT [--target NAME]
# configures (when needed) and builds build/VARIANT (HALE_BUILD_DIR moves it).
#
# The generator: a configured directory keeps the one it was configured with
# (CMAKE_GENERATOR in its CMakeCache.txt), so a `make run` on a machine
# without ninja (Unix Makefiles) followed by `make test` (which installs
# ninja) builds on instead of stopping at "generator : Ninja does not match
# the generator used previously". A new directory gets Ninja when ninja is
# installed, else Unix Makefiles. When the recorded generator's tool is gone,
# the directory is reconfigured from scratch (its cache removed).
set -euo pipefail
cd "$(dirname "$0")/.." || exit 1
CMAKE=${CMAKE:-cmake}
JOBS=${JOBS:-$(nproc)}

configure_only=0
if [[ ${1:-} == --configure-only ]]; then configure_only=1; shift; fi
variant=${1:-}
shift || true
target=()
if [[ ${1:-} == --target && -n ${2:-} ]]; then target=(--target "$2"); fi

# variant -> CMAKE_BUILD_TYPE and options, defined here only
case "$variant" in
  debug)   args=(-DCMAKE_BUILD_TYPE=Debug -DHALE_TEST_HOOKS=ON) ;;
  release) args=(-DCMAKE_BUILD_TYPE=Release) ;;
  minsize) args=(-DCMAKE_BUILD_TYPE=MinSizeRel) ;;
  native)  args=(-DCMAKE_BUILD_TYPE=Native) ;;
  asan)    args=(-DCMAKE_BUILD_TYPE=Asan -DHALE_TEST_HOOKS=ON) ;;
  tsan)    args=(-DCMAKE_BUILD_TYPE=Tsan -DHALE_TEST_HOOKS=ON) ;;
  # the SQLite-only build of the sqlite image (D2), debug-flavoured for tests
  sqlite)  args=(-DCMAKE_BUILD_TYPE=Debug -DHALE_WITH_PG=OFF -DHALE_WITH_REDIS=OFF) ;;
  coverage) args=(-DCMAKE_BUILD_TYPE=Coverage -DHALE_TEST_HOOKS=ON) ;;
  *) echo "usage: $0 [--configure-only] debug|release|minsize|native|asan|tsan|sqlite|coverage [--target NAME]" >&2
     exit 2 ;;
esac
dir=${HALE_BUILD_DIR:-build/$variant}

tool_of() {
  case "$1" in
    Ninja*) echo ninja ;;
    *Makefiles) echo make ;;
    *) echo "" ;;
  esac
}

gen=""
if [[ -f $dir/CMakeCache.txt ]]; then
  gen=$(sed -n 's/^CMAKE_GENERATOR:INTERNAL=//p' "$dir/CMakeCache.txt")
  tool=$(tool_of "$gen")
  if [[ -z $gen || -z $tool ]] || ! command -v "$tool" >/dev/null 2>&1; then
    echo "hale: $dir was configured with '${gen:-?}', which cannot run here: reconfiguring it from scratch" >&2
    rm -rf "$dir/CMakeCache.txt" "$dir/CMakeFiles"
    gen=""
  fi
fi
if [[ -z $gen ]]; then
  if command -v ninja >/dev/null 2>&1; then gen=Ninja; else gen="Unix Makefiles"; fi
fi

"$CMAKE" -S . -B "$dir" -G "$gen" "${args[@]}" >/dev/null
if ((configure_only == 0)); then
  "$CMAKE" --build "$dir" -j "$JOBS" "${target[@]}"
fi
