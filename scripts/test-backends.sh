#!/usr/bin/env bash
# Runs the key-value end-to-end suite once per backend: SQLite, PostgreSQL,
# PostgreSQL behind the Redis cache (R: A6 A7). PostgreSQL and Redis are the
# real servers of scripts/services.sh, started here when needed and left
# running (scripts/services.sh stop all removes them).
#
# Usage: scripts/test-backends.sh [pytest args...]   default: tests/e2e/test_kv_api.py
# HALE_BIN selects the binary (default build/debug/hale); HALE_BACKENDS the
# list (default "sqlite pg pg+redis"). Exit status: 0 when every run passed.
set -uo pipefail
cd "$(dirname "$0")/.." || exit 1
export HALE_BIN=${HALE_BIN:-build/debug/hale}
eval "$(scripts/services.sh start)" || exit 1
args=("$@")
((${#args[@]})) || args=(tests/e2e/test_kv_api.py)
rc=0
for b in ${HALE_BACKENDS:-sqlite pg pg+redis}; do
  echo "=== backend $b"
  if ! HALE_TEST_BACKEND=$b /usr/bin/python3 -m pytest -q "${args[@]}"; then
    echo "=== backend $b: FAIL"
    rc=1
  fi
done
exit $rc
