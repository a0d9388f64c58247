"""Variance decomposition: ICC and Nakagawa's R2, as the performance package.

With ``var_f = var(X beta)`` (n - 1 denominator, as R's ``var``), the
random-effect variance ``var_r = sum_k mean_i(z_ki' Sigma_k z_ki)`` (each
term's variance averaged over the rows' random-effect covariates: Johnson
2014's extension to random slopes, as ``insight::get_variance``) and the
residual variance ``var_e = sigma^2``:

* adjusted ICC ``var_r / (var_r + var_e)``, conditional ICC
  ``var_r / (var_f + var_r + var_e)``;
* marginal R2 ``var_f / (var_f + var_r + var_e)``, conditional R2
  ``(var_f + var_r) / (var_f + var_r + var_e)`` (Nakagawa, Johnson &
  Schielzeth 2017).

For posterior fits the same quantities are computed for every draw; the
Series holds posterior means and ``.attrs["draws"]`` the draws.
"""

from __future__ import annotations

import numpy as np
import pandas as pd


def _components(design, beta, covs, sigma):
    """(var_f, var_r, var_e) for arrays with a leading draws axis.

    beta (S, p), covs[k] (S, p_k, p_k), sigma (S,).
    """
    eta = beta @ design.X.T  # (S, n)
    var_f = eta.var(axis=1, ddof=1) if design.n > 1 else np.zeros(len(sigma))
    var_r = np.zeros(len(sigma))
    for r, S in zip(design.remats, covs):
        # mean_i z_i' Sigma z_i = sum_ab Sigma_ab mean_i(z_ia z_ib)
        M = r.Xt.T @ r.Xt / design.n
        var_r += np.einsum("sab,ab->s", S, M)
    return var_f, var_r, sigma**2


def _point_or_draws(fit):
    from ..bayes.results import BayesFit

    if isinstance(fit, BayesFit):
        post = fit.idata.posterior
        beta = fit.draws("fixef")
        sigma = fit.draws("sigma")
        covs = []
        for t, r in zip(fit.terms, fit.design.remats):
            sd = fit.draws(f"sd_{t}").reshape(-1, r.p)
            C = fit.draws(f"corr_{t}") if f"corr_{t}" in post else np.ones((len(sd), 1, 1))
            covs.append(sd[:, :, None] * C * sd[:, None, :])
        return _components(fit.design, beta, covs, sigma), True
    covs = [S[None] for S in fit._covariances()]
    return _components(fit.design, fit.fixef.to_numpy()[None], covs, np.array([fit.sigma])), False


def _series(values: dict, draws: bool) -> pd.Series:
    out = pd.Series({k: float(np.mean(v)) for k, v in values.items()})
    if draws:
        out.attrs["draws"] = pd.DataFrame(values)
    return out


def icc(fit) -> pd.Series:
    """Intraclass correlation, as ``performance::icc``.

    Returns
    -------
    pandas.Series
        ``adjusted`` (random-effect share of the variance not explained by
        the fixed effects) and ``conditional`` (share of the total).  For
        posterior fits, posterior means; the draws in ``.attrs["draws"]``.
    """
    (vf, vr, ve), draws = _point_or_draws(fit)
    return _series({"adjusted": vr / (vr + ve), "conditional": vr / (vf + vr + ve)}, draws)


def r2(fit) -> pd.Series:
    """Nakagawa's R2 for mixed models, as ``performance::r2_nakagawa``.

    Returns
    -------
    pandas.Series
        ``marginal`` (fixed effects' share of the variance) and
        ``conditional`` (fixed and random effects' share).  For posterior
        fits, posterior means; the draws in ``.attrs["draws"]``.
    """
    (vf, vr, ve), draws = _point_or_draws(fit)
    tot = vf + vr + ve
    return _series({"marginal": vf / tot, "conditional": (vf + vr) / tot}, draws)
