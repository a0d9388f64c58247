"""Optimizer driver: minimize the profiled deviance over theta with BOBYQA.

As lme4's default ``lmerControl(optimizer = "nloptwrap")``: NLopt's BOBYQA
with ``xtol_abs = ftol_abs = 1e-8``, starting from theta with ones on the
diagonals of the T blocks and zeros elsewhere, lower bound 0 on those
diagonals.  After the fit, lme4's checks: a singular fit (a bounded theta
below 1e-4) and, for n < 10000, the scaled gradient and the Hessian of the
deviance by finite differences (lme4's ``deriv12`` / ``checkConv``).
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass, field

import numpy as np

from ..errors import ConvergenceWarning, HierlmError
from .deviance import ProfiledDeviance, make_deviance

DEFAULT_CONTROL = {
    "xtol_abs": 1e-8,
    "ftol_abs": 1e-8,
    "maxeval": 100000,
    "calc_derivs": None,  # None: when n < 10000, as lme4
    "check_singular_tol": 1e-4,
    "check_conv_grad_tol": 2e-3,
    "start": None,
}


@dataclass
class OptInfo:
    """What the optimizer did: evaluations, status, convergence messages."""

    optimizer: str = "nloptwrap (NLOPT_LN_BOBYQA)"
    feval: int = 0
    status: str = ""
    singular: bool = False
    messages: list = field(default_factory=list)
    gradient: np.ndarray | None = None
    hessian: np.ndarray | None = None


def check_control(control: dict, defaults: dict | None = None, what: str = "") -> dict:
    """``control`` over ``defaults`` (the LMM engine's unless given); unknown keys are an error."""
    defaults = DEFAULT_CONTROL if defaults is None else defaults
    unknown = set(control) - set(defaults)
    if unknown:
        raise HierlmError(
            f"unknown control option(s) {sorted(unknown)}{what}; valid: {sorted(defaults)}"
        )
    return {**defaults, **control}


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


# Dense part of the factor (columns beyond the largest term) from which each
# deviance evaluation is costly enough that a better start pays (see below).
WARM_START_MIN_M = 100


def single_term_start(design, reml: bool) -> np.ndarray:
    """Starting theta from fitting each random-effects term on its own.

    With only one term the dense part of the factor is X and y alone, so
    these fits cost milliseconds even for InstEval.  From their estimates
    (and a step of a quarter of them) BOBYQA needs about a third of the
    evaluations it needs from lme4's start of ones (InstEval: 36-44 instead
    of 114), and each evaluation of a large crossed model costs a dense
    Cholesky factorization.  Used only for multi-term models with a large
    dense part; small models start where lme4 starts.
    """
    import nlopt
    from dataclasses import replace

    out = []
    for r in design.remats:
        dev1 = make_deviance(replace(design, remats=[r]))
        opt = nlopt.opt(nlopt.LN_BOBYQA, r.ntheta)
        opt.set_lower_bounds(r.theta_lower())
        opt.set_min_objective(lambda x, g: dev1.objective(x, reml))
        opt.set_xtol_abs(1e-4)
        try:
            out.append(opt.optimize(r.theta_init()))
        except nlopt.RoundoffLimited:
            out.append(r.theta_init())
    return np.concatenate(out)


def optimize_theta(dev: ProfiledDeviance, reml: bool, control: dict) -> tuple[np.ndarray, OptInfo]:
    """Minimize the profiled deviance; run lme4's convergence checks.

    Returns
    -------
    theta, OptInfo
    """
    import nlopt

    remats = dev.design.remats
    lower = np.concatenate([r.theta_lower() for r in remats])
    start = control["start"]
    step = None
    if start is None and len(remats) > 1 and dev.m >= WARM_START_MIN_M:
        theta0 = single_term_start(dev.design, reml)
        step = np.maximum(0.25 * np.abs(theta0), 0.01)
    elif start is None:
        theta0 = np.concatenate([r.theta_init() for r in remats])
    else:
        theta0 = np.asarray(start, dtype=float)
    if theta0.shape != lower.shape:
        raise HierlmError(f"start must have {lower.size} values (theta, lme4's order), not {theta0.size}")
    theta0 = np.maximum(theta0, lower)
    info = OptInfo()
    best = {"f": np.inf, "x": theta0}

    def f(x, grad):
        info.feval += 1
        val = dev.objective(x, reml)
        if val < best["f"]:
            best["f"], best["x"] = val, x.copy()
        return val if np.isfinite(val) else 1e300

    opt = nlopt.opt(nlopt.LN_BOBYQA, lower.size)
    opt.set_lower_bounds(lower)
    opt.set_min_objective(f)
    opt.set_xtol_abs(control["xtol_abs"])
    opt.set_ftol_abs(control["ftol_abs"])
    opt.set_maxeval(int(control["maxeval"]))
    if step is not None:
        opt.set_initial_step(step)
    try:
        opt.optimize(theta0)
        code = opt.last_optimize_result()
        info.status = {
            nlopt.SUCCESS: "success", nlopt.FTOL_REACHED: "ftol_abs reached",
            nlopt.XTOL_REACHED: "xtol_abs reached", nlopt.MAXEVAL_REACHED: "maxeval reached",
        }.get(code, f"nlopt code {code}")
    except nlopt.RoundoffLimited:
        info.status = "roundoff limited"
    theta = best["x"]
    if info.status == "maxeval reached":
        info.messages.append(f"convergence code: maximum number of evaluations ({control['maxeval']}) reached")

    # lme4's checks
    diag = np.isfinite(lower)
    info.singular = bool(np.any(theta[diag] < control["check_singular_tol"]))
    if info.singular:
        info.messages.append("boundary (singular) fit: see help('isSingular')")
    calc = control["calc_derivs"]
    if calc is None:
        calc = dev.n < 10000
    if calc and not info.singular:
        g, H = deriv12(lambda xs: dev.objective_many(xs, reml), theta)
        info.gradient, info.hessian = g, H
        try:
            scgrad = np.linalg.solve(np.linalg.cholesky(H).T, g)
            maxgrad = float(np.max(np.minimum(np.abs(scgrad), np.abs(g))))
            if maxgrad > control["check_conv_grad_tol"]:
                comp = int(np.argmax(np.minimum(np.abs(scgrad), np.abs(g)))) + 1
                info.messages.append(
                    f"Model failed to converge with max|grad| = {maxgrad:.6g} "
                    f"(tol = {control['check_conv_grad_tol']:g}, component {comp})"
                )
        except np.linalg.LinAlgError:
            ev = np.linalg.eigvalsh(H)
            info.messages.append(
                f"Model failed to converge: degenerate Hessian with {(ev < 0).sum()} negative eigenvalues"
            )
    for msg in info.messages:
        warnings.warn(msg, ConvergenceWarning, stacklevel=4)
    return theta, info
