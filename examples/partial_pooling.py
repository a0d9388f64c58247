"""Partial pooling, the classic teaching example.

Twenty groups with 1 to 200 observations each and different true means.
Three ways to estimate each group's mean:

* no pooling: the group's own sample mean (noisy for small groups);
* complete pooling: one mean for everybody (ignores the groups);
* partial pooling: the mixed model ``y ~ 1 + (1 | g)``, whose estimates
  are pulled from the group's own mean towards the population mean, the
  more the fewer observations a group has.

Run: python examples/partial_pooling.py [OUT.png]
(or set HIERLM_PLOT_OUT); by default the plot goes to a temporary folder.
"""

import os
import sys
import tempfile
from pathlib import Path

import numpy as np
import pandas as pd

import hierlm

SIZES = [1, 2, 3, 4, 5, 6, 8, 10, 12, 15, 20, 25, 30, 40, 50, 65, 80, 100, 150, 200]


def simulate(seed: int = 20240) -> pd.DataFrame:
    """20 groups of SIZES observations, true group means ~ N(50, 8), noise SD 15."""
    rng = np.random.default_rng(seed)
    means = rng.normal(50.0, 8.0, len(SIZES))
    names = [f"g{j + 1:02d}" for j in range(len(SIZES))]
    rows = [(name, mu + rng.normal(0.0, 15.0)) for name, mu, n in zip(names, means, SIZES) for _ in range(n)]
    df = pd.DataFrame(rows, columns=["g", "y"])
    df["g"] = pd.Categorical(df["g"], categories=names)
    return df


def output_path() -> Path:
    # only take argv[1] when it names an image: test runners pass their own arguments
    if len(sys.argv) > 1 and Path(sys.argv[1]).suffix.lower() in (".png", ".pdf", ".svg", ".jpg"):
        return Path(sys.argv[1])
    if os.environ.get("HIERLM_PLOT_OUT"):
        return Path(os.environ["HIERLM_PLOT_OUT"])
    return Path(tempfile.mkdtemp(prefix="hierlm_")) / "partial_pooling.png"


def main() -> Path:
    import matplotlib

    if getattr(matplotlib.rcParams, "_get_backend_or_none", lambda: None)() is None:
        matplotlib.use("Agg")  # the figure is written to a file, never shown: no window needed
    import matplotlib.pyplot as plt

    data = simulate()
    fit = hierlm.lmer("y ~ 1 + (1 | g)", data)
    print(fit.summary())

    est = hierlm.plots.pooling_estimates(fit, "g")
    table = pd.DataFrame({
        "n": est["n"],
        "own mean": est["no_pooling"]["(Intercept)"],
        "model": est["partial_pooling"]["(Intercept)"],
    })
    table["moved"] = (table["model"] - table["own mean"]).abs()
    # share of the way from the group's own mean to the population mean
    pop = fit.fixef["(Intercept)"]
    table["pulled %"] = 100 * (table["model"] - table["own mean"]) / (pop - table["own mean"])
    print(f"\nComplete pooling (one mean): {est['complete_pooling']['(Intercept)'].iloc[0]:.2f}")
    print("No pooling vs partial pooling: the smallest groups move furthest")
    print(table.round(2).to_string())

    fig = fit.plot("shrinkage", group="g")
    out = output_path()
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=100)
    plt.close(fig)
    print(f"\nshrinkage plot written to {out}")
    return out


if __name__ == "__main__":
    main()
