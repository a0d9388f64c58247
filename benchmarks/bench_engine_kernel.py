"""Time of one density + gradient of the engine posterior (hierlm/bayes/_kernels.c).

Run (from the repository root)::

    python benchmarks/bench_engine_kernel.py

Calls the compiled kernel through its Python binding (hierlm.bayes.kernels,
ctypes: a few microseconds a call, which the sampler's own C calls do not
pay; the "call only" line measures it on a zero-size input), median of 5
repetitions, for sleepstudy, Penicillin and a simulated slope model with
2000 groups.
"""
import time

import numpy as np
import pandas as pd

import hierlm
from hierlm.bayes import kernels as K
from hierlm.bayes.marginal import EnginePosterior

rng = np.random.default_rng(0)
g = np.repeat(np.arange(2000), 6); x = np.tile(np.arange(6.0), 2000)
big = pd.DataFrame({"y": rng.normal(size=g.size) + x, "x": x, "g": [f"g{i}" for i in g]})
cases = [("sleepstudy", hierlm.Model("Reaction ~ Days + (Days|Subject)", hierlm.datasets.load("sleepstudy"))),
         ("Penicillin", hierlm.Model("diameter ~ 1 + (1|plate) + (1|sample)", hierlm.datasets.load("Penicillin"))),
         ("2000 groups", hierlm.Model("y ~ x + (x|g)", big))]


def median_us(f, N):
    ts = []
    for _ in range(5):
        t = time.perf_counter()
        for _ in range(N):
            f()
        ts.append((time.perf_counter() - t) / N * 1e6)
    return float(np.median(ts))


W = np.zeros((0, 1))  # no correlation matrices: the binding alone
print(f"call only: median {median_us(lambda: K.corr_cholesky_many(W, 2), 20000):.2f} us")
for name, m in cases:
    p = EnginePosterior(m.design, m.priors)
    phi = p.start()
    N = 20000 if p.l1 < 1000 else 2000
    us = median_us(lambda: K.marginal_logp(p._buf, phi, True), N)
    print(f"{name}: median {us:.2f} us per density+gradient (5 x {N})")
