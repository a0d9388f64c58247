r"""Every conversion between the parameterizations of the random-effect covariances.

lme4's relative covariance factor: term k has a lower-triangular ``T_k``
whose lower triangle, column-major, is ``theta_k`` (the ReMat owns the
layout: :meth:`hierlm.design.remat.ReMat.T`), and

    Sigma_k = sigma^2 T_k T_k'           (sigma = 1 for binomial and Poisson)

reported as SDs and correlations (lme4's ``VarCorr``, ``Cv_to_Sv``).  The
Bayesian fits put the correlations on the scale of Stan's canonical partial
correlations (CPCs): ``L`` the Cholesky factor of a correlation matrix is
built row by row from CPCs in (-1, 1), which are ``tanh`` of free reals on
the unconstrained scale (``cholesky_corr_constrain``).

Everything here is a pure function of arrays and the design's ReMats; every
other module converts through these.
"""

from __future__ import annotations

import numpy as np


# ---------------------------------------------------------------------------
# theta <-> Sigma
# ---------------------------------------------------------------------------
def covariances(design, theta: np.ndarray, sigma: float = 1.0) -> list[np.ndarray]:
    """Sigma_k = sigma^2 T_k T_k' for every term of ``design``."""
    out = []
    for r, sl in zip(design.remats, design.theta_slices()):
        T = r.T(np.asarray(theta, dtype=float)[sl])
        out.append(sigma**2 * T @ T.T)
    return out


def theta_of_covariances(design, covs: list[np.ndarray], sigma: float = 1.0) -> np.ndarray:
    """theta from Sigma_k and sigma (the Cholesky factor of Sigma_k / sigma^2).

    A covariance that is not positive definite (an SD at 0) keeps its SDs
    on the diagonal and drops its correlations.
    """
    out = []
    for r, S in zip(design.remats, covs):
        try:
            T = np.linalg.cholesky(S) / sigma
        except np.linalg.LinAlgError:
            T = np.diag(np.sqrt(np.maximum(np.diag(S), 0))) / sigma
        out.append(T[r.tril_rows, r.tril_cols])
    return np.concatenate(out) if out else np.zeros(0)


def theta_of_sd_chol(design, sds: list[np.ndarray], Ls: list[np.ndarray], sigma: float = 1.0) -> np.ndarray:
    """theta from each term's SDs and the Cholesky factor of its correlation matrix."""
    out = []
    for r, sd, L in zip(design.remats, sds, Ls):
        T = (np.asarray(sd)[:, None] * L) / sigma
        out.append(T[r.tril_rows, r.tril_cols])
    return np.concatenate(out) if out else np.zeros(0)


# ---------------------------------------------------------------------------
# Sigma <-> (sd, cor)
# ---------------------------------------------------------------------------
def sd_cor(S: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """SDs and correlation matrix of a covariance (lme4's ``cov2sdcor``):
    a correlation with a zero SD is 0."""
    sd = np.sqrt(np.maximum(np.diag(S), 0.0))
    den = np.outer(sd, sd)
    with np.errstate(invalid="ignore", divide="ignore"):
        C = np.where(den > 0, S / np.where(den > 0, den, 1.0), 0.0)
    np.fill_diagonal(C, 1.0)
    return sd, C


def theta_to_sdcor(design, theta: np.ndarray, sigma: float) -> np.ndarray:
    """lme4's ``Cv_to_Sv(theta, s = sigma)``: per term its SDs and correlations
    in theta's order (diagonal positions SDs, the others correlations), then sigma."""
    out = []
    for r, S in zip(design.remats, covariances(design, theta, sigma)):
        sd, C = sd_cor(S)
        for i, j in zip(r.tril_rows, r.tril_cols):
            out.append(sd[i] if i == j else C[i, j])
    out.append(sigma)
    return np.asarray(out, dtype=float)


# ---------------------------------------------------------------------------
# CPC <-> Cholesky factor of a correlation matrix
# ---------------------------------------------------------------------------
def cpc_to_cholesky(z: np.ndarray, p: int) -> np.ndarray:
    """Cholesky factor (unit rows) of the correlation matrix with canonical
    partial correlations ``z`` in (-1, 1), row by row: (1,0), (2,0), (2,1), ...
    (the LKJ construction)."""
    L = np.zeros((p, p))
    L[0, 0] = 1.0
    k = 0
    for i in range(1, p):
        rem = 1.0
        for j in range(i):
            L[i, j] = z[k] * np.sqrt(max(rem, 0.0))
            rem -= L[i, j] ** 2
            k += 1
        L[i, i] = np.sqrt(max(rem, 0.0))
    return L


def cholesky_to_cpc(L: np.ndarray) -> np.ndarray:
    """Inverse of :func:`cpc_to_cholesky`."""
    p = L.shape[0]
    z = []
    for i in range(1, p):
        rem = 1.0
        for j in range(i):
            z.append(L[i, j] / np.sqrt(rem) if rem > 1e-15 else 0.0)
            rem -= L[i, j] ** 2
    return np.clip(np.asarray(z, dtype=float), -1.0, 1.0)


def corr_cholesky(free: np.ndarray, p: int) -> tuple[np.ndarray, float]:
    """Stan's ``cholesky_corr_constrain``: free reals -> Cholesky factor of a
    correlation matrix (CPCs ``tanh(free)``), and the log-Jacobian of the map."""
    cpc = np.tanh(np.asarray(free, dtype=float))
    L = cpc_to_cholesky(cpc, p)
    with np.errstate(divide="ignore"):  # a correlation at +-1: the Jacobian is 0 (log -inf)
        logj = float(np.sum(np.log1p(-cpc**2)))
    k = 0
    for i in range(1, p):
        ssq = 0.0
        for j in range(i):
            logj += 0.5 * np.log1p(-ssq)
            ssq += L[i, j] ** 2
            k += 1
    return L, logj


def corr_cholesky_free(L: np.ndarray) -> np.ndarray:
    """Inverse of :func:`corr_cholesky` (CPCs kept inside (-1, 1))."""
    return np.arctanh(np.clip(cholesky_to_cpc(L), -0.999999, 0.999999))
