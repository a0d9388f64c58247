"""Compiled parts of the engine's marginal posterior (:mod:`hierlm.bayes.marginal`).

A leaf module: numba and the compiled callbacks load (from numba's cache)
when the first engine posterior is built, not at ``import hierlm``.
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
    """(log density, derivative) of a prior packed by :class:`Density`."""
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
def marginal_logp(phi, A, q, terms, priors, eta, P0, mu0, n, const, grad):  # pragma: no cover  (compiled)
    """Log marginal posterior and its gradient at phi (module docstring).

    ``terms[k] = (p_k, levels_k, Z offset, phi offset of the SDs)``;
    ``priors`` one row per prior (sigma first, then each term's SDs), as
    :func:`pack_prior` makes them.  Compiled once
    (numba's cache) for every model: at sleepstudy size a gradient costs tens
    of microseconds here against ~400 as numpy calls, and NUTS takes tens of
    thousands of them.  Returns ``(logp, gradient, ok)``.
    """
    m = A.shape[0]
    p = m - q - 1
    K = terms.shape[0]
    size = phi.size
    g = np.zeros(size)
    sigma = np.exp(phi[0])
    s2 = sigma * sigma
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
        Lcs[k, :pk, :pk] = Lc
        dLcs[k, :pk, :pk, :dLc.shape[2]] = dLc
    if not np.isfinite(lp):
        return -np.inf, g, False
    # S = Lambda' A Lambda + diag(I_q, 0): Lambda is block diagonal (T_k per
    # level); row by row, so that the inner loops run along rows of A
    AL = A.copy()
    for r in range(m):
        for k in range(K):
            pk, nlev, off = terms[k, 0], terms[k, 1], terms[k, 2]
            for lv in range(nlev):
                base = off + lv * pk
                for j in range(pk):
                    acc = 0.0
                    for i in range(j, pk):
                        acc += A[r, base + i] * Ts[k, i, j]
                    AL[r, base + j] = acc
    S = AL.copy()
    for k in range(K):
        pk, nlev, off = terms[k, 0], terms[k, 1], terms[k, 2]
        for lv in range(nlev):
            base = off + lv * pk
            for j in range(pk):
                for c in range(m):
                    S[base + j, c] = 0.0
                for i in range(j, pk):
                    t = Ts[k, i, j]
                    for c in range(m):
                        S[base + j, c] += t * AL[base + i, c]
    for i in range(q):
        S[i, i] += 1.0
    try:
        L = np.linalg.cholesky(S)
    except Exception:  # noqa: BLE001  (numba raises a plain Exception) not positive definite
        return -np.inf, g, False
    logdet_z = 0.0
    for i in range(q):
        logdet_z += 2.0 * np.log(L[i, i])
    Lb = np.ascontiguousarray(L[q:, q:])
    Sc = Lb @ np.ascontiguousarray(Lb.T)  # [X y]' V^-1 [X y]
    H = Sc[:p, :p] / s2
    h = np.empty(p)
    for j in range(p):
        H[j, j] += P0[j]
        h[j] = P0[j] * mu0[j] + Sc[j, p] / s2
    try:
        Hc = np.linalg.cholesky(H)
    except Exception:  # noqa: BLE001
        return -np.inf, g, False
    Hinv = np.linalg.inv(H)
    bh = Hinv @ h
    D = n * np.log(s2) + logdet_z + Sc[p, p] / s2 + const
    for j in range(p):
        D += 2.0 * np.log(Hc[j, j]) + mu0[j] * P0[j] * mu0[j] - h[j] * bh[j]
    val = lp - 0.5 * D
    if not grad:
        return val, g, True
    # G = dD / d([X y]' V^-1 [X y]);  W = dD/dS = blockdiag(S_ZZ^-1, 0) + K G K'.
    # Loops rather than BLAS calls: at these sizes a call's overhead is the cost.
    G = np.zeros((p + 1, p + 1))
    for a in range(p + 1):
        va = bh[a] if a < p else -1.0
        for b in range(p + 1):
            vb = bh[b] if b < p else -1.0
            G[a, b] = (va * vb + (Hinv[a, b] if a < p and b < p else 0.0)) / s2
    U = np.zeros((q, q))  # U = L_Z^-T (upper), by forward substitution: U[j, i] = (L_Z^-1)[i, j]
    for i in range(q):
        U[i, i] = 1.0 / L[i, i]
        for j in range(i):
            acc = 0.0
            for k in range(j, i):
                acc += L[i, k] * U[j, k]
            U[j, i] = -acc / L[i, i]
    Ktop = np.zeros((q, p + 1))  # -S_ZZ^-1 S_Z,xy = -L_Z^-T L_xy,Z'
    for c in range(q):
        for e in range(p + 1):
            acc = 0.0
            for k in range(c, q):
                acc += U[c, k] * L[q + e, k]
            Ktop[c, e] = -acc
    KG = Ktop @ G
    W = np.empty((m, q))  # the Z columns of dD/dS: all the gradient needs
    for c in range(q):
        for b in range(c + 1):
            acc = 0.0
            for k in range(c, q):
                acc += U[c, k] * U[b, k]
            for f in range(p + 1):
                acc += KG[c, f] * Ktop[b, f]
            W[c, b] = acc
            W[b, c] = acc
    for e in range(p + 1):
        for b in range(q):
            W[q + e, b] = KG[b, e]
    # dD/dT_k[i, j] = 2 sum over levels of (A Lambda W)[base + i, base + j]
    rss = Sc[p, p]
    tr = 0.0
    for i in range(p):
        rss -= 2.0 * bh[i] * Sc[i, p]
        for j in range(p):
            rss += bh[i] * Sc[i, j] * bh[j]
            tr += Hinv[i, j] * Sc[j, i]
    dsig = 2.0 * sigma * (n / s2 - tr / s2**2 - rss / s2**2)  # dD/dsigma, T held fixed
    for k in range(K):
        pk, nlev, off, o_sd = terms[k, 0], terms[k, 1], terms[k, 2], terms[k, 3]
        nc = pk * (pk - 1) // 2
        GT = np.zeros((pk, pk))
        for lv in range(nlev):
            base = off + lv * pk
            for i in range(pk):
                for j in range(i + 1):
                    acc = 0.0
                    for c in range(m):  # W is symmetric on its Z block: read its rows
                        acc += AL[base + i, c] * (W[base + j, c] if c < q else W[c, base + j])
                    GT[i, j] += 2.0 * acc
        # T = diag(sd) Lc / sigma
        for i in range(pk):
            sd = np.exp(phi[o_sd + i])
            acc = 0.0
            for j in range(i + 1):
                acc += GT[i, j] * Lcs[k, i, j]
                dsig -= GT[i, j] * Ts[k, i, j] / sigma
            g[o_sd + i] += -0.5 * acc * sd / sigma
            if pk > 1:
                for j in range(i + 1):
                    for e in range(nc):
                        g[o_sd + pk + e] += -0.5 * sd * GT[i, j] / sigma * dLcs[k, i, j, e]
    g[0] += -0.5 * sigma * dsig
    return val, g, True


# ---- the density as a C callback for nutpie -------------------------------------
# nutpie's sampler (Rust) calls a C function pointer for each gradient; these
# two callbacks are compiled once (numba's cache) for every model, and read
# the model from one float64 buffer (hierlm.bayes.marginal.pack_model), so sampling runs without
# Python or the GIL in the loop and the chains run in parallel.
_HEADER = 8  # total length, m, q, K, n, const, eta, size
_LOGP_SIG = numba.types.int64(numba.types.uint64, numba.types.CPointer(numba.types.double),
                              numba.types.CPointer(numba.types.double), numba.types.CPointer(numba.types.double),
                              numba.types.CPointer(numba.types.double))
_EXPAND_SIG = numba.types.int64(numba.types.uint64, numba.types.uint64, numba.types.CPointer(numba.types.double),
                                numba.types.CPointer(numba.types.double), numba.types.CPointer(numba.types.double))


@numba.cfunc(_LOGP_SIG, cache=True, error_model="numpy")
def logp_callback(dim, x_, out_, logp_, data_):  # pragma: no cover  (compiled; called by the sampler)
    total = int(numba.carray(data_, (1,))[0])
    buf = numba.carray(data_, (total,))
    m, q, K = int(buf[1]), int(buf[2]), int(buf[3])
    if dim != int(buf[7]):
        return -1
    p = m - q - 1
    o = _HEADER
    A = buf[o: o + m * m].reshape((m, m))
    o += m * m
    terms = np.empty((K, 4), dtype=np.int64)
    for k in range(K):
        for c in range(4):
            terms[k, c] = int(buf[o + 4 * k + c])
    o += 4 * K
    priors = buf[o: o + 6 * (K + 1)].reshape((K + 1, 6))
    o += 6 * (K + 1)
    x = numba.carray(x_, (dim,)).copy()
    val, g, ok = marginal_logp(x, A, q, terms, priors, buf[6], buf[o: o + p], buf[o + p: o + 2 * p], buf[4],
                               buf[5], True)
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


@numba.cfunc(_EXPAND_SIG, cache=True)
def expand_callback(dim, n_expanded, x_, out_, data_):  # pragma: no cover  (compiled; called by the sampler)
    if dim != n_expanded:
        return -1
    x = numba.carray(x_, (dim,))
    out = numba.carray(out_, (dim,))
    for i in range(dim):
        out[i] = x[i]
    return 0
