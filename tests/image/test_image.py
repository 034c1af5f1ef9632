"""The container images, built and run on this machine's Docker engine.

Run by scripts/test-image.sh (make test-image) after scripts/image.sh has
built hale:builder, hale:runtime and hale:distroless from the local bases.
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

from imagetools import (DRAIN_DELAY_S, IMAGE, MINIMAL, ROOT, VARIANTS, docker, http, image_ref,
                      inspect, wait_healthy)

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


# R: D1
def test_bases_are_build_arguments_with_upstream_defaults():
    text = open(os.path.join(ROOT, "Dockerfile")).read()
    args = dict(re.findall(r"^ARG (\w+_IMAGE)=(\S+)$", text, re.M))
    assert args == {"BUILDER_IMAGE": "debian:bookworm-slim",
                    "RUNTIME_IMAGE": "debian:bookworm-slim",
                    "DISTROLESS_IMAGE": "gcr.io/distroless/cc-debian12"}
    stages = re.findall(r"^FROM (\S+) AS (\w+)$", text, re.M)
    assert [s for _, s in stages] == ["builder", "runtime", "distroless"]
    for base, _ in stages:
        assert base.startswith("${"), f"FROM {base}: the base must be a build argument"


# R: D1
def test_dependency_layer_is_reused_when_only_sources_change():
    """Build the builder from a copy of the context with one source file
    changed: the apt/dependency step must come from the cache."""
    with tempfile.TemporaryDirectory() as ctx:
        for p in ["Dockerfile", ".dockerignore", "CMakeLists.txt", "scripts/install-deps.sh",
                  "docker/stage-rootfs.sh"]:
            os.makedirs(os.path.dirname(os.path.join(ctx, p)), exist_ok=True)
            shutil.copy2(os.path.join(ROOT, p), os.path.join(ctx, p))
        for d in ["src", "config"]:
            shutil.copytree(os.path.join(ROOT, d), os.path.join(ctx, d))
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
def test_distroless_holds_only_the_binary_its_libraries_and_base_files():
    files = exported_files(image_ref("distroless"))
    elf = {p for p, (_, is_elf) in files.items() if is_elf}
    r = docker("run", "--rm", "--entrypoint", "cat", image_ref("builder"), "/out/staged-files.tsv")
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
    goal = "met" if mib(sizes["distroless"]) <= 12 else "NOT met"
    print(f"minimal image goal (<= 12 MiB): {goal}")
    assert sizes["distroless"] < sizes["runtime"] / 3


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
                            image_ref("builder"), "-o", path, "--check"],
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
