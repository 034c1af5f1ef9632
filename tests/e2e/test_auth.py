"""API keys from the mounted secret (R: A9)."""
import json
import os
import signal
import subprocess
import threading
import time

import pytest

from conftest import HALE_BIN, ROOT


def write_keys(dirpath, keys, name="api-key"):
    """Writes the key file the way Kubernetes does: a new file, then an
    atomic symlink swap (..data -> timestamped dir)."""
    ts = "%d" % (time.time() * 1e6)
    d = os.path.join(dirpath, "..%s" % ts)
    os.makedirs(d)
    with open(os.path.join(d, name), "w") as f:
        f.write("\n".join(keys) + "\n")
    os.chmod(os.path.join(d, name), 0o400)
    tmp = os.path.join(dirpath, "..data_tmp")
    if os.path.lexists(tmp):
        os.unlink(tmp)
    os.symlink(os.path.basename(d), tmp)
    os.rename(tmp, os.path.join(dirpath, "..data"))
    link = os.path.join(dirpath, name)
    if not os.path.lexists(link):
        os.symlink(os.path.join("..data", name), link)


@pytest.fixture
def secured(hale_factory, tmp_path):
    sd = tmp_path / "secrets"
    sd.mkdir()
    write_keys(str(sd), ["key-one", "key-two"])
    return hale_factory(env={"HALE_SECRET_DIR": str(sd), "APP_AUTH__RELOAD_INTERVAL": "200ms"}), sd


def test_missing_wrong_right(secured):  # R: A9
    h, _ = secured
    st, hd, body = h.request("GET", "/v1/kv/x")
    assert st == 401 and hd["www-authenticate"].startswith("Bearer")
    missing = json.loads(body)
    st, hd, body = h.request("GET", "/v1/kv/x", headers={"Authorization": "Bearer nope"})
    assert st == 401 and json.loads(body) == missing  # same answer: no hint
    st, _, body = h.request("GET", "/v1/kv/x", headers={"X-API-Key": "key-one-"})
    assert st == 401 and json.loads(body) == missing
    st, _, _ = h.request("GET", "/v1/kv/x", headers={"X-API-Key": "key-on"})
    assert st == 401
    assert h.request("PUT", "/v1/kv/x", b"v", {"Authorization": "Bearer key-one"})[0] == 201
    assert h.request("GET", "/v1/kv/x", headers={"X-API-Key": "key-two"})[0] == 200
    assert h.request("GET", "/v1/kv?prefix=", headers={"X-API-Key": "key-two"})[0] == 200


def test_probes_and_metrics_open(secured):  # R: A9
    h, _ = secured
    for p in ("/health/liveness", "/health/readiness", "/health/startup", "/health"):
        assert h.request("GET", p)[0] == 200, p
    st, _, body = h.request("GET", "/metrics", admin=True)
    assert st == 200
    h.request("GET", "/v1/kv/x")
    h.request("GET", "/v1/kv/x", headers={"X-API-Key": "bad"})
    h.request("GET", "/v1/kv/x", headers={"X-API-Key": "key-one"})
    text = h.request("GET", "/metrics", admin=True)[2].decode()
    for outcome in ("ok", "missing", "invalid"):
        assert 'hale_auth_requests_total{outcome="%s"} 1' % outcome in text, text
    out = h.output() + text
    assert "key-one" not in out and "key-two" not in out


def test_rotation_under_load(secured):  # R: A9
    h, sd = secured
    stop = threading.Event()
    failures = []
    counts = {"old": 0, "new": 0}
    phase = {"key": "key-one", "name": "old"}

    def client():
        c = h.conn()
        while not stop.is_set():
            key, name = phase["key"], phase["name"]
            c.request("GET", "/health/liveness")
            c.getresponse().read()
            c.request("PUT", "/v1/kv/rot", body=b"v", headers={"X-API-Key": key})
            r = c.getresponse()
            r.read()
            if r.status not in (200, 201):
                failures.append((name, r.status))
            else:
                counts[name] += 1
        c.close()

    threads = [threading.Thread(target=client) for _ in range(4)]
    for t in threads:
        t.start()
    time.sleep(0.5)
    write_keys(str(sd), ["key-one", "key-new"])       # 1. old + new
    time.sleep(1.0)                                   # hale notices within reload_interval
    phase.update(key="key-new", name="new")           # 2. clients roll
    time.sleep(0.5)
    write_keys(str(sd), ["key-new"])                  # 3. only the new key
    time.sleep(1.0)
    stop.set()
    for t in threads:
        t.join()
    assert not failures, failures[:5]
    assert counts["old"] > 0 and counts["new"] > 0
    assert h.request("GET", "/v1/kv/rot", headers={"X-API-Key": "key-one"})[0] == 401
    assert h.request("GET", "/v1/kv/rot", headers={"X-API-Key": "key-new"})[0] == 200
    out = h.output()
    assert out.count("API key set changed") >= 2
    assert "key-new" not in out and "key-one" not in out


def test_production_without_key_refuses_to_start(tmp_path):  # R: A9 L3
    env = {"PATH": os.environ["PATH"], "RUN_ENV": "production",
           "HALE_CONFIG_DIR": os.path.join(ROOT, "config"), "HALE_SECRET_DIR": str(tmp_path),
           "PORT": "1"}
    r = subprocess.run([HALE_BIN], env=env, capture_output=True, text=True, timeout=10)
    assert r.returncode == 78
    assert "api-key" in r.stderr and "auth.allow_anonymous = true" in r.stderr
    env["APP_AUTH__ALLOW_ANONYMOUS"] = "true"
    r = subprocess.run([HALE_BIN, "config", "--check"], env=env, capture_output=True, text=True)
    assert r.returncode == 0, r.stderr


def test_dev_without_key_warns_once(hale):  # R: A9
    assert hale.request("PUT", "/v1/kv/open", b"v")[0] == 201
    assert hale.output().count("the API is open") == 1


NO_KEY_TEXTS = ["", " \n", "\t\n\n", "# only a comment\n", "  # rotated\n\n#\n"]


@pytest.mark.parametrize("text", NO_KEY_TEXTS, ids=["empty", "space", "tabs", "comment", "comments"])
def test_production_whitespace_key_file_refuses_to_start(tmp_path, text):  # R: A9 L3
    """The parsed key set decides: a key file with no usable key is no key."""
    (tmp_path / "api-key").write_text(text)
    env = {"PATH": os.environ["PATH"], "RUN_ENV": "production",
           "HALE_CONFIG_DIR": os.path.join(ROOT, "config"), "HALE_SECRET_DIR": str(tmp_path),
           "PORT": "1"}
    r = subprocess.run([HALE_BIN, "config", "--check"], env=env, capture_output=True, text=True,
                       timeout=10)
    assert r.returncode == 78, r.stdout + r.stderr
    assert "no usable API key" in r.stderr


@pytest.mark.parametrize("value", ["\t", " ", "\n\n", "# nope"])
def test_production_whitespace_api_key_env_refuses_to_start(tmp_path, value):  # R: A9 L3
    env = {"PATH": os.environ["PATH"], "RUN_ENV": "production", "API_KEY": value,
           "HALE_CONFIG_DIR": os.path.join(ROOT, "config"), "HALE_SECRET_DIR": str(tmp_path),
           "PORT": "1"}
    r = subprocess.run([HALE_BIN, "config", "--check"], env=env, capture_output=True, text=True,
                       timeout=10)
    assert r.returncode == 78, r.stdout + r.stderr
    assert "no usable API key" in r.stderr


@pytest.mark.parametrize("text", NO_KEY_TEXTS, ids=["empty", "space", "tabs", "comment", "comments"])
def test_reload_to_no_key_keeps_old_keys(secured, text):  # R: A9
    h, sd = secured
    h.expect_error(r"key file has no usable key; keeping the current keys")
    assert h.request("PUT", "/v1/kv/r", b"v", {"X-API-Key": "key-one"})[0] == 201
    ts = "%d" % (time.time() * 1e6)
    d = sd / ("..%s" % ts)
    d.mkdir()
    (d / "api-key").write_text(text)
    os.symlink(d.name, str(sd / "..data_tmp"))
    os.rename(str(sd / "..data_tmp"), str(sd / "..data"))
    deadline = time.time() + 5
    while "no usable key" not in h.output() and time.time() < deadline:
        time.sleep(0.05)
    assert "no usable key" in h.output()
    assert h.request("PUT", "/v1/kv/r", b"v")[0] == 401              # never opens the API
    assert h.request("PUT", "/v1/kv/r", b"v", {"X-API-Key": "nope"})[0] == 401
    assert h.request("GET", "/v1/kv/r", headers={"X-API-Key": "key-two"})[0] == 200
    metrics = h.request("GET", "/metrics", admin=True)[2].decode()
    assert "hale_auth_reload_refused_total 1" in metrics, metrics
    assert "hale_auth_keys 2" in metrics
    write_keys(str(sd), ["key-three"])                               # a good file is taken again
    deadline = time.time() + 5
    while h.request("GET", "/v1/kv/r", headers={"X-API-Key": "key-three"})[0] != 200:
        assert time.time() < deadline
        time.sleep(0.05)


def _cpu_seconds(pid):
    with open("/proc/%d/stat" % pid) as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def test_draining_with_keys_uses_no_cpu(hale_factory, tmp_path):  # R: A9 L1
    """The key-reload thread keeps watching during the drain without a busy
    loop (a 1 s interval once meant nanosleep(tv_nsec = 1e9): EINVAL, spin)."""
    sd = tmp_path / "secrets"
    sd.mkdir()
    write_keys(str(sd), ["key-one"])
    h = hale_factory(env={"HALE_SECRET_DIR": str(sd), "APP_AUTH__RELOAD_INTERVAL": "1s",
                          "APP_SHUTDOWN__DRAIN_DELAY": "4s"})
    h.proc.send_signal(signal.SIGTERM)
    time.sleep(0.5)
    c0, t0 = _cpu_seconds(h.proc.pid), time.monotonic()
    time.sleep(2.5)
    c1, t1 = _cpu_seconds(h.proc.pid), time.monotonic()
    assert h.proc.poll() is None, "stopped before the drain delay"
    share = (c1 - c0) / (t1 - t0)
    assert share < 0.05, "draining hale used %.0f %% of a core" % (share * 100)
    assert h.proc.wait(15) == 0, h.output()[-3000:]
