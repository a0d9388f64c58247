"""Bad input: a clear message, a ValueError subclass, nothing dropped silently."""

import warnings

import numpy as np
import pandas as pd
import pytest

import hierlm
from hierlm.errors import DataError, FormulaError, HierlmError, ModelError

F = "Reaction ~ Days + (Days | Subject)"


def test_error_classes_are_value_errors():
    for cls in (FormulaError, DataError, ModelError):
        assert issubclass(cls, HierlmError)
    assert issubclass(HierlmError, ValueError)


def test_unknown_column_suggests_closest(sleepstudy):
    with pytest.raises(FormulaError, match=r"unknown column 'Dayz'; did you mean 'Days'\?") as info:
        hierlm.lmer("Reaction ~ Dayz + (Days | Subject)", sleepstudy)
    assert info.value.position == 11


def test_unknown_grouping_column(sleepstudy):
    with pytest.raises(FormulaError, match="unknown column 'subject'; did you mean 'Subject'"):
        hierlm.lmer("Reaction ~ Days + (1 | subject)", sleepstudy)


def test_non_numeric_response(sleepstudy):
    with pytest.raises(DataError, match="response 'Subject' is not numeric"):
        hierlm.lmer("Subject ~ Days + (1 | Subject)", sleepstudy)


def test_no_random_term_points_to_regression(sleepstudy):
    with pytest.raises(FormulaError, match="no random-effects term.*ordinary regression"):
        hierlm.lmer("Reaction ~ Days", sleepstudy)


def test_one_level_per_observation(sleepstudy):
    d = sleepstudy.assign(obs=np.arange(len(sleepstudy)))
    with pytest.raises(ModelError, match="number of levels of each grouping factor must be < number of observations"):
        hierlm.lmer("Reaction ~ Days + (1 | obs)", d)


def test_missing_values_dropped_with_count(sleepstudy):
    d = sleepstudy.copy()
    d.loc[[2, 49, 100], "Reaction"] = np.nan
    with pytest.warns(UserWarning, match=r"dropped 3 of 180 rows with missing values in 'Reaction' \(3\)"):
        fit = hierlm.lmer(F, d)
    assert fit.nobs == 177
    assert 2 not in fit.fitted().index and 3 in fit.fitted().index


def test_missing_values_refused_on_request(sleepstudy):
    d = sleepstudy.copy()
    d.loc[[5], "Days"] = np.nan
    with pytest.raises(DataError, match=r"1 row\(s\) have missing values in 'Days' \(1\); first row positions \[5\]"):
        hierlm.lmer(F, d, na_action="raise")


def test_missing_values_outside_formula_are_ignored(sleepstudy):
    d = sleepstudy.assign(other=np.nan)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert hierlm.lmer(F, d).nobs == 180


def test_empty_data():
    with pytest.raises(DataError, match="no rows"):
        hierlm.lmer(F, pd.DataFrame({"Reaction": [], "Days": [], "Subject": []}))


def test_not_a_dataframe():
    with pytest.raises(DataError, match="pandas DataFrame"):
        hierlm.lmer(F, [1, 2, 3])


def test_infinite_values(sleepstudy):
    d = sleepstudy.copy()
    d["Days"] = d["Days"].astype(float)
    d.loc[7, "Days"] = np.inf
    with pytest.raises(DataError, match=r"column 'Days' has 1 infinite value\(s\), first at row positions \[7\]"):
        hierlm.lmer(F, d)


def test_response_transform_not_finite(sleepstudy):
    d = sleepstudy.copy()
    d.loc[0, "Reaction"] = 0.0
    with pytest.raises(DataError, match=r"response log\(Reaction\) is not finite in 1 row"):
        hierlm.lmer("log(Reaction) ~ Days + (1|Subject)", d)


def test_unbalanced_parentheses(sleepstudy):
    with pytest.raises(FormulaError, match="never closed"):
        hierlm.lmer("Reaction ~ Days + (Days|Subject", sleepstudy)


def test_unknown_method_and_family_and_control(sleepstudy):
    with pytest.raises(HierlmError, match="method must be one of"):
        hierlm.Model(F, sleepstudy).fit("bogus")
    with pytest.raises(HierlmError, match="family 'weibull' is not supported"):
        hierlm.Model(F, sleepstudy, family="weibull")
    with pytest.raises(HierlmError, match="unknown control option"):
        hierlm.lmer(F, sleepstudy, tolerance=1)


def test_rank_deficient_x_dropped_with_lme4_message(sleepstudy):
    d = sleepstudy.assign(Days2=sleepstudy["Days"] * 2.0)
    with pytest.warns(UserWarning, match=r"rank deficient so dropping 1 column / coefficient \(Days2\)"):
        fit = hierlm.lmer("Reaction ~ Days + Days2 + (1|Subject)", d)
    assert list(fit.fixef.index) == ["(Intercept)", "Days"]
