"""The shrinkage plot: no pooling, partial pooling and complete pooling per group."""

from __future__ import annotations

import math
import warnings

import numpy as np
import pandas as pd

from ._common import (
    NOPOOL_COLOR,
    PARTIAL_COLOR,
    POP_COLOR,
    PlotError,
    _check_interval,
    _ci_label,
    _group_columns,
    _is_numeric,
    _is_posterior,
    _new_figure,
    _resolve_group,
    _response_name,
    _term_names,
    _z,
)
from ._glmm import glm_irls, is_glmm, link_label, mean_name, observations, separated


class _Pooling:
    """No-, partial- and complete-pooling estimates of one group's coefficients."""

    def __init__(self, fit, group: str, interval: float):
        d = fit.design
        cols = _group_columns(fit, group)
        self.group = group
        self.names = [c for _, _, c in cols]
        r0 = d.remats[cols[0][0]]
        self.levels = pd.Index(r0.levels)
        codes = r0.codes
        self.n = np.bincount(codes, minlength=len(self.levels))
        # no pooling: each group's own fit on the term's columns, the other
        # fixed effects held at the model's estimates (least squares; for a
        # GLMM a GLM on the link scale with them in the offset)
        Z = np.column_stack([d.remats[k].Xt[:, j] for k, j, _ in cols])
        xnames = list(d.xnames)
        other = [i for i, c in enumerate(xnames) if c not in self.names]
        xb_other = d.X[:, other] @ fit.fixef.to_numpy()[other] if other else np.zeros(d.n)
        self.glmm = is_glmm(fit)
        self.separated = 0
        if self.glmm:
            fam = fit.family
            yg, wt, _, off = observations(fit)
        else:
            y = d.y - xb_other
        P = len(cols)
        self.nopool = np.full((len(self.levels), P), np.nan)
        order = np.argsort(codes, kind="stable")
        bounds = np.searchsorted(codes[order], np.arange(len(self.levels) + 1))
        for lev in range(len(self.levels)):
            rows = order[bounds[lev]: bounds[lev + 1]]
            Zl = Z[rows]
            if rows.size >= P and np.linalg.matrix_rank(Zl) == P:
                if not self.glmm:
                    self.nopool[lev] = np.linalg.lstsq(Zl, y[rows], rcond=None)[0]
                    continue
                # all-0 / all-1 (or all-zero counts): the group's own estimate
                # is -inf or +inf on the link scale; left out, and counted
                if separated(yg[rows], wt[rows], fam):
                    self.separated += 1
                    continue
                est = glm_irls(Zl, yg[rows], wt[rows], off[rows] + xb_other[rows], fam)
                # a slope separating the data: beyond 30 on a logit or log scale (an identity
                # link's estimates, a Student-t model's, are in the response's units)
                if est is None or (fam.link != "identity" and np.max(np.abs(est)) > 30):
                    self.separated += 1
                    continue
                self.nopool[lev] = est
        # complete pooling: one regression (GLM) ignoring the groups
        if self.glmm:
            ols = glm_irls(d.X, yg, wt, off, fam)
            if ols is None:
                ols = np.full(d.p, np.nan)
        else:
            ols = np.linalg.lstsq(d.X, d.y, rcond=None)[0]
        self.complete = np.array([ols[xnames.index(c)] if c in xnames else 0.0 for c in self.names])
        fe = fit.fixef
        self.population = np.array([fe[c] if c in fe.index else 0.0 for c in self.names])
        self.partial = fit.coef()[group][self.names].to_numpy()
        self.lower = self.upper = None
        self.posterior = _is_posterior(fit)
        if self.posterior:
            draws = self.draws(fit, cols)
            self.lower, self.upper = np.quantile(draws, [0.5 - interval / 2, 0.5 + interval / 2], axis=0)
        # population covariance of the group's coefficients (block diagonal
        # across terms on the same factor)
        covs = fit.covariances()
        self.cov = np.zeros((P, P))
        for a, (ka, ja, _) in enumerate(cols):
            for b, (kb, jb, _) in enumerate(cols):
                if ka == kb:
                    self.cov[a, b] = covs[ka][ja, jb]

    @staticmethod
    def draws(fit, cols) -> np.ndarray:
        """Posterior draws (S, levels, P) of the group's coefficients."""
        names = _term_names(fit)
        beta = fit.draws("fixef")
        xnames = list(fit.design.xnames)
        out = []
        for k, j, c in cols:
            b = fit.draws(f"ranef_{names[k]}")[:, :, j]
            out.append(b + (beta[:, [xnames.index(c)]] if c in xnames else 0.0))
        return np.stack(out, axis=2)


def pooling_estimates(fit, group: str | None = None, interval: float = 0.95) -> pd.DataFrame:
    """No-pooling, partial-pooling and complete-pooling estimates per group.

    Parameters
    ----------
    fit : LMMFit, MAPFit or BayesFit
    group : str, optional
        Grouping factor; default the model's first (largest) one.
    interval : float
        Probability of the posterior intervals (posterior fits only).

    Returns
    -------
    pandas.DataFrame
        One row per level; columns ``("n", "")`` (``est["n"]`` is a Series) and, for each of
        ``no_pooling`` (the group's own least-squares fit; NaN where the group
        has too few rows), ``partial_pooling`` (``fit.coef()``) and
        ``complete_pooling`` (one regression ignoring groups), one column per
        coefficient; posterior fits add ``partial_lower`` and ``partial_upper``.
        Binomial and Poisson fits: all on the link scale; no pooling is the
        group's own GLM (other fixed effects in the offset), NaN where it is
        infinite (all-0 or all-1 outcomes); complete pooling one GLM.
    """
    group = _resolve_group(fit, group, "pooling_estimates")
    pool = _Pooling(fit, group, _check_interval(interval))
    parts = {"n": pd.DataFrame({"": pool.n}, index=pool.levels)}
    parts["no_pooling"] = pd.DataFrame(pool.nopool, index=pool.levels, columns=pool.names)
    parts["partial_pooling"] = pd.DataFrame(pool.partial, index=pool.levels, columns=pool.names)
    if pool.lower is not None:
        parts["partial_lower"] = pd.DataFrame(pool.lower, index=pool.levels, columns=pool.names)
        parts["partial_upper"] = pd.DataFrame(pool.upper, index=pool.levels, columns=pool.names)
    parts["complete_pooling"] = pd.DataFrame(np.tile(pool.complete, (len(pool.levels), 1)), index=pool.levels,
                                             columns=pool.names)
    out = pd.concat(parts, axis=1)
    out.index.name = group
    return out


def _sizes(n: np.ndarray) -> np.ndarray:
    """Marker areas growing with the square root of the group size."""
    return 12 + 180 * np.sqrt(n / max(n.max(), 1))


def _size_handles(n: np.ndarray):
    """Legend entries for the smallest and largest group sizes."""
    from matplotlib.lines import Line2D

    lo, hi = int(n.min()), int(n.max())
    vals = [lo, hi] if lo != hi else [lo]
    return [Line2D([], [], ls="", marker="o", markersize=math.sqrt(_sizes(np.array([v, hi]))[0]),
                   markerfacecolor=NOPOOL_COLOR, markeredgecolor=NOPOOL_COLOR, alpha=0.45, label=f"n = {v}")
            for v in vals]


def _shrinkage_legend(ax, n):
    # below the axes: the plot keeps the figure's width and nothing covers data
    handles, labels = ax.get_legend_handles_labels()
    size_h = _size_handles(n)
    ax.legend(handles + size_h, labels + [f"group size {h.get_label()} (marker area)" for h in size_h],
              loc="upper center", bbox_to_anchor=(0.5, -0.1), ncol=2, fontsize=8, frameon=False)


def shrinkage(fit, group: str | None = None, terms=None, *, dim: int | None = None, interval: float = 0.95,
              intervals: bool | None = None, ellipses=(0.5, 0.95), sort: str | None = "no_pooling",
              annotate=False, clip: float | None = None, ax=None, figsize=None):
    """Shrinkage plot: each group's own estimate, the model's, and one regression.

    For one grouping factor, draws the no-pooling estimate of each group (its
    own least-squares fit: y on the term's columns within the group, other
    fixed effects held at the model's values), the partial-pooling estimate
    (``fit.coef()``; posterior mean and interval for NUTS fits) and the
    complete-pooling estimate (one regression ignoring groups), with an
    arrow from no pooling to partial pooling.  Small groups move furthest.

    Binomial and Poisson fits (GLMMs) are drawn on the link scale: each
    group's own GLM fit (IRLS, the other fixed effects held at the model's
    values through an offset), ``coef()``, and one GLM ignoring the groups.
    Groups with only 0 or only 1 outcomes (all-zero counts) have an infinite
    own estimate: they get no no-pooling point or arrow, with a warning.

    Parameters
    ----------
    fit : LMMFit, GLMMFit, MAPFit or BayesFit
    group : str, optional
        Grouping factor; default the model's first (largest) one.
    terms : str or pair of str, optional
        Coefficient(s) to show: one name (1-D plot) or two (2-D plot).
        Default: the first two columns of the group's random effects when it
        has a slope, else the intercept.
    dim : {1, 2}, optional
        1: groups as rows, estimates along x, marker size by group size.
        2: arrows in the plane of two coefficients, with the fitted
        population distribution N(fixef, Sigma) drawn as ellipses.
    interval : float
        Probability of the posterior intervals.
    intervals : bool, optional
        Draw interval bars on the partial-pooling points (default: for
        posterior fits).
    ellipses : sequence of float
        Probability contours of the population distribution (2-D).
    sort : {"no_pooling", "partial_pooling", "n", None}
        Order of the rows of the 1-D plot.
    annotate : bool, int or list
        Label the partial-pooling points with the group names (2-D): True
        all, an int k the k groups that moved furthest, a list those levels.
    clip : float, optional
        Axis limits that cover this central fraction of the groups' own
        estimates (e.g. 0.95) and every partial-pooling point, so that one
        extreme group (a ring with two observations whose own fit sits far
        out) does not squash the rest.  Own estimates beyond the limits are
        drawn at the edge as triangles pointing outwards, counted in the
        legend, never dropped silently.
    ax : matplotlib.axes.Axes, optional
    figsize : tuple, optional

    Returns
    -------
    matplotlib.figure.Figure

    Notes
    -----
    Groups with too few rows for their own fit (e.g. one observation and a
    slope) get no no-pooling point and no arrow; a warning says how many.
    Arrows are ``FancyArrowPatch`` objects with gid ``"shrinkage-arrow"``,
    ellipses ``Ellipse`` patches with gid ``"population-ellipse"``.
    """
    group = _resolve_group(fit, group, "shrinkage")
    interval = _check_interval(interval)
    cols = [c for _, _, c in _group_columns(fit, group)]
    if terms is None:
        chosen = cols[:2] if (dim in (None, 2) and len(cols) >= 2) else cols[:1]
    else:
        chosen = [terms] if isinstance(terms, str) else list(terms)
        bad = [t for t in chosen if t not in cols]
        if bad:
            raise PlotError(f"shrinkage: {bad[0]!r} is not a coefficient varying by {group!r}; "
                            f"its random effects are {cols}")
    if dim is None:
        dim = len(chosen)
    if dim not in (1, 2):
        raise PlotError(f"shrinkage: dim must be 1 or 2, not {dim!r}")
    if dim == 2 and len(cols) < 2:
        raise PlotError(
            f"2-D shrinkage needs two coefficients varying by {group!r} (a random slope such as "
            f"(x | {group})), but its random effects are only {cols}; use dim=1"
        )
    if len(chosen) != dim:
        raise PlotError(f"shrinkage: dim={dim} needs {dim} coefficient name(s) in terms, got {chosen}")
    pool = _Pooling(fit, group, interval)
    if intervals is None:
        intervals = pool.lower is not None
    if intervals and pool.lower is None:
        pool.lower, pool.upper = _condvar_limits(fit, group, pool, interval)
    idx = [pool.names.index(c) for c in chosen]
    missing = int(np.isnan(pool.nopool[:, 0]).sum())
    small = missing - pool.separated
    if small:
        warnings.warn(f"shrinkage: {small} group(s) of {group!r} have too few observations for their own fit; "
                      "they get no no-pooling point or arrow", UserWarning, stacklevel=2)
    if pool.separated:
        warnings.warn(f"shrinkage: {pool.separated} group(s) of {group!r} have only 0 (or only 1) outcomes, so "
                      f"their own estimate is infinite on the {link_label(fit)}; they get no no-pooling point or "
                      "arrow (their partial-pooling point is drawn)", UserWarning, stacklevel=2)
    missing = (small, pool.separated)
    if clip is not None and not (isinstance(clip, (float, int)) and not isinstance(clip, bool) and 0 < clip < 1):
        raise PlotError(f"shrinkage: clip must be a fraction between 0 and 1 (e.g. 0.95), not {clip!r}")
    if dim == 1:
        return _shrinkage_1d(fit, pool, idx[0], intervals, interval, sort, missing, clip, ax, figsize)
    return _shrinkage_2d(fit, pool, idx, intervals, interval, ellipses, annotate, missing, clip, ax, figsize)


def _clip_limits(own: np.ndarray, partial: np.ndarray, clip: float | None):
    """Axis limits covering the central ``clip`` of the finite own estimates and
    every partial-pooling estimate (None: no clipping)."""
    if clip is None:
        return None
    ok = own[np.isfinite(own)]
    if ok.size == 0:
        return None
    lo, hi = np.quantile(ok, [(1 - clip) / 2, (1 + clip) / 2])
    lo, hi = min(lo, float(np.min(partial))), max(hi, float(np.max(partial)))
    pad = 0.04 * (hi - lo if hi > lo else 1.0)
    return lo - pad, hi + pad


def _draw_clipped(ax, x, y, lim, axis: str, sizes) -> int:
    """Move own estimates beyond ``lim`` (in place) to the edge and mark them
    with outward triangles; return how many were moved."""
    if lim is None:
        return 0
    v = x if axis == "x" else y
    low, high = v < lim[0], v > lim[1]
    for mask, edge, marker in ((low, lim[0], "<" if axis == "x" else "v"), (high, lim[1], ">" if axis == "x" else "^")):
        if mask.any():
            v[mask] = edge
            ax.scatter(x[mask], y[mask], marker=marker, s=np.maximum(sizes[mask], 30), color=NOPOOL_COLOR,
                       zorder=2.6, gid="no-pooling-clipped")
    return int(low.sum() + high.sum())


def _condvar_limits(fit, group, pool, interval):
    """mean +- z condsd of the coefficients (non-posterior fits), for error bars."""
    z = _z(interval)
    sd = np.column_stack([np.sqrt(fit.condvar[k][:, j, j]) for k, j, _ in _group_columns(fit, group)])
    return pool.partial - z * sd, pool.partial + z * sd


def _nopool_label(missing, clipped: int = 0) -> str:
    small, sep = missing if isinstance(missing, tuple) else (missing, 0)
    extra = f"; {small} group(s) too small, not drawn" if small else ""
    if clipped:
        extra += f"; {clipped} beyond the axis, drawn at its edge (triangles)"
    if sep:
        extra += f"; {sep} group(s) with all-0/all-1 outcomes (infinite), not drawn"
    return f"no pooling: each group's own fit{extra}"


def _coef_words(fit, name: str) -> str:
    """A coefficient as teachers say it: "intercept", "slope of Days", "coefficient of treatB"."""
    if name == "(Intercept)":
        return "intercept"
    frame = fit.design.prepared.frame
    if name in frame.columns and _is_numeric(frame[name]):
        return f"slope of {name}"
    return f"coefficient of {name}"


def _axis_name(fit, pool, name: str, intercept_only: bool) -> str:
    """Axis label of one coefficient; GLMMs say the link scale."""
    if not pool.glmm:
        return f"{_coef_words(fit, name)} per {pool.group}"
    if intercept_only:
        return f"{fit.family.link}({mean_name(fit)}) per {pool.group} ({link_label(fit)})"
    return f"{_coef_words(fit, name)} per {pool.group} ({link_label(fit)})"


def _shrinkage_1d(fit, pool: _Pooling, j: int, intervals: bool, interval: float, sort, missing, clip, ax,
                  figsize):
    from matplotlib.patches import FancyArrowPatch

    L = len(pool.levels)
    name = pool.names[j]
    nop, par = pool.nopool[:, j], pool.partial[:, j]
    keys = {"no_pooling": np.where(np.isnan(nop), par, nop), "partial_pooling": par, "n": pool.n.astype(float)}
    if sort is not None and sort not in keys:
        raise PlotError(f"shrinkage: sort must be one of {list(keys)} or None, not {sort!r}")
    order = np.argsort(keys[sort], kind="stable") if sort else np.arange(L)
    ypos = np.empty(L)
    ypos[order] = np.arange(L)
    if figsize is None:
        figsize = (8.5, min(max(3.2, 0.24 * L + 1.6), 16))
    fig, ax = _new_figure(figsize, ax)
    ok = ~np.isnan(nop)
    lim = _clip_limits(nop, par, clip)
    nop = nop.copy()
    moved = _draw_clipped(ax, nop, ypos, lim, "x", _sizes(pool.n)) if lim is not None else 0
    inside = ok & (nop > lim[0]) & (nop < lim[1]) if lim is not None else ok
    ax.scatter(nop[inside], ypos[inside], s=_sizes(pool.n)[inside], color=NOPOOL_COLOR, alpha=0.45,
               edgecolor=NOPOOL_COLOR, zorder=2, gid="no-pooling", label=_nopool_label(missing, moved))
    for i in np.flatnonzero(ok):
        ax.add_patch(FancyArrowPatch((nop[i], ypos[i]), (par[i], ypos[i]), arrowstyle="-|>", mutation_scale=9,
                                     color="0.3", lw=1.0, shrinkA=0, shrinkB=3, zorder=2.5, gid="shrinkage-arrow"))
    if intervals:
        ax.errorbar(par, ypos, xerr=[par - pool.lower[:, j], pool.upper[:, j] - par], fmt="none",
                    ecolor=PARTIAL_COLOR, alpha=0.45, lw=1, zorder=2.8, gid="partial-interval")
    plabel = "partial pooling: the model's estimate" + (f" ({_ci_label(interval)} interval)" if intervals else "")
    ax.scatter(par, ypos, s=22, color=PARTIAL_COLOR, zorder=3, gid="partial-pooling", label=plabel)
    ax.axvline(pool.complete[j], color="0.35", ls="--", lw=1.2, gid="complete-pooling",
               label="complete pooling: one " + ("GLM" if pool.glmm else "regression") + ", groups ignored")
    if name in fit.fixef.index:
        ax.axvline(pool.population[j], color=POP_COLOR, ls=":", lw=1.2, gid="population-mean",
                   label="population mean (fixed effect)")
    if L <= 60:
        ax.set_yticks(np.arange(L))
        ax.set_yticklabels([f"{pool.levels[i]} (n={pool.n[i]})" for i in order], fontsize=8 if L > 25 else 9)
    else:
        ax.set_yticks([])
    ax.set_ylim(-0.8, L - 0.2)
    if lim is not None:
        ax.set_xlim(*lim)
    ax.set_ylabel(f"{pool.group}" + (f", sorted by {sort.replace('_', ' ')}" if sort else ""))
    if pool.glmm:
        ax.set_xlabel(_axis_name(fit, pool, name, name == "(Intercept)" and len(pool.names) == 1))
    else:
        what = "mean of " + _response_name(fit) if (name == "(Intercept)" and len(pool.names) == 1
                                                    and len(fit.fixef) == 1) else _coef_words(fit, name)
        ax.set_xlabel(f"{what} per {pool.group}")
    ax.set_title(f"Shrinkage of {pool.group} estimates ({fit.fit_label})\n"
                 "arrows: each group's own fit → the model's estimate; small groups move furthest", fontsize=10)
    _shrinkage_legend(ax, pool.n)
    ax.grid(axis="x", alpha=0.3)
    return fig


def _annotated(pool: _Pooling, annotate, idx) -> list[int]:
    """Which groups :func:`shrinkage` labels (see its ``annotate``)."""
    if annotate is False or annotate is None:
        return []
    if annotate is True:
        return list(range(len(pool.levels)))
    if isinstance(annotate, (int, np.integer)):
        # the groups that moved furthest, in units of each coefficient's spread
        scale = np.nanstd(pool.partial[:, idx], axis=0)
        scale[~(scale > 0)] = 1.0
        dist = np.sqrt(np.nansum(((pool.nopool[:, idx] - pool.partial[:, idx]) / scale) ** 2, axis=1))
        return list(np.argsort(-dist, kind="stable")[: int(annotate)])
    levels = [str(v) for v in pool.levels]
    want = [str(v) for v in annotate]
    bad = [v for v in want if v not in levels]
    if bad:
        raise PlotError(f"shrinkage: annotate level(s) {bad[:5]} not in {pool.group!r}")
    return [levels.index(v) for v in want]


def _ellipse(mean, cov, level, **kw):
    from matplotlib.patches import Ellipse
    from scipy import stats

    vals, vecs = np.linalg.eigh(cov)
    vals = np.maximum(vals, 0)
    r = math.sqrt(stats.chi2.ppf(level, 2))
    angle = math.degrees(math.atan2(vecs[1, 1], vecs[0, 1]))
    return Ellipse(mean, 2 * r * math.sqrt(vals[1]), 2 * r * math.sqrt(vals[0]), angle=angle, **kw)


def _shrinkage_2d(fit, pool: _Pooling, idx, intervals, interval, ellipses, annotate, missing, clip, ax, figsize):
    from matplotlib.patches import FancyArrowPatch

    i, j = idx
    nop, par = pool.nopool[:, idx], pool.partial[:, idx]
    fig, ax = _new_figure(figsize or (9, 6), ax)
    mean = pool.population[idx]
    cov = pool.cov[np.ix_(idx, idx)]
    styles = ["-", "--", ":", "-."]
    for m, level in enumerate(sorted(ellipses)):
        ax.add_patch(_ellipse(mean, cov, level, fill=False, color="0.45", lw=1.1, ls=styles[m % 4],
                              gid="population-ellipse", label=f"population N(fixef, Σ): {_ci_label(level)} contour"))
    ok = ~np.isnan(nop[:, 0])
    limx, limy = _clip_limits(nop[:, 0], par[:, 0], clip), _clip_limits(nop[:, 1], par[:, 1], clip)
    nop = nop.copy()
    x, y = nop[:, 0], nop[:, 1]
    out = np.zeros(len(x), dtype=bool)
    for lim, v in ((limx, x), (limy, y)):
        if lim is not None:
            out |= ok & ((v < lim[0]) | (v > lim[1]))
    sizes = _sizes(pool.n)
    moved = int(out.sum())
    if limx is not None:
        _draw_clipped(ax, x, y, limx, "x", sizes)
    if limy is not None:
        _draw_clipped(ax, x, y, limy, "y", sizes)
    inside = ok & ~out
    ax.scatter(x[inside], y[inside], s=sizes[inside], color=NOPOOL_COLOR, alpha=0.45,
               edgecolor=NOPOOL_COLOR, zorder=2, gid="no-pooling", label=_nopool_label(missing, moved))
    for k in np.flatnonzero(ok):
        ax.add_patch(FancyArrowPatch(tuple(nop[k]), tuple(par[k]), arrowstyle="-|>", mutation_scale=9, color="0.3",
                                     lw=1.0, shrinkA=0, shrinkB=3, zorder=2.5, gid="shrinkage-arrow"))
    if intervals:
        ax.errorbar(par[:, 0], par[:, 1], xerr=[par[:, 0] - pool.lower[:, i], pool.upper[:, i] - par[:, 0]],
                    yerr=[par[:, 1] - pool.lower[:, j], pool.upper[:, j] - par[:, 1]], fmt="none",
                    ecolor=PARTIAL_COLOR, alpha=0.3, lw=0.8, zorder=2.8, gid="partial-interval")
    plabel = "partial pooling: the model's estimate" + (f" ({_ci_label(interval)} intervals)" if intervals else "")
    ax.scatter(par[:, 0], par[:, 1], s=22, color=PARTIAL_COLOR, zorder=3, gid="partial-pooling", label=plabel)
    ax.scatter([pool.complete[i]], [pool.complete[j]], marker="*", s=220, color="white", edgecolor="black",
               zorder=4, gid="complete-pooling", label="complete pooling: one regression, groups ignored")
    ax.scatter([mean[0]], [mean[1]], marker="P", s=90, color=POP_COLOR, zorder=4, gid="population-mean",
               label="population mean (fixed effects)")
    for k in _annotated(pool, annotate, idx):
        ax.annotate(str(pool.levels[k]), (par[k, 0], par[k, 1]), xytext=(3, 3), textcoords="offset points",
                    fontsize=7, color=PARTIAL_COLOR, gid="group-label")
    if limx is not None:
        ax.set_xlim(*limx)
    if limy is not None:
        ax.set_ylim(*limy)
    ax.set_xlabel(_axis_name(fit, pool, pool.names[i], False))
    ax.set_ylabel(_axis_name(fit, pool, pool.names[j], False))
    ax.set_title(f"Shrinkage of {pool.group} coefficients ({fit.fit_label})\n"
                 "arrows: each group's own fit → the model's estimate", fontsize=10)
    _shrinkage_legend(ax, pool.n)
    ax.grid(alpha=0.3)
    return fig
