"""Estimated marginal means and contrasts against R's emmeans.

Reference: tests/reference/emmeans.json (emmeans.R; R 4.2.2, emmeans 1.8.4-1, lme4 1.1-31,
lmerTest 3.1-3, pbkrtest 0.5.2): ChickWeight's diets at day 21 (Kenward-Roger and
Satterthwaite df; pairs with Tukey, Holm, Bonferroni and no adjustment; trt.vs.ctrl with
dunnettx; eff with fdr), lmerTest's ham (means averaged over two factors, by-groups, a
two-factor grid), cake (polynomial contrasts in the model) and cbpp's binomial GLMM (link and
response scale, log odds ratios and odds ratios).

Tolerances.  Linear mixed models are evaluated at lme4's theta (the R script's fits, with tight
optimizer tolerances): every number to 1e-6 relative (the agreement is ~1e-9; the df are
lmerTest's and pbkrtest's numerical formulas).  The GLMM is our own fit, whose fixed effects
agree with lme4's to ~1e-5: 1e-4 relative, the acceptance tolerance.  The notes under each
table (df method, adjustment, scale) must equal emmeans' lines.
"""

import json
import re
from functools import cache
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from reference_data import load

import hierlm
from hierlm.errors import HierlmError
from hierlm.lmm.results import LMMFit

REF = json.loads((Path(__file__).parent / "reference" / "emmeans.json").read_text())
THETA = json.loads((Path(__file__).parent / "reference" / "anova_single.json").read_text())["cases"]
TIGHT = {"ftol_abs": 1e-12, "xtol_abs": 1e-12, "ftol_rel": 1e-14}
LABELS = {"contrast", "Diet", "Product", "Information", "recipe", "period"}


@cache
def model(name):
    m = REF["models"][name]
    if name == "cbpp":
        return hierlm.glmer(m["formula"], hierlm.datasets.load("cbpp"), family="binomial")
    fit = hierlm.lmer(m["formula"], load(m["data"]), reml=m["reml"], **TIGHT)
    theta = np.atleast_1d(np.asarray(THETA[name]["theta"], dtype=float))
    return LMMFit(fit.devfun, theta, fit.reml, fit.optinfo, model=fit.model)


def _ours(case):
    """The emmeans call of a case, in Python."""
    call = case["call"]
    m = re.search(r'emmeans\(m, ~ ([^,)]+)(, at = list\(Time = 21\))?(, lmer.df = "satterthwaite")?'
                  r'(, type = "response")?\)', call)
    kw = {}
    if m.group(2):
        kw["at"] = {"Time": 21}
    if m.group(3):
        kw["lmer_df"] = "satterthwaite"
    if m.group(4):
        kw["type"] = "response"
    emm = hierlm.emmeans(model(case["model"]), "~ " + m.group(1).strip(), **kw)
    adjust = re.search(r'adjust = "(\w+)"', call)
    if call.startswith("pairs("):
        response = call.endswith('type = "response")')
        return emm.pairs(adjust=adjust.group(1) if adjust else "tukey", type="response" if response else None)
    if call.startswith("contrast("):
        method = re.search(r'"(trt.vs.ctrl|eff)"', call).group(1)
        return emm.contrast(method, adjust=adjust.group(1) if adjust else None)
    return emm


@pytest.mark.parametrize("key", list(REF["cases"]))
def test_emmeans_like_r(key):
    case = REF["cases"][key]
    emm = _ours(case)
    out = emm.summary()
    ref = pd.DataFrame(case["table"])
    assert list(out.columns) == list(ref.columns)
    rtol = 1e-4 if case["model"] == "cbpp" else 1e-6
    for c in ref.columns:
        if c in LABELS:
            assert [str(x) for x in out[c]] == list(ref[c]), c
            continue
        want = np.array([np.inf if x == "Inf" else float(x) for x in ref[c]])
        got = out[c].to_numpy(dtype=float)
        assert np.array_equal(np.isinf(got), np.isinf(want)), c
        fin = np.isfinite(want)
        np.testing.assert_allclose(got[fin], want[fin], rtol=rtol, err_msg=f"{key}: {c}")
    assert emm._notes() == case["mesg"]


def test_estimates_are_averages_of_predictions():
    """An emmean is the equal-weight average of the population predictions over the grid of the
    other factors: checked with predict(re_form=NA) on that grid, independently of the L matrix."""
    fit = model("ham")
    emm = hierlm.emmeans(fit, "Product").summary()
    grid = pd.DataFrame([(p, i, g) for p in "1234" for i in "12" for g in "12"],
                        columns=["Product", "Information", "Gender"])
    pred = fit.predict(grid, re_form="NA")
    means = pd.Series(np.asarray(pred), index=grid.index).groupby(grid["Product"]).mean()
    np.testing.assert_allclose(emm["emmean"].to_numpy(), means.to_numpy(), rtol=1e-12)


def test_confint_level_and_printing():
    emm = hierlm.emmeans(model("chick"), "Diet", at={"Time": 21})
    ci90 = emm.confint(0.90)
    wide = emm.summary()
    assert np.all(ci90["upper.CL"] < wide["upper.CL"]) and np.all(ci90["lower.CL"] > wide["lower.CL"])
    text = str(emm.pairs())
    assert "Diet1 - Diet2" in text and "P value adjustment: tukey method for comparing a family of 4 estimates" \
        in text


def test_custom_contrast_and_reverse():
    emm = hierlm.emmeans(model("chick"), "Diet", at={"Time": 21})
    means = emm.summary()["emmean"].to_numpy()
    custom = emm.contrast({"3 vs 1-2": [-0.5, -0.5, 1, 0]}).summary()
    assert custom["contrast"].tolist() == ["3 vs 1-2"]
    assert custom["estimate"].iloc[0] == pytest.approx(means[2] - (means[0] + means[1]) / 2, rel=1e-12)
    rev = emm.pairs(reverse=True).summary()
    assert rev["contrast"].iloc[0] == "Diet4 - Diet3"
    assert rev["estimate"].iloc[0] == pytest.approx(means[3] - means[2], rel=1e-12)


def test_bad_input():
    fit = model("chick")
    with pytest.raises(HierlmError, match="not a variable of the fixed effects"):
        hierlm.emmeans(fit, "Sex")
    with pytest.raises(HierlmError, match="numeric covariate"):
        hierlm.emmeans(fit, "Time")
    with pytest.raises(HierlmError, match="not level"):
        hierlm.emmeans(fit, "Diet", at={"Diet": ["9"]})
    with pytest.raises(HierlmError, match="adjust must be one of"):
        hierlm.emmeans(fit, "Diet").pairs(adjust="magic")
    with pytest.raises(HierlmError, match="lmer_df must be"):
        hierlm.emmeans(fit, "Diet", lmer_df="wald")
    with pytest.raises(HierlmError, match="type must be"):
        hierlm.emmeans(fit, "Diet", type="probability")


def test_ml_fit_uses_satterthwaite_and_says_so():
    ml = hierlm.lmer(REF["models"]["chick"]["formula"], load("ChickWeight.csv"), reml=False)
    emm = hierlm.emmeans(ml, "Diet", at={"Time": 21})
    assert any("Satterthwaite's df instead" in n for n in emm._notes())
    assert emm.inference.df_method == "satterthwaite"


def test_posterior_fit_from_the_draws():
    """For a posterior fit: the median and 95% HPD interval of each mean's draws (emmeans for
    brms).  Checked against the draws of the population predictions at the grid's rows
    (posterior_linpred with no random effects), a path that does not use the L matrix."""
    import arviz as az

    data = load("ChickWeight.csv")
    post = hierlm.Model(REF["models"]["chick"]["formula"], data).fit(
        "nuts", draws=300, tune=300, chains=2, random_seed=3, progressbar=False)
    emm = hierlm.emmeans(post, "Diet", at={"Time": 21})
    out = emm.summary()
    assert list(out.columns) == ["Diet", "emmean", "lower.HPD", "upper.HPD"]
    grid = pd.DataFrame({"Diet": ["1", "2", "3", "4"], "Time": 21.0})
    draws = post.posterior_linpred(grid, re_form=False)
    np.testing.assert_allclose(out["emmean"], np.median(draws, axis=0), rtol=1e-10)
    hdi = np.array([az.hdi(draws[:, j], hdi_prob=0.95) for j in range(4)])
    np.testing.assert_allclose(out[["lower.HPD", "upper.HPD"]].to_numpy(), hdi, rtol=1e-10)
    pairs = emm.pairs().summary()
    np.testing.assert_allclose(pairs["estimate"].iloc[0], np.median(draws[:, 0] - draws[:, 1]), rtol=1e-10)
    assert "Point estimate displayed: median" in str(emm)


def test_cells_the_data_lack_are_not_estimable():
    """With a cell missing (diet 4 never weighed early) lme4 drops the aliased coefficient; its
    mean is not estimable and emmeans reports it as nonEst (not a number computed with the
    dropped coefficient at 0).  The estimable means equal the ones of R's emmeans (printed by
    R 4.2.2, emmeans 1.8.4-1, tests/reference/emmeans_nonest.R: 96.8, 114.2, 131.9 with SE 6.03,
    8.38, 8.38), and the contrasts
    with the missing diet are nonEst too."""
    import warnings

    d = hierlm.datasets.load("ChickWeight")
    d["early"] = np.where(d["Time"] < 10, "yes", "no")
    sub = d[~((d["Diet"] == "4") & (d["early"] == "yes"))]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        m = hierlm.lmer("weight ~ Diet * early + (1|Chick)", sub)
    emm = hierlm.emmeans(m, "Diet")
    tab = emm.summary()
    assert list(emm.estimable()) == [True, True, True, False]
    assert np.isnan(tab["emmean"].iloc[3]) and np.isnan(tab["SE"].iloc[3])
    np.testing.assert_allclose(tab["emmean"].iloc[:3], [96.8, 114.2, 131.9], atol=0.06)
    np.testing.assert_allclose(tab["SE"].iloc[:3], [6.03, 8.38, 8.38], atol=0.006)
    assert "nonEst" in str(emm).splitlines()[4]
    pairs = emm.pairs().summary()
    assert pairs["estimate"].isna().tolist() == [False, False, True, False, True, True]
    assert np.all(np.isfinite(pairs.loc[~pairs["estimate"].isna(), "p.value"]))
    cells = hierlm.emmeans(m, "~ Diet * early").summary()
    assert cells["emmean"].isna().sum() == 1
