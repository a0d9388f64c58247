"""Compiled kernels of the blocked factorization for big crossed designs.

The blocked factor (:mod:`hierlm.lmm.deviance`) eliminates the largest
term level by level; what is left is the dense Schur complement

    S = A_rr - sum_i A_ri' B_i A_ir

where level ``i`` of the first term touches the columns ``A_ir`` of the
rest (the other terms' levels it meets, X and y) and ``B_i`` is its
``p1 x p1`` block.  For users x items data the sum runs over every pair of
items a user rated: ``sum_i n_i^2 / 2`` multiply-adds (10^9 at ten million
ratings).  Storing each product once (the engine for moderate designs) costs
that much memory; here it is recomputed at each evaluation, straight into
S, by a loop that numba compiles: no storage beyond the sparse ``A_ir`` and
S itself.  scipy's sparse products would build the (dense) result as a
sparse matrix first, and numpy has no scatter-add that runs at this speed,
hence the compiled loop.

Threads split the rows of S into ranges of equal work, so no two threads
write the same entry and the result does not depend on the number of
threads (each entry is summed in the same order).
"""

from __future__ import annotations

import numba
import numpy as np


def schur_build(S, arr, lptr, lcols, lvals, B, lam, n_plus_one, plan, parallel=True, clear_upper=False) -> None:
    """Build the lower triangle of S (row-major) in place, row by row::

        S[j, k] = lam[j] lam[k] (A_rr[j, k] - sum_i sum_ab lvals[pj, a] B[i, a, b] lvals[pk, b])
                  + (j == k and j < n_plus_one)                          (j >= k)

    one pass over each row while it is in cache (zeroing, A_rr's entries,
    the first term's elimination, the scaling by Lambda_r, the identity).

    Parameters
    ----------
    S : (m, m) float64, C order
        Only the lower triangle is written; the rest is left as it was.
    arr : tuple
        ``(ptr, cols, vals)``: A_rr's lower triangle by row (:func:`rows_of`).
    lptr : (levels + 1,) int64
        Level ``i``'s entries are ``lptr[i]:lptr[i + 1]``.
    lcols : (nnz,) int64
        Their columns of S, increasing within a level.
    lvals : (nnz, p1) float64
        Their values, one per column of the first term.
    B : (levels, p1, p1) float64
    lam : (m,) float64
        Scale of each row and column (ones: none).
    n_plus_one : int
        The first ``n_plus_one`` diagonal entries get 1 added after scaling.
    plan : tuple
        From :func:`downdate_plan`: the entries of each row of S and the
        rows each thread updates.
    parallel : bool
        Split the rows between numba's threads.  False runs them in the
        calling thread: for a kernel of a few milliseconds followed by a
        multithreaded LAPACK call, two thread pools contending for the
        cores cost more than the second thread saves (see the engine's use).
    clear_upper : bool
        Also zero the strict upper triangle (for a caller that symmetrizes S).
    """
    rptr, rent, rlev, bounds = plan
    aptr, acols, avals = arr
    flat = S.reshape(-1)  # a view: 1-d indexing is what the loops run fastest on
    m = S.shape[0]
    if lvals.shape[1] == 1:
        args = (flat, m, aptr, acols, avals, lptr, lcols, np.ascontiguousarray(lvals[:, 0]),
                np.ascontiguousarray(B[:, 0, 0]), lam, n_plus_one, clear_upper, rptr, rent, rlev, bounds)
        kernel = _build_scalar
    else:
        args = (flat, m, aptr, acols, avals, lptr, lcols, lvals, B, lam, n_plus_one, clear_upper,
                rptr, rent, rlev, bounds)
        kernel = _build_blocks
    if parallel:
        kernel(*args)
        return
    # numba's thread count is per calling thread: one here, restored after
    threads = numba.get_num_threads()
    numba.set_num_threads(1)
    try:
        kernel(*args)
    finally:
        numba.set_num_threads(threads)


# The loops run row by row of S: row j takes, from every level that touches
# column j, the products of j's entry with that level's entries up to j.  A
# row (m doubles) stays in cache while all of its levels are added; looping
# level by level instead writes each level's products all over S, a cache
# miss per product once S outgrows the cache.  Within a row the levels come
# in increasing order, so every entry is summed in the same order whatever
# the split between threads.
@numba.njit(cache=True, nogil=True, inline="always")
def _start_row(flat, base, j, m, aptr, acols, avals, clear_upper):  # pragma: no cover  (compiled)
    for k in range(j + 1 if not clear_upper else m):
        flat[base + k] = 0.0
    for e in range(aptr[j], aptr[j + 1]):
        flat[base + acols[e]] += avals[e]


@numba.njit(cache=True, nogil=True, inline="always", fastmath=True)
def _finish_row(flat, base, j, lam, n_plus_one):  # pragma: no cover  (compiled)
    lj = lam[j]
    for k in range(j + 1):
        flat[base + k] *= lj * lam[k]
    if j < n_plus_one:
        flat[base + j] += 1.0


@numba.njit(parallel=True, cache=True, nogil=True, fastmath=True)
def _build_scalar(flat, m, aptr, acols, avals, lptr, lcols, vals, b, lam, n_plus_one, clear_upper,
                  rptr, rent, rlev, bounds):  # pragma: no cover  (compiled)
    for t in numba.prange(bounds.size - 1):
        for j in range(bounds[t], bounds[t + 1]):
            base = j * m
            _start_row(flat, base, j, m, aptr, acols, avals, clear_upper)
            for q in range(rptr[j], rptr[j + 1]):
                pj = rent[q]
                i = rlev[q]
                w = b[i] * vals[pj]
                for pk in range(lptr[i], pj + 1):
                    flat[base + lcols[pk]] -= w * vals[pk]
            _finish_row(flat, base, j, lam, n_plus_one)


@numba.njit(parallel=True, cache=True, nogil=True, fastmath=True)
def _build_blocks(flat, m, aptr, acols, avals, lptr, lcols, lvals, B, lam, n_plus_one, clear_upper,
                  rptr, rent, rlev, bounds):  # pragma: no cover  (compiled)
    p1 = lvals.shape[1]
    for t in numba.prange(bounds.size - 1):
        wv = np.empty(p1)
        for j in range(bounds[t], bounds[t + 1]):
            base = j * m
            _start_row(flat, base, j, m, aptr, acols, avals, clear_upper)
            for q in range(rptr[j], rptr[j + 1]):
                pj = rent[q]
                i = rlev[q]
                # wv = B_i' x_j  (so that x_j' B_i x_k = wv . x_k)
                for v in range(p1):
                    acc = 0.0
                    for u in range(p1):
                        acc += lvals[pj, u] * B[i, u, v]
                    wv[v] = acc
                for pk in range(lptr[i], pj + 1):
                    acc = 0.0
                    for v in range(p1):
                        acc += wv[v] * lvals[pk, v]
                    flat[base + lcols[pk]] -= acc
            _finish_row(flat, base, j, lam, n_plus_one)


def rows_of(flat: np.ndarray, vals: np.ndarray, m: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Entries at flat positions of an ``m x m`` row-major matrix, grouped by
    row for :func:`schur_build`: ``(ptr, cols, vals)``."""
    order = np.argsort(flat, kind="stable")
    flat = flat[order]
    ptr = np.searchsorted(flat // m, np.arange(m + 1)).astype(np.int64)
    return ptr, (flat % m).astype(np.int64), np.ascontiguousarray(vals[order], dtype=float)


@numba.njit(cache=True, nogil=True)
def _by_row(lptr, lcols, m):  # pragma: no cover  (compiled)
    """A counting sort of the entries by column (levels in increasing order)."""
    nlev = lptr.size - 1
    rptr = np.zeros(m + 1, dtype=np.int64)
    for e in range(lcols.size):
        rptr[lcols[e] + 1] += 1
    for j in range(m):
        rptr[j + 1] += rptr[j]
    fill = rptr[:-1].copy()
    rent = np.empty(lcols.size, dtype=np.int64)
    rlev = np.empty(lcols.size, dtype=np.int32)
    for i in range(nlev):
        for e in range(lptr[i], lptr[i + 1]):
            j = lcols[e]
            rent[fill[j]] = e
            rlev[fill[j]] = i
            fill[j] += 1
    return rptr, rent, rlev


def downdate_plan(lptr: np.ndarray, lcols: np.ndarray, m: int, threads: int) -> tuple:
    """What :func:`schur_build` needs besides the values, made once per
    design: each row's entries (a counting sort of the entries by column,
    12 bytes an entry) and the rows of each thread (:func:`row_bounds`)."""
    rptr, rent, rlev = _by_row(lptr, lcols, m)
    return rptr, rent, rlev, row_bounds(lptr, lcols, m, threads)


@numba.njit(parallel=True, cache=True, nogil=True)
def level_quadforms(Sinv, lptr, lcols, lvals):  # pragma: no cover  (compiled)
    """For each level ``i``: ``Q_i Sinv Q_i'`` (p1 x p1), where ``Q_i`` is the
    level's ``p1 x m`` block (``lvals`` transposed at ``lcols``) and ``Sinv``
    is symmetric with its lower triangle filled.  Cost ``p1^2 n_i^2`` a level."""
    nlev = lptr.size - 1
    p1 = lvals.shape[1]
    out = np.zeros((nlev, p1, p1))
    for i in numba.prange(nlev):
        lo, hi = lptr[i], lptr[i + 1]
        for pj in range(lo, hi):
            j = lcols[pj]
            for pk in range(lo, hi):
                k = lcols[pk]
                s = Sinv[j, k] if j >= k else Sinv[k, j]
                for a in range(p1):
                    for b in range(p1):
                        out[i, a, b] += lvals[pj, a] * s * lvals[pk, b]
    return out


def row_bounds(lptr: np.ndarray, lcols: np.ndarray, m: int, threads: int) -> np.ndarray:
    """Split the rows of S into ``threads`` ranges of about equal work for
    :func:`schur_build` (an entry at position r of its level costs r + 1)."""
    pos = np.arange(lcols.size) - np.repeat(lptr[:-1], np.diff(lptr)) + 1
    work = np.cumsum(np.bincount(lcols, weights=pos.astype(float), minlength=m))
    if threads <= 1 or work[-1] == 0:
        return np.array([0, m], dtype=np.int64)
    cuts = np.searchsorted(work, work[-1] * np.arange(1, threads) / threads)
    return np.concatenate([[0], cuts, [m]]).astype(np.int64)


def load() -> None:
    """Load every compiled kernel (from numba's on-disk cache, or compiling
    it the first time): about a second once per process, which the first
    big fit pays otherwise.  Benchmarks call it before timing a fit."""
    lptr = np.array([0, 2], dtype=np.int64)
    lcols = np.array([0, 1], dtype=np.int64)
    S = np.eye(2)
    arr = rows_of(np.array([0, 3]), np.ones(2), 2)
    for p1 in (1, 2):
        lvals = np.ones((2, p1))
        B = np.ones((1, p1, p1))
        schur_build(S, arr, lptr, lcols, lvals, B, np.ones(2), 1, downdate_plan(lptr, lcols, 2, 1))
        level_quadforms(S, lptr, lcols, lvals)

