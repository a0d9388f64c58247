"""Parametric bootstrap of sleepstudy: 1 process vs 2 local workers vs a Dask LocalCluster.

Run (from the repository root)::

    /work/venv/bin/python benchmarks/bench_boot.py             # 200 refits, 5 repetitions
    /work/venv/bin/python benchmarks/bench_boot.py --nsim 400 --reps 3

What is timed: ``boot_mer(fit, fun, nsim=200, seed=...)`` of the REML fit of
``Reaction ~ Days + (Days | Subject)`` with ``fun`` giving the fixed effects, theta
and sigma of each refit, with ``n_jobs=1`` (this process), ``n_jobs=2`` (joblib
loky processes) and ``client=`` a Dask ``LocalCluster(n_workers=2,
threads_per_worker=1, processes=True)``.

Methodology: the worker pools are started before timing and warmed up by one
untimed small bootstrap (loky keeps its processes between calls, and a Dask
cluster is already running when a user hands its client over); the first,
cold, 2-worker call is timed and reported separately, because it includes
starting the processes and importing hierlm in them.  Within each repetition the
three variants run in rotating order so that slow drifts of the shared machine
hit all alike; the table gives medians and the ratio to one process (< 1:
faster).  Every run must give results identical to the first one-process run
(same seed: one generator per replicate), which the script checks.
"""

from __future__ import annotations

import argparse
import os
import statistics
import time
import warnings

import numpy as np


def fun(f):
    return np.concatenate([f.fixef.to_numpy(), f.theta, [f.sigma]])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--nsim", type=int, default=200)
    ap.add_argument("--reps", type=int, default=5)
    ap.add_argument("--seed", type=int, default=2024)
    ap.add_argument("--no-dask", action="store_true")
    args = ap.parse_args()

    import hierlm
    from hierlm.errors import ConvergenceWarning
    from hierlm.inference.boot import boot_mer

    warnings.simplefilter("ignore", ConvergenceWarning)
    fit = hierlm.lmer("Reaction ~ Days + (Days | Subject)", hierlm.datasets.load("sleepstudy"))
    kw = {"nsim": args.nsim, "seed": args.seed, "progress": False}

    t = time.perf_counter()
    ref = boot_mer(fit, fun, n_jobs=1, **kw).t.to_numpy()
    t_first = time.perf_counter() - t
    t = time.perf_counter()
    cold = boot_mer(fit, fun, n_jobs=2, **kw).t.to_numpy()
    t_cold = time.perf_counter() - t
    assert np.array_equal(ref, cold), "n_jobs=2 differs from n_jobs=1"

    variants = {"n_jobs=1": {"n_jobs": 1}, "n_jobs=2": {"n_jobs": 2}}
    cluster = client = None
    if not args.no_dask:
        from dask.distributed import Client, LocalCluster

        t = time.perf_counter()
        cluster = LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None)
        client = Client(cluster)
        t_cluster = time.perf_counter() - t
        boot_mer(fit, fun, nsim=4, seed=1, client=client, progress=False)  # warm-up (imports in workers)
        variants["dask 2 workers"] = {"client": client}

    times: dict[str, list[float]] = {k: [] for k in variants}
    names = list(variants)
    try:
        for rep in range(args.reps):
            order = names[rep % len(names):] + names[: rep % len(names)]
            for name in order:
                t = time.perf_counter()
                res = boot_mer(fit, fun, **variants[name], **kw).t.to_numpy()
                times[name].append(time.perf_counter() - t)
                assert np.array_equal(ref, res), f"{name} differs from n_jobs=1"
    finally:
        if client is not None:
            client.close()
            cluster.close()

    base = statistics.median(times["n_jobs=1"])
    print(f"sleepstudy (Days | Subject), REML, {args.nsim} refits; {os.cpu_count()} CPUs; "
          f"median of {args.reps} repetitions")
    print(f"{'variant':16s} {'seconds':>8s} {'ratio':>6s}   all repetitions")
    for name in names:
        med = statistics.median(times[name])
        print(f"{name:16s} {med:8.3f} {med / base:6.2f}   " + " ".join(f"{v:.3f}" for v in times[name]))
    print(f"first n_jobs=1 call {t_first:.3f} s; first (cold) n_jobs=2 call {t_cold:.3f} s "
          "(starts the loky processes)" + ("" if args.no_dask else f"; LocalCluster start {t_cluster:.2f} s"))
    print("results identical across all runs: yes")


if __name__ == "__main__":
    main()
