"""hale on a real PostgreSQL (scripts/services.sh): several instances on one
database, versions, migrations, the pool bound, timeouts and secrets.
(R: A6 A1 L2 H2 Y7 C5)"""
import json
import os
import subprocess
import threading
import time

import backends
from backends import psql, wait_for
from conftest import HALE_BIN, ROOT



def schema_of(url):
    return url.rsplit("%3D", 1)[1]


def test_health_and_metrics_show_the_database(hale_factory):  # R: A6 H4 O3
    h = hale_factory(env=backends.env_for("pg"))
    doc = json.loads(h.request("GET", "/health")[2])
    assert doc["checks"]["store"]["status"] == "pass"
    assert "redis" not in doc["checks"]
    assert h.request("PUT", "/v1/kv/m", b"x")[0] == 201
    assert h.request("GET", "/v1/kv/m")[0] == 200
    st, _, body = h.request("GET", "/metrics", admin=True)
    assert st == 200
    text = body.decode()
    assert 'hale_store_info{backend="postgres"} 1' in text
    assert "hale_db_pool_max_connections 4" in text
    assert 'hale_db_query_duration_seconds_count{op="get"}' in text
    assert "hale_db_breaker_state 0" in text


def test_two_instances_share_one_database(hale_factory):  # R: A6
    env = backends.env_for("pg")
    a = hale_factory(env=env)
    b = hale_factory(env=env)
    st, h1, _ = a.request("PUT", "/v1/kv/shared", b"from-a", {"Content-Type": "text/x-a"})
    assert st == 201
    st, h2, body = b.request("GET", "/v1/kv/shared")
    assert st == 200 and body == b"from-a" and h2["etag"] == h1["etag"]
    assert h2["content-type"] == "text/x-a"
    assert b.request("DELETE", "/v1/kv/shared")[0] == 204
    assert a.request("GET", "/v1/kv/shared")[0] == 404
    # a conditional write on one instance sees the other's version
    _, h3, _ = a.request("PUT", "/v1/kv/c", b"1")
    _, h4, _ = b.request("PUT", "/v1/kv/c", b"2", {"If-Match": h3["etag"]})
    assert a.request("PUT", "/v1/kv/c", b"3", {"If-Match": h3["etag"]})[0] == 412
    assert a.request("PUT", "/v1/kv/c", b"3", {"If-Match": h4["etag"]})[0] == 200


def test_etags_never_reused_across_instances_and_restarts(hale_factory):  # R: A1 A6
    url = backends.new_pg_url()
    env = backends.env_for("pg", pg_url=url)
    seen = []
    a = hale_factory(env=env)
    b = hale_factory(env=env)
    for i in range(20):
        h = (a, b)[i % 2]
        st, hd, _ = h.request("PUT", "/v1/kv/k", b"%d" % i)
        assert st in (200, 201)
        seen.append(hd["etag"])
        if i % 5 == 4:
            assert h.request("DELETE", "/v1/kv/k")[0] == 204
    a.check_clean_exit()
    a2 = hale_factory(env=env)
    st, hd, _ = a2.request("PUT", "/v1/kv/k", b"after-restart")
    seen.append(hd["etag"])
    assert len(set(seen)) == len(seen)
    nums = [int(e.strip('"')) for e in seen]
    assert nums == sorted(nums)


def run_hale(args, env, timeout=60):
    e = {k: v for k, v in os.environ.items() if not k.startswith("APP_")}
    e.update({"HALE_CONFIG_DIR": os.path.join(ROOT, "config"), "HALE_SECRET_DIR": "/nonexistent",
              "ASAN_OPTIONS": "detect_leaks=1"})
    e.update(env)
    return subprocess.run([HALE_BIN, *args], env=e, capture_output=True, text=True, timeout=timeout)


def test_migrate_command(hale_factory):  # R: A6 (hale migrate for a Kubernetes Job)
    url = backends.new_pg_url()
    r = run_hale(["migrate"], {"DATABASE_URL": url})
    assert r.returncode == 0, r.stdout + r.stderr
    assert "migrated from version 0 to 3" in r.stdout
    r = run_hale(["migrate"], {"DATABASE_URL": url})
    assert r.returncode == 0 and "up to date (version 3)" in r.stdout, r.stdout + r.stderr
    assert psql("SELECT count(*) FROM %s.schema_migrations" % schema_of(url)).strip() == "3"
    h = hale_factory(env={**backends.env_for("pg", pg_url=url), "APP_DATABASE__MIGRATE_ON_START": "false"})
    assert h.request("PUT", "/v1/kv/x", b"y")[0] == 201


def test_without_migrate_on_start_waits_for_the_job(hale_factory):  # R: A6 L2 H3
    url = backends.new_pg_url()
    h = hale_factory(env={**backends.env_for("pg", pg_url=url), "APP_DATABASE__MIGRATE_ON_START": "false"},
                     wait_ready=False)
    time.sleep(1.0)
    assert h.proc.poll() is None
    assert backends.status(h, "GET", "/health/readiness") == 503
    assert backends.status(h, "GET", "/health/startup") == 503
    assert backends.status(h, "GET", "/health/liveness") == 200
    assert "hale migrate" in h.output()
    r = run_hale(["migrate"], {"DATABASE_URL": url})
    assert r.returncode == 0, r.stderr
    h.wait_ready(timeout=15)  # the start-up retry finds the schema, no restart
    assert h.request("PUT", "/v1/kv/x", b"y")[0] == 201


def test_replicas_starting_together_migrate_once(hale_factory):  # R: A6
    url = backends.new_pg_url()
    env = backends.env_for("pg", pg_url=url)
    hs = [hale_factory(env=env, wait_ready=False) for _ in range(3)]
    for h in hs:
        h.wait_ready(timeout=20)
    assert psql("SELECT count(*) FROM %s.schema_migrations" % schema_of(url)).strip() == "3"
    assert hs[0].request("PUT", "/v1/kv/x", b"1")[0] == 201
    assert hs[2].request("GET", "/v1/kv/x")[2] == b"1"


def test_pool_is_bounded_across_workers(hale_factory):  # R: A6 C5
    h = hale_factory(env={**backends.env_for("pg"), "APP_DATABASE__MAX_CONNECTIONS": "2",
                          "APP_SERVER__WORKERS": "8"})
    assert h.request("PUT", "/v1/kv/p", b"v")[0] == 201
    stop = threading.Event()
    errors = []

    def client():
        c = h.conn(timeout=10)
        while not stop.is_set():
            for m, body in (("PUT", b"w"), ("GET", None)):
                c.request(m, "/v1/kv/p", body=body)
                r = c.getresponse()
                r.read()
                if r.status not in (200, 201):
                    errors.append(r.status)
        c.close()

    ts = [threading.Thread(target=client) for _ in range(12)]
    for t in ts:
        t.start()
    peak = 0
    try:
        for _ in range(30):
            n = int(psql("SELECT count(*) FROM pg_stat_activity WHERE application_name = 'hale'"))
            peak = max(peak, n)
            in_use = backends.metric(h, "hale_db_pool_in_use_connections")
            assert in_use is not None and in_use <= 2
            time.sleep(0.03)
    finally:
        stop.set()
        for t in ts:
            t.join(20)
    assert not errors, errors[:10]
    assert 1 <= peak <= 2
    assert backends.metric(h, "hale_db_pool_open_connections") <= 2


def test_statement_timeout_answers_503_with_retry_after(hale_factory):  # R: Y5 A8
    url = backends.new_pg_url()
    h = hale_factory(env={**backends.env_for("pg", pg_url=url), "APP_DATABASE__STATEMENT_TIMEOUT": "500"})
    assert h.request("PUT", "/v1/kv/k", b"v")[0] == 201
    # another session holds the table lock for 3 s
    locker = subprocess.Popen(["psql", "-X", "-q", backends.urls()["pg"], "-c",
                               "BEGIN; LOCK TABLE %s.kv IN ACCESS EXCLUSIVE MODE; SELECT pg_sleep(3); COMMIT;"
                               % schema_of(url)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        time.sleep(0.5)
        t0 = time.monotonic()
        st, hd, body = h.request("GET", "/v1/kv/k", timeout=10)
        took = time.monotonic() - t0
        assert st == 503, body
        assert hd["retry-after"] and json.loads(body)["error"] == "unavailable"
        assert took <= 0.5 + 0.25 + 0.5, took
    finally:
        locker.wait(20)
    assert wait_for(lambda: backends.status(h, "GET", "/v1/kv/k") == 200, timeout=10) is not None


def test_database_password_never_shown(hale_factory):  # R: Y7
    base = backends.urls()["pg"]
    bad = base.replace(":hale@", ":Wr0ngPassw0rd@")
    assert bad != base
    h = hale_factory(env={**backends.env_for("pg"), "DATABASE_URL": bad}, wait_ready=False)
    time.sleep(1.5)
    assert h.proc.poll() is None  # keeps retrying (L2)
    assert backends.status(h, "GET", "/health/readiness") == 503
    detail = h.request("GET", "/health")[2].decode()
    assert "Wr0ngPassw0rd" not in detail
    out = h.output()
    assert "password authentication failed" in out  # the reason is logged ...
    assert "Wr0ngPassw0rd" not in out               # ... the password never
