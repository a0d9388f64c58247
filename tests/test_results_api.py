"""The results API: accessors, predictions, simulation, summary layout."""

import numpy as np
import pandas as pd
import pytest

import hierlm
from hierlm.errors import DataError, FormulaError

F = "Reaction ~ Days + (Days | Subject)"


def test_fitted_plus_residuals_is_response(sleep_fit, sleepstudy):
    y = sleepstudy["Reaction"].to_numpy()
    np.testing.assert_allclose(sleep_fit.fitted() + sleep_fit.residuals(), y, rtol=1e-12)
    # lme4: an lmerMod's Pearson residuals are the response residuals (weights 1);
    # scaled = TRUE divides by sigma (R: residuals(m, type = "pearson") of
    # sleepstudy starts -4.103656, scaled -0.1603504)
    np.testing.assert_allclose(sleep_fit.residuals(type="pearson"), sleep_fit.residuals())
    np.testing.assert_allclose(sleep_fit.residuals(type="pearson")[:3], [-4.103656, -14.625218, -42.195579],
                               atol=1e-5)
    np.testing.assert_allclose(sleep_fit.residuals(type="pearson", scaled=True), sleep_fit.residuals() / sleep_fit.sigma)


def test_coef_is_fixef_plus_ranef(sleep_fit):
    co = sleep_fit.coef()["Subject"]
    re = sleep_fit.ranef()["Subject"]
    fe = sleep_fit.fixef
    np.testing.assert_allclose(co["Days"], fe["Days"] + re["Days"])
    np.testing.assert_allclose(co["(Intercept)"], fe["(Intercept)"] + re["(Intercept)"])
    assert list(co.index[:3]) == ["308", "309", "310"]


def test_ranef_condvar_layout(sleep_fit):
    re = sleep_fit.ranef(condvar=True)["Subject"]
    assert set(re.columns.get_level_values(0)) == {"condval", "condsd"}
    assert list(re["condsd"].columns) == ["(Intercept)", "Days"]
    assert (re["condsd"] > 0).all().all()


def test_theta_and_varcorr_agree(sleep_fit):
    t = sleep_fit.theta
    T = np.array([[t[0], 0], [t[1], t[2]]])
    S = sleep_fit.sigma**2 * T @ T.T
    vc = sleep_fit.varcorr
    np.testing.assert_allclose(vc["vcov"].iloc[:3], [S[0, 0], S[1, 1], S[1, 0]])
    assert list(vc.columns) == ["group", "var1", "var2", "vcov", "sdcor"]


def test_predict_on_fitted_data_and_population(sleep_fit, sleepstudy):
    np.testing.assert_allclose(sleep_fit.predict(), sleep_fit.fitted())
    pop = sleep_fit.predict(re_form="~0")
    fe = sleep_fit.fixef
    np.testing.assert_allclose(pop, fe["(Intercept)"] + fe["Days"] * sleepstudy["Days"])
    np.testing.assert_allclose(sleep_fit.predict(re_form=False), pop)


def test_predict_newdata_matches_coef(sleep_fit):
    new = pd.DataFrame({"Days": [0.0, 10.0], "Subject": ["308", "309"]})
    co = sleep_fit.coef()["Subject"]
    want = [co.loc["308", "(Intercept)"], co.loc["309", "(Intercept)"] + 10 * co.loc["309", "Days"]]
    np.testing.assert_allclose(sleep_fit.predict(new), want)


def test_predict_new_levels(sleep_fit):
    new = pd.DataFrame({"Days": [3.0], "Subject": ["999"]})
    with pytest.raises(DataError, match=r"new level\(s\) \['999'\].*allow_new_levels=True"):
        sleep_fit.predict(new)
    got = sleep_fit.predict(new, allow_new_levels=True)
    assert got.iloc[0] == pytest.approx(sleep_fit.fixef["(Intercept)"] + 3 * sleep_fit.fixef["Days"])


def test_predict_population_needs_no_group_column(sleep_fit):
    got = sleep_fit.predict(pd.DataFrame({"Days": [1.0]}), re_form="~0")
    assert got.iloc[0] == pytest.approx(sleep_fit.fixef.sum())


def test_predict_re_form_subset():
    pen = hierlm.datasets.load("Penicillin")
    fit = hierlm.lmer("diameter ~ 1 + (1|plate) + (1|sample)", pen)
    only_plate = fit.predict(re_form="~(1|plate)")
    plate_re = fit.ranef()["plate"]["(Intercept)"]
    want = fit.fixef.iloc[0] + plate_re.loc[pen["plate"].astype(str)].to_numpy()
    np.testing.assert_allclose(only_plate, want)
    with pytest.raises(FormulaError, match="'batch', not in the model"):
        fit.predict(re_form="~(1|batch)")


def test_predict_keeps_scale_transform_of_training_data(sleepstudy):
    fit = hierlm.lmer("Reaction ~ scale(Days) + (1|Subject)", sleepstudy)
    new = sleepstudy.iloc[:5]
    np.testing.assert_allclose(fit.predict(new), fit.fitted().iloc[:5])


def test_simulate_moments(sleep_fit, sleepstudy):
    """Mean and variance of simulated responses match the model's closed form."""
    sims = sleep_fit.simulate(nsim=4000, seed=1)
    assert sims.shape == (180, 4000)
    t = sleep_fit.theta
    T = np.array([[t[0], 0], [t[1], t[2]]])
    Sigma = sleep_fit.sigma**2 * T @ T.T
    z = np.column_stack([np.ones(180), sleepstudy["Days"]])
    var = sleep_fit.sigma**2 + np.einsum("ij,jk,ik->i", z, Sigma, z)
    mu = z @ sleep_fit.fixef.to_numpy()
    se_mean = np.sqrt(var / 4000)
    assert np.all(np.abs(sims.mean(axis=1) - mu) < 5 * se_mean)
    # variance of a sample variance of normals: 2 var^2 / (n - 1)
    assert np.all(np.abs(sims.var(axis=1) - var) < 5 * var * np.sqrt(2 / 3999))
    np.testing.assert_array_equal(sleep_fit.simulate(2, seed=5), sleep_fit.simulate(2, seed=5))


def test_ml_and_reml_properties(sleepstudy):
    ml = hierlm.Model(F, sleepstudy).fit("ml")
    assert ml.reml_criterion is None
    assert ml.loglik == pytest.approx(-ml.deviance / 2)
    reml = hierlm.lmer(F, sleepstudy)
    assert reml.loglik == pytest.approx(-reml.reml_criterion / 2)
    # REML fit's deviance: ML criterion at the REML theta (lme4's deviance(m, REML=FALSE))
    assert reml.deviance > ml.deviance


def test_summary_layout_like_lme4(sleep_fit):
    text = str(sleep_fit.summary())
    lines = text.splitlines()
    assert lines[0] == "Linear mixed model fit by REML. t-tests use Satterthwaite's method [lmerModLmerTest]"
    assert "REML criterion at convergence: 1743.6" in text
    assert " Subject  (Intercept) 612.10   24.741" in text
    assert "          Days         35.07    5.922   0.07" in text
    assert " Residual             654.94   25.592" in text
    assert "Number of obs: 180, groups:  Subject, 18" in text
    assert "(Intercept)  251.405      6.825  17.000  36.838  < 2e-16 ***" in text
    assert "Days          10.467      1.546  17.000   6.771 3.26e-06 ***" in text
    # lme4's own table on request
    plain = str(sleep_fit.summary(ddf="none"))
    assert plain.splitlines()[0] == "Linear mixed model fit by REML ['lmerMod']"
    assert "(Intercept)  251.405      6.825  36.838" in plain
    assert "Days -0.138" in text
    assert "-3.9536 -0.4634  0.0231  0.4634  5.1793 " in text
    assert_html_shows_the_text(sleep_fit.summary()._repr_html_(), text)
    # a notebook shows what print(fit) shows
    assert_html_shows_the_text(sleep_fit._repr_html_(), repr(sleep_fit), tables=2)


def assert_html_shows_the_text(html_text: str, printed: str, tables: int | None = None) -> None:
    """Every table of the printed text is an HTML table with the same cells, and every
    other printed line is in the HTML too: the notebook shows what print shows."""
    import html as html_lib
    import re

    found = re.findall(r"<table class='hierlm'>(.*?)</table>", html_text)
    assert found, "no HTML table"
    if tables is not None:
        assert len(found) == tables
    rest = re.sub(r"<table class='hierlm'>.*?</table>", "", html_text)
    pre = "\n".join(html_lib.unescape(t) for t in re.findall(r"<pre[^>]*>(.*?)</pre>", rest, flags=re.S))
    words = set(printed.split())
    for tab in found:
        cells = [html_lib.unescape(c).strip() for c in re.findall(r"<t[hd](?: [^>]*)?>(.*?)</t[hd]>", tab)]
        assert all(c == "" or all(w in words for w in c.split()) for c in cells), cells
    printed_lines = [ln for ln in printed.splitlines() if ln.strip()]
    in_tables = " ".join(html_lib.unescape(c) for tab in found for c in re.findall(r"<t[hd](?: [^>]*)?>(.*?)</t[hd]>", tab))
    for ln in printed_lines:
        assert ln in pre or all(w in in_tables for w in ln.split()), ln


def test_summary_ml_header(sleepstudy):
    text = str(hierlm.lmer(F, sleepstudy, reml=False).summary())
    assert "Linear mixed model fit by maximum likelihood . t-tests use Satterthwaite's method [lmerModLmerTest]" in text
    assert "  1763.9   1783.1   -876.0   1751.9      174 " in text


def test_singular_fit_warns():
    rng = np.random.default_rng(0)
    d = pd.DataFrame({"g": np.repeat(np.arange(10), 5), "y": rng.standard_normal(50)})
    # no between-group variation at all: the variance estimate is 0
    d["y"] -= d.groupby("g")["y"].transform("mean")
    with pytest.warns(hierlm.ConvergenceWarning, match=r"boundary \(singular\) fit"):
        fit = hierlm.lmer("y ~ 1 + (1|g)", d)
    assert fit.singular and fit.theta[0] < 1e-4


@pytest.mark.filterwarnings("ignore::hierlm.ConvergenceWarning")  # pure-noise data: a singular fit
def test_factor_coding_like_r():
    """Categorical order is kept; ordered factors get contr.poly; strings sorted."""
    rng = np.random.default_rng(1)
    n = 60
    d = pd.DataFrame({
        "g": np.repeat(np.arange(12), 5),
        "f": pd.Categorical(np.tile(["b", "a", "c"], 20), categories=["c", "b", "a"]),
        "o": pd.Categorical(np.tile(["lo", "mid", "hi", "hi"], 15), categories=["lo", "mid", "hi"], ordered=True),
        "s": np.tile(["z", "y"], 30),
        "y": rng.standard_normal(n),
    })
    fit = hierlm.lmer("y ~ f + o + s + (1|g)", d)
    assert list(fit.fixef.index) == ["(Intercept)", "fb", "fa", "o.L", "o.Q", "sz"]
    X = fit.design.X
    # R's contr.poly(3): .L = (-1, 0, 1)/sqrt(2), .Q = (1, -2, 1)/sqrt(6)
    np.testing.assert_allclose(X[:3, 3], [-1 / np.sqrt(2), 0, 1 / np.sqrt(2)], atol=1e-12)
    np.testing.assert_allclose(X[:3, 4], [1 / np.sqrt(6), -2 / np.sqrt(6), 1 / np.sqrt(6)], atol=1e-12)


def test_numeric_grouping_column(sleepstudy):
    d = sleepstudy.assign(Subject=sleepstudy["Subject"].astype(int))
    fit = hierlm.lmer(F, d)
    assert fit.reml_criterion == pytest.approx(1743.6282719599, rel=1e-9)
    assert list(fit.ranef()["Subject"].index[:2]) == ["308", "309"]


def test_predict_newdata_needs_no_response_column(sleepstudy):
    fit = hierlm.lmer("log(Reaction) ~ Days + (1|Subject)", sleepstudy)
    new = sleepstudy[["Days", "Subject"]].iloc[:4]
    np.testing.assert_allclose(fit.predict(new), fit.fitted().iloc[:4])
    with pytest.raises(DataError, match=r"newdata lacks column\(s\) \['Days'\]"):
        fit.predict(sleepstudy[["Subject"]])


def test_string_and_bool_columns_both_fixed_and_grouping():
    rng = np.random.default_rng(3)
    d = pd.DataFrame({"g": np.repeat(list("abcdefgh"), 6), "s": np.tile([True, False], 24),
                      "y": rng.standard_normal(48) + np.repeat(rng.standard_normal(8), 6)})
    fit = hierlm.lmer("y ~ s + (1|g) + (1|s:g)", d)
    assert list(fit.fixef.index) == ["(Intercept)", "sTRUE"]
    assert fit.ngroups == {"s:g": 16, "g": 8}
    np.testing.assert_allclose(fit.predict(d), fit.fitted())


def test_random_effects_header_as_lme4():
    """lme4's formatVC: a Corr column only when some term has two columns
    (lme4 1.1-31 prints " Groups   Name        Variance Std.Dev." for Penicillin)."""
    pen = hierlm.lmer("diameter ~ 1 + (1|plate) + (1|sample)", hierlm.datasets.load("Penicillin"))
    lines = str(pen.summary()).splitlines()
    assert lines[lines.index("Random effects:") + 1].rstrip() == " Groups   Name        Variance Std.Dev."
    sleep = hierlm.lmer("Reaction ~ Days + (Days | Subject)", hierlm.datasets.load("sleepstudy"))
    lines = str(sleep.summary()).splitlines()
    assert lines[lines.index("Random effects:") + 1].rstrip() == " Groups   Name        Variance Std.Dev. Corr"


def test_notebook_html_is_the_printed_content(sleepstudy):
    """_repr_html_ of every fit kind and of the anova / compare / emmeans tables: real
    HTML tables with the printed cells, the other printed lines as text."""
    m1 = hierlm.lmer(F, sleepstudy)
    m0 = hierlm.lmer("Reaction ~ Days + (1|Subject)", sleepstudy)
    model = hierlm.Model(F, sleepstudy)
    chicks = hierlm.lmer("weight ~ Time + Diet + (1|Chick)", hierlm.datasets.load("ChickWeight"))
    emm = hierlm.emmeans(chicks, "Diet")
    for obj in (hierlm.anova(m1), hierlm.anova(m0, m1), hierlm.compare({"m0": m0, "m1": m1}), emm, emm.pairs(),
                model.fit("map").summary(),
                model.fit("nuts", draws=200, tune=200, chains=2, random_seed=1, progressbar=False).summary()):
        assert_html_shows_the_text(obj._repr_html_(), str(obj))
