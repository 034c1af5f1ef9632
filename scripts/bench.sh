#!/usr/bin/env bash
# `make bench`: the benchmark (bench/run.sh) with the PostgreSQL and
# PostgreSQL+Redis rows added: starts the project's own PostgreSQL and Redis
# (scripts/services.sh), runs every server back to back, stops them after.
# BENCH_NO_BACKENDS=1 skips the PostgreSQL/Redis rows.
# HALE_BENCH_BIN=/path/to/hale measures that binary instead of
# build/release/hale (`make bench` then skips the release build).
set -euo pipefail
if [[ -n ${HALE_BENCH_BIN:-} && $HALE_BENCH_BIN != /* ]]; then
  HALE_BENCH_BIN=$PWD/$HALE_BENCH_BIN
fi
export HALE_BENCH_BIN
cd "$(dirname "$0")/.." || exit 1
if [[ -z ${BENCH_NO_BACKENDS:-} ]]; then
  out=$(scripts/services.sh start)
  eval "$out"
  trap 'scripts/services.sh stop all >/dev/null 2>&1 || true' EXIT
  # blocking store calls: as many workers as pool connections (README)
  pg="DATABASE_URL=$HALE_TEST_PG_URL APP_SERVER__WORKERS=16 APP_DATABASE__MAX_CONNECTIONS=16"
  export BENCH_HALE_CONFIGS="hale-pg@get,put: $pg; hale-pg-redis@get,put: $pg REDIS_URL=$HALE_TEST_REDIS_URL"
fi
bench/run.sh "$@"
