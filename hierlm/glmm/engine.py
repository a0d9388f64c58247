r"""The GLMM optimizer: the Laplace approximation or adaptive Gauss-Hermite
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

from dataclasses import dataclass

import numpy as np

from ..errors import ConvergenceWarning, HierlmError
from ..family import Family, FamilyError, check_response
from ..optimize import OptInfo, bobyqa, check_boundary, check_control, deriv12
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


GLMM_OPTIMIZER = "nloptwrap (NLOPT_LN_BOBYQA), two stages"


def check_glmm_control(control: dict | None) -> dict:
    """The Laplace/AGQ engine's options over :data:`DEFAULT_CONTROL` (unknown keys are an error)."""
    control = check_control(dict(control or {}), DEFAULT_CONTROL, " for a GLMM fit")
    if control["pirls"] not in ("lme4", "exact"):
        raise HierlmError(f"pirls must be 'lme4' or 'exact', not {control['pirls']!r}")
    return control


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
    try:
        theta0 = None if theta0 is None else np.asarray(theta0, dtype=float).ravel()
        beta0 = None if beta0 is None else np.asarray(beta0, dtype=float).ravel()
    except (TypeError, ValueError):
        raise HierlmError(f"start must be numbers (theta, and fixef in a dict), not {start!r}") from None
    for name, v in (("theta", theta0), ("fixef", beta0)):
        if v is not None and not np.all(np.isfinite(v)):
            raise HierlmError(f"start {name} must be finite, not {v.tolist()}")
    if theta0 is not None:
        if theta0.size != k:
            raise HierlmError(f"start theta must have {k} values (lme4's order), not {theta0.size}")
    if beta0 is not None:
        if beta0.size != design.p:
            raise HierlmError(f"start fixef must have {design.p} values ({', '.join(design.xnames)}), "
                              f"not {beta0.size}")
    return theta0, beta0


@dataclass
class GLMMOptimum:
    """What the two stages found: the estimates, the criterion there, the
    PIRLS system, the deviance functions and the conditional mode."""

    theta: np.ndarray
    beta: np.ndarray
    fval: float
    info: OptInfo
    system: PirlsSystem
    devfun: GLMMDeviance
    mode: Mode
    control: dict


def optimize_glmm(design, family: Family, nAGQ: int, control: dict) -> GLMMOptimum:
    """lme4's two stages (module docstring) on a checked ``control``
    (:func:`check_glmm_control`); run lme4's convergence checks."""
    if isinstance(nAGQ, bool) or not isinstance(nAGQ, (int, np.integer)) or not 0 <= nAGQ <= 25:
        raise HierlmError(f"nAGQ must be an integer from 0 to 25, not {nAGQ!r}")
    nAGQ = int(nAGQ)
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
    info = OptInfo(optimizer=GLMM_OPTIMIZER)

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
    opt = dict(xtol_abs=control["xtol_abs"], ftol_abs=control["ftol_abs"], maxeval=control["maxeval"])
    if control["nAGQ0initStep"]:
        step = np.full(k, min(0.95, 0.2 * max(np.max(np.abs(theta)), 1e-3)))  # minqa's rhobeg
        res = bobyqa(dev.stage1, theta, lower_t, step=step, **opt)
        theta, f1 = res.x, res.fun
        if nAGQ == 0:
            theta, f1 = check_boundary(dev.stage1, theta, f1, lower_t, control["boundary_tol"])
        info.feval_stage1 = dev.feval
        info.status = res.status
    mode1 = dev.mode(theta)  # joint mode at the stage-1 optimum
    if nAGQ == 0:
        info.feval = dev.feval
        fval = dev.criterion(mode1)
        info.check_singular(theta, lower_t, control["check_singular_tol"])
        return GLMMOptimum(theta, mode1.beta, fval, info, system, dev, mode1, control)

    # stage 2: theta and beta together, from the stage-1 estimates (as lme4's lp0 and start)
    dev.lp0 = mode1.eta
    beta = mode1.beta if beta0 is None else beta0
    _, w1, _ = system.moments(mode1.eta)
    beta_sd = np.sqrt(np.diag(system.unscaled_vcov(mode1, w1)))
    # lme4's Nelder-Mead steps for this stage: 0.2 * (0.1 for theta, min(SD(beta), 10))
    step = 0.2 * np.concatenate([np.full(k, 0.1), np.minimum(beta_sd, 10.0)])
    lower = np.concatenate([lower_t, np.full(design.p, -np.inf)])
    pars0 = np.concatenate([theta, beta])
    # xtol relative to a fixed effect's SD when that is below 1: with the inverse link of a
    # Gamma model the fixed effects are ~1e-3 with SDs ~1e-4, which an absolute 1e-7 leaves
    # unconverged (the gradient at the stop was 40 times lme4's)
    xtol = np.concatenate([np.full(k, control["xtol_abs"]), control["xtol_abs"] * np.minimum(1.0, beta_sd)])
    res = bobyqa(dev.stage2, pars0, lower, step=step, **dict(opt, xtol_abs=xtol))
    pars, fval, status = res.x, res.fun, res.status
    if not np.isfinite(fval):
        raise PirlsError("PIRLS failed at every parameter value the optimizer tried; the model cannot be fit")
    pars, fval = check_boundary(dev.stage2, pars, fval, lower, control["boundary_tol"])
    info.feval = dev.feval
    best = dev.mode(pars[:k], pars[k:])
    fval = dev.criterion(best)
    info.record_status(status, control["maxeval"])
    info.check_singular(pars[:k], lower_t, control["check_singular_tol"])
    if control["calc_derivs"]:
        g, H = deriv12(lambda xs: np.array([dev.stage2(x, state=best) for x in xs]), pars)
        info.check_derivatives(g, H, control, fixed=slice(k, None))
        dev.mode(pars[:k], pars[k:], state=best)
    return GLMMOptimum(pars[:k], pars[k:], fval, info, system, dev, best, control)


#: how far (in log units) around its start a family parameter is searched (lme4's glmer.nb: 3)
PARAM_INTERVAL = 3.0


def optimize_with_family_params(design, family: Family, nAGQ: int, control: dict) -> GLMMOptimum:
    """The Laplace fit of a family with parameters to estimate (the negative binomial's
    shape theta), as lme4's ``glmer.nb``: the base family's fit (Poisson) starts the
    parameter at its maximum likelihood given those means (MASS's ``theta.ml``); the
    deviance profiled over (theta, beta) is then minimized over the parameter's log
    within +-3 of the start (lme4: ``optimize``, tolerance 5e-5; here Brent's bounded
    method to 1e-7, each evaluation a fit warm-started from the last), and the model is
    fit once more at the optimum, with lme4's checks and Hessian.  PIRLS runs to full
    precision throughout (``pirls="exact"``).
    """
    import warnings

    from scipy import optimize

    dist = family.dist
    # PIRLS to full precision: lme4's stopping rule makes the deviance depend on the path by
    # ~1e-5, which the profile search over the parameter would see as noise; with it the
    # optimum is lme4's (Owls: estimates within 3e-5, the Laplace deviance equal to 1e-12)
    control = dict(control, pirls="exact")
    y, wt, _ = check_response(design, family)  # the family's own checks, before the base family's fit
    base = optimize_glmm(design, dist.base(family, y, wt), nAGQ, dict(control, calc_derivs=False))
    if dist.joint_params:
        return _optimize_jointly(design, family, nAGQ, control, base, dist.start_params(y, base.mode.mu, wt))
    (name,) = dist.free_params  # profiled: one parameter
    start = float(dist.start_params(y, base.mode.mu, wt)[name])
    last = {"theta": base.theta, "fixef": base.beta}
    evals = []

    def profiled(log_p: float) -> float:
        fam = family.with_params(**{name: float(np.exp(log_p))})
        try:
            opt = optimize_glmm(design, fam, nAGQ, dict(control, calc_derivs=False, start=dict(last)))
        except PirlsError:
            return np.inf
        last.update(theta=opt.theta, fixef=opt.beta)
        evals.append((log_p, opt.fval))
        return opt.fval

    lo, hi = np.log(start) - PARAM_INTERVAL, np.log(start) + PARAM_INTERVAL
    res = optimize.minimize_scalar(profiled, bounds=(lo, hi), method="bounded", options={"xatol": 1e-7})
    value = float(np.exp(res.x))
    if min(res.x - lo, hi - res.x) < 1e-3:
        warnings.warn(f"the {family.name} parameter {name} = {value:.4g} is at the end of its search interval "
                      f"[{np.exp(lo):.4g}, {np.exp(hi):.4g}] around its start {start:.4g}"
                      + ("; the data may not be overdispersed (a Poisson model may fit as well)"
                         if family.name == "negbinomial" and res.x > np.log(start) else ""),
                      ConvergenceWarning, stacklevel=4)
    final = optimize_glmm(design, family.with_params(**{name: value}), nAGQ, dict(control, start=dict(last)))
    final.info.feval_family = len(evals)
    return final


def _optimize_jointly(design, family: Family, nAGQ: int, control: dict, base: GLMMOptimum,
                      start: dict) -> GLMMOptimum:
    """glmmTMB's (and clmm's) estimate of a family's parameters: the Laplace deviance
    minimized over (theta, beta, the parameters as free reals) together (BOBYQA), from
    the base fit's theta and beta and the parameters' start; then the fit at the optimum
    for lme4's checks, and the Hessian over all of them (the parameters in their natural
    coordinates: the beta family's log precision, the ordinal thresholds), so that the
    fixed effects' covariance carries the parameters' uncertainty (the Hessian at fixed
    parameters gave beta SEs up to 0.35% smaller).

    Each evaluation is one PIRLS at the given values, against a full fit per value when the
    parameter is profiled (glmer.nb's way): 1 s instead of 9 s for a beta model of 1703 rows.
    """
    k, p = design.ntheta, design.p
    system, dev, dist = base.system, base.devfun, family.dist

    def with_free(x) -> Family | None:
        try:
            return family.with_params(**dist.unpack(x))
        except FamilyError:
            return None

    def deviance(x: np.ndarray) -> float:
        fam = with_free(x[k + p:])
        if fam is None:
            return np.inf
        system.set_family(fam)
        return dev.stage2(x[:k + p])

    _, w, _ = system.moments(base.mode.eta)
    beta_sd = np.sqrt(np.diag(system.unscaled_vcov(base.mode, w)))
    free0 = dist.pack(start)
    nf = free0.size
    x0 = np.concatenate([base.theta, base.beta, free0])
    lower = np.concatenate([np.concatenate([r.theta_lower() for r in design.remats]), np.full(p + nf, -np.inf)])
    step = 0.2 * np.concatenate([np.full(k, 0.1), np.minimum(beta_sd, 10.0), np.full(nf, 0.5)])
    xtol = np.concatenate([np.full(k, control["xtol_abs"]), control["xtol_abs"] * np.minimum(1.0, beta_sd),
                           np.full(nf, control["xtol_abs"])])
    res = bobyqa(deviance, x0, lower, step=step, xtol_abs=xtol, ftol_abs=control["ftol_abs"],
                 maxeval=control["maxeval"])
    if not np.isfinite(res.fun):
        raise PirlsError(f"PIRLS failed at every value of the {family.name} family's parameters the optimizer "
                         "tried")
    fitted = with_free(res.x[k + p:])
    final = optimize_glmm(design, fitted, nAGQ,
                          dict(control, nAGQ0initStep=False,
                               start={"theta": res.x[:k], "fixef": res.x[k:k + p]}))
    final.info.feval_family = res.feval  # the joint search's evaluations
    if final.info.hessian is not None:
        system, pars = final.system, np.concatenate([final.theta, final.beta])

        def deviances(xs):
            out = []
            for x in xs:
                try:
                    fam = family.with_params(**dist.from_natural(x[k + p:]))
                except FamilyError:
                    out.append(np.inf)
                    continue
                system.set_family(fam)
                out.append(final.devfun.stage2(x[:k + p], state=final.mode))
            return np.array(out)

        try:
            g, H = deriv12(deviances, np.append(pars, dist.natural(fitted.params)))
        finally:
            system.set_family(fitted)
            final.devfun.mode(final.theta, final.beta, state=final.mode)
        final.info.hessian = H
        final.info.gradient = g
    return final
