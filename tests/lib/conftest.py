"""Fixtures of the library tests: `make install` into a temporary prefix
(once per session) and the example service built against it."""
import os
import shutil
import subprocess
import tempfile

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
EXAMPLE = os.path.join(ROOT, "examples", "shortener")


def run(*args, **kw):
    """Runs a command; on failure the assertion shows its output."""
    p = subprocess.run(args, capture_output=True, text=True, **kw)
    assert p.returncode == 0, "%s failed (%d):\n%s\n%s" % (" ".join(args), p.returncode,
                                                          p.stdout[-4000:], p.stderr[-4000:])
    return p.stdout


@pytest.fixture(scope="session")
def workdir():
    d = tempfile.mkdtemp(prefix="hale-lib-")
    yield d
    shutil.rmtree(d, ignore_errors=True)


@pytest.fixture(scope="session")
def prefix(workdir):
    """hale installed by `make install PREFIX=<tmp>` (the release build)."""
    p = os.path.join(workdir, "prefix")
    run("make", "-s", "install", "PREFIX=" + p, "DESTDIR=", cwd=ROOT)
    return p


@pytest.fixture(scope="session")
def example_pkgconfig(prefix, workdir):
    """examples/shortener built by its plain Makefile through pkg-config."""
    src = os.path.join(workdir, "ex-pkgconfig")
    shutil.copytree(EXAMPLE, src)
    env = dict(os.environ, PKG_CONFIG_PATH=os.path.join(prefix, "lib", "pkgconfig"))
    # the installed tree only: no include path into this checkout
    run("make", "-s", cwd=src, env=env)
    return os.path.join(src, "shortener")


@pytest.fixture(scope="session")
def example_cmake(prefix, workdir):
    """examples/shortener built by its CMakeLists.txt through find_package(hale)."""
    src = os.path.join(workdir, "ex-cmake")
    shutil.copytree(EXAMPLE, src)
    build = os.path.join(src, "build")
    run("cmake", "-S", src, "-B", build, "-DCMAKE_PREFIX_PATH=" + prefix, "-DCMAKE_BUILD_TYPE=Debug")
    run("cmake", "--build", build)
    return os.path.join(build, "shortener")
