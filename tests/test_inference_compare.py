"""hierlm.anova, hierlm.compare, fit.icc(), fit.r2() against lme4's anova and
the performance package (tests/reference/inference_compare.R and .json)."""

import json
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import hierlm
from hierlm.inference.compare import REFIT_MESSAGE, aicc, anova, compare
from hierlm.inference.variance import icc, r2

REF = json.loads((Path(__file__).parent / "reference" / "inference_compare.json").read_text())
ANOVA_COLS = {"npar": "npar", "AIC": "AIC", "BIC": "BIC", "logLik": "logLik", "deviance": "deviance",
              "Chisq": "Chisq", "Df": "Df", "p": "Pr(>Chisq)"}


@pytest.fixture(scope="module")
def sleep_fits():
    s = hierlm.datasets.load("sleepstudy")
    return {
        "m0": hierlm.lmer("Reaction ~ 1 + (1|Subject)", s),
        "mi": hierlm.lmer("Reaction ~ Days + (1|Subject)", s),
        "m1": hierlm.lmer("Reaction ~ Days + (Days|Subject)", s),
        "m2": hierlm.lmer("Reaction ~ Days + (1|Subject) + (0+Days|Subject)", s),
    }


def _check_anova(table, ref):
    for key, col in ANOVA_COLS.items():
        want = np.array([np.nan if v is None else v for v in ref[key]], dtype=float)
        got = table[col].to_numpy(dtype=float)
        assert np.array_equal(np.isnan(got), np.isnan(want)), col
        ok = ~np.isnan(want)
        np.testing.assert_allclose(got[ok], want[ok], rtol=1e-4, err_msg=col)


@pytest.mark.parametrize("case, models", [("anova_m1_m2", ["m1", "m2"]), ("anova_three", ["m0", "mi", "m1"])])
def test_anova_matches_lme4(sleep_fits, case, models):
    with pytest.warns(UserWarning, match=r"refitting model\(s\) with ML \(instead of REML\)"):
        table = anova(*[sleep_fits[m] for m in models])
    _check_anova(table, REF[case])
    assert list(table.columns) == list(ANOVA_COLS.values())
    assert list(table["npar"]) == sorted(table["npar"])  # ordered by parameters, as lme4
    assert "Models:" in str(table) and "Reaction ~ Days + (Days|Subject)" in str(table)


def test_anova_of_ml_fits_does_not_refit(sleep_fits):
    ml = {k: sleep_fits[k].model.fit("ml") for k in ("m1", "mi")}
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no refit message
        table = anova(big=ml["m1"], small=ml["mi"])
    assert list(table.index) == ["small", "big"]
    _check_anova(table, REF["anova_ml"])


def test_anova_bad_input(sleep_fits):
    # one model: its terms' F tests (tests/test_anova_single.py), not a comparison
    assert anova(sleep_fits["m1"]).heading[0].startswith("Type III Analysis of Variance Table")
    with pytest.raises(hierlm.HierlmError, match="needs a fit"):
        anova()
    s = hierlm.datasets.load("sleepstudy")
    fewer = hierlm.lmer("Reaction ~ Days + (1|Subject)", s.iloc[:170])
    # a positional fit is named by its variable where it has one (R deparses the argument)
    with pytest.raises(hierlm.HierlmError, match=r"different rows \(model1: 180 rows, fewer: 170\)"):
        anova(sleep_fits["m1"], fewer)
    other = hierlm.lmer("log(Reaction) ~ Days + (1|Subject)", s)
    with pytest.raises(hierlm.HierlmError, match="different response"):
        anova(sleep_fits["m1"], other)


def test_compare_aicc_table(sleep_fits):
    with pytest.warns(UserWarning, match="refitting"):  # fixed effects differ: REML not comparable
        tab = compare({"int": sleep_fits["m0"], "lin": sleep_fits["mi"], "slope": sleep_fits["m1"]})
    ml = {k: sleep_fits[k].model.fit("ml") for k in ("m0", "mi", "m1")}
    n = 180
    for name, key in (("int", "m0"), ("lin", "mi"), ("slope", "m1")):
        f = ml[key]
        k = f.df
        assert tab.loc[name, "K"] == k
        # closed form AICc = -2 logLik + 2K + 2K(K+1)/(n-K-1), logLik from lme4's anova table
        ll = REF["anova_three"]["logLik"][["m0", "mi", "m1"].index(key)]
        assert tab.loc[name, "AICc"] == pytest.approx(-2 * ll + 2 * k + 2 * k * (k + 1) / (n - k - 1), rel=1e-6)
        assert tab.loc[name, "AICc"] == pytest.approx(aicc(f), rel=1e-12)
    assert list(tab.index) == ["slope", "lin", "int"]  # best first
    w = np.exp(-0.5 * tab["Delta_AICc"])
    assert list(tab.columns[:7]) == ["K", "AICc", "Delta_AICc", "ModelLik", "AICcWt", "LL", "Cum.Wt"]  # aictab's
    np.testing.assert_allclose(tab["ModelLik"], w)
    np.testing.assert_allclose(tab["AICcWt"], w / w.sum())
    np.testing.assert_allclose(tab["Cum.Wt"].iloc[-1], 1.0)
    np.testing.assert_allclose(tab["evidence_ratio"], tab["AICcWt"].iloc[0] / tab["AICcWt"])
    assert tab["Delta_AICc"].iloc[0] == 0
    # printed as AICcmodavg's print.aictab: its six columns rounded to 2 decimals, every row
    lines = str(tab).splitlines()
    assert lines[1] == "Model selection based on AICc:"
    assert lines[3].split() == ["K", "AICc", "Delta_AICc", "AICcWt", "Cum.Wt", "LL"]
    for line, name in zip(lines[4:7], ["slope", "lin", "int"]):
        got = [float(x) for x in line.split()[1:]]
        want = np.round(tab.loc[name, ["K", "AICc", "Delta_AICc", "AICcWt", "Cum.Wt", "LL"]].to_numpy(float), 2)
        assert line.split()[0] == name and got == list(want)
    assert list(tab.to_frame().columns) == list(tab.columns)


def test_compare_same_fixed_effects_keeps_reml(sleep_fits):
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        tab = compare([sleep_fits["m1"], sleep_fits["m2"]], criterion="BIC")
    assert tab.loc["model1", "BIC"] == pytest.approx(sleep_fits["m1"].bic)
    with pytest.raises(hierlm.HierlmError, match="criterion must be one of"):
        compare([sleep_fits["m1"]], criterion="WAIC")


@pytest.mark.parametrize("case", list(REF["icc"]))
def test_icc_and_r2_match_performance(case):
    ref = REF["icc"][case]
    fit = hierlm.lmer(ref["formula"], hierlm.datasets.load(ref["data"]))
    ic, rr = icc(fit), r2(fit)
    assert isinstance(ic, pd.Series) and list(ic.index) == ["adjusted", "conditional"]
    assert list(rr.index) == ["marginal", "conditional"]
    for got, want in ((ic["adjusted"], ref["icc_adjusted"]), (ic["conditional"], ref["icc_conditional"]),
                      (rr["marginal"], ref["r2_marginal"]), (rr["conditional"], ref["r2_conditional"])):
        assert got == pytest.approx(want, rel=1e-3, abs=1e-12)


@pytest.fixture(scope="module")
def posterior_fits():
    s = hierlm.datasets.load("sleepstudy")
    kw = dict(draws=300, tune=300, chains=2, random_seed=8, progressbar=False)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # few draws: ESS warnings
        return {f: hierlm.Model(f, s).fit("nuts", **kw)
                for f in ("Reaction ~ 1 + (1|Subject)", "Reaction ~ Days + (1|Subject)")}


def test_posterior_icc_r2_and_loo_compare(posterior_fits, sleep_fits):
    post = posterior_fits["Reaction ~ Days + (1|Subject)"]
    ic, rr = post.icc(), post.r2()
    draws = ic.attrs["draws"]
    assert draws.shape == (600, 2)
    # a random intercept: adjusted ICC = sd^2 / (sd^2 + sigma^2) in every draw
    sd2, s2 = post.draws("sd_Subject")[:, 0] ** 2, post.draws("sigma") ** 2
    np.testing.assert_allclose(draws["adjusted"], sd2 / (sd2 + s2), rtol=1e-12)
    assert ic["adjusted"] == pytest.approx(np.mean(sd2 / (sd2 + s2)), rel=1e-12)
    # the REML point estimate lies well inside the posterior of the ICC
    assert abs(ic["adjusted"] - sleep_fits["mi"].icc()["adjusted"]) < 2 * draws["adjusted"].std()
    assert abs(rr["marginal"] - sleep_fits["mi"].r2()["marginal"]) < 2 * rr.attrs["draws"]["marginal"].std()
    tab = hierlm.compare({"int": posterior_fits["Reaction ~ 1 + (1|Subject)"], "lin": post})
    assert list(tab.index) == ["lin", "int"]  # Days matters: higher elpd
    assert {"elpd_loo", "p_loo", "elpd_diff", "weight", "se", "dse"} <= set(tab.columns)
    assert tab.loc["lin", "elpd_loo"] == pytest.approx(post.loo().elpd_loo)
    with pytest.raises(hierlm.HierlmError, match="mix of posterior and REML/ML fits"):
        hierlm.compare([post, sleep_fits["mi"]])


def test_anova_rows_take_the_callers_names(sleep_fits):
    m1, mi = sleep_fits["m1"], sleep_fits["mi"]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        assert list(anova(mi, m1).index) == ["mi", "m1"]
        assert list(anova(mi, full=m1).index) == ["mi", "full"]
        same = mi
        assert list(anova(same, m1).index) == ["model1", "m1"]  # two names for one fit: not guessed


def test_anova_prints_as_lme4(sleep_fits):
    """The table lines of lme4's print (tests/reference/anova_print.R; R
    keeps trailing blanks, the comparison strips them)."""
    ref = (Path(__file__).parent / "reference" / "anova_print.txt").read_text().split("=====\n")
    m0, mi, m1 = sleep_fits["m0"], sleep_fits["mi"], sleep_fits["m1"]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        tables = [str(anova(mi, m1)), str(anova(m0, mi, m1))]
    for got, want in zip(tables, ref):
        body = lambda t: [ln.rstrip() for ln in t.splitlines() if not ln.startswith(("Data:", "Models:", "m0:", "mi:", "m1:"))]  # noqa: E731
        assert body(got) == body(want)
