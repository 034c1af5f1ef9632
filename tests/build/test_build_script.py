"""Any order of make targets works on any machine state (R: T4): the
Makefile and scripts/run-tests.sh build through one function,
scripts/build.sh, which keeps the generator a build directory was
configured with. The case of issue 19: `make run` on a fresh machine
configured build/release with Unix Makefiles (no ninja yet), then
`make test` installed ninja and forced -G Ninja on the same directory:
"CMake Error: generator : Ninja does not match the generator used
previously". These tests use their own build directories (HALE_BUILD_DIR),
never the tree's build/."""
import os
import re
import shutil
import subprocess

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
BUILD = os.path.join(ROOT, "scripts", "build.sh")


def generator(d):
    cache = open(os.path.join(d, "CMakeCache.txt")).read()
    return re.search(r"^CMAKE_GENERATOR:INTERNAL=(.*)$", cache, re.M).group(1)


def build(d, *args, env=None):
    e = {**(env or os.environ), "HALE_BUILD_DIR": str(d)}
    return subprocess.run([BUILD, *args], cwd=ROOT, env=e, capture_output=True, text=True,
                          timeout=600)


def test_makefiles_dir_builds_on_when_ninja_is_there(tmp_path):  # R: T4
    assert shutil.which("ninja"), "ninja is not installed: scripts/install-deps.sh build"
    d = tmp_path / "release-like"
    # what `make run` did on a machine without ninja
    subprocess.run(["cmake", "-S", ROOT, "-B", str(d), "-G", "Unix Makefiles",
                    "-DCMAKE_BUILD_TYPE=Debug", "-DHALE_TEST_HOOKS=ON"],
                   check=True, capture_output=True)
    # what `make test` does next, ninja now installed
    p = build(d, "debug", "--target", "hale")
    assert p.returncode == 0, p.stdout[-2000:] + p.stderr[-2000:]
    assert "does not match the generator" not in p.stderr
    assert generator(d) == "Unix Makefiles"
    out = subprocess.run([str(d / "hale"), "--version"], capture_output=True, text=True)
    assert out.returncode == 0 and out.stdout.startswith("hale "), out


def test_new_dir_gets_ninja_and_a_lost_tool_means_a_clean_reconfigure(tmp_path):  # R: T4
    d = tmp_path / "b"
    p = build(d, "--configure-only", "debug")
    assert p.returncode == 0, p.stderr
    assert generator(d) == "Ninja"
    # the same directory on a machine without ninja: a PATH of every tool
    # but ninja
    bin_ = tmp_path / "bin"
    bin_.mkdir()
    for dirname in ("/usr/local/bin", "/usr/bin", "/bin"):
        if not os.path.isdir(dirname):
            continue
        for name in os.listdir(dirname):
            if name != "ninja" and not (bin_ / name).exists():
                os.symlink(os.path.join(dirname, name), bin_ / name)
    env = {**os.environ, "PATH": str(bin_)}
    assert subprocess.run(["sh", "-c", "command -v ninja"], env=env).returncode != 0
    p = build(d, "--configure-only", "debug", env=env)
    assert p.returncode == 0, p.stderr
    assert "reconfiguring it from scratch" in p.stderr
    assert generator(d) == "Unix Makefiles"


def test_makefile_and_runner_share_the_build_function_and_tsan_list():  # R: T4
    # the Makefile's variants go through scripts/build.sh
    for v in ("debug", "release", "minsize", "native", "asan", "tsan"):
        out = subprocess.run(["make", "-n", "--no-print-directory", "-C", ROOT, v], capture_output=True, text=True).stdout
        assert "scripts/build.sh %s" % v in out and "cmake -S" not in out, out
    # nothing else configures those directories with a generator of its own
    for f in ("Makefile", "scripts/run-tests.sh", "scripts/lint.sh"):
        assert "-G Ninja" not in open(os.path.join(ROOT, f)).read(), f
    # one TSan list, every entry a file, used by make test-tsan
    lst = [l.split("#")[0].strip() for l in open(os.path.join(ROOT, "tests/e2e/tsan-suites.txt"))]
    lst = [l for l in lst if l]
    assert lst and all(os.path.isfile(os.path.join(ROOT, l)) for l in lst), lst
    out = subprocess.run(["make", "-n", "--no-print-directory", "-C", ROOT, "test-tsan"], capture_output=True, text=True).stdout
    assert out.split("pytest -q", 1)[1].split() == lst, out
