"""Real PostgreSQL and Redis for the end-to-end tests.

HALE_TEST_BACKEND selects what every Hale instance of the run uses:
  sqlite    (default) SQLite in the instance's temporary directory
  pg        PostgreSQL
  pg+redis  PostgreSQL behind the Redis cache
conftest's Hale applies env_for_run(), so the whole existing suite runs unchanged
against each backend (scripts/test-backends.sh runs all three).

The servers are the ones scripts/services.sh starts (it installs and starts
them on first use; their URLs come from HALE_TEST_PG_URL/HALE_TEST_REDIS_URL
when set, else from `services.sh start`). Every instance gets a fresh
PostgreSQL schema (search_path in the URL), so tests that count keys see only
their own; the cache follows, since its key names carry a namespace stored in
the schema. Tests that need several instances on one database pass
DATABASE_URL explicitly (see new_pg_url).

HALE_E2E_SQLITE_ONLY=1 (make check, the fast loop) starts no server: a test
that needs PostgreSQL or Redis is reported skipped there, never passed;
make test and make test-e2e run them."""
import atexit
import os
import shlex
import subprocess
import threading
import time
import uuid

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
SERVICES = os.path.join(ROOT, "scripts", "services.sh")
BACKEND = os.environ.get("HALE_TEST_BACKEND", "sqlite")
if BACKEND not in ("sqlite", "pg", "pg+redis"):
    raise RuntimeError("HALE_TEST_BACKEND must be sqlite, pg or pg+redis, not %r" % BACKEND)

_urls = {}
_schemas = []


def services_cmd(*args, timeout=120):
    """Runs scripts/services.sh with args; raises with its output on failure."""
    r = subprocess.run([SERVICES, *args], capture_output=True, text=True, timeout=timeout)
    if r.returncode != 0:
        raise RuntimeError("services.sh %s failed:\n%s%s" % (" ".join(args), r.stdout, r.stderr))
    return r.stdout


def urls():
    """{"pg": ..., "redis": ...}, starting the servers when needed."""
    if os.environ.get("HALE_E2E_SQLITE_ONLY") == "1":
        import pytest
        pytest.skip("needs PostgreSQL/Redis (HALE_E2E_SQLITE_ONLY=1): make test-e2e runs it")
    if not _urls:
        pg, redis = os.environ.get("HALE_TEST_PG_URL"), os.environ.get("HALE_TEST_REDIS_URL")
        if not (pg and redis):
            for line in services_cmd("start").splitlines():
                if line.startswith("export "):
                    k, _, v = line[len("export "):].partition("=")
                    v = shlex.split(v)[0] if v else v
                    if k == "HALE_TEST_PG_URL":
                        pg = v
                    elif k == "HALE_TEST_REDIS_URL":
                        redis = v
        _urls.update(pg=pg, redis=redis)
    return _urls


def psql(sql, url=None):
    """Runs SQL through psql; returns stdout (unaligned, tuples only)."""
    r = subprocess.run(["psql", "-X", "-q", "-At", "-v", "ON_ERROR_STOP=1", url or urls()["pg"], "-c", sql],
                       capture_output=True, text=True, timeout=60)
    if r.returncode != 0:
        raise RuntimeError("psql: %s" % r.stderr)
    return r.stdout


def redis_cli(*args):
    """Runs redis-cli against the test Redis; returns stdout."""
    u = urls()["redis"]
    # redis://:PASS@HOST:PORT/DB
    rest = u[len("redis://"):]
    auth, _, hostpart = rest.rpartition("@")
    host, _, port_db = hostpart.partition(":")
    port, _, db = port_db.partition("/")
    env = dict(os.environ, REDISCLI_AUTH=auth.partition(":")[2])
    r = subprocess.run(["redis-cli", "-h", host, "-p", port, "-n", db or "0", *args], capture_output=True,
                       text=True, timeout=30, env=env)
    return r.stdout


def new_pg_url():
    """A URL for a fresh, empty schema (dropped when the test run ends)."""
    schema = "e2e_" + uuid.uuid4().hex[:12]
    psql("CREATE SCHEMA " + schema)
    _schemas.append(schema)
    base = urls()["pg"]
    return "%s%soptions=-csearch_path%%3D%s" % (base, "&" if "?" in base else "?", schema)


@atexit.register
def _drop_schemas():
    if _schemas and _urls.get("pg"):
        try:
            psql("DROP SCHEMA IF EXISTS %s CASCADE" % ", ".join(_schemas))
        except Exception:  # the server may be gone already: it is a throw-away cluster
            pass


def env_for(kind=None, pg_url=None):
    """Environment for one new Hale instance on backend `kind` (default: the
    run's HALE_TEST_BACKEND): both URLs are always set, empty when unused,
    so a test's explicit choice wins over the run's. pg_url shares a schema
    between instances (default: a fresh one)."""
    kind = kind or BACKEND
    if kind == "sqlite":
        return {"DATABASE_URL": "", "REDIS_URL": ""}
    return {
        "DATABASE_URL": pg_url or new_pg_url(),
        "REDIS_URL": urls()["redis"] if kind == "pg+redis" else "",
        "APP_DATABASE__MAX_CONNECTIONS": "4",
    }


def env_for_run(test_env=None):
    """What conftest's Hale adds for the run's HALE_TEST_BACKEND: nothing
    when the test chose its database itself (test_env sets DATABASE_URL),
    so no schema is made for nothing (or while PostgreSQL is down)."""
    if test_env and "DATABASE_URL" in test_env:
        return {}
    return env_for()


def wait_for(pred, timeout, interval=0.02):
    """Polls pred() until true; returns the seconds it took, or None."""
    t0 = time.monotonic()
    while time.monotonic() - t0 < timeout:
        if pred():
            return time.monotonic() - t0
        time.sleep(interval)
    return None


def status(h, method, path, body=None, headers=None, timeout=10.0, admin=False):
    """The HTTP status, or None when the connection failed."""
    try:
        return h.request(method, path, body, headers, timeout=timeout, admin=admin)[0]
    except OSError:
        return None


def metric(h, name):
    """The value of one label-less sample from the admin /metrics, or None."""
    st, _, body = h.request("GET", "/metrics", admin=True)
    if st != 200:
        return None
    for line in body.decode().splitlines():
        if line.startswith(name + " "):
            return float(line.split()[1])
    return None


class Load:
    """A small bounded load: `threads` clients, each doing PUT then GET on its
    own keys, one request at a time, recording (start, seconds, status)."""

    def __init__(self, h, threads=3, timeout=10.0):
        self.h, self.timeout = h, timeout
        self.results = []
        self.lock = threading.Lock()
        self.stop_flag = threading.Event()
        self.threads = [threading.Thread(target=self._run, args=(i,), daemon=True) for i in range(threads)]

    def _run(self, tid):
        i = 0
        while not self.stop_flag.is_set():
            key = "/v1/kv/load-%d-%d" % (tid, i % 20)
            for method, body in (("PUT", b"v%d" % i), ("GET", None)):
                t0 = time.monotonic()
                st = status(self.h, method, key, body, timeout=self.timeout)
                with self.lock:
                    self.results.append((t0, time.monotonic() - t0, st, method))
            i += 1
            time.sleep(0.01)

    def __enter__(self):
        for t in self.threads:
            t.start()
        return self

    def __exit__(self, *exc):
        self.stop_flag.set()
        for t in self.threads:
            t.join(self.timeout + 5)

    def since(self, t):
        with self.lock:
            return [r for r in self.results if r[0] >= t]
