#!/usr/bin/python3
"""Counts the tests in one suite's log (scripts/suites.sh calls it).

Usage: scripts/count-tests.py LOG  ->  prints "PASSED FAILED SKIPPED" and
exits 0, or exits 1 when no runner's count is in the log (the suite then
counts as one test). Every count found is summed, so a suite that runs
pytest several times (one run per backend) counts all of them:
  pytest    "3 passed, 1 failed, 2 skipped in 4.2s" (-q), or the same
            between "=" rules (-v); errors count as failed
  ctest     "92% tests passed, 1 tests failed out of 13"; a test listed
            "  3 - test_x (Skipped)" (exit 77: no service) is skipped,
            not passed
  toml-test "512 passed, 0 failed" (a line of its own)
  fuzz      scripts/fuzz.sh: one test per target, "Done N runs" passed,
            "fuzz: NAME FAILED" failed
"""
import re
import sys

PYTEST = re.compile(r"^=*\s*((?:\d+ [a-z]+(?:, )?)+) in [\d.]+s(?: \([\d:]+\))?\s*=*$")
PYTEST_ITEM = re.compile(r"(\d+) ([a-z]+)")
CTEST = re.compile(r"^\d+% tests passed, (\d+) tests? failed out of (\d+)")
CTEST_SKIPPED = re.compile(r"^\d+ - \S+ \(Skipped\)$")
TOML = re.compile(r"^(\d+) passed, (\d+) failed$")
FUZZ_OK = re.compile(r"^Done \d+ runs in ")
FUZZ_FAIL = re.compile(r"^fuzz: \S+ FAILED$")


def count(lines):
    p = f = s = 0
    found = False
    for raw in lines:
        line = raw.strip()
        m = PYTEST.match(line)
        if m:
            found = True
            for n, what in PYTEST_ITEM.findall(m.group(1)):
                n = int(n)
                if what in ("passed", "xfailed"):
                    p += n
                elif what in ("failed", "error", "errors", "xpassed"):
                    f += n
                elif what == "skipped":
                    s += n
            continue
        m = CTEST.match(line)
        if m:
            found = True
            failed, total = int(m.group(1)), int(m.group(2))
            p += total - failed
            f += failed
            continue
        if CTEST_SKIPPED.match(line):  # listed after the CTEST line
            p, s = p - 1, s + 1
            continue
        m = TOML.match(line)
        if m:
            found = True
            p += int(m.group(1))
            f += int(m.group(2))
            continue
        if FUZZ_OK.match(line):
            found, p = True, p + 1
        elif FUZZ_FAIL.match(line):
            found, f = True, f + 1
    return (p, f, s) if found else None


def main():
    try:
        with open(sys.argv[1], errors="replace") as fh:
            r = count(fh)
    except OSError:
        r = None
    if r is None:
        return 1
    print("%d %d %d" % r)
    return 0


if __name__ == "__main__":
    sys.exit(main())
