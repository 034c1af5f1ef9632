"""ABI discipline (R: R3): `make abi-check` (scripts/abi-check.sh) passes on
this tree against the committed abi/libhale.so.0.abi, and fails when a copy
of the tree changes a public struct's layout or drops a function without a
SONAME bump; an added function, or a change inside an opaque type, passes;
a bumped SONAME asks for its own
baseline. The tweaked copies are real builds of the library (debug variant,
as the baseline)."""
import os
import re
import shutil
import subprocess

import pytest

from conftest import ROOT, run


def abi_check(tree, *args):
    p = subprocess.run([os.path.join(tree, "scripts", "abi-check.sh"), *args],
                       capture_output=True, text=True, cwd=tree)
    return p.returncode, p.stdout + p.stderr


def tweaked(workdir, name, edits):
    """A copy of the library's sources with edits {path: [(old, new)]},
    built (debug) to <copy>/build/libhale.so."""
    tree = os.path.join(workdir, "abi-" + name)
    os.makedirs(tree)
    for d in ("cmake", "src", "abi", "scripts"):
        shutil.copytree(os.path.join(ROOT, d), os.path.join(tree, d))
    shutil.copy(os.path.join(ROOT, "CMakeLists.txt"), tree)
    for path, subs in edits.items():
        p = os.path.join(tree, path)
        text = open(p).read()
        for old, new in subs:
            assert old in text, (path, old)
            text = text.replace(old, new)
        open(p, "w").write(text)
    build = os.path.join(tree, "build")
    run("cmake", "-S", tree, "-B", build, "-DCMAKE_BUILD_TYPE=Debug", "-DHALE_BUILD_TESTS=OFF",
        "-DHALE_REVISION=abi-test")
    run("cmake", "--build", build, "--target", "hale_shared", "-j", os.environ.get("JOBS", "2"))
    return tree, os.path.join(build, "libhale.so")


def test_tree_matches_baseline():  # R: R3
    rc, out = abi_check(ROOT)
    assert rc == 0, out
    assert "matches abi/libhale.so.0.abi" in out


def test_struct_layout_change_fails(workdir):  # R: R3
    """A field inserted at the front of hale_http_opts moves every other one."""
    tree, lib = tweaked(workdir, "struct", {"src/runtime/http/http.h": [
        ("typedef struct hale_http_opts {\n", "typedef struct hale_http_opts {\n    unsigned backlog;\n")]})
    rc, out = abi_check(tree, "--lib", lib)
    assert rc == 1, out
    assert "FAIL" in out and "hale_http_opts" in out, out


def test_opaque_struct_change_passes(workdir):  # R: R3
    """hale_health is opaque (health.h declares it, health.c defines it):
    its layout is no caller's business, so a field added to it passes."""
    tree, lib = tweaked(workdir, "opaque", {"src/runtime/health/health.c": [
        ("struct hale_health {\n", "struct hale_health {\n    unsigned abi_test_field;\n")]})
    rc, out = abi_check(tree, "--lib", lib)
    assert rc == 0, out


def test_removed_function_fails(workdir):  # R: R3
    tree, lib = tweaked(workdir, "removed", {
        "src/runtime/http/http.h": [("unsigned hale_http_workers(", "unsigned hale_http_nworkers(")],
        "src/runtime/http/http_server.c": [("hale_http_workers(", "hale_http_nworkers(")],
        "src/runtime/service/service.c": [("hale_http_workers(", "hale_http_nworkers(")]})
    rc, out = abi_check(tree, "--lib", lib)
    assert rc == 1, out
    assert "hale_http_workers" in out and "incompatible" in out, out


def test_added_function_passes(workdir):  # R: R3
    tree, lib = tweaked(workdir, "added", {
        "src/runtime/common/util.h": [("uint64_t hale_wall_ms(void);",
                                "uint64_t hale_wall_ms(void);\nint hale_abi_test_added(void);")],
        "src/runtime/common/util.c": [('#include "util.h"\n',
                                '#include "util.h"\nint hale_abi_test_added(void) { return 1; }\n')]})
    nm = run("nm", "-D", "--defined-only", lib)
    assert "hale_abi_test_added" in nm
    rc, out = abi_check(tree, "--lib", lib)
    assert rc == 0, out


def test_soname_bump_needs_its_baseline(workdir):  # R: R3
    """An incompatible change with HALE_SOVERSION 1: no baseline yet is a
    failure that says what to do; once recorded (make abi-baseline) it passes."""
    tree, lib = tweaked(workdir, "bump", {
        "cmake/library.cmake": [("set(HALE_SOVERSION 0)", "set(HALE_SOVERSION 1)")],
        "src/runtime/http/http.h": [("typedef struct hale_http_opts {\n",
                                "typedef struct hale_http_opts {\n    unsigned backlog;\n")]})
    assert "Library soname: [libhale.so.1]" in run("readelf", "-d", lib)
    rc, out = abi_check(tree, "--lib", lib)
    assert rc == 1 and "no baseline abi/libhale.so.1.abi" in out, out
    rc, out = abi_check(tree, "--update", "--lib", lib)
    assert rc == 0 and os.path.isfile(os.path.join(tree, "abi", "libhale.so.1.abi")), out
    rc, out = abi_check(tree, "--lib", lib)
    assert rc == 0, out
