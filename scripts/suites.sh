# shellcheck shell=bash
# Sourced by scripts/run-tests.sh: `suite NAME CMD...` runs one suite in the
# current shell (so a suite may set variables), shows its output and keeps
# it in $HALE_TEST_LOGS/NAME.log (default build/test-logs); `summary` prints
# the per-suite table and, as the last line, the real totals over every
# runner (scripts/count-tests.py), e.g.
#   "1234 passed, 0 failed (21 suites: 21 passed, 0 failed)".
# A suite whose count cannot be read counts as one test, passed or failed by
# its exit status; a suite that fails with no failed test in its count (a
# crash, a collection error) adds one failed test, so the totals say
# "M failed" with M > 0 whenever any suite failed. Returns non-zero then.
HALE_TEST_LOGS=${HALE_TEST_LOGS:-build/test-logs}
suites_passed=0
suites_failed=0
tests_passed=0
tests_failed=0
failures=()
suite_rows=()

suite() {
  local name=$1; shift
  local log=$HALE_TEST_LOGS/$name.log t0=$SECONDS rc tee_pid i counts
  local p f s result
  mkdir -p "$HALE_TEST_LOGS"
  echo
  echo "=== suite: $name"
  "$@" > >(tee "$log") 2>&1
  rc=$?
  tee_pid=$!
  # tee ends when the suite's output closes; a daemon the suite left behind
  # could keep it open, so wait at most 5 s
  for ((i = 0; i < 50; i++)); do
    kill -0 "$tee_pid" 2>/dev/null || break
    sleep 0.1
  done
  if counts=$(/usr/bin/python3 "${BASH_SOURCE[0]%/*}/count-tests.py" "$log"); then
    read -r p f s <<<"$counts"
    if ((rc != 0 && f == 0)); then f=1; fi
  else
    s=0
    if ((rc == 0)); then p=1 f=0; else p=0 f=1; fi
  fi
  tests_passed=$((tests_passed + p))
  tests_failed=$((tests_failed + f))
  if ((rc == 0)); then
    result=PASS
    suites_passed=$((suites_passed + 1))
  else
    result=FAIL
    suites_failed=$((suites_failed + 1))
    failures+=("$name")
  fi
  echo "=== suite $name: $result ($((SECONDS - t0)) s; $p passed, $f failed, $s skipped)"
  suite_rows+=("$(printf '%-16s %-4s %7d %7d %7d %6d' "$name" "$result" "$p" "$f" "$s" $((SECONDS - t0)))")
  return 0
}

summary() {
  echo
  printf '%-16s %-4s %7s %7s %7s %6s\n' suite result passed failed skipped secs
  local row
  for row in "${suite_rows[@]}"; do echo "$row"; done
  if ((suites_failed)); then
    echo "failed suites: ${failures[*]}"
  fi
  echo "$tests_passed passed, $tests_failed failed" \
    "($((suites_passed + suites_failed)) suites: $suites_passed passed, $suites_failed failed)"
  ((suites_failed == 0))
}
