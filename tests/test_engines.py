"""The three factorizations give the same numbers.

Small models are fit with one dense factor, large ones with the blocked
factor, the largest with the blocked factor whose Schur update is recomputed
by a compiled kernel (no stored products); here all run on the same designs
(vector-valued first and later terms, crossed, nested, three columns per
level) at random theta.
"""

import numpy as np
import pandas as pd
import pytest

import hierlm
from hierlm.design import build_design
from hierlm.lmm.deviance import DenseProfiledDeviance, LargeProfiledDeviance, ProfiledDeviance


def _sleep_extra():
    d = hierlm.datasets.load("sleepstudy")
    d["week"] = np.where(d["Days"] < 5, "early", "late")
    d["D2"] = (d["Days"] - 4.5) ** 2 / 10
    d["site"] = np.tile(["a", "b", "c", "d", "e"], 36)
    return d


CASES = [
    ("Reaction ~ Days + (Days|Subject)", "sleepstudy"),
    ("diameter ~ 1 + (1|plate) + (1|sample)", "Penicillin"),
    ("strength ~ 1 + (1|batch/cask)", "Pastes"),
    ("Reaction ~ Days + (Days + D2|Subject)", "extra"),          # 3 x 3 blocks
    ("Reaction ~ Days + (1|Subject) + (Days|site)", "extra"),      # vector-valued later term
    ("Reaction ~ Days + (Days|Subject) + (0 + week|site)", "extra"),
    ("Reaction ~ Days + (1|site) + (Days||Subject)", "extra"),
    ("Reaction ~ Days + (Days|site) + (1|Subject)", "extra"),      # vector-valued first term, scalar rest
]


@pytest.mark.parametrize("formula, data", CASES)
def test_blocked_equals_dense(formula, data):
    df = _sleep_extra() if data == "extra" else hierlm.datasets.load(data)
    design = build_design(formula, df)
    dense = DenseProfiledDeviance(design)
    rng = np.random.default_rng(42)
    lower = np.concatenate([r.theta_lower() for r in design.remats])
    for blocked in (ProfiledDeviance(design), LargeProfiledDeviance(design)):
        for _ in range(3):
            theta = np.where(np.isfinite(lower), rng.uniform(0.1, 2.0, lower.size),
                             rng.uniform(-0.5, 0.5, lower.size))
            for reml in (True, False):
                assert blocked.objective(theta, reml) == pytest.approx(dense.objective(theta, reml), rel=1e-11)
            fb, fd = blocked.factor(theta), dense.factor(theta)
            beta_b, b_b = blocked.solve(fb)
            beta_d, b_d = dense.solve(fd)
            np.testing.assert_allclose(beta_b, beta_d, rtol=1e-9)
            for x, y in zip(b_b, b_d):
                np.testing.assert_allclose(x, y, rtol=1e-8, atol=1e-10 * np.abs(y).max())
            np.testing.assert_allclose(blocked.vcov_unscaled(fb), dense.vcov_unscaled(fd), rtol=1e-9)
            for x, y in zip(blocked.condvar_unscaled(fb), dense.condvar_unscaled(fd)):
                np.testing.assert_allclose(x, y, rtol=1e-8, atol=1e-12)


def test_engine_choice_by_size():
    from hierlm.lmm.deviance import make_deviance

    small = build_design("Reaction ~ Days + (Days|Subject)", hierlm.datasets.load("sleepstudy"))
    assert isinstance(make_deviance(small), DenseProfiledDeviance)
    ie = hierlm.datasets.load("InstEval").iloc[:20000]
    big = build_design("y ~ 1 + service + (1|s) + (1|d)", pd.DataFrame(ie))
    assert type(make_deviance(big)) is ProfiledDeviance


def test_batched_objective_and_deriv12():
    from hierlm.optimize import deriv12

    design = build_design("Reaction ~ Days + (Days|Subject)", hierlm.datasets.load("sleepstudy"))
    dense, blocked = DenseProfiledDeviance(design), ProfiledDeviance(design)
    thetas = np.array([[0.9, 0.02, 0.2], [1.0, 0.0, 1.0], [0.5, -0.3, 0.1]])
    want = [blocked.objective(t, True) for t in thetas]
    np.testing.assert_allclose(dense.objective_many(thetas, True), want, rtol=1e-11)
    np.testing.assert_allclose(blocked.objective_many(thetas, False), [dense.objective(t, False) for t in thetas],
                               rtol=1e-11)
    # deriv12 on a quadratic: exact gradient and Hessian
    A = np.array([[2.0, 0.5], [0.5, 1.0]])
    g, H = deriv12(lambda xs: np.einsum("ni,ij,nj->n", xs, A, xs) / 2 + xs.sum(axis=1), np.array([0.3, -0.2]))
    np.testing.assert_allclose(H, A, rtol=1e-6)
    np.testing.assert_allclose(g, A @ [0.3, -0.2] + 1, rtol=1e-8)


def _ratings(n_users: int, n_items: int, n: int, seed: int = 5) -> pd.DataFrame:
    """Crossed users x items data with uneven activity (a small version of
    benchmarks/ratings_data.py), with random slopes of x on both."""
    rng = np.random.default_rng(seed)
    u = rng.choice(n_users, n, p=(w := rng.lognormal(0, 1.0, n_users)) / w.sum())
    i = rng.choice(n_items, n, p=(v := np.arange(1, n_items + 1) ** -0.9) / v.sum())
    x = rng.normal(size=n)
    y = (3 + (0.3 + rng.normal(0, 0.4, n_users)[u] + rng.normal(0, 0.4, n_items)[i]) * x
         + rng.normal(0, 0.5, n_users)[u] + rng.normal(0, 0.6, n_items)[i] + rng.normal(0, 1, n))
    return pd.DataFrame({"user": [f"u{k}" for k in u], "item": [f"i{k}" for k in i], "x": x, "y": y})


@pytest.mark.parametrize("formula", ["y ~ x + (1|user) + (1|item)", "y ~ x + (x|user) + (1|item)",
                                     "y ~ x + (1|user) + (x|item)"])
def test_large_engine_fit_equals_blocked(formula, monkeypatch):
    """Whole fits: the kernel engine (chosen for large designs) and the
    stored-products engine reach the same optimum and report the same numbers."""
    import hierlm.lmm.deviance as dv

    d = _ratings(600, 150, 6000)
    ref = hierlm.lmer(formula, d)
    assert type(ref.devfun) is ProfiledDeviance
    monkeypatch.setattr(dv, "STORED_PRODUCTS_MAX", 0)
    big = hierlm.lmer(formula, d)
    assert type(big.devfun) is LargeProfiledDeviance
    # the two objectives differ in the last bits, so BOBYQA's paths part
    # once the criterion is flat to 1e-13: theta agrees to the precision
    # the criterion determines it (~1e-6), the criterion to 1e-10
    assert big.reml_criterion == pytest.approx(ref.reml_criterion, rel=1e-10)
    np.testing.assert_allclose(big.theta, ref.theta, rtol=2e-5, atol=1e-8)
    np.testing.assert_allclose(big.fixef, ref.fixef, rtol=1e-6)
    np.testing.assert_allclose(big.vcov, ref.vcov, rtol=2e-5)
    for x, y in zip(big.condvar, ref.condvar):
        np.testing.assert_allclose(x, y, rtol=2e-5, atol=1e-12)
    # at the same theta the numbers are the same to rounding
    same = dv.LargeProfiledDeviance(ref.design)
    f = same.factor(ref.theta)
    for x, y in zip(same.condvar_unscaled(f), ref.devfun.condvar_unscaled(ref.factorization)):
        np.testing.assert_allclose(x, y, rtol=1e-9, atol=1e-14)


def test_kernel_result_does_not_depend_on_threads():
    """Rows of S are split between threads; every entry is summed in the same
    order whatever the split, so the numbers are identical (not just close),
    in numba's threads or in the calling one; and the kernel's one pass
    (A_rr, the elimination, the scaling, the identity) equals those steps
    done one after the other in numpy."""
    from hierlm.lmm import kernels

    design = build_design("y ~ x + (x|user) + (1|item)", _ratings(400, 120, 5000))
    dev = LargeProfiledDeviance(design)
    theta = np.array([0.7, 0.2, 0.4, 0.9])
    _, _, B, _ = dev._first_block(theta)
    lam = np.random.default_rng(0).uniform(0.5, 2.0, dev.m)
    out = []
    for threads in (1, 2, 5):
        for parallel in (True, False):
            S = np.full((dev.m, dev.m), 7.0)
            kernels.schur_build(S, dev.arr, dev.lptr, dev.lcols, dev.lvals, B, lam, dev.qr,
                                kernels.downdate_plan(dev.lptr, dev.lcols, dev.m, threads), parallel)
            out.append(S)
    assert all(np.array_equal(out[0], o) for o in out[1:])
    assert np.all(out[0][np.triu_indices(dev.m, 1)] == 7.0)  # the upper triangle untouched
    # the same steps one at a time: A_rr - sum_i A_ri' B_i A_ir, scaled, plus I on the Z block
    aptr, acols, avals = dev.arr
    Arr = np.zeros((dev.m, dev.m))
    np.add.at(Arr, (np.repeat(np.arange(dev.m), np.diff(aptr)), acols), avals)
    A1r = np.zeros((dev.lptr.size - 1, 2, dev.m))
    lev = np.repeat(np.arange(dev.lptr.size - 1), np.diff(dev.lptr))
    A1r[lev, :, dev.lcols] = dev.lvals
    want = np.tril(Arr - np.einsum("iaj,iab,ibk->jk", A1r, B, A1r)) * np.outer(lam, lam)
    want[np.arange(dev.qr), np.arange(dev.qr)] += 1.0
    np.testing.assert_allclose(np.tril(out[0]), want, rtol=1e-12, atol=1e-12 * np.abs(want).max())


def test_cholesky_recursion_matches_lapack(monkeypatch):
    """The engine's Cholesky recursion (C, scipy's BLAS) gives LAPACK's factor
    to rounding, reports LAPACK's info where S is not positive definite, and
    leaves the upper triangle alone; whole fits through it equal fits through
    dpotrf.  Small leaves and thresholds make the recursion go several levels
    deep on a small design."""
    from scipy.linalg import lapack

    import hierlm.lmm.dense as dense

    assert dense._LIB is not None, "hierlm/lmm/_dense.c is not built: pip install -e ."
    # where it applies (the engine and the cost estimate ask the same function)
    assert dense.workspace_for(dense.MIN_NZ - 1) is None and dense.workspace_for(dense.MAX_NZ + 1) is None
    assert dense.workspace_for(dense.MIN_NZ).W.shape == (dense.MIN_NZ, dense.MIN_NZ)
    monkeypatch.setattr(dense, "LEAF", 8)
    rng = np.random.default_rng(3)
    for m, nz in ((120, 117), (64, 64), (40, 1), (50, 37)):
        G = rng.normal(size=(m, m + 5))
        A = G @ G.T / m
        A[:nz, :nz] += np.eye(nz)
        A[nz:, nz:] += 1e-3 * np.eye(m - nz)
        S = np.tril(A) + np.triu(np.full((m, m), 5.0), 1)
        work = dense.Workspace(nz)
        assert dense.cholesky_lower(S, nz, work) == 0
        np.testing.assert_allclose(np.tril(S), np.linalg.cholesky(A), rtol=1e-12, atol=1e-13)
        assert np.all(S[np.triu_indices(m, 1)] == 5.0)
    # not positive definite: in the recursion's leaves and in the trailing block
    for bad, nz in ((30, 60), (62, 60)):
        A = np.eye(64)
        A[bad, bad] = -1.0
        work = dense.Workspace(nz)
        assert dense.cholesky_lower(A.copy(), nz, work) == lapack.dpotrf(A)[1] == bad + 1
    # whole fits: recursion (every block) against dpotrf (none)
    d = _ratings(600, 150, 6000)
    import hierlm.lmm.deviance as dv

    monkeypatch.setattr(dv, "STORED_PRODUCTS_MAX", 0)
    fits = []
    for lo in (1, 10**9):
        monkeypatch.setattr(dense, "MIN_NZ", lo)
        fits.append(hierlm.lmer("y ~ x + (x|user) + (x|item)", d))
    assert fits[0].devfun._work is not None and fits[1].devfun._work is None
    assert fits[0].reml_criterion == pytest.approx(fits[1].reml_criterion, rel=1e-10)
    t = np.asarray(fits[1].theta)
    assert fits[0].devfun.objective(t, True) == pytest.approx(fits[1].devfun.objective(t, True), rel=1e-12)


def test_cost_estimate_and_too_large_error():
    """A design whose dense block cannot fit is refused before anything big is
    built, with the estimate and what to do; the estimate is fast."""
    import time

    from hierlm.lmm.deviance import estimate_cost

    rng = np.random.default_rng(1)
    n = 400_000
    d = pd.DataFrame({"user": rng.integers(0, 200_000, n), "item": rng.integers(0, 200_000, n),
                      "y": rng.normal(size=n)})
    model = hierlm.Model("y ~ 1 + (1|user) + (1|item)", d)
    t = time.perf_counter()
    with pytest.raises(hierlm.TooLargeError, match=r"needs about \d+ GB of memory.*dense 17\d,\d{3} x 17\d,\d{3} "
                                                   r"block, from \(1 \| \w+\) with 17\d,\d{3} levels.*drop a term"):
        model.fit("reml")
    assert time.perf_counter() - t < 1.0
    cost = estimate_cost(model.design, products=False)
    assert cost.engine == "large" and cost.bytes > 4e11
    small = estimate_cost(build_design("y ~ x + (1|user) + (1|item)", _ratings(600, 150, 6000)))
    assert small.engine == "blocked" and small.m == 150 + 2 + 1 and small.products > 0
    assert "blocked engine: a dense 153 x 153 block" in str(small)


def test_progress_lines(capsys):
    """progress=True: one line per evaluation on stderr (criterion and time)."""
    fit = hierlm.lmer("y ~ x + (1|user) + (1|item)", _ratings(300, 60, 2000), progress=True)
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == fit.optinfo.feval  # one line per optimizer evaluation, none from the starts
    assert err[-1].startswith(f"hierlm: {fit.optinfo.feval} evaluations, REML criterion ")
    assert err[-1].endswith("s per evaluation")
    with pytest.raises(hierlm.HierlmError, match="progress must be None, True or False"):
        hierlm.lmer("y ~ x + (1|user) + (1|item)", _ratings(300, 60, 2000), progress="yes")


def test_subsample_start_reaches_the_same_optimum(monkeypatch):
    """Big crossed fits start from the optimum on a quarter of the second
    term's levels; the optimum they reach is the full data's."""
    import hierlm.lmm.engine as eng

    d = _ratings(700, 500, 8000)
    ref = hierlm.lmer("y ~ x + (1|user) + (1|item)", d, reml=False)
    calls = []
    real = eng.subsample_start
    monkeypatch.setattr(eng, "subsample_start", lambda *a, **k: calls.append(1) or real(*a, **k))
    monkeypatch.setattr(eng, "SUBSAMPLE_START_SECONDS", 0.0)
    fit = hierlm.lmer("y ~ x + (1|user) + (1|item)", d, reml=False)
    assert calls == [1]
    assert fit.deviance == pytest.approx(ref.deviance, rel=1e-11)
    np.testing.assert_allclose(fit.theta, ref.theta, rtol=2e-5)
    sub = real(fit.design, False)
    np.testing.assert_allclose(sub, ref.theta, rtol=0.25)  # a start near the optimum, not at it


def test_model_cost_before_fitting():
    model = hierlm.Model("y ~ x + (1|user) + (1|item)", _ratings(600, 150, 6000))
    cost = model.cost()
    assert cost.engine == "blocked" and cost.m == 153 and cost.seconds_per_eval > 0
    assert str(cost).startswith("blocked engine: a dense 153 x 153 block, ")
    with pytest.raises(hierlm.HierlmError, match="Gaussian"):
        hierlm.Model("cbind(incidence, size - incidence) ~ period + (1|herd)", hierlm.datasets.load("cbpp"),
                     family="binomial").cost()


@pytest.mark.parametrize("formula, data", CASES)
def test_conditional_draws_of_b(formula, data):
    """``solve(f, beta, noise)``: the mean and covariance of b | y, beta, theta
    (sigma = 1) against dense algebra on the Gram matrix, for each engine:
    mean Lambda P^-1 Lambda' Z'(y - X beta), covariance Lambda P^-1 Lambda',
    P = Lambda' Z'Z Lambda + I."""
    df = _sleep_extra() if data == "extra" else hierlm.datasets.load(data)
    design = build_design(formula, df)
    dense = DenseProfiledDeviance(design)
    q, p = dense.qr, dense.p
    rng = np.random.default_rng(7)
    lower = np.concatenate([r.theta_lower() for r in design.remats])
    theta = np.where(np.isfinite(lower), rng.uniform(0.2, 1.5, lower.size), rng.uniform(-0.4, 0.4, lower.size))
    beta = rng.normal(size=p) * 3
    A, Lam = dense.A, dense.Lambda(theta)[:q, :q]
    P = Lam.T @ A[:q, :q] @ Lam + np.eye(q)
    mean = Lam @ np.linalg.solve(P, Lam.T @ (A[:q, -1] - A[:q, q: q + p] @ beta))
    cov = Lam @ np.linalg.inv(P) @ Lam.T
    # beta-hat from the joint system [[P, Lam'Z'X], [X'Z Lam, X'X]] [u; beta] = [Lam'Z'y; X'y]
    J = np.block([[P, Lam.T @ A[:q, q: q + p]], [A[q: q + p, :q] @ Lam, A[q: q + p, q: q + p]]])
    beta_hat = np.linalg.solve(J, np.concatenate([Lam.T @ A[:q, -1], A[q: q + p, -1]]))[q:]
    for dev in (dense, ProfiledDeviance(design), LargeProfiledDeviance(design)):
        f = dev.factor(theta)
        np.testing.assert_allclose(dev.beta_hat(f), beta_hat, rtol=1e-9, atol=1e-12)
        b0 = np.concatenate([b.ravel() for b in dev.solve(f, beta)[1]])
        np.testing.assert_allclose(b0, mean, rtol=1e-8, atol=1e-10 * np.abs(mean).max())
        # b is linear in the noise: its columns give the covariance exactly
        B = np.column_stack([np.concatenate([b.ravel() for b in dev.solve(f, beta, e)[1]]) - b0 for e in np.eye(q)])
        np.testing.assert_allclose(B @ B.T, cov, rtol=1e-8, atol=1e-10 * np.abs(cov).max())
