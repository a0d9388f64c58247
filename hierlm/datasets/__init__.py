"""Datasets from lme4 (and mlmRev), bundled with the package.

``load(name)`` returns a pandas DataFrame whose factor columns are pandas
Categoricals with R's levels (numeric-looking labels in numeric order), so
models fit to them give lme4's coefficient names and numbers.
"""

from __future__ import annotations

from importlib import resources

import pandas as pd

from ..design.data import natural_levels
from ..errors import DataError

# name -> (file, factor columns, description)
_DATASETS = {
    "sleepstudy": ("sleepstudy.csv", ["Subject"],
                   "Reaction times (ms) over 10 days of sleep deprivation, 18 subjects"),
    "Dyestuff": ("Dyestuff.csv", ["Batch"], "Yield of dyestuff (g) from 6 batches of an intermediate product"),
    "Dyestuff2": ("Dyestuff2.csv", ["Batch"],
                  "Simulated yields of 6 batches with no batch effect: lme4's singular-fit example"),
    "Penicillin": ("Penicillin.csv", ["plate", "sample"],
                   "Diameter of growth-inhibition zones: 24 plates crossed with 6 penicillin samples"),
    "Pastes": ("Pastes.csv", ["batch", "cask", "sample"],
               "Strength of a chemical paste: casks nested in 10 delivery batches"),
    "InstEval": ("InstEval.csv.gz", ["s", "d", "studage", "lectage", "service", "dept"],
                 "University lecture evaluations: 73421 ratings of 1128 lecturers by 2972 students"),
    "ChickWeight": ("ChickWeight.csv", ["Chick", "Diet"],
                    "Weight (g) of 50 chicks on 4 diets, days 0-21 (R's datasets::ChickWeight)"),
    "cbpp": ("cbpp.csv", ["herd", "period"],
             "Contagious bovine pleuropneumonia: new cases per herd (15) and period (4)"),
    "grouseticks": ("grouseticks.csv", ["INDEX", "BROOD", "YEAR", "LOCATION"],
                    "Ticks on red grouse chicks, by brood, location and year (cHEIGHT = centred HEIGHT)"),
    "wine": ("wine.csv", ["rating", "temp", "contact", "bottle", "judge"],
             "Bitterness of wine rated 1-5 by 9 judges, by temperature and skin contact (ordinal::wine)"),
}
#: factor columns that are ordered (an ordinal model's response)
_ORDERED = {"wine": ["rating"]}


def list() -> pd.DataFrame:  # noqa: A001  (the name users expect: hierlm.datasets.list())
    """The bundled datasets: name, rows, columns and a one-line description."""
    rows = []
    for name, (_, _, desc) in _DATASETS.items():
        df = load(name)
        rows.append({"name": name, "rows": df.shape[0], "columns": ", ".join(df.columns), "description": desc})
    return pd.DataFrame(rows).set_index("name")


def load(name: str) -> pd.DataFrame:
    """Load a bundled dataset.

    Parameters
    ----------
    name : str
        One of ``hierlm.datasets.list().index`` (case-insensitive).

    Returns
    -------
    pandas.DataFrame
    """
    key = {k.lower(): k for k in _DATASETS}.get(str(name).lower())
    if key is None:
        raise DataError(f"no bundled dataset {name!r}; available: {', '.join(_DATASETS)}")
    fname, factors, _ = _DATASETS[key]
    with resources.files(__package__).joinpath("data", fname).open("rb") as fh:
        df = pd.read_csv(fh, dtype={c: str for c in factors},
                         compression="gzip" if fname.endswith(".gz") else None)
    ordered = _ORDERED.get(key, [])
    for c in factors:
        df[c] = pd.Categorical(df[c], categories=natural_levels(df[c]), ordered=c in ordered)
    return df


def names() -> tuple[str, ...]:
    """Names of the bundled datasets."""
    return tuple(_DATASETS)
