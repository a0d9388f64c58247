"""Plots for teaching partial pooling and for checking mixed models.

Every function takes a fit (REML, ML, MAP or NUTS) and returns the
:class:`matplotlib.figure.Figure` it drew on; the one-panel plots also take
``ax=``.  ``fit.plot(kind, **kw)`` calls the function named ``kind``.

=================  =============================================================
``shrinkage``      no pooling -> partial pooling arrows per group (1-D or 2-D)
``caterpillar``    conditional modes (or posterior means) with 95% intervals
``qqcaterpillar``  the same against normal quantiles (many levels, normality)
``diagnostics``    residuals vs fitted, QQ plots, scale-location, random effects
``facets``         data and fitted lines per group, with the population line
``predictions``    marginal and conditional predictions with intervals
``forest``         posterior intervals of fixed effects, SDs, correlations
``ppc``            posterior predictive check (ArviZ ``plot_ppc``)
``trace``          trace (or rank) plots of the posterior (ArviZ)
``rank``           rank plots of the posterior (ArviZ ``plot_rank``)
``ridge``          densities of the variance components (posterior or bootstrap)
=================  =============================================================

The last five need a posterior sample (``Model(...).fit("nuts")``);
``ridge(hierlm.boot_mer(...))`` draws a bootstrap's replicates instead.
``prior_predictive(model)`` (``model.plot_prior_predictive()``) takes the
model instead: data simulated from its priors against the data;
``lmlist(hierlm.lmlist(...), fit)`` the per-group fits beside the mixed
model.
matplotlib is imported only when a plot is drawn, so ``import hierlm``
stays light; no backend is chosen here (the command line and the tests use
Agg).
"""

from __future__ import annotations

from ._checks import diagnostics
from ._common import KINDS, POSTERIOR_KINDS, PlotError, available
from ._effects import caterpillar, facets, predictions, qqcaterpillar
from ._lmlist import lmlist
from ._pooling import pooling_estimates, shrinkage
from ._posterior import forest, posterior_predictive, ppc, prior_predictive, rank, ridge, trace

__all__ = [
    "KINDS", "POSTERIOR_KINDS", "PlotError", "available", "caterpillar", "diagnostics", "facets", "forest",
    "lmlist", "plot", "pooling_estimates", "posterior_predictive", "ppc", "predictions", "prior_predictive",
    "qqcaterpillar", "rank", "ridge", "shrinkage",
    "trace",
]


# ---------------------------------------------------------------------------
# dispatch
# ---------------------------------------------------------------------------
def plot(fit, kind: str, **kw):
    """Draw the plot named ``kind`` (one of :data:`KINDS`) for ``fit``.

    ``kw`` go to the function of that name.  Returns the Figure.
    """
    funcs = {"shrinkage": shrinkage, "caterpillar": caterpillar, "qqcaterpillar": qqcaterpillar,
             "diagnostics": diagnostics, "facets": facets,
             "predictions": predictions, "forest": forest, "ppc": ppc, "trace": trace, "rank": rank,
             "ridge": ridge}
    if kind not in funcs:
        raise PlotError(f"unknown plot kind {kind!r}; valid kinds: {', '.join(KINDS)} "
                        f"(for this fit: {', '.join(available(fit))})")
    if kind not in ("caterpillar", "qqcaterpillar"):  # the others draw the data or its residuals
        fit.require_rows(f"the {kind!r} plot")
    return funcs[kind](fit, **kw)
