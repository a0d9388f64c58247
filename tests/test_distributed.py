"""Models on a dask DataFrame: the Gram blocks made on a LocalCluster give the
in-memory fit's numbers.

The reference is the same model fit on the same rows as a pandas DataFrame
(itself checked against lme4 elsewhere).  At the same theta the two give
the same deviance, beta and conditional modes to 1e-10 (only the order of
the sums differs); the fits agree to the optimizer's tolerance (theta is
found to xtol_abs 1e-8: 1e-6 here, and the log-likelihood to 1e-10
relative, being flat at the optimum).
"""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import pytest

import hierlm
from hierlm.errors import FormulaError, HierlmError, ModelError

dd = pytest.importorskip("dask.dataframe")


def _crossed(n=6000, seed=3):
    rng = np.random.default_rng(seed)
    u = rng.integers(0, 300, n)
    i = rng.zipf(1.6, n) % 120
    x = rng.normal(size=n)
    bu = rng.normal(scale=0.8, size=300)
    su = rng.normal(scale=0.3, size=300)
    bi = rng.normal(scale=0.5, size=120)
    f = rng.choice(["lo", "mid", "hi"], n)
    y = 1.0 + 0.5 * x + (f == "hi") * 0.3 + bu[u] + su[u] * x + bi[i] + rng.normal(size=n)
    df = pd.DataFrame({"user": [f"u{k}" for k in u], "item": i, "x": x, "f": f, "y": y,
                       "site": rng.choice(["A", "B"], n), "flag": rng.random(n) < 0.4})
    # a few missing values (dropped by both, as lme4's na.omit)
    df.loc[rng.choice(n, 25, replace=False), "x"] = np.nan
    # sorted by user: most users' rows sit in one partition only, so the
    # partitions must agree on the levels to code them alike
    return df.sort_values("user", kind="stable").reset_index(drop=True)


CASES = [
    ("sleepstudy", "Reaction ~ Days + (Days | Subject)", True),
    ("sleepstudy", "Reaction ~ Days + (1 | Subject) + (0 + Days | Subject)", False),
    ("crossed", "y ~ x + f + (1 | user) + (1 | item)", False),
    ("crossed", "y ~ x + f + flag + (1 + x | user) + (1 | item)", True),
    ("crossed", "y ~ x + (1 | user) + (1 | site:item)", False),
]


def _data(name):
    return hierlm.datasets.load("sleepstudy") if name == "sleepstudy" else _crossed()


def _close(a, b, rtol, atol=0.0):
    np.testing.assert_allclose(np.asarray(a, dtype=float), np.asarray(b, dtype=float), rtol=rtol, atol=atol)


@pytest.mark.parametrize("data, formula, reml", CASES)
def test_dask_fit_equals_in_memory_fit(dask_client, data, formula, reml):
    df = _data(data)
    ddf = dd.from_pandas(df, npartitions=4, sort=False)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # the dropped rows (both say so)
        mem = hierlm.lmer(formula, df, reml=reml)
        dsk = hierlm.lmer(formula, ddf, reml=reml)
    assert dsk.design.rows_free and dsk.nobs == mem.nobs
    assert type(dsk.devfun) is type(mem.devfun)
    assert dsk.ngroups == mem.ngroups
    # at the same theta: the same deviance, beta and conditional modes
    for theta in (mem.theta, 0.7 * mem.theta + 0.1):
        _close(dsk.devfun.objective(theta, reml), mem.devfun.objective(theta, reml), rtol=1e-10)
        fd, fm = dsk.devfun.factor(theta), mem.devfun.factor(theta)
        bd, bm = dsk.devfun.solve(fd), mem.devfun.solve(fm)
        _close(bd[0], bm[0], rtol=1e-10, atol=1e-10)
        for u, v in zip(bd[1], bm[1]):
            _close(u, v, rtol=1e-9, atol=1e-10)
    # the fits: to the optimizer's tolerance
    _close(dsk.loglik, mem.loglik, rtol=1e-10)
    _close(dsk.theta, mem.theta, rtol=0, atol=1e-6)
    _close(dsk.fixef, mem.fixef, rtol=1e-6)
    assert list(dsk.fixef.index) == list(mem.fixef.index)
    _close(dsk.sigma, mem.sigma, rtol=1e-7)
    _close(dsk.vcov, mem.vcov, rtol=1e-6, atol=1e-6 * np.abs(mem.vcov.to_numpy()).max())  # entries near 0
    for g, r in mem.ranef(condvar=True).items():
        rd = dsk.ranef(condvar=True)[g]
        assert list(rd.index) == list(r.index)  # the same levels, in lme4's order
        _close(rd["condval"], r["condval"], rtol=1e-5, atol=1e-6)
        _close(rd["condsd"], r["condsd"], rtol=1e-5)
    # new rows are predicted as by the in-memory fit
    new = df.dropna().iloc[::97]
    _close(dsk.predict(new), mem.predict(new), rtol=1e-6)


def test_rank_deficient_column_dropped_as_in_memory(dask_client):
    df = _crossed()
    df["x2"] = 2.0 * df["x"]
    formula = "y ~ x + x2 + (1 | user) + (1 | item)"
    with pytest.warns(UserWarning, match=r"rank deficient so dropping 1 column / coefficient \(x2\)"):
        dsk = hierlm.lmer(formula, dd.from_pandas(df, npartitions=3), reml=False)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        mem = hierlm.lmer(formula, df, reml=False)
    assert list(dsk.fixef.index) == list(mem.fixef.index) == ["(Intercept)", "x"]
    _close(dsk.loglik, mem.loglik, rtol=1e-10)


def test_partition_of_missing_rows_and_one_level_partitions(dask_client):
    df = hierlm.datasets.load("sleepstudy").copy()
    df.loc[:19, "Reaction"] = np.nan  # the first partition: no complete row
    ddf = dd.from_pandas(df, npartitions=9, sort=False)  # 20 rows a partition: mostly one Subject each
    with pytest.warns(UserWarning, match="dropped 20 of 180 rows"):
        dsk = hierlm.lmer("Reaction ~ Days + (Days | Subject)", ddf)
    with pytest.warns(UserWarning, match="dropped 20 of 180 rows"):
        mem = hierlm.lmer("Reaction ~ Days + (Days | Subject)", df)
    assert dsk.nobs == mem.nobs == 160
    assert dsk.ngroups == mem.ngroups
    _close(dsk.loglik, mem.loglik, rtol=1e-10)
    with pytest.raises(hierlm.DataError, match="missing values"):
        hierlm.lmer("Reaction ~ Days + (Days | Subject)", ddf, na_action="raise")


def test_rows_free_fit_refuses_what_needs_rows(dask_client):
    ddf = dd.from_pandas(hierlm.datasets.load("sleepstudy"), npartitions=2)
    fit = hierlm.lmer("Reaction ~ Days + (Days | Subject)", ddf)
    for call in (fit.fitted, fit.residuals, fit.simulate, fit.icc, fit.r2, fit.to_bambi,
                 lambda: fit.coef_table("kenward-roger"), lambda: fit.plot("shrinkage"),
                 lambda: fit.plot("diagnostics"), fit.predict, lambda: fit.predict(interval="confidence")):
        with pytest.raises(HierlmError, match="rows stay on the cluster"):
            call()
    # docs/dask.md: fitted values and residuals computed on the cluster by predict
    pred = ddf.map_partitions(fit.predict, meta=("predicted", "f8")).compute()
    mem = hierlm.lmer("Reaction ~ Days + (Days | Subject)", ddf.compute())
    _close(pred.to_numpy(), mem.fitted().to_numpy(), rtol=1e-6)
    text = str(fit.summary())
    assert "Scaled residuals: not computed" in text and "Days" in text
    model = hierlm.Model("Reaction ~ Days + (Days | Subject)", ddf)
    for call in (lambda: model.fit("nuts"), lambda: model.fit("map"), lambda: model.priors,
                 lambda: model.sample_prior_predictive(10)):
        with pytest.raises(HierlmError, match="'reml' or 'ml'"):
            call()
    # the model's errors name what to do
    with pytest.raises(FormulaError, match="unknown column 'Dayz'"):
        hierlm.lmer("Reaction ~ Dayz + (1 | Subject)", ddf)
    with pytest.raises(FormulaError, match=r"scale\(\) is computed from the whole column"):
        hierlm.lmer("Reaction ~ scale(Days) + (1 | Subject)", ddf)
    with pytest.raises(ModelError, match="family='gaussian'"):
        hierlm.glmer("Reaction ~ Days + (1 | Subject)", ddf, family="poisson")
    with pytest.raises(ModelError, match="sampled level"):
        hierlm.lmer("Reaction ~ Days + (1 | one)", ddf.assign(one="a"))


# ---- the parametric bootstrap of a fit on a dask DataFrame ---------------------------------
def test_refit_from_cross_products_equals_in_memory_refit(dask_client):
    df = hierlm.datasets.load("sleepstudy")
    formula = "Reaction ~ Days + (Days | Subject)"
    dsk = hierlm.lmer(formula, dd.from_pandas(df, npartitions=3))
    mem = hierlm.lmer(formula, df)
    y = mem.simulate(1, seed=5).to_numpy()[:, 0]
    d = mem.design
    Z = np.column_stack([r.sparse().toarray() for r in d.remats])
    new = dsk.refit((Z.T @ y, d.X.T @ y, y @ y))
    ref = mem.refit(y)
    assert new.design.rows_free
    _close(new.loglik, ref.loglik, rtol=1e-10)
    _close(new.fixef, ref.fixef, rtol=1e-6)
    _close(new.theta, ref.theta, rtol=0, atol=1e-6)
    with pytest.raises(HierlmError, match="cross-products"):
        dsk.refit(y)


def test_bootstrap_of_dask_fit(dask_client):
    df = hierlm.datasets.load("sleepstudy")
    ddf = dd.from_pandas(df, npartitions=3)
    fit = hierlm.lmer("Reaction ~ Days + (Days | Subject)", ddf)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", hierlm.ConvergenceWarning)
        a = hierlm.boot_mer(fit, lambda m: m.fixef, nsim=120, seed=11)
        b = hierlm.boot_mer(fit, lambda m: m.fixef, nsim=120, seed=11)
    pd.testing.assert_frame_equal(a.t, b.t)  # reproducible from the seed (for a given partitioning)
    assert not len(a.failed)
    # the replicates' spread is the fixed effects' standard errors: the SD of
    # 120 draws is within 30% of the Wald SE (its Monte Carlo SE is ~6.5%)
    se = np.sqrt(np.diag(fit.vcov))
    np.testing.assert_allclose(a.t.std(ddof=1).to_numpy(), se, rtol=0.3)
    # simulated from the fit, the replicates' mean is the fit's estimate: within 4 Monte Carlo SEs
    z = (a.t.mean().to_numpy() - fit.fixef.to_numpy()) / (a.t.std(ddof=1).to_numpy() / np.sqrt(120))
    assert np.all(np.abs(z) < 4), z


def test_pb_test_on_dask_fits(dask_client):
    df = hierlm.datasets.load("sleepstudy")
    ddf = dd.from_pandas(df, npartitions=3)
    big = hierlm.lmer("Reaction ~ Days + (Days | Subject)", ddf, reml=False)
    small = hierlm.lmer("Reaction ~ 1 + (Days | Subject)", ddf, reml=False)
    res = hierlm.pb_test(big, small, nsim=30, seed=3)
    # Days matters a great deal: no replicate reaches the observed statistic
    assert res.test.loc["PBtest", "p.value"] <= 1.0 / 31 + 1e-12
    with pytest.raises(HierlmError, match="same dask DataFrame"):
        hierlm.pb_test(big, hierlm.lmer("Reaction ~ 1 + (Days | Subject)", df, reml=False), nsim=5)


def test_too_large_refused_before_the_gram_pass(dask_client, monkeypatch):
    """The engine's memory check runs on the levels (first pass), before any
    Gram block is made: here with 10 kB said to be available."""
    import hierlm.design.distributed as dist
    import hierlm.lmm.deviance as dv

    monkeypatch.setattr(dv, "available_memory", lambda: 1e4)
    made = []
    monkeypatch.setattr(dist, "_gram_of_partition", lambda *a: made.append(1))
    ddf = dd.from_pandas(_crossed(), npartitions=2)
    with pytest.raises(hierlm.TooLargeError, match="needs about .* of memory"):
        hierlm.lmer("y ~ x + (1 | user) + (1 | item)", ddf)
    assert not made
