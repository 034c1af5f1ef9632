"""Dependency outages under a small bounded load (R: Y5 A7 L2 H1 H2).

PostgreSQL and Redis are the shared servers of scripts/services.sh; each
test stops or freezes one and always brings it back. Timings are from the
settings below: a check every 0.5 s (timeout 0.4 s), statements 1 s (every
store call ends within 1 s + 0.25 s), breakers open for 0.5 s."""
import json
import time

import pytest

import backends
from backends import Load, services_cmd, status, wait_for


CHECK_S, CHECK_TIMEOUT_S = 0.5, 0.4
STMT_S, GRACE_S = 1.0, 0.25
MARGIN_S = 0.5  # scheduling slack on a loaded 2-core machine (and ASan builds)

FAST = {
    "APP_DATABASE__CHECK_INTERVAL": "500",
    "APP_DATABASE__CHECK_TIMEOUT": "400",
    "APP_DATABASE__STATEMENT_TIMEOUT": "1000",
    "APP_DATABASE__CONNECT_TIMEOUT": "1000",
    "APP_DATABASE__BREAKER_OPEN": "500",
    "APP_REDIS__TIMEOUT": "100",
    "APP_REDIS__BREAKER_FAILURES": "3",
    "APP_REDIS__BREAKER_OPEN": "500",
    # blocking store calls: one worker per concurrent client keeps a slow
    # call from queueing the others behind it (see store_pg.c)
    "APP_SERVER__WORKERS": "8",
}


def _restore(server):
    """Thaws (if frozen) and starts (if stopped) a shared server."""
    try:
        services_cmd("thaw", server, timeout=30)
    except RuntimeError:
        pass  # not running: nothing to thaw
    services_cmd("start", server)


@pytest.fixture
def pg_restored():
    yield
    _restore("pg")


@pytest.fixture
def redis_restored():
    yield
    _restore("redis")


def readiness(h):
    return status(h, "GET", "/health/readiness", timeout=2)


def seed(h, n=5):
    for i in range(n):
        assert h.request("PUT", "/v1/kv/seed%d" % i, b"value%d" % i)[0] == 201


def check_seed(h, n=5):
    for i in range(n):
        st, _, body = h.request("GET", "/v1/kv/seed%d" % i)
        assert st == 200 and body == b"value%d" % i, (st, body)


def assert_load_ok(rows, allowed, max_s):
    assert rows, "the load made no request"
    bad = [r for r in rows if r[2] not in allowed]
    assert not bad, bad[:5]
    slowest = max(r[1] for r in rows)
    assert slowest <= max_s, "a request took %.2f s (limit %.2f s)" % (slowest, max_s)


def test_postgres_stopped_then_started(hale_factory, pg_restored):  # R: Y5
    h = hale_factory(env={**backends.env_for("pg"), **FAST})
    seed(h)
    with Load(h) as load:
        time.sleep(0.5)
        services_cmd("stop", "pg")
        t_down = time.monotonic()
        took = wait_for(lambda: readiness(h) == 503, timeout=CHECK_S + MARGIN_S)
        assert took is not None, "readiness stayed 200 for a check interval after PostgreSQL stopped"
        time.sleep(2.0)  # the outage, under load
        outage = load.since(t_down + 0.05)
        assert status(h, "GET", "/health/liveness") == 200  # liveness never follows a dependency
        services_cmd("start", "pg")
        t_up = time.monotonic()
        back = wait_for(lambda: readiness(h) == 200, timeout=10)
        assert back is not None, "readiness did not return after PostgreSQL came back"
        time.sleep(0.5)
        after = load.since(time.monotonic() - 0.3)
    # refused connections: fast 503s, never a hang or another status
    assert_load_ok(outage, {503}, STMT_S + GRACE_S + MARGIN_S)
    assert_load_ok(after, {200, 201}, STMT_S)
    check_seed(h)
    assert h.proc.poll() is None
    print("pg stop: readiness 503 after %.2f s, %d requests during the outage (max %.3f s), ready again %.2f s"
          " after start" % (took, len(outage), max(r[1] for r in outage), back))


def test_postgres_hung_answers_503_within_the_query_timeout(hale_factory, pg_restored):  # R: Y5
    h = hale_factory(env={**backends.env_for("pg"), **FAST})
    seed(h)
    with Load(h) as load:
        time.sleep(0.5)
        services_cmd("freeze", "pg")  # SIGSTOP: connections stay open, nothing answers
        t_down = time.monotonic()
        try:
            took = wait_for(lambda: readiness(h) == 503, timeout=CHECK_S + CHECK_TIMEOUT_S + MARGIN_S)
            assert took is not None, "readiness stayed 200 while PostgreSQL hung"
            time.sleep(2.5)
            outage = load.since(t_down)
            assert status(h, "GET", "/health/liveness") == 200
        finally:
            services_cmd("thaw", "pg")
        back = wait_for(lambda: readiness(h) == 200, timeout=10)
        assert back is not None
        time.sleep(0.5)
        after = load.since(time.monotonic() - 0.3)
    # requests in flight when it froze may still succeed; none may wait
    # longer than the statement timeout + grace; then the breaker answers
    # at once
    assert_load_ok(outage, {200, 201, 503}, STMT_S + GRACE_S + MARGIN_S)
    late = [r for r in outage if r[0] > t_down + 2 * (STMT_S + GRACE_S)]
    assert late and max(r[1] for r in late) < 0.2 + MARGIN_S, "the breaker did not make 503s fast"
    assert_load_ok(after, {200, 201}, STMT_S)
    check_seed(h)
    print("pg hung: readiness 503 after %.2f s, %d requests (max %.3f s, after the breaker max %.3f s)"
          % (took, len(outage), max(r[1] for r in outage), max(r[1] for r in late)))


def test_starts_while_postgres_is_down(hale_factory, pg_restored):  # R: L2 H3
    env = {**backends.env_for("pg"), **FAST}  # the schema is made while PostgreSQL is up
    services_cmd("stop", "pg")
    h = hale_factory(env=env, wait_ready=False)
    time.sleep(2.0)
    assert h.proc.poll() is None, h.output()
    assert status(h, "GET", "/health/liveness") == 200
    assert status(h, "GET", "/health/readiness") == 503
    assert status(h, "GET", "/health/startup") == 503
    assert status(h, "GET", "/v1/kv/x") == 503
    services_cmd("start", "pg")
    h.wait_ready(timeout=15)  # backoff is capped at 10 s
    assert h.request("PUT", "/v1/kv/x", b"y")[0] == 201
    assert "retrying" in h.output()


def test_redis_down_costs_only_cache_hits(hale_factory, redis_restored):  # R: A7 Y5
    h = hale_factory(env={**backends.env_for("pg+redis"), **FAST})
    seed(h)
    check_seed(h)
    check_seed(h)  # now from the cache
    hits0 = backends.metric(h, "hale_cache_hits_total")
    assert hits0 and hits0 >= 5
    with Load(h) as load:
        time.sleep(0.3)
        services_cmd("stop", "redis")
        t_down = time.monotonic()
        ready = []
        for _ in range(40):  # 2 s: readiness must stay 200 the whole time
            ready.append(readiness(h))
            time.sleep(0.05)
        outage = load.since(t_down)
        check_seed(h)
        doc = json.loads(h.request("GET", "/health")[2])
        assert doc["checks"]["redis"]["status"] == "fail" and not doc["checks"]["redis"]["required"]
        assert backends.metric(h, "hale_cache_breaker_state") in (1.0, 2.0)
        services_cmd("start", "redis")
        back = wait_for(lambda: json.loads(h.request("GET", "/health")[2])["checks"]["redis"]["status"] == "pass",
                        timeout=10)
        assert back is not None
    assert set(ready) == {200}, ready
    assert_load_ok(outage, {200, 201}, 1.0)
    # the cache works again
    check_seed(h)
    check_seed(h)
    assert backends.metric(h, "hale_cache_hits_total") >= hits0 + 5
    assert backends.metric(h, "hale_cache_breaker_state") == 0


def test_redis_hung_then_back_serves_no_stale_value(hale_factory, redis_restored):  # R: A7 Y5
    """Values cached before a Redis hang must not come back after it, on this
    instance or another one sharing the cache, once this one has replayed its
    deletes (its next check or request)."""
    env = {**backends.env_for("pg+redis"), **FAST}
    a = hale_factory(env=env)
    b = hale_factory(env=env)
    assert a.request("PUT", "/v1/kv/k", b"old")[0] == 201
    for h in (a, b, a, b):
        assert h.request("GET", "/v1/kv/k")[2] == b"old"  # cached
    services_cmd("freeze", "redis")
    try:
        t0 = time.monotonic()
        assert a.request("PUT", "/v1/kv/k", b"new")[0] == 200
        assert time.monotonic() - t0 < 1.0
        assert a.request("GET", "/v1/kv/k")[2] == b"new"
        assert readiness(a) == 200
        assert backends.metric(a, "hale_cache_pending_invalidations") == 1
    finally:
        services_cmd("thaw", "redis")
    assert wait_for(lambda: backends.metric(a, "hale_cache_pending_invalidations") == 0, timeout=5) is not None
    for h in (a, b, a, b):
        st, _, body = h.request("GET", "/v1/kv/k")
        assert st == 200 and body == b"new", (h.port, body)


def test_redis_required_gates_readiness(hale_factory, redis_restored):  # R: H2 A7
    h = hale_factory(env={**backends.env_for("pg+redis"), **FAST, "APP_REDIS__REQUIRED": "true"})
    services_cmd("stop", "redis")
    took = wait_for(lambda: readiness(h) == 503, timeout=CHECK_S + MARGIN_S)
    assert took is not None
    assert h.request("PUT", "/v1/kv/x", b"still served")[0] == 201  # only readiness follows Redis
    services_cmd("start", "redis")
    assert wait_for(lambda: readiness(h) == 200, timeout=10) is not None
