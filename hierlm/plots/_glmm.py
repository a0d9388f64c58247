"""Pieces the plots need for binomial and Poisson fits (GLMMs): the data on
the response scale, small GLM fits by IRLS for the no- and complete-pooling
estimates, and randomized quantile residuals."""

from __future__ import annotations

import numpy as np

#: readable names of the link functions, for axis labels
_LINK_WORDS = {"logit": "logit", "probit": "probit", "cloglog": "cloglog", "cauchit": "cauchit", "log": "log",
               "identity": "identity", "sqrt": "square root"}


def is_glmm(fit) -> bool:
    """True for a binomial or Poisson fit, of whatever kind."""
    return not fit.family.is_gaussian


def observations(fit):
    """(y, wt, ntrials, offset) as the likelihood sees them: binomial y is the
    proportion of ``ntrials`` (prior weights ``wt``), Poisson y the count."""
    y, wt, ntrials = fit.response
    return y, wt, ntrials, fit.offset


def mean_name(fit) -> str:
    """What the mean is: 'proportion of incidence / size' or 'rate of TICKS'."""
    d = fit.design
    resp = str(d.formula.response)
    if fit.family.name == "binomial":
        if d.counts is not None and resp.startswith("cbind("):
            inner = resp[len("cbind("):-1]
            parts = [p.strip() for p in inner.split(",", 1)]
            if len(parts) == 2:
                import re

                # cbind(s, n - s): the trials are n
                m = re.fullmatch(r"(.+?)\s*-\s*" + re.escape(parts[0]), parts[1])
                total = m.group(1) if m else f"({parts[0]} + {parts[1]})"
                return f"proportion {parts[0]} / {total}"
        return f"proportion of {resp}"
    if fit.family.dist.eta_is_mean:
        return f"mean {resp} category (numbered 1-{len(d.response_levels)})"
    return f"mean {resp}" if d.offset is None else f"mean {resp} (per unit of exposure)"


def link_label(fit) -> str:
    """e.g. 'logit scale' -- said on every axis drawn on the link scale."""
    return f"{_LINK_WORDS.get(fit.family.link, fit.family.link)} scale"


def glm_irls(X, y, wt, offset, family, maxit: int = 50, tol: float = 1e-10):
    """Maximum-likelihood GLM coefficients by iteratively reweighted least squares.

    Returns the coefficients, or ``None`` when the fit does not converge to a
    finite estimate (separation: all-0 or all-1 outcomes, all-zero counts).
    """
    X = np.asarray(X, dtype=float)
    mu = np.asarray(family.mustart(y, wt, wt), dtype=float)
    eta = family.linkfun(mu) - offset
    beta = np.linalg.lstsq(X, eta, rcond=None)[0]
    dev_old = np.inf
    for _ in range(maxit):
        e = X @ beta + offset
        mu = family.linkinv(e)
        d = family.mu_eta(e)
        with np.errstate(divide="ignore", invalid="ignore"):
            w, res = family.working(y, mu, d, wt)  # PIRLS's weights and working residuals
        if not (np.all(np.isfinite(w)) and np.all(np.isfinite(res))):
            return None
        w = np.maximum(w, 1e-300)
        z = (e - offset) + res
        sw = np.sqrt(w)
        beta_new = np.linalg.lstsq(X * sw[:, None], z * sw, rcond=None)[0]
        if not np.all(np.isfinite(beta_new)):
            return None
        for _ in range(30):  # step halving on an increase, as PIRLS
            mu_new = family.linkinv(X @ beta_new + offset)
            dev = float(np.sum(family.dev_resid(y, mu_new, wt)))
            if np.isfinite(dev) and dev <= dev_old + 1e-10 * abs(dev):
                break
            beta_new = 0.5 * (beta + beta_new)
        beta = beta_new
        if abs(dev - dev_old) < tol * (abs(dev) + 0.1):
            break
        dev_old = dev
    else:
        return None
    return beta


def separated(y, wt, family) -> bool:
    """True when the group's own ML estimate is infinite on the link scale
    (an intercept-only view: all failures, all successes, or all-zero counts)."""
    pos = wt > 0
    if not np.any(pos):
        return True
    yy = y[pos]
    if family.dist.eta_is_mean:  # ordinal: all in the lowest or all in the highest category
        return bool(np.all(yy <= 0) or np.all(yy >= family.dist.ncat - 1))
    if family.name == "binomial":
        return bool(np.all(yy <= 0) or np.all(yy >= 1))
    return bool(np.all(yy <= 0))


def randomized_quantile_residuals(fit, seed=0) -> np.ndarray:
    """Randomized quantile residuals (Dunn & Smyth 1996).

    For each observation ``u`` is drawn uniformly between ``F(y-)`` and
    ``F(y)`` of the fitted distribution (the family's ``cdf_bounds``: binomial
    with the row's trials, Poisson, negative binomial; for a continuous family
    such as the Gamma ``u = F(y)``) at the fitted mean; the residual is ``Phi^{-1}(u)``.  Under the
    model they are independent N(0, 1), so a normal QQ plot applies even to
    0/1 data.  ``seed`` makes the randomization repeatable.
    """
    from scipy import stats

    y, _, ntrials, _ = observations(fit)
    # the family's mean at the linear predictor (an ordinal family's is eta itself, not
    # fitted(), which is the probability of the observed category)
    mu = np.asarray(fit.family.linkinv(fit.fitted("link").to_numpy()), dtype=float)
    rng = np.random.default_rng(seed)
    lo, hi = fit.family.cdf_bounds(y, mu, ntrials, getattr(fit, "sigma", 1.0))
    u = lo + rng.uniform(size=y.size) * (hi - lo)
    u = np.clip(u, 1e-12, 1 - 1e-12)
    return stats.norm.ppf(u)
