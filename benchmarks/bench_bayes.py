"""NUTS efficiency: hierlm vs bambi, bulk ESS per second of wall time.

Run (from the repository root)::

    python benchmarks/bench_bayes.py                  # sleepstudy, 4 chains x 1000 draws, 1000 tuning, 3 pairs
    python benchmarks/bench_bayes.py --backend pymc   # hierlm's PyMC model instead of the engine
    python benchmarks/bench_bayes.py --cold           # numba/pytensor caches emptied first
    python benchmarks/bench_bayes.py --insteval       # also the InstEval crossed model (minutes)
    python benchmarks/bench_bayes.py --no-bambi --repeats 1 --insteval-imh 500   # InstEval by fit("imh")
    python benchmarks/bench_bayes.py --no-bambi --repeats 0 --ratings-imh 300    # 1e6 ratings by fit("imh") (~13 min)

Each fit runs in a fresh Python process, timed from the fit call to the
InferenceData (model construction, compilation and sampling included; data
loading and imports excluded).  Efficiency = minimum bulk ESS over the fixed
effects, random-effect SDs, correlations and sigma, divided by that wall
time.  bambi is fitted as its users call it: ``bmb.Model(formula,
data).fit(draws, tune, chains)`` (pymc's sampler; its group-specific terms
have no correlation parameter).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import textwrap

CHILD = textwrap.dedent(r'''
    import json, sys, time, warnings
    warnings.simplefilter("ignore")
    import numpy as np, arviz as az
    import hierlm
    tool, dataset, formula, draws, tune, chains, seed, extra = sys.argv[1:9]
    draws, tune, chains, seed = int(draws), int(tune), int(chains), int(seed)
    extra = json.loads(extra)
    if dataset.startswith("ratings:"):  # benchmarks/ratings_data.py's seeded users x items data
        sys.path.insert(0, extra.pop("bench_dir"))
        from ratings_data import ratings
        data = ratings(*(int(float(x)) for x in dataset[8:].split("x")))
    else:
        data = hierlm.datasets.load(dataset)
    if tool == "hierlm":
        import pymc, nutpie  # noqa: F401  (imports are excluded for both tools)
        t0 = time.perf_counter()
        method = extra.pop("method", "nuts")
        if method == "nuts":
            extra["progressbar"] = False
        fit = hierlm.Model(formula, data).fit(method, draws=draws, tune=tune, chains=chains,
                                              random_seed=seed, **extra)
        secs = time.perf_counter() - t0
        dg = fit.diagnostics
        out = {"seconds": secs, "min_ess_bulk": float(dg["ess_bulk"].min()), "max_rhat": float(dg["r_hat"].max()),
               "divergences": fit.divergences, "sampler": fit.sampler, "marginalized": fit.marginalized,
               "fixef": fit.fixef.round(3).to_dict(), "plan": fit.plan.describe(fit.terms),
               "acceptance": getattr(fit, "acceptance_rate", None)}
    else:
        import bambi as bmb
        t0 = time.perf_counter()
        idata = bmb.Model(formula, data).fit(draws=draws, tune=tune, chains=chains, random_seed=seed,
                                             progressbar=False)
        secs = time.perf_counter() - t0
        post = idata.posterior
        names = [v for v in post.data_vars if not (("|" in v) and not v.endswith("_sigma"))]
        ess = az.ess(post[names], method="bulk")
        rhat = az.rhat(post[names])
        out = {"seconds": secs, "min_ess_bulk": float(min(float(ess[v].min()) for v in names)),
               "max_rhat": float(max(float(rhat[v].max()) for v in names)),
               "divergences": int(idata.sample_stats["diverging"].sum()), "sampler": "pymc (bambi)",
               "params": names}
    print("RESULT " + json.dumps(out))
''')


def run(tool, dataset, formula, draws, tune, chains, seed, extra, env):
    res = subprocess.run([sys.executable, "-c", CHILD, tool, dataset, formula, str(draws), str(tune), str(chains),
                          str(seed), json.dumps(extra)], capture_output=True, text=True, env=env)
    line = [x for x in res.stdout.splitlines() if x.startswith("RESULT ")]
    if not line:
        raise RuntimeError(f"{tool} failed:\n{res.stderr[-3000:]}")
    return json.loads(line[0][7:])


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--draws", type=int, default=1000)
    ap.add_argument("--tune", type=int, default=1000)
    ap.add_argument("--chains", type=int, default=4)
    ap.add_argument("--seed", type=int, default=2026)
    ap.add_argument("--cold", action="store_true", help="empty numba/pytensor caches before each fit")
    ap.add_argument("--no-bambi", action="store_true")
    ap.add_argument("--repeats", type=int, default=3,
                    help="fits per tool, alternating hierlm and bambi (medians reported; default 3)")
    ap.add_argument("--backend", default=None, help="hierlm's NUTS backend ('engine', 'pymc'; default: its choice)")
    ap.add_argument("--insteval", action="store_true", help="also sample InstEval with hierlm")
    ap.add_argument("--insteval-draws", type=int, default=1000, help="draws (and tuning steps) per chain")
    ap.add_argument("--insteval-imh", type=int, default=0, metavar="DRAWS",
                    help="also sample InstEval by fit('imh') with DRAWS draws a chain (200 tuning, its default)")
    ap.add_argument("--ratings-imh", type=int, default=0, metavar="DRAWS",
                    help="also sample the scale benchmark's 1e6-row crossed ratings model (50,000 users x "
                         "5,000 items, benchmarks/ratings_data.py) by fit('imh') with DRAWS draws a chain "
                         "after --ratings-tune tuning")
    ap.add_argument("--ratings-tune", type=int, default=30)
    args = ap.parse_args()

    rows = []
    cases = [("sleepstudy", "Reaction ~ Days + (Days|Subject)")]
    extra = {} if args.backend is None else {"backend": args.backend}
    for dataset, formula in cases:
        tools = ["hierlm"] + ([] if args.no_bambi else ["bambi"])
        for rep in range(args.repeats):
            for tool in (tools if rep % 2 == 0 else tools[::-1]):
                env = dict(os.environ)
                if args.cold:
                    env["NUMBA_CACHE_DIR"] = tempfile.mkdtemp()
                    env["PYTENSOR_FLAGS"] = f"compiledir={tempfile.mkdtemp()}"
                r = run(tool, dataset, formula, args.draws, args.tune, args.chains, args.seed + rep,
                        extra if tool == "hierlm" else {}, env)
                r.update(tool=tool, case=dataset, ess_per_s=r["min_ess_bulk"] / r["seconds"])
                rows.append(r)
                print(f"{tool:7s} {dataset}: {r['seconds']:.1f} s, min bulk ESS {r['min_ess_bulk']:.0f}, "
                      f"{r['ess_per_s']:.1f} ESS/s, max R-hat {r['max_rhat']:.3f}, divergences {r['divergences']}",
                      flush=True)
    if args.insteval:
        r = run("hierlm", "InstEval", "y ~ 1 + service + (1|s) + (1|d) + (1|dept:service)",
                args.insteval_draws, args.insteval_draws, args.chains, args.seed, {"log_likelihood": False},
                dict(os.environ))
        r.update(tool="hierlm", case="InstEval", ess_per_s=r["min_ess_bulk"] / r["seconds"])
        rows.append(r)
        print(f"hierlm  InstEval: {r['seconds']:.1f} s, min bulk ESS {r['min_ess_bulk']:.0f}, "
              f"max R-hat {r['max_rhat']:.3f}, divergences {r['divergences']}", flush=True)

    if args.insteval_imh:
        d = args.insteval_imh
        r = run("hierlm", "InstEval", "y ~ 1 + service + (1|s) + (1|d) + (1|dept:service)",
                d, 200, args.chains, args.seed, {"log_likelihood": False, "method": "imh"},
                dict(os.environ))
        r.update(tool="hierlm", case="InstEval (imh)", ess_per_s=r["min_ess_bulk"] / r["seconds"])
        rows.append(r)
        print(f"hierlm  InstEval (imh, {d} draws): {r['seconds']:.1f} s, min bulk ESS {r['min_ess_bulk']:.0f}, "
              f"max R-hat {r['max_rhat']:.3f}", flush=True)

    if args.ratings_imh:
        d = args.ratings_imh
        bench_dir = os.path.dirname(os.path.abspath(__file__))
        r = run("hierlm", "ratings:1e6x50000x5000", "rating ~ 1 + (1|user) + (1|item)", d, args.ratings_tune,
                args.chains, args.seed, {"log_likelihood": False, "method": "imh", "bench_dir": bench_dir},
                dict(os.environ))
        r.update(tool="hierlm", case="1e6 ratings (imh)", ess_per_s=r["min_ess_bulk"] / r["seconds"])
        rows.append(r)
        print(f"hierlm  1e6 ratings (imh, {d} draws after {args.ratings_tune}): {r['seconds']:.1f} s, "
              f"min bulk ESS {r['min_ess_bulk']:.0f}, max R-hat {r['max_rhat']:.3f}, "
              f"acceptance rate {r['acceptance']:.3f}", flush=True)

    print("\n| tool | case | sampler | wall s | min bulk ESS | ESS/s | max R-hat | divergences |")
    print("|---|---|---|---:|---:|---:|---:|---:|")
    for r in rows:
        print(f"| {r['tool']} | {r['case']} | {r['sampler']} | {r['seconds']:.1f} | {r['min_ess_bulk']:.0f} | "
              f"{r['ess_per_s']:.1f} | {r['max_rhat']:.3f} | {r['divergences']} |")
    h = [r["ess_per_s"] for r in rows if r["tool"] == "hierlm" and r["case"] == "sleepstudy"]
    b = [r["ess_per_s"] for r in rows if r["tool"] == "bambi"]
    hs = [r["seconds"] for r in rows if r["tool"] == "hierlm" and r["case"] == "sleepstudy"]
    if h:
        print(f"\nhierlm sleepstudy: median wall {statistics.median(hs):.2f} s, median {statistics.median(h):.0f} ESS/s")
    if h and b:
        print(f"hierlm / bambi, median ESS per second: {statistics.median(h) / statistics.median(b):.1f}x "
              f"(per pair: {', '.join(f'{x / y:.1f}x' for x, y in zip(h, b))})")


if __name__ == "__main__":
    main()
