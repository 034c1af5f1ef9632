"""A history checker for hale's key-value API, reusable by any test.

Workload: concurrent writer and reader threads on a few keys through one or
more hale instances (any backend), each operation recorded with its start,
end (time.monotonic) and result. Writers mix unconditional PUT, create-only
PUT (If-None-Match: *), compare-and-swap (GET, then PUT If-Match) and
DELETE; every PUT body is unique, so a read names the write it came from.
The op counts are bounded (HALE_SOAK=1 multiplies them by 10).

check(ops) then verifies what a careful client may rely on (issue 20, F0):
  (a) no read that started after a write's acknowledgement returns a lower
      version than that write's, nor (by the write it names) a value that
      write had replaced, nor a 404 unless a delete could have come between;
  (b) every body read is the one its writer sent, under the version that
      writer was told (a refused write is never visible; one version, one
      body);
  (c) acknowledged versions increase with commit order: a write acknowledged
      before another began has the lower version, a compare-and-swap's new
      version is above the one it matched, and versions are never reused.
Writes whose outcome is unknown (503, 500, connection error) may or may not
have happened: the checks allow both.

Usage:
    w = Workload([a, b], keys=20, writers=8, readers=16, ops=120)
    w.start(); w.wait_ops(500); fault(); w.join()
    problems = check(w.ops); assert not problems, problems[:10]
"""
import http.client
import os
import random
import threading
import time
from dataclasses import dataclass, field

SOAK = os.environ.get("HALE_SOAK", "") not in ("", "0")

UNKNOWN = "unknown"  # the write may or may not have been applied


@dataclass
class Op:
    kind: str            # "put" (any PUT), "delete", "get"
    key: str
    start: float
    end: float = 0.0
    status: object = None  # HTTP status, or None for a connection error/timeout
    version: int = 0     # from the ETag (acked PUT, 200 GET)
    body: bytes = b""    # sent (PUT) or received (200 GET)
    cond: str = ""       # "", "create", "match:<n>"
    client: str = ""
    extra: dict = field(default_factory=dict)

    @property
    def outcome(self):
        """For writes: "ok", "no" (definitely not applied) or UNKNOWN."""
        if self.kind == "put":
            if self.status in (200, 201):
                return "ok"
            if self.status is not None and 400 <= self.status < 500:
                return "no"
            return UNKNOWN
        if self.kind == "delete":
            if self.status == 204:
                return "ok"
            if self.status in (404, 412):
                return "no"
            return UNKNOWN
        return "read"


def _etag_version(h):
    e = h.get("etag") if h else None
    if not e:
        return 0
    e = e.strip()
    if e.startswith("W/"):
        e = e[2:]
    try:
        return int(e.strip('"'))
    except ValueError:
        return -1


class _Client:
    """One keep-alive connection per instance, reopened after any error."""

    def __init__(self, instances, timeout):
        self.instances, self.timeout = instances, timeout
        self.conns = [None] * len(instances)

    def request(self, i, method, path, body=None, headers=None):
        for attempt in range(2):
            c = self.conns[i]
            if c is None:
                h = self.instances[i]
                c = http.client.HTTPConnection("127.0.0.1", h.port, timeout=self.timeout)
                self.conns[i] = c
            try:
                c.request(method, path, body=body, headers=headers or {})
                r = c.getresponse()
                data = r.read()
                hd = {k.lower(): v for k, v in r.getheaders()}
                if hd.get("connection", "").lower() == "close":
                    c.close()
                    self.conns[i] = None
                return r.status, hd, data
            except (OSError, http.client.HTTPException) as e:
                c.close()
                self.conns[i] = None
                # a connection that was idle may have been closed by the
                # server: a GET is safe to retry; a write's outcome is unknown
                if method != "GET" or attempt == 1:
                    return None, {"error": repr(e)}, b""
        return None, {}, b""

    def close(self):
        for c in self.conns:
            if c is not None:
                c.close()


class Workload:
    """writers + readers threads, each doing `ops` operations (x10 with
    HALE_SOAK), on `keys` keys, through `instances` (conftest Hale objects).
    pace: seconds to sleep between a client's operations (0: none);
    backoff: seconds a client waits after a 503 (a careful client backs off;
    a short one keeps sampling the outage). stop() ends it early."""

    def __init__(self, instances, keys=20, writers=8, readers=16, ops=100, timeout=15.0, seed=None,
                 prefix="h", pace=0.0, kinds=None, backoff=0.05):
        self.instances = list(instances)
        self.keys = ["/v1/kv/%s-%d" % (prefix, i) for i in range(keys)]
        self.nwriters, self.nreaders = writers, readers
        self.ops_each = ops * (10 if SOAK else 1)
        self.timeout, self.pace, self.backoff = timeout, pace, backoff
        self.seed = random.randrange(1 << 30) if seed is None else seed
        # weights of the writers' operations
        self.kinds = kinds or {"put": 50, "create": 15, "cas": 20, "delete": 15}
        self.ops = []
        self.lock = threading.Lock()
        self.count = 0
        self.threads = []
        self.stop_flag = threading.Event()

    def _record(self, op):
        with self.lock:
            self.ops.append(op)
            self.count += 1

    def _do(self, cl, name, kind, key, method, body=None, headers=None, cond=""):
        i = random.randrange(len(self.instances))
        op = Op(kind, key, time.monotonic(), cond=cond, client=name, body=body or b"")
        st, hd, data = cl.request(i, method, key, body, headers)
        op.end = time.monotonic()
        op.status = st
        op.extra["instance"] = i
        if st in (200, 201) and method in ("GET", "PUT"):
            op.version = _etag_version(hd)
        if method == "GET" and st == 200:
            op.body = data
        if st == 503:
            op.extra["retry_after"] = hd.get("retry-after")
        self._record(op)
        if st == 503 and self.backoff:
            time.sleep(self.backoff)
        return op

    def _writer(self, wid, rnd):
        cl = _Client(self.instances, self.timeout)
        names, weights = zip(*self.kinds.items())
        try:
            for n in range(self.ops_each):
                if self.stop_flag.is_set():
                    break
                key = rnd.choice(self.keys)
                body = b"w%d-%d-%s" % (wid, n, key.rsplit("/", 1)[1].encode())
                what = rnd.choices(names, weights)[0]
                name = "w%d" % wid
                if what == "put":
                    self._do(cl, name, "put", key, "PUT", body)
                elif what == "create":
                    self._do(cl, name, "put", key, "PUT", body, {"If-None-Match": "*"}, cond="create")
                elif what == "cas":
                    g = self._do(cl, name, "get", key, "GET")
                    if g.status == 200 and g.version > 0:
                        self._do(cl, name, "put", key, "PUT", body, {"If-Match": '"%d"' % g.version},
                                 cond="match:%d" % g.version)
                else:
                    self._do(cl, name, "delete", key, "DELETE")
                if self.pace:
                    time.sleep(self.pace)
        finally:
            cl.close()

    def _reader(self, rid, rnd):
        cl = _Client(self.instances, self.timeout)
        try:
            for _ in range(self.ops_each):
                if self.stop_flag.is_set():
                    break
                self._do(cl, "r%d" % rid, "get", rnd.choice(self.keys), "GET")
                if self.pace:
                    time.sleep(self.pace)
        finally:
            cl.close()

    def start(self):
        for w in range(self.nwriters):
            self.threads.append(threading.Thread(target=self._writer, args=(w, random.Random(self.seed + w)),
                                                 daemon=True))
        for r in range(self.nreaders):
            self.threads.append(threading.Thread(target=self._reader,
                                                 args=(r, random.Random(self.seed + 1000 + r)), daemon=True))
        for t in self.threads:
            t.start()
        return self

    def stop(self):
        """Ends every client after its current operation."""
        self.stop_flag.set()

    def wait_ops(self, n, timeout=120.0):
        """Waits until n operations were recorded (or the workload ended)."""
        t0 = time.monotonic()
        while time.monotonic() - t0 < timeout:
            with self.lock:
                if self.count >= n:
                    return True
            if not any(t.is_alive() for t in self.threads):
                return False
            time.sleep(0.01)
        return False

    def join(self, timeout=300.0):
        deadline = time.monotonic() + timeout
        for t in self.threads:
            t.join(max(0.1, deadline - time.monotonic()))
        alive = [t for t in self.threads if t.is_alive()]
        if alive:
            self.stop_flag.set()
            raise AssertionError("%d workload threads still running after %.0f s" % (len(alive), timeout))
        return self

    def final_reads(self):
        """After the load: one GET of every key on every instance, recorded."""
        cl = _Client(self.instances, self.timeout)
        try:
            for i in range(len(self.instances)):
                for key in self.keys:
                    op = Op("get", key, time.monotonic(), client="final")
                    st, hd, data = cl.request(i, "GET", key)
                    op.end, op.status = time.monotonic(), st
                    op.extra["instance"] = i
                    if st == 200:
                        op.version, op.body = _etag_version(hd), data
                    self._record(op)
        finally:
            cl.close()

    def run(self):
        self.start()
        self.join()
        self.final_reads()
        return self.ops


def summary(ops):
    """Counts by kind and status, for a test's report line."""
    out = {}
    for o in ops:
        k = "%s %s" % (o.kind if not o.cond else "put-" + o.cond.split(":")[0], o.status)
        out[k] = out.get(k, 0) + 1
    return dict(sorted(out.items()))


def _end(o):
    """When the operation's effect was certainly over: a write whose outcome
    is unknown may still commit after its client gave up (a statement the
    server goes on running), so it has no such time."""
    return o.end if o.outcome != UNKNOWN else float("inf")


def check(ops):
    """Returns a list of violations (strings); empty when the history is
    consistent with (a), (b) and (c) above."""
    problems = []
    by_body = {}
    acked_versions = {}
    for o in ops:
        if o.kind == "put":
            by_body[o.body] = o
            if o.outcome == "ok":
                if o.version <= 0:
                    problems.append("(b) acked PUT without a version: %r" % (o,))
                elif o.version in acked_versions:
                    problems.append("(c) version %d acknowledged twice: %r and %r"
                                    % (o.version, acked_versions[o.version], o))
                else:
                    acked_versions[o.version] = o
        if o.kind in ("put", "delete") and not o.cond and o.status == 412:
            problems.append("(b) a write without a precondition answered 412: %r" % (o,))
    keys = sorted({o.key for o in ops})
    seen_version_body = {}
    for key in keys:
        kops = [o for o in ops if o.key == key]
        writes = sorted((o for o in kops if o.kind == "put" and o.outcome == "ok"), key=lambda o: o.end)
        deletes = [o for o in kops if o.kind == "delete" and o.outcome != "no"]
        acked_deletes = sorted((o for o in kops if o.kind == "delete" and o.outcome == "ok"),
                               key=lambda o: o.end)
        reads = [o for o in kops if o.kind == "get" and o.status in (200, 404)]
        # (c) real-time order of acknowledged writes, and CAS above its base
        by_start = sorted(writes, key=lambda o: o.start)
        for i, w1 in enumerate(writes):
            for w2 in by_start:
                if w2.start > w1.end and w2.version <= w1.version:
                    problems.append("(c) %s: write acked at %.6f got v%d, a later write (started %.6f) v%d"
                                    % (key, w1.end, w1.version, w2.start, w2.version))
            if w1.cond.startswith("match:") and w1.version <= int(w1.cond[6:]):
                problems.append("(c) %s: If-Match %s gave v%d" % (key, w1.cond[6:], w1.version))
        for r in reads:
            before = [w for w in writes if w.end < r.start]
            if r.status == 200:
                w_src = by_body.get(r.body)
                # (b) the body names its write, with its version
                if w_src is None or w_src.key != key:
                    problems.append("(b) %s: read a body no write of this key sent: %r" % (key, r))
                    continue
                if w_src.outcome == "no":
                    problems.append("(b) %s: read the body of a refused write (status %s): %r"
                                    % (key, w_src.status, r))
                if w_src.outcome == "ok" and w_src.version != r.version:
                    problems.append("(b) %s: read v%d with the body of the write acked as v%d"
                                    % (key, r.version, w_src.version))
                if w_src.outcome != "ok" and r.version in acked_versions:
                    problems.append("(b) %s: v%d read with another write's body" % (key, r.version))
                prev = seen_version_body.setdefault(r.version, r.body)
                if prev != r.body:
                    problems.append("(b) v%d read with two bodies: %r and %r" % (r.version, prev, r.body))
                if r.end < w_src.start:
                    problems.append("(b) %s: read ended before its value's write began: %r" % (key, r))
                # (a) not lower than an acknowledged earlier write
                if before:
                    top = max(before, key=lambda w: w.version)
                    if r.version < top.version:
                        problems.append("(a) %s: read started %.6f got v%d, after v%d was acked at %.6f"
                                        % (key, r.start, r.version, top.version, top.end))
                    # nor a value that an acknowledged write had replaced
                    newer = [w for w in before if w.start > _end(w_src)]
                    if newer:
                        problems.append("(a) %s: read got %r (write ended %.6f), replaced by a write acked "
                                        "at %.6f before the read began" % (key, r.body, w_src.end, newer[0].end))
                # nor a value an acknowledged delete removed
                gone = [d for d in acked_deletes if d.end < r.start and d.start > _end(w_src)]
                if gone:
                    problems.append("(a) %s: read got %r, deleted at %.6f before the read began"
                                    % (key, r.body, gone[0].end))
            else:  # 404: needs a delete that may come after the latest earlier write
                if before:
                    last = max(before, key=lambda w: w.start)
                    if not any(_end(d) > last.start and d.start < r.end for d in deletes):
                        problems.append("(a) %s: read started %.6f got 404 after v%d was acked at %.6f with "
                                        "no delete in between" % (key, r.start, last.version, last.end))
    return problems
