#!/usr/bin/env bash
# Regenerates the generated parts of README.md (the settings table) from
# the binary's own settings declarations. `--check` exits 1 when README.md
# is stale instead of writing it (run by the tests).
set -euo pipefail
cd "$(dirname "$0")/.." || exit 1
bin=${HALE_BIN:-build/debug/hale}
table=$(env -i PATH="$PATH" HALE_CONFIG_DIR="$PWD/config" "$bin" config --markdown)
python3 - "$table" "${1:-}" <<'PY'
import sys
table, mode = sys.argv[1], sys.argv[2]
text = open("README.md").read()
b, e = "<!-- settings:begin -->\n", "<!-- settings:end -->"
head, rest = text.split(b, 1)
_, tail = rest.split(e, 1)
new = head + b + table.rstrip("\n") + "\n" + e + tail
if mode == "--check":
    if new != text:
        print("README.md settings table is stale: run scripts/gen-readme.sh")
        sys.exit(1)
    print("README.md settings table is current")
else:
    open("README.md", "w").write(new)
PY
