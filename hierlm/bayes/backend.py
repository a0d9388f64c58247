r"""PyMC models of a mixed model's design (the only module that imports PyMC).

Two parameterizations of the same model,
``y = X beta + sum_k Z_k b_k + e``, ``b_k,i ~ N(0, Sigma_k)``, ``e ~ N(0, sigma^2)``:

* **b sampled** (``marginalize=False``): ``b_k,i = L_k z_k,i``, ``z ~ N(0, 1)``
  (non-centered), ``L_k = diag(sd_k) Omega_k`` with an LKJ prior on the
  correlation factor ``Omega_k`` (``pm.LKJCholeskyCov``); scalar and ``||``
  terms get an SD each.  Terms with many observations per level are
  sampled centered instead (:func:`centered_term`).
* **marginalized** (Gaussian, every term on one grouping factor): b is
  integrated out exactly.  For level i with ``A_i = Z_i'Z_i``,
  ``w_i = Z_i'(y_i - X_i beta)`` and ``K_i = sigma^2 I + L' A_i L``,

      -2 log p(y | beta, sigma, L) = n log(2 pi sigma^2) + sum_i log|K_i| - l P log sigma^2
                                     + (RSS(beta) - sum_i |C_i^{-1} L' w_i|^2) / sigma^2,

  ``C_i`` the Cholesky factor of ``K_i`` (Woodbury).  Only sufficient
  statistics (``A_i``, ``Z_i'y``, ``Z_i'X``, ``X'X``, ``X'y``, ``y'y``) enter,
  so a gradient costs O(levels P^3), independent of n.  It is written in
  PyTensor, so every backend compiles it (C for PyMC, numba for nutpie, JAX
  for numpyro).  The random effects are then drawn exactly from
  ``b_i | y, beta, sigma, L ~ N(L K_i^{-1} L' w_i, sigma^2 L K_i^{-1} L')`` for each
  draw (:func:`draw_ranef`).
* **marginalized, crossed or nested** (at most ``DENSE_MARGINAL_MAX_Q``
  random effects in all): the same with one dense q x q factor of
  ``Lambda' Z'Z Lambda + sigma^2 I`` (:func:`marginal_loglik_dense`,
  :func:`draw_ranef_dense`).
"""

from __future__ import annotations


import warnings
from dataclasses import dataclass

import numpy as np

from ..errors import HierlmError, where_rows
from ..family import Family, check_response
from ..priors import Prior, PriorSet

# PyTensor's C backend warns at import when it finds no BLAS to link; nutpie
# (the default sampler) compiles with numba and never uses that path
warnings.filterwarnings("ignore", message="PyTensor could not link to a BLAS installation")


def pm_dist(prior: Prior, name: str | None, **kw):
    """A PyMC distribution (named, or ``.dist`` when ``name`` is None)."""
    import pymc as pm

    p = prior.params
    fam = prior.family
    if fam == "Flat":
        cls, args = (pm.HalfFlat if kw.pop("positive", False) else pm.Flat), {}
    elif fam == "Normal":
        cls, args = pm.Normal, {"mu": p["mu"], "sigma": p["sigma"]}
    elif fam == "StudentT":
        cls, args = pm.StudentT, {"nu": p["nu"], "mu": p["mu"], "sigma": p["sigma"]}
    elif fam == "HalfNormal":
        cls, args = pm.HalfNormal, {"sigma": p["sigma"]}
    elif fam == "HalfStudentT":
        cls, args = pm.HalfStudentT, {"nu": p["nu"], "sigma": p["sigma"]}
    elif fam == "HalfCauchy":
        cls, args = pm.HalfCauchy, {"beta": p["beta"]}
    elif fam == "Exponential":
        cls, args = pm.Exponential, {"lam": p["lam"]}
    elif fam == "Gamma":
        cls, args = pm.Gamma, {"alpha": p["alpha"], "beta": p["beta"]}
    else:  # pragma: no cover  (LKJ is handled by the caller)
        raise ValueError(fam)
    kw.pop("positive", None)
    return cls.dist(**args, **kw) if name is None else cls(name, **args, **kw)


def coords_of(design, priors: PriorSet) -> dict:
    coords = {"fixed": list(design.xnames), "obs_id": np.arange(design.n)}
    if design.response_levels is not None:  # an ordinal model's thresholds, named as clmm's
        coords["threshold"] = design.threshold_names()
    for t, r in zip(priors.term_names(), design.remats):
        coords[f"{r.group}__level"] = list(r.levels)
        coords[f"{t}__term"] = list(r.cnames)
        coords[f"{t}__term_bis"] = list(r.cnames)
    return coords


def _fixed_effects(design, priors: PriorSet):
    """beta as one vector 'fixef' (dims 'fixed'), from per-coefficient priors."""
    import pymc as pm
    import pytensor.tensor as pt

    names = list(design.xnames)
    fams = {priors.fixed[n].family for n in names}
    if len(fams) == 1 and fams != {"Flat"}:
        fam = fams.pop()
        keys = priors.fixed[names[0]].params.keys()
        params = {k: np.array([priors.fixed[n].params[k] for n in names]) for k in keys}
        return pm_dist(Prior(fam, params), "fixef", dims="fixed")
    parts = [pm_dist(priors.fixed[n], f"b_{n}") for n in names]
    return pm.Deterministic("fixef", pt.stack(parts), dims="fixed")


def _term_scale(t, r, priors: PriorSet):
    """(sd vector, Cholesky factor L or None) of one term."""
    import pymc as pm
    import pytensor.tensor as pt

    prior = priors.sd[t]
    if r.p == 1:
        sd = pm_dist(prior, f"sd_{t}", positive=True, dims=f"{t}__term", shape=1)
        return sd, None
    if r.p == 2:
        # LKJ(eta) on a 2 x 2 correlation matrix is (rho + 1) / 2 ~ Beta(eta, eta):
        # the same prior with a much smaller graph (faster to compile)
        eta = priors.lkj.params["eta"]
        sd = pm_dist(prior, f"sd_{t}", positive=True, dims=f"{t}__term", shape=2)
        rho = 2.0 * pm.Beta(f"corr01_{t}", eta, eta) - 1.0
        corr = pt.stack([pt.stack([1.0, rho]), pt.stack([rho, 1.0])])
        pm.Deterministic(f"corr_{t}", corr, dims=(f"{t}__term", f"{t}__term_bis"))
        chol = pt.stack([pt.stack([sd[0], 0.0]), pt.stack([sd[1] * rho, sd[1] * pt.sqrt(1.0 - rho**2)])])
        return sd, chol
    chol, corr, sds = pm.LKJCholeskyCov(
        f"chol_{t}", n=r.p, eta=priors.lkj.params["eta"],
        sd_dist=pm_dist(prior, None, positive=True, shape=r.p), compute_corr=True,
    )
    pm.Deterministic(f"sd_{t}", sds, dims=f"{t}__term")
    pm.Deterministic(f"corr_{t}", corr, dims=(f"{t}__term", f"{t}__term_bis"))
    return sds, chol


# observations per level from which a term is sampled centered (b ~ N(0, Sigma))
# rather than non-centered (b = L z): with this much data per level the
# posterior of each b is dominated by its data (Betancourt & Girolami 2015).
CENTERED_MIN_OBS_PER_LEVEL = 20


def centered_term(r, n: int) -> bool:
    return n / r.nlevels >= CENTERED_MIN_OBS_PER_LEVEL


# largest number of random effects for which crossed or nested terms are
# integrated out with one dense q x q Cholesky factor per gradient
DENSE_MARGINAL_MAX_Q = 200


def one_grouping_factor(design) -> bool:
    """True when every random-effects term is on the same grouping factor."""
    return len({r.group for r in design.remats}) == 1


@dataclass(frozen=True)
class MarginalPlan:
    """What the sampler integrates out.

    ``kind``: ``"none"`` (everything sampled), ``"engine"`` (beta and all
    of b, on the REML engine: :mod:`hierlm.bayes.marginal`), ``"imh"`` (all
    of b on the REML engine, drawn by the sampler: :mod:`hierlm.bayes.imh`), ``"per_level"``
    (one grouping factor: all of b, per-level closed form), ``"dense"`` (all
    of b, one dense factor) or ``"partial"``: the terms in ``integrated`` (one dense factor)
    and, when ``fixef_integrated``, beta; the terms in ``blocked`` (all on
    one grouping factor) level by level; the other terms are sampled.
    """

    kind: str
    integrated: tuple[int, ...] = ()
    fixef_integrated: bool = False
    blocked: tuple[int, ...] = ()

    @property
    def marginalized(self) -> bool:
        return self.kind != "none"

    def sampled(self, nterms: int) -> list[int]:
        """Indices of the terms whose effects NUTS samples."""
        if self.kind in ("per_level", "dense", "engine", "imh"):
            return []
        return [k for k in range(nterms) if k not in self.integrated and k not in self.blocked]

    def describe(self, terms: list[str]) -> str:
        if self.kind == "none":
            return "random effects sampled"
        if self.kind == "engine":
            return "fixed and random effects integrated out (the REML engine's factor), then drawn exactly"
        if self.kind == "imh":
            return "random effects integrated out (the REML engine's factor), then drawn exactly"
        if self.kind != "partial":
            return "random effects integrated out, then drawn exactly"
        out = [terms[k] for k in self.blocked + self.integrated] + (["fixed effects"] if self.fixef_integrated else [])
        rest = [terms[k] for k in self.sampled(len(terms))]
        return f"{', '.join(out)} integrated out, then drawn exactly" + (f"; {', '.join(rest)} sampled" if rest else "")


# most columns per level of a grouping factor integrated level by level in the
# partial plan (its per-level blocks are P x P)
BLOCKED_MAX_P = 4


def plan_marginalization(design, priors: PriorSet, marginalize: bool | None, family: Family):
    """Choose what to integrate out (``marginalize=None``: as much as pays).

    One grouping factor, or at most ``DENSE_MARGINAL_MAX_Q`` random effects:
    all of b.  Larger crossed designs (InstEval) get the partial plan:

    * beta (when its priors are all Normal, so conjugate) and the smallest
      terms, up to ``DENSE_MARGINAL_MAX_Q`` columns together, with one dense
      factor;
    * the terms on the grouping factor with the most levels, level by level
      (the covariance is block diagonal over its levels);
    * the other terms are sampled.

    That removes the slow directions of the joint posterior (the ridges
    between a fixed effect and the mean of a term's effects) and most of its
    dimension.
    """
    if marginalize is False:
        return MarginalPlan("none")
    if not family.is_gaussian:
        if marginalize:
            raise HierlmError(f"marginalize=True needs a Gaussian model (this one is {family.name}); "
                              "a binomial or Poisson model samples its random effects")
        return MarginalPlan("none")
    if one_grouping_factor(design):
        return MarginalPlan("per_level")
    remats = design.remats
    if sum(r.q for r in remats) <= DENSE_MARGINAL_MAX_Q:
        return MarginalPlan("dense")
    fixef = all(priors.fixed[n].family == "Normal" for n in design.xnames)
    budget = DENSE_MARGINAL_MAX_Q - (design.p if fixef else 0)
    chosen = []
    for k in sorted(range(len(remats)), key=lambda k: remats[k].q):
        if remats[k].q > budget:
            break
        chosen.append(k)
        budget -= remats[k].q
    rest = [k for k in range(len(remats)) if k not in chosen]
    by_group: dict[str, list[int]] = {}
    for k in rest:
        by_group.setdefault(remats[k].group, []).append(k)
    blocked: list[int] = []
    for ks in sorted(by_group.values(), key=lambda ks: -remats[ks[0]].nlevels):
        if sum(remats[k].p for k in ks) <= BLOCKED_MAX_P:
            blocked = ks
            break
    if not (chosen or fixef or blocked):
        if marginalize:
            q = sum(r.q for r in remats)
            raise HierlmError(f"marginalize=True: no term of this model is small enough to integrate out "
                              f"(at most {DENSE_MARGINAL_MAX_Q} random effects; it has {q} in all) and the "
                              f"fixed-effect priors are not all Normal; use marginalize=False")
        return MarginalPlan("none")
    return MarginalPlan("partial", tuple(sorted(chosen)), fixef, tuple(blocked))


def glmm_observations(design, family) -> dict:
    """What the likelihood of a non-Gaussian NUTS fit observes.

    Returns ``{"y": counts (successes or events; the response itself for a
    continuous family), "trials": trials per row (binomial) or None,
    "offset": offset or None}``.  Prior weights are not
    part of a sampled likelihood (they would make it a pseudo-likelihood), so
    only those that are numbers of trials (a proportion with ``weights=``)
    are accepted.
    """
    y, wt, ntrials = check_response(design, family)
    user_wt = None if design.weights is None else np.asarray(design.weights, dtype=float)
    offset = None if design.offset is None else np.asarray(design.offset, dtype=float)
    if family.name != "binomial":
        if user_wt is not None and not np.allclose(user_wt, 1.0):
            raise HierlmError(f"NUTS for {family.a_name} model does not take prior weights (weights=); "
                              "fit by fit('laplace'), or model rates with offset(log(exposure))")
        # counts (and ordinal categories' codes) stay integers; continuous responses as they are
        yy = np.round(y).astype(np.int64) if family.name in ("poisson", "negbinomial", "ordinal") else y
        return {"y": yy, "trials": None, "offset": offset}
    if design.counts is not None:
        if user_wt is not None and not np.allclose(user_wt, 1.0):
            raise HierlmError("NUTS for a cbind(successes, failures) response does not take weights=; "
                              "drop weights= or fit by fit('laplace')")
        m = ntrials
    else:
        m = wt
    bad = np.flatnonzero(np.abs(m - np.round(m)) > 1e-7)
    if bad.size:
        raise HierlmError(f"NUTS for a binomial model needs whole numbers of trials; weights= is not a whole "
                          f"number in {where_rows(design.prepared.rows, bad)}: give cbind(successes, failures) "
                          "or integer weights")
    m = np.round(m).astype(np.int64)
    k = np.round(y * m).astype(np.int64)
    return {"y": k, "trials": m, "offset": offset}


def inverse_link(link: str, eta):
    """``g^{-1}(eta)`` as a PyTensor expression, clamped as R's ``make.link``
    so that the likelihood stays finite."""
    import pytensor.tensor as pt

    eps = np.finfo(float).eps
    if link == "logit":
        return pt.sigmoid(eta)
    if link == "probit":
        return pt.clip(0.5 * pt.erfc(-eta / np.sqrt(2.0)), eps, 1.0 - eps)
    if link == "cloglog":
        return pt.clip(-pt.expm1(-pt.exp(pt.minimum(eta, 700.0))), eps, 1.0 - eps)
    if link == "cauchit":
        return pt.clip(0.5 + pt.arctan(eta) / np.pi, eps, 1.0 - eps)
    if link == "log":
        return pt.maximum(pt.exp(eta), eps)
    if link == "identity":
        return pt.maximum(eta, eps)
    if link == "sqrt":
        return pt.maximum(eta * eta, eps)
    if link == "inverse":
        return pt.maximum(1.0 / eta, eps)
    raise ValueError(link)  # pragma: no cover  (Family validates links)


def _glmm_likelihood(eta, family, obs: dict, shape=None, sigma=None, nu=None, cutpoints=None):
    """The observed node ``y`` for linear predictor ``eta``: binomial, Bernoulli, Poisson,
    negative binomial (mean mu, shape ``shape``: variance mu + mu^2 / shape), Gamma
    (mean mu, shape ``shape``: variance mu^2 / shape) or beta (mean mu, precision ``shape``,
    brms's phi), as brms parameterizes them."""
    import pymc as pm

    if family.name == "ordinal":  # P(Y <= k) = F(cutpoint_k - eta), as brms's cumulative
        if family.link == "logit":
            return pm.OrderedLogistic("y", eta=eta, cutpoints=cutpoints, observed=obs["y"], dims="obs_id",
                                      compute_p=False)
        return pm.OrderedProbit("y", eta=eta, cutpoints=cutpoints, sigma=1.0, observed=obs["y"], dims="obs_id",
                                compute_p=False)
    if family.name == "negbinomial":
        return pm.NegativeBinomial("y", mu=inverse_link(family.link, eta), alpha=shape, observed=obs["y"],
                                   dims="obs_id")
    if family.name == "gamma":
        mu = inverse_link(family.link, eta)
        return pm.Gamma("y", alpha=shape, beta=shape / mu, observed=obs["y"], dims="obs_id")
    if family.name == "beta":  # mean mu, precision phi (brms's Beta)
        mu = inverse_link(family.link, eta)
        return pm.Beta("y", alpha=mu * shape, beta=(1.0 - mu) * shape, observed=obs["y"], dims="obs_id")
    if family.name == "student":
        return pm.StudentT("y", nu=nu, mu=eta, sigma=sigma, observed=obs["y"], dims="obs_id")

    if family.name == "binomial":
        m = obs["trials"]
        bern = bool(np.all(m == 1))
        if family.link == "logit":  # logit_p: stable for any eta
            if bern:
                return pm.Bernoulli("y", logit_p=eta, observed=obs["y"], dims="obs_id")
            return pm.Binomial("y", n=m, logit_p=eta, observed=obs["y"], dims="obs_id")
        p = inverse_link(family.link, eta)
        if family.link == "log":
            p = pm.math.minimum(p, 1.0 - np.finfo(float).eps)
        if bern:
            return pm.Bernoulli("y", p=p, observed=obs["y"], dims="obs_id")
        return pm.Binomial("y", n=m, p=p, observed=obs["y"], dims="obs_id")
    return pm.Poisson("y", mu=inverse_link(family.link, eta), observed=obs["y"], dims="obs_id")


def build_pymc_model(design, priors: PriorSet, plan: MarginalPlan, family: Family):
    """The PyMC model of ``design`` under ``priors``, with ``plan``'s parts
    integrated out.

    Parameters
    ----------
    family : hierlm.family.Family
        Gaussian, or a binomial or Poisson family (then ``plan`` must be
        ``"none"``): the likelihood is Bernoulli/Binomial/Poisson on the
        family's link, with the design's offset, and there is no ``sigma``.

    Returns
    -------
    pymc.Model
    """
    import pymc as pm
    import pytensor.tensor as pt

    terms = priors.term_names()
    if family.is_gaussian and (design.weights is not None or design.offset is not None):
        raise HierlmError("the PyMC model of a linear mixed model with prior weights or an offset is not "
                          "built: sample it on the engine (backend=None or 'engine', which needs Normal or "
                          "flat priors on the fixed effects), or fit it by fit('map')")
    if not family.is_gaussian:
        if plan.kind != "none":  # pragma: no cover  (plan_marginalization never does this)
            raise ValueError("a non-Gaussian model samples its random effects (plan 'none')")
        obs = glmm_observations(design, family)
        with pm.Model(coords=coords_of(design, priors)) as model:
            beta = _fixed_effects(design, priors)
            scales = [_term_scale(t, r, priors) for t, r in zip(terms, design.remats)]
            eta = pt.as_tensor_variable(design.X) @ beta
            parent = nested_parents(design)
            totals: dict = {}  # term -> its effects plus its ancestors' (centered terms and their parents)
            for k in parents_first(parent, len(terms)):
                t, r = terms[k], design.remats[k]
                if k in parent:
                    j, up = parent[k]
                    c = pm.Normal(f"c_{t}", totals[j][up], scales[k][0][0], dims=f"{r.group}__level")
                    totals[k] = c
                    pm.Deterministic(f"ranef_{t}", (c - totals[j][up])[:, None],
                                     dims=(f"{r.group}__level", f"{t}__term"))
                    continue
                b = _sampled_ranef(t, r, *scales[k], design.n)
                if k in {j for j, _ in parent.values()}:
                    totals[k] = b[:, 0]
                else:
                    eta = eta + term_contribution(b, r)
            # a chain's effects enter the predictor once, through its last term
            for k in set(parent) - {j for j, _ in parent.values()}:
                eta = eta + totals[k][design.remats[k].codes]
            if obs["offset"] is not None:
                eta = eta + obs["offset"]
            shape = sigma = nu = None
            if priors.family_param is not None:  # the shape, or the beta's phi
                shape = pm_dist(priors.family_param, family.dist.param_prior)
                if family.has_dispersion:  # glmer's sigma of a Gamma model: the dispersion's root
                    pm.Deterministic("sigma", 1.0 / pm.math.sqrt(shape))
            if family.name == "student":  # a robust linear mixed model: scale and degrees of freedom
                sigma = pm_dist(priors.sigma, "sigma", positive=True)
                nu = pm_dist(priors.nu, "nu")
            cutpoints = None
            if priors.thresholds is not None:
                # ordered thresholds; as brms, the prior is on those of the centred predictors
                # (its Intercept[k]), and the thresholds are those plus mean(x)'beta
                K1 = len(design.response_levels) - 1
                centred = pm_dist(priors.thresholds, "cutpoints_centred", dims="threshold",
                                  transform=pm.distributions.transforms.ordered,
                                  initval=np.linspace(-1.0, 1.0, K1) if K1 > 1 else np.zeros(1))
                xbar = design.X.mean(axis=0)
                cutpoints = pm.Deterministic("cutpoints", centred + pt.dot(pt.as_tensor_variable(xbar), beta),
                                             dims="threshold")
            _glmm_likelihood(eta, family, obs, shape, sigma, nu, cutpoints)
        return model
    with pm.Model(coords=coords_of(design, priors)) as model:
        beta = None if plan.fixef_integrated else _fixed_effects(design, priors)
        sigma = pm_dist(priors.sigma, "sigma", positive=True)
        scales = [_term_scale(t, r, priors) for t, r in zip(terms, design.remats)]
        if plan.kind == "per_level":
            L = _joint_cholesky(scales)
            pm.Potential("marginal_loglik", marginal_loglik(beta, sigma, L, sufficient_stats(design)))
        elif plan.kind == "dense":
            Lb = _dense_lambda(scales, design.remats)
            pm.Potential("marginal_loglik", marginal_loglik_dense(beta, sigma, Lb, dense_stats(design)))
        else:
            st = collapsed_stats(design, priors, plan) if plan.kind == "partial" else None
            y0 = design.y if st is None else st["y0"]
            mu = 0.0 if beta is None else pt.as_tensor_variable(design.X) @ beta
            for k in plan.sampled(len(terms)):
                r = design.remats[k]
                b = _sampled_ranef(terms[k], r, *scales[k], design.n)
                mu = mu + term_contribution(b, r)
            if st is None:
                pm.Normal("y", mu=mu, sigma=sigma, observed=y0, dims="obs_id")
            else:
                G = _collapsed_factor(st, [scales[k] for k in plan.integrated],
                                      [design.remats[k] for k in plan.integrated]) if st["m"] else None
                Lam = _joint_cholesky([scales[k] for k in plan.blocked]) if plan.blocked else None
                pm.Potential("marginal_loglik", collapsed_loglik(y0 - mu, sigma, G, Lam, st))
    return model


def _sampled_ranef(t, r, sd, chol, n):
    """The effects of one term as PyMC variables (centered or non-centered)."""
    import pymc as pm
    import pytensor.tensor as pt

    dims = (f"{r.group}__level", f"{t}__term")
    if centered_term(r, n):
        # many observations per level: the likelihood pins each b down and
        # the centered form mixes better (no funnel)
        if chol is None:
            return pm.Normal(f"ranef_{t}", 0.0, sd, dims=dims)
        return pm.MvNormal(f"ranef_{t}", mu=pt.zeros(r.p), chol=chol, dims=dims)
    z = pm.Normal(f"z_{t}", 0.0, 1.0, dims=dims)
    b = z * sd if chol is None else z @ chol.T
    return pm.Deterministic(f"ranef_{t}", b, dims=dims)


def nested_parents(design) -> dict[int, tuple[int, np.ndarray]]:
    """Random intercepts sampled centered on the term they nest in.

    When each level of one random intercept's grouping factor lies within a
    single level of another's (broods within locations) and most parent
    levels hold a single child level, the two effects of such a level enter
    the model only as their sum, and their SDs trade off along a ridge that
    the non-centered form (b = sd z) mixes along slowly.  Hierarchical
    centering (Gelfand, Sahu & Carlin 1995) samples the sum instead:
    ``c_child ~ Normal(c_parent[parent(level)], sd_child)``.  Measured on
    grouseticks ``(1|BROOD) + (1|INDEX) + (1|LOCATION)`` (a median of one
    brood per location; 4 chains x 1000 after 1000, several seeds;
    ``benchmarks/grouseticks_parameterizations.py``): the bulk ESS of
    ``sd_LOCATION`` went from 71-141 to 231-274 and divergences from 1-16 to
    0, its R-hat from 1.02-1.06 to 1.01-1.02 (with hierlm's Laplace starts,
    1.02-1.06: the split between brood and location is barely identified).

    Returns
    -------
    dict
        child term -> (parent term, the parent's level of each child level),
        the parent the nearest one (most levels) where several qualify; a
        parent has at most one centered child.
    """
    remats = design.remats
    intercepts = [k for k, r in enumerate(remats) if r.p == 1 and r.cnames == ["(Intercept)"]
                  and np.all(r.Xt == 1.0)]
    out = {}
    for k in intercepts:
        best = None
        for j in intercepts:
            rj, rk = remats[j], remats[k]
            if j == k or rj.nlevels >= rk.nlevels:
                continue
            up = np.full(rk.nlevels, -1, dtype=np.int64)
            up[rk.codes] = rj.codes
            # nested: every row of a child level has the same parent level
            if np.all(up[rk.codes] == rj.codes) and (best is None or rj.nlevels > remats[best[0]].nlevels):
                best = (j, up)
        # centered only where most parent levels hold a single child level:
        # with several children per parent the sum is told apart from its
        # parts, and the centered form of weakly informed children (cbpp's
        # observation-level effects within herds, about 4 per herd) has a
        # funnel: its SD's ESS halved and 14 divergences appeared
        if best is not None and np.median(np.bincount(best[1], minlength=remats[best[0]].nlevels)) > 1:
            best = None
        if best is not None:
            out[k] = best
    # a parent carries one centered child (two would add its effects twice):
    # the child with the fewest levels, the others stay on their own
    taken: dict[int, int] = {}
    for k in sorted(out, key=lambda k: remats[k].nlevels):
        j = out[k][0]
        if j in taken:
            del out[k]
        else:
            taken[j] = k
    return out


def parents_first(parent: dict, nterms: int) -> list[int]:
    """Term indices with every parent before its children."""
    def depth(k):
        return 0 if k not in parent else 1 + depth(parent[k][0])
    return sorted(range(nterms), key=depth)


def _joint_cholesky(scales):
    """Block-diagonal Cholesky factor of the covariance of all terms on the factor."""
    import pytensor.tensor as pt

    blocks = [pt.diag(sd) if chol is None else chol for sd, chol in scales]
    if len(blocks) == 1:
        return blocks[0]
    return pt.linalg.block_diag(*blocks)


def sufficient_stats(design) -> dict:
    """Per-level Z'Z, Z'y, Z'X and global X'X, X'y, y'y for one grouping factor."""
    remats = design.remats
    codes = remats[0].codes
    Zt = np.column_stack([r.Xt for r in remats])  # n x P, all terms on the factor
    lv = remats[0].nlevels
    P = Zt.shape[1]
    X, y = design.X, design.y
    A = np.zeros((lv, P, P))
    Zy = np.zeros((lv, P))
    ZX = np.zeros((lv, P, X.shape[1]))
    for a in range(P):
        Zy[:, a] = np.bincount(codes, weights=Zt[:, a] * y, minlength=lv)
        for b in range(P):
            A[:, a, b] = np.bincount(codes, weights=Zt[:, a] * Zt[:, b], minlength=lv)
        for j in range(X.shape[1]):
            ZX[:, a, j] = np.bincount(codes, weights=Zt[:, a] * X[:, j], minlength=lv)
    return {"A": A, "Zy": Zy, "ZX": ZX, "XtX": X.T @ X, "Xty": X.T @ y, "yty": float(y @ y),
            "n": design.n, "levels": lv, "P": P}


def marginal_loglik(beta, sigma, L, st: dict):
    """log p(y | beta, sigma, L), random effects integrated out (module docstring)."""
    import pytensor.tensor as pt

    s2 = sigma**2
    P, lv, n = st["P"], st["levels"], st["n"]
    rss = st["yty"] - 2.0 * pt.dot(beta, st["Xty"]) + pt.dot(beta, pt.dot(st["XtX"], beta))
    w = st["Zy"] - pt.dot(st["ZX"].reshape(lv * P, -1), beta).reshape((lv, P))  # Z_i'(y_i - X_i beta)
    A = st["A"]
    if P == 1:
        l2 = L[0, 0] ** 2
        k = A[:, 0, 0] * l2 + s2
        logdet = pt.log(k).sum()
        quad = (l2 * w[:, 0] ** 2 / k).sum()
    elif P == 2:
        # K_i = L' A_i L + s2 I and v_i = L' w_i written out for 2 x 2 blocks:
        # a few elementwise ops, quick to compile for every backend
        l00, l10, l11 = L[0, 0], L[1, 0], L[1, 1]
        a, b, c = A[:, 0, 0], A[:, 0, 1], A[:, 1, 1]
        k00 = a * l00**2 + 2.0 * b * l00 * l10 + c * l10**2 + s2
        k01 = l11 * (b * l00 + c * l10)
        k11 = c * l11**2 + s2
        v0 = l00 * w[:, 0] + l10 * w[:, 1]
        v1 = l11 * w[:, 1]
        det = k00 * k11 - k01**2
        logdet = pt.log(det).sum()
        quad = ((k11 * v0**2 - 2.0 * k01 * v0 * v1 + k00 * v1**2) / det).sum()
    else:
        LtA = pt.tensordot(L.T, pt.as_tensor_variable(A), axes=[[1], [1]]).dimshuffle(1, 0, 2)  # L'A_i
        K = pt.tensordot(LtA, L, axes=[[2], [0]]) + s2 * pt.eye(P)
        C = pt.linalg.cholesky(K)
        logdet = 2.0 * pt.log(pt.diagonal(C, axis1=1, axis2=2)).sum()
        u = pt.linalg.solve_triangular(C, pt.dot(w, L)[:, :, None], lower=True)
        quad = (u**2).sum()
    return -0.5 * (n * np.log(2 * np.pi) + (n - lv * P) * pt.log(s2) + logdet + (rss - quad) / s2)


def draw_ranef(beta: np.ndarray, sigma: np.ndarray, L: np.ndarray, st: dict, rng) -> np.ndarray:
    """Exact draws of b | y, beta, sigma, L for every posterior draw.

    beta (S, p), sigma (S,), L (S, P, P) -> b (S, levels, P).
    """
    P = st["P"]
    w = st["Zy"][None] - np.einsum("lak,sk->sla", st["ZX"], beta)  # (S, l, P)
    LtAL = np.einsum("sba,lbc,scd->slad", L, st["A"], L)
    K = LtAL + (sigma**2)[:, None, None, None] * np.eye(P)
    C = np.linalg.cholesky(K)  # K = C C'
    Ltw = np.einsum("sba,slb->sla", L, w)
    mean_u = np.linalg.solve(K, Ltw[..., None])[..., 0]
    # u = mean + sigma * C^{-T} z has covariance sigma^2 K^{-1}
    z = rng.standard_normal(mean_u.shape)
    dev = np.linalg.solve(np.swapaxes(C, -1, -2), z[..., None])[..., 0]
    u = mean_u + sigma[:, None, None] * dev
    return np.einsum("sab,slb->sla", L, u)


# ---- crossed and nested terms: one dense factor -------------------------------------
def dense_stats(design) -> dict:
    """Z'Z, Z'y, Z'X (Z of all terms, q columns) and X'X, X'y, y'y."""
    import scipy.sparse as sp

    Z = sp.hstack([r.sparse() for r in design.remats], format="csr")
    X, y = design.X, design.y
    return {"ZtZ": (Z.T @ Z).toarray(), "Zy": Z.T @ y, "ZX": np.asarray(Z.T @ X), "XtX": X.T @ X,
            "Xty": X.T @ y, "yty": float(y @ y), "n": design.n, "q": Z.shape[1]}


def _dense_lambda(scales, remats):
    """Lambda = blockdiag_k(I_levels (x) L_k) as a dense q x q tensor."""
    import pytensor.tensor as pt

    blocks = []
    for (sd, chol), r in zip(scales, remats):
        if chol is None:
            blocks.append(pt.diag(pt.repeat(sd, r.nlevels)))
        else:
            blocks.append(pt.linalg.kron(pt.eye(r.nlevels), chol))
    return blocks[0] if len(blocks) == 1 else pt.linalg.block_diag(*blocks)


def marginal_loglik_dense(beta, sigma, Lb, st: dict):
    """log p(y | beta, sigma, Lambda) with all of b integrated out:
    ``K = Lambda' Z'Z Lambda + sigma^2 I_q`` factored densely (Woodbury)."""
    import pytensor.tensor as pt

    s2 = sigma**2
    n, q = st["n"], st["q"]
    rss = st["yty"] - 2.0 * pt.dot(beta, st["Xty"]) + pt.dot(beta, pt.dot(st["XtX"], beta))
    v = pt.dot(Lb.T, st["Zy"] - pt.dot(st["ZX"], beta))
    K = pt.dot(Lb.T, pt.dot(st["ZtZ"], Lb)) + s2 * pt.eye(q)
    C = pt.linalg.cholesky(K)
    u = pt.linalg.solve_triangular(C, v, lower=True)
    logdet = 2.0 * pt.log(pt.diag(C)).sum()
    return -0.5 * (n * np.log(2 * np.pi) + (n - q) * pt.log(s2) + logdet + (rss - pt.dot(u, u)) / s2)


def lambda_draws(blocks, remats, lead: np.ndarray | None = None) -> np.ndarray:
    """Lambda for each draw, (S, q, q), from each term's factor ``blocks[k]``
    (S, p_k, p_k); ``lead`` (S, m0) puts a diagonal block first."""
    S = blocks[0].shape[0] if blocks else lead.shape[0]
    m0 = 0 if lead is None else lead.shape[1]
    q = m0 + sum(r.q for r in remats)
    out = np.zeros((S, q, q))
    if lead is not None:
        out[:, np.arange(m0), np.arange(m0)] = lead
    o = m0
    for B, r in zip(blocks, remats):
        for i in range(r.nlevels):
            out[:, o + i * r.p: o + (i + 1) * r.p, o + i * r.p: o + (i + 1) * r.p] = B
        o += r.q
    return out


def draw_gaussian_coefs(AtA: np.ndarray, Atr: np.ndarray, G: np.ndarray, sigma: np.ndarray, rng) -> np.ndarray:
    """Exact draws of c = G u for the model ``r = A G u + e``, ``u ~ N(0, I)``,
    ``e ~ N(0, sigma^2 I)``, one per posterior draw.

    AtA (m, m), Atr = A'r (S, m), G (S, m, m), sigma (S,) -> c (S, m).
    ``u | r ~ N(K^{-1} G'A'r, sigma^2 K^{-1})`` with ``K = G'A'AG + sigma^2 I``.
    """
    m = AtA.shape[0]
    K = np.swapaxes(G, 1, 2) @ AtA @ G + (sigma**2)[:, None, None] * np.eye(m)
    C = np.linalg.cholesky(K)
    v = np.einsum("sba,sb->sa", G, Atr)
    mean = np.linalg.solve(K, v[..., None])[..., 0]
    z = rng.standard_normal(mean.shape)
    u = mean + sigma[:, None] * np.linalg.solve(np.swapaxes(C, 1, 2), z[..., None])[..., 0]
    return np.einsum("sab,sb->sa", G, u)


def draw_ranef_dense(beta, sigma, blocks, remats, st: dict, rng, chunk: int = 128) -> np.ndarray:
    """Exact draws of all of b for each posterior draw: beta (S, p), sigma (S,),
    blocks[k] (S, p_k, p_k) -> b (S, q)."""
    S, q = beta.shape[0], st["q"]
    out = np.empty((S, q))
    for a in range(0, S, chunk):
        sl = slice(a, a + chunk)
        G = lambda_draws([B[sl] for B in blocks], remats)
        out[sl] = draw_gaussian_coefs(st["ZtZ"], st["Zy"][None] - beta[sl] @ st["ZX"].T, G, sigma[sl], rng)
    return out


# ---- large crossed designs: partial plan ----------------------------------------------
def collapsed_stats(design, priors: PriorSet, plan: MarginalPlan) -> dict:
    """Constants of :func:`collapsed_loglik`.

    ``A = [X | Z_k for the densely integrated terms]`` (X only when beta is
    integrated); beta's Normal prior enters as ``beta = mu0 + diag(s0) u``, so
    ``y0 = y - X mu0`` and the first block of G is ``diag(s0)``.  For the
    blocked factor (``Zb``, levels i): ``Aii = Zb_i'Zb_i`` (levels, P, P) and
    ``SA = Zb_i'A`` (levels, P, m).
    """
    import scipy.sparse as sp

    cols, y0, mu0, s0 = [], design.y.astype(float), None, None
    if plan.fixef_integrated:
        mu0 = np.array([priors.fixed[n].params["mu"] for n in design.xnames], dtype=float)
        s0 = np.array([priors.fixed[n].params["sigma"] for n in design.xnames], dtype=float)
        y0 = y0 - design.X @ mu0
        cols.append(sp.csr_matrix(design.X))
    small = [design.remats[k] for k in plan.integrated]
    cols += [r.sparse() for r in small]
    A = sp.hstack(cols, format="csr") if cols else sp.csr_matrix((design.n, 0))
    st = {"y0": y0, "A": A, "AtA": (A.T @ A).toarray(), "mu0": mu0, "s0": s0,
          "X": design.X if plan.fixef_integrated else None, "small": small, "n": design.n, "m": A.shape[1],
          "blocked": None}
    if plan.blocked:
        bl = [design.remats[k] for k in plan.blocked]
        codes, lv = bl[0].codes, bl[0].nlevels
        Zt = np.column_stack([r.Xt for r in bl])  # n x P
        P = Zt.shape[1]
        Zb = sp.csr_matrix((Zt.ravel(), (np.repeat(np.arange(design.n), P), (codes[:, None] * P + np.arange(P)).ravel())),
                           shape=(design.n, lv * P))
        Aii = np.empty((lv, P, P))
        for a in range(P):
            for b in range(P):
                Aii[:, a, b] = np.bincount(codes, weights=Zt[:, a] * Zt[:, b], minlength=lv)
        st["blocked"] = {"codes": codes, "Zt": Zt, "levels": lv, "P": P, "Zb": Zb, "Aii": Aii,
                         "SA": np.asarray((Zb.T @ A).todense()).reshape(lv, P, A.shape[1])}
    return st


def _collapsed_factor(st: dict, scales, remats):
    """G = blockdiag(diag(s0), Lambda of the densely integrated terms) as a tensor."""
    import pytensor.tensor as pt

    blocks = [] if st["s0"] is None else [pt.diag(pt.as_tensor_variable(st["s0"]))]
    if remats:
        blocks.append(_dense_lambda(scales, remats))
    return blocks[0] if len(blocks) == 1 else pt.linalg.block_diag(*blocks)


def _flat_index(codes, P: int) -> np.ndarray:
    """Positions of (row's level, column j) in a flattened (levels, P) array, row-major."""
    return (np.asarray(codes)[:, None] * P + np.arange(P)).ravel()


# Gathers and scatter-adds go through one flattened 1-D index: PyTensor's
# numba backend runs 2-D advanced (inc_)subtensors about 20x slower (InstEval:
# 1.4 ms instead of 0.06 ms per scatter, paid in every gradient)
def _level_sums(r, codes, Zt, levels):
    """Z_i'r for every level i of a factor: (levels, P) by a scatter-add."""
    import pytensor.tensor as pt

    P = Zt.shape[1]
    vals = r if P == 1 and np.all(Zt == 1.0) else (pt.as_tensor_variable(Zt) * r[:, None]).reshape((-1,))
    flat = pt.inc_subtensor(pt.zeros(levels * P)[_flat_index(codes, P)], vals)
    return flat.reshape((levels, P))


def term_contribution(b, r):
    """``(Z_k b_k)_row = sum_j Xt[row, j] b[level(row), j]`` for b (levels, p) (a gather)."""
    import pytensor.tensor as pt

    vals = b.reshape((-1,))[_flat_index(r.codes, r.p)]
    if r.p == 1:
        return vals if np.all(r.Xt == 1.0) else vals * r.Xt[:, 0]
    return (vals.reshape((-1, r.p)) * pt.as_tensor_variable(r.Xt)).sum(axis=1)


def _At_dot(r, st: dict):
    """A'r for ``A = [X | Z_k]``: X'r, then per-level sums of each term's columns."""
    import pytensor.tensor as pt

    parts = [] if st["X"] is None else [pt.dot(pt.as_tensor_variable(st["X"].T), r)]
    for rm in st["small"]:
        parts.append(_level_sums(r, rm.codes, rm.Xt, rm.nlevels).reshape((-1,)))
    return parts[0] if len(parts) == 1 else pt.concatenate(parts)


def _per_level_h(Lam, Aii, s2):
    """``H_i = Lam K_i^{-1} Lam'`` and ``log|K_i|`` with ``K_i = Lam'Aii_i Lam + s2 I`` (tensors)."""
    import pytensor.tensor as pt

    P = Aii.shape[1]
    if P == 1:
        l2 = Lam[0, 0] ** 2
        k = Aii[:, 0, 0] * l2 + s2
        return (l2 / k)[:, None, None], pt.log(k)
    K = pt.tensordot(pt.tensordot(Lam.T, pt.as_tensor_variable(Aii), axes=[[1], [1]]).dimshuffle(1, 0, 2),
                     Lam, axes=[[2], [0]]) + s2 * pt.eye(P)
    C = pt.linalg.cholesky(K)
    V = pt.linalg.solve_triangular(C, pt.broadcast_to(Lam.T, (Aii.shape[0], P, P)), lower=True)  # C^{-1} Lam'
    H = pt.matmul(V.dimshuffle(0, 2, 1), V)
    return H, 2.0 * pt.log(pt.diagonal(C, axis1=1, axis2=2)).sum(axis=1)


def collapsed_loglik(r, sigma, G, Lam, st: dict):
    """log p(r | sigma, G, Lam) for ``r = A G u + Zb Lam v + e``, u and v integrated out.

    r is y0 minus the sampled terms' effects (a tensor of length n), ``u ~
    N(0, I_m)``, ``v ~ N(0, I)``.  ``W = sigma^2 I + Zb Lam Lam' Zb'`` is block
    diagonal over the blocked factor's levels, so (Woodbury twice)

        W^{-1} = (I - Zb H Zb') / sigma^2,  H_i = Lam K_i^{-1} Lam',  K_i = Lam' Zb_i'Zb_i Lam + sigma^2 I
        log|V| = (n - l P) log sigma^2 + sum_i log|K_i| + log|M|,  M = I_m + G'A'W^{-1}AG
        r'V^{-1}r = r'W^{-1}r - |C_M^{-1} G'A'W^{-1}r|^2

    Each gradient is O(n) for r and the level sums, O(l P^3 + l P m^2) for
    the blocked factor and O(m^3) for M; no sampled variable has a level
    of the blocked factor or a column of A.
    """
    import pytensor.tensor as pt

    s2 = sigma**2
    n, m = st["n"], st["m"]
    rr, Ar, AA = pt.dot(r, r), _At_dot(r, st) if m else None, st["AtA"]
    logdet = n * pt.log(s2)
    bl = st["blocked"]
    if bl is not None:
        H, logk = _per_level_h(Lam, bl["Aii"], s2)
        w = _level_sums(r, bl["codes"], bl["Zt"], bl["levels"])  # (levels, P)
        Hw = (H * w[:, None, :]).sum(axis=2)  # H_i w_i
        rr = rr - (w * Hw).sum()
        logdet = logdet - bl["levels"] * bl["P"] * pt.log(s2) + logk.sum()
        if m:
            SA = bl["SA"]
            Ar = Ar - pt.tensordot(pt.as_tensor_variable(SA), Hw, axes=[[0, 1], [0, 1]])
            HSA = pt.matmul(H, pt.as_tensor_variable(SA))  # (levels, P, m)
            AA = AA - pt.tensordot(pt.as_tensor_variable(SA), HSA, axes=[[0, 1], [0, 1]])
    quad = rr / s2
    if m:
        M = pt.eye(m) + pt.dot(G.T, pt.dot(AA, G)) / s2
        C = pt.linalg.cholesky(M)
        u = pt.linalg.solve_triangular(C, pt.dot(G.T, Ar) / s2, lower=True)
        logdet = logdet + 2.0 * pt.log(pt.diag(C)).sum()
        quad = quad - pt.dot(u, u)
    return -0.5 * (n * np.log(2 * np.pi) + logdet + quad)


def _per_level_h_np(Lam, Aii, sigma):
    """numpy twin of :func:`_per_level_h` for S draws: Lam (S, P, P) -> H (S, l, P, P), C_K (S, l, P, P)."""
    P = Aii.shape[1]
    K = np.einsum("sba,lbc,scd->slad", Lam, Aii, Lam) + (sigma**2)[:, None, None, None] * np.eye(P)
    C = np.linalg.cholesky(K)
    LamT = np.broadcast_to(np.swapaxes(Lam, 1, 2)[:, None], K.shape)
    V = np.linalg.solve(C, LamT)  # C^{-1} Lam' (C lower triangular)
    return np.swapaxes(V, 2, 3) @ V, C


def draw_collapsed(st: dict, resid, sigma, blocks, lam, rng, chunk: int = 64):
    """Exact draws of what :func:`collapsed_loglik` integrated out.

    ``resid(sl)`` gives r (n, s) for the draws in slice ``sl``; ``blocks``
    the densely integrated terms' factors (S, p_k, p_k); ``lam`` the blocked
    factor's joint factor (S, P, P) or None.  First ``u | r`` (v integrated
    out), then ``v | r - A G u`` level by level.  Returns (beta (S, p) or
    None, [b_k (S, q_k)] for the dense terms, b of the blocked factor
    (S, levels, P) or None).
    """
    S, m, bl = sigma.shape[0], st["m"], st["blocked"]
    c_all = np.empty((S, m))
    b_bl = None if bl is None else np.empty((S, bl["levels"], bl["P"]))
    for a in range(0, S, chunk):
        sl = slice(a, a + chunk)
        sig = sigma[sl]
        s = sig.shape[0]
        s2 = (sig**2)[:, None]
        r = resid(sl)  # (n, s)
        if bl is not None:
            H, CK = _per_level_h_np(lam[sl], bl["Aii"], sig)
            w = (bl["Zb"].T @ r).T.reshape(s, bl["levels"], bl["P"])
        if m:
            lead = None if st["s0"] is None else np.broadcast_to(st["s0"], (s, st["s0"].shape[0]))
            G = lambda_draws([B[sl] for B in blocks], st["small"], lead=lead)
            Ar = np.asarray((st["A"].T @ r).T)
            AA = np.broadcast_to(st["AtA"], (s, m, m))
            if bl is not None:
                SA = bl["SA"]
                Ar = Ar - np.einsum("lpm,slpq,slq->sm", SA, H, w)
                AA = AA - np.einsum("lpm,slpq,lqk->smk", SA, H, SA, optimize=True)
            # u | r ~ N(M^{-1} G'A'W^{-1}r, M^{-1}),  M = I + G'A'W^{-1}AG
            Mm = np.eye(m) + np.swapaxes(G, 1, 2) @ AA @ G / s2[:, :, None]
            CM = np.linalg.cholesky(Mm)
            mean = np.linalg.solve(Mm, np.einsum("sba,sb->sa", G, Ar / s2)[..., None])[..., 0]
            z = rng.standard_normal(mean.shape)
            u = mean + np.linalg.solve(np.swapaxes(CM, 1, 2), z[..., None])[..., 0]
            c = np.einsum("sab,sb->sa", G, u)
            c_all[sl] = c
            if bl is not None:
                # v | r - A c: per level, b_i ~ N(H_i Zb_i'r', sigma^2 H_i)
                w = w - np.einsum("lpm,sm->slp", bl["SA"], c)
        if bl is not None:
            mean = np.einsum("slpq,slq->slp", H, w)
            # sigma^2 H_i = (sigma Lam C_K^{-T}) (sigma Lam C_K^{-T})'
            z = rng.standard_normal(mean.shape)
            dev = np.linalg.solve(np.swapaxes(CK, 2, 3), z[..., None])[..., 0]
            b_bl[sl] = mean + sig[:, None, None] * np.einsum("sab,slb->sla", lam[sl], dev)
    o = 0
    beta = None
    if st["s0"] is not None:
        o = st["s0"].shape[0]
        beta = c_all[:, :o] + st["mu0"]
    parts = []
    for rm in st["small"]:
        parts.append(c_all[:, o: o + rm.q])
        o += rm.q
    return beta, parts, b_bl
