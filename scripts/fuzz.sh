#!/usr/bin/env bash
# `make fuzz` / `make fuzz-short`: builds the libFuzzer targets (clang,
# ASan+UBSan) in build/fuzz and runs each for the given seconds over its
# committed seed corpus (fuzz/corpus/<name>, copied to a scratch dir so runs
# never modify the repo). Fails on any crash, leak or sanitizer report.
set -euo pipefail
cd "$(dirname "$0")/.." || exit 1
secs=${1:-30}
command -v clang >/dev/null || { echo "fuzz: clang missing (make test-deps)"; exit 1; }
cmake -S . -B build/fuzz -G Ninja -DCMAKE_C_COMPILER=clang -DCMAKE_BUILD_TYPE=Fuzz \
  -DHALE_FUZZ=ON >/dev/null
cmake --build build/fuzz >/dev/null
rc=0
shopt -s nullglob
targets=(build/fuzz/fuzz_*)
((${#targets[@]})) || { echo "fuzz: no targets built"; exit 1; }
mkdir -p build/fuzz-artifacts
for t in "${targets[@]}"; do
  name=$(basename "$t")
  corpus=build/fuzz-corpus/$name
  mkdir -p "$corpus"
  [[ -d fuzz/corpus/${name#fuzz_} ]] && cp -r "fuzz/corpus/${name#fuzz_}/." "$corpus/"
  echo "fuzz: $name for ${secs}s"
  if ! "$t" -max_total_time="$secs" -timeout=10 -rss_limit_mb=2048 \
        -artifact_prefix="build/fuzz-artifacts/$name-" "$corpus" >"build/fuzz-$name.log" 2>&1; then
    echo "fuzz: $name FAILED"; tail -40 "build/fuzz-$name.log"; rc=1
  else
    grep -E "^Done [0-9]+ runs" "build/fuzz-$name.log" | tail -n 1 || true
  fi
done
exit $rc
