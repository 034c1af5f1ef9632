#!/usr/bin/env bash
# hale benchmark (P1, P2): hale side by side with two axum peers (the guide's
# own stack: `axum` written the usual way, `axum-lean` the leanest handlers)
# and nginx (`return 200`, the ceiling), back to back in one run, with wrk on
# loopback. See bench/NOTES.md for what is measured and how.
#
# Usage: bench/run.sh            (what `make bench` calls; ~7 minutes)
#        BENCH_QUICK=1 bench/run.sh   (shorter runs and fewer starts)
#        HALE_BENCH_BIN=/path/to/hale bench/run.sh   (another hale binary)
#
# Knobs (environment):
#   HALE_BENCH_BIN           the hale binary to measure (default
#                            build/release/hale; HALE_BIN is the older name)
#   BENCH_QUICK=1            3 s runs instead of 5 s, 5 starts instead of 20
#   BENCH_DURATION=N         seconds per measured wrk run
#   BENCH_WARMUP=N           seconds of unrecorded warm-up per scenario (1;
#                            quick mode: once per server start)
#   BENCH_CONNS="64 256"     connection counts
#   BENCH_MODES="pinned unpinned"
#   BENCH_SERVERS="hale hale-accesslog axum axum-lean nginx"   (extras are appended)
#   BENCH_STARTS=20          starts for the start-to-ready median (quick: 5)
#   BENCH_IDLE_CONNS=1000    keep-alive connections for the RSS measure
#   BENCH_SKIP_STATIC=1      skip start-to-ready / idle RSS / sizes
#   BENCH_HALE_CONFIGS       extra hale configurations, entries separated by
#                            ';' or newlines, each  NAME[@SCENARIOS]: K=V K=V
#                            e.g. "hale-pg@get,put: DATABASE_URL=postgres://b@127.0.0.1/b"
#                            (values are passed to hale only, never recorded)
#   BENCH_HALE_METRICS_PORT  run hale's admin listener on this port (default: off)
#   BENCH_PORT_BASE=18080    hale +0, axum +1, nginx +2, hale-accesslog +3,
#                            axum-lean +4, extra configurations +10...
#   BENCH_KEEP=1             keep the work directory (logs, databases)
#   BENCH_DIR                parent of the work directory (/var/tmp: on disk,
#                            so that fsync costs what it costs)
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
BENCH=$ROOT/bench
PY=/usr/bin/python3
export PATH="$PATH:${CARGO_HOME:-$HOME/.cargo}/bin"

QUICK=${BENCH_QUICK:-0}
if [[ $QUICK == 1 ]]; then DEF_DURATION=3; DEF_STARTS=5; else DEF_DURATION=5; DEF_STARTS=20; fi
DURATION=${BENCH_DURATION:-$DEF_DURATION}
WARMUP=${BENCH_WARMUP:-1}
read -r -a CONNS <<<"${BENCH_CONNS:-64 256}"
read -r -a MODES <<<"${BENCH_MODES:-pinned unpinned}"
read -r -a SERVERS <<<"${BENCH_SERVERS:-hale hale-accesslog axum axum-lean nginx}"
STARTS=${BENCH_STARTS:-$DEF_STARTS}
IDLE_CONNS=${BENCH_IDLE_CONNS:-1000}
GET_KEYS=1000
VALUE_SIZE=1024
# Any hale binary will do (whatever engine it is built on): nothing here
# depends on how it was built or what it links.
HALE_BIN_SET=${HALE_BENCH_BIN:-${HALE_BIN:-}}
HALE_BIN=${HALE_BIN_SET:-$ROOT/build/release/hale}
[[ $HALE_BIN == /* ]] || HALE_BIN=$PWD/$HALE_BIN
# hale's admin (metrics) listener: off (APP_METRICS__ENABLED=false) unless a
# port is given.
HALE_METRICS_PORT=${BENCH_HALE_METRICS_PORT:-}
# Both axum peers are one Cargo workspace (one lock file, one target dir).
PEERS_DIR=$BENCH/peers
AXUM_BIN=$PEERS_DIR/target/release/axum-peer
AXUM_LEAN_BIN=$PEERS_DIR/target/release/axum-lean
NGINX_BIN=$(command -v nginx || echo /usr/sbin/nginx)
NPROC=$(nproc)
SERVER_CPU=0
WRK_CPU=$((NPROC > 1 ? 1 : 0))
# Shorter than a run, so that requests stuck in a stalled server are counted.
WRK_TIMEOUT=2s
CLK_TCK=$(getconf CLK_TCK)

log() { printf '[bench %s] %s\n' "$(date +%T)" "$*" >&2; }
die() { log "error: $*"; exit 1; }

# ---------------------------------------------------------------- checks ---
for tool in wrk taskset setsid pgrep "$PY"; do
  command -v "$tool" >/dev/null 2>&1 ||
    die "$tool not found: run scripts/install-bench-deps.sh"
done
[[ -x $NGINX_BIN ]] || die "nginx not found: run scripts/install-bench-deps.sh"
"$PY" -c 'import matplotlib' 2>/dev/null ||
  die "python3-matplotlib missing: run scripts/install-bench-deps.sh"
command -v cargo >/dev/null 2>&1 || die "cargo not found (needed for the axum peers)"
# 1,000 keep-alive connections plus wrk's need more descriptors than 1024.
ulimit -n "$(ulimit -Hn)" 2>/dev/null || true

# ------------------------------------------------------------ work dir -----
mkdir -p "${BENCH_DIR:-/var/tmp}"
WORK=$(mktemp -d "${BENCH_DIR:-/var/tmp}/hale-bench.XXXXXX")
RAW=$WORK/raw.jsonl
: >"$RAW"
declare -a LIVE_PGIDS=()

cleanup() {
  local pg
  for pg in "${LIVE_PGIDS[@]}"; do kill -TERM -- "-$pg" 2>/dev/null || true; done
  sleep 0.3
  for pg in "${LIVE_PGIDS[@]}"; do kill -KILL -- "-$pg" 2>/dev/null || true; done
  if [[ ${BENCH_KEEP:-0} == 1 || ${ANOMALIES:-0} -gt 0 ]]; then
    log "work directory kept (servers' logs, databases, raw records): $WORK"
  else
    rm -rf "$WORK"
  fi
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# -------------------------------------------------------------- servers ----
# Each server: a kind (hale|axum|nginx), a port, scenarios, extra env.
declare -A KIND PORT SCEN XENV
PB=${BENCH_PORT_BASE:-18080}
KIND[hale]=hale; PORT[hale]=$PB; SCEN[hale]="liveness get put"; XENV[hale]=""
KIND[hale-accesslog]=hale; PORT[hale-accesslog]=$((PB + 3)); SCEN[hale-accesslog]="liveness get"
# Access lines are logged at info level: LOG_LEVEL=warn would drop them.
XENV[hale-accesslog]="APP_LOG__ACCESS=true LOG_LEVEL=info"
KIND[axum]=axum; PORT[axum]=$((PB + 1)); SCEN[axum]="liveness get put"; XENV[axum]=""
KIND[axum-lean]=axum; PORT[axum-lean]=$((PB + 4)); SCEN[axum-lean]="liveness get put"; XENV[axum-lean]=""
KIND[nginx]=nginx; PORT[nginx]=$((PB + 2)); SCEN[nginx]="liveness"; XENV[nginx]=""

# Extra hale configurations (PostgreSQL, Redis, ...): NAME[@SCEN,..]: K=V ...
next_port=$((PB + 10))
if [[ -n ${BENCH_HALE_CONFIGS:-} ]]; then
  while IFS= read -r entry; do
    entry=${entry#"${entry%%[![:space:]]*}"}
    [[ -z $entry ]] && continue
    [[ $entry == *:* ]] || die "BENCH_HALE_CONFIGS entry without ':': $entry"
    head=${entry%%:*}
    envs=${entry#*:}
    name=${head%%@*}
    scen="get put"
    [[ $head == *@* ]] && scen=${head#*@} && scen=${scen//,/ }
    [[ $name =~ ^[a-z0-9][a-z0-9-]*$ ]] || die "bad configuration name: $name"
    [[ -z ${KIND[$name]:-} ]] || die "configuration name already used: $name"
    KIND[$name]=hale; PORT[$name]=$next_port; SCEN[$name]=$scen; XENV[$name]=$envs
    next_port=$((next_port + 1))
    SERVERS+=("$name")
  done < <(tr ';' '\n' <<<"$BENCH_HALE_CONFIGS")
fi

# ---------------------------------------------------------------- build ----
for s in "${SERVERS[@]}"; do
  [[ -n ${KIND[$s]:-} ]] || die "unknown server in BENCH_SERVERS: $s"
done
log "building the axum peers (cargo build --release)"
# Offline first: scripts/install-bench-deps.sh fetched the locked crates.
(cd "$PEERS_DIR" && { cargo build --release --locked --offline --quiet 2>/dev/null ||
                      cargo build --release --locked --quiet; }) ||
  die "cargo build of the axum peers failed"

HAVE_HALE=1
if [[ ! -x $HALE_BIN ]]; then
  # A binary asked for by name must be there; the default may be unbuilt.
  [[ -z $HALE_BIN_SET ]] || die "HALE_BENCH_BIN=$HALE_BIN is not an executable file"
  HAVE_HALE=0
  log "warning: $HALE_BIN not found (make release builds it); hale rows are skipped"
  filtered=()
  for s in "${SERVERS[@]}"; do [[ ${KIND[$s]} == hale ]] || filtered+=("$s"); done
  SERVERS=("${filtered[@]}")
fi

# Which hale this is: its version line, a hash, the libraries it links (so
# that results of two engines can be told apart).
HALE_VERSION="" HALE_SHA256="" HALE_NEEDED=""
if [[ $HAVE_HALE == 1 ]]; then
  HALE_VERSION=$(timeout 5 "$HALE_BIN" --version 2>/dev/null | head -n 1 || true)
  HALE_SHA256=$(sha256sum "$HALE_BIN" | cut -c1-16)
  HALE_NEEDED=$(readelf -dW "$HALE_BIN" 2>/dev/null |
    sed -n 's/.*(NEEDED).*\[\(.*\)\]/\1/p' | tr '\n' ' ' | sed 's/ $//' || true)
  log "hale: $HALE_BIN (${HALE_VERSION:-no --version}; links: ${HALE_NEEDED:-static})"
fi

# ------------------------------------------------------------ helpers ------
# The command line and environment of server $1 with $2 worker threads
# ("" = the server's default), data under directory $3. Sets CMD and ENVS.
server_cmd() {
  local name=$1 workers=$2 dir=$3 kind=${KIND[$1]} port=${PORT[$1]}
  local -a extra=()
  CMD=(); ENVS=()
  case $kind in
    hale)
      ENVS=(HOST=127.0.0.1 "PORT=$port" "APP_DATABASE__SQLITE_PATH=$dir/hale.db"
            APP_LOG__ACCESS=false LOG_LEVEL=warn)
      if [[ -n $HALE_METRICS_PORT ]]; then
        ENVS+=("APP_METRICS__PORT=$HALE_METRICS_PORT")
      else
        ENVS+=(APP_METRICS__ENABLED=false)
      fi
      [[ -n $workers ]] && ENVS+=("APP_SERVER__WORKERS=$workers")
      read -r -a extra <<<"${XENV[$name]}"
      ENVS+=("${extra[@]}")
      CMD=("$HALE_BIN")
      ;;
    axum)
      ENVS=(HOST=127.0.0.1 "PORT=$port" "SQLITE_PATH=$dir/$name.db")
      [[ -n $workers ]] && ENVS+=("WORKERS=$workers")
      if [[ $name == axum-lean ]]; then CMD=("$AXUM_LEAN_BIN"); else CMD=("$AXUM_BIN"); fi
      ;;
    nginx)
      sed -e "s|@PREFIX@|$dir|g" -e "s|@PORT@|$port|g" -e "s|@WORKERS@|${workers:-auto}|g" \
        "$BENCH/nginx.conf.in" >"$dir/nginx.conf"
      CMD=("$NGINX_BIN" -p "$dir" -e "$dir/error.log" -c "$dir/nginx.conf")
      ;;
  esac
}

# start_server NAME MODE WORKERS DIR: sets SPID (= process group id).
start_server() {
  local name=$1 mode=$2 workers=$3 dir=$4
  local -a pin=()
  mkdir -p "$dir"
  if (exec 3<>"/dev/tcp/127.0.0.1/${PORT[$name]}") 2>/dev/null; then
    die "port ${PORT[$name]} is already in use (set BENCH_PORT_BASE to move the bench's ports)"
  fi
  server_cmd "$name" "$workers" "$dir"
  [[ $mode == pinned ]] && pin=(taskset -c "$SERVER_CPU")
  # setsid: the server leads its own process group (nginx's workers join
  # it), so that the whole group can be measured and killed.
  setsid env "${ENVS[@]}" "${pin[@]}" "${CMD[@]}" >>"$dir/server.log" 2>&1 &
  SPID=$!
  LIVE_PGIDS+=("$SPID")
  if ! "$PY" "$BENCH/benchctl.py" wait --port "${PORT[$name]}" --pid "$SPID" \
      --path /health/readiness --timeout 30; then
    tail -n 20 "$dir/server.log" >&2 || true
    [[ -f $dir/error.log ]] && tail -n 20 "$dir/error.log" >&2
    die "$name did not become ready"
  fi
}

# Stops server group $1: SIGTERM; a second SIGTERM after 1 s (hale drains
# for a while on the first one and exits at once on the second); SIGKILL
# after 3 s.
stop_server() {
  local pg=$1 i
  kill -TERM -- "-$pg" 2>/dev/null || true
  for ((i = 0; i < 30; i++)); do
    group_alive "$pg" || break
    if ((i == 10)); then kill -TERM -- "-$pg" 2>/dev/null || true; fi
    sleep 0.1
  done
  kill -KILL -- "-$pg" 2>/dev/null || true
  wait "$pg" 2>/dev/null || true
  local -a keep=()
  for i in "${LIVE_PGIDS[@]}"; do [[ $i == "$pg" ]] || keep+=("$i"); done
  LIVE_PGIDS=("${keep[@]}")
}

group_pids() { pgrep -g "$1" | tr '\n' ' '; }

# True while a process of group $1 is alive (zombies do not count).
group_alive() {
  local p state
  for p in $(pgrep -g "$1"); do
    state=$(awk '{ sub(/^.*\) /, ""); print $1 }' "/proc/$p/stat" 2>/dev/null) || continue
    [[ -n $state && $state != Z ]] && return 0
  done
  return 1
}

# Sum of utime+stime (clock ticks) over the given pids.
cpu_ticks() {
  local p files=()
  for p; do files+=("/proc/$p/stat"); done
  awk '{ sub(/^.*\) /, ""); s += $12 + $13 } END { print s + 0 }' "${files[@]}" 2>/dev/null
}

# The kernel's softirq threads: network work our load causes, not other load.
read -r -a KSOFTIRQD <<<"$(pgrep -x 'ksoftirqd/[0-9]+' | tr '\n' ' ')"

# Machine-wide busy (user+nice+system+irq+softirq) and steal clock ticks.
sys_ticks() { awk '$1 == "cpu" { print $2 + $3 + $4 + $7 + $8, $9 }' /proc/stat; }

# Sum of a /proc/PID/status field (kB) over the given pids.
status_kb() {
  local field=$1 p files=()
  shift
  for p; do files+=("/proc/$p/status"); done
  awk -v f="$field:" '$1 == f { s += $2 } END { print s + 0 }' "${files[@]}" 2>/dev/null
}

# wrk_cmd MODE CONNS SECONDS SCENARIO PORT: sets WRK.
wrk_cmd() {
  local mode=$1 conns=$2 secs=$3 scen=$4 port=$5 script url
  case $scen in
    liveness) script=plain.lua; url=http://127.0.0.1:$port/health/liveness ;;
    get) script=get.lua; url=http://127.0.0.1:$port/ ;;
    put) script=put.lua; url=http://127.0.0.1:$port/ ;;
  esac
  if [[ $mode == pinned ]]; then
    WRK=(taskset -c "$WRK_CPU" wrk -t1)
  else
    WRK=(wrk "-t$NPROC")
  fi
  WRK+=("-c$conns" "-d${secs}s" --timeout "$WRK_TIMEOUT" -s "$BENCH/wrk/$script" "$url")
}

RUN_SEQ=0
ANOMALIES=0
# run_load NAME MODE WORKERS SCENARIO CONNS PGID DIR
run_load() {
  local name=$1 mode=$2 workers=$3 scen=$4 conns=$5 pg=$6 dir=$7 log0 log1 p t0 t1 k0 k1 hwm out line busy0 busy1 steal0 steal1 wrk_ticks
  local -a pids
  read -r -a pids <<<"$(group_pids "$pg")"
  RUN_SEQ=$((RUN_SEQ + 1))
  for p in "${pids[@]}"; do echo 5 >"/proc/$p/clear_refs" 2>/dev/null || true; done
  wrk_cmd "$mode" "$conns" "$DURATION" "$scen" "${PORT[$name]}"
  log0=$(stat -c %s "$dir/server.log" 2>/dev/null || echo 0)
  read -r busy0 steal0 <<<"$(sys_ticks)"
  k0=$(cpu_ticks "${KSOFTIRQD[@]}")
  t0=$(cpu_ticks "${pids[@]}")
  # `times` in the same subshell prints the CPU time of its waited-for
  # children, i.e. of wrk (through timeout and taskset).
  out=$({ BENCH_WRK_DIR=$BENCH/wrk BENCH_KEYS=$GET_KEYS BENCH_VALUE_SIZE=$VALUE_SIZE \
          BENCH_KEY_PREFIX=$([[ $scen == put ]] && echo "put$RUN_SEQ" || echo bench) \
          timeout $((DURATION + 30)) "${WRK[@]}" 2>&1 || true; }; times)
  t1=$(cpu_ticks "${pids[@]}")
  k1=$(cpu_ticks "${KSOFTIRQD[@]}")
  read -r busy1 steal1 <<<"$(sys_ticks)"
  hwm=$(status_kb VmHWM "${pids[@]}")
  log1=$(stat -c %s "$dir/server.log" 2>/dev/null || echo 0)
  wrk_ticks=$(tail -n 1 <<<"$out" | awk -v hz="$CLK_TCK" '
    function sec(t,  m) { m = t; sub(/m.*/, "", m); sub(/^[0-9]+m/, "", t); sub(/s$/, "", t)
                          return m * 60 + t }
    { printf "%d\n", (sec($1) + sec($2)) * hz + 0.5 }')
  line=$(sed -n 's/^BENCHJSON //p' <<<"$out" | tail -n 1)
  if [[ -z $line ]]; then
    log "  wrk failed for $name $scen: $(tr '\n' ' ' <<<"$out" | cut -c1-300)"
    line=null
  fi
  printf '{"kind":"load","server":"%s","mode":"%s","workers":%s,"scenario":"%s","conns":%d,"duration_s":%d,"cpu_ticks":%d,"wrk_ticks":%d,"sys_busy_ticks":%d,"sys_steal_ticks":%d,"ksoftirqd_ticks":%d,"log_bytes":%d,"peak_rss_kb":%d,"server_procs":%d,"wrk":%s}\n' \
    "$name" "$mode" "${workers:-0}" "$scen" "$conns" "$DURATION" "$((t1 - t0))" "${wrk_ticks:-0}" \
    "$((busy1 - busy0))" "$((steal1 - steal0))" "$((k1 - k0))" "$((log1 - log0))" "$hwm" \
    "${#pids[@]}" "$line" >>"$RAW"
  # One line of progress; exit status 3 flags an anomaly (wrk failed, >1%
  # errors, or a server that sat idle under load: a stall).
  if ! "$PY" - "$line" "$((t1 - t0))" "$CLK_TCK" \
    "$((busy1 - busy0 - t1 + t0 - ${wrk_ticks:-0} - k1 + k0))" <<'PY' >&2; then
import json, sys
w = json.loads(sys.argv[1])
if not w:
    sys.exit(3)
secs = w["duration_us"] / 1e6
rps = w["requests"] / secs
cpu = int(sys.argv[2]) / int(sys.argv[3]) * 1e6 / w["requests"] if w["requests"] else 0.0
util = int(sys.argv[2]) / int(sys.argv[3]) / secs
errs = sum(v for k, v in w.items() if k.startswith("err_"))
other = int(sys.argv[4]) / int(sys.argv[3]) / secs
print(f"    {rps:12.0f} req/s  p50 {w['p50_us']:7d}us  p99 {w['p99_us']:7d}us"
      f"  cpu {cpu:7.1f}us/req  other load {other:4.2f} cores"
      + (f"  errors {errs}" if errs else "") + ("  STALLED?" if util < 0.05 else ""))
sys.exit(3 if errs > 0.01 * w["requests"] or util < 0.05 else 0)
PY
    ANOMALIES=$((ANOMALIES + 1))
  fi
}

# ------------------------------------------------------------ load runs ----
# The numbers are only worth something on an otherwise idle machine.
read -r b0 _ <<<"$(sys_ticks)"; sleep 1; read -r b1 _ <<<"$(sys_ticks)"
if ((b1 - b0 > CLK_TCK / 5)); then
  log "warning: the machine is busy before the bench starts ($(awk -v t="$((b1 - b0))" \
    -v hz="$CLK_TCK" 'BEGIN { printf "%.2f", t / hz }') cores in use); results will be noisy"
fi
T_START=$(date +%s)
log "servers: ${SERVERS[*]}; modes: ${MODES[*]}; conns: ${CONNS[*]}; ${DURATION}s per run"
for mode in "${MODES[@]}"; do
  if [[ $mode == pinned ]]; then workers=1; else workers=$NPROC; fi
  for name in "${SERVERS[@]}"; do
    dir=$WORK/$name-$mode
    log "$name ($mode, $workers worker(s)): starting"
    start_server "$name" "$mode" "$workers" "$dir"
    pg=$SPID
    if [[ " ${SCEN[$name]} " == *" get "* ]]; then
      "$PY" "$BENCH/benchctl.py" preload --port "${PORT[$name]}" --keys "$GET_KEYS" \
        --size "$VALUE_SIZE" --prefix bench || die "preloading $name failed"
    fi
    first=1
    for scen in ${SCEN[$name]}; do
      # Quick mode warms up once per server start, full mode per scenario.
      if ((WARMUP > 0)) && [[ $QUICK != 1 || $first == 1 ]]; then
        wrk_cmd "$mode" "${CONNS[0]}" "$WARMUP" "$scen" "${PORT[$name]}"
        BENCH_WRK_DIR=$BENCH/wrk BENCH_KEYS=$GET_KEYS BENCH_VALUE_SIZE=$VALUE_SIZE \
          BENCH_KEY_PREFIX=$([[ $scen == put ]] && echo warm || echo bench) \
          timeout $((WARMUP + 30)) "${WRK[@]}" >/dev/null 2>&1 || true
      fi
      first=0
      for conns in "${CONNS[@]}"; do
        log "  $name $mode $scen c=$conns"
        run_load "$name" "$mode" "$workers" "$scen" "$conns" "$pg" "$dir"
      done
    done
    stop_server "$pg"
  done
done

# ------------------------------------- start-to-ready, idle RSS, sizes -----
if [[ ${BENCH_SKIP_STATIC:-0} != 1 ]]; then
  for name in hale axum axum-lean nginx; do
    [[ " ${SERVERS[*]} " == *" $name "* ]] || continue
    dir=$WORK/$name-static
    mkdir -p "$dir"
    server_cmd "$name" "" "$dir"
    log "$name: start-to-ready x$STARTS"
    envargs=()
    for e in "${ENVS[@]}"; do envargs+=(--env "$e"); done
    startup=$("$PY" "$BENCH/benchctl.py" startup --port "${PORT[$name]}" --runs "$STARTS" \
      --path /health/readiness --log "$dir/startup.log" "${envargs[@]}" -- "${CMD[@]}") ||
      { log "  start-to-ready failed for $name"; startup=null; }
    log "$name: idle RSS and RSS with $IDLE_CONNS keep-alive connections"
    start_server "$name" unpinned "" "$dir"
    idle=$("$PY" "$BENCH/benchctl.py" idle --pgid "$SPID" --port "${PORT[$name]}" \
      --conns "$IDLE_CONNS" --path /health/liveness) || idle=null
    stop_server "$SPID"
    printf '{"kind":"static","server":"%s","startup":%s,"idle":%s}\n' \
      "$name" "$startup" "$idle" >>"$RAW"
  done

  size_record() { # name path
    local name=$1 path=$2 bytes stripped=true tmp
    [[ -f $path ]] || return 0
    bytes=$(stat -c %s "$path")
    if file -b "$path" 2>/dev/null | grep -q 'not stripped'; then
      stripped=false
      tmp=$WORK/stripped-$name
      if strip -o "$tmp" "$path" 2>/dev/null; then bytes=$(stat -c %s "$tmp"); stripped=true; fi
    fi
    printf '{"kind":"size","server":"%s","path":"%s","bytes":%d,"stripped":%s}\n' \
      "$name" "$path" "$bytes" "$stripped" >>"$RAW"
  }
  [[ $HAVE_HALE == 1 ]] && size_record hale "$HALE_BIN"
  size_record axum "$AXUM_BIN"
  size_record axum-lean "$AXUM_LEAN_BIN"
  size_record nginx "$NGINX_BIN"

  # Images of the repository "hale" (any registry prefix, any tag).
  if command -v docker >/dev/null 2>&1; then
    while read -r ref id; do
      [[ -z $ref ]] && continue
      bytes=$(timeout 10 docker image inspect --format '{{.Size}}' "$id" 2>/dev/null) || continue
      printf '{"kind":"image","ref":"%s","id":"%s","bytes":%d}\n' "$ref" "$id" "$bytes" >>"$RAW"
    done < <(timeout 10 docker image ls --format '{{.Repository}}:{{.Tag}} {{.ID}}' 2>/dev/null |
               grep -E '^([^ ]*/)?hale:' || true)
  fi
fi

T_END=$(date +%s)
log "measurements took $((T_END - T_START)) s"

# ------------------------------------------------------------- report ------
"$PY" "$BENCH/report.py" --raw "$RAW" --out-dir "$BENCH/results" \
  --meta "quick=$QUICK" --meta "duration_s=$DURATION" --meta "warmup_s=$WARMUP" \
  --meta "conns=${CONNS[*]}" --meta "modes=${MODES[*]}" --meta "servers=${SERVERS[*]}" \
  --meta "measure_seconds=$((T_END - T_START))" --meta "hale_bin=$HALE_BIN" \
  --meta "hale_version=$HALE_VERSION" --meta "hale_sha256=$HALE_SHA256" \
  --meta "hale_needed=$HALE_NEEDED" \
  --meta "nproc=$NPROC" --meta "clk_tck=$CLK_TCK" --meta "root=$ROOT"
