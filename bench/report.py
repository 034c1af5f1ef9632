#!/usr/bin/python3
"""Turns the raw records of bench/run.sh into the printed table, the JSON
results (bench/results/<timestamp>.json and latest.json) and one PNG chart
(bench/results/latest.png). Debian python3: stdlib + matplotlib.

  report.py --raw RAW.jsonl --out-dir bench/results [--meta k=v ...]
  report.py --from-json bench/results/latest.json      (reprint a result,
                                                        goals re-evaluated)

Raw record kinds (one JSON object per line):
  load    server, mode, workers, scenario, conns, duration_s, cpu_ticks,
          peak_rss_kb, wrk{requests, duration_us, p50_us, p99_us, err_*...}
  static  server, startup{median_ms, ms[]...}, idle{idle_rss_kb, conns_rss_kb...}
  size    server, path, bytes, stripped
  image   ref, id, bytes
"""

import argparse
import datetime
import json
import os
import platform
import shutil
import subprocess
import sys

SCENARIOS = ["liveness", "get", "put"]
SCENARIO_TITLE = {
    "liveness": "GET /health/liveness",
    "get": "GET /v1/kv/{key} (1 KiB)",
    "put": "PUT /v1/kv/{key} (1 KiB, durable)",
}
BASE_ORDER = ["hale", "hale-accesslog", "axum", "axum-lean", "nginx"]
# The axum peers: the usual way (axum) and the leanest handlers (axum-lean).
# Goals against "axum" are judged against the strongest of them in each cell.
AXUM_PEERS = ["axum", "axum-lean"]
PEERS = AXUM_PEERS + ["nginx"]

# Goals (issue 9 point 3, tightened by issue 14's proof).
GOAL_IDLE_RSS_MIB = 4
GOAL_CONNS_RSS_MIB = 12
GOAL_START_MS = 20
# Rows during which other processes (or the hypervisor's steal) took more
# than this many cores are marked as noisy.
NOISY_CORES = 0.15


def server_order(names):
    extras = sorted(n for n in names if n not in BASE_ORDER)
    # Extras are hale configurations: after hale-accesslog, before the peers.
    return [n for n in BASE_ORDER[:2] if n in names] + extras + \
        [n for n in BASE_ORDER[2:] if n in names]


def is_hale(name):
    return name.startswith("hale")


def derive(rec, clk_tck):
    w = rec.get("wrk")
    out = {k: rec[k] for k in ("server", "mode", "workers", "scenario", "conns",
                               "duration_s", "cpu_ticks", "peak_rss_kb", "server_procs",
                               "log_bytes")
           if k in rec}
    if not w:
        out["failed"] = True
        return out
    secs = w["duration_us"] / 1e6
    reqs = w["requests"]
    errors = sum(v for k, v in w.items() if k.startswith("err_"))
    out.update({
        "failed": False,
        "requests": reqs,
        "rps": reqs / secs if secs > 0 else 0.0,
        "p50_us": w["p50_us"], "p90_us": w["p90_us"], "p99_us": w["p99_us"],
        "p999_us": w["p999_us"], "lat_mean_us": w["lat_mean_us"], "lat_max_us": w["lat_max_us"],
        "errors": errors,
        "errors_detail": {k[4:]: v for k, v in w.items() if k.startswith("err_") and v},
        "cpu_us_per_req": (rec["cpu_ticks"] / clk_tck * 1e6 / reqs) if reqs else None,
        "cpu_util": (rec["cpu_ticks"] / clk_tck / secs) if secs > 0 else None,
        # What the server wrote to its stdout/stderr during the run (the
        # access log, when on).
        "log_bytes_per_req": (rec.get("log_bytes", 0) / reqs) if reqs else None,
    })
    # Background load: machine-wide busy CPU minus the server and wrk. On a
    # quiet machine it is a few hundredths of a core; more means another
    # process competed for the CPUs and the row is noisy.
    if "sys_busy_ticks" in rec and secs > 0:
        other = (rec["sys_busy_ticks"] - rec["cpu_ticks"] - rec.get("wrk_ticks", 0)
                 - rec.get("ksoftirqd_ticks", 0))
        out["other_load_cores"] = max(other, 0) / clk_tck / secs
        out["wrk_cpu_cores"] = rec.get("wrk_ticks", 0) / clk_tck / secs
        out["steal_cores"] = rec.get("sys_steal_ticks", 0) / clk_tck / secs
        out["noisy"] = out["other_load_cores"] + out["steal_cores"] > NOISY_CORES
    # wrk counts non-2xx/3xx answers as status errors; more than 1% makes the
    # row unusable.
    # A server that used under 5% of a core while wrk held every connection
    # busy was not working: stalled (stuck requests show as timeouts too).
    out["stalled"] = out["cpu_util"] is not None and out["cpu_util"] < 0.05
    out["valid"] = reqs > 0 and errors <= 0.01 * reqs and not out["stalled"]
    return out


def ratio(a, b):
    if a is None or b in (None, 0):
        return None
    return a / b


def build(raw_path, meta_args):
    meta = {}
    for kv in meta_args or []:
        k, _, v = kv.partition("=")
        meta[k] = v
    clk_tck = int(meta.get("clk_tck") or os.sysconf("SC_CLK_TCK"))
    loads, static, sizes, images = [], {}, {}, []
    with open(raw_path) as f:
        for line in f:
            line = line.strip()
            if not line:
                continue
            rec = json.loads(line)
            kind = rec.pop("kind")
            if kind == "load":
                loads.append(derive(rec, clk_tck))
            elif kind == "static":
                static[rec["server"]] = {"startup": rec.get("startup"), "idle": rec.get("idle")}
            elif kind == "size":
                sizes[rec["server"]] = {"path": rec["path"], "bytes": rec["bytes"],
                                        "stripped": rec["stripped"]}
            elif kind == "image":
                images.append(rec)

    # Ratios on every hale row against axum and nginx in the same cell.
    cell = {(r["scenario"], r["mode"], r["conns"], r["server"]): r for r in loads}
    for r in loads:
        if not is_hale(r["server"]) or r.get("failed"):
            continue
        for peer in PEERS:
            p = cell.get((r["scenario"], r["mode"], r["conns"], peer))
            if not p or p.get("failed"):
                continue
            r[f"vs_{peer}"] = {
                "rps": ratio(r["rps"], p["rps"]),
                "p50": ratio(r["p50_us"], p["p50_us"]),
                "p99": ratio(r["p99_us"], p["p99_us"]),
                "cpu": ratio(r["cpu_us_per_req"], p["cpu_us_per_req"]),
                "peak_rss": ratio(r["peak_rss_kb"], p["peak_rss_kb"]),
            }

    meta.update(host_meta(meta.get("root")))
    now = datetime.datetime.now(datetime.timezone.utc)
    meta["timestamp"] = now.strftime("%Y-%m-%dT%H:%M:%SZ")
    result = {"schema": 1, "meta": meta, "load": loads, "static": static,
              "sizes": sizes, "images": images}
    result["goals"] = goals(result)
    return result


def cmd_out(args):
    try:
        p = subprocess.run(args, capture_output=True, text=True, timeout=10)
        return (p.stdout + p.stderr).strip().splitlines()[0]
    except (OSError, subprocess.SubprocessError, IndexError):
        return None


def host_meta(root):
    m = {"kernel": platform.release(), "python": platform.python_version()}
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    m["cpu"] = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    m["wrk"] = cmd_out(["wrk", "-v"])
    m["nginx"] = cmd_out(["nginx", "-v"])
    m["rustc"] = cmd_out(["rustc", "-V"]) if shutil.which("rustc") else None
    try:
        import sqlite3
        m["sqlite"] = sqlite3.sqlite_version
    except ImportError:
        pass
    if root:
        m["git"] = cmd_out(["git", "-C", root, "describe", "--always", "--dirty"])
    return m


def goals(res):
    """The goals, evaluated per mode and connection count. Against "axum" a
    goal is judged against the strongest axum peer of each cell (highest
    req/s, or lowest CPU/request), whichever peer that is."""
    out = []
    by = {(r["scenario"], r["mode"], r["conns"], r["server"]): r
          for r in res["load"] if not r.get("failed")}
    cells = sorted({(r["mode"], r["conns"]) for r in res["load"]},
                   key=lambda mc: (mc[0] != "pinned", mc[1]))

    def strongest(scen, mode, conns, key, best):
        rows = [by.get((scen, mode, conns, p)) for p in AXUM_PEERS]
        rows = [r for r in rows if r and r.get("valid", True) and r.get(key) is not None]
        return best(rows, key=lambda r: r[key]) if rows else None

    def each(name, target, scen, fn, peer=None, key=None, best=None, base="hale"):
        vals = []
        for mode, conns in cells:
            h = by.get((scen, mode, conns, base))
            p = by.get((scen, mode, conns, peer)) if peer else \
                strongest(scen, mode, conns, key, best)
            if h and p:
                v = fn(h, p)
                if v is not None:
                    vals.append({"mode": mode, "conns": conns, "value": v, "peer": p["server"]})
        if vals:
            out.append({"goal": name, "target": target, "cells": vals})

    def cpu(h, p):
        return ratio(h["cpu_us_per_req"], p["cpu_us_per_req"])

    each("liveness CPU/req hale/nginx", "<= 0.9", "liveness", cpu, peer="nginx")
    each("liveness CPU/req hale/axum (strongest: lowest CPU/req)", "< 1.0", "liveness", cpu,
         key="cpu_us_per_req", best=min)
    each("access log on/off CPU/req, liveness (hale-accesslog/hale)", "<= 1.15", "liveness",
         lambda h, p: ratio(p["cpu_us_per_req"], h["cpu_us_per_req"]), peer="hale-accesslog")
    each("access log on/off CPU/req, KV GET (hale-accesslog/hale)", "<= 1.15", "get",
         lambda h, p: ratio(p["cpu_us_per_req"], h["cpu_us_per_req"]), peer="hale-accesslog")
    each("KV GET req/s hale/axum (strongest: highest req/s)", ">= 1.5", "get",
         lambda h, p: ratio(h["rps"], p["rps"]), key="rps", best=max)
    each("KV GET p99 hale/axum (the same strongest peer)", "<= 0.7", "get",
         lambda h, p: ratio(h["p99_us"], p["p99_us"]), key="rps", best=max)
    each("durable PUT req/s hale/axum (strongest: highest req/s)", ">= 10", "put",
         lambda h, p: ratio(h["rps"], p["rps"]), key="rps", best=max)
    st = res["static"].get("hale") or {}
    idle = st.get("idle") or {}
    start = st.get("startup") or {}
    ng = (res["static"].get("nginx") or {}).get("idle") or {}
    if idle.get("idle_rss_kb"):
        out.append({"goal": "idle RSS (MiB)", "target": f"<= {GOAL_IDLE_RSS_MIB}",
                    "cells": [{"value": idle["idle_rss_kb"] / 1024}]})
    if idle.get("conns_rss_kb"):
        g = {"goal": "RSS with 1,000 keep-alive connections (MiB)",
             "target": f"<= {GOAL_CONNS_RSS_MIB}",
             "cells": [{"value": idle["conns_rss_kb"] / 1024}]}
        if ng.get("conns_rss_kb"):
            g["note"] = (f"nginx: RSS {ng['conns_rss_kb'] / 1024:.1f} MiB, "
                         f"PSS {ng.get('conns_pss_kb', 0) / 1024:.1f} MiB")
        out.append(g)
    if start.get("median_ms") is not None:
        out.append({"goal": "start-to-ready median (ms)", "target": f"<= {GOAL_START_MS}",
                    "cells": [{"value": start["median_ms"]}]})
    cmp = {"<=": lambda v, t: v <= t, ">=": lambda v, t: v >= t,
           "<": lambda v, t: v < t, ">": lambda v, t: v > t}
    for g in out:
        op, lim = g["target"].split()
        for c in g["cells"]:
            c["met"] = cmp[op](c["value"], float(lim))
        g["met"] = all(c["met"] for c in g["cells"])
    return out


# ------------------------------------------------------------- printing ----

def fmt_lat(us):
    if us is None:
        return "-"
    if us < 1000:
        return f"{us:.0f}us"
    if us < 100000:
        return f"{us / 1000:.2f}ms"
    return f"{us / 1000:.0f}ms"


def fmt_rps(v):
    if v is None:
        return "-"
    return f"{v:,.0f}"


def fmt_cpu(v):
    return "-" if v is None else f"{v:.1f}us"


def fmt_x(v):
    return "-" if v is None else f"{v:.2f}x"


def fmt_mib(kb):
    return "-" if not kb else f"{kb / 1024:.1f} MiB"


def print_report(res, out=sys.stdout):
    meta = res["meta"]
    w = out.write
    w("\n")
    w(f"hale benchmark  {meta.get('timestamp', '')}  git {meta.get('git') or '?'}  "
      f"{meta.get('nproc', '?')} CPUs ({meta.get('cpu', '?')})\n")
    w(f"wrk on loopback, {meta.get('duration_s', '?')} s per run"
      f"{' (quick)' if meta.get('quick') == '1' else ''}; pinned = server on CPU 0 with 1 worker, "
      f"wrk -t1 on CPU 1; unpinned = {meta.get('nproc', '?')} workers, wrk -t{meta.get('nproc', '?')}, "
      "no pinning\n")
    if meta.get("hale_bin"):
        w(f"hale binary: {meta['hale_bin']}"
          + (f" ({meta['hale_version']})" if meta.get("hale_version") else "")
          + (f", sha256 {meta['hale_sha256']}" if meta.get("hale_sha256") else "")
          + (f"; links {meta['hale_needed']}" if meta.get("hale_needed") else "") + "\n")
    w("CPU/req = server utime+stime over the run / requests; peak RSS = VmHWM during the run "
      "(summed over nginx's processes)\n")

    loads = res["load"]
    noisy = [r for r in loads if r.get("noisy")]
    if noisy:
        worst = max(r["other_load_cores"] + r["steal_cores"] for r in noisy)
        w(f"!! {len(noisy)} of {len(loads)} runs had other load on the machine (rows marked ~, "
          f"up to {worst:.2f} cores): their req/s and latencies are not trustworthy; "
          "CPU/req holds up better. Rerun on a quiet machine.\n")
    servers = server_order({r["server"] for r in loads})
    modes = [m for m in ("pinned", "unpinned") if any(r["mode"] == m for r in loads)]
    conns_all = sorted({r["conns"] for r in loads})
    by = {(r["scenario"], r["mode"], r["conns"], r["server"]): r for r in loads}
    name_w = max([len(s) for s in servers] + [6])

    # One "vs <peer>" block per axum peer in the results, then nginx.
    axums = [p for p in AXUM_PEERS if p in servers]
    hdr = (f"  {'server':<{name_w}} {'req/s':>10} {'p50':>8} {'p99':>8} {'CPU/req':>9} "
           f"{'peak RSS':>9} | "
           + "".join(f"{'vs ' + p + ': req/s':>{len(p) + 11}} {'p99':>6} {'CPU':>6} | "
                     for p in axums)
           + f"{'vs nginx: req/s':>15} {'CPU':>6}\n")
    for scen in SCENARIOS:
        if not any(r["scenario"] == scen for r in loads):
            continue
        w(f"\n== {SCENARIO_TITLE[scen]} ==\n")
        for mode in modes:
            for conns in conns_all:
                rows = [by.get((scen, mode, conns, s)) for s in servers]
                rows = [r for r in rows if r]
                if not rows:
                    continue
                w(f" {mode}, {conns} connections\n")
                w(hdr)
                for r in rows:
                    if r.get("failed"):
                        w(f"  {r['server']:<{name_w}} {'(wrk failed)':>10}\n")
                        continue
                    vn = r.get("vs_nginx") or {}
                    flag = ""
                    if r["errors"]:
                        flag += f"  !! {r['errors']} errors {r['errors_detail']}"
                    if r.get("stalled"):
                        flag += f"  !! server stalled (used {r['cpu_util']:.2f} cores)"
                    if r.get("noisy"):
                        flag += f"  ~ other load {r['other_load_cores'] + r['steal_cores']:.2f} cores"
                    w(f"  {r['server']:<{name_w}} {fmt_rps(r['rps']):>10} {fmt_lat(r['p50_us']):>8} "
                      f"{fmt_lat(r['p99_us']):>8} {fmt_cpu(r['cpu_us_per_req']):>9} "
                      f"{fmt_mib(r['peak_rss_kb']):>9} | "
                      + "".join(
                          f"{fmt_x((r.get('vs_' + p) or {}).get('rps')):>{len(p) + 11}} "
                          f"{fmt_x((r.get('vs_' + p) or {}).get('p99')):>6} "
                          f"{fmt_x((r.get('vs_' + p) or {}).get('cpu')):>6} | " for p in axums)
                      + f"{fmt_x(vn.get('rps')):>15} {fmt_x(vn.get('cpu')):>6}{flag}\n")

    logged = [r for r in loads if not r.get("failed") and "accesslog" in r["server"]]
    if logged:
        per = sorted(r["log_bytes_per_req"] or 0 for r in logged)
        w(f"\n  access log (hale-accesslog rows): {per[len(per) // 2]:.0f} bytes written per request"
          f" (median){'  !! nothing logged: the access log was not on' if per[-1] < 1 else ''}\n")

    st, sizes = res["static"], res["sizes"]
    if st or sizes or res["images"]:
        w("\n== footprint (default workers) ==\n")
        w(f"  {'server':<{name_w}} {'start-to-ready':>15} {'idle RSS':>9} "
          f"{'RSS @1k conns':>14} {'conns ok':>9} {'binary':>10}\n")
        for s in server_order(set(st) | set(sizes)):
            su = (st.get(s) or {}).get("startup") or {}
            idle = (st.get(s) or {}).get("idle") or {}
            start = (f"{su['median_ms']:.1f} ms" if su.get("median_ms") is not None else "-")
            okc = (f"{idle.get('conns_ok', 0)}/{idle.get('conns', 0)}" if idle else "-")
            size = sizes.get(s)
            size_s = f"{size['bytes'] / 1024:,.0f} KiB" if size else "-"
            if s == "nginx" and size:
                size_s += "*"
            w(f"  {s:<{name_w}} {start:>15} {fmt_mib(idle.get('idle_rss_kb')):>9} "
              f"{fmt_mib(idle.get('conns_rss_kb')):>14} {okc:>9} {size_s:>10}\n")
        if "nginx" in sizes or "nginx" in st:
            ni = (st.get("nginx") or {}).get("idle") or {}
            pss = ""
            if ni.get("idle_pss_kb"):
                pss = (f" (PSS, shared pages split: idle {fmt_mib(ni['idle_pss_kb'])},"
                       f" 1k conns {fmt_mib(ni.get('conns_pss_kb'))})")
            w("  * nginx: the Debian binary, dynamically linked (modules and libraries not counted);"
              f" RSS summed over master and {ni.get('pids', 1) - 1 if ni else 'its'} workers{pss}\n")
        for im in res["images"]:
            w(f"  image {im['ref']}: {im['bytes'] / 1e6:.1f} MB\n")
        if not res["images"]:
            w("  images: none found (no hale image in `docker image ls`)\n")

    # hale against each axum peer separately (the goals take the strongest).
    if axums:
        w("\n== hale / each axum peer ==\n")
        for scen, key, label in (("liveness", "cpu", "liveness CPU/req"),
                                 ("get", "rps", "KV GET req/s"), ("get", "p99", "KV GET p99"),
                                 ("put", "rps", "durable PUT req/s")):
            for p in axums:
                vals = []
                for mode in modes:
                    for conns in conns_all:
                        h = by.get((scen, mode, conns, "hale"))
                        v = ((h or {}).get("vs_" + p) or {}).get(key)
                        if v is not None:
                            vals.append(f"{mode}/{conns}: {v:.2f}x")
                if vals:
                    w(f"  {label:<18} vs {p:<10} {'  '.join(vals)}\n")

    if res["goals"]:
        w("\n== goals (issues 9, 14) ==\n")
        for g in res["goals"]:
            cells = "  ".join(
                (f"{c['mode']}/{c['conns']}" if "mode" in c else "") +
                (f" ({c['peer']})" if c.get("peer") in AXUM_PEERS else "") +
                (": " if "mode" in c else "") +
                f"{c['value']:.2f}{'' if c['met'] else ' (miss)'}" for c in g["cells"])
            note = f"  [{g['note']}]" if g.get("note") else ""
            w(f"  [{'met' if g['met'] else 'NOT met'}] {g['goal']} {g['target']}: {cells}{note}\n")
    w("\n")


# --------------------------------------------------------------- chart -----

def chart(res, path):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    loads = [r for r in res["load"] if not r.get("failed")]
    if not loads:
        return False
    servers = server_order({r["server"] for r in loads})
    groups = []
    for scen in SCENARIOS:
        for mode in ("pinned", "unpinned"):
            for conns in sorted({r["conns"] for r in loads}):
                if any(r["scenario"] == scen and r["mode"] == mode and r["conns"] == conns
                       for r in loads):
                    groups.append((scen, mode, conns))
    by = {(r["scenario"], r["mode"], r["conns"], r["server"]): r for r in loads}
    colors = {"hale": "#1f77b4", "hale-accesslog": "#9ecae1", "axum": "#d62728",
              "axum-lean": "#ff9896", "nginx": "#2ca02c"}
    palette = ["#ff7f0e", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f"]
    for i, s in enumerate(x for x in servers if x not in colors):
        colors[s] = palette[i % len(palette)]

    fig, axes = plt.subplots(2, 1, figsize=(max(10, 1.1 * len(groups) + 3), 8.5), sharex=True)
    width = 0.8 / max(len(servers), 1)
    any_noisy = [False]
    xs = range(len(groups))
    for ax, key, label in ((axes[0], "rps", "requests/s (log)"),
                           (axes[1], "cpu_us_per_req", "server CPU µs/request (log)")):
        for i, s in enumerate(servers):
            rows = [by.get((g[0], g[1], g[2], s)) or {} for g in groups]
            pos = [x - 0.4 + width * (i + 0.5) for x in xs]
            keep = [(p, r) for p, r in zip(pos, rows) if r.get(key)]
            bars = ax.bar([p for p, _ in keep], [r[key] for _, r in keep], width,
                          label=s, color=colors[s])
            for bar, (_, r) in zip(bars, keep):
                if r.get("noisy"):
                    bar.set_hatch("//")
                    any_noisy[0] = True
        ax.set_yscale("log")
        ax.set_ylabel(label)
        ax.grid(axis="y", which="both", alpha=0.3)
    from matplotlib.patches import Patch
    axes[0].legend(handles=[Patch(color=colors[s], label=s) for s in servers],
                   ncol=len(servers), loc="upper right", fontsize=8)
    axes[1].set_xticks(list(xs))
    axes[1].set_xticklabels([f"{g[0]}\n{g[1]}\nc={g[2]}" for g in groups], fontsize=8)
    meta = res["meta"]
    fig.suptitle(f"hale vs axum, axum-lean, nginx — {meta.get('timestamp', '')}, "
                 f"git {meta.get('git') or '?'}, {meta.get('duration_s', '?')} s/run")
    if any_noisy[0]:
        fig.text(0.01, 0.005, "hatched: other load on the machine during the run (noisy)",
                 fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return True


def main():
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--raw")
    ap.add_argument("--from-json")
    ap.add_argument("--out-dir")
    ap.add_argument("--meta", action="append")
    a = ap.parse_args()
    if a.from_json:
        with open(a.from_json) as f:
            res = json.load(f)
        # The goals as this version of the report defines them.
        res["goals"] = goals(res)
        print_report(res)
        return 0
    if not a.raw or not a.out_dir:
        ap.error("--raw and --out-dir are required")
    res = build(a.raw, a.meta)
    print_report(res)
    os.makedirs(a.out_dir, exist_ok=True)
    stamp = res["meta"]["timestamp"].replace(":", "").replace("-", "")
    path = os.path.join(a.out_dir, f"{stamp}.json")
    for p in (path, os.path.join(a.out_dir, "latest.json")):
        with open(p, "w") as f:
            json.dump(res, f, indent=1, sort_keys=False)
            f.write("\n")
    png = os.path.join(a.out_dir, "latest.png")
    drew = chart(res, png)
    print(f"results: {path}, {os.path.join(a.out_dir, 'latest.json')}"
          + (f", chart {png}" if drew else ""))
    return 0


if __name__ == "__main__":
    sys.exit(main())
