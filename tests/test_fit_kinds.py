"""Every fit kind answers through its family (the one-core matrix).

{LMM, binomial GLMM, Poisson GLMM} x {REML/ML or Laplace, MAP with flat
priors, MAP with default priors, NUTS}: ``fitted``, ``predict(type=)``,
``residuals``, ``simulate``, ``icc`` and ``r2`` either agree with the
reference fit of that family or are recomputed here independently from the
fit's estimates (closed forms of the family: inverse link, deviance
residuals, distribution-specific variance), and never give a Gaussian
answer for a non-Gaussian model.

References and tolerances:

* flat-prior MAP = the ML (Gaussian) or Laplace (GLMM) fit of the same
  model, to 1e-5 relative (fitted values, linear predictor, ICC, R2) and
  1e-5 of the response's scale (residuals);
* every kind: ``fitted(type="response")`` is the inverse link of
  ``fitted(type="link")`` = ``X beta + Z b + offset`` rebuilt here from
  ``fixef`` and ``ranef``; residuals are the family's, recomputed here
  with scipy's densities where possible;
* ICC and R2 from the variance components recomputed here with the
  family's distribution-specific variance (tests/test_variance_glmm.py
  checks those against R's performance package);
* NUTS: the accessors are the posterior means recomputed from the draws
  (to 1e-10), ICC/R2 the means over draws; and the fitted values at the
  posterior means lie near the ML/Laplace ones (weak priors, these data:
  within 0.05 SD of the response, 0.05 in probability, 25% of a Poisson mean).
"""

from __future__ import annotations

import warnings
from functools import cache

import numpy as np
import pytest
from scipy import special, stats

import hierlm
from hierlm.errors import HierlmError

MODELS = {
    "gaussian": ("Reaction ~ Days + (Days | Subject)", "sleepstudy", "ml"),
    "binomial": ("cbind(incidence, size - incidence) ~ period + (1 | herd)", "cbpp", "laplace"),
    "poisson": ("TICKS ~ YEAR + cHEIGHT + (1 | BROOD)", "grouseticks", "laplace"),
}
KINDS = ["reference", "map_flat", "map_default", "nuts"]


@cache
def model(family: str) -> hierlm.Model:
    formula, data, _ = MODELS[family]
    return hierlm.Model(formula, hierlm.datasets.load(data), family=family)


@cache
def fit(family: str, kind: str):
    m = model(family)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        if kind == "reference":
            return m.fit(MODELS[family][2])
        if kind == "map_flat":
            return m.fit("map", priors="flat")
        if kind == "map_default":
            return m.fit("map")
        pytest.importorskip("nutpie")
        return m.fit("nuts", draws=300, tune=400, chains=2, random_seed=11, progressbar=False)


def _eta(f) -> np.ndarray:
    """X beta + Z b + offset rebuilt from the public fixef and ranef."""
    d = f.design
    eta = d.X @ f.fixef.to_numpy() + (0 if d.offset is None else d.offset)
    re = f.ranef()
    for r in d.remats:
        b = re[r.group][r.cnames].to_numpy()
        eta = eta + np.einsum("np,np->n", r.Xt, b[r.codes])
    return eta


def _inverse_link(family: str, eta):
    return {"gaussian": lambda e: e, "binomial": special.expit, "poisson": np.exp}[family](eta)


def _observed(family: str, f):
    """(y on the family's scale, weights) from the data, independently of the fit."""
    data = model(family).design
    if family == "binomial":
        counts = data.counts
        n = counts.sum(axis=1)
        return counts[:, 0] / n, n
    return data.y, np.ones(data.n)


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("family", list(MODELS))
def test_fitted_and_predict_go_through_the_family(family, kind):
    f = fit(family, kind)
    eta = _eta(f)
    np.testing.assert_allclose(f.fitted(type="link").to_numpy(), eta, rtol=1e-10, atol=1e-10)
    np.testing.assert_allclose(f.predict(type="link").to_numpy(), eta, rtol=1e-10, atol=1e-10)
    mu = _inverse_link(family, eta)
    np.testing.assert_allclose(f.fitted().to_numpy(), mu, rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(f.predict(type="response").to_numpy(), mu, rtol=1e-10, atol=1e-12)
    if family == "binomial":
        assert np.all((f.fitted() > 0) & (f.fitted() < 1))
    if family == "poisson":
        assert np.all(f.fitted() > 0)
    # population level on new data: the fixed effects only, through the link
    new = hierlm.datasets.load(MODELS[family][1]).head(5)
    pop = f.predict(new, re_form="~0", type="response").to_numpy()
    # (the first 5 data rows are the design's first 5: no row is dropped)
    np.testing.assert_allclose(pop, _inverse_link(family, f.design.X[:5] @ f.fixef.to_numpy()), rtol=1e-10)


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("family", list(MODELS))
def test_residuals_are_the_familys(family, kind):
    f = fit(family, kind)
    y, wt = _observed(family, f)
    mu = f.fitted().to_numpy()
    np.testing.assert_allclose(f.residuals(type="response").to_numpy(), y - mu, atol=1e-12)
    if family == "gaussian":
        np.testing.assert_allclose(f.residuals().to_numpy(), y - mu, atol=1e-12)
        np.testing.assert_allclose(f.residuals(scaled=True).to_numpy(), (y - mu) / f.sigma, atol=1e-12)
        return
    if family == "binomial":
        dev = 2 * wt * (special.xlogy(y, y / mu) + special.xlogy(1 - y, (1 - y) / (1 - mu)))
        var = mu * (1 - mu)
    else:
        # Poisson deviance residual from scipy's log-density: 2 (log p(y|y) - log p(y|mu))
        dev = 2 * (stats.poisson.logpmf(y, np.maximum(y, 1e-300)) - stats.poisson.logpmf(y, mu))
        dev = np.where(y == 0, 2 * mu, dev)
        var = mu
    np.testing.assert_allclose(f.residuals().to_numpy(), np.sign(y - mu) * np.sqrt(dev), atol=1e-10)
    np.testing.assert_allclose(f.residuals(type="pearson").to_numpy(), (y - mu) * np.sqrt(wt / var), atol=1e-10)


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("family", list(MODELS))
def test_simulate_draws_from_the_family(family, kind):
    f = fit(family, kind)
    sims = f.simulate(200, seed=5, use_u=True).to_numpy()
    mu = f.fitted().to_numpy()
    if family == "gaussian":
        # N(mu, sigma^2) around the conditional means
        resid = sims - mu[:, None]
        assert abs(resid.std() / f.sigma - 1) < 0.02
        assert abs(resid.mean()) < 0.02 * f.sigma
        return
    _, wt = _observed(family, f)
    counts = sims * wt[:, None]
    np.testing.assert_allclose(counts, np.round(counts), atol=1e-9)  # whole numbers of events
    assert counts.min() >= 0
    if family == "binomial":
        assert np.all(counts <= wt[:, None] + 1e-9)
    # the mean of the draws is the fitted mean (binomial: SE sqrt(mu(1-mu)/(n*200)))
    se = np.sqrt((mu * (1 - mu) / wt if family == "binomial" else mu) / sims.shape[1])
    assert np.all(np.abs(sims.mean(axis=1) - mu) < 5 * se + 1e-12)


def _link_variance(family: str, f) -> float:
    if family == "gaussian":
        return f.sigma**2
    if family == "binomial":
        return np.pi**2 / 3
    null = hierlm.Model("TICKS ~ 1 + (1 | BROOD)", hierlm.datasets.load("grouseticks"), family="poisson")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        b0 = null.fit().fixef["(Intercept)"]
    return np.log1p(np.exp(-b0))


@pytest.mark.parametrize("kind", ["reference", "map_flat", "map_default"])
@pytest.mark.parametrize("family", list(MODELS))
def test_icc_and_r2_use_the_familys_variance(family, kind):
    f = fit(family, kind)
    vc = f.varcorr
    d = f.design
    var_f = np.var(d.X @ f.fixef.to_numpy(), ddof=1)
    var_r = 0.0
    for r, S in zip(d.remats, f.covariances()):
        var_r += np.mean(np.einsum("na,ab,nb->n", r.Xt, S, r.Xt))
    var_e = _link_variance(family, f)
    if family != "gaussian":
        assert "Residual" not in set(vc["group"])
    icc, r2 = f.icc(), f.r2()
    assert icc["adjusted"] == pytest.approx(var_r / (var_r + var_e), rel=1e-10)
    assert icc["conditional"] == pytest.approx(var_r / (var_f + var_r + var_e), rel=1e-10)
    assert r2["marginal"] == pytest.approx(var_f / (var_f + var_r + var_e), rel=1e-10)
    assert r2["conditional"] == pytest.approx((var_f + var_r) / (var_f + var_r + var_e), rel=1e-10)


@pytest.mark.parametrize("family", list(MODELS))
def test_flat_map_is_the_reference_fit(family):
    ref, flat = fit(family, "reference"), fit(family, "map_flat")
    np.testing.assert_allclose(flat.fitted().to_numpy(), ref.fitted().to_numpy(), rtol=1e-5)
    np.testing.assert_allclose(flat.predict(type="link").to_numpy(), ref.predict(type="link").to_numpy(),
                               rtol=1e-5, atol=1e-5)
    scale = np.std(_observed(family, ref)[0])
    np.testing.assert_allclose(flat.residuals().to_numpy(), ref.residuals().to_numpy(), atol=1e-5 * max(scale, 1))
    for name in ("icc", "r2"):
        np.testing.assert_allclose(getattr(flat, name)().to_numpy(), getattr(ref, name)().to_numpy(), rtol=1e-5)


@pytest.mark.parametrize("family", list(MODELS))
def test_nuts_accessors_are_posterior_means(family):
    f = fit(family, "nuts")
    post = f.idata.posterior
    beta = post["fixef"].to_numpy().reshape(-1, f.design.p)
    np.testing.assert_allclose(f.fixef.to_numpy(), beta.mean(axis=0), rtol=1e-10)
    # ICC per draw from the draws themselves, then averaged
    d = f.design
    var_f = (beta @ d.X.T).var(axis=1, ddof=1)
    var_r = np.zeros(len(beta))
    for t, r in zip(f.term_names, d.remats):
        sd = post[f"sd_{t}"].to_numpy().reshape(len(beta), -1)
        if r.p == 1:
            var_r += sd[:, 0] ** 2 * np.mean(r.Xt[:, 0] ** 2)
        else:
            C = post[f"corr_{t}"].to_numpy().reshape(len(beta), r.p, r.p)
            S = sd[:, :, None] * C * sd[:, None, :]
            var_r += np.einsum("sab,ab->s", S, r.Xt.T @ r.Xt / d.n)
    var_e = post["sigma"].to_numpy().ravel() ** 2 if family == "gaussian" else _link_variance(family, f)
    icc = f.icc()
    assert icc["adjusted"] == pytest.approx(np.mean(var_r / (var_r + var_e)), rel=1e-10)
    assert icc["conditional"] == pytest.approx(np.mean(var_r / (var_f + var_r + var_e)), rel=1e-10)
    assert len(icc.attrs["draws"]) == len(beta)
    # near the ML/Laplace fit (posterior means under weak priors)
    ref = fit(family, "reference")
    diff = np.abs(f.fitted().to_numpy() - ref.fitted().to_numpy())
    # Poisson: the posterior means of the brood effects of small broods lie up to
    # 18% of the mean away from their conditional modes (a skewed posterior, not
    # noise); the short binomial chain has R-hat just above 1.01 for its SD
    limit = {"gaussian": 0.05 * np.std(ref.design.y), "binomial": 0.05, "poisson": 0.25 * ref.fitted().to_numpy()}
    assert np.all(diff < limit[family]), diff.max()


def test_no_reml_for_glmm_map():
    with pytest.raises(HierlmError, match="no REML"):
        model("binomial").fit("map", reml=True)


@pytest.mark.parametrize("kind", KINDS)
def test_every_fit_reports_convergence_the_same_way(kind):
    f = fit("binomial", kind)
    assert isinstance(f.convergence.converged, bool)
    text = str(f.summary())
    for msg in f.convergence.messages:  # NUTS: this short chain's R-hat and ESS notes
        assert msg in text


def test_convergence_failure_is_reported_and_printed():
    """A model lme4 warns on (formula_reference.json, sleep_double_bar_factor):
    converged is False and the summary ends with lme4's two messages."""
    d = hierlm.datasets.load("sleepstudy")
    d["week"] = np.where(d["Days"] < 5, "early", "late")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        f = hierlm.lmer("Reaction ~ Days + (1 + week || Subject)", d)
    assert not f.converged
    assert [m.split(":")[0] for m in f.convergence.messages] == ["unable to evaluate scaled gradient",
                                                                 "Model failed to converge"]
    assert str(f.summary()).splitlines()[-2:] == f.convergence.messages
