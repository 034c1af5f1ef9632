"""hale's sd_notify messages, read by a NOTIFY_SOCKET listener in the test
(no systemd as PID 1 needed): READY=1 only once readiness passes, STATUS=
lines for every availability change, STOPPING=1 as the drain starts, and
WATCHDOG=1 at half of WATCHDOG_USEC only while liveness passes."""
import os
import statistics
import threading
import time
import urllib.parse

import pytest

import sdtools
from sdtools import HALE_BIN, NotifyListener, Proc, hale_env, status_or_none, two_ports, wait_until

sdtools.sys.path.insert(0, os.path.join(os.path.dirname(sdtools.HERE), "e2e"))
import backends  # noqa: E402  (tests/e2e/backends.py: the real Redis of scripts/services.sh)


@pytest.fixture
def listener():
    n = NotifyListener()
    yield n
    n.close()


def start(tmp_path, extra, notify):
    port, admin = two_ports()
    env = hale_env(str(tmp_path), port, admin, {"NOTIFY_SOCKET": notify.address, **extra})
    return Proc([HALE_BIN], env), port, admin


def test_ready_only_after_readiness_passes(tmp_path, listener):
    """R: R5 - a required dependency (Redis, through a forwarder that is not
    listening yet) holds readiness at 503: no READY=1 is sent while it does;
    once the dependency answers, READY=1 comes (once) and readiness is 200."""
    real = urllib.parse.urlsplit(backends.urls()["redis"])
    fwd = sdtools.Forwarder(real.hostname, real.port)
    url = real._replace(netloc=real.netloc.replace("%s:%d" % (real.hostname, real.port),
                                                   "127.0.0.1:%d" % fwd.port)).geturl()
    h, port, _ = start(tmp_path, {"REDIS_URL": url, "APP_REDIS__REQUIRED": "true",
                                  "APP_REDIS__TIMEOUT": "200"}, listener)
    try:
        wait_until(lambda: status_or_none(port, "/health/startup") == 200, what="startup 200")
        # started, dependency down: readiness fails, and keeps failing
        for _ in range(10):
            assert status_or_none(port) == 503, h.output()[-2000:]
            time.sleep(0.1)
        assert listener.assignments("READY") == [], listener.all()
        statuses = [v for _, v in listener.assignments("STATUS")]
        assert statuses[0].startswith("starting"), statuses
        assert any(s.startswith("not_ready: check redis") for s in statuses), statuses
        t_up = time.monotonic()
        fwd.start()
        t_ready, _ = listener.wait_for("READY", "1", timeout=30)
        assert t_ready > t_up
        assert status_or_none(port) == 200
        assert any(v.startswith("ready") for _, v in listener.assignments("STATUS"))
        assert len(listener.assignments("READY")) == 1
    finally:
        h.check_clean_exit()
        fwd.close()
    assert listener.assignments("STOPPING") != []


def test_stopping_and_status_at_sigterm_abstract_socket(tmp_path):
    """R: R5 - over an abstract NOTIFY_SOCKET ("@name"): READY=1 when
    readiness answers 200, then at SIGTERM STOPPING=1 with a draining STATUS
    before the final STATUS=stopped, and exit 0."""
    n = NotifyListener(abstract=True)
    try:
        h, port, _ = start(tmp_path, {"APP_SHUTDOWN__DRAIN_DELAY": "300"}, n)
        n.wait_for("READY", "1")
        assert status_or_none(port) == 200
        assert n.assignments("STOPPING") == []
        t_term = time.monotonic()
        h.check_clean_exit()
        t_stop, _ = n.wait_for("STOPPING", "1", timeout=5)
        assert t_stop > t_term
        statuses = [(t, v) for t, v in n.assignments("STATUS")]
        draining = [t for t, v in statuses if v.startswith("draining")]
        stopped = [t for t, v in statuses if v.startswith("stopped")]
        assert draining and stopped, statuses
        assert min(draining) < min(stopped)
        # the message that carries STOPPING=1 is the draining one
        assert any("STOPPING=1" in m and "STATUS=draining" in m for _, m in n.all()), n.all()
        assert "READY=1" in "".join(m for _, m in n.all())
    finally:
        n.close()


def test_no_notify_socket_still_serves_and_bad_one_is_reported(tmp_path):
    """R: R5 - NOTIFY_SOCKET that is neither a path nor @abstract: hale says
    so in its log and serves as usual (nothing crashes, exit 0)."""
    port, admin = two_ports()
    env = hale_env(str(tmp_path), port, admin, {"NOTIFY_SOCKET": "relative/notify"})
    h = Proc([HALE_BIN], env)
    try:
        wait_until(lambda: status_or_none(port) == 200, what="readiness 200")
    finally:
        h.check_clean_exit()
    assert "NOTIFY_SOCKET ignored" in h.output() and "relative/notify" in h.output()


def test_watchdog_pings_at_half_interval_and_stop_while_not_live(tmp_path, listener):
    """R: R5 - WATCHDOG_USEC=400000: WATCHDOG=1 about every 200 ms; a worker
    stuck in a handler (test hook /debug/block) past health.liveness_stall
    fails liveness and the pings stop until it is live again."""
    h, port, admin = start(tmp_path, {"WATCHDOG_USEC": "400000",
                                      "APP_HEALTH__LIVENESS_STALL": "300",
                                      "APP_SERVER__WORKERS": "2"}, listener)
    try:
        listener.wait_for("READY", "1")
        time.sleep(2.0)
        pings = [t for t, _ in listener.assignments("WATCHDOG")]
        assert len(pings) >= 4, pings
        gaps = [b - a for a, b in zip(pings, pings[1:])]
        # half the interval: not a burst, and at least as often as systemd needs
        assert 0.15 <= statistics.median(gaps) <= 0.4, gaps
        blocker = threading.Thread(target=lambda: sdtools.request(port, path="/debug/block?ms=4000",
                                                                  timeout=30))
        blocker.start()
        wait_until(lambda: status_or_none(admin, "/health/liveness") == 503, timeout=10,
                   what="liveness 503")
        t_fail = time.monotonic()
        time.sleep(1.5)
        assert status_or_none(admin, "/health/liveness") == 503  # still stuck
        t_still = time.monotonic()
        during = [t for t, _ in listener.assignments("WATCHDOG") if t_fail + 0.1 < t < t_still]
        assert during == [], "pings while liveness failed: %r" % during
        blocker.join(30)
        wait_until(lambda: status_or_none(admin, "/health/liveness") == 200, what="liveness back")
        t_back = time.monotonic()
        wait_until(lambda: [t for t, _ in listener.assignments("WATCHDOG") if t > t_back],
                   timeout=5, what="pings again after liveness recovered")
    finally:
        h.check_clean_exit()


def test_watchdog_for_another_pid_sends_nothing(tmp_path, listener):
    """R: R5 - WATCHDOG_PID names another process (the variables were meant
    for a parent): no WATCHDOG=1, while READY=1 still comes."""
    h, _, _ = start(tmp_path, {"WATCHDOG_USEC": "200000", "WATCHDOG_PID": "1"}, listener)
    try:
        listener.wait_for("READY", "1")
        time.sleep(1.0)
    finally:
        h.check_clean_exit()
    assert listener.assignments("WATCHDOG") == []
