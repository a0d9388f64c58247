"""Compiled parts of the engine's marginal posterior (:mod:`hierlm.bayes.marginal`).

A leaf module, imported when the first engine posterior is built (not at
``import hierlm``); each kernel compiles at its first call, or loads from
numba's cache (:func:`compiled_before` says which), the sampler's C
callbacks at the first sampling (:func:`callbacks`).
"""

from __future__ import annotations

from math import lgamma

import numba
import numpy as np

_LOG2PI = np.log(2.0 * np.pi)
# prior kinds of the compiled density (pack_prior)
_FLAT, _NORMAL, _STUDENT, _HALFNORMAL, _HALFCAUCHY, _EXPONENTIAL = range(6)


def pack_prior(prior) -> np.ndarray:
    """A prior as a row for the compiled density: kind code, then
    (loc, scale, nu, log normalizing constant, rate).  The same numbers as
    :meth:`hierlm.priors.Prior.logpdf` (by closed forms: scipy.stats' checks
    cost ~0.2 ms a call, and the sampler evaluates the density at every
    gradient)."""
    par, fam = prior.params, prior.family
    loc, scale, nu, c, lam = 0.0, 1.0, 1.0, 0.0, 0.0
    if fam == "Flat":
        code = _FLAT
    elif fam == "Normal":
        code, loc, scale = _NORMAL, par["mu"], par["sigma"]
        c = -0.5 * _LOG2PI - np.log(scale)
    elif fam in ("StudentT", "HalfStudentT"):
        code, loc, scale, nu = _STUDENT, par.get("mu", 0.0), par["sigma"], par["nu"]
        c = (lgamma((nu + 1) / 2) - lgamma(nu / 2) - 0.5 * np.log(nu * np.pi) - np.log(scale)
             + (np.log(2.0) if fam == "HalfStudentT" else 0.0))
    elif fam == "HalfNormal":
        code, scale = _HALFNORMAL, par["sigma"]
        c = np.log(2.0) - 0.5 * _LOG2PI - np.log(scale)
    elif fam == "HalfCauchy":
        code, scale = _HALFCAUCHY, par["beta"]
        c = np.log(2.0) - np.log(np.pi) - np.log(scale)
    elif fam == "Exponential":
        code, lam = _EXPONENTIAL, par["lam"]
        c = np.log(lam)
    else:  # pragma: no cover  (Prior validates families)
        raise ValueError(f"no density for {fam}")
    return np.array([code, loc, scale, nu, c, lam], dtype=float)


@numba.njit(cache=True, nogil=True, error_model="numpy")
def _prior(code, par, x):  # pragma: no cover  (compiled)
    """(log density, derivative) of a prior packed by :func:`pack_prior`."""
    if code == _FLAT:
        return 0.0, 0.0
    loc, scale, nu, c, lam = par[0], par[1], par[2], par[3], par[4]
    if code == _EXPONENTIAL:
        return c - lam * x, -lam
    z = (x - loc) / scale
    if code == _STUDENT:
        return c - 0.5 * (nu + 1.0) * np.log1p(z * z / nu), -(nu + 1.0) * z / (scale * (nu + z * z))
    if code == _HALFCAUCHY:
        return c - np.log1p(z * z), -2.0 * z / (scale * (1.0 + z * z))
    return c - 0.5 * z * z, -z / scale  # Normal, HalfNormal


@numba.njit(cache=True, nogil=True, error_model="numpy")
def _corr_cholesky(w, p, Lc, dLc):  # pragma: no cover  (compiled)
    """Stan's ``cholesky_corr_constrain`` (:func:`hierlm.params.corr_cholesky`) with
    forward derivatives, into ``Lc`` (p, p) and ``dLc`` (p, p, nc);
    returns ``(logj, dlogj)``."""
    nc = p * (p - 1) // 2
    Lc[:, :] = 0.0
    dLc[:, :, :] = 0.0
    Lc[0, 0] = 1.0
    dlogj = np.empty(nc)
    logj = 0.0
    for k in range(nc):
        z = np.tanh(w[k])
        logj += np.log1p(-z * z)
        dlogj[k] = -2.0 * z
    k = 0
    drem = np.empty(nc)
    for i in range(1, p):
        rem = 1.0
        drem[:] = 0.0
        for j in range(i):
            z = np.tanh(w[k])
            sq = np.sqrt(rem)
            logj += 0.5 * np.log(rem)
            for e in range(nc):
                dlogj[e] += 0.5 * drem[e] / rem
                dLc[i, j, e] = z * drem[e] / (2.0 * sq)
            dLc[i, j, k] += (1.0 - z * z) * sq
            Lc[i, j] = z * sq
            rem -= Lc[i, j] ** 2
            for e in range(nc):
                drem[e] -= 2.0 * Lc[i, j] * dLc[i, j, e]
            k += 1
        Lc[i, i] = np.sqrt(rem)
        for e in range(nc):
            dLc[i, i, e] = drem[e] / (2.0 * Lc[i, i])
    return logj, dlogj


@numba.njit(cache=True, nogil=True, error_model="numpy")
def corr_cholesky_many(W, p):  # pragma: no cover  (compiled)
    """Cholesky factors of the correlation matrices of many free vectors (rows of W)."""
    S = W.shape[0]
    out = np.empty((S, p, p))
    dL = np.empty((p, p, max(1, p * (p - 1) // 2)))
    for s in range(S):
        _corr_cholesky(W[s], p, out[s], dL)
    return out


@numba.njit(cache=True, nogil=True, error_model="numpy")
def _parameters(phi, terms, priors, eta):  # pragma: no cover  (compiled)
    """phi -> (log prior + log Jacobian, its gradient, T_k, correlation
    factors and their derivatives).  ``T_k = diag(sd_k) Lc_k / sigma``, each
    term's relative covariance factor (lme4's theta)."""
    K = terms.shape[0]
    g = np.zeros(phi.size)
    sigma = np.exp(phi[0])
    lp_s, dlp_s = _prior(int(priors[0, 0]), priors[0, 1:], sigma)
    lp = phi[0] + lp_s
    g[0] = 1.0 + sigma * dlp_s
    pmax = 1
    for k in range(K):
        pmax = max(pmax, terms[k, 0])
    Ts = np.zeros((K, pmax, pmax))
    Lcs = np.zeros((K, pmax, pmax))
    dLcs = np.zeros((K, pmax, pmax, max(1, pmax * (pmax - 1) // 2)))
    for k in range(K):
        pk, o_sd = terms[k, 0], terms[k, 3]
        nc = pk * (pk - 1) // 2
        Lc = np.zeros((pk, pk))
        dLc = np.zeros((pk, pk, max(nc, 1)))
        if pk > 1:
            logj, dlogj = _corr_cholesky(phi[o_sd + pk: o_sd + pk + nc], pk, Lc, dLc)
            lp += logj
            for i in range(1, pk):  # LKJ(eta) on the Cholesky factor
                coef = pk - i - 1 + 2.0 * eta - 2.0
                lp += coef * np.log(Lc[i, i])
                for e in range(nc):
                    dlogj[e] += coef / Lc[i, i] * dLc[i, i, e]
            for e in range(nc):
                g[o_sd + pk + e] = dlogj[e]
        else:
            Lc[0, 0] = 1.0
        for i in range(pk):
            sd = np.exp(phi[o_sd + i])
            lpi, dlpi = _prior(int(priors[1 + k, 0]), priors[1 + k, 1:], sd)
            lp += phi[o_sd + i] + lpi
            g[o_sd + i] = 1.0 + sd * dlpi
            for j in range(i + 1):
                Ts[k, i, j] = sd * Lc[i, j] / sigma
        for i in range(pk):  # loops: a slice assignment compiles numba's shape-error formatting (seconds)
            for j in range(pk):
                Lcs[k, i, j] = Lc[i, j]
                for e in range(dLc.shape[2]):
                    dLcs[k, i, j, e] = dLc[i, j, e]
    return lp, g, Ts, Lcs, dLcs


@numba.njit(cache=True, nogil=True, error_model="numpy")
def _small_cholesky(M, C):  # pragma: no cover  (compiled)
    """C <- the lower Cholesky factor of the small SPD matrix M; False if not SPD."""
    n = M.shape[0]
    for j in range(n):
        d = M[j, j]
        for k in range(j):
            d -= C[j, k] * C[j, k]
        if not d > 0.0:
            return False
        C[j, j] = np.sqrt(d)
        for i in range(j + 1, n):
            acc = M[i, j]
            for k in range(j):
                acc -= C[i, k] * C[j, k]
            C[i, j] = acc / C[j, j]
        for i in range(j):
            C[i, j] = 0.0
    return True


@numba.njit(cache=True, nogil=True, error_model="numpy", inline="always")
def _cho_solve(C, b, x):  # pragma: no cover  (compiled)
    """x <- the solution of ``C C' x = b`` (C lower triangular); returns x."""
    n = C.shape[0]
    for a in range(n):
        acc = b[a]
        for c in range(a):
            acc -= C[a, c] * x[c]
        x[a] = acc / C[a, a]
    for a in range(n - 1, -1, -1):
        acc = x[a]
        for c in range(a + 1, n):
            acc -= C[c, a] * x[c]
        x[a] = acc / C[a, a]
    return x


@numba.njit(cache=True, nogil=True, error_model="numpy", inline="always")
def _cho_inverse(C, out, e, x):  # pragma: no cover  (compiled)
    """out <- ``(C C')^-1`` (C lower triangular), column by column; ``e`` (zeros) and ``x``
    are work vectors of C's size, so that a loop over many blocks allocates nothing."""
    n = C.shape[0]
    for b in range(n):
        e[b] = 1.0
        _cho_solve(C, e, x)
        e[b] = 0.0
        for a in range(n):
            out[a, b] = x[a]
    return out


@numba.njit(cache=True, nogil=True, error_model="numpy")
def _leading(Ts, p1):  # pragma: no cover  (compiled)
    """A contiguous copy of ``Ts[0, :p1, :p1]`` (the first term's T)."""
    T1 = np.empty((p1, p1))
    for a in range(p1):
        for b in range(p1):
            T1[a, b] = Ts[0, a, b]
    return T1


@numba.njit(cache=True, nogil=True, error_model="numpy")
def _first_term(T1, A11, Minv):  # pragma: no cover  (compiled)
    """Per level i of the first term: ``M_i = T1' A11_i T1 + I`` into Minv as
    its inverse; returns (sum log|M_i|, ok)."""
    l1, p1 = A11.shape[0], A11.shape[1]
    M = np.empty((p1, p1))
    C = np.zeros((p1, p1))
    AT = np.empty((p1, p1))
    e, y = np.zeros(p1), np.empty(p1)
    logdet = 0.0
    for lv in range(l1):
        for a in range(p1):
            for b in range(p1):
                acc = 0.0
                for c in range(b, p1):
                    acc += A11[lv, a, c] * T1[c, b]
                AT[a, b] = acc
        for a in range(p1):
            for b in range(p1):
                acc = 1.0 if a == b else 0.0
                for c in range(a, p1):
                    acc += T1[c, a] * AT[c, b]
                M[a, b] = acc
        if not _small_cholesky(M, C):
            return 0.0, False
        for a in range(p1):
            logdet += 2.0 * np.log(C[a, a])
        _cho_inverse(C, Minv[lv], e, y)
    return logdet, True


@numba.njit(cache=True, nogil=True, error_model="numpy")
def _row_lambda(row, out, terms, Ts):  # pragma: no cover  (compiled)
    """out <- row Lambda_r for one row of the rest's columns (out holds row's
    values already; the other terms' blocks are overwritten)."""
    for k in range(1, terms.shape[0]):
        pk, nlev, off = terms[k, 0], terms[k, 1], terms[k, 2]
        for lv in range(nlev):
            base = off + lv * pk
            for j in range(pk):
                acc = 0.0
                for i in range(j, pk):
                    acc += row[base + i] * Ts[k, i, j]
                out[base + j] = acc


@numba.njit(cache=True, nogil=True, error_model="numpy")
def _lambda_rest(Ar, terms, Ts, qr):  # pragma: no cover  (compiled)
    """(Ar Lambda_r, Lambda_r' Ar Lambda_r + diag(I_qr, 0)) for the rest's
    block Ar (R x R): Lambda_r is block diagonal (T_k per level of each
    term after the first), the identity on X and y.  Row by row, so that the
    inner loops run along rows."""
    R = Ar.shape[0]
    K = terms.shape[0]
    AL = Ar.copy()
    for r in range(R):
        _row_lambda(Ar[r], AL[r], terms, Ts)
    S = AL.copy()
    for k in range(1, K):
        pk, nlev, off = terms[k, 0], terms[k, 1], terms[k, 2]
        for lv in range(nlev):
            base = off + lv * pk
            for j in range(pk):
                for c in range(R):
                    S[base + j, c] = 0.0
                for i in range(j, pk):
                    t = Ts[k, i, j]
                    for c in range(R):
                        S[base + j, c] += t * AL[base + i, c]
    for i in range(qr):
        S[i, i] += 1.0
    return AL, S


@numba.njit(cache=True, nogil=True, error_model="numpy")
def _schur_rest(A1r, Arr, T1, Minv):  # pragma: no cover  (compiled)
    """``A_rr - sum_i A1r_i' B_i A1r_i`` with ``B_i = T1 M_i^-1 T1'``: the rest's
    block once the first term is eliminated level by level (unscaled by
    Lambda_r)."""
    l1, p1, R = A1r.shape[0], A1r.shape[1], A1r.shape[2]
    At = Arr.copy()
    B = np.empty((p1, p1))
    TM = np.empty((p1, p1))
    BA = np.empty((p1, R))
    for lv in range(l1):
        for a in range(p1):  # T1 M^-1
            for b in range(p1):
                acc = 0.0
                for c in range(a + 1):
                    acc += T1[a, c] * Minv[lv, c, b]
                TM[a, b] = acc
        for a in range(p1):  # (T1 M^-1) T1'
            for b in range(p1):
                acc = 0.0
                for c in range(b + 1):
                    acc += TM[a, c] * T1[b, c]
                B[a, b] = acc
        for a in range(p1):
            for c in range(R):
                acc = 0.0
                for b in range(p1):
                    acc += B[a, b] * A1r[lv, b, c]
                BA[a, c] = acc
        for r in range(R):
            for a in range(p1):
                v = A1r[lv, a, r]
                if v != 0.0:
                    for c in range(R):
                        At[r, c] -= v * BA[a, c]
    return At


@numba.njit(cache=True, nogil=True, error_model="numpy")
def _factor(A11, A1r, Arr, qr, terms, Ts, s2, P0, mu0, Minv):  # pragma: no cover  (compiled)
    """The blocked factor at (T_k, sigma^2): the first term level by level
    (``M_i^-1`` into Minv), the rest's Schur complement factored densely
    (``L``), and the fixed effects' posterior precision ``H`` (with ``h``,
    ``Hc`` its Cholesky factor) from ``Sc = [X y]' V^-1 [X y]``.  Returns
    ``(sum log|M_i|, A~ Lambda_r, L, Sc, H, h, Hc, ok)``."""
    R = Arr.shape[0]
    p = R - qr - 1
    p1 = A11.shape[1]
    none = np.zeros((0, 0))
    T1 = _leading(Ts, p1)
    logdet_1, ok = _first_term(T1, A11, Minv)
    if not ok:
        return 0.0, none, none, none, none, np.zeros(0), none, False
    At = _schur_rest(A1r, Arr, T1, Minv)
    AL, S = _lambda_rest(At, terms, Ts, qr)
    L = np.zeros((R, R))
    if not _small_cholesky(S, L):
        return 0.0, none, none, none, none, np.zeros(0), none, False
    Sc = np.empty((p + 1, p + 1))  # [X y]' V^-1 [X y] = Lb Lb', Lb = L[qr:, qr:]
    for a in range(p + 1):
        for b in range(a + 1):
            acc = 0.0
            for c in range(b + 1):
                acc += L[qr + a, qr + c] * L[qr + b, qr + c]
            Sc[a, b] = acc
            Sc[b, a] = acc
    H = np.empty((p, p))
    h = np.empty(p)
    for j in range(p):
        for i in range(p):
            H[i, j] = Sc[i, j] / s2
        H[j, j] += P0[j]
        h[j] = P0[j] * mu0[j] + Sc[j, p] / s2
    Hc = np.zeros((p, p))
    ok = _small_cholesky(H, Hc)
    return logdet_1, AL, L, Sc, H, h, Hc, ok


@numba.njit(cache=True, nogil=True, error_model="numpy")
def marginal_logp(phi, A11, A1r, Arr, qr, terms, priors, eta, P0, mu0, n, const, grad):  # pragma: no cover
    """Log marginal posterior and its gradient at phi (compiled once, numba's
    cache, for every model).

    The first term is eliminated level by level (``A11`` its per-level
    blocks (levels, p1, p1), ``A1r`` its rows of the rest (levels, p1, R));
    what remains (the other terms' ``qr`` random effects, X and y: R
    columns) is factored densely.  ``terms[k] = (p_k, levels_k, offset in
    the rest (k >= 1), phi offset of the SDs)``; ``priors`` one row per prior
    (sigma first, then each term's SDs) as :func:`pack_prior` makes them.
    Returns ``(logp, gradient, ok)``.

    With ``D = sum_i log|M_i| + D_r(S^)`` (``S^`` the rest's Schur
    complement, scaled by Lambda_r) the rest's terms take the dense
    gradient on ``S^`` (``W_r = dD_r/dS^``), and the first term's T1 takes
    ``2 sum_i [A11_i T1 M_i^-1 + (A11_i T1 F_i - E_i) W_r F_i']`` with
    ``E_i = A1r_i Lambda_r``, ``F_i = M_i^-1 T1' E_i`` (the blocks of
    ``dD/dS`` of the whole system, written by the blocked inverse).
    """
    l1, p1, R = A1r.shape[0], A1r.shape[1], A1r.shape[2]
    p = R - qr - 1
    K = terms.shape[0]
    lp, g, Ts, Lcs, dLcs = _parameters(phi, terms, priors, eta)
    sigma = np.exp(phi[0])
    s2 = sigma * sigma
    if not np.isfinite(lp):
        return -np.inf, g, False
    T1 = _leading(Ts, p1)
    Minv = np.empty((l1, p1, p1))
    logdet_1, AL, L, Sc, H, h, Hc, ok = _factor(A11, A1r, Arr, qr, terms, Ts, s2, P0, mu0, Minv)
    if not ok:
        return -np.inf, g, False
    logdet_z = logdet_1
    for i in range(qr):
        logdet_z += 2.0 * np.log(L[i, i])
    Hinv = _cho_inverse(Hc, np.empty((p, p)), np.zeros(p), np.empty(p))
    bh = _cho_solve(Hc, h, np.empty(p))
    D = n * np.log(s2) + logdet_z + Sc[p, p] / s2 + const
    for j in range(p):
        D += 2.0 * np.log(Hc[j, j]) + mu0[j] * P0[j] * mu0[j] - h[j] * bh[j]
    val = lp - 0.5 * D
    if not grad:
        return val, g, True
    # G = dD / d([X y]' V^-1 [X y]);  W_r = dD_r/dS^ = blockdiag(S^_ZZ^-1, 0) + K G K'.
    # Loops rather than BLAS calls: at these sizes a call's overhead is the cost.
    G = np.zeros((p + 1, p + 1))
    for a in range(p + 1):
        va = bh[a] if a < p else -1.0
        for b in range(p + 1):
            vb = bh[b] if b < p else -1.0
            G[a, b] = (va * vb + (Hinv[a, b] if a < p and b < p else 0.0)) / s2
    U = np.zeros((qr, qr))  # U = L_Z^-T (upper), by forward substitution: U[j, i] = (L_Z^-1)[i, j]
    for i in range(qr):
        U[i, i] = 1.0 / L[i, i]
        for j in range(i):
            acc = 0.0
            for k in range(j, i):
                acc += L[i, k] * U[j, k]
            U[j, i] = -acc / L[i, i]
    Ktop = np.zeros((qr, p + 1))  # -S^_ZZ^-1 S^_Z,xy = -L_Z^-T L_xy,Z'
    for c in range(qr):
        for e in range(p + 1):
            acc = 0.0
            for k in range(c, qr):
                acc += U[c, k] * L[qr + e, k]
            Ktop[c, e] = -acc
    KG = np.zeros((qr, p + 1))
    for c in range(qr):
        for e in range(p + 1):
            acc = 0.0
            for f in range(p + 1):
                acc += Ktop[c, f] * G[f, e]
            KG[c, e] = acc
    W = np.empty((R, R))
    for c in range(qr):
        for b in range(c + 1):
            acc = 0.0
            for k in range(c, qr):
                acc += U[c, k] * U[b, k]
            for f in range(p + 1):
                acc += KG[c, f] * Ktop[b, f]
            W[c, b] = acc
            W[b, c] = acc
    for e in range(p + 1):
        for b in range(qr):
            W[qr + e, b] = KG[b, e]
            W[b, qr + e] = KG[b, e]
        for f in range(p + 1):
            W[qr + e, qr + f] = G[e, f]
    rss = Sc[p, p]
    tr = 0.0
    for i in range(p):
        rss -= 2.0 * bh[i] * Sc[i, p]
        for j in range(p):
            rss += bh[i] * Sc[i, j] * bh[j]
            tr += Hinv[i, j] * Sc[j, i]
    dsig = 2.0 * sigma * (n / s2 - tr / s2**2 - rss / s2**2)  # dD/dsigma, T held fixed
    GTs = np.zeros(Ts.shape)
    # the rest's terms: dD/dT_k[i, j] = 2 sum over levels of (A~ Lambda_r W_r)[base + i, base + j]
    for k in range(1, K):
        pk, nlev, off = terms[k, 0], terms[k, 1], terms[k, 2]
        for lv in range(nlev):
            base = off + lv * pk
            for i in range(pk):
                for j in range(i + 1):
                    acc = 0.0
                    for c in range(R):
                        acc += AL[base + i, c] * W[c, base + j]
                    GTs[k, i, j] += 2.0 * acc
    # the first term, level by level
    E = np.empty((p1, R))
    F = np.empty((p1, R))
    AT = np.empty((p1, p1))
    EW = np.empty((p1, R))
    row = np.empty(R)
    for lv in range(l1):
        for a in range(p1):  # E = A1r_i Lambda_r
            for c in range(R):
                E[a, c] = A1r[lv, a, c]
            _row_lambda(A1r[lv, a], E[a], terms, Ts)
        for a in range(p1):  # AT = A11_i T1
            for b in range(p1):
                acc = 0.0
                for c in range(b, p1):
                    acc += A11[lv, a, c] * T1[c, b]
                AT[a, b] = acc
        for a in range(p1):  # F = M_i^-1 T1' E
            for c in range(R):
                acc = 0.0
                for b in range(p1):
                    tb = 0.0
                    for d in range(b, p1):
                        tb += T1[d, b] * E[d, c]
                    acc += Minv[lv, a, b] * tb
                F[a, c] = acc
        for a in range(p1):  # EW = (A11_i T1 F - E) W_r
            for c in range(R):
                acc = -E[a, c]
                for b in range(p1):
                    acc += AT[a, b] * F[b, c]
                row[c] = acc
            for c in range(R):
                acc = 0.0
                for d in range(R):
                    acc += row[d] * W[d, c]
                EW[a, c] = acc
        for a in range(p1):
            for b in range(a + 1):
                acc = 0.0
                for c in range(p1):
                    acc += AT[a, c] * Minv[lv, c, b]
                for c in range(R):
                    acc += EW[a, c] * F[b, c]
                GTs[0, a, b] += 2.0 * acc
    # chain rule: T_k = diag(sd) Lc / sigma
    for k in range(K):
        pk, o_sd = terms[k, 0], terms[k, 3]
        nc = pk * (pk - 1) // 2
        for i in range(pk):
            sd = np.exp(phi[o_sd + i])
            acc = 0.0
            for j in range(i + 1):
                acc += GTs[k, i, j] * Lcs[k, i, j]
                dsig -= GTs[k, i, j] * Ts[k, i, j] / sigma
            g[o_sd + i] += -0.5 * acc * sd / sigma
            if pk > 1:
                for j in range(i + 1):
                    for e in range(nc):
                        g[o_sd + pk + e] += -0.5 * sd * GTs[k, i, j] / sigma * dLcs[k, i, j, e]
    g[0] += -0.5 * sigma * dsig
    return val, g, True


@numba.njit(cache=True, nogil=True, error_model="numpy")
def draw_effects(phis, A11, A1r, Arr, qr, terms, priors, eta, P0, mu0, Zb, Zr, Z1):  # pragma: no cover
    """Exact draws of beta and b for each row of ``phis``, from standard
    normals ``Zb`` (S, p), ``Zr`` (S, q_rest), ``Z1`` (S, levels, p1):
    ``beta ~ N(beta^, H^-1)``, then the rest's ``u_r | beta`` (the first
    term integrated out: the reduced factor), then level by level
    ``u_1i | u_r, beta ~ N(M_i^-1 T1' A1r_i [-Lambda_r u_r; -beta; 1], sigma^2 M_i^-1)``.
    Returns (beta (S, p), b of the rest (S, q_rest), b of the first term
    (S, levels, p1), ok per draw)."""
    S_all = phis.shape[0]
    l1, p1, R = A1r.shape[0], A1r.shape[1], A1r.shape[2]
    p = R - qr - 1
    K = terms.shape[0]
    beta = np.zeros((S_all, p))
    b_rest = np.zeros((S_all, qr))
    b_first = np.zeros((S_all, l1, p1))
    good = np.zeros(S_all, dtype=np.bool_)
    Minv = np.empty((l1, p1, p1))
    P = np.zeros((p1, p1))
    w, tw, u1 = np.empty(p1), np.empty(p1), np.empty(p1)
    for s in range(S_all):
        _, _, Ts, _, _ = _parameters(phis[s], terms, priors, eta)
        sigma = np.exp(phis[s, 0])
        s2 = sigma * sigma
        T1 = _leading(Ts, p1)
        _, _, L, _, H, h, Hc, ok = _factor(A11, A1r, Arr, qr, terms, Ts, s2, P0, mu0, Minv)
        if not ok:
            continue  # the draw stays marked bad
        bh = _cho_solve(Hc, h, np.empty(p))
        for a in range(p - 1, -1, -1):  # beta = beta^ + Hc^-T z
            acc = Zb[s, a]
            for c in range(a + 1, p):
                acc -= Hc[c, a] * beta[s, c]
            beta[s, a] = acc / Hc[a, a]
        for a in range(p):
            beta[s, a] += bh[a]
        # u_r = L_Z^-T (l_y - L_xZ' beta + sigma z)
        u = np.empty(qr)
        for c in range(qr - 1, -1, -1):
            acc = L[R - 1, c] + sigma * Zr[s, c]
            for j in range(p):
                acc -= beta[s, j] * L[qr + j, c]
            for k in range(c + 1, qr):
                acc -= L[k, c] * u[k]
            u[c] = acc / L[c, c]
        # b_r = Lambda_r u_r, and the combination [-b_r; -beta; 1] of the rest's columns
        v = np.empty(R)
        for k in range(1, K):
            pk, nlev, off = terms[k, 0], terms[k, 1], terms[k, 2]
            for lv in range(nlev):
                base = off + lv * pk
                for i in range(pk):
                    acc = 0.0
                    for j in range(i + 1):
                        acc += Ts[k, i, j] * u[base + j]
                    b_rest[s, base + i] = acc
        for c in range(qr):
            v[c] = -b_rest[s, c]
        for j in range(p):
            v[qr + j] = -beta[s, j]
        v[R - 1] = 1.0
        fine = True
        for lv in range(l1):
            for a in range(p1):
                acc = 0.0
                for c in range(R):
                    acc += A1r[lv, a, c] * v[c]
                w[a] = acc
            for a in range(p1):  # T1' w
                acc = 0.0
                for c in range(a, p1):
                    acc += T1[c, a] * w[c]
                tw[a] = acc
            if not _small_cholesky(Minv[lv], P):
                fine = False
                break
            for a in range(p1):
                acc = 0.0
                for c in range(p1):
                    acc += Minv[lv, a, c] * tw[c]
                for c in range(a + 1):
                    acc += sigma * P[a, c] * Z1[s, lv, c]
                u1[a] = acc
            for a in range(p1):
                acc = 0.0
                for c in range(a + 1):
                    acc += T1[a, c] * u1[c]
                b_first[s, lv, a] = acc
        good[s] = fine
    return beta, b_rest, b_first, good


# ---- the density as a C callback for nutpie -------------------------------------
# nutpie's sampler (Rust) calls a C function pointer for each gradient; these
# two callbacks are compiled once (numba's cache) for every model, and read
# the model from one float64 buffer (hierlm.bayes.marginal.pack_model), so sampling runs without
# Python or the GIL in the loop and the chains run in parallel.
_HEADER = 10  # total length, levels, p1, R, q_rest, K, n, const, eta, size
_LOGP_SIG = numba.types.int64(numba.types.uint64, numba.types.CPointer(numba.types.double),
                              numba.types.CPointer(numba.types.double), numba.types.CPointer(numba.types.double),
                              numba.types.CPointer(numba.types.double))
_EXPAND_SIG = numba.types.int64(numba.types.uint64, numba.types.uint64, numba.types.CPointer(numba.types.double),
                                numba.types.CPointer(numba.types.double), numba.types.CPointer(numba.types.double))


def _logp_callback(dim, x_, out_, logp_, data_):  # pragma: no cover  (compiled; called by the sampler)
    total = int(numba.carray(data_, (1,))[0])
    buf = numba.carray(data_, (total,))
    l1, p1, R, qr, K = int(buf[1]), int(buf[2]), int(buf[3]), int(buf[4]), int(buf[5])
    if dim != int(buf[9]):
        return -1
    p = R - qr - 1
    o = _HEADER
    A11 = buf[o: o + l1 * p1 * p1].reshape((l1, p1, p1))
    o += l1 * p1 * p1
    A1r = buf[o: o + l1 * p1 * R].reshape((l1, p1, R))
    o += l1 * p1 * R
    Arr = buf[o: o + R * R].reshape((R, R))
    o += R * R
    terms = np.empty((K, 4), dtype=np.int64)
    for k in range(K):
        for c in range(4):
            terms[k, c] = int(buf[o + 4 * k + c])
    o += 4 * K
    priors = buf[o: o + 6 * (K + 1)].reshape((K + 1, 6))
    o += 6 * (K + 1)
    x = numba.carray(x_, (dim,)).copy()
    # grad as a value, not the literal True: numba would compile marginal_logp (and all it
    # calls) a second time for a literal argument
    want_grad = dim > 0
    val, g, ok = marginal_logp(x, A11, A1r, Arr, qr, terms, priors, buf[8], buf[o: o + p], buf[o + p: o + 2 * p],
                               buf[6], buf[7], want_grad)
    out = numba.carray(out_, (dim,))
    lp = numba.carray(logp_, (1,))
    if not ok or not np.isfinite(val):
        return 4  # nutpie: a non-finite density, a divergence rather than an error
    for i in range(dim):
        if not np.isfinite(g[i]):
            return 3
        out[i] = g[i]
    lp[0] = val
    return 0


def _expand_callback(dim, n_expanded, x_, out_, data_):  # pragma: no cover  (compiled; called by the sampler)
    if dim != n_expanded:
        return -1
    x = numba.carray(x_, (dim,))
    out = numba.carray(out_, (dim,))
    for i in range(dim):
        out[i] = x[i]
    return 0


_CALLBACKS = None


def callbacks():
    """``(logp, expand)``: the density's C callbacks for nutpie, compiled at the first call
    (or loaded from numba's cache), so that importing this module compiles nothing."""
    global _CALLBACKS
    if _CALLBACKS is None:
        _CALLBACKS = (numba.cfunc(_LOGP_SIG, cache=True, error_model="numpy")(_logp_callback),
                      numba.cfunc(_EXPAND_SIG, cache=True)(_expand_callback))
    return _CALLBACKS


def compiled_before() -> bool:
    """Whether numba's on-disk cache holds the compiled density, so that the first engine
    posterior of this process loads it in a second rather than compiling it (about 25 s).
    Reads numba's cache index (an internal of numba: if that fails, True, and nothing is said)."""
    try:
        from numba.core.caching import FunctionCache

        return bool(FunctionCache(marginal_logp.py_func)._cache_file._load_index())
    except Exception:  # noqa: BLE001  (numba's internals moved: assume compiled, say nothing)
        return True
