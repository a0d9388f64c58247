"""Parity with lme4 on formula features: transformations (I(), log, sqrt, poly,
scale), a*b and a:b, ordered factors (contr.poly), logical predictors, double
bars, no-intercept terms, factors inside a bar, nested/crossed groupings,
ML fits and rows dropped for NA.

Reference values: tests/reference/formula_reference.json, made by
tests/reference/formula_cases.R (lme4 1.1-31).  Tolerances: fixed effects and
sigma 1e-4 relative, REML criterion / deviance 1e-6 relative, variance-component
SDs 1e-3 relative.

The derived columns below are the same as those built in formula_cases.R.
"""

import json
from functools import lru_cache
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import hierlm

REFERENCE = json.loads((Path(__file__).parent / "reference" / "formula_reference.json").read_text())
CASES = list(REFERENCE)

# lme4 names a logical predictor's coefficient "<name>TRUE" (here "lateTRUE");
# hierlm codes booleans as factors with levels FALSE, TRUE to give R's names.
LOGICAL_NAME_CASE = "sleep_logical"


def _sleepstudy():
    d = hierlm.datasets.load("sleepstudy")
    d["Days2"] = d["Days"]
    d["week"] = np.where(d["Days"] < 5, "early", "late")
    d["phase"] = pd.Categorical(np.select([d["Days"] <= 2, d["Days"] <= 6], ["lo", "mid"], "hi"),
                                categories=["lo", "mid", "hi"], ordered=True)
    d["late"] = (d["Days"] >= 5).astype(bool)
    return d


def _sleepstudy_na():
    d = _sleepstudy()
    d.loc[[2, 49, 100], "Reaction"] = np.nan  # rows 3, 50, 101 in R's 1-based numbering
    return d


_DATA = {
    "sleepstudy": _sleepstudy,
    "sleepstudy_na": _sleepstudy_na,
    "Pastes": lambda: hierlm.datasets.load("Pastes"),
    "Penicillin": lambda: hierlm.datasets.load("Penicillin"),
    "cbpp": lambda: hierlm.datasets.load("cbpp"),
}


@lru_cache(maxsize=None)
def _data(name):
    return _DATA[name]()


@lru_cache(maxsize=None)
def fit_case(case_id):
    """Fit one case once per test session."""
    ref = REFERENCE[case_id]
    return hierlm.lmer(ref["formula"], _data(ref["data"]).copy(), reml=ref["REML"])


def _aslist(x):
    return x if isinstance(x, list) else [x]


def test_derived_columns_match_r_description():
    d = _sleepstudy()
    assert list(d["phase"].cat.categories) == ["lo", "mid", "hi"] and d["phase"].cat.ordered
    assert d.groupby("phase", observed=True)["Days"].agg(["min", "max"]).values.tolist() == [[0, 2], [3, 6], [7, 9]]
    assert sorted(set(d["week"])) == ["early", "late"]
    assert d["late"].dtype == bool
    assert _sleepstudy_na()["Reaction"].isna().sum() == 3


@pytest.mark.parametrize("case", CASES)
def test_fixed_effect_names(case):
    ref, fit = REFERENCE[case], fit_case(case)
    assert list(fit.fixef.index) == list(ref["fixef"])


@pytest.mark.parametrize("case", CASES)
def test_convergence_messages_are_lme4s(case):
    """fit.convergence.messages: lme4's checkConv messages for the same model
    (white space folded: lme4 writes "degenerate  Hessian" with two spaces)."""
    ref, fit = REFERENCE[case], fit_case(case)
    fold = lambda msgs: [" ".join(m.split()) for m in msgs]  # noqa: E731
    assert fold(fit.convergence.messages) == fold(_aslist(ref["lme4_warnings"] or []))
    assert fit.convergence.converged == (not [m for m in fold(fit.convergence.messages) if "singular" not in m])


def test_logical_coefficient_name():
    """A boolean column gets R's name for a logical predictor."""
    assert list(REFERENCE[LOGICAL_NAME_CASE]["fixef"]) == ["(Intercept)", "lateTRUE"]
    assert list(fit_case(LOGICAL_NAME_CASE).fixef.index) == ["(Intercept)", "lateTRUE"]


@pytest.mark.parametrize("case", CASES)
def test_fixed_effects(case):
    ref, fit = REFERENCE[case], fit_case(case)
    np.testing.assert_allclose(fit.fixef.to_numpy(), list(ref["fixef"].values()), rtol=1e-4)


@pytest.mark.parametrize("case", CASES)
def test_sigma(case):
    ref, fit = REFERENCE[case], fit_case(case)
    assert fit.sigma == pytest.approx(ref["sigma"], rel=1e-4)


@pytest.mark.parametrize("case", CASES)
def test_criterion(case):
    ref, fit = REFERENCE[case], fit_case(case)
    if ref["REML"]:
        assert fit.reml_criterion == pytest.approx(ref["reml_criterion"], rel=1e-6)
    else:
        assert fit.deviance == pytest.approx(ref["deviance"], rel=1e-6)


@pytest.mark.parametrize("case", CASES)
def test_nobs_and_ngroups(case):
    ref, fit = REFERENCE[case], fit_case(case)
    assert fit.nobs == ref["nobs"]
    assert fit.ngroups == ref["ngroups"]


@pytest.mark.parametrize("case", CASES)
def test_varcorr_sds(case):
    ref, fit = REFERENCE[case], fit_case(case)
    vc = fit.varcorr
    sd_rows = vc[vc["var2"].isna()]
    assert list(sd_rows["group"]) == [g["group"] for g in ref["varcorr"] for _ in _aslist(g["names"])] + ["Residual"]
    for g in ref["varcorr"]:
        rows = sd_rows[sd_rows["group"] == g["group"]]
        assert list(rows["var1"]) == _aslist(g["names"])
        np.testing.assert_allclose(rows["sdcor"].to_numpy(dtype=float), _aslist(g["sd"]), rtol=1e-3)
    assert sd_rows["sdcor"].iloc[-1] == pytest.approx(ref["sigma"], rel=1e-3)
