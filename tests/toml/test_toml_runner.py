"""tests/toml/toml_test.py, the runner of make test's toml-test suite, needs
nothing outside the repository but Debian's corpus (R: C2, T4), and it can
fail: a decoder that accepts everything, or prints wrong values, fails."""
import os
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, HERE)
import toml_test  # noqa: E402

RUNNER = os.path.join(HERE, "toml_test.py")
DECODER = os.environ.get("HALE_TOML_DECODER", os.path.join(ROOT, "build/debug/toml_decoder"))


def run(*args):
    return subprocess.run(["/usr/bin/python3", RUNNER, *args], capture_output=True, text=True,
                          timeout=600)


def test_debian_corpus_passes():  # R: C2, T4
    r = run(DECODER)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr
    passed, failed = map(int, r.stdout.splitlines()[-1].replace(" passed,", "").split()[:2])
    assert failed == 0 and passed > 300


def test_a_wrong_decoder_fails(tmp_path):  # R: T1
    r = run("cat")  # accepts everything, prints TOML, not JSON
    assert r.returncode == 1 and r.stdout.splitlines()[-1].startswith("0 passed")
    # values off by a type: the comparison notices
    assert toml_test.compare_tagged({"a": {"type": "integer", "value": "1"}},
                                    {"a": {"type": "float", "value": "1"}})
    assert toml_test.compare_tagged({"a": {"type": "float", "value": "1.5"}},
                                    {"a": {"type": "float", "value": "1.25"}})
    assert toml_test.compare_tagged(
        {"d": {"type": "datetime", "value": "1979-05-27T07:32:00Z"}},
        {"d": {"type": "datetime", "value": "1979-05-27T07:32:00-07:00"}})
    assert not toml_test.compare_tagged(
        {"d": {"type": "datetime", "value": "1979-05-27T07:32:00Z"}},
        {"d": {"type": "datetime", "value": "1979-05-27 00:32:00-07:00"}})
    assert not toml_test.compare_tagged({"f": {"type": "float", "value": "nan"}},
                                        {"f": {"type": "float", "value": "-nan"}})


def test_missing_corpus_is_an_error(tmp_path):  # R: T4
    r = run(DECODER, str(tmp_path))
    assert r.returncode == 2 and "golang-github-burntsushi-toml-dev" in r.stderr
