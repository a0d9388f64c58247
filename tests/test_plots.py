"""hierlm.plots: each plot's drawn content, for REML, MAP and NUTS fits of
sleepstudy and the crossed Penicillin model, plus bad input and the CLI."""

import runpy
import subprocess
import sys
import warnings
from pathlib import Path

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import pytest  # noqa: E402
from matplotlib.collections import PathCollection  # noqa: E402
from matplotlib.patches import Ellipse, FancyArrowPatch  # noqa: E402

import hierlm  # noqa: E402
from hierlm import plots  # noqa: E402
from hierlm.cli import main  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
SLEEP = "Reaction ~ Days + (Days | Subject)"
PEN = "diameter ~ 1 + (1 | plate) + (1 | sample)"


@pytest.fixture(autouse=True)
def close_figures():
    yield
    plt.close("all")


@pytest.fixture(scope="module")
def sleep_data():
    return hierlm.datasets.load("sleepstudy")


@pytest.fixture(scope="module")
def reml(sleep_data):
    return hierlm.lmer(SLEEP, sleep_data)


@pytest.fixture(scope="module")
def pen():
    return hierlm.lmer(PEN, hierlm.datasets.load("Penicillin"))


@pytest.fixture(scope="module")
def nuts(sleep_data):
    pytest.importorskip("pymc")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # short chains: R-hat / ESS warnings expected
        return hierlm.Model(SLEEP, sleep_data).fit("nuts", draws=200, tune=200, chains=2, progressbar=False,
                                                   random_seed=11)


@pytest.fixture(scope="module")
def teaching():
    """The 20-group simulation of examples/partial_pooling.py, fit by REML."""
    ns = runpy.run_path(str(ROOT / "examples" / "partial_pooling.py"), run_name="example")
    data = ns["simulate"]()
    return hierlm.lmer("y ~ 1 + (1 | g)", data), ns["SIZES"]


def by_gid(ax, gid, kind=None):
    arts = [a for a in ax.get_children() if a.get_gid() == gid]
    return [a for a in arts if kind is None or isinstance(a, kind)]


def offsets(ax, gid):
    (coll,) = by_gid(ax, gid, PathCollection)
    return np.asarray(coll.get_offsets())


def legend_texts(ax):
    leg = ax.get_legend()
    assert leg is not None, "legend missing"
    return [t.get_text() for t in leg.get_texts()]


# ---- shrinkage -------------------------------------------------------------
def test_shrinkage_2d_sleepstudy(reml, sleep_data):
    fig = reml.plot("shrinkage")
    (ax,) = fig.axes
    arrows = by_gid(ax, "shrinkage-arrow", FancyArrowPatch)
    assert len(arrows) == 18
    ellipses = by_gid(ax, "population-ellipse", Ellipse)
    assert len(ellipses) == 2  # 50% and 95% contours
    assert all(np.allclose(e.center, reml.fixef[["(Intercept)", "Days"]]) for e in ellipses)
    assert ellipses[1].width > ellipses[0].width
    # no pooling = each subject's own least-squares line
    own = np.array([np.polyfit(g["Days"], g["Reaction"], 1)[::-1]
                    for _, g in sleep_data.groupby("Subject", observed=True)])
    np.testing.assert_allclose(offsets(ax, "no-pooling"), own, rtol=1e-8)
    # partial pooling = coef(); the arrows run from the first to the second
    part = reml.coef()["Subject"][["(Intercept)", "Days"]].to_numpy()
    np.testing.assert_allclose(offsets(ax, "partial-pooling"), part)
    np.testing.assert_allclose(arrows[0]._posA_posB, [tuple(own[0]), tuple(part[0])])
    # complete pooling: one regression ignoring subjects
    ols = np.polyfit(sleep_data["Days"], sleep_data["Reaction"], 1)[::-1]
    np.testing.assert_allclose(offsets(ax, "complete-pooling")[0], ols)
    assert ax.get_xlabel() == "intercept per Subject" and ax.get_ylabel() == "slope of Days per Subject"
    assert "(REML)" in ax.get_title() and "LMMFit" not in ax.get_title()
    labels = legend_texts(ax)
    assert any(t.startswith("no pooling") for t in labels) and any(t.startswith("partial pooling") for t in labels)
    assert any("complete pooling" in t for t in labels) and any("95% contour" in t for t in labels)


def test_shrinkage_1d_small_groups_move_most(teaching):
    fit, sizes = teaching
    fig = plots.shrinkage(fit, "g")
    (ax,) = fig.axes
    assert len(by_gid(ax, "shrinkage-arrow", FancyArrowPatch)) == 20
    assert not by_gid(ax, "population-ellipse")
    # point area grows with the group size
    areas = by_gid(ax, "no-pooling", PathCollection)[0].get_sizes()
    est = plots.pooling_estimates(fit, "g")
    assert list(est["n"]) == sizes
    assert np.all(np.diff(areas[np.argsort(est["n"].to_numpy(), kind="stable")]) >= 0)
    # the share of the way to the population mean falls with n (sigma^2 / (n tau^2 + sigma^2))
    own = est["no_pooling"]["(Intercept)"].to_numpy()
    model = est["partial_pooling"]["(Intercept)"].to_numpy()
    pulled = (model - own) / (fit.fixef["(Intercept)"] - own)
    tau2, sig2 = fit.varcorr["vcov"].iloc[0], fit.sigma**2
    np.testing.assert_allclose(pulled, sig2 / (np.array(sizes) * tau2 + sig2), rtol=1e-6)
    moved = np.abs(model - own)
    assert moved[0] == moved.max()  # the group of 1 moves furthest
    # no pooling for an intercept: the group means
    np.testing.assert_allclose(own, fit.model.data.groupby("g", observed=True)["y"].mean().to_numpy())
    ticks = [t.get_text() for t in ax.get_yticklabels()]
    assert len(ticks) == 20 and any("(n=1)" in t for t in ticks) and any("(n=200)" in t for t in ticks)
    assert ax.get_xlabel() == "mean of y per g"
    assert any("group size n = 1 " in t for t in legend_texts(ax))


def test_shrinkage_crossed_penicillin(pen):
    data = hierlm.datasets.load("Penicillin")
    for group, n in (("plate", 24), ("sample", 6)):
        fig = pen.plot("shrinkage", group=group)
        ax = fig.axes[0]
        assert len(by_gid(ax, "shrinkage-arrow", FancyArrowPatch)) == n
        means = data.groupby(group, observed=True)["diameter"].mean()
        np.testing.assert_allclose(np.sort(offsets(ax, "no-pooling")[:, 0]), np.sort(means.to_numpy()))
        assert ax.get_xlabel() == f"mean of diameter per {group}"


def test_shrinkage_1d_slope_and_ax(reml):
    fig, ax = plt.subplots()
    out = plots.shrinkage(reml, "Subject", terms="Days", ax=ax)
    assert out is fig
    assert len(by_gid(ax, "shrinkage-arrow", FancyArrowPatch)) == 18
    np.testing.assert_allclose(np.sort(offsets(ax, "partial-pooling")[:, 0]),
                               np.sort(reml.coef()["Subject"]["Days"].to_numpy()))


def test_shrinkage_skips_groups_too_small_for_own_fit(sleep_data):
    data = sleep_data[~((sleep_data["Subject"] == "308") & (sleep_data["Days"] > 0))]
    fit = hierlm.lmer(SLEEP, data)
    with pytest.warns(UserWarning, match="1 group"):
        fig = fit.plot("shrinkage")
    ax = fig.axes[0]
    assert len(by_gid(ax, "shrinkage-arrow", FancyArrowPatch)) == 17
    assert any("1 group(s) too small" in t for t in legend_texts(ax))


def test_shrinkage_bad_input(reml, pen):
    with pytest.raises(plots.PlotError, match=r"2-D shrinkage needs two coefficients varying by 'plate'.*dim=1"):
        pen.plot("shrinkage", group="plate", dim=2)
    with pytest.raises(hierlm.HierlmError, match=r"'Patient' is not a grouping factor.*'Subject'"):
        reml.plot("shrinkage", group="Patient")
    with pytest.raises(plots.PlotError, match=r"'Hours' is not a coefficient varying by 'Subject'.*Days"):
        reml.plot("shrinkage", terms="Hours")


def test_shrinkage_clip_keeps_extreme_groups_at_the_edge(sleep_data):
    # subject 309 keeps two days, the second 400 ms up: its own slope is far out
    d = sleep_data[~((sleep_data.Subject.astype(str) == "309") & (sleep_data.Days > 1))].copy()
    d.loc[d.Subject.astype(str) == "309", "Reaction"] += np.array([0.0, 400.0])
    fit = hierlm.lmer(SLEEP, d)
    ax = fit.plot("shrinkage", dim=1, terms="Days", clip=0.9).axes[0]
    lo, hi = ax.get_xlim()
    clipped = offsets(ax, "no-pooling-clipped")
    assert len(clipped) >= 1 and np.all(np.isclose(clipped[:, 0], lo) | np.isclose(clipped[:, 0], hi))
    inside = offsets(ax, "no-pooling")
    assert len(inside) + len(clipped) == 18  # none dropped
    assert np.all((inside[:, 0] > lo) & (inside[:, 0] < hi))
    # every partial-pooling point stays inside the limits
    par = offsets(ax, "partial-pooling")
    assert np.all((par[:, 0] >= lo) & (par[:, 0] <= hi))
    assert any(f"{len(clipped)} beyond the axis, drawn at its edge" in t for t in legend_texts(ax))
    # without clip the extreme own slope sets the axis
    ax0 = fit.plot("shrinkage", dim=1, terms="Days").axes[0]
    assert ax0.get_xlim()[1] - ax0.get_xlim()[0] > 1.2 * (hi - lo)
    # annotate=k labels the k groups that moved furthest; a list, those levels
    ax2 = fit.plot("shrinkage", clip=0.9, annotate=2).axes[0]
    labels = [t.get_text() for t in ax2.texts if t.get_gid() == "group-label"]
    assert len(labels) == 2 and "309" in labels
    ax3 = fit.plot("shrinkage", annotate=["308", "335"]).axes[0]
    assert sorted(t.get_text() for t in ax3.texts if t.get_gid() == "group-label") == ["308", "335"]
    with pytest.raises(plots.PlotError, match="clip must be a fraction"):
        fit.plot("shrinkage", clip=95)
    with pytest.raises(plots.PlotError, match="not in 'Subject'"):
        fit.plot("shrinkage", annotate=["999"])


# ---- caterpillar -----------------------------------------------------------
def test_caterpillar_reml(reml):
    fig = reml.plot("caterpillar")
    assert len(fig.axes) == 2
    re = reml.ranef(condvar=True)["Subject"]
    for ax, term in zip(fig.axes, ["(Intercept)", "Days"]):
        pts = offsets(ax, "caterpillar-point")
        assert pts.shape == (18, 2)
        np.testing.assert_allclose(np.sort(pts[:, 0]), np.sort(re["condval"][term].to_numpy()))
        assert ax.get_title() == f"Subject: {term}"
        assert ax.get_xlabel() == "conditional mode (95% interval)"
    # sorted by the intercepts, the same order in the Days panel
    assert np.all(np.diff(offsets(fig.axes[0], "caterpillar-point")[:, 0]) >= 0)
    order = [t.get_text() for t in fig.axes[0].get_yticklabels()]
    np.testing.assert_allclose(offsets(fig.axes[1], "caterpillar-point")[:, 0],
                               re["condval"]["Days"].loc[order].to_numpy())
    # interval = condval +- 1.96 condsd
    (bars,) = by_gid(fig.axes[0], "caterpillar-interval")
    seg = bars.get_segments()
    widths = np.array([s[1][0] - s[0][0] for s in seg])
    np.testing.assert_allclose(widths, 2 * 1.959964 * re["condsd"]["(Intercept)"].loc[order].to_numpy(), rtol=1e-5)


def test_caterpillar_extremes_top_and_highlight(reml):
    import matplotlib.colors as mcolors

    re = reml.ranef(condvar=True)["Subject"]
    est, sd = re["condval"]["(Intercept)"], re["condsd"]["(Intercept)"]
    fig = reml.plot("caterpillar", terms="(Intercept)", extremes=3)
    ax = fig.axes[0]
    pts = offsets(ax, "caterpillar-point")[:, 0]
    s = np.sort(est.to_numpy())
    np.testing.assert_allclose(pts, np.concatenate([s[:3], s[-3:]]))
    assert ax.get_title() == "Subject: (Intercept) (6 of 18 levels)"
    assert len(by_gid(ax, "caterpillar-gap")) == 1
    labels = [t.get_text() for t in ax.get_yticklabels()]
    assert labels == list(est.sort_values().index[:3]) + list(est.sort_values().index[-3:])
    # top: the largest |effects|, still in sorted order
    pts = offsets(reml.plot("caterpillar", terms="(Intercept)", top=4).axes[0], "caterpillar-point")[:, 0]
    np.testing.assert_allclose(pts, np.sort(est.to_numpy()[np.argsort(np.abs(est.to_numpy()))[-4:]]))
    # highlighted: the levels whose 95% interval excludes 0, and only those
    fig = reml.plot("caterpillar", terms="(Intercept)")
    ax = fig.axes[0]
    (sc,) = by_gid(ax, "caterpillar-point")
    hot = np.all(np.isclose(sc.get_facecolors(), mcolors.to_rgba(plots._common.HIGHLIGHT_COLOR)), axis=1)
    order = [t.get_text() for t in ax.get_yticklabels()]
    expected = (np.abs(est.loc[order]) > 1.959964 * sd.loc[order]).to_numpy()
    assert hot.any() and not hot.all()
    np.testing.assert_array_equal(hot, expected)
    assert f"interval excludes 0: {expected.sum()} level(s)" in legend_texts(ax)
    (sc,) = by_gid(reml.plot("caterpillar", terms="(Intercept)", highlight=False).axes[0], "caterpillar-point")
    assert len({tuple(c) for c in sc.get_facecolors()}) == 1
    with pytest.raises(plots.PlotError, match="top= or extremes=, not both"):
        reml.plot("caterpillar", top=2, extremes=2)
    with pytest.raises(plots.PlotError, match="positive whole number"):
        reml.plot("caterpillar", top=0)


def test_qqcaterpillar_against_normal_quantiles(reml, pen):
    from scipy import stats

    fig = reml.plot("qqcaterpillar")
    re = reml.ranef(condvar=True)["Subject"]
    q = stats.norm.ppf((np.arange(1, 19) - 0.5) / 18)  # R's ppoints(18)
    for ax, term, sd in zip(fig.axes, ["(Intercept)", "Days"], reml.varcorr["sdcor"].iloc[:2]):
        pts = offsets(ax, "qqcaterpillar-point")
        np.testing.assert_allclose(pts[:, 0], np.sort(re["condval"][term].to_numpy()))
        np.testing.assert_allclose(pts[:, 1], q)
        (line,) = by_gid(ax, "qqcaterpillar-line")
        np.testing.assert_allclose(line.get_xdata(), np.array([q[0], q[-1]]) * sd)
        assert ax.get_title() == f"Subject: {term} (18 levels)"
    # six or fewer levels: ppoints' 3/8 rule
    ax = pen.plot("qqcaterpillar", group="sample").axes[0]
    np.testing.assert_allclose(offsets(ax, "qqcaterpillar-point")[:, 1],
                               stats.norm.ppf((np.arange(1, 7) - 3 / 8) / (6 + 1 - 3 / 4)))
    assert "qqcaterpillar" in plots.KINDS


def test_caterpillar_crossed(pen):
    fig = pen.plot("caterpillar")
    assert [ax.get_title() for ax in fig.axes] == ["plate: (Intercept)", "sample: (Intercept)"]
    assert [len(offsets(ax, "caterpillar-point")) for ax in fig.axes] == [24, 6]
    assert [ax.get_ylabel() for ax in fig.axes] == ["plate", "sample"]
    fig = plots.caterpillar(pen, group="sample")
    assert len(fig.axes) == 1 and len(offsets(fig.axes[0], "caterpillar-point")) == 6


def test_caterpillar_bad_input(reml):
    with pytest.raises(plots.PlotError, match="ax= needs exactly one panel"):
        plots.caterpillar(reml, ax=plt.subplots()[1])
    with pytest.raises(plots.PlotError, match=r"'Hours' is not a random effect of 'Subject'"):
        plots.caterpillar(reml, "Subject", terms="Hours")


# ---- diagnostics -----------------------------------------------------------
def test_diagnostics_reml(reml):
    fig = reml.plot("diagnostics", covariate="Days")
    titles = [ax.get_title() for ax in fig.axes]
    assert titles == ["Residuals vs fitted", "Normal QQ plot of residuals", "Scale-location",
                      "Normal QQ: random effects Subject: (Intercept)", "Normal QQ: random effects Subject: Days",
                      "Residuals vs Days"]
    rvf, qq, sl = fig.axes[:3]
    np.testing.assert_allclose(offsets(rvf, "residual-point")[:, 0], reml.fitted().to_numpy())
    np.testing.assert_allclose(offsets(rvf, "residual-point")[:, 1],
                               reml.residuals(type="pearson", scaled=True).to_numpy())
    assert by_gid(rvf, "smoother") and by_gid(sl, "smoother") and by_gid(fig.axes[5], "smoother")
    assert len(offsets(qq, "qq-point")) == 180 and by_gid(qq, "qq-line")
    assert len(offsets(fig.axes[3], "ranef-qq-point")) == 18
    assert rvf.get_xlabel() == "fitted value" and rvf.get_ylabel() == "Pearson residual"
    assert sl.get_ylabel() == "√|Pearson residual|"
    assert qq.get_xlabel() == "standard normal quantile"


def test_diagnostics_crossed_and_factor_covariate(pen):
    fig = pen.plot("diagnostics", covariate="sample")
    assert len(fig.axes) == 6
    assert [ax.get_title() for ax in fig.axes[3:5]] == ["Normal QQ: random effects plate: (Intercept)",
                                                        "Normal QQ: random effects sample: (Intercept)"]
    assert [t.get_text() for t in fig.axes[5].get_xticklabels()] == list("ABCDEF")  # boxes per sample
    with pytest.raises(plots.PlotError, match="'colour' is not a column of the data"):
        pen.plot("diagnostics", covariate="colour")


# ---- facets -------------------------------------------------------------------
def test_facets_sleepstudy(reml, sleep_data):
    fig = reml.plot("facets")
    assert len(fig.axes) == 18
    ax = fig.axes[0]
    assert ax.get_title() == "308 (n=10)"
    assert len(offsets(ax, "facet-data")) == 10
    (cond,) = by_gid(ax, "conditional-line")
    (pop,) = by_gid(ax, "population-line")
    new = sleep_data.iloc[:2].assign(Days=[cond.get_xdata()[0], cond.get_xdata()[-1]], Subject=["308", "308"])
    np.testing.assert_allclose([cond.get_ydata()[0], cond.get_ydata()[-1]], reml.predict(new))
    np.testing.assert_allclose([pop.get_ydata()[0], pop.get_ydata()[-1]], reml.predict(new, re_form="~0"))
    assert fig.axes[12].get_xlabel() == "Days" and fig.axes[0].get_ylabel() == "Reaction"
    assert [t.get_text() for t in fig.legends[0].get_texts()] == [
        "data", "Subject fit (conditional)", "population (marginal)"]


def test_facets_crossed_factor_x(pen):
    fig = pen.plot("facets", group="plate")
    assert len(fig.axes) == 24
    ax = fig.axes[0]
    assert len(offsets(ax, "facet-data")) == 6
    (cond,) = by_gid(ax, "conditional-line")
    assert len(cond.get_xdata()) == 6  # one point per penicillin sample
    fig.canvas.draw()
    assert [t.get_text() for t in fig.axes[-1].get_xticklabels()] == list("ABCDEF")
    assert fig.axes[-1].get_xlabel() == "sample"
    with pytest.raises(plots.PlotError, match="x='dose': it is not a covariate"):
        pen.plot("facets", x="dose")
    with pytest.raises(plots.PlotError, match=r"level\(s\) \['zz'\] not in grouping factor 'plate'"):
        pen.plot("facets", levels=["zz"])


def test_facets_nested_group_includes_parent_effect():
    fit = hierlm.lmer("strength ~ 1 + (1 | batch/cask)", hierlm.datasets.load("Pastes"))
    group = next(g for g in fit.ngroups if ":" in g)
    fig = fit.plot("facets", group=group)
    assert len(fig.axes) == 30
    ax = fig.axes[0]
    level = ax.get_title().split(" ")[0]
    (cond,) = by_gid(ax, "conditional-line")
    (pop,) = by_gid(ax, "population-line")
    re = fit.ranef()
    parent = next(g for g in re if g != group)
    batch = next(p for p in level.split(":") if p in re[parent].index)
    expected = fit.fixef["(Intercept)"] + re[group].loc[level, "(Intercept)"] + re[parent].loc[batch, "(Intercept)"]
    np.testing.assert_allclose(cond.get_ydata(), expected)
    np.testing.assert_allclose(pop.get_ydata(), fit.fixef["(Intercept)"])
    with pytest.raises(plots.PlotError, match="it forms the grouping factor"):
        fit.plot("facets", group=group, x=parent)


@pytest.fixture(scope="module")
def chicks():
    # Diet varies between chicks (constant within each): the design of issue 16
    cw = hierlm.datasets.load("ChickWeight")
    return cw, hierlm.lmer("weight ~ Time * Diet + (Time | Chick)", cw)


def test_facets_use_each_groups_between_group_factor(chicks):
    _, fit = chicks
    fig = fit.plot("facets", levels=["1", "46"])  # chick 1 on diet 1, chick 46 on diet 4
    for ax, chick, diet in zip(fig.axes, ["1", "46"], ["1", "4"]):
        assert ax.get_title() == f"{chick} (n=12, Diet {diet})"
        (cond,) = by_gid(ax, "conditional-line")
        (pop,) = by_gid(ax, "population-line")
        new = pd.DataFrame({"Time": cond.get_xdata(), "Chick": chick, "Diet": diet})
        np.testing.assert_allclose(cond.get_ydata(), fit.predict(new), rtol=1e-10)
        np.testing.assert_allclose(pop.get_ydata(), fit.predict(new, re_form="NA"), rtol=1e-10)
    labels = [t.get_text() for t in fig.legends[0].get_texts()]
    assert "population (marginal, at the Chick's Diet)" in labels


def test_facets_three_pooling_lines(reml, sleep_data):
    fig = reml.plot("facets", pooling=True, levels=["308", "335"])
    days = sleep_data["Days"].to_numpy(dtype=float)
    y = sleep_data["Reaction"].to_numpy()
    complete = np.polyfit(days, y, 1)  # one regression, subjects ignored
    re = reml.coef()["Subject"]
    for ax, subject in zip(fig.axes, ["308", "335"]):
        rows = sleep_data["Subject"].astype(str).to_numpy() == subject
        own = np.polyfit(days[rows], y[rows], 1)  # the subject's own least-squares line
        (nop,) = by_gid(ax, "no-pooling-line")
        (comp,) = by_gid(ax, "complete-pooling-line")
        (part,) = by_gid(ax, "conditional-line")
        x = nop.get_xdata()
        np.testing.assert_allclose(nop.get_ydata(), np.polyval(own, x), rtol=1e-9)
        np.testing.assert_allclose(comp.get_ydata(), np.polyval(complete, x), rtol=1e-9)
        np.testing.assert_allclose(part.get_ydata(), re.loc[subject, "(Intercept)"] + re.loc[subject, "Days"] * x,
                                   rtol=1e-9)
        assert not by_gid(ax, "population-line")
    labels = [t.get_text() for t in fig.legends[0].get_texts()]
    assert "partial pooling: the model" in labels and "no pooling: the Subject's own fit" in labels


# ---- predictions ---------------------------------------------------------------
def test_predictions_reml(reml, sleep_data):
    fig = reml.plot("predictions", levels=["308", "335"])
    (ax,) = fig.axes
    (pop,) = by_gid(ax, "population-line")
    conds = by_gid(ax, "conditional-line")
    assert len(conds) == 2 and len(by_gid(ax, "conditional-band")) == 2 and by_gid(ax, "population-band")
    x = pop.get_xdata()
    np.testing.assert_allclose(pop.get_ydata(), reml.fixef["(Intercept)"] + reml.fixef["Days"] * x)
    new = sleep_data.iloc[: len(x)].assign(Days=x, Subject="335")
    np.testing.assert_allclose(conds[1].get_ydata(), reml.predict(new))
    # the marginal band is the Wald interval of X beta
    band = by_gid(ax, "population-band")[0].get_paths()[0].vertices
    X = np.column_stack([np.ones_like(x), x])
    se = np.sqrt(np.einsum("ij,jk,ik->i", X, reml.vcov.to_numpy(), X))
    assert np.isclose(band[:, 1].max(), (pop.get_ydata() + 1.959964 * se).max(), rtol=1e-5)
    assert ax.get_xlabel() == "Days" and ax.get_ylabel() == "Reaction"
    labels = legend_texts(ax)
    assert "Subject 335 (conditional)" in labels and any("population (marginal" in t for t in labels)


def test_predictions_default_levels_and_crossed(reml, pen):
    ax = reml.plot("predictions").axes[0]
    assert len(by_gid(ax, "conditional-line")) == 3
    fig = pen.plot("predictions", group="plate", levels=["a"])
    ax = fig.axes[0]
    assert ax.get_xlabel() == "sample"
    assert [t.get_text() for t in ax.get_xticklabels()] == list("ABCDEF")


def test_predictions_conditional_curves_use_the_groups_diet(chicks):
    _, fit = chicks
    ax = fit.plot("predictions", levels=["46"]).axes[0]
    (cond,) = by_gid(ax, "conditional-line")
    new = pd.DataFrame({"Time": cond.get_xdata(), "Chick": "46", "Diet": "4"})
    np.testing.assert_allclose(cond.get_ydata(), fit.predict(new), rtol=1e-10)
    labels = legend_texts(ax)
    assert "Chick 46 (conditional, Diet 4)" in labels
    # the one population curve says where Diet is held
    assert any(t.startswith("population (marginal over Chick; at Diet 1)") for t in labels)


def test_predictions_by_draws_one_marginal_curve_per_level(chicks):
    _, fit = chicks
    ax = fit.plot("predictions", by="Diet").axes[0]
    curves = by_gid(ax, "population-Diet-line")
    assert len(curves) == 4 and len(by_gid(ax, "population-Diet-band")) == 4
    # overlapping coloured bands: a light fill and their limits as thin lines of the band's colour
    edges = by_gid(ax, "population-Diet-edge")
    assert len(edges) == 8 and all(e.get_color() == c.get_color() for e, c in zip(edges[::2], curves))
    assert all(b.get_alpha() <= 0.08 for b in by_gid(ax, "population-Diet-band"))
    assert not by_gid(ax, "conditional-line")
    for line, diet in zip(curves, ["1", "2", "3", "4"]):
        assert line.get_label() == f"Diet {diet} (marginal over Chick)"
        new = pd.DataFrame({"Time": line.get_xdata(), "Chick": "1", "Diet": diet})
        np.testing.assert_allclose(line.get_ydata(), fit.predict(new, re_form="NA"), rtol=1e-10)
    assert len({line.get_color() for line in curves}) == 4
    ax = fit.plot("predictions", by="Diet", levels=["46"]).axes[0]
    assert len(by_gid(ax, "conditional-line")) == 1
    with pytest.raises(plots.PlotError, match="it is the x axis"):
        fit.plot("predictions", by="Time")
    with pytest.raises(plots.PlotError, match=r"not a factor of the model's fixed part; use one of \['Diet'\]"):
        fit.plot("predictions", by="Chick")


def test_map_fit_plots(sleep_data):
    fit = hierlm.Model(SLEEP, sleep_data).fit("map")
    assert len(by_gid(fit.plot("shrinkage").axes[0], "shrinkage-arrow")) == 18
    assert len(fit.plot("caterpillar").axes) == 2
    assert len(by_gid(fit.plot("predictions", levels=[]).axes[0], "population-line")) == 1
    with pytest.raises(plots.PlotError, match="needs a posterior fit"):
        fit.plot("forest")


# ---- Bayesian-only plots on non-posterior fits, unknown kinds ----------------
@pytest.mark.parametrize("kind", ["forest", "ppc", "trace", "rank", "ridge"])
def test_posterior_plots_refuse_reml(reml, kind):
    with pytest.raises(plots.PlotError, match=r"needs a posterior fit \(fit\('nuts'\)\)") as info:
        reml.plot(kind)
    assert "shrinkage, caterpillar, qqcaterpillar, diagnostics, facets, predictions" in str(info.value)
    assert isinstance(info.value, ValueError)


def test_unknown_kind(reml):
    with pytest.raises(plots.PlotError, match=r"unknown plot kind 'funnel'; valid kinds: shrinkage, .*rank"):
        reml.plot("funnel")
    assert plots.available(reml) == ["shrinkage", "caterpillar", "qqcaterpillar", "diagnostics", "facets", "predictions"]


# ---- NUTS ------------------------------------------------------------------------
def test_nuts_shrinkage_and_caterpillar(nuts):
    assert plots.available(nuts) == list(plots.KINDS)
    ax = nuts.plot("shrinkage").axes[0]
    assert len(by_gid(ax, "shrinkage-arrow", FancyArrowPatch)) == 18
    assert len(by_gid(ax, "population-ellipse", Ellipse)) == 2
    assert by_gid(ax, "partial-interval")  # posterior intervals on the partial-pooling points
    est = plots.pooling_estimates(nuts, "Subject")
    assert (est["partial_lower"] < est["partial_pooling"]).all().all()
    assert (est["partial_upper"] > est["partial_pooling"]).all().all()
    fig = nuts.plot("caterpillar")
    assert [len(offsets(a, "caterpillar-point")) for a in fig.axes] == [18, 18]
    assert fig.axes[0].get_xlabel() == "posterior mean (95% interval)"


def test_nuts_forest(nuts):
    fig = nuts.plot("forest")
    titles = [ax.get_title() for ax in fig.axes]
    assert titles == ["intercept (95% HDI, IQR, median)", "fixed effects (95% HDI, IQR, median)",
                      "standard deviations (95% HDI, IQR, median)", "correlations (95% HDI, IQR, median)"]
    labels = " ".join(t.get_text() for ax in fig.axes for t in ax.get_yticklabels())
    for name in ("(Intercept)", "Days", "sd Subject: (Intercept)", "sd Subject: Days", "sigma",
                 "corr Subject: (Intercept), Days"):
        assert name in labels
    assert all(ax.get_xlabel() == "posterior value" for ax in fig.axes)


def test_nuts_ppc(nuts):
    fig = plots.ppc(nuts, num_pp_samples=20, random_seed=3)
    (ax,) = fig.axes
    assert len(ax.get_lines()) >= 22  # 20 replicates, the data, their mean
    assert ax.get_xlabel() == "Reaction"
    assert any("Observed" in t for t in legend_texts(ax))
    pp = plots.posterior_predictive(nuts, num_draws=20, random_seed=3)
    assert pp.posterior_predictive["y"].shape == (2, 10, 180)


def test_nuts_trace_rank_diagnostics_facets_predictions(nuts):
    fig = nuts.plot("trace")
    # fixef x 2, sd x 2, sigma, corr: one row (density, trace) each
    assert len(fig.axes) == 12
    assert "Trace plots" in fig._suptitle.get_text()
    fig = nuts.plot("rank", var_names=["sigma"])
    assert len(fig.axes) == 1
    # one title size and one label size across the panels, no title wider than its panel
    fig = nuts.plot("rank")
    shown = [a for a in fig.axes if a.get_visible() and a.get_title()]
    assert len(shown) == 6
    assert {a.title.get_fontsize() for a in shown} == {9.0}
    assert {t.get_fontsize() for a in shown for t in a.get_xticklabels() + [a.xaxis.label]} == {8.0}
    fig.canvas.draw()
    for a in shown:
        assert a.title.get_window_extent().width <= 1.05 * a.get_window_extent().width
    assert len(nuts.plot("diagnostics").axes) == 5
    assert len(nuts.plot("facets").axes) == 18
    ax = nuts.plot("predictions", predictive=True, levels=["308"]).axes[0]
    assert any("95% prediction interval" in t for t in legend_texts(ax))


def test_ridge_of_posterior_and_bootstrap(nuts, reml):
    fig = nuts.plot("ridge")
    ax = fig.axes[0]
    labels = [t.get_text() for t in ax.get_yticklabels()]
    assert labels == ["sigma", "sd Subject: Days", "sd Subject: (Intercept)"]  # bottom to top
    med = offsets(ax, "ridge-median")
    post = nuts.idata.posterior
    expected = [np.median(post["sd_Subject"].to_numpy()[..., 0]), np.median(post["sd_Subject"].to_numpy()[..., 1]),
                np.median(post["sigma"].to_numpy())]
    np.testing.assert_allclose(med[:, 0], expected)
    np.testing.assert_allclose(med[:, 1], [2, 1, 0])
    assert len(by_gid(ax, "ridge-density")) == 3
    # a bootstrap's replicates: every column of t, the interval its percentile interval
    boot = hierlm.boot_mer(reml, lambda f: pd.Series({"sd (Intercept)": f.varcorr["sdcor"].iloc[0],
                                                      "sigma": f.sigma}), nsim=40, seed=1)
    ax = plots.ridge(boot, interval=0.9).axes[0]
    (iv, _) = by_gid(ax, "ridge-interval")
    np.testing.assert_allclose(iv.get_xdata(), np.quantile(boot.t["sd (Intercept)"], [0.05, 0.95]))
    assert "parametric bootstrap, 40 refits" in ax.get_title()
    with pytest.raises(plots.PlotError, match="no component 'sd x'"):
        plots.ridge(boot, var_names="sd x")
    with pytest.raises(plots.PlotError, match="needs a posterior fit"):
        plots.ridge(reml)


# ---- CLI and imports -------------------------------------------------------------
def test_cli_plot(tmp_path, capsys):
    out = tmp_path / "shrink.png"
    assert main(["fit", SLEEP, "--data", "sleepstudy", "--plot", "shrinkage", "--out", str(out)]) == 0
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert f"wrote {out}" in capsys.readouterr().out
    folder = tmp_path / "figs"
    assert main(["fit", PEN, "--data", "Penicillin", "--plot", "caterpillar", "--plot", "facets",
                 "--group", "sample", "--out", str(folder)]) == 0
    assert sorted(p.name for p in folder.iterdir()) == ["caterpillar.png", "facets.png"]


@pytest.mark.parametrize("flag, method", [("--nuts", "NUTS"), ("--imh", "independence Metropolis-Hastings")])
def test_cli_posterior_plot(flag, method, tmp_path, capsys):
    out = tmp_path / "forest.png"
    argv = ["fit", SLEEP, "--data", "sleepstudy", flag, "--draws", "150", "--chains", "2", "--seed", "1",
            "--plot", "forest", "--out", str(out)] + (["--max-draws", "150"] if flag == "--nuts" else [])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # few draws: low-ESS warnings
        assert main(argv) == 0
    text = capsys.readouterr().out
    assert f"Bayesian linear mixed model fit by {method}" in text and "2 chains x 150 draws" in text
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


@pytest.mark.parametrize("argv, fragment", [
    (["--plot", "forest"], "--plot forest needs a posterior fit: add --nuts"),
    (["--nuts", "--ml"], "--nuts and --ml exclude each other"),
    (["--imh", "--nuts"], "--nuts and --imh exclude each other"),
    (["--imh", "--max-draws", "300"], "--max-draws goes with --nuts"),
    (["--plot", "shrinkage", "--group", "Patient"], "'Patient' is not a grouping factor"),
    (["--out", "x.png"], "--out, --group and --x go with --plot KIND"),
])
def test_cli_plot_errors(argv, fragment, capsys, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert main(["fit", SLEEP, "--data", "sleepstudy", *argv]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and fragment in err and err.count("\n") == 1


def test_import_hierlm_does_not_import_matplotlib():
    code = ("import sys, hierlm; hierlm.plots.KINDS; "
            "print([m for m in ('matplotlib', 'arviz', 'pymc') if m in sys.modules])")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
