"""The manifests agree with the binary (K6, L1, O5).

Uses build/debug/hale (HALE_BIN overrides). Everything here is read from the
RENDERED production overlay: the env the Deployment sets, the ConfigMap's
files, the Secret keys, the container ports and the probes.

What it needs from the binary:
  - `hale config` prints "# RUN_ENV=<env>, config dir: <dir>", then one
    "SETTING VALUE SOURCE" row per setting, SOURCE naming the env variable or
    file (path[:line]) a value came from; `hale config --check` exits 0 on a
    clean configuration;
  - HALE_CONFIG_DIR, RUN_ENV, HALE_SECRET_DIR (secrets.dir), PORT and
    APP_METRICS__PORT are honoured;
  - secret files database-url, redis-url and api-key in the secrets dir are
    each read into a setting;
  - /health/startup, /health/readiness on the main port, /health/liveness and
    /metrics on the admin port; SIGTERM turns readiness 503 at once, keeps
    serving for shutdown.drain_delay, then exits 0;
  - JSON log lines with "ts" when log.format = "json".
"""
from __future__ import annotations

import json
import os
import re
import signal
import socket
import subprocess
import time
import urllib.error
import urllib.request
from datetime import datetime
from pathlib import Path

import pytest

from conftest import ROOT, container, one, port_of, render
from test_monitoring import monitoring_metric_names

HALE = Path(os.environ.get("HALE_BIN", ROOT / "build/debug/hale"))


@pytest.fixture(autouse=True)
def _binary_built():
    # a missing binary fails these tests (K6 is not proven without it)
    assert HALE.exists(), f"hale binary {HALE} not built (make debug, or set HALE_BIN)"


@pytest.fixture(scope="module")
def prod():
    docs = render("production")
    dep = one(docs, "Deployment", "hale")
    c = container(dep)
    vols = {v["name"]: v for v in dep["spec"]["template"]["spec"]["volumes"]}
    mounts = {m["mountPath"]: m for m in c["volumeMounts"]}
    cm = one(docs, "ConfigMap", vols[mounts["/app/config"]["name"]]["configMap"]["name"])
    secret = one(render("deploy/k8s/examples/secret"), "Secret", "hale-secrets")
    env = {e["name"]: e["value"] for e in c["env"]}
    return {"docs": docs, "deploy": dep, "container": c, "configmap": cm, "secret": secret,
            "env": env, "mounts": mounts, "vols": vols}


@pytest.fixture()
def app_dir(tmp_path, prod):
    """A stand-in for the pod's filesystem: /app/config from the ConfigMap,
    /var/secrets with an api-key (SQLite, no Redis: no outside services),
    /app/data writable."""
    cfg = tmp_path / "config"
    cfg.mkdir()
    for name, text in prod["configmap"]["data"].items():
        (cfg / name).write_text(text)
    sec = tmp_path / "secrets"
    sec.mkdir()
    (sec / "api-key").write_text(prod["secret"]["stringData"]["api-key"] + "\n")
    os.chmod(sec / "api-key", 0o440)
    (tmp_path / "data").mkdir()
    return tmp_path


def hale_env(prod, app_dir, **extra):
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("APP_", "HALE_", "RUN_ENV", "LOG_", "PORT", "DATABASE_", "REDIS_"))}
    env.update(prod["env"])
    assert env["HALE_CONFIG_DIR"] == "/app/config"
    env["HALE_CONFIG_DIR"] = str(app_dir / "config")  # where the test put the ConfigMap
    env["HALE_SECRET_DIR"] = str(app_dir / "secrets")
    env.update(extra)
    return env


def hale_config(env, *args, cwd):
    return subprocess.run([str(HALE), "config", *args], env=env, cwd=cwd, capture_output=True,
                          text=True, timeout=30, check=False)


def parse_config(out: str):
    header = out.splitlines()[0]
    rows = {}
    for line in out.splitlines()[2:]:
        m = re.match(r"^(\S+)\s+(\".*?\"|\S+)\s+(.*)$", line)
        if m:
            rows[m.group(1)] = (m.group(2), m.group(3).strip())
    return header, rows


def seconds(v: str) -> float:
    units = {"ms": 0.001, "s": 1, "m": 60, "h": 3600}
    return sum(float(a) * units[b] for a, b in re.findall(r"(\d+(?:\.\d+)?)(ms|s|m|h)", v))


# ------------------------------------------------------------ hale config

def test_every_env_var_in_the_manifest_is_known_to_hale(prod, app_dir):  # R: K6, C1, C6
    with_database_url(prod, app_dir)
    env = hale_env(prod, app_dir)
    p = hale_config(env, cwd=app_dir)
    assert p.returncode == 0, p.stderr
    assert p.stderr.strip() == "", f"hale warns about the shipped configuration:\n{p.stderr}"
    header, rows = parse_config(p.stdout)
    sources = {src for _, src in rows.values()}
    for name, value in prod["env"].items():
        if name == "RUN_ENV":
            assert f"RUN_ENV={value}" in header
        elif name == "HALE_CONFIG_DIR":
            assert f"config dir: {app_dir / 'config'}" in header
        else:
            assert name in sources, f"env {name} set by the Deployment is not a setting hale reads"


def test_every_secret_key_is_a_secret_file_hale_reads(prod, app_dir):  # R: K6, C4, Y7
    sec = app_dir / "secrets"
    for key, value in prod["secret"]["stringData"].items():
        (sec / key).write_text(value + "\n")
        os.chmod(sec / key, 0o440)
    p = hale_config(hale_env(prod, app_dir), cwd=app_dir)
    _, rows = parse_config(p.stdout)
    read = {Path(src).name: (name, val) for name, (val, src) in rows.items() if src.startswith(str(sec))}
    for key in prod["secret"]["stringData"]:
        assert key in read, f"hale reads no setting from the secret file {key}:\n{p.stdout}{p.stderr}"
        assert read[key][1] == "<redacted>", f"{read[key][0]} is shown in clear"
    for value in prod["secret"]["stringData"].values():
        assert value not in p.stdout + p.stderr


def test_secret_mount_is_hales_default_secret_dir(prod, app_dir):  # R: K6, C4
    env = hale_env(prod, app_dir)
    del env["HALE_SECRET_DIR"]
    _, rows = parse_config(hale_config(env, cwd=app_dir).stdout)
    assert rows["secrets.dir"][0] == '"/var/secrets"'
    assert "/var/secrets" in prod["mounts"]
    assert "secret" in prod["vols"][prod["mounts"]["/var/secrets"]["name"]]


def with_database_url(prod, app_dir):
    """The example Secret's database-url as a secret file (config only: nothing
    here connects to it)."""
    f = app_dir / "secrets" / "database-url"
    f.write_text(prod["secret"]["stringData"]["database-url"] + "\n")
    os.chmod(f, 0o440)


def test_configmap_config_passes_strict_check(prod, app_dir):  # R: K6, C5, K11
    with_database_url(prod, app_dir)
    env = hale_env(prod, app_dir, APP_CONFIG__STRICT="true")
    p = hale_config(env, "--check", cwd=app_dir)
    assert p.returncode == 0, f"hale config --check rejects the ConfigMap:\n{p.stdout}{p.stderr}"


def test_kit_config_refuses_to_start_without_a_database_url(prod, app_dir):  # R: K11, L3
    # no database-url in the Secret: every replica would open its own SQLite
    env = hale_env(prod, app_dir)
    p = subprocess.run([str(HALE)], env=env, cwd=app_dir, capture_output=True, text=True,
                       timeout=30, check=False)
    assert p.returncode == 78, p.stdout + p.stderr
    assert "database.require_url is true" in p.stdout + p.stderr
    assert "production.toml" in p.stdout + p.stderr, "the message names where it is set"
    assert not (app_dir / "data" / "hale.db").exists()


def test_ports_and_shutdown_budget_agree_with_hale(prod, app_dir):  # R: K6, L1
    with_database_url(prod, app_dir)
    _, rows = parse_config(hale_config(hale_env(prod, app_dir), cwd=app_dir).stdout)
    c = prod["container"]
    assert int(rows["server.port"][0]) == port_of(c, "http")
    assert int(rows["metrics.port"][0]) == port_of(c, "admin")
    ann = prod["deploy"]["spec"]["template"]["metadata"]["annotations"]
    assert int(ann["prometheus.io/port"]) == int(rows["metrics.port"][0])
    drain = seconds(rows["shutdown.drain_delay"][0])
    timeout = seconds(rows["shutdown.timeout"][0])
    grace = prod["deploy"]["spec"]["template"]["spec"]["terminationGracePeriodSeconds"]
    assert grace - (drain + timeout) >= 5
    assert seconds(rows["database.statement_timeout"][0]) < timeout
    assert rows["log.format"][0] == '"json"'


# ------------------------------------------------------------ running hale

def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def get(url, headers=None, timeout=2.0):
    req = urllib.request.Request(url, headers=headers or {})
    try:
        with urllib.request.urlopen(req, timeout=timeout) as r:
            return r.status, r.read()
    except urllib.error.HTTPError as e:
        return e.code, e.read()
    except (urllib.error.URLError, ConnectionError, socket.timeout):
        return None, b""


@pytest.fixture()
def running(prod, app_dir):
    """hale started as the Deployment starts it, on free ports instead of
    8080/9090 (the ports themselves are checked against `hale config`)."""
    main, admin = free_port(), free_port()
    while admin == main:
        admin = free_port()
    # No PostgreSQL here: the embedded store stands in, so the kit's
    # database.require_url is turned off (as the sqlite-single overlay does).
    env = hale_env(prod, app_dir, PORT=str(main), APP_METRICS__PORT=str(admin),
                   APP_DATABASE__REQUIRE_URL="false")
    log = open(app_dir / "stdout.log", "wb")
    proc = subprocess.Popen([str(HALE)], env=env, cwd=app_dir, stdout=log, stderr=subprocess.STDOUT)
    ports = {port_of(prod["container"], "http"): main, port_of(prod["container"], "admin"): admin}
    yield {"proc": proc, "ports": ports, "main": main, "admin": admin, "dir": app_dir}
    if proc.poll() is None:
        proc.kill()
        proc.wait()
    log.close()


def probe_url(running, c, probe):
    g = c[probe]["httpGet"]
    return f"http://127.0.0.1:{running['ports'][port_of(c, g['port'])]}{g['path']}"


def wait_for(url, want=200, within=10.0):
    end = time.monotonic() + within
    status = None
    while time.monotonic() < end:
        status, _ = get(url)
        if status == want:
            return status
        time.sleep(0.1)
    return status


def test_probes_answer_as_configured(prod, running):  # R: K6, H1, H2, H3
    c = prod["container"]
    sp = c["startupProbe"]
    budget = sp["periodSeconds"] * sp["failureThreshold"]
    assert wait_for(probe_url(running, c, "startupProbe"), within=min(budget, 15)) == 200, \
        (running["dir"] / "stdout.log").read_text()
    assert wait_for(probe_url(running, c, "readinessProbe")) == 200
    assert wait_for(probe_url(running, c, "livenessProbe")) == 200
    # the ServiceMonitor's port and path
    status, body = get(f"http://127.0.0.1:{running['admin']}/metrics")
    assert status == 200 and b"hale_build_info" in body
    # the probes' timeouts are met with room to spare
    t = time.monotonic()
    get(probe_url(running, c, "livenessProbe"))
    assert time.monotonic() - t < c["livenessProbe"]["timeoutSeconds"] / 3


def test_sigterm_drain_fits_the_grace_period(prod, running):  # R: L1, K1
    c = prod["container"]
    assert wait_for(probe_url(running, c, "readinessProbe")) == 200
    grace = prod["deploy"]["spec"]["template"]["spec"]["terminationGracePeriodSeconds"]
    t0 = time.monotonic()
    running["proc"].send_signal(signal.SIGTERM)
    assert wait_for(probe_url(running, c, "readinessProbe"), want=503, within=1.0) == 503
    # still alive while draining: liveness must not get it killed
    assert get(probe_url(running, c, "livenessProbe"))[0] == 200
    rc = running["proc"].wait(timeout=grace)
    assert rc == 0
    assert time.monotonic() - t0 < grace


def test_monitoring_metric_names_exist_in_a_live_scrape(prod, running):  # R: O5, O3
    c = prod["container"]
    assert wait_for(probe_url(running, c, "readinessProbe")) == 200
    key = prod["secret"]["stringData"]["api-key"]
    base = f"http://127.0.0.1:{running['main']}"
    req = urllib.request.Request(base + "/v1/kv/k8s-monitoring", data=b"v", method="PUT",
                                 headers={"Authorization": f"Bearer {key}"})
    try:
        urllib.request.urlopen(req, timeout=2).close()
    except urllib.error.HTTPError:
        pass
    for _ in range(3):
        get(base + "/v1/kv/k8s-monitoring", headers={"Authorization": f"Bearer {key}"})
    status, body = get(f"http://127.0.0.1:{running['admin']}/metrics")
    assert status == 200
    scraped = set(re.findall(r"^([a-zA-Z_:][a-zA-Z0-9_:]*)", body.decode(), re.M))
    missing = sorted(n for n in monitoring_metric_names() - {"up"} if n not in scraped)
    assert not missing, f"alerts/adapter/dashboard use metrics hale does not export: {missing}"


def test_json_log_lines_match_the_fluent_bit_parser(prod, running):  # R: O5, O1
    """Real hale log lines (startup, access log, drain) against the SHIPPED
    parser and pipeline settings, read from deploy/monitoring/fluent-bit.

    Fluent Bit itself is not run: it is packaged neither for Debian 12 nor on
    PyPI, the only package sources here. What this checks instead: each line
    is one JSON object (what the json parser needs), the parser's Time_Key is
    in every record and parses with its Time_Format (Fluent Bit's %L = the
    fraction, checked as exactly milliseconds), and no hale key collides with
    the fields the pipeline keeps next to hale's (Reserve_Data: the CRI
    "stream"/"time"/"logtag" and the "log" key itself; the kubernetes filter's
    "kubernetes"). NOT covered: Fluent Bit's own JSON and strptime
    implementations, the tail input's CRI multiline unwrapping, the
    kubernetes filter's metadata lookup and the es output."""
    from test_monitoring import fluent_bit_sections
    conf = fluent_bit_sections("fluent-bit/fluent-bit.conf")
    parsers = fluent_bit_sections("fluent-bit/parsers.conf")
    flt = next(sec for n, sec in conf if n == "FILTER" and sec["Name"] == "parser")
    parser = next(sec for n, sec in parsers if n == "PARSER" and sec["Name"] == flt["Parser"])
    assert parser["Format"] == "json" and flt["Key_Name"] == "log" and flt["Reserve_Data"] == "On"
    fmt = parser["Time_Format"]
    assert fmt.count("%L") == 1
    c = prod["container"]
    assert wait_for(probe_url(running, c, "readinessProbe")) == 200
    assert get(f"http://127.0.0.1:{running['main']}/v1/kv/x")[0] is not None   # an access-log line
    running["proc"].send_signal(signal.SIGINT)
    running["proc"].wait(timeout=30)
    lines = [line for line in (running["dir"] / "stdout.log").read_text().splitlines() if line.strip()]
    assert len(lines) >= 3
    reserved = {"log", "stream", "time", "logtag", "kubernetes"}
    targets = set()
    for line in lines:
        rec = json.loads(line)
        assert isinstance(rec, dict), line
        assert line.strip().startswith("{") and line.strip().endswith("}"), "one object per line"
        ts = rec[parser["Time_Key"]]
        head, frac = ts[:-1].rsplit(".", 1)
        assert ts.endswith("Z") and len(frac) == 3 and frac.isdigit(), ts
        datetime.strptime(ts, fmt.replace("%L", "%f"))
        assert {"level", "target", "msg"} <= set(rec)
        assert not set(rec) & reserved, f"hale key collides with the pipeline's: {set(rec) & reserved}"
        targets.add(rec["target"])
    assert len(targets) >= 2, targets


def test_sqlite_single_overlay_starts_without_a_database_url(tmp_path):  # R: K11
    # the same ConfigMap (require_url = true) plus the overlay's env override:
    # hale accepts the configuration without a database-url and uses SQLite
    docs = render("deploy/k8s/overlays/sqlite-single")
    sts = one(docs, "StatefulSet", "hale")
    c = container(sts)
    vols = {v["name"]: v for v in sts["spec"]["template"]["spec"]["volumes"]}
    mounts = {m["mountPath"]: m for m in c["volumeMounts"]}
    cm = one(docs, "ConfigMap", vols[mounts["/app/config"]["name"]]["configMap"]["name"])
    (tmp_path / "config").mkdir()
    for name, text in cm["data"].items():
        (tmp_path / "config" / name).write_text(text)
    (tmp_path / "secrets").mkdir()
    (tmp_path / "secrets" / "api-key").write_text("k\n")
    os.chmod(tmp_path / "secrets" / "api-key", 0o400)
    fake = {"spec": {"template": {"spec": {"containers": [c]}}}, "metadata": {"name": "sts"}}
    prod_like = {"env": {e["name"]: e["value"] for e in c["env"]}, "deploy": fake}
    env = hale_env(prod_like, tmp_path)
    p = hale_config(env, "--check", cwd=tmp_path)
    assert p.returncode == 0, p.stdout + p.stderr
    _, rows = parse_config(hale_config(env, cwd=tmp_path).stdout)
    assert rows["database.require_url"][0] == "false"
    assert rows["database.sqlite_path"][0] == '"./data/hale.db"'   # /app/data: the claim
    assert mounts["/app/data"]["name"] in {t["metadata"]["name"] for t in sts["spec"]["volumeClaimTemplates"]}


def test_init_container_migrate_command_runs_with_the_kit_config(prod, app_dir):  # R: K12, K11
    init = prod["deploy"]["spec"]["template"]["spec"]["initContainers"][0]
    env = {e["name"]: e["value"] for e in init["env"]}
    base = hale_env(prod, app_dir)
    base.update(env)
    base["HALE_CONFIG_DIR"] = str(app_dir / "config")
    # as shipped, without a database-url: refused like the app itself (78)
    p = subprocess.run([str(HALE), *init["args"]], env=base, cwd=app_dir, capture_output=True,
                       text=True, timeout=60, check=False)
    assert p.returncode == 78 and "database.require_url" in p.stdout + p.stderr, p.stdout + p.stderr
    # with the embedded store standing in for PostgreSQL: applies the schema
    p = subprocess.run([str(HALE), *init["args"]], env=dict(base, APP_DATABASE__REQUIRE_URL="false"),
                       cwd=app_dir, capture_output=True, text=True, timeout=60, check=False)
    assert p.returncode == 0, p.stdout + p.stderr
    assert "schema ready" in p.stdout
    # and the app, with migrate_on_start = false, starts on that schema
    _, rows = parse_config(hale_config(dict(base, APP_DATABASE__REQUIRE_URL="false"), cwd=app_dir).stdout)
    assert rows["database.migrate_on_start"][0] == "false"
