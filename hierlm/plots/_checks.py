"""The diagnostic panels of the lme4 tutorials."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

from ._common import (
    NOPOOL_COLOR,
    PARTIAL_COLOR,
    PlotError,
    _group_columns,
    _groups,
    _is_numeric,
    _is_posterior,
    _lowess,
    _pyplot,
    _qq,
)
from ._glmm import is_glmm, link_label, mean_name, randomized_quantile_residuals


def diagnostics(fit, covariate=None, *, smoother: bool = True, label_n: int = 3, seed=0, figsize=None):
    """Diagnostic panels of the lme4 tutorials.

    Pearson residuals (residual / sigma) against fitted values
    (Tukey-Anscombe) with a smoother, their normal QQ plot, the
    scale-location plot (sqrt |Pearson residual| against fitted), a normal QQ
    plot of each random effect's conditional modes (posterior means) and,
    with ``covariate``, residuals against that column.

    For binomial and Poisson fits the fitted values are the means on the
    response scale (proportion, count), residuals vs fitted and
    scale-location show Pearson residuals, and the residual QQ plot shows
    randomized quantile residuals (Dunn & Smyth 1996), which are N(0, 1)
    under the model even for 0/1 data; the random effects are on the link
    scale.  Each panel's title names its residuals.

    Parameters
    ----------
    fit : LMMFit, MAPFit or BayesFit
    covariate : str or list of str, optional
        Column(s) of the data (in the model or not) to plot residuals
        against: a scatter with a smoother, or boxes for a factor.
    smoother : bool
        Draw a local linear smoother (gid ``"smoother"``).
    label_n : int
        Label the rows with the largest absolute residuals.
    seed : int or numpy.random.Generator
        Randomization of the randomized quantile residuals (GLMMs only).
    figsize : tuple, optional

    Returns
    -------
    matplotlib.figure.Figure
    """
    d = fit.design
    covs = [] if covariate is None else ([covariate] if isinstance(covariate, str) else list(covariate))
    data = fit.model.data.iloc[d.prepared.rows]
    for c in covs:
        if c not in data.columns:
            raise PlotError(f"diagnostics: covariate {c!r} is not a column of the data; columns: "
                            f"{[str(x) for x in data.columns]}")
    glmm = is_glmm(fit)
    ordinal = fit.family.dist.eta_is_mean
    if ordinal:
        # no numeric residual: randomized quantile residuals in every panel, against the
        # linear predictor (the latent scale the thresholds cut)
        fitted = fit.fitted("link").to_numpy()
        res = randomized_quantile_residuals(fit, seed)
        fitted_label = f"linear predictor ({link_label(fit)})"
        rname = "quantile residual"
    else:
        fitted = fit.fitted().to_numpy()
        # Pearson residuals in units of sigma (lme4's residuals(type="pearson", scaled=TRUE))
        res = fit.residuals(type="pearson", scaled=True).to_numpy()
        # GLMMs: fitted means on the response scale; the QQ plot uses randomized
        # quantile residuals (N(0, 1) under the model, unlike Pearson residuals)
        fitted_label = f"fitted mean ({mean_name(fit)}, response scale)" if glmm else "fitted value"
        rname = "Pearson residual"
    qq_res = res if ordinal else randomized_quantile_residuals(fit, seed) if glmm else res
    index = fit.fitted().index
    re_panels = [(g, k, j, c) for g in _groups(fit) for k, j, c in _group_columns(fit, g)]
    npanel = 3 + len(re_panels) + len(covs)
    ncols = 3 if npanel > 4 else 2
    nrows = math.ceil(npanel / ncols)
    plt = _pyplot()
    fig, axes = plt.subplots(nrows, ncols, figsize=figsize or (4.2 * ncols, 3.4 * nrows), layout="constrained",
                             squeeze=False)
    axes = list(axes.ravel())
    for extra in axes[npanel:]:
        fig.delaxes(extra)
    small = dict(s=10, alpha=0.55, color=PARTIAL_COLOR)

    def smooth(axi, x, y):
        if smoother:
            sm = _lowess(x, y)
            if sm is not None:
                axi.plot(*sm, color=NOPOOL_COLOR, lw=1.8, gid="smoother", label="smoother (local linear)")

    # residuals vs fitted
    ax = axes[0]
    ax.scatter(fitted, res, gid="residual-point", **small)
    ax.axhline(0, color="0.3", lw=0.8, ls="--")
    smooth(ax, fitted, res)
    for i in np.argsort(-np.abs(res))[:label_n]:
        ax.annotate(str(index[i]), (fitted[i], res[i]), xytext=(3, 2), textcoords="offset points", fontsize=7)
    ax.set_xlabel(fitted_label)
    ax.set_ylabel(rname)
    ax.set_title(f"{rname[0].upper() + rname[1:]}s vs fitted" if glmm else "Residuals vs fitted", fontsize=10)
    if smoother:
        ax.legend(fontsize=7, loc="best")
    # QQ of residuals
    ax = axes[1]
    _qq(ax, qq_res)
    if glmm:
        ax.set_ylabel(f"randomized quantile residual (seed {seed})")
        ax.set_title("Normal QQ plot of randomized quantile residuals", fontsize=10)
    else:
        ax.set_ylabel("Pearson residual")
        ax.set_title("Normal QQ plot of residuals", fontsize=10)
    # scale-location
    ax = axes[2]
    sl = np.sqrt(np.abs(res))
    ax.scatter(fitted, sl, gid="scale-location-point", **small)
    smooth(ax, fitted, sl)
    ax.set_xlabel(fitted_label)
    ax.set_ylabel(f"√|{rname}|")
    ax.set_title(f"Scale-location ({rname}s)" if glmm else "Scale-location", fontsize=10)
    # random effects
    what = "posterior mean" if _is_posterior(fit) else "conditional mode"
    for p, (g, k, j, c) in enumerate(re_panels):
        ax = axes[3 + p]
        _qq(ax, fit.b[k][:, j], color=NOPOOL_COLOR, gid="ranef-qq-point")
        ax.set_ylabel(f"{what} of {c}" + (f" ({link_label(fit)})" if glmm else ""))
        ax.set_title(f"Normal QQ: random effects {g}: {c}", fontsize=10)
    # residuals vs covariates
    for p, c in enumerate(covs):
        ax = axes[3 + len(re_panels) + p]
        col = data[c]
        if _is_numeric(col):
            x = col.to_numpy(dtype=float)
            ax.scatter(x, res, gid="residual-point", **small)
            smooth(ax, x, res)
        else:
            cats = pd.unique(col.dropna())
            if isinstance(col.dtype, pd.CategoricalDtype):
                cats = [v for v in col.cat.categories if v in set(cats)]
            groups = [res[np.asarray(col == v)] for v in cats]
            ax.boxplot(groups)
            # labels set here: boxplot's own keyword changed name in matplotlib 3.9
            ax.set_xticks(np.arange(1, len(cats) + 1), [str(v) for v in cats])
            if len(cats) > 8:
                ax.tick_params(axis="x", labelrotation=90, labelsize=7)
        ax.axhline(0, color="0.3", lw=0.8, ls="--")
        ax.set_xlabel(str(c))
        ax.set_ylabel(rname)
        ax.set_title(f"Residuals vs {c}", fontsize=10)
    fig.suptitle(f"Diagnostics of {fit.formula} ({fit.fit_label})", fontsize=11)
    return fig
