"""The ordinal (cumulative link) family against ordinal's clmm and performance.

References: ``tests/reference/ordinal.R`` (clmm 2022.11 on ordinal::wine and
ordinal::soup, written to and read back from CSV) and
``tests/reference/ordinal_performance.R`` (ICC and R2).  Tolerances: the same
Laplace likelihood is maximized, so logLik to 1e-6 relative (measured 1e-9),
estimates to 1e-4, SDs to 1e-3 relative; standard errors to 1e-3 relative
(finite-difference Hessians on both sides; measured within 6e-5).  The clmm
fits use its default control where a tighter one made its inner iterations
fail (``control`` in the JSON says which).  NUTS against brms 2.18
(``tests/reference/ordinal_brms.R``, brms's default priors).
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from posterior_checks import assert_matches_brms

import hierlm
from hierlm.errors import DataError, HierlmError
from hierlm.family import Family, FamilyError

REF = Path(__file__).parent / "reference"
CASES = json.loads((REF / "ordinal.json").read_text())["cases"]
PERF = json.loads((REF / "ordinal_performance.json").read_text())["cases"]

def _soup() -> pd.DataFrame:
    s = pd.read_csv(REF / "soup.csv", dtype={"RESP": str, "SURENESS": str})
    s["SURENESS"] = pd.Categorical(s["SURENESS"], categories=[str(i) for i in range(1, 7)], ordered=True)
    s["RESP"] = pd.Categorical(s["RESP"], categories=sorted(s["RESP"].unique(), key=int))
    s["PROD"] = pd.Categorical(s["PROD"], categories=["Ref", "Test"])
    return s


@pytest.fixture(scope="module")
def fits():
    wine, soup = hierlm.datasets.load("wine"), _soup()
    out = {}
    for link in ("logit", "probit"):
        out[f"wine_{link}"] = hierlm.glmer("rating ~ temp + contact + (1 | judge)", wine, family="ordinal",
                                           link=link)
        out[f"soup_{link}"] = hierlm.glmer("SURENESS ~ PROD + (1 | RESP)", soup, family="ordinal", link=link)
    return out


@pytest.mark.parametrize("case", sorted(CASES))
def test_laplace_matches_clmm(fits, case):
    ref, fit = CASES[case], fits[case]
    assert fit.loglik == pytest.approx(ref["logLik"], rel=1e-6)
    assert fit.aic == pytest.approx(ref["AIC"], rel=1e-6)
    assert fit.df == ref["df"]
    th = fit.thresholds
    assert list(th.index) == list(ref["thresholds"])
    np.testing.assert_allclose(th.to_numpy(), list(ref["thresholds"].values()), atol=1e-4)
    np.testing.assert_allclose(fit.fixef[list(ref["beta"])].to_numpy(), list(ref["beta"].values()), atol=1e-4)
    sd = float(fit.varcorr["sdcor"].iloc[0])
    assert sd == pytest.approx(ref["sd"], rel=1e-3)
    # conditional modes and their conditional variances
    re = fit.ranef()
    grp = next(iter(re))
    assert list(re[grp].index.astype(str)) == ref["ranef_levels"]
    np.testing.assert_allclose(re[grp]["(Intercept)"].to_numpy(), ref["ranef"], atol=1e-3)
    cv = fit.condvar[0][:, 0, 0]
    np.testing.assert_allclose(cv, ref["condVar"], rtol=2e-3)
    # clmm's fitted values: the probability of each row's observed category
    np.testing.assert_allclose(fit.fitted().to_numpy()[:20], ref["fitted_head"], atol=1e-4)


@pytest.mark.parametrize("case", sorted(CASES))
def test_standard_errors_match_clmm(fits, case):
    fit = fits[case]
    ref = CASES[case]["se"]
    ours = {**fit.threshold_table()["Std. Error"].to_dict(), **fit.coef_table()["Std. Error"].to_dict()}
    for name, se in ours.items():
        assert se == pytest.approx(ref[name], rel=1e-3), name


@pytest.mark.parametrize("link", ["logit", "probit"])
def test_icc_and_r2_match_performance(fits, link):
    fit, ref = fits[f"wine_{link}"], PERF[link]
    icc, r2 = fit.icc(), fit.r2()
    assert icc["adjusted"] == pytest.approx(ref["icc_adjusted"], rel=1e-4)
    assert icc["conditional"] == pytest.approx(ref["icc_unadjusted"], rel=1e-4)
    assert r2["marginal"] == pytest.approx(ref["r2_marginal"], rel=1e-4)
    assert r2["conditional"] == pytest.approx(ref["r2_conditional"], rel=1e-4)


def test_summary_in_clmm_layout(fits):
    fit = fits["wine_logit"]
    text = str(fit.summary())
    assert text.startswith("Cumulative Link Mixed Model fitted with the Laplace approximation")
    for piece in ("formula: rating ~ temp + contact + (1 | judge)", " link  threshold nobs logLik AIC",
                  " logit flexible  72   -81.57 177.13", "Threshold coefficients:", "1|2  -1.6237     0.6824",
                  "tempwarm     3.0630     0.5954   5.145 2.68e-07 ***"):
        assert piece in text, piece
    short = repr(fit)
    assert "Thresholds:" in short and "Coefficients:" in short and "Threshold coefficients" not in short
    assert "<table" in fit._repr_html_()
    tidy = fit.tidy()
    assert list(tidy["term"][:4]) == ["1|2", "2|3", "3|4", "4|5"]


def test_predictions_are_category_probabilities(fits):
    fit = fits["wine_logit"]
    P = fit.predict(type="response")
    assert list(P.columns) == ["1", "2", "3", "4", "5"]
    np.testing.assert_allclose(P.sum(axis=1), 1.0, atol=1e-12)
    y = fit.response[0].astype(int)
    np.testing.assert_allclose(P.to_numpy()[np.arange(len(y)), y], fit.fitted().to_numpy())
    # population level: P(Y <= k) = F(alpha_k - x'beta) for a warm wine with contact
    new = pd.DataFrame({"temp": ["warm"], "contact": ["yes"], "judge": ["1"]})
    pop = fit.predict(new, re_form="~0", type="response").to_numpy()[0]
    eta = fit.fixef["tempwarm"] + fit.fixef["contactyes"]
    cum = 1.0 / (1.0 + np.exp(-(fit.thresholds.to_numpy() - eta)))
    np.testing.assert_allclose(np.cumsum(pop)[:-1], cum, atol=1e-12)
    assert fit.predict(new, re_form="~0").iloc[0] == pytest.approx(eta)


def test_simulate_then_refit_recovers_the_parameters():
    rng = np.random.default_rng(7)
    groups, per = 80, 25
    g = np.repeat(np.arange(groups), per)
    x = rng.normal(size=g.size)
    alpha, beta, sd = np.array([-1.0, 0.3, 1.8]), 0.8, 0.7
    eta = beta * x + sd * rng.normal(size=groups)[g]
    fam = Family("ordinal", "logit", cutpoints=tuple(alpha))
    y = fam.dist.simulate(eta, None, None, rng, 1.0).astype(int)
    data = pd.DataFrame({"y": pd.Categorical.from_codes(y, ["a", "b", "c", "d"], ordered=True), "x": x,
                         "g": g.astype(str)})
    fit = hierlm.glmer("y ~ x + (1 | g)", data, family="ordinal")
    se = fit.threshold_table()["Std. Error"].to_numpy()
    assert np.all(np.abs(fit.thresholds.to_numpy() - alpha) < 4 * se)
    assert abs(fit.fixef["x"] - beta) < 4 * fit.coef_table()["Std. Error"]["x"]
    assert abs(float(fit.varcorr["sdcor"].iloc[0]) - sd) < 0.3
    # randomized quantile residuals of a correct model are N(0, 1)
    from hierlm.plots._glmm import randomized_quantile_residuals

    res = randomized_quantile_residuals(fit, seed=1)
    assert abs(res.mean()) < 0.1 and abs(res.std() - 1.0) < 0.1
    sim = fit.simulate(2, seed=1)
    assert isinstance(sim["sim_1"].dtype, pd.CategoricalDtype) and sim["sim_1"].cat.ordered
    assert list(sim["sim_1"].cat.categories) == ["a", "b", "c", "d"]


def test_integer_response_is_read_as_categories(fits):
    wine = hierlm.datasets.load("wine")
    wine["score"] = wine["rating"].astype(int)
    fit = hierlm.glmer("score ~ temp + contact + (1 | judge)", wine, family="ordinal")
    assert fit.loglik == pytest.approx(fits["wine_logit"].loglik, rel=1e-9)
    assert list(fit.thresholds.index) == ["1|2", "2|3", "3|4", "4|5"]


def test_bad_input_and_refusals(fits):
    wine = hierlm.datasets.load("wine")
    wine["half"] = wine["response"] / 10.0
    with pytest.raises(DataError, match=r"not a whole number in .*row"):
        hierlm.glmer("half ~ temp + (1 | judge)", wine, family="ordinal")
    # a category with no rows has no thresholds (R's model frame drops unused levels)
    empty = wine[wine["rating"] != "3"].copy()
    fit3 = hierlm.glmer("rating ~ temp + (1 | judge)", empty, family="ordinal")
    assert list(fit3.thresholds.index) == ["1|2", "2|4", "4|5"]
    fit = fits["wine_logit"]
    with pytest.raises(FamilyError, match="no numeric residuals"):
        fit.residuals()
    with pytest.raises(HierlmError, match="an ordinal model is fit by maximum likelihood"):
        hierlm.Model("rating ~ temp + (1 | judge)", wine, family="ordinal").fit("reml")
    with pytest.raises(HierlmError, match="emmeans of an ordinal fit gives the means of the latent variable"):
        hierlm.emmeans(fit, "temp", type="response")
    with pytest.raises(FamilyError, match="increasing"):
        Family("ordinal", cutpoints=(1.0, 0.5))
    with pytest.raises(FamilyError, match="not available for family 'ordinal'"):
        Family("ordinal", link="log")


def test_plots_of_an_ordinal_fit(fits):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from hierlm.plots._glmm import randomized_quantile_residuals

    fit = fits["wine_logit"]
    # diagnostics: randomized quantile residuals against the linear predictor
    fig = fit.plot("diagnostics", seed=2)
    ax0 = fig.axes[0]
    pts = next(c for c in ax0.collections if c.get_gid() == "residual-point").get_offsets()
    np.testing.assert_allclose(pts[:, 0], fit.fitted("link").to_numpy())
    np.testing.assert_allclose(pts[:, 1], randomized_quantile_residuals(fit, seed=2))
    assert ax0.get_title() == "Quantile residuals vs fitted" and "logit scale" in ax0.get_xlabel()
    plt.close(fig)
    # the teaching plots' response scale: the expected category number, sum_k k P(Y = k)
    grid = pd.DataFrame({"temp": ["cold", "warm"], "contact": ["no", "no"], "judge": ["1", "1"]})
    expected = fit.family.mean(fit.predict(grid, re_form="~0").to_numpy())
    P = fit.predict(grid, re_form="~0", type="response").to_numpy()
    np.testing.assert_allclose(expected, P @ np.arange(1, 6), rtol=1e-12)
    for kind in ("shrinkage", "facets", "predictions", "caterpillar"):
        plt.close(fit.plot(kind))


BRMS = json.loads((REF / "ordinal_brms.json").read_text())["cases"]["wine_logit"]
BRMS_NAMES = {"b_Intercept[1]": "cutpoints[1|2]", "b_Intercept[2]": "cutpoints[2|3]",
              "b_Intercept[3]": "cutpoints[3|4]", "b_Intercept[4]": "cutpoints[4|5]",
              "b_tempwarm": "fixef[tempwarm]", "b_contactyes": "fixef[contactyes]",
              "sd_judge__Intercept": "sd_judge[(Intercept)]"}


def test_nuts_agrees_with_brms():
    """NUTS (4 chains x 1000 draws after 1000 tuning) with brms's default priors for a
    cumulative model (flat on the coefficients, student_t(3, 0, 2.5) on the thresholds of the
    centred predictors and on the SD): every posterior mean within 3 Monte Carlo SEs of the
    difference plus 2% of the posterior SD; no divergences; R-hat <= 1.01."""
    from hierlm.priors import Flat

    wine = hierlm.datasets.load("wine")
    m = hierlm.Model("rating ~ temp + contact + (1 | judge)", wine, family="ordinal")
    assert "thresholds" in m.priors.targets()
    m.set_prior("fixed", Flat())
    post = m.fit("nuts", random_seed=3, progressbar=False)
    assert post.divergences == 0
    assert post.diagnostics["r_hat"].max() <= 1.01
    assert_matches_brms(post, BRMS, BRMS_NAMES)
    assert "Thresholds:" in str(post.summary())
    # predictions: categories; probabilities per category; the pointwise log-likelihood
    pp = post.posterior_predict(seed=1)
    assert pp.shape == (4000, 72) and set(np.unique(pp)) <= set(range(5))
    ep = post.posterior_epred()
    assert ep.shape == (4000, 72, 5)
    np.testing.assert_allclose(ep.sum(axis=-1), 1.0, atol=1e-12)
    y = post.response[0].astype(int)
    ll = post.idata.log_likelihood["y"].to_numpy().reshape(4000, 72)
    np.testing.assert_allclose(ll, np.log(ep[:, np.arange(72), y]), rtol=1e-10)
    # emmeans of the posterior, on the latent scale: the draws' -mean(thresholds) + x'beta
    tab = hierlm.emmeans(post, "temp").summary()
    cut = post.idata.posterior["cutpoints"].to_numpy().reshape(4000, -1)
    beta = post.idata.posterior["fixef"].sel(fixed="tempwarm").to_numpy().ravel()
    contact = post.idata.posterior["fixef"].sel(fixed="contactyes").to_numpy().ravel()
    warm = -cut.mean(axis=1) + beta + 0.5 * contact
    assert tab["emmean"].iloc[1] == pytest.approx(np.median(warm), rel=1e-10)


EMM = json.loads((REF / "ordinal_emmeans.json").read_text())["cases"]


@pytest.mark.parametrize("case", sorted(EMM))
def test_emmeans_on_the_latent_scale_match_r(case):
    """emmeans' default for a clmm ("latent" mode): the latent variable's means
    -mean(thresholds) + x'beta over the grid, with z inference from the Hessian over
    (theta, beta, thresholds), and their pairwise comparisons (tests/reference/
    ordinal_emmeans.R, emmeans 1.8.4-1): estimates to 1e-4 and standard errors to 2e-4
    relative (both fits' Hessians are by finite differences), the p-values to 1e-3."""
    c = EMM[case]
    fit = hierlm.glmer(c["formula"], hierlm.datasets.load("wine"), family="ordinal", link=c["link"])
    assert fit.loglik == pytest.approx(c["logLik"], rel=1e-6)
    for got, key in [(hierlm.emmeans(fit, "temp"), "temp"), (hierlm.emmeans(fit, "temp").pairs(), "temp_pairs"),
                     (hierlm.emmeans(fit, "~ contact | temp"), "contact_by_temp"),
                     (hierlm.emmeans(fit, "~ contact | temp").pairs(), "contact_by_temp_pairs")]:
        ref, tab = c[key], got.summary()
        est = "estimate" if "pairs" in key else "emmean"
        np.testing.assert_allclose(tab[est], np.atleast_1d(ref[est]), atol=1e-4, err_msg=key)
        np.testing.assert_allclose(tab["SE"], np.atleast_1d(ref["SE"]), rtol=2e-4, err_msg=key)
        assert np.all(np.isinf(tab["df"]))
        if "pairs" in key:
            np.testing.assert_allclose(tab["p.value"], np.atleast_1d(ref["p.value"]), rtol=1e-3, err_msg=key)
        else:
            np.testing.assert_allclose(tab["asymp.LCL"], np.atleast_1d(ref["asymp.LCL"]), atol=2e-4, err_msg=key)
    text = str(hierlm.emmeans(fit, "temp"))
    assert "Results are averaged over the levels of: contact" in text and "not the response" not in text


def test_map_with_flat_priors_is_the_laplace_fit(fits):
    """MAP maximizes the Laplace-marginal posterior over (beta, log SD, the thresholds as
    alpha_1 and log gaps): with flat priors its mode is clmm's fit; with the default priors
    (brms's on the thresholds of the centred predictors) it stays off the boundary."""
    lap = fits["wine_logit"]
    m = hierlm.Model("rating ~ temp + contact + (1 | judge)", hierlm.datasets.load("wine"), family="ordinal")
    flat = m.fit("map", priors="flat")
    np.testing.assert_allclose(flat.family.params["cutpoints"], lap.thresholds.to_numpy(), atol=1e-4)
    np.testing.assert_allclose(flat.fixef.to_numpy(), lap.fixef.to_numpy(), atol=1e-4)
    assert float(flat.varcorr["sdcor"].iloc[0]) == pytest.approx(float(lap.varcorr["sdcor"].iloc[0]), rel=1e-4)
    se = flat.se
    for name, ref in lap.threshold_table()["Std. Error"].items():
        assert se[f"threshold[{name}]"] == pytest.approx(ref, rel=2e-3), name
    assert "Thresholds (mode, approximate posterior SD):" in str(flat.summary())
    post = m.fit("map")
    assert post.convergence.converged
    assert float(post.varcorr["sdcor"].iloc[0]) > 0.1
    assert np.all(np.diff(post.family.params["cutpoints"]) > 0)
    np.testing.assert_allclose(post.predict(type="response").sum(axis=1), 1.0, atol=1e-12)


@pytest.mark.parametrize("link", ["logit", "probit"])
def test_adaptive_quadrature_matches_clmm(link):
    """nAGQ = 10 (one scalar term): the adaptive Gauss-Hermite likelihood of clmm
    (``tests/reference/ordinal_agq.R``); the ordinal family's deviance residuals are
    -2 log p, so this is the full log-likelihood, as clmm's."""
    ref = json.loads((REF / "ordinal_agq.json").read_text())["cases"][link]
    fit = hierlm.glmer("rating ~ temp + contact + (1 | judge)", hierlm.datasets.load("wine"), family="ordinal",
                       link=link, nAGQ=10)
    assert fit.loglik == pytest.approx(ref["logLik"], rel=1e-6)
    np.testing.assert_allclose(fit.thresholds.to_numpy(), list(ref["thresholds"].values()), atol=1e-4)
    np.testing.assert_allclose(fit.fixef[list(ref["beta"])].to_numpy(), list(ref["beta"].values()), atol=1e-4)
    assert float(fit.varcorr["sdcor"].iloc[0]) == pytest.approx(ref["sd"], rel=1e-3)


def test_wald_anova_has_no_intercept_row(fits):
    """car's Anova of a clmm: one Wald test per term; the thresholds are not a term (the
    formula's intercept has no column), so no empty "(Intercept)" row."""
    fit = fits["wine_logit"]
    for kind in (2, 3):
        tab = hierlm.anova(fit, type=kind)
        assert list(tab.index) == ["temp", "contact"]
        z = fit.coef_table()["z value"]
        np.testing.assert_allclose(tab["Chisq"].to_numpy(), z.to_numpy() ** 2, rtol=1e-10)
