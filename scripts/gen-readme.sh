#!/usr/bin/env bash
# Regenerates what is generated from the binary's own settings
# declarations: the README settings table, config/default.toml and its
# copy in the Kubernetes kit (deploy/k8s/base/shared/config/default.toml),
# both `hale config --toml`. `--check` exits 1 when one is stale instead of
# writing it (run by the tests).
set -euo pipefail
cd "$(dirname "$0")/.." || exit 1
bin=${HALE_BIN:-build/debug/hale}
table=$(env -i PATH="$PATH" HALE_CONFIG_DIR="$PWD/config" "$bin" config --markdown)
toml=$(env -i PATH="$PATH" HALE_CONFIG_DIR="$PWD/config" "$bin" config --toml)
python3 - "$table" "$toml" "${1:-}" <<'PY'
import sys
table, toml, mode = sys.argv[1], sys.argv[2] + "\n", sys.argv[3]
text = open("README.md").read()
b, e = "<!-- settings:begin -->\n", "<!-- settings:end -->"
head, rest = text.split(b, 1)
_, tail = rest.split(e, 1)
want = {"README.md": head + b + table.rstrip("\n") + "\n" + e + tail,
        "config/default.toml": toml,
        "deploy/k8s/base/shared/config/default.toml": toml}
stale = [p for p, new in want.items() if open(p).read() != new]
if mode == "--check":
    for p in stale:
        print(f"{p} is stale: run scripts/gen-readme.sh")
    if stale:
        sys.exit(1)
    print("README.md settings table and default.toml files are current")
else:
    for p in stale:
        open(p, "w").write(want[p])
        print(f"wrote {p}")
PY
