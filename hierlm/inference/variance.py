r"""Variance decomposition: ICC and Nakagawa's R2, as the performance package.

With ``var_f = var(X beta)`` (n - 1 denominator, as R's ``var``), the
random-effect variance ``var_r = sum_k mean_i(z_ki' Sigma_k z_ki)`` (each
term's variance averaged over the rows' random-effect covariates: Johnson
2014's extension to random slopes, as ``insight::get_variance``) and the
residual variance ``var_e``:

* adjusted ICC ``var_r / (var_r + var_e)``, conditional ICC
  ``var_r / (var_f + var_r + var_e)``;
* marginal R2 ``var_f / (var_f + var_r + var_e)``, conditional R2
  ``(var_f + var_r) / (var_f + var_r + var_e)`` (Nakagawa, Johnson &
  Schielzeth 2017).

A random-effects term with one level per observation (an
observation-level random effect, the usual remedy for overdispersion) is
part of the residual, not of ``var_r``: ``var_e`` is the family's
distribution-specific variance plus those terms' variances (insight's
``var.dispersion``).

The distribution-specific variance is the family's (:func:`distribution_variance`):
``sigma^2`` for Gaussian models; for binomial and Poisson GLMMs the
distribution-specific variance on the link scale (Nakagawa et al. 2017,
as ``insight``'s ``var.distribution``): ``pi^2 / 3`` for the logit link, 1
for probit, ``pi^2 / 6`` for cloglog; for Poisson with the log link the
lognormal approximation ``log(1 + 1 / lambda)``, with ``lambda = exp(beta_0)``
the intercept of the null model ``y ~ 1 + (random part)`` refit by the
Laplace engine (insight's ``null_model``), and ``0.25`` for the square-root
link; for the negative binomial with the log link ``log(1 + 1 / lambda + 1 /
theta)``, the null model refit at the fit's shape theta (as insight's); for
the Gamma with the log link the delta method's ``sigma^2`` (the squared
coefficient of variation: glmer's dispersion, ``1 / shape`` for MAP and NUTS
fits), as insight's.

For posterior fits the same quantities are computed for every draw (the
Poisson null model's lambda is the Laplace estimate; the negative binomial's
is refit at the posterior mean shape, and each draw has its own shape); the
Series holds posterior means and ``.attrs["draws"]`` the draws.
"""

from __future__ import annotations

import warnings
import weakref
from dataclasses import replace

import numpy as np
import pandas as pd

from ..errors import HierlmError
from ..glmm.engine import check_glmm_control, optimize_glmm

#: distribution-specific variance of binomial links (Nakagawa et al. 2017, table 1)
_BINOMIAL_LINK_VARIANCE = {"logit": np.pi**2 / 3.0, "probit": 1.0, "cloglog": np.pi**2 / 6.0}


def observation_level(design) -> list[bool]:
    """Per term: one level per observation (insight's test: as many levels as rows)."""
    return [r.nlevels == design.n for r in design.remats]


def _components(design, beta, covs):
    """(var_f, var_r, var_olre) for arrays with a leading draws axis: beta (S, p), covs[k] (S, p_k, p_k).

    ``var_olre`` is the variance of the observation-level terms, which
    belongs to the residual.
    """
    eta = beta @ design.X.T  # (S, n)
    var_f = eta.var(axis=1, ddof=1) if design.n > 1 else np.zeros(beta.shape[0])
    var_r = np.zeros(beta.shape[0])
    var_olre = np.zeros(beta.shape[0])
    for r, S, olre in zip(design.remats, covs, observation_level(design)):
        # mean_i z_i' Sigma z_i = sum_ab Sigma_ab mean_i(z_ia z_ib)
        M = r.Xt.T @ r.Xt / design.n
        v = np.einsum("sab,ab->s", S, M)
        if olre:
            var_olre += v
        else:
            var_r += v
    return var_f, var_r, var_olre


#: fit -> its null model's intercept: icc() and r2() of one fit share one refit
_NULL_INTERCEPTS: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def null_model_intercept(fit, family=None) -> float:
    """Intercept of the null model ``y ~ 1 + (random part)`` of a GLMM, refit by
    the Laplace engine (insight's ``null_model`` for the lognormal approximation), with
    ``fit.family`` or ``family`` (a NUTS fit's negative binomial at its posterior mean shape)."""
    if fit in _NULL_INTERCEPTS:
        return _NULL_INTERCEPTS[fit]
    family = fit.family if family is None else family
    d = fit.design
    null = replace(d, X=np.ones((d.n, 1)), xnames=["(Intercept)"])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the null model's own convergence notes are not the user's
        # no Hessian: only beta_0 is used; a family parameter (the negative binomial's shape)
        # stays at the fit's value, as insight's null model (an update of the glmerMod) keeps it
        control = check_glmm_control({"calc_derivs": False})
        b0 = float(optimize_glmm(null, family, 1, control).beta[0])
    _NULL_INTERCEPTS[fit] = b0
    return b0


def distribution_variance(fit, sigma: np.ndarray) -> np.ndarray:
    """The residual (distribution-specific) variance of ``fit``'s family on the link scale.

    Parameters
    ----------
    fit : MixedFit
    sigma : numpy.ndarray
        Residual SD per draw (Gaussian models).

    Raises
    ------
    HierlmError
        For a family and link with no distribution-specific variance (the
        binomial cauchit and log links, the Poisson identity link).
    """
    fam = fit.family
    if fam.is_gaussian:
        return sigma**2
    if (fam.name == "binomial" or fam.name == "ordinal") and fam.link in _BINOMIAL_LINK_VARIANCE:
        # an ordinal model's latent variable has the variance of its link's distribution,
        # as a binary one's (performance / insight for clmm: pi^2 / 3 for logit, 1 for probit)
        return np.full(sigma.shape, _BINOMIAL_LINK_VARIANCE[fam.link])
    if fam.name == "poisson" and fam.link == "log":
        lam = np.exp(null_model_intercept(fit))
        return np.full(sigma.shape, np.log1p(1.0 / lam))
    if fam.name == "poisson" and fam.link == "sqrt":
        return np.full(sigma.shape, 0.25)
    if fam.name == "negbinomial" and fam.link == "log" and getattr(fit, "is_posterior", False):
        # per draw, with that draw's shape; the null model's mean from its Laplace refit at the
        # posterior mean shape (as the Poisson's lambda is the Laplace estimate)
        shape = fit.draws("shape").ravel()
        lam = np.exp(null_model_intercept(fit, fam.with_params(theta=float(np.mean(shape)))))
        return np.log1p(1.0 / lam + 1.0 / shape)
    if fam.name == "negbinomial" and fam.link == "log":
        # the lognormal approximation with the NB variance mu + mu^2 / theta: log(1 + 1/mu + 1/theta)
        # (insight's, with mu from the null model at the fit's theta)
        lam = np.exp(null_model_intercept(fit))
        return np.full(sigma.shape, np.log1p(1.0 / lam + 1.0 / fam.dist.theta))
    if fam.name == "gamma" and fam.link == "log":
        # the delta method's variance of log y: the squared coefficient of variation, sigma^2
        # (glmer's dispersion; 1 / shape for MAP and NUTS fits), insight's var.distribution
        return sigma**2
    if fam.name == "gamma":
        raise HierlmError(f"ICC and R2 of a Gamma model are available for the log link (the delta method's "
                          f"sigma^2 on the log scale), not the {fam.link} link: its link-scale variances have no "
                          "distribution-specific variance to compare with; refit with link='log'")
    if fam.name in ("negbinomial", "beta", "student"):
        raise HierlmError(
            f"ICC and R2 of {fam.name} models are not available yet (their distribution-specific variance "
            "is not implemented); they are available "
            "for Gaussian models, the logit, probit and cloglog binomial links and the log and sqrt Poisson links")
    raise HierlmError(
        f"no distribution-specific variance for the {fam.name} family with the {fam.link} link "
        "(performance has none either); ICC and R2 are available for the logit, probit and cloglog "
        "binomial links and the log and sqrt Poisson links"
    )


def _decompose(fit):
    """(var_f, var_r, var_e) per draw, and whether they are posterior draws."""
    fit.require_rows("icc() and r2() (the variance of the predictions over the rows)")
    beta, covs, sigma = fit.parameter_draws()
    vf, vr, v_olre = _components(fit.design, beta, covs)
    return (vf, vr, distribution_variance(fit, sigma) + v_olre), fit.is_posterior


def _series(values: dict, draws: bool) -> pd.Series:
    out = pd.Series({k: float(np.mean(v)) for k, v in values.items()})
    if draws:
        out.attrs["draws"] = pd.DataFrame(values)
    return out


def icc(fit) -> pd.Series:
    """Intraclass correlation, as ``performance::icc``.

    Parameters
    ----------
    fit : MixedFit
        Any fit: REML/ML, Laplace, MAP or posterior; Gaussian, binomial or Poisson.

    Returns
    -------
    pandas.Series
        ``adjusted`` (random-effect share of the variance not explained by
        the fixed effects) and ``conditional`` (share of the total).  For
        posterior fits, posterior means; the draws in ``.attrs["draws"]``.
    """
    (vf, vr, ve), draws = _decompose(fit)
    return _series({"adjusted": vr / (vr + ve), "conditional": vr / (vf + vr + ve)}, draws)


def r2(fit) -> pd.Series:
    """Nakagawa's R2 for mixed models, as ``performance::r2_nakagawa``.

    Parameters
    ----------
    fit : MixedFit

    Returns
    -------
    pandas.Series
        ``marginal`` (fixed effects' share of the variance) and
        ``conditional`` (fixed and random effects' share).  For posterior
        fits, posterior means; the draws in ``.attrs["draws"]``.
    """
    (vf, vr, ve), draws = _decompose(fit)
    tot = vf + vr + ve
    return _series({"marginal": vf / tot, "conditional": (vf + vr) / tot}, draws)


def variance_components(fit) -> pd.Series:
    """The pieces of :func:`icc` and :func:`r2`, as ``insight::get_variance``:
    ``var_fixed``, ``var_random``, ``var_residual`` (posterior means for posterior fits)."""
    (vf, vr, ve), draws = _decompose(fit)
    return _series({"var_fixed": vf, "var_random": vr, "var_residual": ve}, draws)
