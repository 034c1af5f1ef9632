#!/usr/bin/env bash
# deploy/canary.sh: canary releases with the canary overlay (K4, K5).
#
# Usage: deploy/canary.sh [--dry-run] start VERSION
#        deploy/canary.sh [--dry-run] promote
#        deploy/canary.sh [--dry-run] abort
#
# The overlay runs hale-stable (scaled by its HPA) and hale-canary (1
# replica), each behind its own Service; ingress-nginx's canary Ingress
# hale-canary sends canary-weight percent of the requests to the canary,
# whatever stable's replica count.
#   start VERSION  put $REGISTRY/hale:VERSION on hale-canary, scale it to 1,
#                  wait for its rollout, check it is ready, then set the
#                  Ingress weight to $CANARY_WEIGHT. Then compare
#                  the two tracks, e.g. the 5xx ratio by the "track" label:
#                    sum by (track) (rate(http_requests_total{job="hale",status=~"5.."}[5m]))
#                    / sum by (track) (rate(http_requests_total{job="hale"}[5m]))
#   promote        check the canary is ready, roll its image onto hale-stable,
#                  wait for that rollout (rolled back with `rollout undo` if it
#                  fails), then set the weight to 0 and scale hale-canary to 0
#   abort          set the weight to 0 (all traffic back on stable at once),
#                  then scale hale-canary to 0
#
# --dry-run prints every kubectl command without running any.
# Env: REGISTRY (registry.example.com), NAMESPACE (hale), KUBECTL,
#      CANARY_WEIGHT (10: percent of requests for the canary),
#      ROLLOUT_TIMEOUT (300s; promote waits twice that for stable's pods).
set -euo pipefail
PROG=canary.sh
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source-path=SCRIPTDIR source=lib.sh
. "$HERE/lib.sh"

REGISTRY=${REGISTRY:-registry.example.com}
ROLLOUT_TIMEOUT=${ROLLOUT_TIMEOUT:-300s}
CANARY_WEIGHT=${CANARY_WEIGHT:-10}
STABLE=hale-stable
CANARY=hale-canary
if ! [[ $CANARY_WEIGHT =~ ^[0-9]{1,3}$ ]] || ((10#$CANARY_WEIGHT > 100)); then
  die "CANARY_WEIGHT must be 0..100, not '$CANARY_WEIGHT'"
fi

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
# set_weight PERCENT: the share of requests ingress-nginx sends to the canary.
set_weight() {
  kubectl_ annotate ingress "$CANARY" -n "$NAMESPACE" --overwrite \
    "nginx.ingress.kubernetes.io/canary-weight=$1"
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
    if ! set_weight "$CANARY_WEIGHT"; then
      kubectl_ scale "deployment/$CANARY" -n "$NAMESPACE" --replicas=0 || true
      die "setting the canary weight failed; scaled the canary to 0"
    fi
    say "canary $version takes $CANARY_WEIGHT% of the requests; then: $0 promote  or  $0 abort"
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
    set_weight 0 || die "stable promoted, but setting the canary weight to 0 failed"
    kubectl_ scale "deployment/$CANARY" -n "$NAMESPACE" --replicas=0 ||
      die "stable promoted, but scaling the canary to 0 failed"
    say "promoted: $STABLE runs $image; $CANARY scaled to 0"
    ;;
  abort)
    (($# == 1)) || usage 2
    set_weight 0 || warn "setting the canary weight to 0 failed; scaling the canary to 0 anyway"
    kubectl_ scale "deployment/$CANARY" -n "$NAMESPACE" --replicas=0 ||
      die "scaling the canary to 0 failed: it may still take traffic"
    say "aborted: $CANARY scaled to 0, all traffic on $STABLE"
    ;;
  *) die "unknown command '$1' (start VERSION, promote, abort)" ;;
esac
