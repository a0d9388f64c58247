"""NUTS for binomial and Poisson mixed models (issue 6, item 4).

References are hierlm's own Laplace fits (``hierlm.glmer``), which
tests/test_glmm.py checks against lme4's glmer: with these data the
posterior medians of the fixed effects under brms-like weak priors lie
close to the maximum-likelihood estimates (acceptance: within 0.3 Laplace
SEs on cbpp with default settings).
"""

import numpy as np
import pytest

pytest.importorskip("pymc")
pytest.importorskip("nutpie")

import hierlm  # noqa: E402
from hierlm import datasets  # noqa: E402
from hierlm.errors import HierlmError  # noqa: E402

CBPP = "cbind(incidence, size - incidence) ~ period + (1|herd)"
GROUSE = "TICKS ~ YEAR + cHEIGHT + (1|BROOD) + (1|LOCATION)"


@pytest.fixture(scope="module")
def cbpp():
    return datasets.load("cbpp")


@pytest.fixture(scope="module")
def cbpp_nuts(cbpp):
    # the acceptance setting: default sampler, 4 chains x 1000 draws after 1000 tuning
    return hierlm.Model(CBPP, cbpp, family="binomial").fit("nuts", random_seed=20240, progressbar=False)


@pytest.fixture(scope="module")
def cbpp_laplace(cbpp):
    return hierlm.glmer(CBPP, cbpp, family="binomial")


def test_cbpp_converges_without_divergences(cbpp_nuts):
    assert cbpp_nuts.divergences == 0
    dg = cbpp_nuts.diagnostics
    assert dg["r_hat"].max() <= 1.01
    assert dg["ess_bulk"].min() >= 400
    assert "sigma" not in cbpp_nuts.idata.posterior
    # few observations per herd: the herd effects are sampled non-centered
    assert "z_herd" not in cbpp_nuts.idata.posterior  # tidied away, but ranef kept
    assert cbpp_nuts.idata.posterior["ranef_herd"].shape[2:] == (15, 1)


def test_cbpp_medians_match_laplace(cbpp_nuts, cbpp_laplace):
    se = np.sqrt(np.diag(cbpp_laplace.vcov))
    med = np.median(cbpp_nuts.draws("fixef"), axis=0)
    z = (med - cbpp_laplace.fixef.to_numpy()) / se
    assert np.all(np.abs(z) <= 0.3), z
    # the herd SD: posterior median within the Laplace fit's order (0.642);
    # its posterior is right-skewed with 15 herds, so only a loose check
    sd = np.median(cbpp_nuts.draws("sd_herd"))
    assert 0.45 < sd < 0.95


def test_cbpp_accessors(cbpp_nuts, cbpp):
    fit = cbpp_nuts
    vc = fit.varcorr
    assert list(vc["group"]) == ["herd"]  # no Residual row
    assert fit.sigma == 1.0
    assert fit.theta.shape == (1,) and np.isclose(fit.theta[0] ** 2, vc["vcov"].iloc[0])
    eta = fit.predict()
    p = fit.predict(type="response")
    np.testing.assert_allclose(p.to_numpy(), 1 / (1 + np.exp(-eta.to_numpy())), rtol=1e-12)
    np.testing.assert_allclose(fit.fitted().to_numpy(), p.to_numpy())
    # population-level prediction of period 1 is the inverse logit of the intercept
    new = cbpp.iloc[:1]
    pop = fit.predict(new, re_form=False, type="response").iloc[0]
    assert np.isclose(pop, 1 / (1 + np.exp(-fit.fixef["(Intercept)"])))
    r = fit.residuals(type="response")  # the default is deviance residuals, as lme4 for GLMMs
    y = (cbpp["incidence"] / cbpp["size"]).to_numpy()
    np.testing.assert_allclose(r.to_numpy(), y - p.to_numpy())
    with pytest.raises(HierlmError, match="type"):
        fit.predict(type="probability")
    # simulate draws binomial proportions around the fitted means (tests/test_fit_kinds.py)
    sims = fit.simulate(2, seed=1).to_numpy() * cbpp["size"].to_numpy()[:, None]
    np.testing.assert_allclose(sims, np.round(sims))


def test_cbpp_loglik_and_loo(cbpp_nuts, cbpp):
    from scipy import stats

    fit = cbpp_nuts
    ll = fit.idata.log_likelihood["y"]
    assert ll.shape == (4, 1000, 56)
    # pointwise log-likelihood of draw (0, 0) recomputed by hand
    post = fit.idata.posterior
    beta = post["fixef"].to_numpy()[0, 0]
    b = post["ranef_herd"].to_numpy()[0, 0, :, 0]
    d = fit.design
    eta = d.X @ beta + b[d.remats[0].codes]
    ref = stats.binom.logpmf(cbpp["incidence"], cbpp["size"], 1 / (1 + np.exp(-eta)))
    np.testing.assert_allclose(ll.to_numpy()[0, 0], ref, rtol=1e-10)
    np.testing.assert_array_equal(fit.idata.observed_data["y"].to_numpy(), cbpp["incidence"].to_numpy())
    loo = fit.loo()
    assert np.isfinite(loo.elpd_loo) and loo.elpd_loo < 0


def test_cbpp_summary(cbpp_nuts):
    text = str(cbpp_nuts.summary())
    assert text.startswith("Bayesian generalized linear mixed model fit by NUTS")
    assert "Family: binomial  ( logit )" in text
    assert "Residual" not in text
    assert "period4" in text and "herd" in text
    assert "0 divergent transitions" in text


def test_nested_intercepts_centered_on_their_parent():
    from hierlm.bayes.backend import nested_parents

    grouse = datasets.load("grouseticks")
    d = hierlm.Model("TICKS ~ YEAR + (1|BROOD) + (1|INDEX) + (1|LOCATION)", grouse, family="poisson").design
    groups = [r.group for r in d.remats]
    parents = nested_parents(d)
    # broods within locations, a median of one brood per location: centered;
    # observations (INDEX) within broods, about 3.4 per brood: not
    assert {groups[k]: groups[j] for k, (j, _) in parents.items()} == {"BROOD": "LOCATION"}
    k = groups.index("BROOD")
    up = parents[k][1]
    loc = d.remats[groups.index("LOCATION")]
    np.testing.assert_array_equal(up[d.remats[k].codes], loc.codes)
    cbpp = datasets.load("cbpp").assign(obs=lambda f: np.arange(len(f)).astype(str))
    d2 = hierlm.Model("cbind(incidence, size - incidence) ~ period + (1|herd) + (1|obs)", cbpp,
                      family="binomial").design
    assert nested_parents(d2) == {}  # four observations a herd: each on its own
    # a random slope is not a sum of intercepts
    d3 = hierlm.Model("TICKS ~ cHEIGHT + (cHEIGHT|BROOD) + (1|LOCATION)", grouse, family="poisson").design
    assert nested_parents(d3) == {}


def test_poisson_grouseticks_matches_laplace():
    grouse = datasets.load("grouseticks")
    lap = hierlm.glmer(GROUSE, grouse, family="poisson")
    m = hierlm.Model(GROUSE, grouse, family="poisson")
    assert "sigma" not in m.priors.targets()
    fit = m.fit("nuts", draws=500, tune=500, random_seed=7, progressbar=False)
    # broods are nested in locations (a median of one per location): the two
    # SDs trade off and mix slowly even with the broods centered on their
    # location, so only the fixed effects are held to R-hat <= 1.01
    assert fit.divergences < 20
    dg = fit.diagnostics
    assert dg.loc[[f"fixef[{n}]" for n in fit.design.xnames], "r_hat"].max() <= 1.01
    se = np.sqrt(np.diag(lap.vcov))
    z = (np.median(fit.draws("fixef"), axis=0) - lap.fixef.to_numpy()) / se
    assert np.all(np.abs(z) <= 0.5), z
    assert list(fit.varcorr["group"]) == ["BROOD", "LOCATION"]
    text = str(fit.summary())
    assert "Family: poisson  ( log )" in text
    mu = fit.predict(type="response").to_numpy()
    np.testing.assert_allclose(mu, np.exp(fit.predict().to_numpy()))
    # the broods are sampled as location + brood sums (c_BROOD); what is
    # reported is the brood's own part, which follows glmer's modes
    assert "c_BROOD" not in fit.idata.posterior
    own = fit.ranef()["BROOD"]["(Intercept)"].to_numpy()
    assert np.corrcoef(own, lap.b[0][:, 0])[0, 1] > 0.95


def test_centered_nested_term_reports_its_own_effects():
    # in the PyMC model, ranef_BROOD = c_BROOD - b_LOCATION[location of the brood]
    grouse = datasets.load("grouseticks")
    m = hierlm.Model(GROUSE, grouse, family="poisson")
    pmm = m.to_pymc()
    names = {v.name for v in pmm.free_RVs}
    assert {"c_BROOD", "z_LOCATION"} <= names and "z_BROOD" not in names
    rng = np.random.default_rng(0)
    point = {k: rng.normal(size=np.shape(v)) for k, v in pmm.initial_point().items()}
    # SDs of 1 (log 0): the effects then spread, so the identities below cannot hold trivially
    # (a random log-SD of -2.5 gave a location spread of 0.08 in one run)
    point.update({k: np.zeros(np.shape(v)) for k, v in point.items() if k.startswith("sd_")})
    # the outputs as functions of the point's values (compiled as they are, the random variables
    # would be drawn from their priors: the SDs, and so these spreads, then varied with the
    # random state earlier tests left behind)
    outs = pmm.replace_rvs_by_values([pmm[n] for n in ("ranef_BROOD", "ranef_LOCATION", "c_BROOD", "z_LOCATION",
                                                       "sd_LOCATION")])
    own, loc, c, z, sd = pmm.compile_fn(outs, inputs=pmm.value_vars, point_fn=True, on_unused_input="ignore")(point)
    np.testing.assert_allclose(c, point["c_BROOD"])
    np.testing.assert_allclose(sd, 1.0)
    rB, rL = m.design.remats
    up = np.zeros(rB.nlevels, dtype=int)
    up[rB.codes] = rL.codes
    np.testing.assert_allclose(own[:, 0] + loc[up, 0], c, atol=1e-12)
    np.testing.assert_allclose(loc[:, 0], sd * z[:, 0], atol=1e-12)
    assert np.std(own) > 0.1 and np.std(loc) > 0.1


def test_poisson_offset_enters_likelihood(cbpp):
    # incidence ~ Poisson(size * rate): the offset shifts the linear predictor
    f = "incidence ~ period + offset(log(size)) + (1|herd)"
    fit = hierlm.Model(f, cbpp, family="poisson").fit("nuts", draws=300, tune=300, chains=2, random_seed=3,
                                                      progressbar=False)
    lap = hierlm.glmer(f, cbpp, family="poisson")
    se = np.sqrt(np.diag(lap.vcov))
    z = (np.median(fit.draws("fixef"), axis=0) - lap.fixef.to_numpy()) / se
    assert np.all(np.abs(z) <= 0.5), z
    eta = fit.predict().to_numpy()
    no_off = fit.fixef.to_numpy() @ fit.design.X.T
    b = fit.ranef()["herd"]["(Intercept)"].to_numpy()[fit.design.remats[0].codes]
    np.testing.assert_allclose(eta, no_off + b + np.log(cbpp["size"].to_numpy()), rtol=1e-10)


def test_glmm_priors_and_refusals(cbpp):
    m = hierlm.Model(CBPP, cbpp, family="binomial")
    pr = m.priors
    assert pr.sigma is None and "sigma" not in pr.targets()
    assert pr.fixed["(Intercept)"].family == "StudentT" and pr.fixed["(Intercept)"].params["nu"] == 3
    x = m.design.X[:, 1]
    assert np.isclose(pr.fixed["period2"].params["sigma"], 2.5 / np.std(x, ddof=1))
    assert str(pr.sd["herd"]) == "HalfStudentT(nu=3, sigma=2.5)"
    assert "Residual" not in pr.table()["parameter"].tolist()
    with pytest.raises(HierlmError, match="marginalize"):
        m.fit("nuts", marginalize=True)
    with pytest.raises(HierlmError, match="there is no REML for GLMMs"):
        m.fit("map", reml=True)  # MAP for GLMMs: tests/test_map_glmm.py
    prior = m.sample_prior_predictive(draws=50, random_seed=1)
    yp = prior.prior_predictive["y"].to_numpy()
    assert yp.shape[-1] == 56 and np.all(yp <= cbpp["size"].to_numpy())


def test_cbpp_posterior_predict(cbpp_nuts, cbpp):
    """Binomial posterior predictions: successes out of each row's trials,
    centred on trials x posterior_epred."""
    pp = cbpp_nuts.posterior_predict(seed=4)
    mu = cbpp_nuts.posterior_epred()
    size = cbpp["size"].to_numpy()
    assert pp.shape == mu.shape == (4000, len(cbpp))
    assert np.all(pp == np.round(pp)) and np.all((pp >= 0) & (pp <= size))
    se = np.sqrt((pp.var(axis=0) + 1e-12) / pp.shape[0])
    assert np.all(np.abs(pp.mean(axis=0) - size * mu.mean(axis=0)) < 4.5 * se + 1e-9)
    np.testing.assert_allclose(cbpp_nuts.posterior_linpred().mean(axis=0),
                               cbpp_nuts.fitted(type="link").to_numpy(), rtol=1e-10)
    with pytest.raises(HierlmError, match="needs their numbers of trials"):
        cbpp_nuts.posterior_predict(cbpp.iloc[:3])
