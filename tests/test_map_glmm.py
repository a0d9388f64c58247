"""MAP for binomial and Poisson GLMMs: the mode of the Laplace-marginal posterior.

References:
* with ``priors="flat"`` the mode is the Laplace maximum-likelihood estimate:
  compared with hierlm.glmer (same criterion, tight tolerances) and with
  lme4's glmer in tests/reference/glmm_reference.json (made by
  tests/reference/glmm_reference.R; the acceptance tolerances of issue 6);
* with the default priors the mode is checked against the log posterior
  composed here independently (the engine's Laplace deviance at given
  (theta, beta), scipy.stats densities of the priors, the log-SD Jacobian).
"""

import json
import warnings
from functools import cache
from pathlib import Path

import numpy as np
import pytest
from scipy import stats

import hierlm
from hierlm.bayes import GLMMMAPFit

HERE = Path(__file__).parent
REF = json.loads((HERE / "reference" / "glmm_reference.json").read_text())
CBPP_F = "cbind(incidence, size - incidence) ~ period + (1 | herd)"
GROUSE_F = "TICKS ~ YEAR + cHEIGHT + (1 | BROOD) + (1 | LOCATION)"
GROUSE_REF_F = "TICKS ~ YEAR + cHEIGHT + (1 | INDEX) + (1 | BROOD) + (1 | LOCATION)"


@cache
def _fits(name, formula, family):
    data = hierlm.datasets.load(name)
    model = hierlm.Model(formula, data, family=family)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no convergence warnings expected on these data
        lap = hierlm.glmer(formula, data, family=family)
        flat = model.fit("map", priors="flat")
        mode = model.fit("map")
    return model, lap, flat, mode


def cbpp():
    return _fits("cbpp", CBPP_F, "binomial")


def grouse():
    return _fits("grouseticks", GROUSE_F, "poisson")


def _sds(fit):
    return fit.varcorr["sdcor"].to_numpy()


@pytest.mark.parametrize("case", [cbpp, grouse], ids=["cbpp", "grouse"])
def test_flat_map_is_glmer_laplace(case):
    _, lap, flat, _ = case()
    assert isinstance(flat, GLMMMAPFit) and flat.converged
    np.testing.assert_allclose(flat.fixef.to_numpy(), lap.fixef.to_numpy(), rtol=1e-4)
    np.testing.assert_allclose(_sds(flat), _sds(lap), rtol=1e-3)
    assert flat.loglik == pytest.approx(lap.loglik, rel=1e-8)
    assert list(flat.varcorr["group"]) == list(lap.varcorr["group"])  # no Residual row
    # Hessian of the likelihood: the posterior SDs of beta are glmer's Wald SEs
    se_lap = np.sqrt(np.diag(lap.vcov.to_numpy()))
    np.testing.assert_allclose(flat.se[lap.design.xnames].to_numpy(), se_lap, rtol=1e-2)
    # conditional modes of b at the mode are glmer's
    for g, tab in lap.ranef().items():
        np.testing.assert_allclose(flat.ranef()[g].to_numpy(), tab.to_numpy(), atol=1e-4)


def test_flat_map_matches_lme4_cbpp():
    ref = REF["cbpp_laplace"]
    _, _, flat, _ = cbpp()
    fx = np.array([ref["fixef"][k] for k in flat.design.xnames])
    np.testing.assert_allclose(flat.fixef.to_numpy(), fx, atol=1e-3)
    np.testing.assert_allclose(_sds(flat), ref["varcorr"]["sdcor"], atol=5e-3)
    assert flat.loglik == pytest.approx(ref["logLik"], rel=1e-5)
    np.testing.assert_allclose(flat.ranef()["herd"]["(Intercept)"].to_numpy(), ref["ranef"]["condval"], atol=1e-3)


def test_flat_map_matches_lme4_grouse():
    ref = REF["grouse_poisson"]
    assert ref["formula"].replace(" ", "") == GROUSE_REF_F.replace(" ", "")
    flat = hierlm.Model(GROUSE_REF_F, hierlm.datasets.load("grouseticks"), family="poisson").fit("map", priors="flat")
    fx = np.array([ref["fixef"][k] for k in flat.design.xnames])
    np.testing.assert_allclose(flat.fixef.to_numpy(), fx, atol=1e-3)
    sd_ref = dict(zip(ref["varcorr"]["grp"], ref["varcorr"]["sdcor"]))
    sd = dict(zip(flat.varcorr["group"], flat.varcorr["sdcor"]))
    assert set(sd) == set(sd_ref)
    for g, value in sd.items():
        assert value == pytest.approx(sd_ref[g], abs=5e-3)
    assert flat.loglik == pytest.approx(ref["logLik"], rel=1e-5)


def test_default_priors_cbpp_mode():
    _, lap, _, mode = cbpp()
    assert mode.converged
    sd = _sds(mode)[0]
    assert sd > 0.1  # away from the boundary
    se_lap = np.sqrt(np.diag(lap.vcov.to_numpy()))
    diff = np.abs(mode.fixef.to_numpy() - lap.fixef.to_numpy())
    assert np.all(diff < 0.5 * se_lap)
    # the weak priors move the mode: the SD is pulled up by the log-SD Jacobian
    assert sd > _sds(lap)[0] + 0.01
    se = mode.se[mode.design.xnames].to_numpy()
    assert np.all(se > 0)
    assert np.all(np.abs(se / se_lap - 1) < 0.5)
    assert mode.se["sd_herd[(Intercept)]"] > 0


def _logpost_cbpp(model, lap, beta, sd):
    """log posterior on (beta, log sd) composed independently of hierlm.bayes.map."""
    dev = lap.devfun.stage2(np.concatenate([[sd], beta]))
    lp = -0.5 * dev
    pr = model.priors
    for name, b in zip(model.design.xnames, beta):
        p = pr.fixed[name].params
        if pr.fixed[name].family == "StudentT":
            lp += stats.t.logpdf(b, p["nu"], p["mu"], p["sigma"])
        else:
            assert pr.fixed[name].family == "Normal"
            lp += stats.norm.logpdf(b, p["mu"], p["sigma"])
    p = pr.sd["herd"].params
    assert pr.sd["herd"].family == "HalfStudentT"
    lp += np.log(2) + stats.t.logpdf(sd, p["nu"], 0.0, p["sigma"]) + np.log(sd)  # Jacobian of log sd
    return lp


def test_default_priors_cbpp_is_the_mode_of_the_composed_posterior():
    model, lap, _, mode = cbpp()
    beta, sd = mode.fixef.to_numpy(), _sds(mode)[0]
    best = _logpost_cbpp(model, lap, beta, sd)
    assert mode.logpost == pytest.approx(best, abs=1e-6)
    for dlog in (-0.02, 0.02):
        assert _logpost_cbpp(model, lap, beta, sd * np.exp(dlog)) < best
    se = np.sqrt(np.diag(lap.vcov.to_numpy()))
    for j in range(beta.size):
        for s in (-0.02, 0.02):
            b2 = beta.copy()
            b2[j] += s * se[j]
            assert _logpost_cbpp(model, lap, b2, sd) < best


def test_default_priors_grouse_off_boundary():
    _, lap, _, mode = grouse()
    assert mode.converged
    assert np.all(_sds(mode) > 0.1)
    se_lap = np.sqrt(np.diag(lap.vcov.to_numpy()))
    assert np.all(np.abs(mode.fixef.to_numpy() - lap.fixef.to_numpy()) < 0.5 * se_lap)


def test_accessors_and_summary():
    _, _, _, mode = cbpp()
    assert mode.sigma == 1.0
    assert "Residual" not in set(mode.varcorr["group"])
    assert "sigma" not in mode.se.index
    coef = mode.coef()["herd"]
    np.testing.assert_allclose(coef["(Intercept)"].to_numpy(),
                               mode.fixef["(Intercept)"] + mode.ranef()["herd"]["(Intercept)"].to_numpy())
    cv = mode.ranef(condvar=True)["herd"]
    assert cv.shape[0] == 15
    text = str(mode.summary())
    assert "Family: binomial  ( logit )" in text
    assert "Laplace-marginal posterior" in text
    assert "Residual" not in text
    assert "period4" in text and "herd" in text
    flat_text = str(cbpp()[2].summary())
    assert "likelihood (flat priors)" in flat_text


def test_bad_input():
    model = cbpp()[0]
    with pytest.raises(hierlm.HierlmError, match=r"unknown option.*reml"):
        model.fit("map", reml=True)
    with pytest.raises(hierlm.HierlmError, match="unknown option"):
        model.fit("map", nAGQ=2)
    with pytest.raises(hierlm.HierlmError, match="priors must be 'flat' or a PriorSet"):
        model.fit("map", priors="uniform")


def test_flat_map_correlated_slope_matches_lme4():
    # a correlated random slope exercises the LKJ/Cholesky part of the parameter vector
    ref = REF["cbpp_slope"]
    data = hierlm.datasets.load("cbpp")
    data["t"] = data["period"].cat.codes.astype(float) + 1.0  # as in glmm_reference.R
    model = hierlm.Model(ref["formula"], data, family="binomial")
    flat = model.fit("map", priors="flat")
    fx = np.array([ref["fixef"][k] for k in flat.design.xnames])
    np.testing.assert_allclose(flat.fixef.to_numpy(), fx, atol=1e-3)
    np.testing.assert_allclose(flat.varcorr["sdcor"].to_numpy(), ref["varcorr"]["sdcor"], atol=5e-3)
    assert flat.loglik == pytest.approx(ref["logLik"], rel=1e-5)
    mode = model.fit("map")
    assert mode.converged and np.all(mode.se > 0)
    assert "corr_herd[(Intercept),t]" in mode.se.index
    assert abs(mode.varcorr["sdcor"].iloc[2]) < 1  # correlation inside (-1, 1)
