"""docker-compose.yml: hale with PostgreSQL and Redis, brought up on images
built here from the local Debian base, driven, and torn down."""
import json
import os
import shutil
import socket
import subprocess
import time

import pytest

from imagetools import ROOT, http

BASE = os.environ.get("HALE_BASE_IMAGE", "hale-local/bookworm:slim")


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def compose_cli():
    """docker compose (v2 plugin) when present, else docker-compose (v1)."""
    v2 = subprocess.run(["docker", "compose", "version"], capture_output=True, text=True)
    if v2.returncode == 0:
        return ["docker", "compose"], v2.stdout.strip()
    v1 = shutil.which("docker-compose")
    if v1:
        out = subprocess.run([v1, "version", "--short"], capture_output=True, text=True)
        return [v1], f"docker-compose {out.stdout.strip()} (v1; `docker compose` is not installed)"
    pytest.fail("neither `docker compose` nor docker-compose is installed")


class Stack:
    def __init__(self):
        self.cli, self.version = compose_cli()
        self.project = f"halecomposetest{os.getpid()}"
        self.port, self.admin_port = free_port(), free_port()
        self.env = dict(os.environ, HALE_BASE_IMAGE=BASE, HALE_PORT=str(self.port),
                        HALE_ADMIN_PORT=str(self.admin_port))

    def run(self, *args, check=True, timeout=900):
        r = subprocess.run([*self.cli, "-p", self.project, "-f", os.path.join(ROOT, "docker-compose.yml"),
                            *args], cwd=ROOT, env=self.env, capture_output=True, text=True,
                           timeout=timeout)
        if check and r.returncode != 0:
            raise AssertionError(f"{' '.join(args)} -> {r.returncode}\n{r.stdout[-3000:]}\n{r.stderr[-3000:]}")
        return r

    def container(self, service):
        return self.run("ps", "-q", service).stdout.strip()

    def health(self, service):
        cid = self.container(service)
        st = json.loads(subprocess.run(["docker", "inspect", cid], capture_output=True,
                                       text=True).stdout)[0]["State"]
        return (st.get("Health") or {}).get("Status"), st["Status"]


@pytest.fixture(scope="module")
def stack():
    s = Stack()
    print(f"\ncompose CLI: {s.version}")
    s.run("down", "-v", "--remove-orphans", check=False)
    t0 = time.monotonic()
    s.run("build")                      # hale (cached layers), postgres, redis from the base
    s.run("up", "-d")                   # hale starts only once both are healthy
    print(f"compose build + up: {time.monotonic() - t0:.0f} s")
    try:
        yield s
    finally:
        s.run("down", "-v", "--remove-orphans", check=False)


def wait_all_healthy(stack, timeout=120):
    deadline = time.monotonic() + timeout
    states = {}
    while time.monotonic() < deadline:
        states = {svc: stack.health(svc) for svc in ("postgres", "redis", "hale")}
        if all(h == "healthy" for h, _ in states.values()):
            return
        time.sleep(1)
    raise AssertionError(f"not all healthy: {states}\n{stack.run('logs', '--no-color', check=False).stdout[-4000:]}")


# R: D5
def test_compose_starts_hale_after_healthy_postgres_and_redis(stack):
    wait_all_healthy(stack)
    started = {}
    for svc in ("postgres", "redis", "hale"):
        st = json.loads(subprocess.run(["docker", "inspect", stack.container(svc)],
                                       capture_output=True, text=True).stdout)[0]["State"]
        started[svc] = st["StartedAt"]
    # depends_on: condition: service_healthy -> hale started after both
    assert started["hale"] > started["postgres"] and started["hale"] > started["redis"]


# R: D5
def test_compose_kv_api_on_postgres_and_redis(stack):
    wait_all_healthy(stack)
    url = f"http://127.0.0.1:{stack.port}"
    status, body = http("PUT", f"{url}/v1/kv/compose-key", b"compose value")
    assert status in (200, 201, 204), body
    for _ in range(2):                  # a second read may come from the cache
        status, body = http("GET", f"{url}/v1/kv/compose-key")
        assert (status, body) == (200, b"compose value")
    logs = stack.run("logs", "--no-color", "hale").stdout
    backend = [line for line in logs.splitlines() if "store open" in line]
    assert backend and "postgres" in backend[-1] and "sqlite" not in backend[-1], (
        f"hale did not open PostgreSQL (DATABASE_URL is set): {backend or logs[-2000:]}")
    assert "redis" in backend[-1], f"hale did not use Redis (REDIS_URL is set): {backend[-1]}"
    # hale's tables are in PostgreSQL (psql over the socket: trust, no password)
    r = stack.run("exec", "-T", "postgres", "psql", "-U", "hale", "-d", "hale", "-Atc",
                  "select count(*) from pg_tables where schemaname = 'public'")
    assert int(r.stdout.strip()) > 0, "no table in PostgreSQL's public schema"
    # and hale talks to Redis: a client besides redis-cli itself, or a cached key
    info = stack.run("exec", "-T", "redis", "redis-cli", "info", "clients").stdout
    clients = int(next(line.split(":")[1] for line in info.splitlines()
                       if line.startswith("connected_clients:")))
    keys = int(stack.run("exec", "-T", "redis", "redis-cli", "dbsize").stdout.strip())
    assert clients >= 2 or keys >= 1, f"hale never connected to Redis ({clients} clients, {keys} keys)"
