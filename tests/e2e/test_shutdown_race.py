"""Shutdown under load, and the drain of keep-alive connections (issue 14;
R: E2 E4 L1 L3 Y3).

The race of issue 14: with libmicrohttpd, an idle keep-alive connection could
start a PUT between the drain's last in-flight check and the engine stop,
and the engine then called abort() ("MHD_stop_daemon() called while we have
suspended connections"): 2 of 6 tries with 800 idle connections and a PUT
every 0.15 ms. Each round here starts hale, opens HALE_RACE_IDLE (800) idle
keep-alive connections (each served one request first), runs a PUT stream on
other keep-alive connections from several threads, sends SIGTERM mid-stream
and checks:
  - exit 0, "stopped cleanly" logged, no abort and no sanitizer report;
  - every PUT that was answered 2xx is readable after a restart on the same
    store (nothing acknowledged is lost in the drain);
  - the idle keep-alive connections were closed by the server once the drain
    started (E4): each sees the end of the connection, with no byte sent,
    before the drain delay is over and before the process exits.
HALE_RACE_ROUNDS sets the number of rounds (default 20; one round takes a
few seconds). Run it under the ASan and TSan builds too (HALE_BIN).

The drain tests below use a long drain delay so that "at once" and "after
the delay" are far apart on a loaded machine.
"""
import datetime
import json
import os
import resource
import selectors
import signal
import socket
import threading
import time

import pytest

ROUNDS = int(os.environ.get("HALE_RACE_ROUNDS", "20"))
IDLE = int(os.environ.get("HALE_RACE_IDLE", "800"))
WRITERS = int(os.environ.get("HALE_RACE_WRITERS", "4"))
WAKERS = 100              # idle connections that start a PUT as the drain ends
RACE_DRAIN_MS = 400      # drain delay of the race rounds
STREAM_BEFORE_S = 0.5    # PUT stream running before SIGTERM
SANITIZER_MARKS = ("ERROR: AddressSanitizer", "LeakSanitizer", "ThreadSanitizer", "runtime error:",
                   "suspended connections", "Aborted", "abort()")


# ---------------------------------------------------------------- helpers --

def raise_nofile(want):
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < want:
        new = want if hard == resource.RLIM_INFINITY else min(want, hard)
        resource.setrlimit(resource.RLIMIT_NOFILE, (new, hard))
    soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
    assert soft >= want, "RLIMIT_NOFILE too low: %d < %d" % (soft, want)


def wait_for(fn, timeout=10.0, every=0.02, what="condition"):
    deadline = time.monotonic() + timeout
    while True:
        v = fn()
        if v:
            return v
        if time.monotonic() > deadline:
            raise AssertionError("timed out waiting for " + what)
        time.sleep(every)


def log_objs(h):
    out = []
    for line in h.output().splitlines():
        if line.startswith("{"):
            try:
                out.append(json.loads(line))
            except ValueError:
                pass
    return out


def log_wall(o):
    """A log line's ts as seconds since the epoch."""
    return datetime.datetime.strptime(o["ts"], "%Y-%m-%dT%H:%M:%S.%fZ").replace(
        tzinfo=datetime.timezone.utc).timestamp()


def parse_head(buf):
    head, _, rest = buf.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    hd = {}
    for l in lines[1:]:
        k, _, v = l.partition(":")
        hd[k.strip().lower()] = v.strip()
    return int(lines[0].split(" ")[1]), hd, rest


def read_response(sock, timeout=5.0):
    """One response from sock: (status, headers, body). Raises ConnectionError
    when the connection ends first."""
    sock.settimeout(timeout)
    buf = b""
    while b"\r\n\r\n" not in buf:
        c = sock.recv(65536)
        if not c:
            raise ConnectionError("closed before a response: %r" % buf[:200])
        buf += c
    st, hd, rest = parse_head(buf)
    n = int(hd.get("content-length", "0"))
    while len(rest) < n:
        c = sock.recv(65536)
        if not c:
            raise ConnectionError("closed inside a body")
        rest += c
    return st, hd, rest[:n]


def metric(h, name):
    body = h.request("GET", "/metrics", admin=True)[2].decode()
    for line in body.splitlines():
        if line.startswith(name + " "):
            return float(line.split()[1])
    return None


def status(h, path, admin=False):
    try:
        return h.request("GET", path, admin=admin, timeout=2.0)[0]
    except OSError:
        return None


def assert_no_abort(out):
    for mark in SANITIZER_MARKS:
        assert mark not in out, "%r in the output:\n%s" % (mark, out[-4000:])


def store_env(h):
    """What a second instance needs to open the same store."""
    return {k: h.env[k] for k in ("APP_DATABASE__SQLITE_PATH", "DATABASE_URL", "REDIS_URL") if k in h.env}


def open_idle(port, n):
    """n keep-alive connections, each after one answered request."""
    socks = [socket.create_connection(("127.0.0.1", port), timeout=10) for _ in range(n)]
    for s in socks:
        s.sendall(b"GET /health/liveness HTTP/1.1\r\nHost: h\r\n\r\n")
    for s in socks:
        st, hd, _ = read_response(s, timeout=10)
        assert st == 200 and "close" not in hd.get("connection", ""), (st, hd)
    return socks


class Writer(threading.Thread):
    """PUTs as fast as it can on a keep-alive connection, reconnecting when
    the server closes it, until stopped or a connect is refused. Keeps the
    keys answered 2xx."""

    def __init__(self, port, prefix):
        super().__init__(daemon=True)
        self.port, self.prefix = port, prefix
        self.stop = threading.Event()
        self.acked, self.sent, self.errors, self.refused = [], 0, 0, False

    def run(self):
        s = None
        n = 0
        while not self.stop.is_set():
            if s is None:
                try:
                    s = socket.create_connection(("127.0.0.1", self.port), timeout=5)
                except ConnectionRefusedError:
                    self.refused = True
                    return
                except OSError:
                    self.errors += 1
                    time.sleep(0.005)
                    continue
            key = "%s-%d" % (self.prefix, n)
            n += 1
            body = key.encode()
            try:
                s.sendall(b"PUT /v1/kv/%s HTTP/1.1\r\nHost: h\r\nContent-Length: %d\r\n\r\n%s"
                          % (body, len(body), body))
                self.sent += 1
                st, hd, _ = read_response(s)
                if 200 <= st < 300:
                    self.acked.append(key)
                if "close" in hd.get("connection", "").lower():
                    s.close()
                    s = None
            except (OSError, ConnectionError):
                self.errors += 1
                s.close()
                s = None
        if s is not None:
            s.close()


class Waker(threading.Thread):
    """Holds idle keep-alive connections (not the observed ones) and, from a
    little before the drain delay ends to a little after, starts one PUT on
    each: the window in which the old engine aborted. On the new engine most
    of these connections are already closed (E4); the sends then fail, which
    is fine. Keeps the keys answered 2xx."""

    def __init__(self, socks, t_from, t_to, prefix):
        super().__init__(daemon=True)
        self.socks, self.t_from, self.t_to, self.prefix = socks, t_from, t_to, prefix
        self.acked, self.sent = [], 0

    def run(self):
        step = (self.t_to - self.t_from) / max(1, len(self.socks))
        pending = []
        for i, s in enumerate(self.socks):
            delay = self.t_from + i * step - time.monotonic()
            if delay > 0:
                time.sleep(delay)
            key = "%s-%d" % (self.prefix, i)
            try:
                s.sendall(b"PUT /v1/kv/%s HTTP/1.1\r\nHost: h\r\nContent-Length: %d\r\n\r\n%s"
                          % (key.encode(), len(key), key.encode()))
                self.sent += 1
                pending.append((s, key))
            except OSError:
                pass
        for s, key in pending:
            try:
                st, _, _ = read_response(s, timeout=5)
                if 200 <= st < 300:
                    self.acked.append(key)
            except (OSError, ConnectionError):
                pass


def watch_closes(socks, proc, t_end):
    """Waits until every socket in socks is closed by the server or t_end
    (monotonic) passes. Returns ({fileno: (wall time, bytes received)} for the
    closed ones, wall time the process was first seen exited or None)."""
    sel = selectors.DefaultSelector()
    for s in socks:
        s.setblocking(False)
        sel.register(s, selectors.EVENT_READ)
    closed, got, exited_at = {}, {}, None
    try:
        while len(closed) < len(socks) and time.monotonic() < t_end:
            if exited_at is None and proc.poll() is not None:
                exited_at = time.time()
            for key, _ in sel.select(timeout=0.005):
                s = key.fileobj
                try:
                    c = s.recv(65536)
                except (BlockingIOError, InterruptedError):
                    continue
                except ConnectionResetError:
                    c = b""
                if c:
                    got[s.fileno()] = got.get(s.fileno(), b"") + c
                    continue
                closed[s.fileno()] = (time.time(), got.get(s.fileno(), b""))
                sel.unregister(s)
        if exited_at is None and proc.poll() is not None:
            exited_at = time.time()
    finally:
        sel.close()
    for fd, data in got.items():
        closed.setdefault(fd, (None, data))
    return closed, exited_at


# -------------------------------------------------------------- the race --

@pytest.mark.parametrize("round_", range(ROUNDS))
def test_sigterm_under_put_stream_with_idle_keepalive(hale_factory, round_):  # R: E2 E4 L1 L3 Y3
    raise_nofile(IDLE + WAKERS + WRITERS * 4 + 1024)
    h = hale_factory(env={"LOG_FORMAT": "json", "APP_SHUTDOWN__DRAIN_DELAY": "%dms" % RACE_DRAIN_MS,
                          "APP_SHUTDOWN__TIMEOUT": "5s", "APP_SERVER__MAX_CONNECTIONS_PER_IP": "0",
                          "APP_SERVER__MAX_CONNECTIONS": str(IDLE + WAKERS + 1024)})
    idle = open_idle(h.port, IDLE)
    wake_socks = open_idle(h.port, WAKERS)
    writers = [Writer(h.port, "race%d-w%d" % (round_, i)) for i in range(WRITERS)]
    waker = None
    try:
        for w in writers:
            w.start()
        time.sleep(STREAM_BEFORE_S)
        sent_before = sum(w.sent for w in writers)
        t_mono = time.monotonic()
        h.proc.send_signal(signal.SIGTERM)
        t_term = time.time()
        d = RACE_DRAIN_MS / 1000.0
        waker = Waker(wake_socks, t_mono + d - 0.1, t_mono + d + 0.15, "race%d-k" % round_)
        waker.start()
        closed, exited_at = watch_closes(idle, h.proc, time.monotonic() + 20)
        rc = h.proc.wait(30)
        if exited_at is None:
            exited_at = time.time()
    finally:
        for w in writers:
            w.stop.set()
        for w in writers:
            w.join(10)
        if waker is not None:
            waker.join(15)
        for s in idle + wake_socks:
            s.close()
    out = h.output()
    acked = [k for w in writers for k in w.acked] + (waker.acked if waker else [])
    print("round %d: %d PUTs sent (%d before SIGTERM), %d acked, %d errors; %d late PUTs on idle "
          "connections (%d acked); idle closed %d/%d; exit %.3f s after SIGTERM"
          % (round_, sum(w.sent for w in writers), sent_before, len(acked),
             sum(w.errors for w in writers), waker.sent, len(waker.acked),
             len([c for c in closed.values() if c[0]]), IDLE, exited_at - t_term))
    problems = []
    for mark in SANITIZER_MARKS:
        if mark in out:
            problems.append("%r in the output" % mark)
    if rc != 0:
        problems.append("exit code %s" % rc)
    objs = log_objs(h)
    msgs = [o.get("msg") for o in objs]
    if "stopped cleanly" not in msgs:
        problems.append("no 'stopped cleanly' in the log")
    if not (sent_before > 0 and acked):
        problems.append("the PUT stream never ran")

    # the idle keep-alive connections: closed by the server, silently, during
    # the drain (before the drain delay ended and before the exit)
    draining = [o for o in objs if o.get("msg") == "draining"]
    sent_data = [d for _, d in closed.values() if d]
    if sent_data:
        problems.append("bytes sent on %d idle keep-alive connections: %r" % (len(sent_data), sent_data[:2]))
    times = [t for t, _ in closed.values() if t is not None]
    if len(times) != IDLE:
        problems.append("%d idle keep-alive connections never closed" % (IDLE - len(times)))
    late_exit = [t for t in times if t >= exited_at]
    if late_exit:
        problems.append("%d idle connections closed only when the process exited" % len(late_exit))
    if not draining:
        problems.append("no 'draining' line in the log")
    elif times and max(times) > log_wall(draining[0]) + d:
        problems.append("last idle connection closed %.3f s after draining began (drain delay %d ms)"
                        % (max(times) - log_wall(draining[0]), RACE_DRAIN_MS))

    # nothing acknowledged is lost: restart on the same store and read back
    if rc is not None and acked:
        h2 = hale_factory(env=store_env(h))
        c = h2.conn(timeout=10)
        missing = []
        try:
            for k in acked:
                c.request("GET", "/v1/kv/" + k)
                r = c.getresponse()
                body = r.read()
                if (r.status, body) != (200, k.encode()):
                    missing.append((k, r.status, body[:80]))
        finally:
            c.close()
        if missing:
            problems.append("%d of %d acknowledged PUTs lost: %r" % (len(missing), len(acked), missing[:10]))
    assert not problems, "round %d:\n  %s\n%s" % (round_, "\n  ".join(problems), out[-3000:] if rc else "")


# ----------------------------------------------------------------- drain --

def test_drain_closes_idle_keepalive_at_once(hale_factory):  # R: E4 L1
    drain = 3.0
    h = hale_factory(env={"LOG_FORMAT": "json", "APP_SHUTDOWN__DRAIN_DELAY": "3s",
                          "APP_SHUTDOWN__TIMEOUT": "10s"})
    idle = open_idle(h.port, 20)
    try:
        t0, t0_wall = time.monotonic(), time.time()
        h.proc.send_signal(signal.SIGTERM)
        closed, _ = watch_closes(idle, h.proc, t0 + drain + 5)
        done = max((t for t, _ in closed.values() if t), default=None)
        still_draining = h.proc.poll() is None and status(h, "/health/readiness") == 503
    finally:
        for s in idle:
            s.close()
    assert len([c for c in closed.values() if c[0]]) == 20, "%d of 20 idle connections closed" % len(closed)
    assert not [d for _, d in closed.values() if d], "bytes sent on idle connections: %r" % closed
    took = done - t0_wall
    print("20 idle keep-alive connections closed %.3f s after SIGTERM (drain delay %.1f s)" % (took, drain))
    assert took < drain / 2, "idle connections closed %.2f s after SIGTERM, not at once" % took
    assert still_draining, "the process was no longer draining when the idle connections closed"
    assert h.proc.wait(20) == 0
    assert_no_abort(h.output())


def test_close_idle_drain_end_keeps_them_until_the_delay_ends(hale_factory):  # R: E4 L1 Y4
    """shutdown.close_idle = drain_end: idle keep-alive connections stay
    open (and are served, with Connection: close) during drain_delay, and
    close when it ends, before the process exits."""
    drain = 2.0
    h = hale_factory(env={"LOG_FORMAT": "json", "APP_SHUTDOWN__DRAIN_DELAY": "2s",
                          "APP_SHUTDOWN__TIMEOUT": "10s", "APP_SHUTDOWN__CLOSE_IDLE": "drain_end"})
    idle = open_idle(h.port, 10)
    try:
        t0, t0_wall = time.monotonic(), time.time()
        h.proc.send_signal(signal.SIGTERM)
        wait_for(lambda: status(h, "/health/readiness", admin=True) == 503, timeout=1.5, every=0.01,
                 what="draining")
        # one of them is used during the delay: answered, with close
        idle[0].sendall(b"GET /v1/kv/during-drain HTTP/1.1\r\nHost: h\r\n\r\n")
        st, hd, _ = read_response(idle[0])
        assert st == 404 and hd.get("connection", "").lower() == "close", (st, hd)
        closed, _ = watch_closes(idle[1:], h.proc, t0 + drain + 5)
    finally:
        for s in idle:
            s.close()
    times = [t for t, _ in closed.values() if t]
    assert len(times) == 9, "%d of 9 idle connections closed" % len(times)
    assert not [d for _, d in closed.values() if d], "bytes sent on idle connections: %r" % closed
    first = min(times) - t0_wall
    assert first >= drain - 0.3, "idle connections closed %.2f s after SIGTERM, before the delay ended" % first
    assert h.proc.wait(20) == 0
    assert_no_abort(h.output())


def test_drain_accepts_with_close_then_refuses(hale_factory):  # R: E4 L1
    drain = 2.0
    h = hale_factory(env={"LOG_FORMAT": "json", "APP_SHUTDOWN__DRAIN_DELAY": "2s",
                          "APP_SHUTDOWN__TIMEOUT": "15s"})
    # in flight across the whole drain (half a body): keeps the process up
    # after the delay, so "refused" is the listener closed, not the exit
    upload = socket.create_connection(("127.0.0.1", h.port), timeout=10)
    upload.sendall(b"PUT /v1/kv/in-flight HTTP/1.1\r\nHost: h\r\nContent-Length: 6\r\n\r\nhal")
    wait_for(lambda: metric(h, "http_requests_in_flight") == 1, what="upload in flight")
    t0 = time.monotonic()
    h.proc.send_signal(signal.SIGTERM)
    wait_for(lambda: status(h, "/health/readiness", admin=True) == 503, timeout=1.5, every=0.01,
             what="draining")
    # during the delay: new connections are accepted, answered, and closed
    answered = 0
    while time.monotonic() - t0 < drain - 0.7 and answered < 3:
        s = socket.create_connection(("127.0.0.1", h.port), timeout=3)
        try:
            s.sendall(b"GET /v1/kv/during-drain HTTP/1.1\r\nHost: h\r\n\r\n")
            st, hd, _ = read_response(s)
            assert st == 404 and hd.get("connection", "").lower() == "close", (st, hd)
            s.settimeout(3)
            try:
                assert s.recv(1) == b""
            except ConnectionResetError:
                pass
        finally:
            s.close()
        answered += 1
    assert answered >= 1, "the checks during the drain delay took too long to prove anything"

    def refused():
        try:
            socket.create_connection(("127.0.0.1", h.port), timeout=2).close()
            return False
        except ConnectionRefusedError:
            return True
    wait_for(refused, timeout=drain + 5, every=0.05, what="new connections refused")
    t_refused = time.monotonic() - t0
    assert t_refused >= drain - 0.2, "refused %.2f s after SIGTERM, before the drain delay" % t_refused
    assert h.proc.poll() is None, "exited with a request in flight"
    # the in-flight request finishes, its answer says close, then exit 0
    upload.sendall(b"e!!")
    st, hd, _ = read_response(upload)
    upload.close()
    assert st == 201 and hd.get("connection", "").lower() == "close", (st, hd)
    assert h.proc.wait(20) == 0
    out = h.output()
    assert_no_abort(out)
    assert "stopped cleanly" in [o.get("msg") for o in log_objs(h)]
