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


@pytest.fixture(scope="session")
def dask_client():
    """A LocalCluster of 2 worker processes, shared by the tests that need one."""
    distributed = pytest.importorskip("dask.distributed")  # in the test extra: hierlm[dask]
    cluster = distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                                       dashboard_address=None)
    client = distributed.Client(cluster)
    yield client
    client.close()
    cluster.close()
