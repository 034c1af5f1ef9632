"""PostgreSQL failover (issue 20, F3): a primary and a streaming standby on
loopback (scripts/services.sh start pg-ha sync|async); two hale instances
whose URL names both hosts with target_session_attrs=read-write. Under a
PUT/GET load (the history checker's workload, a ledger of write-once keys
and compare-and-swap clients on one counter) the primary is crashed
(immediate stop) and the standby promoted (pg_ctl promote). hale must
reconnect by itself, answer 503 + Retry-After in the gap (no request
longer than statement_timeout + grace + slack), turn ready again and, with
synchronous replication, lose no acknowledged write: every acknowledged
version is read back from the promoted server, the history is consistent
and the counter holds every acknowledged swap. With asynchronous
replication the same run reports what was lost (the loss window) instead
of asserting none. Op counts are bounded (HALE_SOAK=1: ten times)."""
import http.client
import os
import shlex
import threading
import time

import pytest

import backends
import history

STMT_MS, GRACE_MS = 1000, 250
SLACK_S = 3.0  # liveness bound only: scheduling on a loaded 2-core machine, ASan
GAP_S = 1.0    # between the crash and the promotion
AFTER_S = 1.5  # load after both instances are ready again
SOAK = 10 if history.SOAK else 1


def _ha_start(mode):
    backends.services_cmd("stop", "pg-ha")
    env = {}
    for line in backends.services_cmd("start", "pg-ha", mode).splitlines():
        if line.startswith("export "):
            k, _, v = line[len("export "):].partition("=")
            env[k] = shlex.split(v)[0]
    return env


@pytest.fixture
def pg_ha():
    started = []

    def start(mode):
        env = _ha_start(mode)
        started.append(env)
        return env

    yield start
    backends.services_cmd("stop", "pg-ha")


class Ledger:
    """Writers of write-once keys: every acknowledged one must exist on the
    promoted server with its version and body."""

    def __init__(self, instances, stop, threads=2, ops=5000, pace=0.004):
        self.instances, self.ops, self.pace, self.stop = instances, ops * SOAK, pace, stop
        self.acked, self.unknown, self.refused = [], [], []
        self.lock = threading.Lock()
        self.threads = [threading.Thread(target=self._run, args=(i,), daemon=True) for i in range(threads)]

    def _run(self, tid):
        conns = [None] * len(self.instances)
        for n in range(self.ops):
            if self.stop.is_set():
                break
            i = n % len(self.instances)
            key = "led-%d-%d" % (tid, n)
            body = b"ledger %d %d" % (tid, n)
            if conns[i] is None:
                conns[i] = http.client.HTTPConnection("127.0.0.1", self.instances[i].port, timeout=15)
            t0 = time.monotonic()
            try:
                conns[i].request("PUT", "/v1/kv/" + key, body=body)
                r = conns[i].getresponse()
                r.read()
                st, etag = r.status, r.getheader("ETag")
            except (OSError, http.client.HTTPException):
                conns[i].close()
                conns[i] = None
                st, etag = None, None
            t1 = time.monotonic()
            with self.lock:
                if st in (200, 201):
                    self.acked.append((key, int(etag.strip('"')), body, t0, t1))
                elif st is None or st >= 500:
                    self.unknown.append((key, st, t0, t1))
                else:
                    self.refused.append((key, st))
            time.sleep(self.pace if st in (200, 201) else 0.05)
        for c in conns:
            if c is not None:
                c.close()


class Cas:
    """Compare-and-swap increments of one counter (as test_cas_race)."""

    def __init__(self, instances, stop, clients=2, attempts=5000, pace=0.004):
        self.instances, self.attempts, self.pace, self.stop = instances, attempts * SOAK, pace, stop
        self.ok = self.conflict = self.unknown = 0
        self.lock = threading.Lock()
        self.threads = [threading.Thread(target=self._run, args=(i,), daemon=True) for i in range(clients)]

    def _run(self, cid):
        for n in range(self.attempts):
            if self.stop.is_set():
                break
            a = self.instances[(cid + n) % len(self.instances)]
            b = self.instances[(cid + n + 1) % len(self.instances)]
            try:
                st, hd, body = a.request("GET", "/v1/kv/counter", timeout=15)
                if st != 200:
                    continue
                st, _, _ = b.request("PUT", "/v1/kv/counter", b"%d" % (int(body) + 1),
                                     {"If-Match": hd["etag"]}, timeout=15)
            except OSError:
                st = None
            if st is None or st >= 500:
                time.sleep(0.05)
            with self.lock:
                if st == 200:
                    self.ok += 1
                elif st == 412:
                    self.conflict += 1
                else:
                    self.unknown += 1  # 503 or no answer: may have committed
            time.sleep(self.pace if st in (200, 412) else 0.05)


def _server_rows(url):
    out = backends.psql("SELECT encode(key, 'escape'), version, encode(value, 'escape') FROM kv", url=url)
    rows = {}
    for line in out.splitlines():
        k, v, val = line.split("|", 2)
        rows[k] = (int(v), val)
    return rows


def _lag(ha):
    """The standby's distance behind the primary: bytes of WAL not yet
    flushed there, and PostgreSQL's flush_lag."""
    out = backends.psql("SELECT coalesce(pg_wal_lsn_diff(pg_current_wal_lsn(), flush_lsn), -1),"
                        " coalesce(extract(epoch FROM flush_lag), 0) FROM pg_stat_replication",
                        url=ha["HALE_TEST_PG_HA_PRIMARY_URL"]).strip()
    if not out:
        return None, None
    b, s = out.splitlines()[0].split("|")
    return int(float(b)), float(s)


def _failover(hale_factory, ha, capsys, mode, behind_s=0.0):
    env = {"DATABASE_URL": ha["HALE_TEST_PG_HA_URL"], "REDIS_URL": "",
           "APP_SERVER__WORKERS": "8", "APP_DATABASE__MAX_CONNECTIONS": "6",
           "APP_DATABASE__STATEMENT_TIMEOUT": str(STMT_MS), "APP_DATABASE__CONNECT_TIMEOUT": "1000",
           "APP_DATABASE__CHECK_INTERVAL": "500", "APP_DATABASE__CHECK_TIMEOUT": "400",
           "APP_DATABASE__BREAKER_OPEN": "300"}
    inst = [hale_factory(env=env), hale_factory(env=env)]
    assert inst[0].request("PUT", "/v1/kv/counter", b"0")[0] == 201
    # op counts are upper bounds: the clients stop AFTER_S after both
    # instances are ready again, so the load spans the whole failover
    w = history.Workload(inst, keys=20, writers=6, readers=8, ops=5000, pace=0.004, prefix="fo")
    led, cas = Ledger(inst, w.stop_flag), Cas(inst, w.stop_flag)
    w.start()
    for t in led.threads + cas.threads:
        t.start()
    everyone = w.threads + led.threads + cas.threads
    assert w.wait_ops(1500 * SOAK, timeout=120 * SOAK)
    if behind_s:  # the standby stops receiving: what the primary acks meanwhile exists only there
        backends.services_cmd("freeze", "pg-ha")
        t_frozen = time.monotonic()
        time.sleep(behind_s)
    lag_bytes, lag_s = _lag(ha)
    t_crash = time.monotonic()
    backends.services_cmd("crash", "pg-ha")
    t_dead = time.monotonic()  # the primary is down: nothing it did after this
    if behind_s:
        backends.services_cmd("thaw", "pg-ha")
    time.sleep(GAP_S)
    backends.services_cmd("promote", "pg-ha")
    t_promoted = time.monotonic()
    ready = {}
    for _ in range(600):
        for i, h in enumerate(inst):
            if i not in ready and backends.status(h, "GET", "/health/readiness", timeout=2) == 200:
                ready[i] = time.monotonic()
        if len(ready) == len(inst):
            break
        time.sleep(0.05)
    time.sleep(AFTER_S)
    load_alive = all(t.is_alive() for t in everyone)
    w.stop()
    w.join()
    for t in led.threads + cas.threads:
        t.join(60)
    assert not any(t.is_alive() for t in everyone)
    w.final_reads()
    problems = history.check(w.ops)

    rows = _server_rows(ha["HALE_TEST_PG_HA_STANDBY_URL"])  # the promoted server, directly
    lost = [a for a in led.acked if rows.get(a[0]) != (a[1], a[2].decode())]
    counter = int(inst[0].request("GET", "/v1/kv/counter")[2])
    ops = w.ops
    gap = [o for o in ops if o.start >= t_dead and o.status == 503]
    first_ok_after = min((o.end for o in ops if o.start >= t_dead and o.kind == "put" and o.outcome == "ok"),
                         default=None)
    ok_after_ready = [o for o in ops if ready and o.start >= max(ready.values()) and o.kind == "put"
                      and o.outcome == "ok"]
    longest = max(o.end - o.start for o in ops)
    no_retry_after = [o for o in gap if not o.extra.get("retry_after")]
    odd = [o for o in ops if o.status not in (200, 201, 204, 404, 412, 503)]
    window = (t_crash - min(a[4] for a in lost)) if lost else 0.0
    with capsys.disabled():
        print("\nfailover %s%s: standby %s bytes (flush_lag %.3f s) behind at the crash; primary crashed at +%.2f s, promoted %.2f s later; ready again %s s after the "
              "promotion; first acked write %.2f s after the crash (%d after ready); %d answers 503 in the gap; "
              "longest request %.2f s\n  history: %d ops, %d violations; ledger: %d acked, %d unknown, %d acked writes LOST "
              "(loss window %.3f s before the crash); CAS: %d swaps acked, %d unknown, counter %d\n  %s"
              % (mode, " (standby frozen %.2f s before the crash)" % (t_crash - t_frozen) if behind_s else "",
                 lag_bytes, lag_s or 0.0, t_crash - min(o.start for o in ops), t_promoted - t_crash,
                 ", ".join("%.2f" % (t - t_promoted) for t in sorted(ready.values())),
                 (first_ok_after or 0) - t_dead, len(ok_after_ready), len(gap), longest, len(ops), len(problems), len(led.acked),
                 len(led.unknown), len(lost), window, cas.ok, cas.unknown, counter, history.summary(ops)))
        if lost:
            print("  lost: %s" % ", ".join("%s v%d (acked %.3f s before the crash)" % (a[0], a[1], t_crash - a[4])
                                           for a in lost[:10]))
    # liveness, both modes: reconnected without a restart, ready, writes again
    assert len(ready) == len(inst), "not ready again after the promotion"
    assert load_alive, "the load ended before the failover was over: nothing was tested across it"
    assert first_ok_after is not None and ok_after_ready
    assert gap, "no 503 in the gap: did the primary really go?"
    assert longest < (STMT_MS + GRACE_MS) / 1000 + SLACK_S, longest
    assert not no_retry_after, no_retry_after[:3]
    assert not odd, odd[:5]
    assert all(h.proc.poll() is None for h in inst)
    return problems, lost, counter, cas


def test_failover_sync_replication_loses_no_acknowledged_write(hale_factory, pg_ha, capsys):  # R: F3
    ha = pg_ha("sync")
    problems, lost, counter, cas = _failover(hale_factory, ha, capsys, "sync")
    assert not lost, lost[:10]
    assert not problems, problems[:10]
    assert cas.ok <= counter <= cas.ok + cas.unknown, (counter, cas.ok, cas.unknown)
    assert cas.ok > 0


@pytest.mark.parametrize("behind_s", [0.0, 0.5], ids=["streaming", "standby-behind"])
def test_failover_async_replication_reports_the_loss_window(hale_factory, pg_ha, capsys, behind_s):  # R: F3
    ha = pg_ha("async")
    problems, lost, counter, cas = _failover(hale_factory, ha, capsys, "async", behind_s)
    # measured, not asserted: asynchronous replication may lose what the
    # standby had not received when the primary died (docs/reliability.md)
    with capsys.disabled():
        print("  async: %d acked ledger writes lost, %d history violations, counter %d vs %d acked swaps"
              % (len(lost), len(problems), counter, cas.ok))
    if behind_s:
        # the measurement means something: a standby that fell behind does lose
        # what the primary acknowledged meanwhile (or the load wrote nothing then)
        assert lost or problems or counter < cas.ok, "nothing lost with the standby %.1f s behind" % behind_s
