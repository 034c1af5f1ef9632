"""`hale copy`: the move from the embedded SQLite store to PostgreSQL, end to
end, against the real PostgreSQL of scripts/services.sh: seeded through
hale's HTTP API, copied while the SQLite instance serves reads, interrupted
(SIGKILL) and resumed, verified, then served by hale on PostgreSQL.
(R: F5)"""
import hashlib
import os
import random
import re
import signal
import sqlite3
import struct
import subprocess
import threading
import time
import urllib.parse

import backends
from backends import psql
from conftest import HALE_BIN, ROOT

SQLITE = {"DATABASE_URL": "", "REDIS_URL": ""}


def copy_env(extra=None):
    e = {k: v for k, v in os.environ.items() if not k.startswith("APP_")}
    for k in ("DATABASE_URL", "REDIS_URL"):
        e.pop(k, None)
    e.update({"HALE_CONFIG_DIR": os.path.join(ROOT, "config"), "HALE_SECRET_DIR": "/nonexistent",
              "ASAN_OPTIONS": "detect_leaks=1:abort_on_error=0:exitcode=99",
              "UBSAN_OPTIONS": "print_stacktrace=1:halt_on_error=1:exitcode=98"})
    e.update(extra or {})
    return e


def run_copy(args, env=None, timeout=120):
    r = subprocess.run([HALE_BIN, "copy", *args], env=copy_env(env), capture_output=True, text=True,
                       timeout=timeout)
    assert "AddressSanitizer" not in r.stderr and "runtime error:" not in r.stderr, r.stderr
    return r


def schema_of(url):
    return urllib.parse.unquote(url).rsplit("=", 1)[1]


def verify_lines(out):
    """{'source': (count, sha), 'target': (count, sha)} from the copy's output."""
    got = {}
    for side, n, sha in re.findall(r"^verify: (source|target) (\d+) keys, sha256 ([0-9a-f]{64})$", out, re.M):
        got[side] = (int(n), sha)
    return got


def sqlite_digest(path):
    """The documented digest (docs/scaling.md), computed here from the file
    itself: SHA-256 over u32be(len) key, u64be version, u32be(len) content
    type, u32be(len) value, in key order."""
    db = sqlite3.connect("file:%s?mode=ro" % path, uri=True)
    try:
        h = hashlib.sha256()
        n = 0
        for key, value, ctype, version in db.execute("SELECT key, value, ctype, version FROM kv ORDER BY key"):
            ct = ctype.encode() if isinstance(ctype, str) else ctype
            h.update(struct.pack(">I", len(key)) + key + struct.pack(">Q", version))
            h.update(struct.pack(">I", len(ct)) + ct + struct.pack(">I", len(value)) + value)
            n += 1
        return n, h.hexdigest()
    finally:
        db.close()


def seed(h, n=150):
    """Keys through the HTTP API: text and binary values, several content
    types, rewritten keys (versions > 1) and deleted ones. Returns
    ({key: (body, content type, etag)}, deleted keys, the highest ETag)."""
    rnd = random.Random(20)
    live, deleted, top = {}, [], 0
    for i in range(n):
        key = "k%04d" % i if i % 10 else "ключ-%d" % i
        if i % 3 == 0:
            body, ct = bytes(rnd.randrange(256) for _ in range(rnd.randrange(1, 600))), "application/octet-stream"
        else:
            body, ct = ("value %d" % i).encode(), "text/plain; charset=utf-8" if i % 2 else "application/json"
        for round_ in range(1 + i % 4):  # versions > 1 for most keys
            st, hd, _ = h.request("PUT", "/v1/kv/" + urllib.parse.quote(key), body + b"#%d" % round_,
                                  {"Content-Type": ct})
            assert st in (200, 201), st
            top = max(top, int(hd["etag"].strip('"')))
        live[key] = (body + b"#%d" % round_, ct, hd["etag"])
        if i % 11 == 5:
            assert h.request("DELETE", "/v1/kv/" + urllib.parse.quote(key))[0] == 204
            deleted.append(key)
            del live[key]
    # the newest version belongs to a deleted key: its ETag must not come back
    st, hd, _ = h.request("PUT", "/v1/kv/gone-last", b"x")
    top = max(top, int(hd["etag"].strip('"')))
    assert h.request("DELETE", "/v1/kv/gone-last")[0] == 204
    deleted.append("gone-last")
    return live, deleted, top


class Readers:
    """Clients reading known keys from the serving SQLite instance while the
    copy runs; every answer is checked against what was written."""

    def __init__(self, h, live, threads=3):
        self.h, self.items = h, sorted(live.items())
        self.stop = threading.Event()
        self.reads, self.errors = 0, []
        self.lock = threading.Lock()
        self.threads = [threading.Thread(target=self.run, args=(i,), daemon=True) for i in range(threads)]

    def run(self, seed_):
        rnd = random.Random(seed_)
        while not self.stop.is_set():
            key, (body, ct, etag) = rnd.choice(self.items)
            try:
                st, hd, got = self.h.request("GET", "/v1/kv/" + urllib.parse.quote(key), timeout=10)
                ok = st == 200 and got == body and hd.get("etag") == etag
            except OSError as e:
                ok, st = False, repr(e)
            with self.lock:
                self.reads += 1
                if not ok:
                    self.errors.append((key, st))

    def __enter__(self):
        for t in self.threads:
            t.start()
        return self

    def __exit__(self, *exc):
        self.stop.set()
        for t in self.threads:
            t.join(15)


def test_copy_sqlite_to_postgres_under_read_load_with_resume(hale_factory):  # R: F5
    src = hale_factory(env=SQLITE)
    db_path = os.path.join(src.dir, "hale.db")
    live, deleted, top = seed(src)
    url = backends.new_pg_url()
    schema = schema_of(url)
    args = ["--from", "sqlite:" + db_path, "--to", url, "--batch", "7"]
    with Readers(src, live) as readers:
        # first run: killed (SIGKILL, no chance to clean up) after 3 batches
        p = subprocess.Popen([HALE_BIN, "copy", *args, "--pause", "100"], env=copy_env(),
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        seen = []
        for line in p.stdout:
            seen.append(line)
            if line.startswith("copy: batch 1:"):
                # no exclusive lock: the source takes a write while the copy
                # runs (after the copied range: the resumed run picks it up)
                st, hd, _ = src.request("PUT", "/v1/kv/zz-during-the-copy", b"late", {"Content-Type": "text/x-late"})
                assert st == 201
                live["zz-during-the-copy"] = (b"late", "text/x-late", hd["etag"])
                top = max(top, int(hd["etag"].strip('"')))
            if line.startswith("copy: batch 3:"):
                p.send_signal(signal.SIGKILL)
                break
        p.wait(30)
        assert p.returncode == -signal.SIGKILL, "".join(seen) + p.stderr.read()
        p.stdout.close()
        p.stderr.close()
        copied = int(psql("SELECT count(*) FROM %s.kv" % schema))
        assert 21 <= copied < len(live), copied
        progress = psql("SELECT value FROM %s.hale_meta WHERE name = 'copy_progress'" % schema).strip()
        assert progress.split(" ")[0] in ("21", "28"), progress
        # second run: resumes where the first stopped, finishes, verifies
        r = run_copy(args)
        assert r.returncode == 0, r.stdout + r.stderr
        m = re.search(r"^copy: resuming after (\d+) keys$", r.stdout, re.M)
        assert m and int(m.group(1)) == int(progress.split(" ")[0]), r.stdout
        assert re.search(r"^copy: batch 1: 7 keys \(%d so far\)$" % (int(m.group(1)) + 7), r.stdout, re.M), r.stdout
        assert "verify: OK" in r.stdout
        v = verify_lines(r.stdout)
        assert v["source"] == v["target"] == sqlite_digest(db_path), r.stdout
        assert v["source"][0] == len(live)
        m = re.search(r"^copy: done: (\d+) keys copied \((\d+) in this run", r.stdout, re.M)
        assert m and int(m.group(1)) == len(live) and int(m.group(2)) == len(live) - int(progress.split(" ")[0])
        m = re.search(r"next write gets version (\d+)", r.stdout)
        assert m and int(m.group(1)) > top, r.stdout
        time.sleep(0.2)
    assert readers.reads > 20 and not readers.errors, (readers.reads, readers.errors[:5])
    assert psql("SELECT count(*) FROM %s.hale_meta WHERE name = 'copy_progress'" % schema).strip() == "0"
    src.check_clean_exit()

    # the switch: hale on PostgreSQL serves every key as SQLite did
    pg = hale_factory(env=backends.env_for("pg", pg_url=url))
    for key, (body, ct, etag) in live.items():
        st, hd, got = pg.request("GET", "/v1/kv/" + urllib.parse.quote(key))
        assert (st, got, hd.get("content-type"), hd.get("etag")) == (200, body, ct, etag), key
        # the ETag a client holds still works as a precondition
        assert pg.request("GET", "/v1/kv/" + urllib.parse.quote(key), headers={"If-None-Match": etag})[0] == 304
    for key in deleted:
        assert pg.request("GET", "/v1/kv/" + urllib.parse.quote(key))[0] == 404, key
    st, hd, _ = pg.request("PUT", "/v1/kv/after-the-move", b"new")
    assert st == 201 and int(hd["etag"].strip('"')) > top
    key, (body, ct, etag) = sorted(live.items())[0]
    st, hd, _ = pg.request("PUT", "/v1/kv/" + urllib.parse.quote(key), b"cas", {"If-Match": etag})
    assert st == 200 and int(hd["etag"].strip('"')) > top


def test_second_pass_catches_up_and_a_mismatch_fails(hale_factory):  # R: F5
    src = hale_factory(env=SQLITE)
    db_path = os.path.join(src.dir, "hale.db")
    for i in range(30):
        assert src.request("PUT", "/v1/kv/p%02d" % i, b"v%d" % i)[0] == 201
    url = backends.new_pg_url()
    schema = schema_of(url)
    # no flags: the settings' names (database.sqlite_path -> database.url)
    env = {"APP_DATABASE__SQLITE_PATH": db_path, "DATABASE_URL": url}
    r = run_copy(["--batch", "8"], env)
    assert r.returncode == 0 and "verify: OK" in r.stdout, r.stdout + r.stderr
    # the source keeps taking writes: changed, deleted, new keys
    assert src.request("PUT", "/v1/kv/p03", b"changed", {"Content-Type": "text/x-new"})[0] == 200
    assert src.request("DELETE", "/v1/kv/p04")[0] == 204
    assert src.request("DELETE", "/v1/kv/p29")[0] == 204  # in the range after the last page
    assert src.request("PUT", "/v1/kv/p99", b"new")[0] == 201
    r = run_copy(["--verify-only"], env)
    assert r.returncode == 1 and "verify: MISMATCH" in r.stdout, r.stdout + r.stderr
    r = run_copy(["--batch", "8"], env)
    assert r.returncode == 0 and "verify: OK" in r.stdout, r.stdout + r.stderr
    assert "2 removed from the target" in r.stdout
    v = verify_lines(r.stdout)
    assert v["source"] == v["target"] == sqlite_digest(db_path) and v["source"][0] == 29
    assert psql("SELECT encode(value, 'escape') || ' ' || encode(ctype, 'escape') FROM %s.kv"
                " WHERE key = 'p03'" % schema).strip() == "changed text/x-new"
    # a target changed behind the copy's back: reported, exit 1, then repaired
    psql("UPDATE %s.kv SET value = 'tampered' WHERE key = 'p10'" % schema)
    r = run_copy(["--verify-only"], env)
    assert r.returncode == 1, r.stdout + r.stderr
    assert "verify: MISMATCH: first difference at key %s (hex): value or content type differs" \
        % b"p10".hex() in r.stdout, r.stdout
    v = verify_lines(r.stdout)
    assert v["source"][0] == v["target"][0] and v["source"][1] != v["target"][1]
    r = run_copy([], env)
    assert r.returncode == 0 and "verify: OK" in r.stdout, r.stdout + r.stderr
    # a key written on the target itself (after a switch) is never removed
    psql("INSERT INTO %s.kv (key, value, ctype, version) VALUES ('native', 'x', 'text/plain',"
         " nextval('%s.kv_version_seq'))" % (schema, schema))
    r = run_copy([], env)
    assert r.returncode == 1 and "only on the target" in r.stdout, r.stdout
    v = verify_lines(r.stdout)
    assert v["source"][0] == 29 and v["target"][0] == 30, r.stdout
    assert psql("SELECT count(*) FROM %s.kv WHERE key = 'native'" % schema).strip() == "1"


def test_copy_errors_are_clear_and_touch_nothing(hale_factory, tmp_path):  # R: F5
    src = hale_factory(env=SQLITE)
    assert src.request("PUT", "/v1/kv/a", b"1")[0] == 201
    db = "sqlite:" + os.path.join(src.dir, "hale.db")
    url = backends.new_pg_url()
    cases = [
        (["--from", "sqlite:" + str(tmp_path / "missing.db"), "--to", url], 78, "cannot read the source"),
        (["--from", "postgres://elsewhere/db", "--to", url], 78, "--from must be sqlite:PATH"),
        (["--from", db, "--to", "postgres://u:S3cr%zzet@127.0.0.1/db"], 78, "in the password"),
        (["--from", db, "--to", "mysql://u@h/db"], 78, "--to"),
        (["--from", db, "--to", url, "--batch", "0"], 78, "--batch"),
        (["--from", db, "--to", url, "--pause", "-1"], 78, "--pause"),
        (["--from", db, "--to", url, "--frobnicate"], 78, "unknown option"),
        (["--from", db, "--to"], 78, "a value is missing"),
        (["--from", db], 78, "no target"),
        (["--from", db, "--to", "postgres://u:S3cret@127.0.0.1:1/db"], 1, "the target"),
    ]
    for args, code, text in cases:
        r = run_copy(args, {"DATABASE_URL": ""})
        assert r.returncode == code and text in r.stderr, (args, r.returncode, r.stdout, r.stderr)
        assert "S3cr" not in r.stdout + r.stderr
    r = run_copy(["--help"])
    assert r.returncode == 0 and r.stdout.startswith("usage: hale copy"), r.stdout + r.stderr
    junk = tmp_path / "junk.db"
    junk.write_bytes(b"not a database at all" * 100)
    r = run_copy(["--from", "sqlite:%s" % junk, "--to", url])
    assert r.returncode == 78 and "not a hale SQLite store" in r.stderr, r.stderr
    assert psql("SELECT count(*) FROM information_schema.tables WHERE table_schema = '%s'"
                % schema_of(url)).strip() == "0"  # nothing was touched
    # a database that hale already serves (keys not from a copy) is refused
    pg = hale_factory(env=backends.env_for("pg", pg_url=url))
    assert pg.request("PUT", "/v1/kv/theirs", b"keep")[0] == 201
    r = run_copy(["--from", db, "--to", url])
    assert r.returncode == 1 and "did not write" in r.stderr, r.stdout + r.stderr
    assert pg.request("GET", "/v1/kv/theirs")[2] == b"keep"
    assert pg.request("GET", "/v1/kv/a")[0] == 404


def test_sigterm_stops_between_batches_and_the_copy_resumes(hale_factory):  # R: F5
    src = hale_factory(env=SQLITE)
    db_path = os.path.join(src.dir, "hale.db")
    for i in range(40):
        assert src.request("PUT", "/v1/kv/t%02d" % i, b"v%d" % i)[0] == 201
    url = backends.new_pg_url()
    args = ["--from", "sqlite:" + db_path, "--to", url, "--batch", "5"]
    p = subprocess.Popen([HALE_BIN, "copy", *args, "--pause", "300"], env=copy_env(), stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE, text=True)
    for line in p.stdout:
        if line.startswith("copy: batch 2:"):
            p.send_signal(signal.SIGTERM)
            break
    out, err = p.communicate(timeout=30)
    assert p.returncode == 1, out + err
    m = re.search(r"interrupted after (\d+) keys: run the same command again to resume", err)
    assert m and int(m.group(1)) in (10, 15), err
    assert "AddressSanitizer" not in err and "runtime error:" not in err, err
    assert int(psql("SELECT count(*) FROM %s.kv" % schema_of(url))) == int(m.group(1))
    r = run_copy(args)
    assert r.returncode == 0 and "resuming after %s keys" % m.group(1) in r.stdout, r.stdout + r.stderr
    assert verify_lines(r.stdout)["target"] == sqlite_digest(db_path) and "verify: OK" in r.stdout
