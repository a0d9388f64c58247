"""R's model-frame semantics with missing values.

R evaluates a formula's transforms on every row of the data and only then
drops the incomplete rows (``na.omit``): ``scale(Temp)`` is centred and
scaled by all 153 days of airquality, ``poly(Temp, 2)``'s basis is built on
them, although the rows with a missing Ozone are not fitted.  Reference:
tests/reference/model_frame_na.json, made by model_frame_na.R (lme4 1.1-31)
with R's airquality (tests/reference/airquality.csv).  Tolerances: fixed
effects 1e-4 relative, REML criterion 1e-6 relative.
"""

import json
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import hierlm

HERE = Path(__file__).parent / "reference"
REF = json.loads((HERE / "model_frame_na.json").read_text())
CASES = [k for k in REF if not k.startswith("_")]


@pytest.fixture(scope="module")
def airquality():
    d = pd.read_csv(HERE / "airquality.csv")
    d["Month"] = d["Month"].astype(str)
    return d


@pytest.mark.parametrize("case", CASES)
def test_transforms_see_every_row(case, airquality):
    ref = REF[case]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        fit = hierlm.lmer(ref["formula"], airquality)
    assert fit.nobs == ref["nobs"]
    assert list(fit.fixef.index) == list(ref["fixef"])
    np.testing.assert_allclose(fit.fixef.to_numpy(), list(ref["fixef"].values()), rtol=1e-4)
    assert fit.reml_criterion == pytest.approx(ref["reml_criterion"], rel=1e-6)


def test_scale_state_is_of_all_rows(airquality):
    """predict() on new data reuses the mean and SD of all 153 temperatures."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        fit = hierlm.lmer(REF["scale_temp"]["formula"], airquality)
    new = airquality.iloc[:2].assign(Temp=[airquality["Temp"].mean(), airquality["Temp"].mean() + airquality["Temp"].std()])
    X = fit.design.x_builder.rebuild(new[["Temp", "Wind", "Solar.R"]])
    np.testing.assert_allclose(X[:, 1], [0.0, 1.0], atol=1e-12)


# R's coding of factors and logicals (tests/reference/model_matrix_coding.R):
# a term with missing margins gets indicators for each factor, lme4 drops the
# rank-deficient columns; a logical is a factor as a term, 0/1 in arithmetic.
CODING = json.loads((HERE / "model_matrix_coding.json").read_text())


@pytest.fixture(scope="module")
def coding_data():
    return pd.read_csv(HERE / "coding.csv")  # b is read as bool: R's logical


@pytest.mark.parametrize("case", [k for k in CODING if not k.startswith("_")])
def test_model_matrix_coding_as_r(case, coding_data):
    ref = CODING[case]
    assert coding_data["b"].dtype == bool
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        fit = hierlm.lmer(ref["formula"], coding_data)
    assert list(fit.fixef.index) == list(ref["fixef"])
    np.testing.assert_allclose(fit.fixef.to_numpy(), list(ref["fixef"].values()), rtol=1e-5, atol=1e-8)
    assert fit.reml_criterion == pytest.approx(ref["reml_criterion"], rel=1e-7)
    assert fit.sigma == pytest.approx(ref["sigma"], rel=1e-5)


def test_logical_arithmetic_predicts_on_new_data(coding_data):
    """I(b * x) on new data multiplies by 0/1 again (not by a factor code)."""
    fit = hierlm.lmer("y ~ I(b * x) + b + (1 | g)", coding_data)
    new = pd.DataFrame({"b": [True, False], "x": [2.0, 2.0], "g": ["g1", "g1"]})
    beta = fit.fixef
    expected = beta["(Intercept)"] + np.array([beta["I(b * x)"] * 2 + beta["bTRUE"], 0.0])
    np.testing.assert_allclose(fit.predict(new, re_form=False), expected, rtol=1e-10)
