#!/usr/bin/env bash
# Installs what `make bench` needs from Debian: wrk (load generator), nginx
# (the ceiling peer), matplotlib (the chart), taskset (util-linux), procps,
# file and binutils (binary sizes, strip, readelf). Idempotent: installs only
# what is missing; as non-root it prints the apt-get line and exits non-zero.
# Then fetches the locked crates of the axum peers (bench/peers: crates.io
# only), so that bench/run.sh can build them offline. cargo (a Rust toolchain
# recent enough for axum 0.8) must be on PATH or in ~/.cargo/bin.
# Nothing here needs hale's build dependencies: the bench measures whatever
# binary it is given.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
want=(wrk nginx-light python3 python3-matplotlib util-linux procps file binutils)
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
  # The machine may be shared: wait for another apt/dpkg rather than fail.
  apt-get update -qq -o DPkg::Lock::Timeout=300
  apt-get install -y -qq -o DPkg::Lock::Timeout=300 --no-install-recommends "${missing[@]}"
fi

# The Debian nginx package enables and starts a system nginx on port 80; the
# bench runs its own instance with its own prefix and config, so that one is
# left alone.
export PATH="$PATH:${CARGO_HOME:-$HOME/.cargo}/bin"
if ! command -v cargo >/dev/null 2>&1; then
  echo "install-bench-deps: warning: cargo not found; the axum peers cannot be built" >&2
elif ! (cd "$ROOT/bench/peers" && cargo fetch --locked --quiet); then
  echo "install-bench-deps: warning: cargo fetch of the axum peers' crates failed" >&2
fi
