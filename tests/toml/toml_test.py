#!/usr/bin/python3
"""Runs a TOML decoder over a toml-test corpus (valid/ and invalid/) the way
toml-test does, without the Go tool (R: C2, T4).

Usage: tests/toml/toml_test.py [-v] DECODER [TESTDIR ...]

DECODER reads TOML on stdin; for a valid document it prints toml-test's
tagged JSON ({"type": "integer", "value": "1"}, tables as objects, arrays as
lists) and exits 0; for an invalid one it exits non-zero. TESTDIR defaults to
the corpus Debian ships in golang-github-burntsushi-toml-dev (`make
test-deps` installs it). A valid/X.toml passes when the decoder accepts it
and its output equals valid/X.json type-aware (compare_tagged below); an
invalid/X.toml passes when the decoder refuses it without crashing (a signal
or a timeout is a failure, not a refusal). TOML 1.1-only cases of valid/
(TOML11_ONLY) must be refused, as TOML 1.0 demands.

Last line: "N passed, M failed"; exit status 0 only when nothing failed."""
import datetime as dt
import json
import math
import os
import subprocess
import sys

DEBIAN_CORPUS = ("/usr/share/gocode/src/github.com/BurntSushi/toml/"
                 "internal/toml-test/tests")
TIMEOUT_S = 10
# hale's decoder is TOML 1.0. toml-test's own version table (version.go in
# the Debian package) leaves these valid/ cases out for 1.0.0; they are
# TOML 1.1 syntax and invalid 1.0, so here they are checked as invalid:
# the decoder must refuse them (python3-tomli, TOML 1.0 too, also does).
TOML11_ONLY = {
    "valid/string/escape-esc.toml": "the \\e escape is TOML 1.1",
}


def _frac6(s):
    """'10:32:00.555' -> '10:32:00.555000': Python wants at most 6 digits."""
    if "." not in s:
        return s
    head, frac = s.split(".", 1)
    return head + "." + (frac + "000000")[:6]


def parse_datetime(kind, s):
    """The instant (or local value) a toml-test datetime string names, so
    '1987-07-05T17:45:00Z' equals '1987-07-05 17:45:00+00:00'."""
    s = s.strip().replace("t", "T").replace("z", "Z").replace(" ", "T")
    if kind == "date-local":
        return dt.date.fromisoformat(s)
    if kind == "time-local":
        return dt.time.fromisoformat(_frac6(s))
    date, _, rest = s.partition("T")
    offset = ""
    if kind == "datetime":
        if rest.endswith("Z"):
            rest, offset = rest[:-1], "+00:00"
        else:
            for sign in "+-":
                if sign in rest:
                    rest, _, off = rest.rpartition(sign)
                    offset = sign + off
                    break
    return dt.datetime.fromisoformat(date + "T" + _frac6(rest) + offset)


def parse_float(s):
    s = s.strip().replace("_", "")
    if s.lstrip("+-") == "nan":
        return math.nan
    return float(s)


def is_tagged(v):
    return isinstance(v, dict) and set(v) == {"type", "value"} \
        and isinstance(v["type"], str) and not isinstance(v["value"], (dict, list))


def compare_tagged(want, got, path="$"):
    """None when equal, else a message naming the first difference. Scalars
    compare by type, then: floats as numbers (nan equals nan, -0.0 equals
    0.0 as in toml-test), date-times as instants, integers as numbers,
    strings and bools exactly."""
    if is_tagged(want):
        if not is_tagged(got):
            return "%s: want %r, got %r" % (path, want, got)
        kind = want["type"]
        if got["type"] != kind:
            return "%s: want type %s, got %s" % (path, kind, got["type"])
        a, b = want["value"], got["value"]
        try:
            if kind == "float":
                fa, fb = parse_float(a), parse_float(b)
                same = (math.isnan(fa) and math.isnan(fb)) or fa == fb
            elif kind == "integer":
                same = int(a) == int(b)
            elif kind in ("datetime", "datetime-local", "date-local", "time-local"):
                same = parse_datetime(kind, a) == parse_datetime(kind, b)
            else:
                same = a == b
        except ValueError as e:
            return "%s: %s value %r vs %r: %s" % (path, kind, a, b, e)
        return None if same else "%s: want %s %r, got %r" % (path, kind, a, b)
    if isinstance(want, list):
        if not isinstance(got, list):
            return "%s: want an array, got %r" % (path, got)
        if len(want) != len(got):
            return "%s: want %d elements, got %d" % (path, len(want), len(got))
        for i, (w, g) in enumerate(zip(want, got)):
            err = compare_tagged(w, g, "%s[%d]" % (path, i))
            if err:
                return err
        return None
    if isinstance(want, dict):
        if not isinstance(got, dict) or is_tagged(got):
            return "%s: want a table, got %r" % (path, got)
        if set(want) != set(got):
            return "%s: keys differ: missing %s, extra %s" % (
                path, sorted(set(want) - set(got)), sorted(set(got) - set(want)))
        for k in want:
            err = compare_tagged(want[k], got[k], "%s.%s" % (path, k))
            if err:
                return err
        return None
    return "%s: unexpected expected-value %r" % (path, want)


def run_decoder(decoder, data):
    """(returncode, stdout, stderr); returncode None on a timeout."""
    try:
        r = subprocess.run(decoder, input=data, capture_output=True, timeout=TIMEOUT_S)
    except subprocess.TimeoutExpired:
        return None, b"", b"timeout"
    return r.returncode, r.stdout, r.stderr


def cases(testdir, kind):
    root = os.path.join(testdir, kind)
    for d, _, files in sorted(os.walk(root)):
        for f in sorted(files):
            if f.endswith(".toml"):
                full = os.path.join(d, f)
                yield os.path.relpath(full, testdir), full


def check_valid(decoder, path):
    with open(path, "rb") as f:
        data = f.read()
    with open(path[:-5] + ".json", encoding="utf-8") as f:
        want = json.load(f)
    rc, out, err = run_decoder(decoder, data)
    if rc != 0:
        return "refused a valid document (exit %s): %s" % (rc, err.decode("utf-8", "replace")[:300])
    try:
        got = json.loads(out)
    except ValueError as e:
        return "output is not JSON: %s" % e
    return compare_tagged(want, got)


def check_invalid(decoder, path):
    with open(path, "rb") as f:
        data = f.read()
    rc, out, _ = run_decoder(decoder, data)
    if rc is None:
        return "timed out"
    if rc < 0:
        return "killed by signal %d" % -rc
    if rc == 0:
        return "accepted an invalid document: %s" % out.decode("utf-8", "replace")[:300]
    return None


def run(decoder, testdirs, verbose=False, out=sys.stdout):
    passed = failed = 0
    for testdir in testdirs:
        for kind, check in (("valid", check_valid), ("invalid", check_invalid)):
            for name, path in cases(testdir, kind):
                err = (check_invalid if name in TOML11_ONLY else check)(decoder, path)
                if err:
                    failed += 1
                    print("FAIL %s: %s" % (name, err), file=out)
                else:
                    passed += 1
                    if verbose:
                        print("ok   %s" % name, file=out)
    return passed, failed


def main(argv):
    verbose = "-v" in argv
    args = [a for a in argv if a != "-v"]
    if not args:
        print(__doc__, file=sys.stderr)
        return 2
    decoder = args[0].split()
    testdirs = args[1:] or [DEBIAN_CORPUS]
    for d in testdirs:
        if not os.path.isdir(os.path.join(d, "valid")) or not os.path.isdir(os.path.join(d, "invalid")):
            print("toml-test: %s has no valid/ and invalid/ (Debian: apt-get install "
                  "golang-github-burntsushi-toml-dev, or make test-deps)" % d, file=sys.stderr)
            return 2
    passed, failed = run(decoder, testdirs, verbose)
    if passed + failed == 0:
        print("toml-test: no test cases found in %s" % " ".join(testdirs), file=sys.stderr)
        return 2
    print("%d passed, %d failed" % (passed, failed))
    return 0 if failed == 0 else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
