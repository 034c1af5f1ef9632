"""deploy/deploy.sh, blue-green.sh and canary.sh (K5).

--dry-run must print the exact command sequence and run nothing; real runs
use tests/k8s/fake-kubectl and tests/k8s/fake-docker (TEST DOUBLES) through
the KUBECTL/DOCKER overrides, which record every call and fail on demand.
"""
from __future__ import annotations

import os
import re
import subprocess

import pytest
import yaml

from conftest import HERE, ROOT, kubectl_path

FAKE_KUBECTL = str(HERE / "fake-kubectl")
FAKE_DOCKER = str(HERE / "fake-docker")
REV = r"jsonpath=\{\.metadata\.annotations\.deployment\\\.kubernetes\\\.io/revision\}'?"


def run(script, *args, tmp_path, **env):
    e = dict(os.environ)
    for k in list(e):
        if k.startswith("FAKE_") or k in ("KUBECTL", "DOCKER", "NAMESPACE", "REGISTRY"):
            del e[k]
    e.update(KUBECTL=FAKE_KUBECTL, DOCKER=FAKE_DOCKER, FAKE_KUBECTL_DIR=str(tmp_path),
             FAKE_DOCKER_DIR=str(tmp_path), TMPDIR=str(tmp_path))
    e.update({k: str(v) for k, v in env.items()})
    p = subprocess.run(["bash", str(ROOT / "deploy" / script), *args], capture_output=True,
                       text=True, env=e, cwd=ROOT, timeout=60, check=False)
    return p


def traced(p):
    """The "+ command" lines a script printed, without the fake's path."""
    out = []
    for line in p.stdout.splitlines():
        if line.startswith("+ "):
            out.append(line[2:].replace(FAKE_KUBECTL, "kubectl").replace(FAKE_DOCKER, "docker"))
    return out


def calls(tmp_path, name="calls"):
    f = tmp_path / name
    return f.read_text().splitlines() if f.exists() else []


def assert_sequence(lines, patterns):
    assert len(lines) == len(patterns), "\n".join(lines)
    for line, pat in zip(lines, patterns):
        assert re.fullmatch(pat, line), f"{line!r} !~ {pat!r}\nall:\n" + "\n".join(lines)


DEPLOY_SEQUENCE = [
    r"docker build -t registry\.example\.com/hale:1\.4\.0 " + re.escape(str(ROOT)),
    r"docker push registry\.example\.com/hale:1\.4\.0",
    r"docker image inspect --format '\{\{range \.RepoDigests\}\}\{\{println \.\}\}\{\{end\}\}' "
    r"registry\.example\.com/hale:1\.4\.0",
    r"kubectl get secret hale-secrets -n hale -o name",
    r"kubectl get deployment hale -n hale --ignore-not-found -o '" + REV,
    r"kubectl apply -k \S+/hale-deploy\.\w+",
    r"kubectl rollout status deployment/hale -n hale --timeout=300s",
    r"kubectl run hale-smoke-1-4-0 -n hale --rm -i --restart=Never --quiet "
    r"--image=curlimages/curl:8\.11\.1 '--overrides=\{.*\"app\.kubernetes\.io/component\":\"smoke-test\".*"
    r"http://hale\.hale\.svc/health/readiness.*\}'",
]


# ------------------------------------------------------------ dry runs

def test_deploy_dry_run_prints_the_sequence_and_runs_nothing(tmp_path):  # R: K5
    p = run("deploy.sh", "--dry-run", "1.4.0", tmp_path=tmp_path)
    assert p.returncode == 0, p.stderr
    assert_sequence(traced(p), DEPLOY_SEQUENCE)
    assert calls(tmp_path) == [] and calls(tmp_path, "docker-calls") == []
    assert "hale 1.4.0 deployed" in p.stdout


def test_blue_green_switch_dry_run(tmp_path):  # R: K5, K4
    p = run("blue-green.sh", "--dry-run", "switch", "green", tmp_path=tmp_path)
    assert p.returncode == 0, p.stderr
    img = r"-o 'jsonpath=\{\.spec\.template\.spec\.containers\[\?\(@\.name==\"hale\"\)\]\.image\}'"
    assert_sequence(traced(p), [
        r"kubectl get service hale -n hale -o jsonpath=\{\.spec\.selector\.color\}",
        r"kubectl rollout status deployment/hale-green -n hale --timeout=120s",
        r"kubectl get deployment hale-green -n hale -o 'jsonpath=\{\.spec\.replicas\} .*'",
        r"kubectl get deployment hale-green -n hale " + img,
        r"kubectl get deployment hale-blue -n hale " + img,
        r"kubectl patch service hale -n hale --type=merge -p "
        r"'\{\"spec\":\{\"selector\":\{\"color\":\"green\"\}\}\}'",
        r"kubectl get service hale -n hale -o jsonpath=\{\.spec\.selector\.color\}",
    ])
    assert calls(tmp_path) == []
    assert re.search(r"switch back with: \S*deploy/blue-green.sh switch blue", p.stdout)


def test_canary_dry_runs(tmp_path):  # R: K5, K4
    img = r"-o 'jsonpath=\{\.spec\.template\.spec\.containers\[\?\(@\.name==\"hale\"\)\]\.image\}'"
    counts = r"-o 'jsonpath=\{\.spec\.replicas\} .*'"
    p = run("canary.sh", "--dry-run", "start", "1.5.0", tmp_path=tmp_path)
    assert p.returncode == 0, p.stderr
    assert_sequence(traced(p), [
        r"kubectl get deployment hale-stable -n hale " + img,
        r"kubectl set image deployment/hale-canary -n hale hale=registry\.example\.com/hale:1\.5\.0",
        r"kubectl scale deployment/hale-canary -n hale --replicas=1",
        r"kubectl rollout status deployment/hale-canary -n hale --timeout=300s",
        r"kubectl get deployment hale-canary -n hale " + counts,
        r"kubectl annotate ingress hale-canary -n hale --overwrite "
        r"nginx\.ingress\.kubernetes\.io/canary-weight=10",
    ])
    p = run("canary.sh", "--dry-run", "promote", tmp_path=tmp_path)
    assert p.returncode == 0, p.stderr
    assert_sequence(traced(p), [
        r"kubectl get deployment hale-canary -n hale " + counts,
        r"kubectl get deployment hale-canary -n hale " + img,
        r"kubectl get deployment hale-stable -n hale " + img,
        r"kubectl set image deployment/hale-stable -n hale 'hale=<image of hale-canary>'",
        r"kubectl rollout status deployment/hale-stable -n hale --timeout=600s",
        r"kubectl annotate ingress hale-canary -n hale --overwrite "
        r"nginx\.ingress\.kubernetes\.io/canary-weight=0",
        r"kubectl scale deployment/hale-canary -n hale --replicas=0",
    ])
    p = run("canary.sh", "--dry-run", "abort", tmp_path=tmp_path)
    assert p.returncode == 0, p.stderr
    assert_sequence(traced(p), [
        r"kubectl annotate ingress hale-canary -n hale --overwrite "
        r"nginx\.ingress\.kubernetes\.io/canary-weight=0",
        r"kubectl scale deployment/hale-canary -n hale --replicas=0"])
    assert calls(tmp_path) == []


def test_env_overrides_kubectl_docker_namespace_registry(tmp_path):  # R: K5
    p = run("deploy.sh", "--dry-run", "2.0.0", tmp_path=tmp_path,
            KUBECTL="kubectl --context prod", DOCKER="podman", NAMESPACE="shop", REGISTRY="reg.local:5000")
    assert p.returncode == 0, p.stderr
    lines = traced(p)
    assert lines[0].startswith("podman build -t reg.local:5000/hale:2.0.0 ")
    assert "kubectl --context prod rollout status deployment/hale -n shop --timeout=300s" in lines
    assert any("http://hale.shop.svc/health/readiness" in x for x in lines)


# ---------------------------------------------------- real runs with fakes

def test_deploy_success_applies_a_digest_pinned_image(tmp_path):  # R: K5, K1
    p = run("deploy.sh", "1.4.0", tmp_path=tmp_path, FAKE_KUBECTL_RENDER=kubectl_path())
    assert p.returncode == 0, p.stdout + p.stderr
    k = calls(tmp_path)
    assert [c.split(" -n ")[0] for c in k] == [
        "get secret hale-secrets", "get deployment hale", "apply -k " + k[2].split("apply -k ")[1],
        "rollout status deployment/hale", "run hale-smoke-1-4-0"]
    assert not any(c.startswith("rollout undo") for c in k)
    applied = [d for d in yaml.safe_load_all((tmp_path / "applied.yaml").read_text()) if d]
    dep = next(d for d in applied if d["kind"] == "Deployment")
    image = dep["spec"]["template"]["spec"]["containers"][0]["image"]
    assert image == "registry.example.com/hale@sha256:" + "0" * 63 + "7"
    # the repository's overlay was not edited
    assert "newTag: 0.1.0" in (ROOT / "deploy/k8s/overlays/production/kustomization.yaml").read_text()


@pytest.mark.parametrize("failing, reason", [
    ("rollout status", "rollout did not complete"),
    ("run hale-smoke", "readiness check through the Service failed"),
])
def test_deploy_rolls_back_when_a_step_after_apply_fails(tmp_path, failing, reason):  # R: K5
    p = run("deploy.sh", "1.4.0", tmp_path=tmp_path, FAKE_KUBECTL_FAIL=failing,
            FAKE_KUBECTL_FAIL_TIMES=1, FAKE_KUBECTL_REVISION=4)
    assert p.returncode == 1
    assert reason in p.stderr
    k = calls(tmp_path)
    i = next(n for n, c in enumerate(k) if c.startswith(failing))
    assert k[i + 1].startswith("get deployment hale -n hale")          # revision now 5
    assert k[i + 2] == "rollout undo deployment/hale -n hale --to-revision=4"
    assert k[i + 3] == "rollout status deployment/hale -n hale --timeout=300s"
    assert len(k) == i + 4, "nothing runs after the rollback"
    assert "rolled back to revision 4" in p.stderr
    assert "hale 1.4.0 deployed" not in p.stdout


def test_deploy_does_not_undo_a_revision_it_did_not_change(tmp_path):  # R: K5
    # apply fails before the Deployment changed: undoing would revert a good
    # older release, so deploy.sh must not.
    p = run("deploy.sh", "1.4.0", tmp_path=tmp_path, FAKE_KUBECTL_FAIL="apply -k")
    assert p.returncode == 1
    assert "kubectl apply failed" in p.stderr and "nothing to roll back" in p.stderr
    assert not any(c.startswith("rollout undo") for c in calls(tmp_path))


def test_deploy_first_install_has_nothing_to_roll_back(tmp_path):  # R: K5
    p = run("deploy.sh", "1.4.0", tmp_path=tmp_path, FAKE_KUBECTL_FAIL="rollout status",
            FAKE_KUBECTL_REVISION="")
    assert p.returncode == 1
    assert "first deploy, nothing to roll back to" in p.stderr
    assert not any(c.startswith("rollout undo") for c in calls(tmp_path))


def test_deploy_stops_at_first_error_before_the_cluster(tmp_path):  # R: K5
    p = run("deploy.sh", "1.4.0", tmp_path=tmp_path, FAKE_DOCKER_FAIL="push")
    assert p.returncode == 1
    assert "docker push failed" in p.stderr
    assert calls(tmp_path) == [], "no kubectl call after a failed push"
    assert calls(tmp_path, "docker-calls") == ["build -t registry.example.com/hale:1.4.0 " + str(ROOT),
                                               "push registry.example.com/hale:1.4.0"]


def test_deploy_requires_the_secret(tmp_path):  # R: K5
    p = run("deploy.sh", "--no-build", "--no-push", "1.4.0", tmp_path=tmp_path,
            FAKE_KUBECTL_FAIL="get secret")
    assert p.returncode == 1
    assert "Secret hale-secrets missing" in p.stderr
    assert not any(c.startswith("apply") for c in calls(tmp_path))


@pytest.mark.parametrize("args", [[], ["bad/version"], ["--bogus", "1.0"], ["1.0", "2.0"]])
def test_deploy_usage_errors_touch_nothing(tmp_path, args):  # R: K5
    p = run("deploy.sh", *args, tmp_path=tmp_path)
    assert p.returncode != 0
    assert calls(tmp_path) == [] and calls(tmp_path, "docker-calls") == []


def test_blue_green_switch_and_back(tmp_path):  # R: K5, K4
    p = run("blue-green.sh", "switch", "green", tmp_path=tmp_path)
    assert p.returncode == 0, p.stderr
    assert (tmp_path / "color").read_text() == "green"
    assert "Service hale selector color: blue -> green" in p.stdout
    assert "now: hale-green (registry.example.com/hale:hale-green)" in p.stdout
    p = run("blue-green.sh", "switch", "blue", tmp_path=tmp_path)
    assert p.returncode == 0, p.stderr
    assert (tmp_path / "color").read_text() == "blue"
    p = run("blue-green.sh", "switch", "blue", tmp_path=tmp_path)
    assert p.returncode == 0 and "already live" in p.stdout
    assert sum(c.startswith("patch") for c in calls(tmp_path)) == 2


@pytest.mark.parametrize("env, message", [
    ({"FAKE_KUBECTL_COUNTS": "3 3 2 2"}, "hale-green is not fully ready"),
    ({"FAKE_KUBECTL_COUNTS": "0 0 0 0"}, "hale-green has no replicas"),
    ({"FAKE_KUBECTL_FAIL": "rollout status"}, "has not finished rolling out"),
])
def test_blue_green_refuses_to_switch_to_an_unready_colour(tmp_path, env, message):  # R: K5, K4
    p = run("blue-green.sh", "switch", "green", tmp_path=tmp_path, **env)
    assert p.returncode == 1
    assert message in p.stderr
    assert not any(c.startswith("patch") for c in calls(tmp_path))
    assert (tmp_path / "color").read_text() == "blue"


def test_blue_green_rejects_unknown_colour(tmp_path):  # R: K5
    p = run("blue-green.sh", "switch", "red", tmp_path=tmp_path)
    assert p.returncode == 1 and "blue or green" in p.stderr
    assert calls(tmp_path) == []


def test_canary_start_failure_empties_the_canary(tmp_path):  # R: K5
    p = run("canary.sh", "start", "1.5.0", tmp_path=tmp_path, FAKE_KUBECTL_FAIL="rollout status")
    assert p.returncode == 1
    assert "did not become ready" in p.stderr
    assert calls(tmp_path)[-1] == "scale deployment/hale-canary -n hale --replicas=0"


def test_canary_promote_failure_rolls_stable_back(tmp_path):  # R: K5
    p = run("canary.sh", "promote", tmp_path=tmp_path,
            FAKE_KUBECTL_FAIL="rollout status deployment/hale-stable", FAKE_KUBECTL_FAIL_TIMES=1)
    assert p.returncode == 1
    assert "promotion of registry.example.com/hale:hale-canary failed" in p.stderr
    k = calls(tmp_path)
    assert "set image deployment/hale-stable -n hale hale=registry.example.com/hale:hale-canary" in k
    assert k[-2:] == ["rollout undo deployment/hale-stable -n hale",
                      "rollout status deployment/hale-stable -n hale --timeout=600s"]
    assert not any(c.startswith("scale deployment/hale-canary") for c in k), "canary kept for inspection"


def test_canary_promote_refuses_an_unready_canary(tmp_path):  # R: K5
    p = run("canary.sh", "promote", tmp_path=tmp_path, FAKE_KUBECTL_COUNTS="1 1 0 0")
    assert p.returncode == 1 and "not fully ready" in p.stderr
    assert not any(c.startswith("set image") for c in calls(tmp_path))


def test_scripts_are_strict_and_have_dry_run():  # R: K5
    for name in ("deploy.sh", "blue-green.sh", "canary.sh"):
        text = (ROOT / "deploy" / name).read_text()
        assert "set -euo pipefail" in text, name
        assert "--dry-run" in text and ". \"$HERE/lib.sh\"" in text, name
        assert os.access(ROOT / "deploy" / name, os.X_OK), f"{name} not executable"
    assert (HERE / "fake-kubectl").read_text().count("TEST DOUBLE") == 1
