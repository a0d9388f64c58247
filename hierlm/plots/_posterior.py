"""Posterior plots (ArviZ): forest, posterior predictive check, trace and rank; the ridge
plot of the variance components (posterior draws or bootstrap replicates)."""

from __future__ import annotations

import math
import warnings

import numpy as np

from ._common import (
    PARTIAL_COLOR,
    PlotError,
    _check_interval,
    _ci_label,
    _need_posterior,
    _new_figure,
    _pyplot,
    _response_name,
    _term_names,
)


def _parameter_sets(fit) -> dict:
    """Posterior draws of the model's parameters, one scalar variable each,
    named for reading (``"Days"``, ``"sd Subject: Days"``, ``"corr Subject:
    (Intercept), Days"``), grouped into the parts of the forest plot.  Each
    variable's ``source`` attribute is its posterior variable (``fixef``,
    ``sd_Subject`` ...)."""
    import xarray as xr

    post = fit.idata.posterior
    d = fit.design
    nc, nd = post.sizes["chain"], post.sizes["draw"]

    def scalar(arr, source):
        return xr.DataArray(np.asarray(arr).reshape(nc, nd), dims=("chain", "draw"), attrs={"source": source})

    fe = post["fixef"].to_numpy().reshape(nc, nd, -1)
    fixed = {c: scalar(fe[:, :, i], "fixef") for i, c in enumerate(d.xnames)}
    out = {}
    # the intercept usually lives on another scale than the slopes: own panel
    if "(Intercept)" in fixed and len(fixed) > 1:
        out["intercept"] = xr.Dataset({"(Intercept)": fixed.pop("(Intercept)")})
    out["fixed effects"] = xr.Dataset(fixed)
    sds, corrs = {}, {}
    for t, r in zip(_term_names(fit), d.remats):
        if f"sd_{t}" in post:
            sd = post[f"sd_{t}"].to_numpy().reshape(nc, nd, r.p)
            for j, c in enumerate(r.cnames):
                sds[f"sd {t}: {c}"] = scalar(sd[:, :, j], f"sd_{t}")
        if r.p > 1 and f"corr_{t}" in post:
            C = post[f"corr_{t}"].to_numpy().reshape(nc, nd, r.p, r.p)
            for j in range(r.p):
                for i in range(j + 1, r.p):
                    corrs[f"corr {t}: {r.cnames[j]}, {r.cnames[i]}"] = scalar(C[:, :, i, j], f"corr_{t}")
    if "sigma" in post:  # binomial, Poisson, negative binomial and beta models have none
        sds["sigma"] = scalar(post["sigma"].to_numpy(), "sigma")
    out["standard deviations"] = xr.Dataset(sds)
    if corrs:
        out["correlations"] = xr.Dataset(corrs)
    family = {n: scalar(post[n].to_numpy(), n) for n in ("shape", "phi", "nu") if n in post}
    if family:
        out["family parameters"] = xr.Dataset(family)
    return out


def _select_vars(idata, var_names, what: str) -> list[str]:
    """Variables of ``idata`` named in ``var_names``: by their own name or by
    their posterior variable (``"fixef"`` selects every fixed effect)."""
    post = idata.posterior
    names = list(post.data_vars)
    if var_names is None:
        return names
    want = [var_names] if isinstance(var_names, str) else list(var_names)
    out = []
    for v in want:
        hits = [n for n in names if n == v or post[n].attrs.get("source") == v]
        if not hits:
            sources = list(dict.fromkeys(post[n].attrs.get("source") for n in names))
            raise PlotError(f"{what}: unknown variable {v!r}; use one of {sources} or {names}")
        out.extend(h for h in hits if h not in out)
    return out


def _posterior_idata(fit):
    """Posterior of the parameters (no random effects), with sample stats."""
    import arviz as az
    import xarray as xr

    post = xr.merge(list(_parameter_sets(fit).values()))
    groups = {"posterior": post}
    if "sample_stats" in fit.idata.groups():
        groups["sample_stats"] = fit.idata.sample_stats
    return az.InferenceData(**groups)


def forest(fit, parts=None, *, interval: float = 0.95, ax=None, figsize=None):
    """Forest plot of posterior intervals: fixed effects, SDs, correlations.

    One panel per part, each on its own scale (ArviZ ``plot_forest``:
    highest-density intervals of probability ``interval``, thick line the
    interquartile range, dot the median).

    Parameters
    ----------
    fit : BayesFit
    parts : list of str, optional
        Subset of ``"intercept"`` (its own panel when there are other fixed
        effects: it is usually on another scale), ``"fixed effects"``,
        ``"standard deviations"`` (with sigma), ``"correlations"`` (default
        all the model has).
    interval : float
    ax : matplotlib.axes.Axes, optional
        Only with one part.
    figsize : tuple, optional

    Returns
    -------
    matplotlib.figure.Figure
    """
    _need_posterior(fit, "forest")
    import arviz as az

    interval = _check_interval(interval)
    sets = _parameter_sets(fit)
    if parts is None:
        parts = list(sets)
    parts = [parts] if isinstance(parts, str) else list(parts)
    bad = [p for p in parts if p not in sets]
    if bad:
        raise PlotError(f"forest: unknown part {bad[0]!r}; this model has {list(sets)}")
    if ax is not None and len(parts) != 1:
        raise PlotError("forest: ax= needs exactly one part, e.g. parts='fixed effects'")
    rows = [len(sets[p].data_vars) for p in parts]
    if ax is None:
        plt = _pyplot()
        fig, axes = plt.subplots(len(parts), 1, figsize=figsize or (7.5, 1.1 + 0.42 * sum(rows) + 0.6 * len(parts)),
                                 layout="constrained", squeeze=False, gridspec_kw={"height_ratios": rows})
        axes = list(axes[:, 0])
    else:
        fig, axes = ax.figure, [ax]
    for p, axi in zip(parts, axes):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", FutureWarning)
            az.plot_forest(sets[p], combined=True, hdi_prob=interval, ax=axi, textsize=9, colors=PARTIAL_COLOR)
        axi.set_title(f"{p} ({_ci_label(interval)} HDI, IQR, median)", fontsize=10)
        axi.set_xlabel("posterior value")
        if p == "correlations":
            axi.axvline(0, color="0.4", lw=0.8, ls="--")
    fig.suptitle(f"Posterior of {fit.formula}", fontsize=11)
    return fig


def posterior_predictive(fit, num_draws: int | None = 200, random_seed=None):
    """Posterior predictive draws y_rep = X beta + Z b + sigma e.

    Parameters
    ----------
    fit : BayesFit
    num_draws : int, optional
        Draws to use (evenly thinned over each chain); None for all.
    random_seed : int, optional

    Returns
    -------
    arviz.InferenceData
        Groups ``posterior_predictive`` (variable ``y``, dims chain, draw,
        obs_id) and ``observed_data``.
    """
    _need_posterior(fit, "ppc")
    import arviz as az
    import xarray as xr

    d = fit.design
    post = fit.idata.posterior
    nc, nd = post.sizes["chain"], post.sizes["draw"]
    per_chain = nd if num_draws is None else max(1, min(nd, math.ceil(num_draws / nc)))
    sel = np.unique(np.linspace(0, nd - 1, per_chain).round().astype(int))
    beta = post["fixef"].to_numpy()[:, sel]
    mu = np.einsum("cdk,nk->cdn", beta, d.X)
    for t, r in zip(_term_names(fit), d.remats):
        b = post[f"ranef_{t}"].to_numpy()[:, sel]
        mu += np.einsum("cdnp,np->cdn", b[:, :, r.codes, :], r.Xt)
    sigma = post["sigma"].to_numpy()[:, sel][:, :, None]
    rng = np.random.default_rng(random_seed)
    yrep = mu + sigma * rng.standard_normal(mu.shape)
    pp = xr.Dataset({"y": xr.DataArray(yrep, dims=("chain", "draw", "obs_id"))})
    obs = xr.Dataset({"y": xr.DataArray(d.y, dims=("obs_id",))})
    return az.InferenceData(posterior_predictive=pp, observed_data=obs)


def ppc(fit, *, kind: str = "kde", num_pp_samples: int = 100, random_seed=None, ax=None, figsize=None):
    """Posterior predictive check: the data's distribution among replicates.

    Draws replicated data sets from the posterior
    (:func:`posterior_predictive`) and compares their densities (or
    cumulative distributions) with the observed response (ArviZ
    ``plot_ppc``).

    Parameters
    ----------
    fit : BayesFit
    kind : {"kde", "cumulative", "scatter"}
    num_pp_samples : int
        Replicated data sets drawn.
    random_seed : int, optional
    ax : matplotlib.axes.Axes, optional
    figsize : tuple, optional

    Returns
    -------
    matplotlib.figure.Figure
    """
    _need_posterior(fit, "ppc")
    _check_ppc_kind("ppc", kind)
    idata = posterior_predictive(fit, num_pp_samples, random_seed)
    fig, ax = _ppc_axes(idata, "posterior", kind, num_pp_samples, random_seed, ax, figsize)
    ax.set_xlabel(_response_name(fit))
    ax.set_title(f"Posterior predictive check: {num_pp_samples} replicated data sets vs the data", fontsize=10)
    return fig


def _check_ppc_kind(name: str, kind: str) -> None:
    if kind not in ("kde", "cumulative", "scatter"):
        raise PlotError(f"{name}: kind must be 'kde', 'cumulative' or 'scatter', not {kind!r}")


def _ppc_axes(idata, group: str, kind: str, draws: int, random_seed, ax, figsize):
    """ArviZ's ``plot_ppc`` of ``group`` on a new (or the given) axes, labelled."""
    import arviz as az

    fig, ax = _new_figure(figsize or (7.5, 4.5), ax)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)
        az.plot_ppc(idata, group=group, kind=kind, num_pp_samples=draws, random_seed=random_seed, ax=ax,
                    textsize=9)
    ax.set_ylabel("density" if kind == "kde" else ("cumulative probability" if kind == "cumulative" else ""))
    _uniform_text(fig)  # ArviZ draws its tick labels larger than its other text
    return fig, ax


def prior_predictive(model, draws: int = 100, *, kind: str = "kde", random_seed=None, ax=None, figsize=None):
    """Prior predictive check: data sets simulated from the priors against the data.

    What the priors say about the response before seeing it (ArviZ
    ``plot_ppc`` on :meth:`hierlm.Model.sample_prior_predictive`): with
    sensible priors the simulated data sets cover the data's range without
    being orders of magnitude wider.

    Parameters
    ----------
    model : hierlm.Model
    draws : int
        Simulated data sets.
    kind : {"kde", "cumulative", "scatter"}
    random_seed : int, optional
    ax : matplotlib.axes.Axes, optional
    figsize : tuple, optional

    Returns
    -------
    matplotlib.figure.Figure
    """
    import arviz as az

    _check_ppc_kind("prior_predictive", kind)
    idata = model.sample_prior_predictive(draws=draws, random_seed=random_seed)
    fig, ax = _ppc_axes(idata, "prior", kind, draws, random_seed, ax, figsize)
    y = idata.observed_data["y"].to_numpy().ravel()
    if kind == "kde":  # ArviZ draws no observed line for the prior group
        az.plot_kde(y, ax=ax, plot_kwargs={"color": "black", "linewidth": 2}, label="Observed")
    elif kind == "cumulative":
        ys = np.sort(y)
        ax.plot(ys, np.arange(1, ys.size + 1) / ys.size, color="black", linewidth=2, label="Observed")
    ax.legend(fontsize=8)
    ax.set_xlabel(str(model.design.formula.response))
    ax.set_title(f"Prior predictive check: {draws} data sets from the priors vs the data", fontsize=10)
    return fig


def trace(fit, var_names=None, *, kind: str = "trace", figsize=None):
    """Trace (or rank) plots of the posterior of the parameters (ArviZ ``plot_trace``).

    Parameters
    ----------
    fit : BayesFit
    var_names : str or list of str, optional
        Parameters to show, by name (``"Days"``, ``"sd Subject: Days"``,
        ``"sigma"``) or by posterior variable (``"fixef"``, ``"sd_Subject"``,
        ``"corr_Subject"``); default all (one row per parameter).
    kind : {"trace", "rank_bars", "rank_vlines"}
        What the right-hand column shows for each parameter.
    figsize : tuple, optional

    Returns
    -------
    matplotlib.figure.Figure
    """
    _need_posterior(fit, "trace")
    import arviz as az

    if kind not in ("trace", "rank_bars", "rank_vlines"):
        raise PlotError(f"trace: kind must be 'trace', 'rank_bars' or 'rank_vlines', not {kind!r}")
    idata = _posterior_idata(fit)
    names = _select_vars(idata, var_names, "trace")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)
        # one row per scalar: coefficients on different scales get their own axes
        axes = az.plot_trace(idata, var_names=names, kind=kind, compact=False, legend=False,
                             figsize=figsize or (10, 1.7 * len(names) + 0.6),
                             backend_kwargs={"layout": "constrained"})
    fig = np.asarray(axes).ravel()[0].figure
    for a in np.asarray(axes)[:, 0]:
        a.set_ylabel("density", fontsize=8)
        a.set_xlabel("value", fontsize=8)
    for a in np.asarray(axes)[:, 1]:
        a.set_xlabel("draw" if kind == "trace" else "rank (all chains)", fontsize=8)
        a.set_ylabel("value" if kind == "trace" else "chain", fontsize=8)
    _uniform_text(fig)
    fig.suptitle(f"{'Trace' if kind == 'trace' else 'Rank'} plots: {fit.formula}", fontsize=11)
    return fig


def rank(fit, var_names=None, *, figsize=None):
    """Rank plots of the posterior (ArviZ ``plot_rank``): uniform bars per
    chain mean the chains mix.

    Parameters
    ----------
    fit : BayesFit
    var_names : str or list of str, optional
        As for :func:`trace`.
    figsize : tuple, optional

    Returns
    -------
    matplotlib.figure.Figure
    """
    _need_posterior(fit, "rank")
    import arviz as az

    idata = _posterior_idata(fit)
    names = _select_vars(idata, var_names, "rank")
    ncols = min(3, len(names))
    nrows = math.ceil(len(names) / ncols)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)
        axes = az.plot_rank(idata, var_names=names, grid=(nrows, ncols),
                            figsize=figsize or (3.6 * ncols, 2.6 * nrows + 0.5),
                            backend_kwargs={"layout": "constrained"})
    fig = np.asarray(axes).ravel()[0].figure
    _uniform_text(fig)
    fig.suptitle(f"Rank plots: {fit.formula}", fontsize=11)
    return fig


def _uniform_text(fig, title: int = 9, label: int = 8) -> None:
    """One font size for every panel's title, axis labels and tick labels (ArviZ mixes
    them), long titles wrapped so that none is cut at the figure's edge."""
    import textwrap

    for a in fig.axes:
        if not a.get_visible():
            continue
        t = a.get_title()
        if t:
            a.set_title("\n".join(textwrap.wrap(t, 38)) or t, fontsize=title)
        a.xaxis.label.set_size(label)
        a.yaxis.label.set_size(label)
        a.tick_params(labelsize=label)


def _component_draws(obj, var_names) -> tuple[dict, str]:
    """Draws per variance component: ``(name -> 1-D array, what they are)``."""
    if hasattr(obj, "t") and hasattr(obj, "t0"):  # a parametric bootstrap (boot_mer, confint_boot)
        draws = {str(c): obj.t[c].to_numpy(dtype=float) for c in obj.t.columns}
        what = f"parametric bootstrap, {obj.nsim} refits"
    else:
        if not hasattr(obj, "design"):
            raise PlotError("ridge: give a posterior fit (fit('nuts')) or a bootstrap (hierlm.boot_mer), "
                            f"not {type(obj).__name__}")
        _need_posterior(obj, "ridge")
        sets = _parameter_sets(obj)
        draws = {k: v.to_numpy().ravel() for k, v in sets["standard deviations"].items()}
        if var_names is not None and "correlations" in sets:
            draws.update({k: v.to_numpy().ravel() for k, v in sets["correlations"].items()})
        what = "posterior"
    if var_names is not None:
        want = [var_names] if isinstance(var_names, str) else list(var_names)
        bad = [v for v in want if v not in draws]
        if bad:
            raise PlotError(f"ridge: no component {bad[0]!r}; available: {', '.join(draws)}")
        draws = {k: draws[k] for k in want}
    return draws, what


def ridge(obj, var_names=None, *, interval: float = 0.95, figsize=None):
    """Ridge plot of the variance components: one density per SD (and sigma),
    stacked on a shared axis, with the median and an equal-tailed interval.

    Parameters
    ----------
    obj : BayesFit or BootResult
        A posterior fit (its SDs and sigma; correlations on request), or
        :func:`hierlm.boot_mer`'s replicates (every column of ``t``).
    var_names : str or list of str, optional
        Components to draw by name (``"sd Subject: Days"``, ``"sigma"``, a
        bootstrap column); default the SDs and sigma, or every bootstrap column.
    interval : float
    figsize : tuple, optional

    Returns
    -------
    matplotlib.figure.Figure
        The densities are filled areas with gid ``"ridge-density"``, the
        medians a scatter with gid ``"ridge-median"``.
    """
    from scipy import stats

    interval = _check_interval(interval)
    draws, what = _component_draws(obj, var_names)
    names = list(draws)
    finite = {k: v[np.isfinite(v)] for k, v in draws.items()}
    lo = min(float(v.min()) for v in finite.values())
    hi = max(float(v.max()) for v in finite.values())
    pad = 0.03 * (hi - lo if hi > lo else 1.0)
    grid = np.linspace(lo - pad, hi + pad, 400)
    fig, ax = _new_figure(figsize or (8, 1.0 + 0.8 * len(names)), None)
    q = (0.5 - interval / 2, 0.5, 0.5 + interval / 2)
    medians = []
    for row, name in enumerate(names):
        v = finite[name]
        base = len(names) - 1 - row
        if v.size > 1 and np.ptp(v) > 0:
            dens = stats.gaussian_kde(v)(grid)
            dens = 0.9 * dens / dens.max()
            ax.fill_between(grid, base, base + dens, color=PARTIAL_COLOR, alpha=0.55, lw=0.8, edgecolor="white",
                            zorder=len(names) - row, gid="ridge-density")
        a, med, b = np.quantile(v, q)
        ax.plot([a, b], [base, base], color="black", lw=2, solid_capstyle="butt", zorder=len(names) + 1,
                gid="ridge-interval")
        medians.append((med, base))
    ax.scatter(*zip(*medians), color="white", edgecolor="black", s=28, zorder=len(names) + 2, gid="ridge-median")
    ax.set_yticks(np.arange(len(names)))
    ax.set_yticklabels(names[::-1], fontsize=9)
    ax.set_ylim(-0.3, len(names) - 0.05)
    if var_names is not None or not hasattr(obj, "design"):
        xlabel = "value"  # chosen components, or whatever a bootstrap's function returned
    elif obj.family.is_gaussian:
        xlabel = f"standard deviation ({_response_name(obj)} units)"
    else:
        xlabel = f"standard deviation (link scale: {obj.family.link})"
    ax.set_xlabel(xlabel)
    ax.set_title(f"Variance components: {what} ({_ci_label(interval)} interval, median)", fontsize=10)
    ax.grid(axis="x", alpha=0.3)
    return fig

