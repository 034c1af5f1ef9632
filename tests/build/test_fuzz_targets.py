"""Fuzz targets (R: Y2): one per parser and request layer, each with a
committed seed corpus, and every committed input (including the regression
inputs of bugs the fuzzers found) replays clean under ASan+UBSan. The timed
fuzzing runs in `make fuzz` / the fuzz-short suite."""
import os
import subprocess

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
TARGETS = {"toml", "config_env", "router", "http", "http_parse"}


def test_every_target_has_a_seed_corpus():  # R: Y2
    found = {f[len("fuzz_"):-2] for f in os.listdir(os.path.join(ROOT, "fuzz"))
             if f.startswith("fuzz_") and f.endswith(".c")}
    assert TARGETS <= found, TARGETS - found
    for t in found:
        corpus = os.path.join(ROOT, "fuzz/corpus", t)
        assert os.path.isdir(corpus) and os.listdir(corpus), "no seeds for fuzz_" + t


def test_committed_inputs_replay_clean():  # R: Y2
    b = os.path.join(ROOT, "build/fuzz")
    subprocess.run(["cmake", "-S", ROOT, "-B", b, "-G", "Ninja", "-DCMAKE_C_COMPILER=clang",
                    "-DCMAKE_BUILD_TYPE=Fuzz", "-DHALE_FUZZ=ON"], check=True, capture_output=True)
    subprocess.run(["cmake", "--build", b], check=True, capture_output=True)
    for t in sorted(TARGETS):
        corpus = os.path.join(ROOT, "fuzz/corpus", t)
        inputs = [os.path.join(corpus, f) for f in sorted(os.listdir(corpus))]
        r = subprocess.run([os.path.join(b, "fuzz_" + t), "-runs=0", *inputs],
                           capture_output=True, text=True, timeout=300)
        assert r.returncode == 0, (t, r.stderr[-3000:])
