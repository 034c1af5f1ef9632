#!/usr/bin/env bash
# deploy/canary.sh: canary releases with the canary overlay (K4, K5).
#
# Usage: deploy/canary.sh [--dry-run] start VERSION
#        deploy/canary.sh [--dry-run] promote
#        deploy/canary.sh [--dry-run] abort
#
# The overlay runs hale-stable (9 replicas) and hale-canary (1 replica)
# behind one Service, so the canary takes ~1 request in 10.
#   start VERSION  put $REGISTRY/hale:VERSION on hale-canary, scale it to 1,
#                  wait for its rollout and check it is ready. Then compare
#                  the two tracks, e.g. the 5xx ratio by the "track" label:
#                    sum by (track) (rate(http_requests_total{job="hale",status=~"5.."}[5m]))
#                    / sum by (track) (rate(http_requests_total{job="hale"}[5m]))
#   promote        check the canary is ready, roll its image onto hale-stable,
#                  wait for that rollout (rolled back with `rollout undo` if it
#                  fails), then scale hale-canary to 0
#   abort          scale hale-canary to 0: all traffic back on stable at once
#
# --dry-run prints every kubectl command without running any.
# Env: REGISTRY (registry.example.com), NAMESPACE (hale), KUBECTL,
#      ROLLOUT_TIMEOUT (300s; promote waits twice that for 9 pods).
set -euo pipefail
PROG=canary.sh
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source-path=SCRIPTDIR source=lib.sh
. "$HERE/lib.sh"

REGISTRY=${REGISTRY:-registry.example.com}
ROLLOUT_TIMEOUT=${ROLLOUT_TIMEOUT:-300s}
STABLE=hale-stable
CANARY=hale-canary

usage() { sed -n '2,/^set -euo/{/^set -euo/d;s/^# \{0,1\}//;p}' "$0"; exit "${1:-0}"; }

args=()
while (($#)); do
  case $1 in
    --dry-run) DRY_RUN=1 ;;
    -h|--help) usage 0 ;;
    -*) die "unknown option $1 (see --help)" ;;
    *) args+=("$1") ;;
  esac
  shift
done
set -- "${args[@]+"${args[@]}"}"
(($#)) || usage 2
((DRY_RUN)) && say "dry run: printing the commands, running none"

image_of() { # image_of DEPLOYMENT
  kubectl_q "<image of $1>" get deployment "$1" -n "$NAMESPACE" \
    -o 'jsonpath={.spec.template.spec.containers[?(@.name=="hale")].image}'
}
double() { # 300s -> 600s
  [[ $1 =~ ^([0-9]+)s$ ]] && echo "$((BASH_REMATCH[1] * 2))s" || echo "$1"
}

case $1 in
  start)
    (($# == 2)) || usage 2
    version=$2
    [[ $version =~ ^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$ ]] || die "VERSION '$version' is not a valid image tag"
    image="$REGISTRY/hale:$version"
    stable_image=$(image_of "$STABLE") || die "cannot read $STABLE (is the canary overlay applied?)"
    say "canary: $image (stable runs $stable_image)"
    kubectl_ set image "deployment/$CANARY" -n "$NAMESPACE" "hale=$image" ||
      die "setting the canary's image failed"
    kubectl_ scale "deployment/$CANARY" -n "$NAMESPACE" --replicas=1 ||
      die "scaling the canary to 1 failed"
    if ! kubectl_ rollout status "deployment/$CANARY" -n "$NAMESPACE" --timeout="$ROLLOUT_TIMEOUT"; then
      kubectl_ scale "deployment/$CANARY" -n "$NAMESPACE" --replicas=0 || true
      die "canary $version did not become ready; scaled it to 0 (stable untouched)"
    fi
    counts=$(deployment_counts "$CANARY") || die "cannot read $CANARY"
    check_fully_ready "$CANARY" "$counts"
    say "canary $version is live next to stable; then: $0 promote  or  $0 abort"
    ;;
  promote)
    (($# == 1)) || usage 2
    counts=$(deployment_counts "$CANARY") || die "cannot read $CANARY"
    check_fully_ready "$CANARY" "$counts"
    image=$(image_of "$CANARY") || die "cannot read the canary's image"
    [[ -n $image ]] || die "$CANARY has no hale container image"
    old=$(image_of "$STABLE") || die "cannot read $STABLE"
    say "promote: $STABLE $old -> $image"
    kubectl_ set image "deployment/$STABLE" -n "$NAMESPACE" "hale=$image" ||
      die "setting the stable image failed"
    if ! kubectl_ rollout status "deployment/$STABLE" -n "$NAMESPACE" --timeout="$(double "$ROLLOUT_TIMEOUT")"; then
      printf '%s: ERROR: %s rollout failed; rolling it back\n' "$PROG" "$STABLE" >&2
      kubectl_ rollout undo "deployment/$STABLE" -n "$NAMESPACE" || true
      kubectl_ rollout status "deployment/$STABLE" -n "$NAMESPACE" --timeout="$(double "$ROLLOUT_TIMEOUT")" || true
      die "promotion of $image failed; $STABLE rolled back to $old, canary left running (abort to remove it)"
    fi
    kubectl_ scale "deployment/$CANARY" -n "$NAMESPACE" --replicas=0 ||
      die "stable promoted, but scaling the canary to 0 failed"
    say "promoted: $STABLE runs $image; $CANARY scaled to 0"
    ;;
  abort)
    (($# == 1)) || usage 2
    kubectl_ scale "deployment/$CANARY" -n "$NAMESPACE" --replicas=0 ||
      die "scaling the canary to 0 failed: it still takes traffic"
    say "aborted: $CANARY scaled to 0, all traffic on $STABLE"
    ;;
  *) die "unknown command '$1' (start VERSION, promote, abort)" ;;
esac
