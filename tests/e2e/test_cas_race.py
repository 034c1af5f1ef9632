"""Compare-and-swap across replicas: many clients increment one counter with
If-Match through two hale instances sharing PostgreSQL (and, in the second
run, a Redis cache). The final value must equal the number of successful
swaps: no lost update, no double apply. (R: A1 A6 A7)"""
import threading

import pytest

import backends


CLIENTS = 8
ATTEMPTS = 40


@pytest.mark.parametrize("kind", ["pg", "pg+redis"])
def test_cas_increments_through_two_instances(hale_factory, kind, capsys):  # R: A1 A6 A7
    env = backends.env_for(kind)  # one schema, shared
    env["APP_SERVER__WORKERS"] = "4"
    a = hale_factory(env=env)
    b = hale_factory(env=env)
    assert a.request("PUT", "/v1/kv/counter", b"0")[0] == 201
    lock = threading.Lock()
    counts = {"ok": 0, "conflict": 0, "other": []}

    def client(cid):
        conns = [h.conn(timeout=15) for h in (a, b)]
        try:
            for i in range(ATTEMPTS):
                c = conns[(cid + i) % 2]  # read on one instance ...
                c.request("GET", "/v1/kv/counter")
                r = c.getresponse()
                body = r.read()
                if r.status != 200:
                    with lock:
                        counts["other"].append(("GET", r.status))
                    continue
                etag = r.getheader("ETag")
                w = conns[(cid + i + 1) % 2]  # ... swap on the other
                w.request("PUT", "/v1/kv/counter", body=b"%d" % (int(body) + 1), headers={"If-Match": etag})
                r = w.getresponse()
                r.read()
                with lock:
                    if r.status == 200:
                        counts["ok"] += 1
                    elif r.status == 412:
                        counts["conflict"] += 1
                    else:
                        counts["other"].append(("PUT", r.status))
        finally:
            for c in conns:
                c.close()

    ts = [threading.Thread(target=client, args=(i,)) for i in range(CLIENTS)]
    for t in ts:
        t.start()
    for t in ts:
        t.join(120)
    assert not counts["other"], counts["other"][:10]
    for h in (a, b):
        st, _, body = h.request("GET", "/v1/kv/counter")
        assert st == 200 and int(body) == counts["ok"], (int(body), counts)
    assert counts["ok"] > 0 and counts["conflict"] > 0  # there was contention
    with capsys.disabled():
        print("\ncas race %s: %d clients x %d attempts, %d swaps, %d conflicts (412), final value %d"
              % (kind, CLIENTS, ATTEMPTS, counts["ok"], counts["conflict"], counts["ok"]))
