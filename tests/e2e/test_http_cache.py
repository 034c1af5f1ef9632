"""Conditional requests (RFC 9110 §13) and cache policy (R: A1 A2 A10).

Every response states its policy: KV GET/HEAD 200/304 `no-cache` (or the
kv.cache_control setting), everything else `no-store`. Conditional headers
are lists, repeated field lines are one list, If-None-Match compares weakly,
If-Match on GET/HEAD gives 412, a 304 carries the 200's validators and no
body framing that lies."""
import email.utils
import socket
import threading
import time

import pytest


def raw_exchange(h, head_lines, body=b"", method="GET", path="/v1/kv/x", port=None):
    """Sends one request with exactly these header lines (repeats allowed),
    followed by a pipelined GET /health/liveness; returns both responses as
    (status, [(name, value)], body) parsed by Content-Length. The second
    response proves where the first one ended."""
    req = ("%s %s HTTP/1.1\r\nHost: t\r\n" % (method, path)).encode()
    for line in head_lines:
        req += line.encode() + b"\r\n"
    if body:
        req += b"Content-Length: %d\r\n" % len(body)
    req += b"\r\n" + body
    req += b"GET /health/liveness HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n"
    data = h.raw(req, timeout=3.0, port=port)
    out = []
    for i in range(2):
        head, _, data = data.partition(b"\r\n\r\n")
        lines = head.decode("latin-1").split("\r\n")
        status = int(lines[0].split()[1])
        hdrs = [tuple(x.strip() for x in l.split(":", 1)) for l in lines[1:]]
        n = 0
        if method != "HEAD" or i == 1:
            if status not in (204, 304):
                n = int(dict((k.lower(), v) for k, v in hdrs).get("content-length", "0"))
        out.append((status, hdrs, data[:n]))
        data = data[n:]
    assert out[1][0] == 200 and out[1][2].startswith(b"{"), out  # framing intact
    return out[0]


def hget(hdrs, name):
    vals = [v for k, v in hdrs if k.lower() == name.lower()]
    return vals


def put(h, key, body=b"v"):
    st, hd, _ = h.request("PUT", "/v1/kv/" + key, body)
    assert st in (200, 201)
    return hd["etag"]


def test_if_match_list_on_write(hale):  # R: A1
    etag = put(hale, "l")
    st, hd, _ = hale.request("PUT", "/v1/kv/l", b"2", {"If-Match": '"999", %s' % etag})
    assert st == 200, "a list naming the current version must match"
    etag = hd["etag"]
    assert hale.request("PUT", "/v1/kv/l", b"3", {"If-Match": '"999", "998"'})[0] == 412
    assert hale.request("PUT", "/v1/kv/l", b"3", {"If-Match": 'W/%s, "9991"' % etag})[0] == 412
    assert hale.request("DELETE", "/v1/kv/l", headers={"If-Match": '"9991", "9992"'})[0] == 412
    assert hale.request("DELETE", "/v1/kv/l", headers={"If-Match": '"9991", %s' % etag})[0] == 204
    assert hale.request("DELETE", "/v1/kv/l", headers={"If-Match": '"9991", %s' % etag})[0] == 404
    assert hale.request("PUT", "/v1/kv/l", b"4", {"If-Match": '"9991", "9992"'})[0] == 412


@pytest.mark.parametrize("order", ["stale-first", "current-first"])
def test_if_match_repeated_lines_are_one_list(hale, order):  # R: A1
    etag = put(hale, "rep")
    lines = ['If-Match: "999"', "If-Match: %s" % etag]
    if order == "current-first":
        lines.reverse()
    st, hdrs, _ = raw_exchange(hale, lines, body=b"new", method="PUT", path="/v1/kv/rep")
    assert st == 200, (st, hdrs)
    st, hdrs, _ = raw_exchange(hale, ['If-Match: "999"', 'If-Match: "998"'], body=b"x",
                               method="PUT", path="/v1/kv/rep")
    assert st == 412
    st, hdrs, body = raw_exchange(hale, lines, path="/v1/kv/rep")
    assert st == 412  # the write above changed the version
    etag = hale.request("GET", "/v1/kv/rep")[1]["etag"]
    st, _, body = raw_exchange(hale, ['If-Match: "9991"', "If-Match: %s" % etag], path="/v1/kv/rep")
    assert st == 200 and body == b"new"


def test_if_match_on_get_and_head(hale):  # R: A2 A10
    etag = put(hale, "g", b"value")
    for m in ("GET", "HEAD"):
        st, hd, body = hale.request(m, "/v1/kv/g", headers={"If-Match": '"999"'})
        assert st == 412, m
        assert hd["cache-control"] == "no-store"
        st, _, body = hale.request(m, "/v1/kv/g", headers={"If-Match": '"999", %s' % etag})
        assert st == 200 and body == (b"value" if m == "GET" else b"")
        assert hale.request(m, "/v1/kv/g", headers={"If-Match": "*"})[0] == 200
        assert hale.request(m, "/v1/kv/g", headers={"If-Match": "W/" + etag})[0] == 412  # strong
    assert hale.request("GET", "/v1/kv/absent", headers={"If-Match": "*"})[0] == 404


def test_if_none_match_weak_lists_and_lines(hale):  # R: A2
    etag = put(hale, "w")
    for v in ("W/" + etag, '"9991", W/%s' % etag, '"9991",%s' % etag, "*"):
        st, _, body = hale.request("GET", "/v1/kv/w", headers={"If-None-Match": v})
        assert st == 304 and body == b"", v
    assert hale.request("GET", "/v1/kv/w", headers={"If-None-Match": 'W/"9991", "9992"'})[0] == 200
    st, _, _ = raw_exchange(hale, ['If-None-Match: "9991"', "If-None-Match: W/%s" % etag], path="/v1/kv/w")
    assert st == 304
    st, _, _ = raw_exchange(hale, ["If-None-Match: W/%s" % etag, 'If-None-Match: "9991"'], path="/v1/kv/w")
    assert st == 304
    # If-Match is evaluated first: a failing If-Match wins over a matching If-None-Match
    st, _, _ = hale.request("GET", "/v1/kv/w", headers={"If-Match": '"9991"', "If-None-Match": etag})
    assert st == 412


@pytest.mark.parametrize("method", ["GET", "HEAD"])
def test_304_carries_the_200s_validators_and_no_lying_length(hale, method):  # R: A2 A10
    etag = put(hale, "n", b"twelve bytes")
    st200, h200, _ = raw_exchange(hale, [], method=method, path="/v1/kv/n")
    st, h304, body = raw_exchange(hale, ["If-None-Match: " + etag], method=method, path="/v1/kv/n")
    assert st200 == 200 and st == 304 and body == b""
    assert hget(h304, "ETag") == hget(h200, "ETag") == [etag]
    assert hget(h304, "Cache-Control") == hget(h200, "Cache-Control") == ["no-cache"]
    if "Last-Modified" in [k for k, _ in h200]:
        assert hget(h304, "Last-Modified") == hget(h200, "Last-Modified")
    # RFC 9110 §8.6: a 304 may carry Content-Length only as the 200's length
    cl = hget(h304, "Content-Length")
    assert cl in ([], hget(h200, "Content-Length")), (cl, h200)
    assert hget(h200, "Content-Length") == ["12"]
    assert not hget(h304, "Transfer-Encoding") and not hget(h304, "Content-Type")


def test_kv_cache_control_is_a_setting(hale_factory):  # R: A10
    h = hale_factory(env={"APP_KV__CACHE_CONTROL": "private, max-age=5"})
    etag = put(h, "s")
    st, hd, _ = h.request("GET", "/v1/kv/s")
    assert st == 200 and hd["cache-control"] == "private, max-age=5"
    st, hd, _ = h.request("GET", "/v1/kv/s", headers={"If-None-Match": etag})
    assert st == 304 and hd["cache-control"] == "private, max-age=5"
    assert h.request("GET", "/v1/kv?prefix=")[1]["cache-control"] == "no-store"
    assert h.request("PUT", "/v1/kv/s", b"x")[1]["cache-control"] == "no-store"


def test_kv_cache_control_setting_is_validated(hale_factory):  # R: A10 C1
    import subprocess
    from conftest import HALE_BIN, ROOT
    import os
    env = {"PATH": os.environ["PATH"], "HALE_CONFIG_DIR": os.path.join(ROOT, "config"),
           "APP_KV__CACHE_CONTROL": ""}
    r = subprocess.run([HALE_BIN, "config", "--check"], env=env, capture_output=True, text=True)
    assert r.returncode == 78 and "kv.cache_control" in r.stderr


def test_cache_control_on_every_route_and_status(hale_factory, tmp_path):  # R: A10
    """Every answer hale produces states its policy (table of route x status)."""
    sd = tmp_path / "secrets"
    sd.mkdir()
    (sd / "api-key").write_text("k1\n")
    h = hale_factory(env={"HALE_SECRET_DIR": str(sd), "APP_SERVER__MAX_BODY_BYTES": "64"})
    K = {"X-API-Key": "k1"}
    etag = h.request("PUT", "/v1/kv/a", b"v", K)[1]["etag"]
    cases = [
        # (method, path, headers, body, status, policy, admin)
        ("GET", "/v1/kv/a", K, None, 200, "no-cache", False),
        ("HEAD", "/v1/kv/a", K, None, 200, "no-cache", False),
        ("GET", "/v1/kv/a", {**K, "If-None-Match": etag}, None, 304, "no-cache", False),
        ("HEAD", "/v1/kv/a", {**K, "If-None-Match": etag}, None, 304, "no-cache", False),
        ("GET", "/v1/kv/a", {**K, "If-Match": '"999"'}, None, 412, "no-store", False),
        ("GET", "/v1/kv/missing", K, None, 404, "no-store", False),
        ("GET", "/v1/kv/%FF", K, None, 400, "no-store", False),
        ("GET", "/v1/kv/a", None, None, 401, "no-store", False),
        ("GET", "/v1/kv?prefix=", K, None, 200, "no-store", False),
        ("GET", "/v1/kv?limit=0", K, None, 400, "no-store", False),
        ("PUT", "/v1/kv/b", K, b"v", 201, "no-store", False),
        ("PUT", "/v1/kv/b", K, b"w", 200, "no-store", False),
        ("PUT", "/v1/kv/b", {**K, "If-Match": '"999"'}, b"w", 412, "no-store", False),
        ("PUT", "/v1/kv/b", {**K, "Content-Encoding": "gzip"}, b"w", 415, "no-store", False),
        ("PUT", "/v1/kv/b", K, b"x" * 100, 413, "no-store", False),
        ("DELETE", "/v1/kv/b", K, None, 204, "no-store", False),
        ("DELETE", "/v1/kv/b", K, None, 404, "no-store", False),
        ("POST", "/v1/kv/b", K, b"v", 405, "no-store", False),
        ("GET", "/nowhere", None, None, 404, "no-store", False),
        ("GET", "/health", None, None, 200, "no-store", False),
        ("GET", "/health/liveness", None, None, 200, "no-store", False),
        ("GET", "/health/readiness", None, None, 200, "no-store", False),
        ("GET", "/health/startup", None, None, 200, "no-store", False),
        ("GET", "/metrics", None, None, 200, "no-store", True),
        ("GET", "/health", None, None, 200, "no-store", True),
        ("GET", "/health/readiness", None, None, 200, "no-store", True),
        ("GET", "/nowhere", None, None, 404, "no-store", True),
    ]
    for m, p, hd, body, want, policy, admin in cases:
        st, rh, _ = h.request(m, p, body, hd, admin=admin)
        assert st == want, (m, p, st)
        assert rh.get("cache-control") == policy, (m, p, st, rh)
    # 411: a PUT without a length (raw: http.client always adds one)
    out = h.raw(b"PUT /v1/kv/c HTTP/1.1\r\nHost: t\r\nX-API-Key: k1\r\nConnection: close\r\n\r\n")
    assert out.startswith(b"HTTP/1.1 411") and b"\r\nCache-Control: no-store\r\n" in out, out
    # 503: shed past max_in_flight while a request blocks (an instance of
    # its own: with max_in_flight = 1 the table above would race the
    # previous request's completion)
    h = hale_factory(env={"HALE_SECRET_DIR": str(sd), "APP_SERVER__MAX_IN_FLIGHT": "1",
                          "APP_SERVER__WORKERS": "2"})
    t = threading.Thread(target=lambda: h.request("GET", "/debug/block?ms=3000", timeout=10))
    t.start()
    time.sleep(0.3)  # in its handler: new connections go to the other worker
    try:
        deadline = time.time() + 5
        while True:
            st, rh, _ = h.request("GET", "/v1/kv/a", headers=K)
            if st == 503 or time.time() > deadline:
                break
            time.sleep(0.02)
        assert st == 503 and rh.get("cache-control") == "no-store", (st, rh)
    finally:
        t.join()


# ---- Last-Modified, If-Modified-Since, If-Unmodified-Since -------------------

def httpdate(t):
    return email.utils.formatdate(t, usegmt=True)


def parse_httpdate(s):
    return email.utils.parsedate_to_datetime(s).timestamp()


def test_last_modified_and_if_modified_since(hale):  # R: A2 A10
    t0 = time.time()
    etag = put(hale, "lm", b"one")
    st, hd, _ = hale.request("GET", "/v1/kv/lm")
    lm = hd["last-modified"]
    assert lm.endswith(" GMT") and int(t0) - 1 <= parse_httpdate(lm) <= time.time(), lm
    assert httpdate(parse_httpdate(lm)) == lm  # IMF-fixdate
    for m in ("GET", "HEAD"):
        st, h2, body = hale.request(m, "/v1/kv/lm", headers={"If-Modified-Since": lm})
        assert st == 304 and body == b"", m
        assert h2["last-modified"] == lm and h2["etag"] == etag and h2["cache-control"] == "no-cache"
    t = parse_httpdate(lm)
    older = httpdate(t - 86400)
    assert hale.request("GET", "/v1/kv/lm", headers={"If-Modified-Since": older})[0] == 200
    # the other two forms of HTTP-date (RFC 9110 §5.6.7) are accepted
    rfc850 = time.strftime("%A, %d-%b-%y %H:%M:%S GMT", time.gmtime(t))
    asctime = time.strftime("%a %b %e %H:%M:%S %Y", time.gmtime(t))
    for d in (rfc850, asctime):
        assert hale.request("GET", "/v1/kv/lm", headers={"If-Modified-Since": d})[0] == 304, d
    # ignored: invalid, in the future, or If-None-Match present (it wins)
    for hd2 in ({"If-Modified-Since": "yesterday"},
                {"If-Modified-Since": httpdate(time.time() + 3600)},
                {"If-Modified-Since": lm, "If-None-Match": '"9991"'}):
        assert hale.request("GET", "/v1/kv/lm", headers=hd2)[0] == 200, hd2
    st, _, _ = raw_exchange(hale, ["If-Modified-Since: " + lm, "If-Modified-Since: " + lm], path="/v1/kv/lm")
    assert st == 200  # more than one line: ignored (§13.1.3)
    # a later write moves Last-Modified on
    time.sleep(1.1)
    put(hale, "lm", b"two")
    st, hd, body = hale.request("GET", "/v1/kv/lm", headers={"If-Modified-Since": lm})
    assert st == 200 and body == b"two" and parse_httpdate(hd["last-modified"]) > t


def test_if_unmodified_since_on_reads_and_writes(hale):  # R: A1 A2
    put(hale, "u", b"one")
    lm = hale.request("GET", "/v1/kv/u")[1]["last-modified"]
    t = parse_httpdate(lm)
    old = httpdate(t - 60)
    assert hale.request("GET", "/v1/kv/u", headers={"If-Unmodified-Since": old})[0] == 412
    assert hale.request("GET", "/v1/kv/u", headers={"If-Unmodified-Since": lm})[0] == 200
    etag = hale.request("GET", "/v1/kv/u")[1]["etag"]
    # If-Match present: If-Unmodified-Since is not evaluated (§13.2.2)
    assert hale.request("GET", "/v1/kv/u", headers={"If-Match": etag, "If-Unmodified-Since": old})[0] == 200
    st, _, body = hale.request("PUT", "/v1/kv/u", b"two", {"If-Unmodified-Since": old})
    assert st == 412, body
    assert hale.request("DELETE", "/v1/kv/u", headers={"If-Unmodified-Since": old})[0] == 412
    assert hale.request("GET", "/v1/kv/u")[2] == b"one"
    assert hale.request("PUT", "/v1/kv/u", b"two", {"If-Unmodified-Since": lm})[0] == 200
    # no value, no date: the header is ignored
    assert hale.request("PUT", "/v1/kv/fresh", b"x", {"If-Unmodified-Since": old})[0] == 201
    assert hale.request("PUT", "/v1/kv/u", b"3", {"If-Unmodified-Since": "not a date"})[0] == 200


def test_old_sqlite_database_gains_write_times(hale_factory, tmp_path):  # R: A2 A6
    """A database written before values had a write time opens, its rows
    answer without Last-Modified until they are written again."""
    import sqlite3
    db = tmp_path / "old.db"
    c = sqlite3.connect(str(db))
    c.executescript(
        "PRAGMA journal_mode=WAL;"
        "CREATE TABLE kv (key BLOB PRIMARY KEY, value BLOB NOT NULL, ctype TEXT NOT NULL,"
        " version INTEGER NOT NULL) WITHOUT ROWID;"
        "CREATE TABLE hale_meta (name TEXT PRIMARY KEY, value INTEGER NOT NULL);"
        "INSERT INTO hale_meta VALUES ('next_version', 8);"
        "INSERT INTO kv VALUES (CAST('old' AS BLOB), CAST('v' AS BLOB), 'text/plain', 7);")
    c.close()
    h = hale_factory(env={"DATABASE_URL": "", "APP_DATABASE__SQLITE_PATH": str(db)})
    st, hd, body = h.request("GET", "/v1/kv/old")
    assert st == 200 and body == b"v" and hd["etag"] == '"7"' and "last-modified" not in hd
    assert h.request("GET", "/v1/kv/old", headers={"If-Modified-Since": httpdate(time.time())})[0] == 200
    assert h.request("PUT", "/v1/kv/old", b"w")[0] == 200
    assert "last-modified" in h.request("GET", "/v1/kv/old")[1]
