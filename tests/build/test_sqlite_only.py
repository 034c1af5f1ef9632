"""The SQLite-only build (-DHALE_WITH_PG=OFF -DHALE_WITH_REDIS=OFF), the one
the sqlite image ships (R: D2): the options are explicit and ON means
required, the binary links neither libpq nor hiredis, says so in `version`
and `config`, serves the key-value API on SQLite, and refuses a postgres://
or redis:// URL with exit 78 and a clear message instead of falling back or
crashing. Uses build/sqlite/hale (scripts/build.sh sqlite; run-tests.sh
builds it before this suite) and build/debug/hale for the full build."""
import glob
import os
import shutil
import socket
import subprocess
import tempfile
import time
import urllib.error
import urllib.request

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
SQLITE = os.path.join(ROOT, "build", "sqlite", "hale")
FULL = os.path.join(ROOT, "build", "debug", "hale")


def need(path):
    assert os.path.exists(path), f"{path} missing: scripts/build.sh {path.split('/')[-2]}"
    return path


def clean_env(**extra):
    e = {k: v for k, v in os.environ.items()
         if not k.startswith("APP_") and k not in ("DATABASE_URL", "REDIS_URL", "RUN_ENV", "PORT")}
    e["HALE_CONFIG_DIR"] = os.path.join(ROOT, "config")
    e.update(extra)
    return e


def run(binary, *args, env=None, cwd=None):
    return subprocess.run([binary, *args], capture_output=True, text=True, timeout=30,
                          env=env or clean_env(), cwd=cwd or tempfile.gettempdir())


# R: D2
def test_version_and_config_say_which_backends_are_built_in():
    for cmd in (["--version"], ["version"]):
        out = run(need(SQLITE), *cmd).stdout
        assert out.startswith("hale ") and "built without postgres" in out \
            and "built without redis" in out, out
        full = run(need(FULL), *cmd).stdout
        assert "backends: sqlite postgres redis" in full and "without" not in full, full
    cfg = run(SQLITE, "config")
    assert cfg.returncode == 0, cfg.stderr
    head = cfg.stdout.splitlines()[0]
    assert head.startswith("# RUN_ENV=") and head.endswith(
        "; build: backends: sqlite (built without postgres) (built without redis)"), head
    assert "; build: backends: sqlite postgres redis" in run(FULL, "config").stdout.splitlines()[0]


# R: D2
def test_links_neither_libpq_nor_hiredis():
    needed = subprocess.run(["objdump", "-p", need(SQLITE)], capture_output=True, text=True,
                            check=True).stdout
    libs = [line.split()[1] for line in needed.splitlines() if line.strip().startswith("NEEDED")]
    assert any(lib.startswith("libsqlite3") for lib in libs), libs
    assert not [lib for lib in libs if lib.startswith(("libpq", "libhiredis"))], libs
    ldd = subprocess.run(["ldd", SQLITE], capture_output=True, text=True, check=True).stdout
    for banned in ("libpq", "hiredis", "libssl", "libgnutls", "libldap", "libkrb5"):
        assert banned not in ldd, ldd


# R: D2
@pytest.mark.parametrize("var,url,what", [
    ("DATABASE_URL", "postgres://hale:secret-pw@db.example:5432/hale", "PostgreSQL"),
    ("DATABASE_URL", "postgresql://db.example/hale", "PostgreSQL"),
    ("REDIS_URL", "redis://cache.example:6379/0", "Redis"),
])
def test_a_url_of_a_missing_backend_exits_78_with_a_clear_error(var, url, what):
    with tempfile.TemporaryDirectory() as d:
        env = clean_env(**{var: url, "APP_DATABASE__SQLITE_PATH": os.path.join(d, "hale.db")})
        for args in ((), ("config", "--check"), ("migrate",)):
            r = run(SQLITE, *args, env=env, cwd=d)
            assert r.returncode == 78, (args, r.returncode, r.stdout, r.stderr)
            assert f"built without {what}" in r.stderr and var in r.stderr, r.stderr
            assert "secret-pw" not in r.stdout + r.stderr, "the URL's password was echoed"
        # it failed before opening anything: no SQLite file was made instead
        assert not os.path.exists(os.path.join(d, "hale.db"))


# R: D2 F5
def test_copy_on_a_build_without_postgresql_exits_78():
    with tempfile.TemporaryDirectory() as d:
        env = clean_env(APP_DATABASE__SQLITE_PATH=os.path.join(d, "hale.db"))
        r = run(SQLITE, "copy", "--to", "postgres://db.example/hale", env=env, cwd=d)
        assert r.returncode == 78, (r.returncode, r.stdout, r.stderr)
        assert "built without PostgreSQL" in r.stderr, r.stderr


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def http(method, url, body=None):
    req = urllib.request.Request(url, data=body, method=method)
    try:
        with urllib.request.urlopen(req, timeout=5) as r:
            return r.status, r.read()
    except urllib.error.HTTPError as e:
        return e.code, e.read()


# R: D2
def test_serves_put_and_get_on_sqlite():
    d = tempfile.mkdtemp(prefix="hale-sqlite-only-")
    port, admin = free_port(), free_port()
    env = clean_env(HOST="127.0.0.1", PORT=str(port), APP_METRICS__PORT=str(admin),
                    APP_METRICS__HOST="127.0.0.1", APP_SHUTDOWN__DRAIN_DELAY="0",
                    APP_DATABASE__SQLITE_PATH=os.path.join(d, "hale.db"),
                    HALE_SECRET_DIR=os.path.join(d, "secrets"))
    log = open(os.path.join(d, "log"), "wb")
    p = subprocess.Popen([need(SQLITE)], env=env, cwd=d, stdout=log, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 20
        while True:
            assert p.poll() is None, open(os.path.join(d, "log")).read()
            try:
                if http("GET", f"http://127.0.0.1:{port}/health/readiness")[0] == 200:
                    break
            except OSError:
                pass
            assert time.monotonic() < deadline, open(os.path.join(d, "log")).read()
            time.sleep(0.05)
        assert http("PUT", f"http://127.0.0.1:{port}/v1/kv/k", b"sqlite only")[0] in (200, 201, 204)
        assert http("GET", f"http://127.0.0.1:{port}/v1/kv/k") == (200, b"sqlite only")
        st, body = http("GET", f"http://127.0.0.1:{admin}/metrics")
        assert st == 200 and b'hale_store_info{backend="sqlite"} 1' in body
    finally:
        p.terminate()
        rc = p.wait(timeout=30)
        log.close()
    assert rc == 0, open(os.path.join(d, "log")).read()
    assert os.path.getsize(os.path.join(d, "hale.db")) > 0
    shutil.rmtree(d, ignore_errors=True)


def configure(tmp, pcdir, *opts):
    env = dict(os.environ, PKG_CONFIG_LIBDIR=pcdir, PKG_CONFIG_PATH="")
    return subprocess.run(["cmake", "-S", ROOT, "-B", os.path.join(tmp, "b"), *opts],
                          capture_output=True, text=True, env=env, timeout=120)


# R: D2
def test_a_required_backend_library_missing_stops_the_configure():
    """pkg-config sees only sqlite3.pc (a copy of the system's): libpq and
    hiredis are 'missing'. ON (the default) must fail and say how to fix it;
    OFF configures."""
    pcs = glob.glob("/usr/lib/x86_64-linux-gnu/pkgconfig/sqlite3.pc") + \
        glob.glob("/usr/lib/*/pkgconfig/sqlite3.pc")
    assert pcs, "libsqlite3-dev's sqlite3.pc not found"
    with tempfile.TemporaryDirectory() as tmp:
        pcdir = os.path.join(tmp, "pc")
        os.makedirs(pcdir)
        shutil.copy(pcs[0], pcdir)
        r = configure(tmp, pcdir, "-DHALE_WITH_REDIS=OFF")
        assert r.returncode != 0
        assert "HALE_WITH_PG is ON but libpq is missing" in r.stderr, r.stderr
        shutil.rmtree(os.path.join(tmp, "b"))
        r = configure(tmp, pcdir, "-DHALE_WITH_PG=OFF")
        assert r.returncode != 0
        assert "HALE_WITH_REDIS is ON but hiredis is missing" in r.stderr, r.stderr
        shutil.rmtree(os.path.join(tmp, "b"))
        r = configure(tmp, pcdir, "-DHALE_WITH_PG=OFF", "-DHALE_WITH_REDIS=OFF")
        assert r.returncode == 0, r.stdout + r.stderr
