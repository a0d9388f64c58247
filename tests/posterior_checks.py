"""Shared assertion of the tests that compare two posterior fits of one model."""

import numpy as np


def assert_same_posterior(a, b, names, groups) -> None:
    """Posterior means of ``names`` (rows of ``fit.diagnostics``) within 4
    Monte Carlo SEs (both fits' ``sd / sqrt(bulk ESS)`` combined), and the
    random effects' posterior means of ``groups`` within half a posterior SD."""
    da, db = a.diagnostics, b.diagnostics
    for name in names:
        mcse = np.hypot(da.loc[name, "sd"] / np.sqrt(da.loc[name, "ess_bulk"]),
                        db.loc[name, "sd"] / np.sqrt(db.loc[name, "ess_bulk"]))
        assert abs(da.loc[name, "mean"] - db.loc[name, "mean"]) < 4 * mcse, name
    for g in groups:
        ra, rb = a.ranef()[g], b.ranef()[g]
        assert np.max(np.abs(ra - rb).to_numpy() / a.ranef(condvar=True)[g]["condsd"].to_numpy()) < 0.5, g
