"""Posterior (NUTS) fits: the accessors of an lme4 fit, Bayesian numbers.

The NUTS engine's entry point is :func:`fit_nuts`; the fit, :class:`BayesFit`,
holds the draws (ArviZ InferenceData) and answers lme4's accessors with
posterior means, through its family as every fit does.
"""

from __future__ import annotations

import warnings
from functools import cached_property

import numpy as np
import pandas as pd

from ..errors import HierlmError
from ..family import make_family
from ..fit import MixedFit
from ..glmm import fit_glmm
from ..lmm import fit_lmm
from ..optimize import Convergence, warn_all
from ..params import theta_of_covariances
from .backend import (
    MarginalPlan, build_pymc_model, collapsed_stats, dense_stats, draw_collapsed, draw_ranef, draw_ranef_dense,
    glmm_observations, nested_parents, parents_first, plan_marginalization, sufficient_stats,
)
from .marginal import ENGINE_MAX_REST, EnginePosterior, engine_supported
from .sample import RHAT_MAX, SamplerError, choose_sampler, ess_min, run_engine_nuts, run_nuts, sampler_options

# NUTS's target acceptance rate by default: Stan's 0.8 for the engine's
# low-dimensional, funnel-free marginal posterior (sleepstudy, 4 x 1000
# draws: 4.0 leapfrog steps a draw instead of 5.4 at 0.9, min bulk ESS in
# the same range, 2600-3500, over the fits run either way); 0.9 for the
# PyMC models, whose sampled effects make funnels
ENGINE_TARGET_ACCEPT = 0.8
PYMC_TARGET_ACCEPT = 0.9
# non-Gaussian families (whose effects the PyMC model samples): rstanarm's
# default for its models (adapt_delta = 0.95). grouseticks, seeds 1-5 with
# the chains extended until they converge: 0.9 left 2 divergences in one
# fit, 0.95 none, in about the same time (30-35 s; docs/benchmarks.md)
GLMM_TARGET_ACCEPT = 0.95
#: independence Metropolis-Hastings (hierlm.bayes.imh): an acceptance rate
#: below this says the proposal fits the posterior poorly (chains stick)
ACCEPT_WARN = 0.2


def _block_diag(blocks: list[np.ndarray]) -> np.ndarray:
    """(S, P, P) block-diagonal stack of per-draw blocks (S, p_k, p_k)."""
    P = sum(B.shape[1] for B in blocks)
    out = np.zeros((blocks[0].shape[0], P, P))
    o = 0
    for B in blocks:
        k = B.shape[1]
        out[:, o: o + k, o: o + k] = B
        o += k
    return out


NUTS_OPTIONS = {"draws": 1000, "tune": 1000, "chains": 4, "sampler": None, "random_seed": None,
                "progressbar": True, "marginalize": None, "target_accept": None, "log_likelihood": None,
                "backend": None, "max_draws": None}
# max_draws=None: nutpie's chains may be extended to this many times draws
# until they pass the convergence check (hierlm.bayes.sample.nutpie_until_converged)
MAX_DRAWS_FACTOR = 5


def summary_variables(terms) -> list[str]:
    """The posterior's variables that the diagnostics table and the
    convergence check cover: fixed effects, the family's parameters, SDs
    and correlations (not the effects themselves)."""
    return (["fixef", "cutpoints", "sigma", "shape", "phi", "nu"]
            + [v for t in terms for v in (f"sd_{t}", f"corr_{t}")])


def max_draws_of(o: dict, sampler: str) -> int:
    """The most draws a chain may be extended to: ``max_draws``, or
    MAX_DRAWS_FACTOR x ``draws`` with nutpie (other samplers draw ``draws``)."""
    m = o["max_draws"]
    if m is None:
        return MAX_DRAWS_FACTOR * o["draws"] if sampler == "nutpie" else o["draws"]
    if not isinstance(m, (int, np.integer)) or m < o["draws"]:
        raise SamplerError(f"max_draws must be an integer >= draws ({o['draws']}), not {m!r}")
    if sampler != "nutpie" and m > o["draws"]:
        raise SamplerError(f"max_draws (extending the chains until they converge) needs the nutpie sampler, "
                           f"not {sampler!r}; leave it unset or equal to draws")
    return int(m)


def use_engine(design, family, priors, o: dict, sampler: str) -> bool:
    """Whether NUTS runs on the engine's exact marginal posterior
    (``backend="engine"``, the default where it applies) or on the PyMC
    model (``backend="pymc"``)."""
    backend = o["backend"]
    if backend not in (None, "engine", "pymc"):
        raise HierlmError(f"backend must be 'engine' or 'pymc' (or None: the engine where it applies), "
                          f"not {backend!r}")
    if backend == "pymc":
        return False
    fits = engine_supported(design, family, priors)
    if backend is None:
        return fits and sampler == "nutpie" and o["marginalize"] is not False
    if o["marginalize"] is False:
        raise HierlmError("backend='engine' integrates the effects out: it cannot take marginalize=False")
    if sampler != "nutpie":
        raise HierlmError(f"backend='engine' samples with nutpie, not {sampler!r}")
    if not fits:
        raise HierlmError("backend='engine' needs a Gaussian model without weights or offset, Normal or flat "
                          f"priors on the fixed effects, and at most {ENGINE_MAX_REST - design.p - 1} random "
                          "effects in the terms after the first (the first, on the factor with the most levels, "
                          "may have any number); use backend='pymc'")
    return True


def fit_nuts(design, family, priors, options: dict | None = None, *, model=None,
             data_name: str | None = None) -> "BayesFit":
    """Sample the posterior with NUTS: the engine's entry point.

    Parameters
    ----------
    design : hierlm.design.build.Design
    family : Family or str
    priors : hierlm.priors.PriorSet
    options : dict, optional
        ``draws=1000``, ``tune=1000``, ``chains=4``, ``sampler`` (``"nutpie"``,
        ``"pymc"``, ``"numpyro"``; default the first installed),
        ``random_seed``, ``progressbar=True``, ``marginalize`` (None: as much
        as pays; see :func:`hierlm.bayes.backend.plan_marginalization`),
        ``target_accept`` (None: 0.8 on the engine, whose posterior has no
        funnel, as Stan's default; 0.9 for the PyMC model of a Gaussian
        model, 0.95 for other families, as rstanarm), ``log_likelihood``
        (None: when it fits in memory),
        ``backend`` (None: ``"engine"`` where it applies, else ``"pymc"``),
        ``max_draws`` (None: 5 x ``draws`` with nutpie, ``draws`` otherwise):
        nutpie's chains that have not converged after ``draws`` (some R-hat
        above 1.01 or bulk ESS below 400) go on, checked every
        ``max(100, draws // 4)`` draws, until they do or reach ``max_draws``;
        ``max_draws=draws`` turns this off.
        The engine samples the exact marginal posterior of the variance
        parameters (:mod:`hierlm.bayes.marginal`) with nutpie, nothing
        compiled per model; it applies to Gaussian models without weights
        or offset, with Normal or flat fixed-effect priors, whose terms
        after the first have at most ~150 random effects in all (the first
        term may have any number of levels).
    model : hierlm.Model, optional
    data_name : str, optional

    Returns
    -------
    BayesFit
    """
    o = sampler_options(options, NUTS_OPTIONS, "NUTS")
    family = make_family(family)
    sampler = choose_sampler(o["sampler"])
    max_draws = max_draws_of(o, sampler)
    if use_engine(design, family, priors, o, sampler):
        # the exact marginal posterior on the REML engine: nothing to compile
        post = EnginePosterior(design, priors)
        idata, seconds = run_engine_nuts(post, o["draws"], o["tune"], o["chains"], o["random_seed"],
                                         o["progressbar"], o["target_accept"] or ENGINE_TARGET_ACCEPT,
                                         max_draws=max_draws)
        fit = BayesFit(design, family, priors, idata, sampler=sampler, plan=MarginalPlan("engine"),
                       seconds=seconds, random_seed=o["random_seed"], log_likelihood=o["log_likelihood"],
                       model=model, data_name=data_name, engine=post)
        warn_all(fit.convergence.messages, stacklevel=3)
        return fit
    plan = plan_marginalization(design, priors, o["marginalize"], family)
    pm_model = build_pymc_model(design, priors, plan, family)
    init = None if family.is_gaussian else glmm_start(design, family, priors, pm_model)
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", category=FutureWarning)
        warnings.filterwarnings("ignore", category=UserWarning, module="pymc")
        idata, seconds = run_nuts(pm_model, sampler, o["draws"], o["tune"], o["chains"], o["random_seed"],
                                  o["progressbar"],
                                  o["target_accept"] or (PYMC_TARGET_ACCEPT if family.is_gaussian else GLMM_TARGET_ACCEPT),
                                  cheap_gradient=plan.kind in ("per_level", "dense"), initial_points=init,
                                  jitter=("z_", "c_"), max_draws=max_draws,
                                  check_vars=summary_variables(priors.term_names()))
    fit = BayesFit(design, family, priors, idata, sampler=sampler, plan=plan, seconds=seconds,
                   random_seed=o["random_seed"], log_likelihood=o["log_likelihood"], model=model,
                   data_name=data_name)
    warn_all(fit.convergence.messages, stacklevel=3)
    return fit


def glmm_start(design, family, priors, pm_model) -> dict:
    """Start values of a binomial or Poisson NUTS fit: the Laplace (glmer) fit.

    PyMC's default start (prior support points, every variable jittered by
    U(-1, 1) on the unconstrained scale) puts a log-link linear predictor
    far out, where exp(eta) swamps the gradient; on grouseticks chains
    stayed stuck there through tuning (R-hat 5.8, 183 divergences with 4 x
    500 draws).  Starting at the Laplace estimates and conditional modes,
    with only the standardized effects z jittered, gives R-hat 1.02 in 11 s.
    """
    names = {v.name for v in pm_model.free_RVs}
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            if family.name == "student":  # a robust LMM starts at the Gaussian REML fit
                lap = fit_lmm(design, True, {"calc_derivs": False})
            else:
                lap = fit_glmm(design, family, 1, {"calc_derivs": False})  # start values: no Hessian needed
    except HierlmError:  # pragma: no cover  (then PyMC's defaults)
        return None
    d = design
    init = {}
    beta = lap.fixef
    if "fixef" in names:
        init["fixef"] = beta.to_numpy()
    for n in d.xnames:
        if f"b_{n}" in names:
            init[f"b_{n}"] = np.asarray(beta[n])
    for t, r, b, S in zip(priors.term_names(), d.remats, lap.b, lap.covariances()):
        sd = np.sqrt(np.maximum(np.diag(S), 0.05**2))  # away from 0 (singular fits)
        if f"ranef_{t}" in names:  # centered term
            init[f"ranef_{t}"] = np.asarray(b, dtype=float)
        if f"sd_{t}" not in names or r.p > 2:
            continue  # LKJ-Cholesky terms (p > 2): PyMC's defaults
        init[f"sd_{t}"] = sd
        if r.p == 1:
            L = sd[:, None]
        else:
            rho = float(np.clip(S[0, 1] / (sd[0] * sd[1]), -0.9, 0.9))
            init[f"corr01_{t}"] = np.asarray((rho + 1.0) / 2.0)
            L = np.array([[sd[0], 0.0], [sd[1] * rho, sd[1] * np.sqrt(1 - rho**2)]])
        if f"z_{t}" in names:
            init[f"z_{t}"] = np.clip(np.linalg.solve(L, np.asarray(b, dtype=float).T).T, -4.0, 4.0)
    # the family's parameter (shape, phi) at its Laplace estimate
    for value in lap.family.params.values():
        if family.dist.param_prior in names:
            init[family.dist.param_prior] = np.asarray(value, dtype=float)
    if "cutpoints_centred" in names:  # an ordinal model's thresholds, of the centred predictors
        init["cutpoints_centred"] = (np.asarray(lap.family.params["cutpoints"], dtype=float)
                                     - float(d.X.mean(axis=0) @ beta.to_numpy()))
    # hierarchically centered terms: the sums of the modes down their chain
    parent = nested_parents(d)
    terms = priors.term_names()
    total: dict = {}
    for k in parents_first(parent, len(terms)):
        bk = np.asarray(lap.b[k], dtype=float)[:, 0]
        total[k] = bk + total[parent[k][0]][parent[k][1]] if k in parent else bk
        if f"c_{terms[k]}" in names:
            init[f"c_{terms[k]}"] = total[k]
    return init


def posterior_dataset(design, terms, chains, draws, beta, sigma, sds, Ls, bs):
    """The posterior variables of :class:`BayesFit` (``fixef``, ``sigma``,
    ``sd_<term>``, ``corr_<term>``, ``ranef_<term>`` with their coordinates)
    from flat draws, S = len(chains) * len(draws) rows chain by chain:
    beta (S, p), sigma (S,), and per term sd (S, p_k), the correlation's
    Cholesky factor (S, p_k, p_k) and b (S, levels, p_k)."""
    import xarray as xr

    nc, nd = len(chains), len(draws)
    cd = ("chain", "draw")
    out = {"fixef": xr.DataArray(np.reshape(beta, (nc, nd, -1)), dims=cd + ("fixed",)),
           "sigma": xr.DataArray(np.reshape(sigma, (nc, nd)), dims=cd)}
    for k, (t, r) in enumerate(zip(terms, design.remats)):
        tdim = f"{t}__term"
        out[f"sd_{t}"] = xr.DataArray(np.reshape(sds[k], (nc, nd, r.p)), dims=cd + (tdim,))
        if r.p > 1:
            Lc = Ls[k]
            out[f"corr_{t}"] = xr.DataArray((Lc @ np.swapaxes(Lc, 1, 2)).reshape(nc, nd, r.p, r.p),
                                            dims=cd + (tdim, f"{t}__term_bis"))
        out[f"ranef_{t}"] = xr.DataArray(np.reshape(bs[k], (nc, nd, r.nlevels, r.p)),
                                         dims=cd + (f"{r.group}__level", tdim))
    coords = {"chain": chains, "draw": draws, "fixed": list(design.xnames)}
    coords.update({f"{r.group}__level": list(r.levels) for r in design.remats})
    coords.update({f"{t}__term": list(r.cnames) for t, r in zip(terms, design.remats)})
    coords.update({f"{t}__term_bis": list(r.cnames) for t, r in zip(terms, design.remats) if r.p > 1})
    return xr.Dataset(out, coords=coords)


class BayesFit(MixedFit):
    """A posterior sample of a mixed model (NUTS).

    Point accessors (``fixef``, ``varcorr``, ``ranef()``, ``coef()``,
    ``predict()``) give posterior means; ``idata`` holds everything
    (ArviZ InferenceData: posterior, sample_stats, observed_data,
    log_likelihood).  Posterior variables: ``fixef``, ``sigma``,
    ``sd_<group>``, ``corr_<group>`` (terms with correlations) and
    ``ranef_<group>`` (levels x terms), named by lme4's group names.

    Attributes
    ----------
    idata : arviz.InferenceData
    sampler : str
    marginalized : bool
        True when random effects (all, or the small terms with the fixed
        effects) were integrated out while sampling and drawn exactly
        afterwards.
    plan : MarginalPlan
        What was integrated out (``plan.describe(terms)`` says it in words).
    seconds : float
        Wall time of compilation and sampling.
    """

    fit_label = "NUTS posterior"

    #: the sampling algorithm, as the summary names it
    method = "NUTS"

    kind = "posterior"
    is_posterior = True

    def __init__(self, design, family, priors, idata, sampler: str, plan: MarginalPlan, seconds: float,
                 random_seed=None, log_likelihood: bool | None = None, *, model=None, data_name: str | None = None,
                 engine: EnginePosterior | None = None):
        self.model = model
        self.engine = engine
        self.design = design
        self.family = family
        self.priors = priors
        self.sampler = sampler
        if sampler == "imh":  # hierlm.bayes.imh; every other sampler runs NUTS
            self.method = "independence Metropolis-Hastings"
            self.fit_label = f"{self.method} posterior"
        self.plan = plan
        self.marginalized = plan.marginalized
        self.seconds = seconds
        self.data_name = data_name
        self.terms = priors.term_names()
        # binomial or Poisson: what the likelihood observed
        self._obs = None if family.is_gaussian else glmm_observations(design, family)
        self.idata = self._tidy(idata, random_seed, log_likelihood)
        post = self.idata.posterior
        self.beta = post["fixef"].mean(("chain", "draw")).to_numpy()
        self.b = [post[f"ranef_{t}"].mean(("chain", "draw")).to_numpy() for t in self.terms]
        # binomial and Poisson have no residual SD: theta is then the
        # covariances' Cholesky factors themselves (sigma = 1, as glmer)
        self.sigma = float(post["sigma"].mean()) if family.has_dispersion else 1.0
        if "cutpoints" in post:  # an ordinal model: the point accessors use the posterior mean thresholds
            self.family = family.with_params(cutpoints=tuple(post["cutpoints"].mean(("chain", "draw")).to_numpy()))
        self.theta = theta_of_covariances(design, self._mean_covs(), self.sigma)
        messages = self._diagnose()
        self.convergence = Convergence(not messages, messages)

    # ---- construction ------------------------------------------------------
    def _tidy(self, idata, random_seed, log_likelihood):
        import arviz as az
        import xarray as xr

        post = idata.posterior
        d = self.design
        rng = np.random.default_rng(None if random_seed is None else int(random_seed) + 7919)
        if self.marginalized and not all(f"ranef_{t}" in post for t in self.terms):
            post = self._draw_integrated(post, rng)  # unless the sampler drew them (imh)
        keep = ["fixef", "cutpoints", "sigma", "shape", "phi", "nu"] + [v for t in self.terms for v in (f"sd_{t}", f"corr_{t}", f"ranef_{t}")]
        post = post[[v for v in keep if v in post]]
        groups = {"posterior": post}
        if "sample_stats" in idata.groups():
            groups["sample_stats"] = idata.sample_stats
        yobs = d.y if self._obs is None else self._obs["y"]
        groups["observed_data"] = xr.Dataset({"y": xr.DataArray(yobs, dims=["obs_id"])})
        S = post.sizes["chain"] * post.sizes["draw"]
        if log_likelihood or (log_likelihood is None and S * d.n <= 2e7):
            groups["log_likelihood"] = xr.Dataset({"y": self._pointwise_loglik(post)})
        return az.InferenceData(**groups)

    def _draw_integrated(self, post, rng):
        """Add exact draws of what the sampler integrated out to ``post``."""
        import xarray as xr

        d, plan = self.design, self.plan
        if plan.kind == "engine":
            return self._draw_engine(post, rng)
        nc, nd = post.sizes["chain"], post.sizes["draw"]
        S = nc * nd
        sigma = post["sigma"].to_numpy().reshape(-1)
        blocks = []  # each term's Cholesky factor of its covariance, per draw
        for t, r in zip(self.terms, d.remats):
            sd = post[f"sd_{t}"].to_numpy().reshape(S, r.p)
            if r.p == 1:
                blocks.append(sd[:, :, None])
            else:
                C = post[f"corr_{t}"].to_numpy().reshape(S, r.p, r.p)
                blocks.append(sd[:, :, None] * np.linalg.cholesky(C))
        beta = None if plan.fixef_integrated else post["fixef"].to_numpy().reshape(S, -1)
        if plan.kind == "per_level":
            b = draw_ranef(beta, sigma, _block_diag(blocks), sufficient_stats(d), rng)
            splits = np.cumsum([r.p for r in d.remats])[:-1]
            drawn = dict(enumerate(np.split(b, splits, axis=2)))
        elif plan.kind == "dense":
            b = draw_ranef_dense(beta, sigma, blocks, d.remats, dense_stats(d), rng)
            splits = np.cumsum([r.q for r in d.remats])[:-1]
            drawn = dict(enumerate(np.split(b, splits, axis=1)))
        else:
            st = collapsed_stats(d, self.priors, plan)
            sampled = plan.sampled(len(d.remats))
            b_s = {k: post[f"ranef_{self.terms[k]}"].to_numpy().reshape(S, d.remats[k].nlevels, -1)
                   for k in sampled}

            def resid(sl):  # y0 minus the sampled part of the model, (n, draws in sl)
                r = np.repeat(st["y0"][:, None], sigma[sl].shape[0], axis=1)
                if beta is not None:
                    r = r - d.X @ beta[sl].T
                for k in sampled:
                    rm = d.remats[k]
                    r = r - np.einsum("np,snp->ns", rm.Xt, b_s[k][sl][:, rm.codes, :])
                return r

            lam = _block_diag([blocks[k] for k in plan.blocked]) if plan.blocked else None
            beta_new, parts, b_bl = draw_collapsed(st, resid, sigma, [blocks[k] for k in plan.integrated], lam, rng)
            drawn = dict(zip(plan.integrated, parts))
            if b_bl is not None:
                splits = np.cumsum([d.remats[k].p for k in plan.blocked])[:-1]
                drawn.update(zip(plan.blocked, np.split(b_bl, splits, axis=2)))
            if beta_new is not None:
                post = post.assign(fixef=xr.DataArray(beta_new.reshape(nc, nd, -1), dims=("chain", "draw", "fixed")))
                post = post.assign_coords(fixed=list(d.xnames))
        new = {}
        for k, part in drawn.items():
            t, r = self.terms[k], d.remats[k]
            new[f"ranef_{t}"] = xr.DataArray(part.reshape(nc, nd, r.nlevels, r.p),
                                             dims=("chain", "draw", f"{r.group}__level", f"{t}__term"))
        post = post.assign(**new)
        post = post.assign_coords({f"{r.group}__level": list(r.levels) for r in d.remats})
        return post.assign_coords({f"{t}__term": list(r.cnames) for t, r in zip(self.terms, d.remats)})

    def _draw_engine(self, post, rng):
        """The posterior of an engine fit (:mod:`hierlm.bayes.marginal`) from
        its unconstrained draws: sigma, SDs and correlations, then exact draws
        of beta and b for each draw."""
        ep = self.engine
        nc, nd = post.sizes["chain"], post.sizes["draw"]
        phis = post["phi"].to_numpy().reshape(nc * nd, -1)
        beta, bs = ep.draw(phis, rng)
        sigma, sds, Ls = ep.natural_many(phis)
        return posterior_dataset(self.design, self.terms, post["chain"].values, post["draw"].values,
                                 beta, sigma, sds, Ls, bs)

    def _pointwise_loglik(self, post):
        """Conditional log-likelihood of each observation for each draw (for LOO): the
        family's :meth:`~hierlm.family.Distribution.draw_logpdf`."""
        import xarray as xr

        d = self.design
        beta = post["fixef"].to_numpy()
        mu = np.einsum("cdk,nk->cdn", beta, d.X)
        for t, r in zip(self.terms, d.remats):
            b = post[f"ranef_{t}"].to_numpy()  # (c, d, levels, p)
            mu += np.einsum("cdnp,np->cdn", b[:, :, r.codes, :], r.Xt)
        obs = self._obs if self._obs is not None else {"y": d.y, "trials": None, "offset": d.offset}
        if obs["offset"] is not None:
            mu += obs["offset"]
        wt = np.ones(d.n) if d.weights is None else d.weights
        dist = self.family.dist
        params = {v: post[v].to_numpy()[:, :, None] for v in dist.posterior_params}
        ll = dist.draw_logpdf(obs["y"], self.family.linkinv(mu), obs["trials"], wt, **params)
        return xr.DataArray(ll, dims=["chain", "draw", "obs_id"])

    def _mean_covs(self) -> list[np.ndarray]:
        post = self.idata.posterior
        covs = []
        for t, r in zip(self.terms, self.design.remats):
            sd = post[f"sd_{t}"].to_numpy().reshape(-1, r.p)
            C = post[f"corr_{t}"].to_numpy().reshape(-1, r.p, r.p) if r.p > 1 else np.ones((sd.shape[0], 1, 1))
            covs.append(np.mean(sd[:, :, None] * C * sd[:, None, :], axis=0))
        return covs

    # ---- diagnostics -----------------------------------------------------------
    def _summary_vars(self) -> list[str]:
        post = self.idata.posterior
        return [v for v in summary_variables(self.terms) if v in post]

    @cached_property
    def diagnostics(self) -> pd.DataFrame:
        """Posterior mean, sd, 2.5% and 97.5% quantiles, R-hat, bulk and tail ESS
        of fixed effects, sigma, SDs and correlations (each correlation once)."""
        import arviz as az

        post = self.idata.posterior
        rows = []
        for v in self._summary_vars():
            da = post[v]
            extra = [dim for dim in da.dims if dim not in ("chain", "draw")]
            if v.startswith("corr_"):
                p = da.sizes[extra[0]]
                idx = [(i, j) for j in range(p) for i in range(j + 1, p)]
                items = [(f"{v}[{da[extra[0]].values[j]},{da[extra[1]].values[i]}]",
                          da.isel({extra[0]: i, extra[1]: j})) for i, j in idx]
            elif extra:
                items = [(f"{v}[{c}]", da.isel({extra[0]: k})) for k, c in enumerate(da[extra[0]].values)]
            else:
                items = [(v, da)]
            for name, x in items:
                arr = x.to_numpy()
                rows.append({
                    "parameter": name, "mean": arr.mean(), "sd": arr.std(ddof=1),
                    "2.5%": np.quantile(arr, 0.025), "97.5%": np.quantile(arr, 0.975),
                    "r_hat": float(az.rhat(arr)) if arr.shape[0] > 1 else np.nan,
                    "ess_bulk": float(az.ess(arr, method="bulk")),
                    "ess_tail": float(az.ess(arr, method="tail")),
                })
        return pd.DataFrame(rows).set_index("parameter")

    @property
    def acceptance_rate(self) -> float | None:
        """The share of accepted proposals (independence Metropolis-Hastings fits; None for NUTS)."""
        st = self.idata.get("sample_stats")
        if st is None or "accepted" not in st:
            return None
        return float(st["accepted"].mean())

    @property
    def divergences(self) -> int:
        st = self.idata.get("sample_stats")
        if st is None or "diverging" not in st:
            return 0
        return int(st["diverging"].sum())

    def _diagnose(self) -> list[str]:
        out = []
        if self.divergences:
            out.append(f"{self.divergences} divergent transitions after tuning: raise target_accept "
                       "(e.g. 0.95) or use stronger priors")
        rate = self.acceptance_rate
        if rate is not None and rate < ACCEPT_WARN:
            out.append(f"acceptance rate {rate:.2f}: the Laplace approximation fits this posterior poorly "
                       "(the chains stick); use fit('nuts')")
        dg = self.diagnostics
        bad = dg.index[dg["r_hat"] > RHAT_MAX].tolist()
        if bad:
            out.append(f"R-hat > {RHAT_MAX} for {', '.join(bad[:5])}: run longer chains")
        bar = ess_min(self.idata.posterior.sizes["chain"])
        low = dg.index[dg["ess_bulk"] < bar].tolist()
        if low:
            out.append(f"bulk ESS below {bar} for "
                       f"{', '.join(low[:5])}: draw more samples")
        return out

    # ---- accessors ------------------------------------------------------------
    @cached_property
    def vcov(self) -> pd.DataFrame:
        """Posterior covariance of the fixed effects."""
        b = self.idata.posterior["fixef"].to_numpy().reshape(-1, self.design.p)
        names = self.design.xnames
        return pd.DataFrame(np.cov(b, rowvar=False).reshape(len(names), len(names)), index=names, columns=names)

    @cached_property
    def varcorr(self) -> pd.DataFrame:
        """Posterior means of the variance components, lme4's layout."""
        post = self.idata.posterior
        rows = []
        for t, r in zip(self.terms, self.design.remats):
            sd = post[f"sd_{t}"].to_numpy().reshape(-1, r.p)
            for j, c in enumerate(r.cnames):
                rows.append((t, c, None, np.mean(sd[:, j] ** 2), np.mean(sd[:, j])))
            if r.p > 1:
                C = post[f"corr_{t}"].to_numpy().reshape(-1, r.p, r.p)
                for j in range(r.p):
                    for i in range(j + 1, r.p):
                        rows.append((t, r.cnames[j], r.cnames[i], np.mean(C[:, i, j] * sd[:, i] * sd[:, j]),
                                     np.mean(C[:, i, j])))
        if self.family.has_dispersion:  # binomial and Poisson have no residual row (as glmer)
            s = post["sigma"].to_numpy().ravel()
            rows.append(("Residual", None, None, np.mean(s**2), np.mean(s)))
        return pd.DataFrame(rows, columns=["group", "var1", "var2", "vcov", "sdcor"])

    def parameter_draws(self) -> tuple[np.ndarray, list[np.ndarray], np.ndarray]:
        """(beta ``(S, p)``, Sigma_k ``(S, p_k, p_k)`` per term, sigma ``(S,)``) for every draw."""
        beta = self.draws("fixef").reshape(-1, self.design.p)
        covs = []
        for t, r in zip(self.terms, self.design.remats):
            sd = self.draws(f"sd_{t}").reshape(-1, r.p)
            C = self.draws(f"corr_{t}") if r.p > 1 else np.ones((len(sd), 1, 1))
            covs.append(sd[:, :, None] * C * sd[:, None, :])
        sigma = self.draws("sigma").ravel() if self.family.has_dispersion else np.ones(len(beta))
        return beta, covs, sigma

    @cached_property
    def condvar(self) -> list[np.ndarray]:
        """Posterior covariances of the random effects per term, ``(levels, p_k, p_k)``."""
        post = self.idata.posterior
        out = []
        for t, r in zip(self.terms, self.design.remats):
            b = post[f"ranef_{t}"].to_numpy().reshape(-1, r.nlevels, r.p)
            c = b - b.mean(axis=0)
            out.append(np.einsum("sla,slb->lab", c, c) / (b.shape[0] - 1))
        return out

    def draws(self, name: str) -> np.ndarray:
        """All draws of a posterior variable, chains stacked first."""
        da = self.idata.posterior[name]
        return da.to_numpy().reshape((-1,) + da.shape[2:])

    # ---- predictions from the posterior (brms's names) ---------------------------
    def posterior_linpred(self, newdata: pd.DataFrame | None = None, re_form=None, allow_new_levels: bool = False,
                          seed=None) -> np.ndarray:
        """Draws of the linear predictor, ``(chains x draws, rows)`` (brms's
        ``posterior_linpred``).

        Parameters
        ----------
        newdata : pandas.DataFrame, optional
            Rows to predict for (default: the data of the fit).
        re_form : None, False or str
            As :meth:`predict`: all random effects, none (``False``/``"~0"``),
            or those of a formula like ``"~(1|Subject)"``.
        allow_new_levels : bool
            Levels not seen in the fit get, for each posterior draw, an
            effect drawn from the population distribution of that draw (brms's
            ``sample_new_levels = "uncertainty"``): one effect per new level
            and draw, shared by that level's rows.
        seed : int or numpy.random.Generator, optional
            For the new levels' effects.
        """
        rng = np.random.default_rng(seed)
        keep = self._selected_terms(re_form)
        X, terms, off, _ = self.prediction_rows(newdata, keep, keep, allow_new_levels)
        eta = self.draws("fixef") @ X.T + off
        covs = self.parameter_draws()[1]
        for k, codes, Xt in terms:
            b = self.draws(f"ranef_{self.terms[k]}")  # (S, levels, p)
            seen = codes >= 0
            eta[:, seen] += np.einsum("snp,np->sn", b[:, codes[seen]], Xt[seen])
            if not seen.all():
                _, inv = np.unique(self.new_level_labels(newdata, k, codes), return_inverse=True)
                C = np.linalg.cholesky(covs[k])  # (S, p, p): each draw's population covariance
                z = rng.standard_normal((b.shape[0], inv.max() + 1, b.shape[2]))
                bnew = np.einsum("sab,slb->sla", C, z)
                eta[:, ~seen] += np.einsum("snp,np->sn", bnew[:, inv.ravel()], Xt[~seen])
        return eta

    def posterior_epred(self, newdata: pd.DataFrame | None = None, re_form=None, allow_new_levels: bool = False,
                        seed=None) -> np.ndarray:
        """Draws of the expected response ``g^{-1}(eta)``, ``(chains x draws,
        rows)`` (brms's ``posterior_epred``); for an ordinal model each
        category's probability, ``(chains x draws, rows, categories)``, as
        brms's.  Arguments as :meth:`posterior_linpred`."""
        eta = self.posterior_linpred(newdata, re_form, allow_new_levels, seed)
        if self.family.dist.eta_is_mean:
            return self.family.dist.draw_probs(eta, self.draws("cutpoints")[:, None, :])
        return self.family.linkinv(eta)

    def posterior_predict(self, newdata: pd.DataFrame | None = None, re_form=None, allow_new_levels: bool = False,
                          seed=None) -> np.ndarray:
        """Draws from the posterior predictive distribution, ``(chains x
        draws, rows)`` (brms's ``posterior_predict``): a new response for each
        posterior draw, around :meth:`posterior_epred`, from the family's
        :meth:`~hierlm.family.Distribution.draw_rvs` (Gaussian noise with that
        draw's sigma, over sqrt(w) on the fitted rows of a weighted model;
        binomial successes out of the observed trials, or Bernoulli 0/1 for
        new rows, as ``idata.observed_data`` holds them; counts; ...).
        Arguments as :meth:`posterior_linpred`."""
        rng = np.random.default_rng(seed)
        if self.family.dist.eta_is_mean:  # ordinal: categories drawn from the linear predictor's draws
            mu = self.posterior_linpred(newdata, re_form, allow_new_levels, rng)
        else:
            mu = self.posterior_epred(newdata, re_form, allow_new_levels, rng)
        trials = None
        if self.family.name == "binomial":
            if newdata is not None and not np.all(self._obs["trials"] == 1):
                raise HierlmError("posterior_predict for new rows of a binomial model with several trials per "
                                  "row needs their numbers of trials, which newdata does not carry; use "
                                  "posterior_epred for the probabilities")
            trials = self._obs["trials"] if newdata is None else np.ones(mu.shape[1], dtype=np.int64)
        d = self.design
        # prior weights apply to the fitted rows; a new row has weight 1
        wt = d.weights if newdata is None and d.weights is not None else np.ones(mu.shape[1])
        dist = self.family.dist
        # per draw, against the rows: (draws, 1), or (draws, 1, k) for a vector (an ordinal model's thresholds)
        params = {v: self.draws(v)[:, None] for v in dist.posterior_params}
        return dist.draw_rvs(mu, trials, wt, rng, **params)

    def loo(self, **kw):
        """ArviZ LOO-CV (conditional on the random effects' draws)."""
        import arviz as az

        return az.loo(self.idata, **kw)
