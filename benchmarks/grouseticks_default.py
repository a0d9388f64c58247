"""grouseticks with hierlm's default NUTS settings (issue 13, item 5).

``TICKS ~ YEAR + scale(HEIGHT) + (1|BROOD) + (1|INDEX) + (1|LOCATION)``,
Poisson, ``Model(...).fit("nuts", random_seed=seed)`` and nothing else:
4 chains, 1000 draws after 1000 tuning, extended until the convergence
check passes (at most 5000), target_accept 0.95.

Usage: ``python benchmarks/grouseticks_default.py 1,2,3,4,5`` (seeds);
prints, per seed, the wall time of the fit call (the model compiled by
nutpie once in the process, in the first fit's time), the draws per chain
the fit ended with, the divergences, the largest R-hat and the smallest
bulk and tail ESS over the fixed effects and SDs, and any convergence
warning.
"""
import sys
import time
import warnings

import hierlm

FORMULA = "TICKS ~ YEAR + scale(HEIGHT) + (1|BROOD) + (1|INDEX) + (1|LOCATION)"


def main(seeds: list[int]) -> None:
    d = hierlm.datasets.load("grouseticks")
    m = hierlm.Model(FORMULA, d, family="poisson")
    for seed in seeds:
        t = time.perf_counter()
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            f = m.fit("nuts", random_seed=seed, progressbar=False)
        t = time.perf_counter() - t
        dg = f.diagnostics
        msgs = [str(w.message) for w in caught if any(k in str(w.message) for k in ("R-hat", "ESS", "divergent"))]
        print(f"seed {seed}: {t:.1f} s, {f.idata.posterior.sizes['draw']} draws a chain, "
              f"{f.divergences} divergences, max R-hat {dg['r_hat'].max():.4f} ({dg['r_hat'].idxmax()}), "
              f"min bulk ESS {dg['ess_bulk'].min():.0f} ({dg['ess_bulk'].idxmin()}), "
              f"min tail ESS {dg['ess_tail'].min():.0f}; warnings: {msgs or 'none'}", flush=True)


if __name__ == "__main__":
    main([int(s) for s in (sys.argv[1] if len(sys.argv) > 1 else "1,2,3,4,5").split(",")])
