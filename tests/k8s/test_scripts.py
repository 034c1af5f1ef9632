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


def test_env_overrides_kubectl_docker_namespace_registry(tmp_path):  # R: K5
    p = run("deploy.sh", "--dry-run", "2.0.0", tmp_path=tmp_path,
            KUBECTL="kubectl --context prod", DOCKER="podman", NAMESPACE="shop", REGISTRY="reg.local:5000")
    assert p.returncode == 0, p.stderr
    lines = traced(p)
    assert lines[0].startswith("podman build -t reg.local:5000/hale:2.0.0 ")
    assert "kubectl --context prod rollout status deployment/hale -n shop --timeout=300s" in lines
    assert any("http://hale.shop.svc/health/readiness" in x for x in lines)


# ---------------------------------------------------- real runs with fakes

def test_deploy_success_applies_a_digest_pinned_image(tmp_path):  # R: K5, K1, K9, K7
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
def test_deploy_rolls_back_when_a_step_after_apply_fails(tmp_path, failing, reason):  # R: K5, K7
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


# ------------------------------- K12: blue-green and canary keep git in step

import shutil  # noqa: E402

REF_A = "registry.example.com/hale@sha256:" + "a" * 64
REF_B = "registry.example.com/hale@sha256:" + "b" * 64


@pytest.fixture()
def kit(tmp_path):
    """A copy of deploy/ (the scripts edit their overlay's files)."""
    root = tmp_path / "repo"
    shutil.copytree(ROOT / "deploy", root / "deploy")
    return root / "deploy"


def kfake(tmp_path, *args):
    env = dict(os.environ, FAKE_KUBECTL_DIR=str(tmp_path), FAKE_KUBECTL_RENDER=kubectl_path(),
               FAKE_KUBECTL_CRDS="all")
    p = subprocess.run([FAKE_KUBECTL, *args], capture_output=True, text=True, env=env, check=False)
    assert p.returncode == 0, p.stderr
    return p.stdout


def run_kit(kit, script, *args, tmp_path, **env):
    e = dict(os.environ)
    for k in list(e):
        if k.startswith("FAKE_") or k in ("KUBECTL", "NAMESPACE", "OVERLAY"):
            del e[k]
    e.update(KUBECTL=FAKE_KUBECTL, FAKE_KUBECTL_DIR=str(tmp_path), FAKE_KUBECTL_RENDER=kubectl_path(),
             FAKE_KUBECTL_CRDS="all", TMPDIR=str(tmp_path))
    e.update({k: str(v) for k, v in env.items()})
    return subprocess.run(["bash", str(kit / script), *args], capture_output=True, text=True, env=e,
                          cwd=kit, timeout=120, check=False)


def traced_text(p):
    return "\n".join("+ " + line for line in traced(p))


def image_in(tmp_path, name):
    return state(tmp_path)["deployments"][name]["template"]["spec"]["containers"][0]["image"]


def test_blue_green_stage_and_switch_survive_a_reapply(kit, tmp_path):  # R: K12, K4, K5
    over = kit / "k8s/overlays/blue-green"
    kfake(tmp_path, "apply", "-k", str(over))                  # the overlay as shipped: blue live
    kfake(tmp_path, "scale", "deployment/hale-blue", "--replicas=7")   # the HPA scaled blue
    p = run_kit(kit, "blue-green.sh", "stage", REF_A, tmp_path=tmp_path)
    assert p.returncode == 0, p.stdout + p.stderr
    assert image_in(tmp_path, "hale-green") == REF_A and image_in(tmp_path, "hale-blue").endswith(":0.1.0")
    assert "digest: sha256:" + "a" * 64 in (over / "green/kustomization.yaml").read_text()
    p = run_kit(kit, "blue-green.sh", "switch", "green", tmp_path=tmp_path)
    assert p.returncode == 0, p.stdout + p.stderr
    assert state(tmp_path)["color"] == "green"
    assert "color: green" in (over / "live-colour.yaml").read_text()
    assert "commit them" in p.stdout or "commit this change" in p.stdout
    # the idle colour was scaled to the live colour's count before the switch
    k = calls(tmp_path)
    sc = k.index("scale deployment/hale-green -n hale --replicas=7")
    assert sc < next(i for i, c in enumerate(k) if c.startswith("patch service"))
    # a later plain apply (or GitOps sync) of the overlay changes nothing
    rev = {n: d["revision"] for n, d in state(tmp_path)["deployments"].items()}
    kfake(tmp_path, "apply", "-k", str(over))
    assert state(tmp_path)["color"] == "green", "a re-apply flipped traffic back"
    assert {n: d["revision"] for n, d in state(tmp_path)["deployments"].items()} == rev
    assert image_in(tmp_path, "hale-green") == REF_A


def test_blue_green_switch_and_back(kit, tmp_path):  # R: K5, K4, K12
    kfake(tmp_path, "apply", "-k", str(kit / "k8s/overlays/blue-green"))
    p = run_kit(kit, "blue-green.sh", "switch", "green", tmp_path=tmp_path)
    assert p.returncode == 0, p.stderr
    assert "Service hale selector color: blue -> green" in p.stdout
    assert "now: hale-green (registry.example.com/hale:0.1.0)" in p.stdout
    assert re.search(r"switch back with: \S*deploy/blue-green.sh switch blue", p.stdout)
    p = run_kit(kit, "blue-green.sh", "switch", "blue", tmp_path=tmp_path)
    assert p.returncode == 0, p.stderr
    assert state(tmp_path)["color"] == "blue"
    assert "color: blue" in (kit / "k8s/overlays/blue-green/live-colour.yaml").read_text()
    p = run_kit(kit, "blue-green.sh", "switch", "blue", tmp_path=tmp_path)
    assert p.returncode == 0 and "already live" in p.stdout
    assert sum(c.startswith("patch") for c in calls(tmp_path)) == 2


def test_blue_green_dry_run_edits_nothing(kit, tmp_path):  # R: K5, K12
    before = {f: f.read_text() for f in (kit / "k8s/overlays/blue-green").rglob("*.yaml")}
    for args in (["switch", "green"], ["stage", REF_A]):
        p = run_kit(kit, "blue-green.sh", "--dry-run", *args, tmp_path=tmp_path)
        assert p.returncode == 0, p.stdout + p.stderr
    assert calls(tmp_path) == []
    assert {f: f.read_text() for f in before} == before
    assert "+ kubectl apply --server-side --field-manager=hale-deploy" in traced_text(p)


@pytest.mark.parametrize("env, message", [
    ({"FAKE_KUBECTL_COUNTS": "3 3 2 2"}, "hale-green is not fully ready"),
    ({"FAKE_KUBECTL_FAIL": "rollout status"}, "has not finished rolling out"),
])
def test_blue_green_refuses_to_switch_to_an_unready_colour(kit, tmp_path, env, message):  # R: K5, K4
    kfake(tmp_path, "apply", "-k", str(kit / "k8s/overlays/blue-green"))
    p = run_kit(kit, "blue-green.sh", "switch", "green", tmp_path=tmp_path, **env)
    assert p.returncode == 1
    assert message in p.stderr
    assert not any(c.startswith("patch") for c in calls(tmp_path))
    assert state(tmp_path)["color"] == "blue"
    assert "color: blue" in (kit / "k8s/overlays/blue-green/live-colour.yaml").read_text()


def test_blue_green_rejects_unknown_colour_and_tags(kit, tmp_path):  # R: K5, K12
    p = run_kit(kit, "blue-green.sh", "switch", "red", tmp_path=tmp_path)
    assert p.returncode == 1 and "blue or green" in p.stderr
    p = run_kit(kit, "blue-green.sh", "stage", "registry.example.com/hale:1.5.0", tmp_path=tmp_path)
    assert p.returncode == 1 and "by digest" in p.stderr
    assert calls(tmp_path) == []


def canary_files(kit):
    o = kit / "k8s/overlays/canary"
    return {"weight": re.search(r'canary-weight: "(\d+)"', (o / "canary/ingress.yaml").read_text()).group(1),
            "replicas": re.search(r"replicas: (\d+)", (o / "canary/replicas.yaml").read_text()).group(1),
            "canary": (o / "canary/kustomization.yaml").read_text(),
            "stable": (o / "stable/kustomization.yaml").read_text()}


def live_canary(tmp_path):
    st = state(tmp_path)
    ing = st["objects"]["Ingress/hale-canary"]["metadata"]["annotations"]
    return int(ing["nginx.ingress.kubernetes.io/canary-weight"]), st["deployments"]["hale-canary"]["replicas"]


def test_canary_start_promote_keep_git_and_cluster_agreeing(kit, tmp_path):  # R: K12, K4, K5
    over = kit / "k8s/overlays/canary"
    kfake(tmp_path, "apply", "-k", str(over))
    p = run_kit(kit, "canary.sh", "start", REF_B, tmp_path=tmp_path)
    assert p.returncode == 0, p.stdout + p.stderr
    assert image_in(tmp_path, "hale-canary") == REF_B
    assert live_canary(tmp_path) == (10, 1)
    f = canary_files(kit)
    assert (f["weight"], f["replicas"]) == ("10", "1") and "sha256:" + "b" * 64 in f["canary"]
    # weight 0 until the canary was ready: the first apply after the edit
    applies = [c for c in calls(tmp_path) if c.startswith("apply --server-side")]
    assert len(applies) == 2
    p = run_kit(kit, "canary.sh", "promote", tmp_path=tmp_path)
    assert p.returncode == 0, p.stdout + p.stderr
    assert image_in(tmp_path, "hale-stable") == REF_B
    assert live_canary(tmp_path) == (0, 0)
    f = canary_files(kit)
    assert (f["weight"], f["replicas"]) == ("0", "0") and "sha256:" + "b" * 64 in f["stable"]
    # a re-apply neither revives the canary nor reverts the promotion
    kfake(tmp_path, "apply", "-k", str(over))
    assert live_canary(tmp_path) == (0, 0) and image_in(tmp_path, "hale-stable") == REF_B


def test_canary_abort_survives_a_reapply(kit, tmp_path):  # R: K12
    over = kit / "k8s/overlays/canary"
    kfake(tmp_path, "apply", "-k", str(over))
    assert run_kit(kit, "canary.sh", "start", REF_B, tmp_path=tmp_path).returncode == 0
    p = run_kit(kit, "canary.sh", "abort", tmp_path=tmp_path)
    assert p.returncode == 0, p.stdout + p.stderr
    assert live_canary(tmp_path) == (0, 0)
    kfake(tmp_path, "apply", "-k", str(over))
    assert live_canary(tmp_path) == (0, 0), "a re-apply revived the aborted canary"
    assert image_in(tmp_path, "hale-stable").endswith(":0.1.0")


def test_canary_goes_by_digest(kit, tmp_path):  # R: K12
    p = run_kit(kit, "canary.sh", "start", "1.5.0", tmp_path=tmp_path)
    assert p.returncode == 1 and "canaries go by digest" in p.stderr
    assert calls(tmp_path) == []


def test_canary_start_failure_empties_the_canary(kit, tmp_path):  # R: K5, K12
    kfake(tmp_path, "apply", "-k", str(kit / "k8s/overlays/canary"))
    p = run_kit(kit, "canary.sh", "start", REF_B, tmp_path=tmp_path, FAKE_KUBECTL_FAIL="rollout status")
    assert p.returncode == 1
    assert "did not become ready" in p.stderr
    assert live_canary(tmp_path) == (0, 0)
    f = canary_files(kit)
    assert (f["weight"], f["replicas"]) == ("0", "0")


def test_canary_promote_failure_rolls_stable_back(kit, tmp_path):  # R: K5, K12
    kfake(tmp_path, "apply", "-k", str(kit / "k8s/overlays/canary"))
    assert run_kit(kit, "canary.sh", "start", REF_B, tmp_path=tmp_path).returncode == 0
    p = run_kit(kit, "canary.sh", "promote", tmp_path=tmp_path,
                FAKE_KUBECTL_FAIL="rollout status deployment/hale-stable", FAKE_KUBECTL_FAIL_TIMES=1)
    assert p.returncode == 1
    assert f"promotion of {REF_B} failed" in p.stderr
    assert image_in(tmp_path, "hale-stable").endswith(":0.1.0")
    f = canary_files(kit)
    assert "newTag: 0.1.0" in f["stable"] and (f["weight"], f["replicas"]) == ("10", "1")
    assert live_canary(tmp_path) == (10, 1), "canary kept for inspection"


def test_canary_promote_refuses_an_unready_canary(kit, tmp_path):  # R: K5
    kfake(tmp_path, "apply", "-k", str(kit / "k8s/overlays/canary"))
    p = run_kit(kit, "canary.sh", "promote", tmp_path=tmp_path, FAKE_KUBECTL_COUNTS="1 1 0 0")
    assert p.returncode == 1 and "not fully ready" in p.stderr
    assert not any(c.startswith("apply") for c in calls(tmp_path)[1:])


def test_canary_dry_runs_edit_nothing(kit, tmp_path):  # R: K5
    before = {f: f.read_text() for f in (kit / "k8s/overlays/canary").rglob("*.yaml")}
    for args in (["start", REF_B], ["promote"], ["abort"]):
        p = run_kit(kit, "canary.sh", "--dry-run", *args, tmp_path=tmp_path)
        assert p.returncode == 0, p.stdout + p.stderr
        assert "+ " in p.stdout
    assert calls(tmp_path) == []
    assert {f: f.read_text() for f in before} == before
