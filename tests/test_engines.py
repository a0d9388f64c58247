"""The blocked and the dense factorizations give the same numbers.

Small models are fit with one dense factor, large ones with the blocked
factor; here both run on the same designs (vector-valued first and later
terms, crossed, nested, three columns per level) at random theta.
"""

import numpy as np
import pandas as pd
import pytest

import hierlm
from hierlm.design import build_design
from hierlm.lmm.deviance import DenseProfiledDeviance, ProfiledDeviance


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
]


@pytest.mark.parametrize("formula, data", CASES)
def test_blocked_equals_dense(formula, data):
    df = _sleep_extra() if data == "extra" else hierlm.datasets.load(data)
    design = build_design(formula, df)
    blocked, dense = ProfiledDeviance(design), DenseProfiledDeviance(design)
    rng = np.random.default_rng(42)
    lower = np.concatenate([r.theta_lower() for r in design.remats])
    for _ in range(3):
        theta = np.where(np.isfinite(lower), rng.uniform(0.1, 2.0, lower.size), rng.uniform(-0.5, 0.5, lower.size))
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
