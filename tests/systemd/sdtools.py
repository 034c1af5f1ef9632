"""Helpers for the systemd tests (R: R5): a NOTIFY_SOCKET listener, a hale
process started under any parent command (systemd-socket-activate, a shell
that hands it an inherited socket), and a TCP forwarder that stands for a
dependency coming up late. Environment and ports as in tests/e2e."""
import http.client
import os
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(os.path.dirname(HERE), "e2e"))
from conftest import HALE_BIN, ROOT, free_port  # noqa: E402  (tests/e2e/conftest.py)

SANITIZER_MARKS = ("ERROR: AddressSanitizer", "runtime error:", "ThreadSanitizer")


class NotifyListener:
    """A datagram socket standing for systemd's notification socket; every
    message is kept with its arrival time (time.monotonic())."""

    def __init__(self, abstract=False):
        self.dir = tempfile.mkdtemp(prefix="hale-sd-")
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        if abstract:
            name = "hale-test-%d-%d" % (os.getpid(), id(self))
            self.sock.bind("\0" + name)
            self.address = "@" + name
        else:
            self.address = os.path.join(self.dir, "notify")
            self.sock.bind(self.address)
        self.sock.settimeout(0.2)
        self.messages = []  # (t, text)
        self.lock = threading.Lock()
        self.stop_flag = False
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self):
        while not self.stop_flag:
            try:
                data = self.sock.recv(4096)
            except socket.timeout:
                continue
            except OSError:
                return
            with self.lock:
                self.messages.append((time.monotonic(), data.decode("utf-8", "replace")))

    def all(self):
        with self.lock:
            return list(self.messages)

    def assignments(self, key):
        """[(t, value)] for every KEY=value line received, in order."""
        out = []
        for t, m in self.all():
            for line in m.split("\n"):
                k, sep, v = line.partition("=")
                if sep and k == key:
                    out.append((t, v))
        return out

    def wait_for(self, key, value=None, timeout=20.0):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for t, v in self.assignments(key):
                if value is None or v == value or v.startswith(value):
                    return t, v
            time.sleep(0.01)
        raise AssertionError("no %s=%s within %.0f s; got %r" % (key, value or "*", timeout, self.all()))

    def close(self):
        self.stop_flag = True
        self.thread.join(2)
        self.sock.close()


def hale_env(tmpdir, port, admin_port, extra=None):
    """hale's environment for a test instance, as tests/e2e/conftest.py builds it."""
    e = {k: v for k, v in os.environ.items()
         if not k.startswith(("APP_", "LISTEN_", "NOTIFY_", "WATCHDOG_"))}
    for k in ("DATABASE_URL", "REDIS_URL", "PORT", "HOST", "LOG_LEVEL", "LOG_FORMAT", "RUN_ENV"):
        e.pop(k, None)
    e.update({
        "HOST": "127.0.0.1",
        "PORT": str(port),
        "APP_METRICS__PORT": str(admin_port),
        "APP_METRICS__HOST": "127.0.0.1",
        "APP_DATABASE__SQLITE_PATH": os.path.join(tmpdir, "hale.db"),
        "APP_SHUTDOWN__DRAIN_DELAY": "0",
        "APP_SHUTDOWN__TIMEOUT": "5000",
        "HALE_CONFIG_DIR": os.path.join(ROOT, "config"),
        "HALE_SECRET_DIR": os.path.join(tmpdir, "secrets"),
        "ASAN_OPTIONS": "detect_leaks=1:abort_on_error=0:exitcode=99",
        "UBSAN_OPTIONS": "print_stacktrace=1:halt_on_error=1:exitcode=98",
    })
    e.update(extra or {})
    return e


def two_ports():
    a = free_port()
    b = free_port()
    while b == a:
        b = free_port()
    return a, b


class Proc:
    """hale (possibly under a parent command that execs it) with its output in a file."""

    def __init__(self, cmd, env, pass_fds=(), cwd=None):
        self.dir = tempfile.mkdtemp(prefix="hale-sd-run-")
        self.log_path = os.path.join(self.dir, "hale.log")
        self.log = open(self.log_path, "wb")
        self.proc = subprocess.Popen(cmd, env=env, stdout=self.log, stderr=subprocess.STDOUT,
                                     pass_fds=pass_fds, cwd=cwd or self.dir)

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
        if not self.log.closed:
            self.log.close()
        return self.proc.returncode

    def check_clean_exit(self):
        rc = self.stop()
        out = self.output()
        assert not any(m in out for m in SANITIZER_MARKS), out[-4000:]
        assert rc == 0, "exit %s\n%s" % (rc, out[-4000:])


def request(port, method="GET", path="/health/readiness", body=None, timeout=5.0, headers=None):
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        c.request(method, path, body=body, headers=headers or {})
        r = c.getresponse()
        return r.status, r.read()
    finally:
        c.close()


def status_or_none(port, path="/health/readiness", timeout=1.0):
    try:
        return request(port, path=path, timeout=timeout)[0]
    except OSError:
        return None


def wait_until(pred, timeout=20.0, what="condition"):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        v = pred()
        if v:
            return v
        time.sleep(0.02)
    raise AssertionError("timed out waiting for " + what)


class Forwarder:
    """A TCP forwarder from a local port to (host, port), started on demand:
    before start() nothing listens there (a dependency that is down)."""

    def __init__(self, target_host, target_port):
        self.target = (target_host, target_port)
        self.port = free_port()
        self.lsock = None
        self.stopping = False

    def start(self):
        self.lsock = socket.socket()
        self.lsock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.lsock.bind(("127.0.0.1", self.port))
        self.lsock.listen(64)
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self):
        while not self.stopping:
            try:
                c, _ = self.lsock.accept()
            except OSError:
                return
            try:
                u = socket.create_connection(self.target, timeout=5)
            except OSError:
                c.close()
                continue
            for a, b in ((c, u), (u, c)):
                threading.Thread(target=self._pipe, args=(a, b), daemon=True).start()

    @staticmethod
    def _pipe(a, b):
        try:
            while True:
                d = a.recv(65536)
                if not d:
                    break
                b.sendall(d)
        except OSError:
            pass
        finally:
            for s in (a, b):
                try:
                    s.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass

    def close(self):
        self.stopping = True
        if self.lsock:
            self.lsock.close()
