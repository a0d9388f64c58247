r"""The profiled deviance of a linear mixed model, by a blocked Cholesky factor.

Model (Bates, Maechler, Bolker & Walker 2015, JSS 67(1), section 3)::

    y | b ~ N(X beta + Z b, sigma^2 I),   b = Lambda_theta u,   u ~ N(0, sigma^2 I)

For given theta let ``A = [Z Lambda, X, y]' [Z Lambda, X, y] + diag(I_q, 0, 0)``
and ``A = L L'`` its lower Cholesky factor.  The y row of L holds
``r = sqrt(penalized RSS)`` on its diagonal, the X block of L is ``R_X'``, and
the Z block is lme4's L_theta.  With beta and sigma profiled out

    ML:   d(theta) = log|L_Z|^2 + n (1 + log(2 pi r^2 / n))
    REML: d(theta) = log|L_Z|^2 + log|R_X|^2 + (n - p)(1 + log(2 pi r^2 / (n - p)))

Blocked algebra (as MixedModels.jl): terms are in lme4's order, largest
first.  The first term's block of A is block diagonal (one p1 x p1 block per
level, since each row belongs to one level), so it is eliminated level by
level with batched small factorizations.  What remains (the other terms, X
and y: m = q_rest + p + 1 columns) is the Schur complement

    S = Lambda_r' (A_rr - A_r1 B A_1r) Lambda_r + diag(I, 0, 0),
    B = blockdiag_i( T1 (T1' A11_i T1 + I)^{-1} T1' ),

stored dense and factored by LAPACK ``dpotrf``.  ``A_r1 B A_1r`` is sparse
and is evaluated as one sparse matrix-vector product: every (row j, col k,
level i) contribution ``A[(i,a),j] A[(i,b),k]`` is precomputed once, so each
evaluation is ``P @ vec(B)`` followed by a scatter into S.

Nothing here ever forms a dense Z or an n x n matrix, or reads a row: the
engines are built from the design's Gram blocks (:mod:`hierlm.design.gram`),
made from its rows or, for data on a Dask cluster, summed there.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np
import scipy.sparse as sp
from scipy.linalg import lapack, solve_triangular

from ..design.build import Design
from ..design.gram import Gram, design_gram
from ..errors import TooLargeError
from . import dense as dense_chol

_LOG2PI = np.log(2.0 * np.pi)


@dataclass
class Factorization:
    """State of the blocked factor at one theta.

    Attributes
    ----------
    theta : numpy.ndarray
    L : numpy.ndarray
        m x m, lower triangle holds the Cholesky factor of S.
    Minv : numpy.ndarray
        (levels, p1, p1) inverses of ``T1' A11_i T1 + I``.
    T1 : numpy.ndarray
        First term's T.
    logdet_Z : float
        log|L_Z|^2.
    logdet_X : float
        log|R_X|^2.
    pwrss : float
        Penalized residual sum of squares r^2.
    """

    theta: np.ndarray
    L: np.ndarray
    Minv: np.ndarray
    T1: np.ndarray
    logdet_Z: float
    logdet_X: float
    pwrss: float


def _back_solve(L: np.ndarray, qz: int, p: int, beta: np.ndarray | None, noise: np.ndarray | None) -> np.ndarray:
    """``(u, beta)`` from the factor L of ``[Z Lambda, X, y]``: the solution of
    ``L' (u, beta, -1) = (noise, w, -r)``, r = L's last diagonal entry.

    With ``beta`` None, w = 0 gives the estimate beta-hat and the modes u at
    it; with ``beta`` given, w = L_XX' beta - L_yX' pins the solution's beta
    part to it, and u solves ``L_ZZ' u = L_yZ' - L_XZ' beta + noise`` (the
    conditional modes at beta, plus ``L_ZZ'^{-1} noise``).  One LAPACK call
    on all of L (``L.T`` is Fortran-ordered: no copy of the factor, which a
    solve on its leading block would make).
    """
    m = L.shape[0]
    rhs = np.zeros(m)
    rhs[m - 1] = -L[m - 1, m - 1]
    if beta is not None:
        LXX = np.tril(L[qz: qz + p, qz: qz + p])  # the upper triangle holds stale values
        rhs[qz: qz + p] = LXX.T @ beta - L[m - 1, qz: qz + p]
    if noise is not None:
        rhs[:qz] = noise
    x, info = lapack.dtrtrs(L.T, rhs, lower=0)
    if info != 0:  # pragma: no cover  (L has a positive diagonal)
        raise np.linalg.LinAlgError("dtrtrs failed")
    return x[: m - 1]


class ProfiledDeviance:
    """Precomputed blocks of A and the deviance as a function of theta.

    Parameters
    ----------
    design : Design
    """

    #: the size and time estimate make_deviance chose the engine by (None
    #: for an engine built directly)
    cost: Cost | None = None

    def __init__(self, design: Design, gram: Gram | None = None):
        g = self._blocks(design, gram)
        m, qr = self.m, self.qr
        Arr = np.empty((m, m))
        Arr[qr:, qr:] = g.XY
        Arr[:qr, :qr] = g.ZrZr.toarray()
        Arr[qr:, :qr] = g.ZrXY.T
        self.Arr = np.tril(Arr)
        self._precompute_pairs()

    def _blocks(self, design: Design, gram: Gram | None) -> Gram:
        """What both blocked engines share: the sizes, the first term's
        per-level ``A11`` and ``A1r = Z1' [Z_rest, X, y]`` (sparse), from the
        design's Gram blocks (returned, for the rest's block, which each
        engine stores its own way)."""
        self.design = design
        g = gram_of(design, dense=False) if gram is None else gram.as_blocked()
        remats = design.remats
        self.re1, self.rest = remats[0], remats[1:]
        self.n, self.p = g.n, g.p
        self.ymax = g.ymax
        self.ldw = log_weights(design)
        self.slices = design.theta_slices()
        self.A11 = g.A11
        self.qr = g.qr
        self.offsets = np.cumsum([0] + [r.q for r in self.rest])
        self.m = self.qr + self.p + 1
        self.A1r = g.A1r
        # scaling of the rest by Lambda_r: scalar terms scale rows and columns
        self.rest_scalar = all(r.p == 1 for r in self.rest)
        self.diag_Z = np.arange(self.qr) * (self.m + 1)
        return g

    def _precompute_pairs(self) -> None:
        """Index every product A[(i,a),j] A[(i,b),k] with j >= k (see module doc)."""
        A, p1, l1, m = self.A1r, self.re1.p, self.re1.nlevels, self.m
        indptr, indices, data = A.indptr, A.indices, A.data
        nnz = indptr[-1]
        row_of = np.repeat(np.arange(A.shape[0], dtype=np.int64), np.diff(indptr))
        lev, a = row_of // p1, row_of % p1
        if p1 == 1:
            # one row per level, columns sorted: pair each entry with the
            # entries before it in its row (j1 >= j2 by construction)
            cnt = np.arange(nnz) - indptr[row_of] + 1
            first = np.repeat(np.arange(nnz), cnt)
            second = indptr[row_of[first]] + (np.arange(first.size) - np.repeat(np.cumsum(cnt) - cnt, cnt))
        else:
            gstart = indptr[np.arange(l1) * p1]
            gsize = indptr[(np.arange(l1) + 1) * p1] - gstart
            cnt = gsize[lev]
            first = np.repeat(np.arange(nnz), cnt)
            second = gstart[lev[first]] + (np.arange(first.size) - np.repeat(np.cumsum(cnt) - cnt, cnt))
            keep = indices[first] >= indices[second]
            first, second = first[keep], second[keep]
        flat = indices[first].astype(np.int64) * m + indices[second]
        if m * m <= 1 << 26:
            # distinct positions by a lookup table: linear time, no sort
            lookup = np.zeros(m * m, dtype=np.int32)
            lookup[flat] = 1
            self.pair_flat = np.flatnonzero(lookup)
            lookup[self.pair_flat] = np.arange(self.pair_flat.size, dtype=np.int32)
            inv = lookup[flat]
        else:
            self.pair_flat, inv = np.unique(flat, return_inverse=True)
        vals = data[first] * data[second]
        shape = (self.pair_flat.size, l1 * p1 * p1)
        if p1 == 1:
            # pairs come grouped by level: that is CSC by column already
            colptr = np.concatenate([[0], np.cumsum(np.bincount(row_of[first], minlength=l1))])
            self.P = sp.csc_matrix((vals, inv, colptr), shape=shape).tocsr()
        else:
            col = lev[first] * (p1 * p1) + a[first] * p1 + a[second]
            self.P = sp.csr_matrix((vals, (inv, col)), shape=shape)

    # ------------------------------------------------------------------
    def _lambda_rest(self, S: np.ndarray, theta: np.ndarray) -> None:
        """In place: S <- Lambda_r' S Lambda_r (X and y columns unscaled)."""
        if self.rest_scalar:
            lam = np.ones(self.m)
            for k, r in enumerate(self.rest):
                lam[self.offsets[k]: self.offsets[k + 1]] = theta[self.slices[k + 1]][0]
            S *= lam[:, None]
            S *= lam
            return
        # vector-valued terms mix rows within a level: use the full symmetric S
        low = np.tril(S, -1)
        S += low.T
        m = self.m
        for k, r in enumerate(self.rest):
            blk = slice(self.offsets[k], self.offsets[k + 1])
            T = r.T(theta[self.slices[k + 1]])
            S[:, blk] = (S[:, blk].reshape(m, r.nlevels, r.p) @ T).reshape(m, r.q)
            S[blk, :] = np.einsum("ba,lbj->laj", T, S[blk, :].reshape(r.nlevels, r.p, m)).reshape(r.q, m)

    def _first_block(self, theta: np.ndarray):
        """(T1, Minv, B, log|T1' A11 T1 + I|) of the first term: its per-level
        blocks ``M_i = T1' A11_i T1 + I``, their inverses and ``B_i = T1 M_i^-1 T1'``."""
        re1 = self.re1
        T1 = re1.T(theta[self.slices[0]])
        if re1.p == 1:
            t2 = T1[0, 0] ** 2
            Md = self.A11[:, 0, 0] * t2 + 1.0
            logdet1 = np.log(Md).sum()
            Minv = (1.0 / Md)[:, None, None]
            B = t2 / Md
        elif re1.p == 2:
            # closed form for 2 x 2 blocks: no per-level LAPACK calls
            (t00, _), (t10, t11) = T1
            a, b, c = self.A11[:, 0, 0], self.A11[:, 0, 1], self.A11[:, 1, 1]
            m00 = a * t00 * t00 + 2.0 * b * t00 * t10 + c * t10 * t10 + 1.0
            m01 = t11 * (b * t00 + c * t10)
            m11 = c * t11 * t11 + 1.0
            det = m00 * m11 - m01 * m01
            logdet1 = np.log(det).sum()
            Minv = np.empty((det.size, 2, 2))
            Minv[:, 0, 0] = m11 / det
            Minv[:, 0, 1] = Minv[:, 1, 0] = -m01 / det
            Minv[:, 1, 1] = m00 / det
            B = T1 @ Minv @ T1.T
        else:
            M = T1.T @ self.A11 @ T1
            M[:, np.arange(re1.p), np.arange(re1.p)] += 1.0
            Lc = np.linalg.cholesky(M)
            logdet1 = 2.0 * np.log(np.diagonal(Lc, axis1=1, axis2=2)).sum()
            Minv = np.linalg.inv(M)
            B = T1 @ Minv @ T1.T
        return T1, Minv, B, logdet1

    def factor(self, theta: np.ndarray) -> Factorization | None:
        """Blocked Cholesky factor at theta (None if not positive definite)."""
        theta = np.asarray(theta, dtype=float)
        T1, Minv, B, logdet1 = self._first_block(theta)
        S = self.Arr.copy()
        S.ravel()[self.pair_flat] -= self.P @ B.ravel()
        self._lambda_rest(S, theta)
        S.ravel()[self.diag_Z] += 1.0
        # S.T is Fortran-ordered: its upper factor, written in place, is L in S
        _, info = lapack.dpotrf(S.T, lower=0, clean=0, overwrite_a=1)
        if info != 0:
            return None
        d = np.diagonal(S)
        qr, p = self.qr, self.p
        return Factorization(
            theta=theta,
            L=S,
            Minv=Minv,
            T1=T1,
            logdet_Z=logdet1 + 2.0 * np.log(d[:qr]).sum(),
            logdet_X=2.0 * np.log(d[qr: qr + p]).sum(),
            pwrss=d[-1] ** 2,
        )

    def _lambda_blocks(self, theta: np.ndarray, blocks: list[np.ndarray]) -> list[np.ndarray]:
        """Per term, ``T V T'`` for each level's block V of the spherical
        random effects u: the blocks of b = Lambda u."""
        return [r.T(theta[self.slices[k]]) @ V @ r.T(theta[self.slices[k]]).T
                for k, (r, V) in enumerate(zip(self.design.remats, blocks))]

    def objective_many(self, thetas: np.ndarray, reml: bool) -> np.ndarray:
        """The objective at each row of ``thetas``."""
        return np.array([self.objective(t, reml) for t in thetas])

    def objective(self, theta: np.ndarray, reml: bool) -> float:
        """Profiled deviance (ML) or REML criterion at theta."""
        f = self.factor(theta)
        if f is None or not f.pwrss > 0:
            return np.inf
        return self.from_factor(f, reml)

    def from_factor(self, f: Factorization, reml: bool) -> float:
        n = self.n - self.p if reml else self.n
        d = f.logdet_Z + n * (1.0 + _LOG2PI + np.log(f.pwrss / n)) - self.ldw
        return d + f.logdet_X if reml else d

    # ------------------------------------------------------------------
    def solve(self, f: Factorization, beta: np.ndarray | None = None,
              noise: np.ndarray | None = None) -> tuple[np.ndarray, list[np.ndarray]]:
        """beta and the conditional modes b (one (levels, p) array per term).

        With ``beta`` given, the modes of b at that beta instead of at its
        estimate; with ``noise`` (q standard normals times sigma, in the
        terms' order) too, an exact draw of b | y, beta, theta, sigma: the
        spherical effects u solve ``L_Z' u = L_Z^{-1} (Lambda' Z'(y - X beta)) + noise``,
        whose covariance is ``sigma^2 (L_Z L_Z')^{-1}``.
        """
        qr = self.qr
        x = _back_solve(f.L, qr, self.p, beta, None if noise is None else noise[noise.size - qr:])
        beta = x[qr:]
        bs: list[np.ndarray] = []
        for k, r in enumerate(self.rest):
            u = x[self.offsets[k]: self.offsets[k + 1]].reshape(r.nlevels, r.p)
            bs.append(u @ r.T(f.theta[self.slices[k + 1]]).T)
        # Z1'(y - X beta - Zr br) from the Gram blocks: A1r [-br, -beta, 1]
        v = np.concatenate([b.ravel() for b in bs] + [beta, [-1.0]])
        w = -self._z1t(v).reshape(self.re1.nlevels, self.re1.p) @ f.T1  # rows: T1' w_i
        u1 = np.einsum("lab,lb->la", f.Minv, w)
        if noise is not None:  # u1 | u_r ~ N(M_i^{-1} T1' w_i, sigma^2 M_i^{-1}) level by level
            z1 = noise[: noise.size - qr].reshape(u1.shape)
            u1 = u1 + np.einsum("lab,lb->la", np.linalg.cholesky(f.Minv), z1)
        return beta, [u1 @ f.T1.T] + bs

    def beta_hat(self, f: Factorization) -> np.ndarray:
        """beta-hat alone, from the factor's X rows: ``L_XX' beta = L_yX'``
        (no solve for b, which :meth:`solve` adds)."""
        q, p, m = self.qr, self.p, self.m
        return solve_triangular(f.L[q: q + p, q: q + p], f.L[m - 1, q: q + p], lower=True, trans="T",
                                check_finite=False)

    def _z1t(self, v: np.ndarray) -> np.ndarray:
        """``A1r @ v``: Z1' times the combination v of the rest's columns."""
        return self.A1r @ v

    def vcov_unscaled(self, f: Factorization) -> np.ndarray:
        """(R_X' R_X)^{-1}: vcov(beta) / sigma^2."""
        qr, p = self.qr, self.p
        Linv = solve_triangular(f.L[qr: qr + p, qr: qr + p], np.eye(p), lower=True)
        return Linv.T @ Linv

    def condvar_unscaled(self, f: Factorization) -> list[np.ndarray]:
        """Conditional covariance blocks of b per term and level, over sigma^2.

        As lme4's ``condVar``: the blocks of Lambda (L_Z L_Z')^{-1} Lambda',
        conditional on beta (the Z part of the factor only).
        """
        re1, qr = self.re1, self.qr
        V1 = f.Minv.copy()
        out_rest: list[np.ndarray] = []
        if qr:
            Lz = f.L[:qr, :qr]
            Lzinv = solve_triangular(Lz, np.eye(qr), lower=True, check_finite=False)
            # Q' P^{-1}, Q = T1' A_1Zr Lambda_r (block 1 rows, rest-Z columns)
            l1, p1 = re1.nlevels, re1.p
            Pinv = sp.bsr_matrix((f.Minv, np.arange(l1), np.arange(l1 + 1)), shape=(l1 * p1, l1 * p1))
            T1blk = sp.kron(sp.identity(l1), f.T1.T, format="csr")
            Lam_r = sp.block_diag(
                [sp.kron(sp.identity(r.nlevels), r.T(f.theta[self.slices[k + 1]])) for k, r in enumerate(self.rest)],
                format="csr",
            )
            QtPinv = (Pinv @ (T1blk @ self.A1r[:, :qr] @ Lam_r)).T
            W = Lzinv @ QtPinv.toarray()
            Wl = W.reshape(qr, l1, p1)
            V1 += np.einsum("kla,klb->lab", Wl, Wl)
            for k, r in enumerate(self.rest):
                blk = Lzinv[:, self.offsets[k]: self.offsets[k + 1]].reshape(qr, r.nlevels, r.p)
                out_rest.append(np.einsum("kla,klb->lab", blk, blk))
        return self._lambda_blocks(f.theta, [V1] + out_rest)


class DenseProfiledDeviance(ProfiledDeviance):
    """The same deviance for small models, with one dense factor.

    When ``q + p + 1`` is small (sleepstudy: 39, Penicillin: 32) a single
    LAPACK call on the whole dense system is cheaper than the blocked
    algebra's two dozen small numpy calls, and evaluation time is what the
    optimizer pays for.  The numbers are the same (tests run both).
    """

    def __init__(self, design: Design, gram: Gram | None = None):  # no call to super: nothing blocked
        self.design = design
        g = gram_of(design, dense=True) if gram is None else gram.as_dense()
        self.n, self.p, self.ymax = g.n, g.p, g.ymax
        self.ldw = log_weights(design)
        self.slices = design.theta_slices()
        q = self.qr = g.q
        self.m = q + self.p + 1
        self.offsets = np.cumsum([0] + [r.q for r in design.remats])
        pos, tidx = [], []
        for k, r in enumerate(design.remats):
            # Lambda = I_l (x) T_k: position of every T entry for every level
            base = self.offsets[k] + np.arange(r.nlevels)[:, None] * r.p
            for t, (i, j) in enumerate(zip(r.tril_rows, r.tril_cols)):
                pos.append(((base + i) * self.m + base + j).ravel())
                tidx.append(np.full(r.nlevels, self.slices[k].start + t))
        self.A = g.dense
        self.lam_pos = np.concatenate(pos)
        self.lam_theta = np.concatenate(tidx)
        self._eye = np.eye(self.m)
        self._Iz = np.diag(np.r_[np.ones(q), np.zeros(self.p + 1)])

    def Lambda(self, theta: np.ndarray) -> np.ndarray:
        """Dense Lambda of the whole system (identity on the X and y columns)."""
        Lam = self._eye.copy()
        Lam.ravel()[self.lam_pos] = theta[self.lam_theta]
        return Lam

    def _cholesky(self, theta: np.ndarray) -> np.ndarray | None:
        Lam = self.Lambda(theta)
        S = Lam.T @ (self.A @ Lam)
        S += self._Iz
        _, info = lapack.dpotrf(S.T, lower=0, clean=0, overwrite_a=1)
        return None if info != 0 else S

    def objective(self, theta: np.ndarray, reml: bool) -> float:
        # the hot path of small fits: no Factorization object
        S = self._cholesky(theta)
        if S is None:
            return np.inf
        q, p = self.qr, self.p
        r = S[-1, -1]
        if not r > 0:
            return np.inf
        logd = np.log(np.diagonal(S)[: q + p if reml else q])
        nn = self.n - p if reml else self.n
        return 2.0 * logd.sum() + nn * (1.0 + _LOG2PI + np.log(r * r / nn)) - self.ldw

    def objective_many(self, thetas: np.ndarray, reml: bool) -> np.ndarray:
        """The objective at each row of ``thetas`` with batched LAPACK calls
        (for the finite-difference convergence check)."""
        k = thetas.shape[0]
        Lam = np.broadcast_to(self._eye, (k, self.m, self.m)).copy()
        Lam.reshape(k, -1)[:, self.lam_pos] = thetas[:, self.lam_theta]
        S = np.swapaxes(Lam, 1, 2) @ self.A @ Lam + self._Iz
        try:
            logd = np.log(np.diagonal(np.linalg.cholesky(S), axis1=1, axis2=2))
        except np.linalg.LinAlgError:
            return np.array([self.objective(t, reml) for t in thetas])
        q, p = self.qr, self.p
        nn = self.n - p if reml else self.n
        dev = 2.0 * logd[:, :q].sum(axis=1) + nn * (1.0 + _LOG2PI + 2.0 * logd[:, -1] - np.log(nn)) - self.ldw
        return dev + 2.0 * logd[:, q: q + p].sum(axis=1) if reml else dev

    def factor(self, theta: np.ndarray) -> Factorization | None:
        theta = np.asarray(theta, dtype=float)
        S = self._cholesky(theta)
        if S is None:
            return None
        d = np.diagonal(S)
        q, p = self.qr, self.p
        return Factorization(theta=theta, L=S, Minv=None, T1=None,
                             logdet_Z=2.0 * np.log(d[:q]).sum(),
                             logdet_X=2.0 * np.log(d[q: q + p]).sum(), pwrss=d[-1] ** 2)

    def solve(self, f: Factorization, beta: np.ndarray | None = None,
              noise: np.ndarray | None = None) -> tuple[np.ndarray, list[np.ndarray]]:
        q = self.qr
        x = _back_solve(f.L, q, self.p, beta, noise)  # as ProfiledDeviance.solve, every term in L_Z
        u, beta = x[:q], x[q:]
        b = self.Lambda(f.theta)[:q, :q] @ u
        parts = [b[self.offsets[k]: self.offsets[k + 1]].reshape(r.nlevels, r.p)
                 for k, r in enumerate(self.design.remats)]
        return beta, parts

    def condvar_unscaled(self, f: Factorization) -> list[np.ndarray]:
        q = self.qr
        Linv = solve_triangular(f.L[:q, :q], np.eye(q), lower=True, check_finite=False)
        LamZ = self.Lambda(f.theta)[:q, :q]
        V = LamZ @ (Linv.T @ Linv) @ LamZ.T
        out = []
        for k, r in enumerate(self.design.remats):
            blk = V[self.offsets[k]: self.offsets[k + 1], self.offsets[k]: self.offsets[k + 1]]
            idx = np.arange(r.nlevels)[:, None] * r.p + np.arange(r.p)
            out.append(blk[idx[:, :, None], idx[:, None, :]])
        return out


class LargeProfiledDeviance(ProfiledDeviance):
    """The blocked deviance for large designs: the same algebra, with memory
    linear in the nonzeros of Z'Z plus the dense Schur complement.

    :class:`ProfiledDeviance` stores every product ``A[(i,a),j] A[(i,b),k]``
    of the first term's elimination once, which costs ``sum_i n_i^2 / 2``
    numbers (``n_i``: columns of the rest that level ``i`` touches): 10^9 at
    ten million users x items ratings.  Here the update is recomputed at each
    evaluation by a compiled kernel (:func:`hierlm.lmm.kernels.schur_build`)
    straight into S, and the other terms' block of A is kept sparse; the
    only dense matrix is S itself (``m x m``, ``m`` = the other terms'
    random effects + p + 1), reused from one evaluation to the next.  S is
    factored by :func:`hierlm.lmm.dense.cholesky_lower` (a recursion that
    beats ``dpotrf`` for 512 to 4,096 random effects; ``dpotrf`` otherwise).
    """

    def __init__(self, design: Design, gram: Gram | None = None):  # the rest's block sparse, no stored products
        g = self._blocks(design, gram)
        m, p1 = self.m, self.re1.p
        # the lower triangle of A_rr as flat positions in S and values
        qr = self.qr
        ii, jj = np.tril_indices(self.p + 1)
        flat = [(qr + ii) * m + qr + jj]
        vals = [g.XY[ii, jj]]
        if qr:
            ZtZ = sp.tril(g.ZrZr).tocoo()
            flat.append(ZtZ.row.astype(np.int64) * m + ZtZ.col)
            vals.append(ZtZ.data)
            rows = qr + np.repeat(np.arange(self.p + 1), qr)
            cols = np.tile(np.arange(qr), self.p + 1)
            flat.append(rows.astype(np.int64) * m + cols)
            vals.append(g.ZrXY.T.ravel())
        from . import kernels

        self.arr = kernels.rows_of(np.concatenate(flat), np.concatenate(vals), m)
        # level-wise union of the first term's p1 rows: columns and a value per row
        self.lptr, self.lcols, self.lvals = level_columns(self.A1r, p1)
        self.A1r = None  # held as lptr/lcols/lvals: not twice (0.4 GB at 32 million rows)
        self._kernels = kernels
        self.plan = kernels.downdate_plan(self.lptr, self.lcols, m, _threads())
        self.products = pair_count(np.diff(self.lptr) * p1)  # as stored_products, from the level columns here
        # Below this many products the kernel runs in the calling thread: its
        # second thread would save a millisecond or two, but numba's threads and
        # OpenBLAS's (which the Cholesky factorization that follows uses) wait
        # for work by spinning for a while, and on two cores each pool's
        # spinning slows the other's work (InstEval, 2.1e6 products: 15.5 ms an
        # evaluation serial, 19-22 ms parallel).
        self.parallel = self.products >= PARALLEL_PRODUCTS
        self._buffer: np.ndarray | None = None
        self._work = dense_chol.workspace_for(qr)

    def _schur(self, B: np.ndarray, theta: np.ndarray) -> np.ndarray:
        """S of the module docstring (lower triangle), in the reused buffer."""
        m = self.m
        S = self._buffer
        if S is None:
            # zeros: the kernel writes the lower triangle only
            S = self._buffer = np.zeros((m, m))
        lam = np.ones(m)
        if self.rest_scalar:  # scaled and the identity added in the kernel's pass
            for k, r in enumerate(self.rest):
                lam[self.offsets[k]: self.offsets[k + 1]] = theta[self.slices[k + 1]][0]
        # not scalar: S is made symmetric below, so its upper triangle is zeroed too
        self._kernels.schur_build(S, self.arr, self.lptr, self.lcols, self.lvals, B, lam,
                                  self.qr if self.rest_scalar else 0, self.plan, self.parallel,
                                  clear_upper=not self.rest_scalar)
        if not self.rest_scalar:
            self._lambda_rest(S, theta)
            S.ravel()[self.diag_Z] += 1.0
        return S

    def _z1t(self, v: np.ndarray) -> np.ndarray:
        # A1r @ v from the level-wise columns: (levels x m) CSR, one per first-term column
        shape = (self.lptr.size - 1, self.m)
        w = np.column_stack([sp.csr_matrix((self.lvals[:, a], self.lcols, self.lptr), shape=shape) @ v
                             for a in range(self.re1.p)])
        return w.ravel()

    def factor(self, theta: np.ndarray, keep: bool = True) -> Factorization | None:
        """As :meth:`ProfiledDeviance.factor`; with ``keep`` the factor owns
        its matrix (the next evaluation allocates a new buffer)."""
        theta = np.asarray(theta, dtype=float)
        T1, Minv, B, logdet1 = self._first_block(theta)
        p1 = self.re1.p
        S = self._schur(np.reshape(B, (-1, p1, p1)), theta)
        if dense_chol.cholesky_lower(S, self.qr, self._work) != 0:
            return None
        if keep:
            self._buffer = None
        d = np.diagonal(S)
        qr, p = self.qr, self.p
        return Factorization(theta=theta, L=S, Minv=Minv, T1=T1, logdet_Z=logdet1 + 2.0 * np.log(d[:qr]).sum(),
                             logdet_X=2.0 * np.log(d[qr: qr + p]).sum(), pwrss=d[-1] ** 2)

    def objective(self, theta: np.ndarray, reml: bool) -> float:
        f = self.factor(theta, keep=False)
        if f is None or not f.pwrss > 0:
            return np.inf
        return self.from_factor(f, reml)

    def condvar_unscaled(self, f: Factorization) -> list[np.ndarray]:
        """As :meth:`ProfiledDeviance.condvar_unscaled`, without any dense
        (levels x levels) matrix: ``(L_Z L_Z')^{-1}`` once (LAPACK ``dpotri``,
        ``qr x qr``), then each first-term level's quadratic form over the
        columns it touches (a compiled loop)."""
        qr = self.qr
        V1 = f.Minv.copy()
        out_rest: list[np.ndarray] = []
        if qr:
            Sinv = np.array(f.L[:qr, :qr], order="C")  # lower triangle: L_Z
            _, info = lapack.dpotri(Sinv.T, lower=0, overwrite_c=1)
            if info != 0:  # pragma: no cover  (L_Z has a positive diagonal)
                raise np.linalg.LinAlgError("dpotri failed")
            for k, r in enumerate(self.rest):  # before Sinv is transformed below
                idx = self.offsets[k] + np.arange(r.nlevels)[:, None] * r.p + np.arange(r.p)
                V = Sinv[idx[:, :, None], idx[:, None, :]]  # lower triangles valid
                out_rest.append(np.tril(V) + np.swapaxes(np.tril(V, -1), 1, 2))
            # Q_i = T1' A_i,Zr Lambda_r: the level's columns of the other terms, scaled
            in_z = self.lcols < qr
            lptr, lcols = _level_ptr(self.lptr, in_z), self.lcols[in_z]
            if self.rest_scalar:
                lam = np.ones(qr)
                for k, r in enumerate(self.rest):
                    lam[self.offsets[k]: self.offsets[k + 1]] = f.theta[self.slices[k + 1]][0]
                lvals = (self.lvals[in_z] * lam[lcols, None]) @ f.T1
            else:
                # Lambda_r mixes a level's columns: transform Sinv instead
                # (Lambda_r Sinv Lambda_r', on the full symmetric matrix)
                Sinv = np.tril(Sinv)
                Sinv += np.tril(Sinv, -1).T
                for k, r in enumerate(self.rest):
                    blk = slice(self.offsets[k], self.offsets[k + 1])
                    T = r.T(f.theta[self.slices[k + 1]])
                    Sinv[:, blk] = (Sinv[:, blk].reshape(qr, r.nlevels, r.p) @ T.T).reshape(qr, r.q)
                    Sinv[blk, :] = np.einsum("ab,lbj->laj", T, Sinv[blk, :].reshape(r.nlevels, r.p, qr)
                                             ).reshape(r.q, qr)
                lvals = self.lvals[in_z] @ f.T1
            Y = self._kernels.level_quadforms(Sinv, lptr, lcols, np.ascontiguousarray(lvals))
            V1 += f.Minv @ Y @ f.Minv
        return self._lambda_blocks(f.theta, [V1] + out_rest)


def _level_ptr(lptr: np.ndarray, keep: np.ndarray) -> np.ndarray:
    """Level pointers after dropping the entries where ``keep`` is False."""
    return np.concatenate([[0], np.cumsum(keep, dtype=np.int64)])[lptr]


def level_columns(A1r: sp.csr_matrix, p1: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The columns each level of the first term touches: ``(lptr, lcols,
    lvals)``, level i's entries ``lptr[i]:lptr[i + 1]``, their columns and
    the ``(entries, p1)`` values of its p1 rows of ``A1r``."""
    m = A1r.shape[1]
    if p1 == 1:  # the CSR rows are the levels already (sorted, no duplicates)
        return A1r.indptr.astype(np.int64), A1r.indices.astype(np.int64), A1r.data[:, None].copy()
    l1 = A1r.shape[0] // p1
    coo = A1r.tocoo()
    key = (coo.row // p1).astype(np.int64) * m + coo.col
    order = np.argsort(key, kind="stable")
    first = np.r_[True, key[order][1:] != key[order][:-1]]
    ukey = key[order][first]
    inv = np.empty_like(order)
    inv[order] = np.cumsum(first) - 1
    lptr = np.concatenate([[0], np.cumsum(np.bincount(ukey // m, minlength=l1))]).astype(np.int64)
    lvals = np.zeros((ukey.size, p1))
    lvals[inv, coo.row % p1] = coo.data
    return lptr, (ukey % m).astype(np.int64), lvals


def log_weights(design: Design) -> float:
    """``sum(log w)`` of the prior weights (0 without): lme4's deviance of a
    weighted linear mixed model is the unweighted one of the scaled rows
    (:func:`hierlm.design.gram.whitened_rows`) minus it."""
    return 0.0 if design.weights is None else float(np.sum(np.log(design.weights)))


def gram_of(design: Design, dense: bool) -> Gram:
    """The design's Gram blocks in the form an engine needs: those it
    carries (a design whose rows are elsewhere) or made from its rows."""
    if design.gram is not None:
        return design.gram.as_dense() if dense else design.gram.as_blocked()
    return design_gram(design, dense)


def _threads() -> int:
    import numba

    return int(numba.get_num_threads())


# Largest q + p + 1 solved with one dense factor; above it, the blocked one.
DENSE_MAX = 120
# Most stored products A[(i,a),j] A[(i,b),k] the blocked engine precomputes
# (16 bytes each with their index); beyond, the kernel engine recomputes them.
# The kernel engine is faster from about here on (InstEval, 2.1e6 products:
# 0.75 s a fit instead of 0.93; 1e5 ratings, 2.9e6: 0.50 s instead of 0.67),
# but its first use in a process costs about a second (numba loads the
# compiled kernel), which smaller models need not pay.
STORED_PRODUCTS_MAX = 500_000
# Products from which the kernel engine's elimination runs on all of numba's
# threads (see LargeProfiledDeviance.__init__).
PARALLEL_PRODUCTS = 20_000_000


@dataclass
class Cost:
    """What a REML/ML fit of a design will cost, estimated before building it.

    Attributes
    ----------
    engine : str
        ``"dense"``, ``"blocked"`` (stored products) or ``"large"``
        (recomputed products).
    m : int
        Size of the dense block: the random effects of every term but the
        largest, plus the fixed effects and the response.
    products : int
        Multiply-adds of the first term's elimination per evaluation
        (``sum_i n_i^2 / 2``); -1 when not counted (the dense engine).
    bytes : float
        Peak memory of the engine's matrices (the data already held is not
        counted).
    seconds_per_eval : float
        A rough time per deviance evaluation on two cores (a dense Cholesky
        of m at 40 GFLOP/s, products at 2.5e8 a second); the optimizer needs
        15 to 60 evaluations.
    """

    engine: str
    m: int
    products: int
    bytes: float
    seconds_per_eval: float

    def __str__(self) -> str:
        prod = f", {self.products:,} products an evaluation" if self.products >= 0 else ""
        return (f"{self.engine} engine: a dense {self.m:,} x {self.m:,} block{prod}; about "
                f"{_human_bytes(self.bytes)} of memory and {self.seconds_per_eval:.2g} s an evaluation")


# measured on 2 cores (x86-64, AVX2): dpotrf ~5e10 flop/s, the kernel ~2.8e8
_FLOP_RATE = 4e10
_PRODUCT_RATE = 2.5e8


def estimate_cost(design: Design, products: bool = True, gram: Gram | None = None) -> Cost:
    """The engine :func:`make_deviance` picks for ``design`` and its cost.

    Parameters
    ----------
    design : Design
    products : bool
        Count the first term's products, from the design's Gram blocks
        (made from its rows unless given: about a second at ten million
        rows); without, the estimate is the dense block's.
    gram : Gram, optional
        The design's blocked Gram blocks, when already made.
    """
    remats = design.remats
    m = sum(r.q for r in remats[1:]) + design.p + 1
    size = m + remats[0].q
    if size <= DENSE_MAX:
        return Cost("dense", size, -1, 3.0 * 8.0 * size * size, size**3 / 3.0 / _FLOP_RATE)
    dense = 8.0 * m * m
    chol = m**3 / 3.0 / _FLOP_RATE
    if not products:
        return Cost("large", m, -1, 2.0 * dense, chol)
    g = gram_of(design, dense=False) if gram is None else gram
    n_prod = stored_products(g)
    if n_prod > STORED_PRODUCTS_MAX:
        nnz = g.A1r.nnz
        # S, a kept factor, and the Cholesky recursion's workspace where it is used
        work = dense if dense_chol.recursion_applies(m - design.p - 1) else 0.0
        return Cost("large", m, n_prod, 2.0 * dense + work + 24.0 * nnz, chol + n_prod / _PRODUCT_RATE)
    return Cost("blocked", m, n_prod, 3.0 * dense + 16.0 * n_prod, chol + n_prod / (10 * _PRODUCT_RATE))


def stored_products(gram: Gram) -> int:
    """How many products :class:`ProfiledDeviance` would store: for each level
    of the first term, (p1 x the columns of the rest it touches)^2 / 2."""
    A1r, p1 = gram.A1r, gram.dims[0][1]
    if p1 == 1:
        touched = np.diff(A1r.indptr).astype(np.int64)
    else:
        touched = np.diff(level_columns(A1r, p1)[0]) * p1
    return pair_count(touched)


def pair_count(touched: np.ndarray) -> int:
    """``sum_i t_i (t_i + 1) / 2``: the first term's products when level ``i``
    touches ``t_i`` columns (its rows times the other terms' columns)."""
    touched = np.asarray(touched, dtype=np.int64)
    return int((touched * (touched + 1) // 2).sum())


def available_memory() -> float | None:
    """Bytes of memory available to a new allocation (Linux ``MemAvailable``,
    or psutil where installed); None when unknown."""
    try:
        import psutil

        return float(psutil.virtual_memory().available)
    except ImportError:
        pass
    try:
        with open("/proc/meminfo") as fh:
            for line in fh:
                if line.startswith("MemAvailable:"):
                    return float(line.split()[1]) * 1024.0
    except OSError:
        pass
    return None


def _human_bytes(b: float) -> str:
    for unit, size in (("TB", 1e12), ("GB", 1e9), ("MB", 1e6)):
        if b >= size:
            return f"{b / size:.3g} {unit}"
    return f"{b / 1e3:.3g} kB"


def check_memory(design: Design, cost: Cost, available: float | None = None) -> None:
    """Raise :class:`~hierlm.errors.TooLargeError` when ``cost`` exceeds the
    memory available, naming the terms that make the dense block big."""
    available = available_memory() if available is None else available
    if available is None or cost.bytes <= 0.9 * available:
        return
    remats = design.remats
    terms = ", ".join(f"{r.term} with {r.nlevels:,} levels x {r.p}" for r in remats[1:]) or "none"
    raise TooLargeError(
        f"this model needs about {_human_bytes(cost.bytes)} of memory, and {_human_bytes(available)} are "
        f"available: the random effects of every term but the largest ({remats[0].term}, "
        f"{remats[0].nlevels:,} levels) form a dense {cost.m:,} x {cost.m:,} block, from {terms}. "
        "To make it smaller: drop a term or a random slope, use || for uncorrelated slopes, merge or "
        "filter the rare levels of the other terms (e.g. keep levels with at least 50 rows), or fit on a "
        "machine with more memory")


def make_deviance(design: Design) -> ProfiledDeviance:
    """The profiled deviance with the factorization that suits the model's size.

    Raises :class:`~hierlm.errors.TooLargeError` before building anything
    when the dense block alone would not fit in memory.
    """
    quick = estimate_cost(design, products=False)
    if quick.engine == "dense":
        return DenseProfiledDeviance(design)
    check_memory(design, quick)
    g = gram_of(design, dense=False)
    cost = estimate_cost(design, gram=g)
    check_memory(design, cost)
    dev = LargeProfiledDeviance(design, g) if cost.engine == "large" else ProfiledDeviance(design, g)
    dev.cost = cost
    return dev


def conditional_modes(design: Design, theta: np.ndarray, beta: np.ndarray) -> tuple[list, list]:
    """E[b | y, theta, beta] for a given beta, and the unscaled conditional
    covariances (multiply by sigma^2): the engine on ``y - X beta`` with no X."""
    d0 = replace(design, y=design.y - design.X @ beta, X=np.empty((design.n, 0)), xnames=[])
    dev = make_deviance(d0)
    f = dev.factor(theta)
    _, b = dev.solve(f)
    return b, dev.condvar_unscaled(f)
