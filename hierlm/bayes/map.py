r"""MAP: the mode of the *marginal* posterior, random effects integrated out.

A joint mode over (b, sd) does not exist in hierarchical models: the joint
density grows without bound as sd -> 0 with b -> 0 (the funnel), so a
naive ``pm.find_MAP`` collapses.  Here the random effects are integrated out
exactly (Gaussian), using the REML/ML engine's factorization at each theta:

    -2 log p(y | theta, beta, sigma) = n log(2 pi sigma^2) + log|L_Z|^2
                                        + (r^2(theta) + |R_X (beta - beta_hat)|^2) / sigma^2

(with ``reml=True`` beta is integrated out too:
``(n - p) log(2 pi sigma^2) + log|L_Z|^2 + log|R_X|^2 + r^2 / sigma^2``).

Parameters are optimized on the unconstrained scale: beta, log sigma, log
of each random-effect SD, and Stan's canonical partial correlations
(``tanh`` of free reals) for each correlation matrix.  With the model's
priors the objective is the log posterior of those unconstrained
parameters, Jacobians included; the Jacobian ``sd`` of ``log sd`` makes the
density vanish at sd = 0, so the mode is never on the boundary (the
property of blme's gamma(2, 0) priors, Chung et al. 2013, Psychometrika).
With ``priors="flat"`` the objective is the likelihood alone, whose mode
is the ML (or REML) estimate in any parameterization.

Approximate posterior SDs come from the inverse Hessian on the
unconstrained scale, mapped to the reported scale by the delta method.
"""

from __future__ import annotations

import contextlib
import warnings
from dataclasses import dataclass
from functools import cached_property

import numpy as np
import pandas as pd
from scipy import optimize

from ..errors import HierlmError
from ..family import FamilyError, make_family
from ..fit import MixedFit
from ..glmm import fit_glmm
from ..lmm import fit_lmm
from ..lmm.deviance import conditional_modes, make_deviance
from ..optimize import Convergence, deriv12, gradient_messages, one_blas_thread, warn_all
from ..params import corr_cholesky, corr_cholesky_free, theta_of_sd_chol
from ..priors import PriorSet

_LOG2PI = np.log(2 * np.pi)


def lkj_cholesky_logpdf(L: np.ndarray, eta: float) -> float:
    """log density of the LKJ(eta) prior expressed on the Cholesky factor
    (Stan's ``lkj_corr_cholesky_lpdf``, up to a constant)."""
    p = L.shape[0]
    i = np.arange(2, p + 1)
    return float(np.sum((p - i + 2 * eta - 2) * np.log(np.diag(L)[1:])))


@dataclass
class _Layout:
    """Where each natural parameter sits in the unconstrained vector."""

    p: int  # fixed effects in the vector (0 with reml)
    terms: list  # (sd slice, corr slice, p_k) per term


class MarginalPosterior:
    """Negative log marginal posterior (or likelihood) on the unconstrained scale."""

    #: the vector has a log sigma slot (False for binomial/Poisson: sigma is 1)
    has_sigma = True

    def __init__(self, design, priors: PriorSet | None, reml: bool):
        self.design = design
        self.dev = make_deviance(design)
        self.priors = priors
        self.reml = reml
        self._set_layout()

    def _set_layout(self) -> None:
        design = self.design
        pos = 0 if self.reml else design.p
        pos += int(self.has_sigma)  # log sigma
        terms = []
        for r in design.remats:
            sd = slice(pos, pos + r.p)
            pos += r.p
            nc = r.p * (r.p - 1) // 2
            terms.append((sd, slice(pos, pos + nc), r.p))
            pos += nc
        self.layout = _Layout(0 if self.reml else design.p, terms)
        self.size = pos

    def natural(self, phi: np.ndarray):
        """phi -> (beta or None, sigma, [sd_k], [Lcorr_k], log-Jacobian)."""
        lay = self.layout
        beta = phi[: lay.p] if lay.p else None
        log_sigma = phi[lay.p] if self.has_sigma else 0.0
        sigma = np.exp(log_sigma)
        logj = log_sigma
        sds, Ls = [], []
        for sd_sl, c_sl, p in lay.terms:
            logsd = phi[sd_sl]
            sds.append(np.exp(logsd))
            logj += logsd.sum()
            L, lj = corr_cholesky(phi[c_sl], p)
            Ls.append(L)
            logj += lj
        return beta, sigma, sds, Ls, logj

    def theta_of(self, sigma: float, sds, Ls) -> np.ndarray:
        return theta_of_sd_chol(self.design, sds, Ls, sigma)

    def loglik(self, theta, beta, sigma):
        """Marginal log-likelihood (REML: beta integrated out); also returns the factor."""
        f = self.dev.factor(theta)
        if f is None:
            return -np.inf, None
        d = self.design
        s2 = sigma**2
        if self.reml:
            n = d.n - d.p
            return -0.5 * (n * (_LOG2PI + np.log(s2)) + f.logdet_Z + f.logdet_X + f.pwrss / s2 - self.dev.ldw), f
        beta_hat = self.dev.beta_hat(f)  # each evaluation: the X rows only, not b
        qr = self.dev.qr
        RX = np.tril(f.L[qr: qr + d.p, qr: qr + d.p])  # L_XX (upper triangle holds stale values)
        dx = RX.T @ (beta - beta_hat)
        # prior weights: the residual variance of row i is sigma^2 / w_i (dev.ldw = sum log w)
        return -0.5 * (d.n * (_LOG2PI + np.log(s2)) + f.logdet_Z + (f.pwrss + dx @ dx) / s2 - self.dev.ldw), f

    def __call__(self, phi: np.ndarray) -> float:
        return self.evaluate(phi)[0]

    def evaluate(self, phi: np.ndarray):
        """(the objective at ``phi``, the engine's factor there or None): the
        factor gives exact draws of b at phi (:func:`hierlm.bayes.imh.fit_imh`)."""
        beta, sigma, sds, Ls, logj = self.natural(phi)
        ll, f = self.loglik(self.theta_of(sigma, sds, Ls), beta, sigma)
        if self.priors is None:
            return (-ll if np.isfinite(ll) else 1e300), f
        pr = self.priors
        lp = float(pr.sigma.logpdf(sigma)) if self.has_sigma else 0.0
        if beta is not None:
            lp += sum(float(pr.fixed[n].logpdf(b)) for n, b in zip(self.design.xnames, beta))
        for t, sd, L in zip(pr.term_names(), sds, Ls):
            lp += float(np.sum(pr.sd[t].logpdf(sd)))
            if L.shape[0] > 1:
                lp += lkj_cholesky_logpdf(L, pr.lkj.params["eta"])
        val = -(ll + lp + logj)
        return (val if np.isfinite(val) else 1e300), f

    def start(self, fit) -> np.ndarray:
        """Unconstrained start from an ML/REML or Laplace fit (SDs floored away from 0)."""
        phi = np.empty(self.size)
        lay = self.layout
        if lay.p:
            phi[: lay.p] = fit.fixef.to_numpy()
        if self.has_sigma:
            phi[lay.p] = np.log(fit.sigma)
        for (sd_sl, c_sl, p), r, sl in zip(lay.terms, self.design.remats, self.design.theta_slices()):
            T = r.T(fit.theta[sl])
            S = fit.sigma**2 * T @ T.T
            sd = np.sqrt(np.maximum(np.diag(S), (0.05 * fit.sigma) ** 2))
            C = S / np.outer(sd, sd)
            np.fill_diagonal(C, 1.0)
            try:
                Lc = np.linalg.cholesky(C * 0.98 + 0.02 * np.eye(p))
            except np.linalg.LinAlgError:
                Lc = np.eye(p)
            phi[sd_sl] = np.log(sd)
            phi[c_sl] = corr_cholesky_free(Lc)
        return phi


class GLMMMarginalPosterior(MarginalPosterior):
    """Negative log Laplace-marginal posterior of a binomial, Poisson or negative binomial GLMM.

    The random effects are integrated out by the Laplace approximation of the
    GLMM engine (``GLMMDeviance.stage2``, lme4's nAGQ = 1 deviance, which is
    ``-2 log p(y | theta, beta)`` including the saturated constants), so with
    ``priors=None`` the mode is glmer's Laplace estimate.  The unconstrained
    vector is (beta, log SDs, free correlation parameters): no sigma; a
    family parameter (the negative binomial's shape) adds its log, last, with
    its prior (``priors.family_param``).
    """

    has_sigma = False

    def __init__(self, design, priors: PriorSet | None, dev, family=None):
        self.design = design
        self.glmm_dev = dev
        self.priors = priors
        self.reml = False
        self.family = dev.system.family if family is None else family
        self._set_layout()
        # the family's parameters (the negative binomial's shape, the beta's phi: their log;
        # an ordinal model's thresholds: the first and the logs of the gaps), last
        dist = self.family.dist
        self.nextra = dist.pack(self.family.params).size if dist.map_params else 0
        self.size += self.nextra
        if self.nextra:
            # a likelihood with family parameters is not glmer's criterion: the Laplace
            # approximation at the exact conditional modes (as the Laplace fits of these
            # families, and glmmTMB's), not PIRLS stopped by lme4's rule
            dev.control = dict(dev.control, pirls="exact")

    def _free(self, phi: np.ndarray) -> np.ndarray:
        return phi[self.size - self.nextra:]

    def set_params(self, phi: np.ndarray) -> None:
        """Point the PIRLS system at the family parameters of ``phi``."""
        if self.nextra:
            self.glmm_dev.system.set_family(self.family.with_params(**self.family.dist.unpack(self._free(phi))))

    def extra_values(self, phi: np.ndarray) -> list:
        """The family's parameters at ``phi`` on their own scale (shape, phi, thresholds)."""
        if not self.nextra:
            return []
        return [float(v) for v in np.ravel([*self.family.dist.unpack(self._free(phi)).values()])]

    def extra_names(self) -> list:
        if not self.nextra:
            return []
        dist = self.family.dist
        if dist.eta_is_mean:  # ordinal: one name per threshold, as clmm's
            return [f"threshold[{n}]" for n in self.design.threshold_names()]
        # brms's name of the one family parameter (the negative binomial's shape), or the
        # parameters' own (Student-t: sigma, nu)
        return [dist.param_prior] if dist.param_prior else list(dist.map_params)

    def _log_prior_extra(self, phi: np.ndarray) -> float:
        """The family parameters' log prior on the free scale (Jacobian included)."""
        x = self._free(phi)
        if self.family.dist.eta_is_mean:
            # ordinal: brms's prior on the thresholds of the centred predictors, each; the
            # Jacobian of (alpha_1, log gaps) -> alpha is the sum of the log gaps
            beta = phi[: self.layout.p]
            alpha = np.asarray(self.family.dist.unpack(x)["cutpoints"])
            centred = alpha - float(self.design.X.mean(axis=0) @ beta)
            return float(np.sum(self.priors.thresholds.logpdf(centred))) + float(np.sum(x[1:]))
        # each positive parameter's prior at exp(x), and the log-Jacobian x
        return sum(float(prior.logpdf(np.exp(v))) + float(v)
                   for prior, v in zip(self.family.dist.map_priors(self.priors), x))

    def __call__(self, phi: np.ndarray) -> float:
        try:
            self.set_params(phi)
        except FamilyError:  # thresholds out of order or overflowing
            return 1e300
        val = super().__call__(phi)
        if self.nextra and val < 1e300 and self.priors is not None:
            val -= self._log_prior_extra(phi)
        return val

    def start(self, fit) -> np.ndarray:
        phi = super().start(fit)  # empty slots at the end for the family's parameters
        if self.nextra:
            phi[self.size - self.nextra:] = self.family.dist.pack(self.family.params)
        return phi

    def loglik(self, theta, beta, sigma=1.0):
        """Laplace log-likelihood ``-deviance / 2`` (no factor is returned)."""
        d = self.glmm_dev.stage2(np.concatenate([theta, beta]))
        return (-0.5 * d if np.isfinite(d) else -np.inf), None


#: the largest |gradient| (in the scaled coordinates) taken as converged, per family kind;
#: the Laplace criterion is evaluated by PIRLS to ~1e-10, so its finite
#: differences are coarser than the LMM's exact deviance
_GTOL = {True: 1e-3, False: 1e-2}


def _check_priors(priors):
    flat = isinstance(priors, str) and priors == "flat"
    if isinstance(priors, str) and not flat:
        raise HierlmError(f"priors must be 'flat' or a PriorSet (model.priors), not {priors!r}")
    if not flat and not isinstance(priors, PriorSet):
        raise HierlmError(f"priors must be 'flat' or a PriorSet (model.priors), not {type(priors).__name__}")
    return flat


def fit_map(design, family, priors, reml: bool = False, *, model=None, data_name: str | None = None) -> "MAPFit":
    """Mode of the marginal posterior (see module docstring): the MAP engine's entry point.

    Parameters
    ----------
    design : hierlm.design.build.Design
    family : Family or str
        Gaussian: the random effects are integrated out exactly; binomial
        or Poisson: by lme4's Laplace approximation.
    priors : PriorSet or "flat"
        With ``"flat"`` the mode is the ML (or REML) estimate, or glmer's
        Laplace estimate.
    reml : bool
        Gaussian models only: integrate beta out too (with flat priors the
        mode is then REML).
    model : hierlm.Model, optional
    data_name : str, optional

    Returns
    -------
    MAPFit
    """
    family = make_family(family)
    flat = _check_priors(priors)
    gaussian = family.is_gaussian
    if reml and not gaussian:
        raise HierlmError(f"reml=True is for Gaussian models; {family.a_name} model has no REML "
                          "(its MAP integrates the random effects out by the Laplace approximation)")
    pin = contextlib.nullcontext() if gaussian else one_blas_thread()
    with pin:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # a singular start is expected and fine here
            # the ML/REML (Laplace) fit gives the start and the scale of the fixed
            # effects; for a GLMM its deviance functions are glmer's own criterion
            if gaussian:
                start_fit = fit_lmm(design, reml, {"calc_derivs": False})
                post = MarginalPosterior(design, None if flat else priors, reml)
                beta_sd = np.sqrt(np.diag(start_fit.vcov.to_numpy()))
            else:
                if family.dist.scale_from_gaussian:  # Student-t: its likelihood needs sigma (and nu) first
                    family = family.dist.likelihood(family, fit_lmm(design, False, {"calc_derivs": False}).sigma)
                start_fit = fit_glmm(design, family, 1, {"calc_derivs": False})
                # the likelihood the posterior reads (Gamma's has its shape, from glmer's sigma)
                lik = start_fit.family.dist.likelihood(start_fit.family, start_fit.sigma)
                post = GLMMMarginalPosterior(design, None if flat else priors, start_fit.devfun, lik)
                _, w, _ = start_fit.system.moments(start_fit.mode.eta)
                beta_sd = np.sqrt(np.diag(start_fit.system.unscaled_vcov(start_fit.mode, w)))
        phi, cov_phi, convergence, nfev = _maximize(post, post.start(start_fit), beta_sd, _GTOL[gaussian])
        cls = MAPFit if gaussian else GLMMMAPFit
        fit = cls(post, phi, cov_phi, flat=flat, convergence=convergence, nfev=nfev, family=family,
                  model=model, data_name=data_name)
    warn_all(convergence.messages, stacklevel=3)
    return fit


def _maximize(post, phi0: np.ndarray, beta_sd: np.ndarray, gtol: float):
    """BFGS on the negative log posterior from ``phi0``; returns (phi, inverse
    Hessian on the unconstrained scale, Convergence, evaluations).

    The optimizer works in coordinates of order one: fixed effects in units
    of their ML standard errors, the rest (logs, free correlations) as they are.
    """
    scale = np.ones_like(phi0)
    if post.layout.p:
        scale[: post.layout.p] = beta_sd

    def scaled(x):
        return post(phi0 + scale * x)

    zero = np.zeros_like(phi0)
    res = optimize.minimize(scaled, zero, method="BFGS", jac="3-point", options={"gtol": 1e-6, "maxiter": 1000})
    x = res.x if res.fun <= scaled(zero) else zero
    # BFGS with finite-difference gradients often ends with "precision loss" at
    # the optimum; judge convergence as lme4's checkConv does, by the central
    # differences' gradient and Hessian there (the gradient scaled by the
    # curvature, so that a steep direction, log sigma of 73,000 rows with
    # d2/dlog(sigma)^2 ~ 1.5e5, is judged by the step it implies; a forward
    # difference with step 1e-6 read 0.07 there from truncation alone)
    grad, H = deriv12(lambda xs: np.array([scaled(v) for v in xs]), x)
    try:
        np.linalg.cholesky(H)
        problems = gradient_messages(grad, H, gtol)
    except np.linalg.LinAlgError:  # a flat direction at the mode (an SD towards 0 under flat
        # priors): no curvature to scale by, so the gradient itself
        gmax = float(np.max(np.abs(grad))) if grad.size else 0.0
        problems = [] if gmax < gtol else [f"max |gradient| {gmax:.2g} (tol = {gtol:g})"]
    messages = [f"MAP optimizer: {m} ({res.message})" for m in problems]
    converged = not messages
    H = H / np.outer(scale, scale)
    try:
        cov_phi = np.linalg.inv(H)
    except np.linalg.LinAlgError:
        cov_phi = np.full_like(H, np.nan)
    return phi0 + scale * x, cov_phi, Convergence(converged, messages), int(res.nfev)


class MAPFit(MixedFit):
    """Mode of the marginal posterior (random effects integrated out).

    ``fixef``, ``sigma``, ``varcorr`` are at the mode; ``ranef()`` gives the
    conditional modes of the random effects there; ``se`` the approximate
    posterior SDs from the Hessian (delta method on the reported scale).
    Created by :func:`fit_map`.

    Attributes
    ----------
    flat : bool
        Flat priors (the mode is the ML/REML estimate).
    reml : bool
        beta integrated out too.
    phi : numpy.ndarray
        The mode on the unconstrained scale.
    loglik : float
        Log marginal likelihood at the mode.
    logpost : float
        Log posterior density at the mode (unconstrained scale).
    """

    fit_label = "MAP"

    kind = "map"

    def __init__(self, post, phi, cov_phi, *, flat: bool, convergence: Convergence, nfev: int, family,
                 model=None, data_name: str | None = None):
        self.model = model
        self.design = d = post.design
        self.family = family
        self.data_name = data_name
        self.flat, self.reml = flat, post.reml
        self.convergence, self.nfev = convergence, nfev
        self.posterior, self.phi, self.cov_phi = post, phi, cov_phi
        self._set_estimates(post, phi, cov_phi, d)
        self.logpost = -float(post(phi))

    def _set_estimates(self, post, phi, cov_phi, d) -> None:
        beta, sigma, sds, Ls = post.natural(phi)[:4]
        self.sigma = float(sigma)
        self.theta = post.theta_of(sigma, sds, Ls)
        ll, f = post.loglik(self.theta, beta, sigma)
        self.loglik = float(ll)
        if beta is None:  # REML: beta integrated out; report its conditional mode
            beta, _ = post.dev.solve(f)
            self._vcov = self.sigma**2 * post.dev.vcov_unscaled(f)
        else:
            self._vcov = cov_phi[: d.p, : d.p]
        self.beta = np.asarray(beta)
        self.b, cv = conditional_modes(d, self.theta, self.beta)
        self.condvar = [self.sigma**2 * c for c in cv]

    @property
    def vcov(self) -> pd.DataFrame:
        """Approximate posterior covariance of the fixed effects (inverse Hessian)."""
        n = self.design.xnames
        return pd.DataFrame(self._vcov, index=n, columns=n)

    def _natural_vector(self, phi) -> np.ndarray:
        beta, sigma, sds, Ls = self.posterior.natural(phi)[:4]
        out = [] if beta is None else list(beta)
        if self.posterior.has_sigma:
            out.append(sigma)
        for sd, L in zip(sds, Ls):
            out.extend(sd)
            C = L @ L.T
            out.extend(C[i, j] for j in range(len(sd)) for i in range(j + 1, len(sd)))
        out.extend(getattr(self.posterior, "extra_values", lambda p: [])(phi))
        return np.asarray(out, dtype=float)

    @cached_property
    def se(self) -> pd.Series:
        """Approximate posterior SDs (inverse Hessian, delta method)."""
        f0 = self._natural_vector(self.phi)
        J = np.empty((f0.size, self.phi.size))
        h = 1e-6
        for k in range(self.phi.size):
            e = np.zeros_like(self.phi)
            e[k] = h
            J[:, k] = (self._natural_vector(self.phi + e) - self._natural_vector(self.phi - e)) / (2 * h)
        cov = J @ self.cov_phi @ J.T
        names = [] if self.reml else list(self.design.xnames)
        if self.posterior.has_sigma:
            names.append("sigma")
        for t, r in zip(self.term_names, self.design.remats):
            names.extend(f"sd_{t}[{c}]" for c in r.cnames)
            names.extend(f"corr_{t}[{r.cnames[j]},{r.cnames[i]}]" for j in range(r.p) for i in range(j + 1, r.p))
        names.extend(getattr(self.posterior, "extra_names", list)())
        se = pd.Series(np.sqrt(np.maximum(np.diag(cov), 0)), index=names)
        if self.reml:
            se = pd.concat([pd.Series(np.sqrt(np.diag(self._vcov)), index=self.design.xnames), se])
        return se

    def coef_table(self) -> pd.DataFrame:
        """Fixed effects at the mode with their approximate posterior SDs and
        ``z = estimate / SD``."""
        est = self.fixef.to_numpy()
        sd = np.array([self.se[n] for n in self.design.xnames])
        return pd.DataFrame({"Estimate": est, "Std. Error": sd, "z value": est / sd}, index=self.design.xnames)


class GLMMMAPFit(MAPFit):
    """Mode of the Laplace-marginal posterior of a binomial or Poisson GLMM.

    As :class:`MAPFit`, with no sigma (``sigma`` is 1, ``varcorr`` has no
    Residual row); ``ranef()`` gives the PIRLS conditional modes at the mode
    and ``loglik`` the Laplace log-likelihood there.
    """

    def _set_estimates(self, post, phi, cov_phi, d) -> None:
        post.set_params(phi)  # the negative binomial's (Gamma's) shape at the mode
        self.family = post.glmm_dev.system.family
        beta, _, sds, Ls = post.natural(phi)[:4]
        theta = post.theta_of(1.0, sds, Ls)  # the random effects' own scale, as the engine takes it
        # a Gamma model reports sigma = 1 / sqrt(shape) (glmmTMB's, brms's) and the random
        # effects' SDs themselves: theta relative to sigma, as every fit's covariances read it
        self.sigma = float(self.family.dist.sigma()) if self.family.has_dispersion else 1.0
        self.theta = post.theta_of(self.sigma, sds, Ls)
        self.beta = np.asarray(beta, dtype=float)
        dev = post.glmm_dev
        self.mode = dev.mode(theta, self.beta)
        self.loglik = -0.5 * float(dev.criterion(self.mode))
        self._vcov = cov_phi[: d.p, : d.p]
        system = dev.system
        self.b = system.b_blocks(theta, self.mode.u)
        _, w, _ = system.moments(self.mode.eta)
        self.condvar = system.condvar(self.mode, w)
