#!/usr/bin/env bash
# Line and branch coverage of src/ per module (make coverage, and the
# coverage suite of make test):
#   scripts/coverage.sh [--check]
# builds build/coverage (gcc --coverage, -O0: scripts/build.sh coverage),
# clears its counters, runs the C unit tests (ctest), the end-to-end suite
# (tests/e2e, HALE_BIN=build/coverage/hale; SQLite unless a test picks
# another store) and Debian's toml-test corpus through the TOML decoder on
# it, then prints the
# table of scripts/coverage-report.py (gcovr's JSON summary; the annotated
# sources are in build/coverage/html/index.html).
#
# --check (make test): prints only the totals and compares every module with
# its committed floor in tests/coverage-floor.txt; exits 1 only when a module
# is below its floor (a runner's failing tests are shown, and judged by that
# runner's own suite; a runner that could not run at all leaves its modules
# below their floors). The runners' output goes to
# build/coverage/unit.log, e2e.log and toml-corpus.log (not to stdout, so make test's totals
# do not count those tests twice).
#
# The unit tests need the real PostgreSQL and Redis: when HALE_TEST_PG_URL
# is not set, this starts this checkout's servers (scripts/services.sh) and
# stops them at the end if it started them.
set -uo pipefail
cd "$(dirname "$0")/.." || exit 1
check=0
if [[ ${1:-} == --check ]]; then check=1; fi
dir=build/coverage
floor=tests/coverage-floor.txt

command -v gcovr >/dev/null 2>&1 || {
  echo "coverage: gcovr missing (scripts/install-deps.sh test installs it)" >&2
  exit 1
}
scripts/build.sh coverage >"$dir.build.log" 2>&1 || {
  cat "$dir.build.log"
  echo "coverage: build failed" >&2
  exit 1
}

if [[ -z ${HALE_TEST_PG_URL:-} || -z ${HALE_TEST_REDIS_URL:-} ]]; then
  if ! scripts/services.sh status >/dev/null 2>&1; then
    echo "coverage: starting this checkout's PostgreSQL and Redis (scripts/services.sh), stopped at the end"
    trap 'scripts/services.sh stop all >/dev/null 2>&1' EXIT
  fi
  out=$(scripts/services.sh start) || { echo "coverage: services did not start" >&2; exit 1; }
  eval "$out"
fi

find "$dir" -name '*.gcda' -delete
rc=0
run() {
  local name=$1 log=$dir/$1.log; shift
  if "$@" >"$log" 2>&1; then
    echo "coverage: $name: ok ($(grep -E 'tests passed|passed' "$log" | tail -1 | sed 's/^=* *//; s/ *=*$//'))"
  else
    # the runners' failures are judged by their own suites of make test;
    # here they count only through the coverage they leave (the floors)
    echo "coverage: $name had failures (not judged here; tail of $log):"
    tail -30 "$log" | sed "s/^/  | /" # prefixed: make test counts its own runners only
  fi
}
run unit bash -c "cd $dir && ctest --output-on-failure"
run e2e env HALE_BIN="$dir/hale" /usr/bin/python3 -m pytest -q tests/e2e
# the TOML lexer's many forms: every document of Debian's toml-test corpus
# through the decoder (coverage only; the toml-test suite judges answers)
# shellcheck disable=SC2317  # called through run
toml_corpus() {
  local corpus=/usr/share/gocode/src/github.com/BurntSushi/toml/internal/toml-test/tests f n=0
  [[ -d $corpus/valid && -d $corpus/invalid ]] || {
    echo "toml corpus $corpus missing (golang-github-burntsushi-toml-dev: make test-deps)"
    return 1
  }
  while IFS= read -r -d '' f; do
    timeout 10 "$dir/toml_decoder" <"$f" >/dev/null 2>&1
    (($? < 124)) || { echo "toml_decoder crashed or hung on $f"; return 1; }
    n=$((n + 1))
  done < <(find "$corpus" -name '*.toml' -print0)
  echo "$n documents decoded, 0 crashes: toml corpus passed"
}
run toml-corpus toml_corpus

mkdir -p "$dir/html"
if ! gcovr -r . "$dir" -f 'src/' --exclude-unreachable-branches \
     --json-summary "$dir/summary.json" --html-details "$dir/html/index.html" \
     >"$dir/gcovr.log" 2>&1; then
  cat "$dir/gcovr.log"
  echo "coverage: gcovr failed" >&2
  exit 1
fi
if ((check)); then
  /usr/bin/python3 scripts/coverage-report.py "$dir/summary.json" --totals-only --floor "$floor" || rc=1
  echo "coverage: the table per module: make coverage, or $dir/html/index.html"
else
  /usr/bin/python3 scripts/coverage-report.py "$dir/summary.json" --floor "$floor" || rc=1
  echo "coverage: annotated sources: $dir/html/index.html"
fi
exit $rc
