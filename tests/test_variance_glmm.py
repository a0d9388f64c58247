"""ICC and Nakagawa's R2 of binomial and Poisson GLMMs against R's performance.

Reference values: tests/reference/variance_glmm.json, made by
tests/reference/variance_glmm.R (lme4 1.1-31, performance 0.10.2, insight
0.19.0): ``performance::icc``, ``performance::r2_nakagawa`` and
``insight::get_variance`` on glmer fits of cbpp (logit, probit, cloglog, a
random slope, and the same data as 842 Bernoulli rows) and grouseticks
(Poisson log and sqrt links, with and without an observation-level random
effect).  Tolerance for ICC, R2 and the variance components 1e-4 relative
(the fits agree with lme4 to about 1e-5, and two cases' lme4 optimum moves
by ~5e-5 between R runs, flagged in the JSON; observed at most 2.3e-5).
MAP fits with flat priors are the same estimates: 1e-5.
"""

from __future__ import annotations

import json
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import hierlm

REF = json.loads((Path(__file__).parent / "reference" / "variance_glmm.json").read_text())
# grouse_poisson_full: the Poisson lognormal variance needs the null model
# TICKS ~ (1|INDEX) + (1|BROOD) + (1|LOCATION), whose optimum is not
# determined (lme4: "failed to converge, max|grad| = 0.083", "nearly
# unidentifiable"); hierlm's Laplace fit stops at a logLik 0.0045 below
# lme4's (-937.1287 vs -937.1242), so lambda differs by 1.7% and the ICC by
# 0.4%.  Kept as a known failure of the GLMM engine on that null model.
CASES = [pytest.param(k, marks=pytest.mark.xfail(strict=True, raises=AssertionError,
                                                 reason="null model optimum (see above)"))
         if k == "grouse_poisson_full" else k for k in REF if not k.startswith("_")]


def _data(name: str) -> pd.DataFrame:
    if name == "cbpp_long":  # one row per animal, as the R script builds it
        cbpp = hierlm.datasets.load("cbpp")
        rows = []
        for _, r in cbpp.iterrows():
            rows += [(r["herd"], r["period"], 1)] * int(r["incidence"])
            rows += [(r["herd"], r["period"], 0)] * int(r["size"] - r["incidence"])
        out = pd.DataFrame(rows, columns=["herd", "period", "y"])
        for c in ("herd", "period"):
            out[c] = pd.Categorical(out[c], categories=cbpp[c].cat.categories)
        return out
    d = hierlm.datasets.load(name)
    if name == "cbpp":
        d["t"] = d["period"].cat.codes.astype(float) + 1.0
    if name == "grouseticks":
        d["h"] = d["cHEIGHT"] / 100.0
    return d


def _fit(case: str, method: str = "laplace"):
    ref = REF[case]
    model = hierlm.Model(ref["formula"], _data(ref["data"]), family=ref["family"], link=ref["link"])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return model.fit(method) if method == "laplace" else model.fit("map", priors="flat")


@pytest.mark.parametrize("case", CASES)
def test_icc_r2_match_performance(case):
    ref = REF[case]
    fit = _fit(case)
    rel = 1e-4  # the fits agree with lme4 to ~1e-5; an R rerun moves two of them by ~5e-5
    np.testing.assert_allclose(fit.fixef[list(ref["fixef"])].to_numpy(), list(ref["fixef"].values()),
                               rtol=2e-4, atol=1e-4)  # estimates: lme4's optimum to ~5e-5
    icc, r2 = fit.icc(), fit.r2()
    assert icc["adjusted"] == pytest.approx(ref["icc"]["ICC_adjusted"], rel=rel)
    assert icc["conditional"] == pytest.approx(ref["icc"]["ICC_conditional"], rel=rel)
    assert r2["marginal"] == pytest.approx(ref["r2_nakagawa"]["R2_marginal"], rel=rel)
    assert r2["conditional"] == pytest.approx(ref["r2_nakagawa"]["R2_conditional"], rel=rel)
    gv = ref["get_variance"]
    comp = hierlm.inference.variance.variance_components(fit)
    assert comp["var_fixed"] == pytest.approx(gv["var.fixed"], rel=rel)
    assert comp["var_random"] == pytest.approx(gv["var.random"], rel=rel)
    assert comp["var_residual"] == pytest.approx(gv["var.residual"], rel=rel)


@pytest.mark.parametrize("case", ["cbpp_logit", "grouse_poisson", "grouse_poisson_olre"])
def test_flat_map_gives_the_same_icc_r2(case):
    lap, mode = _fit(case), _fit(case, "map")
    np.testing.assert_allclose(mode.icc().to_numpy(), lap.icc().to_numpy(), rtol=1e-5)
    np.testing.assert_allclose(mode.r2().to_numpy(), lap.r2().to_numpy(), rtol=1e-5)
