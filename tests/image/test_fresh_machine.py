"""The README's two commands, in the README's order, on a fresh Debian 12
(R: T4, B4): a container of the local bookworm base the image tests build
(debootstrap: no compiler, no cmake, no ninja), as root, with this tree's
tracked files as a fresh checkout would have them.

0. `apt-get install make`, the README's one prerequisite;
1. `make run` installs what it needs, builds build/release and serves the
   API on SQLite with the defaults;
2. it is stopped the way a supervisor does it (SIGTERM to make's process
   group): hale drains and stops cleanly, without "second signal";
3. `make test`'s build steps follow (scripts/build.sh release, then debug):
   build/release keeps the generator `make run` configured it with, and
   nothing reports "does not match the generator used previously".

The container reaches the Debian mirror the image builds use; nothing else.
"""
import os
import subprocess
import uuid

import pytest

from imagetools import ROOT, docker

BASE = os.environ.get("HALE_BASE_IMAGE", "hale-local/bookworm:slim")

SCRIPT = r"""
set -uo pipefail
mkdir -p /w && cd /w && tar xzf /in/src.tgz
for tool in ninja cc cmake make; do
  command -v "$tool" >/dev/null && { echo "FRESH-FAIL: $tool present before make run"; exit 90; }
done
# the README's one prerequisite: a minimal Debian has no make
apt-get update -qq && apt-get install -y -qq --no-install-recommends make >/dev/null ||
  { echo "FRESH-FAIL: cannot install make"; exit 94; }
setsid make run >/tmp/run.log 2>&1 &
pid=$!
up=0
for _ in $(seq 1 900); do
  grep -q 'listening' /tmp/run.log && { up=1; break; }
  kill -0 "$pid" 2>/dev/null || break
  sleep 1
done
if ((up == 0)); then echo "FRESH-FAIL: make run did not serve"; tail -40 /tmp/run.log; exit 91; fi
health=$(curl -s -o /dev/null -w '%{http_code}' http://127.0.0.1:8080/health/readiness)
put=$(curl -s -o /dev/null -w '%{http_code}' -X PUT --data-binary fresh http://127.0.0.1:8080/v1/kv/fresh)
got=$(curl -s http://127.0.0.1:8080/v1/kv/fresh)
echo "HEALTH=$health PUT=$put GOT=$got"
kill -TERM -- "-$pid"
for _ in $(seq 1 60); do kill -0 "$pid" 2>/dev/null || break; sleep 1; done
kill -0 "$pid" 2>/dev/null && { echo "FRESH-FAIL: make run still running 60 s after SIGTERM"; exit 92; }
echo "---- run.log tail"; tail -15 /tmp/run.log
echo "---- make test's build steps"
gen=$(sed -n 's/^CMAKE_GENERATOR:INTERNAL=//p' build/release/CMakeCache.txt)
echo "GENERATOR-BEFORE=$gen"
scripts/build.sh release >/tmp/b1.log 2>&1; r1=$?
scripts/build.sh debug >/tmp/b2.log 2>&1; r2=$?
echo "GENERATOR-AFTER=$(sed -n 's/^CMAKE_GENERATOR:INTERNAL=//p' build/release/CMakeCache.txt)"
echo "BUILD-RELEASE=$r1 BUILD-DEBUG=$r2"
grep -h "does not match the generator" /tmp/b1.log /tmp/b2.log && echo "FRESH-FAIL: generator mismatch"
((r1 == 0 && r2 == 0)) || { tail -20 /tmp/b1.log /tmp/b2.log; exit 93; }
build/debug/hale --version
"""


def test_make_run_then_make_test_build_on_a_fresh_debian(tmp_path):  # R: T4, B4
    if docker("image", "inspect", BASE, check=False).returncode != 0:
        pytest.fail(f"{BASE} is missing: scripts/image.sh builds it (make image)")
    files = subprocess.run(["git", "ls-files", "-z"], cwd=ROOT, capture_output=True, check=True).stdout
    tgz = tmp_path / "src.tgz"
    subprocess.run(["tar", "--null", "-T", "-", "-czf", str(tgz)], cwd=ROOT, input=files, check=True)
    name = f"hale-fresh-{uuid.uuid4().hex[:8]}"
    try:
        r = docker("run", "--name", name, "-v", f"{tmp_path}:/in:ro", "-e", "DEBIAN_FRONTEND=noninteractive",
                   BASE, "bash", "-c", SCRIPT, check=False, timeout=1800)
    finally:
        docker("rm", "-f", name, check=False)
    out = r.stdout + r.stderr
    print(out[-4000:])
    assert r.returncode == 0, out[-4000:]
    assert "FRESH-FAIL" not in out, out[-4000:]
    assert "HEALTH=200 PUT=201 GOT=fresh" in out, out[-4000:]
    log = out.split("---- run.log tail", 1)[1].split("---- make test's build steps", 1)[0]
    assert "stopped cleanly" in log and "second signal" not in log, log
    assert "BUILD-RELEASE=0 BUILD-DEBUG=0" in out
    before = out.split("GENERATOR-BEFORE=", 1)[1].split("\n", 1)[0]
    after = out.split("GENERATOR-AFTER=", 1)[1].split("\n", 1)[0]
    assert before and before == after, (before, after)
