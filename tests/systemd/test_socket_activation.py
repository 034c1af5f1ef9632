"""Socket activation (LISTEN_FDS): hale serves on the sockets its parent
passes instead of binding, by the names "api" and "admin"; the parent
keeps the socket across restarts, so a restart refuses no connection (the
kernel queues them for the next process). Parents: systemd-socket-activate
(Debian's systemd package), and a test parent that holds one socket and
starts successive hale processes on it, as systemd does with hale.socket."""
import fcntl
import os
import shutil
import socket
import threading
import time

import pytest

from sdtools import HALE_BIN, Proc, free_port, hale_env, request, status_or_none, two_ports, wait_until

SOCKET_ACTIVATE = shutil.which("systemd-socket-activate")


def listening_socket(port, backlog=1024):
    s = socket.socket()
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind(("127.0.0.1", port))
    s.listen(backlog)
    return s


def high_fd(fd):
    """A duplicate numbered 20 or more, so the wrapper's 3, 4 never clash."""
    return fcntl.fcntl(fd, fcntl.F_DUPFD, 20)


WRAPPER = """
import os, sys
fds = [int(f) for f in sys.argv[1].split(",")]
for i, fd in enumerate(fds):
    os.dup2(fd, 3 + i)  # dup2 clears FD_CLOEXEC: 3, 4 ... survive the exec
for fd in fds:
    if fd >= 3 + len(fds):
        os.close(fd)
os.environ["LISTEN_PID"] = str(os.getpid())
os.execv(sys.argv[2], sys.argv[2:])
"""


def inherited_cmd(fds):
    """A wrapper puts fds at 3, 4, ..., sets LISTEN_PID to its own pid and
    execs hale (same pid), which then finds LISTEN_PID == getpid()."""
    return ["/usr/bin/python3", "-c", WRAPPER, ",".join(map(str, fds)), HALE_BIN]


def refused(port):
    try:
        socket.create_connection(("127.0.0.1", port), timeout=1).close()
        return False
    except ConnectionRefusedError:
        return True


def test_systemd_socket_activate_serves_named_sockets(tmp_path):
    """R: R5 - systemd-socket-activate as the parent, two sockets passed in
    the order admin, api (--fdname=admin:api): the names decide, the API and
    the admin listener answer on the inherited ports, the configured ports
    stay unbound, and the first connection (which made the parent start
    hale) is answered from the queue."""
    assert SOCKET_ACTIVATE, "systemd-socket-activate not installed (scripts/install-deps.sh test)"
    api, admin = two_ports()
    cfg_port, cfg_admin = two_ports()
    while {cfg_port, cfg_admin} & {api, admin}:
        cfg_port, cfg_admin = two_ports()
    env = hale_env(str(tmp_path), cfg_port, cfg_admin)
    cmd = [SOCKET_ACTIVATE, "-l", "127.0.0.1:%d" % admin, "-l", "127.0.0.1:%d" % api,
           "--fdname=admin:api"]
    cmd += ["-E%s=%s" % kv for kv in env.items()]
    h = Proc(cmd + [HALE_BIN], dict(os.environ))
    try:
        time.sleep(0.2)
        # the parent starts hale on the first connection; hale answers it
        st, body = request(api, "PUT", "/v1/kv/first", body=b"queued", timeout=30)
        assert st in (200, 201), body
        assert request(api, path="/v1/kv/first")[1] == b"queued"
        wait_until(lambda: status_or_none(api) == 200, what="readiness on the inherited api socket")
        assert status_or_none(admin, "/health/liveness") == 200
        st, metrics = request(admin, path="/metrics")
        assert st == 200 and b"hale_ready 1" in metrics
        assert refused(cfg_port) and refused(cfg_admin), "hale bound its configured ports"
        out = h.output()
        assert "serving inherited sockets" in out, out
    finally:
        h.check_clean_exit()


def test_restart_under_load_fails_no_request(tmp_path):
    """R: R5 - a parent holds the listening socket and restarts hale on it
    three times (SIGTERM, exit, next process) under a bounded load of four
    clients, one connection per request: zero requests fail, every process
    served some, and the data written before a restart is read after it."""
    port, admin = two_ports()
    parent_sock = listening_socket(port)
    fd = high_fd(parent_sock.fileno())
    env = hale_env(str(tmp_path), port, admin, {"LISTEN_FDS": "1", "LISTEN_FDNAMES": "api",
                                                "APP_SHUTDOWN__DRAIN_DELAY": "300",
                                                "APP_SERVER__WORKERS": "2"})
    ok, failures, stop = [0], [], threading.Event()
    lock = threading.Lock()

    def client(i):
        n = 0
        while not stop.is_set() and n < 5000:
            key, val = "c%d-%d" % (i, n), b"v%d" % n
            try:
                st, body = request(port, "PUT", "/v1/kv/" + key, body=val, timeout=30,
                                   headers={"Connection": "close"})
                if st not in (200, 201):
                    raise AssertionError("PUT %s: %d %r" % (key, st, body))
                st, body = request(port, "GET", "/v1/kv/" + key, timeout=30,
                                   headers={"Connection": "close"})
                if st != 200 or body != val:
                    raise AssertionError("GET %s: %d %r" % (key, st, body))
                with lock:
                    ok[0] += 2
            except (OSError, AssertionError) as e:  # refused, reset, wrong answer
                with lock:
                    failures.append("%s: %r" % (key, e))
            n += 1

    procs = [Proc(inherited_cmd([fd]), env, pass_fds=(fd,))]
    threads = [threading.Thread(target=client, args=(i,)) for i in range(4)]
    try:
        wait_until(lambda: status_or_none(port) == 200, what="first instance ready")
        for t in threads:
            t.start()
        for _ in range(3):
            target = ok[0] + 100
            wait_until(lambda: ok[0] >= target or failures, timeout=60, what="100 more requests")
            if failures:
                break
            procs[-1].check_clean_exit()
            procs.append(Proc(inherited_cmd([fd]), env, pass_fds=(fd,)))
        target = ok[0] + 100
        wait_until(lambda: ok[0] >= target or failures, timeout=60, what="100 more requests")
    finally:
        stop.set()
        for t in threads:
            if t.is_alive():
                t.join(60)
        if failures:
            procs[-1].stop()
        os.close(fd)
    assert failures == [], "%d of %d requests failed: %s" % (len(failures), ok[0] + len(failures),
                                                            failures[:5])
    procs[-1].check_clean_exit()
    parent_sock.close()
    assert ok[0] >= 800
    for p in procs:
        out = p.output()
        assert "serving inherited sockets" in out and "/v1/kv/c" in out, out[-2000:]


@pytest.mark.parametrize("case", ["too_many", "pipe", "not_listening", "same_name"])
def test_unusable_inherited_sockets_are_a_clear_error(tmp_path, case):
    """R: R5 - sockets hale cannot use are refused with a message naming the
    problem and exit 1, never guessed at: more than two, an fd that is not a
    socket, a socket that is not listening, two sockets named "api"."""
    port, admin = two_ports()
    keep, fds, extra = [], [], {}
    if case == "too_many":
        keep = [listening_socket(free_port()) for _ in range(3)]
        extra = {"LISTEN_FDS": "3"}
        want = "at most 2 sockets"
    elif case == "pipe":
        r, w = os.pipe()
        keep = [r, w]
        fds = [high_fd(r)]
        extra = {"LISTEN_FDS": "1"}
        want = "is not a socket"
    elif case == "not_listening":
        keep = [socket.socket()]
        extra = {"LISTEN_FDS": "1"}
        want = "is not a listening stream socket"
    else:
        keep = [listening_socket(free_port()), listening_socket(free_port())]
        extra = {"LISTEN_FDS": "2", "LISTEN_FDNAMES": "api:api"}
        want = 'two sockets are named'
    if not fds:
        fds = [high_fd(s.fileno()) for s in keep]
    env = hale_env(str(tmp_path), port, admin, extra)
    h = Proc(inherited_cmd(fds), env, pass_fds=tuple(fds))
    try:
        rc = h.proc.wait(30)
    finally:
        h.stop()
        for f in fds:
            os.close(f)
        for k in keep:
            k.close() if hasattr(k, "close") else os.close(k)
    out = h.output()
    assert rc == 1 and want in out, "exit %s\n%s" % (rc, out)
    assert "runtime error:" not in out and "AddressSanitizer" not in out
    assert refused(port), "hale bound its configured port anyway"


def test_listen_pid_of_another_process_is_ignored(tmp_path):
    """R: R5 - LISTEN_PID naming another process (variables meant for a
    parent): hale binds its configured port as without activation."""
    port, admin = two_ports()
    env = hale_env(str(tmp_path), port, admin, {"LISTEN_PID": "1", "LISTEN_FDS": "1"})
    h = Proc([HALE_BIN], env)
    try:
        wait_until(lambda: status_or_none(port) == 200, what="readiness on the configured port")
    finally:
        h.check_clean_exit()
    assert "serving inherited sockets" not in h.output()
