#!/usr/bin/python3
"""Small helpers for bench/run.sh (Debian python3, stdlib only).

  wait     poll http://127.0.0.1:PORT/PATH until 200 (fails if PID dies)
  preload  PUT N keys with SIZE-byte values (a few client threads)
  startup  start-to-ready time: spawn the server, poll readiness in a tight
           loop until the first 200, kill it; repeat; print JSON
  idle     RSS of a running server when idle and with N open keep-alive
           connections (each has done one request); print JSON

Every network operation has a timeout; nothing here waits forever.
"""

import argparse
import json
import os
import signal
import socket
import statistics
import subprocess
import sys
import threading
import time


def http_request(sock, method, path, body=b"", timeout=5.0):
    """One HTTP/1.1 keep-alive request on an open socket; returns (status, body)."""
    head = (f"{method} {path} HTTP/1.1\r\nHost: 127.0.0.1\r\n"
            f"Content-Length: {len(body)}\r\n\r\n").encode() if method != "GET" else \
        f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n".encode()
    sock.settimeout(timeout)
    sock.sendall(head + body)
    buf = b""
    while b"\r\n\r\n" not in buf:
        chunk = sock.recv(65536)
        if not chunk:
            raise ConnectionError("closed before headers")
        buf += chunk
    header, rest = buf.split(b"\r\n\r\n", 1)
    lines = header.split(b"\r\n")
    status = int(lines[0].split()[1])
    length = 0
    chunked = False
    for line in lines[1:]:
        name, _, value = line.partition(b":")
        name = name.strip().lower()
        if name == b"content-length":
            length = int(value.strip())
        elif name == b"transfer-encoding" and b"chunked" in value.lower():
            chunked = True
    if chunked:
        while not rest.endswith(b"0\r\n\r\n"):
            chunk = sock.recv(65536)
            if not chunk:
                break
            rest += chunk
        return status, rest
    if status in (204, 304) or 100 <= status < 200:
        length = 0
    while len(rest) < length:
        chunk = sock.recv(65536)
        if not chunk:
            raise ConnectionError("closed in body")
        rest += chunk
    return status, rest[:length]


def get_once(port, path, timeout=1.0):
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as s:
        return http_request(s, "GET", path, timeout=timeout)[0]


def alive(pid):
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    # A zombie is not alive for our purposes.
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def cmd_wait(a):
    deadline = time.monotonic() + a.timeout
    last = "no answer"
    while time.monotonic() < deadline:
        if a.pid and not alive(a.pid):
            print(f"benchctl wait: process {a.pid} exited", file=sys.stderr)
            return 1
        try:
            st = get_once(a.port, a.path)
            if st == 200:
                return 0
            last = f"status {st}"
        except OSError as e:
            last = str(e)
        time.sleep(0.01)
    print(f"benchctl wait: {a.path} on port {a.port} not ready after {a.timeout}s ({last})",
          file=sys.stderr)
    return 1


def cmd_preload(a):
    value = (b"0123456789abcdef" * (a.size // 16 + 1))[:a.size]
    errors = []
    counter = iter(range(a.keys))
    lock = threading.Lock()

    def worker():
        s = socket.create_connection(("127.0.0.1", a.port), timeout=10)
        try:
            while True:
                with lock:
                    k = next(counter, None)
                if k is None:
                    return
                st, _ = http_request(s, "PUT", f"/v1/kv/{a.prefix}-{k}", value, timeout=30)
                if st not in (200, 201):
                    errors.append(f"PUT {a.prefix}-{k}: {st}")
                    return
        except OSError as e:
            errors.append(str(e))
        finally:
            s.close()

    threads = [threading.Thread(target=worker) for _ in range(a.threads)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    if errors:
        print(f"benchctl preload: {errors[:3]}", file=sys.stderr)
        return 1
    with socket.create_connection(("127.0.0.1", a.port), timeout=5) as s:
        st, body = http_request(s, "GET", f"/v1/kv/{a.prefix}-0")
    if st != 200 or body != value:
        print(f"benchctl preload: read-back of {a.prefix}-0 gave {st}, {len(body)} bytes",
              file=sys.stderr)
        return 1
    return 0


def poll_ready(port, path, proc, deadline):
    """Tight poll: returns perf_counter() at the first 200, or None."""
    req = f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n".encode()
    while time.perf_counter() < deadline:
        s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        try:
            s.settimeout(1.0)
            s.connect(("127.0.0.1", port))
            s.sendall(req)
            buf = s.recv(64)
            if buf.startswith(b"HTTP/1.") and buf[9:12] == b"200":
                return time.perf_counter()
        except OSError:
            pass
        finally:
            s.close()
        if proc.poll() is not None:
            return None
        time.sleep(0.0002)
    return None


def kill_group(proc):
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    try:
        proc.wait(timeout=10)
    except subprocess.TimeoutExpired:
        pass


def cmd_startup(a):
    env = dict(os.environ)
    for kv in a.env or []:
        k, _, v = kv.partition("=")
        env[k] = v
    times = []
    failures = 0
    log = open(a.log, "ab") if a.log else subprocess.DEVNULL
    for _ in range(a.runs):
        # Wait until the port is free (the previous instance is gone).
        for _ in range(500):
            try:
                get_once(a.port, a.path, timeout=0.2)
                time.sleep(0.01)
            except OSError:
                break
        else:
            print(f"benchctl startup: port {a.port} is still in use", file=sys.stderr)
            return 1
        t0 = time.perf_counter()
        proc = subprocess.Popen(a.cmd, env=env, stdout=log, stderr=log,
                                stdin=subprocess.DEVNULL, start_new_session=True)
        t1 = poll_ready(a.port, a.path, proc, t0 + a.timeout)
        kill_group(proc)
        if t1 is None:
            failures += 1
        else:
            times.append((t1 - t0) * 1000.0)
    out = {"runs": a.runs, "failures": failures,
           "ms": [round(t, 3) for t in times],
           "median_ms": round(statistics.median(times), 3) if times else None,
           "min_ms": round(min(times), 3) if times else None,
           "max_ms": round(max(times), 3) if times else None}
    print(json.dumps(out))
    return 0 if times else 1


def proc_kb(pids, field):
    total = 0
    for pid in pids:
        try:
            with open(f"/proc/{pid}/status") as f:
                for line in f:
                    if line.startswith(field + ":"):
                        total += int(line.split()[1])
        except OSError:
            pass
    return total


def proc_pss_kb(pids):
    """Proportional set size: shared pages split between the processes
    sharing them (what a multi-process server like nginx really costs)."""
    total = 0
    for pid in pids:
        try:
            with open(f"/proc/{pid}/smaps_rollup") as f:
                for line in f:
                    if line.startswith("Pss:"):
                        total += int(line.split()[1])
        except OSError:
            pass
    return total


def group_pids(pgid):
    pids = []
    for d in os.listdir("/proc"):
        if not d.isdigit():
            continue
        try:
            with open(f"/proc/{d}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
            if int(fields[2]) == pgid and fields[0] != "Z":
                pids.append(int(d))
        except (OSError, IndexError, ValueError):
            pass
    return pids or [pgid]


def cmd_idle(a):
    pids = group_pids(a.pgid)
    time.sleep(a.settle)
    idle_rss = proc_kb(pids, "VmRSS")
    idle_pss = proc_pss_kb(pids)
    socks, ok, failed = [], 0, 0
    deadline = time.monotonic() + a.timeout
    for _ in range(a.conns):
        if time.monotonic() > deadline:
            break
        try:
            s = socket.create_connection(("127.0.0.1", a.port), timeout=5)
            st, _ = http_request(s, "GET", a.path, timeout=5)
            socks.append(s)
            if st == 200:
                ok += 1
            else:
                failed += 1
        except OSError:
            failed += 1
    time.sleep(a.settle)
    # Check the connections are still open (the server has not dropped them).
    still_open = 0
    for s in socks:
        try:
            s.setblocking(False)
            data = s.recv(1)
            if data:
                still_open += 1
        except BlockingIOError:
            still_open += 1
        except OSError:
            pass
    conns_rss = proc_kb(pids, "VmRSS")
    conns_pss = proc_pss_kb(pids)
    for s in socks:
        s.close()
    print(json.dumps({"pids": len(pids), "idle_rss_kb": idle_rss, "idle_pss_kb": idle_pss,
                      "conns": a.conns,
                      "conns_ok": ok, "conns_failed": failed, "conns_open_at_measure": still_open,
                      "conns_rss_kb": conns_rss, "conns_pss_kb": conns_pss}))
    return 0


def main():
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="cmd_name", required=True)

    w = sub.add_parser("wait")
    w.add_argument("--port", type=int, required=True)
    w.add_argument("--path", default="/health/readiness")
    w.add_argument("--timeout", type=float, default=30)
    w.add_argument("--pid", type=int, default=0)
    w.set_defaults(fn=cmd_wait)

    pl = sub.add_parser("preload")
    pl.add_argument("--port", type=int, required=True)
    pl.add_argument("--keys", type=int, default=1000)
    pl.add_argument("--size", type=int, default=1024)
    pl.add_argument("--prefix", default="bench")
    pl.add_argument("--threads", type=int, default=16)
    pl.set_defaults(fn=cmd_preload)

    s = sub.add_parser("startup")
    s.add_argument("--port", type=int, required=True)
    s.add_argument("--path", default="/health/readiness")
    s.add_argument("--runs", type=int, default=20)
    s.add_argument("--timeout", type=float, default=20)
    s.add_argument("--env", action="append", help="K=V added to the environment")
    s.add_argument("--log", help="append the server's output here")
    s.add_argument("cmd", nargs=argparse.REMAINDER)
    s.set_defaults(fn=cmd_startup)

    i = sub.add_parser("idle")
    i.add_argument("--pgid", type=int, required=True)
    i.add_argument("--port", type=int, required=True)
    i.add_argument("--path", default="/health/liveness")
    i.add_argument("--conns", type=int, default=1000)
    i.add_argument("--settle", type=float, default=1.0)
    i.add_argument("--timeout", type=float, default=60)
    i.set_defaults(fn=cmd_idle)

    a = p.parse_args()
    if getattr(a, "cmd", None) and a.cmd[:1] == ["--"]:
        a.cmd = a.cmd[1:]
    return a.fn(a)


if __name__ == "__main__":
    sys.exit(main())
