"""The runtime's threads, as operators see them in top -H and /proc: one
named thread per role, and the periodic work (health checks, the API-key
reload) on a single "hale-timer" thread (R: H2 A9)."""
import os
import time

import pytest

import backends
from test_auth import write_keys


def thread_names(pid):
    names = []
    for tid in os.listdir("/proc/%d/task" % pid):
        try:
            with open("/proc/%d/task/%s/comm" % (pid, tid)) as f:
                names.append(f.read().strip())
        except FileNotFoundError:  # a thread that just ended
            pass
    return sorted(names)


def tsan_threads(pid):
    """1 when the process runs ThreadSanitizer (its runtime starts a thread)."""
    with open("/proc/%d/maps" % pid) as f:
        return 1 if "libtsan" in f.read() else 0


@pytest.mark.skipif(backends.BACKEND != "sqlite", reason="the thread list is SQLite's")
def test_one_timer_thread_runs_checks_and_key_reload(hale_factory, tmp_path):  # R: H2 A9
    sd = tmp_path / "secrets"
    sd.mkdir()
    write_keys(str(sd), ["key-one"])
    h = hale_factory(env={"HALE_SECRET_DIR": str(sd), "APP_AUTH__RELOAD_INTERVAL": "100ms",
                          "APP_SERVER__WORKERS": "3", "APP_METRICS__WORKERS": "2",
                          "APP_DATABASE__CHECK_INTERVAL": "100ms"})
    names = thread_names(h.proc.pid)
    # the main thread keeps the executable's name (and so does the TSan
    # runtime's background thread, on the TSan build)
    expected = sorted(["hale", "hale-signals", "hale-timer", "hale-writer",
                       "main-w0", "main-w1", "main-w2", "admin-w0", "admin-w1"]
                      + ["hale"] * tsan_threads(h.proc.pid))
    assert names == expected, names
    assert names.count("hale-timer") == 1

    # the key reload runs on that thread: a rotated key works, the old one not
    assert h.request("GET", "/v1/kv/x", headers={"X-API-Key": "key-one"})[0] == 404
    write_keys(str(sd), ["key-two"])
    deadline = time.time() + 10
    while time.time() < deadline:
        if h.request("GET", "/v1/kv/x", headers={"X-API-Key": "key-two"})[0] == 404:
            break
        time.sleep(0.05)
    assert h.request("GET", "/v1/kv/x", headers={"X-API-Key": "key-two"})[0] == 404
    assert h.request("GET", "/v1/kv/x", headers={"X-API-Key": "key-one"})[0] == 401

    # the checks run on it too: readiness passes, the store check ran lately
    assert h.request("GET", "/health/readiness")[0] == 200
    st, _, body = h.request("GET", "/health", admin=True)
    assert st == 200 and b'"store":{"status":"pass"' in body, body
    assert thread_names(h.proc.pid) == expected
