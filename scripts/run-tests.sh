#!/usr/bin/env bash
# Runs every test suite of `make test` in order and ends with the per-suite
# table and one summary line CI can read, the real test totals:
# "N passed, M failed (S suites: ...)" (scripts/suites.sh). A suite that
# cannot run (a tool or a service missing) is reported as failed, never
# skipped.
set -uo pipefail
cd "$(dirname "$0")/.." || exit 1
export JOBS=${JOBS:-$(nproc)}   # scripts/build.sh reads it
# a unit test whose service URL is missing fails here, never skips
# (tests/unit/service_env.h)
export HALE_REQUIRE_SERVICES=1
# suite NAME CMD... and summary: per-suite logs in build/test-logs/, the
# totals counted over every runner
# shellcheck source=scripts/suites.sh
source scripts/suites.sh

# the Makefile's build function: keeps each build dir's generator
build() { scripts/build.sh "$1"; }

# Real PostgreSQL 15 and Redis 7 for the unit tests (HALE_TEST_PG_URL,
# HALE_TEST_REDIS_URL) and the end-to-end tests; removed when this ends.
services_up() {
  local out
  out=$(scripts/services.sh start) && eval "$out"
}
trap 'scripts/services.sh stop all >/dev/null 2>&1' EXIT
# a test that needs a server fails without its URL (never skipped here)
export HALE_REQUIRE_SERVICES=1
suite services services_up
suite build-debug build debug
suite unit bash -c 'cd build/debug && ctest --output-on-failure'
# the request parser against h11 (R: E6): corpus + 3000 seeded mutations
suite h11-diff env HALE_HTTP_DECODER=build/debug/http_decoder /usr/bin/python3 -m pytest -q -s tests/http
suite e2e env HALE_BIN=build/debug/hale /usr/bin/python3 -m pytest -q tests/e2e --ignore=tests/e2e/test_failover.py
# PostgreSQL failover on a primary + standby of its own (services.sh start
# pg-ha): sync loses no acknowledged write, async reports its loss (R: F3);
# e2e-asan runs it too
suite failover env HALE_BIN=build/debug/hale /usr/bin/python3 -m pytest -q tests/e2e/test_failover.py
# sd_notify, socket activation and the shipped units, without systemd as
# PID 1 (R: R5): a NOTIFY_SOCKET listener, systemd-socket-activate, a parent
# that restarts hale on one socket, systemd-analyze verify/security
suite systemd env HALE_BIN=build/debug/hale /usr/bin/python3 -m pytest -q tests/systemd
# the key-value suite again on PostgreSQL and on PostgreSQL + Redis
suite e2e-backends env HALE_BIN=build/debug/hale HALE_BACKENDS="pg pg+redis" scripts/test-backends.sh \
  tests/e2e/test_kv_api.py tests/e2e/test_http_cache.py tests/e2e/test_secrets_leak.py tests/e2e/test_auth.py
# line and branch coverage of src/ (unit + e2e on build/coverage): prints
# the totals, fails when a module falls below tests/coverage-floor.txt (R: T3)
suite coverage scripts/coverage.sh --check
# the TOML decoder against the toml-test corpus Debian ships (our own runner,
# tests/toml/toml_test.py) and against python3-tomli; ../shared/toml-test is
# an extra run only when present (it exists in one workplace)
suite toml-test tests/toml/toml_test.py build/debug/toml_decoder
suite toml-tomli env HALE_TOML_DECODER=build/debug/toml_decoder /usr/bin/python3 -m pytest -q tests/toml
if [[ -d ${SHARED:-../shared}/toml-test/valid ]]; then
  suite toml-test-shared tests/toml/toml_test.py build/debug/toml_decoder "${SHARED:-../shared}/toml-test"
fi
suite lint scripts/lint.sh
suite build-release build release
suite build-minsize build minsize
suite build-native build native
suite build-asan build asan
# the SQLite-only build of the sqlite image (tests/build/test_sqlite_only.py)
suite build-sqlite build sqlite
suite build-checks /usr/bin/python3 -m pytest -q tests/build
# libhale (R: R1-R3): the ABI against abi/libhale.so.0.abi; make install
# into a temp prefix, the example built out of tree both ways, Doxygen over
# the installed headers, abidiff failing on tweaked copies
suite abi-check scripts/abi-check.sh
suite lib /usr/bin/python3 -m pytest -q tests/lib
suite unit-asan bash -c 'cd build/asan && ctest --output-on-failure'
suite e2e-asan env HALE_BIN=build/asan/hale /usr/bin/python3 -m pytest -q tests/e2e
suite systemd-asan env HALE_BIN=build/asan/hale /usr/bin/python3 -m pytest -q tests/systemd
suite build-tsan build tsan
suite unit-tsan bash -c 'cd build/tsan && TSAN_OPTIONS=halt_on_error=1 ctest --output-on-failure'
# the threaded parts: concurrent requests, auth reloads, drain, shedding
# (the list is tests/e2e/tsan-suites.txt, shared with `make test-tsan`)
mapfile -t tsan_e2e < <(sed 's/#.*//; /^[[:space:]]*$/d' tests/e2e/tsan-suites.txt)
suite e2e-tsan env HALE_BIN=build/tsan/hale /usr/bin/python3 -m pytest -q "${tsan_e2e[@]}"
if [[ -x scripts/k8s-check.sh ]]; then
  suite k8s-check scripts/k8s-check.sh
fi
if [[ -d tests/k8s ]] && ls tests/k8s/test_*.py >/dev/null 2>&1; then
  suite k8s-tests /usr/bin/python3 -m pytest -q tests/k8s
fi
suite test-image scripts/test-image.sh
# the Debian packages (R: R4): dpkg-buildpackage, lintian, installed and run
# in a fresh container of the local Debian base
suite deb /usr/bin/python3 -m pytest -q tests/deb
if [[ -x scripts/fuzz.sh ]]; then
  suite fuzz-short scripts/fuzz.sh "${FUZZ_SECONDS:-30}"
fi

summary
