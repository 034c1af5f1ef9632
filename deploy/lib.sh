# shellcheck shell=bash
# Shared by deploy/deploy.sh, deploy/blue-green.sh and deploy/canary.sh.
# Sourced, not run.
#
# Every command that talks to the cluster or to Docker goes through `run`
# (changes) or `query` (reads), which print it first as "+ command". With
# --dry-run nothing is executed: `run` only prints, and `query` prints and
# answers with a placeholder, so the printed list is exactly the sequence a
# real run would execute on the success path.
#
# Environment:
#   KUBECTL    kubectl command, may carry options (default: kubectl),
#              e.g. KUBECTL="kubectl --context prod"
#   DOCKER     docker command (default: docker)
#   NAMESPACE  hale's namespace (default: hale)

KUBECTL=${KUBECTL:-kubectl}
DOCKER=${DOCKER:-docker}
NAMESPACE=${NAMESPACE:-hale}
DRY_RUN=0
read -r -a KUBECTL_CMD <<<"$KUBECTL"
read -r -a DOCKER_CMD <<<"$DOCKER"

# The program name in messages.
PROG=${PROG:-$(basename "$0")}
# fd 3: where the "+ command" trace goes (stdout), also from inside $(query).
exec 3>&1

# quote ARG...: the command line as a shell would accept it back.
quote() {
  local out=() a
  for a in "$@"; do
    if [[ $a =~ ^[A-Za-z0-9_./:=@%+,{}-]+$ ]]; then
      out+=("$a")
    else
      out+=("'${a//\'/\'\\\'\'}'")
    fi
  done
  printf '%s' "${out[*]}"
}

say() { printf '==> %s\n' "$*"; }
warn() { printf '%s: WARNING: %s\n' "$PROG" "$*" >&2; }
die() { printf '%s: ERROR: %s\n' "$PROG" "$*" >&2; exit 1; }

# run CMD...: print, then execute unless --dry-run. Returns the command's
# status; the caller decides what a failure means (usually `|| die ...`).
run() {
  printf '+ %s\n' "$(quote "$@")" >&3
  ((DRY_RUN)) && return 0
  "$@"
}

# query PLACEHOLDER CMD...: print, execute, and print nothing else: the
# command's stdout is the answer (captured by the caller). With --dry-run
# the answer is PLACEHOLDER.
query() {
  local placeholder=$1; shift
  printf '+ %s\n' "$(quote "$@")" >&3
  if ((DRY_RUN)); then
    printf '%s' "$placeholder"
    return 0
  fi
  "$@"
}

kubectl_() { run "${KUBECTL_CMD[@]}" "$@"; }
kubectl_q() { local p=$1; shift; query "$p" "${KUBECTL_CMD[@]}" "$@"; }
docker_() { run "${DOCKER_CMD[@]}" "$@"; }
docker_q() { local p=$1; shift; query "$p" "${DOCKER_CMD[@]}" "$@"; }

# Any command that fails outside the explicit `|| die` paths still stops the
# script (set -e) with a message naming it.
on_err() {
  printf '%s: ERROR: command failed (exit %s) at line %s: %s\n' "$PROG" "$1" "$2" "$3" >&2
}
trap 'on_err $? $LINENO "$BASH_COMMAND"' ERR

# A Deployment is fully ready when every desired replica is updated, ready
# and available, and there is at least one.
# deployment_counts NAME -> prints "desired updated ready available"
deployment_counts() {
  kubectl_q "3 3 3 3" get deployment "$1" -n "$NAMESPACE" \
    -o 'jsonpath={.spec.replicas} {.status.updatedReplicas} {.status.readyReplicas} {.status.availableReplicas}'
}
check_fully_ready() { # NAME COUNTS
  local name=$1 desired updated ready available
  if ((DRY_RUN)); then
    say "dry run: $name must have desired = updated = ready = available > 0"
    return 0
  fi
  read -r desired updated ready available <<<"$2"
  [[ ${desired:-0} -gt 0 ]] || die "$name has no replicas (desired ${desired:-0})"
  [[ ${updated:-0} -eq $desired && ${ready:-0} -eq $desired && ${available:-0} -eq $desired ]] ||
    die "$name is not fully ready: desired $desired, updated ${updated:-0}, ready ${ready:-0}, available ${available:-0}"
  say "$name: $ready/$desired replicas ready"
}
