"""Logs, end to end (R: O1 O2).

What these tests prove, against the real binary:
  - LOG_FORMAT=json: every line on stdout is one JSON object with ts (RFC 3339
    UTC with milliseconds, ending in Z), level, target, msg and typed fields;
    nothing goes to stderr. Without it, the same events are readable text.
  - LOG_LEVEL=<default>,<target>=<level> raises or lowers one target only.
  - Every request hale sees gets exactly one access line (method, route
    template, path, status, bytes_in/bytes_out, duration_ms, remote,
    request_id, trace_id, listener), and request_id equals the X-Request-Id
    response header: taken from the request when sane, generated otherwise.
  - Hostile request targets (quotes, backslashes, control characters, invalid
    UTF-8, forged JSON) still give exactly one valid UTF-8 JSON line each.
  - APP_LOG__ACCESS=false removes the access lines, not the metrics.

Known limit (see the report in docs/observability.md): requests that the
engine (libmicrohttpd) refuses on its own before hale sees them, e.g.
HTTP/1.1 without Host, get no access line and no X-Request-Id.
"""
import datetime
import json
import os
import re
import socket
import subprocess
import time

import pytest

TS_RE = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z$")
TEXT_RE = re.compile(r"^(\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z) "
                     r"(ERROR| WARN| INFO|DEBUG|TRACE) (?:([A-Za-z0-9_.:-]+): )?(.*)$")
LEVELS = {"error", "warn", "info", "debug", "trace"}
GEN_ID_RE = re.compile(r"^[0-9a-f]{32}$")


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
TRACE = "4bf92f3577b34da6a3ce929d0e0e4736"
TRACEPARENT = "00-%s-00f067aa0ba902b7-01" % TRACE


# ---- helpers --------------------------------------------------------------

def raw_output(h):
    """Everything hale wrote so far, as bytes (no lossy decoding)."""
    if not h.log.closed:
        h.log.flush()
    with open(h.log_path, "rb") as f:
        return f.read()


def json_lines(h):
    """Every line, strictly: valid UTF-8, one JSON object per line."""
    out = []
    for n, line in enumerate(raw_output(h).split(b"\n")):
        if not line:
            continue
        text = line.decode("utf-8")  # strict: raises on invalid UTF-8
        obj = json.loads(text)       # strict: raw control characters refused
        assert isinstance(obj, dict), "line %d is not an object: %r" % (n, line)
        out.append(obj)
    return out


def access(objs, listener="main"):
    return [o for o in objs if o.get("target") == "access" and
            (listener is None or o.get("listener") == listener)]


def wait_for(fn, timeout=10.0, what="condition"):
    """Polls fn() until truthy; the access line is written after the response
    has been sent, so a client can see the response before the line."""
    deadline = time.time() + timeout
    while True:
        v = fn()
        if v or time.time() > deadline:
            assert v, "timed out waiting for " + what
            return v
        time.sleep(0.02)


def raw_request(h, data, timeout=2.0):
    s = socket.create_connection(("127.0.0.1", h.port), timeout=timeout)
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


def header_of(resp, name):
    head = resp.split(b"\r\n\r\n", 1)[0].decode("latin-1")
    for line in head.split("\r\n")[1:]:
        k, _, v = line.partition(":")
        if k.strip().lower() == name.lower():
            return v.strip()
    return None


def lines_with_id(objs, rid):
    return [o for o in objs if o.get("request_id") == rid]


# ---- O1: format -----------------------------------------------------------

def test_json_lines_on_stdout_nothing_on_stderr(hale_factory, monkeypatch, tmp_path):  # R: O1
    # The fixture merges stderr into stdout; split them for this one start.
    err_path = tmp_path / "stderr"
    err = open(err_path, "wb")
    real_popen = subprocess.Popen

    def popen(*a, **kw):
        if kw.get("stderr") is subprocess.STDOUT:
            kw["stderr"] = err
        return real_popen(*a, **kw)

    monkeypatch.setattr(subprocess, "Popen", popen)
    t0 = time.time()
    # A zone far from UTC: a timestamp written in local time would be hours off.
    h = hale_factory(env={"LOG_FORMAT": "json", "TZ": "XST+07"})
    monkeypatch.undo()
    st, hdrs, _ = h.request("PUT", "/v1/kv/fmt", b"abc")
    assert st == 201
    wait_for(lambda: lines_with_id(json_lines(h), hdrs["x-request-id"]), what="access line")
    h.check_clean_exit()
    t1 = time.time()
    err.close()
    assert err_path.read_bytes() == b"", "hale wrote to stderr: %r" % err_path.read_bytes()[:500]

    objs = json_lines(h)
    assert len(objs) >= 5
    for o in objs:
        assert {"ts", "level", "target", "msg"} <= set(o), o
        assert list(o)[:4] == ["ts", "level", "target", "msg"], o
        assert TS_RE.match(o["ts"]), o["ts"]
        ts = datetime.datetime.strptime(o["ts"], "%Y-%m-%dT%H:%M:%S.%fZ").replace(
            tzinfo=datetime.timezone.utc).timestamp()
        assert t0 - 2 <= ts <= t1 + 2, "ts %s is not UTC now (TZ=XST+07)" % o["ts"]
        assert o["level"] in LEVELS, o
        assert isinstance(o["target"], str) and isinstance(o["msg"], str)
    # fields keep their types
    listening = [o for o in objs if o["target"] == "service" and o["msg"] == "listening"]
    assert len(listening) == 1, objs
    assert listening[0]["port"] == h.port and listening[0]["admin_port"] == h.admin_port
    assert isinstance(listening[0]["version"], str)
    # timestamps are in order (one process, one clock)
    stamps = [o["ts"] for o in objs]
    assert stamps == sorted(stamps)
    assert objs[-1]["msg"] == "stopped cleanly" and objs[-1]["exit_code"] == 0


@pytest.mark.parametrize("fmt", [None, "text", "TEXT"])
def test_text_format_is_readable_and_not_json(hale_factory, fmt):  # R: O1
    env = {"LOG_FORMAT": fmt} if fmt else {}
    h = hale_factory(env=env)
    st, hdrs, _ = h.request("GET", "/v1/kv/absent?x=1")
    assert st == 404
    rid = hdrs["x-request-id"]
    wait_for(lambda: rid in h.output(), what="access line")
    h.check_clean_exit()
    lines = [l for l in raw_output(h).decode("utf-8").split("\n") if l]
    parsed = []
    for l in lines:
        assert not l.startswith("{"), "json line in text mode: " + l
        m = TEXT_RE.match(l)
        assert m, "not a text log line: %r" % l
        parsed.append(m.groups())
    assert any(g[2] == "service" and g[3].startswith("listening ") and
               (" port=%d " % h.port) in g[3] for g in parsed), lines
    acc = [g for g in parsed if g[2] == "access" and ("request_id=" + rid) in g[3]]
    assert len(acc) == 1, lines
    body = acc[0][3]
    assert acc[0][1] == " INFO" and body.startswith("request ")
    for kv in ("method=GET", "route=/v1/kv/{key}", 'path="/v1/kv/absent?x=1"', "status=404",
               "bytes_in=0", "remote=127.0.0.1", "listener=main"):
        assert (" " + kv) in body, (kv, body)
    assert re.search(r" duration_ms=\d+(\.\d+)?(e-?\d+)? ", body), body
    # a value holding '=' or a space is quoted, so k=v pairs stay splittable


def test_bad_log_format_or_level_is_a_config_error():  # R: O1
    from conftest import HALE_BIN, ROOT
    base = {k: v for k, v in os.environ.items() if not k.startswith("APP_")}
    base.pop("LOG_LEVEL", None)
    base.pop("LOG_FORMAT", None)
    base["HALE_CONFIG_DIR"] = os.path.join(ROOT, "config")
    for env, word in ((({"LOG_FORMAT": "xml"}), "xml"),
                      ({"LOG_LEVEL": "info,store=loud"}, "loud"),
                      ({"LOG_LEVEL": "info,store=debug,store=info"}, "store")):
        p = subprocess.run([HALE_BIN, "config", "--check"], env={**base, **env},
                           capture_output=True, text=True, timeout=20)
        assert p.returncode == 78, (env, p.stdout, p.stderr)
        assert word in p.stderr, (env, p.stderr)


# ---- O1: per-target levels ------------------------------------------------

def _refused_request(h):
    """An unknown method: 501, plus a debug event on target "http"."""
    st, hdrs, _ = h.request("BREW", "/pot")
    assert st == 501
    return hdrs["x-request-id"]


def test_level_override_raises_one_target_only(hale_factory):  # R: O1
    # "http" is the target that has a debug event today ("request refused").
    h = hale_factory(env={"LOG_FORMAT": "json", "LOG_LEVEL": "info,http=debug"})
    rid = _refused_request(h)
    wait_for(lambda: lines_with_id(json_lines(h), rid), what="access line")
    h.check_clean_exit()
    objs = json_lines(h)
    debug = [o for o in objs if o["level"] == "debug"]
    assert debug, "no debug line although http=debug"
    assert {o["target"] for o in debug} == {"http"}, debug
    assert any(o["msg"] == "request refused" and o["reason"] == "unknown_method" for o in debug)
    assert all(o["level"] != "trace" for o in objs)


def test_store_debug_does_not_raise_other_targets(hale_factory):  # R: O1
    # LOG_LEVEL=info,store=debug: accepted, "store" keeps its info events, and
    # no other target gets louder ("store.pg" is a sub-target: covered). NOTE:
    # the SQLite store has no debug event (the only one under store is
    # store.pg's "server notice", PostgreSQL only), so this cannot show a
    # store debug line; the mechanism itself is shown with http=debug above.
    h = hale_factory(env={"LOG_FORMAT": "json", "LOG_LEVEL": "info,store=debug"})
    rid = _refused_request(h)
    wait_for(lambda: lines_with_id(json_lines(h), rid), what="access line")
    h.check_clean_exit()
    objs = json_lines(h)
    assert any(o["target"] == "store" and o["level"] == "info" for o in objs), objs
    leaked = [o for o in objs if o["level"] in ("debug", "trace") and
              o["target"] != "store" and not o["target"].startswith("store.")]
    assert leaked == [], leaked


def test_level_override_can_lower_default(hale_factory):  # R: O1
    # Default warn silences info everywhere except the target raised to info.
    h = hale_factory(env={"LOG_FORMAT": "json", "LOG_LEVEL": "warn,access=info"})
    _, hdrs, _ = h.request("GET", "/health/liveness")
    rid = hdrs["x-request-id"]
    wait_for(lambda: lines_with_id(json_lines(h), rid), what="access line")
    h.check_clean_exit()
    objs = json_lines(h)
    info = [o for o in objs if o["level"] == "info"]
    assert info and {o["target"] for o in info} == {"access"}, info
    assert not any(o["msg"] == "listening" for o in objs)


def test_level_off_for_access_and_error_default(hale_factory):  # R: O1
    h = hale_factory(env={"LOG_FORMAT": "json", "LOG_LEVEL": "error,access=off"})
    _refused_request(h)
    h.request("GET", "/v1/kv/nothing")
    time.sleep(0.3)
    h.check_clean_exit()
    objs = json_lines(h)
    assert [o for o in objs if o["level"] != "error"] == [], objs


# ---- O2: access log -------------------------------------------------------

def test_access_line_fields(hale_factory):  # R: O2
    h = hale_factory(env={"LOG_FORMAT": "json"})
    st, hdrs, body = h.request("PUT", "/v1/kv/acc?src=test", b"hello",
                               {"X-Request-Id": "req-abc.123:x_y", "traceparent": TRACEPARENT})
    assert st == 201
    assert hdrs["x-request-id"] == "req-abc.123:x_y"
    line = wait_for(lambda: lines_with_id(json_lines(h), "req-abc.123:x_y"), what="access line")
    assert len(line) == 1
    o = line[0]
    assert o["level"] == "info" and o["target"] == "access" and o["msg"] == "request"
    assert o["method"] == "PUT"
    assert o["route"] == "/v1/kv/{key}"
    assert o["path"] == "/v1/kv/acc?src=test"
    assert o["status"] == 201
    assert o["bytes_in"] == 5
    assert o["bytes_out"] == len(body)
    assert isinstance(o["duration_ms"], (int, float)) and 0 <= o["duration_ms"] < 60000
    assert o["remote"] == "127.0.0.1"
    assert o["trace_id"] == TRACE
    assert o["listener"] == "main"
    # a GET of the same key: body size out, nothing in
    st, hdrs, body = h.request("GET", "/v1/kv/acc")
    assert st == 200 and body == b"hello"
    o = wait_for(lambda: lines_with_id(json_lines(h), hdrs["x-request-id"]), what="line")[0]
    assert (o["status"], o["bytes_in"], o["bytes_out"], o["trace_id"]) == (200, 0, 5, None)
    # an unmatched path keeps the raw path but the route is the shared label
    st, hdrs, _ = h.request("GET", "/no/such/thing")
    assert st == 404
    o = wait_for(lambda: lines_with_id(json_lines(h), hdrs["x-request-id"]), what="line")[0]
    assert (o["route"], o["path"], o["status"]) == ("unmatched", "/no/such/thing", 404)


def test_exactly_one_access_line_per_request(hale_factory):  # R: O2
    h = hale_factory(env={"LOG_FORMAT": "json", "APP_SERVER__MAX_BODY_BYTES": "1024"})
    ids = []

    def rid():
        ids.append("one-%03d" % len(ids))
        return {"X-Request-Id": ids[-1]}

    # ten requests on one keep-alive connection
    c = h.conn()
    for i in range(10):
        c.request("PUT" if i % 2 == 0 else "GET", "/v1/kv/ka%d" % (i // 2),
                  body=b"v" if i % 2 == 0 else None, headers=rid())
        r = c.getresponse()
        r.read()
        assert r.status in (200, 201)
        assert r.getheader("X-Request-Id") == ids[-1]
    c.close()
    # one of each kind of answer, each on its own connection
    expect = {}
    for method, path, body, want in (
            ("GET", "/v1/kv/nothing", None, 404),
            ("GET", "/nowhere", None, 404),
            ("POST", "/v1/kv/x", b"", 405),
            ("BREW", "/v1/kv/x", None, 501),
            ("DELETE", "/v1/kv/ka0", None, 204),
            ("HEAD", "/health/liveness", None, 200),
            ("PUT", "/v1/kv/big", b"x" * 2048, 413)):
        hd = rid()
        st, hdrs, _ = h.request(method, path, body, hd)
        assert st == want, (method, path, st)
        assert hdrs["x-request-id"] == ids[-1]
        expect[ids[-1]] = (method, want)
    wait_for(lambda: all(lines_with_id(json_lines(h), i) for i in ids), what="all access lines")
    h.check_clean_exit()  # nothing can be written later than this
    objs = json_lines(h)
    for i in ids:
        got = lines_with_id(objs, i)
        assert len(got) == 1, (i, got)
        assert got[0]["target"] == "access"
        if i in expect:
            assert (got[0]["method"], got[0]["status"]) == expect[i], got[0]
    refused = lines_with_id(objs, [i for i in expect if expect[i][1] == 413][0])[0]
    assert refused["reject"] == "body_too_large"


def test_request_id_taken_when_sane_generated_otherwise(hale_factory):  # R: O2
    h = hale_factory(env={"LOG_FORMAT": "json"})
    sane = ["a", "A-b_c.d:e", "x" * 64, "0123456789abcdef"]
    for v in sane:
        st, hdrs, _ = h.request("GET", "/health/liveness", headers={"X-Request-Id": v})
        assert hdrs["x-request-id"] == v
    insane = [b"x" * 65, b"has space", b'quote"d', b"semi;colon", b"new\\line",
              b"caf\xc3\xa9", b"\xff\xfe", b"a/b", b"<script>", b""]
    generated = []
    for v in insane:
        resp = raw_request(h, b"GET /health/liveness HTTP/1.1\r\nHost: a\r\nX-Request-Id: " + v +
                           b"\r\nConnection: close\r\n\r\n")
        assert resp.startswith(b"HTTP/1.1 200"), resp[:200]
        got = header_of(resp, "X-Request-Id")
        assert got and GEN_ID_RE.match(got), (v, got)
        generated.append(got)
    for _ in range(30):  # no header at all
        _, hdrs, _ = h.request("GET", "/health/liveness")
        assert GEN_ID_RE.match(hdrs["x-request-id"])
        generated.append(hdrs["x-request-id"])
    assert len(set(generated)) == len(generated), "generated request ids repeat"
    wait_for(lambda: all(lines_with_id(json_lines(h), g) for g in generated + sane),
             what="every id in the access log")
    objs = json_lines(h)
    for g in generated + sane:
        assert len(lines_with_id(objs, g)) == 1, g


@pytest.mark.parametrize("tp,logged", [
    (TRACEPARENT, TRACE),
    ("00-%s-00f067aa0ba902b7-00" % TRACE, TRACE),                # not sampled: still logged
    ("00-00000000000000000000000000000000-00f067aa0ba902b7-01", None),  # all-zero trace id
    ("00-%s-0000000000000000-01" % TRACE, None),                 # all-zero parent id
    ("00-%s-00f067aa0ba902b7-01" % TRACE.upper(), None),         # uppercase hex
    ("00-%s-00f067aa0ba902b7-01" % TRACE[:-1], None),            # short trace id
    ("garbage", None),
    ("00_%s_00f067aa0ba902b7_01" % TRACE, None),                 # wrong separators
    ("", None),
])
def test_traceparent_trace_id_logged(hale_factory, tp, logged):  # R: O2
    h = hale_factory(env={"LOG_FORMAT": "json"})
    st, hdrs, _ = h.request("GET", "/v1/kv/t", headers={"traceparent": tp})
    assert st == 404
    o = wait_for(lambda: lines_with_id(json_lines(h), hdrs["x-request-id"]), what="line")[0]
    assert o["trace_id"] == logged, (tp, o)
    # the request id is independent of the trace id
    assert GEN_ID_RE.match(hdrs["x-request-id"])


# W3C Trace Context: version ff is invalid; version 00 is exactly 55
# characters; trace-flags are two lowercase hex digits. A header that breaks
# these MUST be ignored. hale accepts them today (http_engine.c set_ids checks
# only the two ids and a minimum length); see BUG in docs/observability.md.
@pytest.mark.parametrize("tp", [
    "ff-%s-00f067aa0ba902b7-01" % TRACE,        # version ff is forbidden
    "zz-%s-00f067aa0ba902b7-01" % TRACE,        # version not hex
    "00-%s-00f067aa0ba902b7-zz" % TRACE,        # flags not hex
    "00-%s-00f067aa0ba902b7-01-extra" % TRACE,  # version 00 must be 55 chars
])
def test_traceparent_invalid_per_w3c_is_ignored(hale_factory, tp):  # R: O2
    h = hale_factory(env={"LOG_FORMAT": "json"})
    _, hdrs, _ = h.request("GET", "/v1/kv/t", headers={"traceparent": tp})
    o = wait_for(lambda: lines_with_id(json_lines(h), hdrs["x-request-id"]), what="line")[0]
    assert o["trace_id"] is None, (tp, o)


# ---- O1/O2: hostile input gives valid lines ---------------------------------

NASTY_TARGETS = [
    # percent-encoded: logged as sent (the raw request target)
    (b"/v1/kv/%22q%22%5C%0A%0D%00%1B%7F%FF%FE%C0%AF", "/v1/kv/%22q%22%5C%0A%0D%00%1B%7F%FF%FE%C0%AF"),
    (b"/x%0a%7b%22level%22%3a%22error%22%7d", "/x%0a%7b%22level%22%3a%22error%22%7d"),
    # raw bytes outside RFC 3986 in the request line: refused by the parser
    # (400 bad_target) before any header is read, so they never reach a log
    # field; the log writer's escaping of such bytes is unit-tested
    (b'/v1/kv/a"b\\c', '/v1/kv/a"b\\c'),
    (b'/a","level":"error","target":"forged","msg":"x', '/a","level":"error","target":"forged","msg":"x'),
    (b"/ctl\x01\x1b[31mred\x1b[0m\x7f", "/ctl\x01\x1b[31mred\x1b[0m\x7f"),
    (b"/utf8/caf\xc3\xa9/\xe2\x80\xa8/\xf0\x9f\x98\x80", "/utf8/caf\u00e9/\u2028/\U0001F600"),
    (b"/bad/\xff\xfe/\xc0\xaf/\xed\xa0\x80/\xf8\x88\x80\x80\x80/end", None),  # invalid UTF-8
    (b"/v1/kv/" + b"\xff" * 200 + b"\x01" * 200, None),
]


def _send_nasty(h):
    """Sends each target; returns [(request id, expected path or None, raw)]."""
    sent = []
    for i, (target, expect) in enumerate(NASTY_TARGETS):
        rid = "nasty-%d" % i
        resp = raw_request(h, b"GET " + target + b" HTTP/1.1\r\nHost: a\r\nX-Request-Id: " +
                           rid.encode() + b"\r\nConnection: close\r\n\r\n")
        assert resp.startswith(b"HTTP/1.1 "), (target, resp[:200])
        if b"%" not in target:
            assert resp.startswith(b"HTTP/1.1 400 ") and b'"bad_target"' in resp, (target, resp[:300])
            continue
        assert header_of(resp, "X-Request-Id") == rid, (target, resp[:300])
        sent.append((rid, expect, target))
    return sent


def test_nasty_paths_still_give_valid_json_lines(hale_factory):  # R: O1 O2
    h = hale_factory(env={"LOG_FORMAT": "json"})
    sent = _send_nasty(h)
    wait_for(lambda: all(lines_with_id(json_lines(h), r) for r, _, _ in sent), what="lines")
    h.check_clean_exit()
    raw = raw_output(h)
    assert not re.search(rb"[\x00-\x09\x0b-\x1f]", raw), "raw control byte in the JSON output"
    objs = json_lines(h)  # strict UTF-8 and strict JSON for every line
    assert not [o for o in objs if o.get("target") == "forged"]
    for rid, expect, target in sent:
        got = lines_with_id(objs, rid)
        assert len(got) == 1, (target, got)
        o = got[0]
        assert (o["level"], o["target"], o["msg"]) == ("info", "access", "request"), o
        if expect is not None:
            assert o["path"] == expect, (target, o["path"])
        else:
            # invalid bytes become U+FFFD; the valid parts survive
            assert "\ufffd" in o["path"], o["path"]
            assert o["path"].startswith(target[:4].decode())
            assert not re.search("[\ud800-\udfff]", o["path"])


def test_nasty_paths_text_format_one_line_each(hale_factory):  # R: O1 O2
    h = hale_factory()
    sent = _send_nasty(h)
    wait_for(lambda: all(("request_id=" + r) in h.output() for r, _, _ in sent), what="lines")
    h.check_clean_exit()
    raw = raw_output(h)
    raw.decode("utf-8")  # strict: no invalid UTF-8 reaches a terminal
    assert not re.search(rb"[\x00-\x09\x0b-\x1f\x7f]", raw), "raw control byte in the text output"
    lines = raw.decode().split("\n")
    for rid, _, target in sent:
        got = [l for l in lines if (" request_id=%s " % rid) in l]
        assert len(got) == 1, (target, got)
        assert TEXT_RE.match(got[0]).group(3) == "access", got[0]
    for l in lines:
        if l:
            assert TEXT_RE.match(l), "forged or broken line: %r" % l


# ---- O2: access log off -----------------------------------------------------

def test_access_log_can_be_turned_off(hale_factory):  # R: O2
    h = hale_factory(env={"LOG_FORMAT": "json", "APP_LOG__ACCESS": "false"})
    for i in range(5):
        assert h.request("PUT", "/v1/kv/off%d" % i, b"x")[0] == 201
    assert h.request("GET", "/metrics", admin=True)[0] == 200
    # the requests are still counted (metrics do not depend on the access log)
    def counted():
        body = h.request("GET", "/metrics", admin=True)[2].decode()
        m = re.search(r'^http_requests_total\{method="PUT",route="/v1/kv/\{key\}",status="201"\} (\d+)$',
                      body, re.M)
        return m and int(m.group(1)) == 5
    wait_for(counted, what="PUT counted in metrics")
    h.check_clean_exit()
    objs = json_lines(h)
    assert [o for o in objs if o["target"] == "access"] == []
    assert any(o["msg"] == "listening" for o in objs)


# ---- O2: requests the engine refuses on its own -----------------------------

# libmicrohttpd answers some malformed requests itself, before hale's handler
# runs (HTTP/1.1 without Host, Content-Length: -1). The engine does call
# hale's URI and completion callbacks for them, but on_completed() skips them
# (r->started is 0), so they get no access line and are in no counter: a
# flood of them is invisible. The patch in the report logs them with status 0
# and reject "engine_refused". (An unknown HTTP version, answered 505, never
# reaches any hale callback: out of reach without a different engine.)
ENGINE_REFUSED = [
    b"GET /engine/nohost HTTP/1.1\r\nConnection: close\r\n\r\n",
    b"GET /engine/badlength HTTP/1.1\r\nHost: a\r\nContent-Length: -1\r\n\r\n",
]


def test_engine_refused_requests_are_logged(hale_factory):  # R: O2
    h = hale_factory(env={"LOG_FORMAT": "json"})
    for req in ENGINE_REFUSED:
        resp = raw_request(h, req)
        assert resp.startswith(b"HTTP/1.1 400 "), resp[:100]
    assert h.request("GET", "/health/liveness")[0] == 200  # still serving
    time.sleep(0.5)
    h.check_clean_exit()
    paths = [o.get("path") for o in access(json_lines(h))]
    for p in ("/engine/nohost", "/engine/badlength"):
        assert paths.count(p) == 1, (p, paths)
