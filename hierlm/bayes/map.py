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

import warnings
from dataclasses import dataclass, replace

import numpy as np
from scipy import optimize

from ..errors import HierlmError
from ..lmm.deviance import make_deviance
from ..priors import PriorSet

_LOG2PI = np.log(2 * np.pi)


def corr_cholesky(z: np.ndarray, p: int) -> tuple[np.ndarray, float]:
    """Stan's ``cholesky_corr_constrain``: free reals -> Cholesky factor of a
    correlation matrix, and the log-Jacobian of the map."""
    L = np.zeros((p, p))
    L[0, 0] = 1.0
    cpc = np.tanh(z)
    logj = np.sum(np.log1p(-cpc**2))
    k = 0
    for i in range(1, p):
        ssq = 0.0
        for j in range(i):
            L[i, j] = cpc[k] * np.sqrt(1.0 - ssq)
            logj += 0.5 * np.log1p(-ssq)
            ssq += L[i, j] ** 2
            k += 1
        L[i, i] = np.sqrt(1.0 - ssq)
    return L, logj


def corr_cholesky_free(L: np.ndarray) -> np.ndarray:
    """Inverse of :func:`corr_cholesky`."""
    p = L.shape[0]
    z = []
    for i in range(1, p):
        ssq = 0.0
        for j in range(i):
            cpc = L[i, j] / np.sqrt(max(1.0 - ssq, 1e-300))
            z.append(np.arctanh(np.clip(cpc, -0.999999, 0.999999)))
            ssq += L[i, j] ** 2
    return np.asarray(z)


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
        out = []
        for r, sd, L in zip(self.design.remats, sds, Ls):
            T = (sd[:, None] * L) / sigma
            out.append(T[r.tril_rows, r.tril_cols])
        return np.concatenate(out)

    def loglik(self, theta, beta, sigma):
        """Marginal log-likelihood (REML: beta integrated out); also returns the factor."""
        f = self.dev.factor(theta)
        if f is None:
            return -np.inf, None
        d = self.design
        s2 = sigma**2
        if self.reml:
            n = d.n - d.p
            return -0.5 * (n * (_LOG2PI + np.log(s2)) + f.logdet_Z + f.logdet_X + f.pwrss / s2), f
        beta_hat, _ = self.dev.solve(f)
        qr = self.dev.qr
        RX = np.tril(f.L[qr: qr + d.p, qr: qr + d.p])  # L_XX (upper triangle holds stale values)
        dx = RX.T @ (beta - beta_hat)
        return -0.5 * (d.n * (_LOG2PI + np.log(s2)) + f.logdet_Z + (f.pwrss + dx @ dx) / s2), f

    def __call__(self, phi: np.ndarray) -> float:
        beta, sigma, sds, Ls, logj = self.natural(phi)
        ll, _ = self.loglik(self.theta_of(sigma, sds, Ls), beta, sigma)
        if self.priors is None:
            return -ll if np.isfinite(ll) else 1e300
        pr = self.priors
        lp = float(pr.sigma.logpdf(sigma)) if self.has_sigma else 0.0
        if beta is not None:
            lp += sum(float(pr.fixed[n].logpdf(b)) for n, b in zip(self.design.xnames, beta))
        for t, sd, L in zip(pr.term_names(), sds, Ls):
            lp += float(np.sum(pr.sd[t].logpdf(sd)))
            if L.shape[0] > 1:
                lp += lkj_cholesky_logpdf(L, pr.lkj.params["eta"])
        val = -(ll + lp + logj)
        return val if np.isfinite(val) else 1e300

    def start(self, fit) -> np.ndarray:
        """Unconstrained start from an ML/REML fit (SDs floored away from 0)."""
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


def fit_map(model, priors, reml: bool = False):
    """Mode of the marginal posterior (see module docstring).

    Parameters
    ----------
    model : hierlm.Model
    priors : PriorSet or "flat"
    reml : bool
        Integrate beta out too (with flat priors the mode is then REML).

    Returns
    -------
    MAPFit
    """
    from ..lmm.fit import check_control, deriv12, optimize_theta
    from ..lmm.results import LMMFit
    from .results import MAPFit

    design = model.design
    flat = isinstance(priors, str) and priors == "flat"
    if isinstance(priors, str) and not flat:
        raise HierlmError(f"priors must be 'flat' or a PriorSet (model.priors), not {priors!r}")
    post = MarginalPosterior(design, None if flat else priors, reml)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # a singular start is expected and fine here
        dev = make_deviance(design)
        theta0, info = optimize_theta(dev, reml, check_control({"calc_derivs": False}))
        start_fit = LMMFit(model, dev, theta0, reml, info)
    # optimize in coordinates of order one: fixed effects in units of their
    # ML/REML standard errors, the rest (logs, free correlations) as they are
    phi0 = post.start(start_fit)
    scale = np.ones_like(phi0)
    if post.layout.p:
        scale[: post.layout.p] = np.sqrt(np.diag(start_fit.vcov.to_numpy()))

    def scaled(x):
        return post(phi0 + scale * x)

    res = optimize.minimize(scaled, np.zeros_like(phi0), method="BFGS", jac="3-point",
                            options={"gtol": 1e-6, "maxiter": 1000})
    phi = phi0 + scale * res.x
    # BFGS with finite-difference gradients often ends with "precision loss"
    # at the optimum; judge convergence by the gradient itself
    grad = optimize.approx_fprime(res.x, scaled, 1e-6)
    converged = bool(np.max(np.abs(grad)) < 1e-3)
    message = "converged" if converged else f"{res.message} (max |gradient| {np.max(np.abs(grad)):.2g})"
    _, H = deriv12(lambda xs: np.array([scaled(x) for x in xs]), res.x)
    H = H / np.outer(scale, scale)
    try:
        cov_phi = np.linalg.inv(H)
    except np.linalg.LinAlgError:
        cov_phi = np.full_like(H, np.nan)
    return MAPFit(model, post, phi, cov_phi, flat=flat, reml=reml, converged=converged,
                  message=message, nfev=int(res.nfev))


def conditional_modes(design, theta: np.ndarray, beta: np.ndarray):
    """E[b | y, theta, beta] (for a given beta), via the engine on y - X beta."""
    d0 = replace(design, y=design.y - design.X @ beta, X=np.empty((design.n, 0)), xnames=[])
    dev = make_deviance(d0)
    f = dev.factor(theta)
    _, b = dev.solve(f)
    cv = dev.condvar_unscaled(f)
    return b, cv


class GLMMMarginalPosterior(MarginalPosterior):
    """Negative log Laplace-marginal posterior of a binomial or Poisson GLMM.

    The random effects are integrated out by the Laplace approximation of the
    GLMM engine (``GLMMDeviance.stage2``, lme4's nAGQ = 1 deviance, which is
    ``-2 log p(y | theta, beta)`` including the saturated constants), so with
    ``priors=None`` the mode is glmer's Laplace estimate.  The unconstrained
    vector is (beta, log SDs, free correlation parameters): no sigma.
    """

    has_sigma = False

    def __init__(self, design, priors: PriorSet | None, dev):
        self.design = design
        self.glmm_dev = dev
        self.priors = priors
        self.reml = False
        self._set_layout()

    def loglik(self, theta, beta, sigma=1.0):
        """Laplace log-likelihood ``-deviance / 2`` (no factor is returned)."""
        d = self.glmm_dev.stage2(np.concatenate([theta, beta]))
        return (-0.5 * d if np.isfinite(d) else -np.inf), None


def fit_map_glmm(model, priors):
    """Mode of the Laplace-marginal posterior of a binomial or Poisson GLMM.

    Maximizes ``log p(y | theta, beta) + log prior(beta, SDs, correlations)``
    over the unconstrained (beta, log SD, free correlation) vector, the
    random effects integrated out by lme4's Laplace approximation.  With
    ``priors="flat"`` the mode is glmer's Laplace (nAGQ = 1) estimate.

    Parameters
    ----------
    model : hierlm.Model
        A binomial or Poisson model.
    priors : PriorSet or "flat"

    Returns
    -------
    GLMMMAPFit
    """
    from ..glmm.fit import _one_blas_thread, fit_glmm
    from ..lmm.fit import deriv12
    from .results import GLMMMAPFit

    flat = isinstance(priors, str) and priors == "flat"
    if isinstance(priors, str) and not flat:
        raise HierlmError(f"priors must be 'flat' or a PriorSet (model.priors), not {priors!r}")
    if not flat and not isinstance(priors, PriorSet):
        raise HierlmError(f"priors must be 'flat' or a PriorSet (model.priors), not {type(priors).__name__}")
    with _one_blas_thread():
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # a singular Laplace start is expected and fine here
            # the Laplace fit gives the start and, in its GLMMDeviance, glmer's own
            # criterion (PIRLS from glmer's stage-1 linear predictor)
            start_fit = fit_glmm(model, model.glmm_family, nAGQ=1, control={"calc_derivs": False},
                                 data_name=model.data_name)
        dev = start_fit._dev
        post = GLMMMarginalPosterior(model.design, None if flat else priors, dev)
        phi0 = post.start(start_fit)
        scale = np.ones_like(phi0)
        p = model.design.p
        _, w, _ = start_fit._system.moments(start_fit._mode.eta)
        scale[:p] = np.sqrt(np.diag(start_fit._system.unscaled_vcov(start_fit._mode, w)))

        def scaled(x):
            return post(phi0 + scale * x)

        res = optimize.minimize(scaled, np.zeros_like(phi0), method="BFGS", jac="3-point",
                                options={"gtol": 1e-6, "maxiter": 1000})
        x = res.x if res.fun <= scaled(np.zeros_like(phi0)) else np.zeros_like(phi0)
        phi = phi0 + scale * x
        grad = optimize.approx_fprime(x, scaled, 1e-6)
        converged = bool(np.max(np.abs(grad)) < 1e-2)
        message = "converged" if converged else f"{res.message} (max |gradient| {np.max(np.abs(grad)):.2g})"
        _, H = deriv12(lambda xs: np.array([scaled(v) for v in xs]), x)
        H = H / np.outer(scale, scale)
        try:
            cov_phi = np.linalg.inv(H)
        except np.linalg.LinAlgError:
            cov_phi = np.full_like(H, np.nan)
        return GLMMMAPFit(model, post, phi, cov_phi, flat=flat, converged=converged, message=message,
                          nfev=int(res.nfev))
