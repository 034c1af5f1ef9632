"""deploy/deploy.sh against a REAL registry (K9, D4).

Debian's docker-registry (the CNCF distribution registry, installed by
scripts/install-deps.sh test) runs on 127.0.0.1 on a free port, with its
storage in a temporary directory. deploy.sh builds an image with the real
Docker engine, pushes it there, reads the digest Docker recorded for the push,
and pins that digest in what it applies, as a user's pipeline would. The test
asks the registry itself (its HTTP API) which digest the pushed tag has and
checks that deploy.sh applied exactly that one.

The image is a tiny FROM-scratch image (the engine has no registry to pull a
base from, and the hale images are built and tested by tests/image); the
cluster side is tests/k8s/fake-kubectl. What this does not cover: a kubelet
pulling from the registry (no cluster here).
"""
from __future__ import annotations

import os
import shutil
import socket
import subprocess
import time
import urllib.request
import uuid

import pytest
import yaml

from conftest import HERE, ROOT, kubectl_path

REGISTRY_BIN = shutil.which("docker-registry") or "/usr/bin/docker-registry"
ACCEPT = ", ".join([
    "application/vnd.docker.distribution.manifest.v2+json",
    "application/vnd.docker.distribution.manifest.list.v2+json",
    "application/vnd.oci.image.manifest.v1+json",
    "application/vnd.oci.image.index.v1+json",
])


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def registry(tmp_path_factory):
    assert os.path.exists(REGISTRY_BIN), "docker-registry missing: scripts/install-deps.sh test"
    assert subprocess.run(["docker", "info"], capture_output=True).returncode == 0, \
        "no Docker engine answers (docker info)"
    d = tmp_path_factory.mktemp("registry")
    port = free_port()
    (d / "config.yml").write_text(yaml.safe_dump({
        "version": 0.1,
        "log": {"level": "warn"},
        "storage": {"filesystem": {"rootdirectory": str(d / "data")}},
        "http": {"addr": f"127.0.0.1:{port}"},
    }))
    log = open(d / "registry.log", "wb")
    proc = subprocess.Popen([REGISTRY_BIN, "serve", str(d / "config.yml")], stdout=log,
                            stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}/v2/"
    end = time.monotonic() + 20
    while time.monotonic() < end:
        try:
            with urllib.request.urlopen(url, timeout=1) as r:
                if r.status == 200:
                    break
        except OSError:
            time.sleep(0.1)
    else:
        proc.kill()
        pytest.fail("docker-registry did not answer:\n" + (d / "registry.log").read_text())
    yield f"127.0.0.1:{port}"
    proc.terminate()
    proc.wait(timeout=10)
    log.close()


def registry_digest(registry, repo, tag):
    req = urllib.request.Request(f"http://{registry}/v2/{repo}/manifests/{tag}", method="HEAD",
                                 headers={"Accept": ACCEPT})
    with urllib.request.urlopen(req, timeout=5) as r:
        return r.headers["Docker-Content-Digest"]


def test_deploy_pins_the_digest_the_registry_has(registry, tmp_path):  # R: K9, D4, K5
    ctx = tmp_path / "ctx"
    ctx.mkdir()
    (ctx / "payload").write_text(f"hale registry test {uuid.uuid4()}\n")  # a fresh digest each run
    (ctx / "Dockerfile").write_text("FROM scratch\nCOPY payload /payload\n")
    version = "1.4.0-" + uuid.uuid4().hex[:8]
    image = f"{registry}/hale:{version}"
    env = {k: v for k, v in os.environ.items() if not k.startswith("FAKE_")}
    env.update(KUBECTL=str(HERE / "fake-kubectl"), KUSTOMIZE=kubectl_path() + " kustomize",
               FAKE_KUBECTL_DIR=str(tmp_path), FAKE_KUBECTL_RENDER=kubectl_path(), FAKE_KUBECTL_CRDS="all",
               REGISTRY=registry, DOCKER_CONTEXT_DIR=str(ctx), TMPDIR=str(tmp_path), DOCKER="docker")
    try:
        p = subprocess.run(["bash", str(ROOT / "deploy/deploy.sh"), version], capture_output=True,
                           text=True, env=env, timeout=300, check=False)
        assert p.returncode == 0, p.stdout + p.stderr
        digest = registry_digest(registry, "hale", version)
        assert digest.startswith("sha256:")
        docs = [d for d in yaml.safe_load_all((tmp_path / "applied.yaml").read_text()) if d]
        dep = next(d for d in docs if d["kind"] == "Deployment")
        images = {c["image"] for c in dep["spec"]["template"]["spec"]["containers"]
                  + dep["spec"]["template"]["spec"].get("initContainers", [])}
        assert images == {f"{registry}/hale@{digest}"}
        assert f"live pods run {digest}" in p.stdout
        # and the registry serves that digest (what a kubelet would pull)
        assert registry_digest(registry, "hale", digest) == digest
    finally:
        subprocess.run(["docker", "rmi", "-f", image], capture_output=True, check=False)


def test_deploy_fails_when_the_push_does_not_reach_the_registry(registry, tmp_path):  # R: K9
    ctx = tmp_path / "ctx"
    ctx.mkdir()
    (ctx / "Dockerfile").write_text("FROM scratch\nCOPY Dockerfile /x\n")
    dead = f"127.0.0.1:{free_port()}"   # nothing listens there
    env = {k: v for k, v in os.environ.items() if not k.startswith("FAKE_")}
    env.update(KUBECTL=str(HERE / "fake-kubectl"), KUSTOMIZE=kubectl_path() + " kustomize",
               FAKE_KUBECTL_DIR=str(tmp_path), FAKE_KUBECTL_RENDER=kubectl_path(), FAKE_KUBECTL_CRDS="all",
               REGISTRY=dead, DOCKER_CONTEXT_DIR=str(ctx), TMPDIR=str(tmp_path), DOCKER="docker")
    try:
        p = subprocess.run(["bash", str(ROOT / "deploy/deploy.sh"), "1.4.1"], capture_output=True,
                           text=True, env=env, timeout=300, check=False)
        assert p.returncode == 1 and "docker push failed" in p.stderr, p.stdout + p.stderr
        assert not (tmp_path / "calls").exists(), "nothing reached the cluster"
    finally:
        subprocess.run(["docker", "rmi", "-f", f"{dead}/hale:1.4.1"], capture_output=True, check=False)
