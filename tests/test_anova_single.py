"""Tests of one model's terms: lmerTest's anova(m, type, ddf) and drop1(m), lme4's anova(m),
and car's Anova Wald chi-square tests for GLMMs.

References (R 4.2.2, lme4 1.1-31, lmerTest 3.1-3, pbkrtest 0.5.2, car 3.1-1):
- tests/reference/anova_single.json (anova_single.R): three REML models with factors and
  interactions (ham: Product * Information + Gender, balanced; cake: recipe * temperature with
  temperature ordered, i.e. polynomial contrasts, which lmerTest maps through treatment coding
  for type III; ChickWeight: Diet * Time with random slopes, unbalanced; ChickWeight with a
  missing cell, Diet * early, a rank-deficient X) and one ML fit; types
  I, II and III with Satterthwaite's and Kenward-Roger's df, drop1, lme4's table, the type III
  hypotheses and R's printed table.  Fit in R with tight optimizer tolerances.
- tests/reference/anova_glmm.json (anova_glmm.R): car's types II and III on a Poisson model with
  a factor x covariate interaction and a binomial model with a factor x factor interaction.

Tolerances.  At lme4's theta (the same estimates) every column is compared to 1e-6 relative
(lmerTest's numerical derivatives are reproduced, so agreement is ~1e-8).  On our own fits
(theta within the parity tolerance of lme4's; ChickWeight's differs by ~1e-5) the acceptance
tolerance: 1e-4 relative, p-values below 1e-8 to 1e-2 relative.  GLMM Wald tests from R's own
beta and vcov: 1e-10; from our GLMM fits, whose beta agree with lme4's to ~5e-5, 2e-3 relative.
"""

import json
from functools import cache
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from reference_data import load

import hierlm
from hierlm.errors import HierlmError
from hierlm.inference import ftest
from hierlm.lmm.results import LMMFit

# lmerTest's message for the rank-deficient case (chick_gap), asserted in test_missing_cells_warn
pytestmark = pytest.mark.filterwarnings("ignore:Missing cells")

REF = json.loads((Path(__file__).parent / "reference" / "anova_single.json").read_text())
GLMM = json.loads((Path(__file__).parent / "reference" / "anova_glmm.json").read_text())["cases"]
CASES = REF["cases"]
TABLES = [(c, k) for c in CASES for k in CASES[c]["anova"]]
COLS = ["Sum Sq", "Mean Sq", "NumDF", "DenDF", "F value", "Pr(>F)"]


# the R script's optimizer tolerances (with lme4's defaults, ChickWeight's fits stop ~5e-8 short
# of the optimum of the REML criterion, as ours do: 1e-5 in theta, 1e-3 relative in a p-value of 0.03)
TIGHT = {"ftol_abs": 1e-12, "xtol_abs": 1e-12, "ftol_rel": 1e-14}


@cache
def own_fit(case):
    c = CASES[case]
    return hierlm.lmer(c["formula"], load(c["data"]), reml=c["reml"], **TIGHT)


@cache
def fit_at_theta(case):
    """The model at lme4's theta: beta, sigma and every test follow from it."""
    fit = own_fit(case)
    theta = np.atleast_1d(np.asarray(CASES[case]["theta"], dtype=float))
    return LMMFit(fit.devfun, theta, fit.reml, fit.optinfo, model=fit.model)


def _reference(tab) -> pd.DataFrame:
    return pd.DataFrame(tab).set_index("term")


def _compare(out, ref, rtol, p_rtol_small=None):
    assert list(out.index) == list(ref.index)
    assert list(out.columns) == list(ref.columns)
    for col in ref.columns:
        got, want = out[col].to_numpy(dtype=float), ref[col].to_numpy(dtype=float)
        tol = np.full(want.size, rtol)
        if col.startswith("Pr(") and p_rtol_small is not None:
            tol[want < 1e-8] = p_rtol_small
        np.testing.assert_array_less(np.abs(got / want - 1.0), tol, err_msg=col)


@pytest.mark.parametrize(("case", "key"), TABLES)
def test_anova_at_lme4_estimates(case, key):
    kind, ddf = key.split("_")
    out = hierlm.anova(fit_at_theta(case), type=kind, ddf=ddf)
    _compare(out, _reference(CASES[case]["anova"][key]), 1e-6)


@pytest.mark.parametrize(("case", "key"), TABLES)
def test_anova_of_own_fit(case, key):
    kind, ddf = key.split("_")
    out = hierlm.anova(own_fit(case), type=kind, ddf=ddf)
    _compare(out, _reference(CASES[case]["anova"][key]), 1e-4, p_rtol_small=1e-2)


@pytest.mark.parametrize("case", list(CASES))
def test_drop1(case):
    for ddf, tab in CASES[case]["drop1"].items():
        _compare(hierlm.drop1(fit_at_theta(case), ddf=ddf), _reference(tab), 1e-6)


@pytest.mark.parametrize("case", list(CASES))
def test_type3_hypotheses(case):
    """lmerTest's contrast matrices, including cake's, mapped from treatment to polynomial coding
    (whose entries lmerTest rounds to 7 significant digits: the same rounding is reproduced)."""
    ours = ftest.contrasts(own_fit(case), "III")
    for term, h in CASES[case]["hypotheses_III"].items():
        want = np.atleast_2d(np.asarray(h["matrix"], dtype=float))
        assert list(ours[term].columns) == h["columns"]
        np.testing.assert_allclose(ours[term].to_numpy(), want, atol=1e-9)


@pytest.mark.parametrize("case", list(CASES))
def test_lme4_table(case):
    ref = pd.DataFrame(CASES[case]["lme4"]).set_index("term")
    out = hierlm.anova(fit_at_theta(case), ddf="lme4")
    assert out.heading == ["Analysis of Variance Table"]
    _compare(out, ref, 1e-7)


@pytest.mark.parametrize("case", ["ham", "cake"])
def test_printed_like_lmertest(case):
    """R's print of the type III table (trailing blanks of R's star column aside)."""
    want = [line.rstrip() for line in CASES[case]["printed_III"]]
    assert str(hierlm.anova(fit_at_theta(case))).splitlines() == want


def test_one_model_contrasts_do_not_depend_on_coding():
    """Type III tests are invariant to the contrasts: cake with temperature unordered (treatment
    coding) gives the same table as with polynomial contrasts (to lmerTest's 7-digit rounding)."""
    c = CASES["cake"]
    data = load(c["data"])
    data["temperature"] = data["temperature"].astype(str)
    treat = hierlm.lmer(c["formula"], data)
    fit = LMMFit(treat.devfun, own_fit("cake").theta, True, treat.optinfo, model=treat.model)  # same theta
    poly = hierlm.anova(own_fit("cake"))
    np.testing.assert_allclose(hierlm.anova(fit).to_numpy(), poly.to_numpy(), rtol=1e-6)


def test_glmm_wald_from_r_estimates():
    for name, c in GLMM.items():
        data = _glmm_data(name)
        fit = hierlm.glmer(c["formula"], data, family=c["family"])
        terms, variables = ftest.fixed_terms(fit), ftest._term_variables(fit)
        beta, V = np.array(list(c["fixef"].values())), np.asarray(c["vcov"], dtype=float)
        for kind in ("II", "III"):
            out = ftest.wald_tests(beta, V, terms, variables, kind)
            ref = pd.DataFrame(c[f"car_{kind}"]).set_index("term")
            assert list(out.index) == list(ref.index)
            np.testing.assert_allclose(out.to_numpy(dtype=float), ref.to_numpy(dtype=float), rtol=1e-10)
            table = hierlm.anova(fit, type=kind)
            assert table.heading[0] == f"Analysis of Deviance Table (Type {kind} Wald chisquare tests)"
            np.testing.assert_allclose(table.to_numpy(dtype=float), ref.to_numpy(dtype=float), rtol=2e-3)


def _glmm_data(name):
    if name == "grouse":
        return hierlm.datasets.load("grouseticks")
    d = hierlm.datasets.load("cbpp")
    d["big"] = np.where(d["size"] > 15, "TRUE", "FALSE")
    return d


def test_f_equals_t_squared_for_one_df():
    """A one-df term's F is the squared t of its contrast, with the same df; for a term that no
    other contains (ham's Gender), that contrast is its coefficient, the summary's t-test."""
    for case, term, coef in (("chick", "Time", None), ("ham", "Gender", "Gender2")):
        fit = own_fit(case)
        tab = hierlm.anova(fit, type=3)
        t = ftest.contest1d(fit, tab.hypotheses[term].to_numpy())
        row = tab.loc[term]
        assert row["NumDF"] == 1
        assert row["F value"] == pytest.approx(float(t["t value"].iloc[0]) ** 2, rel=1e-12)
        assert row["DenDF"] == pytest.approx(float(t["df"].iloc[0]), rel=1e-12)
        if coef is not None:
            c = ftest.contest1d(fit, np.eye(fit.design.p)[[fit.design.xnames.index(coef)]])
            assert row["F value"] == pytest.approx(float(c["t value"].iloc[0]) ** 2, rel=1e-10)


def test_missing_cells_warn():
    """A cell the data lack (diet 4 is never weighed before day 10; lme4 drops the aliased
    Diet4:earlyyes): lmerTest's message, as a warning; the tables themselves are checked with
    every other case above (chick_gap)."""
    with pytest.warns(UserWarning, match="Missing cells for: Diet4:earlyyes"):
        hierlm.anova(own_fit("chick_gap"), type=3)


def test_errors():
    fit = own_fit("ham")
    with pytest.raises(HierlmError, match="type must be 1, 2 or 3"):
        hierlm.anova(fit, type=4)
    with pytest.raises(HierlmError, match="ddf must be one of"):
        hierlm.anova(fit, ddf="wald")
    with pytest.raises(HierlmError, match="only available for REML"):
        hierlm.anova(own_fit("chick_ml"), ddf="kenward-roger")
    g = hierlm.glmer(GLMM["grouse"]["formula"], _glmm_data("grouse"), family="poisson")
    with pytest.raises(HierlmError, match="type I .* not offered for GLMMs"):
        hierlm.anova(g, type=1)
    with pytest.raises(HierlmError, match="drop1 needs a REML or ML fit"):
        hierlm.drop1(g)
    with pytest.raises(HierlmError, match="needs a fit"):
        hierlm.anova()
