"""Shared fixtures: lme4's reference values and fits cached per session."""

import json
from functools import lru_cache
from pathlib import Path

import pytest

import hierlm

REFERENCE = json.loads((Path(__file__).parent / "reference" / "lme4_reference.json").read_text())
GAUSSIAN_CASES = [k for k, v in REFERENCE.items() if v["family"] == "gaussian"]


@lru_cache(maxsize=None)
def fit_case(case_id: str):
    """Fit one reference case once per test session."""
    ref = REFERENCE[case_id]
    return hierlm.lmer(ref["formula"], hierlm.datasets.load(ref["data"]), reml=ref["REML"])


@pytest.fixture(scope="session")
def sleep_fit():
    return fit_case("sleep_reml")


@pytest.fixture(scope="session")
def sleepstudy():
    return hierlm.datasets.load("sleepstudy")
