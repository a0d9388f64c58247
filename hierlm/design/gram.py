r"""The cross-products a linear mixed model's REML/ML fit needs: its Gram blocks.

Everything the profiled deviance, the estimates and the conditional
variances need from the data is ``A = [Z X y]' [Z X y]`` (Bates et al.
2015, section 3): n numbers per row go in, a matrix the size of the model
comes out.  Sums of A over chunks of rows are A of all the rows, so the
blocks can be made in one pass over chunks, on the workers of a cluster
(:mod:`hierlm.design.distributed`), and the engines
(:mod:`hierlm.lmm.deviance`) never see a row.

A is kept in one of two forms, by the model's size (the engine's choice):

* ``dense``: the whole symmetric A, ``(q + p + 1)^2`` numbers, for small
  models (sleepstudy: 39 x 39);
* blocked, with the terms in lme4's order (the largest first, its
  block-diagonal part by levels) and ``r`` the rest (other terms, X, y):
  ``A11`` the first term's per-level ``p1 x p1`` blocks, ``A1r = Z1'[Zr X y]``
  (sparse), ``ZrZr = Zr'Zr`` (sparse), ``ZrXY = Zr'[X y]`` and
  ``XY = [X y]'[X y]`` (dense).

Either form converts to the other (:meth:`Gram.as_dense`,
:meth:`Gram.as_blocked`), which the engines only ask for at small sizes.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp
from scipy.linalg import blas


@dataclass
class Gram:
    """Gram blocks of ``[Z X y]`` (see the module docstring).

    Attributes
    ----------
    n : int
        Rows summed.
    dims : list of (int, int)
        ``(levels, columns)`` of each random-effects term, lme4's order.
    p : int
        Columns of X.
    ymax : float
        Largest absolute response (for the advice when the deviance overflows).
    dense : numpy.ndarray or None
        The whole A (dense form).
    A11, A1r, ZrZr, ZrXY, XY
        The blocks (blocked form); None in the dense form.
    """

    n: int
    dims: list
    p: int
    ymax: float
    dense: np.ndarray | None = None
    A11: np.ndarray | None = None
    A1r: sp.csr_matrix | None = None
    ZrZr: sp.csr_matrix | None = None
    ZrXY: np.ndarray | None = None
    XY: np.ndarray | None = None

    @property
    def q(self) -> int:
        return sum(l * p for l, p in self.dims)

    @property
    def qr(self) -> int:
        """Random effects of every term but the first."""
        return sum(l * p for l, p in self.dims[1:])

    @property
    def is_dense(self) -> bool:
        return self.dense is not None

    def __add__(self, other: Gram) -> Gram:
        """The blocks of both chunks' rows together."""
        if self.dims != other.dims or self.p != other.p or self.is_dense != other.is_dense:
            raise ValueError("Gram blocks of different models cannot be added")
        if self.is_dense:
            return Gram(self.n + other.n, self.dims, self.p, max(self.ymax, other.ymax),
                        dense=self.dense + other.dense)
        return Gram(self.n + other.n, self.dims, self.p, max(self.ymax, other.ymax), A11=self.A11 + other.A11,
                    A1r=(self.A1r + other.A1r).tocsr(), ZrZr=(self.ZrZr + other.ZrZr).tocsr(),
                    ZrXY=self.ZrXY + other.ZrXY, XY=self.XY + other.XY)

    # ---- conversions ---------------------------------------------------------
    def as_dense(self) -> Gram:
        """The dense form (for small models only: ``(q + p + 1)^2`` numbers)."""
        if self.is_dense:
            return self
        l1, p1 = self.dims[0]
        q1 = l1 * p1
        m = q1 + self.qr + self.p + 1
        A = np.zeros((m, m))
        idx = np.arange(l1)[:, None] * p1 + np.arange(p1)
        A[idx[:, :, None], idx[:, None, :]] = self.A11
        A[:q1, q1:] = self.A1r.toarray()
        A[q1: q1 + self.qr, q1: q1 + self.qr] = self.ZrZr.toarray()
        A[q1: q1 + self.qr, q1 + self.qr:] = self.ZrXY
        A[q1 + self.qr:, q1 + self.qr:] = self.XY
        A = np.triu(A) + np.triu(A, 1).T
        return Gram(self.n, self.dims, self.p, self.ymax, dense=A)

    def as_blocked(self) -> Gram:
        """The blocked form."""
        if not self.is_dense:
            return self
        A = self.dense
        l1, p1 = self.dims[0]
        q1, qr = l1 * p1, self.qr
        idx = np.arange(l1)[:, None] * p1 + np.arange(p1)
        A1r = sp.csr_matrix(A[:q1, q1:])
        A1r.eliminate_zeros()
        A1r.sort_indices()
        ZrZr = sp.csr_matrix(A[q1: q1 + qr, q1: q1 + qr])
        ZrZr.eliminate_zeros()
        return Gram(self.n, self.dims, self.p, self.ymax, A11=A[idx[:, :, None], idx[:, None, :]], A1r=A1r,
                    ZrZr=ZrZr, ZrXY=A[q1: q1 + qr, q1 + qr:].copy(), XY=A[q1 + qr:, q1 + qr:].copy())

    # ---- sub-models -----------------------------------------------------------
    def keep_x(self, keep) -> Gram:
        """The blocks with only the columns ``keep`` of X (aliased ones dropped)."""
        keep = np.asarray(keep, dtype=np.int64)
        xy = np.r_[keep, self.p]  # the response stays last
        p = keep.size
        if self.is_dense:
            q = self.q
            cols = np.r_[np.arange(q), q + xy]
            return Gram(self.n, self.dims, p, self.ymax, dense=self.dense[np.ix_(cols, cols)])
        qr = self.qr
        A1r = self.A1r[:, np.r_[np.arange(qr), qr + xy]].tocsr()
        A1r.sort_indices()
        return Gram(self.n, self.dims, p, self.ymax, A11=self.A11, A1r=A1r, ZrZr=self.ZrZr,
                    ZrXY=self.ZrXY[:, xy], XY=self.XY[np.ix_(xy, xy)])

    def term_alone(self, k: int) -> Gram:
        """The blocks of the model with random-effects term ``k`` only."""
        offs = np.cumsum([0] + [l * p for l, p in self.dims])
        if self.is_dense:
            cols = np.r_[np.arange(offs[k], offs[k + 1]), np.arange(offs[-1], offs[-1] + self.p + 1)]
            return Gram(self.n, [self.dims[k]], self.p, self.ymax, dense=self.dense[np.ix_(cols, cols)])
        if k == 0:
            A1r = self.A1r[:, self.qr:].tocsr()
            return Gram(self.n, [self.dims[0]], self.p, self.ymax, A11=self.A11, A1r=A1r,
                        ZrZr=sp.csr_matrix((0, 0)), ZrXY=np.zeros((0, self.p + 1)), XY=self.XY)
        l, p = self.dims[k]
        s, e = offs[k] - offs[1], offs[k + 1] - offs[1]
        # the term's block of Zr'Zr is block diagonal: its p x p blocks
        coo = self.ZrZr[s:e, s:e].tocoo()
        same = coo.row // p == coo.col // p
        A11 = np.zeros((l, p, p))
        np.add.at(A11, (coo.row[same] // p, coo.row[same] % p, coo.col[same] % p), coo.data[same])
        A1r = sp.csr_matrix(self.ZrXY[s:e])
        A1r.eliminate_zeros()
        return Gram(self.n, [(l, p)], self.p, self.ymax, A11=A11, A1r=A1r, ZrZr=sp.csr_matrix((0, 0)),
                    ZrXY=np.zeros((0, self.p + 1)), XY=self.XY)

    def with_response(self, Zty: np.ndarray, Xty: np.ndarray, yty: float) -> Gram:
        """The blocks of the same model with another response: ``Z'y`` (all
        terms, lme4's order), ``X'y`` and ``y'y`` replaced (a bootstrap
        replicate's, say)."""
        p, q = self.p, self.q
        if self.is_dense:
            A = self.dense.copy()
            A[-1, :q] = A[:q, -1] = Zty
            A[-1, q: q + p] = A[q: q + p, -1] = Xty
            A[-1, -1] = yty
            return Gram(self.n, self.dims, p, self.ymax, dense=A)
        q1 = q - self.qr
        A1r = sp.hstack([self.A1r[:, :-1], sp.csr_matrix(np.asarray(Zty[:q1], dtype=float)[:, None])],
                        format="csr")
        A1r.eliminate_zeros()
        A1r.sort_indices()
        ZrXY = self.ZrXY.copy()
        ZrXY[:, -1] = Zty[q1:]
        XY = self.XY.copy()
        XY[-1, :p] = XY[:p, -1] = Xty
        XY[-1, -1] = yty
        return Gram(self.n, self.dims, p, self.ymax, A11=self.A11, A1r=A1r, ZrZr=self.ZrZr, ZrXY=ZrXY, XY=XY)

    def rank_keep_x(self, tol: float = 1e-7) -> np.ndarray:
        """Columns of X to keep, as :func:`hierlm.design.fixed.rank_keep`
        (R's ``qr`` left to right) but from ``X'X``: a column is dropped when
        its norm after projecting out the kept ones (the pivot of a Cholesky
        factor taken in order) is below ``tol`` times its own norm."""
        XX = self.dense[self.q:-1, self.q:-1] if self.is_dense else self.XY[:-1, :-1]
        keep: list[int] = []
        L = np.zeros((0, 0))
        for j in range(self.p):
            norm2 = XX[j, j]
            if norm2 <= 0:
                continue
            c = XX[keep, j]
            w = np.linalg.solve(L, c) if keep else c
            r2 = norm2 - w @ w
            if r2 > (tol * tol) * norm2:
                keep.append(j)
                k = len(keep)
                L2 = np.zeros((k, k))
                L2[:-1, :-1] = L
                L2[-1, :-1] = w
                L2[-1, -1] = np.sqrt(r2)
                L = L2
        return np.asarray(keep, dtype=int)


def whitened_rows(design) -> tuple[np.ndarray, np.ndarray, list[np.ndarray], np.ndarray | None]:
    """``[X, y - offset]`` and each term's columns, rows scaled by ``sqrt(w)``.

    lme4's linear mixed model with prior weights w and an offset o is the
    unweighted model of ``W^(1/2) (y - o)`` on ``W^(1/2) X`` and ``W^(1/2) Z``
    (the residual variance of row i is ``sigma^2 / w_i``); only the deviance
    gains ``-sum(log w)``, which the engines add.

    Returns
    -------
    XY : numpy.ndarray
        n x (p + 1).
    y : numpy.ndarray
        The (scaled) response column of XY.
    Xts : list of numpy.ndarray
        Each ReMat's ``Xt``, scaled.
    sqrt_w : numpy.ndarray or None
    """
    y = design.y if design.offset is None else design.y - design.offset
    XY = np.column_stack([design.X, y])
    Xts = [r.Xt for r in design.remats]
    sw = None
    if design.weights is not None:
        sw = np.sqrt(np.asarray(design.weights, dtype=float))
        XY = XY * sw[:, None]
        Xts = [Xt * sw[:, None] for Xt in Xts]
    return XY, XY[:, -1], Xts, sw


def crossprod(A: np.ndarray) -> np.ndarray:
    """``A' A`` of a tall matrix, by scipy's BLAS (``dsyrk``).

    Not numpy's matmul: numpy bundles another OpenBLAS than scipy's, and its
    idle threads spin for about a tenth of a second after a call.  The REML
    engine's factorizations run on scipy's BLAS right after the Gram blocks
    are made, and the first few of them ran at half speed beside the
    spinning threads (InstEval: 13-21 ms instead of 7.5 for the first three).
    """
    A = np.asarray(A, dtype=float)
    if A.shape[0] == 0 or A.shape[1] == 0:
        return np.zeros((A.shape[1], A.shape[1]))
    # A.T is Fortran-ordered when A is C-ordered: no copy
    C = blas.dsyrk(1.0, A.T if A.flags.c_contiguous else np.asfortranarray(A.T), lower=0)
    return np.triu(C) + np.triu(C, 1).T


def design_gram(design, dense: bool) -> Gram:
    """The Gram blocks of a design's rows (``design.X``, ``design.y`` and
    the ReMats' codes and values, with the prior weights and the offset:
    :func:`whitened_rows`), in the dense or the blocked form.

    Only sums over rows: ``np.bincount`` for blocks of indicator columns
    and sparse products otherwise; nothing the size of n x q is formed.
    """
    remats = design.remats
    XY, y, Xts, sw = whitened_rows(design)
    n, p = design.X.shape
    dims = [(r.nlevels, r.p) for r in remats]
    ymax = float(np.max(np.abs(y))) if y.size else 0.0
    if dense:
        q = sum(r.q for r in remats)
        m = q + p + 1
        offs = np.cumsum([0] + [r.q for r in remats])
        A = np.zeros((m, m))
        A[q:, q:] = crossprod(XY)
        for k, rk in enumerate(remats):
            for a in range(rk.p):
                ia, wa = rk.codes * rk.p + a, Xts[k][:, a]
                for j in range(XY.shape[1]):
                    A[q + j, offs[k]: offs[k + 1]] += np.bincount(ia, weights=wa * XY[:, j], minlength=rk.q)
                for l_ in range(k + 1):
                    rl = remats[l_]
                    for b in range(rl.p):
                        flat = ia * rl.q + rl.codes * rl.p + b
                        A[offs[k]: offs[k + 1], offs[l_]: offs[l_ + 1]] += np.bincount(
                            flat, weights=wa * Xts[l_][:, b], minlength=rk.q * rl.q).reshape(rk.q, rl.q)
        return Gram(n, dims, p, ymax, dense=np.tril(A) + np.tril(A, -1).T)
    re1, rest = remats[0], remats[1:]
    p1, l1 = re1.p, re1.nlevels
    A11 = np.empty((l1, p1, p1))
    for a in range(p1):
        for b in range(a + 1):
            v = np.bincount(re1.codes, weights=Xts[0][:, a] * Xts[0][:, b], minlength=l1)
            A11[:, a, b] = v
            A11[:, b, a] = v
    W = None if sw is None else sp.diags(sw)
    Z1 = re1.sparse() if W is None else (W @ re1.sparse()).tocsr()
    if rest:
        Zr = sp.hstack([r.sparse() for r in rest], format="csr")
        if W is not None:
            Zr = (W @ Zr).tocsr()
        A1r = sp.hstack([Z1.T @ Zr, sp.csr_matrix(Z1.T @ XY)], format="csr")
        ZrZr = (Zr.T @ Zr).tocsr()
        ZrXY = np.asarray(Zr.T @ XY)
    else:
        A1r = sp.csr_matrix(Z1.T @ XY)
        ZrZr, ZrXY = sp.csr_matrix((0, 0)), np.zeros((0, p + 1))
    A1r.eliminate_zeros()
    A1r.sort_indices()
    return Gram(n, dims, p, ymax, A11=A11, A1r=A1r, ZrZr=ZrZr, ZrXY=ZrXY, XY=crossprod(XY))
