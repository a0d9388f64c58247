"""Coverage of predict(interval="prediction") in simulation.

Each replicate draws a data set from a known random-slope model
(``y ~ x + (x | g)``, 12 groups x 6 rows, sd 1 and 0.3 for intercept and
slope, correlation 0.3, sigma 0.8), fits it by REML, and predicts with 95%
intervals (a) a new observation of an existing group (its effects as
conditional modes) and (b) an observation of a new group.  The true new
value is drawn from the same model.

Run (from the repository root; about a minute)::

    python validation/prediction_coverage.py --replicates 1000
"""

from __future__ import annotations

import argparse
import warnings

import numpy as np
import pandas as pd

SD = np.array([1.0, 0.3])
RHO = 0.3
SIGMA = 0.8
BETA = np.array([2.0, 0.5])


def coverage(replicates: int, seed: int = 0) -> dict:
    """Share of 95% prediction intervals that contain the new value."""
    import hierlm

    rng = np.random.default_rng(seed)
    C = np.array([[1.0, RHO], [RHO, 1.0]]) * np.outer(SD, SD)
    Lc = np.linalg.cholesky(C)
    g = np.repeat(np.arange(12), 6)
    x = np.tile(np.linspace(0, 5, 6), 12)
    hits = {"existing group": 0, "new group": 0}
    for _ in range(replicates):
        b = rng.standard_normal((13, 2)) @ Lc.T  # group 12 is the new one
        y = BETA[0] + BETA[1] * x + b[g, 0] + b[g, 1] * x + SIGMA * rng.standard_normal(g.size)
        data = pd.DataFrame({"y": y, "x": x, "g": [f"g{i:02d}" for i in g]})
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            fit = hierlm.lmer("y ~ x + (x | g)", data)
        xn = rng.uniform(0, 5)
        new = pd.DataFrame({"x": [xn, xn], "g": ["g03", "g12"]})
        truth = BETA[0] + BETA[1] * xn + b[[3, 12], 0] + b[[3, 12], 1] * xn + SIGMA * rng.standard_normal(2)
        pi = fit.predict(new, interval="prediction", allow_new_levels=True)
        inside = (pi["lwr"].to_numpy() <= truth) & (truth <= pi["upr"].to_numpy())
        hits["existing group"] += int(inside[0])
        hits["new group"] += int(inside[1])
    return {k: v / replicates for k, v in hits.items()}


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--replicates", type=int, default=1000)
    ap.add_argument("--seed", type=int, default=2026)
    args = ap.parse_args()
    cov = coverage(args.replicates, args.seed)
    se = np.sqrt(0.95 * 0.05 / args.replicates)
    for k, c in cov.items():
        print(f"{k}: coverage {c:.3f} of nominal 0.95 (binomial SE {se:.3f}), {args.replicates} replicates")


if __name__ == "__main__":
    main()
