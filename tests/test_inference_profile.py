"""Wald and profile-likelihood confidence intervals against lme4 1.1-31.

Reference values: tests/reference/inference_profile.json, made by
tests/reference/inference_profile.R (lme4's ``confint(m, method = "profile"
| "Wald", oldNames = FALSE)``).  Tolerances:

* profile ends: 1e-2 relative (the acceptance criterion), 1e-3 absolute
  where lme4's end is exactly 0.  lme4 interpolates a spline through its
  profile points, hierlm root-finds zeta exactly; on the smooth profiles
  the two agree to ~2e-4.  In ``sleep_quad`` lme4 falls back to linear
  interpolation for the three correlations (its warnings are in the JSON):
  there they agree to ~9e-3.
* Wald ends: 1e-5 relative (estimates and SEs agree with lme4's to ~1e-6).
"""

import json
import warnings
from functools import cache
from pathlib import Path

import numpy as np
import pytest
from scipy.stats import norm

import hierlm
from hierlm.errors import HierlmError
from hierlm.inference.profile import (
    ProfileLikelihood,
    confint,
    format_perc,
    profile_estimates,
    profile_names,
)

REF = json.loads((Path(__file__).parent / "reference" / "inference_profile.json").read_text())
CASES = [k for k, v in REF.items() if isinstance(v, dict)]
LME4 = json.loads((Path(__file__).parent / "reference" / "lme4_reference.json").read_text())


def _data(name):
    d = hierlm.datasets.load(name)
    if name == "sleepstudy":
        d["D2"] = d["Days"] ** 2 / 10  # as the R script builds it
    return d


@cache
def _fit(case):
    c = REF[case]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the singular Dyestuff2 fit says so
        return hierlm.lmer(c["formula"], _data(c["data"]), reml=c["REML"])


@cache
def _profile_ci(case):
    with warnings.catch_warnings(record=True) as rec:
        warnings.simplefilter("always")
        ci = confint(_fit(case), level=REF[case]["level"])
    return ci, [str(w.message) for w in rec]


@pytest.mark.parametrize("case", CASES)
def test_profile_matches_lme4(case):
    ref = REF[case]["profile"]
    ci, _ = _profile_ci(case)
    assert list(ci.index) == ref["names"]
    assert list(ci.columns) == ref["columns"]
    for col, key in zip(ci.columns, ("lower", "upper")):
        want = np.array(ref[key], dtype=float)
        got = ci[col].to_numpy()
        zero = want == 0.0
        np.testing.assert_allclose(got[~zero], want[~zero], rtol=1e-2, err_msg=f"{case} {col}")
        np.testing.assert_allclose(got[zero], 0.0, atol=1e-3, err_msg=f"{case} {col}")
    assert np.all(ci.iloc[:, 0] < ci.iloc[:, 1])


@pytest.mark.parametrize("case", CASES)
def test_wald_matches_lme4(case):
    ref = REF[case]["wald"]
    ci = confint(_fit(case), level=REF[case]["level"], method="Wald")
    assert list(ci.index) == ref["names"]
    assert list(ci.columns) == ref["columns"]
    for col, key in zip(ci.columns, ("lower", "upper")):
        want = np.array([np.nan if v is None else v for v in ref[key]], dtype=float)
        got = ci[col].to_numpy()
        np.testing.assert_array_equal(np.isnan(got), np.isnan(want))
        ok = ~np.isnan(want)
        np.testing.assert_allclose(got[ok], want[ok], rtol=1e-5)


def test_reml_and_ml_fits_profile_alike():
    # lme4 profiles the ML deviance (refitML) for REML fits too
    a, _ = _profile_ci("sleep_reml")
    b, _ = _profile_ci("sleep_ml")
    np.testing.assert_allclose(a.to_numpy(), b.to_numpy(), rtol=1e-6)


def test_zeta_at_the_ends_is_the_normal_quantile():
    fit = _fit("sleep_reml")
    ci, _ = _profile_ci("sleep_reml")
    prof = ProfileLikelihood(fit)
    z = norm.ppf(0.975)
    for name in ci.index:
        lo, hi = ci.loc[name]
        assert prof.zeta(name, lo) == pytest.approx(-z, abs=1e-6)
        assert prof.zeta(name, hi) == pytest.approx(z, abs=1e-6)
        assert prof.zeta(name, prof.estimates[prof.names.index(name)]) == 0.0


def test_level_90_columns_and_narrower():
    ci, _ = _profile_ci("sleep_reml_90")
    assert list(ci.columns) == ["5 %", "95 %"]
    wide, _ = _profile_ci("sleep_reml")
    assert np.all(ci["5 %"].to_numpy() > wide["2.5 %"].to_numpy())
    assert np.all(ci["95 %"].to_numpy() < wide["97.5 %"].to_numpy())


@pytest.mark.parametrize("level, cols", [
    # R: lme4:::format.perc(c(a, 1 - a), 3) with a = (1 - level) / 2
    (0.95, ["2.5 %", "97.5 %"]), (0.9, ["5 %", "95 %"]), (0.99, ["0.5 %", "99.5 %"]),
    (0.999, ["0.05 %", "99.95 %"]), (0.8, ["10 %", "90 %"]), (0.683, ["15.8 %", "84.2 %"]),
    (0.9999, ["0.005 %", "99.995 %"]), (0.001, ["50 %", "50 %"]),
])
def test_column_labels_as_r_formats_them(level, cols):
    a = (1 - level) / 2
    assert format_perc([a, 1 - a]) == cols


def test_singular_fit_warns_and_gives_lower_bound_zero():
    ci, msgs = _profile_ci("dyestuff2_singular")
    assert any(m.startswith("profile on a singular fit") and "sd_(Intercept)|Batch" in m for m in msgs)
    assert ci.loc["sd_(Intercept)|Batch", "2.5 %"] == 0.0
    assert ci.loc["sd_(Intercept)|Batch", "97.5 %"] > 0.0
    assert np.isfinite(ci.to_numpy()).all()
    # a fit that is not singular but whose SD profile reaches 0: no warning, limit 0
    ci2, msgs2 = _profile_ci("pastes_nested")
    assert ci2.loc["sd_(Intercept)|batch", "2.5 %"] == 0.0
    assert not any("singular" in m for m in msgs2)


def test_parm_selects_rows_in_lme4_order():
    fit = _fit("sleep_int")
    full, _ = _profile_ci("sleep_int")
    sub = confint(fit, parm=["Days", "sigma"])
    assert list(sub.index) == ["sigma", "Days"]
    np.testing.assert_allclose(sub.to_numpy(), full.loc[["sigma", "Days"]].to_numpy(), rtol=1e-8)
    assert list(confint(fit, parm="beta_", method="wald").index) == ["(Intercept)", "Days"]
    assert list(confint(fit, parm="theta_", method="wald").index) == ["sd_(Intercept)|Subject", "sigma"]


def test_profile_names_and_estimates_match_lme4():
    fit = _fit("sleep_reml")
    assert profile_names(fit) == REF["sleep_reml"]["profile"]["names"]
    assert profile_names(_fit("sleep_uncorr")) == REF["sleep_uncorr"]["profile"]["names"]
    est = profile_estimates(fit)
    ref = LME4["sleep_reml"]
    vc = ref["varcorr"][0]
    want = [vc["sd"][0], vc["corr"][1][0], vc["sd"][1], ref["sigma"],
            ref["fixef"]["(Intercept)"], ref["fixef"]["Days"]]
    assert list(est.index) == profile_names(fit)
    np.testing.assert_allclose(est.to_numpy(), want, rtol=1e-3)


@pytest.mark.parametrize("level", [0, 1, 1.5, -0.2, "high", None, float("nan")])
def test_bad_level(level):
    with pytest.raises(HierlmError, match="level"):
        confint(_fit("dyestuff"), level=level, method="wald")


def test_bad_parm_lists_valid_names():
    with pytest.raises(HierlmError, match=r"'Hours'.*sd_\(Intercept\)\|Batch"):
        confint(_fit("dyestuff"), parm="Hours")


def test_bad_method_and_fit():
    with pytest.raises(HierlmError, match="method"):
        confint(_fit("dyestuff"), method="bayes")
    with pytest.raises(HierlmError, match="REML/ML fit"):
        confint(object())
