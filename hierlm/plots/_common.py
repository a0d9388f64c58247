"""Shared pieces of hierlm.plots: errors, colours, checks of arguments, and
predictions for new rows (with intervals) that several plots draw."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

from ..errors import HierlmError

#: plots that need posterior draws (a NUTS fit)
POSTERIOR_KINDS = ("forest", "ppc", "trace", "rank", "ridge")
#: every plot ``fit.plot(kind)`` knows, in the order the docs show them
KINDS = ("shrinkage", "caterpillar", "qqcaterpillar", "diagnostics", "facets", "predictions") + POSTERIOR_KINDS

# colours of the three kinds of estimate, the same in every plot
NOPOOL_COLOR = "#d95f02"
PARTIAL_COLOR = "#1f5fa8"
POP_COLOR = "black"
HIGHLIGHT_COLOR = "#c2185b"  # a level whose interval excludes 0


class PlotError(HierlmError):
    """A plot that cannot be drawn for this fit or these arguments."""


# ---------------------------------------------------------------------------
# helpers
# ---------------------------------------------------------------------------
def _pyplot():
    try:
        import matplotlib.pyplot as plt
    except ImportError as exc:  # pragma: no cover - matplotlib is in the bayes extra
        raise PlotError("plots need matplotlib: pip install matplotlib") from exc
    return plt


def _new_figure(figsize, ax=None):
    """The axes to draw on: ``ax`` if given, else one new axes."""
    if ax is not None:
        return ax.figure, ax
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=figsize, layout="constrained")
    return fig, ax


def _is_posterior(fit) -> bool:
    idata = getattr(fit, "idata", None)
    return idata is not None and "posterior" in getattr(idata, "groups", lambda: [])()


def available(fit) -> list[str]:
    """The plot kinds that can be drawn for ``fit``."""
    return list(KINDS) if _is_posterior(fit) else [k for k in KINDS if k not in POSTERIOR_KINDS]


def _need_posterior(fit, kind: str) -> None:
    if not _is_posterior(fit):
        raise PlotError(
            f"the {kind!r} plot needs a posterior fit (fit('nuts')); a {fit.fit_label} fit has no posterior "
            "draws. "
            f"Plots available for this fit: {', '.join(available(fit))}"
        )


def _groups(fit) -> list[str]:
    return list(dict.fromkeys(r.group for r in fit.design.remats))


def _resolve_group(fit, group, what: str) -> str:
    groups = _groups(fit)
    if group is None:
        return groups[0]
    if group not in groups:
        raise PlotError(
            f"{what}: {group!r} is not a grouping factor of this model; its grouping factors are "
            f"{', '.join(repr(g) for g in groups)}"
        )
    return group


def _group_columns(fit, group: str) -> list[tuple[int, int, str]]:
    """(term index, column in the term, coefficient name) of every random
    effect on ``group`` (several terms when written ``(x || g)``)."""
    return [(k, j, c) for k, r in enumerate(fit.design.remats) if r.group == group for j, c in enumerate(r.cnames)]


def _term_names(fit) -> list[str]:
    return list(fit.term_names)


def _check_interval(interval: float) -> float:
    if not (isinstance(interval, (int, float)) and 0 < interval < 1):
        raise PlotError(f"interval must be a probability between 0 and 1 (e.g. 0.95), not {interval!r}")
    return float(interval)


def _ci_label(interval: float) -> str:
    return f"{100 * interval:g}%"


def _z(interval: float) -> float:
    from scipy import stats

    return float(stats.norm.ppf(0.5 + interval / 2))


def _response_name(fit) -> str:
    return str(fit.design.formula.response)


def _lowess(x: np.ndarray, y: np.ndarray, frac: float = 2 / 3, n_eval: int = 60):
    """A local linear smoother with tricube weights (loess without robustness
    steps), evaluated on a grid: the line through residual plots."""
    ok = np.isfinite(x) & np.isfinite(y)
    x, y = x[ok], y[ok]
    if x.size < 5 or np.ptp(x) == 0:
        return None
    grid = np.unique(x) if np.unique(x).size <= n_eval else np.linspace(x.min(), x.max(), n_eval)
    k = max(int(math.ceil(frac * x.size)), 5)
    out = np.empty(grid.size)
    for i, x0 in enumerate(grid):
        d = np.abs(x - x0)
        idx = np.argpartition(d, k - 1)[:k]
        h = d[idx].max() * 1.0001 or 1.0
        w = (1 - (d[idx] / h) ** 3) ** 3
        xs, ys = x[idx] - x0, y[idx]
        sw, swx, swxx = w.sum(), (w * xs).sum(), (w * xs * xs).sum()
        swy, swxy = (w * ys).sum(), (w * xs * ys).sum()
        det = sw * swxx - swx**2
        out[i] = (swxx * swy - swx * swxy) / det if det > 1e-12 * max(sw * swxx, 1e-300) else swy / sw
    return grid, out


def _qq(ax, values: np.ndarray, color: str = PARTIAL_COLOR, gid: str = "qq-point") -> None:
    """Normal QQ plot with the line through the quartiles (R's qqline)."""
    from scipy import stats

    v = np.sort(np.asarray(values, dtype=float)[np.isfinite(values)])
    n = v.size
    if n == 0:
        return
    a = 3 / 8 if n <= 10 else 0.5  # R's ppoints
    q = stats.norm.ppf((np.arange(1, n + 1) - a) / (n + 1 - 2 * a))
    ax.scatter(q, v, s=12, color=color, alpha=0.7, gid=gid)
    q25, q75 = stats.norm.ppf([0.25, 0.75])
    v25, v75 = np.quantile(v, [0.25, 0.75])
    slope = (v75 - v25) / (q75 - q25)
    xs = np.array([q[0], q[-1]])
    ax.plot(xs, v25 + slope * (xs - q25), color="0.4", lw=1, ls="--", gid="qq-line")
    ax.set_xlabel("standard normal quantile")


def _is_numeric(s: pd.Series) -> bool:
    return pd.api.types.is_numeric_dtype(s.dtype) and not pd.api.types.is_bool_dtype(s.dtype)


# ---------------------------------------------------------------------------
# predictions for new rows (shared by facets and predictions)
# ---------------------------------------------------------------------------
def _template(fit) -> dict:
    """A typical row: means of numeric columns, most frequent factor levels."""
    frame = fit.design.prepared.frame
    out = {}
    for c in frame.columns:
        s = frame[c]
        if isinstance(s.dtype, pd.CategoricalDtype) or not _is_numeric(s):
            out[c] = s.value_counts().index[0]
        else:
            out[c] = float(s.mean())
    return out


def _grid_frame(fit, m: int, overrides: dict) -> pd.DataFrame:
    base = _template(fit)
    data = {}
    for c, v in base.items():
        val = overrides.get(c, v)
        data[c] = list(val) if isinstance(val, (list, np.ndarray, pd.Index, pd.Series)) else [val] * m
    return pd.DataFrame(data)


def _group_level_columns(fit, group: str) -> list[str]:
    """Covariates constant within every level of ``group`` (a piglet's
    treatment, a chick's diet): a group's curves must use its own values of
    them, not the most frequent level."""
    d = fit.design
    r = next(r for r in d.remats if r.group == group)
    frame = d.prepared.frame
    own = set(r.term.factors) | {d.formula.response}
    out = []
    for c in frame.columns:
        if c in own:
            continue
        codes = pd.factorize(frame[c])[0]
        per_level = pd.Series(codes).groupby(r.codes).nunique()
        if (per_level <= 1).all():
            out.append(c)
    return out


def _fixed_columns(fit) -> set:
    """Data columns the fixed part of the model uses."""
    d = fit.design
    cols = set(d.prepared.frame.columns)
    return {name for name, _ in d.formula.fixed_terms.variables() if name in cols}


def _level_values(fit, group: str, level_pos: int, between: list[str] | None = None) -> dict:
    """The values of one level of ``group``: the columns forming it and the
    covariates constant within it (``between``, default
    :func:`_group_level_columns`)."""
    d = fit.design
    r = next(r for r in d.remats if r.group == group)
    row = int(np.flatnonzero(r.codes == level_pos)[0])
    if between is None:
        between = _group_level_columns(fit, group)
    cols = list(dict.fromkeys(list(r.term.factors) + list(between)))
    return {f: d.prepared.frame[f].iloc[row] for f in cols}


def _new_rows(fit, frame: pd.DataFrame, keep: list[int]):
    """X and the random-effects pieces of new rows (as ``predict`` builds them)."""
    return fit.model_rows(frame, keep)


def _predict_band(fit, frame: pd.DataFrame, keep: list[int], interval: float, predictive: bool):
    """Mean, lower and upper limit of the predictions for ``frame``.

    Posterior fits: quantiles of the draws of X beta + Z b (+ sigma e for
    ``predictive``).  Other fits: mean +- z SE with the variance
    x' V x + z' C z (+ sigma^2), V the fixed effects' covariance and C the
    conditional covariance of the random effects -- their covariance with
    beta is ignored, the usual approximation (merTools' predictInterval).
    """
    X, terms = _new_rows(fit, frame, keep)
    mean = fit.linear_predictor(X, terms)
    if _is_posterior(fit):
        beta = fit.draws("fixef")
        eta = beta @ X.T
        names = _term_names(fit)
        for k, pos, Xt in terms:
            b = fit.draws(f"ranef_{names[k]}")
            ok = pos >= 0
            eta += np.where(ok, np.einsum("np,snp->sn", Xt, b[:, np.where(ok, pos, 0), :]), 0.0)
        if predictive:
            sig = fit.draws("sigma").reshape(-1, 1)
            eta = eta + sig * np.random.default_rng(0).standard_normal(eta.shape)
        lo, hi = np.quantile(eta, [0.5 - interval / 2, 0.5 + interval / 2], axis=0)
        return eta.mean(axis=0), lo, hi
    V = fit.vcov.to_numpy()
    var = np.einsum("ij,jk,ik->i", X, V, X)
    for k, pos, Xt in terms:
        C = fit.condvar[k]
        ok = pos >= 0
        var += np.where(ok, np.einsum("ij,ijk,ik->i", Xt, C[np.where(ok, pos, 0)], Xt), 0.0)
    if predictive:
        var = var + fit.sigma**2
    half = _z(interval) * np.sqrt(np.maximum(var, 0))
    return mean, mean - half, mean + half


def _group_factors(fit, group: str | None) -> set:
    return {f for r in fit.design.remats if r.group == group for f in r.term.factors}


def _default_x(fit, group: str | None):
    """The covariate to plot against: a numeric column of the group's
    random-effects term (its slope), else of the fixed part, else a factor
    of the fixed part, else another grouping factor (never a column that
    forms ``group``: it is constant within each group)."""
    d = fit.design
    frame = d.prepared.frame
    cols = set(frame.columns)
    own = _group_factors(fit, group) | {d.formula.response}
    parts = [r.terms for r in d.remats if r.group == group] + [d.formula.fixed_terms]
    for terms in parts:
        for name, _ in terms.variables():
            if name in cols and name not in own and _is_numeric(frame[name]):
                return name
    for name, _ in d.formula.fixed_terms.variables():
        if name in cols and name not in own:
            return name
    for r in d.remats:
        if len(r.term.factors) == 1 and r.term.factors[0] not in own:
            return r.term.factors[0]
    return None


def _check_x(fit, x: str, what: str, group: str | None = None) -> str:
    frame = fit.design.prepared.frame
    own = _group_factors(fit, group)
    usable = [c for c in frame.columns if c != _response_name(fit) and c not in own]
    if x not in usable:
        why = f"it forms the grouping factor {group!r}" if x in own else "it is not a covariate of the model"
        raise PlotError(f"{what}: cannot plot against x={x!r}: {why}; use one of {usable}")
    return x


def _x_terms(fit, x: str | None) -> list[int]:
    """Terms whose grouping factor is the x column itself (their effects
    belong to the curve over x)."""
    if x is None:
        return []
    return [k for k, r in enumerate(fit.design.remats) if r.term.factors == (x,)]


def _linear_only(fit, frame, keep):
    X, terms = _new_rows(fit, frame, keep)
    return fit.linear_predictor(X, terms)
