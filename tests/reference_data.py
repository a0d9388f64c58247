"""The data sets of tests/reference/{anova_single,emmeans}.R, read as those scripts read them
back (factor columns as R's factors; cake's temperature ordered, so it gets polynomial contrasts)."""

from functools import cache
from pathlib import Path

import pandas as pd

HERE = Path(__file__).parent / "reference"
_FACTORS = {"ham.csv": ["Consumer", "Product", "Information", "Gender"],
            "cake.csv": ["replicate", "recipe"], "ChickWeight.csv": ["Chick", "Diet"],
            "ChickWeight_gap.csv": ["Chick", "Diet", "early"]}


@cache
def _read(name: str) -> pd.DataFrame:
    df = pd.read_csv(HERE / name)
    for c in _FACTORS.get(name, []):
        df[c] = df[c].astype(str)
    if name == "cake.csv":
        levels = [str(t) for t in (175, 185, 195, 205, 215, 225)]
        df["temperature"] = pd.Categorical(df["temperature"].astype(str), categories=levels, ordered=True)
    return df


def load(name: str) -> pd.DataFrame:
    """A fresh copy of tests/reference/<name> with R's factor columns."""
    return _read(name).copy()
