"""Side-by-side timings of lmer fits: hierlm vs mixedlm (PyPI, Rust-backed) vs lme4 (R).

Run (from the repository root)::

    /work/venv/bin/python benchmarks/bench_lmm.py                 # defaults, ~2-3 min
    /work/venv/bin/python benchmarks/bench_lmm.py --quick         # smoke run, < 1 min
    /work/venv/bin/python benchmarks/bench_lmm.py --out benchmarks/results.md

What is timed is "formula to fit": from a DataFrame already in memory to the
estimates, i.e. ``hierlm.lmer(formula, df)``, ``mixedlm.lmer(formula, df, REML=True)``
and, in R, ``lmer(formula, data = d, REML = TRUE)`` (benchmarks/bench_lme4.R, which
loads the same CSVs once and times only the lmer call). All fits are REML.

Cases:

* sleepstudy  ``Reaction ~ Days + (Days|Subject)``
* Penicillin  ``diameter ~ 1 + (1|plate) + (1|sample)``
* InstEval    ``y ~ 1 + service + (1|s) + (1|d) + (1|dept:service)``

Methodology: every tool gets an untimed warm-up fit of each case first (imports,
caches; lme4 is warmed up on the small cases only, since an InstEval fit costs it
~30 s). Then the tools are interleaved within each repetition, the order rotating
from one repetition to the next, so that slow drifts of the machine hit all tools
alike; lme4 runs as a persistent ``Rscript`` process fed one request per fit over
stdin, which is what makes the interleaving possible. A ``gc`` (untimed) precedes
every fit. The table reports medians and the ratios hierlm/mixedlm and hierlm/lme4
(< 1 means hierlm is faster), and checks that the REML criteria agree with hierlm's
(relative tolerance ``--tol``).

Peak memory of the InstEval fit: hierlm and mixedlm each fit InstEval once in a fresh
Python subprocess (data handed over as a pickle, so both children do identical
loading), before any timing starts; the child reports its own peak RSS (whole
process: interpreter, imports, data and fit) and how much that peak grew during the
fit. On Linux the child reads VmHWM from /proc/self/status rather than ``ru_maxrss``
(``getrusage`` RUSAGE_SELF in the child, or RUSAGE_CHILDREN in the parent): Linux
carries ``ru_maxrss`` across execve, so a child of a big parent would report the
parent's RSS at fork time (and RUSAGE_CHILDREN is a max over all children). For lme4
the VmHWM of the R server process at the end of the run is shown for orientation (it
includes all its fits and all three datasets).

lme4 is skipped, with a note, when ``Rscript`` is not on PATH or lme4 does not load.
"""

from __future__ import annotations

import argparse
import gc
import os
import pickle
import platform
import statistics
import subprocess
import sys
import tempfile
import textwrap
import time
import warnings
from pathlib import Path

import numpy as np
import pandas as pd

import hierlm
import rserver  # benchmarks/rserver.py (the script's folder is on sys.path)

HERE = Path(__file__).resolve().parent
DATA_DIR = Path(hierlm.datasets.__file__).resolve().parent / "data"
R_SCRIPT = HERE / "bench_lme4.R"

CASES = [
    # name, formula, large?
    ("sleepstudy", "Reaction ~ Days + (Days|Subject)", False),
    ("Penicillin", "diameter ~ 1 + (1|plate) + (1|sample)", False),
    ("InstEval", "y ~ 1 + service + (1|s) + (1|d) + (1|dept:service)", True),
]
LARGE_CASE = "InstEval"


# --------------------------------------------------------------------------- tools

class PyTool:
    """A Python tool: fit(case) -> (seconds, REML criterion)."""

    def __init__(self, name: str, version: str, fit, crit, converged):
        self.name, self.version = name, version
        self._fit, self._crit, self._converged = fit, crit, converged
        self.notes: list[str] = []

    def fit(self, case: str, formula: str, df: pd.DataFrame) -> tuple[float, float]:
        gc.collect()
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            t0 = time.perf_counter()
            res = self._fit(formula, df)
            dt = time.perf_counter() - t0
        for w in caught:
            note = f"{case}: warning {w.category.__name__}: {w.message}"
            if note not in self.notes:
                self.notes.append(note)
        if not self._converged(res):
            note = f"{case}: fit reports non-convergence"
            if note not in self.notes:
                self.notes.append(note)
        return dt, float(self._crit(res))


def make_hierlm() -> PyTool:
    return PyTool("hierlm", hierlm.__version__,
                  fit=lambda f, d: hierlm.lmer(f, d),          # REML is the default
                  crit=lambda r: r.reml_criterion,
                  converged=lambda r: True)                     # hierlm warns (ConvergenceWarning) instead


def make_mixedlm() -> PyTool | None:
    try:
        import mixedlm
        from importlib.metadata import version
    except Exception as exc:  # pragma: no cover - environment dependent
        print(f"note: mixedlm not importable ({exc}); skipped", file=sys.stderr)
        return None
    return PyTool("mixedlm", version("mixedlm"),
                  fit=lambda f, d: mixedlm.lmer(f, d, REML=True),
                  crit=lambda r: r.REMLcrit(),
                  converged=lambda r: bool(r.converged) and bool(r.REML))


class Lme4Server(rserver.RServer):
    """benchmarks/bench_lme4.R running as a persistent Rscript process."""

    name = "lme4"

    def __init__(self):
        self.notes: list[str] = []
        super().__init__(R_SCRIPT, DATA_DIR)

    def fit(self, case: str, formula: str, df: pd.DataFrame) -> tuple[float, float]:
        return self.fit_case(case)

    def peak_rss_mib(self) -> float | None:
        parts = self._request("mem").split()
        try:
            return float(parts[1]) / 1024.0
        except (IndexError, ValueError):
            return None


def make_lme4() -> tuple[Lme4Server | None, str | None]:
    return rserver.start(Lme4Server)


# ------------------------------------------------------------------ peak memory

_MEM_CHILD = textwrap.dedent("""
    import gc, pickle, resource, sys, warnings
    warnings.simplefilter("ignore")
    tool, formula, path = sys.argv[1:4]
    def peak():
        # Peak RSS (MiB) of this process. Linux: VmHWM, because ru_maxrss survives execve
        # and so would report the (larger) parent's RSS at fork time; elsewhere ru_maxrss.
        try:
            with open("/proc/self/status") as fh:
                for line in fh:
                    if line.startswith("VmHWM:"):
                        return int(line.split()[1]) / 1024.0
        except OSError:
            pass
        scale = 1.0 if sys.platform == "darwin" else 1024.0      # ru_maxrss: bytes on macOS, KiB on Linux
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * scale / 2**20
    import numpy, pandas
    if tool == "hierlm":
        import hierlm
        fit = lambda f, d: hierlm.lmer(f, d)
        crit = lambda r: r.reml_criterion
    else:
        import mixedlm
        fit = lambda f, d: mixedlm.lmer(f, d, REML=True)
        crit = lambda r: r.REMLcrit()
    with open(path, "rb") as fh:
        df = pickle.load(fh)
    gc.collect()
    before = peak()
    res = fit(formula, df)
    print(f"{before:.3f} {peak():.3f} {crit(res):.10f}")
""")


def measure_peak_memory(tool: str, formula: str, pickle_path: str) -> dict:
    """Fit once in a fresh interpreter; the child's peak RSS (MiB) before and after the fit."""
    t0 = time.perf_counter()
    out = subprocess.run([sys.executable, "-c", _MEM_CHILD, tool, formula, pickle_path],
                         capture_output=True, text=True)
    if out.returncode != 0:
        return {"error": out.stderr.strip()[-400:]}
    before, after, crit = (float(x) for x in out.stdout.split()[-3:])
    return {"before": before, "peak": after, "delta": after - before, "crit": crit,
            "wall": time.perf_counter() - t0}


# ------------------------------------------------------------------------- main

def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--reps", type=int, default=20, help="timed repetitions of each small fit (default 20)")
    p.add_argument("--reps-large", type=int, default=5,
                   help="timed repetitions of the InstEval fit for the Python tools (default 5)")
    p.add_argument("--reps-lme4-large", type=int, default=1,
                   help="timed repetitions of the InstEval fit for lme4 (~30 s each; 0 skips it; default 1)")
    p.add_argument("--quick", action="store_true",
                   help="smoke run: --reps 3 --reps-large 1 --reps-lme4-large 0")
    p.add_argument("--cases", nargs="+", choices=[c[0] for c in CASES], default=[c[0] for c in CASES])
    p.add_argument("--no-lme4", action="store_true", help="do not run lme4")
    p.add_argument("--no-mixedlm", action="store_true", help="do not run mixedlm")
    p.add_argument("--no-memory", action="store_true", help="skip the InstEval peak-memory subprocesses")
    p.add_argument("--tol", type=float, default=1e-7,
                   help="relative tolerance for 'criteria agree' (default 1e-7)")
    p.add_argument("--out", type=Path, help="also write the Markdown report to this file")
    a = p.parse_args(argv)
    if a.quick:
        a.reps, a.reps_large, a.reps_lme4_large = 3, 1, 0
    return a


def fmt_s(x: float | None) -> str:
    if x is None:
        return "n/a"
    return f"{x:.4f}" if x < 1 else f"{x:.2f}"


def fmt_ratio(a: float | None, b: float | None) -> str:
    return "n/a" if a is None or b is None or b == 0 else f"{a / b:.2f}"


def main(argv=None) -> int:
    args = parse_args(argv)
    t_start = time.perf_counter()
    cases = [c for c in CASES if c[0] in args.cases]
    data = {name: hierlm.datasets.load(name) for name, _, _ in cases}   # loading is not timed

    # ------------------------------------------------------------ peak memory
    mem = {}
    if not args.no_memory and LARGE_CASE in data:
        formula = next(f for c, f, _ in cases if c == LARGE_CASE)
        with tempfile.TemporaryDirectory() as tmp:
            pkl = os.path.join(tmp, "insteval.pkl")
            with open(pkl, "wb") as fh:
                pickle.dump(data[LARGE_CASE], fh, protocol=pickle.HIGHEST_PROTOCOL)
            for name in ["hierlm"] + ([] if args.no_mixedlm else ["mixedlm"]):
                print(f"[{time.perf_counter() - t_start:6.1f}s] peak memory: {name}", file=sys.stderr, flush=True)
                mem[name] = measure_peak_memory(name, formula, pkl)

    notes: list[str] = []
    tools: list = [make_hierlm()]
    if not args.no_mixedlm:
        m = make_mixedlm()
        if m is not None:
            tools.append(m)
        else:
            notes.append("mixedlm skipped: not importable")
    lme4 = None
    if args.no_lme4:
        notes.append("lme4 skipped: --no-lme4")
    else:
        lme4, why = make_lme4()
        if lme4 is None:
            notes.append(why)
            print("note:", why, file=sys.stderr)
        else:
            tools.append(lme4)
    names = [t.name for t in tools]

    # times[case][tool] -> list of seconds; crits[case][tool] -> list of criteria
    times = {c: {t: [] for t in names} for c, _, _ in cases}
    crits = {c: {t: [] for t in names} for c, _, _ in cases}
    reps_done = {}
    try:
        for case, formula, large in cases:
            df = data[case]
            n_py = args.reps_large if large else args.reps
            n_r = args.reps_lme4_large if large else n_py
            n = max(n_py, n_r)
            reps_done[case] = (n_py, n_r if lme4 is not None else 0)
            print(f"[{time.perf_counter() - t_start:6.1f}s] {case}: warm-up", file=sys.stderr, flush=True)
            for t in tools:                           # untimed warm-up fits
                if t is lme4 and large:
                    continue                          # lme4: warmed up on the small cases only
                _, c = t.fit(case, formula, df)
                crits[case][t.name].append(c)
            for i in range(n):
                k = i % len(tools)
                order = tools[k:] + tools[:k]         # rotate who goes first
                for t in order:
                    budget = n_r if t is lme4 else n_py
                    if i >= budget:
                        continue
                    dt, c = t.fit(case, formula, df)
                    times[case][t.name].append(dt)
                    crits[case][t.name].append(c)
                print(f"[{time.perf_counter() - t_start:6.1f}s] {case}: rep {i + 1}/{n}",
                      file=sys.stderr, flush=True)
        lme4_peak = lme4.peak_rss_mib() if lme4 is not None else None
    finally:
        if lme4 is not None:
            lme4.close()

    # ------------------------------------------------------------ report
    def med(case, tool):
        v = times[case].get(tool) or []
        return statistics.median(v) if v else None

    def agree(case) -> str:
        ref = crits[case]["hierlm"]
        if not ref:
            return "n/a"
        h = statistics.median(ref)
        parts, ok = [], True
        for t in names:
            vals = crits[case][t]
            if not vals:
                continue
            dev = max(abs(v - h) for v in vals)
            rel = dev / max(1.0, abs(h))
            if t == "hierlm":
                if rel > args.tol:
                    ok = False
                    parts.append(f"hierlm varies by {dev:.2g}")
                continue
            if rel > args.tol:
                ok = False
                parts.append(f"{t} off by {dev:.3g}")
            else:
                parts.append(f"{t} Δ {dev:.1e}")
        return ("yes" if ok else "**NO**") + (f" ({'; '.join(parts)})" if parts else "")

    has_m = "mixedlm" in names
    has_r = lme4 is not None
    lines = []
    lines.append("| case | hierlm median s | mixedlm median s | lme4 median s | hierlm/mixedlm | hierlm/lme4 "
                 "| criteria agree? |")
    lines.append("|---|---:|---:|---:|---:|---:|---|")
    for case, _, _ in cases:
        n_py, n_r = reps_done[case]
        label = f"{case} (n={n_py}" + (f", lme4 n={n_r}" if has_r and n_r != n_py else "") + ")"
        h, m, r = med(case, "hierlm"), med(case, "mixedlm") if has_m else None, med(case, "lme4") if has_r else None
        lines.append(f"| {label} | {fmt_s(h)} | {fmt_s(m)} | {fmt_s(r)} | {fmt_ratio(h, m)} | {fmt_ratio(h, r)} "
                     f"| {agree(case)} |")
    table = "\n".join(lines)

    crit_lines = ["| case | " + " | ".join(f"{t} REML criterion" for t in names) + " |",
                  "|---|" + "---:|" * len(names)]
    for case, _, _ in cases:
        vals = [f"{statistics.median(crits[case][t]):.6f}" if crits[case][t] else "n/a" for t in names]
        crit_lines.append(f"| {case} | " + " | ".join(vals) + " |")
    crit_table = "\n".join(crit_lines)

    mem_table = ""
    if mem or (has_r and lme4_peak):
        ml = ["| InstEval fit, fresh process | peak RSS MiB (whole process) | peak growth during fit MiB | REML criterion |",
              "|---|---:|---:|---:|"]
        for name, d in mem.items():
            if "error" in d:
                ml.append(f"| {name} | failed: {d['error'][:120]} | | |")
            else:
                ml.append(f"| {name} | {d['peak']:.0f} | {d['delta']:.0f} | {d['crit']:.6f} |")
        if has_r and lme4_peak and reps_done.get(LARGE_CASE, (0, 0))[1] > 0:
            ml.append(f"| lme4 (R server, whole run: all cases, all fits; VmHWM) | {lme4_peak:.0f} | n/a | |")
        mem_table = "\n".join(ml)

    for t in tools:
        for n in t.notes:
            notes.append(f"{t.name}: {n}")
    env = (f"hierlm {hierlm.__version__}; "
           + "; ".join(f"{t.name} {t.version}" for t in tools if t.name != "hierlm")
           + f"; Python {platform.python_version()}, numpy {np.__version__}, pandas {pd.__version__}; "
           f"{platform.machine()} {os.cpu_count()} CPUs; {platform.platform()}")
    total = time.perf_counter() - t_start

    report = [
        "## lmer timings: formula to fit, REML (median wall-clock seconds)",
        "",
        table,
        "",
        "Ratios < 1: hierlm is faster. n = timed repetitions per tool (after one untimed warm-up fit each; "
        "lme4 is not warmed up on InstEval); tools interleaved, order rotating per repetition. "
        f"Criteria agree = every fit of every tool within relative {args.tol:g} of hierlm's.",
        "",
        "### REML criteria (median over fits)",
        "",
        crit_table,
    ]
    if mem_table:
        report += ["", "### Peak memory, InstEval", "", mem_table]
    report += ["", f"Environment: {env}", f"Total benchmark wall time: {total:.0f} s"]
    if notes:
        report += ["", "Notes:"] + [f"- {n}" for n in notes]
    text = "\n".join(report) + "\n"
    print(text)
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(text)
        print(f"(written to {args.out})", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
