"""examples/shortener, a service of another shape built out of tree against
the installed hale (R: R2): once with pkg-config and a plain Makefile, once
with CMake find_package(hale). Both builds serve its routes (a deferred
answer from its writer thread included), its own health check and metrics,
its `config` command, and drain on SIGTERM (in-flight answered, exit 0)."""
import http.client
import json
import os
import signal
import socket
import subprocess
import tempfile
import threading
import time

import pytest

BUILDS = ["example_pkgconfig", "example_cmake"]


def free_port():
    with socket.socket() as s:
        s.bind(("0.0.0.0", 0))
        return s.getsockname()[1]


class Service:
    def __init__(self, exe, env=None):
        self.dir = tempfile.mkdtemp(prefix="hale-shortener-")
        self.port, self.admin = free_port(), free_port()
        while self.admin == self.port:
            self.admin = free_port()
        e = {k: v for k, v in os.environ.items() if not k.startswith(("APP_", "SHORTENER_"))}
        e.pop("LD_LIBRARY_PATH", None)  # the binary finds libhale on its own
        e.update({"HOST": "127.0.0.1", "PORT": str(self.port), "APP_METRICS__HOST": "127.0.0.1",
                  "APP_METRICS__PORT": str(self.admin), "APP_SHUTDOWN__DRAIN_DELAY": "0",
                  "SHORTENER_BASE_URL": "http://sho.rt"})
        e.update(env or {})
        self.log_path = os.path.join(self.dir, "out.log")
        self.log = open(self.log_path, "wb")
        self.proc = subprocess.Popen([exe], env=e, cwd=self.dir, stdout=self.log,
                                     stderr=subprocess.STDOUT)
        deadline = time.time() + 15
        while time.time() < deadline:
            assert self.proc.poll() is None, "exited %s:\n%s" % (self.proc.returncode, self.output())
            try:
                if self.request("GET", "/health/readiness", timeout=0.5)[0] == 200:
                    return
            except OSError:
                pass
            time.sleep(0.05)
        raise AssertionError("not ready:\n" + self.output())

    def request(self, method, path, body=None, admin=False, timeout=5.0):
        c = http.client.HTTPConnection("127.0.0.1", self.admin if admin else self.port, timeout=timeout)
        try:
            c.request(method, path, body=body)
            r = c.getresponse()
            return r.status, {k.lower(): v for k, v in r.getheaders()}, r.read()
        finally:
            c.close()

    def output(self):
        self.log.flush()
        return open(self.log_path, "rb").read().decode("utf-8", "replace")

    def stop(self):
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.log.close()
        return self.proc.returncode


@pytest.fixture(params=BUILDS)
def exe(request):
    return request.getfixturevalue(request.param)


def test_links_redirects_and_errors(exe):  # R: R2
    s = Service(exe)
    try:
        st, h, body = s.request("POST", "/v1/links", b"https://example.org/a/b?c=d\n")
        assert st == 201, body
        doc = json.loads(body)
        code = doc["code"]
        assert len(code) == 7 and code.isalnum()
        assert doc["url"] == "https://example.org/a/b?c=d"
        assert doc["short_url"] == "http://sho.rt/s/" + code == h["location"]
        for _ in range(3):
            st, h, _ = s.request("GET", "/s/" + code)
            assert st == 302 and h["location"] == "https://example.org/a/b?c=d"
        st, _, body = s.request("GET", "/v1/links/" + code)
        assert st == 200 and json.loads(body) == {"code": code, "url": doc["url"], "hits": 3}
        # its errors are hale's JSON errors
        st, _, body = s.request("GET", "/s/nosuch1")
        assert st == 404 and json.loads(body)["error"] == "not_found"
        for bad in (b"", b"ftp://x/y", b"http://", b"https://a b"):
            st, _, body = s.request("POST", "/v1/links", bad)
            assert st == 400 and json.loads(body)["error"] == "bad_url", bad
        st, h, _ = s.request("DELETE", "/v1/links")
        assert st == 405 and "POST" in h["allow"]
    finally:
        assert s.stop() == 0, s.output()


def test_capacity_is_a_clear_error(exe):  # R: R2
    s = Service(exe, {"APP_SHORTENER__MAX_LINKS": "2"})
    try:
        assert s.request("POST", "/v1/links", b"http://a.example/1")[0] == 201
        assert s.request("POST", "/v1/links", b"http://a.example/2")[0] == 201
        st, _, body = s.request("POST", "/v1/links", b"http://a.example/3")
        assert st == 507 and json.loads(body)["error"] == "full"
    finally:
        assert s.stop() == 0, s.output()


def test_own_health_check_and_metrics(exe):  # R: R2
    s = Service(exe)
    try:
        st, _, body = s.request("GET", "/health", admin=True)
        checks = json.loads(body)["checks"]
        names = [c["name"] for c in checks] if isinstance(checks, list) else list(checks)
        assert st == 200 and "writer" in names, body
        _, _, body = s.request("POST", "/v1/links", b"http://m.example/")
        code = json.loads(body)["code"]
        s.request("GET", "/s/" + code)
        s.request("GET", "/s/" + code)
        s.request("GET", "/s/zzzzzzz")
        st, _, body = s.request("GET", "/metrics", admin=True)
        text = body.decode()
        assert st == 200
        assert "shortener_links_created_total 1\n" in text
        assert 'shortener_redirects_total{result="found"} 2\n' in text
        assert 'shortener_redirects_total{result="missing"} 1\n' in text
        assert "shortener_links 1\n" in text
        # an admin route of its own (hale_service_admin_router), reading
        # the counters back (hale_counter_value); not on the public listener
        st, _, body = s.request("GET", "/stats", admin=True)
        assert st == 200, body
        assert json.loads(body) == {"links": 1, "created": 1, "redirects": {"found": 2, "missing": 1}}
        st, _, _ = s.request("GET", "/stats")
        assert st == 404
        # the runtime's own families come for free
        assert 'hale_http_requests_total' in text or 'http_requests_total' in text
    finally:
        assert s.stop() == 0, s.output()


def test_config_command(exe):  # R: R2
    env = {k: v for k, v in os.environ.items() if not k.startswith(("APP_", "SHORTENER_"))}
    env["APP_SHORTENER__CODE_LENGTH"] = "9"
    with tempfile.TemporaryDirectory() as d:
        p = subprocess.run([exe, "config"], env=env, cwd=d, capture_output=True, text=True)
        assert p.returncode == 0, p.stderr
        lines = {l.split()[0]: l.split() for l in p.stdout.splitlines() if l.strip()}
        assert lines["shortener.code_length"][1:] == ["9", "APP_SHORTENER__CODE_LENGTH"]
        assert lines["shortener.max_links"][1:] == ["10000", "default"]
        assert "server.port" in lines  # the runtime's settings next to its own
        # its own cross-check: every problem, exit 78, nothing started
        env["SHORTENER_BASE_URL"] = "ftp://x/"
        env["APP_SHORTENER__MAX_LINKS"] = "0"
        p = subprocess.run([exe, "config", "--check"], env=env, cwd=d, capture_output=True, text=True)
        assert p.returncode == 78
        out = p.stdout + p.stderr
        assert "shortener.base_url (SHORTENER_BASE_URL)" in out and "APP_SHORTENER__MAX_LINKS: expected an integer" in out, out


def test_drain_answers_the_deferred_request(exe):  # R: R2
    """SIGTERM while the writer holds a suspended POST: it is answered 201,
    new connections are refused once the drain stops accepting, exit 0."""
    s = Service(exe, {"APP_SHORTENER__WRITE_DELAY": "1500ms"})
    result = {}

    def post():
        result["r"] = s.request("POST", "/v1/links", b"https://slow.example/", timeout=20)

    t = threading.Thread(target=post)
    t.start()
    time.sleep(0.4)  # the POST is with the writer now
    s.proc.send_signal(signal.SIGTERM)
    t.join(20)
    st, h, body = result["r"]
    assert st == 201, body
    assert h.get("connection") == "close"
    rc = s.proc.wait(20)
    out = s.output()
    assert rc == 0, out
    assert "writer stopped" in out
    with pytest.raises(OSError):
        s.request("GET", "/health/liveness", timeout=1)
    s.stop()
