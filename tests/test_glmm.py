"""Generalized linear mixed models: parity with lme4's glmer, the results API, bad input.

Reference values:

* tests/reference/lme4_reference.json (cases ``cbpp_binomial``, ``grouse_poisson``;
  lme4 1.1-31, made by tests/reference/lme4_reference.R): the acceptance
  tolerances of issue 6 -- logLik 1e-5 relative, fixed effects 1e-3 absolute,
  random-effect SDs 5e-3 relative; standard errors 1e-3 relative.
* tests/reference/glmm_reference.json (made by tests/reference/glmm_reference.R,
  lme4 1.1-31): nAGQ 0, 1, 9, 25; logit, probit, cloglog, sqrt links; cbind,
  proportion + weights and 0/1 responses; a Poisson offset; random slopes.
  Tolerances: logLik, AIC, BIC 1e-6 relative; deviance 1e-5 relative; fixed
  effects 1e-4 absolute; standard errors 1e-3 relative; SDs 1e-3 relative and
  correlations 1e-3 absolute; conditional modes 1e-3 absolute and their SDs
  1e-3 relative; fitted means and predicted means 1e-4 relative, predictions on
  the link scale 1e-4 absolute; Pearson and deviance residuals 5e-4 absolute.  (hierlm reproduces lme4's deviance function, PIRLS stopping
  rule included, so most agree to 1e-5 or better; lme4's own estimates move
  by ~2e-5 between runs on grouseticks.)

The derived columns below are the same as those built in glmm_reference.R.
"""

import json
import warnings
from functools import lru_cache
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from scipy import stats

import hierlm
from hierlm.errors import DataError, FormulaError, HierlmError, ModelError
from hierlm.family import Family, FamilyError
from hierlm.glmm import GLMMFit

HERE = Path(__file__).parent
LME4 = json.loads((HERE / "reference" / "lme4_reference.json").read_text())
REF = json.loads((HERE / "reference" / "glmm_reference.json").read_text())
CASES = [k for k in REF if not k.startswith("_")]
CBPP_F = "cbind(incidence, size - incidence) ~ period + (1 | herd)"
GROUSE_F = "TICKS ~ YEAR + cHEIGHT + (1 | INDEX) + (1 | BROOD) + (1 | LOCATION)"


@lru_cache(maxsize=None)
def _data(name):
    d = hierlm.datasets.load(name)
    if name == "cbpp":
        d["t"] = d["period"].cat.codes.astype(float) + 1.0
    else:
        d["TICKS01"] = (d["TICKS"] > 0).astype(float)
        d["h"] = d["cHEIGHT"] / 100.0
    return d


def data(name):
    return _data(name).copy()


@lru_cache(maxsize=None)
def fit_case(case):
    r = REF[case]
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # lme4 gave no warning for any case
        return hierlm.glmer(r["formula"], data(r["data"]), family=r["family"], link=r["link"],
                            nAGQ=r["nAGQ"], weights=r["weights"])


@lru_cache(maxsize=None)
def fit_lme4_case(case):
    r = LME4[case]
    return hierlm.glmer(r["formula"], data(r["data"]), family=r["family"])


# ---- acceptance: the two glmer cases of lme4_reference.json ----------------------------------

@pytest.mark.parametrize("case", ["cbpp_binomial", "grouse_poisson"])
def test_lme4_reference_parity(case):
    ref, fit = LME4[case], fit_lme4_case(case)
    assert fit.loglik == pytest.approx(ref["logLik"], rel=1e-5)
    np.testing.assert_allclose(fit.fixef.to_numpy(), list(ref["fixef"].values()), atol=1e-3)
    assert list(fit.fixef.index) == list(ref["fixef"])
    sds = fit.varcorr["sdcor"].to_numpy()
    np.testing.assert_allclose(sds, [v["sd"] for v in ref["varcorr"]], rtol=5e-3)
    se = np.sqrt(np.diag(fit.vcov.to_numpy()))
    np.testing.assert_allclose(se, list(ref["se"].values()), rtol=1e-3)
    assert fit.aic == pytest.approx(ref["AIC"], rel=1e-5)
    assert fit.bic == pytest.approx(ref["BIC"], rel=1e-5)
    assert fit.deviance == pytest.approx(ref["deviance"], rel=1e-4)
    assert fit.df == ref["df"] and fit.nobs == ref["nobs"]
    assert fit.ngroups == ref["ngroups"]
    assert fit.singular == ref["singular"]
    np.testing.assert_allclose(fit.theta, np.atleast_1d(ref["theta"]), rtol=5e-3)


# ---- the cases of glmm_reference.json ---------------------------------------------------------

@pytest.mark.parametrize("case", CASES)
def test_criteria(case):
    r, fit = REF[case], fit_case(case)
    assert fit.loglik == pytest.approx(r["logLik"], rel=1e-6)
    assert fit.aic == pytest.approx(r["AIC"], rel=1e-6)
    assert fit.bic == pytest.approx(r["BIC"], rel=1e-6)
    assert fit.deviance == pytest.approx(r["deviance"], rel=1e-5)
    assert fit.df == r["df"]
    assert fit.df_residual == r["df_resid"]
    assert fit.nobs == r["nobs"]
    assert fit.ngroups == r["ngroups"]
    assert fit.singular == r["singular"]


@pytest.mark.parametrize("case", CASES)
def test_fixed_effects_and_standard_errors(case):
    r, fit = REF[case], fit_case(case)
    assert list(fit.fixef.index) == list(r["fixef"])
    np.testing.assert_allclose(fit.fixef.to_numpy(), list(r["fixef"].values()), atol=1e-4)
    se = np.sqrt(np.diag(fit.vcov.to_numpy()))
    np.testing.assert_allclose(se, list(r["se"].values()), rtol=1e-3)


@pytest.mark.parametrize("case", CASES)
def test_variance_components(case):
    r, fit = REF[case], fit_case(case)
    vc, ref = fit.varcorr, r["varcorr"]
    assert list(vc["group"]) == list(ref["grp"])
    assert list(vc["var1"]) == list(ref["var1"])
    is_sd = np.array([v is None for v in ref["var2"]])
    sdcor, refv = vc["sdcor"].to_numpy(), np.array(ref["sdcor"], dtype=float)
    np.testing.assert_allclose(sdcor[is_sd], refv[is_sd], rtol=1e-3)
    np.testing.assert_allclose(sdcor[~is_sd], refv[~is_sd], atol=1e-3)
    np.testing.assert_allclose(fit.theta, np.atleast_1d(r["theta"]), rtol=2e-3, atol=1e-4)


@pytest.mark.parametrize("case", CASES)
def test_conditional_modes(case):
    r, fit = REF[case], fit_case(case)
    rf = fit.ranef_frame()
    ref = r["ranef"]
    assert list(rf["grpvar"]) == ref["grp"] and list(rf["term"]) == ref["term"]
    assert [str(x) for x in rf["grp"]] == ref["level"]
    np.testing.assert_allclose(rf["condval"], ref["condval"], atol=1e-3)
    np.testing.assert_allclose(rf["condsd"], ref["condsd"], rtol=1e-3)


@pytest.mark.parametrize("case", CASES)
def test_fitted_residuals_predictions(case):
    r, fit = REF[case], fit_case(case)
    np.testing.assert_allclose(fit.fitted(), r["fitted"], rtol=1e-4, atol=1e-8)
    np.testing.assert_allclose(fit.residuals("pearson"), r["pearson"], atol=5e-4)
    np.testing.assert_allclose(fit.residuals(), r["deviance_resid"], atol=5e-4)
    nd = data(r["data"]).iloc[:6]
    np.testing.assert_allclose(fit.predict(nd), r["predict_link_new"], atol=1e-4)
    np.testing.assert_allclose(fit.predict(nd, type="response"), r["predict_response_new"], rtol=1e-4)
    np.testing.assert_allclose(fit.predict(nd, re_form=False, type="response"), r["predict_population_new"],
                               rtol=1e-4)


@pytest.mark.parametrize("case", [c for c in CASES if "overdispersion" in REF[c]])
def test_overdispersion_matches_glmm_faq(case):
    r, fit = REF[case], fit_case(case)
    od, ref = fit.overdispersion(), r["overdispersion"]
    assert od.rdf == ref["rdf"]
    assert od.chisq == pytest.approx(ref["chisq"], rel=1e-4)
    assert od.ratio == pytest.approx(ref["ratio"], rel=1e-4)
    assert od.p_value == pytest.approx(ref["p"], abs=1e-4)


@pytest.mark.parametrize("case", ["cbpp_laplace", "grouse_poisson", "cbpp_probit_agq9"])
def test_summary_matches_glmer_layout(case):
    r, fit = REF[case], fit_case(case)
    fit.data_name = "dat"
    mine = [x.rstrip() for x in str(fit.summary()).splitlines()]
    theirs = [x.rstrip() for x in r["summary"]]
    # title (wrapped as lme4 wraps it), family, data, criteria rounded as printed
    assert mine[:3] == theirs[:3]
    assert mine[4] == theirs[4]
    start = theirs.index("     AIC      BIC   logLik deviance df.resid")
    assert mine[start: start + 2] == theirs[start: start + 2]
    for block in ("Scaled residuals:", "Random effects:", "Fixed effects:", "Correlation of Fixed Effects:"):
        assert block in mine
    # the random-effects header: no Corr column when no term has a correlation (lme4's formatVC)
    i, j = mine.index("Random effects:"), theirs.index("Random effects:")
    assert mine[i + 1] == theirs[j + 1]
    i, j = mine.index("Fixed effects:"), theirs.index("Fixed effects:")
    assert mine[i + 1] == theirs[j + 1]  # header
    for a, b in zip(mine[i + 2: i + 2 + fit.design.p], theirs[j + 2: j + 2 + fit.design.p]):
        ta, tb = a.split(), b.split()
        assert ta[0] == tb[0]
        np.testing.assert_allclose([float(x) for x in ta[1:4]], [float(x) for x in tb[1:4]], atol=2e-3)
        assert ta[5:] == tb[5:]  # significance stars
    assert "Signif. codes:" in "\n".join(mine)
    assert "Number of obs:" in "\n".join(mine)


def test_agq_more_nodes_changes_little_and_differs_from_laplace():
    a9, a25, lap = fit_case("cbpp_agq9"), fit_case("cbpp_agq25"), fit_case("cbpp_laplace")
    assert abs(a9.loglik - a25.loglik) < 1e-4
    np.testing.assert_allclose(a9.fixef, a25.fixef, atol=1e-4)
    # lme4's AGQ deviance is built from deviance residuals: no saturated-model constant
    assert abs(a9.loglik - lap.loglik) > 10
    assert "Adaptive Gauss-Hermite Quadrature, nAGQ = 9" in " ".join(str(a9.summary()).split())


def test_proportion_with_weights_equals_cbind():
    a, b = fit_case("cbpp_laplace"), fit_case("cbpp_weights")
    assert a.loglik == pytest.approx(b.loglik, rel=1e-9)
    np.testing.assert_allclose(a.fixef, b.fixef, atol=1e-7)
    np.testing.assert_allclose(b.weights, data("cbpp")["size"])


# ---- the API ------------------------------------------------------------------------------

def test_model_fit_dispatch_and_methods():
    cbpp = data("cbpp")
    m = hierlm.Model(CBPP_F, cbpp, family="binomial")
    f1 = m.fit()
    assert isinstance(f1, GLMMFit)
    assert f1.loglik == pytest.approx(fit_case("cbpp_laplace").loglik, rel=1e-12)
    assert m.fit("ml").loglik == pytest.approx(f1.loglik, rel=1e-12)
    f0 = m.fit("laplace", nAGQ=0)
    assert f0.loglik == pytest.approx(REF["cbpp_nagq0"]["logLik"], rel=1e-6)
    with pytest.raises(HierlmError, match="there is no REML"):
        m.fit("reml")
    with pytest.raises(HierlmError, match="unknown option"):
        m.fit("map", nAGQ=2)  # MAP and NUTS for GLMMs: tests/test_map_glmm.py, tests/test_bayes_glmm.py
    with pytest.raises(HierlmError, match="is for generalized linear mixed models"):
        hierlm.Model("Reaction ~ Days + (1 | Subject)", hierlm.datasets.load("sleepstudy")).fit("laplace")


def test_factor_and_boolean_responses_equal_0_1():
    g = data("grouseticks")
    f = "TICKS01 ~ YEAR + cHEIGHT + (1 | BROOD) + (1 | LOCATION)"
    ref = fit_case("grouse_bernoulli")
    g["ticked"] = pd.Categorical(np.where(g["TICKS"] > 0, "yes", "no"), categories=["no", "yes"])
    g["any"] = g["TICKS"] > 0
    for col in ("ticked", "any"):
        fit = hierlm.glmer(f.replace("TICKS01", col), g)
        assert fit.loglik == pytest.approx(ref.loglik, rel=1e-10)
        np.testing.assert_allclose(fit.fixef, ref.fixef, atol=1e-8)


def test_offset_argument_equals_offset_term():
    cbpp = data("cbpp")
    ref = fit_case("cbpp_poisson_offset")
    fit = hierlm.glmer("incidence ~ period + (1 | herd)", cbpp, family="poisson", offset=np.log(cbpp["size"]))
    assert fit.loglik == pytest.approx(ref.loglik, rel=1e-10)
    # the formula's offset is evaluated on new data; with size doubled the rate stays, the mean doubles
    nd = cbpp.iloc[:4].assign(size=cbpp["size"].iloc[:4] * 2)
    np.testing.assert_allclose(ref.predict(nd, type="response"), 2 * ref.predict(cbpp.iloc[:4], type="response"))


def test_predict_and_fitted_are_consistent():
    fit = fit_case("grouse_poisson")
    eta = fit.predict()
    np.testing.assert_allclose(np.exp(eta), fit.fitted(), rtol=1e-12)
    np.testing.assert_allclose(fit.predict(type="response"), fit.fitted(), rtol=1e-12)
    pop = fit.predict(re_form="~0")
    X = fit.design.X
    np.testing.assert_allclose(pop, X @ fit.fixef.to_numpy(), rtol=1e-12)
    # only the BROOD term
    only = fit.predict(re_form="~(1 | BROOD)")
    b = fit.ranef()["BROOD"]["(Intercept)"]
    np.testing.assert_allclose(only, pop + b.loc[data("grouseticks")["BROOD"].astype(str)].to_numpy(), rtol=1e-10)
    with pytest.raises(HierlmError, match="type must be"):
        fit.predict(type="mean")


def test_residual_types():
    fit = fit_case("cbpp_laplace")
    y, mu, wt = fit.system.y, fit.fitted().to_numpy(), fit.weights.to_numpy()
    np.testing.assert_allclose(fit.residuals("response"), y - mu)
    np.testing.assert_allclose(fit.residuals("pearson"), (y - mu) * np.sqrt(wt / (mu * (1 - mu))))
    dev = fit.residuals("deviance").to_numpy()
    assert np.sum(dev**2) == pytest.approx(fit.deviance, rel=1e-12)
    assert np.all(np.sign(dev[y != mu]) == np.sign((y - mu)[y != mu]))
    np.testing.assert_allclose(fit.residuals("working"), (y - mu) / (mu * (1 - mu)))
    with pytest.raises(HierlmError, match="type must be"):
        fit.residuals("studentized")


def test_coef_table_and_vcov():
    fit = fit_case("cbpp_laplace")
    tab = fit.coef_table()
    assert list(tab.columns) == ["Estimate", "Std. Error", "z value", "Pr(>|z|)"]
    np.testing.assert_allclose(tab["z value"], tab["Estimate"] / tab["Std. Error"])
    np.testing.assert_allclose(tab["Pr(>|z|)"], 2 * stats.norm.sf(np.abs(tab["z value"])))
    V = fit.vcov.to_numpy()
    assert np.allclose(V, V.T) and np.linalg.eigvalsh(V).min() > 0
    # without the Hessian lme4 falls back to (R_X' R_X)^-1 of PIRLS: close, not equal
    fit_rx = hierlm.glmer(CBPP_F, data("cbpp"), calc_derivs=False)
    se_rx = np.sqrt(np.diag(fit_rx.vcov))
    se = np.sqrt(np.diag(V))
    assert np.all(np.abs(se_rx / se - 1) < 0.05) and not np.allclose(se_rx, se, rtol=1e-4)
    assert fit_rx.optinfo.hessian is None


def test_ranef_coef_and_condvar_layout():
    fit = fit_case("cbpp_slope")
    re = fit.ranef(condvar=True)["herd"]
    assert list(re.columns) == [("condval", "(Intercept)"), ("condval", "t"), ("condsd", "(Intercept)"),
                                ("condsd", "t")]
    co = fit.coef()["herd"]
    np.testing.assert_allclose(co["t"], fit.fixef["t"] + re[("condval", "t")])
    assert len(fit.condvar[0]) == 15 and fit.condvar[0].shape[1:] == (2, 2)


def test_simulate():
    fit = fit_case("cbpp_laplace")
    sims = fit.simulate(3, seed=42)
    assert sims.shape == (56, 3) and list(sims.columns) == ["sim_1", "sim_2", "sim_3"]
    pd.testing.assert_frame_equal(sims, fit.simulate(3, seed=42))
    counts = sims.to_numpy() * fit.weights.to_numpy()[:, None]
    np.testing.assert_allclose(counts, np.round(counts), atol=1e-9)
    assert sims.to_numpy().min() >= 0 and sims.to_numpy().max() <= 1
    # with the conditional modes the simulated mean is the fitted mean (2000 draws: 4 SE)
    many = fit.simulate(2000, seed=1, use_u=True).to_numpy()
    mu, wt = fit.fitted().to_numpy(), fit.weights.to_numpy()
    se = np.sqrt(mu * (1 - mu) / wt / 2000)
    assert np.all(np.abs(many.mean(axis=1) - mu) < 4.5 * se + 1e-12)
    pois = fit_case("grouse_poisson").simulate(2, seed=0).to_numpy()
    assert np.all(pois == np.round(pois)) and pois.min() >= 0
    with pytest.raises(HierlmError, match="nsim"):
        fit.simulate(0)


def test_overdispersion_advice():
    g = data("grouseticks")
    # without the observation-level effect INDEX the counts are overdispersed
    fit = hierlm.glmer("TICKS ~ YEAR + cHEIGHT + (1 | BROOD) + (1 | LOCATION)", g, family="poisson")
    od = fit.overdispersion()
    pear = fit.residuals("pearson").to_numpy()
    assert od.chisq == pytest.approx(np.sum(pear**2))
    assert od.rdf == 403 - 6 and od.ratio > 1.5 and od.overdispersed
    assert "(1 | obs)" in str(od)
    ok = fit_case("grouse_poisson").overdispersion()
    assert not ok.overdispersed and "No evidence" in str(ok)
    with pytest.raises(HierlmError, match="Bernoulli"):
        fit_case("grouse_bernoulli").overdispersion()


def test_exact_pirls_is_the_laplace_optimum():
    """pirls="exact" maximizes the Laplace approximation itself: at least
    lme4's log-likelihood (whose PIRLS stops early), within 1e-5."""
    exact = hierlm.glmer(CBPP_F, data("cbpp"), pirls="exact")
    lme4 = fit_case("cbpp_laplace")
    assert exact.loglik >= lme4.loglik - 1e-9
    assert exact.loglik == pytest.approx(lme4.loglik, rel=1e-5)
    np.testing.assert_allclose(exact.fixef, lme4.fixef, atol=1e-3)


def test_print_and_repr():
    fit = fit_case("grouse_poisson")
    text = repr(fit)
    assert text.splitlines()[2] == " Family: poisson  ( log )"
    assert "Fixed Effects:" in text and "BROOD" in text
    s = str(fit.summary())
    assert "z value Pr(>|z|)" in s
    html = fit.summary()._repr_html_()
    assert html.count("<table class='hierlm'>") >= 2  # random and fixed effects
    assert "<th style='text-align: right'>Pr(&gt;|z|)</th>" in html
    assert fit._repr_html_().count("<table class='hierlm'>") == 2  # print(fit): random effects, fixed effects


def test_gaussian_only_helpers_refuse_glmm_fits():
    # icc() and r2() of GLMMs: tests/test_variance_glmm.py, against performance
    fit = fit_case("cbpp_laplace")
    with pytest.raises(HierlmError, match="not available for binomial fits"):
        fit.to_bambi()
    assert "Residual" not in set(fit.varcorr["group"])


def test_family_objects():
    f = Family("binomial", "probit")
    eta = np.array([-2.0, 0.0, 1.5])
    np.testing.assert_allclose(f.linkinv(eta), stats.norm.cdf(eta))
    np.testing.assert_allclose(f.mu_eta(eta), stats.norm.pdf(eta))
    np.testing.assert_allclose(f.linkfun(f.linkinv(eta)), eta)
    c = Family("binomial", "cloglog")
    np.testing.assert_allclose(c.linkinv(eta), 1 - np.exp(-np.exp(eta)))
    p = Family("poisson")
    y, mu = np.array([0.0, 3.0]), np.array([0.5, 2.0])
    np.testing.assert_allclose(p.dev_resid(y, mu, np.ones(2)), [1.0, 2 * (3 * np.log(1.5) - 1)])
    assert p.aic(y, np.ones(2), mu, np.ones(2)) == pytest.approx(-2 * stats.poisson.logpmf(y, mu).sum())
    b = Family("binomial")
    yb, n = np.array([0.25, 1.0]), np.array([4.0, 2.0])
    assert b.aic(yb, n, np.array([0.3, 0.6]), n) == pytest.approx(
        -2 * stats.binom.logpmf([1, 2], [4, 2], [0.3, 0.6]).sum())


# ---- bad input ---------------------------------------------------------------------------

def test_binomial_response_outside_unit_interval():
    g = data("grouseticks")
    with pytest.raises(DataError, match=r"'TICKS' must lie in \[0, 1\].*row positions \[") as info:
        hierlm.glmer("TICKS ~ YEAR + (1 | BROOD)", g, family="binomial")
    rows = np.flatnonzero(g["TICKS"].to_numpy() > 1)[:5].tolist()
    assert str(rows) in str(info.value)
    assert isinstance(info.value, HierlmError)


def test_cbind_counts_must_be_whole_and_not_negative():
    cbpp = data("cbpp")
    bad = cbpp.assign(incidence=cbpp["incidence"].astype(float))
    bad.loc[[3, 7], "incidence"] += 0.5
    with pytest.raises(DataError, match=r"'incidence' has non-integer counts in 2 row\(s\).*\[3, 7\]"):
        hierlm.glmer(CBPP_F, bad)
    neg = cbpp.copy()
    neg.loc[5, "incidence"] = -1
    with pytest.raises(DataError, match=r"'incidence' has negative counts.*\[5\]"):
        hierlm.glmer(CBPP_F, neg)


def test_successes_more_than_trials():
    cbpp = data("cbpp")
    cbpp.loc[2, "incidence"] = cbpp.loc[2, "size"] + 3
    with pytest.raises(DataError, match=r"'size - incidence' has negative counts.*successes > trials.*\[2\]"):
        hierlm.glmer(CBPP_F, cbpp)
    with pytest.raises(DataError, match=r"outside in 1 row\(s\).*\[2\].*successes > trials"):
        hierlm.glmer("incidence/size ~ period + (1 | herd)", cbpp, weights="size")


def test_poisson_counts_must_be_whole_and_not_negative():
    g = data("grouseticks")
    neg = g.copy()
    neg.loc[[10, 20, 30], "TICKS"] = -2
    with pytest.raises(DataError, match=r"'TICKS' must be a count >= 0.*3 row\(s\).*\[10, 20, 30\]"):
        hierlm.glmer(GROUSE_F, neg, family="poisson")
    frac = g.assign(TICKS=g["TICKS"] + 0.25)
    with pytest.raises(DataError, match=r"'TICKS' must be a whole-number count.*offset\(log"):
        hierlm.glmer(GROUSE_F, frac, family="poisson")


def test_unknown_family_and_link():
    cbpp = data("cbpp")
    with pytest.raises(FamilyError, match=r"link 'log-log' is not available for family 'binomial'.*cloglog"):
        hierlm.glmer(CBPP_F, cbpp, link="log-log")
    with pytest.raises(FamilyError, match=r"link 'logit' is not available for family 'poisson'"):
        hierlm.glmer("incidence ~ period + (1 | herd)", cbpp, family="poisson", link="logit")
    with pytest.raises(HierlmError, match="family 'tweedie' is not supported"):
        hierlm.glmer(CBPP_F, cbpp, family="tweedie")
    with pytest.raises(HierlmError, match="use hierlm.lmer"):
        hierlm.glmer("Reaction ~ Days + (1 | Subject)", hierlm.datasets.load("sleepstudy"), family="gaussian")
    assert issubclass(FamilyError, HierlmError)


def test_bad_weights_offsets_and_options():
    cbpp = data("cbpp")
    f = "incidence/size ~ period + (1 | herd)"
    with pytest.raises(DataError, match="weights has 3 values but the data has 56 rows"):
        hierlm.glmer(f, cbpp, weights=[1, 2, 3])
    with pytest.raises(DataError, match="weights='sizes' is not a column.*'size'"):
        hierlm.glmer(f, cbpp, weights="sizes")
    with pytest.raises(DataError, match=r"weights must not be negative.*\[0\]"):
        hierlm.glmer(f, cbpp, weights=-cbpp["size"].where(cbpp.index == 0, -cbpp["size"]))
    with pytest.raises(ModelError, match=r"cbind\(\) responses are for binomial"):
        hierlm.lmer("cbind(Reaction, Days) ~ 1 + (1 | Subject)", hierlm.datasets.load("sleepstudy"))
    with pytest.raises(DataError, match="needs family='binomial'"):
        hierlm.glmer(CBPP_F, cbpp, family="poisson")
    with pytest.raises(FormulaError, match=r"cbind\(successes, failures\) with two"):
        hierlm.glmer("cbind(incidence) ~ period + (1 | herd)", cbpp)
    with pytest.raises(HierlmError, match="single, scalar random-effects term"):
        hierlm.glmer(GROUSE_F, data("grouseticks"), family="poisson", nAGQ=5)
    with pytest.raises(HierlmError, match="nAGQ must be an integer from 0 to 25"):
        hierlm.glmer(CBPP_F, cbpp, nAGQ=26)
    with pytest.raises(HierlmError, match="unknown control option"):
        hierlm.glmer(CBPP_F, cbpp, tolerance=1)
    with pytest.raises(HierlmError, match="response is constant"):
        hierlm.glmer("incidence ~ period + (1 | herd)", cbpp.assign(incidence=3), family="poisson")


@pytest.mark.parametrize("case", ["cbpp_slope", "grouse_poisson", "grouse_poisson_slope", "grouse_bernoulli_slope"])
def test_schur_complement_by_pairs_or_dense_agree(case):
    """Both ways of forming the Schur complement give the same PIRLS modes and Laplace deviance."""
    from hierlm.glmm.pirls import PirlsSystem

    fit = fit_case(case)
    sysm = fit.system
    out = {}
    for how in ("pairs", "dense"):
        other = PirlsSystem(fit.design, fit.family, sysm.y, sysm.wt, sysm.ntrials, sysm.offset, schur=how)
        joint = other.pirls(fit.theta * 0.9)
        mode = other.pirls(fit.theta * 1.1, fit.fixef.to_numpy(), eta0=joint.eta)
        assert other._positions(False)["method"] == how
        out[how] = (other.laplace(joint), other.laplace(mode), mode.u)
    assert out["pairs"][0] == pytest.approx(out["dense"][0], rel=1e-12)
    assert out["pairs"][1] == pytest.approx(out["dense"][1], rel=1e-12)
    np.testing.assert_allclose(out["pairs"][2], out["dense"][2], atol=1e-9)


def test_formula_cbind_and_offset_parsing():
    from hierlm.formula import parse_formula

    f = parse_formula("cbind(incidence, size - incidence) ~ offset(log(size)) + period + (1 | herd)")
    assert f.response_parts == ("incidence", "size - incidence")
    assert f.offsets == ("log(size)",)
    assert f.fixed == "period"
    assert parse_formula("y ~ x + (1 | g)").response_parts is None
    assert parse_formula("y ~ x + (1 | g)").offsets == ()
    assert parse_formula("y ~ offset(t) + (1 | g)").fixed == "1"
    with pytest.raises(FormulaError, match=r"'\+ offset\(expression\)'"):
        parse_formula("y ~ x - offset(t) + (1 | g)")
    with pytest.raises(FormulaError, match="two columns"):
        _ = parse_formula("cbind(a, b, c) ~ x + (1 | g)").response_parts


def test_missing_values_in_weights_and_offset_columns_drop_rows():
    cbpp = data("cbpp").astype({"size": float})
    cbpp.loc[[4, 9], "size"] = np.nan
    with pytest.warns(UserWarning, match="dropped 2 of 56 rows"):
        fit = hierlm.glmer("incidence/size ~ period + (1 | herd)", cbpp, weights="size")
    assert fit.nobs == 54
    full = data("cbpp").drop(index=[4, 9])
    ref = hierlm.glmer(CBPP_F, full)
    assert fit.loglik == pytest.approx(ref.loglik, rel=1e-10)
    assert list(fit.fitted().index) == list(full.index)
