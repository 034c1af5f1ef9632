"""`make install` delivers the runtime as a library (R: R1): the layout under
PREFIX (and DESTDIR), libhale.so.0 with its SONAME exporting only the
documented hale_* API, libhale.a, the public headers only, hale.pc and
the CMake package."""
import os
import re
import subprocess

from conftest import ROOT, run

PUBLIC = {"config.h", "health.h", "http.h", "lifecycle.h", "log.h", "metrics.h",
          "router.h", "service.h", "util.h"}


def files_under(top):
    out = set()
    for d, _, fs in os.walk(top):
        for f in fs:
            out.add(os.path.relpath(os.path.join(d, f), top))
    return out


def test_layout_under_prefix(prefix):  # R: R1
    got = files_under(prefix)
    for f in ["bin/hale", "lib/libhale.so.0", "lib/libhale.so", "lib/libhale.a",
              "lib/pkgconfig/hale.pc", "lib/cmake/hale/haleConfig.cmake",
              "lib/cmake/hale/haleConfigVersion.cmake", "lib/cmake/hale/haleTargets.cmake"]:
        assert f in got, f
    assert os.path.islink(os.path.join(prefix, "lib/libhale.so.0"))
    assert os.readlink(os.path.join(prefix, "lib/libhale.so")) == "libhale.so.0"
    headers = {f[len("include/hale/"):] for f in got if f.startswith("include/")}
    assert headers == PUBLIC, "installed headers: %s" % sorted(headers)
    out = run(os.path.join(prefix, "bin/hale"), "--version")
    assert out.startswith("hale 0.1.0")


def test_destdir_is_honoured(workdir):  # R: R1
    dest = os.path.join(workdir, "destdir")
    run("make", "-s", "install", "PREFIX=/opt/hale-test", "DESTDIR=" + dest, cwd=ROOT)
    assert not os.path.exists("/opt/hale-test")
    root = os.path.join(dest, "opt/hale-test")
    assert os.path.isfile(os.path.join(root, "lib/libhale.a"))
    pc = open(os.path.join(root, "lib/pkgconfig/hale.pc")).read()
    # the .pc names the final prefix, never the staging directory
    assert "prefix=/opt/hale-test\n" in pc and dest not in pc
    cm = open(os.path.join(root, "lib/cmake/hale/haleTargets.cmake")).read()
    assert dest not in cm


def test_soname_and_exports(prefix):  # R: R1
    lib = os.path.join(prefix, "lib/libhale.so.0")
    dyn = run("readelf", "-d", lib)
    assert "Library soname: [libhale.so.0]" in dyn
    syms = run("nm", "-D", "--defined-only", lib).split("\n")
    names = {l.split()[-1] for l in syms if l.strip()}
    names = {re.sub(r"@.*", "", n) for n in names} - {"HALE_0"}
    assert names, "nothing exported"
    stray = sorted(n for n in names if not n.startswith("hale_"))
    assert not stray, "exported outside the hale_* API: %s" % stray
    # every exported symbol is declared in an installed header, so nothing
    # internal (hale_auth_*, hale_observe_*, the parser, test hooks) leaks
    text = "".join(open(os.path.join(prefix, "include/hale", h)).read() for h in PUBLIC)
    undeclared = sorted(n for n in names if not re.search(r"\b%s\b" % n, text))
    assert not undeclared, "exported but not in include/hale: %s" % undeclared
    # and every function the headers declare to their users (static inlines
    # and the in-tree-only blocks, hidden in the library, aside) is there
    users = re.sub(r"^#ifdef HALE_IN_TREE\n.*?^#endif", "", text, flags=re.M | re.S)
    declared = set(re.findall(r"^(?!static )[a-z_][a-z0-9_ *]*?\b(hale_[a-z0-9_]+)\(", users, re.M))
    for hidden in set(re.findall(r"\b(hale_[a-z0-9_]+)\(", text)) - set(re.findall(r"\b(hale_[a-z0-9_]+)\(", users)):
        assert hidden not in names, "in-tree only, yet exported: %s" % hidden
    missing = sorted(declared - names)
    assert not missing, "declared but not exported: %s" % missing
    for internal in ("hale_auth_check", "hale_observe_new", "hale_probe_get", "toml_parse", "xmalloc"):
        assert internal not in names


def global_defined(path, dynamic):
    out = run("nm", "-D" if dynamic else "-g", "--defined-only", path)
    names = set()
    for l in out.splitlines():
        parts = l.split()
        if len(parts) >= 3:
            names.add(re.sub(r"@.*", "", parts[2]))
    return names - {"HALE_0"}


def test_static_library_exports_what_the_shared_one_does(prefix):  # R: R1
    """libhale.a's hidden symbols are local: its global names are exactly
    libhale.so.0's, so xmalloc, toml_* or internal hale_* never clash."""
    a = global_defined(os.path.join(prefix, "lib/libhale.a"), dynamic=False)
    so = global_defined(os.path.join(prefix, "lib/libhale.so.0"), dynamic=True)
    assert a == so, "only in .a: %s; only in .so: %s" % (sorted(a - so), sorted(so - a))


def test_static_library_links_alone(prefix, workdir):  # R: R1
    """A program linked with libhale.a runs without libhale.so."""
    src = os.path.join(workdir, "static.c")
    with open(src, "w") as f:
        f.write('#include <hale/metrics.h>\n#include <stdio.h>\nint main(void) {\n'
                '  hale_metrics *m = hale_metrics_new();\n'
                '  hale_counter *c = hale_counter_with(hale_metrics_counter(m, "x_total", "x", 0, NULL), NULL);\n'
                '  hale_counter_add(c, 41); hale_counter_inc(c);\n'
                '  hale_buf b; hale_buf_init(&b); hale_metrics_render(m, &b);\n'
                '  fputs(b.data, stdout); hale_buf_free(&b); hale_metrics_free(m); return 0; }\n')
    exe = os.path.join(workdir, "static-test")
    env = dict(os.environ, PKG_CONFIG_PATH=os.path.join(prefix, "lib/pkgconfig"))
    cflags = run("pkg-config", "--cflags", "hale", env=env).split()
    libs = run("pkg-config", "--static", "--libs", "hale", env=env).split()
    libs = [l if l != "-lhale" else os.path.join(prefix, "lib/libhale.a") for l in libs]
    run("cc", "-std=c11", "-Wall", "-Werror", *cflags, "-o", exe, src, *libs)
    assert "libhale.so" not in run("ldd", exe)
    assert "x_total 42" in run(exe)


def test_cmake_package_version(prefix, workdir):  # R: R1
    """find_package(hale 0.1) finds it; a request for another ABI (1.0) does not."""
    for want, ok in (("0.1", True), ("1.0", False)):
        d = os.path.join(workdir, "cmake-ver-" + want)
        os.makedirs(d)
        with open(os.path.join(d, "CMakeLists.txt"), "w") as f:
            f.write("cmake_minimum_required(VERSION 3.20)\nproject(v C)\n"
                    "find_package(hale %s REQUIRED)\nget_target_property(l hale::hale LOCATION)\n"
                    "message(STATUS \"hale lib: ${l}\")\n" % want)
        p = subprocess.run(["cmake", "-S", d, "-B", os.path.join(d, "b"),
                            "-DCMAKE_PREFIX_PATH=" + prefix], capture_output=True, text=True)
        assert (p.returncode == 0) == ok, p.stdout + p.stderr
        if ok:
            assert "hale lib: %s/lib/libhale.so.0.1.0" % prefix in p.stdout
