"""Differential test of hale's TOML decoder against python3-tomli, Debian's
TOML 1.0 parser (R: C2).

Inputs: the fuzzer's seed corpus (fuzz/corpus/toml), the corpus scripts/fuzz.sh
grew (build/fuzz-corpus/fuzz_toml, when present), config/*.toml, the toml-test
documents Debian ships, and seeded byte/line mutations of all of them. Each
goes through build/debug/toml_decoder and tomli.loads. The rules:

  * both accept or both refuse (a document that is not UTF-8 is refused by
    both: tomli is given the bytes decoded strictly, and refusal then counts);
  * an accepted document decodes to the same values: tomli's Python values
    are tagged the toml-test way and compared type-aware (floats as numbers,
    date-times as instants) by tests/toml/toml_test.py's compare_tagged.

Deliberate difference (one): hale skips a UTF-8 byte order mark at the
start of a document (editors on Windows write one; TOML 1.0's grammar has
none, and tomli refuses it as "Invalid statement"). For such a document
tomli is given the text after the mark, and both must then agree. Limits hale sets on purpose (nesting
depth, sizes) are above every input here; a mutation that crosses one would
show up as a refusal by hale only and fail this test, to be listed in
HALE_LIMIT_REFUSALS with the limit's name.

The decoder exits 1 with "line:col: message" on a refusal; any other
non-zero status (a crash) fails the test whatever tomli says.

Env: HALE_TOML_DECODER (default build/debug/toml_decoder),
     TOML_DIFF_MUTANTS (default 1500), TOML_DIFF_SEED (default 19)."""
import datetime as dt
import glob
import json
import math
import os
import random
import subprocess
import sys

import pytest

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, HERE)
import toml_test  # noqa: E402  tests/toml/toml_test.py

try:
    import tomli
except ImportError:  # a missing tool fails, never skips
    tomli = None

DECODER = os.environ.get("HALE_TOML_DECODER", os.path.join(ROOT, "build/debug/toml_decoder"))
MUTANTS = int(os.environ.get("TOML_DIFF_MUTANTS", "1500"))
SEED = int(os.environ.get("TOML_DIFF_SEED", "19"))
HALE_LIMIT_REFUSALS = {}  # reason substring -> the limit, when one is ever needed

PIECES = [b"=", b"[", b"]", b"[[", b"]]", b"{", b"}", b",", b".", b"\"", b"'", b"\"\"\"",
          b"'''", b"\\", b"\\u00e9", b"\\U0001F600", b"\n", b"\r\n", b"\r", b"#", b" ", b"\t",
          b"0x1F", b"0o7", b"0b1", b"1_000", b"1e10", b"-0.0", b"inf", b"nan", b"+", b"-",
          b"true", b"false", b"1979-05-27T07:32:00Z", b"07:32:00", b"1979-05-27",
          b"1979-05-27 07:32:00.999999-07:00", b"a.b", b"\"k\"", b"\x00", b"\xc3\xa9", b"\xff"]


def tag(v):
    """tomli's value in toml-test's tagged JSON form."""
    if isinstance(v, bool):
        return {"type": "bool", "value": "true" if v else "false"}
    if isinstance(v, int):
        return {"type": "integer", "value": str(v)}
    if isinstance(v, float):
        return {"type": "float", "value": "nan" if math.isnan(v) else repr(v)}
    if isinstance(v, str):
        return {"type": "string", "value": v}
    if isinstance(v, dt.datetime):
        return {"type": "datetime" if v.tzinfo else "datetime-local", "value": v.isoformat()}
    if isinstance(v, dt.date):
        return {"type": "date-local", "value": v.isoformat()}
    if isinstance(v, dt.time):
        return {"type": "time-local", "value": v.isoformat()}
    if isinstance(v, list):
        return [tag(x) for x in v]
    if isinstance(v, dict):
        return {k: tag(x) for k, x in v.items()}
    raise TypeError(type(v))


BOM = b"\xef\xbb\xbf"


def tomli_parse(data):
    """(True, tagged value) or (False, reason)."""
    if data.startswith(BOM):  # the deliberate difference, see above
        data = data[len(BOM):]
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as e:
        return False, "not UTF-8: %s" % e
    try:
        return True, tag(tomli.loads(text))
    except tomli.TOMLDecodeError as e:
        return False, str(e)
    except RecursionError:  # tomli recurses per nesting level
        return False, "nesting too deep for tomli"


def hale_parse(data):
    rc, out, err = toml_test.run_decoder([DECODER], data)
    if rc == 0:
        return True, json.loads(out)
    assert rc == 1, "toml_decoder crashed (exit %s) on %r: %r" % (rc, data[:200], err[:300])
    return False, err.decode("utf-8", "replace").strip()


def seeds():
    files = sorted(glob.glob(os.path.join(ROOT, "fuzz/corpus/toml/*")))
    files += sorted(glob.glob(os.path.join(ROOT, "build/fuzz-corpus/fuzz_toml/*")))
    files += sorted(glob.glob(os.path.join(ROOT, "config/*.toml")))
    if os.path.isdir(toml_test.DEBIAN_CORPUS):
        files += sorted(p for _, p in toml_test.cases(toml_test.DEBIAN_CORPUS, "valid"))
        files += sorted(p for _, p in toml_test.cases(toml_test.DEBIAN_CORPUS, "invalid"))
    out = []
    for f in files:
        with open(f, "rb") as fh:
            out.append((os.path.relpath(f, ROOT), fh.read()))
    return out


def mutate(rng, data):
    b = bytearray(data)
    for _ in range(rng.randint(1, 3)):
        op = rng.randrange(4)
        pos = rng.randint(0, len(b))
        if op == 0 and b:  # delete a byte run
            del b[pos:pos + rng.randint(1, 4)]
        elif op == 1:  # insert a TOML-ish piece
            b[pos:pos] = rng.choice(PIECES)
        elif op == 2 and b:  # duplicate a line
            lines = bytes(b).split(b"\n")
            i = rng.randrange(len(lines))
            lines.insert(i, lines[i])
            b = bytearray(b"\n".join(lines))
        elif b:  # flip a byte to a random printable one
            b[min(pos, len(b) - 1)] = rng.randint(0x20, 0x7e)
    return bytes(b)


def inputs():
    base = seeds()
    rng = random.Random(SEED)
    out = list(base)
    for i in range(MUTANTS):
        name, data = rng.choice(base)
        out.append(("%s~mutant%d" % (name, i), mutate(rng, data)))
    return out


def diff_one(data):
    """None when hale and tomli agree, else a message."""
    h_ok, h = hale_parse(data)
    t_ok, t = tomli_parse(data)
    if h_ok != t_ok:
        if not h_ok and any(r in h for r in HALE_LIMIT_REFUSALS):
            return None
        return "hale %s, tomli %s" % ("accepts" if h_ok else "refuses (%s)" % h,
                                      "accepts" if t_ok else "refuses (%s)" % t)
    if h_ok:
        return toml_test.compare_tagged(t, h)
    return None


def test_tools_present():  # R: C2
    assert tomli is not None, "python3-tomli missing: make test-deps (apt-get install python3-tomli)"
    assert os.access(DECODER, os.X_OK), DECODER + " missing: make debug"
    assert os.path.isdir(toml_test.DEBIAN_CORPUS), "make test-deps: golang-github-burntsushi-toml-dev"


def test_hale_and_tomli_agree_on_corpus_and_mutants():  # R: C2
    assert tomli is not None, "python3-tomli missing"
    cases = inputs()
    assert len(cases) > MUTANTS  # the seeds are there
    diffs, accepted = [], 0
    for name, data in cases:
        err = diff_one(data)
        if err:
            diffs.append("%s (%r): %s" % (name, data[:120], err))
        elif hale_parse(data)[0]:
            accepted += 1
    assert not diffs, "%d of %d disagree:\n%s" % (len(diffs), len(cases), "\n".join(diffs[:20]))
    # the comparison has teeth: a good share of the inputs are accepted
    assert accepted > len(cases) // 10, accepted


@pytest.mark.parametrize("doc,want", [
    (b"a = 1.0\n", 1.0),
    (b"a = 1979-05-27T07:32:00Z\n", "1979-05-27T00:32:00-07:00"),
])
def test_comparison_is_type_aware(doc, want):  # R: C2
    # equal values in other spellings compare equal; another type does not
    ok, got = hale_parse(doc)
    assert ok
    kind = got["a"]["type"]
    assert toml_test.compare_tagged({"a": {"type": kind, "value": str(want)}}, got) is None
    assert toml_test.compare_tagged({"a": {"type": "string", "value": str(want)}}, got) is not None
