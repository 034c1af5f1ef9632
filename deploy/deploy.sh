#!/usr/bin/env bash
# deploy/deploy.sh: build, push and roll out hale VERSION (K5, K8, K9),
# rolling back automatically when anything after the apply fails or the
# script is interrupted.
#
# Usage: deploy/deploy.sh [--dry-run] [--overlay DIR] [--no-build] [--no-push] VERSION
#
#   1. docker build -t $REGISTRY/hale:VERSION .        (skipped with --no-build)
#   2. docker push, then read the pushed digest         (skipped with --no-push)
#   3. render the overlay (default deploy/k8s/overlays/production) and find
#      the name it gives hale's image (its `images:` newName, whatever it is);
#      a temporary kustomization on top sets that name to
#      $REGISTRY/hale@sha256:<digest> (or :VERSION without a push), and the
#      render is checked: every hale image in it must be exactly that
#      reference, or nothing is applied. The repository is not edited.
#      Overlays without a Deployment "hale" are refused (blue-green:
#      deploy/blue-green.sh; canary: deploy/canary.sh).
#   4. check that the Secret hale-secrets exists (hale refuses to start
#      without its API key in production, so this fails early and clearly),
#      and that the CRDs of every non-built-in kind in the render exist (the
#      opt-in components in deploy/k8s/components); else nothing is applied
#   5. record the Deployment's current revision
#   6. kubectl diff (printed), then server-side apply with the field manager
#      hale-deploy (--server-side --field-manager=hale-deploy
#      --force-conflicts): hale-deploy owns exactly the fields the manifests
#      set. They set no spec.replicas, so the HPA's count is never touched.
#   7. kubectl rollout status --timeout=$ROLLOUT_TIMEOUT
#   8. every live pod of the Deployment runs exactly the pushed digest (the
#      imageID the kubelet reports), else it is a failed deploy
#   9. readiness through the Service: a short-lived pod in hale's namespace
#      (the NetworkPolicy admits its smoke-test label) GETs
#      http://hale.$NAMESPACE.svc/health/readiness
# If step 6, 7, 8 or 9 fails, or INT/TERM arrives after the apply started,
# and the Deployment's revision changed, it runs
# `kubectl rollout undo --to-revision=<recorded>` and waits for it, then exits
# 1 (130 when interrupted). ConfigMaps are content-hashed and never pruned,
# so the old revision finds its old configuration. Objects other than the
# Deployment (HPA, Ingress, ...) keep the new version: re-deploy the previous
# VERSION to revert those.
#
# --dry-run renders locally and prints every docker/kubectl command that
# talks to Docker or the cluster without running any.
# Env: REGISTRY (registry.example.com), NAMESPACE (hale), KUBECTL, DOCKER,
#      KUSTOMIZE (local renderer; default: $KUBECTL kustomize),
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
KUSTOMIZE=${KUSTOMIZE:-$KUBECTL kustomize}
read -r -a KUSTOMIZE_CMD <<<"$KUSTOMIZE"
OVERLAY="$HERE/k8s/overlays/production"
DEPLOYMENT=hale
FIELD_MANAGER=hale-deploy
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

# image_name REF: REF without its digest and tag (a port in the registry
# host is not a tag: the tag is after the last "/").
image_name() {
  local r=${1%%@*} last
  last=${r##*/}
  [[ $last == *:* ]] && r=${r%:*}
  printf '%s' "$r"
}
# images_in: the value of every `image:` line of a render on stdin.
images_in() {
  sed -n 's/^[[:space:]]*\(-[[:space:]]*\)\{0,1\}image:[[:space:]]*//p' | tr -d "\"'" | sort -u
}
# hale_images: those of images_in whose last path component is "hale".
hale_images() {
  local ref n
  while read -r ref; do
    n=$(image_name "$ref")
    if [[ ${n##*/} == hale ]]; then printf '%s\n' "$ref"; fi
  done < <(images_in)
}
render() { # render DIR: the rendered manifests (local, never the cluster)
  "${KUSTOMIZE_CMD[@]}" "$1"
}

# --- refuse overlays this script would break ---------------------------------
# Rendered first: a usage problem fails before anything is built or pushed.
overlay_render=$(render "$OVERLAY") || die "cannot render $OVERLAY"
if ! awk -v want="$DEPLOYMENT" '
    /^---/ { kind = ""; top = 0 }
    /^kind: / { kind = $2 }
    /^metadata:/ { top = 1; next }
    top && /^  name: / { if (kind == "Deployment" && $2 == want) found = 1; top = 0 }
    END { exit !found }' <<<"$overlay_render"; then
  case $OVERLAY in
    */blue-green*) die "the blue-green overlay is switched with deploy/blue-green.sh, not deploy.sh (it has no Deployment $DEPLOYMENT)" ;;
    */canary*) die "the canary overlay is driven by deploy/canary.sh, not deploy.sh (it has no Deployment $DEPLOYMENT)" ;;
    *) die "$OVERLAY renders no Deployment $DEPLOYMENT: deploy.sh only rolls out that Deployment" ;;
  esac
fi
# The CustomResourceDefinitions the overlay's kinds need (K10): every
# apiVersion group that is not built in, as <plural>.<group>.
needed_crds() {
  awk '/^---/ { api = ""; kind = "" }
       /^apiVersion: / { api = $2 }
       /^kind: / { kind = $2 }
       api != "" && kind != "" { print api, kind; api = ""; kind = "" }' | sort -u |
  while read -r api kind; do
    [[ $api == */* ]] || continue
    group=${api%/*}
    case $group in
      apps|batch|autoscaling|policy|networking.k8s.io|rbac.authorization.k8s.io|storage.k8s.io|\
      apiextensions.k8s.io|coordination.k8s.io|discovery.k8s.io|scheduling.k8s.io|node.k8s.io|\
      admissionregistration.k8s.io|certificates.k8s.io) continue ;;
    esac
    plural=$(tr '[:upper:]' '[:lower:]' <<<"$kind")
    [[ $plural == *s ]] && plural+=es || plural+=s
    printf '%s.%s\n' "$plural" "$group"
  done | sort -u
}
mapfile -t CRDS < <(needed_crds <<<"$overlay_render")
# The name(s) the overlay gives hale's image: whatever its newName is.
mapfile -t overlay_names < <(hale_images <<<"$overlay_render" | while read -r ref; do
  image_name "$ref"; echo; done | sort -u)
((${#overlay_names[@]})) || die "$OVERLAY has no image named .../hale to set"

IMAGE="$REGISTRY/hale:$VERSION"
((DRY_RUN)) && say "dry run: printing the commands, running none"
say "deploying hale $VERSION to namespace $NAMESPACE from ${OVERLAY#"$DOCKER_CONTEXT_DIR"/}"

# --- 1-2: image ---------------------------------------------------------------
if ((BUILD)); then
  say "build $IMAGE"
  docker_ build -t "$IMAGE" "$DOCKER_CONTEXT_DIR" || die "docker build failed"
fi
IMAGE_REF=$IMAGE
DIGEST=
if ((PUSH)); then
  say "push $IMAGE"
  docker_ push "$IMAGE" || die "docker push failed"
  digest_ref=$(docker_q "$REGISTRY/hale@sha256:<digest>" image inspect \
    --format '{{range .RepoDigests}}{{println .}}{{end}}' "$IMAGE") || die "docker image inspect failed"
  digest_ref=$(printf '%s\n' "$digest_ref" | grep -m1 -F "$REGISTRY/hale@sha256:" || true)
  [[ -n $digest_ref ]] || die "no registry digest for $IMAGE after the push: cannot pin or verify what runs"
  IMAGE_REF=$digest_ref
  DIGEST=${digest_ref#*@}
else
  warn "--no-push: deploying by tag; the live pods' digest cannot be verified"
fi
say "image: $IMAGE_REF"

# --- 3: the kustomization that pins the image ---------------------------------
# A throw-away kustomization on top of the overlay: the repository's files
# stay untouched.
work=$(mktemp -d "${TMPDIR:-/tmp}/hale-deploy.XXXXXX")
trap 'rm -rf "$work"' EXIT
rel=$(realpath --relative-to="$work" "$OVERLAY")
{
  echo "apiVersion: kustomize.config.k8s.io/v1beta1"
  echo "kind: Kustomization"
  echo "resources:"
  echo "  - $rel"
  echo "images:"
  for n in "${overlay_names[@]}"; do
    echo "  - name: $n"
    echo "    newName: $(image_name "$IMAGE_REF")"
    if [[ -n $DIGEST ]]; then
      echo "    digest: $DIGEST"
    else
      echo "    newTag: ${IMAGE_REF##*:}"
    fi
  done
} >"$work/kustomization.yaml"
sed 's/^/#   /' "$work/kustomization.yaml"
if ! ((DRY_RUN)) || [[ $IMAGE_REF != *"<digest>"* ]]; then
  pinned=$(render "$work") || die "cannot render the pinned kustomization"
  mapfile -t rendered < <(hale_images <<<"$pinned")
  [[ ${rendered[*]} == "$IMAGE_REF" ]] ||
    die "the render would run ${rendered[*]:-no hale image}, not $IMAGE_REF: not applying"
fi

# --- 4-5: preconditions -------------------------------------------------------
kubectl_ get secret hale-secrets -n "$NAMESPACE" -o name ||
  die "Secret hale-secrets missing in namespace $NAMESPACE: create it first (README, 'Deployment runbook')"
# A kind without its CRD fails `kubectl apply` part-way, after the Deployment
# may already have changed: check them all first, change nothing if one lacks.
missing=()
for crd in "${CRDS[@]}"; do
  kubectl_q "$crd" get crd "$crd" -o name >/dev/null || missing+=("$crd")
done
((${#missing[@]} == 0)) ||
  die "the cluster lacks the CRD(s) ${missing[*]} that the overlay's components need: install them, or drop the component (deploy/k8s/components) from the overlay's kustomization.yaml; nothing was applied"
rev_before=$(kubectl_q "1" get deployment "$DEPLOYMENT" -n "$NAMESPACE" --ignore-not-found \
  -o 'jsonpath={.metadata.annotations.deployment\.kubernetes\.io/revision}') ||
  die "cannot read Deployment $DEPLOYMENT"
if [[ -z $rev_before ]]; then
  say "first deploy: no previous revision to roll back to"
else
  say "current revision: $rev_before"
fi

APPLYING=0
rollback() { # rollback REASON [EXIT]
  trap '' INT TERM
  printf '%s: ERROR: %s\n' "$PROG" "$1" >&2
  if ((DRY_RUN)); then exit "${2:-1}"; fi
  local rev_now
  rev_now=$(kubectl_q "" get deployment "$DEPLOYMENT" -n "$NAMESPACE" --ignore-not-found \
    -o 'jsonpath={.metadata.annotations.deployment\.kubernetes\.io/revision}' || true)
  if [[ -z $rev_before ]]; then
    # Never advise `kubectl delete -k`: the overlay holds the Namespace, and
    # deleting it deletes the hand-made Secret with it.
    printf '%s: first deploy, nothing to roll back to. Inspect it with\n' "$PROG" >&2
    printf '  kubectl -n %s describe deployment/%s\n  kubectl -n %s logs deployment/%s\n' \
      "$NAMESPACE" "$DEPLOYMENT" "$NAMESPACE" "$DEPLOYMENT" >&2
    printf '%s: then fix it and deploy again, or stop it: kubectl -n %s scale deployment/%s --replicas=0\n' \
      "$PROG" "$NAMESPACE" "$DEPLOYMENT" >&2
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
  exit "${2:-1}"
}
interrupted() { # a signal: undo what this run started, if it started anything
  if ((APPLYING)); then rollback "interrupted by $1" 130; fi
  printf '%s: interrupted by %s before the apply: nothing changed in the cluster\n' "$PROG" "$1" >&2
  exit 130
}
trap 'interrupted INT' INT
trap 'interrupted TERM' TERM

# --- 6: diff, then server-side apply ------------------------------------------
# hale-deploy owns the fields the manifests set, and only those; no manifest
# sets a replica count the HPA owns. --force-conflicts takes back a field that
# someone changed by hand (kubectl set image, edit): the repository wins.
SSA=(--server-side "--field-manager=$FIELD_MANAGER" --force-conflicts)
say "diff against the cluster"
diff_rc=0
kubectl_ diff "${SSA[@]}" -k "$work" || diff_rc=$?
((diff_rc <= 1)) || die "kubectl diff failed (exit $diff_rc): not applying"
((diff_rc == 1 || DRY_RUN)) || say "no differences: the apply changes nothing"

say "apply (server-side, field manager $FIELD_MANAGER)"
APPLYING=1
kubectl_ apply "${SSA[@]}" -k "$work" || rollback "kubectl apply failed"

# --- 7: rollout ---------------------------------------------------------------
say "wait for the rollout (timeout $ROLLOUT_TIMEOUT)"
kubectl_ rollout status "deployment/$DEPLOYMENT" -n "$NAMESPACE" --timeout="$ROLLOUT_TIMEOUT" ||
  rollback "rollout did not complete"

# --- 8: the live pods run what was pushed --------------------------------------
say "verify the live pods run ${DIGEST:-$IMAGE_REF}"
pods=$(kubectl_q "hale-0 $IMAGE_REF" get pods -n "$NAMESPACE" -l "app.kubernetes.io/name=hale" \
  -o 'jsonpath={range .items[*]}{.metadata.name} {.status.containerStatuses[?(@.name=="hale")].imageID} {.metadata.deletionTimestamp}{"\n"}{end}') ||
  rollback "cannot list the pods"
if ! ((DRY_RUN)); then
  live=0
  wrong=()
  while read -r pod id deleting; do
    [[ -n $pod && -z ${deleting:-} ]] || continue  # terminating pods of the old ReplicaSet
    live=$((live + 1))
    if [[ -n $DIGEST && ${id##*@} != "$DIGEST" ]]; then wrong+=("$pod=${id:-<no image yet>}"); fi
  done <<<"$pods"
  ((live > 0)) || rollback "no live pod of $DEPLOYMENT after the rollout"
  ((${#wrong[@]} == 0)) || rollback "live pods do not run the pushed digest $DIGEST: ${wrong[*]}"
  say "$live live pods${DIGEST:+ run $DIGEST}"
fi

# --- 9: readiness through the Service -----------------------------------------
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

APPLYING=0
say "hale $VERSION deployed ($IMAGE_REF)"
