r"""Fitting a GLMM by the Laplace approximation or adaptive Gauss-Hermite
quadrature, in lme4's two stages.

As lme4's ``glmer`` (``R/lmer.R``, ``mkGlmerDevfun``/``updateGlmerDevfun``/
``optimizeGlmer``):

1. PIRLS from R's starting means (``family$initialize``) at theta's
   starting value gives the starting linear predictor ``lp0``.
2. Stage nAGQ = 0: theta is optimized with beta estimated inside PIRLS
   jointly with u; the criterion is the Laplace deviance at that joint mode.
3. Stage nAGQ >= 1: theta and beta are optimized together, PIRLS finding u
   only; the criterion is the Laplace deviance
   ``log|L|^2 + |u|^2 + aic(y, mu)`` (-2 log-likelihood), or for nAGQ > 1 the
   adaptive Gauss-Hermite deviance of one scalar random-effects term.
4. The Hessian of the stage-2 deviance over (theta, beta) by central finite
   differences (lme4's ``deriv12``, step 1e-4) gives the convergence checks
   and lme4's default ``vcov``: ``2 H^{-1}`` restricted to beta.

lme4 uses minqa's BOBYQA in stage 1 and its Nelder-Mead in stage 2; both
stages here use NLopt's BOBYQA (the optimum is the same; BOBYQA needs fewer
deviance evaluations).  lme4's PIRLS stops at a relative change of the
penalized deviance below 1e-7 and evaluates ``log|L|^2`` at the weights of
the step before; here PIRLS runs to a change of the linear predictor below
1e-12, so the criterion is the Laplace approximation to full precision.  The
two differ by about 1e-4 to 1e-3 deviance units (lme4's value is the larger).
"""

from __future__ import annotations

import contextlib
import warnings
from dataclasses import dataclass

import numpy as np

from ..errors import ConvergenceWarning, HierlmError
from ..lmm.fit import OptInfo
from ..lmm.fit import check_control as check_lmm_control
from .family import Family, check_response
from .pirls import Mode, PirlsError, PirlsSystem

DEFAULT_CONTROL = {
    "nAGQ0initStep": True,
    "pirls": "lme4",
    "tol_pirls": 1e-12,
    "tol_pwrss": 1e-7,
    "maxit": 100,
    "xtol_abs": 1e-7,
    "ftol_abs": 1e-10,
    "maxeval": 100000,
    "calc_derivs": True,
    "use_hessian": None,
    "check_singular_tol": 1e-4,
    "check_conv_grad_tol": 2e-3,
    "check_conv_hess_tol": 1e-6,
    "boundary_tol": 1e-5,
    "start": None,
}


@dataclass
class GLMMOptInfo(OptInfo):
    """What the optimizers did (as the LMM's :class:`OptInfo`), with the
    evaluations of lme4's first stage (nAGQ = 0) counted apart."""

    optimizer: str = "nloptwrap (NLOPT_LN_BOBYQA), two stages"
    feval_stage1: int = 0


def check_control(control: dict) -> dict:
    return check_lmm_control(control, DEFAULT_CONTROL, " for a GLMM fit")


def gh_rule(n: int) -> tuple[np.ndarray, np.ndarray]:
    """Gauss-Hermite nodes and weights for the standard normal density
    (lme4's ``GHrule(n)``: weights sum to 1)."""
    from numpy.polynomial.hermite_e import hermegauss

    z, w = hermegauss(n)
    return z, w / np.sqrt(2.0 * np.pi)


class GLMMDeviance:
    """The deviance functions of both stages, with warm-started PIRLS.

    Parameters
    ----------
    system : PirlsSystem
    nAGQ : int
    control : dict
    """

    def __init__(self, system: PirlsSystem, nAGQ: int, control: dict):
        self.system = system
        self.nAGQ = nAGQ
        self.control = control
        self.ntheta = system.design.ntheta
        self.rule = gh_rule(nAGQ) if nAGQ > 1 else None
        self.lp0 = None
        self.last: dict[bool, Mode | None] = {True: None, False: None}
        self.feval = 0

    def mode(self, theta, beta=None, state: Mode | None = None) -> Mode:
        """Converged PIRLS at theta (joint with beta when ``beta`` is None).

        With ``pirls="lme4"`` (the default) every evaluation starts from
        ``lp0`` and stops by lme4's rule, which makes the criterion lme4's
        function; with ``pirls="exact"`` PIRLS starts from the last mode
        (or ``state``) and runs to full precision.
        """
        sysm, c = self.system, self.control
        joint = beta is None
        kw = dict(tol=c["tol_pirls"], maxit=c["maxit"], tol_pwrss=c["tol_pwrss"])
        if c["pirls"] == "lme4":
            m = sysm.pirls(theta, beta, eta0=self.lp0, lme4=True, **kw)
        else:
            start = state if state is not None else self.last[joint]
            try:
                if start is not None:
                    m = sysm.pirls(theta, beta, state=start, **kw)
                else:
                    m = sysm.pirls(theta, beta, eta0=self.lp0, **kw)
            except PirlsError:
                # the warm start may lie far away: start again where lme4 starts (lp0)
                m = sysm.pirls(theta, beta, eta0=self.lp0, **kw)
        self.last[joint] = m
        return m

    def criterion(self, m: Mode) -> float:
        if self.nAGQ > 1 and m.scaled.joint is False:
            return self.system.agq(m, self.rule)
        return self.system.laplace(m)

    def stage1(self, theta: np.ndarray) -> float:
        """Deviance with beta inside PIRLS (lme4's nAGQ = 0 criterion)."""
        self.feval += 1
        try:
            return self.criterion(self.mode(theta))
        except PirlsError:
            return np.inf

    def stage2(self, pars: np.ndarray, state: Mode | None = None) -> float:
        """Deviance at (theta, beta) (nAGQ = 1: Laplace; > 1: AGQ)."""
        self.feval += 1
        k = self.ntheta
        try:
            return self.criterion(self.mode(pars[:k], pars[k:], state=state))
        except PirlsError:
            return np.inf


def _bobyqa(fun, x0, lower, step, control, maxeval=None) -> tuple[np.ndarray, float, str]:
    """Minimize with NLopt's BOBYQA; returns the best point seen."""
    import nlopt

    best = {"f": np.inf, "x": np.asarray(x0, dtype=float).copy()}

    def f(x, grad):
        val = fun(x)
        if val < best["f"]:
            best["f"], best["x"] = val, x.copy()
        return val if np.isfinite(val) else 1e300

    x0 = np.maximum(np.asarray(x0, dtype=float), lower)
    opt = nlopt.opt(nlopt.LN_BOBYQA, x0.size)
    opt.set_lower_bounds(lower)
    opt.set_min_objective(f)
    opt.set_xtol_abs(control["xtol_abs"])
    opt.set_ftol_abs(control["ftol_abs"])
    opt.set_maxeval(int(maxeval or control["maxeval"]))
    opt.set_initial_step(step)
    try:
        opt.optimize(x0)
        code = opt.last_optimize_result()
        status = {
            nlopt.SUCCESS: "success", nlopt.FTOL_REACHED: "ftol_abs reached",
            nlopt.XTOL_REACHED: "xtol_abs reached", nlopt.MAXEVAL_REACHED: "maxeval reached",
        }.get(code, f"nlopt code {code}")
    except nlopt.RoundoffLimited:
        status = "roundoff limited"
    return best["x"], best["f"], status


def _check_boundary(fun, x: np.ndarray, fval: float, lower: np.ndarray, tol: float) -> tuple[np.ndarray, float]:
    """lme4's ``check.boundary``: a bounded parameter within ``tol`` of its
    bound is set to the bound when that does not increase the deviance."""
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


def _check_hessian(H: np.ndarray, tol: float, what: str = "") -> list[str]:
    """lme4's ``checkHess`` messages."""
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


def _start_values(control, design, k):
    """theta (and fixef) from ``start`` (a theta vector or a dict like lme4's)."""
    start = control["start"]
    theta0, beta0 = None, None
    if start is None:
        return theta0, beta0
    if isinstance(start, dict):
        bad = set(start) - {"theta", "fixef"}
        if bad:
            raise HierlmError(f"start may have keys 'theta' and 'fixef', not {sorted(bad)}")
        theta0, beta0 = start.get("theta"), start.get("fixef")
    else:
        theta0 = start
    if theta0 is not None:
        theta0 = np.asarray(theta0, dtype=float).ravel()
        if theta0.size != k:
            raise HierlmError(f"start theta must have {k} values (lme4's order), not {theta0.size}")
    if beta0 is not None:
        beta0 = np.asarray(beta0, dtype=float).ravel()
        if beta0.size != design.p:
            raise HierlmError(f"start fixef must have {design.p} values ({', '.join(design.xnames)}), "
                              f"not {beta0.size}")
    return theta0, beta0


def _one_blas_thread():
    """One BLAS thread for the fit (threadpoolctl, when installed).

    The matrices here are small (a few hundred rows at most); OpenBLAS's
    threads only add synchronization, and on a busy machine they made a
    grouseticks fit 20 to 50 times slower (0.5 s -> 10-25 s, measured on 2
    cores with other processes running)."""
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:  # pragma: no cover - threadpoolctl comes with the bayes extra
        return contextlib.nullcontext()
    return threadpool_limits(limits=1, user_api="blas")


def fit_glmm(model, family: Family, nAGQ: int = 1, control: dict | None = None, data_name=None):
    """Fit a GLMM as lme4's ``glmer``; returns a :class:`~hierlm.glmm.results.GLMMFit`.

    Parameters
    ----------
    model : hierlm.Model
        A model with a binomial or Poisson family.
    family : Family
    nAGQ : int
        0 (stage 1 only), 1 (Laplace, the default) or up to 25 quadrature
        points (one scalar random-effects term only).
    control : dict
        See :data:`DEFAULT_CONTROL`.
    data_name : str, optional
        Shown as ``Data:`` in the summary.
    """
    with _one_blas_thread():
        return _fit_glmm(model, family, nAGQ, control, data_name)


def _fit_glmm(model, family: Family, nAGQ: int = 1, control: dict | None = None, data_name=None):
    from .results import GLMMFit

    control = check_control(dict(control or {}))
    if control["pirls"] not in ("lme4", "exact"):
        raise HierlmError(f"pirls must be 'lme4' or 'exact', not {control['pirls']!r}")
    if isinstance(nAGQ, bool) or not isinstance(nAGQ, (int, np.integer)) or not 0 <= nAGQ <= 25:
        raise HierlmError(f"nAGQ must be an integer from 0 to 25, not {nAGQ!r}")
    nAGQ = int(nAGQ)
    design = model.design
    if nAGQ > 1 and (len(design.remats) != 1 or design.remats[0].p != 1):
        raise HierlmError(
            "nAGQ > 1 is only available for models with a single, scalar random-effects term "
            f"(this model has {', '.join(str(r.term) for r in design.remats)}); use nAGQ=1 (Laplace)"
        )
    y, wt, ntrials = check_response(design, family)
    if np.unique(y).size < 2:
        raise HierlmError("the response is constant: a GLMM needs at least two distinct response values")
    offset = np.zeros(design.n) if design.offset is None else np.asarray(design.offset, dtype=float)
    system = PirlsSystem(design, family, y, wt, ntrials, offset)
    dev = GLMMDeviance(system, nAGQ, control)
    k = design.ntheta
    lower_t = np.concatenate([r.theta_lower() for r in design.remats])
    theta_init = np.concatenate([r.theta_init() for r in design.remats])
    theta0, beta0 = _start_values(control, design, k)
    info = GLMMOptInfo()

    # lme4's lp0: PIRLS (beta jointly) from R's starting means at the start theta
    try:
        init = system.pirls(theta_init if theta0 is None else theta0, None, tol=control["tol_pirls"],
                            maxit=control["maxit"], tol_pwrss=control["tol_pwrss"],
                            lme4=control["pirls"] == "lme4")
    except PirlsError as exc:
        raise PirlsError(
            f"{exc} at the starting values (R's mustart, theta = {theta_init if theta0 is None else theta0}). "
            f"With the {family.link} link the linear predictor may leave the range of the {family.name} mean "
            "(e.g. a negative Poisson mean with the identity link): try the canonical link, or other "
            "start values (start={'theta': ..., 'fixef': ...})") from None
    dev.lp0 = init.eta
    dev.last[True] = init
    theta = theta_init if theta0 is None else np.maximum(theta0, lower_t)
    if control["nAGQ0initStep"]:
        step = np.full(k, min(0.95, 0.2 * max(np.max(np.abs(theta)), 1e-3)))  # minqa's rhobeg
        theta, f1, status = _bobyqa(dev.stage1, theta, lower_t, step, control)
        if nAGQ == 0:
            theta, f1 = _check_boundary(dev.stage1, theta, f1, lower_t, control["boundary_tol"])
        info.feval_stage1 = dev.feval
        info.status = status
    mode1 = dev.mode(theta)  # joint mode at the stage-1 optimum
    if nAGQ == 0:
        info.feval = dev.feval
        fval = dev.criterion(mode1)
        _singular_check(info, theta, lower_t, control)
        for msg in info.messages:
            warnings.warn(msg, ConvergenceWarning, stacklevel=5)
        return GLMMFit(model, system, dev, family, nAGQ, theta, mode1.beta, fval, info, data_name=data_name)

    # stage 2: theta and beta together, from the stage-1 estimates (as lme4's lp0 and start)
    dev.lp0 = mode1.eta
    beta = mode1.beta if beta0 is None else beta0
    _, w1, _ = system.moments(mode1.eta)
    beta_sd = np.sqrt(np.diag(system.unscaled_vcov(mode1, w1)))
    # lme4's Nelder-Mead steps for this stage: 0.2 * (0.1 for theta, min(SD(beta), 10))
    step = 0.2 * np.concatenate([np.full(k, 0.1), np.minimum(beta_sd, 10.0)])
    lower = np.concatenate([lower_t, np.full(design.p, -np.inf)])
    pars0 = np.concatenate([theta, beta])
    pars, fval, status = _bobyqa(dev.stage2, pars0, lower, step, control)
    if not np.isfinite(fval):
        raise PirlsError("PIRLS failed at every parameter value the optimizer tried; the model cannot be fit")
    pars, fval = _check_boundary(dev.stage2, pars, fval, lower, control["boundary_tol"])
    info.status = status
    info.feval = dev.feval
    best = dev.mode(pars[:k], pars[k:])
    fval = dev.criterion(best)
    if status == "maxeval reached":
        info.messages.append(f"convergence code: maximum number of evaluations ({control['maxeval']}) reached")
    _singular_check(info, pars[:k], lower_t, control)
    if control["calc_derivs"]:
        from ..lmm.fit import deriv12

        g, H = deriv12(lambda xs: np.array([dev.stage2(x, state=best) for x in xs]), pars)
        info.gradient, info.hessian = g, H
        if not info.singular:
            _gradient_check(info, g, H, control)
            hb = H[k:, k:]
            if hb.size:
                info.messages += _check_hessian(hb, control["check_conv_hess_tol"], "fixed-effect ")
            info.messages += _check_hessian(H, control["check_conv_hess_tol"])
        dev.mode(pars[:k], pars[k:], state=best)
    for msg in info.messages:
        warnings.warn(msg, ConvergenceWarning, stacklevel=5)
    return GLMMFit(model, system, dev, family, nAGQ, pars[:k], pars[k:], fval, info, data_name=data_name,
                   mode=best)


def _singular_check(info, theta, lower_t, control):
    bounded = np.isfinite(lower_t)
    info.singular = bool(np.any(theta[bounded] < control["check_singular_tol"]))
    if info.singular:
        info.messages.append("boundary (singular) fit: see help('isSingular')")


def _gradient_check(info, g, H, control):
    try:
        scgrad = np.linalg.solve(np.linalg.cholesky(H).T, g)
    except np.linalg.LinAlgError:
        info.messages.append("unable to evaluate scaled gradient")
        return
    mingrad = np.minimum(np.abs(scgrad), np.abs(g))
    if mingrad.max() > control["check_conv_grad_tol"]:
        info.messages.append(
            f"Model failed to converge with max|grad| = {mingrad.max():.6g} "
            f"(tol = {control['check_conv_grad_tol']:g}, component {int(np.argmax(mingrad)) + 1})"
        )
