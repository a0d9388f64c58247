"""Per-group fits (``hierlm.lmlist``) beside the mixed model: no pooling vs partial pooling."""

from __future__ import annotations

import numpy as np
from scipy import stats

from ._common import NOPOOL_COLOR, PARTIAL_COLOR, POP_COLOR, PlotError, _pyplot


def lmlist(lml, fit=None, terms=None, *, interval: float = 0.95, figsize=None):
    """Each group's own least-squares coefficients with their intervals
    (pooled SD, as lme4's ``lmList``), and, given the mixed model, its
    coefficients for the same groups and its population value.

    Parameters
    ----------
    lml : hierlm.inference.lmlist.LmList
    fit : a fit of the same grouping factor, optional
        Adds its ``coef()`` (partial pooling) and ``fixef`` (population).
    terms : list of str, optional
        Coefficients to draw (default: all).
    interval : float
    figsize : tuple, optional

    Returns
    -------
    matplotlib.figure.Figure
    """
    plt = _pyplot()
    names = list(lml.coef.columns) if terms is None else list(terms)
    unknown = [t for t in names if t not in lml.coef.columns]
    if unknown:
        raise PlotError(f"lmlist plot: no coefficient {unknown[0]!r}; the fits have {list(lml.coef.columns)}")
    partial = None
    if fit is not None:
        co = fit.coef()
        if lml.group not in co:
            raise PlotError(f"lmlist plot: the fit has no grouping factor {lml.group!r} (it has {list(co)})")
        partial = co[lml.group]
    q = stats.t.ppf(0.5 + interval / 2, lml.df)
    fig, axes = plt.subplots(1, len(names), figsize=figsize or (3.6 * len(names), 0.22 * len(lml.coef) + 1.6),
                             sharey=True, squeeze=False)
    order = lml.coef[names[0]].sort_values(na_position="first").index
    y = np.arange(len(order))
    for ax, t in zip(axes[0], names):
        est, se = lml.coef.loc[order, t].to_numpy(), lml.se.loc[order, t].to_numpy()
        ax.errorbar(est, y, xerr=q * se, fmt="o", color=NOPOOL_COLOR, ms=4, lw=1,
                    label=f"no pooling (own fit, {interval:.0%})")
        if partial is not None and t in partial:
            ax.plot(partial.reindex(order)[t].to_numpy(), y, "D", color=PARTIAL_COLOR, ms=4,
                    label="partial pooling (mixed model)")
            if t in fit.fixef.index:
                ax.axvline(fit.fixef[t], color=POP_COLOR, lw=1, ls="--", label="population (fixed effect)")
        ax.set_title(t, fontsize=10)
        ax.grid(axis="x", alpha=0.3)
    axes[0][0].set_yticks(y, [str(g) for g in order], fontsize=7)
    axes[0][0].set_ylabel(lml.group)
    axes[0][-1].legend(fontsize=7, loc="best")
    fig.tight_layout()
    return fig
