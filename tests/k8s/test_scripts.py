"""deploy/deploy.sh, blue-green.sh and canary.sh (K5).

--dry-run must print the exact command sequence and run nothing; real runs
use tests/k8s/fake-kubectl and tests/k8s/fake-docker (TEST DOUBLES) through
the KUBECTL/DOCKER overrides, which record every call and fail on demand.
"""
from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import time

import pytest
import yaml

from conftest import HERE, ROOT, kubectl_path

FAKE_KUBECTL = str(HERE / "fake-kubectl")
FAKE_DOCKER = str(HERE / "fake-docker")
REV = r"jsonpath=\{\.metadata\.annotations\.deployment\\\.kubernetes\\\.io/revision\}'?"


def run(script, *args, tmp_path, background=False, **env):
    e = dict(os.environ)
    for k in list(e):
        if k.startswith("FAKE_") or k in ("KUBECTL", "DOCKER", "NAMESPACE", "REGISTRY"):
            del e[k]
    e.update(KUBECTL=FAKE_KUBECTL, DOCKER=FAKE_DOCKER, FAKE_KUBECTL_DIR=str(tmp_path),
             FAKE_DOCKER_DIR=str(tmp_path), TMPDIR=str(tmp_path),
             KUSTOMIZE=kubectl_path() + " kustomize", FAKE_KUBECTL_RENDER=kubectl_path(),
             FAKE_KUBECTL_CRDS="all")
    e.update({k: str(v) for k, v in env.items()})
    if background:
        return subprocess.Popen(["bash", str(ROOT / "deploy" / script), *args], stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, text=True, env=e, cwd=ROOT)
    p = subprocess.run(["bash", str(ROOT / "deploy" / script), *args], capture_output=True,
                       text=True, env=e, cwd=ROOT, timeout=60, check=False)
    return p


def state(tmp_path):
    return json.loads((tmp_path / "state.json").read_text())


def applied(tmp_path):
    return [d for d in yaml.safe_load_all((tmp_path / "applied.yaml").read_text()) if d]


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
    r"kubectl get crd prometheusrules\.monitoring\.coreos\.com -o name",
    r"kubectl get crd servicemonitors\.monitoring\.coreos\.com -o name",
    r"kubectl get crd verticalpodautoscalers\.autoscaling\.k8s\.io -o name",
    r"kubectl get deployment hale -n hale --ignore-not-found -o '" + REV,
    r"kubectl diff --server-side --field-manager=hale-deploy --force-conflicts -k \S+/hale-deploy\.\w+",
    r"kubectl apply --server-side --field-manager=hale-deploy --force-conflicts -k \S+/hale-deploy\.\w+",
    r"kubectl rollout status deployment/hale -n hale --timeout=300s",
    r"kubectl get pods -n hale -l app\.kubernetes\.io/name=hale -o 'jsonpath=\{range \.items\[\*\]\}"
    r"\{\.metadata\.name\} \{\.status\.containerStatuses\[\?\(@\.name==\"hale\"\)\]\.imageID\} "
    r"\{\.metadata\.deletionTimestamp\}.*'",
    r"kubectl run hale-smoke-1-4-0 -n hale --rm -i --restart=Never --quiet "
    r"--image=curlimages/curl:8\.11\.1 '--overrides=\{.*\"app\.kubernetes\.io/component\":\"smoke-test\".*"
    r"http://hale\.hale\.svc/health/readiness.*\}'",
]


# ------------------------------------------------------------ dry runs

def test_deploy_dry_run_prints_the_sequence_and_runs_nothing(tmp_path):  # R: K5, K8, K9
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

def test_deploy_success_applies_a_digest_pinned_image(tmp_path):  # R: K5, K1, K9
    p = run("deploy.sh", "1.4.0", tmp_path=tmp_path, FAKE_KUBECTL_RENDER=kubectl_path(),
            FAKE_KUBECTL_CRDS="all")
    assert p.returncode == 0, p.stdout + p.stderr
    k = calls(tmp_path)
    assert [c.split(" -n ")[0].split(" --")[0].split(" -o ")[0] for c in k] == [
        "get secret hale-secrets", "get crd prometheusrules.monitoring.coreos.com",
        "get crd servicemonitors.monitoring.coreos.com", "get crd verticalpodautoscalers.autoscaling.k8s.io",
        "get deployment hale", "diff", "apply",
        "rollout status deployment/hale", "get pods", "run hale-smoke-1-4-0"]
    assert not any(c.startswith("rollout undo") for c in k)
    assert "7 live pods" not in p.stdout and "3 live pods run sha256:" in p.stdout
    dep = next(d for d in applied(tmp_path) if d["kind"] == "Deployment")
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
    p = run("deploy.sh", "1.4.0", tmp_path=tmp_path, FAKE_KUBECTL_FAIL="apply --server-side")
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


# ------------------------------------------ issue 18: what a real cluster does

DIGEST7 = "sha256:" + "0" * 63 + "7"


def test_fake_kubectl_models_the_api_server(tmp_path):  # R: K8, K10
    """The fake itself: apply writes replicas when present, the revision moves
    only with the template, unknown kinds fail the apply, undo restores."""
    env = dict(os.environ, FAKE_KUBECTL_DIR=str(tmp_path), FAKE_KUBECTL_RENDER=kubectl_path(),
               FAKE_KUBECTL_REPLICAS="10")
    env.pop("FAKE_KUBECTL_CRDS", None)

    def k(*a):
        return subprocess.run([FAKE_KUBECTL, *a], capture_output=True, text=True, env=env, check=False)
    over = tmp_path / "o"
    over.mkdir()
    base = os.path.relpath(ROOT / "deploy/k8s/base/workload", over)
    (over / "kustomization.yaml").write_text(f"resources: [{base}]\npatches:\n")
    assert k("apply", "-k", str(over)).returncode == 0
    st = state(tmp_path)["deployments"]["hale"]
    assert (st["revision"], st["replicas"]) == (5, 10)         # new template, HPA's count kept
    assert k("apply", "-k", str(over)).returncode == 0
    assert state(tmp_path)["deployments"]["hale"]["revision"] == 5, "same template: no new revision"
    (over / "kustomization.yaml").write_text(
        (over / "kustomization.yaml").read_text() +
        "  - target: {kind: Deployment}\n    patch: |-\n"
        "      - {op: add, path: /spec/replicas, value: 3}\n")
    assert k("apply", "-k", str(over)).returncode == 0
    assert state(tmp_path)["deployments"]["hale"]["replicas"] == 3, "apply writes replicas"
    assert k("rollout", "undo", "deployment/hale", "--to-revision=4").returncode == 0
    st = state(tmp_path)["deployments"]["hale"]
    assert st["revision"] == 6 and st["template"] == st["history"]["4"]
    # an unknown kind (the VPA, with no CRD) fails the whole apply
    vpa = tmp_path / "with-vpa"
    vpa.mkdir()
    (vpa / "kustomization.yaml").write_text(
        f"resources: [{base}]\ncomponents: [{os.path.relpath(ROOT / 'deploy/k8s/components/vpa', vpa)}]\n")
    p = k("apply", "-k", str(vpa))
    assert p.returncode == 1 and "VerticalPodAutoscaler/hale" in p.stderr
    assert state(tmp_path)["deployments"]["hale"]["revision"] == 6


def test_deploy_keeps_the_hpas_replica_count(tmp_path):  # R: K8
    # the HPA has scaled hale to 10: a deploy must not snap it back to 3
    p = run("deploy.sh", "1.4.0", tmp_path=tmp_path, FAKE_KUBECTL_REPLICAS=10)
    assert p.returncode == 0, p.stdout + p.stderr
    assert state(tmp_path)["deployments"]["hale"]["replicas"] == 10
    assert "10 live pods run " + DIGEST7 in p.stdout


def _overlay_with_new_name(tmp_path, new_name):
    over = tmp_path / "my-overlay"
    over.mkdir()
    rel = os.path.relpath(ROOT / "deploy/k8s/overlays/production", over)
    (over / "kustomization.yaml").write_text(
        f"resources: [{rel}]\nimages:\n  - name: registry.example.com/hale\n"
        f"    newName: {new_name}\n    newTag: 0.1.0\n")
    return over


def test_deploy_pins_the_digest_whatever_the_overlays_new_name(tmp_path):  # R: K9, K5
    # an overlay whose image is a real registry's: deploy.sh must still pin it
    over = _overlay_with_new_name(tmp_path, "reg.corp.example:5000/team/hale")
    p = run("deploy.sh", "--overlay", str(over), "1.4.0", tmp_path=tmp_path,
            REGISTRY="reg.corp.example:5000/team")
    assert p.returncode == 0, p.stdout + p.stderr
    dep = next(d for d in applied(tmp_path) if d["kind"] == "Deployment")
    assert dep["spec"]["template"]["spec"]["containers"][0]["image"] == \
        "reg.corp.example:5000/team/hale@" + DIGEST7
    assert "0.1.0" not in (tmp_path / "applied.yaml").read_text().split("kind: Deployment")[1]


def test_deploy_refuses_a_render_that_does_not_use_the_pushed_image(tmp_path):  # R: K9
    # an overlay that patches the container image after the images transformer
    over = tmp_path / "stuck"
    over.mkdir()
    rel = os.path.relpath(ROOT / "deploy/k8s/overlays/production", over)
    (over / "kustomization.yaml").write_text(
        f"resources: [{rel}]\npatches:\n  - target: {{kind: Deployment}}\n    patch: |-\n"
        "      - {op: add, path: /spec/template/spec/initContainers, value: "
        "[{name: pre, image: 'registry.example.com/hale:0.0.9'}]}\n")
    p = run("deploy.sh", "--overlay", str(over), "--no-build", "1.4.0", tmp_path=tmp_path)
    # the images transformer rewrites the init container too: it is pinned
    assert p.returncode == 0, p.stdout + p.stderr
    # a hale image kustomize's images transformer does not rewrite (a field
    # of a custom resource): the render would not run only the pushed image
    (over / "job.yaml").write_text("apiVersion: example.com/v1\nkind: Runner\nmetadata: {name: r}\n"
                                   "spec:\n  image: registry.example.com/hale:0.0.9\n")
    (over / "kustomization.yaml").write_text(
        (over / "kustomization.yaml").read_text().replace("resources: [", "resources: [job.yaml, "))
    other = tmp_path / "x"
    other.mkdir()
    p = run("deploy.sh", "--overlay", str(over), "--no-build", "1.4.0", tmp_path=other)
    assert p.returncode == 1 and "not applying" in p.stderr, p.stdout + p.stderr
    assert "registry.example.com/hale:0.0.9" in p.stderr
    assert not any(c.startswith("apply") for c in calls(other))


def test_deploy_rolls_back_when_live_pods_run_another_digest(tmp_path):  # R: K9
    p = run("deploy.sh", "1.4.0", tmp_path=tmp_path,
            FAKE_KUBECTL_IMAGE_ID="registry.example.com/hale@sha256:" + "9" * 64)
    assert p.returncode == 1
    assert "live pods do not run the pushed digest " + DIGEST7 in p.stderr
    k = calls(tmp_path)
    assert "rollout undo deployment/hale -n hale --to-revision=4" in k
    assert not any(c.startswith("run hale-smoke") for c in k)
    assert "deployed" not in p.stdout.splitlines()[-1]


def test_deploy_without_a_registry_digest_fails_before_the_cluster(tmp_path):  # R: K9
    fake_docker = tmp_path / "docker"
    fake_docker.write_text("#!/bin/sh\nexit 0\n")   # pushes, but reports no RepoDigests
    fake_docker.chmod(0o755)
    p = run("deploy.sh", "1.4.0", tmp_path=tmp_path, DOCKER=str(fake_docker))
    assert p.returncode == 1 and "no registry digest" in p.stderr
    assert calls(tmp_path) == []


def test_deploy_diffs_then_applies_server_side_with_a_field_manager(tmp_path):  # R: K8
    p = run("deploy.sh", "1.4.0", tmp_path=tmp_path)
    assert p.returncode == 0, p.stderr
    k = calls(tmp_path)
    d = next(i for i, c in enumerate(k) if c.startswith("diff "))
    a = next(i for i, c in enumerate(k) if c.startswith("apply "))
    assert d < a
    assert "--server-side" in k[a] and "--field-manager=hale-deploy" in k[a]
    assert "(fake) diff of the live objects" in p.stdout


def test_deploy_first_failure_never_advises_deleting_the_namespace(tmp_path):  # R: K9
    p = run("deploy.sh", "1.4.0", tmp_path=tmp_path, FAKE_KUBECTL_FAIL="rollout status",
            FAKE_KUBECTL_REVISION="")
    assert p.returncode == 1
    assert "delete -k" not in p.stderr and "delete namespace" not in p.stderr
    assert "scale deployment/hale --replicas=0" in p.stderr


def test_deploy_refuses_the_blue_green_and_canary_overlays(tmp_path):  # R: K12, K5
    for name, script in (("blue-green", "blue-green.sh"), ("canary", "canary.sh")):
        p = run("deploy.sh", "--overlay", str(ROOT / "deploy/k8s/overlays" / name), "1.4.0",
                tmp_path=tmp_path)
        assert p.returncode == 1 and script in p.stderr, p.stderr
    assert calls(tmp_path) == [] and calls(tmp_path, "docker-calls") == []


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_deploy_interrupted_after_apply_rolls_back(tmp_path, sig):  # R: K9
    slow = tmp_path / "slow-kubectl"
    slow.write_text(f"#!/bin/bash\n[[ $* == 'rollout status deployment/hale'* && ! -e {tmp_path}/undone ]]"
                    f" && {{ touch {tmp_path}/waiting; sleep 2; }}\n"
                    f"[[ $1 == rollout && $2 == undo ]] && touch {tmp_path}/undone\n"
                    f"exec {FAKE_KUBECTL} \"$@\"\n")
    slow.chmod(0o755)
    proc = run("deploy.sh", "1.4.0", tmp_path=tmp_path, background=True, KUBECTL=str(slow))
    end = time.monotonic() + 30
    while not (tmp_path / "waiting").exists() and time.monotonic() < end and proc.poll() is None:
        time.sleep(0.05)
    assert (tmp_path / "waiting").exists(), proc.communicate()
    proc.send_signal(sig)
    out, err = proc.communicate(timeout=30)
    assert proc.returncode == 130, out + err
    assert "interrupted by" in err
    assert "rollout undo deployment/hale -n hale --to-revision=4" in calls(tmp_path)
    assert state(tmp_path)["deployments"]["hale"]["template"] == \
        state(tmp_path)["deployments"]["hale"]["history"]["4"]


@pytest.mark.parametrize("installed, missing", [
    ("", "prometheusrules.monitoring.coreos.com servicemonitors.monitoring.coreos.com "
         "verticalpodautoscalers.autoscaling.k8s.io"),
    ("prometheusrules.monitoring.coreos.com servicemonitors.monitoring.coreos.com",
     "verticalpodautoscalers.autoscaling.k8s.io"),
])
def test_deploy_checks_the_crds_before_applying(tmp_path, installed, missing):  # R: K10
    # without the check, the fake (like the API server) fails the apply on
    # the unknown kind and deploy.sh rolls back a good release
    p = run("deploy.sh", "1.4.0", tmp_path=tmp_path, FAKE_KUBECTL_CRDS=installed)
    assert p.returncode == 1
    assert f"lacks the CRD(s) {missing}" in p.stderr and "nothing was applied" in p.stderr
    k = calls(tmp_path)
    assert not any(c.startswith(("apply", "diff", "rollout")) for c in k)
    assert state(tmp_path)["deployments"]["hale"]["revision"] == 4


def test_deploy_on_a_cluster_with_the_crds(tmp_path):  # R: K10
    p = run("deploy.sh", "1.4.0", tmp_path=tmp_path,
            FAKE_KUBECTL_CRDS="prometheusrules.monitoring.coreos.com servicemonitors.monitoring.coreos.com "
                              "verticalpodautoscalers.autoscaling.k8s.io")
    assert p.returncode == 0, p.stdout + p.stderr
    kinds = {d["kind"] for d in applied(tmp_path)}
    assert {"VerticalPodAutoscaler", "ServiceMonitor", "PrometheusRule"} <= kinds


def test_base_without_components_deploys_on_a_bare_cluster(tmp_path):  # R: K10
    p = run("deploy.sh", "--overlay", str(ROOT / "deploy/k8s/base"), "1.4.0", tmp_path=tmp_path,
            FAKE_KUBECTL_CRDS="")
    # the base names its image "hale": deploy.sh finds it whatever it is called
    assert p.returncode == 0, p.stdout + p.stderr
    assert not any(c.startswith("get crd") for c in calls(tmp_path))
