#!/usr/bin/env bash
# deploy/canary.sh: canary releases with the canary overlay (K4, K5, K12).
#
# Usage: deploy/canary.sh [--dry-run] start IMAGE@sha256:DIGEST
#        deploy/canary.sh [--dry-run] promote
#        deploy/canary.sh [--dry-run] abort
#
# The overlay runs hale-stable (scaled by its HPA) and hale-canary (1
# replica), each behind its own Service; ingress-nginx's canary Ingress
# hale-canary sends canary-weight percent of the requests to the canary,
# whatever stable's replica count. Canaries go by digest.
#
# Every step edits the overlay's files (the canary's and stable's images:
# entries, canary/replicas.yaml, the weight in canary/ingress.yaml), applies
# the overlay (server-side, field manager hale-deploy) and prints the change
# to commit: git and the cluster agree, so a re-apply or GitOps sync neither
# revives an aborted canary nor reverts a promotion.
#   start REF      hale-canary := REF, 1 replica, weight 0; apply; wait for
#                  its rollout and check it is ready; then weight
#                  $CANARY_WEIGHT and apply again. On failure: replicas 0,
#                  weight 0, applied (stable untouched). Then compare, e.g.
#                  the 5xx ratio by the "track" label:
#                    sum by (track) (rate(http_requests_total{job="hale",status=~"5.."}[5m]))
#                    / sum by (track) (rate(http_requests_total{job="hale"}[5m]))
#   promote        check the canary is ready and runs what the overlay says,
#                  hale-stable := the canary's image, apply, wait for that
#                  rollout (if it fails: stable's old image back in the file,
#                  applied), then the canary's weight 0 and replicas 0
#   abort          weight 0 (all traffic back on stable at once) and
#                  replicas 0, applied
#
# --dry-run prints every kubectl command without running any, and edits no
# file.
# Env: NAMESPACE (hale), KUBECTL, CANARY_WEIGHT (10: percent of requests for
#      the canary), ROLLOUT_TIMEOUT (300s; promote waits twice that for
#      stable's pods), OVERLAY (deploy/k8s/overlays/canary).
set -euo pipefail
PROG=canary.sh
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source-path=SCRIPTDIR source=lib.sh
. "$HERE/lib.sh"
# shellcheck source-path=SCRIPTDIR source=k8s-edit.sh
. "$HERE/k8s-edit.sh"

ROOT=$(cd "$HERE/.." && pwd)
ROLLOUT_TIMEOUT=${ROLLOUT_TIMEOUT:-300s}
CANARY_WEIGHT=${CANARY_WEIGHT:-10}
OVERLAY=${OVERLAY:-$HERE/k8s/overlays/canary}
STABLE=hale-stable
CANARY=hale-canary
STABLE_K=$OVERLAY/stable/kustomization.yaml
CANARY_K=$OVERLAY/canary/kustomization.yaml
CANARY_REPLICAS=$OVERLAY/canary/replicas.yaml
CANARY_INGRESS=$OVERLAY/canary/ingress.yaml
WEIGHT_KEY=nginx.ingress.kubernetes.io/canary-weight
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
for f in "$STABLE_K" "$CANARY_K" "$CANARY_REPLICAS" "$CANARY_INGRESS"; do
  [[ -f $f ]] || die "no $f"
done
((DRY_RUN)) && say "dry run: printing the commands, running none"

image_of() { # image_of DEPLOYMENT
  kubectl_q "<image of $1>" get deployment "$1" -n "$NAMESPACE" \
    -o 'jsonpath={.spec.template.spec.containers[?(@.name=="hale")].image}'
}
double() { # 300s -> 600s
  [[ $1 =~ ^([0-9]+)s$ ]] && echo "$((BASH_REMATCH[1] * 2))s" || echo "$1"
}
# canary_state REPLICAS WEIGHT: the canary's size and share, in the files.
canary_state() {
  set_value "$CANARY_REPLICAS" replicas "$1"
  set_value "$CANARY_INGRESS" "$WEIGHT_KEY" "\"$2\""
}
FILES=("$STABLE_K" "$CANARY_K" "$CANARY_REPLICAS" "$CANARY_INGRESS")

case $1 in
  start)
    (($# == 2)) || usage 2
    ref=$2
    [[ $ref =~ ^[a-z0-9][a-z0-9._:/-]*@sha256:[0-9a-f]{64}$ ]] ||
      die "start needs the image by digest (NAME@sha256:<64 hex>), not '$ref': canaries go by digest"
    say "canary: $ref (stable runs $(file_image "$STABLE_K"))"
    set_image "$CANARY_K" "$ref"
    canary_state 1 0
    if ! apply_overlay "$OVERLAY" ||
       ! kubectl_ rollout status "deployment/$CANARY" -n "$NAMESPACE" --timeout="$ROLLOUT_TIMEOUT"; then
      canary_state 0 0
      apply_overlay "$OVERLAY" || true
      show_changes "${FILES[@]}"
      die "canary $ref did not become ready; scaled it to 0 with weight 0 (stable untouched)"
    fi
    counts=$(deployment_counts "$CANARY") || die "cannot read $CANARY"
    check_fully_ready "$CANARY" "$counts"
    canary_state 1 "$CANARY_WEIGHT"
    apply_overlay "$OVERLAY" || die "setting the canary weight failed (the canary runs, with weight 0)"
    show_changes "${FILES[@]}"
    say "canary $ref takes $CANARY_WEIGHT% of the requests; then: $0 promote  or  $0 abort"
    ;;
  promote)
    (($# == 1)) || usage 2
    counts=$(deployment_counts "$CANARY") || die "cannot read $CANARY"
    check_fully_ready "$CANARY" "$counts"
    image=$(file_image "$CANARY_K")
    [[ $image == *@sha256:* ]] || ((DRY_RUN)) || die "the canary's image in ${CANARY_K#"$ROOT"/} is '$image', not a digest: start a canary first"
    live=$(image_of "$CANARY") || die "cannot read the canary's image"
    ((DRY_RUN)) && live=$image
    [[ $live == "$image" ]] || die "$CANARY runs $live but the overlay says $image: not promoting"
    old=$(file_image "$STABLE_K")
    say "promote: $STABLE $old -> $image"
    set_image "$STABLE_K" "$image"
    if ! apply_overlay "$OVERLAY" ||
       ! kubectl_ rollout status "deployment/$STABLE" -n "$NAMESPACE" --timeout="$(double "$ROLLOUT_TIMEOUT")"; then
      printf '%s: ERROR: %s rollout failed; rolling it back to %s\n' "$PROG" "$STABLE" "$old" >&2
      set_image "$STABLE_K" "$old"
      apply_overlay "$OVERLAY" || true
      kubectl_ rollout status "deployment/$STABLE" -n "$NAMESPACE" --timeout="$(double "$ROLLOUT_TIMEOUT")" || true
      die "promotion of $image failed; $STABLE rolled back to $old, canary left running (abort to remove it)"
    fi
    canary_state 0 0
    apply_overlay "$OVERLAY" || die "stable promoted, but emptying the canary failed"
    show_changes "${FILES[@]}"
    say "promoted: $STABLE runs $image; $CANARY scaled to 0, weight 0"
    ;;
  abort)
    (($# == 1)) || usage 2
    canary_state 0 0
    apply_overlay "$OVERLAY" || die "applying weight 0 / replicas 0 failed: the canary may still take traffic"
    show_changes "${FILES[@]}"
    say "aborted: $CANARY scaled to 0, weight 0, all traffic on $STABLE"
    ;;
  *) die "unknown command '$1' (start IMAGE@DIGEST, promote, abort)" ;;
esac
