"""Random effects and fitted values: caterpillar, per-group facets, predictions."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

from ._common import (
    HIGHLIGHT_COLOR,
    NOPOOL_COLOR,
    PARTIAL_COLOR,
    POP_COLOR,
    PlotError,
    _check_interval,
    _check_x,
    _ci_label,
    _default_x,
    _fixed_columns,
    _grid_frame,
    _group_columns,
    _group_factors,
    _group_level_columns,
    _groups,
    _is_numeric,
    _is_posterior,
    _level_values,
    _linear_only,
    _new_rows,
    _new_figure,
    _predict_band,
    _pyplot,
    _resolve_group,
    _response_name,
    _template,
    _term_names,
    _x_terms,
    _z,
)
from ._glmm import is_glmm, link_label, mean_name, observations
from ._pooling import _Pooling


def _observed(fit) -> np.ndarray:
    """The data on the response scale: y (Gaussian), the observed proportion
    (binomial) or count per unit of exposure (Poisson with an offset)."""
    if not is_glmm(fit):
        return fit.design.y
    y, _, _, off = observations(fit)
    if fit.family.dist.eta_is_mean:  # ordinal: categories numbered 1..K
        return y + 1.0
    if fit.family.name == "poisson" and np.any(off != 0) and fit.family.link == "log":
        return y / np.exp(off)
    return y


def _to_response(fit, vals):
    """Linear predictor -> mean (GLMMs); unchanged for Gaussian fits."""
    return fit.family.mean(np.asarray(vals, dtype=float)) if is_glmm(fit) else vals


def _y_name(fit) -> str:
    return mean_name(fit) if is_glmm(fit) else _response_name(fit)


def _ranef_limits(fit, group: str, interval: float):
    """Per level x column of ``group``: estimate, lower, upper (random effects only)."""
    cols = _group_columns(fit, group)
    est = np.column_stack([fit.b[k][:, j] for k, j, _ in cols])
    if _is_posterior(fit):
        names = _term_names(fit)
        draws = np.stack([fit.draws(f"ranef_{names[k]}")[:, :, j] for k, j, _ in cols], axis=2)
        lo, hi = np.quantile(draws, [0.5 - interval / 2, 0.5 + interval / 2], axis=0)
        return est, lo, hi
    z = _z(interval)
    sd = np.column_stack([np.sqrt(fit.condvar[k][:, j, j]) for k, j, _ in cols])
    return est, est - z * sd, est + z * sd


def _effects_with_intervals(ax, e, y, lo, hi, highlight: bool, gid: str, bar: str, size: float) -> np.ndarray:
    """Points ``e`` at heights ``y`` with horizontal intervals; those whose interval
    excludes 0 highlighted (and counted in the legend).  Returns that mask."""
    off = (lo > 0) | (hi < 0) if highlight else np.zeros(len(e), dtype=bool)
    bars = ax.errorbar(e, y, xerr=[e - lo, hi - e], fmt="none", ecolor=bar, lw=1, gid=f"{gid}-interval")
    bars[2][0].set_color(np.where(off, HIGHLIGHT_COLOR, bar))
    ax.scatter(e, y, s=size, color=np.where(off, HIGHLIGHT_COLOR, PARTIAL_COLOR), zorder=3, gid=f"{gid}-point")
    if off.any():
        ax.scatter([], [], s=size, color=HIGHLIGHT_COLOR, label=f"interval excludes 0: {off.sum()} level(s)")
    return off


def _ranef_panels(fit, group, terms, what: str) -> list[tuple[str, list[str]]]:
    """(grouping factor, its random-effect columns to draw) per panel group."""
    groups = _groups(fit) if group is None else [_resolve_group(fit, group, what)]
    panels = []
    for g in groups:
        names = [c for _, _, c in _group_columns(fit, g)]
        want = names if terms is None else ([terms] if isinstance(terms, str) else list(terms))
        bad = [t for t in want if t not in names]
        if bad and group is not None:
            raise PlotError(f"{what}: {bad[0]!r} is not a random effect of {g!r}; its terms are {names}")
        want = [t for t in want if t in names]
        if want:
            panels.append((g, want))
    if not panels:
        raise PlotError(f"{what}: no grouping factor has the term(s) {terms!r}")
    return panels


def qqcaterpillar(fit, group: str | None = None, terms=None, *, interval: float = 0.95, highlight: bool = True,
                  label: int = 3, figsize=None):
    """QQ caterpillar: each level's random effect with its interval against
    the standard normal quantile of its rank (MixedModelsMakie's
    ``qqcaterpillar``).

    The model assumes the effects are normal: then the points lie near a
    straight line through the origin whose slope is the term's SD; heavy
    tails or outlying levels bend away from it.  Unlike the caterpillar
    plot it stays readable with hundreds of levels.

    Parameters
    ----------
    fit : LMMFit, GLMMFit, MAPFit or BayesFit
    group : str, optional
        Grouping factor; default every one.
    terms : str or list of str, optional
        Columns of the group's random effects to draw (default all).
    interval : float
    highlight : bool
        Colour the levels whose interval excludes 0.
    label : int
        Name the ``label`` lowest and highest levels (0: none).
    figsize : tuple, optional

    Returns
    -------
    matplotlib.figure.Figure
        One panel per (group, term); the points are a scatter with gid
        ``"qqcaterpillar-point"``, the reference line ``"qqcaterpillar-line"``.
    """
    from scipy import stats

    interval = _check_interval(interval)
    panels = _ranef_panels(fit, group, terms, "qqcaterpillar")
    npanel = sum(len(w) for _, w in panels)
    plt = _pyplot()
    fig, axes = plt.subplots(1, npanel, figsize=figsize or (max(4.6, 3.8 * npanel + 0.6), 4.4),
                             layout="constrained", squeeze=False)
    axes = list(axes[0])
    what = "posterior mean" if _is_posterior(fit) else "conditional mode"
    sds = fit.varcorr
    a = 0
    for g, want in panels:
        cols = _group_columns(fit, g)
        names = [c for _, _, c in cols]
        est, lo, hi = _ranef_limits(fit, g, interval)
        levels = fit.design.remats[cols[0][0]].levels
        L = len(levels)
        aa = 3.0 / 8.0 if L <= 10 else 0.5  # R's ppoints
        q = stats.norm.ppf((np.arange(1, L + 1) - aa) / (L + 1 - 2 * aa))
        for t in want:
            ax = axes[a]
            j = names.index(t)
            order = np.argsort(est[:, j], kind="stable")
            e = est[order, j]
            _effects_with_intervals(ax, e, q, lo[order, j], hi[order, j], highlight, "qqcaterpillar", bar="0.6",
                                    size=12)
            k, _, _ = cols[j]
            term = fit.term_names[k]
            row = sds[(sds["group"] == term) & (sds["var1"] == t) & sds["var2"].isna()]
            sd = float(row["sdcor"].iloc[0]) if len(row) else np.nan
            if np.isfinite(sd) and sd > 0:
                zz = np.array([q[0], q[-1]])
                ax.plot(zz * sd, zz, color=POP_COLOR, lw=1, ls="--", gid="qqcaterpillar-line",
                        label=f"normal with the estimated SD ({sd:.3g})")
            for i in list(range(min(label, L))) + list(range(max(L - label, min(label, L)), L)):
                ax.annotate(str(levels[order[i]]), (e[i], q[i]), fontsize=7, xytext=(4, 0),
                            textcoords="offset points", va="center")
            ax.axvline(0, color="0.3", lw=0.8, ls=":")
            ax.set_title(f"{g}: {t} ({L} levels)", fontsize=10)
            ax.set_xlabel(f"{what} ({_ci_label(interval)} interval)"
                          + (f"\n{link_label(fit)}" if is_glmm(fit) else ""))
            if a == 0:
                ax.set_ylabel("standard normal quantile")
            ax.legend(loc="upper left", fontsize=8, frameon=False)
            ax.grid(alpha=0.3)
            a += 1
    return fig


def caterpillar(fit, group: str | None = None, terms=None, *, interval: float = 0.95, sort: bool = True,
                top: int | None = None, extremes: int | None = None, highlight: bool = True,
                ax=None, figsize=None):
    """Caterpillar plot: each level's random effect with its interval, sorted.

    The conditional modes with ``interval`` intervals from the conditional
    SDs (lme4's ``dotplot(ranef(m, condVar = TRUE))``) for REML/ML/MAP fits;
    posterior means and equal-tailed posterior intervals for NUTS fits.
    Levels whose interval excludes 0 are highlighted (as merTools'
    ``plotREsim``).  With many levels, ``top=`` or ``extremes=`` keep the
    plot readable.

    Parameters
    ----------
    fit : LMMFit, MAPFit or BayesFit
    group : str, optional
        Grouping factor; default: one panel per term of every grouping factor.
    terms : str or list of str, optional
        Columns of the group's random effects to draw (default all).
    interval : float
    sort : bool
        Order levels by the first term's estimate (the same order in the
        group's other panels, as lme4 does).
    top : int, optional
        Draw only the ``top`` levels with the largest absolute estimate of
        the first term drawn.
    extremes : int, optional
        Draw only the ``extremes`` lowest and ``extremes`` highest levels
        (by the first term), with a dotted line where the others were left out.
    highlight : bool
        Colour the levels whose interval excludes 0.
    ax : matplotlib.axes.Axes, optional
        Only when one panel is drawn.
    figsize : tuple, optional

    Returns
    -------
    matplotlib.figure.Figure
        One panel per (group, term); the points are a scatter with gid
        ``"caterpillar-point"``, highlighted ones in another colour.
    """
    interval = _check_interval(interval)
    panels = _ranef_panels(fit, group, terms, "caterpillar")
    if top is not None and extremes is not None:
        raise PlotError("caterpillar: give top= or extremes=, not both")
    for name, v in (("top", top), ("extremes", extremes)):
        if v is not None and (isinstance(v, bool) or not isinstance(v, (int, np.integer)) or v < 1):
            raise PlotError(f"caterpillar: {name}= must be a positive whole number of levels, not {v!r}")
    npanel = sum(len(w) for _, w in panels)
    if ax is not None and npanel != 1:
        raise PlotError(f"caterpillar: ax= needs exactly one panel, but {npanel} are drawn; pick group= and terms=")
    cap = top if top is not None else (2 * extremes if extremes is not None else None)
    maxL = max(fit.ngroups[g] if cap is None else min(cap, fit.ngroups[g]) for g, _ in panels)
    plt = _pyplot()
    if ax is None:
        if figsize is None:
            figsize = (max(4.6, 3.4 * npanel + 1.0), min(max(3.0, 0.2 * maxL + 1.4), 16))
        fig, axes = plt.subplots(1, npanel, figsize=figsize, layout="constrained", squeeze=False)
        axes = list(axes[0])
    else:
        fig, axes = ax.figure, [ax]
    what = "posterior mean" if _is_posterior(fit) else "conditional mode"
    a = 0
    for g, want in panels:
        names = [c for _, _, c in _group_columns(fit, g)]
        est, lo, hi = _ranef_limits(fit, g, interval)
        levels = fit.design.remats[_group_columns(fit, g)[0][0]].levels
        first = est[:, names.index(want[0])]
        order = np.argsort(first, kind="stable") if sort else np.arange(len(levels))
        gap = None
        if extremes is not None and 2 * extremes < len(order):
            by_est = np.argsort(first, kind="stable")
            keep = set(by_est[:extremes]) | set(by_est[-extremes:])
            order = np.array([i for i in order if i in keep])
            if sort:
                gap = extremes - 0.5
        elif top is not None and top < len(order):
            keep = set(np.argsort(np.abs(first), kind="stable")[-top:])
            order = np.array([i for i in order if i in keep])
        L = len(order)
        shown = "" if L == len(levels) else f" ({L} of {len(levels)} levels)"
        first_ax = axes[a]
        for t in want:
            axi = axes[a]
            j = names.index(t)
            y = np.arange(L)
            off = _effects_with_intervals(axi, est[order, j], y, lo[order, j], hi[order, j], highlight,
                                          "caterpillar", bar="0.45", size=14)
            if gap is not None:
                axi.axhline(gap, color="0.5", lw=0.8, ls=":", gid="caterpillar-gap")
            axi.axvline(0, color="0.3", lw=0.8, ls="--")
            axi.set_title(f"{g}: {t}{shown}", fontsize=10)
            if off.any():
                axi.legend(loc="lower right", fontsize=8, frameon=False)
            axi.set_xlabel(f"{what} ({_ci_label(interval)} interval)"
                           + (f"\n{link_label(fit)}" if is_glmm(fit) else ""))
            axi.set_ylim(-0.7, L - 0.3)
            if axi is first_ax:
                if L <= 70:
                    axi.set_yticks(y)
                    axi.set_yticklabels([str(levels[i]) for i in order], fontsize=8 if L > 25 else 9)
                else:
                    axi.set_yticks([])
                axi.set_ylabel(g)
            else:
                axi.sharey(first_ax)
                axi.tick_params(labelleft=False)
            axi.grid(axis="x", alpha=0.3)
            a += 1
    return fig


def _pooling_lines(fit, group: str, frame, xk: list[int], chosen: list[int], G: int):
    """No-pooling and complete-pooling lines of each chosen level (rows of ``frame``,
    ``G`` per level): the model's population line with the group's coefficients
    replaced by the group's own fit, or by the one regression ignoring the groups
    (:class:`~hierlm.plots._pooling._Pooling`'s estimates), on the response scale."""
    pool = _Pooling(fit, group, 0.95)
    cols = _group_columns(fit, group)
    X, pieces = _new_rows(fit, frame, sorted({k for k, _, _ in cols} | set(xk)))
    by_term = {k: Xt for k, _, Xt in pieces}
    Z = np.column_stack([by_term[k][:, j] for k, j, _ in cols])
    beta = fit.fixef
    b_term = np.array([beta[c] if c in beta.index else 0.0 for c in pool.names])
    base = fit.linear_predictor(X, [t for t in pieces if t[0] in xk]) - Z @ b_term
    lev = np.repeat(np.asarray(chosen), G)
    nopool = base + np.einsum("np,np->n", Z, pool.nopool[lev])
    complete = base + Z @ pool.complete
    m = len(chosen)
    return (_to_response(fit, nopool).reshape(m, G), _to_response(fit, complete).reshape(m, G))


def _group_terms(fit, group: str) -> list[int]:
    """Terms whose level is fixed by a level of ``group``: its own and, for a
    nested factor such as ``batch:cask``, those of ``batch``."""
    own = _group_factors(fit, group)
    return [k for k, r in enumerate(fit.design.remats) if set(r.term.factors) <= own]


# ---------------------------------------------------------------------------
# facets
# ---------------------------------------------------------------------------
def facets(fit, x: str | None = None, group: str | None = None, *, levels=None, max_panels: int = 36,
           ncols: int | None = None, n_points: int = 40, pooling: bool = False, figsize=None):
    """Data and fitted lines for each group (the sleepstudy facet plot).

    In each panel: the group's data, its conditional fitted line (fixed
    effects plus the group's random effects) and the population line (fixed
    effects only).  A factor ``x`` gives points joined by lines; without
    ``x`` the data are a strip and the fits horizontal lines.  Covariates
    constant within each group (a piglet's treatment, a chick's diet) take
    the group's own values in both lines, so the population line is the
    marginal line of that group's treatment (named in the panel's title);
    other covariates are held at their means (factors at their most
    frequent level).  When ``x`` is itself a grouping factor, its random
    effects are part of both lines.

    Parameters
    ----------
    fit : LMMFit, MAPFit or BayesFit
    x : str, optional
        Covariate on the x axis; default the numeric variable of the group's
        random slope, else of the fixed effects, else another grouping factor.
    group : str, optional
        Grouping factor (one panel per level); default the first.
    levels : list, optional
        Levels to draw (default all, up to ``max_panels``).
    max_panels : int
    ncols : int, optional
    n_points : int
        Points on each line over a numeric ``x``.
    pooling : bool
        Draw the three lines teachers draw instead: complete pooling (one
        regression ignoring the groups, the same in every panel), no pooling
        (the group's own fit, as in :func:`shrinkage`) and partial pooling
        (the model's conditional line).
    figsize : tuple, optional

    Returns
    -------
    matplotlib.figure.Figure
        One axes per level drawn.
    """
    d = fit.design
    group = _resolve_group(fit, group, "facets")
    if x is None:
        x = _default_x(fit, group)
    if x is not None:
        x = _check_x(fit, x, "facets", group)
    r = next(r for r in d.remats if r.group == group)
    all_levels = list(r.levels)
    if levels is None:
        chosen = list(range(min(len(all_levels), max_panels)))
    else:
        lv = [str(v) for v in (levels if isinstance(levels, (list, tuple, np.ndarray, pd.Index)) else [levels])]
        bad = [v for v in lv if v not in all_levels]
        if bad:
            raise PlotError(f"facets: level(s) {bad[:5]} not in grouping factor {group!r} "
                            f"(levels {all_levels[:8]}{' ...' if len(all_levels) > 8 else ''})")
        chosen = [all_levels.index(v) for v in lv]
    m = len(chosen)
    if ncols is None:
        ncols = min(m, max(1, math.ceil(math.sqrt(1.5 * m))))
    nrows = math.ceil(m / ncols)
    plt = _pyplot()
    fig, axes = plt.subplots(nrows, ncols, figsize=figsize or (2.1 * ncols + 0.6, 1.9 * nrows + 1.0),
                             sharex=True, sharey=True, layout="constrained", squeeze=False)
    flat = list(axes.ravel())
    for extra in flat[m:]:
        fig.delaxes(extra)
    frame = d.prepared.frame
    xcol = frame[x] if x is not None else None
    numeric = xcol is not None and _is_numeric(xcol)
    if numeric:
        grid = np.linspace(float(xcol.min()), float(xcol.max()), n_points)
    elif xcol is not None:
        grid = [v for v in xcol.cat.categories if v in set(xcol)] if isinstance(xcol.dtype, pd.CategoricalDtype) \
            else list(pd.unique(xcol))
    else:
        grid = [0.0]
    xk = _x_terms(fit, x)
    keep_cond = sorted(set(_group_terms(fit, group)) | set(xk))
    pos_of = {v: i for i, v in enumerate(grid)} if not numeric and xcol is not None else None
    gx = grid if numeric else np.arange(len(grid), dtype=float)
    G = len(grid)
    # covariates constant within a group (a piglet's treatment) take the
    # group's own values in both of its lines; the population line is then
    # the marginal line of the group's treatment
    between = [c for c in _group_level_columns(fit, group) if c != x]
    # every panel's lines in two prediction calls
    over: dict = {}
    for lev in chosen:
        for c, v in _level_values(fit, group, lev, between).items():
            over.setdefault(c, []).extend([v] * G)
        if x is not None:
            over.setdefault(x, []).extend(grid)
    frame_all = _grid_frame(fit, m * G, over)
    conds = _to_response(fit, _linear_only(fit, frame_all, keep_cond)).reshape(m, G)
    pops = _to_response(fit, _linear_only(fit, frame_all, xk)).reshape(m, G)
    if pooling:
        nopools, completes = _pooling_lines(fit, group, frame_all, xk, chosen, G)
    fixed_between = [c for c in between if c in _fixed_columns(fit)]
    pop_label = "population (marginal)" if not fixed_between else \
        f"population (marginal, at the {group}'s {', '.join(fixed_between)})"
    yobs = _observed(fit)
    rng = np.random.default_rng(1)
    for p, lev in enumerate(chosen):
        ax = flat[p]
        rows = np.flatnonzero(r.codes == lev)
        if numeric:
            px = xcol.to_numpy(dtype=float)[rows]
        elif xcol is not None:
            px = np.array([pos_of[v] for v in xcol.iloc[rows]], dtype=float)
        else:
            px = rng.uniform(-0.25, 0.25, rows.size)
        cond, pop = conds[p], pops[p]
        ax.scatter(px, yobs[rows], s=10, color="0.25", alpha=0.8, gid="facet-data",
                   label="data (observed proportion)" if is_glmm(fit) and fit.family.name == "binomial" else "data")
        line = dict(marker="" if numeric or x is None else "o", ms=3)
        if x is None:
            ax.plot([-0.4, 0.4], [cond[0]] * 2, color=PARTIAL_COLOR, lw=1.8, gid="conditional-line",
                    label=f"{group} fit (conditional)")
            ax.plot([-0.4, 0.4], [pop[0]] * 2, color=POP_COLOR, ls="--", lw=1.2, gid="population-line",
                    label=pop_label)
        elif pooling:
            ax.plot(gx, completes[p], color="0.45", ls="--", lw=1.2, gid="complete-pooling-line",
                    label="complete pooling: one regression, groups ignored", **line)
            if np.all(np.isfinite(nopools[p])):
                ax.plot(gx, nopools[p], color=NOPOOL_COLOR, ls=":", lw=1.6, gid="no-pooling-line",
                        label=f"no pooling: the {group}'s own fit", **line)
            ax.plot(gx, cond, color=PARTIAL_COLOR, lw=1.8, gid="conditional-line",
                    label="partial pooling: the model", **line)
        else:
            ax.plot(gx, cond, color=PARTIAL_COLOR, lw=1.8, gid="conditional-line",
                    label=f"{group} fit (conditional)", **line)
            ax.plot(gx, pop, color=POP_COLOR, ls="--", lw=1.2, gid="population-line",
                    label=pop_label, **line)
        tag = "".join(f", {c} {over[c][p * G]}" for c in fixed_between)
        ax.set_title(f"{all_levels[lev]} (n={rows.size}{tag})", fontsize=8, pad=2)
        ax.tick_params(labelsize=7)
        if p % ncols == 0:
            ax.set_ylabel(_y_name(fit), fontsize=8)
        if p >= m - ncols:
            ax.set_xlabel(x if x is not None else "", fontsize=8)
            ax.tick_params(labelbottom=True)
        ax.grid(alpha=0.25)
    if not numeric and xcol is not None:
        flat[0].set_xticks(np.arange(len(grid)))
        flat[0].set_xticklabels([str(v) for v in grid])
    elif x is None:
        flat[0].set_xticks([])
    handles, labels = flat[0].get_legend_handles_labels()
    note = f" (first {m} of {len(all_levels)} levels; pass levels=)" if levels is None and m < len(all_levels) else ""
    scale = " (response scale)" if is_glmm(fit) else ""
    what = ("complete, no and partial pooling" if pooling else f"{group} fits and the population line")
    fig.suptitle(f"{_y_name(fit)} by {group}{scale}: data, {what}{note}", fontsize=10)
    fig.legend(handles, labels, loc="outside lower center", ncol=2 if pooling else 3, fontsize=8, frameon=False)
    return fig


# ---------------------------------------------------------------------------
# predictions
# ---------------------------------------------------------------------------
def predictions(fit, x: str | None = None, group: str | None = None, *, by: str | None = None, levels=None,
                interval: float = 0.95, predictive: bool = False, n_points: int = 50, data: bool = True, ax=None,
                figsize=None):
    """Predictions over a covariate with intervals: population and groups.

    The population (marginal) curve uses the fixed effects only; each
    group's (conditional) curve adds that group's random effects.  Posterior
    fits give equal-tailed intervals of the draws; other fits mean +- z SE
    from the fixed effects' covariance and the random effects' conditional
    variance (their covariance ignored).

    Parameters
    ----------
    fit : LMMFit, MAPFit or BayesFit
    x : str, optional
        Covariate on the x axis (see :func:`facets` for the default).
    group : str, optional
        Grouping factor of the conditional curves; default the first.
    by : str, optional
        A factor of the fixed part (a treatment): one population curve, with
        its band, per level, colour-coded, instead of one curve at the most
        frequent level.  Conditional curves are then drawn only for the
        ``levels`` given.
    levels : list, optional
        Levels to draw conditional curves for; default three: the lowest,
        middle and highest predicted at the middle of ``x``.  ``[]`` draws the
        population curve only.  Each group's curve uses its own values of
        the covariates constant within it (its treatment).
    interval : float
    predictive : bool
        Prediction intervals for new observations (adds the residual
        variance) instead of intervals for the mean.
    n_points : int
    data : bool
        Show the data (grey; the chosen groups' data in their colour).
    ax : matplotlib.axes.Axes, optional
    figsize : tuple, optional

    Returns
    -------
    matplotlib.figure.Figure
    """
    d = fit.design
    interval = _check_interval(interval)
    group = _resolve_group(fit, group, "predictions")
    if x is None:
        x = _default_x(fit, group)
        if x is None:
            raise PlotError("predictions: the model has no covariate to plot against; pass x=COLUMN "
                            "(or use caterpillar for the groups' effects)")
    x = _check_x(fit, x, "predictions", group)
    glmm = is_glmm(fit)
    if glmm and predictive:
        raise PlotError("predictions: predictive=True (intervals for new observations) is not available for "
                        "binomial/Poisson fits; use predictive=False for intervals of the mean")
    yobs = _observed(fit)
    frame = d.prepared.frame
    xcol = frame[x]
    numeric = _is_numeric(xcol)
    if numeric:
        grid = np.linspace(float(xcol.min()), float(xcol.max()), n_points)
        gx = grid
    else:
        grid = [v for v in xcol.cat.categories if v in set(xcol)]
        gx = np.arange(len(grid), dtype=float)
    r = next(r for r in d.remats if r.group == group)
    all_levels = list(r.levels)
    xk = _x_terms(fit, x)
    keep_cond = sorted(set(_group_terms(fit, group)) | set(xk))
    between = [c for c in _group_level_columns(fit, group) if c != x]
    by_levels = _by_levels(fit, by, x, group)
    if by is not None and levels is None:
        levels = []
    if levels is None:
        mid = grid[len(grid) // 2]
        rows = []
        for lev in range(len(all_levels)):
            rows.append({**_level_values(fit, group, lev, between), x: mid})
        over = {c: [row[c] for row in rows] for c in rows[0]}
        at_mid = _linear_only(fit, _grid_frame(fit, len(rows), over), keep_cond)
        o = np.argsort(at_mid, kind="stable")
        chosen = list(dict.fromkeys([int(o[0]), int(o[len(o) // 2]), int(o[-1])]))
    else:
        lv = [str(v) for v in (levels if isinstance(levels, (list, tuple, np.ndarray, pd.Index)) else [levels])]
        bad = [v for v in lv if v not in all_levels]
        if bad:
            raise PlotError(f"predictions: level(s) {bad[:5]} not in grouping factor {group!r} "
                            f"(levels {all_levels[:8]}{' ...' if len(all_levels) > 8 else ''})")
        chosen = [all_levels.index(v) for v in lv]
    fig, ax = _new_figure(figsize or (8.5, 5), ax)
    ci = _ci_label(interval)
    kind = "prediction" if predictive else ("credible" if _is_posterior(fit) else "confidence")
    if data:
        px = xcol.to_numpy(dtype=float) if numeric else np.array([grid.index(v) for v in xcol], dtype=float)
        jitter = 0 if numeric else np.random.default_rng(2).uniform(-0.12, 0.12, px.size)
        ax.scatter(px + jitter, yobs, s=8, color="0.75", zorder=1, gid="data", label="data")
    npop = len(by_levels) if by is not None else 1
    ncurve = npop + len(chosen)
    width = 0.6 / max(ncurve, 1)
    cmap = _pyplot().get_cmap("tab10")
    held = _held_label(fit, x, by)
    for c in range(npop):
        over = {x: list(grid)}
        label = f"population (marginal over {group}{held}), {ci} {kind} interval"
        color, gid = POP_COLOR, "population"
        if by is not None:
            over[by] = [by_levels[c]] * len(grid)
            label = f"{by} {by_levels[c]} (marginal over {group})"
            color, gid = cmap(c % 10), f"population-{by}"
        mean, lo, hi = _predict_band(fit, _grid_frame(fit, len(grid), over), xk, interval, predictive)
        mean, lo, hi = (_to_response(fit, v) for v in (mean, lo, hi))
        _draw_band(ax, gx, mean, lo, hi, numeric, color, label, gid, -width * (ncurve - 1) / 2 + width * c,
                   dashed=by is None, alpha=0.12 if npop > 1 else None)
    for c, lev in enumerate(chosen):
        color = cmap((c + npop) % 10)
        over = dict(_level_values(fit, group, lev, between))
        over[x] = list(grid)
        mean, lo, hi = _predict_band(fit, _grid_frame(fit, len(grid), over), keep_cond, interval, predictive)
        mean, lo, hi = (_to_response(fit, v) for v in (mean, lo, hi))
        if data:
            rows = np.flatnonzero(r.codes == lev)
            px = xcol.to_numpy(dtype=float)[rows] if numeric else np.array(
                [grid.index(v) for v in xcol.iloc[rows]], dtype=float)
            offset = -width * (ncurve - 1) / 2 + width * (c + npop)
            ax.scatter(px + (0 if numeric else offset), yobs[rows], s=14, color=color, zorder=2, gid="group-data")
        tag = "".join(f", {b} {over[b]}" for b in between if b in _fixed_columns(fit))
        _draw_band(ax, gx, mean, lo, hi, numeric, color, f"{group} {all_levels[lev]} (conditional{tag})",
                   "conditional", -width * (ncurve - 1) / 2 + width * (c + npop))
    if not numeric:
        ax.set_xticks(np.arange(len(grid)))
        ax.set_xticklabels([str(v) for v in grid])
    ax.set_xlabel(x)
    ax.set_ylabel(_y_name(fit) + (" (response scale)" if glmm else ""))
    what = f"by {by}" if by is not None else "population"
    tail = f" and {len(chosen)} {group} level(s)" if chosen else ""
    ax.set_title(f"Predicted {_y_name(fit)} over {x}: {what}{tail}", fontsize=10)
    ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize=8, frameon=False)
    ax.grid(alpha=0.3)
    return fig


def _by_levels(fit, by: str | None, x: str, group: str) -> list:
    """The levels of ``by`` (a factor of the fixed part), in their order."""
    if by is None:
        return []
    frame = fit.design.prepared.frame
    fixed = _fixed_columns(fit)
    if by not in fixed or _is_numeric(frame[by]) or by == x:
        usable = sorted(c for c in fixed if not _is_numeric(frame[c]) and c != x)
        why = "it is the x axis" if by == x else ("it is numeric" if by in fixed else
                                                 "it is not a factor of the model's fixed part")
        raise PlotError(f"predictions: cannot draw one curve per level of by={by!r}: {why}; "
                        f"use one of {usable}" if usable else
                        f"predictions: cannot draw one curve per level of by={by!r}: {why}; the fixed part "
                        "has no other factor")
    col = frame[by]
    present = set(col)
    cats = col.cat.categories if isinstance(col.dtype, pd.CategoricalDtype) else pd.unique(col)
    return [v for v in cats if v in present]


def _held_label(fit, x: str, by: str | None) -> str:
    """``"; treatm A, weight 1.2"``: where the other fixed-part covariates are held."""
    base = _template(fit)
    held = [c for c in sorted(_fixed_columns(fit)) if c not in (x, by)]
    parts = [f"{c} {base[c]:.3g}" if isinstance(base[c], float) else f"{c} {base[c]}" for c in held]
    return "; at " + ", ".join(parts) if parts else ""


def _draw_band(ax, gx, mean, lo, hi, numeric, color, label, gid, offset, dashed=None, alpha=None):
    if numeric:
        if alpha is None:
            alpha = 0.15 if color != POP_COLOR else 0.12
        if color != POP_COLOR:
            # coloured bands overlap: a light fill, the limits as thin lines, so that the
            # overlaps stay legible instead of mixing into a muddy blend
            alpha = min(alpha, 0.08)
            for edge in (lo, hi):
                ax.plot(gx, edge, color=color, lw=0.7, alpha=0.7, gid=f"{gid}-edge")
        ax.fill_between(gx, lo, hi, color=color, alpha=alpha, lw=0, gid=f"{gid}-band")
        if dashed is None:
            dashed = gid == "population"
        ax.plot(gx, mean, color=color, lw=2 if gid.startswith("population") else 1.5,
                ls="--" if dashed else "-", gid=f"{gid}-line", label=label)
    else:
        ax.errorbar(gx + offset, mean, yerr=[mean - lo, hi - mean], fmt="o", color=color, ms=5, capsize=2,
                    lw=1.3, label=label, gid=f"{gid}-line")
