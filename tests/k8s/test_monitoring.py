"""The monitoring kit under deploy/monitoring (O5), statically. promtool's
check and unit tests run in scripts/k8s-check.sh (test_k8s_check.py); the
metric names against a live hale scrape are in test_binary.py."""
from __future__ import annotations

import configparser
import fnmatch
import json
import re
import subprocess
import sys
from datetime import datetime, timezone

import yaml

from conftest import ROOT, one, render

MON = ROOT / "deploy/monitoring"


def load(path):
    return yaml.safe_load((MON / path).read_text())


def test_adapter_rule_feeds_the_hpa_metric():  # R: O5, K3
    rule = load("prometheus-adapter-rules.yaml")["rules"]
    assert len(rule) == 1
    r = rule[0]
    hpa = one(render("production"), "HorizontalPodAutoscaler", "hale")
    pods_metric = next(m["pods"]["metric"]["name"] for m in hpa["spec"]["metrics"] if m["type"] == "Pods")
    assert r["name"]["as"] == pods_metric == "http_requests_per_second"
    assert re.match(r"^http_requests_total\{", r["seriesQuery"]) and 'job="hale"' in r["seriesQuery"]
    assert re.fullmatch(r"\^?http_requests_total\$?", r["name"]["matches"])
    assert r["resources"]["overrides"] == {"namespace": {"resource": "namespace"}, "pod": {"resource": "pod"}}
    q = r["metricsQuery"]
    assert "sum by (<<.GroupBy>>)" in q and "[2m])" in q
    # R: O5, K3: <<.LabelMatchers>> carries only namespace/pod: the job
    # matcher of the seriesQuery must be in the query itself
    m = re.search(r"rate\(<<\.Series>>\{([^}]*)\}\[2m\]\)", q)
    assert m, q
    assert set(m.group(1).split(",")) == {'job="hale"', "<<.LabelMatchers>>"}


def test_adapter_query_counts_each_pod_once_with_a_second_job(tmp_path):  # R: O5, K3
    """promtool runs the adapter's query (as k8s-check does) on series of
    job="hale" AND of a second job scraping the same pods."""
    tool = ROOT / "deploy/k8s/tools/k8scheck.py"
    test = (MON / "tests/adapter.test.yaml").read_text()
    assert 'job="kubernetes-pods",namespace="hale",pod="hale-a"' in test
    subprocess.run([sys.executable, str(tool), "prom-extract", "--rule", str(MON / "prometheusrule.yaml"),
                    "--adapter", str(MON / "prometheus-adapter-rules.yaml"), "--out", str(tmp_path)],
                   check=True)
    (tmp_path / "adapter.test.yaml").write_text(test)
    p = subprocess.run(["promtool", "test", "rules", "adapter.test.yaml"], cwd=tmp_path,
                       capture_output=True, text=True, check=False)
    assert p.returncode == 0, p.stdout + p.stderr


def test_alerts_select_hales_job_and_have_runbook_text():  # R: O5
    rule = load("prometheusrule.yaml")
    for g in rule["spec"]["groups"]:
        for r in g["rules"]:
            assert 'job="hale"' in r["expr"], r.get("alert")
            assert r["labels"]["severity"] in ("warning", "critical")
            assert r["annotations"]["summary"] and r["annotations"]["description"]
    tests = load("tests/hale-alerts.test.yaml")
    tested = {a["alertname"] for t in tests["tests"] for a in t.get("alert_rule_test", [])}
    alerts = {r["alert"] for g in rule["spec"]["groups"] for r in g["rules"]}
    assert alerts == tested, "every alert has a promtool unit test"


def test_servicemonitor_and_podmonitor_point_at_the_admin_port():  # R: O5
    docs = render("production")
    svc = one(docs, "Service", "hale")
    sm = one(docs, "ServiceMonitor", "hale")
    port = next(p for p in svc["spec"]["ports"] if p["name"] == sm["spec"]["endpoints"][0]["port"])
    assert port["port"] == 9090 and port["targetPort"] == "admin"
    pm = load("podmonitor/podmonitor.yaml")
    ep = pm["spec"]["podMetricsEndpoints"][0]
    assert ep["port"] == "admin" and ep["path"] == "/metrics"
    assert {"action": "replace", "targetLabel": "job", "replacement": "hale"} in ep["relabelings"]


def fluent_bit_sections(path):
    """Fluent Bit's classic format as (section, {key: value}) pairs."""
    out = []
    for raw in (MON / path).read_text().splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        if line.startswith("["):
            out.append((line.strip("[]"), {}))
        else:
            k, _, v = line.partition(" ")
            out[-1][1][k] = v.strip()
    return out


def test_fluent_bit_parses_hale_json_lines():  # R: O5, O1
    conf = fluent_bit_sections("fluent-bit/fluent-bit.conf")
    parsers = fluent_bit_sections("fluent-bit/parsers.conf")
    service = dict(conf)["SERVICE"]
    assert service["Parsers_File"] == "parsers.conf"
    inp = next(s for n, s in conf if n == "INPUT")
    # kubelet's file name: <pod>_<namespace>_<container>-<container id>.log
    assert fnmatch.fnmatch("/var/log/containers/hale-7c9d8-x2k4p_hale_hale-0123abcdef.log", inp["Path"])
    assert not fnmatch.fnmatch("/var/log/containers/other-1_hale_sidecar-0123.log", inp["Path"])
    flt = next(s for n, s in conf if n == "FILTER" and s["Name"] == "parser")
    parser = next(s for n, s in parsers if n == "PARSER" and s["Name"] == flt["Parser"])
    assert parser["Format"] == "json" and parser["Time_Key"] == "ts"
    # Fluent Bit's %L (fraction) is Python's %f
    fmt = parser["Time_Format"].replace("%L", "%f")
    line = '{"ts":"2026-11-26T09:32:36.524Z","level":"info","target":"service","msg":"listening"}'
    rec = json.loads(line)
    t = datetime.strptime(rec[parser["Time_Key"]], fmt).replace(tzinfo=timezone.utc)
    assert t.microsecond == 524000
    cm = one(render("deploy/monitoring/fluent-bit"), "ConfigMap")
    assert cm["metadata"]["namespace"] == "logging"
    assert set(cm["data"]) == {"fluent-bit.conf", "parsers.conf"}


def test_grafana_dashboard_is_valid_and_scoped_to_hale():  # R: O5
    dash = json.loads((MON / "grafana/hale-dashboard.json").read_text())
    assert dash["uid"] == "hale-overview" and dash["panels"]
    names = [v["name"] for v in dash["templating"]["list"]]
    assert names == ["datasource", "namespace"]
    for p in dash["panels"]:
        assert p["datasource"]["uid"] == "${datasource}"
        for t in p["targets"]:
            assert 'job="hale"' in t["expr"] and 'namespace="$namespace"' in t["expr"], p["title"]
    ids = [p["id"] for p in dash["panels"]]
    assert len(ids) == len(set(ids))


def promql_metric_names(expr: str) -> set:
    """Metric names in a PromQL expression (those hale exports or `up`)."""
    expr = re.sub(r'"[^"]*"', '""', expr)  # drop string literals
    words = set(re.findall(r"\b([a-zA-Z_:][a-zA-Z0-9_:]*)\b", expr))
    return {w for w in words if w.startswith(("http_", "hale_", "process_")) or w == "up"}


def monitoring_metric_names() -> set:
    names = set()
    for g in load("prometheusrule.yaml")["spec"]["groups"]:
        for r in g["rules"]:
            names |= promql_metric_names(r["expr"])
    for r in load("prometheus-adapter-rules.yaml")["rules"]:
        names |= promql_metric_names(r["seriesQuery"])
    dash = json.loads((MON / "grafana/hale-dashboard.json").read_text())
    for p in dash["panels"]:
        for t in p["targets"]:
            names |= promql_metric_names(t["expr"])
    return names


def test_monitoring_metric_name_extraction():  # R: O5
    names = monitoring_metric_names()
    assert {"http_requests_total", "http_request_duration_seconds_bucket", "hale_ready",
            "process_start_time_seconds", "up"} <= names
    assert not any(n.startswith("http_requests_per_second") for n in names)
