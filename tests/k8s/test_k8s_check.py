"""scripts/k8s-check.sh is a real gate (K6, O5): it passes on the shipped
deploy/ tree and fails, in the right step and with a message naming the
problem, on copies broken on purpose.

Each case runs the script on a temporary copy of deploy/ and the two k8s
scripts (only those: other scripts/*.sh are not this test's subject). The
shipped tree and the three breakages the issue names (misspelled field, wrong
type, missing probe) run every step; the other cases run only the step they
target (K8S_CHECK_STEPS), to keep the wall time down. The copies run
concurrently.
"""
from __future__ import annotations

import os
import re
import shutil
import subprocess
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from conftest import HALE_TOOLS, ROOT

DEPLOYMENT = "deploy/k8s/base/workload/deployment.yaml"


def edit(path, old, new, count=1):
    def apply(root: Path):
        f = root / path
        text = f.read_text()
        assert text.count(old) >= count, f"{old!r} not in {path}"
        f.write_text(text.replace(old, new, count))
    return apply


def drop_block(path, start, end):
    """Remove the lines from the one containing `start` up to (not incl.) `end`."""
    def apply(root: Path):
        f = root / path
        text = f.read_text()
        i = text.index(start)
        i = text.rindex("\n", 0, i) + 1
        j = text.index(end, i)
        j = text.rindex("\n", 0, j) + 1
        f.write_text(text[:i] + text[j:])
    return apply


def add_file(path, text, kustomization=None, entry=None):
    def apply(root: Path):
        (root / path).write_text(text)
        if kustomization:
            k = root / kustomization
            k.write_text(k.read_text().replace("resources:\n", f"resources:\n  - {entry}\n", 1))
    return apply


# name: (mutation, step that must fail, regex its output must contain)
CASES = {
    "misspelled-field": (edit(DEPLOYMENT, "periodSeconds: 10", "periodSecnds: 10"),
                         "schema-builtin", r"'periodSecnds' was unexpected"),
    "wrong-type": (edit(DEPLOYMENT, "timeoutSeconds: 3", "timeoutSeconds: three"),
                   "schema-builtin", r"'three' is not of type 'integer'"),
    "missing-readiness-probe": (drop_block(DEPLOYMENT, "readinessProbe:", "livenessProbe:"),
                                "policy", r"readinessProbe missing"),
    "missing-startup-probe": (drop_block(DEPLOYMENT, "startupProbe:", "readinessProbe:"),
                              "policy", r"startupProbe missing"),
    "probe-on-wrong-port": (edit(DEPLOYMENT, "path: /health/liveness\n              port: admin",
                                 "path: /health/liveness\n              port: http"),
                            "policy", r"livenessProbe port 'http' is not 9090"),
    # R: K8: a replica count next to an HPA is reset by every apply
    "replicas-next-to-hpa": (edit(DEPLOYMENT, "  revisionHistoryLimit: 5", "  replicas: 3\n  revisionHistoryLimit: 5"),
                             "policy", r"Deployment/hale: sets spec\.replicas, but an HPA owns the count"),
    "grace-too-short": (edit(DEPLOYMENT, "terminationGracePeriodSeconds: 30", "terminationGracePeriodSeconds: 25"),
                        "policy", r"terminationGracePeriodSeconds 25 must exceed"),
    "crd-misspelled-field": (edit("deploy/monitoring/servicemonitor.yaml", "interval: 30s", "intervall: 30s"),
                             "schema-crd", r"ServiceMonitor/hale: spec\.endpoints\.0: Additional properties.*'intervall'"),
    "crd-wrong-value": (edit("deploy/k8s/components/vpa/vpa.yaml", 'updateMode: "Off"', "updateMode: Sometimes"),
                        "schema-crd", r"VerticalPodAutoscaler/hale: spec\.updatePolicy\.updateMode: 'Sometimes'"),
    "unknown-kind": (add_file("deploy/k8s/base/shared/cert.yaml",
                              "apiVersion: cert-manager.io/v1\nkind: Certificate\nmetadata:\n  name: hale\n"
                              "spec:\n  secretName: hale-tls\n",
                              "deploy/k8s/base/shared/kustomization.yaml", "cert.yaml"),
                     "schema-builtin", r"no schema at all for cert-manager\.io/v1 Certificate"),
    "insecure-host-network": (edit(DEPLOYMENT, "      enableServiceLinks: false",
                                   "      enableServiceLinks: false\n      hostNetwork: true"),
                              "checkov", r"FAILED CKV_K8S_19"),
    "skip-without-reason": (edit(DEPLOYMENT, "checkov.io/skip1: CKV_K8S_43=deploy/deploy.sh pins the image by digest "
                                 "at deploy time; the tag here is a release tag", "checkov.io/skip1: CKV_K8S_43"),
                            "checkov", r"skip of CKV_K8S_43 on .* has no justification"),
    "kustomization-typo": (edit("deploy/k8s/base/kustomization.yaml", "resources:", "resourcez:"),
                           "render", r"ERROR base"),
    "alert-threshold-changed": (edit("deploy/monitoring/prometheusrule.yaml", ") > 0.05", ") > 0.5"),
                                "promtool", r"FAILED"),
    "script-unquoted": (edit("deploy/canary.sh", '--timeout="$ROLLOUT_TIMEOUT"', "--timeout=$ROLLOUT_TIMEOUT"),
                        "shellcheck", r"SC2086"),
}


def make_copy(dst: Path) -> Path:
    shutil.copytree(ROOT / "deploy", dst / "deploy")
    (dst / "scripts").mkdir()
    for s in ("k8s-check.sh", "install-k8s-tools.sh"):
        shutil.copy2(ROOT / "scripts" / s, dst / "scripts" / s)
    return dst


FULL = {"good", "misspelled-field", "wrong-type", "missing-readiness-probe"}


def run_check(root: Path, versions: str, steps: str):
    env = dict(os.environ, HALE_TOOLS=str(HALE_TOOLS), K8S_VERSIONS=versions, K8S_CHECK_TAIL="400",
               K8S_CHECK_STEPS=steps)
    p = subprocess.run(["bash", str(root / "scripts/k8s-check.sh")], capture_output=True, text=True,
                       env=env, timeout=600, check=False)
    return p


def summary(out: str) -> dict:
    return dict((m.group(2), m.group(1)) for m in re.finditer(r"^  (PASS|FAIL|SKIP)  (\S+)$", out, re.M))


def section(out: str, step: str) -> str:
    m = re.search(rf"^=== {re.escape(step)}\n(.*?)(?=^=== )", out, re.M | re.S)
    return m.group(1) if m else ""


@pytest.fixture(scope="module")
def results(tmp_path_factory):
    if not (HALE_TOOLS / "bin" / "checkov").exists():
        pytest.fail(f"k8s tools missing in {HALE_TOOLS}: run scripts/install-k8s-tools.sh")
    jobs = {}
    good = make_copy(tmp_path_factory.mktemp("k8s-good"))
    jobs["good"] = (good, "1.30.0 1.37.0", "")
    for name, (mutate, step, _) in CASES.items():
        root = make_copy(tmp_path_factory.mktemp(f"k8s-{name}"))
        mutate(root)
        jobs[name] = (root, "1.37.0", "" if name in FULL else step)
    with ThreadPoolExecutor(max_workers=3) as pool:
        futs = {name: pool.submit(run_check, *job) for name, job in jobs.items()}
        return {name: f.result() for name, f in futs.items()}


def test_k8s_check_passes_on_the_shipped_manifests(results):  # R: K6, O5
    p = results["good"]
    assert p.returncode == 0, p.stdout + p.stderr
    s = summary(p.stdout)
    assert set(s) == {"render", "schema-builtin", "schema-crd", "policy", "checkov", "yamllint",
                      "shellcheck", "promtool", "monitoring-files"}
    assert set(s.values()) == {"PASS"}
    assert re.search(r"kubernetes-validate --strict -k 1\.30\.0: 8 renders, \d+ objects, 0 errors", p.stdout)
    assert re.search(r"kubernetes-validate --strict -k 1\.37\.0: 8 renders, \d+ objects, 0 errors", p.stdout)
    assert re.search(r"crd-validate: \d+ custom resources checked, 0 errors", p.stdout)
    m = re.search(r"checkov \[kubernetes\]: passed (\d+), failed 0, skipped (\d+)", p.stdout)
    assert m and int(m.group(1)) > 100
    # every skip is justified (the verdict prints the reason next to it)
    skips = re.findall(r"skip (CKV\S+) on \S+: (.+)", p.stdout)
    assert len(skips) == int(m.group(2)) and all(reason.strip() for _, reason in skips)
    assert "k8s-check: all checks passed" in p.stdout


@pytest.mark.parametrize("case", list(CASES))
def test_k8s_check_fails_on_a_broken_copy(results, case):  # R: K6, O5
    _, step, pattern = CASES[case]
    p = results[case]
    assert p.returncode == 1, f"{case}: k8s-check passed a broken copy\n{p.stdout[-3000:]}"
    s = summary(p.stdout)
    assert s.get(step) == "FAIL", f"{case}: step {step} did not fail\n{p.stdout[-3000:]}"
    if case in FULL:
        assert "SKIP" not in s.values()
    if case == "missing-readiness-probe":  # checkov catches it too
        assert s.get("checkov") == "FAIL" and "CKV_K8S_9" in section(p.stdout, "checkov")
    assert re.search(pattern, section(p.stdout, step)), f"{case}: no {pattern!r} in\n{section(p.stdout, step)}"
    assert "k8s-check: FAILED" in p.stdout
