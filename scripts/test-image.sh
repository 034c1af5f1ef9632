#!/usr/bin/env bash
# `make test-image`: the container tests (requirements D1-D5) on this
# machine's Docker engine. Installs hadolint (scripts/install-lint-tools.sh),
# builds the images (scripts/image.sh: the local bases only when missing,
# then the targets, mostly from the layer cache), then runs tests/image:
# hardened runs of each variant, health, the key-value API, the drain on
# docker stop, no shell in the minimal image, the SBOMs and their
# security-update check, sizes, and the compose stack.
# A machine without a Docker engine fails here, loudly: the caller decides
# whether to run this suite at all (`docker info` answers).
set -euo pipefail
cd "$(dirname "$0")/.."
if ! docker info >/dev/null 2>&1; then
  echo "test-image: no Docker engine answers (docker info)" >&2
  exit 1
fi
t0=$SECONDS
scripts/install-lint-tools.sh
export HALE_BASE_IMAGE=${HALE_BASE_IMAGE:-hale-local/bookworm:slim}
scripts/image.sh
echo "test-image: images ready after $((SECONDS - t0)) s"
rc=0
/usr/bin/python3 -m pytest -v -s -p no:cacheprovider tests/image || rc=$?
echo "test-image: done in $((SECONDS - t0)) s"
exit $rc
