"""database.require_url (R: K11, L3, C5): with it set and no database URL,
hale refuses to start (exit 78, a message naming the setting and the secret
file) instead of opening a per-process SQLite file; without it (the default,
also under RUN_ENV=production) SQLite stays the store for one machine."""
import os
import subprocess
import tempfile

from conftest import HALE_BIN, ROOT


def _env(**extra):
    d = tempfile.mkdtemp(prefix="hale-requrl-")
    os.makedirs(os.path.join(d, "secrets"))
    key = os.path.join(d, "secrets", "api-key")
    with open(key, "w") as f:
        f.write("test-key\n")
    os.chmod(key, 0o400)
    e = {"PATH": os.environ["PATH"], "HALE_CONFIG_DIR": os.path.join(ROOT, "config"),
         "HALE_SECRET_DIR": os.path.join(d, "secrets"), "RUN_ENV": "production",
         "APP_DATABASE__SQLITE_PATH": os.path.join(d, "hale.db")}
    e.update(extra)
    return e, d


def test_require_url_without_a_url_exits_78_with_a_clear_message():  # R: K11, L3
    env, d = _env(APP_DATABASE__REQUIRE_URL="true")
    p = subprocess.run([HALE_BIN], env=env, cwd=d, capture_output=True, text=True, timeout=30)
    assert p.returncode == 78, p.stdout + p.stderr
    msg = p.stdout + p.stderr
    assert "database.require_url is true" in msg and "no database URL" in msg
    assert os.path.join(d, "secrets", "database-url") in msg
    assert not os.path.exists(os.path.join(d, "hale.db")), "no SQLite file may be created"
    p = subprocess.run([HALE_BIN, "config", "--check"], env=env, cwd=d, capture_output=True,
                       text=True, timeout=30)
    assert p.returncode == 78 and "database.require_url" in p.stdout + p.stderr


def test_require_url_is_satisfied_by_a_url():  # R: K11
    env, d = _env(APP_DATABASE__REQUIRE_URL="true",
                  DATABASE_URL="postgres://u:p@127.0.0.1:1/db")
    p = subprocess.run([HALE_BIN, "config", "--check"], env=env, cwd=d, capture_output=True,
                       text=True, timeout=30)
    assert p.returncode == 0, p.stdout + p.stderr


def test_builtin_production_default_still_allows_sqlite():  # R: K11, C2
    env, d = _env()
    p = subprocess.run([HALE_BIN, "config"], env=env, cwd=d, capture_output=True, text=True,
                       timeout=30)
    assert p.returncode == 0, p.stderr
    row = next(line for line in p.stdout.splitlines() if line.startswith("database.require_url "))
    assert row.split()[1] == "false"
