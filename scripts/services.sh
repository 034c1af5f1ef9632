#!/usr/bin/env bash
# Starts, stops and reports the real PostgreSQL 15 and Redis 7 the tests run
# against: Debian packages, 127.0.0.1 only, non-default ports, data in a
# throw-away directory, each server under its own system user.
#
# Usage: scripts/services.sh start|stop|status|env [pg|redis|all]
#        scripts/services.sh freeze|thaw pg|redis   (SIGSTOP/SIGCONT: a hung server)
#        scripts/services.sh start pg-ha [sync|async]
#        scripts/services.sh crash|promote|stop|env pg-ha
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
# pg-ha (failover tests, F3): a PostgreSQL 15 primary and a streaming
# standby of it, on ports 10000+2n and 10001+2n (HALE_PG_HA_PORT sets the
# first). `start pg-ha sync` (the default) makes the standby synchronous
# (synchronous_standby_names, synchronous_commit = on: a commit returns once
# the standby has flushed it); `start pg-ha async` makes it asynchronous; on
# a running pair it only switches the mode. The export lines name
# HALE_TEST_PG_HA_URL (both hosts, target_session_attrs=read-write: libpq
# connects to whichever takes writes) and one URL per node. `crash pg-ha`
# stops the primary at once (immediate: no shutdown checkpoint, nothing more
# sent to the standby), `promote pg-ha` promotes the standby and waits until
# it takes writes, `freeze|thaw pg-ha` SIGSTOPs/SIGCONTs the standby (it
# falls behind), `stop pg-ha` stops both and removes their data (a pair
# that failed over is not a pair any more). `stop all` stops it too.
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

# ---- PostgreSQL primary + streaming standby (pg-ha) ----

HA_PORT1=${HALE_PG_HA_PORT:-$((10000 + 2 * SLOT))}
HA_PORT2=$((HA_PORT1 + 1))
HA1=$DIR/pg-ha-1
HA2=$DIR/pg-ha-2
HA_STANDBY_NAME=hale_standby

ha_ctl() { as_user "$(pg_user)" "$PG_BIN/pg_ctl" "$@"; }
ha_running() { [[ -f $1/PG_VERSION ]] && ha_ctl -D "$1" status >/dev/null 2>&1; }
ha_psql() {
  local port=$1; shift
  as_user "$(pg_user)" psql -X -q -v ON_ERROR_STOP=1 -h "$RUN" -p "$port" -d postgres "$@"
}

ha_start_node() {
  local data=$1 port=$2 name=$3
  ha_running "$data" && return 0
  log "starting PostgreSQL $name on 127.0.0.1:$port"
  ha_ctl -D "$data" -l "$LOGS/pg-ha-$name.log" -w -t "$WAIT_S" \
    -o "-c port=$port -c unix_socket_directories=$RUN" start >/dev/null ||
    { tail -20 "$LOGS/pg-ha-$name.log" >&2; die "PostgreSQL $name did not start"; }
}

ha_init() {
  [[ -f $HA1/PG_VERSION && -f $HA2/PG_VERSION ]] && return 0
  rm -rf "$HA1" "$HA2"
  local u; u=$(pg_user)
  mkdir -p "$HA1" "$HA2" "$RUN"
  is_root && chown "$u" "$HA1" "$HA2" "$RUN"
  chmod 700 "$HA1" "$HA2"
  chmod 1777 "$RUN"
  log "initdb $HA1 (primary)"
  local pw; pw=$(mktemp); echo "$PG_PASS" >"$pw"
  is_root && chown "$u" "$pw"
  as_user "$u" "$PG_BIN/initdb" -D "$HA1" -U postgres --auth-local=trust \
    --auth-host=scram-sha-256 --pwfile="$pw" -E UTF8 --locale=C.UTF-8 >/dev/null
  rm -f "$pw"
  printf '%s\n' "listen_addresses = '127.0.0.1'" "max_connections = 100" "shared_buffers = 32MB" \
    "fsync = on" "synchronous_commit = on" "wal_level = replica" "max_wal_senders = 4" \
    "wal_keep_size = 64MB" "hot_standby = on" "logging_collector = off" >>"$HA1/postgresql.conf"
  ha_start_node "$HA1" "$HA_PORT1" primary
  ha_psql "$HA_PORT1" -c "CREATE ROLE $PG_USER LOGIN PASSWORD '$PG_PASS'"
  ha_psql "$HA_PORT1" -c "CREATE DATABASE $PG_DB OWNER $PG_USER"
  ha_psql "$HA_PORT1" -c "GRANT pg_monitor TO $PG_USER" # replication lag, for the reports
  log "pg_basebackup $HA2 (standby)"
  as_user "$u" "$PG_BIN/pg_basebackup" -h "$RUN" -p "$HA_PORT1" -U postgres -D "$HA2" -X stream -c fast
  as_user "$u" touch "$HA2/standby.signal"
  echo "primary_conninfo = 'host=$RUN port=$HA_PORT1 user=postgres application_name=$HA_STANDBY_NAME'" |
    as_user "$u" tee -a "$HA2/postgresql.auto.conf" >/dev/null
}

ha_start() {
  local mode=${1:-sync} names='' sync_state=async i
  [[ $mode == sync || $mode == async ]] || die "pg-ha mode must be sync or async, not '$mode'"
  ha_init
  ha_start_node "$HA1" "$HA_PORT1" primary
  ha_start_node "$HA2" "$HA_PORT2" standby
  if [[ $mode == sync ]]; then names=$HA_STANDBY_NAME sync_state=sync; fi
  # on the primary only: the standby's copy of the settings stays without,
  # so that once promoted it does not wait for a standby it does not have
  ha_psql "$HA_PORT1" -c "ALTER SYSTEM SET synchronous_standby_names = '$names'" \
    -c "SELECT pg_reload_conf()" >/dev/null
  for ((i = 0; i < WAIT_S * 10; i++)); do
    [[ -n $(ha_psql "$HA_PORT1" -tAc "SELECT 1 FROM pg_stat_replication
        WHERE application_name = '$HA_STANDBY_NAME' AND state = 'streaming'
          AND sync_state = '$sync_state'") ]] && return 0
    sleep 0.1
  done
  die "the standby is not streaming ($mode) after ${WAIT_S}s"
}

ha_stop() {
  local d
  for d in "$HA1" "$HA2"; do
    if ha_running "$d"; then
      log "stopping PostgreSQL $d"
      ha_ctl -D "$d" -m immediate -w -t "$WAIT_S" stop >/dev/null || true
    fi
  done
  rm -rf "$HA1" "$HA2"
}

ha_env() {
  local auth=$PG_USER:$PG_PASS
  echo "export HALE_TEST_PG_HA_URL='postgres://$auth@127.0.0.1:$HA_PORT1,127.0.0.1:$HA_PORT2/$PG_DB?target_session_attrs=read-write'"
  echo "export HALE_TEST_PG_HA_PRIMARY_URL=postgres://$auth@127.0.0.1:$HA_PORT1/$PG_DB"
  echo "export HALE_TEST_PG_HA_STANDBY_URL=postgres://$auth@127.0.0.1:$HA_PORT2/$PG_DB"
}

ha_cmd() {
  install_missing
  case $1 in
    start) mkdir -p "$DIR" "$LOGS"; chmod 1777 "$LOGS"; ha_start "${2:-sync}"; ha_env ;;
    stop) [[ -d $DIR ]] && ha_stop; return 0 ;;
    env) ha_env ;;
    crash)
      ha_running "$HA1" || die "the pg-ha primary is not running"
      log "crashing the pg-ha primary (immediate stop)"
      ha_ctl -D "$HA1" -m immediate -w -t "$WAIT_S" stop >/dev/null
      ;;
    promote)
      ha_running "$HA2" || die "the pg-ha standby is not running"
      log "promoting the pg-ha standby"
      ha_ctl -D "$HA2" -w -t "$WAIT_S" promote >/dev/null
      ;;
    freeze|thaw)
      # the standby: it stops receiving WAL (a lagging or cut-off standby)
      local sig=STOP pid pids
      [[ $1 == thaw ]] && sig=CONT
      pid=$(head -1 "$HA2/postmaster.pid" 2>/dev/null) || die "the pg-ha standby is not running"
      pids="$pid $(pgrep -P "$pid" | tr '\n' ' ')"
      # shellcheck disable=SC2086
      kill -"$sig" $pids
      ;;
    *) die "pg-ha takes start [sync|async], stop, env, crash, promote, freeze, thaw" ;;
  esac
}

print_env() {
  echo "export HALE_TEST_PG_URL=postgres://$PG_USER:$PG_PASS@127.0.0.1:$PG_PORT/$PG_DB"
  echo "export HALE_TEST_REDIS_URL=redis://:$REDIS_PASS@127.0.0.1:$REDIS_PORT/0"
}

cmd=${1:-status}
what=${2:-all}
if [[ $what == pg-ha ]]; then ha_cmd "$cmd" "${3:-}"; exit 0; fi
case $what in pg|redis|all) ;; *) die "unknown server '$what' (pg|redis|pg-ha|all)" ;; esac

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
    [[ $what == all ]] && ha_stop
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
