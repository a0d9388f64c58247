"""Plots of binomial and Poisson fits (issue 6, item 5): shrinkage on the
link scale, diagnostics with Pearson and randomized quantile residuals,
caterpillar on the link scale, facets on the response scale.

Reference values are computed independently here: each herd's own binomial
fit by root-finding of its score equation (scipy brentq), and the complete
pooling GLM by scipy's optimizer of the binomial log-likelihood."""

import warnings

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402
from scipy import optimize, special, stats  # noqa: E402

import hierlm  # noqa: E402
from hierlm import plots  # noqa: E402
from hierlm.plots._glmm import randomized_quantile_residuals  # noqa: E402


@pytest.fixture(scope="module")
def cbpp():
    data = hierlm.datasets.load("cbpp")
    fit = hierlm.glmer("cbind(incidence, size - incidence) ~ period + (1|herd)", data, family="binomial")
    return data, fit


@pytest.fixture(scope="module")
def grouse():
    data = hierlm.datasets.load("grouseticks")
    fit = hierlm.glmer("TICKS ~ YEAR + cHEIGHT + (1|BROOD) + (1|LOCATION)", data, family="poisson")
    return data, fit


@pytest.fixture(autouse=True)
def _close():
    yield
    plt.close("all")


def _gid(ax, gid):
    return [a for a in ax.get_children() if a.get_gid() == gid]


def _own_logit(data, fit):
    """Each herd's own intercept on the logit scale with the period effects
    fixed at the model's: the root of sum(k - n expit(a + off)) = 0."""
    fe = fit.fixef
    out = {}
    for herd, g in data.groupby("herd", observed=True):
        off = np.array([fe.get(f"period{p}", 0.0) for p in g["period"].astype(str)])
        k, n = g["incidence"].to_numpy(float), g["size"].to_numpy(float)
        out[str(herd)] = optimize.brentq(lambda a, k=k, n=n, off=off: np.sum(k - n * special.expit(a + off)),
                                         -20, 20, xtol=1e-12)
    return out


def test_shrinkage_cbpp_link_scale(cbpp):
    data, fit = cbpp
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no herd has all-0 or all-1 outcomes: no warning
        fig = plots.shrinkage(fit, "herd")
    ax = fig.axes[0]
    assert len(_gid(ax, "shrinkage-arrow")) == 15
    est = plots.pooling_estimates(fit, "herd")
    coef = fit.coef()["herd"]["(Intercept)"]
    partial = _gid(ax, "partial-pooling")[0].get_offsets()[:, 0]
    np.testing.assert_allclose(np.sort(partial), np.sort(coef.to_numpy()), rtol=0, atol=1e-12)
    np.testing.assert_allclose(est["partial_pooling"]["(Intercept)"].to_numpy(), coef.loc[est.index].to_numpy(),
                               atol=1e-12)
    own = _own_logit(data, fit)
    nopool = est["no_pooling"]["(Intercept)"]
    np.testing.assert_allclose(nopool.to_numpy(), [own[str(h)] for h in nopool.index], atol=1e-6)
    # complete pooling: the intercept of one binomial GLM ignoring herds
    X = fit.design.X
    k, n = data["incidence"].to_numpy(float), data["size"].to_numpy(float)

    def nll(b):
        eta = X @ b
        return -np.sum(k * eta - n * np.logaddexp(0, eta))

    b_ml = optimize.minimize(nll, np.zeros(X.shape[1]), method="BFGS", options={"gtol": 1e-10}).x
    comp = est["complete_pooling"]["(Intercept)"].to_numpy()
    np.testing.assert_allclose(comp, b_ml[0], atol=1e-5)
    line = _gid(ax, "complete-pooling")[0].get_xdata()[0]
    assert line == pytest.approx(b_ml[0], abs=1e-5)
    assert "logit" in ax.get_xlabel()


def test_shrinkage_poisson_skips_all_zero_broods(grouse):
    data, fit = grouse
    zero = int((data.groupby("BROOD", observed=True)["TICKS"].sum() == 0).sum())
    assert zero > 0
    with pytest.warns(UserWarning, match=f"{zero} group\\(s\\) of 'BROOD' have only 0"):
        fig = plots.shrinkage(fit, "BROOD")
    ax = fig.axes[0]
    assert len(_gid(ax, "shrinkage-arrow")) == fit.ngroups["BROOD"] - zero
    assert "log scale" in ax.get_xlabel()
    # one brood with counts: its own log-rate with the other effects as offset
    est = plots.pooling_estimates(fit, "BROOD")
    d = fit.design
    xb = d.X[:, 1:] @ fit.fixef.to_numpy()[1:]
    codes = d.remats[[r.group for r in d.remats].index("BROOD")].codes
    levels = list(est.index)
    for lev in levels[:10]:
        rows = codes == levels.index(lev)
        y = data["TICKS"].to_numpy(float)[rows]
        want = np.log(y.sum() / np.exp(xb[rows]).sum()) if y.sum() > 0 else np.nan
        got = est["no_pooling"]["(Intercept)"].loc[lev]
        if np.isnan(want):
            assert np.isnan(got)
        else:
            assert got == pytest.approx(want, abs=1e-7)


def test_randomized_quantile_residuals_normal(cbpp, grouse):
    fit = cbpp[1]
    r = randomized_quantile_residuals(fit, seed=1)
    assert abs(r.mean()) < 0.3
    assert abs(r.std(ddof=1) - 1) < 0.3
    np.testing.assert_array_equal(r, randomized_quantile_residuals(fit, seed=1))
    # the grouse model without an observation-level effect is overdispersed
    # (Pearson ratio 1.74): its residuals must show it, spread wider than N(0, 1)
    g = grouse[1]
    assert g.overdispersion().overdispersed
    assert randomized_quantile_residuals(g, seed=1).std(ddof=1) > 1.15
    # the PIT u lies between F(y-1) and F(y) of the fitted binomial
    fit = cbpp[1]
    u = stats.norm.cdf(randomized_quantile_residuals(fit, seed=3))
    mu, n = fit.fitted().to_numpy(), fit.weights.to_numpy()
    k = np.round(fit.system.y * n)
    assert np.all(u >= stats.binom.cdf(k - 1, n, mu) - 1e-12)
    assert np.all(u <= stats.binom.cdf(k, n, mu) + 1e-12)


def test_diagnostics_glmm_names_residuals(cbpp):
    fit = cbpp[1]
    fig = plots.diagnostics(fit, seed=1)
    titles = [ax.get_title() for ax in fig.axes]
    assert titles[:3] == ["Pearson residuals vs fitted", "Normal QQ plot of randomized quantile residuals",
                          "Scale-location (Pearson residuals)"]
    ax0 = fig.axes[0]
    pts = _gid(ax0, "residual-point")[0].get_offsets()
    np.testing.assert_allclose(pts[:, 0], fit.fitted().to_numpy())
    np.testing.assert_allclose(pts[:, 1], fit.residuals("pearson").to_numpy())
    assert "response scale" in ax0.get_xlabel()
    qq = np.sort(_gid(fig.axes[1], "qq-point")[0].get_offsets()[:, 1])
    np.testing.assert_allclose(qq, np.sort(randomized_quantile_residuals(fit, seed=1)))
    assert "logit" in fig.axes[3].get_ylabel()


def test_caterpillar_link_scale(cbpp):
    fit = cbpp[1]
    fig = plots.caterpillar(fit, "herd")
    ax = fig.axes[0]
    pts = _gid(ax, "caterpillar-point")[0].get_offsets()[:, 0]
    assert pts.size == 15
    np.testing.assert_allclose(np.sort(pts), np.sort(fit.ranef()["herd"]["(Intercept)"].to_numpy()), atol=1e-12)
    assert "logit scale" in ax.get_xlabel()


def test_facets_response_scale(cbpp):
    data, fit = cbpp
    fig = plots.facets(fit, "period", "herd")
    herds = list(fit.design.remats[0].levels)
    periods = ["1", "2", "3", "4"]
    for p, ax in enumerate(fig.axes[:15]):
        line = _gid(ax, "conditional-line")[0].get_ydata()
        new = data.iloc[:4].copy()
        new["herd"] = herds[p]
        new["period"] = periods
        new = new.astype({"herd": data["herd"].dtype, "period": data["period"].dtype})
        want = fit.predict(newdata=new, type="response").to_numpy()
        np.testing.assert_allclose(line, want, atol=1e-10)
        pop = _gid(ax, "population-line")[0].get_ydata()
        np.testing.assert_allclose(pop, fit.predict(newdata=new, re_form=False, type="response").to_numpy(),
                                   atol=1e-10)
        obs = _gid(ax, "facet-data")[0].get_offsets()[:, 1]
        g = data[data["herd"].astype(str) == herds[p]]
        np.testing.assert_allclose(np.sort(obs), np.sort((g["incidence"] / g["size"]).to_numpy()))
    assert "proportion" in fig.axes[0].get_ylabel()


def test_predictions_response_scale(cbpp):
    fit = cbpp[1]
    fig = plots.predictions(fit, "period", "herd", levels=["1"])
    ax = fig.axes[0]
    assert "response scale" in ax.get_ylabel()
    with pytest.raises(plots.PlotError, match="predictive=True"):
        plots.predictions(fit, "period", "herd", predictive=True)


def test_posterior_plots_of_a_model_without_sigma():
    # a binomial or negative binomial posterior has no sigma; the negative binomial has a shape
    pytest.importorskip("nutpie")
    data = hierlm.datasets.load("cbpp")
    post = hierlm.Model("incidence ~ period + (1|herd)", data, family="negbinomial").fit(
        "nuts", draws=150, tune=150, chains=2, random_seed=1, progressbar=False)
    fig = post.plot("forest")
    labels = [t.get_text() for ax in fig.axes for t in ax.get_yticklabels()]
    assert any("shape" in t for t in labels) and not any("sigma" in t for t in labels)
    assert len(post.plot("trace").axes) == 2 * (4 + 1 + 1)  # 4 fixed effects, sd herd, shape
    ax = post.plot("ridge").axes[0]
    assert [t.get_text() for t in ax.get_yticklabels()] == ["sd herd: (Intercept)"]
    assert ax.get_xlabel() == "standard deviation (link scale: log)"  # not the response's units
    np.testing.assert_allclose(_gid(ax, "ridge-median")[0].get_offsets()[0, 0],
                               np.median(post.idata.posterior["sd_herd"].to_numpy()))
