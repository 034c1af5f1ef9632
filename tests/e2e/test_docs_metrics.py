"""docs/observability.md's metrics table is a real scrape (R: O3, C5): the
families hale exposes on SQLite and on PostgreSQL + Redis, each with its
type, HELP text and labels, and nothing else. HALE_DOCS_WRITE=1 rewrites the
table from the scrape instead of comparing (labels of a family without a
series yet are kept from the table). The rejection reasons the engine can
count (hale_http_rejected_total{reason}) are each in docs/http-engine.md's
table: the reasons are read from the engine's source."""
import glob
import os
import re

import backends
from conftest import ROOT

DOC = os.path.join(ROOT, "docs/observability.md")
BEGIN, END = "<!-- metrics:begin -->\n", "<!-- metrics:end -->"
SAMPLE = re.compile(r"^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})? ")
LABEL = re.compile(r'([a-zA-Z_][a-zA-Z0-9_]*)="')


def scrape(h):
    """{family: {"type", "help", "labels": set}}"""
    st, _, body = h.request("GET", "/metrics", admin=True)
    assert st == 200
    fams = {}
    for line in body.decode().splitlines():
        if line.startswith("# HELP "):
            name, _, text = line[7:].partition(" ")
            fams.setdefault(name, {"labels": set()})["help"] = text
        elif line.startswith("# TYPE "):
            name, _, kind = line[7:].partition(" ")
            fams.setdefault(name, {"labels": set()})["type"] = kind
        elif line and not line.startswith("#"):
            m = SAMPLE.match(line)
            name = m.group(1)
            for suffix in ("_bucket", "_sum", "_count"):
                if name not in fams and name.endswith(suffix) and name[:-len(suffix)] in fams:
                    name = name[:-len(suffix)]
            if m.group(2):
                fams[name]["labels"] |= set(LABEL.findall(m.group(2))) - {"le", "quantile"}
            fams[name]["sampled"] = True
    return fams


def doc_rows(text):
    table = text.split(BEGIN, 1)[1].split(END, 1)[0]
    rows = {}
    for line in table.splitlines()[2:]:
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        name = cells[0].strip("`")
        labels = {l.strip().strip("`") for l in cells[2].split(",") if l.strip()}
        rows[name] = {"type": cells[1], "labels": labels, "help": cells[3]}
    return rows


def exercise(h):
    for path in ("/v1/kv/doc-a", "/v1/kv/doc-b"):
        assert h.request("PUT", path, b"v")[0] in (200, 201)
        assert h.request("GET", path)[0] == 200
        assert h.request("GET", path + "-missing")[0] == 404
    h.raw(b"GET / HTTP/1.1\r\n\r\n")  # one refusal: the reason label


def test_metrics_table_is_a_real_scrape(hale_factory):  # R: O3, C5
    fams = {}
    for kind in ("sqlite", "pg+redis"):
        h = hale_factory(env=backends.env_for(kind))
        exercise(h)
        for name, f in scrape(h).items():
            prev = fams.get(name)
            if prev:
                f["labels"] |= prev["labels"]
                f["sampled"] = f.get("sampled") or prev.get("sampled")
            fams[name] = f
    text = open(DOC).read()
    rows = doc_rows(text)
    if os.environ.get("HALE_DOCS_WRITE") == "1":
        out = ["| metric | type | labels | help |", "|---|---|---|---|"]
        for name, f in fams.items():
            labels = f["labels"] if f.get("sampled") or name not in rows else rows[name]["labels"]
            out.append("| `%s` | %s | %s | %s |" % (
                name, f["type"], ", ".join("`%s`" % l for l in sorted(labels)), f["help"]))
        head, rest = text.split(BEGIN, 1)
        open(DOC, "w").write(head + BEGIN + "\n".join(out) + "\n" + END + rest.split(END, 1)[1])
        rows = doc_rows(open(DOC).read())
    assert set(rows) == set(fams), "docs/observability.md lacks %s, has extra %s (HALE_DOCS_WRITE=1)" % (
        sorted(set(fams) - set(rows)), sorted(set(rows) - set(fams)))
    for name, f in fams.items():
        assert rows[name]["type"] == f["type"], name
        assert rows[name]["help"] == f["help"], name
        if f.get("sampled"):
            assert rows[name]["labels"] == f["labels"], (name, rows[name]["labels"], f["labels"])
    assert "hale_store_info" in rows


REASON = re.compile(r'(?:BAD\(|fail\(err, \d+, |refuse\(c, \d+, |reject_reason = )"([a-z_0-9]+)"')


def test_every_rejection_reason_is_documented():  # R: E6, C5
    src = "".join(open(p).read() for p in glob.glob(os.path.join(ROOT, "src/runtime/http/*.c")))
    reasons = set(REASON.findall(src))
    assert len(reasons) > 20, sorted(reasons)
    doc = open(os.path.join(ROOT, "docs/http-engine.md")).read()
    table = doc.split("## What it refuses", 1)[1].split("\n## ", 1)[0]
    documented = set(re.findall(r"`([a-z_0-9]+)`", table))
    assert reasons <= documented, "docs/http-engine.md lacks %s" % sorted(reasons - documented)
