"""Shared fixtures for the end-to-end tests: they start the real hale binary
on free loopback ports with a temporary data directory and speak HTTP to it.

HALE_BIN selects the binary (default build/debug/hale).

After every test the fixture checks each hale it started (R: Y3, T1):
  * it was still alive until stopped: an exit the test did not cause (no
    signal sent through h.stop() or h.proc, no expect_exit) fails;
  * stopped by the fixture, it exits 0;
  * its output holds no sanitizer report and no panic, and no error line
    (level ERROR, JSON "level":"error", a config "error:" diagnostic) the
    test did not declare: Hale(expect_errors=[regex, ...]) or
    h.expect_error(regex) (re.search on the line)."""
import http.client
import os
import re
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


# output no test may accept: sanitizer reports and panics
FATAL_OUTPUT = re.compile(r"ERROR: AddressSanitizer|ERROR: LeakSanitizer|runtime error:|"
                          r"WARNING: ThreadSanitizer|ThreadSanitizer:|fatal internal error|"
                          r"panic", re.IGNORECASE)
# an error line: the text log's level, the JSON log's level, a config diagnostic
ERROR_LINE = re.compile(r"^\S+\s+ERROR\s|\"level\":\s*\"error\"|^error:\s")


def unexpected_output(out, expected=()):
    """The lines of hale's output a test must fail on (see the docstring)."""
    bad = []
    pats = [re.compile(p) for p in expected]
    for line in out.splitlines():
        if FATAL_OUTPUT.search(line):
            bad.append(line)
        elif ERROR_LINE.search(line) and not any(p.search(line) for p in pats):
            bad.append(line)
    return bad


class _Proc(subprocess.Popen):
    """Popen that remembers a signal sent by the test: an exit after one is
    the test's doing, not a crash."""
    signalled = False

    def send_signal(self, sig):
        self.signalled = True
        super().send_signal(sig)


class Hale:
    """A running hale process."""

    def __init__(self, env=None, args=(), wait_ready=True, cwd=None, expect_errors=(),
                 expect_exit=None):
        self.expected_errors = list(expect_errors)
        self.expected_exit = expect_exit  # an exit code the test expects hale to take by itself
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
        self.proc = _Proc([HALE_BIN, *args], env=e, stdout=self.log,
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

    def expect_error(self, pattern):
        """Declares an error line this test provokes (a regex)."""
        self.expected_errors.append(pattern)

    def expect_exit(self, code):
        """Declares that hale ends by itself with this exit code."""
        self.expected_exit = code

    def stop(self, sig=signal.SIGTERM, timeout=30):
        self.proc.signalled = True
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
        alive = self.proc.poll() is None
        by_test = self.proc.signalled
        rc = self.stop() if alive else self.proc.returncode
        if not self.log.closed:
            self.log.close()
        out = self.output()
        bad = unexpected_output(out, self.expected_errors)
        assert not bad, "unexpected lines in hale's output:\n%s\n--- output:\n%s" % (
            "\n".join(bad[:20]), out[-4000:])
        if alive:
            assert rc == 0, "exit %s on stop\n%s" % (rc, out[-4000:])
        elif not by_test:
            assert self.expected_exit is not None, \
                "hale exited (%s) before the test stopped it\n%s" % (rc, out[-4000:])
            assert rc == self.expected_exit, "exit %s, expected %s\n%s" % (
                rc, self.expected_exit, out[-4000:])


@pytest.fixture
def hale_factory():
    started = []

    def make(**kw):
        h = Hale(**kw)
        started.append(h)
        return h

    yield make
    errors = []
    for h in started:
        try:
            h.check_clean_exit()
        except AssertionError as e:
            errors.append(str(e))
    assert not errors, "\n\n".join(errors)


@pytest.fixture
def hale(hale_factory):
    return hale_factory()
