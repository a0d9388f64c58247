"""Time of one density + gradient of the engine posterior (hierlm/bayes/kernels.py).

Run (from the repository root)::

    python benchmarks/bench_engine_kernel.py

Calls the compiled kernel in a compiled loop (no Python per call), one BLAS
thread, median of 5 repetitions, for sleepstudy, Penicillin and a simulated
slope model with 2000 groups.
"""
import time

import numba
import numpy as np
import pandas as pd
from threadpoolctl import threadpool_limits

import hierlm
from hierlm.bayes import kernels as K
from hierlm.bayes.marginal import EnginePosterior

rng = np.random.default_rng(0)
g = np.repeat(np.arange(2000), 6); x = np.tile(np.arange(6.0), 2000)
big = pd.DataFrame({"y": rng.normal(size=g.size) + x, "x": x, "g": [f"g{i}" for i in g]})
cases = [("sleepstudy", hierlm.Model("Reaction ~ Days + (Days|Subject)", hierlm.datasets.load("sleepstudy"))),
         ("Penicillin", hierlm.Model("diameter ~ 1 + (1|plate) + (1|sample)", hierlm.datasets.load("Penicillin"))),
         ("2000 groups", hierlm.Model("y ~ x + (x|g)", big))]
@numba.njit
def many(phi, A11, A1r, Arr, qr, terms, priors, eta, P0, mu0, n, const, N):
    s = 0.0
    for i in range(N):
        v, _g, _ok = K.marginal_logp(phi, A11, A1r, Arr, qr, terms, priors, eta, P0, mu0, n, const, True)
        s += v
    return s
with threadpool_limits(1, user_api="blas"):
    for name, m in cases:
        p = EnginePosterior(m.design, m.priors); phi = p.start()
        args = (phi, p.A11, p.A1r, p.Arr, p.qr, p._terms, p._priors, p._eta, p.P0, p.mu0, float(p.n), p.const)
        many(*args, 2)
        N = 20000 if p.l1 < 1000 else 2000
        ts = []
        for r in range(5):
            t = time.perf_counter(); many(*args, N); ts.append((time.perf_counter() - t) / N * 1e6)
        print(f"{name}: median {np.median(ts):.2f} us per density+gradient (5 x {N})")
