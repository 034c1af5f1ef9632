"""The README and docs/ cannot go stale silently (R: C5, T1).

  * the settings table is generated from the settings declarations;
  * every ```console block in README.md, CONTRIBUTING.md and docs/*.md is
    run: each "$ command" line runs in bash (cwd the repository, `hale` the
    binary under test first on PATH, no HALE_/APP_/RUN_ENV variables) and
    its output (stdout and stderr) must equal the lines shown after it,
    where a line "..." stands for any number of lines. The exit status must
    be 0, or N when the command ends with "# exit N". A block that calls
    localhost:8080 / localhost:9090 talks to one fresh hale per file (the
    ports rewritten), so a file's blocks run in order against one store;
  * every relative link in those files points to a file that exists, and
    every `make TARGET` they name is a target of the Makefile."""
import glob
import os
import re
import subprocess

import pytest

from conftest import HALE_BIN, ROOT

DOCS = ["README.md", "CONTRIBUTING.md"] + sorted(
    os.path.relpath(p, ROOT) for p in glob.glob(os.path.join(ROOT, "docs", "*.md")))
CONSOLE = re.compile(r"^```console\n(.*?)^```", re.S | re.M)
EXIT = re.compile(r"\s+#\s*exit (\d+)\s*$")


def console_examples(text):
    """[(command, expected exit status, [expected lines])] in order."""
    out = []
    for block in CONSOLE.findall(text):
        for line in block.splitlines():
            if line.startswith("$ "):
                cmd = line[2:]
                m = EXIT.search(cmd)
                out.append([cmd[:m.start()] if m else cmd, int(m.group(1)) if m else 0, []])
            elif out:
                out[-1][2].append(line.rstrip())
    return out


def matches(want, got):
    """want's lines equal got's; a "..." line matches any run of lines."""
    if not want:
        return not got
    if want[0] == "...":
        return any(matches(want[1:], got[i:]) for i in range(len(got) + 1))
    return bool(got) and want[0] == got[0] and matches(want[1:], got[1:])


def example_env():
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("APP_", "HALE_")) and k not in (
               "RUN_ENV", "PORT", "HOST", "API_KEY", "DATABASE_URL", "REDIS_URL",
               "LOG_LEVEL", "LOG_FORMAT")}
    env["PATH"] = os.path.dirname(HALE_BIN) + os.pathsep + env["PATH"]
    return env


@pytest.mark.parametrize("doc", DOCS)
def test_console_examples_print_what_they_show(doc, hale_factory):  # R: C5, T1
    examples = console_examples(open(os.path.join(ROOT, doc)).read())
    if doc == "README.md":
        assert len(examples) > 10  # the quickstart, the API, the configuration
    server = None
    for cmd, status, want in examples:
        if "localhost:8080" in cmd or "localhost:9090" in cmd:
            if server is None:
                server = hale_factory()
            cmd = cmd.replace("localhost:8080", "127.0.0.1:%d" % server.port) \
                     .replace("localhost:9090", "127.0.0.1:%d" % server.admin_port)
        r = subprocess.run(["bash", "-c", cmd], cwd=ROOT, env=example_env(), capture_output=True,
                           text=True, timeout=30)
        got = [l.rstrip("\r").rstrip() for l in (r.stdout + r.stderr).splitlines()]
        assert r.returncode == status, "%s: `%s` exited %d, shown %d\n%s" % (
            doc, cmd, r.returncode, status, "\n".join(got))
        assert matches(want, got), "%s: `%s` prints\n%s\nshown:\n%s" % (
            doc, cmd, "\n".join(got), "\n".join(want))


def test_example_matcher_can_fail():  # R: T1
    assert matches(["a", "...", "c"], ["a", "b", "b", "c"])
    assert not matches(["a", "c"], ["a", "b", "c"])
    assert not matches(["a"], ["a", "b"])
    assert console_examples("```console\n$ false   # exit 1\n$ echo x\nx\n```\n") == \
        [["false", 1, []], ["echo x", 0, ["x"]]]


LINK = re.compile(r"\]\(([^)#\s]+)(?:#[^)]*)?\)")
MAKE = re.compile(r"`make ([a-z0-9-]+)")


@pytest.mark.parametrize("doc", DOCS + ["SECURITY.md", "CHANGELOG.md", "docker/README.md",
                                        "deploy/k8s/README.md"])
def test_links_and_make_targets_exist(doc):  # R: C5
    text = open(os.path.join(ROOT, doc)).read()
    base = os.path.dirname(os.path.join(ROOT, doc))
    for target in LINK.findall(text):
        if "://" in target or target.startswith("mailto:"):
            continue
        assert os.path.exists(os.path.join(base, target)), "%s links to %s" % (doc, target)
    targets = set(re.findall(r"^([a-z0-9-]+):", open(os.path.join(ROOT, "Makefile")).read(), re.M))
    for t in MAKE.findall(text):
        assert t in targets, "%s names make %s" % (doc, t)


def test_generated_files_are_current():  # R: C5, C2
    """The README settings table, config/default.toml and the kit's copy are
    what the binary generates from its settings declarations (one place)."""
    r = subprocess.run([os.path.join(ROOT, "scripts/gen-readme.sh"), "--check"],
                       env={**os.environ, "HALE_BIN": HALE_BIN}, capture_output=True, text=True)
    assert r.returncode == 0, r.stdout + r.stderr


def test_default_toml_sets_every_setting():  # R: C2 C5
    r = subprocess.run([HALE_BIN, "config"], capture_output=True, text=True,
                       env={"PATH": os.environ["PATH"],
                            "HALE_CONFIG_DIR": os.path.join(ROOT, "config")})
    assert r.returncode == 0, r.stderr
    rows = [l for l in r.stdout.splitlines()[2:] if l.strip()]
    assert len(rows) > 30
    for row in rows:
        assert "default.toml:" in row, "config/default.toml does not set: " + row
