"""The source layout keeps the architecture visible and its boundaries
checked (docs/layout.md). R: R1 R2

- src/runtime/ never includes a header of src/app/ (the runtime is libhale:
  it knows nothing of key-value);
- every subsystem folder is on the build's include path (CMakeLists.txt
  HALE_RUNTIME_DIRS / HALE_APP_DIRS) and described in docs/layout.md;
- headers are included by name, so no two headers share one;
- a folder's internal headers (*_int.h, *_internal.h) are included only
  inside that folder;
- the folders depend on each other only in the order docs/layout.md gives;
- every header opens with a comment, and no file is over 500 lines.
"""
import os
import re

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
SRC = os.path.join(ROOT, "src")
INCLUDE = re.compile(r'^\s*#\s*include\s+"([^"]+)"', re.M)

# What each folder may include besides itself (docs/layout.md, "Dependency
# order"). "runtime/*" is every runtime folder; the app folders see the
# whole runtime.
ALLOWED = {
    "runtime/common": set(),
    "runtime/config": {"runtime/common"},
    "runtime/observe": {"runtime/common", "runtime/http"},
    "runtime/http": {"runtime/common", "runtime/observe"},
    "runtime/health": {"runtime/common", "runtime/observe", "runtime/http"},
    "runtime/service": {"runtime/*"},
    "app/store": {"runtime/*"},
    "app/cache": {"runtime/*", "app/store"},
    "app/api": {"runtime/*", "app/store"},
    "app": {"runtime/*", "app/store", "app/cache", "app/api"},
}


def sources():
    out = []
    for d, _, files in os.walk(SRC):
        for f in files:
            if f.endswith((".c", ".h")):
                out.append(os.path.join(d, f))
    return sorted(out)


def folder(path):
    return os.path.relpath(os.path.dirname(path), SRC)


def headers():
    by_name = {}
    for p in sources():
        if p.endswith(".h"):
            by_name.setdefault(os.path.basename(p), []).append(p)
    return by_name


def includes(path):
    with open(path, encoding="utf-8") as f:
        return INCLUDE.findall(f.read())


def test_header_names_are_unique():
    dup = {n: [os.path.relpath(p, ROOT) for p in ps] for n, ps in headers().items() if len(ps) > 1}
    assert not dup, f"two headers share a name (includes are by name): {dup}"


def test_every_include_resolves_inside_src_or_is_a_library():
    by_name = headers()
    missing = []
    for p in sources():
        for h in includes(p):
            if "/" in h:
                missing.append(f"{os.path.relpath(p, ROOT)}: \"{h}\" (include by name, no path)")
            elif h not in by_name:
                missing.append(f"{os.path.relpath(p, ROOT)}: \"{h}\"")
    assert not missing, "quoted includes must name a header of src/:\n" + "\n".join(missing)


def edges():
    """(including file, header name, header file) for every quoted include
    that names a header of src/."""
    by_name = headers()
    for p in sources():
        for h in includes(p):
            for target in by_name.get(h, []):
                yield p, h, target


def rel(p):
    return os.path.relpath(p, ROOT)


def test_runtime_never_includes_the_app():
    bad = [f"{rel(p)} includes {rel(t)}" for p, _, t in edges()
           if folder(p).startswith("runtime") and folder(t).startswith("app")]
    assert not bad, "\n".join(bad)


def test_internal_headers_stay_in_their_folder():
    bad = [f"{rel(p)} includes {rel(t)}" for p, h, t in edges()
           if re.search(r"_int(ernal)?\.h$", h) and folder(t) != folder(p)]
    assert not bad, "an internal header is for its own folder only:\n" + "\n".join(bad)


def allowed(mine, theirs):
    assert mine in ALLOWED, f"{mine}: a folder test_layout.py (and docs/layout.md) does not know"
    ok = ALLOWED[mine]
    return theirs == mine or theirs in ok or ("runtime/*" in ok and theirs.startswith("runtime/"))


def test_folders_depend_in_the_documented_order():
    bad = [f"{rel(p)} ({folder(p)}) includes {h} ({folder(t)})" for p, h, t in edges()
           if not allowed(folder(p), folder(t))]
    assert not bad, "\n".join(bad)


def cmake_dirs(var):
    with open(os.path.join(ROOT, "CMakeLists.txt"), encoding="utf-8") as f:
        m = re.search(r"set\(" + var + r" ([^)]*)\)", f.read())
    assert m, f"CMakeLists.txt sets no {var}"
    return set(m.group(1).split())


@pytest.mark.parametrize("top,var", [("runtime", "HALE_RUNTIME_DIRS"), ("app", "HALE_APP_DIRS")])
def test_every_folder_is_built_and_documented(top, var):
    base = os.path.join(SRC, top)
    on_disk = {d for d in os.listdir(base) if os.path.isdir(os.path.join(base, d))}
    listed = cmake_dirs(var)
    assert on_disk == listed, f"src/{top}: folders {sorted(on_disk)} but {var} lists {sorted(listed)}"
    with open(os.path.join(ROOT, "docs/layout.md"), encoding="utf-8") as f:
        doc = f.read()
    for d in sorted(on_disk):
        assert f"`src/{top}/{d}/`" in doc, f"docs/layout.md does not describe src/{top}/{d}/"


def test_headers_open_with_their_promise_and_files_stay_small():
    bad = []
    for p in sources():
        with open(p, encoding="utf-8") as f:
            text = f.read()
        rel = os.path.relpath(p, ROOT)
        if p.endswith(".h") and not text.lstrip().startswith("/*"):
            bad.append(f"{rel}: a header opens with a comment on what it promises")
        n = text.count("\n")
        if n > 500:
            bad.append(f"{rel}: {n} lines (at most 500)")
    assert not bad, "\n".join(bad)


def public_headers():
    with open(os.path.join(ROOT, "cmake/library.cmake"), encoding="utf-8") as f:
        m = re.search(r"set\(HALE_PUBLIC_HEADERS([^)]*)\)", f.read())
    assert m, "cmake/library.cmake sets no HALE_PUBLIC_HEADERS"
    return m.group(1).split()


def test_every_public_function_has_a_caller():
    """A function of libhale's API that nothing calls (not hale, not the
    example service, not a test) is dead API: remove it or use it."""
    declared = set()
    for h in public_headers():
        with open(os.path.join(ROOT, h), encoding="utf-8") as f:
            text = re.sub(r"/\*.*?\*/", "", f.read(), flags=re.S)
        declared |= set(re.findall(r"\b(hale_[a-z0-9_]+)\s*\(", text))
    corpus = []
    for top in ("src", "examples", "tests/unit", "fuzz"):
        for d, _, files in os.walk(os.path.join(ROOT, top)):
            for f in files:
                if f.endswith((".c", ".h")):
                    with open(os.path.join(d, f), encoding="utf-8") as fh:
                        corpus.append(fh.read())
    text = "\n".join(corpus)
    unused = []
    for name in sorted(declared):
        uses = 0
        for m in re.finditer(r"\b" + name + r"\b", text):
            line_start = text.rfind("\n", 0, m.start()) + 1
            line = text[line_start:text.find("\n", m.start())]
            # a declaration or definition starts at column 0 with its type
            if re.match(r"^(static inline |_Noreturn )?[a-z_][a-z0-9_ ]*[ *]" + name + r"\(", line):
                continue
            uses += 1
        if uses == 0:
            unused.append(name)
    assert not unused, f"public functions nothing calls: {unused}"
