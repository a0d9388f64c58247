"""Saving and loading fits: pickle for a whole fit (every kind), NetCDF for the draws of a
posterior fit (ArviZ's InferenceData)."""

import pickle

import numpy as np
import pytest

import hierlm
from hierlm import datasets

pytest.importorskip("nutpie")

F = "Reaction ~ Days + (Days|Subject)"


@pytest.fixture(scope="module")
def sleep():
    return datasets.load("sleepstudy")


def _fits(sleep):
    model = hierlm.Model(F, sleep)
    cbpp = datasets.load("cbpp")
    yield "reml", hierlm.lmer(F, sleep)
    yield "ml", hierlm.lmer(F, sleep, reml=False)
    yield "laplace", hierlm.glmer("cbind(incidence, size - incidence) ~ period + (1|herd)", cbpp, family="binomial")
    yield "negbinomial", hierlm.glmer("incidence ~ period + (1|herd)", cbpp, family="negbinomial")
    yield "map", model.fit("map")
    yield "nuts", model.fit("nuts", draws=200, tune=200, chains=2, random_seed=1, progressbar=False)


def test_pickle_round_trip_of_every_fit_kind(sleep, tmp_path):
    for kind, fit in _fits(sleep):
        path = tmp_path / f"{kind}.pkl"
        with open(path, "wb") as fh:
            pickle.dump(fit, fh)
        with open(path, "rb") as fh:
            back = pickle.load(fh)
        assert type(back) is type(fit), kind
        assert str(back.summary()) == str(fit.summary()), kind
        assert back.family == fit.family, kind
        np.testing.assert_array_equal(back.predict().to_numpy(), fit.predict().to_numpy())
        new = sleep.iloc[:5] if kind not in ("laplace", "negbinomial") else datasets.load("cbpp").iloc[:5]
        np.testing.assert_array_equal(back.predict(newdata=new).to_numpy(), fit.predict(newdata=new).to_numpy())
        if kind == "nuts":
            # the engine's compiled density is loaded again: new draws still come out
            np.testing.assert_array_equal(back.posterior_predict(newdata=new, seed=3),
                                          fit.posterior_predict(newdata=new, seed=3))


def test_inference_data_to_netcdf_and_back(sleep, tmp_path):
    import arviz as az

    fit = hierlm.Model(F, sleep).fit("nuts", draws=200, tune=200, chains=2, random_seed=2, progressbar=False)
    path = tmp_path / "posterior.nc"
    fit.idata.to_netcdf(str(path))
    back = az.from_netcdf(str(path))
    for group in ("posterior", "log_likelihood", "sample_stats", "observed_data"):
        assert group in back.groups()
    np.testing.assert_array_equal(back.posterior["fixef"].to_numpy(), fit.idata.posterior["fixef"].to_numpy())
    assert list(back.posterior["fixef"].coords["fixed"].to_numpy()) == ["(Intercept)", "Days"]
    s0 = az.summary(fit.idata, var_names=["fixef", "sigma"])
    s1 = az.summary(back, var_names=["fixef", "sigma"])
    np.testing.assert_allclose(s1["mean"].to_numpy(), s0["mean"].to_numpy())
    assert az.loo(back).elpd_loo == pytest.approx(fit.loo().elpd_loo)
