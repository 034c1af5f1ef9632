#!/usr/bin/env bash
# Installs what `make bench` needs from Debian: wrk (load generator), nginx
# (the ceiling peer), matplotlib (the chart), taskset (util-linux) and procps.
# Idempotent: installs only what is missing; as non-root it prints the
# apt-get line and exits non-zero. The axum peer is built with cargo (crates
# come from the Rust package index), which must be on PATH.
set -euo pipefail

want=(wrk nginx-light python3 python3-matplotlib util-linux procps)
missing=()
for p in "${want[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed'; then
    # nginx-light is only one flavour: any installed nginx binary will do.
    if [[ $p == nginx-light ]] && command -v nginx >/dev/null 2>&1; then continue; fi
    missing+=("$p")
  fi
done

if ((${#missing[@]} == 0)); then
  echo "install-bench-deps: all present (${want[*]})"
else
  if [[ $(id -u) -ne 0 ]]; then
    echo "install-bench-deps: missing ${missing[*]}; run as root:" >&2
    echo "  apt-get update && apt-get install -y --no-install-recommends ${missing[*]}" >&2
    exit 1
  fi
  echo "install-bench-deps: installing ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi

# The Debian nginx package enables and starts a system nginx on port 80; the
# bench runs its own instance with its own prefix and config, so that one is
# left alone.
if ! command -v cargo >/dev/null 2>&1 && [[ ! -x ${CARGO_HOME:-$HOME/.cargo}/bin/cargo ]]; then
  echo "install-bench-deps: warning: cargo not found; the axum peer cannot be built" >&2
fi
