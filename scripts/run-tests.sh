#!/usr/bin/env bash
# Runs every test suite of `make test` in order and ends with one summary
# line CI can read: "N passed, N failed". A suite that cannot run (a tool or
# the shared toml-test folder missing) is reported as failed, never skipped.
set -uo pipefail
cd "$(dirname "$0")/.." || exit 1
JOBS=$(nproc)
passed=0
failed=0
failures=()

suite() {
  local name=$1; shift
  echo
  echo "=== suite: $name"
  local t0=$SECONDS
  if "$@"; then
    passed=$((passed + 1))
    echo "=== suite $name: PASS ($((SECONDS - t0)) s)"
  else
    failed=$((failed + 1))
    failures+=("$name")
    echo "=== suite $name: FAIL ($((SECONDS - t0)) s)"
  fi
}

build() {
  cmake -S . -B "build/$1" -G Ninja -DCMAKE_BUILD_TYPE="$2" "${@:3}" >/dev/null &&
    cmake --build "build/$1" -j "$JOBS"
}

# Real PostgreSQL 15 and Redis 7 for the unit tests (HALE_TEST_PG_URL,
# HALE_TEST_REDIS_URL) and the end-to-end tests; removed when this ends.
services_up() {
  local out
  out=$(scripts/services.sh start) && eval "$out"
}
trap 'scripts/services.sh stop all >/dev/null 2>&1' EXIT
suite services services_up
suite build-debug build debug Debug -DHALE_TEST_HOOKS=ON
suite unit bash -c 'cd build/debug && ctest --output-on-failure'
suite e2e env HALE_BIN=build/debug/hale /usr/bin/python3 -m pytest -q tests/e2e
# the key-value suite again on PostgreSQL and on PostgreSQL + Redis
suite e2e-backends env HALE_BIN=build/debug/hale HALE_BACKENDS="pg pg+redis" scripts/test-backends.sh \
  tests/e2e/test_kv_api.py tests/e2e/test_http_cache.py tests/e2e/test_secrets_leak.py tests/e2e/test_auth.py
toml_test() {
  local tool="${SHARED:-../shared}/tools/toml-test-run"
  [[ -x $tool ]] || { echo "toml-test: $tool not found"; return 1; }
  "$tool" "$PWD/build/debug/toml_decoder" | tee /tmp/hale-toml-test.out
  tail -1 /tmp/hale-toml-test.out | grep -q " 0 failed"
}
suite toml-test toml_test
suite lint scripts/lint.sh
suite build-release build release Release
suite build-minsize build minsize MinSizeRel
suite build-native build native Native
suite build-asan build asan Asan -DHALE_TEST_HOOKS=ON
suite build-checks /usr/bin/python3 -m pytest -q tests/build
suite unit-asan bash -c 'cd build/asan && ctest --output-on-failure'
suite e2e-asan env HALE_BIN=build/asan/hale /usr/bin/python3 -m pytest -q tests/e2e
suite build-tsan build tsan Tsan -DHALE_TEST_HOOKS=ON
suite unit-tsan bash -c 'cd build/tsan && TSAN_OPTIONS=halt_on_error=1 ctest --output-on-failure'
# the threaded parts: concurrent requests, auth reloads, drain, shedding
suite e2e-tsan env HALE_BIN=build/tsan/hale /usr/bin/python3 -m pytest -q \
  tests/e2e/test_kv_api.py tests/e2e/test_auth.py tests/e2e/test_lifecycle.py tests/e2e/test_metrics.py
if [[ -x scripts/k8s-check.sh ]]; then
  suite k8s-check scripts/k8s-check.sh
fi
if [[ -d tests/k8s ]] && ls tests/k8s/test_*.py >/dev/null 2>&1; then
  suite k8s-tests /usr/bin/python3 -m pytest -q tests/k8s
fi
suite test-image scripts/test-image.sh
if [[ -x scripts/fuzz.sh ]]; then
  suite fuzz-short scripts/fuzz.sh "${FUZZ_SECONDS:-30}"
fi

echo
if ((failed)); then
  echo "failed suites: ${failures[*]}"
fi
echo "$passed passed, $failed failed"
((failed == 0))
