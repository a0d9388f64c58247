r"""Confidence intervals of a linear mixed model: Wald and profile likelihood.

As lme4's ``confint(m, method = "Wald" | "profile", oldNames = FALSE)``
(``profile.merMod`` + ``confint.thpr``, lme4 1.1-31).

Parameters are on lme4's profiling scale: per random-effects term, in
theta's layout (lower triangle, column-major), the standard deviations on
the diagonal and the correlations below it (``sd_(Intercept)|Subject``,
``cor_Days.(Intercept)|Subject``, ``sd_Days|Subject``), then ``sigma``,
then the fixed effects.

The profile is that of the **ML deviance**, also for REML fits: lme4's
``devfun2`` starts with ``refitML(fm)``, and its fixed-effect profiles use
``mkdevfun(rho, 0L)`` (ML).  So REML and ML fits of one model get the same
profile intervals, as in lme4.  For a value ``x`` of parameter ``w`` the
profile is

    zeta(x) = sign(x - w_hat) sqrt(min_{others} d(w = x, others) - d_min)

and the interval ends are where ``zeta = -+ qnorm((1 + level) / 2)``.

* Variance parameters (sd, cor, sigma): ``d`` is lme4's ``devfun2``, the ML
  deviance with beta profiled out, as a function of (sd/cor, sigma):
  ``d = log|L_theta|^2 + r^2(theta) / sigma^2 + n log(2 pi sigma^2)`` with
  ``theta_k = chol(D_k R_k D_k) / sigma`` (lme4's ``Sv_to_Cv``).  The other
  variance parameters are re-optimized by BOBYQA (NLopt, as the fit).  lme4
  optimizes them in the box sd >= 0, -1 <= cor <= 1; for terms of three or
  more columns that box holds non-positive-definite correlation matrices,
  where lme4's inner optimizations fail ("non-monotonic profile").  Here the
  correlations of each term are parameterized by canonical partial
  correlations (a box every point of which is a correlation matrix; see
  ``_VarMap``): the same minimum over the same set, found reliably.  For
  terms of one or two columns the two coincide.
* Fixed effect beta_j: lme4 fixes it by an offset (drops column j and
  subtracts ``b x_j`` from y) and re-optimizes theta for the ML deviance.
  The penalized residual sum of squares is quadratic in beta, so at any
  theta the offset model's is ``r^2(theta) + (b - beta_hat_j)^2 / V_jj``
  (``V = (R_X' R_X)^{-1}``: minimizing the quadratic over the other
  coefficients), and ``log|L_theta|`` does not involve X.  The offset
  model's profiled deviance is therefore evaluated exactly from the full
  model's factor, without building a new design.

lme4 locates the ends by interpolating a spline through profile points; here
they are found exactly by a bracketing root finder (Brent) on zeta.  Where
zeta does not reach the cut-off before a bound (an sd at 0, a correlation at
-+1) the end is that bound, as lme4 gives.
"""

from __future__ import annotations

import math
import warnings

import numpy as np
import pandas as pd
from scipy.linalg import solve_triangular
from scipy.optimize import brentq
from scipy.stats import norm

from ..errors import HierlmError
from ..lmm import LMMFit
from ..optimize import bobyqa, is_singular
from ..params import cholesky_to_cpc, cpc_to_cholesky, theta_to_sdcor
from .table import RTable

#: the profile's inner optimizations: BOBYQA as the fit, tighter tolerances
_TIGHT = {"xtol_abs": 1e-10, "ftol_abs": 1e-12, "maxeval": 20000}

__all__ = ["ProfileLikelihood", "confint", "format_perc", "profile_estimates", "profile_names"]

_LOG2PI = math.log(2.0 * math.pi)
METHODS = ("profile", "wald")


# ----------------------------------------------------------------------
# names and values on lme4's scale
# ----------------------------------------------------------------------
def _vp_names(design) -> list[str]:
    """lme4's ``tnames(m, old = FALSE, prefix = c("sd", "cor"))`` plus ``sigma``."""
    out = []
    for r in design.remats:
        for i, j in zip(r.tril_rows, r.tril_cols):
            if i == j:
                out.append(f"sd_{r.cnames[i]}|{r.group}")
            else:
                out.append(f"cor_{r.cnames[i]}.{r.cnames[j]}|{r.group}")
    return out + ["sigma"]


def profile_names(fit) -> list[str]:
    """Parameter names as lme4's ``confint(m, oldNames = FALSE)`` prints them.

    Parameters
    ----------
    fit : LMMFit

    Returns
    -------
    list of str
        Per random-effects term (lme4's order) its SDs and correlations in
        theta's layout (``sd_(Intercept)|Subject``,
        ``cor_Days.(Intercept)|Subject``, ``sd_Days|Subject``), then
        ``sigma``, then the fixed effects (``(Intercept)``, ``Days``).
    """
    return _vp_names(fit.design) + list(fit.design.xnames)


def profile_estimates(fit) -> pd.Series:
    """The fit's estimates on lme4's profiling scale, named by :func:`profile_names`.

    What lme4's ``confint(m, method = "boot")`` computes for each refit
    (SDs and correlations of each term, sigma, fixed effects).

    Parameters
    ----------
    fit : LMMFit

    Returns
    -------
    pandas.Series
    """
    _check_fit(fit)
    vals = np.concatenate([theta_to_sdcor(fit.design, fit.theta, fit.sigma), np.asarray(fit.beta)])
    return pd.Series(vals, index=profile_names(fit), name="estimate")


def format_perc(probs, digits: int = 3) -> list[str]:
    """Column labels as R's ``format(100 * probs, digits = 3)`` followed by ``" %"``.

    R formats the vector jointly: every label gets the number of decimals
    the most demanding value needs (at most ``digits`` significant).  So
    ``[0.025, 0.975]`` -> ``["2.5 %", "97.5 %"]``, ``[0.05, 0.95]`` ->
    ``["5 %", "95 %"]``, ``[0.0005, 0.9995]`` -> ``["0.05 %", "99.95 %"]``.
    """
    vals = [100.0 * float(p) for p in probs]
    decimals = 0
    for v in vals:
        if v == 0 or not math.isfinite(v):
            continue
        full = float(f"{v:.{digits - 1}e}")
        for s in range(1, digits + 1):
            if float(f"{full:.{s - 1}e}") == full:
                break
        exp = math.floor(math.log10(abs(full)))
        decimals = max(decimals, s - 1 - exp)
    return [f"{v:.{decimals}f} %" for v in vals]


# ----------------------------------------------------------------------
# argument checks
# ----------------------------------------------------------------------
def _check_fit(fit) -> None:
    if not isinstance(fit, LMMFit):
        raise HierlmError(
            f"confidence intervals by profile or Wald need an REML/ML fit (LMMFit), not "
            f"{type(fit).__name__}; fit the model with method='reml' or 'ml'"
        )


def check_level(level) -> float:
    try:
        lev = float(level)
    except (TypeError, ValueError):
        raise HierlmError(f"level must be a number in (0, 1), not {level!r}") from None
    if not (0.0 < lev < 1.0):
        raise HierlmError(f"level must be in (0, 1) (e.g. 0.95), not {level!r}")
    return lev


def select_parameters(names: list[str], nvp: int, parm) -> list[int]:
    """Indices of the requested parameters in lme4's order (lme4's ``get.which``).

    ``parm`` may be None (all), a name, ``"theta_"`` (all variance
    parameters, sigma included), ``"beta_"`` (all fixed effects), or a list
    of those.
    """
    if parm is None:
        return list(range(len(names)))
    wanted = [parm] if isinstance(parm, str) else list(parm)
    idx: set[int] = set()
    for w in wanted:
        if w == "theta_":
            idx.update(range(nvp))
        elif w == "beta_":
            idx.update(range(nvp, len(names)))
        elif isinstance(w, str) and w in names:
            idx.add(names.index(w))
        else:
            raise HierlmError(
                f"parm {w!r} is not a parameter of this model; valid: {names} "
                "(or 'theta_' for all variance parameters, 'beta_' for all fixed effects)"
            )
    return sorted(idx)


# ----------------------------------------------------------------------
# the profile
# ----------------------------------------------------------------------
class _VarMap:
    """The variance parameters with one of them (``w``) fixed, in a box.

    Free coordinates ``phi``: per term its SDs (>= 0) and the canonical
    partial correlations (in [-1, 1]) of its correlation matrix, then sigma.
    Every point of that box is a valid covariance (a box in lme4's sd/cor
    scale is not, for terms of 3 or more columns: lme4's ``Sv_to_Cv`` then
    returns a pivoted factor of a non-PSD matrix).  To fix the correlation of
    columns (i, j) the term's columns are permuted to (j, i, ...): its first
    partial correlation is then that correlation.  The deviance depends on
    each term's covariance only, so the parameterization does not change
    the profile, only how well the inner optimization behaves.
    """

    def __init__(self, design, w: int):
        self.terms = []
        pos = 0
        self.wpos = None
        for r, sl in zip(design.remats, design.theta_slices()):
            p = r.p
            perm = np.arange(p)
            if sl.start <= w < sl.stop:
                t = w - sl.start
                i, j = int(r.tril_rows[t]), int(r.tril_cols[t])
                if i == j:
                    self.wpos = pos + i
                else:
                    perm = np.array([j, i] + [c for c in range(p) if c not in (i, j)])
                    self.wpos = pos + p
            nz = p * (p - 1) // 2
            self.terms.append((r, sl, pos, perm))
            pos += p + nz
        if self.wpos is None:
            self.wpos = pos  # sigma
        self.size = pos + 1
        lower, upper = np.zeros(self.size), np.full(self.size, np.inf)
        for r, _, start, _ in self.terms:
            lower[start + r.p: start + r.p + r.p * (r.p - 1) // 2] = -1.0
            upper[start + r.p: start + r.p + r.p * (r.p - 1) // 2] = 1.0
        self.lower, self.upper = lower, upper

    def from_vp(self, vp: np.ndarray) -> np.ndarray:
        """phi of a point on lme4's sd/cor scale (sd/cor per term, sigma)."""
        phi = np.empty(self.size)
        for r, sl, start, perm in self.terms:
            p, v = r.p, vp[sl]
            sd, R = _unpack_sdcor(r, v)
            phi[start: start + p] = sd
            if p > 1:
                L = _psd_cholesky(R[np.ix_(perm, perm)])
                phi[start + p: start + p + p * (p - 1) // 2] = cholesky_to_cpc(L) if L is not None else 0.0
        phi[-1] = vp[-1]
        return phi

    def to_theta(self, phi: np.ndarray) -> np.ndarray | None:
        """theta (lme4's layout) at phi; None where sigma is 0."""
        sigma = phi[-1]
        if not sigma > 0:
            return None
        out = []
        for r, sl, start, perm in self.terms:
            p = r.p
            sd = phi[start: start + p]
            if p == 1:
                out.append(sd / sigma)
                continue
            L = cpc_to_cholesky(phi[start + p: start + p + p * (p - 1) // 2], p)
            if np.any(perm != np.arange(p)):
                inv = np.argsort(perm)
                Rp = L @ L.T
                L = _psd_cholesky(Rp[np.ix_(inv, inv)])
                if L is None:
                    return None
            T = sd[:, None] * L / sigma
            out.append(T[r.tril_rows, r.tril_cols])
        return np.concatenate(out)


def _unpack_sdcor(r, v: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """SDs and correlation matrix of one term from its sd/cor values (theta's layout)."""
    sd = np.zeros(r.p)
    R = np.eye(r.p)
    for val, i, j in zip(v, r.tril_rows, r.tril_cols):
        if i == j:
            sd[i] = val
        else:
            R[i, j] = R[j, i] = val
    return sd, R


class ProfileLikelihood:
    """The profiled ML deviance of a fitted model on lme4's parameter scale.

    Parameters
    ----------
    fit : LMMFit
        REML or ML fit; REML fits are refit by ML first (as lme4's
        ``profile``).

    Attributes
    ----------
    names : list of str
        :func:`profile_names`.
    estimates : numpy.ndarray
        ML estimates on that scale (the profile's centre).
    base : float
        ML deviance at the ML estimates.
    is_singular : bool
        The fit (or its ML refit) is singular, by lme4's ``isSingular``.
    singular : list of str
        SDs estimated at 0.
    """

    def __init__(self, fit):
        _check_fit(fit)
        self.fit = fit
        dev = self.dev = fit.devfun
        d = self.design = fit.design
        self.n = d.n
        self.nvp = d.ntheta + 1
        self.names = profile_names(fit)
        self.theta_lower = np.concatenate([r.theta_lower() for r in d.remats])
        # ML optimum: refit (REML fits) or polish (ML fits) from the fit's theta
        self.theta_ml, self.base = self._ml_optimum(np.asarray(fit.theta, dtype=float))
        f = dev.factor(self.theta_ml)
        sigma_ml = math.sqrt(f.pwrss / self.n)
        beta_ml = self._beta_hat(f)
        self.estimates = np.concatenate([theta_to_sdcor(d, self.theta_ml, sigma_ml), beta_ml])
        # lme4's bounds on the sd/cor scale: sd >= 0, -1 <= cor <= 1, sigma >= 0
        is_sd = np.concatenate([r.tril_rows == r.tril_cols for r in d.remats] + [[True]])
        self.vp_lower = np.where(is_sd, 0.0, -1.0)
        self.vp_upper = np.where(is_sd, np.inf, 1.0)
        self._is_sd = is_sd
        # Wald standard errors of the ML fit set the first step of the fixed-effect search
        self.se_ml = sigma_ml * np.sqrt(np.diag(dev.vcov_unscaled(f)))
        # lme4's isSingular: a diagonal theta below 1e-4 (an SD at 0 or a correlation at -+1)
        self.is_singular = is_singular(self.theta_ml, self.theta_lower) or fit.singular
        self.singular = [self.names[i] for i in range(self.nvp - 1)
                         if is_sd[i] and self.estimates[i] < 1e-4 * sigma_ml]
        self._maps: dict[int, _VarMap] = {}
        self._warm: dict[int, list[tuple[float, np.ndarray]]] = {}
        self._cache: dict[tuple[int, float], float] = {}
        self.lower_found = 0.0

    # --- deviance pieces ------------------------------------------------
    def _ml_optimum(self, theta0: np.ndarray) -> tuple[np.ndarray, float]:
        dev = self.dev

        def obj(th):
            return dev.objective(th, False)

        step = np.maximum(0.1 * np.abs(theta0), 0.01)
        res = bobyqa(obj, theta0, self.theta_lower, step=step, **_TIGHT)
        theta, val = res.x, res.fun
        # a singular fit: lme4's theta sits exactly on the bound; keep tiny values there
        diag = np.isfinite(self.theta_lower)
        near = diag & (theta < 1e-6)
        if near.any():
            th0 = np.where(near, 0.0, theta)
            v0 = obj(th0)
            if v0 <= val + 1e-10:
                theta, val = th0, min(val, v0)
        return theta, float(val)

    def _beta_hat(self, f) -> np.ndarray:
        dev = self.dev
        qr, p, m = dev.qr, dev.p, dev.m
        LXX = f.L[qr: qr + p, qr: qr + p]
        return solve_triangular(LXX, f.L[m - 1, qr: qr + p], lower=True, trans="T", check_finite=False)

    def deviance_theta_sigma(self, theta: np.ndarray | None, sigma: float) -> float:
        """lme4's ``devfun2`` for an LMM: ML deviance at (theta, sigma), beta profiled out:
        ``log|L_theta|^2 + r^2(theta) / sigma^2 + n log(2 pi sigma^2)``."""
        if theta is None or not sigma > 0:
            return np.inf
        f = self.dev.factor(theta)
        if f is None:
            return np.inf
        s2 = sigma * sigma
        # minus sum(log w): as the engine's deviance of prior-weighted rows
        return f.logdet_Z + f.pwrss / s2 + self.n * (_LOG2PI + math.log(s2)) - self.dev.ldw

    def deviance_beta(self, theta: np.ndarray, j: int, b: float) -> float:
        """ML deviance (sigma and the other fixed effects profiled) with beta_j = b."""
        f = self.dev.factor(theta)
        if f is None:
            return np.inf
        dev = self.dev
        qr, p, m = dev.qr, dev.p, dev.m
        LXX = f.L[qr: qr + p, qr: qr + p]
        beta = solve_triangular(LXX, f.L[m - 1, qr: qr + p], lower=True, trans="T", check_finite=False)
        e = np.zeros(p)
        e[j] = 1.0
        w = solve_triangular(LXX, e, lower=True, check_finite=False)
        r2 = f.pwrss + (b - beta[j]) ** 2 / (w @ w)
        return f.logdet_Z + self.n * (1.0 + _LOG2PI + math.log(r2 / self.n)) - self.dev.ldw

    # --- profile ----------------------------------------------------------
    def _start(self, w: int, x: float, default: np.ndarray) -> np.ndarray:
        """Warm start: the solution at the nearest value profiled so far."""
        pts = self._warm.setdefault(w, [(self.estimates[w], default)])
        return min(pts, key=lambda t: abs(t[0] - x))[1]

    def profiled_deviance(self, w: int, x: float) -> float:
        """Minimum of the ML deviance with parameter ``w`` (index into names) at ``x``."""
        if w < self.nvp:
            vm = self._maps.get(w)
            if vm is None:
                vm = self._maps[w] = _VarMap(self.design, w)
            phi0 = vm.from_vp(self.estimates[: self.nvp])
            free = np.arange(vm.size) != vm.wpos
            start = self._start(w, x, phi0[free])
            lo, up = vm.lower[free], vm.upper[free]
            sigma = self.estimates[self.nvp - 1]
            # steps: a twentieth of an SD (or of sigma) and of a correlation's range
            scale = np.where(np.isfinite(up), 1.0, np.maximum(phi0[free], 0.05 * sigma))
            step = np.maximum(0.05 * np.abs(start), 0.02 * scale)
            phi = phi0.copy()
            phi[vm.wpos] = x

            def obj(z):
                phi[free] = z
                return self.deviance_theta_sigma(vm.to_theta(phi), phi[-1])
        else:
            j = w - self.nvp
            start = self._start(w, x, self.theta_ml)
            lo, up = self.theta_lower, np.full(self.theta_ml.size, np.inf)
            step = np.maximum(0.05 * np.abs(start), 0.02)

            def obj(th):
                return self.deviance_beta(th, j, x)
        res = bobyqa(obj, start, lo, up, step=step, **_TIGHT)
        xbest, val = res.x, res.fun
        self._warm[w].append((x, xbest))
        return float(val)

    def zeta(self, name_or_index, x: float) -> float:
        """Signed square root of the profiled deviance's rise at ``x`` (lme4's ``.zeta``).

        Parameters
        ----------
        name_or_index : str or int
            Parameter name (:func:`profile_names`) or its position.
        x : float
            Value of the parameter on lme4's scale.
        """
        w = self.names.index(name_or_index) if isinstance(name_or_index, str) else int(name_or_index)
        x = float(x)
        key = (w, x)
        if key not in self._cache:
            # cached so that a root finder sees one value per point
            dd = self.profiled_deviance(w, x) - self.base
            if dd < -1e-6:
                self.lower_found = min(self.lower_found, dd)
            z = math.sqrt(max(dd, 0.0))
            self._cache[key] = math.copysign(z, x - self.estimates[w]) if x != self.estimates[w] else 0.0
        return self._cache[key]

    def _end(self, w: int, direction: int, target: float) -> float:
        """Where |zeta| reaches ``target`` on one side of the estimate (or the bound)."""
        est = self.estimates[w]
        if w < self.nvp:
            lo, up = self.vp_lower[w], self.vp_upper[w]
            sigma = self.estimates[self.nvp - 1]
            step = (0.25 * est if est > 0 else 0.05 * sigma) if self._is_sd[w] else 0.1
        else:
            lo, up = -np.inf, np.inf
            step = self.se_ml[w - self.nvp]
        bound = lo if direction < 0 else up
        if est == bound:
            return bound

        def s(x):
            # finite where the deviance is not (sigma -> 0), for the root finder
            return min(abs(self.zeta(w, x)), 1e6)

        x_prev, z_prev = est, 0.0
        for _ in range(100):
            x = min(max(x_prev + direction * step, lo), up)
            z = s(x)
            if z >= target:
                return brentq(lambda t: s(t) - target, min(x_prev, x), max(x_prev, x),
                              xtol=1e-10 * max(1.0, abs(x)), rtol=1e-10)
            if x == bound:
                return bound
            dx = abs(x - x_prev)
            slope = (z - z_prev) / dx
            if slope > 0:
                # secant step a little past the target, at most 10 times the last (lme4's maxmult)
                step = min(max(1.1 * (target - z) / slope, 0.1 * dx), 10.0 * dx)
            else:
                step = 2.0 * dx
            x_prev, z_prev = x, z
        warnings.warn(f"profile of {self.names[w]} did not reach zeta = {target:.3g}; "
                      f"interval end set to {bound}", UserWarning, stacklevel=3)
        return bound

    def interval(self, name_or_index, level: float = 0.95) -> tuple[float, float]:
        """Profile-likelihood interval of one parameter.

        Parameters
        ----------
        name_or_index : str or int
        level : float
        """
        w = self.names.index(name_or_index) if isinstance(name_or_index, str) else int(name_or_index)
        target = float(norm.ppf((1.0 + check_level(level)) / 2.0))
        return self._end(w, -1, target), self._end(w, +1, target)


def _psd_cholesky(R: np.ndarray) -> np.ndarray | None:
    """Lower Cholesky factor of a correlation matrix, allowing it to be singular
    (a correlation at -+1); None if it is not positive semidefinite."""
    p = R.shape[0]
    L = np.zeros_like(R)
    for j in range(p):
        d = R[j, j] - L[j, :j] @ L[j, :j]
        if d < -1e-10:
            return None
        if d <= 1e-12:
            # a zero pivot: this column must then be zero below it too
            for i in range(j + 1, p):
                if abs(R[i, j] - L[i, :j] @ L[j, :j]) > 1e-6:
                    return None
            continue
        L[j, j] = math.sqrt(d)
        for i in range(j + 1, p):
            L[i, j] = (R[i, j] - L[i, :j] @ L[j, :j]) / L[j, j]
    return L


# ----------------------------------------------------------------------
# the public function
# ----------------------------------------------------------------------
def confint(fit, parm=None, level: float = 0.95, method: str = "profile") -> pd.DataFrame:
    """Confidence intervals of a linear mixed model (lme4's ``confint``).

    Parameters
    ----------
    fit : LMMFit
        An REML or ML fit.
    parm : str or list of str, optional
        Parameters to report (names from :func:`profile_names`), or
        ``"theta_"`` (all variance parameters and sigma) / ``"beta_"`` (all
        fixed effects).  Default: all.  Rows come in lme4's order.
    level : float
        Confidence level, in (0, 1).
    method : {"profile", "wald"}
        ``"profile"``: profile-likelihood intervals of the ML deviance (REML
        fits are refit by ML, as lme4 does), for SDs, correlations, sigma
        and fixed effects.  ``"wald"``: estimate -+ z SE for the fixed
        effects (SEs of this fit) and NaN for the variance parameters, as
        lme4's ``method = "Wald"``.

    Returns
    -------
    pandas.DataFrame
        Indexed by parameter (lme4's ``oldNames = FALSE`` names), columns
        named as R prints them: ``"2.5 %"``, ``"97.5 %"`` for level 0.95.

    Warns
    -----
    UserWarning
        For a profile on a singular fit (an SD estimated at 0): that SD's
        lower end is 0, as lme4 gives; the other intervals are computed.

    Examples
    --------
    >>> import hierlm
    >>> from hierlm.inference.profile import confint
    >>> fit = hierlm.lmer("Reaction ~ Days + (Days | Subject)", hierlm.datasets.load("sleepstudy"))
    >>> confint(fit).round(2)  # doctest: +SKIP
                                  2.5 %  97.5 %
    sd_(Intercept)|Subject        14.38   37.72
    cor_Days.(Intercept)|Subject  -0.48    0.68
    sd_Days|Subject                3.80    8.75
    sigma                         22.90   28.86
    (Intercept)                  237.68  265.13
    Days                           7.36   13.58
    """
    _check_fit(fit)
    lev = check_level(level)
    key = str(method).lower()
    if key not in METHODS:
        raise HierlmError(
            f"method must be one of {METHODS} here, not {method!r} "
            "(parametric-bootstrap intervals: method='boot' of the fit's confint)"
        )
    names = profile_names(fit)
    nvp = fit.design.ntheta + 1
    idx = select_parameters(names, nvp, parm)
    a = (1.0 - lev) / 2.0
    cols = format_perc([a, 1.0 - a])
    out = np.full((len(idx), 2), np.nan)
    if key == "wald":
        z = norm.ppf(1.0 - a)
        beta = np.asarray(fit.beta)
        se = np.sqrt(np.diag(fit.vcov.to_numpy()))
        for row, i in enumerate(idx):
            if i >= nvp:
                j = i - nvp
                out[row] = beta[j] - z * se[j], beta[j] + z * se[j]
        return RTable(out, index=[names[i] for i in idx], columns=cols)

    prof = ProfileLikelihood(fit)
    if prof.is_singular:
        what = (f"{', '.join(prof.singular)} estimated at 0 (lower limit 0, as lme4 gives; "
                "correlations of such a term are not identified)" if prof.singular
                else "a correlation estimated at -1 or 1 (limit at the bound)")
        warnings.warn(f"profile on a singular fit: {what}; the other limits are computed as usual",
                      UserWarning, stacklevel=2)
    for row, i in enumerate(idx):
        out[row] = prof.interval(i, lev)
    if prof.lower_found < 0:
        warnings.warn(
            f"profiling found an ML deviance {-prof.lower_found:.3g} below the fit's optimum; "
            "the fit may not have converged", UserWarning, stacklevel=2,
        )
    return RTable(out, index=[names[i] for i in idx], columns=cols)
