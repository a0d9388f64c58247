"""Big crossed designs: hierlm vs lme4 on MovieLens-shaped ratings, by size.

Run (from the repository root)::

    python benchmarks/bench_scale.py                          # 1e5 and 1e6 rows, ~3 min
    python benchmarks/bench_scale.py --sizes 1e5 1e6 1e7      # adds ten million rows
    python benchmarks/bench_scale.py --sizes 3.2e7 --no-lme4 --reml both
    python benchmarks/bench_scale.py --out benchmarks/scale.md

Model: ``rating ~ 1 + (1|user) + (1|item)`` on seeded synthetic data from
benchmarks/ratings_data.py (its docstring gives the distributions), ML by
default (``--reml`` for REML, ``both`` for both).  Sizes (rows: users x items):
1e5: 5,000 x 1,000; 1e6: 50,000 x 5,000; 1e7: 100,000 x 10,000;
3.2e7: 200,000 x 16,000 (the shape of MovieLens ml-32m restricted to movies
with at least 50 ratings).

Every size runs in a fresh process, so that its peak RSS (Linux VmHWM of
that process: interpreter, imports, data and fit) is its own; with
``--reml both`` the ML fit is freed before the REML fit, but the REML row's
peak is the process's, the larger of the two.  The data are made by
the generator in the hierlm child and written once as CSV for R; the time is
that of the fit call alone (``hierlm.lmer(formula, d, reml=...)``, R's
``lmer(...)``), from the DataFrame in memory to the estimates; the
compiled kernels are loaded before it (once a process, about a second).  lme4 fits are
capped at ``--lme4-cap`` seconds (30 minutes by default) and reported as
"did not finish" past it.  Also timed, so that small models are seen not to
slow down: sleepstudy ``Reaction ~ Days + (Days|Subject)`` and InstEval
``y ~ 1 + service + (1|s) + (1|d) + (1|dept:service)`` (REML, median of
``--reps`` fits in one process after a warm-up fit).

Reported per fit: seconds, deviance evaluations, seconds per evaluation,
peak RSS, logLik, and the relative difference of hierlm's logLik from lme4's.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
SHAPES = {"1e5": (1e5, 5_000, 1_000), "1e6": (1e6, 50_000, 5_000), "1e7": (1e7, 100_000, 10_000),
          "3.2e7": (3.2e7, 200_000, 16_000)}
FORMULA = "rating ~ 1 + (1|user) + (1|item)"

CHILD = r"""
import gc, json, sys, time, warnings
sys.path.insert(0, {here!r})
sys.path.insert(0, {root!r})
from ratings_data import ratings
import hierlm
import hierlm.lmm.kernels
hierlm.lmm.kernels.load()  # the compiled kernels load once a process (~1 s), not timed

def peak_mib():
    with open("/proc/self/status") as fh:
        for line in fh:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024.0

d = ratings({rows}, {users}, {items})
if {csv!r}:
    d.to_csv({csv!r}, index=False)
out = []
for reml in {remls}:
    t = time.perf_counter()
    with warnings.catch_warnings(record=True) as w:
        warnings.simplefilter("always")
        fit = hierlm.lmer({formula!r}, d, reml=reml)
    sec = time.perf_counter() - t
    out.append(dict(reml=reml, seconds=sec, feval=fit.optinfo.feval, loglik=fit.loglik, peak_mib=peak_mib(),
                    theta=list(map(float, fit.theta)), warnings=[str(x.message)[:120] for x in w],
                    engine=type(fit.devfun).__name__))
    del fit  # the next fit's peak must not include this one
    gc.collect()
print("RESULT " + json.dumps(out))
"""

R_CHILD = r"""
suppressMessages(library(lme4))
d <- read.csv("{csv}", colClasses = c("character", "character", "numeric"))
d$user <- factor(d$user); d$item <- factor(d$item)
for (reml in c({remls})) {{
  gc()
  t0 <- Sys.time()
  m <- lmer({formula}, data = d, REML = reml)
  sec <- as.numeric(difftime(Sys.time(), t0, units = "secs"))
  st <- readLines("/proc/self/status")
  hwm <- as.numeric(sub("[^0-9]*([0-9]+).*", "\\1", grep("^VmHWM:", st, value = TRUE))) / 1024
  cat(sprintf("RESULT %s %.3f %d %.10f %.1f\n", reml, sec, m@optinfo$feval, as.numeric(logLik(m)), hwm))
}}
"""

SMALL = r"""
import json, statistics, sys, time, warnings
sys.path.insert(0, {root!r})
import hierlm
from hierlm.datasets import load
cases = [("sleepstudy", "Reaction ~ Days + (Days|Subject)"),
         ("InstEval", "y ~ 1 + service + (1|s) + (1|d) + (1|dept:service)")]
out = {{}}
for name, f in cases:
    d = load(name)
    hierlm.lmer(f, d)
    ts = []
    for _ in range({reps}):
        t = time.perf_counter(); fit = hierlm.lmer(f, d); ts.append(time.perf_counter() - t)
    out[name] = dict(seconds=statistics.median(ts), feval=fit.optinfo.feval, loglik=fit.loglik)
print("RESULT " + json.dumps(out))
"""


def run(cmd: list[str], timeout: float | None = None) -> tuple[str | None, float]:
    t = time.perf_counter()
    try:
        p = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        return None, time.perf_counter() - t
    if p.returncode != 0:
        sys.stderr.write(p.stdout[-3000:] + p.stderr[-3000:])
        return "", time.perf_counter() - t
    lines = [ln for ln in p.stdout.splitlines() if ln.startswith("RESULT ")]
    return "\n".join(ln[7:] for ln in lines), time.perf_counter() - t


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--sizes", nargs="+", default=["1e5", "1e6"], choices=list(SHAPES))
    ap.add_argument("--reml", default="false", choices=["false", "true", "both"])
    ap.add_argument("--no-lme4", action="store_true")
    ap.add_argument("--lme4-cap", type=float, default=1800.0)
    ap.add_argument("--reps", type=int, default=5, help="fits of the small models")
    ap.add_argument("--out", help="also write the markdown table here")
    args = ap.parse_args()
    remls = {"false": [False], "true": [True], "both": [False, True]}[args.reml]
    have_r = shutil.which("Rscript") is not None and not args.no_lme4
    rows = []
    tmp = Path(tempfile.mkdtemp(prefix="hierlm_scale_"))
    try:
        for size in args.sizes:
            n, nu, ni = SHAPES[size]
            csv = str(tmp / f"ratings_{size}.csv") if have_r else ""
            code = CHILD.format(here=str(HERE), root=str(ROOT), rows=n, users=nu, items=ni, csv=csv,
                                remls=remls, formula=FORMULA)
            res, _ = run([sys.executable, "-c", code])
            hier = json.loads(res) if res else []
            r_res = {}
            if have_r:
                rcode = R_CHILD.format(csv=csv, remls=", ".join("TRUE" if r else "FALSE" for r in remls),
                                       formula=FORMULA)
                out, wall = run(["Rscript", "-e", rcode], timeout=args.lme4_cap * len(remls) + 120)
                if out:
                    for ln in out.splitlines():
                        reml, sec, feval, ll, hwm = ln.split()
                        r_res[reml == "TRUE"] = dict(seconds=float(sec), feval=int(feval), loglik=float(ll),
                                                     peak_mib=float(hwm))
                os.remove(csv)
            for h in hier:
                r = r_res.get(h["reml"])
                rows.append((size, "REML" if h["reml"] else "ML", h, r, have_r))
                print(f"{size} {'REML' if h['reml'] else 'ML'}: hierlm {h['seconds']:.2f} s "
                      f"({h['feval']} evals, {h['peak_mib']:.0f} MiB, {h['engine']})"
                      + (f"; lme4 {r['seconds']:.2f} s ({r['feval']} evals, {r['peak_mib']:.0f} MiB)" if r else
                         ("; lme4 did not finish" if have_r else "")), flush=True)
        small, _ = run([sys.executable, "-c", SMALL.format(root=str(ROOT), reps=args.reps)])
        small = json.loads(small) if small else {}
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    lines = ["| rows (users x items) | fit | hierlm s | evals | s/eval | peak RSS MiB | lme4 s | lme4 evals | "
             "lme4 peak MiB | hierlm/lme4 time | logLik (hierlm) | rel. diff from lme4 |",
             "|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for size, kind, h, r, had_r in rows:
        n, nu, ni = SHAPES[size]
        shape = f"{int(n):,} ({nu:,} x {ni:,})"
        if r:
            rs = (f"{r['seconds']:.1f} | {r['feval']} | {r['peak_mib']:.0f} | {h['seconds'] / r['seconds']:.3f} | "
                  f"{h['loglik']:.4f} | {abs(h['loglik'] - r['loglik']) / abs(r['loglik']):.1e}")
        elif had_r:
            rs = f"did not finish ({args.lme4_cap:.0f} s cap) | | | | {h['loglik']:.4f} |"
        else:
            rs = f"not run | | | | {h['loglik']:.4f} |"
        lines.append(f"| {shape} | {kind} | {h['seconds']:.2f} | {h['feval']} | {h['seconds'] / h['feval']:.3f} | "
                     f"{h['peak_mib']:.0f} | {rs} |")
    lines += ["", "| small model (REML) | hierlm median s | evals |", "|---|---|---|"]
    for name, v in small.items():
        lines.append(f"| {name} | {v['seconds']:.3f} | {v['feval']} |")
    table = "\n".join(lines)
    print(table)
    if args.out:
        Path(args.out).write_text(table + "\n")


if __name__ == "__main__":
    main()
