"""Simulated data of the piglet and barn owl tutorials.

The originals of the two studies are not bundled, so the tutorials use data of the
same shape simulated from known values.  This script makes them once, with the very
generation code the pages used to run inline (same seeds, same draws), and writes

    tests/reference/tutorial_piglets.csv   4 treatments x 15 animals x 8 weeks
    tests/reference/tutorial_owls.csv      nestlings (Ring) in 30 broods, 1-3 days each

The pages (docs/tutorials/piglets.md, owls.md) read these files, and so does
tests/reference/tutorials.R, which fits the same models in R so that the pages can
show R's numbers beside hierlm's.  Floats are written with pandas' shortest
round-trip representation, so reading a file back gives the same numbers.

Usage (from the repository root):  python docs/tutorials/make_data.py
"""

from pathlib import Path

import numpy as np
import pandas as pd

HERE = Path(__file__).resolve().parents[2] / "tests" / "reference"


def piglets():
    rng = np.random.default_rng(2024)
    animals = [f"a{i:02d}" for i in range(60)]
    treatment = np.repeat(list("ABCD"), 15)            # one treatment per animal
    u0 = rng.normal(0, 0.8, 60)                        # each animal's own start and growth rate
    u1 = rng.normal(0, 0.25, 60)
    rows = []
    for a, tr, b0, b1 in zip(animals, treatment, u0, u1):
        for t in range(8):
            mean = 1.5 + 0.9 * t + 0.035 * t**2 + {"A": 0, "B": 0.15, "C": 0.45, "D": 0.3}[tr] + b0 + b1 * t
            rows.append((a, tr, t, mean + rng.normal(0, 0.25)))
    return pd.DataFrame(rows, columns=["animal", "treatm", "time", "BW"])


def owls():
    rng = np.random.default_rng(7)
    rows = []
    for brood in range(30):
        b_brood = rng.normal(0, 0.25)
        implant = "Cort" if brood % 2 else "C"            # the treatment is given per brood
        for chick in range(rng.integers(2, 6)):
            ring = f"R{brood:02d}{chick}"
            b_ring = rng.normal(0, 0.3)
            for day in rng.choice([1, 2, 3, 5, 7, 9], size=rng.integers(1, 4), replace=False):
                mean = 1.2 + 0.9 * (implant == "Cort") - 0.08 * day * (implant == "Cort") + b_brood + b_ring
                rows.append((f"B{brood:02d}", ring, implant, str(day), mean + rng.normal(0, 0.35)))
    return pd.DataFrame(rows, columns=["Brood", "Ring", "Implant", "days", "logCort"])


if __name__ == "__main__":
    for name, make in (("tutorial_piglets.csv", piglets), ("tutorial_owls.csv", owls)):
        d = make()
        d.to_csv(HERE / name, index=False)
        print(f"wrote {HERE / name}: {len(d)} rows")
