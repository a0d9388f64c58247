"""Simulation-based calibration (Talts, Betancourt, Simpson, Vehtari & Gelman
2018) of NUTS on the engine's marginal posterior (``fit("nuts")``'s default
for small Gaussian models).

For each replicate: draw every parameter from the prior, simulate y, fit,
and record the rank of each true value among L = 99 thinned posterior
draws.  If the sampler and the exact draws of the integrated effects are
right, every rank is uniform on 0..99.  Two models, priors set explicitly so
that the simulation draws from them:

* ``slope``: ``y ~ x + (x | g)``, 12 groups x 8 rows, x = 0..7;
* ``crossed``: ``y ~ 1 + (1 | a) + (1 | b)``, 10 x 8 levels, 2 rows per cell.

Parameters checked: the fixed effects, sigma, every SD, the correlation,
and the first level's random effects (drawn exactly after sampling).

Run (from the repository root; about 10 minutes for both models)::

    python validation/sbc_engine.py --replicates 200
    python validation/sbc_engine.py --replicates 200 --method imh   # fit("imh")

It prints per parameter the chi-square test of uniformity of the ranks in
10 bins and writes ``validation/sbc_engine_ranks.json`` and the rank
histograms ``docs/images/sbc_engine.png``.  tests/test_bayes_engine.py
runs a 40-replicate version.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
import warnings

import numpy as np
import pandas as pd

L_DRAWS = 99  # thinned posterior draws per replicate: ranks 0..99


def design_frame(case: str) -> tuple[str, pd.DataFrame]:
    """The formula and the (response-free) data of a case."""
    if case == "slope":
        g = np.repeat(np.arange(12), 8)
        x = np.tile(np.arange(8.0), 12)
        return "y ~ x + (x | g)", pd.DataFrame({"g": [f"g{i:02d}" for i in g], "x": x})
    if case == "crossed":
        a, b = np.meshgrid(np.arange(10), np.arange(8), indexing="ij")
        a, b = np.repeat(a.ravel(), 2), np.repeat(b.ravel(), 2)
        return "y ~ 1 + (1 | a) + (1 | b)", pd.DataFrame({"a": [f"a{i}" for i in a], "b": [f"b{i}" for i in b]})
    raise ValueError(case)


def set_priors(model):
    from hierlm import priors as P

    for name in model.design.xnames:
        model.set_prior(name, P.Normal(0.0, 2.0))
    model.set_prior("sd", P.HalfNormal(1.0)).set_prior("sigma", P.HalfNormal(1.0)).set_prior("lkj", 2.0)
    return model


def simulate(model, rng) -> tuple[np.ndarray, dict]:
    """y and the true parameters, drawn from the priors set by :func:`set_priors`."""
    d = model.design
    beta = rng.normal(0.0, 2.0, d.p)
    sigma = abs(rng.normal(0.0, 1.0))
    truth = {f"fixef[{n}]": b for n, b in zip(d.xnames, beta)}
    truth["sigma"] = sigma
    y = d.X @ beta + sigma * rng.standard_normal(d.n)
    for t, r in zip(model.priors.term_names(), d.remats):
        sd = np.abs(rng.normal(0.0, 1.0, r.p))
        C = np.eye(r.p)
        if r.p == 2:  # LKJ(eta) for 2 x 2: (rho + 1) / 2 ~ Beta(eta, eta)
            rho = 2.0 * rng.beta(2.0, 2.0) - 1.0
            C = np.array([[1.0, rho], [rho, 1.0]])
            truth[f"corr_{t}[{r.cnames[0]},{r.cnames[1]}]"] = rho
        for j, c in enumerate(r.cnames):
            truth[f"sd_{t}[{c}]"] = sd[j]
        b = rng.standard_normal((r.nlevels, r.p)) @ (np.linalg.cholesky(C).T * sd)
        for j, c in enumerate(r.cnames):
            truth[f"ranef_{t}[{r.levels[0]},{c}]"] = b[0, j]
        y = y + r.Zb(b)
    return y, truth


def _draws(fit, name: str) -> np.ndarray:
    """All draws of a scalar named as in ``fit.diagnostics`` (plus ranef entries)."""
    post = fit.idata.posterior
    var, _, idx = name.partition("[")
    da = post[var]
    if idx:
        keys = idx.rstrip("]").split(",")
        dims = [dim for dim in da.dims if dim not in ("chain", "draw")]
        sel = {}
        for dim, key in zip(dims, keys):
            sel[dim] = key
        if var.startswith("corr_"):  # corr_t[c0,c1]: row c1, column c0 (diagnostics' naming)
            sel = {dims[0]: keys[1], dims[1]: keys[0]}
        da = da.sel(sel)
    return da.to_numpy().reshape(-1)


def sbc_ranks(case: str, replicates: int, seed: int, draws: int = 400, thin: int = 4, chains: int = 2,
              method: str = "nuts"):
    """Ranks (replicates, parameters) of the true values among ``L_DRAWS``
    thinned draws, and the parameter names; ``method`` "nuts" (the engine's
    NUTS) or "imh" (independence Metropolis-Hastings, hierlm.bayes.imh)."""
    import hierlm

    formula, frame = design_frame(case)
    rng = np.random.default_rng(seed)
    ranks, names = [], None
    for rep in range(replicates):
        data = frame.copy()
        data["y"] = rng.standard_normal(len(data))  # a placeholder: the design only
        model = set_priors(hierlm.Model(formula, data))
        y, truth = simulate(model, rng)
        data["y"] = y
        model = set_priors(hierlm.Model(formula, data))
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            if method == "imh":
                fit = model.fit("imh", draws=draws, chains=chains, random_seed=seed + rep,  # its default tuning
                                log_likelihood=False)
            else:
                fit = model.fit("nuts", draws=draws, tune=draws, chains=chains, random_seed=seed + rep,
                                progressbar=False, log_likelihood=False)
        if names is None:
            names = list(truth)
        row = []
        for name in names:
            x = _draws(fit, name)
            x = x[:: max(1, x.size // L_DRAWS)][:L_DRAWS] if thin else x[:L_DRAWS]
            row.append(int(np.sum(x < truth[name])))
        ranks.append(row)
    return np.array(ranks), names


def main():
    from scipy import stats

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--replicates", type=int, default=200)
    ap.add_argument("--seed", type=int, default=2026)
    ap.add_argument("--cases", nargs="+", default=["slope", "crossed"])
    ap.add_argument("--method", default="nuts", choices=["nuts", "imh"],
                    help="the engine's NUTS (default) or independence Metropolis-Hastings")
    args = ap.parse_args()
    out = {}
    for case in args.cases:
        t0 = time.perf_counter()
        ranks, names = sbc_ranks(case, args.replicates, args.seed, method=args.method)
        secs = time.perf_counter() - t0
        print(f"\n{case}: {args.replicates} replicates in {secs:.0f} s")
        print("| parameter | chi-square (10 bins) | p-value |")
        print("|---|---:|---:|")
        res = {}
        for j, name in enumerate(names):
            counts = np.bincount(ranks[:, j] * 10 // (L_DRAWS + 1), minlength=10)
            test = stats.chisquare(counts)
            res[name] = {"ranks": ranks[:, j].tolist(), "chisq": float(test.statistic), "p": float(test.pvalue)}
            print(f"| {name} | {test.statistic:.1f} | {test.pvalue:.3f} |")
        out[case] = {"replicates": args.replicates, "seconds": secs, "params": res}
    here = os.path.dirname(os.path.abspath(__file__))
    suffix = "" if args.method == "nuts" else f"_{args.method}"
    with open(os.path.join(here, f"sbc_engine{suffix}_ranks.json"), "w") as fh:
        json.dump(out, fh)
    plot_ranks(out, os.path.join(here, "..", "docs", "images", f"sbc_engine{suffix}.png"))


def plot_ranks(out: dict, path: str) -> None:
    """Rank histograms of every case and parameter of ``out`` (as written to
    the JSON file), each bin's 99% band in grey."""
    from scipy import stats

    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:  # pragma: no cover
        return
    rows = [(case, name) for case in out for name in out[case]["params"]]
    ncol = 4
    fig, axes = plt.subplots((len(rows) + ncol - 1) // ncol, ncol, figsize=(3.2 * ncol, 2.2 * ((len(rows) + 3) // 4)))
    for ax, (case, name) in zip(axes.ravel(), rows):
        r = out[case]["params"][name]
        n = out[case]["replicates"]
        ax.hist(r["ranks"], bins=np.linspace(0, L_DRAWS + 1, 11), color="#4c72b0", edgecolor="white")
        lo, hi = stats.binom.ppf([0.005, 0.995], n, 0.1)
        ax.axhspan(lo, hi, color="grey", alpha=0.25)
        ax.set_title(f"{case}: {name}\np = {r['p']:.2f}", fontsize=8)
        ax.set_yticks([])
    for ax in axes.ravel()[len(rows):]:
        ax.axis("off")
    fig.tight_layout()
    fig.savefig(path, dpi=80)


if __name__ == "__main__":
    sys.exit(main())
