"""Health, lifecycle and load shedding (R: H1 H2 H3 H4 H5 L1 L2 L3 Y8).

Startup with an unreachable store (retries with backoff, probes answer,
readiness 503), the probe contract on both listeners, the drain timeline
after SIGTERM, a second signal (and a repeat of the first within 1 s, as
`make run` under a supervisor gets it), a signal during start-up, exit codes, the
stuck-worker watchdog and shedding past server.max_in_flight.

A stuck or slow handler is simulated with GET /debug/block?ms=N, which only
test builds serve (-DHALE_TEST_HOOKS=ON; src/runtime/service/testhooks.c).
Timing assertions use generous margins: the box is shared and loaded.
"""
import http.client
import json
import os
import re
import shutil
import signal
import socket
import sqlite3
import subprocess
import tempfile
import threading
import time

import pytest

import conftest
from conftest import HALE_BIN, ROOT, free_port

JSON_LOGS = {"LOG_FORMAT": "json"}


# ---------------------------------------------------------------- helpers --

def log_objs(h):
    out = []
    for line in h.output().splitlines():
        if line.startswith("{"):
            try:
                out.append(json.loads(line))
            except ValueError:
                pass
    return out


def msgs(h):
    return [o.get("msg") for o in log_objs(h)]


def wait_for(fn, timeout=10.0, every=0.02, what="condition"):
    deadline = time.monotonic() + timeout
    while True:
        v = fn()
        if v:
            return v
        if time.monotonic() > deadline:
            raise AssertionError("timed out waiting for " + what)
        time.sleep(every)


def get(h, path, admin=False, timeout=3.0):
    st, hd, body = h.request("GET", path, admin=admin, timeout=timeout)
    return st, hd, body


def status(h, path, admin=False):
    try:
        return h.request("GET", path, admin=admin, timeout=2.0)[0]
    except OSError:
        return None


def metric(h, name, labels=""):
    body = h.request("GET", "/metrics", admin=True)[2].decode()
    m = re.search(r"^%s%s (\S+)$" % (re.escape(name), re.escape(labels)), body, re.M)
    return float(m.group(1)) if m else None


def health_check(env, timeout=10):
    t = time.monotonic()
    p = subprocess.run([HALE_BIN, "--health-check"], env=env, capture_output=True, text=True,
                       timeout=timeout)
    return p.returncode, p.stdout + p.stderr, time.monotonic() - t


def assert_sanitizer_clean(h):
    out = h.output()
    assert "AddressSanitizer" not in out and "runtime error:" not in out \
        and "LeakSanitizer" not in out, out[-4000:]


def blocked_store_path():
    """A SQLite path that cannot be opened: a FILE sits where its directory
    should be. Removing the file lets hale create the directory and open it."""
    d = tempfile.mkdtemp(prefix="hale-blocked-")
    blocker = os.path.join(d, "blocker")
    open(blocker, "w").close()
    return os.path.join(blocker, "hale.db"), blocker


def raw_exchange(sock, request):
    """Sends one request on an open socket and reads exactly one response.
    Returns (status, headers dict lower-case, body)."""
    sock.sendall(request)
    buf = b""
    while b"\r\n\r\n" not in buf:
        c = sock.recv(65536)
        if not c:
            raise ConnectionError("closed before a response: %r" % buf)
        buf += c
    head, _, rest = buf.partition(b"\r\n\r\n")
    lines = head.decode().split("\r\n")
    hd = {k.strip().lower(): v.strip() for k, v in (l.split(":", 1) for l in lines[1:])}
    n = int(hd.get("content-length", "0"))
    while len(rest) < n:
        c = sock.recv(65536)
        if not c:
            break
        rest += c
    return int(lines[0].split()[1]), hd, rest[:n]


def closed_by_server(sock, timeout=3.0):
    sock.settimeout(timeout)
    try:
        return sock.recv(1) == b""
    except ConnectionResetError:
        return True
    except socket.timeout:
        return False


# ------------------------------------------------- startup, probes, /health --

def test_startup_retries_store_then_becomes_ready(hale_factory):  # R: L2 H1 H2 H3 H4
    path, blocker = blocked_store_path()
    h = hale_factory(env={**JSON_LOGS, "APP_DATABASE__SQLITE_PATH": path}, wait_ready=False)
    wait_for(lambda: msgs(h).count("cannot open the store; retrying") >= 3, what="three store retries")
    for admin in (False, True):
        # liveness never depends on a dependency; startup and readiness wait
        st, _, body = get(h, "/health/liveness", admin)
        assert (st, json.loads(body)) == (200, {"status": "live"})
        st, _, body = get(h, "/health/startup", admin)
        assert (st, json.loads(body)) == (503, {"status": "starting"})
        st, hd, body = get(h, "/health/readiness", admin)
        assert (st, json.loads(body)) == (503, {"status": "starting"})
        assert hd.get("retry-after") == "1"
        st, hd, body = get(h, "/health", admin)
        doc = json.loads(body)
        assert st == 503 and hd["content-type"] == "application/json"
        assert doc["status"] == "fail" and doc["state"] == "starting"
        assert doc["live"] is True and doc["ready"] is False
        store = doc["checks"]["store"]
        assert store["status"] == "fail" and store["required"] is True
        assert isinstance(store["latency_ms"], (int, float))
        assert isinstance(store["last_error"], str) and store["last_error"]
    # the API answers 503 + Retry-After at once instead of hanging
    st, hd, _ = h.request("GET", "/v1/kv/k")
    assert st == 503 and hd.get("retry-after") == "1"
    assert metric(h, "hale_availability_state", '{state="starting"}') == 1
    assert metric(h, "hale_ready") == 0
    # exponential backoff with jitter, bounded (base 200 ms, cap 10 s)
    retries = [o for o in log_objs(h) if o.get("msg") == "cannot open the store; retrying"]
    for o in retries:
        cap = min(10000, 200 * 2 ** (o["attempt"] - 1))
        assert 100 <= o["retry_in_ms"] <= cap, o
    assert [o["attempt"] for o in retries] == list(range(1, len(retries) + 1))

    os.unlink(blocker)  # the dependency comes back: no restart needed
    wait_for(lambda: status(h, "/health/readiness") == 200, timeout=20, what="readiness 200")
    for admin in (False, True):
        assert get(h, "/health/startup", admin)[0] == 200
        assert get(h, "/health/readiness", admin)[0] == 200
        doc = json.loads(get(h, "/health", admin)[2])
        assert doc["status"] == "pass" and doc["state"] == "ready" and doc["ready"] is True
        store = doc["checks"]["store"]
        assert store["status"] == "pass" and store["last_error"] is None
        assert re.match(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$", store["since"]), store
    assert metric(h, "hale_availability_state", '{state="ready"}') == 1
    assert metric(h, "hale_availability_state", '{state="starting"}') == 0
    assert metric(h, "hale_ready") == 1
    assert h.request("PUT", "/v1/kv/k", b"v")[0] == 201
    objs = log_objs(h)
    moves = [(o["from"], o["to"]) for o in objs if o.get("msg") == "availability changed"]
    assert moves[-1][1] == "ready", moves
    assert all(to != "ready" for _, to in moves[:-1]), moves
    m = [o.get("msg") for o in objs]
    ready_at = max(i for i, o in enumerate(objs)
                   if o.get("msg") == "availability changed" and o["to"] == "ready")
    assert m.index("store open") < ready_at


def test_probe_contract_on_both_listeners(hale):  # R: H1 H2 H3 H4
    for admin in (False, True):
        for path, body in (("/health/liveness", {"status": "live"}),
                           ("/health/readiness", {"status": "ready"}),
                           ("/health/startup", {"status": "started"})):
            st, hd, b = get(hale, path, admin)
            assert (st, json.loads(b)) == (200, body), (admin, path)
            assert hd["content-type"] == "application/json"
        st, _, b = get(hale, "/health", admin)
        doc = json.loads(b)
        assert st == 200
        assert set(doc) >= {"status", "state", "live", "ready", "checks"}
        assert set(doc["checks"]["store"]) >= {"status", "required", "latency_ms", "last_error", "since"}
        # HEAD works for probes that use it; other methods are 405
        c = hale.conn(admin=admin)
        c.request("HEAD", "/health/readiness")
        r = c.getresponse()
        r.read()
        c.close()
        assert r.status == 200
        assert hale.request("POST", "/health/readiness", b"", admin=admin)[0] == 405


# ------------------------------------------------------------ exit codes --

STRACE = shutil.which("strace")


@pytest.mark.parametrize("env,names", [
    ({"PORT": "abc"}, "PORT"),
    ({"APP_SERVER__MAX_IN_FLIGHT": "lots"}, "APP_SERVER__MAX_IN_FLIGHT"),
    ({"APP_SHUTDOWN__DRAIN_DELAY": "forever"}, "APP_SHUTDOWN__DRAIN_DELAY"),
    ({"LOG_LEVEL": "loud"}, "LOG_LEVEL"),
    ({"APP_SERVER__MAX_CONNECTIONS": "0"}, "APP_SERVER__MAX_CONNECTIONS"),
])
def test_config_error_exits_78_before_any_socket(env, names, tmp_path):  # R: L3 C1
    e = {k: v for k, v in os.environ.items()
         if not k.startswith("APP_") and k not in ("PORT", "HOST", "LOG_LEVEL", "LOG_FORMAT")}
    e.update({"HALE_CONFIG_DIR": os.path.join(ROOT, "config"),
              "APP_DATABASE__SQLITE_PATH": str(tmp_path / "hale.db"),
              "HOST": "127.0.0.1", "PORT": str(free_port()), "APP_METRICS__PORT": str(free_port())})
    e.update(env)
    trace = tmp_path / "strace.out"
    cmd = [HALE_BIN]
    if STRACE:
        cmd = [STRACE, "-f", "-qq", "-e", "trace=socket,bind,listen", "-o", str(trace), HALE_BIN]
        e["ASAN_OPTIONS"] = "detect_leaks=0"  # LeakSanitizer refuses to run under ptrace
    p = subprocess.run(cmd, env=e, capture_output=True, text=True, timeout=20, cwd=tmp_path)
    assert p.returncode == 78, (p.returncode, p.stdout, p.stderr)
    assert names in p.stderr, p.stderr
    assert "listening" not in p.stdout
    if STRACE:
        calls = trace.read_text()
        assert not re.search(r"\b(bind|listen)\(", calls), calls
    else:
        print("strace not installed: socket calls not traced")


def test_fatal_error_exits_1(hale_factory):  # R: L3
    # the main port is taken (no SO_REUSEPORT on this socket): cannot listen
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    s.listen()
    try:
        h = hale_factory(env={"PORT": str(s.getsockname()[1])}, wait_ready=False,
                         expect_exit=1, expect_errors=[r"cannot start the main listener"])
        assert h.proc.wait(15) == 1
        assert "cannot start the main listener" in h.output()
    finally:
        s.close()


# --------------------------------------------------------------- signals --

@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_signal_during_startup_exits_0_cleanly(hale_factory, sig):  # R: L1 L2 L3
    path, _ = blocked_store_path()
    # the default drain delay: a never-ready instance has nothing to drain
    h = hale_factory(env={**JSON_LOGS, "APP_DATABASE__SQLITE_PATH": path,
                          "APP_SHUTDOWN__DRAIN_DELAY": "5s"}, wait_ready=False)
    wait_for(lambda: msgs(h).count("cannot open the store; retrying") >= 2, what="store retries")
    t = time.monotonic()
    h.proc.send_signal(sig)
    rc = h.proc.wait(15)
    took = time.monotonic() - t
    assert rc == 0, h.output()[-3000:]
    assert took < 3.0, "exit took %.1f s" % took
    m = msgs(h)
    assert "shutdown requested" in m and m[-1] == "stopped cleanly", m
    assert "store open" not in m
    assert_sanitizer_clean(h)


def test_drain_timeline(hale_factory):  # R: L1 H2 H5
    drain = 3.0
    h = hale_factory(env={**JSON_LOGS, "APP_SHUTDOWN__DRAIN_DELAY": "3s",
                          "APP_SHUTDOWN__TIMEOUT": "15s"})
    busy = socket.create_connection(("127.0.0.1", h.port), timeout=10)   # keep-alive, closed at drain
    idle = socket.create_connection(("127.0.0.1", h.port), timeout=10)   # keep-alive, closed at drain
    for s in (busy, idle):
        st, hd, _ = raw_exchange(s, b"GET /health/liveness HTTP/1.1\r\nHost: h\r\n\r\n")
        assert st == 200 and "connection" not in hd
    # in flight across the whole drain: an upload whose body is only half
    # sent (a worker blocked in a handler would also hold up the keep-alive
    # connections it owns, so the slow part is on the client side here)
    upload = socket.create_connection(("127.0.0.1", h.port), timeout=10)
    upload.sendall(b"PUT /v1/kv/in-flight HTTP/1.1\r\nHost: h\r\nContent-Length: 6\r\n\r\nhal")
    wait_for(lambda: metric(h, "http_requests_in_flight") == 1, what="upload in flight")
    t0 = time.monotonic()
    h.proc.send_signal(signal.SIGTERM)

    # readiness turns 503 at once, on both listeners; liveness stays 200
    wait_for(lambda: status(h, "/health/readiness") == 503, timeout=1.0, every=0.005,
             what="readiness 503 after SIGTERM")
    assert time.monotonic() - t0 < 1.0
    st, _, body = get(h, "/health/readiness", admin=True)
    assert (st, json.loads(body)) == (503, {"status": "draining"})
    assert json.loads(get(h, "/health", admin=True)[2])["state"] == "draining"
    assert status(h, "/health/liveness") == 200 and status(h, "/health/liveness", admin=True) == 200
    assert metric(h, "hale_availability_state", '{state="draining"}') == 1
    rc, out, took = health_check(h.env)
    assert rc == 1 and "unhealthy" in out and "503" in out, out

    # still serving during the drain, every answer with Connection: close
    st, hd, _ = h.request("PUT", "/v1/kv/during-drain", b"d")
    assert st == 201 and hd.get("connection") == "close"
    # keep-alive connections idle between requests are closed when the
    # drain starts (the client's next request goes to a new connection)
    assert closed_by_server(busy, timeout=0.5)
    assert closed_by_server(idle, timeout=0.5)
    assert time.monotonic() - t0 < drain - 0.5, "the checks above took too long to prove anything"

    # after drain_delay: new connections are refused at once (not left hanging)
    def refused():
        t = time.monotonic()
        try:
            socket.create_connection(("127.0.0.1", h.port), timeout=2).close()
            return False
        except ConnectionRefusedError:
            assert time.monotonic() - t < 1.0
            return True
    wait_for(refused, timeout=drain + 3, every=0.05, what="new connections refused")
    assert time.monotonic() - t0 >= drain - 0.2, "stopped accepting before the drain delay"
    assert status(h, "/health/liveness", admin=True) == 200   # probes still answer

    # the in-flight request finishes (its answer says close), then exit 0
    assert h.proc.poll() is None, "exited with a request in flight"
    st, hd, body = raw_exchange(upload, b"e!!")
    t_done = time.monotonic()
    assert st == 201 and hd.get("connection") == "close", (st, hd, body)
    assert h.proc.wait(15) == 0
    assert time.monotonic() - t_done < 3.0, "exit lagged far behind the last request"
    db = sqlite3.connect(h.env["APP_DATABASE__SQLITE_PATH"])
    assert db.execute("SELECT value FROM kv WHERE key = ?", (b"in-flight",)).fetchone() == (b"hale!!",)
    db.close()
    assert_sanitizer_clean(h)
    objs = log_objs(h)
    seq = [o["msg"] for o in objs if o.get("target") in ("lifecycle", "health")]
    want = ["shutdown requested", "availability changed", "draining",
            "stopped accepting; in-flight done", "availability changed", "stopped cleanly"]
    assert seq[-len(want):] == want, seq
    d = [o for o in objs if o.get("msg") == "draining"][0]
    assert d["drain_delay_ms"] == 3000 and d["timeout_ms"] == 15000
    assert [o for o in objs if o.get("msg") == "stopped accepting; in-flight done"][0]["unfinished"] == 0
    assert [o for o in objs if o.get("msg") == "stopped cleanly"][0]["exit_code"] == 0
    for sock in (busy, idle, upload):
        sock.close()


def test_shutdown_timeout_bounds_the_wait(hale_factory):  # R: L1 L3
    h = hale_factory(env={**JSON_LOGS, "APP_SHUTDOWN__DRAIN_DELAY": "500ms",
                          "APP_SHUTDOWN__TIMEOUT": "1s"},
                     expect_errors=[r"shutdown.timeout passed with requests still running"])
    res = {}

    def stuck():
        try:
            res["r"] = h.request("GET", "/debug/block?ms=30000", timeout=40)
        except (OSError, http.client.HTTPException) as e:
            res["r"] = e
    t = threading.Thread(target=stuck)
    t.start()
    wait_for(lambda: metric(h, "http_requests_in_flight") == 1, what="stuck request in flight")
    t0 = time.monotonic()
    h.proc.send_signal(signal.SIGTERM)
    rc = h.proc.wait(20)
    took = time.monotonic() - t0
    # drain 0.5 s + timeout 1 s, not the handler's 30 s
    assert took < 6.0, "shutdown waited %.1f s for a stuck handler" % took
    assert rc == 1
    t.join(10)
    assert isinstance(res["r"], Exception), res  # the stuck client sees the close
    objs = log_objs(h)
    line = [o for o in objs if o.get("msg", "").startswith("shutdown.timeout passed")]
    assert line and line[0]["unfinished"] == 1 and line[0]["level"] == "error", objs[-5:]


# a second signal: the other kind at once, or the same kind after the
# 1 s window in which a repeat is the same request (lifecycle.h)
@pytest.mark.parametrize("second,after", [(signal.SIGTERM, 1.3), (signal.SIGINT, 0.0)],
                         ids=["SIGTERM-after-window", "SIGINT-at-once"])
def test_second_signal_exits_at_once(hale_factory, second, after):  # R: L1
    h = hale_factory(env={**JSON_LOGS, "APP_SHUTDOWN__DRAIN_DELAY": "20s"})
    t_first = time.monotonic()
    h.proc.send_signal(signal.SIGTERM)
    wait_for(lambda: "draining" in msgs(h), what="draining")
    assert status(h, "/health/readiness") == 503
    time.sleep(max(0.0, t_first + after - time.monotonic()))
    t = time.monotonic()
    h.proc.send_signal(second)
    rc = h.proc.wait(10)
    assert time.monotonic() - t < 2.0
    assert rc == 1
    # the probe's own access line may land after it: look for the line itself
    lines = [o for o in log_objs(h) if o.get("target") == "lifecycle"]
    last = lines[-1]
    assert last["msg"] == "second signal: exiting at once without draining", last
    assert last["level"] == "warn" and last["signal"] == int(second)
    assert "repeated signal ignored" not in msgs(h)


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_repeated_signal_within_window_is_one_request(hale_factory, sig):  # R: L1 L3
    # what a supervisor's SIGTERM to `make run`'s process group delivers:
    # the signal itself and make's forwarded copy, 50 ms apart
    h = hale_factory(env={**JSON_LOGS, "APP_SHUTDOWN__DRAIN_DELAY": "500ms",
                          "APP_SHUTDOWN__TIMEOUT": "5s"})
    h.proc.send_signal(sig)
    time.sleep(0.05)
    h.proc.send_signal(sig)
    rc = h.proc.wait(15)
    assert rc == 0, h.output()[-3000:]
    objs = log_objs(h)
    rep = [o for o in objs if o.get("msg") == "repeated signal ignored"]
    assert len(rep) == 1 and rep[0]["level"] == "info" and rep[0]["signal"] == int(sig), objs[-8:]
    m = [o.get("msg") for o in objs]
    assert "second signal: exiting at once without draining" not in m
    assert m.count("shutdown requested") == 1 and m[-1] == "stopped cleanly", m
    assert_sanitizer_clean(h)


def test_sigterm_to_make_runs_process_group_drains_and_exits_0(hale_factory, tmp_path,
                                                               monkeypatch):  # R: L1 L3
    # `make run` stopped the way a supervisor does it: SIGTERM to the
    # process group reaches hale and make, and make forwards its own to
    # hale. The recipe is the Makefile's (`exec` the binary, which replaces
    # the shell, not make), on this build's binary; make leads its own
    # session (setsid). The two signals coalesce when they land together,
    # so a few rounds.
    mk = tmp_path / "Makefile"
    mk.write_text("run:\n\texec %s\n" % HALE_BIN)
    monkeypatch.setattr(conftest, "HALE_BIN", shutil.which("setsid"))
    repeats = 0
    for _ in range(4):
        h = hale_factory(env=JSON_LOGS, args=("make", "--no-print-directory", "-f", str(mk), "run"),
                         expect_exit=-signal.SIGTERM)  # make's own end; hale's is checked below
        os.killpg(h.proc.pid, signal.SIGTERM)
        h.proc.wait(15)   # make itself ends by the signal
        wait_for(lambda: "stopped cleanly" in msgs(h) or "second signal" in h.output(),
                 what="hale's exit")
        m = msgs(h)
        assert "second signal: exiting at once without draining" not in m, m
        assert m.count("shutdown requested") == 1 and m[-1] == "stopped cleanly", m
        assert [o for o in log_objs(h) if o.get("msg") == "stopped cleanly"][0]["exit_code"] == 0
        assert_sanitizer_clean(h)
        repeats += m.count("repeated signal ignored")
    print("make forwarded a separate SIGTERM in %d of 4 rounds" % repeats)


# --------------------------------------------------------------- watchdog --

def test_stuck_worker_makes_liveness_fail(hale_factory):  # R: H1
    h = hale_factory(env={"APP_SERVER__WORKERS": "2", "APP_HEALTH__LIVENESS_STALL": "1s"})
    res = {}
    t = threading.Thread(target=lambda: res.setdefault("r", h.request("GET", "/debug/block?ms=4000",
                                                                      timeout=20)))
    t0 = time.monotonic()
    t.start()
    time.sleep(0.3)
    assert status(h, "/health/liveness", admin=True) == 200   # not stuck yet
    wait_for(lambda: status(h, "/health/liveness", admin=True) == 503, timeout=3.5, every=0.05,
             what="liveness 503")
    assert time.monotonic() - t0 >= 0.9, "liveness failed before health.liveness_stall"
    st, _, body = get(h, "/health/liveness")     # main listener: the other worker answers
    assert st == 503 and json.loads(body)["status"] == "stalled"
    assert json.loads(get(h, "/health", admin=True)[2])["live"] is False
    assert status(h, "/health/readiness", admin=True) == 200   # readiness is a different question
    t.join(20)
    assert res["r"][0] == 200
    wait_for(lambda: status(h, "/health/liveness", admin=True) == 200, timeout=2, what="liveness back")
    assert status(h, "/health/liveness") == 200


# ---------------------------------------------------------------- shedding --

def test_load_shedding_503_retry_after_probes_exempt(hale_factory):  # R: Y8 H1 H2
    h = hale_factory(env={"APP_SERVER__WORKERS": "4", "APP_SERVER__MAX_IN_FLIGHT": "2",
                          "APP_HEALTH__LIVENESS_STALL": "60s"})
    shed_before = metric(h, "hale_http_rejected_total", '{reason="shed"}') or 0
    results = []
    blockers = [threading.Thread(target=lambda: results.append(
        h.request("GET", "/debug/block?ms=4000", timeout=20))) for _ in range(2)]
    for i, b in enumerate(blockers, 1):  # one at a time: each on its own worker
        b.start()
        wait_for(lambda: metric(h, "http_requests_in_flight") == i, what="%d blocked requests" % i)
    t = time.monotonic()
    st, hd, body = h.request("GET", "/v1/kv/x")
    assert st == 503 and hd.get("retry-after") == "1", (st, hd, body)
    assert json.loads(body)["error"] == "overloaded"
    assert time.monotonic() - t < 1.0, "a shed request must be answered at once"
    st, hd, _ = h.request("PUT", "/v1/kv/shed", b"v")
    assert st == 503 and hd.get("retry-after") == "1"
    # probes are never shed, on either listener
    for admin in (False, True):
        for p in ("/health/liveness", "/health/readiness", "/health/startup", "/health"):
            assert status(h, p, admin) == 200, (p, admin)
    assert status(h, "/metrics", admin=True) == 200
    assert metric(h, "hale_http_rejected_total", '{reason="shed"}') >= shed_before + 2
    for b in blockers:
        b.join(20)
    assert [r[0] for r in results] == [200, 200]
    assert h.request("GET", "/v1/kv/shed")[0] == 404   # the shed PUT was not applied
    assert h.request("PUT", "/v1/kv/shed", b"v")[0] == 201


# ---------------------------------------------------------- --health-check --

def test_health_check_command(hale_factory):  # R: H5
    h = hale_factory()
    rc, out, took = health_check(h.env)
    assert rc == 0 and out.startswith("healthy:") and "200" in out, out
    assert out.count("\n") == 1
    # not ready: starting, store unreachable
    path, _ = blocked_store_path()
    s = hale_factory(env={"APP_DATABASE__SQLITE_PATH": path}, wait_ready=False)
    wait_for(lambda: status(s, "/health/liveness") == 200, what="starting instance up")
    rc, out, _ = health_check(s.env)
    assert rc == 1 and out.startswith("unhealthy:") and "503" in out, out
    # down: nothing listens
    env = dict(h.env, PORT=str(free_port()))
    rc, out, took = health_check(env)
    assert rc == 1 and out.startswith("unhealthy:"), out
    assert took < 5
    # hung: something accepts but never answers; the probe's own timeout ends it
    hung = socket.socket()
    hung.bind(("127.0.0.1", 0))
    hung.listen()
    try:
        rc, out, took = health_check(dict(h.env, PORT=str(hung.getsockname()[1])))
        assert rc == 1 and "timed out" in out, out
        assert took < 8
    finally:
        hung.close()
