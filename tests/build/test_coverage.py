"""The coverage machinery (R: T3): scripts/coverage-report.py turns gcovr's
JSON summary into the per-module table and fails only when a module falls
below its committed floor; scripts/build.sh coverage configures gcc's
--coverage at -O0; the committed floor file is well-formed and names only
modules that exist."""
import json
import os
import subprocess
import tempfile

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
REPORT = os.path.join(ROOT, "scripts/coverage-report.py")


def summary(tmp, files):
    path = os.path.join(tmp, "summary.json")
    with open(path, "w") as f:
        json.dump({"files": [
            {"filename": n, "line_covered": lc, "line_total": lt, "branch_covered": bc, "branch_total": bt}
            for n, lc, lt, bc, bt in files]}, f)
    return path


def run(*args):
    return subprocess.run(["/usr/bin/python3", REPORT, *args], capture_output=True, text=True)


FILES = [("src/runtime/common/util.c", 90, 100, 40, 50), ("src/runtime/service/auth.c", 70, 100, 10, 20),
         ("src/app/api/kv_api.c", 50, 50, 0, 0)]


def test_table_rows_and_totals():  # R: T3
    with tempfile.TemporaryDirectory() as tmp:
        r = run(summary(tmp, FILES))
    assert r.returncode == 0, r.stdout + r.stderr
    lines = r.stdout.splitlines()
    row = {l.split()[0]: l for l in lines if l and not l.startswith("-")}
    assert "90.0%" in row["runtime/common/util.c"] and "80.0%" in row["runtime/common/util.c"]
    assert "70.0%" in row["runtime/service/auth.c"] and "50.0%" in row["runtime/service/auth.c"]
    # no branches: 100 %, not a division by zero
    assert row["app/api/kv_api.c"].split()[1] == "100.0%"
    assert "160/200" in row["runtime"]  # runtime (total)
    assert "210/250" in row["total"] and "50/70" in row["total"]


def test_floor_pass_and_fail():  # R: T3
    with tempfile.TemporaryDirectory() as tmp:
        s = summary(tmp, FILES)
        floor = os.path.join(tmp, "floor.txt")
        with open(floor, "w") as f:
            f.write("# module lines branches\nruntime/common/util.c 90 80\nruntime/service/auth.c 70 50\napp/api/kv_api.c 100 0\n")
        ok = run(s, "--floor", floor)
        assert ok.returncode == 0, ok.stdout
        assert "0 below their floor" in ok.stdout
        with open(floor, "w") as f:
            f.write("runtime/common/util.c 90.5 80\nruntime/service/auth.c 70 50.1\n")
        bad = run(s, "--floor", floor, "--totals-only")
        assert bad.returncode == 1
        assert "BELOW FLOOR runtime/common/util.c: lines 90.0% < floor 90.5%" in bad.stdout
        assert "BELOW FLOOR runtime/service/auth.c: branches 50.0% < floor 50.1%" in bad.stdout
        assert "app/api/kv_api.c has no floor" in bad.stdout  # reported, not a failure by itself
        # --totals-only: no per-module rows
        assert not [l for l in bad.stdout.splitlines() if l.startswith("runtime/common/util.c ")]
        # a module with a floor that vanished (renamed) fails
        with open(floor, "w") as f:
            f.write("runtime/gone.c 10 10\n")
        gone = run(s, "--floor", floor)
        assert gone.returncode == 1
        assert "runtime/gone.c: has a floor but is not in the report" in gone.stdout
        # a malformed floor line is an error naming the line
        with open(floor, "w") as f:
            f.write("runtime/common/util.c ninety 80\n")
        mal = run(s, "--floor", floor)
        assert mal.returncode != 0 and "floor.txt:1" in mal.stderr


def test_empty_report_fails():  # R: T3
    with tempfile.TemporaryDirectory() as tmp:
        r = run(summary(tmp, []))
    assert r.returncode == 1
    assert "no source file of src/" in r.stdout


def test_committed_floors_name_real_modules():  # R: T3
    floors = {}
    for raw in open(os.path.join(ROOT, "tests/coverage-floor.txt")):
        line = raw.split("#", 1)[0].split()
        if line:
            assert len(line) == 3, raw
            floors[line[0]] = (float(line[1]), float(line[2]))
    assert floors, "empty floor file"
    for mod in floors:
        assert os.path.exists(os.path.join(ROOT, "src", mod)), mod
    # every .c of src/ has a floor
    for d in ("runtime", "app"):
        for name in os.listdir(os.path.join(ROOT, "src", d)):
            if name.endswith(".c"):
                assert "%s/%s" % (d, name) in floors, "%s/%s has no floor" % (d, name)


def test_coverage_variant_flags():  # R: T3
    with tempfile.TemporaryDirectory() as tmp:
        env = dict(os.environ, HALE_BUILD_DIR=os.path.join(tmp, "b"))
        r = subprocess.run([os.path.join(ROOT, "scripts/build.sh"), "--configure-only", "coverage"],
                           cwd=ROOT, env=env, capture_output=True, text=True)
        assert r.returncode == 0, r.stderr
        cmds = json.load(open(os.path.join(tmp, "b", "compile_commands.json")))
    util = [c["command"] for c in cmds if c["file"].endswith("src/runtime/common/util.c")][0]
    assert "--coverage" in util and "-O0" in util and "-fprofile-update=atomic" in util
    assert "-DHALE_TEST_HOOKS=1" in util
