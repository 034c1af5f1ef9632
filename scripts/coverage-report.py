#!/usr/bin/python3
"""Line and branch coverage of src/ per module, from gcovr's JSON summary
(scripts/coverage.sh calls it).

Usage: scripts/coverage-report.py SUMMARY.json [--floor FILE] [--totals-only]

A module is one source file of src/ (src/runtime/service/auth.c -> runtime/service/auth.c);
code in a header (static inline functions) is its own row. Prints the table
(module, lines covered/total and %, branches covered/total and %), one total
row per directory (runtime, app) and the grand total.

--floor FILE: each line "MODULE LINE% BRANCH%" ('#' starts a comment) is a
committed minimum; the exit status is 1 when a module falls below its floor
or a module with a floor is gone from the report (renamed: move its floor
too). A module without a floor is listed as such and does not fail.
--totals-only: print only the total rows and the verdicts (make test).
"""
import json
import sys


def pct(cov, total):
    return 100.0 * cov / total if total else 100.0


def module_of(filename):
    name = filename.replace("\\", "/")
    if name.startswith("src/"):
        name = name[len("src/"):]
    return name


def read_floors(path):
    floors = {}
    with open(path) as fh:
        for n, raw in enumerate(fh, 1):
            line = raw.split("#", 1)[0].strip()
            if not line:
                continue
            parts = line.split()
            if len(parts) != 3:
                raise SystemExit("%s:%d: want 'MODULE LINE%% BRANCH%%', got %r" % (path, n, raw.strip()))
            try:
                floors[parts[0]] = (float(parts[1]), float(parts[2]))
            except ValueError:
                raise SystemExit("%s:%d: floors are numbers, got %r" % (path, n, raw.strip()))
    return floors


def row(name, lc, lt, bc, bt):
    return "%-28s %6.1f%% %5d/%-5d %6.1f%% %5d/%-5d" % (name, pct(lc, lt), lc, lt, pct(bc, bt), bc, bt)


def main(argv):
    args = list(argv[1:])
    floor_path = None
    totals_only = False
    if "--totals-only" in args:
        args.remove("--totals-only")
        totals_only = True
    if "--floor" in args:
        i = args.index("--floor")
        if i + 1 >= len(args):
            raise SystemExit("--floor needs a file")
        floor_path = args[i + 1]
        del args[i:i + 2]
    if len(args) != 1:
        raise SystemExit(__doc__)
    with open(args[0]) as fh:
        data = json.load(fh)

    mods = {}
    for f in data.get("files", []):
        m = module_of(f["filename"])
        mods[m] = (f["line_covered"], f["line_total"], f["branch_covered"], f["branch_total"])
    if not mods:
        print("coverage: no source file of src/ in the report (no .gcda counters written?)")
        return 1

    header = "%-28s %7s %11s %7s %11s" % ("module", "lines", "", "branches", "")
    dirs = {}
    lines = []
    for m in sorted(mods):
        lc, lt, bc, bt = mods[m]
        lines.append(row(m, lc, lt, bc, bt))
        d = m.split("/", 1)[0] if "/" in m else "."
        acc = dirs.setdefault(d, [0, 0, 0, 0])
        for i, v in enumerate((lc, lt, bc, bt)):
            acc[i] += v
    total = [sum(v[i] for v in mods.values()) for i in range(4)]
    print(header)
    if not totals_only:
        for text in lines:
            print(text)
        print("-" * len(header))
    for d in sorted(dirs):
        print(row(d + " (total)", *dirs[d]))
    print(row("total", *total))

    rc = 0
    if floor_path:
        floors = read_floors(floor_path)
        below = []
        for m, (fl, fb) in sorted(floors.items()):
            if m not in mods:
                below.append("%s: has a floor but is not in the report" % m)
                continue
            lc, lt, bc, bt = mods[m]
            if pct(lc, lt) + 1e-9 < fl:
                below.append("%s: lines %.1f%% < floor %.1f%%" % (m, pct(lc, lt), fl))
            if pct(bc, bt) + 1e-9 < fb:
                below.append("%s: branches %.1f%% < floor %.1f%%" % (m, pct(bc, bt), fb))
        unfloored = sorted(set(mods) - set(floors))
        for m in unfloored:
            print("coverage: %s has no floor in %s" % (m, floor_path))
        for text in below:
            print("coverage: BELOW FLOOR %s" % text)
        if below:
            rc = 1
        print("coverage: %d modules, %d below their floor" % (len(mods), len(below)))
    return rc


if __name__ == "__main__":
    sys.exit(main(sys.argv))
