"""Denominator df for t-tests of fixed effects: Satterthwaite (lmerTest) and Kenward-Roger (pbkrtest).

References:
- tests/reference/lme4_reference.json (lme4_reference.R; lmerTest 3.1-3): ``satterthwaite_df``
  and ``satterthwaite_p`` of every Gaussian case, InstEval included;
- tests/reference/inference_ddf.json (inference_ddf.R; lmerTest 3.1-3, pbkrtest 0.5.2):
  lmerTest's summary tables with both methods, pbkrtest's ``vcovAdj`` and ``get_Lb_ddf``, a
  contrast, the printed "Fixed effects:" block, and two unbalanced data sets (where the
  Kenward-Roger adjustment is not zero).

Tolerance: 1e-3 relative (the acceptance criterion) for df, standard errors and p-values;
tighter where the inputs are lme4's own estimates (see each test).

Why p-values are compared at lme4's estimates: the methods reproduce lmerTest's numbers to
about 1e-6 when evaluated at lme4's theta (test_satterthwaite_at_lme4_estimates).  Our own fits
stop at a theta that differs from lme4's by up to 1e-4 relative (within the parity tolerance of
theta; our optimum has the lower criterion), which moves df by up to ~1e-4; a p-value of
1e-18 or 1e-38 (t = 37, t = 93) amplifies that 10-100 fold.  So on our own fits df and t are
compared with lmerTest's (1e-3) and p is checked to be R's ``2 * pt(-|t|, df)`` of them, a
formula itself checked against lmerTest's own numbers.
"""

import json
import warnings
from functools import cache
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from conftest import GAUSSIAN_CASES, REFERENCE, fit_case
from scipy import stats

import hierlm
from hierlm.errors import HierlmError
from hierlm.inference import ddf as D
from hierlm.lmm.results import LMMFit
from hierlm.summary import LMMSummary, format_pval, format_r_vector

DDF = json.loads((Path(__file__).parent / "reference" / "inference_ddf.json").read_text())["cases"]
# the R script's cases beyond lme4_reference.json: (data set, every k-th row dropped from the 3rd)
EXTRA = {"sleep_unbal": ("sleepstudy", 7), "penicillin_unbal": ("Penicillin", 5),
         "dyestuff2_singular": ("Dyestuff2", None)}
SATT_CASES = GAUSSIAN_CASES + list(EXTRA)
KR_CASES = [k for k, v in DDF.items() if v["REML"]]
REL = 1e-3


def _aslist(x):
    return x if isinstance(x, list) else [x]


@cache
def own_fit(case):
    if case in EXTRA:
        name, k = EXTRA[case]
        d = hierlm.datasets.load(name)
        if k is not None:
            d = d.drop(index=range(2, len(d), k))
        with warnings.catch_warnings():
            # Dyestuff2 is lme4's singular-fit example (its warning is tested in test_results_api)
            warnings.simplefilter("ignore", hierlm.ConvergenceWarning)
            return hierlm.lmer(DDF[case]["formula"], d)
    return fit_case(case)


@cache
def fit_at_lme4_theta(case):
    """The same model at lme4's estimate of theta (beta, sigma follow from it)."""
    fit = own_fit(case)
    theta = np.asarray(_aslist(REFERENCE[case]["theta"] if case in REFERENCE else DDF[case]["theta"]), float)
    return LMMFit(fit.devfun, theta, fit.reml, fit.optinfo, model=fit.model)


def satt_reference(case):
    """lmerTest's (df, p) per coefficient."""
    if case in REFERENCE:
        ref = REFERENCE[case]
        return np.array(list(ref["satterthwaite_df"].values())), np.array(list(ref["satterthwaite_p"].values()))
    s = DDF[case]["satterthwaite"]
    return np.array(s["df"]), np.array(s["p"])


# ---------------------------------------------------------------------------
# Satterthwaite
# ---------------------------------------------------------------------------
@pytest.mark.parametrize("case", SATT_CASES)
def test_satterthwaite_at_lme4_estimates(case):
    """Same inputs as lmerTest: df and p agree far inside the criterion of 1e-3 (measured: df
    1e-7, p 2.5e-6 at most: numDeriv's steps, reproduced, leave only rounding)."""
    df, p = satt_reference(case)
    tab = D.coef_table(fit_at_lme4_theta(case))
    np.testing.assert_allclose(tab["df"], df, rtol=2e-5)
    np.testing.assert_allclose(tab["Pr(>|t|)"], p, rtol=2e-5)


@pytest.mark.parametrize("case", SATT_CASES)
def test_satterthwaite_own_fit(case):
    df, p = satt_reference(case)
    fit = own_fit(case)
    tab = D.coef_table(fit)
    assert list(tab.columns) == ["Estimate", "Std. Error", "df", "t value", "Pr(>|t|)"]
    assert list(tab.index) == fit.design.xnames
    np.testing.assert_allclose(tab["df"], df, rtol=REL)
    # t from lme4's estimates and standard errors
    if case in REFERENCE:
        ref = REFERENCE[case]
        t_ref = np.array(list(ref["fixef"].values())) / np.array(list(ref["se"].values()))
    else:
        t_ref = np.array(DDF[case]["satterthwaite"]["t"])
    np.testing.assert_allclose(tab["t value"], t_ref, rtol=REL)
    # p is R's 2 pt(-|t|, df): the formula reproduces lmerTest's p from lmerTest's t and df ...
    np.testing.assert_allclose(2 * stats.t.sf(np.abs(t_ref), df), p, rtol=1e-6)
    # ... and gives ours from our t and df
    np.testing.assert_allclose(tab["Pr(>|t|)"], 2 * stats.t.sf(np.abs(tab["t value"]), tab["df"]), rtol=1e-12)
    np.testing.assert_allclose(tab["Estimate"], fit.fixef, rtol=0)
    np.testing.assert_allclose(tab["Std. Error"], np.sqrt(np.diag(fit.vcov)), rtol=1e-12)


@pytest.mark.parametrize("case, name, exact", [
    ("dyestuff", "(Intercept)", 5),       # balanced one-way: groups - 1 = 6 - 1
    ("pastes_nested", "(Intercept)", 9),  # balanced nested: batches - 1 = 10 - 1
    ("sleep_int", "Days", 161),           # within-subject slope: n - groups - 1 = 180 - 18 - 1
    ("sleep_reml", "Days", 17),           # balanced random slopes: subjects - 1
    ("dyestuff2_singular", "(Intercept)", 29),  # variance 0: a t-test on n - 1 (KR: groups - 1)
])
def test_closed_form_df(case, name, exact):
    """Balanced designs: the df are the ANOVA df exactly (lmerTest: 4.99999998, 8.9999975, ...).

    Satterthwaite's are exact at the exact optimum; the finite differences and the optimizer's
    tolerance leave about 1e-6 relative (measured up to 1.1e-6).  Kenward-Roger's are algebraic
    and exact at any theta for these designs (measured 1e-14)."""
    assert D.coef_table(own_fit(case)).loc[name, "df"] == pytest.approx(exact, rel=1e-5)
    kr_exact = 5 if case == "dyestuff2_singular" else exact
    assert D.coef_table(own_fit(case), "kenward-roger").loc[name, "df"] == pytest.approx(kr_exact, rel=1e-9)


def test_satterthwaite_contrast_and_varpar():
    """A contrast (mean reaction at day 5), as lmerTest's contest(m, c(1, 5), joint = FALSE)."""
    for case in ("sleep_reml", "sleep_ml", "sleep_unbal"):
        ref = DDF[case]["contrast_sat"]
        got = D.contest1d(fit_at_lme4_theta(case), ref["L"]).iloc[0]
        for col, key in (("Estimate", "Estimate"), ("Std. Error", "SE"), ("df", "df"), ("t value", "t"),
                         ("Pr(>|t|)", "p")):
            assert got[col] == pytest.approx(ref[key], rel=REL), (case, col)
    # several contrasts at once give the rows one by one
    fit = own_fit("sleep_reml")
    L = np.array([[1.0, 5.0], [0.0, 1.0], [1.0, 0.0]])
    both = D.contest1d(fit, L)
    np.testing.assert_allclose(both.iloc[1:].to_numpy(), D.coef_table(fit).iloc[::-1].to_numpy(), rtol=1e-12)
    # the covariance of (theta, sigma) is positive definite and named
    V = D.vcov_varpar(fit)
    assert list(V.index) == ["theta1", "theta2", "theta3", "sigma"]
    assert np.all(np.linalg.eigvalsh(V.to_numpy()) > 0)


# ---------------------------------------------------------------------------
# Kenward-Roger
# ---------------------------------------------------------------------------
@pytest.mark.parametrize("case", KR_CASES)
def test_kenward_roger_at_lme4_estimates(case):
    """pbkrtest's algebra without derivatives to approximate: agreement to rounding (measured
    1e-12 at most), far inside the criterion of 1e-3."""
    ref = DDF[case]["kenward_roger"]
    fit = fit_at_lme4_theta(case)
    tab = D.coef_table(fit, ddf="kenward-roger")
    for col, key in (("Std. Error", "SE"), ("df", "df"), ("t value", "t"), ("Pr(>|t|)", "p")):
        np.testing.assert_allclose(tab[col], ref[key], rtol=1e-8, err_msg=col)
    np.testing.assert_allclose(D.vcov_adj(fit), np.atleast_2d(DDF[case]["pbkrtest_vcovAdj"]), rtol=1e-8)
    np.testing.assert_allclose(D.kenward_roger_df(fit, np.eye(fit.design.p)), DDF[case]["pbkrtest_ddf"], rtol=1e-8)


@pytest.mark.parametrize("case", KR_CASES)
def test_kenward_roger_own_fit(case):
    ref = DDF[case]["kenward_roger"]
    fit = own_fit(case)
    tab = D.coef_table(fit, ddf="kenward-roger")
    for col, key in (("Estimate", "Estimate"), ("Std. Error", "SE"), ("df", "df"), ("t value", "t")):
        np.testing.assert_allclose(tab[col], ref[key], rtol=REL, err_msg=col)
    np.testing.assert_allclose(tab["Pr(>|t|)"], 2 * stats.t.sf(np.abs(tab["t value"]), tab["df"]), rtol=1e-12)
    # the adjusted standard errors exceed the unadjusted ones where the design is unbalanced
    se = np.sqrt(np.diag(fit.vcov))
    assert np.all(tab["Std. Error"] >= se * (1 - 1e-9))
    if case == "sleep_unbal":
        assert np.all(tab["Std. Error"] > se * (1 + 1e-4))


def test_kenward_roger_contrast():
    ref = DDF["sleep_unbal"]["contrast_kr"]
    got = D.contest1d(fit_at_lme4_theta("sleep_unbal"), ref["L"], ddf="Kenward-Roger").iloc[0]
    for col, key in (("Std. Error", "SE"), ("df", "df"), ("t value", "t"), ("Pr(>|t|)", "p")):
        assert got[col] == pytest.approx(ref[key], rel=REL), col


# ---------------------------------------------------------------------------
# numDeriv's Richardson extrapolation on closed forms
# ---------------------------------------------------------------------------
def test_richardson_derivatives_closed_form():
    def f(x):
        return np.exp(x[0]) * np.sin(x[1]) + x[0] ** 2 * x[1] ** 3 + np.log(x[2]) * x[0]

    x = np.array([0.3, 1.2, 2.0])
    a, b, c = x
    H = np.array([
        [np.exp(a) * np.sin(b) + 2 * b**3, np.exp(a) * np.cos(b) + 6 * a * b**2, 1 / c],
        [np.exp(a) * np.cos(b) + 6 * a * b**2, -np.exp(a) * np.sin(b) + 6 * a**2 * b, 0.0],
        [1 / c, 0.0, -a / c**2],
    ])
    np.testing.assert_allclose(D.richardson_hessian(f, x), H, rtol=1e-8, atol=1e-9)

    def g(x):
        return np.array([[x[0] * x[1], np.sin(x[0])], [x[1] ** 2, np.exp(x[0] - x[1])]])

    J = D.richardson_jacobian(g, x[:2])
    assert J.shape == (2, 2, 2)
    np.testing.assert_allclose(J[..., 0], [[b, np.cos(a)], [0, np.exp(a - b)]], rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(J[..., 1], [[a, 0], [2 * b, -np.exp(a - b)]], rtol=1e-9, atol=1e-12)


# ---------------------------------------------------------------------------
# lme4's table, the summary text
# ---------------------------------------------------------------------------
def test_ddf_none_is_lme4_table(sleep_fit):
    tab = D.coef_table(sleep_fit, ddf="none")
    assert list(tab.columns) == ["Estimate", "Std. Error", "t value"]
    se = np.sqrt(np.diag(sleep_fit.vcov))
    np.testing.assert_allclose(tab["t value"], sleep_fit.fixef / se, rtol=1e-12)
    np.testing.assert_allclose(tab["Std. Error"], list(REFERENCE["sleep_reml"]["se"].values()), rtol=REL)


@pytest.mark.parametrize("case", list(DDF))
def test_summary_fixed_effects_block_like_lmertest(case):
    """The printed "Fixed effects:" block, character for character (trailing blanks aside).

    At lme4's estimates: on our own sleep_ml fit the last printed digit of df and t differs
    (18.000 vs 18.001, 37.906 vs 37.907) since theta differs by 1e-4 (see the module doc)."""
    fit = fit_at_lme4_theta(case)
    text = str(fit.summary())
    want = [line.rstrip() for line in DDF[case]["satterthwaite_printed"]]
    lines = text.splitlines()
    i = lines.index("Fixed effects:")
    assert lines[i + 1: i + 1 + len(want)] == want
    assert lines[0] == (f"Linear mixed model fit by {'REML' if fit.reml else 'maximum likelihood '}. "
                        "t-tests use Satterthwaite's method [lmerModLmerTest]")
    if fit.reml:
        kr = str(LMMSummary(fit, ddf="kenward-roger")).splitlines()
        assert kr[0] == "Linear mixed model fit by REML. t-tests use Kenward-Roger's method [lmerModLmerTest]"
        want = [line.rstrip() for line in DDF[case]["kenward_roger_printed"]]
        assert kr[kr.index("Fixed effects:") + 1:][: len(want)] == want


def test_summary_header_columns_and_lme4_layout(sleep_fit):
    text = str(sleep_fit.summary())
    assert text.splitlines()[0] == ("Linear mixed model fit by REML. t-tests use Satterthwaite's method "
                                    "[lmerModLmerTest]")
    assert "            Estimate Std. Error      df t value Pr(>|t|)" in text
    assert "(Intercept)  251.405      6.825  17.000  36.838  < 2e-16 ***" in text
    # ddf="none" ("lme4") keeps lme4's summary; print(fit) stays lme4's too
    lme4 = str(LMMSummary(sleep_fit, ddf="lme4"))
    assert lme4.splitlines()[0] == "Linear mixed model fit by REML ['lmerMod']"
    assert "(Intercept)  251.405      6.825  36.838" in lme4 and "Pr(>|t|)" not in lme4
    assert repr(sleep_fit).splitlines()[0] == "Linear mixed model fit by REML ['lmerMod']"


def test_r_number_formatting():
    """R's format(), format.pval() (values printed by R 4.2)."""
    assert format_r_vector([1.2e-5, 0.5], 3) == ["1.2e-05", "5.0e-01"]
    assert format_r_vector([0.0123, 0.5], 3) == ["0.0123", "0.5000"]
    assert format_r_vector([123456789.5, 2], 4) == ["123456790", "        2"]
    assert format_r_vector([1e-10, 1], 4) == ["1e-10", "1e+00"]
    assert format_pval([0.0123, 0.5, 1e-5, 3e-20]) == ["0.0123", "0.5000", "1e-05", "<2e-16"]
    assert format_pval([3.26e-06, 1e-17]) == ["3.26e-06", "< 2e-16"]


# ---------------------------------------------------------------------------
# Bad input
# ---------------------------------------------------------------------------
def test_bad_ddf_lists_valid_values(sleep_fit):
    with pytest.raises(HierlmError, match="ddf must be one of 'satterthwaite', 'kenward-roger', 'none'"):
        D.coef_table(sleep_fit, ddf="containment")
    with pytest.raises(HierlmError, match="ddf must be one of"):
        LMMSummary(sleep_fit, ddf=3)


def test_kenward_roger_on_ml_fit_errors():
    with pytest.raises(HierlmError, match="only available for REML fits"):
        D.coef_table(own_fit("sleep_ml"), ddf="kenward-roger")
    with pytest.raises(HierlmError, match="only available for REML fits"):
        LMMSummary(own_fit("sleep_ml"), ddf="kenward-roger")


def test_kenward_roger_large_n_errors():
    """InstEval (n = 73421): KR's dense n x n algebra is refused, Satterthwaite suggested."""
    with pytest.raises(HierlmError, match=r"n <= 3000 .*use ddf='satterthwaite'"):
        D.coef_table(own_fit("insteval"), ddf="kenward-roger")


def test_bad_contrast_and_fit(sleep_fit):
    with pytest.raises(HierlmError, match="L must have 2 columns"):
        D.contest1d(sleep_fit, [1.0, 2.0, 3.0])
    with pytest.raises(HierlmError, match="missing or infinite"):
        D.contest1d(sleep_fit, [1.0, np.nan])
    with pytest.raises(HierlmError, match="need a REML or ML fit"):
        D.coef_table(pd.DataFrame())
