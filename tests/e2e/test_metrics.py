"""Prometheus metrics, end to end (R: O3 O4).

What these tests prove, against the real binary:
  - a live scrape passes `promtool check metrics` (parse + lint), also right
    after hostile traffic;
  - every required family is there with the right type and labels;
  - every histogram series ends with le="+Inf" equal to _count, buckets are
    cumulative (promtool does not check this: we parse the text ourselves),
    also for scrapes taken while traffic is running;
  - route labels are templates: 500 random paths and 60 random methods add a
    handful of series at most, all with route="unmatched"/method="other";
  - /metrics is on the admin listener only;
  - the access log and the counters agree request for request;
  - a real Prometheus server scrapes hale and sees exactly the traffic sent.

The tools come from the Debian package `prometheus` (`make test-deps`
installs it); a missing tool fails the test, it is never skipped.
"""
import collections
import json
import os
import random
import re
import shutil
import string
import subprocess
import threading
import time
import urllib.parse
import urllib.request

import pytest

from conftest import HALE_BIN, free_port

KNOWN_METHODS = {"GET", "HEAD", "POST", "PUT", "DELETE", "PATCH", "OPTIONS", "other"}


# The admin listener defaults to metrics.host 0.0.0.0, but conftest's
# free_port() only proved the port free on 127.0.0.1: another process's
# socket on 127.0.0.x:PORT (seen here: a TIME_WAIT from 127.0.0.3) then
# makes the admin bind fail and hale exit 1. Until conftest sets it for
# everyone, bind the admin listener where the port was checked.
ADMIN_ON_LOOPBACK = {"APP_METRICS__HOST": "127.0.0.1"}


@pytest.fixture
def hale_factory(hale_factory):
    def make(env=None, **kw):
        return hale_factory(env={**ADMIN_ON_LOOPBACK, **(env or {})}, **kw)
    return make


# ---- a small parser for the text exposition format 0.0.4 ------------------

SAMPLE_RE = re.compile(r"^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})?[ \t]+(\S+)(?:[ \t]+(-?\d+))?$")


def parse_labels(s):
    labels, i, n = {}, 0, len(s)
    while i < n:
        m = re.compile(r"\s*([a-zA-Z_][a-zA-Z0-9_]*)\s*=\s*\"").match(s, i)
        assert m, "bad label text at %d: %r" % (i, s)
        name, i, val = m.group(1), m.end(), []
        while True:
            assert i < n, "unterminated label value: %r" % s
            c = s[i]
            if c == "\\":
                nxt = s[i + 1]
                val.append({"\\": "\\", '"': '"', "n": "\n"}[nxt])
                i += 2
            elif c == '"':
                i += 1
                break
            else:
                val.append(c)
                i += 1
        assert name not in labels, "label %s twice in %r" % (name, s)
        labels[name] = "".join(val)
        while i < n and s[i] in " \t":
            i += 1
        if i < n:
            assert s[i] == ",", "expected ',' at %d in %r" % (i, s)
            i += 1
    return labels


class Scrape:
    def __init__(self, text):
        self.text = text
        self.types, self.helps, self.samples = {}, {}, []
        for line in text.split("\n"):
            if not line:
                continue
            if line.startswith("# HELP "):
                name, _, h = line[7:].partition(" ")
                self.helps[name] = h
            elif line.startswith("# TYPE "):
                name, _, t = line[7:].partition(" ")
                assert name not in self.types, "TYPE twice for " + name
                self.types[name] = t
            elif line.startswith("#"):
                continue
            else:
                m = SAMPLE_RE.match(line)
                assert m, "bad sample line %r" % line
                labels = parse_labels(m.group(2)) if m.group(2) else {}
                self.samples.append((m.group(1), labels, float(m.group(3)), m.group(3)))

    def series(self, name, **match):
        return [(l, v) for n, l, v, _ in self.samples
                if n == name and all(l.get(k) == want for k, want in match.items())]

    def value(self, name, **labels):
        """The value of the series with exactly these labels, or 0 if absent."""
        got = [v for n, l, v, _ in self.samples if n == name and l == labels]
        assert len(got) <= 1, (name, labels, got)
        return got[0] if got else 0.0

    def family_of(self, sample_name):
        for suffix in ("_bucket", "_sum", "_count"):
            base = sample_name[:-len(suffix)]
            if sample_name.endswith(suffix) and self.types.get(base) == "histogram":
                return base
        return sample_name


def scrape(h):
    st, hdrs, body = h.request("GET", "/metrics", admin=True)
    assert st == 200, (st, body[:300])
    assert hdrs["content-type"].startswith("text/plain; version=0.0.4"), hdrs
    return Scrape(body.decode("utf-8"))


def settled_scrape(h):
    """A scrape that already counts every request made so far: a request is
    counted after its response is sent, so the fixture's last readiness
    probe may still be missing from an immediate scrape."""
    def total(s):
        return sum(v for _, v in s.series("http_requests_total"))

    def stable():
        a = scrape(h)
        if not a.series("http_requests_total", route="/health/readiness", status="200"):
            return None
        time.sleep(0.05)
        b = scrape(h)
        return b if total(a) == total(b) else None
    return wait_for(stable, what="a settled scrape")


def wait_for(fn, timeout=10.0, what="condition"):
    deadline = time.time() + timeout
    while True:
        v = fn()
        if v or time.time() > deadline:
            assert v, "timed out waiting for " + what
            return v
        time.sleep(0.05)


def need_tool(name):
    path = shutil.which(name)
    if not path:
        pytest.fail("%s not found: install the Debian package prometheus (make test-deps)" % name)
    return path


def check_histograms(s):
    """Every histogram series: cumulative buckets, ending le="+Inf" == _count,
    a _sum; returns the number of series checked."""
    checked = 0
    for fam, typ in s.types.items():
        if typ != "histogram":
            continue
        groups = collections.OrderedDict()
        for n, l, v, raw in s.samples:
            if n == fam + "_bucket":
                assert "le" in l, (fam, l)
                key = tuple(sorted((k, x) for k, x in l.items() if k != "le"))
                groups.setdefault(key, []).append((l["le"], v))
        counts = {tuple(sorted(l.items())): v for n, l, v, _ in s.samples if n == fam + "_count"}
        sums = {tuple(sorted(l.items())) for n, l, v, _ in s.samples if n == fam + "_sum"}
        assert set(groups) == set(counts) == sums, (fam, set(groups), set(counts), sums)
        for key, buckets in groups.items():
            les = [le for le, _ in buckets]
            assert les[-1] == "+Inf", (fam, key, les)
            assert les.count("+Inf") == 1
            bounds = [float(le) for le in les[:-1]]
            assert bounds == sorted(bounds) and len(set(bounds)) == len(bounds), (fam, les)
            values = [v for _, v in buckets]
            assert values == sorted(values), ("buckets not cumulative", fam, key, buckets)
            assert values[-1] == counts[key], ("+Inf != _count", fam, key, values[-1], counts[key])
            checked += 1
    return checked


def drive_mixed(h):
    """Traffic that touches every kind of answer, including hostile ones."""
    assert h.request("PUT", "/v1/kv/m1", b"x")[0] == 201
    assert h.request("GET", "/v1/kv/m1")[0] == 200
    assert h.request("GET", "/v1/kv/m2")[0] == 404
    assert h.request("DELETE", "/v1/kv/m1")[0] == 204
    assert h.request("POST", "/v1/kv/m1", b"")[0] == 405
    assert h.request("BREW", "/v1/kv/m1")[0] == 501
    assert h.request("GET", '/odd/"quote"/\\back')[0] == 400  # outside RFC 3986: bad_target
    h.raw(b"GET /v1/kv/\xff\xfe\x01 HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n")
    h.raw(b"GET / HTTP/1.1\r\nHost: a\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n")
    h.raw(b"GET / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: gzip\r\n\r\n")


# ---- O4: promtool -----------------------------------------------------------

def test_promtool_check_metrics_clean(hale):  # R: O4
    promtool = need_tool("promtool")
    drive_mixed(hale)
    for text in (scrape(hale).text, hale.request("GET", "/metrics", admin=True)[2].decode()):
        p = subprocess.run([promtool, "check", "metrics"], input=text, capture_output=True,
                           text=True, timeout=60)
        assert p.returncode == 0 and p.stdout.strip() == "" and p.stderr.strip() == "", \
            (p.returncode, p.stdout, p.stderr)


# ---- O3: required families --------------------------------------------------

REQUIRED = {
    "http_requests_total": ("counter", {"method", "route", "status"}),
    "http_request_duration_seconds": ("histogram", {"method", "route"}),
    "http_requests_in_flight": ("gauge", set()),
    "process_cpu_seconds_total": ("counter", set()),
    "process_resident_memory_bytes": ("gauge", set()),
    "process_virtual_memory_bytes": ("gauge", set()),
    "process_open_fds": ("gauge", set()),
    "process_max_fds": ("gauge", set()),
    "process_start_time_seconds": ("gauge", set()),
    "hale_build_info": ("gauge", {"version", "revision", "compiler"}),
}


def test_required_metrics_present_with_types_and_labels(hale):  # R: O3
    t0 = time.time()
    assert hale.request("PUT", "/v1/kv/req", b"x")[0] == 201
    s = wait_for(lambda: (lambda s: s if s.series("http_requests_total", method="PUT") else None)(
        scrape(hale)), what="the PUT in http_requests_total")
    for name, (typ, labels) in REQUIRED.items():
        assert s.types.get(name) == typ, (name, s.types.get(name))
        assert s.helps.get(name), "no HELP for " + name
        sample_names = {name} if typ != "histogram" else {name + "_bucket", name + "_sum",
                                                          name + "_count"}
        found = [(n, l) for n, l, _, _ in s.samples if n in sample_names]
        assert found, "no sample for " + name
        for n, l in found:
            want = labels | ({"le"} if n.endswith("_bucket") else set())
            assert set(l) == want, (n, l)
    # values make sense
    v = {n: val for n, l, val, _ in s.samples if not l}
    assert v["process_resident_memory_bytes"] > 1e5
    assert v["process_virtual_memory_bytes"] >= v["process_resident_memory_bytes"]
    assert 0 < v["process_open_fds"] <= v["process_max_fds"]
    assert v["process_cpu_seconds_total"] >= 0
    start = v["process_start_time_seconds"]
    assert t0 - 120 < start <= time.time() + 2, (start, t0)
    assert v["http_requests_in_flight"] >= 0
    (bl, bv), = s.series("hale_build_info")
    assert bv == 1
    ver = subprocess.run([HALE_BIN, "--version"], capture_output=True, text=True).stdout
    assert bl["version"] and bl["version"] in ver and bl["revision"] in ver, (bl, ver)
    assert bl["compiler"]
    # latency buckets from 100 us to 10 s
    les = [l["le"] for n, l, _, _ in s.samples if n == "http_request_duration_seconds_bucket"
           and l["method"] == "PUT"]
    assert float(les[0]) == 0.0001 and float(les[-2]) == 10 and les[-1] == "+Inf", les


def test_in_flight_counts_requests_in_progress(hale):  # R: O3
    # a slow upload keeps one request in flight on the main listener
    import socket
    s = socket.create_connection(("127.0.0.1", hale.port), timeout=5)
    s.sendall(b"PUT /v1/kv/slow HTTP/1.1\r\nHost: a\r\nContent-Length: 10\r\n\r\nabc")
    try:
        wait_for(lambda: scrape(hale).value("http_requests_in_flight") >= 1, what="in flight >= 1")
        s.sendall(b"defghij")
        assert s.recv(100).startswith(b"HTTP/1.1 201")
    finally:
        s.close()
    wait_for(lambda: scrape(hale).value("http_requests_in_flight") == 0, what="in flight back to 0")


# ---- O3: histogram invariants -----------------------------------------------

def test_histograms_end_with_inf_equal_to_count(hale):  # R: O3
    drive_mixed(hale)
    s = scrape(hale)
    assert check_histograms(s) >= 3
    # and while requests are being counted concurrently
    stop = threading.Event()
    errors = []

    def load(n):
        try:
            while not stop.is_set():
                hale.request("GET", "/v1/kv/load%d" % n)
                hale.request("GET", "/nowhere/%d" % n)
        except Exception as e:  # noqa: BLE001 -- reported below
            errors.append(e)

    threads = [threading.Thread(target=load, args=(i,)) for i in range(3)]
    for t in threads:
        t.start()
    try:
        for _ in range(25):
            assert check_histograms(scrape(hale)) >= 3
    finally:
        stop.set()
        for t in threads:
            t.join()
    assert not errors, errors


# ---- O3: cardinality --------------------------------------------------------

def _rand(rng, n=10):
    return "".join(rng.choice(string.ascii_lowercase + string.digits) for _ in range(n))


def test_random_paths_do_not_grow_series(hale):  # R: O3
    rnd = random.Random(4)
    # warm up every status that the scan will produce, then measure
    c = hale.conn()

    def req(method, path):
        c.request(method, path)
        r = c.getresponse()
        r.read()
        return r.status

    before = settled_scrape(hale)
    tokens = set()
    shapes = ["/{t}", "/{t}/{t}", "/v1/{t}", "/v2/kv/{t}", "/v1/kv/{t}/{t}/x", "/health/{t}",
              "/metrics/{t}", "/{t}.php", "/.git/{t}", "/v1/kv/{t}/", "/{t}%2f{t}", "/{t}?a={t}"]
    statuses = collections.Counter()
    for i in range(500):
        shape = rnd.choice(shapes)
        path = shape
        while "{t}" in path:
            t = "scan" + _rand(rnd)
            tokens.add(t)
            path = path.replace("{t}", t, 1)
        statuses[req(rnd.choice(["GET", "HEAD", "POST", "DELETE"]), path)] += 1
    c.close()
    assert set(statuses) <= {404, 405}, statuses
    # random methods fold into "other"
    for _ in range(60):
        m = "X" + _rand(rnd, 6).upper()
        tokens.add(m)
        assert hale.request(m, "/" + _rand(rnd))[0] == 501
    # random keys on a real route share its template
    for _ in range(100):
        k = "key" + _rand(rnd)
        tokens.add(k)
        assert hale.request("GET", "/v1/kv/" + k)[0] == 404

    def done():
        s = scrape(hale)
        n = sum(v for l, v in s.series("http_requests_total")) - \
            sum(v for l, v in before.series("http_requests_total"))
        return s if n >= 660 else None
    after = wait_for(done, what="every scan request counted")

    new = {n: [l for m, l, _, _ in after.samples if m == n] for n in
           ("http_requests_total", "http_request_duration_seconds_count")}
    old = {n: [l for m, l, _, _ in before.samples if m == n] for n in new}
    for n in new:
        added = [l for l in new[n] if l not in old[n]]
        assert len(added) <= 12, (n, added)  # a few (method, status) pairs, not 660 series
        for l in added:
            assert l["route"] in ("unmatched", "/v1/kv/{key}"), l
            assert l["method"] in KNOWN_METHODS, l
    routes = {l["route"] for l in new["http_requests_total"]}
    assert all(r == "unmatched" or r.startswith("/") for r in routes), routes
    # no token of the scan appears anywhere in the exposition
    leaked = [t for t in tokens if t in after.text]
    assert leaked == [], leaked[:5]
    # the unmatched 404s are under one label set per method
    unmatched_404 = after.series("http_requests_total", route="unmatched", status="404")
    assert {l["method"] for l, _ in unmatched_404} <= {"GET", "HEAD", "POST", "DELETE"}
    assert len(after.text) < len(before.text) + 20000, (len(before.text), len(after.text))


# ---- O3: admin listener only -------------------------------------------------

def test_metrics_only_on_admin_port(hale):  # R: O3
    st, hdrs, body = hale.request("GET", "/metrics")
    assert st == 404, st
    assert json.loads(body)["error"] == "not_found"
    assert "# TYPE" not in body.decode()
    st, hdrs, body = hale.request("GET", "/metrics", admin=True)
    assert st == 200 and b"# TYPE http_requests_total counter" in body
    # and the admin listener is not a second way into the API
    assert hale.request("GET", "/v1/kv/x", admin=True)[0] == 404
    assert hale.request("PUT", "/v1/kv/x", b"v", admin=True)[0] in (404, 405)


def test_admin_listener_can_be_disabled(hale_factory):  # R: O3
    h = hale_factory(env={"APP_METRICS__ENABLED": "false"})
    with pytest.raises(OSError):
        h.request("GET", "/metrics", admin=True, timeout=1)
    assert h.request("GET", "/metrics")[0] == 404


# ---- O2/O3: the access log and the counters agree ----------------------------

def test_access_log_and_metrics_agree(hale_factory):  # R: O2 O3
    h = hale_factory(env={"LOG_FORMAT": "json"})
    before = settled_scrape(h)
    plan = ([("PUT", "/v1/kv/ag%d" % i, b"x") for i in range(7)] +
            [("PUT", "/v1/kv/ag%d" % i, b"y") for i in range(3)] +
            [("GET", "/v1/kv/ag%d" % i, None) for i in range(5)] +
            [("GET", "/v1/kv/missing%d" % i, None) for i in range(4)] +
            [("DELETE", "/v1/kv/ag%d" % i, None) for i in range(2)] +
            [("GET", "/unmatched/%d" % i, None) for i in range(3)] +
            [("BREW", "/v1/kv/x", None)] * 2 + [("POST", "/v1/kv/x", b"")] +
            [("GET", "/health/liveness", None)] * 2)
    ids = set()
    for i, (m, p, b) in enumerate(plan):
        rid = "agree-%d" % i
        _, hdrs, _ = h.request(m, p, b, {"X-Request-Id": rid})
        assert hdrs["x-request-id"] == rid
        ids.add(rid)

    def log_counts():
        got = collections.Counter()
        seen = set()
        for line in h.output().splitlines():
            if '"target":"access"' not in line:
                continue
            o = json.loads(line)
            if o["request_id"] in ids and o["listener"] == "main":
                seen.add(o["request_id"])
                m = o["method"] if o["method"] in KNOWN_METHODS else "other"
                got[(m, o["route"], str(o["status"]))] += 1
        return got if seen == ids else None

    logged = wait_for(log_counts, what="every access line")
    assert sum(logged.values()) == len(plan)

    def metric_delta():
        s = scrape(h)
        d = collections.Counter()
        for l, v in s.series("http_requests_total"):
            k = (l["method"], l["route"], l["status"])
            d[k] = int(v - before.value("http_requests_total", **l))
        d = +d  # drop zeros
        return (s, d) if d == logged else None

    got = wait_for(metric_delta, what="metrics equal to the access log")
    s, delta = got
    assert delta == logged
    # the histogram counts the same requests per (method, route)
    per_route = collections.Counter()
    for (m, r, _), n in logged.items():
        per_route[(m, r)] += n
    for (m, r), n in per_route.items():
        was = before.value("http_request_duration_seconds_count", method=m, route=r)
        assert s.value("http_request_duration_seconds_count", method=m, route=r) - was == n, (m, r)


# ---- O4: a real Prometheus server --------------------------------------------

class Prometheus:
    def __init__(self, target_port, workdir):
        self.bin = need_tool("prometheus")
        self.port = free_port()
        self.dir = workdir
        cfg = os.path.join(workdir, "prometheus.yml")
        with open(cfg, "w") as f:
            f.write("global:\n"
                    "  scrape_interval: 1s\n"
                    "  scrape_timeout: 1s\n"
                    "  evaluation_interval: 1s\n"
                    "scrape_configs:\n"
                    "  - job_name: hale\n"
                    "    static_configs:\n"
                    "      - targets: ['127.0.0.1:%d']\n" % target_port)
        self.log_path = os.path.join(workdir, "prometheus.log")
        self.log = open(self.log_path, "wb")
        self.proc = subprocess.Popen(
            [self.bin, "--config.file=" + cfg, "--storage.tsdb.path=" + os.path.join(workdir, "data"),
             "--web.listen-address=127.0.0.1:%d" % self.port, "--log.level=warn"],
            stdout=self.log, stderr=subprocess.STDOUT, cwd=workdir)

    def output(self):
        self.log.flush()
        with open(self.log_path, "rb") as f:
            return f.read().decode("utf-8", "replace")[-4000:]

    def get(self, path, **params):
        url = "http://127.0.0.1:%d%s" % (self.port, path)
        if params:
            url += "?" + urllib.parse.urlencode(params)
        with urllib.request.urlopen(url, timeout=5) as r:
            return r.status, r.read()

    def wait_ready(self, timeout=30):
        deadline = time.time() + timeout
        while time.time() < deadline:
            assert self.proc.poll() is None, "prometheus exited:\n" + self.output()
            try:
                if self.get("/-/ready")[0] == 200:
                    return
            except OSError:
                pass
            time.sleep(0.1)
        raise AssertionError("prometheus not ready:\n" + self.output())

    def query(self, q):
        _, body = self.get("/api/v1/query", query=q)
        d = json.loads(body)
        assert d["status"] == "success", d
        return d["data"]["result"]

    def stop(self):
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.log.close()


@pytest.fixture
def prometheus_for(tmp_path):
    started = []

    def make(port):
        p = Prometheus(port, str(tmp_path))
        started.append(p)
        p.wait_ready()
        return p

    yield make
    for p in started:
        p.stop()


def test_live_prometheus_scrapes_hale(hale, prometheus_for):  # R: O4
    prom = prometheus_for(hale.admin_port)
    n = 23
    for i in range(n):
        assert hale.request("PUT", "/v1/kv/prom%d" % i, b"v")[0] == 201
    sel = 'http_requests_total{job="hale",method="PUT",route="/v1/kv/{key}",status="201"}'
    state = {}

    def seen():
        up = prom.query('up{job="hale"}')
        got = prom.query(sel)
        state.update(up=up, got=got)
        return (len(up) == 1 and up[0]["value"][1] == "1" and len(got) == 1 and
                float(got[0]["value"][1]) == n)

    deadline = time.time() + 30
    while not seen():
        assert time.time() < deadline, ("prometheus did not see the traffic", state,
                                         prom.output())
        time.sleep(0.5)
    # the target is healthy and the scrape raised no error
    _, body = prom.get("/api/v1/targets")
    active = json.loads(body)["data"]["activeTargets"]
    assert len(active) == 1 and active[0]["health"] == "up", active
    assert active[0]["lastError"] == "", active
    assert active[0]["labels"]["instance"] == "127.0.0.1:%d" % hale.admin_port
    # the series carries only the template: no raw key became a label
    assert not prom.query('http_requests_total{route=~".*prom[0-9].*"}')
    # the graph the issue asks for: rate() needs an increase between two
    # scrapes, so send more once the first value is in
    for i in range(5):
        assert hale.request("PUT", "/v1/kv/prom%d" % (n + i), b"v")[0] == 201

    def rate_ok():
        got = prom.query(sel)
        r = prom.query('sum(rate(%s[1m]))' % sel)
        return (got and float(got[0]["value"][1]) == n + 5 and r and
                float(r[0]["value"][1]) > 0)
    wait_for(rate_ok, timeout=30, what="count n+5 and rate(http_requests_total[1m]) > 0")
    # and the build info is there too, as Prometheus saw it
    bi = prom.query('hale_build_info{job="hale"}')
    assert len(bi) == 1 and bi[0]["value"][1] == "1" and bi[0]["metric"]["version"]
