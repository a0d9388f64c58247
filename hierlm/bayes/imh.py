r"""Independence Metropolis–Hastings on the marginal posterior: exact Bayesian
fits of big Gaussian models, one density evaluation a draw and no gradient.

NUTS needs the gradient of the marginal posterior at every leapfrog step; for
a model whose factor has a large dense block (InstEval's 1,159 columns, the
5,000 items of a million ratings) that gradient costs several Cholesky
factorizations, and the PyMC model that samples the random effects instead
needs minutes.  But the marginal posterior itself is low-dimensional (the
fixed effects, sigma, the SDs and correlations: six numbers for InstEval)
and, with many observations per parameter, close to Gaussian on the
unconstrained scale.  So:

1. a Newton step from the ML estimate (gradient and Hessian of the log
   marginal posterior by finite differences; the random effects integrated
   out exactly, priors and Jacobians included) gives a centre ``phi0`` near
   the posterior mode and the inverse Hessian ``V`` there (the MAP fit's,
   :func:`hierlm.bayes.map.fit_map`, where that Hessian is not positive
   definite);
2. each chain proposes independently of its state, from a multivariate
   Student-t with ``df`` degrees of freedom, centre ``phi0`` and scale
   ``V``, mixed with a wider t (:class:`_Proposal`) for the tails that the
   curvature misses; halfway through tuning a proposal refit to the draws
   so far (their mean and covariance) replaces it if it fits them better
   (:func:`_weight_spread`), and the proposal is then fixed.  A proposal is
   accepted with the Metropolis–Hastings probability
   ``min(1, p(y) q(x) / (p(x) q(y)))``: the draws are from the exact
   marginal posterior whatever the proposal, only their autocorrelation
   depends on how well it fits (LaplacesDemon's ``IM`` algorithm; Tierney
   1994, Ann. Statist.);
3. at every iteration, b is drawn exactly from ``b | y, beta, theta, sigma``
   with the factor of the current state (:meth:`ProfiledDeviance.solve`
   with noise): one triangular solve, no new factorization.

Each iteration costs one evaluation of the marginal density (one
factorization, as one REML evaluation) and no gradient; the chains report
R-hat and ESS as NUTS's do, and the acceptance rate says how well the
proposal fits (below ``results.ACCEPT_WARN``, 0.2, the fit warns and suggests NUTS).
"""

from __future__ import annotations

import time
import warnings

import numpy as np
from scipy.special import gammaln

from ..errors import HierlmError
from ..family import make_family
from ..lmm import fit_lmm
from ..optimize import deriv12, warn_all
from .backend import MarginalPlan
from .map import MarginalPosterior, fit_map
from .results import BayesFit, posterior_dataset
from .sample import sampler_options

IMH_OPTIONS = {"draws": 1000, "tune": 200, "chains": 4, "df": 20.0, "random_seed": None, "log_likelihood": None}


class _Proposal:
    """A fixed independence proposal: with probability ``1 - WIDE`` a
    multivariate t with ``df`` degrees of freedom, centre ``mu`` and scale
    ``C C'``; else a t with 3 degrees of freedom and twice that scale (the
    tails that a skewed posterior has beyond its Laplace approximation:
    with few groups, an SD's posterior on the log scale)."""

    WIDE, WIDE_SCALE, WIDE_DF = 0.1, 2.0, 3.0

    def __init__(self, mu: np.ndarray, C: np.ndarray, df: float):
        self.mu, self.C, self.df = mu, C, df
        self.Cinv = np.linalg.inv(C)

    @staticmethod
    def _t(z: np.ndarray, df: float) -> float:
        d = z.size
        return float(gammaln((df + d) / 2) - gammaln(df / 2) - 0.5 * d * np.log(df * np.pi)
                     - 0.5 * (df + d) * np.log1p(z @ z / df))

    def draw(self, rng) -> np.ndarray:
        wide = rng.random() < self.WIDE
        df = self.WIDE_DF if wide else self.df
        z = rng.standard_normal(self.mu.size) / np.sqrt(rng.chisquare(df) / df)
        return self.mu + self.C @ (z * (self.WIDE_SCALE if wide else 1.0))

    def logpdf(self, x: np.ndarray) -> float:
        """log density up to the constant log|C|."""
        z = self.Cinv @ (x - self.mu)
        w = self.WIDE_SCALE
        return float(np.logaddexp(np.log1p(-self.WIDE) + self._t(z, self.df),
                                  np.log(self.WIDE) - z.size * np.log(w) + self._t(z / w, self.WIDE_DF)))


def _weight_spread(prop: _Proposal, S: np.ndarray, lp: np.ndarray) -> float:
    """Variance of the log importance weight ``log p - log q`` over the draws
    ``S`` (log posterior ``lp``): the smaller, the closer the proposal to the
    posterior, and the more often an independence sampler accepts (all
    proposals accept where it is 0).  It decides whether the refit replaces
    the Laplace proposal: where the posterior is close to normal (a million
    ratings) the draws' covariance only adds its own noise (an ad hoc run
    with 30 tuning steps: acceptance 0.63 against the Laplace proposal's
    0.86); where it is skewed (few groups) the refit's wider tails win.
    (``logpdf`` omits log|C|, a constant shift of every weight.)"""
    lw = lp - np.array([prop.logpdf(x) for x in S])
    return float(np.var(lw))


def _laplace(design, priors):
    """(the marginal posterior, a centre, the Cholesky factor of a covariance)
    for the first proposal: one Newton step from the ML estimate, with the
    gradient and Hessian of the log posterior there by central differences
    (lme4's ``deriv12``, 2 d^2 + 1 evaluations).  The chains only need a
    proposal near the posterior, which the tuning then refits: this costs
    a fraction of the MAP fit's optimization (InstEval: 75 evaluations
    instead of some 400), which is the fallback where the Hessian at the ML
    estimate is not positive definite."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # a singular ML fit is a fine start
        ml = fit_lmm(design, False, {"calc_derivs": False})
    post = MarginalPosterior(design, priors, reml=False)
    phi = post.start(ml)
    # coordinates of order one: the fixed effects in units of their ML standard errors
    scale = np.ones_like(phi)
    scale[: design.p] = np.sqrt(np.diag(ml.vcov.to_numpy()))
    g, H = deriv12(lambda xs: np.array([post(phi + scale * v) for v in xs]), np.zeros_like(phi))
    try:
        Lh = np.linalg.cholesky(H)
        step = -np.linalg.solve(H, g)
        if post(phi + scale * step) < post(phi):
            phi = phi + scale * step
        # the covariance's factor: scale H^{-1} scale = (scale L^{-T}) (scale L^{-T})'
        C = scale[:, None] * np.linalg.inv(Lh).T
        return post, phi, np.linalg.cholesky(C @ C.T)
    except np.linalg.LinAlgError:
        pass
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the proposal needs a mode, not a converged one
        mode = fit_map(design, "gaussian", priors)
    try:
        return mode.posterior, mode.phi, np.linalg.cholesky(mode.cov_phi)
    except np.linalg.LinAlgError:
        raise HierlmError("'imh' needs the marginal posterior's curvature near its mode, and its Hessian is "
                          "not positive definite there (a flat or boundary direction): use fit('nuts')") from None


def fit_imh(design, family, priors, options: dict | None = None, *, model=None,
            data_name: str | None = None) -> BayesFit:
    """Sample the posterior of a Gaussian mixed model by independence
    Metropolis–Hastings from its Laplace approximation (module docstring).

    Parameters
    ----------
    design : hierlm.design.build.Design
    family : Family or str
        Gaussian (the random effects are integrated out exactly).
    priors : hierlm.priors.PriorSet
    options : dict, optional
        ``draws=1000`` and ``tune=200`` per chain (the first ``tune``
        iterations are dropped), ``chains=4``, ``df=20`` (the proposal's
        degrees of freedom), ``random_seed``, ``log_likelihood`` (None: when
        it fits in memory).
    model : hierlm.Model, optional
    data_name : str, optional

    Returns
    -------
    BayesFit
        As a NUTS fit: draws of fixed effects, sigma, SDs, correlations and
        random effects in ``idata``; ``sample_stats`` holds ``accepted`` and
        ``lp`` (the log posterior on the unconstrained scale).
    """
    o = sampler_options(options, IMH_OPTIONS, "'imh'")
    family = make_family(family)
    if not family.is_gaussian:
        raise HierlmError(f"'imh' samples the exact marginal posterior of a Gaussian model; {family.a_name} "
                          "model has no closed-form marginal: use fit('nuts')")
    df = float(o["df"])
    if not df > 2:
        raise HierlmError(f"df (the proposal's degrees of freedom) must be above 2, not {o['df']!r}")
    start = time.perf_counter()
    post, phi0, C = _laplace(design, priors)
    rng = np.random.default_rng(o["random_seed"])
    nchain, ntune, ndraw, dim = int(o["chains"]), int(o["tune"]), int(o["draws"]), phi0.size
    q = sum(r.q for r in design.remats)
    phis = np.empty((nchain, ndraw, dim))
    bs = np.empty((nchain, ndraw, q))
    accepted = np.zeros((nchain, ndraw), dtype=bool)
    lps = np.empty((nchain, ndraw))

    def density(phi):
        val, f = post.evaluate(phi)
        return (-val if val < 1e300 and f is not None else -np.inf), f

    laplace = _Proposal(phi0, C, df)
    states = []
    for _ in range(nchain):  # each chain starts at its own proposal draw of finite density
        for _ in range(100):
            x = laplace.draw(rng)
            lx, fx = density(x)
            if np.isfinite(lx):
                break
        else:
            raise HierlmError("'imh': 100 proposals from the Laplace approximation all have zero posterior "
                              "density; use fit('nuts')")
        states.append((x, lx, fx))

    def run(prop, iters: int, keep_from: int, seen: list | None = None):
        """``iters`` iterations of every chain with proposal ``prop``; the
        draws from iteration ``keep_from`` on are stored (``seen``: the
        states, for adaptation)."""
        for c in range(nchain):
            x, lx, fx = states[c]
            qx = prop.logpdf(x)
            for i in range(iters):
                y = prop.draw(rng)
                qy = prop.logpdf(y)
                ly, fy = density(y)
                acc = np.log(rng.random()) < (ly - lx) - (qy - qx)
                if acc:
                    x, qx, lx, fx = y, qy, ly, fy
                if seen is not None:
                    seen.append((x, lx))
                if i >= keep_from:
                    j = i - keep_from
                    beta, sigma = post.natural(x)[:2]
                    # b | y, beta, theta, sigma at the current state: a fresh draw each iteration
                    _, parts = post.dev.solve(fx, beta, sigma * rng.standard_normal(q))
                    phis[c, j], lps[c, j], accepted[c, j] = x, lx, acc
                    bs[c, j] = np.concatenate([b.ravel() for b in parts])
            states[c] = (x, lx, fx)

    # tuning, first half: the Laplace proposal; then the proposal refit to the
    # draws (their mean and covariance: wider than the curvature at the mode
    # where the posterior is skewed) replaces it if it fits them better, and
    # is fixed for what follows
    first = ntune // 2
    seen: list = []
    run(laplace, first, first, seen)
    prop = laplace
    if len(seen) > 4 * dim:
        S = np.array([x for x, _ in seen])
        try:
            refit = _Proposal(S.mean(axis=0), np.linalg.cholesky(np.cov(S, rowvar=False)), df)
            lp = np.array([lx for _, lx in seen])
            if _weight_spread(refit, S, lp) < _weight_spread(laplace, S, lp):
                prop = refit
        except np.linalg.LinAlgError:  # too few distinct draws: keep the Laplace proposal
            pass
    run(prop, ntune - first + ndraw, ntune - first)
    seconds = time.perf_counter() - start
    idata = _inference_data(post, design, priors.term_names(), phis, bs, accepted, lps)
    fit = BayesFit(design, family, priors, idata, sampler="imh", plan=MarginalPlan("imh"), seconds=seconds,
                   random_seed=o["random_seed"], log_likelihood=o["log_likelihood"], model=model,
                   data_name=data_name)
    warn_all(fit.convergence.messages, stacklevel=3)
    return fit


def _inference_data(post, design, terms, phis, bs, accepted, lps):
    """InferenceData in :class:`BayesFit`'s layout from the chains'
    unconstrained draws ``phis`` (chains, draws, dim), random effects ``bs``
    (chains, draws, q) and sampler statistics."""
    import arviz as az
    import xarray as xr

    nc, nd, dim = phis.shape
    nat = [post.natural(x) for x in phis.reshape(-1, dim)]
    sds = [np.array([n[2][k] for n in nat]) for k in range(len(terms))]
    Ls = [np.array([n[3][k] for n in nat]) for k in range(len(terms))]
    splits = np.cumsum([r.q for r in design.remats])[:-1]
    b_terms = [b.reshape(nc * nd, r.nlevels, r.p)
               for b, r in zip(np.split(bs.reshape(nc * nd, -1), splits, axis=1), design.remats)]
    chains, draws = np.arange(nc), np.arange(nd)
    posterior = posterior_dataset(design, terms, chains, draws, np.array([n[0] for n in nat]),
                                  np.array([n[1] for n in nat]), sds, Ls, b_terms)
    cd = ("chain", "draw")
    stats = xr.Dataset({"accepted": xr.DataArray(accepted, dims=cd), "lp": xr.DataArray(lps, dims=cd)},
                       coords={"chain": chains, "draw": draws})
    return az.InferenceData(posterior=posterior, sample_stats=stats)
