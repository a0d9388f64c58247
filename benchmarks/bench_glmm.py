"""Side-by-side timings of glmer fits: hierlm vs lme4 (R).

Run (from the repository root)::

    /work/venv/bin/python benchmarks/bench_glmm.py              # 7 repetitions, ~30 s
    /work/venv/bin/python benchmarks/bench_glmm.py --reps 3     # quicker

What is timed is "formula to fit": from a DataFrame already in memory to the
estimates, ``hierlm.glmer(formula, df, family=...)`` and, in R,
``glmer(formula, data = d, family = ...)`` (benchmarks/bench_glmm.R, which loads
the same CSVs once and times only the glmer call).  Both use their defaults:
Laplace approximation, two optimization stages, the finite-difference Hessian
for the standard errors.

Cases (the two glmer cases of tests/reference/lme4_reference.json):

* cbpp         ``cbind(incidence, size - incidence) ~ period + (1 | herd)``, binomial
* grouseticks  ``TICKS ~ YEAR + cHEIGHT + (1 | INDEX) + (1 | BROOD) + (1 | LOCATION)``, Poisson

Methodology: both tools get an untimed warm-up fit of each case (imports,
caches).  Then, repetition by repetition, the tools are interleaved (order
rotating) so that slow drifts of a shared machine hit both alike; lme4 runs as a
persistent ``Rscript`` process fed one request per fit over stdin.  A ``gc``
(untimed) precedes every fit.  The table reports medians and the ratio
hierlm/lme4 (< 1: hierlm is faster) and checks that the log-likelihoods agree
(relative tolerance ``--tol``).

lme4 is skipped, with a note, when ``Rscript`` is not on PATH or lme4 does not load.
"""

from __future__ import annotations

import argparse
import gc
import platform
import statistics
import sys
import time
import warnings
from pathlib import Path

import numpy as np

import hierlm
import rserver  # benchmarks/rserver.py (the script's folder is on sys.path)

HERE = Path(__file__).resolve().parent
DATA_DIR = Path(hierlm.datasets.__file__).resolve().parent / "data"
R_SCRIPT = HERE / "bench_glmm.R"

CASES = [
    # name, formula, family
    ("cbpp", "cbind(incidence, size - incidence) ~ period + (1 | herd)", "binomial"),
    ("grouseticks", "TICKS ~ YEAR + cHEIGHT + (1 | INDEX) + (1 | BROOD) + (1 | LOCATION)", "poisson"),
]


def make_lme4():
    return rserver.start(rserver.RServer, R_SCRIPT, DATA_DIR)


def fit_hierlm(formula: str, df, family: str) -> tuple[float, float]:
    gc.collect()
    t0 = time.perf_counter()
    fit = hierlm.glmer(formula, df, family=family)
    return time.perf_counter() - t0, fit.loglik


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--reps", type=int, default=7, help="timed repetitions per case and tool (default 7)")
    ap.add_argument("--tol", type=float, default=1e-5, help="relative tolerance for the logLik check")
    ap.add_argument("--out", type=Path, help="also write the table (markdown) to this file")
    args = ap.parse_args(argv)
    warnings.simplefilter("ignore")

    data = {name: hierlm.datasets.load(name) for name, _, _ in CASES}
    lme4, note = make_lme4()
    times: dict[tuple[str, str], list[float]] = {}
    ll: dict[tuple[str, str], float] = {}
    tools = ["hierlm"] + (["lme4"] if lme4 else [])
    try:
        # untimed warm-ups
        for name, formula, family in CASES:
            fit_hierlm(formula, data[name], family)
            if lme4:
                lme4.fit_case(name)
        for rep in range(args.reps):
            for name, formula, family in CASES:
                order = tools if rep % 2 == 0 else tools[::-1]
                for tool in order:
                    if tool == "hierlm":
                        t, val = fit_hierlm(formula, data[name], family)
                    else:
                        t, val = lme4.fit_case(name)
                    times.setdefault((tool, name), []).append(t)
                    ll[(tool, name)] = val
    finally:
        if lme4:
            lme4.close()

    lines = [
        f"glmer timings, median of {args.reps} (seconds); {platform.processor() or platform.machine()}, "
        f"Python {platform.python_version()}, hierlm {hierlm.__version__}"
        + (f", lme4 {lme4.version}" if lme4 else ""),
        "",
        "| case | hierlm | lme4 | hierlm / lme4 | logLik hierlm | logLik lme4 | agree |",
        "|---|---|---|---|---|---|---|",
    ]
    ok = True
    for name, _, _ in CASES:
        th = statistics.median(times[("hierlm", name)])
        if lme4:
            tl = statistics.median(times[("lme4", name)])
            agree = bool(np.isclose(ll[("hierlm", name)], ll[("lme4", name)], rtol=args.tol, atol=0))
            ok &= agree
            lines.append(f"| {name} | {th:.3f} | {tl:.3f} | {th / tl:.2f} | {ll[('hierlm', name)]:.6f} | "
                         f"{ll[('lme4', name)]:.6f} | {'yes' if agree else 'NO'} |")
        else:
            lines.append(f"| {name} | {th:.3f} | - | - | {ll[('hierlm', name)]:.6f} | - | - |")
    if note:
        lines += ["", note]
    text = "\n".join(lines)
    print(text)
    if args.out:
        args.out.write_text(text + "\n")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
