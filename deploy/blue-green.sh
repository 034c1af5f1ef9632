#!/usr/bin/env bash
# deploy/blue-green.sh: the blue-green overlay's releases and switches (K4,
# K5, K12). Every change is made in the overlay's files AND in the cluster,
# and the change to commit is printed: git and the cluster agree, so a later
# `kubectl apply -k` or GitOps sync neither flips traffic back nor rolls the
# live colour in place.
#
# Usage: deploy/blue-green.sh [--dry-run] stage IMAGE@sha256:DIGEST
#        deploy/blue-green.sh [--dry-run] switch green|blue
#        deploy/blue-green.sh [--dry-run] status
#
# stage REF: put a release (by digest) on the IDLE colour:
#   1. read the live colour from live-colour.yaml and check the Service agrees
#   2. set the idle colour's image in its kustomization.yaml (<colour>/)
#   3. server-side apply of the overlay (field manager hale-deploy), then
#      wait for the idle colour's rollout
# switch TARGET:
#   1. read the Service's live colour (spec.selector.color)
#   2. scale hale-TARGET to the live colour's current replica count (its HPA
#      scaled the live one; the idle one may be at its floor) and wait
#   3. verify Deployment hale-TARGET is fully rolled out and ready
#      (rollout status, then desired = updated = ready = available > 0);
#      refuse to switch otherwise
#   4. patch the Service's selector to color: TARGET, and set the same colour
#      in live-colour.yaml
#   5. print what changed (old -> new colour, images), the diff to commit,
#      and how to switch back
# The other colour keeps running, so switching back is instant: the same
# command with the other colour. deploy/deploy.sh refuses this overlay.
#
# --dry-run prints every kubectl command without running any, and edits no
# file.
# Env: NAMESPACE (hale), KUBECTL, ROLLOUT_TIMEOUT (120s),
#      OVERLAY (deploy/k8s/overlays/blue-green).
set -euo pipefail
PROG=blue-green.sh
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source-path=SCRIPTDIR source=lib.sh
. "$HERE/lib.sh"
# shellcheck source-path=SCRIPTDIR source=k8s-edit.sh
. "$HERE/k8s-edit.sh"

ROOT=$(cd "$HERE/.." && pwd)
ROLLOUT_TIMEOUT=${ROLLOUT_TIMEOUT:-120s}
OVERLAY=${OVERLAY:-$HERE/k8s/overlays/blue-green}
LIVE_FILE=$OVERLAY/live-colour.yaml
SERVICE=hale

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
[[ -f $LIVE_FILE ]] || die "no $LIVE_FILE"
((DRY_RUN)) && say "dry run: printing the commands, running none"

image_of() { # image_of COLOUR
  kubectl_q "<image of hale-$1>" get deployment "hale-$1" -n "$NAMESPACE" \
    -o 'jsonpath={.spec.template.spec.containers[?(@.name=="hale")].image}'
}
replicas_of() { # replicas_of COLOUR
  kubectl_q "3" get deployment "hale-$1" -n "$NAMESPACE" -o 'jsonpath={.spec.replicas}'
}
live_colour() {
  kubectl_q "blue" get service "$SERVICE" -n "$NAMESPACE" -o 'jsonpath={.spec.selector.color}'
}
file_colour() { sed -n 's/^[[:space:]]*color:[[:space:]]*//p' "$LIVE_FILE"; }
other_of() {
  case $1 in
    blue) echo green ;;
    green) echo blue ;;
    *) die "colour must be blue or green, not '$1'" ;;
  esac
}

case $1 in
  status)
    (($# == 1)) || usage 2
    live=$(live_colour) || die "cannot read Service $SERVICE in $NAMESPACE"
    say "live colour: ${live:-none (selector has no color)} (live-colour.yaml: $(file_colour))"
    for c in blue green; do
      counts=$(deployment_counts "hale-$c") || die "cannot read Deployment hale-$c"
      say "hale-$c: $(image_of "$c") (desired updated ready available: $counts; overlay: $(file_image "$OVERLAY/$c/kustomization.yaml"))"
    done
    ;;
  stage)
    (($# == 2)) || usage 2
    ref=$2
    [[ $ref =~ ^[a-z0-9][a-z0-9._:/-]*@sha256:[0-9a-f]{64}$ ]] ||
      die "stage needs an image by digest (NAME@sha256:<64 hex>), not '$ref'"
    live=$(file_colour)
    idle=$(other_of "$live")
    cluster=$(live_colour) || die "cannot read Service $SERVICE in $NAMESPACE"
    ((DRY_RUN)) && cluster=$live
    [[ $cluster == "$live" ]] ||
      die "the Service selects '$cluster' but live-colour.yaml says '$live': commit the last switch first"
    say "stage $ref on the idle colour $idle (live: $live)"
    set_image "$OVERLAY/$idle/kustomization.yaml" "$ref"
    apply_overlay "$OVERLAY" || die "kubectl apply failed"
    kubectl_ rollout status "deployment/hale-$idle" -n "$NAMESPACE" --timeout="$ROLLOUT_TIMEOUT" ||
      die "hale-$idle did not roll out $ref (live traffic untouched on $live)"
    show_changes "$OVERLAY/$idle/kustomization.yaml"
    say "staged: hale-$idle runs $ref; then: $0 switch $idle"
    ;;
  switch)
    (($# == 2)) || usage 2
    target=$2
    other=$(other_of "$target")
    live=$(live_colour) || die "cannot read Service $SERVICE in $NAMESPACE"
    ((DRY_RUN)) && live=$other
    say "live colour: ${live:-none}; target: $target"
    if [[ $live == "$target" ]]; then
      if [[ $(file_colour) != "$target" ]]; then
        set_value "$LIVE_FILE" color "$target"
        show_changes "$LIVE_FILE"
      fi
      say "$target is already live: nothing to do"
      exit 0
    fi

    want=$(replicas_of "$other") || die "cannot read hale-$other's replica count"
    [[ $want =~ ^[0-9]+$ ]] && ((want > 0)) || want=1
    say "scale hale-$target to hale-$other's $want replicas before it takes the traffic"
    kubectl_ scale "deployment/hale-$target" -n "$NAMESPACE" --replicas="$want" ||
      die "scaling hale-$target failed: not switching"

    say "verify hale-$target is fully rolled out and ready"
    kubectl_ rollout status "deployment/hale-$target" -n "$NAMESPACE" --timeout="$ROLLOUT_TIMEOUT" ||
      die "hale-$target has not finished rolling out: not switching"
    counts=$(deployment_counts "hale-$target") || die "cannot read Deployment hale-$target"
    check_fully_ready "hale-$target" "$counts"
    new_image=$(image_of "$target") || die "cannot read hale-$target's image"
    old_image=$(image_of "$other") || die "cannot read hale-$other's image"

    say "switch Service $SERVICE: color $live -> $target"
    kubectl_ patch service "$SERVICE" -n "$NAMESPACE" --type=merge \
      -p "{\"spec\":{\"selector\":{\"color\":\"$target\"}}}" ||
      die "patching Service $SERVICE failed: traffic still goes to $live"
    now=$(live_colour) || die "cannot read Service $SERVICE back"
    ((DRY_RUN)) && now=$target
    [[ $now == "$target" ]] || die "Service $SERVICE selects color '$now' after the patch, expected $target"
    set_value "$LIVE_FILE" color "$target"

    say "changed: Service $SERVICE selector color: $live -> $target"
    say "  was: hale-$other ($old_image)"
    say "  now: hale-$target ($new_image)"
    show_changes "$LIVE_FILE"
    say "switch back with: $0 switch $other"
    ;;
  *) die "unknown command '$1' (stage IMAGE@DIGEST, switch green|blue, status)" ;;
esac
