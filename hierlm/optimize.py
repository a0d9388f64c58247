"""The optimizer driver every engine shares: BOBYQA, status codes, lme4's
convergence checks, option checking and BLAS thread pinning.

As lme4's default ``optimizer = "nloptwrap"``: NLopt's BOBYQA (derivative
free, bound constrained).  The driver keeps the best point it has seen (NLopt
may stop with a round-off status after reaching the minimum) and maps NLopt's
result codes to words.  After a fit the engines run lme4's checks
(``checkConv.R``): a singular fit (a bounded parameter below 1e-4), the
gradient scaled by the Cholesky factor of the Hessian (``check.conv.grad``)
and the Hessian's eigenvalues (``check.conv.hess``), on finite differences
from :func:`deriv12` (lme4's ``deriv12``).
"""

from __future__ import annotations

import contextlib
import warnings
from dataclasses import dataclass, field

import numpy as np

from .errors import ConvergenceWarning, HierlmError

SINGULAR_MESSAGE = "boundary (singular) fit: see help('isSingular')"


@dataclass
class Convergence:
    """How a fit ended, the same for every fit kind.

    Attributes
    ----------
    converged : bool
        False when the optimizer or sampler reported a problem that makes
        the estimates doubtful (lme4's convergence failures, a MAP gradient
        not at zero, divergences or R-hat above 1.01 for NUTS).  A singular
        fit has converged (lme4 reports it as a message only).
    messages : list of str
        Every message, in the order found, as lme4 words them.
    """

    converged: bool = True
    messages: list = field(default_factory=list)


@dataclass
class OptInfo:
    """What the optimizer did (lme4's ``optinfo``): evaluations, status,
    convergence messages, the gradient and Hessian of the criterion at the optimum."""

    optimizer: str = "nloptwrap (NLOPT_LN_BOBYQA)"
    feval: int = 0
    status: str = ""
    singular: bool = False
    messages: list = field(default_factory=list)
    gradient: np.ndarray | None = None
    hessian: np.ndarray | None = None
    #: evaluations of a first stage (GLMMs: lme4's nAGQ = 0 stage)
    feval_stage1: int = 0
    #: fits made while estimating a family parameter (the negative binomial's theta)
    feval_family: int = 0

    def convergence(self) -> Convergence:
        """The fit's :class:`Convergence`: converged unless a message other than
        the singular-fit note was raised."""
        failed = [m for m in self.messages if m != SINGULAR_MESSAGE]
        return Convergence(converged=not failed, messages=list(self.messages))

    # ---- lme4's checks (checkConv.R), recorded as they are found ----------
    def record_status(self, status: str, maxeval: int) -> None:
        """NLopt's status; reaching ``maxeval`` is a convergence message."""
        self.status = status
        if status == "maxeval reached":
            self.messages.append(f"convergence code: maximum number of evaluations ({maxeval}) reached")

    def check_singular(self, theta: np.ndarray, lower: np.ndarray, tol: float) -> bool:
        """lme4's ``isSingular`` on the bounded parameters, with its message."""
        self.singular = is_singular(theta, lower, tol)
        if self.singular:
            self.messages.append(SINGULAR_MESSAGE)
        return self.singular

    def check_derivatives(self, g: np.ndarray, H: np.ndarray, control: dict, fixed: slice | None = None) -> None:
        """Keep the gradient and Hessian; unless the fit is singular, lme4's
        scaled-gradient check, then the Hessian check of the ``fixed`` block
        (glmer's fixed effects) and of the whole Hessian."""
        self.gradient, self.hessian = g, H
        if self.singular:
            return
        self.messages += gradient_messages(g, H, control["check_conv_grad_tol"])
        if fixed is not None and H[fixed, fixed].size:
            self.messages += hessian_messages(H[fixed, fixed], control["check_conv_hess_tol"], "fixed-effect ")
        self.messages += hessian_messages(H, control["check_conv_hess_tol"])


#: control options that are counts (>= 1) and tolerances (>= 0), wherever an engine has them
_COUNTS = ("maxeval", "maxit")
_TOLERANCES = ("xtol_abs", "ftol_abs", "ftol_rel", "tol_pirls", "tol_pwrss", "check_singular_tol", "check_conv_grad_tol",
               "check_conv_hess_tol", "boundary_tol")


def check_control(control: dict, defaults: dict, what: str = "") -> dict:
    """``control`` over ``defaults``; an unknown key, a count that is not a
    positive integer or a tolerance that is not a number >= 0 is an error
    that names it."""
    unknown = set(control) - set(defaults)
    if unknown:
        raise HierlmError(f"unknown control option(s) {sorted(unknown)}{what}; valid: {sorted(defaults)}")
    for k, v in control.items():
        if k in _COUNTS and (isinstance(v, bool) or not isinstance(v, (int, np.integer)) or v < 1):
            raise HierlmError(f"control option {k} must be a positive integer, not {v!r}")
        if k in _TOLERANCES and (isinstance(v, bool) or not isinstance(v, (int, float, np.number))
                                 or not np.isfinite(v) or v < 0):
            raise HierlmError(f"control option {k} must be a finite number >= 0, not {v!r}")
    return {**defaults, **control}


def one_blas_thread():
    """One BLAS thread inside the block (threadpoolctl).

    The matrices of a GLMM's PIRLS or a bootstrap refit are small;
    OpenBLAS's threads only add synchronization (a grouseticks fit ran 20 to
    50 times slower on a busy 2-core machine), and a different number of
    threads may sum in a different order and move a refit's last bits.
    """
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:  # pragma: no cover - threadpoolctl is a dependency
        return contextlib.nullcontext()
    return threadpool_limits(limits=1, user_api="blas")


@dataclass
class OptResult:
    """The best point seen, its value, NLopt's status in words and the evaluations."""

    x: np.ndarray
    fun: float
    status: str
    feval: int


def _status(code) -> str:
    import nlopt

    return {
        nlopt.SUCCESS: "success", nlopt.FTOL_REACHED: "ftol_abs reached",
        nlopt.XTOL_REACHED: "xtol_abs reached", nlopt.MAXEVAL_REACHED: "maxeval reached",
    }.get(code, f"nlopt code {code}")


def bobyqa(fun, x0, lower, upper=None, step=None, xtol_abs=1e-8, ftol_abs: float = 1e-8,
           maxeval: int = 100000, ftol_rel: float = 0.0) -> OptResult:
    """Minimize ``fun`` with NLopt's BOBYQA from ``x0`` within bounds.

    Non-finite values are handed to NLopt as 1e300 (a wall), and the best
    point seen is returned whatever status NLopt ends with.
    """
    import nlopt

    lower = np.asarray(lower, dtype=float)
    upper = np.full_like(lower, np.inf) if upper is None else np.asarray(upper, dtype=float)
    x0 = np.clip(np.asarray(x0, dtype=float), lower, upper)
    best = {"f": np.inf, "x": x0.copy(), "n": 0}

    def f(x, grad):
        best["n"] += 1
        val = fun(x)
        if val < best["f"]:
            best["f"], best["x"] = val, x.copy()
        return val if np.isfinite(val) else 1e300

    opt = nlopt.opt(nlopt.LN_BOBYQA, x0.size)
    opt.set_lower_bounds(lower)
    if np.isfinite(upper).any():
        opt.set_upper_bounds(upper)
    opt.set_min_objective(f)
    # a number, or one per coordinate (parameters on very different scales)
    opt.set_xtol_abs(np.broadcast_to(np.asarray(xtol_abs, dtype=float), (len(x0),)).copy())
    opt.set_ftol_abs(ftol_abs)
    if ftol_rel > 0:
        opt.set_ftol_rel(ftol_rel)
    opt.set_maxeval(int(maxeval))
    if step is not None:
        opt.set_initial_step(step)
    try:
        opt.optimize(x0)
        status = _status(opt.last_optimize_result())
    except nlopt.RoundoffLimited:
        status = "roundoff limited"
    return OptResult(best["x"], float(best["f"]), status, best["n"])


def deriv12(fun_many, x: np.ndarray, delta: float = 1e-4) -> tuple[np.ndarray, np.ndarray]:
    """Central finite-difference gradient and Hessian (lme4's ``deriv12``).

    ``fun_many`` evaluates the function at every row of a matrix of points,
    so that all 1 + 2k + 2k(k-1) evaluations go in one batch.
    """
    k = x.size
    E = np.eye(k) * delta
    pts = [x] + [x + E[i] for i in range(k)] + [x - E[i] for i in range(k)]
    pairs = [(i, j) for i in range(k) for j in range(i)]
    for i, j in pairs:
        pts += [x + E[i] + E[j], x + E[i] - E[j], x - E[i] + E[j], x - E[i] - E[j]]
    f = fun_many(np.array(pts))
    fx, fa, fs = f[0], f[1: k + 1], f[k + 1: 2 * k + 1]
    g = (fa - fs) / (2 * delta)
    H = np.diag((fa - 2 * fx + fs) / delta**2)
    for n, (i, j) in enumerate(pairs):
        v = f[2 * k + 1 + 4 * n: 2 * k + 5 + 4 * n]
        H[i, j] = H[j, i] = (v[0] - v[1] - v[2] + v[3]) / (4 * delta**2)
    return g, H


# ---------------------------------------------------------------------------
# lme4's checks (checkConv.R)
# ---------------------------------------------------------------------------
def is_singular(theta: np.ndarray, lower: np.ndarray, tol: float = 1e-4) -> bool:
    """lme4's ``isSingular``: a bounded (diagonal) theta below ``tol``."""
    bounded = np.isfinite(lower)
    return bool(np.any(np.asarray(theta)[bounded] < tol))


def check_boundary(fun, x: np.ndarray, fval: float, lower: np.ndarray, tol: float) -> tuple[np.ndarray, float]:
    """lme4's ``check.boundary``: a bounded parameter within ``tol`` of its
    bound is set to the bound when that does not increase the criterion."""
    if tol <= 0:
        return x, fval
    diff = x - lower
    edge = np.flatnonzero(np.isfinite(lower) & (diff > 0) & (diff < tol))
    if edge.size == 0:
        return x, fval
    x = x.copy()
    for i in edge:
        trial = x.copy()
        trial[i] = lower[i]
        if fun(trial) < fval:
            x[i] = lower[i]
    return x, fun(x)


def gradient_messages(g: np.ndarray, H: np.ndarray, tol: float) -> list[str]:
    """lme4's ``check.conv.grad``: the gradient scaled by the Cholesky factor of
    the Hessian (the smaller of scaled and unscaled, per component) above ``tol``."""
    try:
        scgrad = np.linalg.solve(np.linalg.cholesky(H).T, g)
    except np.linalg.LinAlgError:
        return ["unable to evaluate scaled gradient"]
    mingrad = np.minimum(np.abs(scgrad), np.abs(g))
    if mingrad.max() > tol:
        return [f"Model failed to converge with max|grad| = {mingrad.max():.6g} "
                f"(tol = {tol:g}, component {int(np.argmax(mingrad)) + 1})"]
    return []


def hessian_messages(H: np.ndarray, tol: float, what: str = "") -> list[str]:
    """lme4's ``checkHess`` messages (``what``: e.g. ``"fixed-effect "``)."""
    try:
        ev = np.linalg.eigvalsh(H)
    except np.linalg.LinAlgError:
        return [f"unable to evaluate the {what}Hessian eigenvalues"]
    neg = int(np.sum(ev < -tol))
    if neg:
        return [f"Model failed to converge: degenerate {what}Hessian with {neg} negative eigenvalues"]
    try:
        np.linalg.cholesky(H)
        chol_ok = True
    except np.linalg.LinAlgError:
        chol_ok = False
    if np.any(np.abs(ev) < tol) or not chol_ok:
        return [f"{what}Hessian is numerically singular: parameters are not uniquely determined"]
    out = []
    if ev.max() * tol > 1:
        out.append("Model is nearly unidentifiable: very large eigenvalue - Rescale variables?")
    if ev.min() / ev.max() < tol:
        out.append("Model is nearly unidentifiable: large eigenvalue ratio - Rescale variables?")
    return out


def warn_all(messages, stacklevel: int = 3) -> None:
    """Each message as a :class:`ConvergenceWarning` (lme4 warns each one)."""
    for msg in messages:
        warnings.warn(msg, ConvergenceWarning, stacklevel=stacklevel + 1)
