"""SQLite under power loss (F1), I/O errors and a full disk (F2).

The fault-injecting VFS (src/app/store/sqlite_faultvfs.c, test builds only) is
armed through HALE_TEST_SQLITE_FAULTS:

- Power loss: every trial starts hale on the same database with a crash
  point (the Nth sync, or the Nth write), first checks every key against
  the model kept from earlier trials, then runs a PUT load through the real
  request path until the VFS discards every write since each file's last
  sync (torn at 512-byte sectors on every other sweep) and kills hale. The
  crash point moves on by one each trial; when a workload ends before its
  crash point, the sweep over every sync point is complete and starts again.
  Trials: HALE_POWERLOSS_TRIALS (300) sync points + HALE_POWERLOSS_WRITE_TRIALS
  (100) write points, HALE_POWERLOSS_WRITES (30) PUTs per trial; `make soak`
  runs the long loop.
- I/O errors: the Nth write, sync or truncate fails once with EIO or
  ENOSPC, N over every call of a short workload.
- A real full disk: the database on a 4 MiB tmpfs, grown back to 64 MiB.
"""
import json
import os
import random
import re
import shutil
import signal
import sqlite3
import subprocess
import tempfile
import threading
import time
import http.client

import pytest

import backends
from conftest import Hale

CRASH_EXIT = 86
KEYS = ["k%02d" % i for i in range(16)]
_started = []


@pytest.fixture(autouse=True)
def _no_leftovers():
    """A failed assertion leaves no hale running."""
    yield
    while _started:
        h = _started.pop()
        if h.proc.poll() is None:
            h.proc.kill()
            h.proc.wait()
        if not h.log.closed:
            h.log.close()


def start(env, timeout=20.0):
    """A hale on env, ready, or already exited (a crash point hit while it
    opened the database: the caller looks at h.proc)."""
    # every test here provokes store errors on purpose (the fixture fails a
    # test on error lines it did not declare)
    h = Hale(env=env, wait_ready=False, expect_errors=[r"sqlite write failed", r"sqlite writer"])
    _started.append(h)
    if len(_started) > 4:
        _started[:] = [x for x in _started if x.proc.poll() is None]
    deadline = time.time() + timeout
    while time.time() < deadline:
        if h.proc.poll() is not None:
            h.log.close()
            return h
        try:
            if h.request("GET", "/health/readiness", timeout=1)[0] == 200:
                return h
        except OSError:
            pass
        time.sleep(0.02)
    raise AssertionError("hale not ready:\n" + h.output()[-3000:])


def base_env(db, spec):
    e = {**backends.env_for("sqlite"), "APP_DATABASE__SQLITE_PATH": db, "LOG_FORMAT": "json",
         "APP_DATABASE__CHECK_INTERVAL": "100ms"}
    if spec:
        e["HALE_TEST_SQLITE_FAULTS"] = spec
    return e


def get(h, key, conn=None):
    c = conn or h.conn(timeout=10)
    try:
        c.request("GET", "/v1/kv/" + key)
        r = c.getresponse()
        body = r.read()
        return r.status, r.getheader("ETag"), body
    finally:
        if conn is None:
            c.close()


def version_of(etag):
    return int(etag.strip('"'))


class Model:
    """What every key may hold: the last state read back (version, body),
    the writes acknowledged since (version, body) and the bodies sent
    without an answer."""

    def __init__(self):
        self.base = {}
        self.acked = {}
        self.sent = {}
        self.lock = threading.Lock()
        self.acked_total = 0

    def put_sent(self, key, body):
        with self.lock:
            self.sent.setdefault(key, set()).add(body)

    def put_acked(self, key, version, body):
        with self.lock:
            self.acked.setdefault(key, []).append((version, body))
            self.acked_total += 1

    def check(self, h, where):
        """Reads every key; fails on a lost, altered or half-written value."""
        c = h.conn(timeout=10)
        try:
            for key in KEYS:
                st, etag, body = get(h, key, c)
                base = self.base.get(key)
                acked = self.acked.get(key, [])
                floor = max([v for v, _ in acked] + [base[0] if base else 0])
                for v, _ in acked:
                    assert base is None or v > base[0], \
                        "%s: %s acknowledged version %d is not above the earlier %d" % (where, key, v, base[0])
                if st == 404:
                    assert not acked and base is None, "%s: %s lost (404), acked %s" % (where, key, acked[-1:])
                    continue
                assert st == 200, "%s: GET %s answered %d" % (where, key, st)
                v = version_of(etag)
                assert v >= floor, "%s: %s at version %d below acknowledged %d" % (where, key, v, floor)
                known = dict(acked)
                if base:
                    known[base[0]] = base[1]
                if v in known:
                    assert body == known[v], "%s: %s version %d has other bytes (%d vs %d)" % (
                        where, key, v, len(body), len(known[v]))
                else:
                    assert body in self.sent.get(key, set()), \
                        "%s: %s version %d holds bytes never sent (%d bytes: half-written?)" % (where, key, v, len(body))
                self.base[key] = (v, body)
        finally:
            c.close()
        self.acked.clear()
        self.sent.clear()


def load(h, model, trial, writes, writers=3):
    """PUTs until hale dies or `writes` were sent; returns the count acknowledged."""
    per = (writes + writers - 1) // writers
    acks = [0]

    def writer(w):
        rng = random.Random(trial * 131 + w)
        c = http.client.HTTPConnection("127.0.0.1", h.port, timeout=10)
        try:
            for i in range(per):
                key = rng.choice(KEYS)
                body = ("%s:%d:%d:%d:" % (key, trial, w, i)).encode() + os.urandom(rng.choice([0, 40, 900, 5000]) // 2).hex().encode()
                model.put_sent(key, body)
                c.request("PUT", "/v1/kv/" + key, body=body)
                r = c.getresponse()
                r.read()
                if 200 <= r.status < 300:
                    model.put_acked(key, version_of(r.getheader("ETag")), body)
                    acks[0] += 1
        except (OSError, http.client.HTTPException):
            pass  # hale lost power under this request: never acknowledged
        finally:
            c.close()

    ts = [threading.Thread(target=writer, args=(w,)) for w in range(writers)]
    for t in ts:
        t.start()
    for t in ts:
        t.join(120)
    return acks[0]


def integrity(db):
    con = sqlite3.connect(db)
    try:
        return con.execute("PRAGMA integrity_check").fetchone()[0]
    finally:
        con.close()


def power_loss_loop(kind, trials, writes, stride, db, model, rng, stats):
    n, torn, sweep_len = 1, False, []
    for t in range(trials):
        spec = "crash=%s:%d" % (kind, n) + (",torn=%d" % rng.randrange(1 << 30) if torn else "")
        h = start(base_env(db, spec))
        where = "trial %s (%s)" % (stats["trials"], spec)
        stats["trials"] += 1
        if h.proc.poll() is not None:
            assert h.proc.returncode == CRASH_EXIT, "%s: hale exited %s\n%s" % (where, h.proc.returncode, h.output()[-3000:])
            stats["at_open"] += 1
            shutil.rmtree(h.dir, ignore_errors=True)
            n += stride
            continue
        model.check(h, where)
        stats["acked"] += load(h, model, stats["trials"], writes)
        if h.proc.poll() is None:
            h.proc.send_signal(signal.SIGTERM)  # the crash point may be in the closing checkpoint
        rc = h.proc.wait(60)
        h.log.close()
        out = h.output()
        assert rc in (0, CRASH_EXIT), "%s: hale exited %s\n%s" % (where, rc, out[-3000:])
        assert "AddressSanitizer" not in out and "runtime error:" not in out, out[-3000:]
        if rc == CRASH_EXIT:
            assert "faultvfs: power loss" in out, out[-2000:]
            stats["crashes"] += 1
            n += stride
        else:
            sweep_len.append(n - 1)   # every point of this workload was tried: again, torn or not
            n, torn = 1, not torn
        shutil.rmtree(h.dir, ignore_errors=True)
    stats["sweeps_" + kind] = sweep_len


def test_power_loss_loses_no_acknowledged_write(capsys):  # R: F1
    """Every acknowledged write survives a power loss at any sync or write
    point, byte for byte at its version; nothing unacknowledged shows up
    half-written; the file passes PRAGMA integrity_check at the end."""
    trials = int(os.environ.get("HALE_POWERLOSS_TRIALS", "300"))
    wtrials = int(os.environ.get("HALE_POWERLOSS_WRITE_TRIALS", "100"))
    writes = int(os.environ.get("HALE_POWERLOSS_WRITES", "30"))
    d = tempfile.mkdtemp(prefix="hale-powerloss-")
    db = os.path.join(d, "hale.db")
    model, rng = Model(), random.Random(int(os.environ.get("HALE_POWERLOSS_SEED", str(os.getpid()))))
    stats = {"trials": 0, "crashes": 0, "at_open": 0, "acked": 0}
    t0 = time.monotonic()
    power_loss_loop("sync", trials, writes, 1, db, model, rng, stats)
    power_loss_loop("write", wtrials, writes, 7, db, model, rng, stats)
    h = start(base_env(db, ""))
    model.check(h, "final")
    h.check_clean_exit()
    assert integrity(db) == "ok"
    with capsys.disabled():
        print("\npower loss: %d trials (%d power losses under load, %d while opening), %d acknowledged "
              "writes, all intact; sync sweeps %s, write sweeps %s (%.0f s)"
              % (stats["trials"], stats["crashes"], stats["at_open"], stats["acked"],
                 stats.get("sweeps_sync"), stats.get("sweeps_write"), time.monotonic() - t0))
    assert stats["crashes"] > trials // 2 and stats["acked"] > 0  # the loop really crashed under load
    shutil.rmtree(d, ignore_errors=True)


# ---- F2: I/O errors ----

def json_lines(h):
    out = []
    for line in h.output().splitlines():
        if line.startswith("{"):
            try:
                out.append(json.loads(line))
            except ValueError:
                pass
    return out


def metric(h, name, labels):
    st, _, body = h.request("GET", "/metrics", admin=True)
    assert st == 200
    m = re.search(r'^%s\{%s\} (\S+)$' % (re.escape(name), re.escape(labels)), body.decode(), re.M)
    return float(m.group(1)) if m else None


def health_store(h):
    doc = json.loads(h.request("GET", "/health", admin=True)[2])
    return doc, doc["checks"]["store"]


def wait_for(fn, timeout=10.0):
    deadline = time.time() + timeout
    while time.time() < deadline:
        v = fn()
        if v:
            return v
        time.sleep(0.05)
    return fn()


def assert_error_answer(st, hdrs, body, errno_name):
    assert st == (507 if errno_name == "enospc" else 503), (st, body)
    assert "retry-after" in hdrs, hdrs
    doc = json.loads(body)
    assert doc["error"] and doc["detail"], doc


def ioerr_trial(db, spec, errno_name, model_acked, rng, where):
    """One trial: a short workload with one injected fault. Returns True
    when the fault was hit during the workload."""
    h = start(base_env(db, spec))
    assert h.proc.poll() is None, "%s: hale died: %s" % (where, h.output()[-2000:])
    hit, failed_at = False, None
    c = h.conn(timeout=10)
    for i in range(8):
        key = KEYS[i % 4]
        body = ("%s %s %d " % (where, key, i)).encode() * rng.choice([1, 60, 900])
        c.request("PUT", "/v1/kv/" + key, body=body)
        r = c.getresponse()
        data = r.read()
        hdrs = {k.lower(): v for k, v in r.getheaders()}
        if 200 <= r.status < 300:
            model_acked[key] = (version_of(hdrs["etag"]), body)
            if failed_at is not None and "reopened" not in failed_at:
                # the write after a failed one: the writer connection was
                # reopened (log line) before this acknowledgement
                lines = json_lines(h)
                msgs = [o.get("msg") for o in lines]
                assert "sqlite writer connection reopened" in msgs, "%s: no reopen before the next ack" % where
                failed_at += " reopened"
        else:
            assert_error_answer(r.status, hdrs, data, errno_name)
            hit = True
            if failed_at is None:
                failed_at = "put %d" % i
                # reads keep serving the last committed state
                for k, (v, b) in model_acked.items():
                    st, etag, got = get(h, k)
                    assert st == 200 and version_of(etag) == v and got == b, "%s: read of %s after the error" % (where, k)
                doc, store = health_store(h)
                assert store["status"] in ("degraded", "pass"), store
                # the health check runs every 100 ms: degraded until a write succeeds
                # (or already recovered if the check ran after the next write)
                cnt = metric(h, "hale_store_errors_total", 'kind="%s"' % errno_name)
                assert cnt and cnt >= 1, "%s: hale_store_errors_total{kind=%s} = %s" % (where, errno_name, cnt)
                logged = [o for o in json_lines(h) if o.get("msg") == "sqlite write failed"]
                assert logged and logged[0].get("kind") == errno_name, (where, logged)
    c.close()
    out = h.output()
    hit = hit or "faultvfs: E" in out
    rc = h.stop()
    out = h.output()
    assert "AddressSanitizer" not in out and "runtime error:" not in out, out[-3000:]
    assert rc == 0, "%s: exit %s\n%s" % (where, rc, out[-3000:])
    shutil.rmtree(h.dir, ignore_errors=True)
    return hit


def check_acked(db, model_acked, where):
    h = start(base_env(db, ""))
    for k, (v, b) in model_acked.items():
        st, etag, got = get(h, k)
        assert st == 200 and version_of(etag) == v and got == b, \
            "%s: acknowledged %s v%d lost or altered (%s %s)" % (where, k, v, st, etag)
    h.check_clean_exit()


def test_io_errors_fail_the_write_and_lose_nothing(capsys):  # R: F2
    """The Nth write, sync or truncate (N over every call of the workload)
    fails once with EIO or ENOSPC: the PUT that hit it answers 503/507 JSON
    with Retry-After, never 2xx; reads go on; the error is counted, logged
    and shown; the next write succeeds after the writer reopened; no
    acknowledged write is lost or altered, checked after every trial."""
    d = tempfile.mkdtemp(prefix="hale-ioerr-")
    db = os.path.join(d, "hale.db")
    rng = random.Random(7)
    acked = {}
    trials, hits = 0, {}
    t0 = time.monotonic()
    for errno_name in ("eio", "enospc"):
        n = 1
        while True:
            where = "fail=any:%d:%s" % (n, errno_name)
            hit = ioerr_trial(db, where, errno_name, acked, rng, where)
            trials += 1
            check_acked(db, acked, where)
            if not hit:
                break
            hits[errno_name] = hits.get(errno_name, 0) + 1
            n += 1
    with capsys.disabled():
        print("\nI/O errors: %d trials, faults hit under load: %s, %d keys checked after each (%.0f s)"
              % (trials, hits, len(acked), time.monotonic() - t0))
    assert hits.get("eio", 0) > 10 and hits.get("enospc", 0) > 10
    shutil.rmtree(d, ignore_errors=True)


def test_failed_sync_degrades_until_a_write_succeeds():  # R: F2
    """Every sync fails (EIO) until a flag file appears: every PUT answers
    503, /health shows the store degraded with the error while reads go on;
    once syncs work again the next write succeeds without a restart."""
    d = tempfile.mkdtemp(prefix="hale-fsync-")
    db = os.path.join(d, "hale.db")
    clear = os.path.join(d, "clear")
    h = start(base_env(db, ""))
    st, hdrs, _ = h.request("PUT", "/v1/kv/a", body=b"before")
    assert st == 201
    v0 = version_of(hdrs["etag"])
    h.check_clean_exit()
    env = {**base_env(db, "fail=sync:1+:eio"), "HALE_TEST_SQLITE_FAULTS_CLEAR": clear}
    h = start(env)
    assert h.proc.poll() is None, h.output()[-2000:]
    for i in range(5):
        st, hdrs, body = h.request("PUT", "/v1/kv/a", body=b"during %d" % i)
        assert_error_answer(st, hdrs, body, "eio")
        st, hdrs, body = h.request("GET", "/v1/kv/a")
        assert st == 200 and body == b"before" and version_of(hdrs["etag"]) == v0
    doc, store = wait_for(lambda: (lambda d_s: d_s if d_s[1]["status"] == "degraded" else None)(health_store(h)))
    assert doc["status"] == "degraded" and doc["ready"] is True, doc
    assert "eio" in store["last_error"] and "I/O error" in store["last_error"], store
    assert metric(h, "hale_store_errors_total", 'kind="eio"') >= 5
    open(clear, "w").close()
    st, hdrs, body = h.request("PUT", "/v1/kv/a", body=b"after")
    assert st == 200, (st, body)
    v1 = version_of(hdrs["etag"])
    assert v1 > v0
    assert wait_for(lambda: health_store(h)[1]["status"] == "pass")
    msgs = [o.get("msg") for o in json_lines(h)]
    assert "sqlite write failed" in msgs and "sqlite writer connection reopened" in msgs \
        and "sqlite writes succeed again" in msgs, msgs
    h.check_clean_exit()
    check_acked(db, {"a": (v1, b"after")}, "after the fsync failures")
    shutil.rmtree(d, ignore_errors=True)


# ---- F2: a real full disk ----

def test_full_disk_answers_507_and_recovers_when_space_returns():  # R: F2
    """The database on a 4 MiB tmpfs: the PUT that finds the disk full
    answers 507 JSON with Retry-After; reads go on; /health says degraded
    (enospc), the metric counts it, a JSON log line says it; after the
    filesystem grows to 64 MiB the next write succeeds without a restart;
    every acknowledged write is read back after a restart."""
    assert os.geteuid() == 0, "mounting a tmpfs needs root (make test runs as root)"
    d = tempfile.mkdtemp(prefix="hale-full-")
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=4m", "tmpfs", d], check=True)
    h = None
    try:
        db = os.path.join(d, "hale.db")
        h = start(base_env(db, ""))
        assert h.proc.poll() is None, h.output()[-2000:]
        acked, refused = {}, None
        for i in range(400):
            body = os.urandom(24 * 1024).hex().encode()  # 48 KiB, incompressible
            st, hdrs, data = h.request("PUT", "/v1/kv/f%03d" % i, body=body)
            if 200 <= st < 300:
                acked["f%03d" % i] = (version_of(hdrs["etag"]), body)
                continue
            refused = (st, hdrs, data)
            break
        assert refused, "4 MiB never filled up"
        assert acked, "nothing fit on the filesystem"
        assert_error_answer(*refused, "enospc")
        assert json.loads(refused[2])["error"] == "insufficient_storage"
        for k, (v, b) in acked.items():
            st, etag, got = get(h, k)
            assert st == 200 and version_of(etag) == v and got == b, k
        doc, store = wait_for(lambda: (lambda d_s: d_s if d_s[1]["status"] == "degraded" else None)(health_store(h)))
        assert "enospc" in store["last_error"], store
        assert metric(h, "hale_store_errors_total", 'kind="enospc"') >= 1
        logged = [o for o in json_lines(h) if o.get("msg") == "sqlite write failed"]
        assert logged and logged[0]["kind"] == "enospc" and logged[0]["level"] == "error", logged
        subprocess.run(["mount", "-o", "remount,size=64m", d], check=True)
        body = b"space is back"
        st, hdrs, data = h.request("PUT", "/v1/kv/after", body=body)
        assert st == 201, (st, data)
        acked["after"] = (version_of(hdrs["etag"]), body)
        assert wait_for(lambda: health_store(h)[1]["status"] == "pass")
        h.check_clean_exit()
        h = None
        check_acked(db, acked, "after the full disk")
        print("full disk: %d writes acknowledged before ENOSPC, 507 then, writes back after the remount"
              % (len(acked) - 1))
    finally:
        if h is not None:
            h.stop()
        subprocess.run(["umount", d], check=False)
        shutil.rmtree(d, ignore_errors=True)
