"""Which parameterization lets NUTS mix on grouseticks (issue 13, item 5).

``TICKS ~ YEAR + scale(HEIGHT) + (1|BROOD) + (1|INDEX) + (1|LOCATION)``,
Poisson, hierlm's default priors written out in PyMC, nutpie with 4 chains
x 1000 draws after 1000 tuning.  Variants:

- v0: every term non-centered (b = sd z): hierlm's model before
- v2: broods centered on their location (c_B ~ N(b_L[loc], sd_B)), the rest non-centered
- v3: v2 and the observation-level effects centered on their brood
- v4: everything centered
- v5: v2 with the locations centered
- v6: v3 with (sd_B, sd_L) as total SD and share (tau, w), Jacobian included
- *lr: nutpie's low-rank modified mass matrix

Usage: ``python benchmarks/grouseticks_parameterizations.py v0,v2,v3 1,2,3``
(variants, seeds); prints wall time, divergences, the largest R-hat and
the bulk ESS and R-hat of the location and brood SDs.
"""
import sys, time, numpy as np, pandas as pd, pymc as pm, pytensor.tensor as pt, nutpie, arviz as az
from hierlm import datasets
g = datasets.load("grouseticks")
y = g.TICKS.to_numpy()
h = (g.HEIGHT - g.HEIGHT.mean()) / g.HEIGHT.std()
X = np.column_stack([np.ones(len(g)), (g.YEAR.astype(str) == "96"), (g.YEAR.astype(str) == "97"), h]).astype(float)
bc, bl = pd.factorize(g.BROOD.astype(str))
lc, ll = pd.factorize(g.LOCATION.astype(str))
loc_of_brood = np.zeros(len(bl), int); loc_of_brood[bc] = lc
assert np.all(loc_of_brood[bc] == lc)
sds = [3.626, 5.132, 5.331, 2.5]
def base(m):
    b0 = pm.StudentT("b0", nu=3, mu=0, sigma=3.626)
    b = pm.Normal("b", 0, np.array(sds[1:]), shape=3)
    sdI = pm.HalfStudentT("sd_INDEX", nu=3, sigma=2.5)
    sdB = pm.HalfStudentT("sd_BROOD", nu=3, sigma=2.5)
    sdL = pm.HalfStudentT("sd_LOCATION", nu=3, sigma=2.5)
    return b0 + pt.as_tensor(X[:, 1:]) @ b, sdI, sdB, sdL
def v0():
    with pm.Model() as m:
        eta, sdI, sdB, sdL = base(m)
        zI = pm.Normal("zI", 0, 1, shape=len(y)); zB = pm.Normal("zB", 0, 1, shape=len(bl)); zL = pm.Normal("zL", 0, 1, shape=len(ll))
        pm.Poisson("y", pm.math.exp(eta + sdI * zI + sdB * zB[bc] + sdL * zL[lc]), observed=y)
    return m
def v2():
    with pm.Model() as m:
        eta, sdI, sdB, sdL = base(m)
        zI = pm.Normal("zI", 0, 1, shape=len(y)); zL = pm.Normal("zL", 0, 1, shape=len(ll))
        cB = pm.Normal("cB", sdL * zL[loc_of_brood], sdB, shape=len(bl))
        pm.Poisson("y", pm.math.exp(eta + sdI * zI + cB[bc]), observed=y)
    return m
def v3():
    with pm.Model() as m:
        eta, sdI, sdB, sdL = base(m)
        zL = pm.Normal("zL", 0, 1, shape=len(ll))
        cB = pm.Normal("cB", sdL * zL[loc_of_brood], sdB, shape=len(bl))
        e = pm.Normal("e", eta + cB[bc], sdI, shape=len(y))
        pm.Poisson("y", pm.math.exp(e), observed=y)
    return m
def v5():
    with pm.Model() as m:
        eta, sdI, sdB, sdL = base(m)
        zI = pm.Normal("zI", 0, 1, shape=len(y))
        bL = pm.Normal("bL", 0, sdL, shape=len(ll))
        cB = pm.Normal("cB", bL[loc_of_brood], sdB, shape=len(bl))
        pm.Poisson("y", pm.math.exp(eta + sdI * zI + cB[bc]), observed=y)
    return m
def v6():
    with pm.Model() as m:
        b0 = pm.StudentT("b0", nu=3, mu=0, sigma=3.626)
        b = pm.Normal("b", 0, np.array(sds[1:]), shape=3)
        eta = b0 + pt.as_tensor(X[:, 1:]) @ b
        sdI = pm.HalfStudentT("sd_INDEX", nu=3, sigma=2.5)
        ltau = pm.Flat("ltau"); w = pm.Uniform("w", 0, 1)
        tau = pm.math.exp(ltau)
        sdB = pm.Deterministic("sd_BROOD", tau * pm.math.sqrt(1 - w)); sdL = pm.Deterministic("sd_LOCATION", tau * pm.math.sqrt(w))
        ht = lambda x: pm.logp(pm.HalfStudentT.dist(nu=3, sigma=2.5), x)
        pm.Potential("prior_sd", ht(sdB) + ht(sdL) + 2 * ltau - 0.5 * pm.math.log(w * (1 - w)))
        zL = pm.Normal("zL", 0, 1, shape=len(ll))
        cB = pm.Normal("cB", sdL * zL[loc_of_brood], sdB, shape=len(bl))
        e = pm.Normal("e", eta + cB[bc], sdI, shape=len(y))
        pm.Poisson("y", pm.math.exp(e), observed=y)
    return m
def v4():  # all centered
    with pm.Model() as m:
        eta, sdI, sdB, sdL = base(m)
        bL = pm.Normal("bL", 0, sdL, shape=len(ll))
        cB = pm.Normal("cB", bL[loc_of_brood], sdB, shape=len(bl))
        e = pm.Normal("e", eta + cB[bc], sdI, shape=len(y))
        pm.Poisson("y", pm.math.exp(e), observed=y)
    return m
variants = {"v0": (v0, {}), "v0lr": (v0, dict(low_rank_modified_mass_matrix=True)), "v2": (v2, {}), "v3": (v3, {}), "v4": (v4, {}), "v6": (v6, {}), "v5": (v5, {}), "v2lr": (v2, dict(low_rank_modified_mass_matrix=True)), "v3lr": (v3, dict(low_rank_modified_mass_matrix=True))}
import itertools
for name, seed in itertools.product(sys.argv[1].split(","), [int(x) for x in sys.argv[2].split(",")]):
    fn, kw = variants[name]
    t = time.perf_counter()
    cm = nutpie.compile_pymc_model(fn())
    idata = nutpie.sample(cm, chains=4, draws=1000, tune=1000, seed=seed, progress_bar=False, **kw)
    s = az.summary(idata, var_names=["b0", "b", "sd_INDEX", "sd_BROOD", "sd_LOCATION"])
    div = int(idata.sample_stats.diverging.sum())
    print(name, seed, "%.0f s" % (time.perf_counter() - t), "div", div, "maxrhat", s.r_hat.max(), "minESS", s.ess_bulk.min(), "sdL", s.loc["sd_LOCATION", ["ess_bulk","r_hat"]].tolist(), "sdB", s.loc["sd_BROOD", ["ess_bulk","r_hat"]].tolist(), flush=True)

