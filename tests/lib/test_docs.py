"""Every public function of the installed headers is documented (R: R2):
Debian's doxygen over $PREFIX/include/hale with docs/Doxyfile (warnings are
errors) passes, its XML has a description for every function, type and
macro, and the same run fails on a copy with one undocumented function."""
import glob
import os
import shutil
import subprocess
import xml.etree.ElementTree as ET

from conftest import ROOT

DOXYFILE = os.path.join(ROOT, "docs", "Doxyfile")


def doxygen(inp, out):
    os.makedirs(out, exist_ok=True)
    env = dict(os.environ, HALE_DOX_INPUT=inp, HALE_DOX_OUT=out)
    return subprocess.run(["doxygen", DOXYFILE], env=env, capture_output=True, text=True, timeout=300)


def described(member):
    text = "".join("".join(member.find(t).itertext()) if member.find(t) is not None else ""
                   for t in ("briefdescription", "detaileddescription", "inbodydescription"))
    return text.strip() != ""


def test_doxygen_passes_on_installed_headers(prefix, workdir):  # R: R2
    out = os.path.join(workdir, "dox")
    p = doxygen(os.path.join(prefix, "include", "hale"), out)
    assert p.returncode == 0 and "warning" not in p.stderr.lower(), p.stdout + p.stderr
    funcs, bare = [], []
    for f in glob.glob(os.path.join(out, "xml", "*_8h.xml")):
        for m in ET.parse(f).getroot().iter("memberdef"):
            name = m.findtext("name")
            if m.get("kind") == "function":
                funcs.append(name)
            if m.get("kind") in ("function", "typedef", "define", "enum", "variable") and not described(m):
                bare.append(name)
    assert not bare, "undocumented: %s" % bare
    # the run really covered the API
    for f in ("hale_service_main", "hale_req_suspend", "hale_req_resume", "hale_cfg_int",
              "hale_health_add_check", "hale_metrics_counter", "hale_router_add", "hale_buf_puts"):
        assert f in funcs, f
    assert len(funcs) > 100


def test_doxygen_fails_on_an_undocumented_function(prefix, workdir):  # R: R2
    inc = os.path.join(workdir, "dox-undocumented", "hale")
    shutil.copytree(os.path.join(prefix, "include", "hale"), inc)
    with open(os.path.join(inc, "router.h")) as f:
        text = f.read()
    text = text.replace("#pragma GCC visibility pop", "int hale_router_undocumented(int x);\n\n"
                        "#pragma GCC visibility pop")
    with open(os.path.join(inc, "router.h"), "w") as f:
        f.write(text)
    p = doxygen(inc, os.path.join(workdir, "dox-undocumented", "out"))
    assert p.returncode != 0
    assert "hale_router_undocumented" in p.stderr
