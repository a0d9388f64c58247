"""Bayesian fits: priors, MAP, the marginalized likelihood, NUTS (few draws).

References: ML/REML fits (which are themselves checked against lme4), closed
forms (the exact conditional distribution of b), and Monte Carlo agreement
between the marginalized and the non-centered parameterizations.
"""

import warnings

import numpy as np
import pytest
from posterior_checks import assert_same_posterior

import hierlm
from hierlm import priors as P
from hierlm.bayes.sample import SamplerError
from hierlm.priors import PriorError

F = "Reaction ~ Days + (Days | Subject)"
# the likelihood checks evaluate PyTensor graphs once: Python implementations,
# no C compilation (minutes on a cold cache)
PY_MODE = "FAST_COMPILE"


@pytest.fixture(scope="module")
def model(sleepstudy):
    return hierlm.Model(F, sleepstudy)


# ---- priors -----------------------------------------------------------------
def test_default_priors_are_data_scaled(model, sleepstudy):
    y = sleepstudy["Reaction"].to_numpy()
    s = max(2.5, 1.4826 * np.median(np.abs(y - np.median(y))))
    pr = model.priors
    assert pr.sigma == P.HalfStudentT(3, s)
    assert pr.sd["Subject"] == P.HalfStudentT(3, s)
    assert pr.fixed["Days"] == P.Normal(0, 2.5 * y.std(ddof=1) / sleepstudy["Days"].std(ddof=1))
    assert pr.fixed["(Intercept)"].params["mu"] == pytest.approx(np.median(y))
    d = sleepstudy["Days"]
    scale = 2.5 * np.sqrt(s**2 + y.var(ddof=1) * (d.mean() / d.std(ddof=1)) ** 2)
    assert pr.fixed["(Intercept)"].params["sigma"] == pytest.approx(scale)
    text = repr(pr)
    assert "LKJ(eta=1)" in text and "HalfStudentT" in text and "Days" in text


def test_prior_log_densities_are_scipys():
    """The closed-form prior densities (and the Student-t likelihood's) give scipy.stats'
    numbers, the support's edge and outside included (-inf, and +inf for a Gamma with shape
    below 1 at 0)."""
    from scipy import stats

    from hierlm.family import t_logpdf

    x = np.array([-1.0, 0.0, 1e-8, 0.3, 1.0, 2.5, 40.0])
    cases = [(P.Normal(1.2, 3.0), stats.norm.logpdf(x, 1.2, 3.0)),
             (P.StudentT(3, 0.5, 2.0), stats.t.logpdf(x, 3, 0.5, 2.0)),
             (P.HalfNormal(2.0), stats.halfnorm.logpdf(x, scale=2.0)),
             (P.HalfStudentT(3, 2.5), np.log(2.0) + stats.t.logpdf(x, 3, 0.0, 2.5)),
             (P.HalfCauchy(1.5), stats.halfcauchy.logpdf(x, scale=1.5)),
             (P.Exponential(0.7), stats.expon.logpdf(x, scale=1 / 0.7)),
             (P.Gamma(2.0, 0.1), stats.gamma.logpdf(x, 2.0, scale=10.0)),
             (P.Gamma(0.01, 0.01), stats.gamma.logpdf(x, 0.01, scale=100.0)),
             (P.Gamma(1.0, 0.5), stats.gamma.logpdf(x, 1.0, scale=2.0))]
    for prior, ref in cases:
        got = prior.logpdf(x)
        np.testing.assert_array_equal(np.isinf(got), np.isinf(ref), err_msg=str(prior))
        np.testing.assert_array_equal(np.sign(got[np.isinf(got)]), np.sign(ref[np.isinf(ref)]))
        ok = np.isfinite(ref)
        np.testing.assert_allclose(got[ok], ref[ok], rtol=1e-13, atol=1e-13, err_msg=str(prior))
    np.testing.assert_allclose(t_logpdf(x, 2.9, 250.0, 14.5), stats.t.logpdf(x, 2.9, 250.0, 14.5), rtol=1e-13)


def test_set_prior_targets_and_errors(sleepstudy):
    m = hierlm.Model(F, sleepstudy)
    m.set_prior("fixed", P.Normal(0, 5)).set_prior("sd|Subject", P.HalfNormal(30)).set_prior("lkj", 2.0)
    m.set_prior("sigma", P.Exponential(0.1))
    assert m.priors.fixed["Days"] == P.Normal(0, 5)
    assert m.priors.fixed["(Intercept)"].params["sigma"] > 5  # "fixed" leaves the intercept alone
    assert m.priors.sd["Subject"] == P.HalfNormal(30)
    assert m.priors.lkj == P.LKJ(2.0)
    with pytest.raises(PriorError, match=r"no parameter 'Dayz'.*valid prior targets: fixed, \(Intercept\), Days, sd"):
        m.set_prior("Dayz", P.Normal(0, 1))
    with pytest.raises(PriorError, match="sigma must be a positive number"):
        P.Normal(0, -1)
    with pytest.raises(PriorError, match="sigma must be a positive number"):
        P.HalfStudentT(3, 0)
    with pytest.raises(PriorError, match="standard deviation: use HalfNormal"):
        m.set_prior("sd", P.Normal(0, 1))
    with pytest.raises(PriorError, match="coefficient: use Normal"):
        m.set_prior("Days", P.HalfNormal(1))
    assert issubclass(PriorError, ValueError)


# ---- bad sampling arguments: refused before any compilation ----------------------
@pytest.mark.parametrize("kw, match", [
    ({"sampler": "stan"}, "unknown sampler 'stan'; choose one of nutpie, pymc, numpyro"),
    ({"draws": 0}, "draws must be an integer >= 1"),
    ({"chains": 0}, "chains must be an integer >= 1"),
    ({"tune": -1}, "tune must be an integer >= 0"),
])
def test_bad_sampling_arguments(model, kw, match):
    with pytest.raises(SamplerError, match=match):
        model.fit("nuts", **kw)


def test_sampler_not_installed_names_package(model, monkeypatch):
    from hierlm.bayes import sample

    monkeypatch.setattr(sample, "installed", lambda pkg: pkg != "numpyro")
    with pytest.raises(SamplerError, match="needs the package 'numpyro': pip install numpyro"):
        model.fit("nuts", sampler="numpyro")


def test_unknown_option(model):
    with pytest.raises(hierlm.HierlmError, match="unknown option"):
        model.fit("nuts", iterations=10)


# ---- MAP --------------------------------------------------------------------------
def test_map_flat_equals_ml(model):
    ml = model.fit("ml")
    mp = model.fit("map", priors="flat")
    assert mp.loglik == pytest.approx(ml.loglik, rel=1e-6)
    np.testing.assert_allclose(mp.fixef, ml.fixef, rtol=1e-4)
    assert mp.sigma == pytest.approx(ml.sigma, rel=1e-4)
    np.testing.assert_allclose(mp.varcorr["sdcor"], ml.varcorr["sdcor"], rtol=1e-4, atol=1e-4)
    # Hessian-based SDs of the fixed effects equal the ML standard errors
    np.testing.assert_allclose(mp.se[["(Intercept)", "Days"]], np.sqrt(np.diag(ml.vcov)), rtol=1e-3)
    # conditional modes at the ML estimates are lme4's
    np.testing.assert_allclose(mp.ranef()["Subject"], ml.ranef()["Subject"], rtol=1e-3, atol=1e-3)


def test_map_flat_reml_equals_reml(model):
    reml = model.fit("reml")
    mp = model.fit("map", priors="flat", reml=True)
    assert mp.loglik == pytest.approx(reml.loglik, rel=1e-6)
    np.testing.assert_allclose(mp.fixef, reml.fixef, rtol=1e-4)
    np.testing.assert_allclose(mp.varcorr["sdcor"], reml.varcorr["sdcor"], rtol=1e-4, atol=1e-4)


def test_map_default_priors_off_the_boundary():
    d2 = hierlm.datasets.load("Dyestuff2")
    m = hierlm.Model("Yield ~ 1 + (1|Batch)", d2)
    with pytest.warns(hierlm.ConvergenceWarning, match="singular"):
        assert m.fit("reml").theta[0] < 1e-4  # lme4: batch SD estimate 0
    mp = m.fit("map")
    sd = mp.varcorr.loc[0, "sdcor"]
    assert sd > 0.1 and mp.converged
    assert "Std.Dev." in str(mp.summary())


def test_map_does_not_collapse_on_sleepstudy(model):
    """The failure a naive joint find_MAP shows (SDs -> 0, beta far off)."""
    reml = model.fit("reml")
    mp = model.fit("map")
    sds = mp.varcorr["sdcor"].iloc[:2].to_numpy()
    assert np.all(sds > 0.5 * reml.varcorr["sdcor"].iloc[:2].to_numpy())
    assert np.all(np.abs(mp.fixef - reml.fixef) < 0.2 * np.sqrt(np.diag(reml.vcov)))


# ---- the marginalized likelihood and exact draws of b ---------------------------------
def test_marginal_loglik_matches_engine(model):
    """PyTensor's marginal log-likelihood equals the ML engine's at any (theta, beta, sigma)."""
    import pytensor.tensor as pt

    from hierlm.bayes.backend import marginal_loglik, sufficient_stats
    from hierlm.bayes.map import MarginalPosterior

    st = sufficient_stats(model.design)
    post = MarginalPosterior(model.design, None, reml=False)
    for Lm, beta, sigma in [(np.array([[20.0, 0.0], [1.5, 5.0]]), np.array([250.0, 11.0]), 26.0),
                            (np.array([[3.0, 0.0], [-2.0, 0.5]]), np.array([240.0, 9.0]), 30.0)]:
        got = marginal_loglik(pt.as_tensor(beta), pt.as_tensor(np.float64(sigma)), pt.as_tensor(Lm), st).eval(mode=PY_MODE)
        theta = (Lm / sigma)[[0, 1, 1], [0, 0, 1]]
        want, _ = post.loglik(theta, beta, sigma)
        assert got == pytest.approx(want, rel=1e-10)


def test_exact_ranef_draws_match_conditional_distribution(model):
    from hierlm.bayes.backend import draw_ranef, sufficient_stats
    from hierlm.lmm.deviance import conditional_modes

    Lm, beta, sigma = np.array([[24.0, 0.0], [1.0, 5.8]]), np.array([251.0, 10.5]), 25.6
    S = 20000
    b = draw_ranef(np.tile(beta, (S, 1)), np.full(S, sigma), np.tile(Lm, (S, 1, 1)),
                   sufficient_stats(model.design), np.random.default_rng(0))
    theta = (Lm / sigma)[[0, 1, 1], [0, 0, 1]]
    (mean,), (cv,) = conditional_modes(model.design, theta, beta)
    cov = sigma**2 * cv
    se = np.sqrt(np.diagonal(cov, axis1=1, axis2=2) / S)
    assert np.all(np.abs(b.mean(axis=0) - mean) < 5 * se)
    emp = np.einsum("sla,slb->lab", b - b.mean(0), b - b.mean(0)) / (S - 1)
    np.testing.assert_allclose(emp, cov, rtol=0.05, atol=0.05 * np.abs(cov).max())


# ---- NUTS -----------------------------------------------------------------------------
@pytest.fixture(scope="module")
def wide_fits(sleepstudy):
    m = hierlm.Model(F, sleepstudy)
    m.set_prior("fixed", P.Normal(0, 1e4)).set_prior("(Intercept)", P.Normal(0, 1e4))
    kw = dict(draws=600, tune=600, chains=4, random_seed=11, progressbar=False)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        marg = m.fit("nuts", **kw)
        full = m.fit("nuts", marginalize=False, **kw)
    return m, marg, full


def test_nuts_posterior_matches_reml_with_wide_priors(wide_fits, sleepstudy):
    m, marg, _ = wide_fits
    reml = m.fit("reml")
    se = np.sqrt(np.diag(reml.vcov))
    med = np.median(marg.draws("fixef"), axis=0)
    assert np.all(np.abs(med - reml.fixef.to_numpy()) < 0.2 * se)
    post_sd = marg.draws("fixef").std(axis=0)
    assert np.all(np.abs(post_sd / se - 1) < 0.25)
    assert marg.divergences == 0
    assert marg.diagnostics["r_hat"].max() <= 1.01


def test_marginalized_and_noncentered_agree(wide_fits):
    _, marg, full = wide_fits
    assert marg.marginalized and not full.marginalized
    assert_same_posterior(marg, full, ["fixef[(Intercept)]", "fixef[Days]", "sigma", "sd_Subject[(Intercept)]",
                                       "sd_Subject[Days]"], ["Subject"])


def test_posterior_fit_accessors(wide_fits, sleepstudy):
    _, marg, _ = wide_fits
    idata = marg.idata
    assert {"posterior", "sample_stats", "observed_data", "log_likelihood"} <= set(idata.groups())
    post = idata.posterior
    assert list(post["fixef"].coords["fixed"].values) == ["(Intercept)", "Days"]
    assert post["ranef_Subject"].shape[2:] == (18, 2)
    assert list(post["ranef_Subject"].coords["Subject__level"].values[:2]) == ["308", "309"]
    assert idata.log_likelihood["y"].shape[2] == 180
    vc = marg.varcorr
    assert list(vc["group"]) == ["Subject", "Subject", "Subject", "Residual"]
    assert vc.loc[2, "var2"] == "Days" and -1 < vc.loc[2, "sdcor"] < 1
    co = marg.coef()["Subject"]
    np.testing.assert_allclose(co["Days"], marg.fixef["Days"] + marg.ranef()["Subject"]["Days"])
    pred = marg.predict(sleepstudy.iloc[:3])
    np.testing.assert_allclose(pred, marg.fitted().iloc[:3])
    text = str(marg.summary())
    for part in ("Bayesian linear mixed model fit by NUTS", "Random effects (posterior mean, 95% interval):",
                 "Fixed effects:", "Rhat", "Bulk_ESS", "0 divergent transitions"):
        assert part in text
    loo = marg.loo()
    assert np.isfinite(loo.elpd_loo)


def test_dense_marginal_loglik_matches_engine():
    import pytensor.tensor as pt

    from hierlm.bayes.backend import dense_stats, marginal_loglik_dense
    from hierlm.bayes.map import MarginalPosterior

    pen = hierlm.Model("diameter ~ 1 + (1|plate) + (1|sample)", hierlm.datasets.load("Penicillin"))
    st = dense_stats(pen.design)
    post = MarginalPosterior(pen.design, None, reml=False)
    for sds, beta, sigma in [((0.8, 1.9), 23.0, 0.55), ((2.0, 0.3), 22.0, 1.0)]:
        Lb = np.diag(np.r_[np.full(24, sds[0]), np.full(6, sds[1])])
        got = marginal_loglik_dense(pt.as_tensor(np.array([beta])), pt.as_tensor(np.float64(sigma)),
                                    pt.as_tensor(Lb), st).eval(mode=PY_MODE)
        want, _ = post.loglik(np.array(sds) / sigma, np.array([beta]), sigma)
        assert got == pytest.approx(want, rel=1e-10)


@pytest.fixture(scope="module")
def penicillin_fits():
    pen = hierlm.datasets.load("Penicillin")
    m = hierlm.Model("diameter ~ 1 + (1|plate) + (1|sample)", pen)
    kw = dict(draws=500, tune=500, chains=4, random_seed=3, progressbar=False)
    with warnings.catch_warnings(), pytest.MonkeyPatch.context() as mp:
        warnings.simplefilter("ignore")
        engine = m.fit("nuts", **kw)
        dense, full = m.fit("nuts", backend="pymc", **kw), m.fit("nuts", marginalize=False, **kw)
        # a lower dense limit makes the large-model plan testable on a small
        # data set: beta and (1|sample) dense, (1|plate) level by level ...
        mp.setattr("hierlm.bayes.backend.DENSE_MARGINAL_MAX_Q", 10)
        blocked = m.fit("nuts", backend="pymc", **kw)
        # ... or (1|plate) sampled
        mp.setattr("hierlm.bayes.backend.BLOCKED_MAX_P", 0)
        sampled = m.fit("nuts", backend="pymc", **kw)
    return m, {"engine": engine, "dense": dense, "partial, blocked": blocked, "partial, sampled": sampled}, full


@pytest.mark.parametrize("which", ["engine", "dense", "partial, blocked", "partial, sampled"])
def test_crossed_model_marginalized_and_sampled_agree(penicillin_fits, which):
    m, fits, full = penicillin_fits
    marg = fits[which]
    assert marg.plan.kind == which.split(",")[0] and not full.marginalized
    assert marg.plan.sampled(2) == ([0] if which == "partial, sampled" else [])
    assert set(marg.ranef()) == {"plate", "sample"}
    assert_same_posterior(marg, full, ["fixef[(Intercept)]", "sigma", "sd_plate[(Intercept)]",
                                       "sd_sample[(Intercept)]"], ["plate", "sample"])
    reml = m.fit("reml")
    assert abs(marg.fixef.iloc[0] - reml.fixef.iloc[0]) < 2 * np.sqrt(reml.vcov.iloc[0, 0])
    assert marg.divergences == 0


def test_marginal_plan_for_large_crossed_models(monkeypatch):
    from hierlm.bayes import backend

    ie = hierlm.datasets.load("InstEval")
    m = hierlm.Model("y ~ 1 + service + (1|s) + (1|d) + (1|dept:service)", ie)
    plan = backend.plan_marginalization(m.design, m.priors, None, m.family)
    assert plan.kind == "partial" and plan.fixef_integrated
    assert [m.priors.term_names()[k] for k in plan.integrated] == ["dept:service"]
    assert [m.priors.term_names()[k] for k in plan.blocked] == ["s"]  # the factor with the most levels
    assert plan.sampled(3) == [1]
    assert plan.describe(m.priors.term_names()) == "s, dept:service, fixed effects integrated out, then drawn exactly; d sampled"
    assert backend.plan_marginalization(m.design, m.priors, False, m.family).kind == "none"
    pen = hierlm.Model("diameter ~ 1 + (1|plate) + (1|sample)", hierlm.datasets.load("Penicillin"))
    assert backend.plan_marginalization(pen.design, pen.priors, None, pen.family).kind == "dense"
    # nothing small enough and a non-conjugate prior on beta: refused when asked for
    monkeypatch.setattr(backend, "DENSE_MARGINAL_MAX_Q", 5)
    monkeypatch.setattr(backend, "BLOCKED_MAX_P", 0)
    pen.set_prior("(Intercept)", P.StudentT(3, 20, 10))
    assert backend.plan_marginalization(pen.design, pen.priors, None, pen.family).kind == "none"
    with pytest.raises(hierlm.HierlmError, match="no term of this model is small enough"):
        pen.fit("nuts", marginalize=True)


def _collapsed_case(formula, data, plan, given, sds, sigma, seed=4):
    """A partial plan written out densely: returns (stats, r0, Lam, G, mean and
    covariance of y0 - sampled part, joint A and its prior covariance)."""
    from scipy.linalg import block_diag

    from hierlm.bayes.backend import collapsed_stats

    m = hierlm.Model(formula, data.assign(day=data["Days"].astype(str))
                     if "day" in formula else data)
    d = m.design
    st = collapsed_stats(d, m.priors, plan)
    rng = np.random.default_rng(seed)
    r0 = st["y0"].copy()
    for k in given:  # sampled terms: fixed values here
        rm = d.remats[k]
        r0 -= (rm.Xt * rng.normal(0, 1.0, (rm.nlevels, rm.p))[rm.codes]).sum(axis=1)
    covs = {k: (np.diag(np.atleast_1d(sds[k])) ** 2 if np.ndim(sds[k]) <= 1 else sds[k]) for k in sds}
    G = np.diag(np.r_[st["s0"], np.concatenate([np.repeat(np.sqrt(np.diag(covs[k])), d.remats[k].nlevels)
                                                 for k in plan.integrated])])
    Lam = np.linalg.cholesky(block_diag(*[covs[k] for k in plan.blocked])) if plan.blocked else None
    cols = [st["A"].toarray()] + [d.remats[k].sparse().toarray() for k in plan.blocked]
    D = [G @ G.T] + [np.kron(np.eye(d.remats[k].nlevels), covs[k]) for k in plan.blocked]
    return st, r0, Lam, G, np.hstack(cols), block_diag(*D), sigma


COLLAPSED_CASES = {
    # beta and (1|sample) dense, (1|plate) given (sampled)
    "dense+sampled": ("diameter ~ 1 + (1|plate) + (1|sample)", "Penicillin", ((1,), True, ()), (0,),
                      {1: 1.7}, 0.6),
    # beta and (1|sample) dense, (1|plate) level by level, nothing sampled
    "dense+blocked": ("diameter ~ 1 + (1|plate) + (1|sample)", "Penicillin", ((1,), True, (0,)), (),
                      {0: 0.8, 1: 1.7}, 0.6),
    # a 2 x 2 blocked factor with a correlation, a crossed factor dense
    "blocked 2x2": ("Reaction ~ Days + (Days|Subject) + (1|day)", "sleepstudy", ((1,), True, (0,)), (),
                    {0: np.array([[500.0, 20.0], [20.0, 30.0]]), 1: 4.0}, 25.0),
}


@pytest.mark.parametrize("case", list(COLLAPSED_CASES))
def test_collapsed_loglik_matches_dense_gaussian(case):
    import pytensor.tensor as pt
    from scipy import stats

    from hierlm.bayes.backend import MarginalPlan, collapsed_loglik

    formula, ds, plan, given, sds, sigma = COLLAPSED_CASES[case]
    plan = MarginalPlan("partial", *plan)
    st, r0, Lam, G, AZ, D, sigma = _collapsed_case(formula, hierlm.datasets.load(ds), plan, given, sds, sigma)
    got = collapsed_loglik(pt.as_tensor(r0), pt.as_tensor(np.float64(sigma)), pt.as_tensor(G),
                           None if Lam is None else pt.as_tensor(Lam), st).eval(mode=PY_MODE)
    want = stats.multivariate_normal(np.zeros(len(r0)), sigma**2 * np.eye(len(r0)) + AZ @ D @ AZ.T).logpdf(r0)
    assert got == pytest.approx(want, rel=1e-10)


def test_collapsed_loglik_blocked_only():
    """Non-Normal fixed-effect prior and no small term: only the largest
    factor is integrated (m = 0 columns in A), beta and the rest sampled."""
    import pytensor.tensor as pt
    from scipy import stats

    from hierlm.bayes.backend import MarginalPlan, collapsed_loglik, collapsed_stats

    pen = hierlm.Model("diameter ~ 1 + (1|plate) + (1|sample)", hierlm.datasets.load("Penicillin"))
    plan = MarginalPlan("partial", (), False, (0,))
    st = collapsed_stats(pen.design, pen.priors, plan)
    assert st["m"] == 0
    d = pen.design
    beta, b_sample, sd_plate, sigma = 22.5, np.linspace(-2, 2, 6), 0.9, 0.55
    r = d.y - beta - b_sample[d.remats[1].codes]
    got = collapsed_loglik(pt.as_tensor(r), pt.as_tensor(np.float64(sigma)), None,
                           pt.as_tensor(np.array([[sd_plate]])), st).eval(mode=PY_MODE)
    Z = d.remats[0].sparse().toarray()
    want = stats.multivariate_normal(np.zeros(d.n), sigma**2 * np.eye(d.n) + sd_plate**2 * Z @ Z.T).logpdf(r)
    assert got == pytest.approx(want, rel=1e-10)


@pytest.mark.parametrize("case", ["dense+sampled", "blocked 2x2"])
def test_collapsed_draws_match_conditional_distribution(case):
    from hierlm.bayes.backend import MarginalPlan, draw_collapsed

    formula, ds, plan, given, sds, sigma = COLLAPSED_CASES[case]
    plan = MarginalPlan("partial", *plan)
    st, r0, Lam, G, AZ, D, sigma = _collapsed_case(formula, hierlm.datasets.load(ds), plan, given, sds, sigma)
    S = 20000

    def resid(sl):
        return np.repeat(r0[:, None], len(range(S)[sl]), axis=1)

    dense_blocks = [np.broadcast_to(G[None, -1:, -1:], (S, 1, 1))]  # the dense term's SD (scalar terms)
    lam = None if Lam is None else np.broadcast_to(Lam, (S,) + Lam.shape)
    beta, parts, b_bl = draw_collapsed(st, resid, np.full(S, sigma), dense_blocks, lam, np.random.default_rng(1))
    c = np.column_stack([beta - st["mu0"]] + parts + ([] if b_bl is None else [b_bl.reshape(S, -1)]))
    # closed form: everything integrated is Gaussian given r0, precision D^-1 + AZ'AZ / sigma^2
    cov = np.linalg.inv(np.linalg.inv(D) + AZ.T @ AZ / sigma**2)
    mean = cov @ AZ.T @ r0 / sigma**2
    se = np.sqrt(np.diag(cov) / S)
    assert np.all(np.abs(c.mean(axis=0) - mean) < 5 * se)
    np.testing.assert_allclose(np.cov(c.T), cov, rtol=0.05, atol=0.05 * np.abs(cov).max())


def test_prior_predictive(model):
    idata = model.sample_prior_predictive(draws=50, random_seed=1)
    assert idata.prior_predictive["y"].shape == (1, 50, 180)


def test_to_bambi(sleepstudy):
    fit = hierlm.lmer("Reaction ~ Days + (Days || Subject)", sleepstudy)
    bm = fit.to_bambi()
    assert "1|Subject" in str(bm) and "Days|Subject" in str(bm)
    with pytest.raises(hierlm.HierlmError, match="cannot express correlated"):
        hierlm.lmer(F, sleepstudy).to_bambi()


def test_pymc_sampler_compiles_the_marginalized_model(sleepstudy):
    """The same PyTensor graph through PyMC's own NUTS (C backend)."""
    m = hierlm.Model("Reaction ~ Days + (1 | Subject)", sleepstudy)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        fit = m.fit("nuts", sampler="pymc", draws=300, tune=300, chains=2, random_seed=5, progressbar=False)
    assert fit.sampler == "pymc" and fit.marginalized
    reml = m.fit("reml")
    assert abs(fit.fixef["Days"] - reml.fixef["Days"]) < 0.5 * np.sqrt(reml.vcov.loc["Days", "Days"])


def test_prior_predictive_speaks_the_users_names(model):
    import matplotlib

    matplotlib.use("Agg")
    idata = model.sample_prior_predictive(draws=40, random_seed=2)
    assert set(idata.prior.data_vars) == {"fixef", "sigma", "sd_Subject", "corr_Subject", "ranef_Subject"}
    assert list(idata.prior["fixef"].coords["fixed"].values) == ["(Intercept)", "Days"]
    fig = model.plot_prior_predictive(draws=30, random_seed=2)
    ax = fig.axes[0]
    assert ax.get_xlabel() == "Reaction" and "from the priors" in ax.get_title()
    labels = " ".join(t.get_text() for t in ax.get_legend().get_texts()) if ax.get_legend() else ""
    assert "corr01" not in labels and "z_" not in labels
