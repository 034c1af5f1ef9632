#!/usr/bin/python3
"""SBOM of a hale image, CycloneDX 1.5 JSON, and the security-update check.

Every file in the image that is a binary or a library (an ELF file) is listed
under the Debian package that ships it, with the package's version, found in
the dpkg database: the image's own when it has one (runtime), else the
builder's (distroless: its files are copied out of the builder). A file no
package ships must be /app/hale itself (the project's component); anything
else is an error.

The builder records, before it drops the apt lists, its apt sources and
`apt-cache policy` of every installed package (see the Dockerfile). From them
each package gets:
  debian:installed-from   the suites the installed version is published in
  debian:candidate        the newest version the sources offer
  debian:security-version the newest version in bookworm-security, if any
and `--check` fails unless the sources include bookworm-security and every
package's installed version is the candidate (so no published security
update is missing; when bookworm-security holds the newest version, that is
the one installed).

The builder also keeps docker/packages.lock, the exact versions its own and
the runtime stage's packages were installed at (docker/apt-pinned.sh). Each
package carries
  hale:pinned             the version the lock pins for the stage the files
                          come from (runtime: the image's; else the builder's)
and `--check` fails unless every listed package is pinned at exactly its
installed version.

Usage: docker/sbom.py IMAGE --builder BUILDER_IMAGE -o OUT.json [--check]
Needs only the standard library and the docker CLI.
"""
import argparse
import datetime
import hashlib
import io
import json
import os
import re
import subprocess
import sys
import tarfile
import urllib.parse
import uuid

SECURITY_SUITE = "bookworm-security"


def docker(*args, **kw):
    return subprocess.run(["docker", *args], check=True, capture_output=True, **kw).stdout


class Container:
    """A created (never started) container, to read an image's files."""

    def __init__(self, image):
        # scratch-based images have no default command; any argv will do
        self.cid = docker("create", image, "/none").decode().strip()

    def export(self):
        return subprocess.Popen(["docker", "export", self.cid], stdout=subprocess.PIPE)

    def copy_out(self, path):
        """The file or directory at path as a tarfile, or None if missing."""
        r = subprocess.run(["docker", "cp", f"{self.cid}:{path}", "-"], capture_output=True)
        if r.returncode != 0:
            return None
        return tarfile.open(fileobj=io.BytesIO(r.stdout))

    def close(self):
        subprocess.run(["docker", "rm", "-f", "-v", self.cid], capture_output=True)


def usr_alias(path):
    """bookworm is merged-/usr, but packages still ship some files under /lib."""
    for top in ("/lib/", "/lib64/", "/bin/", "/sbin/"):
        if path.startswith(top):
            return "/usr" + path
        if path.startswith("/usr" + top):
            return path[4:]
    return path


def parse_status(text):
    pkgs = {}
    for para in text.split("\n\n"):
        fields = {}
        for line in para.splitlines():
            m = re.match(r"^([A-Za-z-]+):\s*(.*)$", line)
            if m:
                fields[m.group(1)] = m.group(2)
        if "Package" in fields and "install ok installed" in fields.get("Status", ""):
            pkgs[fields["Package"]] = fields
    return pkgs


def read_dpkg(tar, prefix):
    """status text and {path: package} from a tar of /var/lib/dpkg."""
    status, owners = "", {}
    for m in tar:
        name = re.sub(r"^\./", "", m.name)
        if not m.isfile() or not name.startswith(prefix):
            continue
        rel = name[len(prefix):]
        if rel == "status":
            status = tar.extractfile(m).read().decode()
        elif rel.startswith("info/") and rel.endswith(".list"):
            pkg = rel[5:-5].split(":")[0]
            for line in tar.extractfile(m).read().decode(errors="replace").splitlines():
                owners.setdefault(line, pkg)
    return status, owners


def parse_policy(text):
    """apt-cache policy output -> {pkg: {installed, candidate, versions: {v: [origin]}}}"""
    out, cur, ver = {}, None, None
    for line in text.splitlines():
        m = re.match(r"^(\S+?)(?::[a-z0-9]+)?:$", line)
        if m:
            cur = out.setdefault(m.group(1), {"installed": None, "candidate": None, "versions": {}})
            ver = None
            continue
        if cur is None:
            continue
        s = line.strip()
        if s.startswith("Installed:"):
            cur["installed"] = s.split(":", 1)[1].strip()
        elif s.startswith("Candidate:"):
            cur["candidate"] = s.split(":", 1)[1].strip()
        elif re.match(r"^( \*\*\*|    ) \S+ -?\d+$", line):
            ver = line[5:].split()[0]
            cur["versions"].setdefault(ver, [])
        elif ver and re.match(r"^\s+-?\d+ ", line):
            parts = s.split()
            # "500 http://deb.debian.org/debian-security bookworm-security/main amd64 Packages"
            if len(parts) >= 3 and "://" in parts[1]:
                cur["versions"][ver].append(parts[2].split("/")[0])
    return out


def parse_lock(text):
    """packages.lock -> {stage: {pkg: version}}"""
    out = {}
    for line in text.splitlines():
        parts = line.split()
        if len(parts) == 2 and not line.startswith("#") and "=" in parts[1]:
            pkg, ver = parts[1].split("=", 1)
            out.setdefault(parts[0], {})[pkg] = ver
    return out


def purl(name, version, arch):
    v = urllib.parse.quote(version, safe="")
    return f"pkg:deb/debian/{name}@{v}?arch={arch}&distro=debian-12"


def scan_image(image):
    """ELF files (path -> (sha256, size, kind)) and the image's own dpkg data."""
    c = Container(image)
    elf, status, owners, sources = {}, "", {}, ""
    try:
        p = c.export()
        with tarfile.open(fileobj=p.stdout, mode="r|") as tar:
            lists = {}
            for m in tar:
                name = "/" + re.sub(r"^\./", "", m.name).lstrip("/")
                if not m.isfile():
                    continue
                f = tar.extractfile(m)
                if name == "/var/lib/dpkg/status":
                    status = f.read().decode()
                    continue
                if name.startswith("/var/lib/dpkg/info/") and name.endswith(".list"):
                    lists[name[len("/var/lib/dpkg/info/"):-5].split(":")[0]] = f.read().decode()
                    continue
                if name.startswith("/etc/apt/") and name.endswith((".sources", ".list")):
                    sources += f.read().decode() + "\n"
                    continue
                head = f.read(20)
                if head[:4] != b"\x7fELF":
                    continue
                h = hashlib.sha256(head)
                for chunk in iter(lambda: f.read(1 << 20), b""):
                    h.update(chunk)
                e_type = int.from_bytes(head[16:18], "little")
                kind = {2: "executable", 3: "shared object or PIE"}.get(e_type, f"ELF type {e_type}")
                elf[name] = (h.hexdigest(), m.size, kind)
        p.wait()
        for pkg, text in lists.items():
            for line in text.splitlines():
                owners.setdefault(line, pkg)
    finally:
        c.close()
    return elf, status, owners, sources


def builder_records(builder):
    c = Container(builder)
    try:
        status, owners = read_dpkg(c.copy_out("/var/lib/dpkg"), "dpkg/")
        rec = {}
        t = c.copy_out("/out/staged-files.tsv")
        if t is not None:
            rec["staged-files.tsv"] = t.extractfile(t.getmembers()[0]).read().decode()
        t = c.copy_out("/usr/local/share/hale-build")
        if t is not None:
            for m in t:
                if m.isfile():
                    rec[os.path.basename(m.name)] = t.extractfile(m).read().decode()
    finally:
        c.close()
    return status, owners, rec


def build_sbom(image, builder):
    elf, status, owners, img_sources = scan_image(image)
    b_status, b_owners, rec = builder_records(builder)
    own_db = bool(status)
    if not own_db:
        status, owners = b_status, b_owners
    pkgs = parse_status(status)
    policy = parse_policy(rec.get("apt-policy.txt", ""))
    sources = rec.get("apt-sources.txt", "")
    lock_text = rec.get("packages.lock", "")
    stage = "runtime" if own_db else "builder"
    pins = parse_lock(lock_text).get(stage, {})
    if not pins:
        problems_lock = [f"the builder holds no packages.lock pins for stage '{stage}'"]
    else:
        problems_lock = []
    inspect = json.loads(docker("image", "inspect", image))[0]
    labels = (inspect.get("Config") or {}).get("Labels") or {}
    hale_version = labels.get("org.opencontainers.image.version", "unknown")
    revision = labels.get("org.opencontainers.image.revision", "unknown")

    by_pkg, problems = {}, list(problems_lock)
    for path in sorted(elf):
        pkg = owners.get(path) or owners.get(usr_alias(path))
        if pkg is None:
            if path == "/app/hale":
                pkg = "<hale>"
            else:
                problems.append(f"{path}: no Debian package ships it")
                pkg = "<unknown>"
        by_pkg.setdefault(pkg, []).append(path)

    def file_components(paths):
        return [{"type": "file", "name": p, "bom-ref": f"file:{p}",
                 "hashes": [{"alg": "SHA-256", "content": elf[p][0]}],
                 "properties": [{"name": "hale:size", "value": str(elf[p][1])},
                                {"name": "hale:elf", "value": elf[p][2]}]}
                for p in paths]

    comps = []
    for pkg in sorted(by_pkg):
        files = file_components(by_pkg[pkg])
        if pkg == "<hale>":
            comps.append({"type": "application", "name": "hale", "version": hale_version,
                          "bom-ref": "hale", "properties": [
                              {"name": "hale:revision", "value": revision},
                              {"name": "hale:origin", "value": "built from this repository"}],
                          "components": files})
            continue
        if pkg == "<unknown>":
            comps.append({"type": "file", "name": "unowned files", "bom-ref": "unknown",
                          "components": files})
            continue
        f = pkgs.get(pkg, {})
        ver, arch = f.get("Version", "?"), f.get("Architecture", "?")
        pol = policy.get(pkg)
        props = [{"name": "debian:source", "value": f.get("Source", pkg).split(" ")[0]},
                 {"name": "hale:pinned", "value": pins.get(pkg, "none")}]
        if pins and pins.get(pkg) != ver:
            problems.append(f"{pkg}: installed {ver}, but packages.lock pins "
                            f"{pins.get(pkg, 'nothing')} for {stage}")
        if pol:
            installed_from = sorted(set(pol["versions"].get(ver, [])))
            sec = [v for v, o in pol["versions"].items() if SECURITY_SUITE in o]
            props += [{"name": "debian:installed-from", "value": " ".join(installed_from) or "none"},
                      {"name": "debian:candidate", "value": pol["candidate"] or "none"}]
            if sec:
                props.append({"name": "debian:security-version", "value": sec[0]})
            if pol["candidate"] != ver:
                problems.append(f"{pkg}: installed {ver}, but the sources offer {pol['candidate']} "
                                "(refresh docker/packages.lock: scripts/lock-packages.sh)")
            if not installed_from:
                problems.append(f"{pkg}: installed {ver} is in no configured suite")
        else:
            problems.append(f"{pkg}: not in the builder's apt-cache policy record")
        comps.append({"type": "library" if by_pkg[pkg] and all(
                          elf[p][2] != "executable" for p in by_pkg[pkg]) else "application",
                      "name": pkg, "version": ver, "bom-ref": purl(pkg, ver, arch),
                      "purl": purl(pkg, ver, arch), "properties": props, "components": files})

    if not own_db:
        # the image's files must be the ones this builder staged
        staged = dict(line.split("\t")[0::3] for line in rec.get("staged-files.tsv", "").splitlines()
                      if line)
        mine = {p: v[0] for p, v in elf.items()}
        if mine != staged:
            diff = sorted(p for p in set(mine) | set(staged) if mine.get(p) != staged.get(p))
            problems.append(f"the image's ELF files {diff} differ from what builder {builder} "
                            f"staged: built from another builder?")
    if SECURITY_SUITE not in sources:
        problems.append(f"the builder's apt sources do not include {SECURITY_SUITE}")
    if own_db and SECURITY_SUITE not in img_sources:
        problems.append(f"the image's apt sources do not include {SECURITY_SUITE}")

    meta_props = [
        {"name": "hale:image", "value": image},
        {"name": "hale:image-id", "value": inspect["Id"]},
        {"name": "hale:image-size", "value": str(inspect["Size"])},
        {"name": "hale:dpkg-database", "value": "image" if own_db else f"builder {builder}"},
        {"name": "hale:builder-image-id",
         "value": json.loads(docker("image", "inspect", builder))[0]["Id"]},
        {"name": "hale:apt-sources",
         "value": " ".join(sorted(set(re.findall(r"\b(bookworm[a-z-]*)\b", sources))))},
        {"name": "hale:packages-lock",
         "value": hashlib.sha256(lock_text.encode()).hexdigest() + f" (stage {stage})"},
        {"name": "hale:check", "value": "; ".join(problems) or "ok"},
    ]
    bom = {
        "bomFormat": "CycloneDX", "specVersion": "1.5",
        "serialNumber": f"urn:uuid:{uuid.uuid4()}", "version": 1,
        "metadata": {
            "timestamp": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
            "tools": {"components": [{"type": "application", "name": "hale docker/sbom.py"}]},
            "component": {"type": "container", "name": image, "bom-ref": "image"},
            "properties": meta_props,
        },
        "components": comps,
        "dependencies": [{"ref": "image", "dependsOn": [c["bom-ref"] for c in comps]}],
    }
    return bom, problems, len(elf)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("image")
    ap.add_argument("--builder", required=True, help="the builder stage's image (dpkg database)")
    ap.add_argument("-o", "--output", required=True)
    ap.add_argument("--check", action="store_true", help="exit 1 on any problem")
    a = ap.parse_args()
    bom, problems, nfiles = build_sbom(a.image, a.builder)
    os.makedirs(os.path.dirname(os.path.abspath(a.output)), exist_ok=True)
    with open(a.output, "w") as f:
        json.dump(bom, f, indent=1)
        f.write("\n")
    npkg = sum(1 for c in bom["components"] if "purl" in c)
    sec = sum(1 for c in bom["components"] for p in c.get("properties", [])
              if p["name"] == "debian:installed-from" and SECURITY_SUITE in p["value"])
    print(f"sbom: {a.image}: {nfiles} ELF files from {npkg} Debian packages "
          f"({sec} installed from {SECURITY_SUITE}) -> {a.output}")
    for p in problems:
        print(f"sbom: PROBLEM: {p}", file=sys.stderr)
    return 1 if (problems and a.check) else 0


if __name__ == "__main__":
    sys.exit(main())
