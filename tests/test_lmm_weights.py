"""Prior weights and offsets in linear mixed models, against lme4.

Reference: tests/reference/lmm_weights.json (lmm_weights.R; R 4.2.2, lme4 1.1-31, lmerTest
3.1-3), seven fits: ChickWeight growth curves with per-chick weights and random slopes; a
weighted REML and ML fit of sleepstudy; an offset of the log baseline (formula ``offset()``);
an ``offset=`` argument with weights; crossed random effects with weights (ham, the blocked
engine) and a weighted ML fit with both weights and a formula offset (Penicillin).  Fit in R
with tight optimizer tolerances.

Tolerances.  At lme4's theta every estimate, the log-likelihood, vcov, fitted values, both
kinds of residuals, predictions on new rows and Satterthwaite's df agree within 1e-7 relative
(observed ~1e-10; the df ~1e-7, lmerTest's numerical derivatives).  Our own fits use the project's
parity tolerances (fixed effects 1e-4, theta 1e-3 relative or 1e-4 absolute) and must reach a
criterion at least as low as lme4's (they do: lme4's nloptwrap stops up to 5e-7 above).
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
from hierlm.lmm.results import LMMFit

REF = json.loads((Path(__file__).parent / "reference" / "lmm_weights.json").read_text())["cases"]
TIGHT = {"ftol_abs": 1e-12, "xtol_abs": 1e-12, "ftol_rel": 1e-14}


@cache
def _data(name):
    """The R script's data and weights, built the same way."""
    if name == "sleep":
        d = hierlm.datasets.load("sleepstudy")
        d["w"] = 1.0 + d["Days"] % 3
        base = d[d["Days"] == 0].set_index("Subject")["Reaction"]
        d["logbase"] = np.log(d["Subject"].map(base).astype(float))
        return d
    if name == "chick":
        d = load("ChickWeight.csv")
        d["w"] = 1.0 + d["Chick"].astype(int) % 3
        return d
    if name == "ham":
        d = load("ham.csv")
        d["w"] = d["Age"] / d["Age"].mean()
        return d
    d = hierlm.datasets.load("Penicillin")
    d["w"] = np.resize([0.5, 1.0, 2.0], len(d))
    d["off"] = 0.1 * (d["sample"].cat.codes + 1)
    return d


@cache
def own_fit(case):
    c = REF[case]
    return hierlm.lmer(c["formula"], _data(c["data"]), reml=c["reml"], weights=c["weights"] or None,
                       offset=c["offset"] or None, **TIGHT)


@cache
def fit_at_theta(case):
    fit = own_fit(case)
    theta = np.atleast_1d(np.asarray(REF[case]["theta"], dtype=float))
    return LMMFit(fit.devfun, theta, fit.reml, fit.optinfo, model=fit.model)


def _close(got, want, rtol, what):
    np.testing.assert_allclose(np.asarray(got, dtype=float), np.asarray(want, dtype=float), rtol=rtol,
                               atol=rtol * np.max(np.abs(want)), err_msg=what)


@pytest.mark.parametrize("case", list(REF))
def test_at_lme4_estimates(case):
    c, fit = REF[case], fit_at_theta(case)
    d = _data(c["data"])
    _close(fit.fixef, list(c["fixef"].values()), 1e-9, "fixef")
    _close([fit.sigma], [c["sigma"]], 1e-9, "sigma")
    assert fit.loglik == pytest.approx(c["logLik"], abs=1e-7)
    crit = fit.reml_criterion if c["reml"] else fit.deviance
    assert crit == pytest.approx(c["deviance_or_reml"], abs=2e-7)
    assert fit.aic == pytest.approx(c["AIC"], abs=2e-7)
    _close(fit.vcov.to_numpy(), c["vcov"], 1e-8, "vcov")
    re = fit.ranef()[c["ranef_first_group"]]
    assert [str(x) for x in re.index] == c["ranef_first_levels"] or sorted(map(str, re.index)) == sorted(
        c["ranef_first_levels"])
    want_re = pd.DataFrame(np.asarray(c["ranef_first"], dtype=float), index=c["ranef_first_levels"])
    _close(re.loc[[type(re.index[0])(x) if not isinstance(re.index[0], str) else x
                   for x in c["ranef_first_levels"]]].to_numpy(), want_re.to_numpy(), 1e-7, "ranef")
    _close(fit.fitted(), c["fitted"], 1e-9, "fitted")
    _close(fit.residuals("response"), c["resid_response"], 1e-8, "residuals (response)")
    _close(fit.residuals("pearson"), c["resid_pearson"], 1e-8, "residuals (pearson)")
    _close(fit.residuals("pearson", scaled=True), c["resid_scaled"], 1e-8, "residuals (scaled)")
    _close(fit.predict(d.iloc[:6], re_form="NA"), c["predict_pop"], 1e-9, "predict, population")
    _close(fit.predict(d.iloc[:6]), c["predict_cond"], 1e-9, "predict, conditional")
    tab = fit.coef_table()
    _close(tab["df"], c["satterthwaite_df"], 1e-6, "Satterthwaite df")
    _close(tab["Pr(>|t|)"], c["satterthwaite_p"], 1e-5, "Satterthwaite p")


@pytest.mark.parametrize("case", list(REF))
def test_own_fit_parity(case):
    c, fit = REF[case], own_fit(case)
    np.testing.assert_allclose(fit.fixef, list(c["fixef"].values()), rtol=1e-4)
    np.testing.assert_allclose(fit.theta, np.atleast_1d(c["theta"]), rtol=1e-3, atol=1e-4)
    # at least as good an optimum as lme4's
    assert fit.loglik >= c["logLik"] - 1e-8


def test_ml_default_residuals_are_weighted_as_lme4():
    """lme4's default residuals: "response" for REML, "deviance" (sqrt(w) (y - mu)) for ML."""
    ml, reml = fit_at_theta("sleep_weights_ml"), fit_at_theta("sleep_weights_reml")
    _close(ml.residuals(), REF["sleep_weights_ml"]["resid_pearson"], 1e-8, "ML default")
    _close(reml.residuals(), REF["sleep_weights_reml"]["resid_response"], 1e-8, "REML default")


def test_constant_weights_change_only_sigma():
    """Weights all equal to c: the same model, reparameterized: the residual variance sigma^2 / c
    and the random effects' covariance sigma^2 Lambda Lambda' are unchanged, so sigma is sqrt(c)
    times the unweighted one and theta (Lambda relative to sigma) 1 / sqrt(c) times; beta, vcov
    and the log-likelihood are unchanged (its -sum(log w) / 2 offsets the larger sigma)."""
    s = hierlm.datasets.load("sleepstudy")
    f = "Reaction ~ Days + (Days | Subject)"
    a = hierlm.lmer(f, s, **TIGHT)
    b = hierlm.lmer(f, s, weights=np.full(len(s), 3.0), **TIGHT)
    np.testing.assert_allclose(b.theta, a.theta / np.sqrt(3.0), rtol=1e-5)
    np.testing.assert_allclose(b.fixef, a.fixef, rtol=1e-8)
    assert b.sigma == pytest.approx(np.sqrt(3.0) * a.sigma, rel=1e-7)
    assert b.loglik == pytest.approx(a.loglik, abs=1e-7)
    np.testing.assert_allclose(b.vcov, a.vcov, rtol=1e-5)  # two optimizations: theta agrees to ~1e-6


def test_offset_equals_fitting_the_difference():
    """y ~ x + offset(o) is y - o ~ x: the same theta, beta and likelihood; fitted values differ by o."""
    d = _data("sleep").copy()
    d["diff"] = np.log(d["Reaction"]) - d["logbase"]
    a = hierlm.lmer("log(Reaction) ~ Days + offset(logbase) + (Days | Subject)", d, **TIGHT)
    b = hierlm.lmer("diff ~ Days + (Days | Subject)", d, **TIGHT)
    np.testing.assert_allclose(a.theta, b.theta, rtol=1e-6)
    np.testing.assert_allclose(a.fixef, b.fixef, rtol=1e-9)
    assert a.loglik == pytest.approx(b.loglik, abs=1e-8)
    np.testing.assert_allclose(a.fitted() - d["logbase"].to_numpy(), b.fitted(), atol=1e-10)
    # a formula offset is evaluated on new rows, shifting the prediction by it
    new = d.iloc[:3].assign(logbase=d["logbase"].iloc[:3] + 1.0)
    np.testing.assert_allclose(a.predict(new) - a.predict(d.iloc[:3]), 1.0, atol=1e-12)


def test_simulate_scales_the_residuals_by_the_weights():
    """simulate(): residual SD sigma / sqrt(w) per row (4000 draws per row; the SD of a variance
    estimate from 4000 normal draws is 2.2%, so 8% is ~3.5 SE)."""
    fit = own_fit("sleep_weights_reml")
    sims = fit.simulate(4000, seed=1, use_u=True).to_numpy()
    resid = sims - fit.fitted().to_numpy()[:, None]
    w = _data("sleep")["w"].to_numpy()
    for wk in (1.0, 2.0, 3.0):
        v = np.var(resid[w == wk], axis=1).mean()
        assert v == pytest.approx(fit.sigma**2 / wk, rel=0.08)


def test_profile_intervals():
    """Profile intervals of the variance parameters equal lme4's.  lme4's profile of the fixed
    effects of a weighted fit is broken (non-monotonic, intervals of +-0.4 around an estimate
    whose Wald SE is 7; R warns), so ours are checked against the Wald intervals instead: within
    5% of their width, and containing the estimate."""
    c = REF["sleep_weights_reml"]["confint_profile"]
    ci = own_fit("sleep_weights_reml").confint()
    ref = pd.DataFrame({"lower": c["lower"], "upper": c["upper"]}, index=c["parm"])
    for p in ref.index[:4]:
        np.testing.assert_allclose(ci.loc[p].to_numpy(), ref.loc[p].to_numpy(), rtol=2e-3)
    wald = own_fit("sleep_weights_reml").confint(method="wald")
    for p in ("(Intercept)", "Days"):
        width = wald.loc[p].iloc[1] - wald.loc[p].iloc[0]
        np.testing.assert_allclose(ci.loc[p].to_numpy(), wald.loc[p].to_numpy(), atol=0.05 * width)


def test_kenward_roger_refused_with_weights_and_emmeans_says_so():
    fit = own_fit("chick_weights")
    with pytest.raises(HierlmError, match="Kenward-Roger's method is not available for a fit with prior weights"):
        fit.coef_table("kenward-roger")
    emm = hierlm.emmeans(fit, "Diet", at={"Time": 21})
    assert any("prior weights: Satterthwaite's df instead" in n for n in emm._notes())


def test_map_and_engine_posterior_take_weights():
    """MAP's Gaussian likelihood and the engine posterior read the same weighted blocks: the
    REML-like MAP of a weighted model sits near the REML fit, and the PyMC model refuses."""
    d = _data("sleep")
    m = hierlm.Model("Reaction ~ Days + (Days | Subject)", d, weights="w")
    reml = m.fit("reml")
    mp = m.fit("map")
    np.testing.assert_allclose(mp.fixef, reml.fixef, rtol=2e-3)
    assert mp.sigma == pytest.approx(reml.sigma, rel=0.05)
    with pytest.raises(HierlmError, match="PyMC model of a linear mixed model with prior weights"):
        m.to_pymc()


def test_posterior_predict_scales_the_noise_by_the_weights():
    """posterior_predict on the fitted rows of a weighted model: each draw's noise has SD
    sigma / sqrt(w) (it had sigma, as if unweighted); a new row has weight 1.  Per weight
    class, the noise variance over sigma^2 (pooled over 2000 draws x 60 rows) is 1 / w within
    5% (its SE is about 1%)."""
    m = hierlm.Model("Reaction ~ Days + (Days | Subject)", _data("sleep"), weights="w")
    post = m.fit("nuts", draws=500, tune=500, chains=4, random_seed=2, progressbar=False)
    noise = post.posterior_predict(seed=3) - post.posterior_epred()
    sig2 = post.draws("sigma").reshape(-1, 1) ** 2
    w = _data("sleep")["w"].to_numpy()
    for wk in (1.0, 2.0, 3.0):
        assert np.mean(noise[:, w == wk] ** 2 / sig2) == pytest.approx(1.0 / wk, rel=0.05)
    new = _data("sleep").iloc[:40]
    noise_new = post.posterior_predict(new, seed=4) - post.posterior_epred(new)
    assert np.mean(noise_new**2 / sig2) == pytest.approx(1.0, rel=0.05)
