"""The container images, built and run on this machine's Docker engine.

Run by scripts/test-image.sh (make test-image) after scripts/image.sh has
built hale:builder, hale:builder-sqlite, hale:runtime, hale:distroless and
hale:sqlite from the local bases.
"""
import json
import os
import re
import shutil
import subprocess
import tarfile
import tempfile
import time

import pytest

from imagetools import (BUILDER, DRAIN_DELAY_S, IMAGE, MINIMAL, ROOT, VARIANTS, docker, http,
                        image_ref, inspect, wait_healthy)

HADOLINT = shutil.which("hadolint") or "/opt/hale-tools/bin/hadolint"
DOCKERFILES = ["Dockerfile", "docker/distroless-base/Dockerfile",
               "docker/postgres/Dockerfile", "docker/redis/Dockerfile"]


def mib(n):
    return n / 1048576


# ---------------------------------------------------------------- D1 / lint
# R: D1
def test_hadolint_clean_on_every_dockerfile():
    assert os.access(HADOLINT, os.X_OK), "hadolint missing: scripts/install-lint-tools.sh"
    r = subprocess.run([HADOLINT, *DOCKERFILES], cwd=ROOT, capture_output=True, text=True)
    assert r.returncode == 0, r.stdout + r.stderr


# R: D1, D2
def test_bases_are_build_arguments_pinned_by_digest():
    """Each base's default is the upstream image by digest, the tag it was
    resolved from in the comment line above it (docker/README.md: refresh)."""
    text = open(os.path.join(ROOT, "Dockerfile")).read()
    found = re.findall(r"^# (\S+)\nARG (\w+_IMAGE)=(\S+)$", text, re.M)
    args = {name: (tag, ref) for tag, name, ref in found}
    want = {"BUILDER_IMAGE": "debian", "RUNTIME_IMAGE": "debian",
            "DISTROLESS_IMAGE": "gcr.io/distroless/cc-debian12",
            "STATIC_IMAGE": "gcr.io/distroless/static-debian12"}
    assert set(args) == set(want), found
    assert set(re.findall(r"^ARG (\w+_IMAGE)=", text, re.M)) == set(want)
    for name, repo in want.items():
        tag, ref = args[name]
        assert re.fullmatch(re.escape(repo) + r"@sha256:[0-9a-f]{64}", ref), (name, ref)
        assert tag.split(":")[0] == repo and ":" in tag, tag
    assert args["BUILDER_IMAGE"] == args["RUNTIME_IMAGE"]
    # no `apt-get upgrade` left: the versions come from docker/packages.lock
    code = "\n".join(line for line in text.splitlines() if not line.lstrip().startswith("#"))
    assert "upgrade" not in code
    assert code.count("apt-pinned.sh builder") == 1 and code.count("apt-pinned.sh runtime") == 1
    stages = re.findall(r"^FROM (\S+) AS ([\w-]+)$", text, re.M)
    assert [s for _, s in stages] == ["builder", "builder-sqlite", "runtime", "sqlite", "distroless"]
    for base, stage in stages:
        if stage == "builder-sqlite":
            assert base == "builder"
        else:
            assert base.startswith("${"), f"FROM {base}: the base must be a build argument"
    readme = open(os.path.join(ROOT, "docker/README.md")).read()
    assert "Refreshing the pins" in readme and "scripts/lock-packages.sh" in readme


# R: D1
def test_dependency_layer_is_reused_when_only_sources_change():
    """Build the builder from a copy of the context with one source file
    changed: the apt/dependency step must come from the cache."""
    with tempfile.TemporaryDirectory() as ctx:
        # what scripts/image.sh puts in: the "!" lines of .dockerignore
        keep = [l[1:].rstrip("/") for l in open(os.path.join(ROOT, ".dockerignore")).read().splitlines()
                if l.startswith("!")]
        for p in ["Dockerfile", ".dockerignore", *keep]:
            src, dst = os.path.join(ROOT, p), os.path.join(ctx, p)
            os.makedirs(os.path.dirname(dst), exist_ok=True)
            if os.path.isdir(src):
                shutil.copytree(src, dst)
            else:
                shutil.copy2(src, dst)
        with open(os.path.join(ctx, "src/app/main.c"), "a") as f:
            f.write(f"\n/* cache test {time.time()} */\n")
        base = inspect(image_ref("builder"))["Config"]["Labels"] or {}
        builder_base = os.environ.get("HALE_BASE_IMAGE", "hale-local/bookworm:slim")
        r = docker("build", "--target", "builder", "--build-arg", f"BUILDER_IMAGE={builder_base}",
                   "-t", f"{IMAGE}:builder-cache-test", ctx, timeout=600)
        out = r.stdout + r.stderr
        docker("rmi", f"{IMAGE}:builder-cache-test", check=False)
    steps = re.split(r"\nStep \d+/\d+ : ", out)
    dep = [s for s in steps if s.startswith("RUN apt-get update")]
    src = [s for s in steps if s.startswith("COPY src/")]
    assert dep and "Using cache" in dep[0], out[-3000:]
    assert src and "Using cache" not in src[0], "the changed source must not hit the cache"
    assert base.get("hale.stage") == "builder"


# --------------------------------------------------- per variant: D2 D3 D4
# R: D3
def test_image_config_is_hardened(running):
    cfg = inspect(image_ref(running.variant))["Config"]
    assert cfg["User"] == "65532:65532"
    assert cfg["Healthcheck"]["Test"] == ["CMD", "/app/hale", "--health-check"]
    assert set(cfg["ExposedPorts"]) == {"8080/tcp", "9090/tcp"}
    assert cfg["WorkingDir"] == "/app"
    assert "LOG_FORMAT=json" in cfg["Env"]
    assert cfg["Entrypoint"] == ["/app/hale"]
    assert "/app/data" in (cfg.get("Volumes") or {})


# R: D3, D4
def test_docker_reports_healthy_from_the_healthcheck(running):
    health = wait_healthy(running.name)
    runs = health["Log"]
    assert runs, "Docker recorded no HEALTHCHECK run"
    assert runs[-1]["ExitCode"] == 0, runs[-1]
    assert runs[-1]["Output"].strip(), "hale --health-check printed nothing"


# R: D3
def test_runs_unprivileged_read_only_without_capabilities(running):
    wait_healthy(running.name)
    st = inspect(running.name)
    hc = st["HostConfig"]
    assert hc["ReadonlyRootfs"] is True
    assert hc["CapDrop"] == ["ALL"]
    assert "no-new-privileges" in hc["SecurityOpt"]
    # what the kernel says about the running process
    status = open(f"/proc/{st['State']['Pid']}/status").read()
    fields = dict(line.split(":\t", 1) for line in status.splitlines() if ":\t" in line)
    assert fields["Uid"].split()[:2] == ["65534", "65534"]
    assert fields["Gid"].split()[:2] == ["65534", "65534"]
    assert int(fields["CapEff"], 16) == 0 and int(fields["CapPrm"], 16) == 0
    assert fields["NoNewPrivs"].strip() == "1"


# R: D4
def test_key_value_api_round_trips(running):
    wait_healthy(running.name)
    value = f"value from the {running.variant} image".encode()
    status, body = http("PUT", f"{running.url}/v1/kv/x", value)
    assert status in (200, 201, 204), body
    status, body = http("GET", f"{running.url}/v1/kv/x")
    assert (status, body) == (200, value)
    # the admin listener serves the probes too
    status, _ = http("GET", f"http://127.0.0.1:{running.admin_port}/health/liveness")
    assert status == 200


# R: D2
def test_no_shell_in_the_minimal_variants(running):
    r = docker("exec", running.name, "sh", "-c", "echo shell", check=False)
    if running.variant in MINIMAL:
        assert r.returncode != 0 and "shell" not in r.stdout, r.stdout
        for tool in ["/bin/sh", "/bin/bash", "/usr/bin/apt-get", "/usr/bin/dpkg"]:
            r = docker("exec", running.name, tool, "--version", check=False)
            assert r.returncode != 0, f"{tool} runs in {running.variant}"
    else:
        assert r.returncode == 0 and r.stdout.strip() == "shell", "runtime keeps Debian's shell"


# R: D3, D4 (last for each variant: it stops the container)
def test_docker_stop_drains_and_exits_zero(running):
    wait_healthy(running.name)
    t0 = time.monotonic()
    docker("stop", "-t", "30", running.name, timeout=60)
    took = time.monotonic() - t0
    st = inspect(running.name)["State"]
    logs = running.logs()
    assert st["ExitCode"] == 0, logs[-2000:]
    assert not st["OOMKilled"]
    # the drain delay was honoured, and far less than docker stop's 30 s kill
    assert DRAIN_DELAY_S * 0.9 <= took < 15, took
    assert "draining" in logs and "stopped cleanly" in logs, logs[-2000:]
    print(f"\n{image_ref(running.variant)}: docker stop took {took:.1f} s "
          f"(drain delay {DRAIN_DELAY_S} s), exit 0")


# ------------------------------------------------------------ D2 contents
def exported_files(image):
    cid = docker("create", image, "/none").stdout.strip()
    try:
        p = subprocess.Popen(["docker", "export", cid], stdout=subprocess.PIPE)
        files = {}
        with tarfile.open(fileobj=p.stdout, mode="r|") as tar:
            for m in tar:
                name = "/" + re.sub(r"^\./", "", m.name).lstrip("/")
                head = tar.extractfile(m).read(4) if m.isfile() else b""
                files[name] = (m, head == b"\x7fELF")
        p.wait()
        return files
    finally:
        docker("rm", "-f", "-v", cid, check=False)


# R: D2
@pytest.mark.parametrize("variant", sorted(MINIMAL))
def test_minimal_image_holds_only_the_binary_its_libraries_and_base_files(variant):
    files = exported_files(image_ref(variant))
    elf = {p for p, (_, is_elf) in files.items() if is_elf}
    r = docker("run", "--rm", "--entrypoint", "cat", image_ref(BUILDER[variant]),
               "/out/staged-files.tsv")
    staged = {line.split("\t")[0] for line in r.stdout.splitlines()}
    assert elf == staged, f"ELF files differ from the builder's ldd closure: {elf ^ staged}"
    assert "/lib64/ld-linux-x86-64.so.2" in elf and "/app/hale" in elf
    # everything else: config, the data directory and the distroless base's files
    allowed = re.compile(r"^/(app/config/.*|etc/(passwd|group|nsswitch\.conf|os-release|services|"
                         r"protocols|hosts|hostname|resolv\.conf|mtab)|etc/ssl/certs/ca-certificates"
                         r"\.crt|\.dockerenv|proc/.*|sys/.*|dev/.*)$")
    others = sorted(p for p, (m, is_elf) in files.items()
                    if not is_elf and not m.isdir() and not allowed.match(p))
    assert not others, f"unexpected files in the distroless image: {others}"
    assert not any(p.startswith(("/usr/bin/", "/bin/")) for p in files if p not in elf)
    data = files["/app/data"][0]
    assert (data.uid, data.gid) == (65532, 65532)
    assert files["/app/hale"][0].uid == 0, "the binary must not belong to the runtime user"


# R: D4
def test_image_sizes_are_reported():
    sizes = {v: inspect(image_ref(v))["Size"] for v in VARIANTS}
    print()
    for v, n in sizes.items():
        print(f"image size: {image_ref(v):20} {n:>12,} bytes  {mib(n):6.1f} MiB")
    goal = "met" if mib(sizes["sqlite"]) <= 12 else "NOT met"
    print(f"minimal image goal (<= 12 MiB, {image_ref('sqlite')}): {goal}")
    assert sizes["distroless"] < sizes["runtime"] / 3
    # R: D2 - the SQLite-only image is the minimal one, within the goal
    assert sizes["sqlite"] < sizes["distroless"]
    assert mib(sizes["sqlite"]) <= 12, f"{image_ref('sqlite')}: {mib(sizes['sqlite']):.1f} MiB"


# R: D2
def test_sqlite_image_refuses_a_postgres_url_with_exit_78():
    r = docker("run", "--rm", "--read-only", "--tmpfs", "/app/data:uid=65532,gid=65532",
               "-e", "DATABASE_URL=postgres://hale:pw-not-shown@db.example:5432/hale",
               image_ref("sqlite"), check=False)
    assert r.returncode == 78, (r.returncode, r.stdout, r.stderr)
    assert "built without PostgreSQL" in r.stderr and "DATABASE_URL" in r.stderr, r.stderr
    assert "pw-not-shown" not in r.stdout + r.stderr
    out = docker("run", "--rm", image_ref("sqlite"), "version").stdout
    assert "built without postgres" in out and "built without redis" in out, out
    full = docker("run", "--rm", image_ref("distroless"), "version").stdout
    assert "backends: sqlite postgres redis" in full, full


# R: D2
def test_static_variant_is_refused_with_a_pointer_to_why():
    r = subprocess.run([os.path.join(ROOT, "scripts/image.sh"), "static"], capture_output=True,
                       text=True)
    assert r.returncode == 2 and "STATIC.md" in r.stderr


# ---------------------------------------------------------------- D3 SBOM
@pytest.fixture(scope="module")
def sboms():
    out = {}
    for v in VARIANTS:
        path = os.path.join(ROOT, "build", "sbom", f"{v}.cdx.json")
        r = subprocess.run([os.path.join(ROOT, "docker/sbom.py"), image_ref(v), "--builder",
                            image_ref(BUILDER[v]), "-o", path, "--check"],
                           capture_output=True, text=True)
        print(r.stdout, r.stderr)
        assert r.returncode == 0, r.stdout + r.stderr
        out[v] = json.load(open(path))
    return out


def props(obj):
    return {p["name"]: p["value"] for p in obj.get("properties", [])}


# R: D3
@pytest.mark.parametrize("variant", VARIANTS)
def test_sbom_lists_every_binary_and_library_with_its_debian_package(sboms, variant):
    bom = sboms[variant]
    assert bom["bomFormat"] == "CycloneDX" and bom["specVersion"] == "1.5"
    listed = {}
    for c in bom["components"]:
        for f in c.get("components", []):
            assert f["type"] == "file" and len(f["hashes"][0]["content"]) == 64
            listed[f["name"]] = c
    # every ELF file of the image is listed, under a Debian package or hale itself
    elf = {p for p, (_, is_elf) in exported_files(image_ref(variant)).items() if is_elf}
    assert set(listed) == elf
    for path, c in listed.items():
        if path == "/app/hale":
            assert c["name"] == "hale"
            continue
        assert c["purl"].startswith(f"pkg:deb/debian/{c['name']}@"), c
        assert c["version"] and c["version"] != "?"
    names = {c["name"] for c in bom["components"]}
    assert {"libc6", "libsqlite3-0"} <= names
    # R: D2 - hale's own HTTP engine: no libmicrohttpd. GnuTLS came with it;
    # Debian's libpq5 still brings it (libpq5 -> libldap-2.5 -> libgnutls30),
    # so only an image without libpq may be free of it
    assert not {n for n in names if "microhttpd" in n}, names
    if "libpq5" not in names:
        assert not {n for n in names if "gnutls" in n}, names
    if variant == "sqlite":
        banned = ("libpq", "libhiredis", "gnutls", "libldap", "libssl", "krb5", "sasl")
        assert not {n for n in names if n.startswith(banned) or "gnutls" in n}, names
        assert names == {"hale", "libc6", "libsqlite3-0"}, names


def lock():
    out = {}
    for line in open(os.path.join(ROOT, "docker/packages.lock")):
        if line.strip() and not line.startswith("#"):
            stage, pin = line.split()
            pkg, ver = pin.split("=", 1)
            out.setdefault(stage, {})[pkg] = ver
    return out


# R: D2, D3
@pytest.mark.parametrize("variant", VARIANTS)
def test_sbom_lists_exactly_the_pinned_versions(sboms, variant):
    pins = lock()["runtime" if variant == "runtime" else "builder"]
    listed = {c["name"]: c for c in sboms[variant]["components"] if "purl" in c}
    assert listed
    for name, c in listed.items():
        assert name in pins, f"{name} is in the image but docker/packages.lock does not pin it"
        assert c["version"] == pins[name], (name, c["version"], pins[name])
        assert props(c)["hale:pinned"] == pins[name]


# R: D2
@pytest.mark.parametrize("image,stage", [("builder", "builder"), ("builder-sqlite", "builder"),
                                         ("runtime", "runtime")])
def test_debian_stages_hold_exactly_the_locked_packages(image, stage):
    """Not one package more or less than docker/packages.lock, each at its
    pinned version (what replaced `apt-get upgrade`)."""
    r = docker("run", "--rm", "--entrypoint", "dpkg-query", image_ref(image), "-W",
               "-f=${db:Status-Abbrev} ${Package}=${Version}\n")
    have = {line.split()[1] for line in r.stdout.splitlines() if line.startswith("ii ")}
    want = {f"{p}={v}" for p, v in lock()[stage].items()}
    assert have == want, f"not pinned: {sorted(have - want)}; missing: {sorted(want - have)}"


# R: D3
@pytest.mark.parametrize("variant", VARIANTS)
def test_sbom_security_updates_were_used(sboms, variant):
    bom = sboms[variant]
    meta = props(bom["metadata"])
    assert meta["hale:check"] == "ok"
    assert "bookworm-security" in meta["hale:apt-sources"].split()
    n_security = 0
    for c in bom["components"]:
        if "purl" not in c:
            continue
        p = props(c)
        # the installed version is the newest the sources (with security) offer
        assert p["debian:candidate"] == c["version"], c["name"]
        assert p["debian:installed-from"] != "none", c["name"]
        # where bookworm-security publishes the newest version, that is the one installed
        if p.get("debian:security-version") == p["debian:candidate"]:
            assert "bookworm-security" in p["debian:installed-from"].split(), c["name"]
            n_security += 1
    print(f"\n{variant}: {n_security} packages installed from bookworm-security")


# R: D3
@pytest.mark.parametrize("variant", VARIANTS)
def test_sbom_is_valid_cyclonedx_1_5(sboms, variant):
    """Strict validation against the CycloneDX 1.5 JSON schema (the
    validator from scripts/install-lint-tools.sh)."""
    py = "/opt/hale-tools/bin/python"
    code = ("import sys\nfrom cyclonedx.validation.json import JsonStrictValidator\n"
            "from cyclonedx.schema import SchemaVersion\n"
            "e = JsonStrictValidator(SchemaVersion.V1_5).validate_str(open(sys.argv[1]).read())\n"
            "print(e or 'valid'); sys.exit(1 if e else 0)\n")
    path = os.path.join(ROOT, "build", "sbom", f"{variant}.cdx.json")
    r = subprocess.run([py, "-c", code, path], capture_output=True, text=True)
    assert r.returncode == 0, r.stdout + r.stderr


# R: D2
def test_apt_pinned_refuses_a_stage_that_differs_from_the_lock():
    """docker/apt-pinned.sh in the builder image (offline: its apt lists are
    gone, so only already-installed versions resolve): the lock itself passes;
    a package installed but not pinned, a pinned version apt cannot find,
    and a required package the lock lacks each fail the build, saying what."""
    text = open(os.path.join(ROOT, "docker/packages.lock")).read()
    with tempfile.TemporaryDirectory() as d:
        os.chmod(d, 0o755)
        cases = {
            "same": (text, None, 0, "packages at the versions"),
            "unpinned": ("\n".join(l for l in text.splitlines() if not l.startswith("builder curl=")),
                         None, 1, "installed, not pinned: curl="),
            "bogus": (re.sub(r"^builder libc6=\S+$", "builder libc6=0.0-bogus", text, flags=re.M),
                      None, 1, "could not install the pinned versions"),
            "required": (text, "libpq5\nlibnot-in-the-lock0\n", 1,
                         "needs libnot-in-the-lock0, which"),
        }
        for name, (lock_text, required, rc, msg) in cases.items():
            with open(os.path.join(d, f"{name}.lock"), "w") as f:
                f.write(lock_text)
            args = ["/src/docker/apt-pinned.sh", "builder", f"/l/{name}.lock"]
            if required:
                with open(os.path.join(d, f"{name}.req"), "w") as f:
                    f.write(required)
                args.append(f"/l/{name}.req")
            r = docker("run", "--rm", "--network", "none", "-v", f"{d}:/l:ro", "--entrypoint",
                       "bash", image_ref("builder"), *args, check=False)
            assert r.returncode == rc, (name, r.returncode, r.stdout, r.stderr)
            assert msg in r.stdout + r.stderr, (name, r.stdout, r.stderr)
