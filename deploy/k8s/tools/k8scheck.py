#!/usr/bin/env python3
"""Helpers for scripts/k8s-check.sh (run with the tools venv's python).

Subcommands:
  crd-validate --crds DIR FILE...   validate every custom resource in FILE...
        whose apiVersion/kind a CRD in DIR defines, strictly, against the
        CRD's openAPIV3Schema (unknown fields rejected unless the schema sets
        x-kubernetes-preserve-unknown-fields); exit 1 on any error.
  covered-kinds --crds DIR          print "apiVersion kind" per served CRD version.
  policy FILE...                    hale's own rules on rendered manifests:
        probes on hale's paths and ports, grace period vs drain + timeout,
        restricted securityContext, mounts, scrape annotations, Service ports,
        autoscaler targets, selectors that match pods.
  prom-extract --rule FILE --adapter FILE --out DIR
        write the PrometheusRule's spec as DIR/hale-alerts.rules.yaml and the
        prometheus-adapter metricsQuery as a recording rule
        DIR/adapter.rules.yaml (for promtool check/test rules).
  checkov-verdict FILE              read checkov's JSON report; print the
        summary and every skip with its reason; exit 1 on a failed check, a
        parsing error, or a skip without a reason.
"""
from __future__ import annotations

import argparse
import copy
import json
import os
import re
import sys
import tomllib

import yaml

try:
    import jsonschema
except ImportError:  # only crd-validate needs it
    jsonschema = None


def load_docs(path):
    with open(path, encoding="utf-8") as f:
        return [d for d in yaml.safe_load_all(f) if d]


# --------------------------------------------------------------------------
# CRD validation

# metadata of a custom resource is checked against a strict ObjectMeta subset
# (the CRD schemas only say `type: object` for it).
STR_MAP = {"type": "object", "additionalProperties": {"type": "string"}}
OBJECT_META = {
    "type": "object",
    "additionalProperties": False,
    "required": ["name"],
    "properties": {
        "name": {"type": "string", "pattern": r"^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$", "maxLength": 253},
        "namespace": {"type": "string", "pattern": r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$", "maxLength": 63},
        "labels": STR_MAP,
        "annotations": STR_MAP,
        "finalizers": {"type": "array", "items": {"type": "string"}},
    },
}


def strictify(schema, stats):
    """Return a JSON Schema that rejects unknown fields like the API server's
    strict field validation: every object schema that lists properties (or
    none at all) gets additionalProperties: false unless it preserves unknown
    fields; nullable and int-or-string become JSON Schema types."""
    if isinstance(schema, list):
        return [strictify(s, stats) for s in schema]
    if not isinstance(schema, dict):
        return schema
    s = {}
    for k, v in schema.items():
        if k in ("properties", "patternProperties", "definitions"):
            s[k] = {pk: strictify(pv, stats) for pk, pv in v.items()}
        elif k in ("items", "additionalProperties", "not"):
            s[k] = strictify(v, stats)
        elif k in ("allOf", "anyOf", "oneOf"):
            s[k] = [strictify(x, stats) for x in v]
        elif k == "x-kubernetes-validations":
            stats["cel"] += len(v)
        else:
            s[k] = v
    if s.get("x-kubernetes-int-or-string") and "anyOf" not in s:
        s["anyOf"] = [{"type": "integer"}, {"type": "string"}]
    if s.get("nullable") and "type" in s:
        s["type"] = [s["type"], "null"]
    is_object = s.get("type") == "object" or "properties" in s
    if (is_object and not s.get("x-kubernetes-preserve-unknown-fields")
            and "additionalProperties" not in s):
        s["additionalProperties"] = False
    return s


def load_crds(crd_dir):
    """{(apiVersion, kind): (schema, cel_rule_count)} for served versions."""
    out = {}
    for name in sorted(os.listdir(crd_dir)):
        if not name.endswith((".yaml", ".yml")):
            continue
        for doc in load_docs(os.path.join(crd_dir, name)):
            if doc.get("kind") != "CustomResourceDefinition":
                continue
            group = doc["spec"]["group"]
            kind = doc["spec"]["names"]["kind"]
            for ver in doc["spec"]["versions"]:
                if not ver.get("served", False):
                    continue
                raw = ver["schema"]["openAPIV3Schema"]
                stats = {"cel": 0}
                schema = strictify(raw, stats)
                schema.setdefault("properties", {})["metadata"] = OBJECT_META
                schema["required"] = sorted(set(schema.get("required", [])) | {"apiVersion", "kind", "metadata"})
                out[(f"{group}/{ver['name']}", kind)] = (schema, stats["cel"])
    return out


def cmd_covered_kinds(args):
    for api, kind in sorted(load_crds(args.crds)):
        print(api, kind)
    return 0


def cmd_crd_validate(args):
    crds = load_crds(args.crds)
    errors = checked = 0
    for path in args.files:
        for doc in load_docs(path):
            key = (doc.get("apiVersion"), doc.get("kind"))
            if key not in crds:
                continue
            schema, cel = crds[key]
            checked += 1
            name = f"{doc['kind']}/{(doc.get('metadata') or {}).get('name', '?')}"
            v = jsonschema.Draft7Validator(schema)
            errs = sorted(v.iter_errors(doc), key=lambda e: list(e.absolute_path))
            if errs:
                errors += len(errs)
                for e in errs:
                    where = ".".join(str(p) for p in e.absolute_path) or "(root)"
                    print(f"ERROR {path}: {name}: {where}: {e.message}")
            else:
                note = f" ({cel} CEL rules not evaluated offline)" if cel else ""
                print(f"ok    {path}: {name} against {key[0]} CRD schema{note}")
    print(f"crd-validate: {checked} custom resources checked, {errors} errors")
    return 1 if errors else 0


# --------------------------------------------------------------------------
# hale policy

HALE_PORTS = {"http": 8080, "admin": 9090}
PROBES = {  # probe -> (path, port the probe must reach)
    "startupProbe": ("/health/startup", 8080),
    "readinessProbe": ("/health/readiness", 8080),
    "livenessProbe": ("/health/liveness", 9090),
}
HALE_UID = 65532


def parse_duration(text):
    """'5s', '250ms', '1m30s' -> seconds (float)."""
    if isinstance(text, (int, float)):
        return float(text)
    total, pos = 0.0, 0
    units = {"ms": 0.001, "s": 1, "m": 60, "h": 3600}
    for m in re.finditer(r"(\d+(?:\.\d+)?)(ms|s|m|h)", text):
        if m.start() != pos:
            raise ValueError(f"bad duration {text!r}")
        total += float(m.group(1)) * units[m.group(2)]
        pos = m.end()
    if pos != len(text) or not text:
        raise ValueError(f"bad duration {text!r}")
    return total


class Policy:
    def __init__(self, path, docs):
        self.path, self.docs, self.errors = path, docs, []

    def err(self, what, msg):
        self.errors.append(f"{self.path}: {what}: {msg}")

    def of_kind(self, kind):
        return [d for d in self.docs if d.get("kind") == kind]

    def configmap(self, name):
        for d in self.of_kind("ConfigMap"):
            if d["metadata"]["name"] == name:
                return d
        return None

    @staticmethod
    def selects(selector, labels):
        return bool(selector) and all(labels.get(k) == v for k, v in selector.items())

    def port_number(self, container, port):
        if isinstance(port, int):
            return port
        for p in container.get("ports", []):
            if p.get("name") == port:
                return p.get("containerPort")
        return None

    def shutdown_budget(self, what, pod, container):
        """drain_delay + shutdown.timeout (+ preStop sleep) from the mounted
        config and the env overrides, in seconds."""
        env = {e["name"]: e.get("value") for e in container.get("env", [])}
        run_env = env.get("RUN_ENV", "dev")
        cfg = {}
        cm_name = None
        for vol in pod.get("volumes", []):
            if vol.get("configMap") and vol["name"] in {m["name"] for m in container.get("volumeMounts", [])}:
                cm_name = vol["configMap"]["name"]
        cm = self.configmap(cm_name) if cm_name else None
        if cm is None:
            self.err(what, f"config volume's ConfigMap {cm_name!r} is not in the rendered output")
        else:
            for fname in ("default.toml", f"{run_env}.toml"):
                if fname not in cm.get("data", {}):
                    self.err(what, f"ConfigMap {cm_name} has no {fname} (RUN_ENV={run_env})")
                    continue
                try:
                    doc = tomllib.loads(cm["data"][fname])
                except tomllib.TOMLDecodeError as e:
                    self.err(what, f"ConfigMap {cm_name}/{fname} is not valid TOML: {e}")
                    continue
                cfg.update(doc.get("shutdown", {}))
        drain = cfg.get("drain_delay", "5s")
        timeout = cfg.get("timeout", "20s")
        drain = env.get("APP_SHUTDOWN__DRAIN_DELAY") or env.get("APP__SHUTDOWN__DRAIN_DELAY") or drain
        timeout = env.get("APP_SHUTDOWN__TIMEOUT") or env.get("APP__SHUTDOWN__TIMEOUT") or timeout
        pre = 0.0
        pre_stop = (container.get("lifecycle") or {}).get("preStop") or {}
        if "sleep" in pre_stop:
            pre = float(pre_stop["sleep"]["seconds"])
        elif pre_stop:
            self.err(what, "preStop must be the sleep action or absent: the image has no shell")
        return parse_duration(drain), parse_duration(timeout), pre

    def check_deployment(self, d):
        """A Deployment, or the sqlite-single overlay's StatefulSet."""
        name = d["metadata"]["name"]
        what = f"{d['kind']}/{name}"
        spec = d["spec"]
        tmpl = spec["template"]
        pod = tmpl["spec"]
        labels = tmpl["metadata"].get("labels", {})
        if not self.selects(spec["selector"].get("matchLabels"), labels):
            self.err(what, "selector does not match the pod template's labels")
        claims = set()
        if d["kind"] == "StatefulSet":
            # the embedded store: one writer, the old pod gone before the new one
            if spec.get("replicas") != 1:
                self.err(what, "a StatefulSet (SQLite, one writer) must have exactly 1 replica")
            if spec.get("podManagementPolicy", "OrderedReady") != "OrderedReady":
                self.err(what, "podManagementPolicy must be OrderedReady")
            claims = {c["metadata"]["name"] for c in spec.get("volumeClaimTemplates", [])}
        else:
            strat = spec.get("strategy", {})
            ru = strat.get("rollingUpdate", {})
            if strat.get("type") != "RollingUpdate" or ru.get("maxSurge") != 1 or ru.get("maxUnavailable") not in (0, 1):
                self.err(what, "strategy must be RollingUpdate, maxSurge 1, maxUnavailable 0 or 1")
        if pod.get("automountServiceAccountToken") is not False:
            self.err(what, "automountServiceAccountToken must be false")
        psc = pod.get("securityContext", {})
        for c in pod.get("containers", []):
            if c["name"] != "hale":
                self.err(what, f"unexpected container {c['name']!r}")
                continue
            cw = f"{what} container hale"
            for pname, port in HALE_PORTS.items():
                if self.port_number(c, pname) != port:
                    self.err(cw, f"container port {pname!r} must be {port}")
            for probe, (path, port) in PROBES.items():
                p = c.get(probe)
                if not p:
                    self.err(cw, f"{probe} missing")
                    continue
                get = p.get("httpGet")
                if not get:
                    self.err(cw, f"{probe} must be an httpGet probe")
                    continue
                if get.get("path") != path:
                    self.err(cw, f"{probe} path {get.get('path')!r}, hale serves {path}")
                if self.port_number(c, get.get("port")) != port:
                    self.err(cw, f"{probe} port {get.get('port')!r} is not {port}")
            sc = c.get("securityContext", {})
            def eff(key):
                return sc.get(key, psc.get(key))
            if eff("runAsNonRoot") is not True:
                self.err(cw, "runAsNonRoot must be true")
            if eff("runAsUser") != HALE_UID:
                self.err(cw, f"runAsUser must be {HALE_UID} (the image's numeric user)")
            if sc.get("readOnlyRootFilesystem") is not True:
                self.err(cw, "readOnlyRootFilesystem must be true")
            if sc.get("allowPrivilegeEscalation") is not False:
                self.err(cw, "allowPrivilegeEscalation must be false")
            if (sc.get("capabilities") or {}).get("drop") != ["ALL"] or (sc.get("capabilities") or {}).get("add"):
                self.err(cw, "capabilities must drop ALL and add none")
            if (eff("seccompProfile") or {}).get("type") != "RuntimeDefault":
                self.err(cw, "seccompProfile must be RuntimeDefault")
            res = c.get("resources", {})
            for k in ("requests", "limits"):
                if not {"cpu", "memory"} <= set(res.get(k, {})):
                    self.err(cw, f"resources.{k} must set cpu and memory")
            mounts = {m["mountPath"]: m for m in c.get("volumeMounts", [])}
            vols = {v["name"]: v for v in pod.get("volumes", [])}
            want = {"/app/config": "configMap", "/var/secrets": "secret",
                    "/app/data": "emptyDir", "/tmp": "emptyDir"}
            for mpath, vtype in want.items():
                m = mounts.get(mpath)
                if mpath == "/app/data" and m and m["name"] in claims and m["name"] not in vols:
                    continue  # a StatefulSet's PersistentVolumeClaim
                if not m or vtype not in vols.get(m["name"], {}):
                    self.err(cw, f"{mpath} must be mounted from a {vtype} volume")
                elif vtype in ("configMap", "secret") and not m.get("readOnly"):
                    self.err(cw, f"{mpath} must be mounted readOnly")
            env = {e["name"]: e.get("value") for e in c.get("env", [])}
            if env.get("HALE_CONFIG_DIR", "/app/config") != "/app/config":
                self.err(cw, "HALE_CONFIG_DIR must be the ConfigMap's mount path /app/config")
            try:
                drain, timeout, pre = self.shutdown_budget(cw, pod, c)
            except ValueError as e:
                self.err(cw, str(e))
                continue
            grace = pod.get("terminationGracePeriodSeconds", 30)
            if not grace > pre + drain + timeout:
                self.err(what, f"terminationGracePeriodSeconds {grace} must exceed preStop {pre:g}s"
                               f" + drain_delay {drain:g}s + shutdown.timeout {timeout:g}s")
        ann = tmpl["metadata"].get("annotations", {})
        want_ann = {"prometheus.io/scrape": "true", "prometheus.io/port": str(HALE_PORTS["admin"]),
                    "prometheus.io/path": "/metrics"}
        for k, v in want_ann.items():
            if ann.get(k) != v:
                self.err(what, f"pod annotation {k} must be {v!r}")
        return labels

    def run(self):
        workloads = self.of_kind("Deployment") + self.of_kind("StatefulSet")
        pod_labels = [self.check_deployment(d) for d in workloads]
        deployments = {d["metadata"]["name"] for d in self.of_kind("Deployment")}
        for s in self.of_kind("Service"):
            what = f"Service/{s['metadata']['name']}"
            sel = s["spec"].get("selector", {})
            if not any(self.selects(sel, pl) for pl in pod_labels):
                self.err(what, "selector matches no pod template")
            ports = {p.get("name"): p for p in s["spec"].get("ports", [])}
            http = ports.get("http", {})
            if http.get("port") != 80 or http.get("targetPort") not in ("http", 8080):
                self.err(what, "port http must be 80 -> http (8080)")
            met = ports.get("metrics", {})
            if met.get("targetPort") not in ("admin", 9090):
                self.err(what, "port metrics must target admin (9090)")
        for kind, ref in (("HorizontalPodAutoscaler", "scaleTargetRef"), ("VerticalPodAutoscaler", "targetRef")):
            for h in self.of_kind(kind):
                target = h["spec"][ref]
                if target.get("kind") != "Deployment" or target.get("name") not in deployments:
                    self.err(f"{kind}/{h['metadata']['name']}", f"targets {target}, not a rendered Deployment")
                elif kind == "HorizontalPodAutoscaler":
                    dep = next(d for d in self.of_kind("Deployment") if d["metadata"]["name"] == target["name"])
                    if "replicas" in dep["spec"]:
                        self.err(f"Deployment/{target['name']}", "sets spec.replicas, but an HPA owns the "
                                 "count: every apply would reset it (K8)")
        for kind in ("PodDisruptionBudget", "NetworkPolicy"):
            for p in self.of_kind(kind):
                key = "podSelector" if kind == "NetworkPolicy" else "selector"
                sel = p["spec"][key].get("matchLabels", {})
                if not all(self.selects(sel, pl) for pl in pod_labels):
                    self.err(f"{kind}/{p['metadata']['name']}", "does not select every hale pod")
        return self.errors


def cmd_policy(args):
    errors, deployments = [], 0
    for path in args.files:
        docs = load_docs(path)
        deployments += sum(1 for d in docs if d.get("kind") in ("Deployment", "StatefulSet"))
        errors += Policy(path, docs).run()
    for e in errors:
        print("ERROR", e)
    print(f"policy: {len(args.files)} renders, {deployments} workloads, {len(errors)} errors")
    return 1 if errors else 0


# --------------------------------------------------------------------------
# Prometheus rules

def adapter_query(template, series="http_requests_total",
                  matchers='namespace="hale",pod=~"hale-.*"', group_by="namespace,pod"):
    q = (template.replace("<<.Series>>", series).replace("<<.LabelMatchers>>", matchers)
         .replace("<<.GroupBy>>", group_by))
    if "<<" in q:
        raise SystemExit(f"unknown template field left in adapter query: {q}")
    return q


def cmd_prom_extract(args):
    rule = load_docs(args.rule)
    if len(rule) != 1 or rule[0].get("kind") != "PrometheusRule":
        raise SystemExit(f"{args.rule}: expected one PrometheusRule")
    with open(os.path.join(args.out, "hale-alerts.rules.yaml"), "w") as f:
        yaml.safe_dump(rule[0]["spec"], f, sort_keys=False)
    adapter = load_docs(args.adapter)[0]
    groups = []
    for i, r in enumerate(adapter["rules"]):
        name = r.get("name", {}).get("as")
        if not name:
            raise SystemExit(f"{args.adapter}: rule {i} has no name.as")
        groups.append({"record": name, "expr": adapter_query(r["metricsQuery"])})
    with open(os.path.join(args.out, "adapter.rules.yaml"), "w") as f:
        yaml.safe_dump({"groups": [{"name": "prometheus-adapter", "rules": groups}]}, f, sort_keys=False)
    return 0


# --------------------------------------------------------------------------
# checkov

def cmd_checkov_verdict(args):
    with open(args.file, encoding="utf-8") as f:
        text = f.read()
    try:
        report = json.loads(text)
    except json.JSONDecodeError:
        print("ERROR checkov did not produce a JSON report:\n" + text[-2000:])
        return 1
    reports = report if isinstance(report, list) else [report]
    bad = 0
    for r in reports:
        s = r.get("summary", {})
        res = r.get("results", {})
        print(f"checkov [{r.get('check_type')}]: passed {s.get('passed', 0)}, failed {s.get('failed', 0)}, "
              f"skipped {s.get('skipped', 0)}, parsing errors {s.get('parsing_errors', 0)}, "
              f"resources {s.get('resource_count', 0)}")
        for c in res.get("failed_checks", []):
            print(f"FAILED {c['check_id']} {c['check_name']}: {c['resource']} ({c.get('file_path')})")
            bad += 1
        for c in res.get("skipped_checks", []):
            reason = (c.get("check_result") or {}).get("suppress_comment", "")
            print(f"  skip {c['check_id']} on {c['resource']}: {reason}")
            if not reason or reason == "No comment provided":
                print(f"FAILED skip of {c['check_id']} on {c['resource']} has no justification")
                bad += 1
        if s.get("parsing_errors", 0):
            bad += 1
        if s.get("passed", 0) == 0:
            print("FAILED checkov passed nothing: did it read the files?")
            bad += 1
    if not reports:
        print("FAILED empty checkov report")
        bad += 1
    return 1 if bad else 0


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="cmd", required=True)
    p = sub.add_parser("crd-validate")
    p.add_argument("--crds", required=True)
    p.add_argument("files", nargs="+")
    p.set_defaults(fn=cmd_crd_validate)
    p = sub.add_parser("covered-kinds")
    p.add_argument("--crds", required=True)
    p.set_defaults(fn=cmd_covered_kinds)
    p = sub.add_parser("policy")
    p.add_argument("files", nargs="+")
    p.set_defaults(fn=cmd_policy)
    p = sub.add_parser("prom-extract")
    p.add_argument("--rule", required=True)
    p.add_argument("--adapter", required=True)
    p.add_argument("--out", required=True)
    p.set_defaults(fn=cmd_prom_extract)
    p = sub.add_parser("checkov-verdict")
    p.add_argument("file")
    p.set_defaults(fn=cmd_checkov_verdict)
    args = ap.parse_args()
    sys.exit(args.fn(args))


if __name__ == "__main__":
    main()
