#!/usr/bin/env bash
# `make upx` (B2): packs the minsize binary with UPX (Debian upx-ucl) and
# reports the size saved and what it costs at start-up (median of 20 runs of
# `hale --version`, which includes the in-memory decompression).
set -euo pipefail
cd "$(dirname "$0")/.." || exit 1
command -v upx >/dev/null || { [[ $(id -u) -eq 0 ]] && apt-get install -y -qq upx-ucl >/dev/null; }
command -v upx >/dev/null || { echo "upx: install upx-ucl"; exit 1; }
mkdir -p build/upx
cp build/minsize/hale build/upx/hale
upx -q --best build/upx/hale >/dev/null
median() {
  local bin=$1 s e
  for _ in $(seq 20); do
    s=$(date +%s%N); "$bin" --version >/dev/null; e=$(date +%s%N); echo $(((e - s) / 1000))
  done | sort -n | sed -n 10p
}
printf '%-22s %9s bytes  start %6s us\n' "minsize" "$(stat -c %s build/minsize/hale)" "$(median build/minsize/hale)"
printf '%-22s %9s bytes  start %6s us\n' "minsize + upx --best" "$(stat -c %s build/upx/hale)" "$(median build/upx/hale)"
