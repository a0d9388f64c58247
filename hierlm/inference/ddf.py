r"""Denominator degrees of freedom for t-tests of fixed effects: lmerTest's and pbkrtest's.

Satterthwaite (lmerTest 3.1's ``as_lmerModLmerTest`` and ``contest1D``)
-----------------------------------------------------------------------
The variance parameters are ``varpar = (theta, sigma)``.  The deviance as a
function of them (REML or ML, as the fit; lmerTest's ``devfun_vp``) is, with
``L_Z``, ``R_X`` and the penalized RSS ``r^2`` of the factor at theta,

    d(varpar) = log|L_Z|^2 + r^2 / sigma^2 + n log(2 pi sigma^2)
                [ + log|R_X|^2 - p log(2 pi sigma^2) ]   (REML)

Its Hessian H at the estimates gives the asymptotic covariance of varpar,
``A = 2 H^{-1}`` (a pseudo-inverse over the eigenvalues above 1e-8, as
lmerTest).  With ``C(varpar) = sigma^2 (R_X' R_X)^{-1}`` (lmerTest's
``get_covbeta``) and a contrast L,

    df = 2 (L' C L)^2 / (g' A g),   g_k = L' (dC / d varpar_k) L.

Both derivatives are taken as lmerTest takes them, by numDeriv's Richardson
extrapolation (``hessian``: relative step 0.1, ``jacobian``: 1e-4; four
halvings), so the numbers agree with lmerTest's to many digits.  Every
evaluation uses the engine's blocked factorization (never an n x n matrix),
and each theta is factored once: the steps in sigma reuse it.

Kenward-Roger (pbkrtest 0.5's ``vcovAdj`` and ``Lb_ddf``)
---------------------------------------------------------
Built on the marginal covariance ``Sigma = sum_r gamma_r G_r + sigma^2 I``
with ``gamma`` the elements of the lower triangles of the random-effects
covariance matrices, as pbkrtest builds it.  Sigma, its inverse and the
products ``G_r Sigma^{-1}`` are dense n x n matrices (the G_r themselves are
kept as sparse indicator blocks), so the method is offered for n <=
:data:`KR_MAX_N` and, as in pbkrtest and lmerTest, for REML fits only.
"""

from __future__ import annotations

import warnings
import weakref
from dataclasses import dataclass

import numpy as np
import pandas as pd
import scipy.sparse as sp
from scipy import stats
from scipy.linalg import solve_triangular

from ..errors import ConvergenceWarning, HierlmError
from ..lmm import LMMFit

#: Valid values of ``ddf``.
DDF_METHODS = ("satterthwaite", "kenward-roger", "none")

#: Largest number of observations for Kenward-Roger (dense n x n matrices).
KR_MAX_N = 3000

# lmerTest's tolerance for zero eigenvalues of the deviance's Hessian
_EIGEN_TOL = 1e-8

# per-fit results of the expensive steps (a fit's estimates never change)
_SATT_CACHE: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()
_KR_CACHE: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def check_ddf(ddf) -> str:
    """The canonical name of a ``ddf`` method (case-insensitive; ``"lme4"`` means ``"none"``)."""
    key = str(ddf).strip().lower().replace("_", "-").replace(" ", "-") if isinstance(ddf, str) else None
    key = {"lme4": "none", "kr": "kenward-roger", "kenwardroger": "kenward-roger"}.get(key, key)
    if key not in DDF_METHODS:
        raise HierlmError(f"ddf must be one of {', '.join(repr(m) for m in DDF_METHODS)}, not {ddf!r}")
    return key


def _check_fit(fit) -> None:
    if not isinstance(fit, LMMFit):
        raise HierlmError(
            f"denominator degrees of freedom need a REML or ML fit (LMMFit), not {type(fit).__name__}"
        )


# ---------------------------------------------------------------------------
# numDeriv's Richardson extrapolation (hessian via genD, and jacobian)
# ---------------------------------------------------------------------------
_ZERO_TOL = np.sqrt(np.finfo(float).eps / 7e-7)


def _steps(x: np.ndarray, d: float, eps: float) -> np.ndarray:
    return np.abs(d * x) + eps * (np.abs(x) < _ZERO_TOL)


def _richardson(a: np.ndarray) -> np.ndarray:
    """Combine r approximations with steps h, h/2, ... (first axis) as numDeriv does."""
    r = a.shape[0]
    for m in range(1, r):
        a = (a[1: r + 1 - m] * 4.0**m - a[: r - m]) / (4.0**m - 1.0)
    return a[0]


def richardson_hessian(func, x: np.ndarray, d: float = 0.1, eps: float = 1e-4, r: int = 4) -> np.ndarray:
    """Hessian of a scalar function as ``numDeriv::hessian`` (``genD``, Richardson, v = 2).

    Parameters
    ----------
    func : callable
        Scalar function of a vector.
    x : numpy.ndarray
        Point.
    d, eps, r : float, float, int
        numDeriv's ``method.args``: relative step, absolute step for
        components near zero, number of halvings.

    Returns
    -------
    numpy.ndarray
        k x k Hessian.
    """
    x = np.asarray(x, dtype=float)
    n = x.size
    f0 = func(x)
    h0 = _steps(x, d, eps)
    hdiag = np.empty(n)
    for i in range(n):
        h = h0.copy()
        approx = np.empty(r)
        for k in range(r):
            e = np.zeros(n)
            e[i] = h[i]
            approx[k] = (func(x + e) - 2.0 * f0 + func(x - e)) / h[i] ** 2
            h = h / 2.0
        hdiag[i] = _richardson(approx)
    H = np.diag(hdiag)
    for i in range(n):
        for j in range(i):
            h = h0.copy()
            approx = np.empty(r)
            for k in range(r):
                e = np.zeros(n)
                e[i], e[j] = h[i], h[j]
                approx[k] = (func(x + e) - 2.0 * f0 + func(x - e)
                             - hdiag[i] * h[i] ** 2 - hdiag[j] * h[j] ** 2) / (2.0 * h[i] * h[j])
                h = h / 2.0
            H[i, j] = H[j, i] = _richardson(approx)
    return H


def richardson_jacobian(func, x: np.ndarray, d: float = 1e-4, eps: float = 1e-4, r: int = 4) -> np.ndarray:
    """Jacobian of an array-valued function as ``numDeriv::jacobian`` (Richardson, v = 2).

    Returns
    -------
    numpy.ndarray
        Shape ``func(x).shape + (k,)``: the derivative w.r.t. x[k] in the last axis.
    """
    x = np.asarray(x, dtype=float)
    n = x.size
    h0 = _steps(x, d, eps)
    cols = []
    for i in range(n):
        h = h0.copy()
        approx = []
        for _ in range(r):
            e = np.zeros(n)
            e[i] = h[i]
            approx.append((np.asarray(func(x + e)) - np.asarray(func(x - e))) / (2.0 * h[i]))
            h = h / 2.0
        cols.append(_richardson(np.array(approx)))
    return np.stack(cols, axis=-1)


# ---------------------------------------------------------------------------
# Satterthwaite
# ---------------------------------------------------------------------------
class _VarparFunctions:
    """lmerTest's ``devfun_vp`` and ``get_covbeta`` on the engine's factorization.

    The factor depends on theta only; steps in sigma reuse it, so the
    Hessian and Jacobian need one factorization per distinct theta.  Only
    what the two functions need is kept of each factor (not the m x m L:
    InstEval's is 10 MB, and the derivatives visit ~70 thetas).
    """

    def __init__(self, fit):
        self.dev = fit.devfun
        self.reml = fit.reml
        self.n, self.p = fit.design.n, fit.design.p
        self._cache: dict[bytes, tuple] = {}

    def factor(self, theta: np.ndarray) -> tuple[float, float, float, np.ndarray]:
        """(log|L_Z|^2, log|R_X|^2, penalized RSS, (R_X' R_X)^{-1}) at theta."""
        key = np.asarray(theta, dtype=float).tobytes()
        out = self._cache.get(key)
        if out is None:
            f = self.dev.factor(theta)
            if f is None:
                raise HierlmError("the covariance of the random effects is not positive definite at a "
                                  "finite-difference step of theta; Satterthwaite's df cannot be computed")
            out = self._cache[key] = (f.logdet_Z, f.logdet_X, f.pwrss, self.dev.vcov_unscaled(f))
        return out

    def deviance(self, varpar: np.ndarray) -> float:
        theta, sigma2 = varpar[:-1], varpar[-1] ** 2
        logdet_Z, logdet_X, pwrss, _ = self.factor(theta)
        dev = logdet_Z + pwrss / sigma2 + self.n * np.log(2.0 * np.pi * sigma2)
        if self.reml:
            dev += logdet_X - self.p * np.log(2.0 * np.pi * sigma2)
        return dev

    def covbeta(self, varpar: np.ndarray) -> np.ndarray:
        return varpar[-1] ** 2 * self.factor(varpar[:-1])[3]


@dataclass
class SatterthwaiteState:
    """What lmerTest stores on an ``lmerModLmerTest``.

    Attributes
    ----------
    varpar : numpy.ndarray
        ``(theta, sigma)`` at the estimates.
    vcov_beta : numpy.ndarray
        Covariance of the fixed effects.
    hessian : numpy.ndarray
        Hessian of the deviance w.r.t. varpar.
    vcov_varpar : numpy.ndarray
        Asymptotic covariance of varpar, ``2 H^{-1}``.
    jac : numpy.ndarray
        ``(nvarpar, p, p)``: derivative of vcov(beta) w.r.t. each element of varpar.
    """

    varpar: np.ndarray
    vcov_beta: np.ndarray
    hessian: np.ndarray
    vcov_varpar: np.ndarray
    jac: np.ndarray


def satterthwaite_state(fit) -> SatterthwaiteState:
    """The covariance of the variance parameters and the Jacobian of vcov(beta) (lmerTest's
    ``as_lmerModLmerTest``), computed once per fit.

    Warns (:class:`hierlm.ConvergenceWarning`) as lmerTest does when the
    deviance's Hessian has negative or near-zero eigenvalues.
    """
    _check_fit(fit)
    state = _SATT_CACHE.get(fit)
    if state is not None:
        return state
    fns = _VarparFunctions(fit)
    varpar = np.append(fit.theta, fit.sigma)
    H = richardson_hessian(fns.deviance, varpar)
    H = (H + H.T) / 2.0
    evals, evecs = np.linalg.eigh(H)
    neg, pos = evals < -_EIGEN_TOL, evals > _EIGEN_TOL
    zero = ~neg & ~pos
    for mask, what in ((neg, "Model failed to converge with {k} negative {e}: {v}"),
                       (zero, "Model may not have converged with {k} {e} close to zero: {v}")):
        if mask.any():
            k = int(mask.sum())
            warnings.warn(what.format(k=k, e="eigenvalues" if k > 1 else "eigenvalue",
                                      v=" ".join(f"{v:.1e}" for v in evals[mask])),
                          ConvergenceWarning, stacklevel=3)
    V = evecs[:, pos]
    vcov_varpar = 2.0 * (V / evals[pos]) @ V.T
    jac = np.moveaxis(richardson_jacobian(fns.covbeta, varpar), -1, 0)
    state = SatterthwaiteState(varpar=varpar, vcov_beta=fit.vcov.to_numpy(), hessian=H,
                               vcov_varpar=vcov_varpar, jac=jac)
    _SATT_CACHE[fit] = state
    return state


def vcov_varpar(fit) -> pd.DataFrame:
    """Asymptotic covariance of ``(theta, sigma)`` from the deviance's Hessian (lmerTest's
    ``vcov_varpar``: twice the inverse Hessian of the REML or ML deviance).

    Returns
    -------
    pandas.DataFrame
        Indexed ``theta1 ... thetak, sigma``.
    """
    s = satterthwaite_state(fit)
    names = [f"theta{i + 1}" for i in range(fit.theta.size)] + ["sigma"]
    return pd.DataFrame(s.vcov_varpar, index=names, columns=names)


def satterthwaite_df(fit, L) -> np.ndarray:
    """Satterthwaite's df for each contrast (row of ``L``), as lmerTest's ``contest1D``.

    Parameters
    ----------
    fit : LMMFit
    L : array-like
        A contrast vector of length p (number of fixed effects) or an
        m x p matrix of contrasts.

    Returns
    -------
    numpy.ndarray
        m degrees of freedom.
    """
    Lm = _contrast_matrix(fit, L)
    s = satterthwaite_state(fit)
    var_con = np.einsum("ij,jk,ik->i", Lm, s.vcov_beta, Lm)
    grad = np.einsum("ij,vjk,ik->iv", Lm, s.jac, Lm)
    denom = np.einsum("iv,vw,iw->i", grad, s.vcov_varpar, grad)
    return 2.0 * var_con**2 / denom


# ---------------------------------------------------------------------------
# Kenward-Roger
# ---------------------------------------------------------------------------
@dataclass
class KRState:
    """pbkrtest's ``vcovAdj`` with its attributes ``P`` and ``W``."""

    vcov_adj: np.ndarray
    P: list
    W: np.ndarray
    vcov_beta: np.ndarray


def _sigma_g(fit) -> tuple[list, np.ndarray, np.ndarray]:
    """pbkrtest's ``get_SigmaG``: Sigma and the derivative matrices G_r = dSigma / dgamma_r.

    Each G_r of a random-effects term is ``Z_a Z_b' + Z_b Z_a'`` (``Z_a Z_a'`` on the
    diagonal), with Z_a the sparse n x levels indicator block of column a of the term; it is
    kept as the pair (Z_a, Z_b) so that ``G_r Sigma^{-1}`` costs O(n^2), not O(n^3).  The
    last G is the identity (the residual variance).
    """
    d = fit.design
    n = d.n
    pairs, gamma = [], []
    rows = np.arange(n)
    for r, sl in zip(d.remats, d.theta_slices()):
        T = r.T(fit.theta[sl])
        S = fit.sigma**2 * T @ T.T
        Z = [sp.csr_matrix((r.Xt[:, a], (rows, r.codes)), shape=(n, r.nlevels)) for a in range(r.p)]
        # lower triangle, column by column (R's lower.tri order, as pbkrtest's gamma)
        for b in range(r.p):
            for a in range(b, r.p):
                pairs.append((Z[a], Z[b]))
                gamma.append(S[a, b])
    Sigma = sp.identity(n, format="csr") * fit.sigma**2
    for (Za, Zb), g in zip(pairs, gamma):
        ZZ = Za @ Zb.T
        Sigma = Sigma + g * (ZZ if Za is Zb else ZZ + ZZ.T)
    return pairs + [None], np.append(gamma, fit.sigma**2), Sigma.toarray()


def kenward_roger_state(fit) -> KRState:
    """The Kenward-Roger adjusted covariance of the fixed effects (pbkrtest's ``vcovAdj``),
    computed once per fit.

    Raises
    ------
    HierlmError
        For ML fits (pbkrtest and lmerTest define Kenward-Roger for REML
        fits only) and for more than :data:`KR_MAX_N` observations.
    """
    _check_fit(fit)
    state = _KR_CACHE.get(fit)
    if state is not None:
        return state
    if not fit.reml:
        raise HierlmError("Kenward-Roger's method is only available for REML fits (as in lmerTest and "
                          "pbkrtest): refit with reml=True, or use ddf='satterthwaite'")
    fit.require_rows("Kenward-Roger's method (its matrices are n x n)")
    if fit.design.weights is not None:
        # pbkrtest builds Sigma with sigma^2 I whatever the weights: its numbers would not be the model's
        raise HierlmError("Kenward-Roger's method is not available for a fit with prior weights (pbkrtest "
                          "takes the residual covariance as sigma^2 I, which a weighted model's is not): use "
                          "ddf='satterthwaite'")
    n = fit.design.n
    if n > KR_MAX_N:
        raise HierlmError(f"Kenward-Roger's method needs dense {n} x {n} matrices; it is available for "
                          f"n <= {KR_MAX_N} observations only: use ddf='satterthwaite' for this model")
    X = fit.design.X
    Phi = fit.vcov.to_numpy()
    G, _, Sigma = _sigma_g(fit)
    c = np.linalg.cholesky(Sigma)
    cinv = solve_triangular(c, np.eye(n), lower=True, check_finite=False)
    SigmaInv = cinv.T @ cinv
    ng = len(G)
    TT = SigmaInv @ X
    HH = []
    for pair in G:  # H_r = G_r Sigma^{-1}
        if pair is None:
            HH.append(SigmaInv)
            continue
        Za, Zb = pair
        H = Za @ np.asarray(Zb.T @ SigmaInv)
        if Za is not Zb:
            H += Zb @ np.asarray(Za.T @ SigmaInv)
        HH.append(H)
    OO = [H @ X for H in HH]
    PP = [-(O.T @ TT) for O in OO]
    PP = [(P + P.T) / 2.0 for P in PP]
    QQ = {(r, s): OO[r].T @ SigmaInv @ OO[s] for r in range(ng) for s in range(r, ng)}
    # tr(H_r H_s) = sum(H_r' * H_s)
    K = np.empty((ng, ng))
    for r in range(ng):
        for s in range(r, ng):
            K[r, s] = K[s, r] = np.einsum("ij,ji->", HH[r], HH[s])
    del HH
    IE2 = np.empty((ng, ng))
    for i in range(ng):
        PhiP = Phi @ PP[i]
        for j in range(i, ng):
            IE2[i, j] = IE2[j, i] = K[i, j] - 2.0 * np.sum(Phi * QQ[i, j]) + np.sum(PhiP * (PP[j] @ Phi))
    # pbkrtest: the inverse, or a generalized inverse when IE2 is (nearly) singular
    condi = np.min(np.abs(np.linalg.eigvals(IE2)))
    W = 2.0 * (np.linalg.inv(IE2) if condi > 1e-10 else np.linalg.pinv(IE2))
    W = (W + W.T) / 2.0
    p = X.shape[1]
    U = np.zeros((p, p))
    for i in range(ng - 1):
        for j in range(i + 1, ng):
            U += W[i, j] * (QQ[i, j] - PP[i] @ Phi @ PP[j])
    U = U + U.T
    for i in range(ng):
        U += W[i, i] * (QQ[i, i] - PP[i] @ Phi @ PP[i])
    vadj = Phi + 2.0 * Phi @ U @ Phi
    state = KRState(vcov_adj=vadj, P=PP, W=W, vcov_beta=Phi)
    _KR_CACHE[fit] = state
    return state


def vcov_adj(fit) -> pd.DataFrame:
    """Kenward-Roger adjusted covariance matrix of the fixed effects (pbkrtest's ``vcovAdj``)."""
    names = fit.design.xnames
    return pd.DataFrame(kenward_roger_state(fit).vcov_adj, index=names, columns=names)


def kr_adjust(L: np.ndarray, V0: np.ndarray, P: list, W: np.ndarray) -> tuple[float, float]:
    """pbkrtest's ``.KR_adjust`` (and ``Lb_ddf``) for a q x p matrix of contrasts (q = 1: one).

    Returns
    -------
    ddf, F_scaling : float
        The denominator df and the scaling of the F statistic
        (``df2 (1 - A2 / q) / (df2 - 2)``; 1 when df2 is within 0.01 of 2).
    """
    L = np.atleast_2d(L)
    Theta = L.T @ np.linalg.solve(L @ V0 @ L.T, L)
    ThetaV0 = Theta @ V0
    A1 = A2 = 0.0
    ng = len(P)
    for i in range(ng):
        ui = ThetaV0 @ P[i] @ V0
        for j in range(i, ng):
            e = 1.0 if i == j else 2.0
            uj = ThetaV0 @ P[j] @ V0
            A1 += e * W[i, j] * np.trace(ui) * np.trace(uj)
            A2 += e * W[i, j] * np.sum(ui * uj.T)
    q = L.shape[0]
    B = (A1 + 6.0 * A2) / (2.0 * q)
    g = ((q + 1) * A1 - (q + 4) * A2) / ((q + 2) * A2)
    den = 3.0 * q + 2.0 * (1.0 - g)
    c1, c2, c3 = g / den, (q - g) / den, (q + 2 - g) / den
    v0 = 1.0 + c1 * B
    v1 = 1.0 - c2 * B
    v2 = 1.0 - c3 * B
    v0 = 0.0 if abs(v0) < 1e-10 else v0
    x = 1.0 - A2 / q
    ratio = 1.0 if (abs(x) < 1e-14 and abs(v1) < 1e-14) else x / v1
    rho = ratio**2 * v0 / v2 / q
    df2 = 4.0 + (q + 2) / (q * rho - 1.0)
    scaling = 1.0 if abs(df2 - 2.0) < 0.01 else df2 * (1.0 - A2 / q) / (df2 - 2.0)
    return df2, scaling


def kenward_roger_df(fit, L) -> np.ndarray:
    """Kenward-Roger df for each contrast (row of ``L``), as pbkrtest's ``get_Lb_ddf``.

    Parameters
    ----------
    fit : LMMFit
        A REML fit with at most :data:`KR_MAX_N` observations.
    L : array-like
        A contrast vector of length p or an m x p matrix of contrasts.

    Returns
    -------
    numpy.ndarray
        m degrees of freedom.
    """
    Lm = _contrast_matrix(fit, L)
    s = kenward_roger_state(fit)
    return np.array([kr_adjust(row, s.vcov_beta, s.P, s.W)[0] for row in Lm])


# ---------------------------------------------------------------------------
# t-tests
# ---------------------------------------------------------------------------
def _contrast_matrix(fit, L) -> np.ndarray:
    p = fit.design.p
    try:
        Lm = np.atleast_2d(np.asarray(L, dtype=float))
    except (TypeError, ValueError) as exc:
        raise HierlmError(f"L must be numeric: a vector of {p} values or a matrix with {p} columns") from exc
    if Lm.ndim != 2 or Lm.shape[1] != p:
        raise HierlmError(f"L must have {p} columns, one per fixed effect ({', '.join(fit.design.xnames)}), "
                          f"not shape {np.shape(L)}")
    if not np.all(np.isfinite(Lm)):
        raise HierlmError("L has missing or infinite values")
    return Lm


def contest1d(fit, L, ddf: str = "satterthwaite", rhs: float = 0.0) -> pd.DataFrame:
    """t-tests of contrasts ``L' beta = rhs`` (lmerTest's ``contest(m, L, joint = FALSE)``).

    Parameters
    ----------
    fit : LMMFit
    L : array-like
        A contrast vector of length p or an m x p matrix (one test per row).
    ddf : {"satterthwaite", "kenward-roger", "none"}
        Denominator degrees of freedom.  ``"kenward-roger"`` also uses the
        adjusted covariance of beta for the standard error, as lmerTest.
        ``"none"`` gives Wald t statistics without df or p-values (lme4).
    rhs : float
        Value under the null hypothesis.

    Returns
    -------
    pandas.DataFrame
        Columns ``Estimate, Std. Error, df, t value, Pr(>|t|)`` (without
        ``df`` and ``Pr(>|t|)`` for ``ddf="none"``), one row per contrast.
    """
    _check_fit(fit)
    method = check_ddf(ddf)
    Lm = _contrast_matrix(fit, L)
    est = Lm @ fit.fixef.to_numpy()
    if method == "kenward-roger":
        V = kenward_roger_state(fit).vcov_adj
    else:
        V = fit.vcov.to_numpy()
    se = np.sqrt(np.einsum("ij,jk,ik->i", Lm, V, Lm))
    tval = (est - rhs) / se
    if method == "none":
        return pd.DataFrame({"Estimate": est, "Std. Error": se, "t value": tval})
    df = satterthwaite_df(fit, Lm) if method == "satterthwaite" else kenward_roger_df(fit, Lm)
    p = 2.0 * stats.t.sf(np.abs(tval), df)
    return pd.DataFrame({"Estimate": est, "Std. Error": se, "df": df, "t value": tval, "Pr(>|t|)": p})


def coef_table(fit, ddf: str = "satterthwaite") -> pd.DataFrame:
    """Fixed-effects table with t-tests, as lmerTest's ``summary(m, ddf = ...)$coefficients``.

    Parameters
    ----------
    fit : LMMFit
        A REML or ML fit.
    ddf : {"satterthwaite", "kenward-roger", "none"}
        ``"satterthwaite"`` (lmerTest's default): Satterthwaite's df from the
        gradient of vcov(beta) w.r.t. the variance parameters.
        ``"kenward-roger"`` (REML fits, n <= :data:`KR_MAX_N`): pbkrtest's
        df with the Kenward-Roger adjusted standard errors.  ``"none"``:
        lme4's table (Estimate, Std. Error, t value).

    Returns
    -------
    pandas.DataFrame
        Indexed by fixed-effect name; columns ``Estimate, Std. Error, df,
        t value, Pr(>|t|)`` (``Estimate, Std. Error, t value`` for ``"none"``).

    Raises
    ------
    HierlmError
        For an unknown ``ddf``, or Kenward-Roger on an ML fit or a large n.

    Examples
    --------
    >>> fit = hierlm.lmer("Reaction ~ Days + (Days|Subject)", hierlm.datasets.load("sleepstudy"))
    >>> coef_table(fit)                                                    # doctest: +SKIP
                   Estimate  Std. Error         df    t value      Pr(>|t|)
    (Intercept)  251.405105    6.824597  16.999726  36.838090  1.171558e-17
    Days          10.467286    1.545790  16.999984   6.771481  3.263824e-06
    """
    _check_fit(fit)
    method = check_ddf(ddf)
    tab = contest1d(fit, np.eye(fit.design.p), ddf=method)
    tab.index = pd.Index(fit.design.xnames)
    return tab
