"""Y6: SIGKILL during a write load loses no acknowledged write (R: Y6 A6).

Each round: writers send PUTs with unique keys and values over keep-alive
connections and record every 2xx; hale is SIGKILLed at a random moment;
a new hale on the same database must return every acknowledged value.
The restarted hale is the next round's target, so a round costs one start.
Rounds: HALE_DURABILITY_ROUNDS_SQLITE (50) and _PG (20)."""
import http.client
import os
import random
import signal
import tempfile
import threading
import time
import uuid

import backends
from conftest import Hale

WRITERS = 4


def write_until_killed(h, tag, acked, lock):
    c = http.client.HTTPConnection("127.0.0.1", h.port, timeout=10)
    i = 0
    try:
        while True:
            key = "%s-%d" % (tag, i)
            val = uuid.uuid4().hex.encode()
            c.request("PUT", "/v1/kv/" + key, body=val)
            r = c.getresponse()
            r.read()
            if 200 <= r.status < 300:
                with lock:
                    acked[key] = val
            i += 1
    except (OSError, http.client.HTTPException):
        pass  # the server died under us: this write was never acknowledged
    finally:
        c.close()


def verify(h, acked):
    c = h.conn(timeout=10)
    missing = []
    for key, val in acked.items():
        c.request("GET", "/v1/kv/" + key)
        r = c.getresponse()
        body = r.read()
        if r.status != 200 or body != val:
            missing.append((key, r.status))
    c.close()
    return missing


def rounds(kind, n, env, capsys):
    rng = random.Random(os.getpid() ^ int(time.time()))
    total = 0
    t_start = time.monotonic()
    h = Hale(env=env)
    try:
        for rnd in range(n):
            acked, lock = {}, threading.Lock()
            ts = [threading.Thread(target=write_until_killed, args=(h, "r%d-w%d" % (rnd, w), acked, lock))
                  for w in range(WRITERS)]
            for t in ts:
                t.start()
            time.sleep(rng.uniform(0.05, 0.4))
            h.proc.send_signal(signal.SIGKILL)
            h.proc.wait()
            h.log.close()
            for t in ts:
                t.join(15)
            h = Hale(env=env)
            missing = verify(h, acked)
            assert not missing, "round %d: %d of %d acknowledged writes lost, e.g. %s" % (
                rnd, len(missing), len(acked), missing[:5])
            total += len(acked)
    finally:
        h.check_clean_exit()
    with capsys.disabled():
        print("\ndurability %s: %d SIGKILL rounds, %d acknowledged writes, all read back (%.1f s)"
              % (kind, n, total, time.monotonic() - t_start))
    assert total > n  # the load really wrote


def test_sigkill_loses_no_acknowledged_write_sqlite(capsys):  # R: Y6 A6
    d = tempfile.mkdtemp(prefix="hale-dur-")
    env = {**backends.env_for("sqlite"), "APP_DATABASE__SQLITE_PATH": os.path.join(d, "hale.db")}
    rounds("sqlite", int(os.environ.get("HALE_DURABILITY_ROUNDS_SQLITE", "50")), env, capsys)


def test_sigkill_loses_no_acknowledged_write_postgres(capsys):  # R: Y6 A6
    env = backends.env_for("pg")
    rounds("postgres", int(os.environ.get("HALE_DURABILITY_ROUNDS_PG", "20")), env, capsys)
