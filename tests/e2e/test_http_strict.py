"""hale's own HTTP/1.1 engine, end to end (issue 14; R: E1 E2 E3 E5 Y9 Y1).

Every shape listed at the top of issue 14 (request desync through an empty
header name, NUL truncation, lenient grammar, refusals that reached nobody)
is sent as raw bytes with a pipelined follower request in the SAME send.
For each one the test asserts:
  - the exact status and a JSON body whose "error" is the reason;
  - `Connection: close` on the response, and the server ending the
    connection after it (FIN, or a reset once the full response is in);
  - exactly one status line in everything received: the follower (a GET of
    a key holding a marker value) is never answered, and never reaches hale
    (no access line carries its request id);
  - hale_http_rejected_total{reason} went up by exactly one;
  - exactly one new access line with that `reject` reason and status.
Then the positive side (keep-alive, pipelining, HTTP/1.0, HEAD, Expect:
100-continue, OPTIONS *, Date, Cache-Control) and the deadlines
(server.header_timeout, server.body_timeout, server.idle_timeout).

Assumptions (reasons and settings named by the lead for the new engine):
the access line's refusal field is `reject` (as in test_framing.py and
test_logging.py); the header-field limit is 100 field lines; durations in
APP_SERVER__*_TIMEOUT accept plain milliseconds and "1s".
Timing assertions are about ordering and eventual behaviour with generous
bounds: the machine is shared and loaded.
"""
import json
import random
import re
import select
import socket
import time

import pytest

from conftest import Hale

KEY = "strict-test-key-7"
AUTH = b"Authorization: Bearer " + KEY.encode() + b"\r\n"
AUTH_H = {"Authorization": "Bearer " + KEY}
MARKER = b"FOLLOWER-MARKER-5d1e"
MAX_BODY = 1024
STATUS_RE = re.compile(rb"HTTP/\d\.\d \d{3} ")
IMF_DATE_RE = re.compile(r"^(Mon|Tue|Wed|Thu|Fri|Sat|Sun), \d\d (Jan|Feb|Mar|Apr|May|Jun|Jul|Aug|Sep|Oct|Nov|Dec)"
                         r" \d{4} \d\d:\d\d:\d\d GMT$")


# ---------------------------------------------------------------- helpers --

def wait_for(fn, timeout=10.0, every=0.02, what="condition"):
    deadline = time.monotonic() + timeout
    while True:
        v = fn()
        if v:
            return v
        if time.monotonic() > deadline:
            raise AssertionError("timed out waiting for " + what)
        time.sleep(every)


def exchange(port, data, timeout=3.0, chunks=()):
    """Sends data (then each of chunks), reads until the server ends the
    connection or `timeout` passes with nothing new. Returns (bytes, how)
    where how is "fin" (recv returned b""), "reset" or "open"."""
    s = socket.create_connection(("127.0.0.1", port), timeout=timeout)
    out = b""
    how = "open"
    try:
        try:
            s.sendall(data)
            for c in chunks:
                s.sendall(c)
        except (BrokenPipeError, ConnectionResetError, socket.timeout):
            pass  # the server already refused (or stopped reading); read what it sent
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                chunk = s.recv(65536)
            except socket.timeout:
                break
            except ConnectionResetError:
                how = "reset"
                break
            if not chunk:
                how = "fin"
                break
            out += chunk
        return out, how
    finally:
        s.close()


def status_lines(raw):
    return STATUS_RE.findall(raw)


def parse_one(raw, head_only=False):
    """(status, headers lower-case -> value, body, rest) of the first response
    in raw; headers repeated are joined with ", "."""
    head, sep, rest = raw.partition(b"\r\n\r\n")
    assert sep, "no complete response head in %r" % raw[:400]
    lines = head.decode("latin-1").split("\r\n")
    st = int(lines[0].split(" ")[1])
    hd = {}
    for l in lines[1:]:
        k, _, v = l.partition(":")
        k = k.strip().lower()
        hd[k] = (hd[k] + ", " + v.strip()) if k in hd else v.strip()
    if head_only or st in (100, 204, 304):
        return st, hd, b"", rest
    n = int(hd.get("content-length", "0"))
    return st, hd, rest[:n], rest[n:]


def parse_all(raw, n, head_only=()):
    out = []
    for i in range(n):
        st, hd, body, raw = parse_one(raw, head_only=i in head_only)
        out.append((st, hd, body))
    return out, raw


def read_response(sock, head_only=False, timeout=5.0):
    """Reads exactly one response from sock (status, headers, body)."""
    sock.settimeout(timeout)
    buf = b""
    while b"\r\n\r\n" not in buf:
        c = sock.recv(65536)
        if not c:
            raise ConnectionError("closed before a response: %r" % buf)
        buf += c
    st, hd, body, rest = parse_one(buf, head_only=True)
    if head_only or st in (100, 204, 304):
        return st, hd, b"", rest
    n = int(hd.get("content-length", "0"))
    while len(rest) < n:
        c = sock.recv(65536)
        if not c:
            break
        rest += c
    return st, hd, rest[:n], rest[n:]


def closed_by_server(sock, timeout=3.0):
    """True when the next recv shows the end of the connection (FIN or RST)
    within timeout; False when data arrives or nothing happens."""
    sock.settimeout(timeout)
    try:
        return sock.recv(1) == b""
    except ConnectionResetError:
        return True
    except socket.timeout:
        return False


def log_objs(h):
    objs = []
    for line in h.output().splitlines():
        line = line.strip()
        if line.startswith("{"):
            try:
                objs.append(json.loads(line))
            except ValueError:
                pass
    return objs


def access_lines(h):
    return [o for o in log_objs(h) if o.get("target") == "access" and o.get("listener") == "main"]


def rejected(h, reason):
    st, _, body = h.request("GET", "/metrics", admin=True)
    assert st == 200
    m = re.search(r'^hale_http_rejected_total\{reason="%s"\} (\d+(?:\.\d+)?)$' % re.escape(reason),
                  body.decode(), re.M)
    return float(m.group(1)) if m else 0.0


def sync_log(h):
    """Waits until every earlier request reached the log (a fresh request's
    access line appears after theirs)."""
    rid = "sync-%d" % random.randrange(1 << 40)
    h.request("GET", "/health/liveness", headers={"X-Request-Id": rid})
    wait_for(lambda: any(o.get("request_id") == rid for o in log_objs(h)), timeout=5,
             what="access line of " + rid)


def follower(case):
    """The pipelined request that must never be answered: a GET of a key
    holding MARKER, with a request id naming the case."""
    return (b"GET /v1/kv/follower HTTP/1.1\r\nHost: h\r\n" + AUTH +
            b"X-Request-Id: follower-" + case.encode() + b"\r\n\r\n")


def kv_status(h, key):
    return h.request("GET", "/v1/kv/" + key, headers=AUTH_H)[0]


@pytest.fixture(scope="module")
def hs():
    """One instance for the shape tests: it must survive all of them."""
    h = Hale(env={"LOG_FORMAT": "json", "API_KEY": KEY,
                  "APP_SERVER__MAX_BODY_BYTES": str(MAX_BODY)})
    try:
        assert h.request("PUT", "/v1/kv/follower", MARKER, AUTH_H)[0] in (200, 201)
    except BaseException:
        h.stop()
        raise
    yield h
    assert h.proc.poll() is None, "hale died during the strict-HTTP suite:\n" + h.output()[-4000:]
    h.check_clean_exit()


# ---------------------------------------------------------- the shapes --

def rq(method=b"GET", target=b"/health/liveness", version=b"HTTP/1.1", head=b"", body=b"",
       host=b"Host: h\r\n", auth=True):
    return (method + b" " + target + b" " + version + b"\r\n" + host + (AUTH if auth else b"") +
            head + b"\r\n" + body)


def desync(name_line, key):
    # issue 14, first bullet: the empty name ended the engine's header block
    # and the DELETE behind it ran as a second request
    return (b"GET /health/liveness HTTP/1.1\r\nHost: x\r\n" + name_line + b"\r\n"
            b"DELETE /v1/kv/" + key + b" HTTP/1.1\r\nHost: x\r\n" + AUTH + b"\r\n")


CHUNKS_OVER = b"".join(b"200\r\n" + b"y" * 0x200 + b"\r\n" for _ in range(8)) + b"0\r\n\r\n"
MANY_HEADERS = b"".join(b"X-H-%d: 1\r\n" % i for i in range(100))  # + Host + Authorization

# (case, bytes, status, accepted reasons, key that must still exist, key that must not exist)
SHAPES = [
    # request desync through an empty header name
    ("empty_name_colon_v", desync(b": v", b"desync-a"), 400, {"bad_header_name"}, "desync-a", None),
    ("empty_name_bare_colon", desync(b":", b"desync-b"), 400, {"bad_header_name"}, "desync-b", None),
    # NUL truncation
    ("nul_in_content_length",
     rq(b"PUT", b"/v1/kv/nul-cl", head=b"Content-Length: 1\x002\r\n", body=b"xy"),
     400, {"bad_header_value"}, None, "nul-cl"),
    ("nul_in_transfer_encoding",
     rq(b"PUT", b"/v1/kv/nul-te", head=b"Transfer-Encoding: chunked\x00, gzip\r\n", body=b"1\r\nx\r\n0\r\n\r\n"),
     400, {"bad_header_value"}, None, "nul-te"),
    ("nul_in_authorization",
     rq(b"GET", b"/v1/kv/follower", auth=False, head=b"Authorization: Bearer " + KEY.encode() + b"\x00junk\r\n"),
     400, {"bad_header_value"}, None, None),
    ("nul_in_target",
     rq(b"PUT", b"/v1/kv/zz\x00Hello", head=b"Content-Length: 2\r\n", body=b"hi"),
     400, {"bad_target"}, None, "zz"),
    # lenient grammar
    ("bare_lf_request_line", b"GET /health/liveness HTTP/1.1\nHost: h\r\n" + AUTH + b"\r\n",
     400, {"bare_lf"}, None, None),
    ("bare_lf_header_line", b"GET /health/liveness HTTP/1.1\r\nHost: h\nX-A: 1\r\n\r\n",
     400, {"bare_lf"}, None, None),
    ("bare_lf_end_of_head", b"GET /health/liveness HTTP/1.1\r\nHost: h\r\n\n",
     400, {"bare_lf"}, None, None),
    ("bare_lf_chunk_size_line",
     rq(b"PUT", b"/v1/kv/lf-chunk", head=b"Transfer-Encoding: chunked\r\n", body=b"5\nhello\r\n0\r\n\r\n"),
     400, {"bare_lf", "bad_chunk"}, None, "lf-chunk"),
    ("bare_lf_last_chunk_line",
     rq(b"PUT", b"/v1/kv/lf-chunk2", head=b"Transfer-Encoding: chunked\r\n", body=b"5\r\nhello\r\n0\n\r\n"),
     400, {"bare_lf", "bad_chunk"}, None, "lf-chunk2"),
    ("bare_cr_request_line", b"GET /health/liveness HTTP/1.1\rHost: h\r\n\r\n",
     400, {"bare_cr"}, None, None),
    ("bare_cr_header_line_end", b"GET /health/liveness HTTP/1.1\r\nHost: h\rX-A: 1\r\n\r\n",
     400, {"bare_cr", "bad_header_value"}, None, None),
    ("double_space_after_method", b"GET  /health/liveness HTTP/1.1\r\nHost: h\r\n\r\n",
     400, {"bad_request_line"}, None, None),
    ("double_space_before_version", b"GET /health/liveness  HTTP/1.1\r\nHost: h\r\n\r\n",
     400, {"bad_request_line"}, None, None),
    ("space_in_target", b"GET /v1/kv/a b HTTP/1.1\r\nHost: h\r\n" + AUTH + b"\r\n",
     400, {"bad_request_line"}, None, None),
    ("absolute_form_host_mismatch", rq(b"GET", b"http://other.example/v1/kv/follower"),
     400, {"host_mismatch"}, None, None),
    # refusals that said nothing
    ("header_12000_bytes", rq(head=b"X-Big: " + b"v" * 12000 + b"\r\n"),
     431, {"headers_too_large"}, None, None),
    ("query_10k", rq(target=b"/health/liveness?q=" + b"a" * 10240),
     414, {"uri_too_long"}, None, None),
    ("too_many_headers", rq(head=MANY_HEADERS), 431, {"too_many_headers"}, None, None),
    ("chunked_over_max_body",
     rq(b"PUT", b"/v1/kv/chunk-big", head=b"Transfer-Encoding: chunked\r\n", body=CHUNKS_OVER),
     413, {"chunked_body_too_large"}, None, "chunk-big"),
    ("missing_host", b"GET /health/liveness HTTP/1.1\r\n\r\n", 400, {"missing_host"}, None, None),
    # versions, methods
    ("version_2_0", rq(version=b"HTTP/2.0"), 505, {"unsupported_version"}, None, None),
    ("version_3_1", rq(version=b"HTTP/3.1"), 505, {"unsupported_version"}, None, None),
    ("version_1_1x", rq(version=b"HTTP/1.1x"), 400, {"bad_version"}, None, None),
    ("version_lowercase", rq(version=b"http/1.1"), 400, {"bad_version"}, None, None),
    ("method_lowercase", rq(method=b"get"), 501, {"unknown_method"}, None, None),
    ("method_not_a_token", rq(method=b"GE(T"), 400, {"bad_request_line"}, None, None),
    # header fields
    ("obs_fold", rq(head=b"X-Note: a\r\n b\r\n"), 400, {"obsolete_line_folding"}, None, None),
    ("space_before_colon", rq(head=b"X-A : 1\r\n"), 400, {"bad_header_name"}, None, None),
    # Content-Length
    ("cl_plus", rq(b"PUT", b"/v1/kv/cl-plus", head=b"Content-Length: +5\r\n", body=b"hello"),
     400, {"bad_content_length"}, None, "cl-plus"),
    ("cl_hex", rq(b"PUT", b"/v1/kv/cl-hex", head=b"Content-Length: 0x5\r\n", body=b"hello"),
     400, {"bad_content_length"}, None, "cl-hex"),
    ("cl_list", rq(b"PUT", b"/v1/kv/cl-list", head=b"Content-Length: 5,5\r\n", body=b"hello"),
     400, {"bad_content_length"}, None, "cl-list"),
    ("cl_two_identical",
     rq(b"PUT", b"/v1/kv/cl-two", head=b"Content-Length: 5\r\nContent-Length: 5\r\n", body=b"hello"),
     400, {"bad_content_length", "duplicate_content_length"}, None, "cl-two"),
    # Transfer-Encoding, Expect
    ("te_gzip_chunked",
     rq(b"PUT", b"/v1/kv/te-gz", head=b"Transfer-Encoding: gzip, chunked\r\n", body=b"0\r\n\r\n"),
     501, {"unsupported_transfer_encoding"}, None, "te-gz"),
    ("expect_other", rq(head=b"Expect: something-else\r\n"), 417, {"expectation_failed"}, None, None),
]


@pytest.mark.parametrize("case,data,status,reasons,keep,absent", SHAPES, ids=[s[0] for s in SHAPES])
def test_shape_refused_closed_follower_unanswered(hs, case, data, status, reasons, keep,
                                                  absent):  # R: E1 E5 Y9 Y1
    if keep:
        assert hs.request("PUT", "/v1/kv/" + keep, b"keep", AUTH_H)[0] in (200, 201)
    before = {r: rejected(hs, r) for r in reasons}
    n_access = {r: len([o for o in access_lines(hs) if o.get("reject") == r]) for r in reasons}
    out, how = exchange(hs.port, data + follower(case))
    sts = status_lines(out)
    assert sts, "no answer at all (%s) to %r:\ngot %r" % (how, data[:300], out[:600])
    assert len(sts) == 1, "more than one status line: %r" % out[:1500]
    st, hd, body, rest = parse_one(out)
    assert st == status, (case, out[:600])
    assert hd.get("content-type", "").startswith("application/json"), out[:600]
    doc = json.loads(body)
    assert doc.get("error") in reasons, (case, doc)
    reason = doc["error"]
    assert "close" in hd.get("connection", "").lower(), out[:600]
    assert rest == b"", "bytes after the refusal: %r" % rest[:300]
    assert how in ("fin", "reset"), "connection left open after the refusal of %s" % case
    assert MARKER not in out
    # counted once, logged once
    wait_for(lambda: rejected(hs, reason) >= before[reason] + 1, timeout=5, what="rejected counter")
    assert rejected(hs, reason) == before[reason] + 1
    sync_log(hs)
    lines = [o for o in access_lines(hs) if o.get("reject") == reason]
    assert len(lines) == n_access[reason] + 1, lines[-3:]
    assert lines[-1]["status"] == status, lines[-1]
    # the follower never reached hale
    assert not [o for o in log_objs(hs) if o.get("request_id") == "follower-" + case]
    if keep:
        assert kv_status(hs, keep) == 200, "the request behind the refusal ran: %s is gone" % keep
    if absent:
        assert kv_status(hs, absent) == 404, "%s was stored" % absent
    # still serving
    assert hs.request("GET", "/v1/kv/follower", headers=AUTH_H)[2] == MARKER


SPLIT_CASES = [c for c in SHAPES if c[0] in (
    "empty_name_colon_v", "nul_in_target", "bare_lf_chunk_size_line", "bare_cr_request_line",
    "cl_two_identical", "obs_fold", "missing_host")]


def send_bytewise(port, data, gap=0.002, timeout=3.0):
    """Sends data one byte per TCP segment (TCP_NODELAY, a pause between
    bytes), then reads until the connection ends or timeout."""
    s = socket.create_connection(("127.0.0.1", port), timeout=timeout)
    s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    out, how = b"", "open"
    try:
        for i in range(len(data)):
            try:
                s.send(data[i:i + 1])
            except (BrokenPipeError, ConnectionResetError):
                break
            time.sleep(gap)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                c = s.recv(65536)
            except socket.timeout:
                break
            except ConnectionResetError:
                how = "reset"
                break
            if not c:
                how = "fin"
                break
            out += c
        return out, how
    finally:
        s.close()


@pytest.mark.parametrize("case,data,status,reasons,keep,absent", SPLIT_CASES, ids=[c[0] for c in SPLIT_CASES])
def test_shape_refused_the_same_when_split_bytewise(hs, case, data, status, reasons, keep,
                                                    absent):  # R: E1 E5
    """The parser is incremental: the same bytes one per segment give the same
    refusal."""
    if keep:
        assert hs.request("PUT", "/v1/kv/" + keep, b"keep", AUTH_H)[0] in (200, 201)
    out, how = send_bytewise(hs.port, data + follower(case + "-split"))
    assert len(status_lines(out)) == 1, out[:800]
    st, hd, body, rest = parse_one(out)
    assert st == status, out[:400]
    assert json.loads(body)["error"] in reasons, body
    assert rest == b"" and how in ("fin", "reset"), (rest[:200], how)
    if keep:
        assert kv_status(hs, keep) == 200
    if absent:
        assert kv_status(hs, absent) == 404


def test_valid_chunked_put_split_bytewise_with_extensions_and_trailers(hs):  # R: E1
    data = (b"PUT /v1/kv/split-chunked HTTP/1.1\r\nHost: h\r\n" + AUTH +
            b"Transfer-Encoding: chunked\r\nConnection: close\r\n\r\n"
            b"5;name=value;flag\r\nhello\r\n6;q=\"a b\"\r\n world\r\n0\r\nX-Trailer: t\r\n\r\n")
    out, how = send_bytewise(hs.port, data)
    assert status_lines(out) == [b"HTTP/1.1 201 "], out[:400]
    assert hs.request("GET", "/v1/kv/split-chunked", headers=AUTH_H)[2] == b"hello world"


def test_oversized_chunk_extension_refused(hs):  # R: E1 E5
    """Chunk extensions are bounded: a 16 KB extension on a chunk-size line is
    refused with a 4xx JSON error and a close, the body never stored."""
    ext = b";x=" + b"e" * 16384
    data = rq(b"PUT", b"/v1/kv/big-ext", head=b"Transfer-Encoding: chunked\r\n",
              body=b"5" + ext + b"\r\nhello\r\n0\r\n\r\n") + follower("big-ext")
    out, how = exchange(hs.port, data)
    assert len(status_lines(out)) == 1, out[:600]
    st, hd, body, rest = parse_one(out)
    print("16 KB chunk extension: %d %r" % (st, body))
    assert 400 <= st < 500 and st not in (404, 405), out[:400]
    assert json.loads(body)["error"]
    assert "close" in hd.get("connection", "").lower()
    assert how in ("fin", "reset") and MARKER not in out
    assert kv_status(hs, "big-ext") == 404


def test_refusal_of_large_head_ends_with_fin_not_reset(hs):  # R: E5 Y9
    """RFC 9112 9.6: a server that closes with unread bytes pending makes the
    kernel send a reset, which can destroy its own response before the
    client reads it. The 431 for a 12,000-byte header with a follower
    behind it must arrive whole and the connection end with a FIN."""
    data = rq(head=b"X-Big: " + b"v" * 12000 + b"\r\n") + follower("fin")
    out, how = exchange(hs.port, data)
    assert status_lines(out) == [b"HTTP/1.1 431 "], out[:400]
    assert json.loads(parse_one(out)[2])["error"] == "headers_too_large"
    assert how == "fin", "connection ended with %s, not a FIN" % how


def test_header_fields_at_the_limit_accepted(hs):  # R: E1
    # 100 field lines in all (Host, Authorization, Connection and 97 more)
    head = b"".join(b"X-H-%d: 1\r\n" % i for i in range(97)) + b"Connection: close\r\n"
    out, _ = exchange(hs.port, rq(target=b"/v1/kv/follower", head=head))
    assert status_lines(out) == [b"HTTP/1.1 200 "], out[:400]


@pytest.mark.parametrize("authority", ["h", "127.0.0.1:{port}"])
def test_absolute_form_routed_by_path(hs, authority):  # R: E1
    a = authority.format(port=hs.port).encode()
    for key, want in ((b"follower", 200), (b"no-such-key", 404)):
        origin, _ = exchange(hs.port, rq(target=b"/v1/kv/" + key, host=b"Host: " + a + b"\r\n",
                                         head=b"Connection: close\r\n"))
        absolute, _ = exchange(hs.port, rq(target=b"http://" + a + b"/v1/kv/" + key,
                                           host=b"Host: " + a + b"\r\n", head=b"Connection: close\r\n"))
        so, _, bo, _ = parse_one(origin)
        sa, _, ba, _ = parse_one(absolute)
        assert so == want, origin[:300]
        assert (sa, ba) == (so, bo), absolute[:300]


# ------------------------------------------------------ positive behaviour --

class Reader:
    """Reads whole responses from a socket, keeping what is left over."""

    def __init__(self, sock, timeout=5.0):
        self.s, self.buf = sock, b""
        sock.settimeout(timeout)

    def _fill(self):
        c = self.s.recv(65536)
        if not c:
            raise ConnectionError("closed; buffered %r" % self.buf[:300])
        self.buf += c

    def response(self, head_only=False):
        while b"\r\n\r\n" not in self.buf:
            self._fill()
        st, hd, _, rest = parse_one(self.buf, head_only=True)
        n = 0 if head_only or st in (100, 204, 304) else int(hd.get("content-length", "0"))
        while len(rest) < n:
            self._fill()
            rest = self.buf.partition(b"\r\n\r\n")[2]
        self.buf = rest[n:]
        return st, hd, rest[:n]


def test_three_pipelined_gets_answered_in_order(hs):  # R: E2
    for i in range(3):
        assert hs.request("PUT", "/v1/kv/pipe-%d" % i, b"value-%d" % i, AUTH_H)[0] in (200, 201)
    data = b"".join(b"GET /v1/kv/pipe-%d HTTP/1.1\r\nHost: h\r\n" % i + AUTH +
                    b"X-Request-Id: pipe-%d\r\n\r\n" % i for i in (2, 0, 1))
    s = socket.create_connection(("127.0.0.1", hs.port), timeout=5)
    try:
        s.sendall(data)
        r = Reader(s)
        got = []
        for _ in range(3):
            st, hd, body = r.response()
            got.append((st, hd.get("x-request-id"), body, hd.get("connection")))
        assert got == [(200, "pipe-2", b"value-2", None), (200, "pipe-0", b"value-0", None),
                       (200, "pipe-1", b"value-1", None)], got
        assert r.buf == b""
        # the connection is still open and usable
        s.sendall(b"GET /health/liveness HTTP/1.1\r\nHost: h\r\n\r\n")
        assert r.response()[0] == 200
    finally:
        s.close()


def test_300_pipelined_requests_in_one_send_in_order(hs):  # R: E2
    assert hs.request("PUT", "/v1/kv/pipe-big", b"b" * 1000, AUTH_H)[0] in (200, 201)
    n = 300
    data = b"".join(b"GET /v1/kv/pipe-big HTTP/1.1\r\nHost: h\r\n" + AUTH + b"X-Request-Id: p%d\r\n\r\n" % i
                    for i in range(n))
    s = socket.create_connection(("127.0.0.1", hs.port), timeout=10)
    try:
        s.sendall(data)   # nothing read until all is sent: the server must apply backpressure
        r = Reader(s, timeout=10)
        got = []
        for _ in range(n):
            st, hd, body = r.response()
            got.append((st, hd.get("x-request-id"), len(body)))
    finally:
        s.close()
    assert got == [(200, "p%d" % i, 1000) for i in range(n)], [g for g in got if g[0] != 200][:5]


def inner_request(case):
    return (b"GET /v1/kv/follower HTTP/1.1\r\nHost: h\r\n" + AUTH +
            b"X-Request-Id: inner-" + case.encode() + b"\r\n\r\n")


def with_body(head, case, chunked=False):
    inner = inner_request(case)
    if chunked:
        return head + b"Transfer-Encoding: chunked\r\n\r\n" + b"%x\r\n" % len(inner) + inner + b"\r\n0\r\n\r\n"
    return head + b"Content-Length: %d\r\n\r\n" % len(inner) + inner


EARLY = [
    ("401_cl", b"PUT /v1/kv/early HTTP/1.1\r\nHost: h\r\nAuthorization: Bearer nope\r\n", False, 401),
    ("401_chunked", b"PUT /v1/kv/early HTTP/1.1\r\nHost: h\r\nAuthorization: Bearer nope\r\n", True, 401),
    ("401_expect_body_sent_anyway",
     b"PUT /v1/kv/early HTTP/1.1\r\nHost: h\r\nAuthorization: Bearer nope\r\nExpect: 100-continue\r\n", False, 401),
    ("404_cl", b"PUT /nowhere HTTP/1.1\r\nHost: h\r\n" + AUTH, False, 404),
    ("405_cl", b"POST /v1/kv/early HTTP/1.1\r\nHost: h\r\n" + AUTH, False, 405),
    ("405_chunked", b"POST /v1/kv/early HTTP/1.1\r\nHost: h\r\n" + AUTH, True, 405),
    ("get_with_body", b"GET /health/liveness HTTP/1.1\r\nHost: h\r\n", False, 200),
    ("head_with_body", b"HEAD /health/liveness HTTP/1.1\r\nHost: h\r\n", False, 200),
    ("delete_with_body", b"DELETE /v1/kv/early-none HTTP/1.1\r\nHost: h\r\n" + AUTH, False, 404),
]


@pytest.mark.parametrize("case,head,chunked,status", EARLY, ids=[e[0] for e in EARLY])
def test_body_of_early_answer_never_runs_as_a_request(hs, case, head, chunked, status):  # R: E2 Y9
    """A request answered without its body being used (401, 404, 405, a GET
    with a body) carries a whole request as its body: the server either
    discards the body or closes, but never runs it."""
    out, how = exchange(hs.port, with_body(head, case, chunked), timeout=2.0)
    assert len(status_lines(out)) == 1, out[:800]
    assert out.startswith(b"HTTP/1.1 %d " % status), out[:300]
    assert MARKER not in out
    sync_log(hs)
    assert not [o for o in log_objs(hs) if o.get("request_id") == "inner-" + case]


def test_http10_without_keepalive_closes(hs):  # R: E2
    out, how = exchange(hs.port, b"GET /health/liveness HTTP/1.0\r\n\r\n")
    assert status_lines(out) == [b"HTTP/1.1 200 "] or status_lines(out) == [b"HTTP/1.0 200 "], out
    st, hd, body, rest = parse_one(out)
    assert st == 200 and json.loads(body) == {"status": "live"}
    assert how == "fin", "HTTP/1.0 without keep-alive: connection %s after the response" % how
    assert "keep-alive" not in hd.get("connection", "").lower()


def test_http10_keepalive_stays_open(hs):  # R: E2
    s = socket.create_connection(("127.0.0.1", hs.port), timeout=5)
    try:
        s.sendall(b"GET /health/liveness HTTP/1.0\r\nConnection: keep-alive\r\n\r\n")
        st, hd, body, rest = read_response(s)
        assert st == 200 and rest == b""
        assert hd.get("connection", "").lower() == "keep-alive", hd
        assert not closed_by_server(s, timeout=0.5)
        s.sendall(b"GET /v1/kv/follower HTTP/1.0\r\nConnection: keep-alive\r\n" + AUTH + b"\r\n")
        st, hd, body, _ = read_response(s)
        assert (st, body) == (200, MARKER)
        assert hd.get("connection", "").lower() == "keep-alive", hd
    finally:
        s.close()


def test_client_connection_close_honoured(hs):  # R: E2
    out, how = exchange(hs.port, b"GET /health/liveness HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n"
                        + follower("client-close"))
    assert len(status_lines(out)) == 1, out
    st, hd, _, rest = parse_one(out)
    assert st == 200 and hd.get("connection", "").lower() == "close", out
    assert rest == b"" and MARKER not in out
    assert how in ("fin", "reset")


@pytest.mark.parametrize("path", ["/v1/kv/head-key", "/health/liveness", "/v1/kv/no-such-head-key"])
def test_head_same_headers_no_body(hs, path):  # R: E2
    assert hs.request("PUT", "/v1/kv/head-key", b"h" * 37, AUTH_H)[0] in (200, 201)
    s = socket.create_connection(("127.0.0.1", hs.port), timeout=5)
    try:
        # HEAD then GET pipelined: right after the HEAD's head comes the GET's
        # status line, so the HEAD had no body
        s.sendall(b"HEAD " + path.encode() + b" HTTP/1.1\r\nHost: h\r\n" + AUTH + b"\r\n" +
                  b"GET " + path.encode() + b" HTTP/1.1\r\nHost: h\r\n" + AUTH + b"Connection: close\r\n\r\n")
        out = b""
        while True:
            c = s.recv(65536)
            if not c:
                break
            out += c
    finally:
        s.close()
    [(hst, hhd, _)], rest = parse_all(out, 1, head_only={0})
    assert rest.startswith(b"HTTP/1.1 "), "HEAD response carried a body: %r" % out[:600]
    [(gst, ghd, gbody)], rest = parse_all(rest, 1)
    assert hst == gst, (hst, gst)
    assert hhd.get("content-length") == ghd.get("content-length") == str(len(gbody)), (hhd, ghd)
    assert hhd.get("content-type") == ghd.get("content-type")
    assert rest == b""


def test_expect_100_continue_authorized_put(hs):  # R: E2
    s = socket.create_connection(("127.0.0.1", hs.port), timeout=5)
    try:
        s.sendall(b"PUT /v1/kv/expect-ok HTTP/1.1\r\nHost: h\r\n" + AUTH +
                  b"Content-Length: 5\r\nExpect: 100-continue\r\n\r\n")
        st, _, _, rest = read_response(s, timeout=3)
        assert st == 100, "no 100 Continue before the body"
        assert rest == b""
        s.sendall(b"hello")
        st, hd, body, _ = read_response(s)
        assert st in (201, 204), (st, body)
    finally:
        s.close()
    assert hs.request("GET", "/v1/kv/expect-ok", headers=AUTH_H)[2] == b"hello"


def test_expect_100_continue_over_limit_413_without_100(hs):  # R: E2 E5
    s = socket.create_connection(("127.0.0.1", hs.port), timeout=5)
    try:
        s.sendall(b"PUT /v1/kv/expect-big HTTP/1.1\r\nHost: h\r\n" + AUTH +
                  b"Content-Length: %d\r\nExpect: 100-continue\r\n\r\n" % (MAX_BODY * 4))
        st, hd, body, _ = read_response(s, timeout=3)
    finally:
        s.close()
    assert st == 413, (st, hd, body)
    assert json.loads(body)["error"] == "body_too_large"
    assert kv_status(hs, "expect-big") == 404


def test_expect_100_continue_failed_auth_401_without_100(hs):  # R: E2 A9
    s = socket.create_connection(("127.0.0.1", hs.port), timeout=5)
    try:
        s.sendall(b"PUT /v1/kv/expect-noauth HTTP/1.1\r\nHost: h\r\nAuthorization: Bearer wrong\r\n"
                  b"Content-Length: 5\r\nExpect: 100-continue\r\n\r\n")
        st, hd, body, _ = read_response(s, timeout=3)
    finally:
        s.close()
    assert st == 401, (st, hd, body)
    assert kv_status(hs, "expect-noauth") == 404


def test_options_asterisk_answered(hs):  # R: E1 Y1
    out, how = exchange(hs.port, b"OPTIONS * HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n")
    sts = status_lines(out)
    assert len(sts) == 1, out[:400]
    st = parse_one(out)[0]
    print("OPTIONS * answered %d: %r" % (st, out[:300]))
    assert (200 <= st < 300 or 400 < st < 500), out[:400]
    assert hs.proc.poll() is None
    assert hs.request("GET", "/health/liveness")[0] == 200


@pytest.mark.parametrize("data", [
    b"GET /health/liveness HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n",
    b"GET /v1/kv/no-such-key HTTP/1.1\r\nHost: h\r\n" + AUTH + b"Connection: close\r\n\r\n",
    b"GET /nowhere HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n",
    b"GET /v1/kv/x HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n",           # 401
    b"PUT /v1/kv/date-put HTTP/1.1\r\nHost: h\r\n" + AUTH + b"Content-Length: 1\r\nConnection: close\r\n\r\nx",
    b"GET  /health/liveness HTTP/1.1\r\nHost: h\r\n\r\n",                       # a refusal
], ids=["200", "404-key", "404-unmatched", "401", "201", "400-refusal"])
def test_date_and_cache_control_on_every_response(hs, data):  # R: E2
    out, _ = exchange(hs.port, data)
    st, hd, _, _ = parse_one(out)
    assert "date" in hd, out[:400]
    assert IMF_DATE_RE.match(hd["date"]), hd["date"]
    # hale sets no Cache-Control of its own on these: the default applies
    assert hd.get("cache-control") == "no-store", (st, out[:400])


# --------------------------------------------------------------- deadlines --

def trickle(port, data, every=0.2, limit=10.0, prefix=b""):
    """Sends prefix, then data one byte every `every` s, for at most `limit`
    s, while reading. Returns (received, how, seconds until the connection
    ended or None, bytes of data sent)."""
    s = socket.create_connection(("127.0.0.1", port), timeout=5)
    out, how, ended = b"", "open", None
    t0 = time.monotonic()
    sent = 0
    try:
        if prefix:
            s.sendall(prefix)
        next_send = t0
        while time.monotonic() - t0 < limit:
            now = time.monotonic()
            if now >= next_send and sent < len(data):
                try:
                    s.send(data[sent:sent + 1])
                    sent += 1
                except (BrokenPipeError, ConnectionResetError):
                    pass
                next_send = now + every
            r, _, _ = select.select([s], [], [], max(0.0, min(0.05, next_send - time.monotonic())))
            if r:
                try:
                    c = s.recv(65536)
                except ConnectionResetError:
                    how, ended = "reset", time.monotonic() - t0
                    break
                if not c:
                    how, ended = "fin", time.monotonic() - t0
                    break
                out += c
        return out, how, ended, sent
    finally:
        s.close()


@pytest.mark.parametrize("setting", ["1000", "1s"])
def test_header_timeout_bounds_the_whole_head(hale_factory, setting):  # R: E3 Y1
    h = hale_factory(env={"LOG_FORMAT": "json", "APP_SERVER__HEADER_TIMEOUT": setting,
                          "APP_SERVER__IDLE_TIMEOUT": "30s"})
    before = rejected(h, "header_timeout")
    head = b"GET /health/liveness HTTP/1.1\r\nHost: h\r\nX-Slow: " + b"s" * 200
    out, how, ended, sent = trickle(h.port, head, every=0.2, limit=12.0)
    print("header_timeout=%s: ended after %s s (%s), %d bytes sent, got %r" % (setting, ended, how, sent, out[:200]))
    assert ended is not None, "a client trickling a header byte every 200 ms kept its connection 12 s"
    # the sender was still sending: the deadline is for the whole head, not idle
    assert ended < 8.0, ended
    assert sent < len(head)
    assert len(status_lines(out)) == 1, out
    st, hd, body, _ = parse_one(out)
    assert st == 408, out[:300]
    assert json.loads(body)["error"] == "header_timeout"
    assert "close" in hd.get("connection", "").lower()
    wait_for(lambda: rejected(h, "header_timeout") == before + 1, timeout=5, what="header_timeout counted")
    wait_for(lambda: [o for o in access_lines(h) if o.get("reject") == "header_timeout" and o.get("status") == 408],
             timeout=5, what="an access line for the 408")


def test_body_timeout_408(hale_factory):  # R: E3 Y1
    h = hale_factory(env={"LOG_FORMAT": "json", "APP_SERVER__BODY_TIMEOUT": "1000",
                          "APP_SERVER__IDLE_TIMEOUT": "30s"})
    before = rejected(h, "body_timeout")
    head = b"PUT /v1/kv/slow-body HTTP/1.1\r\nHost: h\r\nContent-Length: 100\r\n\r\n"
    out, how, ended, sent = trickle(h.port, b"b" * 100, every=0.2, limit=12.0, prefix=head)
    print("body_timeout: ended after %s s (%s), %d body bytes sent, got %r" % (ended, how, sent, out[:200]))
    assert ended is not None and ended < 8.0, ended
    assert sent < 100
    assert len(status_lines(out)) == 1, out
    st, hd, body, _ = parse_one(out)
    assert st == 408, out[:300]
    assert json.loads(body)["error"] == "body_timeout"
    assert "close" in hd.get("connection", "").lower()
    wait_for(lambda: rejected(h, "body_timeout") == before + 1, timeout=5, what="body_timeout counted")
    wait_for(lambda: [o for o in access_lines(h) if o.get("reject") == "body_timeout" and o.get("status") == 408],
             timeout=5, what="an access line for the 408")
    assert h.request("GET", "/v1/kv/slow-body")[0] == 404


def test_idle_timeout_closes_silently(hale_factory):  # R: E3
    h = hale_factory(env={"APP_SERVER__IDLE_TIMEOUT": "1s"})
    s = socket.create_connection(("127.0.0.1", h.port), timeout=5)
    try:
        s.sendall(b"GET /health/liveness HTTP/1.1\r\nHost: h\r\n\r\n")
        st, hd, _, rest = read_response(s)
        assert st == 200 and rest == b""
        t0 = time.monotonic()
        s.settimeout(10)
        try:
            got = s.recv(65536)
        except ConnectionResetError:
            got = b""
        took = time.monotonic() - t0
        print("idle keep-alive closed after %.2f s" % took)
        assert got == b"", "the server sent bytes on an idle connection: %r" % got[:200]
        assert took < 9.0
    finally:
        s.close()
