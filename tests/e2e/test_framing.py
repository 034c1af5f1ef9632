"""Hostile input sent as raw bytes straight to hale (no proxy in front).

Requirement Y9 (strict RFC 9112 framing, whatever the engine lets through)
and Y1 (bad input never crashes or hangs the server). Every row of the table
"libmicrohttpd 0.9.75 under hostile input" in design-notes.md has a test
here. Each smuggling-shaped request is followed, in the same send, by a
pipelined `GET /v1/kv/smuggled`; the test asserts the refusal's status, that
the connection is closed right after it, and that the follower was NOT
answered (the key holds a marker value, so an answer would show it) and never
reached hale at all (no access-log line carries the follower's request id).

The engine-side cases (no Host, unparsable Content-Length) are answered by
libmicrohttpd itself with its own HTML body; the rest by hale's filter in
src/runtime/http/http_request.c (check_framing), with a JSON body naming the reason
and a hale_http_rejected_total{reason} count on the admin listener.
"""
import json
import random
import re
import socket
import time

import pytest

from conftest import Hale

MARKER = b"SMUGGLED-MARKER-7f3a"
MAX_BODY = 1024


# ---------------------------------------------------------------- helpers --

def follower(case):
    """The pipelined request that must never be answered."""
    return (b"GET /v1/kv/smuggled HTTP/1.1\r\nHost: h\r\nX-Request-Id: smuggled-%s\r\n\r\n"
            % case.encode())


def exchange(port, data, timeout=3.0, chunks=None):
    """Sends data (then each of chunks), reads until the server closes the
    connection or `timeout` passes with nothing new. Returns (bytes, closed)
    where closed is True when the server ended the connection (FIN or RST)."""
    s = socket.create_connection(("127.0.0.1", port), timeout=timeout)
    out = b""
    closed = False
    try:
        try:
            s.sendall(data)
            for c in chunks or ():
                s.sendall(c)
        except (BrokenPipeError, ConnectionResetError):
            closed = True  # the server already refused and closed
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                chunk = s.recv(65536)
            except socket.timeout:
                break
            except ConnectionResetError:
                closed = True
                break
            if not chunk:
                closed = True
                break
            out += chunk
        return out, closed
    finally:
        s.close()


def statuses(raw):
    return [int(m) for m in re.findall(rb"HTTP/1\.[01] (\d{3}) ", raw)]


def json_body(raw):
    head, _, body = raw.partition(b"\r\n\r\n")
    m = re.search(rb"content-length: *(\d+)", head, re.I)
    return json.loads(body[:int(m.group(1))])


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


def rejected(h, reason):
    """Current value of hale_http_rejected_total{reason=...} (admin /metrics)."""
    st, _, body = h.request("GET", "/metrics", admin=True)
    assert st == 200
    m = re.search(r'^hale_http_rejected_total\{reason="%s"\} (\d+(?:\.\d+)?)$' % re.escape(reason),
                  body.decode(), re.M)
    return float(m.group(1)) if m else 0.0


def sync_log(h):
    """Waits until every earlier request reached the log: sends a request with
    a fresh id and waits for its access line (one write(2) per line, in order)."""
    rid = "sync-%d" % random.randrange(1 << 40)
    h.request("GET", "/health/liveness", headers={"X-Request-Id": rid})
    deadline = time.time() + 5
    while time.time() < deadline:
        if any(o.get("request_id") == rid for o in log_objs(h)):
            return
        time.sleep(0.02)
    raise AssertionError("access line of %s never appeared" % rid)


def assert_follower_unanswered(h, case, out):
    assert MARKER not in out, "the smuggled request was answered:\n%r" % out
    sync_log(h)
    seen = [o for o in log_objs(h) if o.get("request_id") == "smuggled-" + case]
    assert not seen, "the smuggled request reached hale: %r" % seen


def assert_still_serving(h):
    st, _, body = h.request("GET", "/v1/kv/smuggled")
    assert (st, body) == (200, MARKER)
    assert h.request("GET", "/health/liveness", admin=True)[0] == 200


@pytest.fixture(scope="module")
def hx():
    """One instance for the whole module: it must survive all of it."""
    h = Hale(env={"LOG_FORMAT": "json", "LOG_LEVEL": "debug",
                  "APP_SERVER__MAX_BODY_BYTES": str(MAX_BODY)})
    try:
        assert h.request("PUT", "/v1/kv/smuggled", MARKER)[0] == 201
    except BaseException:
        h.stop()
        raise
    yield h
    assert h.proc.poll() is None, "hale died during the hostile-input suite:\n" + h.output()[-4000:]
    h.check_clean_exit()


# ------------------------------------------------- request smuggling rows --

def req(head, body=b"", method=b"GET", target=b"/health/liveness", version=b"HTTP/1.1",
        host=b"Host: h\r\n"):
    return method + b" " + target + b" " + version + b"\r\n" + host + head + b"\r\n" + body


# (case id, request bytes, expected status, expected JSON reason or None for
# an engine-produced answer). The follower is appended right after the bytes
# the engine itself would take as the end of the request, so that without
# hale's filter it would be answered.
SMUGGLING = [
    # two different Content-Length: the engine takes the first one
    ("cl_two_different",
     req(b"Content-Length: 5\r\nContent-Length: 48\r\n", b"hello", b"PUT", b"/v1/kv/fr1"),
     400, "conflicting_content_length"),
    ("cl_two_equal",
     req(b"Content-Length: 5\r\nContent-Length: 5\r\n", b"hello", b"PUT", b"/v1/kv/fr2"),
     400, "duplicate_content_length"),
    # Content-Length with Transfer-Encoding: the engine lets chunked win
    ("cl_then_te",
     req(b"Content-Length: 44\r\nTransfer-Encoding: chunked\r\n", b"0\r\n\r\n", b"PUT", b"/v1/kv/fr3"),
     400, "content_length_with_transfer_encoding"),
    ("te_then_cl",
     req(b"Transfer-Encoding: chunked\r\nContent-Length: 44\r\n", b"0\r\n\r\n", b"PUT", b"/v1/kv/fr4"),
     400, "content_length_with_transfer_encoding"),
    # a coding other than exactly "chunked": the engine reads until close
    ("te_gzip", req(b"Transfer-Encoding: gzip\r\n", b"", b"PUT", b"/v1/kv/fr5"),
     501, "unsupported_transfer_encoding"),
    ("te_chunked_identity", req(b"Transfer-Encoding: chunked, identity\r\n", b"0\r\n\r\n", b"PUT", b"/v1/kv/fr6"),
     501, "unsupported_transfer_encoding"),
    ("te_identity_chunked", req(b"Transfer-Encoding: identity, chunked\r\n", b"0\r\n\r\n", b"PUT", b"/v1/kv/fr7"),
     501, "unsupported_transfer_encoding"),
    ("te_xchunked", req(b"Transfer-Encoding: xchunked\r\n", b"0\r\n\r\n", b"PUT", b"/v1/kv/fr8"),
     501, "unsupported_transfer_encoding"),
    ("te_twice", req(b"Transfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n", b"0\r\n\r\n",
                     b"PUT", b"/v1/kv/fr9"),
     501, "unsupported_transfer_encoding"),
    # RFC 9112 6.1: Transfer-Encoding in an HTTP/1.0 message is faulty framing
    ("te_in_http10", req(b"Connection: keep-alive\r\nTransfer-Encoding: chunked\r\n", b"0\r\n\r\n",
                         b"PUT", b"/v1/kv/fr10", b"HTTP/1.0"),
     400, "transfer_encoding_in_http10"),
    # header names that are not tokens: the engine ignores the length
    ("space_before_colon", req(b"Content-Length : 44\r\n"), 400, "bad_header_name"),
    ("tab_before_colon", req(b"Transfer-Encoding\t: chunked\r\n"), 400, "bad_header_name"),
    ("name_with_paren", req(b"X(y): 1\r\n"), 400, "bad_header_name"),
    ("name_with_quote", req(b'X"y: 1\r\n'), 400, "bad_header_name"),
    ("name_with_slash", req(b"X/y: 1\r\n"), 400, "bad_header_name"),
    ("name_with_del", req(b"X\x7fy: 1\r\n"), 400, "bad_header_name"),
    ("name_with_high_byte", req(b"X\xc3\xa9: 1\r\n"), 400, "bad_header_name"),
    ("leading_space_first_header", b"GET /health/liveness HTTP/1.1\r\n X-A: 1\r\nHost: h\r\n\r\n",
     400, "bad_header_name"),
    # obs-fold continuation lines (the engine glues them to the NAME)
    ("obs_fold_content_length", req(b"Content-Length: 44\r\n 0\r\n"), 400, "obsolete_line_folding"),
    ("obs_fold_empty_then_length", req(b"Content-Length:\r\n 44\r\n"), 400, "obsolete_line_folding"),
    ("obs_fold_transfer_encoding", req(b"Transfer-Encoding:\r\n chunked\r\n"), 400, "obsolete_line_folding"),
    ("obs_fold_other_header_sp", req(b"X-Note: a\r\n b\r\n"), 400, "obsolete_line_folding"),
    ("obs_fold_other_header_tab", req(b"X-Note: a\r\n\tb\r\n"), 400, "obsolete_line_folding"),
    # a bare CR inside a value: a proxy may end the line there
    ("bare_cr_in_value", req(b"X-A: a\rContent-Length: 44\r\n"), 400, "bad_header_value"),
    ("ctl_in_value", req(b"X-A: a\x01b\r\n"), 400, "bad_header_value"),
    # Host: missing (the engine's strict mode answers) or repeated (hale)
    ("host_missing", req(b"", host=b""), 400, None),
    ("host_twice", req(b"Host: other\r\n"), 400, "duplicate_host"),
    ("host_twice_case", req(b"hOST: h\r\n"), 400, "duplicate_host"),
    # unparsable Content-Length: the engine answers itself
    ("cl_list", req(b"Content-Length: 5, 5\r\n", b"hello", b"PUT", b"/v1/kv/fr11"), 400, None),
]


@pytest.mark.parametrize("case,data,status,reason", SMUGGLING, ids=[c[0] for c in SMUGGLING])
def test_smuggling_shape_refused_and_closed(hx, case, data, status, reason):  # R: Y9 Y1
    before = rejected(hx, reason) if reason else 0.0
    out, closed = exchange(hx.port, data + follower(case))
    sts = statuses(out)
    assert sts and set(sts) == {status}, (case, out[:600])
    assert closed, "connection left open after %s:\n%r" % (case, out[:600])
    if reason:
        # hale's own refusal: one response, JSON, Connection: close, counted
        assert len(sts) == 1, out
        assert b"\r\nconnection: close\r\n" in out.lower(), out
        assert json_body(out)["error"] == reason
        assert rejected(hx, reason) == before + 1
    assert_follower_unanswered(hx, case, out)
    assert_still_serving(hx)


def test_rejections_logged_at_debug(hx):  # R: Y9
    exchange(hx.port, req(b"Content-Length: 1\r\nContent-Length: 2\r\n", b"x"))
    sync_log(hx)
    lines = [o for o in log_objs(hx) if o.get("msg") == "request refused"]
    assert any(o.get("reason") == "conflicting_content_length" and o.get("level") == "debug"
               and o.get("listener") == "main" for o in lines), lines[-5:]


# ---------------------------------------------------- body over the limit --

@pytest.mark.parametrize("expect", [False, True], ids=["plain", "expect-100-continue"])
def test_413_before_any_body_byte(hx, expect):  # R: Y9 Y1 A8
    case = "413-%s" % expect
    before = rejected(hx, "body_too_large")
    head = b"PUT /v1/kv/too-big HTTP/1.1\r\nHost: h\r\nContent-Length: %d\r\n" % (MAX_BODY * 4)
    if expect:
        head += b"Expect: 100-continue\r\n"
    s = socket.create_connection(("127.0.0.1", hx.port), timeout=3)
    try:
        # headers only (plus a pipelined follower the length would swallow)
        s.sendall(head + b"X-Request-Id: " + case.encode() + b"\r\n\r\n" + follower(case))
        out = b""
        while True:
            try:
                c = s.recv(65536)
            except ConnectionResetError:
                break
            if not c:
                break
            out += c
    finally:
        s.close()
    # the answer is the 413 itself: no "100 Continue" before it, then close
    assert out.startswith(b"HTTP/1.1 413 "), out
    assert b"100 Continue" not in out
    assert statuses(out) == [413]
    assert b"\r\nconnection: close\r\n" in out.lower()
    assert json_body(out)["error"] == "body_too_large"
    assert rejected(hx, "body_too_large") == before + 1
    sync_log(hx)
    line = [o for o in log_objs(hx) if o.get("request_id") == case]
    assert len(line) == 1 and line[0]["status"] == 413 and line[0]["bytes_in"] == 0, line
    assert_follower_unanswered(hx, case, out)
    assert hx.request("GET", "/v1/kv/too-big")[0] == 404


def test_body_at_limit_still_accepted(hx):  # R: Y9 A1
    assert hx.request("PUT", "/v1/kv/at-limit", b"z" * MAX_BODY)[0] in (200, 201)
    assert hx.request("GET", "/v1/kv/at-limit")[2] == b"z" * MAX_BODY


def test_chunked_over_limit_cut_off_and_counted(hx):  # R: Y9 Y1
    case = "chunked-over"
    before = rejected(hx, "chunked_body_too_large")
    head = (b"PUT /v1/kv/chunked-big HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n"
            b"X-Request-Id: " + case.encode() + b"\r\n\r\n")
    chunk = b"200\r\n" + b"y" * 0x200 + b"\r\n"
    out, closed = exchange(hx.port, head, chunks=[chunk] * 8 + [b"0\r\n\r\n" + follower(case)])
    # hale's own engine answers 413 as soon as the body passes the limit,
    # then closes (libmicrohttpd could only reset the connection)
    assert closed
    assert statuses(out) == [413], out
    assert json_body(out)["error"] == "chunked_body_too_large"
    assert rejected(hx, "chunked_body_too_large") == before + 1
    sync_log(hx)
    line = [o for o in log_objs(hx) if o.get("request_id") == case]
    assert len(line) == 1 and line[0]["reject"] == "chunked_body_too_large", line
    assert line[0]["status"] == 413
    assert_follower_unanswered(hx, case, out)
    assert hx.request("GET", "/v1/kv/chunked-big")[0] == 404
    # a chunked body under the limit still works on a fresh connection
    out, _ = exchange(hx.port, b"PUT /v1/kv/chunked-ok HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked"
                               b"\r\nConnection: close\r\n\r\n5\r\nhello\r\n0\r\n\r\n")
    assert statuses(out) == [201], out
    assert hx.request("GET", "/v1/kv/chunked-ok")[2] == b"hello"


# ------------------------------------------------------------- methods --

@pytest.mark.parametrize("method", [b"BREW", b"get", b"Put", b"A" * 1000, b"M-SEARCH", b"PROPFIND"],
                         ids=["BREW", "lowercase", "mixedcase", "1000-letters", "M-SEARCH", "PROPFIND"])
def test_unknown_method_501(hx, method):  # R: Y9 Y1 A8
    case = "m501-%d" % len(method)
    out, closed = exchange(hx.port, method + b" /v1/kv/smuggled HTTP/1.1\r\nHost: h\r\n\r\n" + follower(case))
    assert statuses(out) == [501], out[:300]
    assert json_body(out)["error"] == "unknown_method"
    assert closed
    assert_follower_unanswered(hx, case, out)


@pytest.mark.parametrize("method,target,allow", [
    (b"POST", b"/health/liveness", {"GET", "HEAD"}),
    (b"DELETE", b"/health", {"GET", "HEAD"}),
    (b"PUT", b"/v1/kv", {"GET", "HEAD"}),
    (b"POST", b"/v1/kv/some-key", {"GET", "HEAD", "PUT", "DELETE"}),
    (b"PATCH", b"/v1/kv/some-key", {"GET", "HEAD", "PUT", "DELETE"}),
])
def test_known_method_wrong_route_405_with_allow(hx, method, target, allow):  # R: Y9 A8
    out, _ = exchange(hx.port, method + b" " + target + b" HTTP/1.1\r\nHost: h\r\nContent-Length: 0\r\n"
                                                       b"Connection: close\r\n\r\n")
    assert statuses(out) == [405], out
    m = re.search(rb"\r\nAllow: ([^\r]*)\r\n", out)
    assert m, out
    assert {x.strip() for x in m.group(1).decode().split(",")} == allow
    assert json_body(out)["error"] == "method_not_allowed"


# -------------------------------------------------------------- survival --

SURVIVAL = [
    ("cl_minus_one", req(b"Content-Length: -1\r\n", b"", b"PUT", b"/v1/kv/sv1")),
    ("cl_2_pow_64", req(b"Content-Length: 18446744073709551616\r\n", b"", b"PUT", b"/v1/kv/sv2")),
    ("cl_huge", req(b"Content-Length: 99999999999999999999999999999\r\n", b"", b"PUT", b"/v1/kv/sv3")),
    ("cl_uint64_max", req(b"Content-Length: 18446744073709551615\r\n", b"", b"PUT", b"/v1/kv/sv4")),
    ("cl_plus", req(b"Content-Length: +5\r\n", b"hello", b"PUT", b"/v1/kv/sv5")),
    ("cl_hex", req(b"Content-Length: 0x10\r\n", b"", b"PUT", b"/v1/kv/sv6")),
    ("nul_in_method", b"GE\x00T /health/liveness HTTP/1.1\r\nHost: h\r\n\r\n"),
    ("nul_in_target", b"GET /v1/kv/a\x00b HTTP/1.1\r\nHost: h\r\n\r\n"),
    ("nul_in_header_name", req(b"X-A\x00B: 1\r\n")),
    ("nul_in_header_value", req(b"X-A: 1\x00Content-Length: 44\r\n")),
    ("nul_only", b"\x00" * 4096),
    ("bare_lf", b"GET /health/liveness HTTP/1.1\nHost: h\n\n"),
    ("bare_lf_mixed", b"GET /health/liveness HTTP/1.1\r\nHost: h\nX-A: 1\r\n\n"),
    ("bare_cr_line_ends", b"GET /health/liveness HTTP/1.1\rHost: h\r\r"),
    ("method_1000_letters_no_target", b"A" * 1000 + b"\r\n\r\n"),
    ("space_only", b" " * 2000 + b"\r\n\r\n"),
    ("http_2_preface", b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"),
    ("version_garbage", b"GET / HTTP/1.1x\r\nHost: h\r\n\r\n"),
    ("chunk_size_garbage", req(b"Transfer-Encoding: chunked\r\n", b"zz\r\nhello\r\n0\r\n\r\n", b"PUT", b"/v1/kv/sv7")),
    ("chunk_size_overflow", req(b"Transfer-Encoding: chunked\r\n", b"fffffffffffffffffff\r\nx\r\n",
                                b"PUT", b"/v1/kv/sv8")),
]


@pytest.mark.parametrize("case,data", SURVIVAL, ids=[c[0] for c in SURVIVAL])
def test_survives_malformed_input(hx, case, data):  # R: Y1 Y9
    out, closed = exchange(hx.port, data + follower(case), timeout=1.5)
    sts = statuses(out)
    # whatever the answer, it is an error (or a refusal by closing), never a hang
    assert closed or sts, (case, out[:300])
    # hale's own parser refuses all of these (bare LF and NUL included), and
    # the follower is never answered
    assert sts and all(s >= 400 for s in sts) and len(sts) == 1, (case, out[:300])
    assert hx.proc.poll() is None, "hale died on %s:\n%s" % (case, hx.output()[-3000:])
    assert_still_serving(hx)


@pytest.mark.parametrize("target", [b"/v1/kv/nt\x00x", b"/v1/kv/nt\x00", b"/v1/kv/nt\x00/../other"])
def test_nul_in_target_refused_not_truncated(hx, target):  # R: Y1 Y9 A5
    # the engine cuts the target at the NUL: without hale's check this PUT
    # would write the key "nt"
    case = "nul-target-%d" % len(target)
    out, closed = exchange(hx.port, b"PUT " + target + b" HTTP/1.1\r\nHost: h\r\nContent-Length: 2\r\n\r\nhi"
                           + follower(case))
    assert statuses(out) == [400], out
    assert json_body(out)["error"] == "bad_target"
    assert closed
    assert_follower_unanswered(hx, case, out)
    assert hx.request("GET", "/v1/kv/nt")[0] == 404


def test_nul_bytes_in_body_are_data(hx):  # R: Y1 A1
    body = b"a\x00b\x00\x00c" + bytes(range(256))
    assert hx.request("PUT", "/v1/kv/nul-body", body)[0] in (200, 201)
    assert hx.request("GET", "/v1/kv/nul-body")[2] == body


def test_random_garbage_never_kills_it(hx):  # R: Y1
    rng = random.Random(1234)
    for _ in range(40):
        n = rng.choice([1, 7, 64, 500, 3000])
        blob = bytes(rng.randrange(256) for _ in range(n))
        if rng.random() < 0.5:
            blob = b"GET /health/liveness HTTP/1.1\r\n" + blob
        exchange(hx.port, blob, timeout=0.2)
    assert hx.proc.poll() is None
    assert_still_serving(hx)
