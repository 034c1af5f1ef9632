"""Shared fixtures for the end-to-end tests: they start the real hale binary
on free loopback ports with a temporary data directory and speak HTTP to it.

HALE_BIN selects the binary (default build/debug/hale)."""
import http.client
import os
import signal
import socket
import subprocess
import tempfile
import time

import pytest

import backends  # tests/e2e/backends.py: HALE_TEST_BACKEND=sqlite|pg|pg+redis

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
HALE_BIN = os.path.abspath(os.environ.get("HALE_BIN", os.path.join(ROOT, "build/debug/hale")))


def free_port():
    with socket.socket() as s:
        s.bind(("0.0.0.0", 0))  # as wide as hale binds: sees sockets on any address
        return s.getsockname()[1]


class Hale:
    """A running hale process."""

    def __init__(self, env=None, args=(), wait_ready=True, cwd=None):
        self.dir = tempfile.mkdtemp(prefix="hale-e2e-")
        self.port = free_port()
        self.admin_port = free_port()
        while self.admin_port == self.port:  # the kernel may hand the same port twice
            self.admin_port = free_port()
        e = {k: v for k, v in os.environ.items() if not k.startswith("APP_")}
        for k in ("DATABASE_URL", "REDIS_URL", "PORT", "HOST", "LOG_LEVEL", "LOG_FORMAT", "RUN_ENV"):
            e.pop(k, None)
        e.update({
            "HOST": "127.0.0.1",
            "PORT": str(self.port),
            "APP_METRICS__PORT": str(self.admin_port),
            "APP_METRICS__HOST": "127.0.0.1",
            "APP_DATABASE__SQLITE_PATH": os.path.join(self.dir, "hale.db"),
            "APP_SHUTDOWN__DRAIN_DELAY": "0",
            "APP_SHUTDOWN__TIMEOUT": "5000",
            "HALE_CONFIG_DIR": os.path.join(ROOT, "config"),
            "HALE_SECRET_DIR": os.path.join(self.dir, "secrets"),
            "ASAN_OPTIONS": "detect_leaks=1:abort_on_error=0:exitcode=99",
            "UBSAN_OPTIONS": "print_stacktrace=1:halt_on_error=1:exitcode=98",
        })
        e.update(backends.env_for_run(env))
        if env:
            e.update(env)
        self.env = e
        self.log_path = os.path.join(self.dir, "hale.log")
        self.log = open(self.log_path, "wb")
        self.proc = subprocess.Popen([HALE_BIN, *args], env=e, stdout=self.log,
                                     stderr=subprocess.STDOUT, cwd=cwd or self.dir)
        if wait_ready:
            self.wait_ready()

    def wait_ready(self, timeout=10.0, path="/health/readiness"):
        deadline = time.time() + timeout
        while time.time() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError("hale exited with %s:\n%s" % (self.proc.returncode, self.output()))
            try:
                st, _, _ = self.request("GET", path, timeout=0.5)
                if st == 200:
                    return
            except OSError:
                pass
            time.sleep(0.02)
        raise RuntimeError("hale not ready:\n" + self.output())

    def conn(self, timeout=5.0, admin=False):
        return http.client.HTTPConnection("127.0.0.1", self.admin_port if admin else self.port,
                                          timeout=timeout)

    def request(self, method, path, body=None, headers=None, timeout=5.0, admin=False):
        c = self.conn(timeout, admin)
        try:
            c.request(method, path, body=body, headers=headers or {})
            r = c.getresponse()
            data = r.read()
            return r.status, {k.lower(): v for k, v in r.getheaders()}, data
        finally:
            c.close()

    def raw(self, data, timeout=2.0, port=None):
        """Sends raw bytes, returns everything read until close or timeout."""
        s = socket.create_connection(("127.0.0.1", port or self.port), timeout=timeout)
        try:
            s.sendall(data)
            out = b""
            while True:
                try:
                    chunk = s.recv(65536)
                except socket.timeout:
                    break
                if not chunk:
                    break
                out += chunk
            return out
        finally:
            s.close()

    def output(self):
        if not self.log.closed:
            self.log.flush()
        with open(self.log_path, "rb") as f:
            return f.read().decode("utf-8", "replace")

    def stop(self, sig=signal.SIGTERM, timeout=30):
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.log.close()
        return self.proc.returncode

    def check_clean_exit(self):
        # R: Y3 - every e2e test ends here: under the ASan+UBSan and TSan
        # builds (make test runs both) any sanitizer report fails the test
        rc = self.stop()
        out = self.output()
        assert "ERROR: AddressSanitizer" not in out and "runtime error:" not in out \
            and "ThreadSanitizer" not in out, out[-4000:]
        assert rc == 0, "exit %s\n%s" % (rc, out[-4000:])


@pytest.fixture
def hale_factory():
    started = []

    def make(**kw):
        h = Hale(**kw)
        started.append(h)
        return h

    yield make
    for h in started:
        h.check_clean_exit() if h.proc.poll() is None else h.log.close()


@pytest.fixture
def hale(hale_factory):
    return hale_factory()
