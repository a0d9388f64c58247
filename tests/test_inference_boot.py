"""Parametric bootstrap: boot_mer, confint_boot, pb_test against lme4 / pbkrtest.

Reference values: tests/reference/inference_boot.json, made by
tests/reference/inference_boot.R (lme4 1.1-31, pbkrtest 0.5.2).

The observed LRT is deterministic and is compared within 1e-4 relative.
Bootstrap quantities are not: R's samples (2000 replicates, Mersenne-Twister)
and ours (NumPy's PCG64, fewer replicates) differ, so agreement is
statistical, with tolerances derived from the Monte Carlo error of both:

* PB p-value: binomial standard error of the difference of two independent
  estimates, sqrt(p (1 - p) (1/n_ours + 1/n_R)); we allow 4 of them.
* Percentile-interval ends: the standard error of a sample quantile,
  sqrt(a (1 - a) / n) / f(q_a), for both samples, with the density f at the
  quantile estimated from R's 2000 replicates by a central difference of
  its quantiles; we allow 4 standard errors.
* Whole distributions: two-sample Kolmogorov-Smirnov test of our replicates
  against R's, p > 0.001 for each statistic.

The percentile rule itself (boot's ``norm.inter``) and pbkrtest's p-value
formula are checked exactly by applying them to R's own stored samples.
"""

import json
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from scipy import stats

import hierlm
from hierlm.errors import ConvergenceWarning, HierlmError
from hierlm.inference.boot import (
    BootResult,
    _norm_inter,
    _pb_pvalue,
    boot_mer,
    confint_boot,
    pb_test,
)
from hierlm.inference.profile import profile_estimates

REF = json.loads((Path(__file__).parent / "reference" / "inference_boot.json").read_text())
NSIM = 300  # per statistical comparison; each sleepstudy refit takes ~5-10 ms
Z = 4.0


@pytest.fixture(scope="module")
def sleep():
    return hierlm.datasets.load("sleepstudy")


@pytest.fixture(scope="module")
def m1(sleep):
    return hierlm.lmer("Reaction ~ Days + (Days | Subject)", sleep)


@pytest.fixture(scope="module")
def m2(sleep):
    return hierlm.lmer("Reaction ~ Days + (1 | Subject) + (0 + Days | Subject)", sleep)


@pytest.fixture(scope="module")
def pb12(m1, m2):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return pb_test(m1, m2, nsim=NSIM, seed=11)


@pytest.fixture(scope="module")
def boot_m1(m1):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        return boot_mer(m1, profile_estimates, nsim=NSIM, seed=12)


def _fixef(f):
    return f.fixef


def _quantile_tol(r_sample: np.ndarray, a: float, n_ours: int, h: float = 0.01) -> float:
    """Z standard errors of the difference of two sample a-quantiles (ours, R's)."""
    r = r_sample[np.isfinite(r_sample)]
    lo, hi = np.quantile(r, [max(a - h, 0.0), min(a + h, 1.0)])
    inv_density = (hi - lo) / (min(a + h, 1.0) - max(a - h, 0.0))
    return Z * np.sqrt(a * (1 - a) * (1 / n_ours + 1 / r.size)) * inv_density


# ----------------------------------------------------------------------
# PBmodcomp
# ----------------------------------------------------------------------
def test_pb_lrt_matches_pbkrtest(pb12):
    ref = REF["pb_m1_m2"]
    lrt = pb12.test.loc["LRT"]
    assert lrt["stat"] == pytest.approx(ref["stat"], rel=1e-4)
    assert lrt["df"] == ref["df"]
    assert lrt["p.value"] == pytest.approx(ref["p_chisq"], rel=1e-4)
    assert list(pb12.test.index) == ["LRT", "PBtest"]
    assert list(pb12.test.columns) == ["stat", "df", "p.value"]


def test_pb_pvalue_within_monte_carlo_error(pb12):
    ref = REF["pb_m1_m2"]
    p_r = ref["p_pb"]
    se = np.sqrt(p_r * (1 - p_r) * (1 / pb12.npos + 1 / ref["npos"]))  # ~0.024 for 300 vs 1997
    assert abs(pb12.p_value - p_r) < Z * se
    assert pb12.p_value == (1 + pb12.n_extreme) / (1 + pb12.npos)
    # the whole reference distribution of LRT*, not only its tail beyond 0.064
    r_ref = np.asarray(ref["ref"])
    assert stats.ks_2samp(pb12.ref[np.isfinite(pb12.ref)], r_ref).pvalue > 1e-3


def test_pb_pvalue_rule_is_pbkrtests():
    # pbkrtest's formula on R's own samples gives R's p-value exactly
    for case in ("pb_m1_m2", "pb_days"):
        ref = REF[case]
        p, npos, n_extreme = _pb_pvalue(ref["stat"], np.asarray(ref["ref"]))
        assert (p, npos, n_extreme) == (pytest.approx(ref["p_pb"], rel=1e-12), ref["npos"], ref["n_extreme"])
    # non-positive and failed (NaN) statistics are not counted
    p, npos, n_extreme = _pb_pvalue(1.0, np.array([0.5, 2.0, -1e-9, np.nan, 0.0, 3.0]))
    assert (npos, n_extreme) == (3, 2) and p == pytest.approx(3 / 4)


def test_pb_fixed_effect_test(sleep):
    ref = REF["pb_days"]
    big = hierlm.lmer("Reaction ~ Days + (1 | Subject)", sleep)
    small = hierlm.lmer("Reaction ~ 1 + (1 | Subject)", sleep)
    with pytest.warns(UserWarning, match=r"refitting model\(s\) with ML \(instead of REML\)"):
        pb = pb_test(big, small, nsim=40, seed=3)
    assert pb.stat == pytest.approx(ref["stat"], rel=1e-4)
    assert pb.test.loc["LRT", "df"] == ref["df"] == 1
    assert pb.test.loc["LRT", "p.value"] == pytest.approx(stats.chi2.sf(ref["stat"], 1), rel=1e-4)
    # LRT = 116 is far beyond every bootstrap statistic (R: 0 of 500 as well)
    assert pb.npos == 40 and pb.n_extreme == 0 and pb.p_value == pytest.approx(1 / 41)
    text = repr(pb)
    assert "Bootstrap test;" in text and "samples: 40; extremes: 0;" in text
    assert "large : Reaction ~ Days + (1 | Subject)" in text and "PBtest" in text


def test_pb_ml_fits_need_no_refit(sleep):
    big = hierlm.lmer("Reaction ~ Days + (1 | Subject)", sleep, reml=False)
    small = hierlm.lmer("Reaction ~ 1 + (1 | Subject)", sleep, reml=False)
    with warnings.catch_warnings():
        warnings.simplefilter("error", UserWarning)
        pb = pb_test(big, small, nsim=3, seed=1)
    assert pb.stat == pytest.approx(2 * (big.loglik - small.loglik), rel=1e-12)


# ----------------------------------------------------------------------
# confint(method = "boot")
# ----------------------------------------------------------------------
def test_percentile_rule_is_boot_ci():
    # boot.ci(type = "perc")'s norm.inter on R's stored samples reproduces R's table
    for case in ("boot_sleep", "boot_dyestuff"):
        ref = REF[case]
        for j, _ in enumerate(ref["names"]):
            lo, hi = _norm_inter(np.asarray(ref["t"][j], dtype=float), np.array([0.025, 0.975]))
            assert lo == pytest.approx(ref["lower"][j], rel=1e-6, abs=1e-9)
            assert hi == pytest.approx(ref["upper"][j], rel=1e-6, abs=1e-9)
    # exact order statistics where (R + 1) alpha is an integer; endpoints at the extremes warn
    t = np.arange(1.0, 40.0)  # R = 39: (R + 1) * 0.025 = 1, * 0.975 = 39
    with pytest.warns(UserWarning, match="extreme order statistics"):
        assert list(_norm_inter(t, np.array([0.025, 0.975]))) == [1.0, 39.0]
    assert _norm_inter(np.r_[t, np.nan, np.inf], np.array([0.5]))[0] == 20.0


def test_confint_boot_matches_lme4(m1):
    ref = REF["boot_sleep"]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        ci = confint_boot(m1, nsim=NSIM, seed=12)
    assert list(ci.index) == ref["names"]
    assert list(ci.columns) == ref["columns"] == ["2.5 %", "97.5 %"]
    for j, name in enumerate(ref["names"]):
        r = np.asarray(ref["t"][j], dtype=float)
        for col, a, rv in (("2.5 %", 0.025, ref["lower"][j]), ("97.5 %", 0.975, ref["upper"][j])):
            tol = _quantile_tol(r, a, NSIM)
            assert abs(ci.loc[name, col] - rv) < tol, (name, col, ci.loc[name, col], rv, tol)


def test_boot_distribution_matches_lme4(boot_m1, m1):
    ref = REF["boot_sleep"]
    assert list(boot_m1.t.columns) == ref["names"]
    np.testing.assert_allclose(boot_m1.t0.to_numpy(), ref["t0"], rtol=1e-4)
    for j, name in enumerate(ref["names"]):
        ours = boot_m1.t[name].to_numpy()
        assert stats.ks_2samp(ours[np.isfinite(ours)], ref["t"][j]).pvalue > 1e-3, name
    # same seed, same replicates: confint_boot is this bootstrap's percentile table
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        ci = confint_boot(m1, nsim=NSIM, seed=12)
    pd.testing.assert_frame_equal(ci, boot_m1.confint())


def test_boot_fixed_effects_unbiased(boot_m1, m1):
    # GLS estimates are unbiased for beta: the bootstrap mean is the estimate within MC error
    for name, est in m1.fixef.items():
        t = boot_m1.t[name]
        assert abs(t.mean() - est) < Z * t.std() / np.sqrt(len(t))
        # and its spread is that of the estimator, close to the model's standard error
        assert t.std() == pytest.approx(np.sqrt(m1.vcov.loc[name, name]), rel=0.2)
    summ = boot_m1.summary()
    assert list(summ.columns) == ["original", "bias", "std. error"]


def test_confint_boot_boundary_dyestuff():
    # Dyestuff: many refits put the Batch SD at 0 (lower end 0 in lme4 too)
    ref = REF["boot_dyestuff"]
    fit = hierlm.lmer("Yield ~ 1 + (1 | Batch)", hierlm.datasets.load("Dyestuff"))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        res = boot_mer(fit, profile_estimates, nsim=NSIM, seed=13)
    ci = res.confint()
    assert list(ci.index) == ref["names"]
    # lme4 moves a theta within boundary.tol = 1e-5 of its bound onto it, so its singular
    # refits give SD exactly 0; hierlm's optimizer stops at theta ~ 1e-8 to 1e-6 there
    # (SD < 1e-4 here, against an estimate of 42)
    assert ref["lower"][0] == 0.0 and 0.0 <= ci.loc["sd_(Intercept)|Batch", "2.5 %"] < 1e-4
    r_sd0 = np.mean(np.asarray(ref["t"][0]) == 0)  # 3.9 % of R's samples
    ours_sd0 = np.mean(res.t.iloc[:, 0] < 1e-4)
    assert 0 < ours_sd0 and set(np.flatnonzero(res.t.iloc[:, 0] < 1e-4)) <= set(res.singular)
    assert abs(ours_sd0 - r_sd0) < Z * np.sqrt(r_sd0 * (1 - r_sd0) * (1 / NSIM + 1 / 2000))
    for j, name in enumerate(ref["names"]):
        ours = res.t[name].to_numpy()
        assert stats.ks_2samp(ours, ref["t"][j]).pvalue > 1e-3, name
        r = np.asarray(ref["t"][j], dtype=float)
        if j > 0:
            for col, a, rv in (("2.5 %", 0.025, ref["lower"][j]), ("97.5 %", 0.975, ref["upper"][j])):
                assert abs(ci.loc[name, col] - rv) < _quantile_tol(r, a, NSIM), (name, col)


def test_confint_boot_parm_and_level(m1):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        ci = confint_boot(m1, parm="beta_", level=0.9, nsim=30, seed=5)
    assert list(ci.index) == ["(Intercept)", "Days"]
    assert list(ci.columns) == ["5 %", "95 %"]
    assert (ci["5 %"] < m1.fixef).all() and (ci["95 %"] > m1.fixef).all()


# ----------------------------------------------------------------------
# reproducibility: seeds, processes, Dask
# ----------------------------------------------------------------------
@pytest.mark.filterwarnings("ignore::hierlm.errors.ConvergenceWarning")  # unseeded run below
def test_replicate_i_is_its_own_stream(m1):
    res = boot_mer(m1, _fixef, nsim=6, seed=2024)
    children = np.random.SeedSequence(2024).spawn(6)
    for i in (0, 5):
        y = m1.simulate(1, seed=np.random.default_rng(children[i])).iloc[:, 0]
        np.testing.assert_array_equal(res.t.iloc[i].to_numpy(), m1.refit(y).fixef.to_numpy())
    assert res.seed == 2024
    # a fresh seed is recorded and reproduces the run
    res2 = boot_mer(m1, _fixef, nsim=3)
    res3 = boot_mer(m1, _fixef, nsim=3, seed=res2.seed)
    pd.testing.assert_frame_equal(res2.t, res3.t)


def test_identical_across_workers_and_dask(m1, m2, dask_client):
    kw = {"nsim": 24, "seed": 99}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        serial = boot_mer(m1, profile_estimates, n_jobs=1, **kw)
        local2 = boot_mer(m1, profile_estimates, n_jobs=2, **kw)
        onDask = boot_mer(m1, profile_estimates, client=dask_client, **kw)
    for other in (local2, onDask):
        np.testing.assert_array_equal(serial.t.to_numpy(), other.t.to_numpy())
        np.testing.assert_array_equal(serial.nonconverged, other.nonconverged)
    assert np.isfinite(serial.t.to_numpy()).all()
    # pb_test: two refits per sample, also identical
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        p1 = pb_test(m1, m2, nsim=12, seed=4)
        p2 = pb_test(m1, m2, nsim=12, seed=4, n_jobs=2)
        p3 = pb_test(m1, m2, nsim=12, seed=4, client=dask_client)
    np.testing.assert_array_equal(p1.ref, p2.ref)
    np.testing.assert_array_equal(p1.ref, p3.ref)
    pd.testing.assert_frame_equal(p1.test, p3.test)


# ----------------------------------------------------------------------
# failures, warnings, progress
# ----------------------------------------------------------------------
def test_nonconverged_refits_kept_and_warned_once(m1):
    with warnings.catch_warnings(record=True) as rec:
        warnings.simplefilter("always")
        res = boot_mer(m1, _fixef, nsim=5, seed=1, control={"maxeval": 5})
    conv = [w for w in rec if issubclass(w.category, ConvergenceWarning)]
    assert len(conv) == 1 and "5 of 5 bootstrap refits" in str(conv[0].message)
    assert list(res.nonconverged) == [0, 1, 2, 3, 4]
    assert np.isfinite(res.t.to_numpy()).all()


class _FailOnRefit:
    """Returns the fixed effects of the original fit, raises on every other one
    with theta[0] above the estimate (about half the refits), or on all."""

    def __init__(self, fit, always=False):
        self.theta = fit.theta.copy()
        self.always = always

    def __call__(self, f):
        if not np.array_equal(f.theta, self.theta) and (self.always or f.theta[0] > self.theta[0]):
            raise RuntimeError("boom")
        return f.fixef


def test_failed_refits_are_nan_rows(m1):
    with pytest.warns(UserWarning, match=r"some bootstrap runs failed \(\d+/20\).*RuntimeError: boom"):
        res = boot_mer(m1, _FailOnRefit(m1), nsim=20, seed=8)
    bad = res.t.isna().all(axis=1).to_numpy()
    assert 0 < bad.sum() < 20 and list(np.flatnonzero(bad)) == list(res.failed)
    assert res.messages["RuntimeError: boom"] == bad.sum()
    with pytest.raises(HierlmError, match="all 4 bootstrap refits failed"):
        boot_mer(m1, _FailOnRefit(m1, always=True), nsim=4, seed=8)


def test_progress_bar(m1, capsys):
    boot_mer(m1, _fixef, nsim=3, seed=1, progress=True)
    err = capsys.readouterr().err
    assert "bootstrap" in err and "3/3" in err
    boot_mer(m1, _fixef, nsim=3, seed=1)  # default: not for nsim < 100
    assert capsys.readouterr().err == ""


def test_boot_result_type(boot_m1):
    assert isinstance(boot_m1, BootResult)
    assert boot_m1.t.shape == (NSIM, 6) and boot_m1.nsim == NSIM
    assert "Parametric bootstrap: 300 replicates, seed 12" in repr(boot_m1)


# ----------------------------------------------------------------------
# bad input
# ----------------------------------------------------------------------
@pytest.mark.parametrize("nsim", [0, -5, 2.5, True, "10"])
def test_nsim_must_be_positive_integer(m1, m2, nsim):
    with pytest.raises(HierlmError, match="nsim must be a positive integer"):
        boot_mer(m1, _fixef, nsim=nsim)
    with pytest.raises(HierlmError, match="nsim must be a positive integer"):
        confint_boot(m1, nsim=nsim)
    with pytest.raises(HierlmError, match="nsim must be a positive integer"):
        pb_test(m1, m2, nsim=nsim)


@pytest.mark.parametrize("level", [0, 1, 1.5, -0.1, "high"])
def test_level_outside_unit_interval(m1, level):
    with pytest.raises(HierlmError, match="level must be"):
        confint_boot(m1, level=level, nsim=2)


def test_bad_arguments(m1, sleep):
    with pytest.raises(HierlmError, match="n_jobs must be a non-zero integer"):
        boot_mer(m1, _fixef, nsim=2, n_jobs=0)
    with pytest.raises(HierlmError, match="seed must be"):
        boot_mer(m1, _fixef, nsim=2, seed=np.random.default_rng(1))
    with pytest.raises(HierlmError, match="client must be a dask.distributed.Client"):
        boot_mer(m1, _fixef, nsim=2, client="tcp://localhost:8786")
    with pytest.raises(HierlmError, match="fun must be a function"):
        boot_mer(m1, 3, nsim=2)
    with pytest.raises(HierlmError, match="REML/ML fits"):
        boot_mer(sleep, _fixef, nsim=2)
    with pytest.raises(HierlmError, match="unknown control option"):
        boot_mer(m1, _fixef, nsim=2, control={"maxiter": 3})
    with pytest.raises(HierlmError, match="parm 'Weeks' is not a parameter"):
        confint_boot(m1, parm="Weeks", nsim=2)


def test_pb_test_refuses_non_nested(m1, m2, sleep):
    with pytest.raises(HierlmError, match="pass the larger model first"):
        pb_test(m2, m1, nsim=5)
    with pytest.raises(HierlmError, match="fewer parameters"):
        pb_test(m1, m1, nsim=5)
    fewer_rows = hierlm.lmer("Reaction ~ Days + (1 | Subject)", sleep.iloc[:-10])
    with pytest.raises(HierlmError, match="different rows"):
        pb_test(m1, fewer_rows, nsim=5)
    logged = sleep.assign(logR=np.log(sleep["Reaction"]))
    other_y = hierlm.lmer("logR ~ Days + (1 | Subject)", logged)
    with pytest.raises(HierlmError, match="different responses"):
        pb_test(m1, other_y, nsim=5)
    # a covariate small has and big does not: not nested
    other_x = hierlm.lmer("Reaction ~ logR + (1 | Subject)", logged)
    with pytest.raises(HierlmError, match="fixed effects of small .* not contained"):
        pb_test(m1, other_x, nsim=5)
    with pytest.raises(HierlmError, match="small is a DataFrame"):
        pb_test(m1, sleep, nsim=5)
