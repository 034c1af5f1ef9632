"""Consistency of concurrent clients, checked on the recorded history
(tests/e2e/history.py): 8 writers and 16 readers on 20 keys through two
hale instances sharing PostgreSQL, without and with the Redis cache, across
a Redis FLUSHALL and a Redis restart without persistence, and on SQLite
(one instance: it is single-writer). Op counts are bounded; HALE_SOAK=1
runs ten times as many."""
import re
import time

import pytest

import backends
import history
from history import Op


def _instances(hale_factory, kind, n=2):
    env = backends.env_for(kind)  # one schema, shared by the instances
    env["APP_SERVER__WORKERS"] = "8"
    if kind != "sqlite":
        env["APP_DATABASE__MAX_CONNECTIONS"] = "8"
    return [hale_factory(env=env) for _ in range(n)]


def _report(capsys, what, w, problems, extra=""):
    ops = w.ops
    acked = sum(1 for o in ops if o.kind == "put" and o.outcome == "ok")
    kinds = {}
    for p in problems:  # "(a) /v1/kv/k: read started ..." -> "(a) read started"
        words = re.sub(r"/v1/kv/\S+: ", "", p).split()
        k = " ".join(words[:3])
        kinds[k] = kinds.get(k, 0) + 1
    with capsys.disabled():
        print("\nhistory %s: seed %d, %d ops (%d acked PUTs) in %.1f s, %d violations %s%s\n  %s"
              % (what, w.seed, len(ops), acked, max(o.end for o in ops) - min(o.start for o in ops),
                 len(problems), kinds or "", extra, history.summary(ops)))


def _assert_clean(w, problems):
    assert not problems, "seed %d: %d violations, first: %s" % (w.seed, len(problems), problems[:8])
    # the load really exercised what the checks are about
    acked = [o for o in w.ops if o.kind == "put" and o.outcome == "ok"]
    reads = [o for o in w.ops if o.kind == "get" and o.status == 200]
    assert len(acked) > 100 and len(reads) > 300, history.summary(w.ops)
    assert any(o.cond == "create" and o.outcome == "ok" for o in acked)
    assert any(o.cond.startswith("match:") for o in acked)
    assert any(o.kind == "delete" and o.status == 204 for o in w.ops)


@pytest.mark.parametrize("kind", ["pg", "pg+redis"])
def test_history_two_instances_on_postgres(hale_factory, kind, capsys):  # R: A1, A6, A7
    inst = _instances(hale_factory, kind)
    w = history.Workload(inst, keys=20, writers=8, readers=16, ops=100)
    w.run()
    problems = history.check(w.ops)
    _report(capsys, kind, w, problems)
    _assert_clean(w, problems)
    # no request failed: nothing was down
    odd = [o for o in w.ops if o.status not in (200, 201, 204, 404, 412)]
    assert not odd, (history.summary(w.ops), odd[:5])


def test_history_on_sqlite(hale_factory, capsys):  # R: A1, A6
    inst = _instances(hale_factory, "sqlite", n=1)
    w = history.Workload(inst, keys=20, writers=8, readers=16, ops=100)
    w.run()
    problems = history.check(w.ops)
    _report(capsys, "sqlite", w, problems)
    _assert_clean(w, problems)
    odd = [o for o in w.ops if o.status not in (200, 201, 204, 404, 412)]
    assert not odd, (history.summary(w.ops), odd[:5])


def test_history_across_redis_flush_and_restart(hale_factory, capsys):  # R: F4, A7
    inst = _instances(hale_factory, "pg+redis")
    w = history.Workload(inst, keys=20, writers=8, readers=16, ops=150, prefix="f4")
    w.start()
    assert w.wait_ops(len(w.threads) * w.ops_each // 4)
    hits0 = sum(backends.metric(h, "hale_cache_hits_total") for h in inst)
    assert hits0 > 0  # the cache was in use before the flush
    assert backends.redis_cli("FLUSHALL").strip() == "OK"
    t_flush = time.monotonic()
    assert w.wait_ops(len(w.threads) * w.ops_each // 2)
    backends.services_cmd("stop", "redis")  # no persistence: it comes back empty
    t_stop = time.monotonic()
    time.sleep(0.5)  # load goes on against PostgreSQL alone
    backends.services_cmd("start", "redis")
    t_back = time.monotonic()
    size_back = int(backends.redis_cli("DBSIZE").strip() or 0)  # empty, or just refilling
    w.join()
    w.final_reads()
    problems = history.check(w.ops)
    # the cache refilled after the restart: hits and fills since
    hits_after = None
    for _ in range(100):
        # reads of warm keys are hits again once the breaker let Redis back in
        for h in inst:
            for k in w.keys[:5]:
                h.request("GET", k)
        hits_after = sum(backends.metric(h, "hale_cache_hits_total") for h in inst)
        if hits_after > hits0 + 10 and int(backends.redis_cli("DBSIZE").strip() or 0) > 0:
            break
        time.sleep(0.1)
    entries = int(backends.redis_cli("DBSIZE").strip() or 0)
    _report(capsys, "redis flush+restart", w, problems,
            ", flush at +%.1f s, Redis down %.1f s (%d entries when back), cache hits %d -> %d, %d entries"
            " after" % (t_flush - min(o.start for o in w.ops), t_back - t_stop, size_back, hits0, hits_after,
                        entries))
    _assert_clean(w, problems)
    assert entries > 0 and hits_after > hits0 + 10
    # Redis down costs only the cache: every request answered by the database
    odd = [o for o in w.ops if o.status not in (200, 201, 204, 404, 412)]
    assert not odd, (history.summary(w.ops), odd[:5])


def _op(kind, key, start, end, status, version=0, body=b"", cond=""):
    return Op(kind, key, start, end, status, version, body, cond)


def test_checker_finds_each_kind_of_violation():  # R: A1, A6
    """The checker itself: a consistent history passes, and each defect the
    issue describes is reported (so a green run means something)."""
    k = "/v1/kv/x"
    good = [_op("put", k, 0, 1, 201, 5, b"a"), _op("put", k, 2, 3, 200, 7, b"b"),
            _op("get", k, 4, 5, 200, 7, b"b"), _op("delete", k, 6, 7, 204),
            _op("get", k, 8, 9, 404), _op("put", k, 10, 11, 201, 9, b"c", "create"),
            _op("put", k, 12, 13, 200, 10, b"d", "match:9"), _op("put", k, 12.5, 20, 503, 0, b"e"),
            _op("get", k, 14, 15, 200, 10, b"d"), _op("get", k, 21, 22, 200, 11, b"e")]
    assert history.check(good) == []
    cases = {
        # F0: the key ends at a lower version than an acknowledged write
        "(a)": good[:2] + [_op("put", k, 1.5, 3.5, 200, 6, b"z"), _op("get", k, 4, 5, 200, 6, b"z")],
        "(b)": good[:2] + [_op("get", k, 4, 5, 200, 7, b"a")],
        "(c)": [_op("put", k, 0, 1, 201, 5, b"a"), _op("put", k, 2, 3, 200, 4, b"b")],
    }
    for what, ops in cases.items():
        found = history.check(ops)
        assert any(p.startswith(what) for p in found), (what, found)
    # a stale value after an acknowledged delete, a 404 with no delete, a refused write seen
    assert history.check(good[:4] + [_op("get", k, 8, 9, 200, 7, b"b")])
    assert history.check(good[:2] + [_op("get", k, 4, 5, 404)])
    assert history.check([_op("put", k, 0, 1, 412, 0, b"q", "create"), _op("get", k, 2, 3, 200, 3, b"q")])
    # a 412 for a precondition nobody sent
    assert history.check(good + [_op("delete", k, 23, 24, 412)])
    # versions reused across keys
    assert history.check([_op("put", k, 0, 1, 201, 5, b"a"), _op("put", "/v1/kv/y", 0, 1, 201, 5, b"b")])
