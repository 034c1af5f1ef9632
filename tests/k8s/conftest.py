"""Shared helpers for tests/k8s (run with Debian's /usr/bin/python3 -m pytest).

The manifests are rendered with the kubectl that scripts/install-k8s-tools.sh
puts in $HALE_TOOLS/bin (default /opt/hale-tools), else the kubectl on PATH.
A missing kubectl is a test failure, not a skip: K6 is not proven without it.
"""
from __future__ import annotations

import functools
import os
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
HERE = Path(__file__).resolve().parent
HALE_TOOLS = Path(os.environ.get("HALE_TOOLS", "/opt/hale-tools"))

OVERLAYS = {
    "base": "deploy/k8s/base",
    "production": "deploy/k8s/overlays/production",
    "blue-green": "deploy/k8s/overlays/blue-green",
    "canary": "deploy/k8s/overlays/canary",
}


def kubectl_path() -> str:
    cand = HALE_TOOLS / "bin" / "kubectl"
    if cand.is_file():
        return str(cand)
    found = shutil.which("kubectl")
    if not found:
        pytest.fail("no kubectl: run scripts/install-k8s-tools.sh")
    return found


@functools.lru_cache(maxsize=None)
def render_dir(path: str) -> tuple:
    """Render a kustomization directory (relative to the repo) into docs."""
    out = subprocess.run([kubectl_path(), "kustomize", str(ROOT / path)],
                         capture_output=True, text=True, check=False)
    assert out.returncode == 0, f"kubectl kustomize {path} failed:\n{out.stderr}"
    return tuple(d for d in yaml.safe_load_all(out.stdout) if d)


def render(name: str) -> list:
    return list(render_dir(OVERLAYS.get(name, name)))


def of_kind(docs, kind):
    return [d for d in docs if d.get("kind") == kind]


def one(docs, kind, name=None):
    found = [d for d in of_kind(docs, kind) if name is None or d["metadata"]["name"] == name]
    assert len(found) == 1, f"expected one {kind} {name or ''}, found {[d['metadata']['name'] for d in found]}"
    return found[0]


def container(deploy, name="hale"):
    for c in deploy["spec"]["template"]["spec"]["containers"]:
        if c["name"] == name:
            return c
    raise AssertionError(f"no container {name} in {deploy['metadata']['name']}")


def port_of(cont, port):
    """A probe's or Service's port (number or name) as a number."""
    if isinstance(port, int):
        return port
    for p in cont.get("ports", []):
        if p["name"] == port:
            return p["containerPort"]
    raise AssertionError(f"container has no port named {port!r}")


def selects(selector: dict, labels: dict) -> bool:
    return bool(selector) and all(labels.get(k) == v for k, v in selector.items())


@pytest.fixture(params=list(OVERLAYS))
def overlay(request):
    """Each shipped kustomization that runs hale: (name, rendered docs)."""
    return request.param, render(request.param)
