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


def assert_matches_brms(post, brms: dict, names: dict) -> None:
    """Every posterior mean of a brms reference (``tests/reference/*_brms.json``: its
    ``variables``, ``mean``, ``sd``, ``mcse_mean``) within 3 Monte Carlo SEs of the
    difference plus 2% of the posterior SD.  ``names`` maps brms's names to ours
    (``"fixef[genderM]"``, ``"phi"``)."""
    import arviz as az

    for name, mean, sd, mcse in zip(brms["variables"], brms["mean"], brms["sd"], brms["mcse_mean"]):
        var, _, idx = names[name].partition("[")
        x = post.idata.posterior[var]
        if idx:
            dims = [d for d in x.dims if d not in ("chain", "draw")]
            x = x.sel({dims[0]: idx.rstrip("]")})
        our_mcse = float(az.mcse(x.to_dataset(name="v"), method="mean")["v"])
        tol = 3 * np.hypot(mcse, our_mcse) + 0.02 * sd
        assert abs(float(x.mean()) - mean) < tol, (name, float(x.mean()), mean, tol)
