#!/usr/bin/env bash
# Starts, stops and reports the real PostgreSQL 15 and Redis 7 the tests run
# against: Debian packages, 127.0.0.1 only, non-default ports, data in a
# throw-away directory, each server under its own system user.
#
# Usage: scripts/services.sh start|stop|status|env [pg|redis|all]
#        scripts/services.sh freeze|thaw pg|redis   (SIGSTOP/SIGCONT: a hung server)
#
#   start   installs the packages if missing (as root), creates the data
#           directories on first use, starts what is not running, waits
#           (bounded) until it answers, then prints the URLs on stdout as
#           `export NAME=value` lines:  eval "$(scripts/services.sh start)"
#   stop    stops what is running (PostgreSQL: fast shutdown). `stop all`
#           also removes the data directory unless HALE_SERVICES_KEEP=1.
#   status  one line per server; exit 1 when one is not running.
#   env     prints the export lines only.
# Every step is idempotent: start twice is fine, stop when stopped is fine.
#
# Environment: HALE_SERVICES_DIR, HALE_PG_PORT, HALE_REDIS_PORT. By default
# each checkout gets its own: /tmp/hale-services-<n> and ports 20000+2n and
# 20001+2n, n (0-4999) derived from the checkout's path, so that test runs
# of two checkouts on one machine (CI jobs, a developer's clones) never stop
# or restart each other's servers. The ports sit below Linux's ephemeral
# range (32768-60999): a port inside it can be held by a client socket in
# TIME-WAIT, and then the server cannot bind it. Progress goes to stderr.
set -euo pipefail

CHECKOUT=$(cd "$(dirname "$0")/.." && pwd -P)
SLOT=$(($(printf '%s' "$CHECKOUT" | cksum | cut -d' ' -f1) % 5000))
DIR=${HALE_SERVICES_DIR:-/tmp/hale-services-$SLOT}
PG_PORT=${HALE_PG_PORT:-$((20000 + 2 * SLOT))}
REDIS_PORT=${HALE_REDIS_PORT:-$((20001 + 2 * SLOT))}
PG_BIN=/usr/lib/postgresql/15/bin
PG_DATA=$DIR/pg
RUN=$DIR/run
LOGS=$DIR/log
REDIS_DIR=$DIR/redis
# Test-only credentials for throw-away servers on loopback.
PG_USER=hale PG_PASS=hale PG_DB=hale REDIS_PASS=hale
WAIT_S=30

log() { echo "services: $*" >&2; }
die() { log "$*"; exit 1; }

is_root() { [[ $(id -u) -eq 0 ]]; }

# Runs a command as the server's user when we are root, else as ourselves
# (a developer running unprivileged owns the directories already).
as_user() {
  local user=$1; shift
  if is_root; then runuser -u "$user" -- "$@"; else "$@"; fi
}

install_missing() {
  local want=()
  [[ -x $PG_BIN/initdb ]] || want+=(postgresql postgresql-client)
  command -v redis-server >/dev/null || want+=(redis-server)
  command -v redis-cli >/dev/null || want+=(redis-tools)
  ((${#want[@]} == 0)) && return 0
  is_root || die "missing packages ${want[*]}; run as root: apt-get install -y ${want[*]}"
  log "installing ${want[*]}"
  export DEBIAN_FRONTEND=noninteractive
  # keep the package scripts from starting their default instances
  local prc=
  if [[ ! -e /usr/sbin/policy-rc.d ]]; then
    printf '#!/bin/sh\nexit 101\n' >/usr/sbin/policy-rc.d
    chmod +x /usr/sbin/policy-rc.d
    prc=1
  fi
  apt-get update -qq && apt-get install -y -qq --no-install-recommends "${want[@]}" >/dev/null
  local rc=$?
  [[ -n $prc ]] && rm -f /usr/sbin/policy-rc.d
  return $rc
}

# ---- PostgreSQL ----

pg_user() { if is_root; then echo postgres; else id -un; fi; }

pg_running() {
  [[ -f $PG_DATA/PG_VERSION ]] && as_user "$(pg_user)" "$PG_BIN/pg_ctl" -D "$PG_DATA" status >/dev/null 2>&1
}

pg_psql() {
  as_user "$(pg_user)" psql -X -q -v ON_ERROR_STOP=1 -h "$RUN" -p "$PG_PORT" -d postgres "$@"
}

pg_init() {
  [[ -f $PG_DATA/PG_VERSION ]] && return 0
  local u; u=$(pg_user)
  mkdir -p "$PG_DATA" "$RUN"
  is_root && chown "$u" "$PG_DATA" "$RUN"
  chmod 700 "$PG_DATA"
  chmod 1777 "$RUN"   # both servers put sockets/pids here
  log "initdb $PG_DATA"
  local pw; pw=$(mktemp); echo "$PG_PASS" >"$pw"
  is_root && chown "$u" "$pw"
  as_user "$u" "$PG_BIN/initdb" -D "$PG_DATA" -U postgres --auth-local=trust \
    --auth-host=scram-sha-256 --pwfile="$pw" -E UTF8 --locale=C.UTF-8 >/dev/null
  rm -f "$pw"
  cat >>"$PG_DATA/postgresql.conf" <<EOF
listen_addresses = '127.0.0.1'
max_connections = 300
shared_buffers = 64MB
fsync = on
synchronous_commit = on
logging_collector = off
EOF
}

pg_start() {
  pg_init
  if ! pg_running; then
    log "starting PostgreSQL on 127.0.0.1:$PG_PORT"
    # port and socket directory on the command line, so they follow the
    # environment even for a data directory made earlier
    as_user "$(pg_user)" "$PG_BIN/pg_ctl" -D "$PG_DATA" -l "$LOGS/pg.log" -w -t "$WAIT_S" \
      -o "-c port=$PG_PORT -c unix_socket_directories=$RUN" start >/dev/null ||
      { tail -20 "$LOGS/pg.log" >&2; die "PostgreSQL did not start"; }
  fi
  local i
  for ((i = 0; i < WAIT_S * 10; i++)); do
    "$PG_BIN/pg_isready" -q -h 127.0.0.1 -p "$PG_PORT" && break
    sleep 0.1
  done
  "$PG_BIN/pg_isready" -q -h 127.0.0.1 -p "$PG_PORT" || die "PostgreSQL does not answer on $PG_PORT"
  # role and database, once
  if [[ -z $(pg_psql -tAc "SELECT 1 FROM pg_roles WHERE rolname = '$PG_USER'") ]]; then
    pg_psql -c "CREATE ROLE $PG_USER LOGIN PASSWORD '$PG_PASS'"
  fi
  if [[ -z $(pg_psql -tAc "SELECT 1 FROM pg_database WHERE datname = '$PG_DB'") ]]; then
    pg_psql -c "CREATE DATABASE $PG_DB OWNER $PG_USER"
  fi
}

pg_stop() {
  pg_running || return 0
  log "stopping PostgreSQL"
  as_user "$(pg_user)" "$PG_BIN/pg_ctl" -D "$PG_DATA" -m fast -w -t "$WAIT_S" stop >/dev/null
}

pg_pids() {
  local pid
  pid=$(head -1 "$PG_DATA/postmaster.pid" 2>/dev/null) || return 0
  echo "$pid"
  pgrep -P "$pid" || true
}

# ---- Redis ----

redis_pidfile() { echo "$RUN/redis.pid"; }

redis_running() {
  local pf; pf=$(redis_pidfile)
  [[ -f $pf ]] && kill -0 "$(cat "$pf")" 2>/dev/null
}

redis_cli() { REDISCLI_AUTH=$REDIS_PASS redis-cli -h 127.0.0.1 -p "$REDIS_PORT" "$@"; }

redis_start() {
  local u=redis
  is_root || u=$(id -un)
  mkdir -p "$REDIS_DIR" "$RUN"
  chmod 1777 "$RUN"
  is_root && chown "$u" "$REDIS_DIR"
  cat >"$DIR/redis.conf" <<EOF
bind 127.0.0.1
port $REDIS_PORT
daemonize yes
pidfile $(redis_pidfile)
logfile $LOGS/redis.log
dir $REDIS_DIR
requirepass $REDIS_PASS
save ""
appendonly no
databases 16
EOF
  if ! redis_running; then
    log "starting Redis on 127.0.0.1:$REDIS_PORT"
    : >"$LOGS/redis.log"
    is_root && chown "$u" "$LOGS/redis.log"
    as_user "$u" redis-server "$DIR/redis.conf"
  fi
  local i
  for ((i = 0; i < WAIT_S * 10; i++)); do
    [[ $(redis_cli ping 2>/dev/null) == PONG ]] && return 0
    sleep 0.1
  done
  tail -20 "$LOGS/redis.log" >&2
  die "Redis does not answer on $REDIS_PORT"
}

redis_stop() {
  redis_running || return 0
  log "stopping Redis"
  local pid i; pid=$(cat "$(redis_pidfile)")
  kill -CONT "$pid" 2>/dev/null || true
  kill -TERM "$pid" 2>/dev/null || true
  for ((i = 0; i < WAIT_S * 10; i++)); do
    kill -0 "$pid" 2>/dev/null || return 0
    sleep 0.1
  done
  die "Redis (pid $pid) did not stop"
}

print_env() {
  echo "export HALE_TEST_PG_URL=postgres://$PG_USER:$PG_PASS@127.0.0.1:$PG_PORT/$PG_DB"
  echo "export HALE_TEST_REDIS_URL=redis://:$REDIS_PASS@127.0.0.1:$REDIS_PORT/0"
}

cmd=${1:-status}
what=${2:-all}
case $what in pg|redis|all) ;; *) die "unknown server '$what' (pg|redis|all)" ;; esac

case $cmd in
  start)
    install_missing
    mkdir -p "$DIR" "$LOGS"
    chmod 1777 "$LOGS"   # each server writes its own log here
    [[ $what != redis ]] && pg_start
    [[ $what != pg ]] && redis_start
    print_env
    ;;
  stop)
    [[ -d $DIR ]] || exit 0
    [[ $what != redis ]] && pg_stop
    [[ $what != pg ]] && redis_stop
    if [[ $what == all && ${HALE_SERVICES_KEEP:-0} != 1 ]]; then rm -rf "$DIR"; fi
    ;;
  status)
    rc=0
    if pg_running; then echo "postgresql: running on 127.0.0.1:$PG_PORT"; else echo "postgresql: stopped"; rc=1; fi
    if redis_running; then echo "redis: running on 127.0.0.1:$REDIS_PORT"; else echo "redis: stopped"; rc=1; fi
    exit $rc
    ;;
  env)
    print_env
    ;;
  freeze|thaw)
    sig=STOP; [[ $cmd == thaw ]] && sig=CONT
    case $what in
      pg) pids=$(pg_pids) ;;
      redis) pids=$(cat "$(redis_pidfile)" 2>/dev/null || true) ;;
      *) die "freeze/thaw take pg or redis" ;;
    esac
    [[ -n $pids ]] || die "$what is not running"
    # shellcheck disable=SC2086
    kill -"$sig" $pids
    ;;
  *)
    die "usage: $0 start|stop|status|env|freeze|thaw [pg|redis|all]"
    ;;
esac
