"""scripts/install-deps.sh on a fresh machine (R: T4): it waits for the dpkg
lock instead of failing when another apt runs (a new cloud VM's first
minutes), and the test group installs what every suite needs.

apt-get, dpkg-query and id are fakes first on PATH: nothing is installed,
and the real dpkg lock (shared with anyone else on the machine) is never
taken."""
import os
import subprocess

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
SCRIPT = os.path.join(ROOT, "scripts", "install-deps.sh")
LOCK = ["-o", "DPkg::Lock::Timeout=600"]


def fake_bin(tmp_path, uid):
    d = tmp_path / "bin"
    d.mkdir()
    log = tmp_path / "apt-get.log"
    (d / "apt-get").write_text('#!/bin/sh\nfor a in "$@"; do printf "%%s\\n" "$a"; done >> %s\n'
                               'echo --- >> %s\n' % (log, log))
    (d / "dpkg-query").write_text("#!/bin/sh\nexit 1\n")      # nothing installed
    (d / "id").write_text("#!/bin/sh\necho %d\n" % uid)
    for f in d.iterdir():
        f.chmod(0o755)
    return d, log


def run(tmp_path, group, uid):
    d, log = fake_bin(tmp_path, uid)
    env = {**os.environ, "PATH": "%s:%s" % (d, os.environ["PATH"]),
           "HALE_POLICY_RC_D": str(tmp_path / "policy-rc.d")}
    p = subprocess.run(["bash", SCRIPT, group], env=env, capture_output=True, text=True, timeout=30)
    calls = []
    if log.exists():
        calls = [c.strip("\n").split("\n") for c in log.read_text().split("---\n") if c.strip()]
    return p, calls


def test_apt_get_waits_for_the_dpkg_lock_and_says_so(tmp_path):  # R: T4
    p, calls = run(tmp_path, "test", 0)
    assert p.returncode == 0, p.stdout + p.stderr
    assert [c[len(LOCK)] for c in calls] == ["update", "install"], calls
    for c in calls:
        assert c[:len(LOCK)] == LOCK, c
    assert "waits up to 600 s for the dpkg lock" in p.stdout
    assert not (tmp_path / "policy-rc.d").exists()   # removed again on exit


def test_non_root_prints_the_apt_line_with_the_lock_timeout(tmp_path):  # R: T4
    p, calls = run(tmp_path, "build", 1000)
    assert p.returncode == 1 and calls == []
    line = [l for l in p.stderr.splitlines() if "apt-get" in l][0]
    assert line.count("apt-get -o DPkg::Lock::Timeout=600 ") == 2, line


def test_test_group_installs_the_compose_tests_docker_compose(tmp_path):  # R: T4
    # tests/image/test_compose.py falls back to docker-compose (v1) when the
    # engine has no `docker compose` plugin
    p, calls = run(tmp_path, "test", 0)
    assert "docker-compose" in calls[-1], calls
    (tmp_path / "b").mkdir()
    _, build_calls = run(tmp_path / "b", "build", 0)
    assert "docker-compose" not in build_calls[-1]
    # and that Debian package is what ships the path the test calls
    owner = subprocess.run(["dpkg", "-S", "/usr/bin/docker-compose"], capture_output=True, text=True)
    if owner.returncode != 0:
        pytest.fail("docker-compose is not installed: `make test-deps` installs it (scripts/install-deps.sh test)")
    assert owner.stdout.split(":")[0] == "docker-compose", owner.stdout


def test_ccache_and_mold_are_optional_for_a_non_root_user(tmp_path):  # R: B4, T4
    # everything installed but ccache and mold: make run goes on (they only
    # speed builds up); as root they are installed
    d, log = fake_bin(tmp_path, 1000)
    (d / "dpkg-query").write_text('#!/bin/sh\nfor a in "$@"; do last=$a; done\n'
                                  'case $last in ccache|mold) exit 1 ;; esac\n'
                                  "printf 'install ok installed'\n")
    env = {**os.environ, "PATH": "%s:%s" % (d, os.environ["PATH"]),
           "HALE_POLICY_RC_D": str(tmp_path / "policy-rc.d")}
    p = subprocess.run(["bash", SCRIPT, "build"], env=env, capture_output=True, text=True, timeout=30)
    assert p.returncode == 0, p.stderr
    assert "optional packages not installed" in p.stderr and "ccache mold" in p.stderr
    assert not log.exists()
    (d / "id").write_text("#!/bin/sh\necho 0\n")
    p = subprocess.run(["bash", SCRIPT, "build"], env=env, capture_output=True, text=True, timeout=30)
    assert p.returncode == 0, p.stderr
    assert log.read_text().split("---\n")[-2].split("\n")[-3:-1] == ["ccache", "mold"]
