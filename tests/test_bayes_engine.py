"""NUTS on the engine's exact marginal posterior (hierlm.bayes.marginal).

References: the density against the multivariate normal of y written out
densely (scipy) and against the PyTensor model's log density with beta
integrated exactly; the gradient against central finite differences; the
exact draws against closed forms; the sampler against the PyMC model and by
simulation-based calibration (a small version of
validation/sbc_engine.py).
"""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import scipy.sparse as sp
from posterior_checks import assert_same_posterior
from scipy import stats
from scipy.linalg import block_diag

import hierlm
from hierlm import priors as P
from hierlm.bayes.map import lkj_cholesky_logpdf
from hierlm.bayes.marginal import EnginePosterior, engine_supported
from hierlm.params import corr_cholesky

CASES = {
    "slope": ("Reaction ~ Days + (Days|Subject)", "sleepstudy"),
    "crossed": ("diameter ~ 1 + (1|plate) + (1|sample)", "Penicillin"),
    "nested": ("strength ~ 1 + (1|batch/cask)", "Pastes"),
    "p3": ("Reaction ~ Days + (1 + Days + I(Days^2)|Subject)", "sleepstudy"),
    # two terms on one factor: the second is in the dense rest, its levels
    # crossing the first's
    "zcp": ("Reaction ~ Days + (Days || Subject)", "sleepstudy"),
    # 250 groups: 500 random effects in the first term, beyond the REML
    # engine's dense case; the rest is X and y
    "many": ("y ~ x + (x|g)", "simulated"),
    # a correlated slope in the rest: (x|h) on 8 levels, after (1|g) on 250
    "rest_slope": ("y ~ x + (1|g) + (x|h)", "simulated"),
    # prior weights (residual variance sigma^2 / w) and offsets, by formula and by argument
    "weighted": ("Reaction ~ Days + offset(0.5 * Days) + (Days|Subject)", "sleepstudy"),
    "crossed_weighted": ("diameter ~ 1 + (1|plate) + (1|sample)", "Penicillin"),
}
# weights= and offset= of the weighted cases: functions of the data
WEIGHTS = {"weighted": lambda d: 1.0 + d["Days"] % 3,
           "crossed_weighted": lambda d: np.resize([0.5, 1.0, 2.0], len(d))}
OFFSETS = {"crossed_weighted": lambda d: 0.1 * d["sample"].cat.codes.to_numpy()}


def _simulated():
    rng = np.random.default_rng(0)
    g = np.repeat(np.arange(250), 6)
    x = np.tile(np.arange(6.0), 250)
    b = rng.normal(0, [1.0, 0.3], (250, 2))
    y = 2.0 + 0.5 * x + b[g, 0] + b[g, 1] * x + rng.normal(0, 0.8, g.size)
    import pandas as pd

    h = rng.integers(0, 8, g.size)
    y = y + rng.normal(0, 0.5, 8)[h] + rng.normal(0, 0.2, 8)[h] * x
    return pd.DataFrame({"y": y, "x": x, "g": [f"g{i}" for i in g], "h": [f"h{i}" for i in h]})


def _model(case, prior_kind="default"):
    f, data = CASES[case]
    df = _simulated() if data == "simulated" else hierlm.datasets.load(data)
    w, off = WEIGHTS.get(case), OFFSETS.get(case)
    m = hierlm.Model(f, df, weights=None if w is None else w(df), offset=None if off is None else off(df))
    if prior_kind == "flat":
        for n in m.design.xnames:
            m.set_prior(n, P.Flat())
    elif prior_kind == "other":  # every SD/sigma family the compiled density knows
        groups = list(dict.fromkeys(r.group for r in m.design.remats))
        fams = [P.HalfNormal(20.0), P.HalfCauchy(5.0), P.Exponential(0.1)]
        for g, fam in zip(groups, fams):
            m.set_prior(f"sd|{g}", fam)
        m.set_prior("sigma", P.Exponential(0.05)).set_prior("lkj", 2.0)
    return m


def _direct_logp(m, post, phi):
    """log p(phi | y) written out: y ~ N(offset + X mu0, Z G Z' + sigma^2 W^-1 + X S0 X') (W the
    prior weights) and the priors by scipy, Jacobians by hierlm.params."""
    d, pr = m.design, m.priors
    sigma, sds, Ls = post.natural(phi)
    Z = sp.hstack([r.sparse() for r in d.remats]).toarray()
    G = block_diag(*[np.kron(np.eye(r.nlevels), (sd[:, None] * L) @ (sd[:, None] * L).T)
                     for r, sd, L in zip(d.remats, sds, Ls)])
    fixed = [pr.fixed[n] for n in d.xnames]  # the priors as the user set them, not as packed
    normal = np.array([f.family == "Normal" for f in fixed])
    S0 = np.diag([f.params["sigma"] ** 2 if nm else 0.0 for f, nm in zip(fixed, normal)])
    mu0 = np.array([f.params["mu"] if nm else 0.0 for f, nm in zip(fixed, normal)])
    w = np.ones(d.n) if d.weights is None else d.weights
    V = Z @ G @ Z.T + sigma**2 * np.diag(1.0 / w) + d.X @ S0 @ d.X.T
    r0 = d.y - d.X @ mu0 - (0.0 if d.offset is None else d.offset)
    if normal.all():
        ll = stats.multivariate_normal(np.zeros(d.n), V).logpdf(r0)
    else:  # flat: the restricted likelihood (beta integrated with a flat prior)
        Vi = np.linalg.inv(V)
        XtVX = d.X.T @ Vi @ d.X
        P_ = Vi - Vi @ d.X @ np.linalg.solve(XtVX, d.X.T @ Vi)
        ll = -0.5 * ((d.n - d.p) * np.log(2 * np.pi) + np.linalg.slogdet(V)[1] + np.linalg.slogdet(XtVX)[1]
                     + r0 @ P_ @ r0)
    lp = np.log(sigma) + pr.sigma.logpdf(sigma)
    for (sd_sl, c_sl), t, sd, L, r in zip(post.layout, post.terms, sds, Ls, d.remats):
        lp += np.sum(np.log(sd)) + np.sum(pr.sd[t].logpdf(sd))
        if r.p > 1:
            lp += corr_cholesky(phi[c_sl], r.p)[1] + lkj_cholesky_logpdf(L, pr.lkj.params["eta"])
    return ll + lp


def _points(post, m, k=3, seed=1):
    fit = m.fit("reml")
    phi0 = post.free(fit.sigma, fit.covariances(), sd_floor=0.05)
    rng = np.random.default_rng(seed)
    return [phi0 + rng.normal(0, 0.4, post.size) for _ in range(k)]


@pytest.mark.parametrize("case", list(CASES))
@pytest.mark.parametrize("prior_kind", ["default", "flat", "other"])
def test_density_matches_the_dense_normal(case, prior_kind):
    m = _model(case, prior_kind)
    post = EnginePosterior(m.design, m.priors)
    for phi in _points(post, m):
        assert post.logp(phi) == pytest.approx(_direct_logp(m, post, phi), rel=1e-10, abs=1e-8)


@pytest.mark.parametrize("case", list(CASES))
@pytest.mark.parametrize("prior_kind", ["default", "flat", "other"])
def test_gradient_matches_finite_differences(case, prior_kind):
    m = _model(case, prior_kind)
    post = EnginePosterior(m.design, m.priors)
    h = 1e-5
    for phi in _points(post, m, k=2, seed=2):
        val, g = post.logp_grad(phi)
        fd = np.array([(post.logp(phi + h * e) - post.logp(phi - h * e)) / (2 * h) for e in np.eye(post.size)])
        # central differences: truncation ~h^2 f''' and rounding ~1e-16 |f| / h
        np.testing.assert_allclose(g, fd, rtol=1e-5, atol=1e-6 * max(1.0, abs(val)) / 1e2)


@pytest.mark.parametrize("case", ["slope", "crossed"])
def test_density_matches_the_pytensor_model(case):
    """The PyMC model with b integrated out (hierlm's PyMC backend) is Gaussian
    in beta, so integrating beta is exact from its value, gradient and
    Hessian at any point; differences between points cancel the models'
    different constants (PyMC's Beta on (rho + 1) / 2 is LKJ on rho / 2)."""
    from scipy.special import logit

    m = _model(case)
    post = EnginePosterior(m.design, m.priors)
    pm_model = m.to_pymc(marginalize=None)
    logp = pm_model.compile_logp(jacobian=False)
    dlogp = pm_model.compile_dlogp(vars=[pm_model["fixef"]], jacobian=False)
    d2logp = pm_model.compile_d2logp(vars=[pm_model["fixef"]], jacobian=False)
    ours, theirs = [], []
    for phi in _points(post, m, k=3, seed=3):
        sigma, sds, Ls = post.natural(phi)
        pt = {"fixef": np.zeros(m.design.p), "sigma_log__": np.log(sigma)}
        logj = np.log(sigma)
        for (sd_sl, c_sl), t, sd, L, r in zip(post.layout, post.terms, sds, Ls, m.design.remats):
            pt[f"sd_{t}_log__"] = np.log(sd)
            logj += np.sum(np.log(sd))
            if r.p == 2:
                pt[f"corr01_{t}_logodds__"] = np.asarray(logit((L[1, 0] + 1) / 2))
                logj += corr_cholesky(phi[c_sl], r.p)[1]
        f0, g, H = logp(pt), dlogp(pt), d2logp(pt)  # d2logp is minus the Hessian
        theirs.append(f0 + 0.5 * g @ np.linalg.solve(H, g) + 0.5 * m.design.p * np.log(2 * np.pi)
                      - 0.5 * np.linalg.slogdet(H)[1])
        ours.append(post.logp(phi) - logj)
    np.testing.assert_allclose(np.diff(ours), np.diff(theirs), rtol=0, atol=1e-8)


def test_exact_draws_match_the_closed_forms():
    """At fixed (theta, sigma) with flat priors on beta: beta ~ N(GLS beta,
    sigma^2 (X'V^-1 X)^-1) and E[b | y] = the conditional modes at the GLS beta."""
    from hierlm.lmm.deviance import conditional_modes, make_deviance

    m = _model("slope", "flat")
    post = EnginePosterior(m.design, m.priors)
    fit = m.fit("reml")
    phi = post.free(fit.sigma, fit.covariances())
    S = 6000
    beta, (b,) = post.draw(np.tile(phi, (S, 1)), np.random.default_rng(5))
    dev = make_deviance(m.design)
    f = dev.factor(np.asarray(fit.theta))
    bh, _ = dev.solve(f)
    V = fit.sigma**2 * dev.vcov_unscaled(f)
    se = np.sqrt(np.diag(V) / S)
    assert np.all(np.abs(beta.mean(0) - bh) < 4.5 * se)
    np.testing.assert_allclose(np.cov(beta, rowvar=False), V, rtol=0.06, atol=0.06 * np.abs(V).max())
    (mode,), _ = conditional_modes(m.design, np.asarray(fit.theta), bh)
    sd_b = b.std(axis=0)
    assert np.all(np.abs(b.mean(0) - mode) < 4.5 * sd_b / np.sqrt(S))


def test_engine_is_the_default_and_pymc_stays_reachable(sleepstudy):
    m = hierlm.Model("Reaction ~ Days + (Days|Subject)", sleepstudy)
    assert engine_supported(m.design, m.family, m.priors)
    many = _model("many")
    assert engine_supported(many.design, many.family, many.priors)  # any number of first-term levels
    ie = hierlm.Model("y ~ 1 + service + (1|s) + (1|d) + (1|dept:service)", hierlm.datasets.load("InstEval"))
    assert not engine_supported(ie.design, ie.family, ie.priors)  # 1156 random effects after the first term
    m2 = hierlm.Model("Reaction ~ Days + (Days|Subject)", sleepstudy).set_prior("Days", P.StudentT(3, 0, 10))
    assert not engine_supported(m2.design, m2.family, m2.priors)
    with pytest.raises(hierlm.HierlmError, match="backend='engine' needs a Gaussian model"):
        m2.fit("nuts", backend="engine")
    with pytest.raises(hierlm.HierlmError, match="backend must be 'engine' or 'pymc'"):
        m.fit("nuts", backend="stan")
    with pytest.raises(hierlm.HierlmError, match="cannot take marginalize=False"):
        m.fit("nuts", backend="engine", marginalize=False)
    import pymc as pm

    pm_model = m.to_pymc()
    assert isinstance(pm_model, pm.Model) and "z_Subject" in pm_model.named_vars
    assert "z_Subject" not in m.to_pymc(marginalize=None).named_vars


def test_engine_fit_layout_and_agreement_with_pymc_nested():
    """Pastes (cask nested in batch): the engine and the PyMC model with every
    effect sampled give the same posterior within Monte Carlo error."""
    pastes = hierlm.datasets.load("Pastes")
    m = hierlm.Model("strength ~ 1 + (1|batch/cask)", pastes)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        eng = m.fit("nuts", random_seed=8, progressbar=False)  # the defaults: 4 chains x 1000 after 1000
        full = m.fit("nuts", marginalize=False, draws=500, tune=500, random_seed=8, progressbar=False)
    assert eng.plan.kind == "engine" and eng.divergences == 0
    assert eng.diagnostics["r_hat"].max() <= 1.01
    post = eng.idata.posterior
    assert post["ranef_cask:batch"].shape == (4, 1000, 30, 1) and post["ranef_batch"].shape == (4, 1000, 10, 1)
    assert "phi" not in post and {"fixef", "sigma", "sd_batch", "sd_cask:batch"} <= set(post.data_vars)
    assert eng.idata.log_likelihood["y"].shape == (4, 1000, 60)
    assert_same_posterior(eng, full, ["fixef[(Intercept)]", "sigma", "sd_batch[(Intercept)]",
                                      "sd_cask:batch[(Intercept)]"], ["batch", "cask:batch"])


def test_simulation_based_calibration_small():
    """Talts et al. (2018) on a small slope model: the rank of each true
    parameter among 99 thinned posterior draws is uniform on 0..99 when the
    sampler and the exact draws are right.  40 replicates, 5 bins: the
    chi-square test at the 0.1% level per parameter (the full 200-replicate
    version: validation/sbc_engine.py)."""
    from validation.sbc_engine import sbc_ranks

    ranks, names = sbc_ranks("slope", replicates=40, seed=123, draws=400, thin=4)
    for j, name in enumerate(names):
        counts = np.bincount(ranks[:, j] * 5 // 100, minlength=5)
        assert stats.chisquare(counts).pvalue > 1e-3, (name, counts)


@pytest.fixture(scope="module")
def sleep_engine_fit():
    sleep = hierlm.datasets.load("sleepstudy")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return hierlm.Model("Reaction ~ Days + (Days|Subject)", sleep).fit(
            "nuts", draws=500, tune=500, chains=4, random_seed=21, progressbar=False)


def test_posterior_predictions(sleep_engine_fit, sleepstudy):
    fit = sleep_engine_fit
    S = 4 * 500
    lin = fit.posterior_linpred()
    assert lin.shape == (S, 180)
    # the fit's point predictions are the posterior means of the linear predictor
    np.testing.assert_allclose(lin.mean(axis=0), fit.fitted().to_numpy(), rtol=1e-10)
    np.testing.assert_allclose(fit.posterior_epred(), lin)  # identity link
    pp = fit.posterior_predict(seed=1)
    sig2 = fit.draws("sigma") ** 2
    # var(y~) = var(mu) + E[sigma^2]; the sample variance of 2000 draws is within ~7% (4 SE)
    np.testing.assert_allclose(pp.var(axis=0), lin.var(axis=0) + sig2.mean(), rtol=0.15)
    assert np.all(np.abs(pp.mean(axis=0) - lin.mean(axis=0)) < 4 * np.sqrt(pp.var(axis=0) / S))
    pop = fit.posterior_linpred(re_form="~0")
    np.testing.assert_allclose(pop, fit.draws("fixef") @ fit.design.X.T)
    new = pd_frame({"Days": [0.0, 0.0, 9.0], "Subject": ["new1", "new1", "308"]})
    with pytest.raises(hierlm.HierlmError, match=r"new level\(s\) \['new1'\] of grouping factor 'Subject'"):
        fit.posterior_linpred(new)
    nl = fit.posterior_linpred(new, allow_new_levels=True, seed=3)
    np.testing.assert_array_equal(nl[:, 0], nl[:, 1])  # one effect per new level and draw
    # a new subject at Days 0: beta_0 + b_0, b_0 ~ N(0, sd_(Intercept)^2) for each draw
    sd0 = fit.draws("sd_Subject")[:, 0]
    want = np.sqrt(fit.draws("fixef")[:, 0].var() + (sd0**2).mean())
    assert nl[:, 0].std() == pytest.approx(want, rel=0.1)
    np.testing.assert_allclose(nl[:, 2], fit.posterior_linpred(new.iloc[2:])[:, 0])


def pd_frame(d):
    import pandas as pd

    return pd.DataFrame(d)


def test_summary_shows_tail_ess(sleep_engine_fit):
    text = str(sleep_engine_fit.summary())
    assert "Bulk_ESS" in text and "Tail_ESS" in text
    dg = sleep_engine_fit.diagnostics
    assert (dg["ess_tail"] > 0).all()


def test_tidy_of_a_posterior_fit(sleep_engine_fit):
    fit = sleep_engine_fit
    t = fit.tidy(conf_int=True, conf_level=0.9)
    fx = t[t["effect"] == "fixed"]
    np.testing.assert_allclose(fx["estimate"], fit.draws("fixef").mean(axis=0), rtol=1e-12)
    np.testing.assert_allclose(fx["conf.low"], np.quantile(fit.draws("fixef"), 0.05, axis=0), rtol=1e-12)
    rp = t[t["effect"] == "ran_pars"]
    assert list(rp["term"]) == ["sd__(Intercept)", "cor__(Intercept).Days", "sd__Days", "sd__Observation"]


def test_sampler_callbacks_answer_in_nutpie_codes():
    """The C callbacks nutpie calls, through their addresses as nutpie does: the density and
    gradient of ``logp_grad`` with code 0; a wrong dimension -1 (an error); a point without a
    density (sigma overflowing to inf) 4, which nutpie takes as a divergence; the expansion
    copies the point."""
    import ctypes

    from hierlm.bayes import kernels

    m = _model("slope")
    post = EnginePosterior(m.design, m.priors)
    dbl = ctypes.POINTER(ctypes.c_double)
    logp_cb, expand_cb = kernels.callbacks()
    logp = ctypes.CFUNCTYPE(ctypes.c_int64, ctypes.c_uint64, dbl, dbl, dbl, ctypes.c_void_p)(logp_cb.address)
    expand = ctypes.CFUNCTYPE(ctypes.c_int64, ctypes.c_uint64, ctypes.c_uint64, dbl, dbl,
                              ctypes.c_void_p)(expand_cb.address)

    def call(phi, dim):
        out, lp = np.zeros(post.size), np.zeros(1)
        rc = logp(dim, phi.ctypes.data_as(dbl), out.ctypes.data_as(dbl), lp.ctypes.data_as(dbl),
                  post._buf.ctypes.data)
        return rc, lp[0], out

    phi = post.start()
    rc, lp, g = call(phi, post.size)
    val, grad = post.logp_grad(phi)
    assert rc == 0 and lp == val
    np.testing.assert_array_equal(g, grad)
    assert call(phi, post.size + 1)[0] == -1
    far = phi.copy()
    far[0] = 800.0  # exp(800): sigma is inf
    assert call(far, post.size)[0] == 4
    out = np.zeros(post.size)
    assert expand(post.size, post.size, phi.ctypes.data_as(dbl), out.ctypes.data_as(dbl), None) == 0
    np.testing.assert_array_equal(out, phi)
    assert expand(post.size, post.size + 1, phi.ctypes.data_as(dbl), out.ctypes.data_as(dbl), None) == -1


def test_kernel_bindings_refuse_arrays_of_other_sizes():
    """The C kernels index by the model buffer's sizes: a point or a block of normals of another
    shape would be read past its end (a number from memory that is not the model's), so the
    bindings refuse it."""
    from hierlm.bayes import kernels

    m = _model("slope")
    post = EnginePosterior(m.design, m.priors)
    phi = post.start()
    with pytest.raises(ValueError, match="phi has shape"):
        kernels.marginal_logp(post._buf, phi[:-1])
    S = 3
    Zb, Zr, Z1 = np.zeros((S, post.p)), np.zeros((S, post.qr)), np.zeros((S, post.l1, post.p1))
    kernels.draw_effects(post._buf, np.tile(phi, (S, 1)), Zb, Zr, Z1)  # the right shapes pass
    with pytest.raises(ValueError, match="Z1 has shape"):
        kernels.draw_effects(post._buf, np.tile(phi, (S, 1)), Zb, Zr, Z1[:, :-1])
    with pytest.raises(ValueError, match="phis has shape"):
        kernels.draw_effects(post._buf, np.tile(phi[:-1], (S, 1)), Zb, Zr, Z1)


def test_chains_extended_until_they_pass_the_check(sleepstudy, monkeypatch):
    """nutpie_until_converged checks the draws at fixed counts (draws, then
    every max(100, draws // 4)) and stops at the first that passes, every
    chain cut to exactly that count; a seed gives the same draws; it never
    goes past max_draws; max_draws == draws, or a trace too big to look at
    while it runs, is plain sampling."""
    from hierlm.bayes.marginal import nutpie_model
    from hierlm.bayes.sample import nutpie_until_converged

    m = hierlm.Model("Reaction ~ Days + (Days|Subject)", sleepstudy)
    post = EnginePosterior(m.design, m.priors)
    start = post.start()
    model = nutpie_model(post, lambda seed: start + np.random.default_rng(seed).uniform(-0.5, 0.5, start.size))
    kw = dict(tune=200, chains=2, seed=3, progress_bar=False, save_warmup=False)

    def run(passes_at, max_draws):
        seen = []

        def check(p):
            seen.append(p.sizes["draw"])
            assert not np.isnan(p["phi"].values).any()  # only complete draws are checked
            return len(seen) == passes_at

        idata = nutpie_until_converged(model, draws=200, max_draws=max_draws, check=check, **kw)
        return idata, seen

    a, seen = run(3, 2000)
    assert seen == [200, 300, 400] and a.posterior.sizes["draw"] == 400
    assert a.sample_stats.sizes["draw"] == 400
    b, _ = run(3, 2000)
    np.testing.assert_array_equal(a.posterior["phi"].values, b.posterior["phi"].values)
    c, seen = run(99, 450)  # never passes: stops at max_draws, the last count unchecked
    assert seen == [200, 300, 400] and c.posterior.sizes["draw"] == 450
    # the first 400 draws of the longer run are the same draws
    np.testing.assert_array_equal(c.posterior["phi"].values[:, :400], a.posterior["phi"].values)
    d, seen = run(1, 200)
    assert seen == [] and d.posterior.sizes["draw"] == 200
    # a trace too big to look at while it runs: plain sampling
    import hierlm.bayes.sample as sample

    monkeypatch.setattr(sample, "TRACE_LOOK_MAX", 10.0)
    e, seen = run(3, 2000)
    assert seen == [] and e.posterior.sizes["draw"] == 200


def test_convergence_check_of_draws():
    """converged(): R-hat and bulk ESS over the named variables, constant
    entries (a correlation matrix's diagonal) skipped; chains that disagree
    fail, well-mixed chains pass; the thresholds are min(400, 100 a chain)."""
    import xarray as xr

    from hierlm.bayes.sample import converged

    rng = np.random.default_rng(0)
    good = rng.normal(size=(4, 1000, 2))
    corr = np.ones((4, 1000, 2, 2))
    corr[..., 0, 1] = corr[..., 1, 0] = np.tanh(rng.normal(size=(4, 1000)))
    ds = xr.Dataset({"sd_g": (("chain", "draw", "k"), good), "corr_g": (("chain", "draw", "a", "b"), corr),
                     "ranef_g": (("chain", "draw"), np.zeros((4, 1000)) + np.arange(4)[:, None])})
    ok, r, e = converged(ds, ["sd_g", "corr_g", "absent"])
    assert ok and r < 1.01 and e > 400
    bad = good.copy()
    bad[0] += 0.5  # one chain elsewhere
    ok, r, _ = converged(ds.assign(sd_g=(("chain", "draw", "k"), bad)), ["sd_g"])
    assert not ok and r > 1.01
    # sticky chains: an AR(1) with high correlation has few effective draws
    ar = np.zeros((4, 1000))
    for t in range(1, 1000):
        ar[:, t] = 0.995 * ar[:, t - 1] + rng.normal(size=4) * 0.1
    ok, _, e = converged(ds.assign(sd_g=(("chain", "draw"), ar)), ["sd_g"])
    assert not ok and e < 400
    # two chains of 150 independent draws: bulk ESS about 300, over the bar
    # of 200 for two chains (a bar of 400 would fail them)
    ok, _, e = converged(ds.isel(chain=[0, 1], draw=slice(0, 150)), ["sd_g"])
    assert 200 < e < 400 and ok


def test_max_draws_is_checked(sleepstudy):
    m = hierlm.Model("Reaction ~ Days + (Days|Subject)", sleepstudy)
    with pytest.raises(hierlm.HierlmError, match="max_draws must be an integer >= draws"):
        m.fit("nuts", draws=100, max_draws=50)
    with pytest.raises(hierlm.HierlmError, match="needs the nutpie sampler"):
        m.fit("nuts", sampler="pymc", draws=100, max_draws=200)
