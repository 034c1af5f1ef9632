"""Secrets never leak (R: Y7).

Method: plant distinctive tokens (PLANTED...) in every way a secret reaches
hale, make sure each one was really taken in (a redacted row in `hale config`,
an API key that opens the API), then look for the token, verbatim, in every
output hale produces: logs (json and text), `hale config`, `hale config
--check`, the refusal to start, /health*, /metrics, response bodies and
headers of every kind of error.

What this proves: none of these channels carries the planted value as is,
for the code paths the traffic here reaches. What it does not prove: paths
not reached (e.g. a libpq error that only a real PostgreSQL would produce),
or a secret split, encoded or hashed on its way out (the tokens are plain
[A-Za-z0-9], so JSON/percent/TOML escaping would leave them intact, but a
base64 or hex form would not be found).

Where a secret goes in:
  - auth.api_keys: the secret file <secrets dir>/api-key, and API_KEY; the key
    is then live (401 without it), and it is rotated once in the file;
  - redis.url: the secret file redis-url, and REDIS_URL (redis.required is
    false, so an unreachable Redis does not change readiness);
  - database.url: DATABASE_URL, only for `hale config`, the refusal to start
    and a server that cannot reach its (absent) PostgreSQL;
  - secret files for a non-secret setting (port) with a bad value;
  - a TOML file holding redis.url, valid and broken;
  - an APP_ variable that names no setting (APP_VAULT__TOKEN);
  - from clients: Authorization, X-API-Key, Cookie, Proxy-Authorization.
"""
import json
import os
import shutil
import signal
import subprocess
import time

import pytest

import backends

from conftest import HALE_BIN, ROOT, free_port

KEY_FILE = "PLANTEDkeyFILEq7w3"
KEY_FILE2 = "PLANTEDkeyFILEb8n1"
KEY_ROT = "PLANTEDkeyROTATEd5"
KEY_ENV = "PLANTEDkeyENVz3c6"
KEY_WRONG = "PLANTEDwrongKEYk2"
REDIS_PW = "PLANTEDredisPWm5x"
DB_PW = "PLANTEDdbPWx4r9"
APP_VAR = "PLANTEDappVARj2p"
COOKIE = "PLANTEDcookieV8s"
PROXY = "PLANTEDproxyT3e"
QUERY = "PLANTEDqueryH6u"
TOML_PW = "PLANTEDtomlPWa1"
FILE_BAD = "PLANTEDportFILEy4"
ALL = [KEY_FILE, KEY_FILE2, KEY_ROT, KEY_ENV, KEY_WRONG, REDIS_PW, DB_PW, APP_VAR, COOKIE,
       PROXY, TOML_PW, FILE_BAD]

ADMIN_ON_LOOPBACK = {"APP_METRICS__HOST": "127.0.0.1"}  # see test_metrics.py


@pytest.fixture
def hale_factory(hale_factory):
    def make(env=None, **kw):
        return hale_factory(env={**ADMIN_ON_LOOPBACK, **(env or {})}, **kw)
    return make


def assert_no_secret(where, text, secrets=ALL):
    if isinstance(text, bytes):
        text = text.decode("utf-8", "replace")
    found = [s for s in secrets if s in text]
    assert not found, "%s leaks %s:\n%s" % (where, found, text[-3000:])


def write_secret(path, value, mode=0o400):
    if os.path.exists(path):
        os.chmod(path, 0o600)
    tmp = str(path) + ".tmp"
    with open(tmp, "w") as f:
        f.write(value)
    os.chmod(tmp, mode)
    os.replace(tmp, path)  # atomic, like a Kubernetes secret update


def base_env(secret_dir, config_dir=None):
    e = {k: v for k, v in os.environ.items() if not k.startswith("APP_")}
    for k in ("DATABASE_URL", "REDIS_URL", "API_KEY", "PORT", "HOST", "LOG_LEVEL", "LOG_FORMAT",
              "RUN_ENV", "DATABASE_URL_FILE", "REDIS_URL_FILE", "API_KEY_FILE"):
        e.pop(k, None)
    e["HALE_CONFIG_DIR"] = str(config_dir or os.path.join(ROOT, "config"))
    e["HALE_SECRET_DIR"] = str(secret_dir)
    return e


def run_hale(env, *args, timeout=30):
    p = subprocess.run([HALE_BIN, *args], env=env, capture_output=True, text=True,
                       timeout=timeout, errors="replace")
    return p.returncode, p.stdout + p.stderr


def config_row(out, setting):
    for line in out.splitlines():
        if line.split(" ", 1)[0] == setting:
            return line
    raise AssertionError("no row for %s in:\n%s" % (setting, out))


def collect_responses(h, key):
    """Drives every kind of answer, carrying client-side secrets, and returns
    all response heads and bodies as one text."""
    seen = []

    def req(method, path, body=None, headers=None, admin=False):
        st, hdrs, data = h.request(method, path, body, headers, admin=admin)
        seen.append("%s %s -> %d %r %r" % (method, path, st, hdrs, data))
        return st

    client = {"Cookie": "sid=" + COOKIE, "Proxy-Authorization": "Basic " + PROXY}
    good = {"Authorization": "Bearer " + key, **client}
    assert req("GET", "/v1/kv/nokey") == 401                      # missing key
    assert req("GET", "/v1/kv/nokey", headers={"X-API-Key": KEY_WRONG, **client}) == 401
    assert req("GET", "/v1/kv/nokey",
               headers={"Authorization": "Bearer " + KEY_WRONG, **client}) == 401
    assert req("GET", "/v1/kv/nokey", headers={"X-API-Key": key}) == 404
    assert req("PUT", "/v1/kv/s1", b"value", good) == 201
    assert req("GET", "/v1/kv/s1", headers=good) == 200
    assert req("GET", "/v1/kv", headers=good) == 200
    assert req("POST", "/v1/kv/s1", b"", good) == 405
    assert req("BREW", "/v1/kv/s1", None, good) == 501
    assert req("GET", "/nowhere", headers=good) == 404
    assert req("PUT", "/v1/kv/big", b"x" * 2048, good) == 413
    assert req("GET", "/v1/kv/" + "%ff", headers=good) == 400
    big = {**good, **{"X-Pad-%d" % i: "v" * 1000 for i in range(20)}}
    assert req("GET", "/v1/kv/s1", headers=big) == 431
    for path in ("/health", "/health/readiness", "/health/liveness", "/health/startup"):
        assert req("GET", path, headers=good) == 200
        assert req("GET", path, admin=True) == 200
    assert req("GET", "/metrics", admin=True) == 200
    raw = h.raw(b"GET /v1/kv/s1 HTTP/1.1\r\nHost: a\r\nAuthorization: Bearer " + key.encode() +
                b"\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n")
    seen.append(raw.decode("latin-1"))
    return "\n".join(seen)


# ---- a running server ------------------------------------------------------

@pytest.mark.parametrize("fmt", ["json", "text"])
def test_running_server_keeps_file_secrets(hale_factory, tmp_path, fmt):  # R: Y7
    sdir = tmp_path / "secrets"
    sdir.mkdir()
    write_secret(sdir / "api-key", "%s\n%s\n" % (KEY_FILE, KEY_FILE2))
    write_secret(sdir / "redis-url", "redis://:%s@127.0.0.1:1/0\n" % REDIS_PW)
    env = {"HALE_SECRET_DIR": str(sdir), "LOG_FORMAT": fmt, "LOG_LEVEL": "debug",
           "APP_VAULT__TOKEN": APP_VAR, "APP_AUTH__RELOAD_INTERVAL": "100ms",
           "APP_SERVER__MAX_BODY_BYTES": "1024"}
    # the secrets were taken in: redacted rows whose source is the file
    rc, out = run_hale({**base_env(sdir), **env}, "config")
    assert rc == 0, out
    assert "<redacted>" in config_row(out, "auth.api_keys") and "api-key" in config_row(out, "auth.api_keys")
    assert "<redacted>" in config_row(out, "redis.url") and "redis-url" in config_row(out, "redis.url")
    assert "APP_VAULT__TOKEN" in out  # the unknown-variable warning names it
    assert_no_secret("hale config", out)
    rc, out = run_hale({**base_env(sdir), **env}, "config", "--check")
    assert rc == 0, out
    assert_no_secret("hale config --check", out)

    h = hale_factory(env=env, expect_errors=[r"key file has no usable key"])
    seen = collect_responses(h, KEY_FILE)
    # rotate the key file: the new key works, the old one stops working
    write_secret(sdir / "api-key", KEY_ROT + "\n")
    deadline = time.time() + 10
    while h.request("GET", "/v1/kv/s1", headers={"X-API-Key": KEY_ROT})[0] != 200:
        assert time.time() < deadline, "rotated key never accepted:\n" + h.output()[-2000:]
        time.sleep(0.05)
    assert h.request("GET", "/v1/kv/s1", headers={"X-API-Key": KEY_FILE})[0] == 401
    # an empty key file mid-rotation is refused (and logged)
    write_secret(sdir / "api-key", "\n")
    time.sleep(0.5)
    assert h.request("GET", "/v1/kv/s1", headers={"X-API-Key": KEY_ROT})[0] == 200
    metrics = h.request("GET", "/metrics", admin=True)[2]
    h.check_clean_exit()
    logs = h.output()
    assert "API key set changed" in logs  # the rotation was logged...
    assert_no_secret("logs (%s)" % fmt, logs)  # ...without a key
    assert_no_secret("responses", seen)
    assert_no_secret("/metrics", metrics)


def test_running_server_keeps_env_secrets(hale_factory, tmp_path):  # R: Y7
    sdir = tmp_path / "empty"
    sdir.mkdir()
    env = {"HALE_SECRET_DIR": str(sdir), "LOG_FORMAT": "json", "LOG_LEVEL": "trace",
           "API_KEY": KEY_ENV, "REDIS_URL": "redis://:%s@127.0.0.1:1/0" % REDIS_PW,
           "APP_VAULT__TOKEN": APP_VAR, "APP_SERVER__MAX_BODY_BYTES": "1024"}
    rc, out = run_hale({**base_env(sdir), **env}, "config")
    assert rc == 0, out
    assert config_row(out, "auth.api_keys").split()[1:] == ["<redacted>", "API_KEY"], out
    assert config_row(out, "redis.url").split()[1:] == ["<redacted>", "REDIS_URL"], out
    assert_no_secret("hale config", out)
    h = hale_factory(env=env)
    seen = collect_responses(h, KEY_ENV)
    metrics = h.request("GET", "/metrics", admin=True)[2]
    h.check_clean_exit()
    assert_no_secret("logs", h.output())
    assert_no_secret("responses", seen)
    assert_no_secret("/metrics", metrics)


def test_unreachable_database_does_not_leak_its_url(hale_factory, tmp_path):  # R: Y7
    # postgres:// selects PostgreSQL; port 1 refuses at once. hale then
    # retries and reports the failure (logs, /health last_error), or, built
    # without libpq, refuses: either way the password must not show.
    sdir = tmp_path / "empty"
    sdir.mkdir()
    env = {"HALE_SECRET_DIR": str(sdir), "LOG_FORMAT": "json", "LOG_LEVEL": "debug",
           "DATABASE_URL": "postgres://hale:%s@127.0.0.1:1/hale?connect_timeout=1" % DB_PW,
           "APP_DATABASE__CONNECT_TIMEOUT": "500ms"}
    h = hale_factory(env=env, wait_ready=False)
    bodies = []
    deadline = time.time() + 4
    while time.time() < deadline and h.proc.poll() is None:
        for admin in (False, True):
            try:
                st, hd, b = h.request("GET", "/health", timeout=1, admin=admin)
                bodies.append("%d %r %r" % (st, hd, b))
                bodies.append(repr(h.request("GET", "/metrics", admin=True, timeout=1)))
            except OSError:
                pass
        time.sleep(0.3)
    h.stop(signal.SIGTERM, timeout=30)
    out = h.output()
    assert DB_PW not in out and not any(DB_PW in b for b in bodies), out[-3000:]
    assert_no_secret("logs with an unreachable database", out)
    assert_no_secret("/health with an unreachable database", "\n".join(bodies))


# ---- configuration commands -------------------------------------------------

# (name, env, files, expected exit code, settings that must show <redacted>);
# "{tmp}" in an env value is the test's temporary directory.
CONFIG_CASES = [
    ("pg url", {"DATABASE_URL": "postgres://u:%s@127.0.0.1:1/db" % DB_PW}, {}, 0,
     ["database.url"]),
    ("bad scheme", {"DATABASE_URL": "mysql://u:%s@127.0.0.1/db" % DB_PW}, {}, 78,
     ["database.url"]),
    ("APP_ form", {"APP_DATABASE__URL": "postgres://u:%s@h/db" % DB_PW,
                   "APP_AUTH__API_KEYS": KEY_ENV}, {}, 0, ["database.url", "auth.api_keys"]),
    ("redis env", {"REDIS_URL": "redis://:%s@h:1/0" % REDIS_PW}, {}, 0, ["redis.url"]),
    ("api key env", {"API_KEY": KEY_ENV}, {}, 0, ["auth.api_keys"]),
    ("unknown APP_ var", {"APP_VAULT__TOKEN": APP_VAR, "APP_DB__PASSWORD": APP_VAR}, {}, 0, []),
    ("*_FILE", {"API_KEY_FILE": "{tmp}/k"}, {"k": KEY_FILE}, 0, ["auth.api_keys"]),
    ("world-readable file", {}, {"secrets/api-key": (KEY_FILE, 0o644)}, 0, ["auth.api_keys"]),
    ("bad value in a secret file", {}, {"secrets/port": FILE_BAD}, 78, []),
    ("NUL in a secret file", {}, {"secrets/redis-url": "redis://:%s@h\0x" % REDIS_PW}, 78, []),
    ("toml ok", {}, {"config/dev.toml": '[redis]\nurl = "redis://:%s@h:1/0"\n' % TOML_PW}, 0,
     ["redis.url"]),
    ("toml wrong type", {}, {"config/dev.toml": '[redis]\nurl = ["redis://:%s@h"]\n' % TOML_PW},
     78, []),
    ("toml unterminated", {}, {"config/dev.toml": '[redis]\nurl = "redis://:%s@h\n' % TOML_PW},
     78, []),
    ("toml bad escape", {}, {"config/dev.toml": '[redis]\nurl = "r:%s\\q"\n' % TOML_PW}, 78, []),
    ("toml control char", {}, {"config/dev.toml": '[redis]\nurl = "%s\x01"\n' % TOML_PW}, 78, []),
    ("toml trailing junk", {}, {"config/dev.toml": '[redis]\nurl = "%s" %s\n' % (TOML_PW, TOML_PW)},
     78, []),
    ("toml unknown key", {}, {"config/dev.toml": '[redis]\npassword = "%s"\n' % TOML_PW}, 0, []),
    ("toml bad value", {}, {"config/dev.toml": '[database]\nurl = "mysql://:%s@h"\n' % TOML_PW},
     78, ["database.url"]),
]


@pytest.mark.parametrize("case", CONFIG_CASES, ids=[c[0] for c in CONFIG_CASES])
def test_config_commands_never_print_secrets(tmp_path, case):  # R: Y7
    name, env, files, want_rc, redacted = case
    env = {k: v.replace("{tmp}", str(tmp_path)) for k, v in env.items()}
    cdir = tmp_path / "config"
    shutil.copytree(os.path.join(ROOT, "config"), cdir)
    sdir = tmp_path / "secrets"
    sdir.mkdir()
    for rel, content in files.items():
        mode = 0o400
        if isinstance(content, tuple):
            content, mode = content
        p = tmp_path / rel
        with open(p, "w", newline="") as f:
            f.write(content)
        os.chmod(p, mode)
    e = {**base_env(sdir, cdir), **env}
    rc, out = run_hale(e, "config")
    assert rc == want_rc, (name, rc, out)
    assert_no_secret("hale config [%s]" % name, out)
    for s in redacted:
        assert "<redacted>" in config_row(out, s), (name, s, out)
    rc, out = run_hale(e, "config", "--check")
    assert rc == want_rc, (name, rc, out)
    assert_no_secret("hale config --check [%s]" % name, out)
    if want_rc != 0:
        # the server refuses to start with the same diagnostics, no secret
        rc, out = run_hale(e, timeout=30)
        assert rc == 78, (name, rc, out)
        assert_no_secret("refusal to start [%s]" % name, out)


# ---- secrets sent by clients in the URL -------------------------------------

def test_query_string_credentials_not_logged(hale_factory):  # R: Y7
    h = hale_factory(env={"LOG_FORMAT": "json"})
    for q in ("access_token", "api_key", "token", "password"):
        h.request("GET", "/v1/kv/q?%s=%s&x=1" % (q, QUERY))
    time.sleep(0.3)
    h.check_clean_exit()
    out = h.output()
    assert out.count('"path":"/v1/kv/q?') == 4, out  # the requests are logged...
    assert QUERY not in out                           # ...without the credential


@pytest.mark.parametrize("fmt", ["json", "text"])
def test_query_credentials_matched_on_decoded_casefolded_names(hale_factory, fmt):  # R: Y7
    """The application decodes the name before it reads it, so the log must
    judge the decoded, case-folded name: api%5Fkey is api_key."""
    h = hale_factory(env={"LOG_FORMAT": fmt})
    names = ("api%5Fkey", "API_KEY", "Api%2DKey", "api-key", "%61pi_key", "Access%5FToken",
             "pass%77ord", "SECRET", "my+token", "api%00key", "api%zzkey")
    routed = 0
    for q in names:
        # (an engine may refuse a malformed target before routing it: 400,
        # logged without the path)
        routed += h.request("GET", "/v1/kv?%s=%s&limit=5" % (q, QUERY))[0] == 200
    time.sleep(0.3)
    h.check_clean_exit()
    out = h.output()
    assert routed >= len(names) - 1 and out.count("/v1/kv?") >= routed, out  # logged...
    assert_no_secret("access log", out, [QUERY])     # ...without the credential
    assert "limit=5" in out                          # other values are kept


def test_main_listener_health_has_no_error_text(hale_factory, tmp_path):  # R: Y7 H4
    """/health on the main listener is open to anyone who reaches the API:
    statuses only. The admin listener keeps the detail (host, port). A Redis
    that refuses connections (not required) gives a failing check with
    error text while hale stays ready."""
    sdir = tmp_path / "empty"
    sdir.mkdir()
    env = {"HALE_SECRET_DIR": str(sdir),
           "REDIS_URL": "redis://redisuserPLANTED:%s@127.0.0.1:1/0" % REDIS_PW,
           "APP_DATABASE__CHECK_INTERVAL": "200ms"}
    h = hale_factory(env=env)
    deadline = time.time() + 5
    while True:
        st, hd, admin = h.request("GET", "/health", admin=True)
        doc = json.loads(admin)
        err = doc["checks"]["redis"]["last_error"] or ""
        if "127.0.0.1" in err or time.time() > deadline:
            break
        time.sleep(0.1)
    assert "127.0.0.1:1" in err, doc  # the admin listener: full detail
    st, hd, body = h.request("GET", "/health")
    doc = json.loads(body)
    assert st == 200 and doc["checks"]["redis"]["status"] == "fail", doc
    assert doc["checks"]["redis"]["last_error"], doc  # says that it failed...
    text = body.decode()
    for leak in ("127.0.0.1", "redisuserPLANTED", REDIS_PW, "onnect", "refused"):
        assert leak not in text, (leak, text)         # ...but not where or why
    assert hd["cache-control"] == "no-store"


# ---- every database and Redis error path -------------------------------------

def run_briefly(env, *args, seconds=2.0):
    """Runs hale for at most `seconds`, then SIGTERM; (exit code, output)."""
    p = subprocess.Popen([HALE_BIN, *args], env=env, stdout=subprocess.PIPE,
                         stderr=subprocess.STDOUT, text=True, errors="replace")
    try:
        out = p.communicate(timeout=seconds)[0]
    except subprocess.TimeoutExpired:
        p.send_signal(signal.SIGTERM)
        out = p.communicate(timeout=30)[0]
    return p.returncode, out


URL_PW = "PLANTEDurlPWv7k2"


def _server_part(kind):
    """host:port/db... of the test server's URL (its credentials dropped)."""
    return backends.urls()[kind].split("@", 1)[1]


# (id, variable, URL, config error?, what the log must show: the path was taken)
URL_CASES = [
    ("pg-bad-url", "DATABASE_URL", lambda: "postgres://hale:%s@[::1/hale" % URL_PW, True, None),
    ("pg-bad-escape", "DATABASE_URL", lambda: "postgres://hale:%s%%zz@127.0.0.1/x" % URL_PW, True, None),
    ("pg-escape-nul", "DATABASE_URL", lambda: "postgres://hale:%s%%00@127.0.0.1/x" % URL_PW, True, None),
    ("pg-raw-at", "DATABASE_URL", lambda: "postgres://hale:%s@x@127.0.0.1/x" % URL_PW, True, None),
    ("pg-wrong-password", "DATABASE_URL",
     lambda: "postgres://hale:%s@%s" % (URL_PW, _server_part("pg")), False, "password authentication failed"),
    ("pg-unreachable", "DATABASE_URL",
     lambda: "postgres://hale:%s@127.0.0.1:1/hale?connect_timeout=1" % URL_PW, False, "refused"),
    ("pg-tls-refused", "DATABASE_URL",
     lambda: "postgres://hale:%s@%s%ssslmode=require" % (
         URL_PW, _server_part("pg"), "&" if "?" in _server_part("pg") else "?"), False, "SSL"),
    ("redis-bad-url", "REDIS_URL", lambda: "redis://:%s@[::1" % URL_PW, True, None),
    ("redis-bad-escape", "REDIS_URL", lambda: "redis://:%s%%zz@127.0.0.1:1" % URL_PW, True, None),
    ("redis-escape-nul", "REDIS_URL", lambda: "redis://:%s%%00@127.0.0.1:1" % URL_PW, True, None),
    ("redis-wrong-password", "REDIS_URL",
     lambda: "redis://:%s@%s" % (URL_PW, _server_part("redis")), False, "WRONGPASS"),
    ("redis-unreachable", "REDIS_URL", lambda: "redis://:%s@127.0.0.1:1/0" % URL_PW, False, "refused"),
    ("redis-tls-refused", "REDIS_URL", lambda: "rediss://:%s@127.0.0.1:1/0" % URL_PW, False, "TLS"),
]


@pytest.mark.parametrize("case", URL_CASES, ids=[c[0] for c in URL_CASES])
def test_database_and_redis_error_paths_never_show_the_password(hale_factory, tmp_path, case):  # R: Y7
    """Each way a database or Redis URL can fail: hale's own check refuses
    the malformed ones at start (naming the setting and the position), and
    no channel (logs at debug, `hale config --check`, `hale migrate`,
    /health on both listeners, /metrics) carries the password."""
    name, var, make_url, config_error, expect = case
    url = make_url()
    setting = "database.url" if var == "DATABASE_URL" else "redis.url"
    sdir = tmp_path / "empty"
    sdir.mkdir()
    env = {"HALE_SECRET_DIR": str(sdir), "LOG_FORMAT": "json", "LOG_LEVEL": "debug",
           "DATABASE_URL": "", "REDIS_URL": "", var: url,
           "APP_DATABASE__CONNECT_TIMEOUT": "500ms", "APP_DATABASE__CHECK_INTERVAL": "200ms",
           "APP_REDIS__TIMEOUT": "200ms"}
    base = {"PATH": os.environ["PATH"], "HALE_CONFIG_DIR": os.path.join(ROOT, "config"),
            "HALE_SECRET_DIR": str(sdir), **env, "PORT": str(free_port()),
            "APP_METRICS__PORT": str(free_port()), "HOST": "127.0.0.1",
            "APP_DATABASE__SQLITE_PATH": str(tmp_path / "hale.db")}
    rc, out = run_hale(base, "config", "--check")
    assert_no_secret("config --check [%s]" % name, out, [URL_PW])
    if config_error:
        # the server and `hale migrate`: whatever they print (they retry
        # while the URL reaches the driver), then the refusal itself
        for args in ((), ("migrate",)):
            rc2, out2 = run_briefly(base, *args)
            assert_no_secret("hale %s [%s]" % (" ".join(args) or "serve", name), out2, [URL_PW])
            assert rc2 == 78, (name, args, out2)
        assert rc == 78, (name, out)
        assert setting in out and "position" in out, (name, out)
        return
    assert rc == 0, (name, out)
    if var == "DATABASE_URL":
        # `hale migrate` retries for a minute and prints each failure
        rc2, mout = run_briefly(base, "migrate")
        assert expect in mout, (name, mout)
        assert_no_secret("hale migrate [%s]" % name, mout, [URL_PW])
    h = hale_factory(env=env, wait_ready=False)
    h.wait_ready(path="/health/liveness")
    seen = []
    deadline = time.time() + 2.5
    while time.time() < deadline:
        for admin in (False, True):
            seen.append(repr(h.request("GET", "/health", admin=admin)))
        seen.append(repr(h.request("GET", "/metrics", admin=True)))
        seen.append(repr(h.request("GET", "/v1/kv/k")))
        time.sleep(0.2)
    h.stop(signal.SIGTERM, timeout=30)
    out = h.output()
    assert expect in out, (name, out[-3000:])
    assert_no_secret("logs [%s]" % name, out, [URL_PW])
    assert_no_secret("responses [%s]" % name, "\n".join(seen), [URL_PW])
