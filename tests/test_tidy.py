"""fit.tidy() against broom.mixed's tidy (tests/reference/tidy.R)."""

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import hierlm

REF = json.loads((Path(__file__).parent / "reference" / "tidy.json").read_text())


def _check(got: pd.DataFrame, ref: dict, rtol: float):
    want = pd.DataFrame(ref)
    assert list(got.columns) == list(want.columns)
    for c in want.columns:
        if not (pd.api.types.is_numeric_dtype(want[c]) and pd.api.types.is_numeric_dtype(got[c])):
            assert [None if pd.isna(v) else str(v) for v in got[c]] == [None if pd.isna(v) else str(v) for v in want[c]], c
        else:
            np.testing.assert_allclose(got[c].to_numpy(dtype=float), want[c].to_numpy(dtype=float), rtol=rtol,
                                       equal_nan=True, err_msg=c)


@pytest.fixture(scope="module")
def sleep():
    return hierlm.datasets.load("sleepstudy")


def test_lmer_matches_broom_mixed(sleep):
    fit = hierlm.lmer("Reaction ~ Days + (Days | Subject)", sleep)
    _check(fit.tidy(conf_int=True), REF["lmer"], rtol=1e-4)  # Satterthwaite df: lmerTest's, to 1e-4
    _check(fit.tidy(effects="ran_vals"), REF["lmer_ranvals"], rtol=1e-5)
    zcp = hierlm.lmer("Reaction ~ Days + (Days || Subject)", sleep)
    _check(zcp.tidy(), REF["zcp"], rtol=1e-4)


def test_glmer_matches_broom_mixed():
    cbpp = hierlm.datasets.load("cbpp")
    fit = hierlm.glmer("cbind(incidence, size - incidence) ~ period + (1 | herd)", cbpp, family="binomial")
    _check(fit.tidy(conf_int=True), REF["glmer"], rtol=1e-4)


def test_bad_effects_named(sleep):
    fit = hierlm.lmer("Reaction ~ Days + (Days | Subject)", sleep)
    with pytest.raises(hierlm.HierlmError, match="effects must be among"):
        fit.tidy(effects=("fixed", "random"))
    # ddf passes through to the table
    kr = fit.tidy(effects="fixed", ddf="kenward-roger")
    assert kr["df"].iloc[0] == pytest.approx(fit.coef_table(ddf="kenward-roger")["df"].iloc[0])


def test_conf_level_checked(sleep):
    fit = hierlm.lmer("Reaction ~ Days + (Days | Subject)", sleep)
    with pytest.raises(hierlm.HierlmError, match="conf_level must be a number between 0 and 1"):
        fit.tidy(conf_int=True, conf_level=95)
