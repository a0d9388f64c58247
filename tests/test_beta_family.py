"""The beta family (logit link, precision phi) by the Laplace approximation, against glmmTMB.

Reference: tests/reference/beta.json (beta.R; R 4.2.2, glmmTMB 1.1.5): ``beta_family()`` fits
of ``y ~ gender + (1 | school)`` on mlmRev's Gcsemv, with y the written score / 100 and the
coursework score / 100 squeezed off its eighteen 1s (Smithson & Verkuilen's
``(y (n - 1) + 0.5) / n``).  glmmTMB maximizes the same Laplace likelihood (observed
information of the random effects), so the issue's tolerances apply: logLik 1e-6 relative,
estimates 1e-4, SDs 1e-3; the fixed effects' standard errors (glmmTMB: from the Hessian over
all parameters, phi included) within 1e-4 relative.
"""

import json
from functools import cache
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from posterior_checks import assert_matches_brms
from scipy import special, stats

import hierlm
from hierlm.errors import DataError, HierlmError
from hierlm.family import Family

HERE = Path(__file__).parent / "reference"
REF = json.loads((HERE / "beta.json").read_text())["cases"]
FORMULA = "y ~ gender + (1|school)"


def _data(case: str) -> pd.DataFrame:
    g = pd.read_csv(HERE / "Gcsemv.csv", dtype={"school": str, "student": str})
    if case == "written":
        return g[g.written.notna()].assign(y=lambda f: f.written / 100)
    d = g[g.course.notna()].copy()
    n = len(d)
    d["y"] = (d.course / 100 * (n - 1) + 0.5) / n
    return d


@cache
def _fit(case: str):
    return hierlm.glmer(FORMULA, _data(case), family="beta")


@pytest.mark.parametrize("case", ["written", "course"])
def test_laplace_fit_matches_glmmtmb(case):
    ref, fit = REF[case], _fit(case)
    assert fit.nobs == ref["n"]
    np.testing.assert_allclose(fit.loglik, ref["logLik"], rtol=1e-6)
    np.testing.assert_allclose(fit.fixef.to_numpy(), list(ref["fixef"].values()), rtol=1e-4, atol=1e-6)
    sd = np.sqrt(fit.varcorr["vcov"].iloc[0])
    np.testing.assert_allclose(sd, ref["sd_school"], rtol=1e-3)
    np.testing.assert_allclose(fit.family.params["phi"], ref["phi"], rtol=1e-4)
    np.testing.assert_allclose(np.sqrt(np.diag(fit.vcov)), np.sqrt(np.diag(ref["vcov"])), rtol=1e-4)
    np.testing.assert_allclose(fit.aic, ref["AIC"], rtol=1e-6)
    re = fit.ranef()["school"]["(Intercept)"]
    np.testing.assert_allclose(re.loc[ref["ranef_levels"]].to_numpy(), ref["ranef"], atol=1e-4)
    np.testing.assert_allclose(fit.fitted().to_numpy()[:20], ref["fitted_head"], atol=1e-5)


def test_pirls_weights_are_the_beta_likelihoods():
    # working weights = expected information, residuals = score / information; the
    # observed weights = -d2 log f / d eta2, checked by finite differences of scipy's log-density
    fam = Family("beta", phi=7.5)
    y = np.array([0.1, 0.45, 0.93])
    eta = np.array([-1.2, 0.3, 2.0])
    wt = np.ones(3)

    def logf(e):
        mu = special.expit(e)
        return stats.beta.logpdf(y, mu * 7.5, (1 - mu) * 7.5)

    h = 1e-4
    d1 = (logf(eta + h) - logf(eta - h)) / (2 * h)
    d2 = (logf(eta + h) - 2 * logf(eta) + logf(eta - h)) / h**2
    np.testing.assert_allclose(fam.observed_weights(y, eta, wt), -d2, rtol=1e-5)
    mu, d = fam.linkinv(eta), fam.mu_eta(eta)
    w, res = fam.working(y, mu, d, wt)
    np.testing.assert_allclose(w * res, d1, rtol=1e-6)
    # expected information: E[-d2] = the observed weights averaged over y ~ Beta
    draws = stats.beta.rvs(mu * 7.5, (1 - mu) * 7.5, size=(200000, 3), random_state=1)
    obs = fam.observed_weights(draws.ravel(), np.tile(eta, 200000), np.ones(600000)).reshape(-1, 3)
    se = obs.std(axis=0) / np.sqrt(len(obs))
    assert np.all(np.abs(obs.mean(axis=0) - w) < 4 * se)  # Monte Carlo error only
    np.testing.assert_allclose(fam.dev_resid(y, mu, wt), -2 * stats.beta.logpdf(y, mu * 7.5, (1 - mu) * 7.5))


def test_trigamma_agrees_with_scipy():
    from hierlm.family import trigamma

    x = np.concatenate([np.logspace(-6, 5, 20000), np.linspace(0.01, 60.0, 20000)])
    np.testing.assert_allclose(trigamma(x), special.polygamma(1, x), rtol=5e-15)
    assert np.isnan(trigamma(np.array([0.0, -1.0, np.nan]))).all()


def test_simulate_then_refit_recovers_the_parameters():
    rng = np.random.default_rng(11)
    groups, per = 60, 25
    g = np.repeat(np.arange(groups), per)
    x = rng.normal(size=g.size)
    b = rng.normal(0.0, 0.6, groups)
    mu = special.expit(0.4 + 0.8 * x + b[g])
    phi = 12.0
    y = rng.beta(mu * phi, (1 - mu) * phi)
    fit = hierlm.glmer("y ~ x + (1|g)", pd.DataFrame({"y": y, "x": x, "g": g.astype(str)}), family="beta")
    se = np.sqrt(np.diag(fit.vcov))
    assert np.all(np.abs((fit.fixef.to_numpy() - [0.4, 0.8]) / se) < 3)
    assert abs(np.sqrt(fit.varcorr["vcov"].iloc[0]) - 0.6) < 0.15
    assert abs(np.log(fit.family.params["phi"] / phi)) < 0.15
    # and simulate() draws from the fitted beta: proportions in (0, 1) around the fitted means
    sim = fit.simulate(nsim=50, seed=3)
    assert sim.to_numpy().min() > 0 and sim.to_numpy().max() < 1
    np.testing.assert_allclose(sim.to_numpy().mean(axis=1).mean(), fit.fitted().mean(), atol=0.01)


def test_response_at_the_edges_is_refused_with_advice():
    g = pd.read_csv(HERE / "Gcsemv.csv", dtype={"school": str, "student": str})
    d = g[g.course.notna()].assign(y=lambda f: f.course / 100)  # 18 scores of exactly 100
    with pytest.raises(DataError, match=r"strictly between 0 and 1; it is exactly 0 or 1 in 18 row\(s\).*Smithson"):
        hierlm.glmer(FORMULA, d, family="beta")
    with pytest.raises(DataError, match="outside \\(0, 1\\)"):
        hierlm.glmer(FORMULA, d.assign(y=d.course), family="beta")


def test_residuals_and_what_is_not_defined():
    fit = _fit("written")
    y, mu = _data("written").y.to_numpy(), fit.fitted().to_numpy()
    np.testing.assert_allclose(fit.residuals().to_numpy(), y - mu)  # glmmTMB's default type
    phi = fit.family.params["phi"]
    np.testing.assert_allclose(fit.residuals(type="pearson").to_numpy(),
                               (y - mu) / np.sqrt(mu * (1 - mu) / (1 + phi)), rtol=1e-10)
    with pytest.raises(HierlmError, match="deviance residuals are not defined for the beta family"):
        fit.residuals(type="deviance")
    with pytest.raises(HierlmError, match="no deviance"):
        fit.deviance  # noqa: B018
    with pytest.raises(HierlmError, match="not available yet"):
        fit.icc()
    text = str(fit.summary())
    assert "Family: beta  ( logit )" in text


def test_map_with_flat_priors_is_the_laplace_fit():
    # phi is one more coordinate of the MAP (its log): flat priors give glmmTMB's estimate
    lap = _fit("written")
    m = hierlm.Model(FORMULA, _data("written"), family="beta")
    flat = m.fit("map", priors="flat")
    np.testing.assert_allclose(flat.fixef, lap.fixef, rtol=1e-4, atol=1e-5)
    assert flat.family.params["phi"] == pytest.approx(lap.family.params["phi"], rel=1e-4)
    assert np.sqrt(flat.varcorr["vcov"].iloc[0]) == pytest.approx(np.sqrt(lap.varcorr["vcov"].iloc[0]), rel=1e-3)
    assert "Family parameter phi (mode, approximate posterior SD)" in str(m.fit("map").summary())


BRMS = json.loads((HERE / "beta_brms.json").read_text())["cases"]["gcse_written_beta"]
BRMS_NAMES = {"b_Intercept": "fixef[(Intercept)]", "b_genderM": "fixef[genderM]",
              "sd_school__Intercept": "sd_school[(Intercept)]", "phi": "phi"}


def test_nuts_agrees_with_brms():
    """NUTS (4 chains x 1000 draws after 1000 tuning, brms's defaults) with the priors that
    tests/reference/beta_brms.R gave brms: every posterior mean within 3 Monte Carlo SEs of
    the difference plus 2% of the posterior SD; no divergences; R-hat <= 1.01."""
    m = hierlm.Model(FORMULA, _data("written"), family="beta")
    assert m.priors.targets()[-1] == "phi"
    post = m.fit("nuts", random_seed=11, progressbar=False)
    assert post.divergences == 0
    assert post.diagnostics["r_hat"].max() <= 1.01
    assert_matches_brms(post, BRMS, BRMS_NAMES)
    assert "Family Specific Parameters:" in str(post.summary())
    # posterior predictions are beta proportions; the pointwise log-likelihood is scipy's beta
    pp = post.posterior_predict()
    assert pp.min() > 0 and pp.max() < 1
    ll = post.idata.log_likelihood["y"].to_numpy()
    phi = post.idata.posterior["phi"].to_numpy()
    mu = post.posterior_epred()
    y = _data("written").y.to_numpy()
    np.testing.assert_allclose(ll[0, 0], stats.beta.logpdf(y, mu[0] * phi[0, 0], (1 - mu[0]) * phi[0, 0]),
                               rtol=1e-8)


def test_names():
    assert Family("beta_family").name == "beta"
    assert Family("beta", "probit").link == "probit"
    with pytest.raises(HierlmError, match="positive"):
        Family("beta", phi=-1.0)
