"""Debian packages (R: R4): `dpkg-buildpackage -us -uc -b` on a copy of the
tree builds hale, libhale0 and libhale-dev; lintian reports no error or
warning (an override needs a written reason); the three packages install
in a fresh container of the local Debian base (docker/mkbase.sh, as the
image tests use) and hale runs there from the installed files: bin in PATH,
config from /etc/hale, its system user, answering /health and a write, a
drain to exit 0, and a purge that leaves no state behind; then
examples/shortener builds there against libhale-dev (pkg-config) and runs
on libhale0."""
import glob
import os
import re
import shutil
import subprocess
import tempfile

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
BASE = os.environ.get("HALE_BASE_IMAGE", "hale-local/bookworm:slim")
VERSION = re.search(r"^hale \(([^)]+)\)", open(os.path.join(ROOT, "debian/changelog")).read()).group(1)


def run(*args, timeout=900, **kw):
    p = subprocess.run(args, capture_output=True, text=True, timeout=timeout, **kw)
    assert p.returncode == 0, "%s failed (%d):\n%s\n%s" % (" ".join(args), p.returncode,
                                                          p.stdout[-6000:], p.stderr[-6000:])
    return p.stdout


@pytest.fixture(scope="module")
def debs():
    """The packages built from a copy of the tree's files (tracked and new,
    never build/), in a directory of their own."""
    top = tempfile.mkdtemp(prefix="hale-deb-")
    src = os.path.join(top, "hale-" + VERSION)
    os.makedirs(src)
    files = run("git", "ls-files", "-z", "--cached", "--others", "--exclude-standard", cwd=ROOT)
    for f in files.split("\0"):
        if f and os.path.isfile(os.path.join(ROOT, f)):
            os.makedirs(os.path.join(src, os.path.dirname(f)), exist_ok=True)
            shutil.copy2(os.path.join(ROOT, f), os.path.join(src, f))
    run("dpkg-buildpackage", "-us", "-uc", "-b", cwd=src)
    yield top
    shutil.rmtree(top, ignore_errors=True)


def deb(top, name):
    got = glob.glob(os.path.join(top, "%s_%s_*.deb" % (name, VERSION)))
    assert len(got) == 1, os.listdir(top)
    return got[0]


def contents(path):
    # "perm owner size date time ./path[ -> target]"
    return {l.split(None, 5)[5].split(" -> ")[0].lstrip(".")
            for l in run("dpkg-deb", "-c", path).splitlines()}


def test_three_packages_with_their_files(debs):  # R: R4
    hale = contents(deb(debs, "hale"))
    assert {"/usr/bin/hale", "/etc/hale/default.toml", "/etc/hale/production.toml",
            "/usr/share/man/man1/hale.1.gz"} <= hale
    for unit in ("hale.service", "hale.socket"):  # deploy/systemd/, when the tree has them
        if os.path.exists(os.path.join(ROOT, "deploy/systemd", unit)):
            assert any(p.endswith("/systemd/system/" + unit) for p in hale), unit
            # the unit's Documentation= is shipped
            assert "/usr/share/doc/hale/systemd.md" in hale
    ctl = run("dpkg-deb", "-I", deb(debs, "hale"))
    assert "adduser" in ctl and "postinst" in ctl
    conffiles = run("dpkg-deb", "-I", deb(debs, "hale"), "conffiles").split()
    assert "/etc/hale/default.toml" in conffiles  # a conffile: upgrades keep local edits

    lib = contents(deb(debs, "libhale0"))
    assert any(p.endswith("/libhale.so.0") for p in lib)
    assert not any(p.endswith(".h") or p.endswith("/libhale.so") for p in lib)
    dev = contents(deb(debs, "libhale-dev"))
    for want in ("/usr/include/hale/service.h", "/libhale.so", "/libhale.a", "/pkgconfig/hale.pc",
                 "/cmake/hale/haleConfig.cmake"):
        assert any(p.endswith(want) for p in dev), want
    assert not any(re.search(r"_int\.h$|http_internal\.h|http_parse\.h|testhooks\.h", p) for p in dev)
    assert "libhale0 (= %s)" % VERSION in run("dpkg-deb", "-f", deb(debs, "libhale-dev"), "Depends")


def test_lintian_reports_no_error_or_warning(debs):  # R: R4
    changes = glob.glob(os.path.join(debs, "hale_%s_*.changes" % VERSION))
    assert len(changes) == 1
    p = subprocess.run(["lintian", "--fail-on", "error,warning", "--show-overrides", changes[0]],
                       capture_output=True, text=True, timeout=600)
    tags = [l for l in p.stdout.splitlines() if re.match(r"^[EW]: ", l)]
    assert p.returncode == 0 and not tags, p.stdout + p.stderr
    # an override is allowed only with its reason written above it
    for f in glob.glob(os.path.join(ROOT, "debian", "*lintian-overrides")) + \
            glob.glob(os.path.join(ROOT, "debian", "source", "lintian-overrides")):
        prev = ""
        for line in open(f):
            line = line.strip()
            if line and not line.startswith("#"):
                assert prev.startswith("#"), "%s: override without a reason: %s" % (f, line)
            prev = line or prev


CONTAINER_SCRIPT = r"""
set -eu
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends /debs/*.deb >/tmp/apt.log 2>&1 || { tail -30 /tmp/apt.log; exit 1; }
echo "bin: $(command -v hale)"
echo "user: $(getent passwd hale | cut -d: -f1,6,7)"
echo "state: $(stat -c '%U %a' /var/lib/hale)"
test -f /usr/include/hale/service.h && test -e "$(dirname "$(readlink -f /usr/lib/*/libhale.so.0)")/libhale.so.0"
echo "lib: ok"
cd /var/lib/hale
# setpriv execs hale as the hale user (runuser would stay its parent and
# end with 143 on SIGTERM instead of passing hale's exit status on)
setpriv --reuid=hale --regid=hale --init-groups env HOST=127.0.0.1 APP_METRICS__HOST=127.0.0.1 hale --config-dir /etc/hale >/tmp/hale.log 2>&1 &
pid=$!
for i in $(seq 1 100); do
  if hale --health-check >/dev/null 2>&1; then break; fi
  sleep 0.1
done
hale --health-check
echo "runs as: $(stat -c %U /proc/$pid)"
req() { # METHOD PATH [BODY]
  exec 3<>/dev/tcp/127.0.0.1/8080
  printf '%s %s HTTP/1.1\r\nHost: t\r\nConnection: close\r\nContent-Length: %d\r\n\r\n%s' \
    "$1" "$2" "${#3}" "$3" >&3
  head -1 <&3 | tr -d '\r'
  exec 3>&-
}
echo "health: $(req GET /health '')"
echo "put: $(req PUT /v1/kv/deb 'from-the-package')"
echo "get: $(req GET /v1/kv/deb '')"
ls /var/lib/hale/data/hale.db >/dev/null && echo "db: in /var/lib/hale"
kill -TERM "$pid"
rc=0; wait "$pid" || rc=$?
echo "exit: $rc"
apt-get purge -y -qq hale >/dev/null 2>&1
if [ -e /var/lib/hale ]; then echo "purge: state left"; else echo "purge: clean"; fi
# libhale-dev + libhale0: the example service builds with the packaged
# pkg-config file and headers and runs on the packaged shared library
apt-get install -y -qq --no-install-recommends gcc make pkgconf libc6-dev >/tmp/apt2.log 2>&1 || { tail -30 /tmp/apt2.log; exit 1; }
cp -r /example /tmp/ex && make -s -C /tmp/ex >/tmp/ex.log 2>&1 || { cat /tmp/ex.log; exit 1; }
echo "example links: $(ldd /tmp/ex/shortener | awk '/libhale/ {print $3}')"
cd /tmp
PORT=8081 APP_METRICS__PORT=9091 HOST=127.0.0.1 APP_METRICS__HOST=127.0.0.1 /tmp/ex/shortener >/tmp/ex-run.log 2>&1 &
ex=$!
for i in $(seq 1 100); do
  if /tmp/ex/shortener --health-check >/dev/null 2>&1; then break; fi
  sleep 0.1
done
exec 3<>/dev/tcp/127.0.0.1/8081
printf 'POST /v1/links HTTP/1.1\r\nHost: t\r\nConnection: close\r\nContent-Length: 19\r\n\r\nhttps://debian.org/' >&3
echo "example post: $(head -1 <&3 | tr -d '\r')"
exec 3>&-
kill -TERM "$ex"
rc=0; wait "$ex" || rc=$?
echo "example exit: $rc"
"""


def test_installs_and_runs_in_a_fresh_container(debs):  # R: R4
    if subprocess.run(["docker", "image", "inspect", BASE], capture_output=True).returncode != 0:
        run(os.path.join(ROOT, "docker", "mkbase.sh"), BASE, timeout=900)
    d = os.path.join(debs, "install")
    os.makedirs(d)
    for name in ("hale", "libhale0", "libhale-dev"):
        shutil.copy(deb(debs, name), d)
    out = run("docker", "run", "--rm", "-v", d + ":/debs:ro",
              "-v", os.path.join(ROOT, "examples", "shortener") + ":/example:ro",
              BASE, "bash", "-c", CONTAINER_SCRIPT, timeout=600)
    lines = dict(l.split(": ", 1) for l in out.splitlines() if ": " in l)
    assert lines.get("bin") == "/usr/bin/hale", out
    assert lines.get("user", "").startswith("hale:/var/lib/hale:"), out
    assert lines.get("state") == "hale 750", out
    assert lines.get("lib") == "ok", out
    assert lines.get("runs as") == "hale", out
    assert lines.get("health") == "HTTP/1.1 200 OK", out
    assert lines.get("put") == "HTTP/1.1 201 Created", out
    assert lines.get("get") == "HTTP/1.1 200 OK", out
    assert lines.get("db") == "in /var/lib/hale", out
    assert lines.get("exit") == "0", out
    assert lines.get("purge") == "clean", out
    assert lines.get("example links", "").endswith("/libhale.so.0"), out
    assert lines.get("example post") == "HTTP/1.1 201 Created", out
    assert lines.get("example exit") == "0", out
