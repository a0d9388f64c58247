"""A crossed model on a dask DataFrame: the rows stay on the cluster.

Run:  python examples/dask_ratings.py    (needs the dask extra: pip install ".[dask]")

Simulates users x items ratings, spreads them over the partitions of a dask
DataFrame on a local cluster of 2 worker processes, and fits
``rating ~ 1 + (1 | user) + (1 | item)``: the partitions make the model's
Gram blocks, the client fits on them (docs/dask.md).  The same model on the
pandas DataFrame gives the same numbers.
"""

import numpy as np
import pandas as pd

import hierlm

if __name__ == "__main__":
    import dask.dataframe as dd
    from dask.distributed import Client, LocalCluster

    rng = np.random.default_rng(2024)
    n, n_users, n_items = 20_000, 600, 150
    user = rng.integers(0, n_users, n)
    item = rng.integers(0, n_items, n)
    rating = 3.5 + rng.normal(0, 0.6, n_users)[user] + rng.normal(0, 0.4, n_items)[item] + rng.normal(0, 0.9, n)
    ratings = pd.DataFrame({"user": [f"u{u}" for u in user], "item": [f"i{i}" for i in item], "rating": rating})

    with LocalCluster(n_workers=2, threads_per_worker=1, dashboard_address=None) as cluster, Client(cluster):
        ddf = dd.from_pandas(ratings, npartitions=4)
        fit = hierlm.lmer("rating ~ 1 + (1 | user) + (1 | item)", ddf, reml=False)
        print(fit.summary())
        # fitted values, computed partition by partition on the cluster
        fitted = ddf.map_partitions(fit.predict, meta=("predicted", "f8"))
        print("residual SD:", float((ddf["rating"] - fitted).std().compute()))

    same = hierlm.lmer("rating ~ 1 + (1 | user) + (1 | item)", ratings, reml=False)
    print("logLik on the cluster", round(fit.loglik, 6), "in memory", round(same.loglik, 6))
