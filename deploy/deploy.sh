#!/usr/bin/env bash
# deploy/deploy.sh: build, push and roll out hale VERSION (K5), rolling back
# automatically when anything after the apply fails.
#
# Usage: deploy/deploy.sh [--dry-run] [--overlay DIR] [--no-build] [--no-push] VERSION
#
#   1. docker build -t $REGISTRY/hale:VERSION .        (skipped with --no-build)
#   2. docker push, then read the pushed digest         (skipped with --no-push)
#   3. check that the Secret hale-secrets exists (hale refuses to start
#      without its API key in production, so this fails early and clearly)
#   4. record the Deployment's current revision
#   5. kubectl apply -k of the overlay (default deploy/k8s/overlays/production)
#      with the image set to $REGISTRY/hale@sha256:<digest> (or :VERSION)
#   6. kubectl rollout status --timeout=$ROLLOUT_TIMEOUT
#   7. readiness through the Service: a short-lived pod in hale's namespace
#      (the NetworkPolicy admits its smoke-test label) GETs
#      http://hale.$NAMESPACE.svc/health/readiness
# If step 5, 6 or 7 fails and the Deployment's revision changed, it runs
# `kubectl rollout undo --to-revision=<recorded>` and waits for it, then exits
# 1. ConfigMaps are content-hashed and never pruned, so the old revision
# finds its old configuration. Objects other than the Deployment (HPA,
# Ingress, ...) keep the new version: re-deploy the previous VERSION to revert
# those.
#
# --dry-run prints every docker/kubectl command without running any.
# Env: REGISTRY (registry.example.com), NAMESPACE (hale), KUBECTL, DOCKER,
#      ROLLOUT_TIMEOUT (300s), SMOKE_IMAGE (curlimages/curl:8.11.1),
#      DOCKER_CONTEXT_DIR (repository root).
set -euo pipefail
PROG=deploy.sh
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source-path=SCRIPTDIR source=lib.sh
. "$HERE/lib.sh"

REGISTRY=${REGISTRY:-registry.example.com}
ROLLOUT_TIMEOUT=${ROLLOUT_TIMEOUT:-300s}
SMOKE_IMAGE=${SMOKE_IMAGE:-curlimages/curl:8.11.1}
DOCKER_CONTEXT_DIR=${DOCKER_CONTEXT_DIR:-$(cd "$HERE/.." && pwd)}
OVERLAY="$HERE/k8s/overlays/production"
# The image name the overlays give hale (their `images:` newName).
OVERLAY_IMAGE=registry.example.com/hale
DEPLOYMENT=hale
BUILD=1
PUSH=1

usage() { sed -n '2,/^set -euo/{/^set -euo/d;s/^# \{0,1\}//;p}' "$0"; exit "${1:-0}"; }

VERSION=
while (($#)); do
  case $1 in
    --dry-run) DRY_RUN=1 ;;
    --overlay) OVERLAY=$(cd "${2:?--overlay needs a directory}" && pwd); shift ;;
    --no-build) BUILD=0 ;;
    --no-push) PUSH=0 ;;
    -h|--help) usage 0 ;;
    -*) die "unknown option $1 (see --help)" ;;
    *) [[ -z $VERSION ]] || die "one VERSION only"; VERSION=$1 ;;
  esac
  shift
done
[[ -n $VERSION ]] || { echo "$PROG: VERSION missing" >&2; usage 2; }
[[ $VERSION =~ ^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$ ]] || die "VERSION '$VERSION' is not a valid image tag"
[[ -f $OVERLAY/kustomization.yaml ]] || die "no kustomization.yaml in $OVERLAY"

IMAGE="$REGISTRY/hale:$VERSION"
((DRY_RUN)) && say "dry run: printing the commands, running none"
say "deploying hale $VERSION to namespace $NAMESPACE from ${OVERLAY#"$DOCKER_CONTEXT_DIR"/}"

# --- 1-2: image ---------------------------------------------------------------
if ((BUILD)); then
  say "build $IMAGE"
  docker_ build -t "$IMAGE" "$DOCKER_CONTEXT_DIR" || die "docker build failed"
fi
IMAGE_REF=$IMAGE
if ((PUSH)); then
  say "push $IMAGE"
  docker_ push "$IMAGE" || die "docker push failed"
  digest_ref=$(docker_q "$REGISTRY/hale@sha256:<digest>" image inspect \
    --format '{{range .RepoDigests}}{{println .}}{{end}}' "$IMAGE") || die "docker image inspect failed"
  digest_ref=$(printf '%s\n' "$digest_ref" | grep -m1 -F "$REGISTRY/hale@sha256:" || true)
  if [[ -n $digest_ref ]]; then
    IMAGE_REF=$digest_ref
  else
    warn "no registry digest for $IMAGE; deploying by tag"
  fi
fi
say "image: $IMAGE_REF"

# --- 3-4: preconditions -------------------------------------------------------
kubectl_ get secret hale-secrets -n "$NAMESPACE" -o name ||
  die "Secret hale-secrets missing in namespace $NAMESPACE: create it first (README, 'Deployment runbook')"
rev_before=$(kubectl_q "1" get deployment "$DEPLOYMENT" -n "$NAMESPACE" --ignore-not-found \
  -o 'jsonpath={.metadata.annotations.deployment\.kubernetes\.io/revision}') ||
  die "cannot read Deployment $DEPLOYMENT"
if [[ -z $rev_before ]]; then
  say "first deploy: no previous revision to roll back to"
else
  say "current revision: $rev_before"
fi

# --- 5: apply -----------------------------------------------------------------
# A throw-away kustomization on top of the overlay sets the image: the
# repository's files stay untouched.
work=$(mktemp -d "${TMPDIR:-/tmp}/hale-deploy.XXXXXX")
trap 'rm -rf "$work"' EXIT
rel=$(realpath --relative-to="$work" "$OVERLAY")
{
  echo "apiVersion: kustomize.config.k8s.io/v1beta1"
  echo "kind: Kustomization"
  echo "resources:"
  echo "  - $rel"
  echo "images:"
  echo "  - name: $OVERLAY_IMAGE"
  echo "    newName: ${IMAGE_REF%%[@:]*}"
  if [[ $IMAGE_REF == *@* ]]; then
    echo "    digest: ${IMAGE_REF#*@}"
  else
    echo "    newTag: ${IMAGE_REF##*:}"
  fi
} >"$work/kustomization.yaml"
sed 's/^/#   /' "$work/kustomization.yaml"

rollback() { # rollback REASON
  printf '%s: ERROR: %s\n' "$PROG" "$1" >&2
  if ((DRY_RUN)); then exit 1; fi
  local rev_now
  rev_now=$(kubectl_q "" get deployment "$DEPLOYMENT" -n "$NAMESPACE" --ignore-not-found \
    -o 'jsonpath={.metadata.annotations.deployment\.kubernetes\.io/revision}' || true)
  if [[ -z $rev_before ]]; then
    printf '%s: first deploy, nothing to roll back to; remove it with: kubectl delete -k %s\n' \
      "$PROG" "$OVERLAY" >&2
  elif [[ $rev_now == "$rev_before" ]]; then
    printf '%s: Deployment still at revision %s: nothing to roll back\n' "$PROG" "$rev_before" >&2
  else
    say "rolling back Deployment $DEPLOYMENT from revision ${rev_now:-?} to $rev_before"
    if kubectl_ rollout undo "deployment/$DEPLOYMENT" -n "$NAMESPACE" --to-revision="$rev_before" &&
       kubectl_ rollout status "deployment/$DEPLOYMENT" -n "$NAMESPACE" --timeout="$ROLLOUT_TIMEOUT"; then
      printf '%s: rolled back to revision %s; deploy of %s FAILED\n' "$PROG" "$rev_before" "$VERSION" >&2
    else
      printf '%s: ROLLBACK FAILED: inspect with kubectl rollout history deployment/%s -n %s\n' \
        "$PROG" "$DEPLOYMENT" "$NAMESPACE" >&2
    fi
  fi
  exit 1
}

say "apply"
kubectl_ apply -k "$work" || rollback "kubectl apply failed"

# --- 6: rollout ---------------------------------------------------------------
say "wait for the rollout (timeout $ROLLOUT_TIMEOUT)"
kubectl_ rollout status "deployment/$DEPLOYMENT" -n "$NAMESPACE" --timeout="$ROLLOUT_TIMEOUT" ||
  rollback "rollout did not complete"

# --- 7: readiness through the Service -----------------------------------------
say "verify readiness through the Service"
smoke="hale-smoke-$(printf '%s' "$VERSION" | tr -c 'a-z0-9' '-' | cut -c1-40 | sed 's/-*$//')"
# The pod must pass the namespace's "restricted" Pod Security level.
overrides=$(tr -d ' \n' <<EOF
{"apiVersion":"v1","metadata":{"labels":{"app.kubernetes.io/component":"smoke-test"}},
 "spec":{"automountServiceAccountToken":false,"restartPolicy":"Never",
  "securityContext":{"runAsNonRoot":true,"runAsUser":65532,"seccompProfile":{"type":"RuntimeDefault"}},
  "containers":[{"name":"smoke","image":"$SMOKE_IMAGE",
   "args":["-fsS","--max-time","5","--retry","5","--retry-all-errors","--retry-delay","2",
           "http://hale.$NAMESPACE.svc/health/readiness"],
   "securityContext":{"allowPrivilegeEscalation":false,"readOnlyRootFilesystem":true,
                      "capabilities":{"drop":["ALL"]}}}]}}
EOF
)
kubectl_ run "$smoke" -n "$NAMESPACE" --rm -i --restart=Never --quiet \
  --image="$SMOKE_IMAGE" --overrides="$overrides" ||
  rollback "readiness check through the Service failed"

say "hale $VERSION deployed ($IMAGE_REF)"
