"""Helpers for the image tests: docker CLI wrappers and a hardened container.
(A module of its own, not conftest.py, so that its name is unique if
pytest collects several test folders at once.)

The images are built before pytest runs (scripts/test-image.sh runs
scripts/image.sh); these tests only run them. HALE_IMAGE names the repository
(default hale: hale:runtime, hale:distroless, hale:sqlite, hale:builder,
hale:builder-sqlite).
"""
import json
import os
import subprocess
import time
import urllib.error
import urllib.request

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
IMAGE = os.environ.get("HALE_IMAGE", "hale")
VARIANTS = ["runtime", "distroless", "sqlite"]
MINIMAL = {"distroless", "sqlite"}  # no shell, no package manager
# the builder stage each variant's files come from (its dpkg database, /out)
BUILDER = {"runtime": "builder", "distroless": "builder", "sqlite": "builder-sqlite"}
DRAIN_DELAY_S = 1                    # APP_SHUTDOWN__DRAIN_DELAY for the runs


def docker(*args, check=True, timeout=120, **kw):
    r = subprocess.run(["docker", *args], capture_output=True, text=True, timeout=timeout, **kw)
    if check and r.returncode != 0:
        raise AssertionError(f"docker {' '.join(args)} -> {r.returncode}\n{r.stdout}\n{r.stderr}")
    return r


def inspect(obj):
    return json.loads(docker("inspect", obj).stdout)[0]


def image_ref(variant):
    return f"{IMAGE}:{variant}"


def http(method, url, body=None, timeout=5):
    req = urllib.request.Request(url, data=body, method=method)
    try:
        with urllib.request.urlopen(req, timeout=timeout) as r:
            return r.status, r.read()
    except urllib.error.HTTPError as e:
        return e.code, e.read()


def wait_healthy(name, timeout=60):
    """Docker's own health state (the image's HEALTHCHECK) reaching healthy."""
    deadline = time.monotonic() + timeout
    state = None
    while time.monotonic() < deadline:
        st = inspect(name)["State"]
        state = (st.get("Health") or {}).get("Status")
        if state == "healthy":
            return st["Health"]
        if st["Status"] != "running":
            break
        time.sleep(0.5)
    logs = docker("logs", name, check=False)
    raise AssertionError(f"{name} not healthy (state {state}, status "
                         f"{inspect(name)['State']['Status']}):\n{logs.stdout[-3000:]}{logs.stderr[-3000:]}")


class Hardened:
    """One container of a variant, run the way production runs it."""

    def __init__(self, variant):
        self.variant = variant
        self.name = f"hale-image-test-{variant}-{os.getpid()}"
        docker("rm", "-f", "-v", self.name, check=False)
        docker("run", "-d", "--name", self.name,
               "--read-only", "--user", "65534:65534", "--cap-drop", "ALL",
               "--security-opt", "no-new-privileges",
               "--tmpfs", "/app/data:rw,noexec,nosuid,size=64m,uid=65534,gid=65534,mode=0700",
               # the image's HEALTHCHECK, run every second instead of every 10
               "--health-interval", "1s",
               "-e", f"APP_SHUTDOWN__DRAIN_DELAY={DRAIN_DELAY_S}s",
               "-p", "127.0.0.1::8080", "-p", "127.0.0.1::9090",
               image_ref(variant))
        self.port = self._port(8080)
        self.admin_port = self._port(9090)
        self.url = f"http://127.0.0.1:{self.port}"

    def _port(self, p):
        out = docker("port", self.name, f"{p}/tcp").stdout.split()[0]
        return int(out.rsplit(":", 1)[1])

    def logs(self):
        r = docker("logs", self.name, check=False)
        return r.stdout + r.stderr

    def remove(self):
        docker("rm", "-f", "-v", self.name, check=False)
