"""hale with the Redis read-through cache (scripts/services.sh): caching,
invalidation across instances, bad or missing Redis. (R: A7 H2 Y7 O3)"""
import json
import time

import backends
from backends import redis_cli, status



def test_reads_are_cached(hale_factory):  # R: A7 O3
    h = hale_factory(env=backends.env_for("pg+redis"))
    assert h.request("PUT", "/v1/kv/c1", b"v", {"Content-Type": "text/x-c"})[0] == 201
    st, h1, _ = h.request("GET", "/v1/kv/c1")  # miss, fill
    st, h2, body = h.request("GET", "/v1/kv/c1")  # hit
    assert st == 200 and body == b"v" and h2["etag"] == h1["etag"] and h2["content-type"] == "text/x-c"
    keys = redis_cli("--scan", "--pattern", "hale:*:kv:c1").split()
    assert len(keys) == 1, keys
    ttl = int(redis_cli("PTTL", keys[0]))
    assert 0 < ttl <= 60000
    assert backends.metric(h, "hale_cache_hits_total") == 1
    assert backends.metric(h, "hale_cache_misses_total") == 1
    doc = json.loads(h.request("GET", "/health")[2])
    assert doc["checks"]["redis"]["status"] == "pass" and doc["checks"]["redis"]["required"] is False
    st, _, text = h.request("GET", "/metrics", admin=True)
    assert 'hale_store_info{backend="postgres+redis"} 1' in text.decode()


def test_a_write_on_one_instance_is_seen_by_the_other(hale_factory):  # R: A7
    env = backends.env_for("pg+redis")
    a = hale_factory(env=env)
    b = hale_factory(env=env)
    # read-after-write across instances, with b's cache warm every time
    for i in range(100):
        val = b"v%d" % i
        assert a.request("PUT", "/v1/kv/x", val)[0] in (200, 201)
        st, _, body = b.request("GET", "/v1/kv/x")
        assert st == 200 and body == val, (i, body)
        assert b.request("GET", "/v1/kv/x")[2] == val
    assert backends.metric(b, "hale_cache_hits_total") >= 100
    assert a.request("DELETE", "/v1/kv/x")[0] == 204
    assert b.request("GET", "/v1/kv/x")[0] == 404
    # conditional writes still decide on the database, not the cache
    _, hd, _ = b.request("PUT", "/v1/kv/y", b"1")
    assert a.request("PUT", "/v1/kv/y", b"2", {"If-Match": hd["etag"]})[0] == 200
    assert b.request("PUT", "/v1/kv/y", b"3", {"If-Match": hd["etag"]})[0] == 412
    assert b.request("GET", "/v1/kv/y")[2] == b"2"


def test_instances_on_different_databases_do_not_share_entries(hale_factory):  # R: A7
    a = hale_factory(env=backends.env_for("pg+redis"))
    b = hale_factory(env=backends.env_for("pg+redis"))  # another schema, same Redis
    assert a.request("PUT", "/v1/kv/same", b"a")[0] == 201
    assert a.request("GET", "/v1/kv/same")[2] == b"a"
    assert a.request("GET", "/v1/kv/same")[2] == b"a"  # cached for a
    assert b.request("GET", "/v1/kv/same")[0] == 404


def test_wrong_redis_password_costs_only_the_cache(hale_factory):  # R: A7 Y7
    url = backends.urls()["redis"].replace(":hale@", ":N0tTheRedisPass@")
    h = hale_factory(env={**backends.env_for("pg+redis"), "REDIS_URL": url})
    assert h.request("PUT", "/v1/kv/k", b"v")[0] == 201
    for _ in range(10):
        assert h.request("GET", "/v1/kv/k")[2] == b"v"
    assert status(h, "GET", "/health/readiness") == 200
    time.sleep(0.5)
    detail = h.request("GET", "/health")[2].decode()
    assert "N0tTheRedisPass" not in detail
    assert "N0tTheRedisPass" not in h.output()
    st, _, text = h.request("GET", "/metrics", admin=True)
    assert "N0tTheRedisPass" not in text.decode()
    assert backends.metric(h, "hale_cache_breaker_state") in (1.0, 2.0)


def test_redis_unreachable_at_start(hale_factory):  # R: A7 L2
    h = hale_factory(env={**backends.env_for("pg+redis"), "REDIS_URL": "redis://127.0.0.1:1/0"})
    assert h.request("PUT", "/v1/kv/k", b"v")[0] == 201
    assert h.request("GET", "/v1/kv/k")[2] == b"v"
    doc = json.loads(h.request("GET", "/health")[2])
    assert doc["ready"] is True and doc["checks"]["redis"]["status"] == "fail"


def test_redis_required_and_unreachable_is_not_ready(hale_factory):  # R: H2 A7
    h = hale_factory(env={**backends.env_for("pg+redis"), "REDIS_URL": "redis://127.0.0.1:1/0",
                          "APP_REDIS__REQUIRED": "true"}, wait_ready=False)
    time.sleep(1.0)
    assert h.proc.poll() is None
    assert status(h, "GET", "/health/readiness") == 503
    assert status(h, "GET", "/health/liveness") == 200


def test_sqlite_with_redis(hale_factory):  # R: A7 (the cache is not PostgreSQL-only)
    h = hale_factory(env={**backends.env_for("sqlite"), "REDIS_URL": backends.urls()["redis"]})
    assert h.request("PUT", "/v1/kv/s", b"1")[0] == 201
    assert h.request("GET", "/v1/kv/s")[2] == b"1"
    assert h.request("PUT", "/v1/kv/s", b"2")[0] == 200
    assert h.request("GET", "/v1/kv/s")[2] == b"2"
    assert h.request("GET", "/v1/kv/s")[2] == b"2"
    assert backends.metric(h, "hale_cache_hits_total") == 1
