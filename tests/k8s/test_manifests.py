"""Structural checks of the rendered manifests (K1-K4, L1, O5).

These read what `kubectl kustomize` produces, i.e. what a cluster would get.
"""
from __future__ import annotations

import re
import tomllib

import pytest
import yaml

from conftest import OVERLAYS, ROOT, container, of_kind, one, port_of, render, selects

GUIDE_HPA_BEHAVIOR = {
    "scaleDown": {"stabilizationWindowSeconds": 300,
                  "policies": [{"type": "Percent", "value": 50, "periodSeconds": 60}]},
    "scaleUp": {"stabilizationWindowSeconds": 60,
                "policies": [{"type": "Percent", "value": 100, "periodSeconds": 30}]},
}


def deployments(docs):
    ds = of_kind(docs, "Deployment")
    assert ds, "no Deployment rendered"
    return ds


def duration_s(text: str) -> float:
    units = {"ms": 0.001, "s": 1, "m": 60, "h": 3600}
    parts = re.findall(r"(\d+(?:\.\d+)?)(ms|s|m|h)", text)
    assert parts and "".join(a + b for a, b in parts) == text, f"bad duration {text!r}"
    return sum(float(a) * units[b] for a, b in parts)


def effective_config(docs, deploy):
    """The settings hale reads from the mounted ConfigMap: default.toml, then
    ${RUN_ENV}.toml, as nested dicts (later file wins per key)."""
    c = container(deploy)
    env = {e["name"]: e.get("value") for e in c.get("env", [])}
    vols = {v["name"]: v for v in deploy["spec"]["template"]["spec"]["volumes"]}
    mount = next(m for m in c["volumeMounts"] if m["mountPath"] == "/app/config")
    cm = one(docs, "ConfigMap", vols[mount["name"]]["configMap"]["name"])
    merged: dict = {}
    for fname in ("default.toml", f"{env.get('RUN_ENV', 'dev')}.toml"):
        for section, values in tomllib.loads(cm["data"][fname]).items():
            merged.setdefault(section, {}).update(values)
    return merged, env


# ---------------------------------------------------------------- K1 probes

def test_probes_on_hale_paths_and_ports(overlay):  # R: K1, H1, H2, H3
    name, docs = overlay
    for d in deployments(docs):
        c = container(d)
        assert port_of(c, "http") == 8080 and port_of(c, "admin") == 9090
        want = {"startupProbe": ("/health/startup", 8080),
                "readinessProbe": ("/health/readiness", 8080),
                "livenessProbe": ("/health/liveness", 9090)}
        for probe, (path, port) in want.items():
            get = c[probe]["httpGet"]
            assert get["path"] == path, f"{name}/{d['metadata']['name']} {probe}"
            assert port_of(c, get["port"]) == port, f"{name}/{d['metadata']['name']} {probe} port"
        # the startup budget covers dependency backoff: at least 30 s
        sp = c["startupProbe"]
        assert sp["periodSeconds"] * sp["failureThreshold"] >= 30


# ------------------------------------------------------- K1/L1 termination

def test_grace_period_exceeds_drain_delay_plus_timeout(overlay):  # R: K1, L1
    name, docs = overlay
    for d in deployments(docs):
        cfg, env = effective_config(docs, d)
        drain = duration_s(cfg.get("shutdown", {}).get("drain_delay", "5s"))
        timeout = duration_s(cfg.get("shutdown", {}).get("timeout", "20s"))
        assert (drain, timeout) == (5, 20)
        pod = d["spec"]["template"]["spec"]
        pre = container(d).get("lifecycle", {}).get("preStop", {})
        pre_s = pre.get("sleep", {}).get("seconds", 0)
        assert not pre or "sleep" in pre, "the image has no shell: no exec preStop"
        grace = pod["terminationGracePeriodSeconds"]
        assert grace == 30
        assert grace - (pre_s + drain + timeout) >= 5, "a stated margin of 5 s"
        # every inner deadline shorter than the one containing it (L1)
        stmt = duration_s(cfg.get("database", {}).get("statement_timeout", "2s"))
        assert stmt < timeout


def test_no_prestop(overlay):  # R: K1, L1
    _, docs = overlay
    for d in deployments(docs):
        assert "lifecycle" not in container(d), "hale drains by itself: no preStop"


# ------------------------------------------------------------ K1 security

def test_restricted_security_context(overlay):  # R: K1, D3
    name, docs = overlay
    for d in deployments(docs):
        pod = d["spec"]["template"]["spec"]
        psc = pod["securityContext"]
        assert psc["runAsNonRoot"] is True and psc["runAsUser"] == 65532
        assert psc["runAsGroup"] == 65532 and psc["fsGroup"] == 65532
        assert psc["seccompProfile"] == {"type": "RuntimeDefault"}
        assert pod["automountServiceAccountToken"] is False
        assert pod["serviceAccountName"] == "hale"
        # Service links would put HALE_PORT=tcp://... into hale's HALE_ env space
        assert pod["enableServiceLinks"] is False
        sc = container(d)["securityContext"]
        assert sc["readOnlyRootFilesystem"] is True
        assert sc["allowPrivilegeEscalation"] is False
        assert sc["capabilities"] == {"drop": ["ALL"]}
        assert sc["runAsNonRoot"] is True and sc["runAsUser"] == 65532
        assert sc.get("privileged") is False
    sa = one(docs, "ServiceAccount", "hale")
    assert sa["automountServiceAccountToken"] is False
    ns = one(docs, "Namespace", "hale")
    assert ns["metadata"]["labels"]["pod-security.kubernetes.io/enforce"] == "restricted"


def test_resources_requests_and_limits(overlay):  # R: K1
    _, docs = overlay
    for d in deployments(docs):
        res = container(d)["resources"]
        for k in ("requests", "limits"):
            assert {"cpu", "memory"} <= set(res[k])
        assert container(d)["image"].split("/")[-1].startswith("hale:")


def test_config_secret_and_writable_mounts(overlay):  # R: K1, C2, C4
    name, docs = overlay
    for d in deployments(docs):
        pod = d["spec"]["template"]["spec"]
        c = container(d)
        vols = {v["name"]: v for v in pod["volumes"]}
        mounts = {m["mountPath"]: m for m in c["volumeMounts"]}
        cfg = vols[mounts["/app/config"]["name"]]
        assert mounts["/app/config"]["readOnly"] is True
        cm = one(docs, "ConfigMap", cfg["configMap"]["name"])
        assert cm["metadata"]["name"].startswith("hale-config-"), "content-hashed name"
        assert {"default.toml", "production.toml"} <= set(cm["data"])
        sec = vols[mounts["/var/secrets"]["name"]]["secret"]
        assert sec["secretName"] == "hale-secrets"
        assert sec["defaultMode"] == 0o440 and mounts["/var/secrets"]["readOnly"] is True
        for path in ("/app/data", "/tmp"):
            assert "emptyDir" in vols[mounts[path]["name"]]
        env = {e["name"]: e.get("value") for e in c["env"]}
        assert env["RUN_ENV"] == "production"
        assert env["HALE_CONFIG_DIR"] == "/app/config"
        # secrets come as files, never as plain env values
        assert not any("valueFrom" in e and "secretKeyRef" in e["valueFrom"] for e in c["env"])


def test_prometheus_scrape_annotations(overlay):  # R: K1, O3
    _, docs = overlay
    for d in deployments(docs):
        ann = d["spec"]["template"]["metadata"]["annotations"]
        assert ann["prometheus.io/scrape"] == "true"
        assert int(ann["prometheus.io/port"]) == port_of(container(d), "admin") == 9090
        assert ann["prometheus.io/path"] == "/metrics"


# ------------------------------------------------- K1 Service, Ingress ...

def test_service_clusterip_80_to_8080_and_metrics(overlay):  # R: K1
    _, docs = overlay
    svc = one(docs, "Service", "hale")
    assert svc["spec"]["type"] == "ClusterIP"
    ports = {p["name"]: p for p in svc["spec"]["ports"]}
    assert ports["http"]["port"] == 80
    assert ports["metrics"]["port"] == 9090
    for d in deployments(docs):
        c = container(d)
        if selects(svc["spec"]["selector"], d["spec"]["template"]["metadata"]["labels"]):
            assert port_of(c, ports["http"]["targetPort"]) == 8080
            assert port_of(c, ports["metrics"]["targetPort"]) == 9090


def test_ingress_tls_and_rate_limit():  # R: K1
    docs = render("production")
    ing = one(docs, "Ingress", "hale")
    ann = ing["metadata"]["annotations"]
    assert ann["cert-manager.io/cluster-issuer"]
    assert int(ann["nginx.ingress.kubernetes.io/limit-rps"]) > 0
    # the guide's "rate-limit" is no ingress-nginx annotation
    assert "nginx.ingress.kubernetes.io/rate-limit" not in ann
    tls = ing["spec"]["tls"][0]
    rule = ing["spec"]["rules"][0]
    assert rule["host"] in tls["hosts"] and tls["secretName"]
    backend = rule["http"]["paths"][0]["backend"]["service"]
    assert backend["name"] == "hale" and backend["port"] == {"name": "http"}


def test_pdb_and_networkpolicy(overlay):  # R: K1
    _, docs = overlay
    pdb = one(docs, "PodDisruptionBudget", "hale")
    assert pdb["spec"]["maxUnavailable"] == 1
    netpol = one(docs, "NetworkPolicy", "hale")
    for d in deployments(docs):
        labels = d["spec"]["template"]["metadata"]["labels"]
        assert selects(pdb["spec"]["selector"]["matchLabels"], labels)
        assert selects(netpol["spec"]["podSelector"]["matchLabels"], labels)
    assert set(netpol["spec"]["policyTypes"]) == {"Ingress", "Egress"}
    rules = {tuple(p["port"] for p in r["ports"]): r["from"] for r in netpol["spec"]["ingress"]}
    assert set(rules) == {(8080,), (9090,)}, "only the two listeners are reachable"
    http_from = rules[(8080,)]
    nss = [f["namespaceSelector"]["matchLabels"] for f in http_from if "namespaceSelector" in f]
    assert nss == [{"kubernetes.io/metadata.name": "ingress-nginx"}]
    # the only same-namespace peer is deploy.sh's smoke-test pod
    same_ns = [f["podSelector"]["matchLabels"] for f in http_from if "namespaceSelector" not in f]
    assert same_ns == [{"app.kubernetes.io/component": "smoke-test"}]
    admin_from = rules[(9090,)]
    assert admin_from == [{"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "monitoring"}},
                           "podSelector": {"matchLabels": {"app.kubernetes.io/name": "prometheus"}}}]


def test_secret_example_is_fake_and_not_in_any_overlay():  # R: K1
    sec = one(render("deploy/k8s/examples/secret"), "Secret", "hale-secrets")
    assert set(sec["stringData"]) == {"database-url", "redis-url", "api-key"}
    assert all("FAKE" in v for v in sec["stringData"].values())
    for name in ("base", "production", "blue-green", "canary"):
        assert not of_kind(render(name), "Secret"), f"{name} would overwrite the real Secret"


def test_base_replicas_and_namespace():  # R: K1, K8
    docs = render("base")
    assert "replicas" not in one(docs, "Deployment", "hale")["spec"], "the HPA owns the count"
    assert one(docs, "HorizontalPodAutoscaler", "hale")["spec"]["minReplicas"] == 3
    assert all(d["metadata"].get("namespace") == "hale" for d in docs if d["kind"] != "Namespace")


# ------------------------------------------------------------------- K2

def test_rolling_update_strategy(overlay):  # R: K2
    _, docs = overlay
    for d in deployments(docs):
        st = d["spec"]["strategy"]
        assert st["type"] == "RollingUpdate"
        assert st["rollingUpdate"] == {"maxSurge": 1, "maxUnavailable": 0}
        assert d["spec"]["minReadySeconds"] > 0 and d["spec"]["progressDeadlineSeconds"] > 0


# ------------------------------------------------------------------- K3

def test_hpa_metrics_and_guide_behaviour():  # R: K3
    docs = render("production")
    hpa = one(docs, "HorizontalPodAutoscaler", "hale")
    assert hpa["apiVersion"] == "autoscaling/v2"
    assert hpa["spec"]["scaleTargetRef"] == {"apiVersion": "apps/v1", "kind": "Deployment", "name": "hale"}
    assert (hpa["spec"]["minReplicas"], hpa["spec"]["maxReplicas"]) == (3, 10)
    by_type = {}
    for m in hpa["spec"]["metrics"]:
        key = m["resource"]["name"] if m["type"] == "Resource" else m["pods"]["metric"]["name"]
        by_type[key] = m
    assert by_type["cpu"]["resource"]["target"] == {"type": "Utilization", "averageUtilization": 70}
    assert by_type["memory"]["resource"]["target"] == {"type": "Utilization", "averageUtilization": 80}
    assert by_type["http_requests_per_second"]["pods"]["target"] == {"type": "AverageValue",
                                                                     "averageValue": "1000"}
    assert hpa["spec"]["behavior"] == GUIDE_HPA_BEHAVIOR


def test_vpa_min_max_allowed():  # R: K3
    docs = render("production")
    vpa = one(docs, "VerticalPodAutoscaler", "hale")
    assert vpa["apiVersion"] == "autoscaling.k8s.io/v1"
    assert vpa["spec"]["targetRef"]["name"] == "hale"
    pol = vpa["spec"]["resourcePolicy"]["containerPolicies"][0]
    assert pol["containerName"] == "hale"
    assert pol["minAllowed"] == {"cpu": "100m", "memory": "64Mi"}
    assert pol["maxAllowed"] == {"cpu": "2", "memory": "1Gi"}
    # min <= the Deployment's requests <= max
    req = container(one(docs, "Deployment", "hale"))["resources"]["requests"]
    assert req["cpu"] == "250m" and req["memory"] == "128Mi"
    # "Off": the HPA scales on utilisation of these very requests
    assert vpa["spec"]["updatePolicy"]["updateMode"] == "Off"


# ------------------------------------------------------------------- K4

def test_blue_green_two_deployments_one_service():  # R: K4
    docs = render("blue-green")
    blue = one(docs, "Deployment", "hale-blue")
    green = one(docs, "Deployment", "hale-green")
    assert len(of_kind(docs, "Deployment")) == 2
    svc = one(docs, "Service", "hale")
    sel = svc["spec"]["selector"]
    assert sel == {"app.kubernetes.io/name": "hale", "color": "blue"}
    for d, colour in ((blue, "blue"), (green, "green")):
        assert d["spec"]["selector"]["matchLabels"]["color"] == colour
        assert d["spec"]["template"]["metadata"]["labels"]["color"] == colour
        assert "replicas" not in d["spec"], "the colour's HPA owns the count"
    labels = {c: d["spec"]["template"]["metadata"]["labels"] for c, d in (("blue", blue), ("green", green))}
    assert selects(sel, labels["blue"]) and not selects(sel, labels["green"])
    switched = dict(sel, color="green")  # what deploy/blue-green.sh switch green patches in
    assert selects(switched, labels["green"]) and not selects(switched, labels["blue"])
    targets = {h["spec"]["scaleTargetRef"]["name"] for h in of_kind(docs, "HorizontalPodAutoscaler")}
    assert targets == {"hale-blue", "hale-green"}
    assert {v["spec"]["targetRef"]["name"] for v in of_kind(docs, "VerticalPodAutoscaler")} == targets
    # the idle colour is scraped too: a PodMonitor, no ServiceMonitor
    assert not of_kind(docs, "ServiceMonitor")
    pm = one(docs, "PodMonitor", "hale")
    assert selects(pm["spec"]["selector"]["matchLabels"], labels["green"])
    assert pm["spec"]["podMetricsEndpoints"][0]["port"] == "admin"


def test_canary_split_is_an_ingress_weight_not_a_replica_ratio():  # R: K4, K8
    docs = render("canary")
    stable = one(docs, "Deployment", "hale-stable")
    canary = one(docs, "Deployment", "hale-canary")
    assert len(of_kind(docs, "Deployment")) == 2
    # stable's count belongs to its HPA; the canary has no HPA and one pod
    assert "replicas" not in stable["spec"] and canary["spec"]["replicas"] == 1
    hpas = of_kind(docs, "HorizontalPodAutoscaler")
    assert [h["spec"]["scaleTargetRef"]["name"] for h in hpas] == ["hale-stable"]
    svc, csvc = one(docs, "Service", "hale"), one(docs, "Service", "hale-canary")
    for d, track in ((stable, "stable"), (canary, "canary")):
        labels = d["spec"]["template"]["metadata"]["labels"]
        assert labels["track"] == track and d["spec"]["selector"]["matchLabels"]["track"] == track
    sl, cl = (d["spec"]["template"]["metadata"]["labels"] for d in (stable, canary))
    assert selects(svc["spec"]["selector"], sl) and not selects(svc["spec"]["selector"], cl)
    assert selects(csvc["spec"]["selector"], cl) and not selects(csvc["spec"]["selector"], sl)
    main, cing = one(docs, "Ingress", "hale"), one(docs, "Ingress", "hale-canary")
    ann = cing["metadata"]["annotations"]
    assert ann["nginx.ingress.kubernetes.io/canary"] == "true"
    assert int(ann["nginx.ingress.kubernetes.io/canary-weight"]) == 10
    assert int(ann.get("nginx.ingress.kubernetes.io/canary-weight-total", "100")) == 100
    paths = lambda ing: [(r["host"], p["path"], p["backend"]["service"]["name"])  # noqa: E731
                         for r in ing["spec"]["rules"] for p in r["http"]["paths"]]
    assert [(h, p) for h, p, _ in paths(cing)] == [(h, p) for h, p, _ in paths(main)]
    assert {b for *_, b in paths(cing)} == {"hale-canary"} and {b for *_, b in paths(main)} == {"hale"}
    sm = one(docs, "ServiceMonitor", "hale")
    assert "track" in sm["spec"]["podTargetLabels"]
    # both Services scrape into job="hale" (the alerts and the adapter rule select it)
    assert sm["spec"]["jobLabel"] == "app.kubernetes.io/name"
    for s_ in (svc, csvc):
        assert selects(sm["spec"]["selector"]["matchLabels"], s_["metadata"]["labels"])
        assert s_["metadata"]["labels"]["app.kubernetes.io/name"] == "hale"


def test_no_replicas_where_an_hpa_scales(overlay):  # R: K8, K3
    # kubectl apply writes every field the manifest has: a spec.replicas next
    # to an HPA resets the autoscaler's count on every deploy.
    _, docs = overlay
    scaled = {(h["spec"]["scaleTargetRef"]["kind"], h["spec"]["scaleTargetRef"]["name"])
              for h in of_kind(docs, "HorizontalPodAutoscaler")}
    for d in docs:
        if (d["kind"], d["metadata"]["name"]) in scaled:
            assert "replicas" not in d["spec"], f"{d['kind']} {d['metadata']['name']} sets replicas"


# ------------------------------------------------------------------- O5

def test_production_includes_monitoring_objects():  # R: O5, K1
    docs = render("production")
    svc = one(docs, "Service", "hale")
    sm = one(docs, "ServiceMonitor", "hale")
    assert selects(sm["spec"]["selector"]["matchLabels"], svc["metadata"]["labels"])
    ports = {p["name"] for p in svc["spec"]["ports"]}
    assert sm["spec"]["endpoints"][0]["port"] in ports
    assert sm["spec"]["endpoints"][0]["path"] == "/metrics"
    rule = one(docs, "PrometheusRule", "hale")
    alerts = {r["alert"] for g in rule["spec"]["groups"] for r in g["rules"] if "alert" in r}
    assert {"HaleHigh5xxRatio", "HaleHighLatencyP99", "HaleInstanceNotReady", "HaleRestarting"} <= alerts
    dash = one(docs, "ConfigMap", "hale-grafana-dashboard")
    assert dash["metadata"]["labels"]["grafana_dashboard"] == "1"


# ----------------------------------------------- config files vs repository

def test_configmap_files_agree_with_repository_config():  # R: K6, C2
    repo_default = ROOT / "config/default.toml"
    repo_prod = ROOT / "config/production.toml"
    ours = ROOT / "deploy/k8s/base/shared/config"
    if not repo_default.exists():
        pytest.fail("config/default.toml missing from the repository")
    assert (ours / "default.toml").read_text() == repo_default.read_text(), (
        "deploy/k8s/base/shared/config/default.toml differs from config/default.toml: "
        "cp config/default.toml deploy/k8s/base/shared/config/")
    if repo_prod.exists():
        mine = tomllib.loads((ours / "production.toml").read_text())
        for section, values in tomllib.loads(repo_prod.read_text()).items():
            for key, val in values.items():
                assert mine.get(section, {}).get(key) == val, (
                    f"{section}.{key} = {val!r} in config/production.toml but "
                    f"{mine.get(section, {}).get(key)!r} in the ConfigMap's production.toml")


def test_production_image_comes_from_the_registry():  # R: K1, K5
    d = one(render("production"), "Deployment", "hale")
    assert container(d)["image"] == "registry.example.com/hale:0.1.0"
    assert container(d)["imagePullPolicy"] == "Always"


# ----------------------------------------------------- K11: sqlite-single

def test_sqlite_single_is_one_statefulset_pod_on_a_claim():  # R: K11
    docs = render("deploy/k8s/overlays/sqlite-single")
    assert not of_kind(docs, "Deployment") and not of_kind(docs, "HorizontalPodAutoscaler")
    assert not of_kind(docs, "VerticalPodAutoscaler")
    sts = one(docs, "StatefulSet", "hale")
    spec = sts["spec"]
    assert spec["replicas"] == 1
    assert spec["podManagementPolicy"] == "OrderedReady"
    assert spec["updateStrategy"]["type"] == "RollingUpdate"   # old pod gone before the new one
    assert one(docs, "Service", spec["serviceName"])
    claims = {c["metadata"]["name"]: c for c in spec["volumeClaimTemplates"]}
    assert claims["data"]["spec"]["accessModes"] == ["ReadWriteOncePod"]
    tmpl = spec["template"]["spec"]
    assert "data" not in {v["name"] for v in tmpl["volumes"]}, "data comes from the claim"
    c = container(sts)
    assert {m["name"]: m["mountPath"] for m in c["volumeMounts"]}["data"] == "/app/data"
    env = {e["name"]: e["value"] for e in c["env"]}
    assert env["APP_DATABASE__REQUIRE_URL"] == "false" and env["RUN_ENV"] == "production"
    # the pod template is the base Deployment's (copied by kustomize), so
    # probes, security context and resources cannot drift
    base = one(render("base"), "Deployment", "hale")["spec"]["template"]
    bc = container({"metadata": {"name": "base"}, "spec": {"template": base}})
    for key in ("startupProbe", "readinessProbe", "livenessProbe", "securityContext", "resources",
                "ports"):
        assert c[key] == bc[key], key
    assert tmpl["terminationGracePeriodSeconds"] == base["spec"]["terminationGracePeriodSeconds"]
    sel = sts["spec"]["selector"]["matchLabels"]
    assert selects(sel, spec["template"]["metadata"]["labels"])
    assert selects(one(docs, "Service", "hale")["spec"]["selector"], spec["template"]["metadata"]["labels"])


def test_kit_production_config_requires_a_database_url():  # R: K11
    mine = tomllib.loads((ROOT / "deploy/k8s/base/shared/config/production.toml").read_text())
    assert mine["database"]["require_url"] is True
    # hale's own production default stays usable on one machine
    repo = ROOT / "config/production.toml"
    if repo.exists():
        assert tomllib.loads(repo.read_text()).get("database", {}).get("require_url") in (None, False)


# ------------------------------------------------- K10: CRD kinds opt-in

CRD_KINDS = {"VerticalPodAutoscaler", "ServiceMonitor", "PodMonitor", "PrometheusRule"}


def test_base_has_only_built_in_kinds():  # R: K10
    for name in ("deploy/k8s/base", "deploy/k8s/base/workload", "deploy/k8s/base/shared",
                 "deploy/k8s/overlays/sqlite-single"):
        kinds = {d["kind"] for d in render(name)}
        assert not kinds & CRD_KINDS, f"{name} renders {kinds & CRD_KINDS}"


def test_crd_kinds_come_only_from_components():  # R: K10
    comps = ROOT / "deploy/k8s/components"
    for k in comps.glob("*/kustomization.yaml"):
        assert yaml.safe_load(k.read_text())["kind"] == "Component", k
    # each overlay that has CRD kinds lists the components that bring them
    for name in ("production", "blue-green", "canary"):
        texts = [p.read_text() for p in (ROOT / OVERLAYS[name]).rglob("kustomization.yaml")]
        kinds = {d["kind"] for d in render(name)} & CRD_KINDS
        assert kinds, name
        assert not any(re.search(r"^\s*- \S*monitoring(/podmonitor)?\s*$", t, re.M) and "components:" not in t
                       for t in texts), f"{name} includes deploy/monitoring as a resource"
        assert any("components/monitoring" in t for t in texts), name


def test_release_label_set_in_one_place():  # R: K10, O5
    comp = yaml.safe_load((ROOT / "deploy/k8s/components/monitoring/kustomization.yaml").read_text())
    ops = [op for p in comp["patches"] for op in yaml.safe_load(p["patch"])]
    release = next(op["value"] for op in ops if op["path"] == "/metadata/labels/release")
    assert release == "kube-prometheus-stack"
    n = 0
    for name in ("production", "blue-green", "canary"):
        for d in render(name):
            if d["kind"] in {"ServiceMonitor", "PodMonitor", "PrometheusRule"}:
                assert d["metadata"]["labels"].get("release") == release, (name, d["kind"])
                n += 1
    assert n >= 6
    hits = [p for p in (ROOT / "deploy").rglob("*.yaml") if "crds" not in p.parts and any(
        release in line.split("#")[0] for line in p.read_text().splitlines())]
    assert hits == [ROOT / "deploy/k8s/components/monitoring/kustomization.yaml"], hits


# ------------------------------------------- K12: migrations before start

def test_migrations_run_in_an_init_container(overlay):  # R: K12
    name, docs = overlay
    for d in deployments(docs):
        pod = d["spec"]["template"]["spec"]
        inits = pod.get("initContainers", [])
        assert [c["name"] for c in inits] == ["migrate"], f"{name}: {d['metadata']['name']}"
        m, app = inits[0], container(d)
        assert m["args"] == ["migrate"] and "command" not in m
        assert m["image"] == app["image"], "migrate with the release being rolled out"
        assert m["env"] == app["env"]
        assert m["securityContext"] == app["securityContext"]
        assert m["volumeMounts"] == app["volumeMounts"]
        assert "startupProbe" not in m and "livenessProbe" not in m
    mine = tomllib.loads((ROOT / "deploy/k8s/base/shared/config/production.toml").read_text())
    assert mine["database"]["migrate_on_start"] is False


def test_app_wait_is_strictly_inside_the_startup_budget(overlay):  # R: K12, H3, L2
    _, docs = overlay
    mine = tomllib.loads((ROOT / "deploy/k8s/base/shared/config/production.toml").read_text())
    default = tomllib.loads((ROOT / "deploy/k8s/base/shared/config/default.toml").read_text())
    db = {**default["database"], **mine.get("database", {})}
    worst = duration_s(db["migrate_lock_wait"]) + duration_s(db["connect_timeout"]) + duration_s(db["statement_timeout"])
    for d in deployments(docs):
        sp = container(d)["startupProbe"]
        budget = sp["periodSeconds"] * sp["failureThreshold"]
        assert worst < budget, f"{d['metadata']['name']}: waits {worst:g}s, startup budget {budget}s"


# ------------------------------------------------ L1: deadlines that nest

def _workloads(docs):
    return of_kind(docs, "Deployment") + of_kind(docs, "StatefulSet")


SHIPPED = list(OVERLAYS.values()) + ["deploy/k8s/overlays/sqlite-single"]


@pytest.mark.parametrize("path", SHIPPED)
def test_every_deadline_pair_nests(path):  # R: L1, K1, K12
    """Reads the shipped files only (the ConfigMap's default.toml +
    production.toml as hale merges them, and the rendered manifests): each
    inner deadline is strictly shorter than the one containing it."""
    docs = render(path)
    for d in _workloads(docs):
        what = f"{path}: {d['kind']}/{d['metadata']['name']}"
        cfg, _ = effective_config(docs, d)
        srv, db, rd, sd = (cfg.get(k, {}) for k in ("server", "database", "redis", "shutdown"))
        drain, timeout = duration_s(sd["drain_delay"]), duration_s(sd["timeout"])
        pairs = [
            # connections and requests inside the shutdown timeout
            ("server.body_timeout", srv.get("body_timeout"), "shutdown.timeout", sd["timeout"]),
            ("server.idle_timeout", srv.get("idle_timeout"), "shutdown.timeout", sd["timeout"]),
            ("server.header_timeout", srv.get("header_timeout"), "server.body_timeout", srv.get("body_timeout")),
            # a store call inside a request inside the shutdown
            ("database.statement_timeout", db["statement_timeout"], "shutdown.timeout", sd["timeout"]),
            ("database.connect_timeout", db["connect_timeout"], "shutdown.timeout", sd["timeout"]),
            ("redis.timeout", rd["timeout"], "database.statement_timeout", db["statement_timeout"]),
            # a readiness check finishes before the next one starts
            ("database.check_timeout", db["check_timeout"], "database.check_interval", db["check_interval"]),
        ]
        for inner, iv, outer, ov in pairs:
            if iv is None:   # a setting this configuration leaves to hale's default
                assert inner == "server.header_timeout", f"{what}: {inner} not set explicitly"
                continue
            assert duration_s(iv) < duration_s(ov), f"{what}: {inner} {iv} must be < {outer} {ov}"
        pod = d["spec"]["template"]["spec"]
        grace = pod["terminationGracePeriodSeconds"]
        assert drain + timeout + 5 <= grace, f"{what}: drain + timeout + 5 s margin > grace {grace}"
        for c in pod["containers"]:
            for probe in ("startupProbe", "readinessProbe", "livenessProbe"):
                pr = c.get(probe)
                if pr:
                    assert pr["timeoutSeconds"] <= pr["periodSeconds"], f"{what}: {probe} timeout > period"
        # the readiness probe sees a check result at most check_interval old
        rp = container(d)["readinessProbe"]
        assert duration_s(db["check_interval"]) < rp["periodSeconds"] * rp["failureThreshold"]


# ------------------------------------------------------ item 10 (K1, K2)

def test_topology_spread_per_replicaset(overlay):  # R: K1, K2
    _, docs = overlay
    for d in deployments(docs):
        tsc = d["spec"]["template"]["spec"]["topologySpreadConstraints"]
        assert {t["topologyKey"] for t in tsc} == {"kubernetes.io/hostname", "topology.kubernetes.io/zone"}
        for t in tsc:
            assert t.get("matchLabelKeys") == ["pod-template-hash"], t


def test_ingress_rate_limit():  # R: K1
    ing = one(render("base"), "Ingress", "hale")["metadata"]["annotations"]
    assert ing["nginx.ingress.kubernetes.io/limit-rps"] == "100"
