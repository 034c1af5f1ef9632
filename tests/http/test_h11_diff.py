"""Differential test of hale's request parser against h11 (R: E1, E6).

Every input (the corpus tests/http/corpus/*.http, plus seeded random
mutations of it) goes through both hale (tests/tools/http_decoder, one
process for the whole batch, each input also fed split at every position)
and h11 (h11.Connection(h11.SERVER), the python-hyper HTTP/1.1
implementation, pinned by scripts/install-lint-tools.sh). The rules:

  * hale never accepts what h11 refuses (one exception, REFUSED_BY_H11_ONLY:
    h11 refuses the leading empty lines RFC 9112 2.2 says a server SHOULD
    skip; hale is then compared with h11's parse of the input without them);
  * where both accept, they agree on method, target, version, headers
    (names lowercased), body (chunked decoded), bytes consumed (what is left
    belongs to a pipelined follower) and, for HTTP/1.1, keep-alive;
  * where hale refuses what h11 accepts, hale's reason must be in REFUSALS,
    which names the RFC 9112/9110 section that requires or allows the
    refusal, with the status hale must answer and a check that the input
    really has the fault (so a broad reason cannot hide a wrong refusal);
  * what hale accepts also passes a reference check of the target and Host
    grammar (RFC 3986), which h11 does not check;
  * no split of an input changes hale's answer (exit code 3 of the tool).

Env: HALE_HTTP_DECODER (default build/debug/http_decoder),
     H11_DIFF_MUTANTS (default 3000), H11_DIFF_SEED (default 14),
     HALE_TOOLS (the venv holding h11, default /opt/hale-tools).
"""
import collections
import glob
import ipaddress
import json
import os
import random
import re
import subprocess
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
CORPUS = os.path.join(ROOT, "tests/http/corpus")
DECODER = os.environ.get("HALE_HTTP_DECODER", os.path.join(ROOT, "build/debug/http_decoder"))
MUTANTS = int(os.environ.get("H11_DIFF_MUTANTS", "3000"))
SEED = int(os.environ.get("H11_DIFF_SEED", "14"))
H11_VERSION = "0.16.0"
MAX_HEAD, MAX_TARGET, MAX_FIELDS = 8192, 4096, 100  # the decoder's defaults
SPLIT_ALL_UNDER = 2048  # inputs this short are also fed split at every byte


def _import_h11():
    """h11 lives in the tools venv; /usr/bin/python3 runs pytest. It is pure
    Python, so the venv's site-packages is put on the path. Missing h11
    fails the test (scripts/install-lint-tools.sh installs it), never skips."""
    try:
        import h11  # noqa: F401
    except ImportError:
        venv = os.environ.get("HALE_TOOLS", "/opt/hale-tools")
        sys.path += glob.glob(os.path.join(venv, "lib/python3*/site-packages"))
    try:
        import h11
    except ImportError:
        pytest.fail("h11 is not installed: run scripts/install-lint-tools.sh")
    assert h11.__version__ == H11_VERSION, ("h11 pinned at " + H11_VERSION, h11.__version__)
    return h11


h11 = _import_h11()


# ---- h11's parse ---------------------------------------------------------

def h11_parse(data):
    """("ok", dict) | ("error", message) | ("incomplete", None)."""
    conn = h11.Connection(h11.SERVER, max_incomplete_event_size=1 << 24)
    if data:  # b"" would mean end of input to h11
        conn.receive_data(data)
    req, body = None, bytearray()
    try:
        while True:
            ev = conn.next_event()
            if ev is h11.NEED_DATA or ev is h11.PAUSED or isinstance(ev, h11.ConnectionClosed):
                return ("incomplete", None)
            if isinstance(ev, h11.Request):
                req = ev
            elif isinstance(ev, h11.Data):
                body += ev.data
            elif isinstance(ev, h11.EndOfMessage):
                break
    except h11.RemoteProtocolError as e:
        return ("error", str(e))
    left = len(conn.trailing_data[0])
    return ("ok", {
        "method": bytes(req.method), "target": bytes(req.target),
        "version": req.http_version.decode(),
        "headers": [(bytes(n), bytes(v)) for n, v in req.headers],
        "body": bytes(body), "consumed": len(data) - left,
        # h11 keeps its keep-alive verdict in the connection state (pinned h11)
        "keep_alive": conn._cstate.keep_alive,
    })


# ---- hale's parse --------------------------------------------------------

def hale_parse_batch(inputs, split_all):
    """One decoder process for many inputs: a list of result dicts, and the
    split mismatches the tool reported on stderr."""
    assert os.access(DECODER, os.X_OK), DECODER + " missing (build the tree, or set HALE_HTTP_DECODER)"
    payload = b"".join(b"%d\n" % len(d) + d for d in inputs)
    args = [DECODER, "--batch"] + (["--split-all"] if split_all else [])
    r = subprocess.run(args, input=payload, capture_output=True, timeout=600)
    assert r.returncode in (0, 3), (r.returncode, r.stderr[-3000:])
    lines = r.stdout.decode().splitlines()
    assert len(lines) == len(inputs), (len(lines), len(inputs), r.stderr[-2000:])
    return [json.loads(x) for x in lines], (r.stderr.decode(errors="replace") if r.returncode == 3 else "")


def b(s):
    return s.encode("latin-1")  # the tool writes each byte as one code point


# ---- reference grammar (RFC 3986, RFC 9110 4.2, RFC 9112 3.2) --------------

PCHAR = rb"(?:[A-Za-z0-9\-._~!$&'()*+,;=:@]|%[0-9A-Fa-f]{2})"
QUERY = rb"(?:\?(?:" + PCHAR + rb"|[/?])*)?"
REG_NAME = rb"(?:[A-Za-z0-9\-._~!$&'()*+,;=]|%[0-9A-Fa-f]{2})*"
ORIGIN_RE = re.compile(rb"(?:/" + PCHAR + rb"*)+" + QUERY)
ABS_RE = re.compile(rb"(?i:https?)://(?P<auth>[^/?#]*)(?P<path>(?:/" + PCHAR + rb"*)*" + QUERY + rb")")


def host_ok(h, allow_empty):
    """host [":" port] (RFC 3986 3.2.2, 3.2.3), no userinfo; an empty host
    only as the whole (empty) Host value (RFC 9110 7.2, 4.2.1)."""
    if h == b"":
        return allow_empty
    m = re.fullmatch(rb"(?P<host>\[[^\]]*\]|[^:\[\]]*)(?::[0-9]*)?", h)
    if not m or not m["host"]:
        return False
    host = m["host"]
    if host.startswith(b"["):
        inner = host[1:-1]
        if re.fullmatch(rb"[vV][0-9A-Fa-f]+\.[A-Za-z0-9\-._~!$&'()*+,;=:]+", inner):
            return True
        if b"%" in inner:  # zone ids (RFC 6874) are not RFC 3986 IPv6address
            return False
        try:
            ipaddress.IPv6Address(inner.decode("ascii"))
            return True
        except (ValueError, UnicodeDecodeError):
            return False
    return re.fullmatch(REG_NAME, host) is not None


def target_ok(method, target):
    if target == b"*":
        return method == b"OPTIONS"
    if ORIGIN_RE.fullmatch(target):
        return True
    m = ABS_RE.fullmatch(target)
    return bool(m) and host_ok(m["auth"], allow_empty=False)


# ---- what is in the raw input --------------------------------------------

LEADING_EMPTY = re.compile(rb"\A(?:\r?\n)+")


def raw_head(data):
    """The head as h11 delimits it (bare LFs allowed): request line and field
    lines, each without its line end."""
    data = LEADING_EMPTY.sub(b"", data)
    m = re.search(rb"\n\r?\n", data)
    head = data[:m.end()] if m else data
    lines = [ln[:-1] if ln.endswith(b"\r") else ln for ln in head.split(b"\n")]
    while lines and lines[-1] == b"":
        lines.pop()
    return head, lines


def fields_of(lines):
    out = []
    for ln in lines[1:]:
        name, _, value = ln.partition(b":")
        out.append((name.lower(), value.strip(b" \t")))
    return out


TCHAR = rb"[-!#$%&'*+.^_`|~0-9A-Za-z]"
QSTRING = rb'"(?:[\t \x21\x23-\x5b\x5d-\x7e\x80-\xff]|\\[\t \x21-\x7e\x80-\xff])*"'
CHUNK_EXT = (rb"(?:[ \t]*;[ \t]*" + TCHAR + rb"+(?:[ \t]*=[ \t]*(?:" + TCHAR + rb"+|" + QSTRING
             + rb"))?)*")
SIZE_LINE = re.compile(rb"(?P<size>[0-9A-Fa-f]{1,15})(?P<ext>" + CHUNK_EXT + rb")")
TRAILER_FIELD = re.compile(TCHAR + rb"+:[\t \x21-\x7e\x80-\xff]*")


def chunked_faults(body):
    """What is wrong in a chunked body by RFC 9112 7.1 (chunk = chunk-size
    [chunk-ext] CRLF chunk-data CRLF; 7.1.1 chunk-ext; 7.1.2 trailer field
    lines), with hale's bounds (15 hex digits, a size line and the trailer
    section within the head limit, the field count): a set of "bad",
    "too_large", "too_many"; empty when valid or merely incomplete."""
    faults, i = set(), 0
    while True:
        j = body.find(b"\n", i)
        if j < 0:
            if len(body) - i > MAX_HEAD:
                faults.add("bad")
            return faults
        line = body[i:j]
        if not line.endswith(b"\r") or b"\r" in line[:-1] or j + 1 - i > MAX_HEAD:
            return faults | {"bad"}
        m = SIZE_LINE.fullmatch(line[:-1])
        if not m:
            return faults | {"bad"}
        n = int(m["size"], 16)
        i = j + 1
        if n == 0:
            break
        if len(body) < i + n + 2:
            return faults if body[i + n:i + n + 2] in (b"", b"\r") else faults | {"bad"}
        if body[i + n:i + n + 2] != b"\r\n":
            return faults | {"bad"}
        i += n + 2
    start, count = i, 0
    while True:
        j = body.find(b"\n", i)
        if j < 0:
            if len(body) - start > MAX_HEAD:
                faults.add("too_large")
            return faults
        if j + 1 - start > MAX_HEAD:
            faults.add("too_large")
        line = body[i:j]
        if not line.endswith(b"\r") or b"\r" in line[:-1]:
            return faults | {"bad"}
        if line == b"\r":
            return faults
        if not TRAILER_FIELD.fullmatch(line[:-1]):
            faults.add("bad")
        count += 1
        if count > MAX_FIELDS:
            faults.add("too_many")
        i = j + 1


def body_of(data):
    data = LEADING_EMPTY.sub(b"", data)
    m = re.search(rb"\n\r?\n", data)
    return data[m.end():] if m else b""


def chunk_bws_normalized(data):
    """The input with each chunk-size line cut to its size: h11 refuses the
    whitespace RFC 9112 7.1.1 allows around ';' and '=' in a chunk extension
    (BWS), and drops extensions anyway. None when there is no such line."""
    head_len = len(data) - len(body_of(data))
    body, out, i, seen = data[head_len:], bytearray(), 0, False
    while True:
        j = body.find(b"\r\n", i)
        m = SIZE_LINE.fullmatch(body, i, j) if j >= 0 else None
        if not m:
            return None
        seen |= re.search(rb"[ \t]", m["ext"]) is not None
        out += m["size"] + b"\r\n"
        n = int(m["size"], 16)
        i = j + 2
        if n == 0:
            return data[:head_len] + bytes(out) + body[i:] if seen else None
        out += body[i:i + n + 2]
        i += n + 2


# ---- the refusals hale may make where h11 accepts --------------------------
# reason -> (status, the section requiring or allowing it, does the input
# have that fault: f(data, h11's parse)).

CTL = re.compile(rb"[\x00-\x08\x0a-\x1f\x7f]")


def _cl_values(data, r):
    return [v for n, v in fields_of(raw_head(data)[1]) if n == b"content-length"]


def _te(data):
    return [v for n, v in fields_of(raw_head(data)[1]) if n == b"transfer-encoding"]


def _host_mismatch(data, r):
    m = ABS_RE.fullmatch(r["target"])
    hosts = [v for n, v in r["headers"] if n == b"host"]
    return bool(m) and bool(hosts) and m["auth"].lower() != hosts[0].lower()


def _head_over(data, r):
    head = raw_head(data)[0]
    return len(head) > MAX_HEAD


def _chunk_fault(kind):
    return lambda data, r: any(n == b"transfer-encoding" for n, _ in r["headers"]) and \
        kind in chunked_faults(body_of(data))


REFUSALS = {
    "bare_lf": (400, "RFC 9112 2.2: lines end with CRLF; a recipient MAY (not must) take a bare LF",
                lambda d, r: re.search(rb"(?<!\r)\n", raw_head(d)[0]) is not None),
    "bare_cr": (400, "RFC 9112 2.2: a recipient of a bare CR MUST consider the element invalid",
                lambda d, r: re.search(rb"\r(?!\n)", raw_head(d)[0]) is not None),
    "obsolete_line_folding": (400, "RFC 9112 5.2: a server MUST reject obs-fold with 400 or replace it",
                              lambda d, r: any(ln[:1] in (b" ", b"\t") for ln in raw_head(d)[1][1:])),
    "bad_header_value": (400, "RFC 9110 5.5: field values have no CTL but HTAB; CR, LF, NUL MUST be "
                         "rejected or replaced, other CTLs are invalid too",
                         lambda d, r: any(CTL.search(v) for _, v in fields_of(raw_head(d)[1]))),
    "unsupported_version": (505, "RFC 9110 15.6.6, 2.5: a server may refuse a major version it does "
                            "not serve; RFC 9112 2.3",
                            lambda d, r: r["version"] not in ("1.0", "1.1")),
    "bad_target": (400, "RFC 9112 3.2: request-target is origin-, absolute-, authority- (CONNECT "
                   "only, not served) or asterisk-form (OPTIONS only, 3.2.4), of RFC 3986 characters; "
                   "RFC 9112 3: an invalid request-line SHOULD get 400; RFC 9110 4.2.4 (userinfo is an "
                   "error), 4.2.1 (empty host MUST be rejected)",
                   lambda d, r: not target_ok(r["method"], r["target"])),
    "uri_too_long": (414, "RFC 9112 3: a target longer than the server wishes to parse MUST get 414",
                     lambda d, r: len(r["target"]) > MAX_TARGET),
    "headers_too_large": (431, "RFC 9110 5.4: fields larger than the server wishes to process MUST "
                          "get a 4xx; RFC 6585 5 (431)",
                          lambda d, r: _head_over(d, r) or _chunk_fault("too_large")(d, r)),
    "too_many_headers": (431, "RFC 9110 5.4 (as above); RFC 6585 5",
                         lambda d, r: len(raw_head(d)[1]) - 1 > MAX_FIELDS or _chunk_fault("too_many")(d, r)),
    "bad_host": (400, "RFC 9112 3.2: a Host field with an invalid value MUST get 400 (host [\":\" port], "
                 "RFC 3986 3.2.2; empty only as a whole, RFC 9110 7.2)",
                 lambda d, r: not host_ok([v for n, v in r["headers"] if n == b"host"][0], True)),
    "host_mismatch": (400, "RFC 9112 3.2: a client MUST send Host identical to the target URI's "
                      "authority; refusing the contradiction avoids routing one way and checking "
                      "another (RFC 9110 15.5.1)", _host_mismatch),
    "bad_content_length": (400, "RFC 9112 6.3 (5): an invalid Content-Length MUST get 400; RFC 9110 "
                           "8.6: Content-Length = 1*DIGIT, recipients guard against overflow (hale: "
                           "at most 19 digits)",
                           lambda d, r: any(not re.fullmatch(rb"[0-9]{1,19}", v) for v in _cl_values(d, r))),
    "duplicate_content_length": (400, "RFC 9110 8.6: a repeated equal Content-Length MAY be rejected "
                                 "as invalid; RFC 9112 6.3 (5)",
                                 lambda d, r: len(_cl_values(d, r)) > 1),
    "content_length_with_transfer_encoding": (400, "RFC 9112 6.1: a server MAY reject a request with "
                                              "both Content-Length and Transfer-Encoding; 6.3 (3)",
                                              lambda d, r: bool(_cl_values(d, r)) and bool(_te(d))),
    "transfer_encoding_in_http10": (400, "RFC 9112 6.1: an HTTP/1.0 message with Transfer-Encoding MUST "
                                    "be treated as faulty framing",
                                    lambda d, r: r["version"] == "1.0" and bool(_te(d))),
    "expectation_failed": (417, "RFC 9110 10.1.1: an Expect other than 100-continue MAY get 417",
                           lambda d, r: r["version"] == "1.1" and any(
                               n == b"expect" and v.lower() != b"100-continue" for n, v in r["headers"])),
    "bad_chunk": (400, "RFC 9112 7.1 (chunk = chunk-size [chunk-ext] CRLF chunk-data CRLF; sizes "
                  "guarded against overflow: hale takes 15 hex digits), 7.1.1 (chunk-ext grammar), "
                  "7.1.2 (trailer fields are field lines)", _chunk_fault("bad")),
}

# h11 refuses what RFC 9112 says a server SHOULD accept: hale takes it.
# name -> (why, the input h11 is given instead, or None when it does not apply)
REFUSED_BY_H11_ONLY = {
    "leading empty lines": ("RFC 9112 2.2: a server SHOULD ignore at least one empty line before "
                            "the request-line (hale: up to 8); h11 refuses any",
                            lambda d: LEADING_EMPTY.sub(b"", d) if LEADING_EMPTY.match(d) else None),
    "chunk-ext BWS": ("RFC 9112 7.1.1: chunk-ext = *( BWS \";\" BWS name [ BWS \"=\" BWS value ] ); "
                      "h11 takes no whitespace before ';'", chunk_bws_normalized),
}


# ---- the inputs ------------------------------------------------------------

def corpus():
    files = sorted(glob.glob(os.path.join(CORPUS, "*.http")))
    assert len(files) >= 100, "the corpus went missing"
    return [(os.path.basename(f)[:-5], open(f, "rb").read()) for f in files]


INSERTS = [b"\r", b"\n", b" ", b"\x00", b":", b"\t", b"\r\n", b",", b";", b"\x7f", b"\x0b", b"%", b"\r\n "]


def mutate(rng, data):
    d = bytearray(data)
    for _ in range(rng.randint(1, 3)):
        op = rng.randrange(8)
        pos = rng.randint(0, len(d))
        if op == 0 and d:  # flip a byte
            i = rng.randrange(len(d))
            d[i] = rng.choice([rng.randrange(256), d[i] ^ (1 << rng.randrange(8)), rng.choice(b"\r\n :\t\x00")])
        elif op in (1, 2):  # insert a separator
            d[pos:pos] = rng.choice(INSERTS)
        elif op == 3 and d:  # delete a byte
            del d[rng.randrange(len(d))]
        elif op == 4:  # duplicate a line
            lines = bytes(d).split(b"\r\n")
            k = rng.randrange(len(lines))
            lines.insert(k, lines[k])
            d = bytearray(b"\r\n".join(lines))
        elif op == 5 and d:  # truncate
            del d[rng.randint(1, len(d)):]
        elif op == 6:  # a CRLF becomes LF, or a LF becomes CRLF
            s = bytes(d)
            idx = [m.start() for m in re.finditer(rb"\r\n", s)]
            if idx:
                i = rng.choice(idx)
                del d[i]
        elif op == 7 and d:  # case of a run of bytes
            i = rng.randrange(len(d))
            d[i:i + 8] = bytes(d[i:i + 8]).swapcase()
    return bytes(d)


VCHARS = bytes(range(0x21, 0x7f)) + b"\x80\xc3\xa9\xff"


def mutate_benign(rng, data):
    """Changes that keep a valid request valid, so that agreement on accepted
    requests is checked beyond the corpus: OWS around values, the case of
    names, new fields with any visible bytes, another request behind."""
    d = data
    for _ in range(rng.randint(1, 3)):
        op = rng.randrange(5)
        lines = d.split(b"\r\n")
        k = rng.randrange(1, len(lines)) if len(lines) > 2 else None
        if op == 0 and k and b":" in lines[k]:
            name, _, value = lines[k].partition(b":")
            lines[k] = name + b":" + rng.choice([b" ", b"\t", b"  \t", b""]) + value + rng.choice([b"", b" ", b"\t "])
        elif op == 1 and k and b":" in lines[k]:
            name, _, value = lines[k].partition(b":")
            lines[k] = name.swapcase() + b":" + value
        elif op == 2 and k:
            val = bytes(rng.choice(VCHARS) for _ in range(rng.randint(0, 12)))
            lines.insert(k, b"X-R%d:%s%s" % (rng.randrange(100), rng.choice([b" ", b""]), val))
        elif op == 3:
            d = d + rng.choice([b"GET /next HTTP/1.1\r\nHost: x\r\n\r\n", b"G", b"\r\n"])
            continue
        elif op == 4 and k:
            lines.insert(k, b"Connection: " + rng.choice([b"close", b"keep-alive", b"Close, x", b"upgrade"]))
        d = b"\r\n".join(lines)
    return d


def all_inputs():
    base = corpus()
    rng = random.Random(SEED)
    out = list(base)
    for k in range(MUTANTS):
        name, data = rng.choice(base)
        if k % 3 == 0:
            out.append(("%s~b%d" % (name, k), mutate_benign(rng, data)))
        else:
            out.append(("%s~m%d" % (name, k), mutate(rng, data)))
    return out


# ---- the comparison --------------------------------------------------------

def _te_lower(n, v):
    # h11 lowercases the Transfer-Encoding value (coding names are
    # case-insensitive, RFC 9110 10.1.4); hale keeps the bytes
    return (n, v.lower() if n == b"transfer-encoding" else v)


def hale_view(h):
    return {
        "method": b(h["method"]), "target": b(h["target"]), "version": h["version"],
        "headers": [_te_lower(b(n).lower(), b(v)) for n, v in h["headers"]],
        "body": bytes.fromhex(h["body_hex"]), "consumed": h["consumed"],
    }


def h11_view(r):
    hdrs = [_te_lower(n, v) for n, v in r["headers"]]
    return {k: r[k] for k in ("method", "target", "version", "body", "consumed")} | {"headers": hdrs}


def compare(name, data, hale):
    """A category for the tally, or a failure message (str starting '!')."""
    kind, r = h11_parse(data)
    excused = None
    if kind == "error" and hale["result"] == "ok":
        for why, (rfc, alt) in REFUSED_BY_H11_ONLY.items():
            other = alt(data)
            if other is not None:
                kind, r = h11_parse(other)
                if kind == "ok":
                    r["consumed"] += len(data) - len(other)
                    excused = why
                    break
        if kind == "error":
            return "!hale accepts what h11 refuses (%s): hale %s" % (r, hale)
    if hale["result"] == "ok":
        if kind == "incomplete":
            return "!hale accepts what h11 still waits on: %s" % hale
        hv, xv = hale_view(hale), h11_view(r)
        if hv != xv:
            diff = {k: (hv[k], xv[k]) for k in hv if hv[k] != xv[k]}
            return "!hale and h11 disagree (hale, h11): %r" % diff
        if r["version"] == "1.1" and hale["keep_alive"] != r["keep_alive"]:
            return "!keep-alive differs: hale %s, h11 %s" % (hale["keep_alive"], r["keep_alive"])
        m = ABS_RE.fullmatch(hv["target"])
        want = (b"*", "asterisk") if hv["target"] == b"*" else (m["path"], "absolute") if m else \
            (hv["target"], "origin")
        if (b(hale["path"]), hale["form"]) != want:
            return "!hale's routed path/form %r, expected %r" % ((hale["path"], hale["form"]), want)
        if not target_ok(hv["method"], hv["target"]):
            return "!hale accepted a target outside RFC 3986/9112: %r" % hv["target"]
        hosts = [v for n, v in hv["headers"] if n == b"host"]
        if hosts and not host_ok(hosts[0], True):
            return "!hale accepted an invalid Host: %r" % hosts[0]
        return "accepted by both" + (" (h11 given the input without its %s)" % excused if excused else "")
    if hale["result"] == "incomplete":
        if kind == "ok":
            return "!hale waits where h11 has a whole request: %r" % r
        return "incomplete in hale, %s in h11" % kind
    # hale refused
    if kind != "ok":
        return "refused by both" if kind == "error" else "refused by hale, h11 waits"
    reason = hale["reason"]
    if reason not in REFUSALS:
        return "!hale refused with %r, which no RFC entry covers; h11 accepted %r" % (reason, r)
    status, rfc, has = REFUSALS[reason]
    if hale["status"] != status:
        return "!%s answered %d, expected %d" % (reason, hale["status"], status)
    if not has(data, r):
        return "!hale refused with %r, but the input has no such fault; h11 accepted %r" % (reason, r)
    return "refused by hale only: " + reason


def test_h11_differential():  # R: E1, E6
    inputs = all_inputs()
    short = [(n, d) for n, d in inputs if len(d) <= SPLIT_ALL_UNDER]
    long_ = [(n, d) for n, d in inputs if len(d) > SPLIT_ALL_UNDER]
    res_s, split_s = hale_parse_batch([d for _, d in short], split_all=True)
    res_l, split_l = hale_parse_batch([d for _, d in long_], split_all=False)
    assert not split_s and not split_l, "a split changed hale's answer:\n" + split_s + split_l
    tally = collections.Counter()
    failures = []
    for (name, data), hale in zip(short + long_, res_s + res_l):
        cat = compare(name, data, hale)
        if cat.startswith("!"):
            failures.append("%s %r\n    %s" % (name, data[:300], cat[1:]))
            cat = "FAILED"
        tally[cat] += 1
    report = ["h11 differential: %d inputs (%d corpus, %d mutants, seed %d)"
              % (len(inputs), len(corpus()), MUTANTS, SEED)]
    report += ["  %6d  %s" % (n, c) for c, n in sorted(tally.items(), key=lambda x: (-x[1], x[0]))]
    print("\n".join(report))
    os.makedirs(os.path.join(ROOT, "build"), exist_ok=True)
    with open(os.path.join(ROOT, "build/h11-diff-summary.txt"), "w") as f:
        f.write("\n".join(report + failures) + "\n")
    assert not failures, "%d failures:\n%s" % (len(failures), "\n".join(failures[:25]))


@pytest.mark.parametrize("name", [n for n, _ in corpus()])
def test_corpus_entry(name):  # R: E1, E6
    """Each corpus entry alone, so a failure names it."""
    data = open(os.path.join(CORPUS, name + ".http"), "rb").read()
    (hale,), split = hale_parse_batch([data], split_all=len(data) <= SPLIT_ALL_UNDER)
    assert not split, split
    cat = compare(name, data, hale)
    assert not cat.startswith("!"), cat[1:]


def test_refusal_table_names_sections():  # R: E6
    for reason, (status, rfc, _) in REFUSALS.items():
        assert status in (400, 413, 414, 417, 431, 501, 505), reason
        assert re.search(r"RFC (9112|9110|6585) [0-9]", rfc), reason
