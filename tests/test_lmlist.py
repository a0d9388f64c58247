"""hierlm.lmlist against lme4's lmList (tests/reference/lmlist.R) and numpy's lstsq."""

import json
from pathlib import Path

import numpy as np
import pytest

import hierlm

REF = json.loads((Path(__file__).parent / "reference" / "lmlist.json").read_text())


def _sleep():
    d = hierlm.datasets.load("sleepstudy")
    d["w"] = np.where(d["Subject"].astype(str) == "308", 1.0, d["Days"] % 3)
    return d


def _nan(x):
    return np.array([[np.nan if v is None else v for v in row] for row in x], dtype=float)


@pytest.mark.parametrize("case,formula", [("sleep", "Reaction ~ Days | Subject"),
                                          ("quad", "Reaction ~ Days + I(Days^2) | Subject"),
                                          ("aliased", "Reaction ~ Days + w | Subject")])
def test_matches_lme4_lmlist(case, formula):
    ref = REF[case]
    fit = hierlm.lmlist(formula, _sleep())
    assert list(fit.coef.index.astype(str)) == ref["groups"] and list(fit.coef.columns) == ref["terms"]
    np.testing.assert_allclose(fit.coef.to_numpy(), _nan(ref["coef"]), rtol=1e-8, equal_nan=True)
    np.testing.assert_allclose(fit.se.to_numpy(), _nan(ref["se"]), rtol=1e-8, equal_nan=True)
    assert fit.sigma == pytest.approx(ref["RSE"], rel=1e-10) and fit.df == ref["df"]
    np.testing.assert_allclose(fit.r2.to_numpy(), ref["r2"], rtol=1e-8)
    s = fit.summary()
    np.testing.assert_allclose(s["t value"].to_numpy(), _nan(ref["t"]).ravel(), rtol=1e-8, equal_nan=True)
    np.testing.assert_allclose(s["Pr(>|t|)"].to_numpy(), _nan(ref["p"]).ravel(), rtol=1e-6, equal_nan=True)


def test_equals_per_group_lstsq_and_the_aliased_column_is_nan():
    d = _sleep()
    fit = hierlm.lmlist("Reaction ~ Days + w | Subject", d)
    for g, rows in d.groupby(d["Subject"].astype(str)):
        X = np.column_stack([np.ones(len(rows)), rows["Days"], rows["w"]])
        if g == "308":
            b = np.linalg.lstsq(X[:, :2], rows["Reaction"], rcond=None)[0]
            assert np.isnan(fit.coef.loc[g, "w"])
            np.testing.assert_allclose(fit.coef.loc[g, ["(Intercept)", "Days"]], b, rtol=1e-10)
        else:
            b = np.linalg.lstsq(X, rows["Reaction"], rcond=None)[0]
            np.testing.assert_allclose(fit.coef.loc[g].to_numpy(), b, rtol=1e-10)
    assert fit.nobs.sum() == len(d)


def test_bad_formula_says_what_to_write():
    with pytest.raises(hierlm.FormulaError, match=r"'response ~ terms \| group'"):
        hierlm.lmlist("Reaction ~ Days", _sleep())
    with pytest.raises(hierlm.FormulaError, match=r"'response ~ terms \| group'"):
        hierlm.lmlist("Reaction ~ Days |", _sleep())


def test_plot_beside_the_mixed_model():
    import matplotlib

    matplotlib.use("Agg")
    d = _sleep()
    lml = hierlm.lmlist("Reaction ~ Days | Subject", d)
    fit = hierlm.lmer("Reaction ~ Days + (Days | Subject)", d)
    fig = hierlm.plots.lmlist(lml, fit)
    ax0, ax1 = fig.axes
    assert (ax0.get_title(), ax1.get_title()) == ("(Intercept)", "Days")
    # the partial-pooling markers are the mixed model's coef(), in the plot's group order
    order = lml.coef["(Intercept)"].sort_values().index
    diamonds = next(ln for ln in ax1.get_lines() if ln.get_marker() == "D")
    np.testing.assert_allclose(diamonds.get_xdata(), fit.coef()["Subject"].loc[order, "Days"].to_numpy())
    with pytest.raises(hierlm.HierlmError, match="no coefficient 'x'"):
        hierlm.plots.lmlist(lml, terms=["x"])


def test_no_residual_df_is_an_error():
    d = _sleep().groupby("Subject", observed=True).head(2)  # two rows per subject, two coefficients
    with pytest.raises(hierlm.DataError, match="no residual degrees of freedom"):
        hierlm.lmlist("Reaction ~ Days | Subject", d)
