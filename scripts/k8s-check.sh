#!/usr/bin/env bash
# make k8s-check: offline, strict checks of everything under deploy/ (K6, O5).
#
#   1. render     every kustomization (base, overlays, examples, monitoring)
#                 with `kubectl kustomize` (rejects unknown kustomization fields)
#   2. schema     every rendered built-in object with `kubernetes-validate
#                 --strict` (unknown field or wrong type fails) for each
#                 Kubernetes version in K8S_VERSIONS; every custom resource
#                 (VPA, ServiceMonitor, PodMonitor, PrometheusRule) against its
#                 CRD's OpenAPI schema in deploy/k8s/crds/, also strictly; an
#                 object whose kind neither knows fails
#   3. policy     hale's own rules (probe paths/ports, grace period vs drain +
#                 timeout, securityContext, mounts, selectors):
#                 deploy/k8s/tools/k8scheck.py policy
#   4. checkov    security/best-practice linter on the rendered output: zero
#                 failed checks; each skip must carry a reason in a
#                 checkov.io/skipN annotation on the object
#   5. yamllint   the hand-written YAML under deploy/
#   6. shellcheck deploy/*.sh and scripts/*.sh
#   7. promtool   check rules + unit tests (deploy/monitoring/tests) for the
#                 PrometheusRule and the prometheus-adapter query
#   8. files      JSON of the Grafana dashboard, Fluent Bit config present
#
# Prints a summary and exits 1 if any step failed. Needs the tools from
# scripts/install-k8s-tools.sh (venv $HALE_TOOLS, default /opt/hale-tools).
# Env: HALE_TOOLS, K8S_VERSIONS (default "1.30.0 1.37.0"),
#      K8S_CHECK_OUT (keep rendered output there instead of a temp dir),
#      K8S_CHECK_STEPS (run only these steps, e.g. "policy checkov"; render
#      always runs; for quick iterations and tests: `make k8s-check` runs all).
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
HALE_TOOLS=${HALE_TOOLS:-/opt/hale-tools}
K8S_VERSIONS=${K8S_VERSIONS:-"1.30.0 1.37.0"}
TOOL="$ROOT/deploy/k8s/tools/k8scheck.py"
CRDS="$ROOT/deploy/k8s/crds"

die() { printf 'k8s-check: ERROR: %s\n' "$*" >&2; exit 2; }

PY="$HALE_TOOLS/bin/python"
KUBECTL="$HALE_TOOLS/bin/kubectl"
# A fresh machine: install the tools first (idempotent), unless told not to.
if [[ ! -x $HALE_TOOLS/bin/checkov || ! -x $KUBECTL ]] || ! command -v promtool >/dev/null ||
   ! command -v shellcheck >/dev/null; then
  if [[ -z ${K8S_CHECK_NO_INSTALL:-} && $(id -u) -eq 0 ]]; then
    echo "k8s-check: tools missing, running scripts/install-k8s-tools.sh"
    HALE_TOOLS=$HALE_TOOLS "$ROOT/scripts/install-k8s-tools.sh" || die "installing the tools failed"
  fi
fi
[[ -x $KUBECTL ]] || KUBECTL=$(command -v kubectl || true)
for t in "$PY" "$KUBECTL" "$HALE_TOOLS/bin/kubernetes-validate" "$HALE_TOOLS/bin/checkov" \
         "$HALE_TOOLS/bin/yamllint"; do
  [[ -n $t && -x $t ]] || die "missing tool ${t:-kubectl}: run scripts/install-k8s-tools.sh"
done
command -v shellcheck >/dev/null || die "missing shellcheck: run scripts/install-k8s-tools.sh"
command -v promtool >/dev/null || die "missing promtool: run scripts/install-k8s-tools.sh"

if [[ -n ${K8S_CHECK_OUT:-} ]]; then
  OUT=$K8S_CHECK_OUT; rm -rf "$OUT"; mkdir -p "$OUT"
else
  OUT=$(mktemp -d); trap 'rm -rf "$OUT"' EXIT
fi
mkdir -p "$OUT/render" "$OUT/prom" "$OUT/logs"

declare -a SUMMARY=()
FAILED=0
step() { # step NAME CMD...: run, log to $OUT/logs/NAME.log, record the result
  local name=$1; shift
  if [[ -n ${K8S_CHECK_STEPS:-} && $name != render && " $K8S_CHECK_STEPS " != *" $name "* ]]; then
    SUMMARY+=("SKIP  $name")
    return 0
  fi
  printf '\n=== %s\n' "$name"
  if "$@" >"$OUT/logs/$name.log" 2>&1; then
    sed 's/^/  /' "$OUT/logs/$name.log" | tail -n "${K8S_CHECK_TAIL:-15}"
    SUMMARY+=("PASS  $name")
  else
    sed 's/^/  /' "$OUT/logs/$name.log"
    SUMMARY+=("FAIL  $name")
    FAILED=1
  fi
}

# --- 1. render ---------------------------------------------------------------
# name:directory of every kustomization that ships
TARGETS=(
  base:deploy/k8s/base
  production:deploy/k8s/overlays/production
  blue-green:deploy/k8s/overlays/blue-green
  canary:deploy/k8s/overlays/canary
  sqlite-single:deploy/k8s/overlays/sqlite-single
  secret-example:deploy/k8s/examples/secret
  monitoring:deploy/monitoring
  fluent-bit:deploy/monitoring/fluent-bit
)
render_all() {
  local t name dir rc=0
  for t in "${TARGETS[@]}"; do
    name=${t%%:*}; dir=${t#*:}
    if "$KUBECTL" kustomize "$ROOT/$dir" >"$OUT/render/$name.yaml" 2>"$OUT/render/$name.err"; then
      printf '%-15s %s: %s objects\n' "$name" "$dir" "$(grep -c '^kind:' "$OUT/render/$name.yaml")"
    else
      printf 'ERROR %s (%s):\n' "$name" "$dir"; cat "$OUT/render/$name.err"; rc=1
    fi
  done
  return $rc
}
step render render_all
RENDERED=()
for t in "${TARGETS[@]}"; do
  f="$OUT/render/${t%%:*}.yaml"
  [[ -s $f ]] && RENDERED+=("$f")
done
# Renders that hold Deployments (the policy step checks these).
APPS=()
for n in base production blue-green canary sqlite-single; do
  [[ -s $OUT/render/$n.yaml ]] && APPS+=("$OUT/render/$n.yaml")
done

# --- 2. schema ---------------------------------------------------------------
schema_builtin() {
  local v f rc=0 out
  "$PY" "$TOOL" covered-kinds --crds "$CRDS" >"$OUT/covered-kinds"
  local objects
  objects=$(cat "${RENDERED[@]}" | grep -c '^kind:')
  for v in $K8S_VERSIONS; do
    # (the script has no `set -e` inside `step`'s `if`, hence the explicit rc)
    if ! out=$("$HALE_TOOLS/bin/kubernetes-validate" --strict --quiet -k "$v" "${RENDERED[@]}" 2>&1); then
      rc=1
    fi
    # kubernetes-validate only warns about kinds it has no schema for; such
    # a kind passes here only if a shipped CRD validates it (next step).
    local errors=0 line
    while IFS= read -r line; do
      if [[ $line =~ Couldn\'t\ find\ schema\ for\ kind\ ([^ ]+)\ with\ api\ version\ ([^ ]+) ]]; then
        grep -qx "${BASH_REMATCH[2]} ${BASH_REMATCH[1]}" "$OUT/covered-kinds" && continue
        echo "ERROR no schema at all for ${BASH_REMATCH[2]} ${BASH_REMATCH[1]}: $line"
        errors=$((errors + 1)); rc=1
      elif [[ -n $line ]]; then
        echo "$line"
        [[ $line == ERROR* ]] && errors=$((errors + 1))
      fi
    done <<<"$out"
    echo "kubernetes-validate --strict -k $v: ${#RENDERED[@]} renders, $objects objects, $errors errors"
  done
  return $rc
}
step schema-builtin schema_builtin
step schema-crd "$PY" "$TOOL" crd-validate --crds "$CRDS" "${RENDERED[@]}"

# --- 3. policy ---------------------------------------------------------------
step policy "$PY" "$TOOL" policy "${APPS[@]}"

# --- 4. checkov ---------------------------------------------------------------
run_checkov() {
  # --skip-download: no network (the platform's guideline download would
  # otherwise fail noisily); -d on the render dir reads every rendered file.
  local rc=0
  "$HALE_TOOLS/bin/checkov" -d "$OUT/render" --framework kubernetes --skip-download \
    -o json >"$OUT/checkov.json" 2>"$OUT/checkov.err" || rc=$?
  # exit 1 means "failed checks", reported below; anything else is a crash
  if ((rc > 1)); then cat "$OUT/checkov.err"; return 1; fi
  "$PY" "$TOOL" checkov-verdict "$OUT/checkov.json"
}
step checkov run_checkov

# --- 5. yamllint --------------------------------------------------------------
run_yamllint() {
  local files=()
  mapfile -t files < <(cd "$ROOT" && find deploy -name '*.yaml' -not -path 'deploy/k8s/crds/*' | sort)
  (cd "$ROOT" && "$HALE_TOOLS/bin/yamllint" -s -c deploy/k8s/yamllint.yaml "${files[@]}") &&
    echo "yamllint: ${#files[@]} files clean"
}
step yamllint run_yamllint

# --- 6. shellcheck ------------------------------------------------------------
run_shellcheck() {
  local files=()
  mapfile -t files < <(cd "$ROOT" && ls deploy/*.sh scripts/*.sh 2>/dev/null)
  ((${#files[@]})) || { echo "no scripts found"; return 1; }
  (cd "$ROOT" && shellcheck -x "${files[@]}") && echo "shellcheck: ${files[*]} clean"
}
step shellcheck run_shellcheck

# --- 7. promtool --------------------------------------------------------------
run_promtool() {
  "$PY" "$TOOL" prom-extract --rule "$ROOT/deploy/monitoring/prometheusrule.yaml" \
    --adapter "$ROOT/deploy/monitoring/prometheus-adapter-rules.yaml" --out "$OUT/prom" || return 1
  cp "$ROOT"/deploy/monitoring/tests/*.test.yaml "$OUT/prom/"
  (cd "$OUT/prom" && promtool check rules hale-alerts.rules.yaml adapter.rules.yaml &&
     promtool test rules ./*.test.yaml)
}
step promtool run_promtool

# --- 8. other monitoring files ------------------------------------------------
run_files() {
  "$PY" -c 'import json,sys; d=json.load(open(sys.argv[1])); assert d["panels"], "no panels"; print("dashboard:", len(d["panels"]), "panels")' \
    "$ROOT/deploy/monitoring/grafana/hale-dashboard.json" &&
  grep -q '^\[PARSER\]' "$ROOT/deploy/monitoring/fluent-bit/parsers.conf" &&
  echo "fluent-bit: parsers.conf has a [PARSER]"
}
step monitoring-files run_files

# --- summary -----------------------------------------------------------------
printf '\n=== k8s-check summary (rendered output: %s)\n' "${K8S_CHECK_OUT:-temporary}"
printf '  %s\n' "${SUMMARY[@]}"
if ((FAILED)); then
  echo "k8s-check: FAILED"
  exit 1
fi
if [[ -n ${K8S_CHECK_STEPS:-} ]]; then
  echo "k8s-check: selected checks passed (K8S_CHECK_STEPS=$K8S_CHECK_STEPS)"
else
  echo "k8s-check: all checks passed"
fi
