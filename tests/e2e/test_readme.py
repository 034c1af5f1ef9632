"""The README's settings table is generated from the settings declarations
and must not go stale (R: C5)."""
import os
import subprocess

from conftest import HALE_BIN, ROOT


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


def test_readme_states_conditional_and_caching_behaviour():  # R: A10 A1 A2
    text = open(os.path.join(ROOT, "README.md")).read()
    api = text.split("## The API", 1)[1].split("\n## ", 1)[0]
    for needle in ("If-Match", "If-None-Match", "If-Modified-Since", "If-Unmodified-Since",
                   "Last-Modified", "weakly", "304", "Cache-Control", "no-cache", "no-store",
                   "kv.cache_control"):
        assert needle in api, needle
