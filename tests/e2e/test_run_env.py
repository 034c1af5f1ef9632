"""RUN_ENV names an environment hale knows (R: C2, Y1): dev, test,
production, or a name with a file of its own in the config dir. Anything
else (a typo such as RUN_ENV=prod) is a configuration error, exit 78 before
a socket is opened, so production's checks are never skipped silently."""
import os
import subprocess

from conftest import HALE_BIN, ROOT


def run(run_env, config_dir, *args):
    env = {"PATH": os.environ["PATH"], "RUN_ENV": run_env, "HALE_CONFIG_DIR": str(config_dir),
           "APP_AUTH__ALLOW_ANONYMOUS": "true"}
    return subprocess.run([HALE_BIN, *args], env=env, capture_output=True, text=True, timeout=30)


def test_unknown_run_env_exits_78(tmp_path):  # R: C2, Y1
    r = run("prod", os.path.join(ROOT, "config"))
    assert r.returncode == 78, r.stderr
    assert "RUN_ENV=prod: unknown environment: expected dev, test, production" in r.stderr
    assert "prod.toml is missing" in r.stderr
    r = run("prod", os.path.join(ROOT, "config"), "config", "--check")
    assert r.returncode == 78 and "unknown environment" in r.stdout + r.stderr


def test_known_and_file_backed_run_envs(tmp_path):  # R: C2
    conf = tmp_path / "config"
    conf.mkdir()
    (conf / "default.toml").write_text("[server]\nport = 8080\n")
    for name in ("dev", "test", "production"):
        r = run(name, conf, "config", "--check")
        assert r.returncode == 0, (name, r.stdout, r.stderr)
    r = run("staging", conf, "config", "--check")
    assert r.returncode == 78
    (conf / "staging.toml").write_text("[server]\nport = 8181\n")
    r = run("staging", conf, "config")
    assert r.returncode == 0, r.stderr
    assert "# RUN_ENV=staging" in r.stdout and "staging.toml:2" in r.stdout
