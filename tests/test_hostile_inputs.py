"""Hostile and odd inputs: a clear package error or the number R gives, never a silently wrong one.

Each case asserts the package's exception class and a message that names
the problem, or the value R computes for the same input (R reads integers,
numbers stored as objects and datetimes as doubles).
"""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import pytest

import hierlm
from hierlm import priors
from hierlm.errors import DataError, FormulaError, HierlmError, ModelError


@pytest.fixture(scope="module")
def small():
    rng = np.random.default_rng(2)
    n = 80
    x = rng.integers(0, 240, n).astype(np.uint8)
    y = 100 + 0.5 * x.astype(float) + rng.normal(0, 5, n)
    return pd.DataFrame({"y": y, "x": x, "g": np.repeat(np.arange(8), 10),
                         "yu": np.clip(y, 0, 255).astype(np.uint8)})


def _quiet(fn, *a, **kw):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return fn(*a, **kw)


def test_integer_columns_are_doubles_in_formula_arithmetic(small):
    # R: I(x^2) of an integer column is a double; a uint8 squared must not wrap at 256
    fit = _quiet(hierlm.lmer, "y ~ I(x^2) + (1 | g)", small)
    np.testing.assert_array_equal(fit.design.X[:, 1], small["x"].to_numpy(float) ** 2)
    fit = _quiet(hierlm.lmer, "I(yu - 100) ~ 1 + (1 | g)", small)
    assert fit.fixef.iloc[0] == pytest.approx((small["yu"].to_numpy(float) - 100).mean())


def test_integer_grouping_keeps_its_labels(small):
    fit = _quiet(hierlm.lmer, "y ~ x + (1 | g)", small)
    assert list(fit.ranef()["g"].index[:3]) == ["0", "1", "2"]


def test_numbers_stored_as_objects_are_numbers(small):
    d = small.assign(xo=small["x"].astype(object))
    assert list(_quiet(hierlm.lmer, "y ~ xo + (1 | g)", d).fixef.index) == ["(Intercept)", "xo"]


def test_values_that_print_alike_are_refused(small):
    d = small.assign(m=[1 if i % 2 else "1" for i in range(len(small))])
    with pytest.raises(DataError, match="column 'm' holds values of different types that print alike"):
        hierlm.lmer("y ~ m + (1 | g)", d)


def test_datetimes_are_numbers(small):
    d = small.assign(t=pd.date_range("2020-01-01", periods=len(small), freq="D"))
    fit = _quiet(hierlm.lmer, "y ~ t + (1 | g)", d)
    assert list(fit.fixef.index) == ["(Intercept)", "t"]
    # seconds since the epoch, as R's POSIXct
    assert fit.design.X[1, 1] - fit.design.X[0, 1] == pytest.approx(86400.0)


def test_one_level_grouping_factor_is_refused(small):
    with pytest.raises(ModelError, match="grouping factors must have > 1 sampled level: 'one' has 1"):
        hierlm.lmer("y ~ x + (1 | one)", small.assign(one="a"))
    with pytest.raises(ModelError, match="> 1 sampled level"):
        hierlm.glmer("cbind(incidence, size - incidence) ~ period + (1 | one)",
                     hierlm.datasets.load("cbpp").assign(one="h"))


def test_overflowing_response_is_refused():
    d = hierlm.datasets.load("sleepstudy")
    with pytest.raises(ModelError, match="not finite .* rescale it"):
        hierlm.lmer("Reaction ~ Days + (1 | Subject)", d.assign(Reaction=d["Reaction"] * 1e300))


def test_non_finite_start_is_refused():
    with pytest.raises(HierlmError, match="start must be finite"):
        hierlm.lmer("Reaction ~ Days + (1 | Subject)", hierlm.datasets.load("sleepstudy"), start=[np.nan])


@pytest.mark.parametrize("make, fragment", [
    (lambda: priors.Normal(np.nan, 1), "mu must be a finite number"),
    (lambda: priors.Normal(0, np.inf), "sigma must be a finite number"),
    (lambda: priors.Normal("a", 1), "mu must be a number"),
    (lambda: priors.HalfStudentT(3, None), "sigma must be a number"),
])
def test_priors_must_be_finite_numbers(make, fragment):
    with pytest.raises(priors.PriorError, match=fragment):
        make()
    assert issubclass(priors.PriorError, HierlmError)


def test_column_named_one_in_backticks_is_used(small):
    d = small.assign(**{"1": np.linspace(0, 1, len(small))})
    fit = _quiet(hierlm.lmer, "y ~ `1` + (1 | g)", d)
    assert list(fit.fixef.index) == ["(Intercept)", "`1`"]


def test_unicode_grouping_name(small):
    fit = _quiet(hierlm.lmer, "y ~ x + (1 | Gruppé)", small.rename(columns={"g": "Gruppé"}))
    assert fit.ngroups == {"Gruppé": 8}


def test_formula_code_is_not_run(small):
    with pytest.raises(FormulaError, match="only named functions may be called"):
        hierlm.lmer('y ~ I(__import__("os").getpid()) + (1 | g)', small)
