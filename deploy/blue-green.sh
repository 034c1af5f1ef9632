#!/usr/bin/env bash
# deploy/blue-green.sh: switch the live colour of the blue-green overlay (K4, K5).
#
# Usage: deploy/blue-green.sh [--dry-run] switch green|blue
#        deploy/blue-green.sh [--dry-run] status
#
# switch TARGET:
#   1. read the Service's live colour (spec.selector.color)
#   2. verify Deployment hale-TARGET is fully rolled out and ready
#      (rollout status, then desired = updated = ready = available > 0);
#      refuse to switch otherwise
#   3. patch the Service's selector to color: TARGET
#   4. print what changed (old -> new colour, images) and how to switch back
# The other colour keeps running, so switching back is instant: the same
# command with the other colour. Put a new version on the idle colour first:
#   kubectl -n hale set image deployment/hale-green hale=REGISTRY/hale:VERSION
#   kubectl -n hale rollout status deployment/hale-green
# Also set the colour in deploy/k8s/overlays/blue-green/kustomization.yaml so
# that a later `kubectl apply -k` keeps it.
#
# --dry-run prints every kubectl command without running any.
# Env: NAMESPACE (hale), KUBECTL, ROLLOUT_TIMEOUT (120s).
set -euo pipefail
PROG=blue-green.sh
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source-path=SCRIPTDIR source=lib.sh
. "$HERE/lib.sh"

ROLLOUT_TIMEOUT=${ROLLOUT_TIMEOUT:-120s}
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
((DRY_RUN)) && say "dry run: printing the commands, running none"

image_of() { # image_of COLOUR
  kubectl_q "<image of hale-$1>" get deployment "hale-$1" -n "$NAMESPACE" \
    -o 'jsonpath={.spec.template.spec.containers[?(@.name=="hale")].image}'
}
live_colour() {
  kubectl_q "blue" get service "$SERVICE" -n "$NAMESPACE" -o 'jsonpath={.spec.selector.color}'
}

case $1 in
  status)
    (($# == 1)) || usage 2
    live=$(live_colour) || die "cannot read Service $SERVICE in $NAMESPACE"
    say "live colour: ${live:-none (selector has no color)}"
    for c in blue green; do
      counts=$(deployment_counts "hale-$c") || die "cannot read Deployment hale-$c"
      say "hale-$c: $(image_of "$c") (desired updated ready available: $counts)"
    done
    ;;
  switch)
    (($# == 2)) || usage 2
    target=$2
    case $target in
      blue) other=green ;;
      green) other=blue ;;
      *) die "colour must be blue or green, not '$target'" ;;
    esac
    live=$(live_colour) || die "cannot read Service $SERVICE in $NAMESPACE"
    ((DRY_RUN)) && live=$other
    say "live colour: ${live:-none}; target: $target"
    if [[ $live == "$target" ]]; then
      say "$target is already live: nothing to do"
      exit 0
    fi

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

    say "changed: Service $SERVICE selector color: $live -> $target"
    say "  was: hale-$other ($old_image)"
    say "  now: hale-$target ($new_image)"
    say "switch back with: $0 switch $other"
    ;;
  *) die "unknown command '$1' (switch green|blue, status)" ;;
esac
