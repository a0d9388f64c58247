"""A model on a dask DataFrame vs the same rows in memory.

Run (from the repository root)::

    python benchmarks/bench_dask.py                 # 1e6 ratings, 2 workers, ~2 min
    python benchmarks/bench_dask.py --size 1e5 --partitions 4

Model: ``rating ~ 1 + (1|user) + (1|item)`` (ML) on the seeded ratings of
benchmarks/ratings_data.py (1e5: 5,000 users x 1,000 items; 1e6: 50,000 x
5,000).  The dask DataFrame is made from the pandas one with
``--partitions`` partitions and persisted on a ``LocalCluster`` of
``--workers`` single-threaded worker processes before timing, so that the
time is the fit's: the two passes over the partitions (levels, then Gram
blocks) and the optimization on the client.  Reported: seconds, the
client's resident memory added by the fit, and the differences from the
in-memory fit.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parent))

SHAPES = {"1e5": (1e5, 5_000, 1_000), "1e6": (1e6, 50_000, 5_000)}
FORMULA = "rating ~ 1 + (1|user) + (1|item)"


def rss_mib() -> float:
    with open("/proc/self/status") as fh:
        for line in fh:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024.0
    return float("nan")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--size", default="1e6", choices=list(SHAPES))
    ap.add_argument("--partitions", type=int, default=8)
    ap.add_argument("--workers", type=int, default=2)
    args = ap.parse_args()
    import dask.dataframe as dd
    from dask.distributed import Client, LocalCluster
    from ratings_data import ratings

    import hierlm
    import hierlm.lmm.kernels

    hierlm.lmm.kernels.load()
    n, nu, ni = SHAPES[args.size]
    d = ratings(n, nu, ni)
    t = time.perf_counter()
    mem = hierlm.lmer(FORMULA, d, reml=False, progress=False)
    t_mem = time.perf_counter() - t
    with LocalCluster(n_workers=args.workers, threads_per_worker=1, dashboard_address=None) as cluster, \
            Client(cluster) as client:
        ddf = dd.from_pandas(d, npartitions=args.partitions).persist()
        client.wait_for_workers(args.workers)
        del d
        r0 = rss_mib()
        t = time.perf_counter()
        dsk = hierlm.lmer(FORMULA, ddf, reml=False, progress=False)
        t_dsk = time.perf_counter() - t
        r1 = rss_mib()
    print(f"{args.size} rows, {args.partitions} partitions, {args.workers} workers")
    print(f"in memory: {t_mem:.2f} s ({mem.optinfo.feval} evals)")
    print(f"dask:      {t_dsk:.2f} s ({dsk.optinfo.feval} evals); client RSS +{r1 - r0:.0f} MiB")
    print(f"logLik rel. diff {abs(dsk.loglik - mem.loglik) / abs(mem.loglik):.1e}; "
          f"max |theta diff| {np.max(np.abs(dsk.theta - mem.theta)):.1e}")


if __name__ == "__main__":
    main()
