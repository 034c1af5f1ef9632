"""`make test`'s last line counts tests, not suites (R: T1): the totals
summed over every runner (ctest, each pytest run, toml-test, fuzz
targets), the per-suite table just before, each suite's output kept in
build/test-logs/NAME.log. scripts/suites.sh (sourced by run-tests.sh) is
run here with stand-in suites that print what the real runners print."""
import os
import subprocess

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
COUNT = os.path.join(ROOT, "scripts", "count-tests.py")

PYTEST_Q = "....F.s\nFAILED tests/e2e/test_x.py::test_y - assert 1\n5 passed, 1 failed, 1 skipped in 3.21s\n"
PYTEST_V = "tests/image/test_image.py::test_a PASSED\n" \
           "============= 10 passed, 2 skipped, 1 warning in 200.45s (0:03:20) =============\n"
CTEST = "13/13 Test #13: test_toml ........   Passed    0.05 sec\n\n" \
        "92% tests passed, 1 tests failed out of 13\n\nTotal Test time (real) =   2.10 sec\n"
TOML = "FAIL invalid/x.toml\n733 passed, 1 failed\n"
FUZZ = "fuzz: fuzz_toml for 30s\nDone 123456 runs in 31 second(s)\nfuzz: fuzz_env for 30s\n" \
       "fuzz: fuzz_env FAILED\n==1==ERROR: AddressSanitizer\nfuzz: fuzz_http for 30s\n" \
       "Done 99 runs in 30 second(s)\n"


def count(tmp_path, text):
    f = tmp_path / "log"
    f.write_text(text)
    p = subprocess.run(["/usr/bin/python3", COUNT, str(f)], capture_output=True, text=True)
    return tuple(int(x) for x in p.stdout.split()) if p.returncode == 0 else None


def test_counts_each_runner(tmp_path):  # R: T1
    assert count(tmp_path, PYTEST_Q) == (5, 1, 1)
    assert count(tmp_path, PYTEST_V) == (10, 0, 2)
    assert count(tmp_path, CTEST) == (12, 1, 0)
    # ctest counts a test that exited 77 (service missing) among the passed
    assert count(tmp_path, "100% tests passed, 0 tests failed out of 3\n\n"
                           "The following tests did not run:\n"
                           "\t  3 - test_cache_redis (Skipped)\n") == (2, 0, 1)
    assert count(tmp_path, TOML) == (733, 1, 0)
    assert count(tmp_path, FUZZ) == (2, 1, 0)
    # one pytest run per backend: summed; a collection error is a failure
    assert count(tmp_path, "=== backend pg\n7 passed in 1.00s\n=== backend pg+redis\n"
                           "6 passed, 1 error in 2.00s\n") == (13, 1, 0)
    assert count(tmp_path, "lint: cppcheck\nlint: shellcheck\nall clean\n") is None
    assert count(tmp_path, "") is None


def run_suites(tmp_path, body):
    script = "cd %s\nsource scripts/suites.sh\n%s\nsummary\n" % (ROOT, body)
    env = {**os.environ, "HALE_TEST_LOGS": str(tmp_path / "logs")}
    return subprocess.run(["bash", "-c", script], capture_output=True, text=True, env=env,
                          timeout=60)


def test_last_line_has_the_test_totals_and_the_table_before_it(tmp_path):  # R: T1
    body = """
unit() { printf '%%b' %s; }
e2e() { printf '%%b' %s; }
setvar() { SUITE_SET=yes; }
suite unit unit
suite e2e e2e
suite lint true
suite services setvar
echo "SUITE_SET=${SUITE_SET:-}"
""" % (repr("100% tests passed, 0 tests failed out of 13\n"), repr("250 passed, 3 skipped in 9.10s\n"))
    p = run_suites(tmp_path, body)
    assert p.returncode == 0, p.stdout + p.stderr
    lines = p.stdout.splitlines()
    assert lines[-1] == "265 passed, 0 failed (4 suites: 4 passed, 0 failed)", lines[-8:]
    assert "SUITE_SET=yes" in lines   # a suite runs in the runner's own shell
    head = [i for i, l in enumerate(lines) if l.split()[:2] == ["suite", "result"]][0]
    table = lines[head + 1:-1]
    assert [r.split()[:5] for r in table] == [
        ["unit", "PASS", "13", "0", "0"], ["e2e", "PASS", "250", "0", "3"],
        ["lint", "PASS", "1", "0", "0"], ["services", "PASS", "1", "0", "0"]], table
    log = (tmp_path / "logs" / "e2e.log").read_text()
    assert log == "250 passed, 3 skipped in 9.10s\n"


def test_any_failed_suite_means_failed_tests_in_the_last_line(tmp_path):  # R: T1
    body = """
crash() { echo "12 passed in 1.00s"; echo "Segmentation fault"; return 139; }
red() { echo "40 passed, 2 failed in 3.00s"; return 1; }
suite crash-after-tests crash
suite red red
suite build false
suite ok true
"""
    p = run_suites(tmp_path, body)
    assert p.returncode != 0
    lines = p.stdout.splitlines()
    # crash: its 12 passed and 1 failed for the exit status; red: 40/2;
    # build: unparsed, failed by exit status; ok: 1 passed
    assert lines[-1] == "53 passed, 4 failed (4 suites: 1 passed, 3 failed)", lines[-8:]
    assert lines[-2] == "failed suites: crash-after-tests red build"
