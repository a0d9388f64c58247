"""Parity with lme4 1.1-31 on every Gaussian case of the reference file.

Reference values: tests/reference/lme4_reference.json, made by
tests/reference/lme4_reference.R (R 4.2.2, lme4 1.1-31).  Tolerances are the
project's acceptance criteria:
criterion 1e-6 relative; fixed effects and sigma 1e-4 relative; SDs,
correlations, fixed-effect SEs and conditional modes 1e-3.
"""

import numpy as np
import pytest

from conftest import GAUSSIAN_CASES, REFERENCE, fit_case


def _aslist(x):
    return x if isinstance(x, list) else [x]


@pytest.mark.parametrize("case", GAUSSIAN_CASES)
def test_criterion_and_loglik(case):
    ref, fit = REFERENCE[case], fit_case(case)
    if ref["REML"]:
        assert fit.reml_criterion == pytest.approx(ref["reml_criterion"], rel=1e-6)
    else:
        assert fit.deviance == pytest.approx(ref["deviance"], rel=1e-6)
    assert fit.loglik == pytest.approx(ref["logLik"], rel=1e-6)
    assert fit.aic == pytest.approx(ref["AIC"], rel=1e-6)
    assert fit.bic == pytest.approx(ref["BIC"], rel=1e-6)
    assert fit.df == ref["df"]
    assert fit.nobs == ref["nobs"]
    assert fit.ngroups == ref["ngroups"]
    assert fit.singular == ref["singular"]


@pytest.mark.parametrize("case", GAUSSIAN_CASES)
def test_fixed_effects_sigma_se(case):
    ref, fit = REFERENCE[case], fit_case(case)
    assert list(fit.fixef.index) == list(ref["fixef"])
    np.testing.assert_allclose(fit.fixef.to_numpy(), list(ref["fixef"].values()), rtol=1e-4)
    assert fit.sigma == pytest.approx(ref["sigma"], rel=1e-4)
    se = np.sqrt(np.diag(fit.vcov.to_numpy()))
    np.testing.assert_allclose(se, list(ref["se"].values()), rtol=1e-3)


@pytest.mark.parametrize("case", GAUSSIAN_CASES)
def test_theta_and_variance_components(case):
    ref, fit = REFERENCE[case], fit_case(case)
    np.testing.assert_allclose(fit.theta, _aslist(ref["theta"]), rtol=1e-3, atol=1e-4)
    vc = fit.varcorr
    for g in ref["varcorr"]:
        rows = vc[(vc["group"] == g["group"]) & vc["var2"].isna()]
        assert list(rows["var1"]) == _aslist(g["names"])
        np.testing.assert_allclose(rows["sdcor"], _aslist(g["sd"]), rtol=1e-3)
        corr = np.atleast_2d(g["corr"])
        cors = vc[(vc["group"] == g["group"]) & vc["var2"].notna()]
        names = _aslist(g["names"])
        for _, row in cors.iterrows():
            i, j = names.index(row["var1"]), names.index(row["var2"])
            assert row["sdcor"] == pytest.approx(corr[i, j], abs=1e-3)
    assert vc.iloc[-1]["group"] == "Residual"


@pytest.mark.parametrize("case", GAUSSIAN_CASES)
def test_conditional_modes_and_sds(case):
    ref, fit = REFERENCE[case], fit_case(case)
    r = ref["ranef"]
    ours = fit.ranef_frame().set_index(["grpvar", "term", "grp"])
    keys = list(zip(r["grp"], r["term"], r["level"]))
    got = ours.loc[keys]
    for col in ("condval", "condsd"):
        want = np.asarray(r[col])
        scale = np.max(np.abs(want))
        np.testing.assert_allclose(got[col].to_numpy(), want, rtol=1e-3, atol=1e-3 * scale)
