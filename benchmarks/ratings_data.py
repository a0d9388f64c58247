"""Synthetic ratings shaped like MovieLens: users x items, crossed.

``ratings(n_rows, n_users, n_items, seed)`` returns a DataFrame with columns
``user``, ``item`` (pandas Categoricals) and ``rating``, for the model
``rating ~ 1 + (1|user) + (1|item)``.  The shape of the design (how many rows
each user and each item has) is what decides the cost of a crossed fit, so
it is drawn to resemble MovieLens ml-32m (Harper & Konstan 2016), whose
users have a median of ~70 and a mean of ~160 ratings with a long tail, and
whose movie popularity falls off like a power law:

* **user activity**: user ``u`` has weight ``w_u ~ LogNormal(0, 1.2)``; each
  row's user is drawn with probability ``w_u / sum(w)`` (so a user's count is
  Poisson with a lognormal mean: median/mean ~ 0.49, as ml-32m's 73/160);
* **item popularity**: the item of rank ``r`` (1 = most popular) has weight
  ``r ** -0.9`` (Zipf-like; ml-32m's top movie has ~100,000 ratings out of
  32 million, this gives a share of 1 / H(I, 0.9));
* a user rates an item at most once: pairs are drawn (25% more than needed,
  then more each round) until there are at least ``n_rows`` distinct ones,
  and a random subset of them is kept;
* every user and every item has at least one row (levels without rows are
  not levels of the fitted factors, so they are not counted);
* **ratings**: ``3.5 + b_user + b_item + e`` with SDs 0.45, 0.55 and 0.9,
  rounded to half stars and clipped to [0.5, 5], as MovieLens' scale.

Everything is drawn from ``numpy.random.default_rng(seed)``: the same
arguments give the same data on every machine.

Run as a script to write a CSV or Parquet file and print the shape::

    python benchmarks/ratings_data.py --rows 1e6 --users 50000 --items 5000 --out /tmp/r1e6.parquet
"""

from __future__ import annotations

import argparse

import numpy as np
import pandas as pd

USER_SIGMA = 1.2
ITEM_EXPONENT = 0.9
SD_USER, SD_ITEM, SD_RESID = 0.45, 0.55, 0.9


def ratings(n_rows: int, n_users: int, n_items: int, seed: int = 20251129) -> pd.DataFrame:
    """A seeded MovieLens-shaped ratings table (see the module docstring).

    Parameters
    ----------
    n_rows : int
        Number of (user, item) ratings; each pair occurs once.
    n_users, n_items : int
        Number of users and items drawn from (those left without a rating
        are not levels of the result's factors).
    seed : int
        Seed of ``numpy.random.default_rng``.

    Returns
    -------
    pandas.DataFrame
        Columns ``user`` and ``item`` (Categoricals labelled ``u1``, ``i1``,
        ...) and ``rating`` (float).
    """
    n_rows, n_users, n_items = int(n_rows), int(n_users), int(n_items)
    if n_rows > 0.9 * n_users * n_items:
        raise ValueError("n_rows must be well below n_users * n_items (each pair is rated at most once)")
    rng = np.random.default_rng(seed)
    pu = rng.lognormal(0.0, USER_SIGMA, n_users)
    pu /= pu.sum()
    pi = np.arange(1, n_items + 1, dtype=float) ** -ITEM_EXPONENT
    pi /= pi.sum()
    # the first rows: every user once (a popular-weighted item) and every
    # item once (an activity-weighted user)
    users = np.concatenate([np.arange(n_users), rng.choice(n_users, size=n_items, p=pu)])
    items = np.concatenate([rng.choice(n_items, size=n_users, p=pi), np.arange(n_items)])
    base = np.unique(users.astype(np.int64) * n_items + items)
    keys, factor = base, 1.25
    while keys.size < n_rows:
        # one sort of everything drawn so far per round (set differences on
        # tens of millions of keys cost a minute a round); draw more each
        # round, since the repeats grow as the popular pairs fill up
        draw = int((n_rows - keys.size) * factor) + 1000
        u = rng.choice(n_users, size=draw, p=pu)
        i = rng.choice(n_items, size=draw, p=pi)
        keys = np.unique(np.concatenate([keys, u.astype(np.int64) * n_items + i]))
        factor *= 1.5
    if keys.size > n_rows:  # keep the base rows, and a random subset of the others
        extra = keys[~np.isin(keys, base, assume_unique=True)]
        keys = np.concatenate([base, rng.choice(extra, size=n_rows - base.size, replace=False)])
    keys = rng.permutation(keys)
    u, i = keys // n_items, keys % n_items
    bu = rng.normal(0.0, SD_USER, n_users)
    bi = rng.normal(0.0, SD_ITEM, n_items)
    y = 3.5 + bu[u] + bi[i] + rng.normal(0.0, SD_RESID, keys.size)
    y = np.clip(np.round(y * 2.0) / 2.0, 0.5, 5.0)
    ucodes, uinv = np.unique(u, return_inverse=True)
    icodes, iinv = np.unique(i, return_inverse=True)
    return pd.DataFrame({
        "user": pd.Categorical.from_codes(uinv, [f"u{k + 1}" for k in ucodes]),
        "item": pd.Categorical.from_codes(iinv, [f"i{k + 1}" for k in icodes]),
        "rating": y,
    })


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--rows", type=float, required=True)
    ap.add_argument("--users", type=float, required=True)
    ap.add_argument("--items", type=float, required=True)
    ap.add_argument("--seed", type=int, default=20251129)
    ap.add_argument("--out", help="a .csv or .parquet file")
    args = ap.parse_args()
    d = ratings(args.rows, args.users, args.items, args.seed)
    nu = d["user"].value_counts()
    ni = d["item"].value_counts()
    print(f"{len(d)} rows, {nu.size} users (median {nu.median():.0f}, mean {nu.mean():.1f}, max {nu.max()} rows), "
          f"{ni.size} items (median {ni.median():.0f}, max {ni.max()} rows)")
    if args.out:
        if args.out.endswith(".parquet"):
            d.to_parquet(args.out)
        else:
            d.to_csv(args.out, index=False)


if __name__ == "__main__":
    main()
