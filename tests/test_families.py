"""The distributions behind each family, against scipy.stats (independent of R): the aic term
is -2 log-likelihood, deviance residuals are 2 (loglik(saturated) - loglik(mu)), the variance
function is the distribution's variance over the dispersion, simulation has those moments,
and R's spellings and links are accepted."""

import numpy as np
import pytest
from scipy import stats

from hierlm.errors import HierlmError
from hierlm.family import Family

RNG = np.random.default_rng(0)
MU = RNG.uniform(0.5, 8.0, 200)


def test_negative_binomial_against_scipy():
    f = Family("negbinomial", theta=2.5)
    y = RNG.negative_binomial(2.5, 2.5 / (2.5 + MU)).astype(float)
    wt = np.ones_like(y)
    p = 2.5 / (2.5 + MU)
    ll = stats.nbinom.logpmf(y, 2.5, p)
    assert f.aic(y, wt, MU, wt) == pytest.approx(-2 * ll.sum(), rel=1e-12)
    sat = stats.nbinom.logpmf(y, 2.5, 2.5 / (2.5 + np.maximum(y, 1e-300)))
    np.testing.assert_allclose(f.dev_resid(y, MU, wt), 2 * (sat - ll), rtol=1e-9, atol=1e-9)
    np.testing.assert_allclose(f.variance(MU), stats.nbinom.var(2.5, p), rtol=1e-12)
    draws = f.simulate(np.full(200000, 3.0), np.ones(200000), np.ones(200000), np.random.default_rng(1))
    assert draws.mean() == pytest.approx(3.0, rel=0.01)
    assert draws.var() == pytest.approx(3.0 + 9.0 / 2.5, rel=0.02)


def test_gamma_against_scipy():
    f = Family("Gamma", link="log")
    shape = 4.0
    y = RNG.gamma(shape, MU / shape)
    wt = np.ones_like(y)
    dev = f.dev_resid(y, MU, wt)
    # R's Gamma()$aic: the dispersion is deviance / n, the shape its inverse, plus 2
    disp = dev.sum() / y.size
    ll = stats.gamma.logpdf(y, 1 / disp, scale=MU * disp)
    assert f.aic(y, wt, MU, wt) == pytest.approx(-2 * ll.sum() + 2, rel=1e-12)
    # unit deviance of the gamma: 2 (loglik(saturated) - loglik(mu)) at shape 1
    sat = stats.gamma.logpdf(y, 1.0, scale=y)
    np.testing.assert_allclose(dev, 2 * (sat - stats.gamma.logpdf(y, 1.0, scale=MU)), rtol=1e-9)
    np.testing.assert_allclose(f.variance(MU), MU**2)
    draws = f.simulate(np.full(200000, 3.0), np.ones(200000), np.ones(200000), np.random.default_rng(1), sigma=0.5)
    assert draws.mean() == pytest.approx(3.0, rel=0.01)
    assert draws.var() == pytest.approx(0.25 * 9.0, rel=0.02)  # dispersion sigma^2 times V(mu)


def test_names_links_and_parameters():
    assert Family("nbinom2", theta=1.0).name == "negbinomial"
    assert Family("Gamma").link == "inverse" and Family("gamma", link="log").link == "log"
    assert Family("negbinomial", theta=3.0) != Family("negbinomial", theta=2.0)
    assert Family("negbinomial", theta=3.0).with_params(theta=2.0) == Family("negbinomial", theta=2.0)
    assert Family("negbinomial", theta=1.5).r_name == "Negative Binomial(1.5)"
    with pytest.raises(HierlmError, match="link 'logit' is not available for family 'gamma'"):
        Family("gamma", link="logit")
    with pytest.raises(HierlmError, match="shape theta must be a positive number"):
        Family("negbinomial", theta=-1)
    with pytest.raises(HierlmError, match="takes no parameter"):
        Family("poisson", theta=2.0)
    inv = Family("gamma")
    eta = np.array([0.5, 2.0])
    np.testing.assert_allclose(inv.linkinv(eta), 1 / eta)
    h = 1e-6
    np.testing.assert_allclose(inv.mu_eta(eta), (inv.linkinv(eta + h) - inv.linkinv(eta - h)) / (2 * h), rtol=1e-6)
