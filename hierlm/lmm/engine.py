"""The LMM optimizer: minimize the profiled deviance over theta, run lme4's checks.

As lme4's ``optimizeLmer`` with ``lmerControl(optimizer = "nloptwrap")``:
BOBYQA (:func:`hierlm.optimize.bobyqa`) with ``xtol_abs = ftol_abs = 1e-8``
(and MixedModels.jl's ``ftol_rel = 1e-12``, which only matters for the
deviances of millions of rows)
minimizes the profiled deviance (:mod:`hierlm.lmm.deviance`) over theta,
starting from ones on the diagonals of the T blocks and zeros elsewhere,
lower bound 0 on those diagonals.  After the fit, lme4's checks: a singular
fit (a bounded theta below 1e-4) and, for n < 10000, the scaled gradient
and the Hessian of the deviance by finite differences (lme4's
``deriv12`` / ``checkConv``).
"""

from __future__ import annotations

import copy
import sys
import time
from dataclasses import replace

import numpy as np

from ..design.remat import compact_codes
from ..errors import HierlmError, ModelError
from ..optimize import OptInfo, bobyqa, check_control, deriv12
from .deviance import ProfiledDeviance, make_deviance

DEFAULT_CONTROL = {
    "xtol_abs": 1e-8,
    "ftol_abs": 1e-8,
    # MixedModels.jl's default: a deviance of millions (millions of rows) is not
    # refined below 1e-12 of itself; for small models ftol_abs stops first
    "ftol_rel": 1e-12,
    "maxeval": 100000,
    "calc_derivs": None,  # None: when n < 10000, as lme4
    "check_singular_tol": 1e-4,
    "check_conv_grad_tol": 2e-3,
    "check_conv_hess_tol": 1e-6,
    "start": None,
    "progress": None,  # None: a line every 10 s once a fit has run 10 s; True: every evaluation
}

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
    out = []
    for k, r in enumerate(design.remats):
        # the term's Gram blocks: from the rows, or from the design's blocks
        gram = None if design.gram is None else design.gram.term_alone(k)
        dev1 = make_deviance(replace(design, remats=[r], gram=gram))
        res = bobyqa(lambda x: dev1.objective(x, reml), r.theta_init(), r.theta_lower(), xtol_abs=1e-4,
                     ftol_abs=0.0)
        out.append(res.x if res.status != "roundoff limited" else r.theta_init())
    return np.concatenate(out)


class Progress:
    """Progress lines of a long fit on stderr: evaluations, the current
    criterion, seconds per evaluation.

    ``mode`` None prints once the fit has run ``after`` seconds and then every
    ``every`` seconds (small fits print nothing); True prints every
    evaluation; False nothing.
    """

    def __init__(self, fun, mode, what: str, after: float = 10.0, every: float = 10.0):
        self.fun, self.mode, self.what = fun, mode, what
        self.after, self.every = after, every
        self.clock = time.perf_counter
        self.start = self.last = self.clock()
        self.n = 0

    def __call__(self, x):
        val = self.fun(x)
        self.n += 1
        if self.mode is False:
            return val
        now = self.clock()
        if self.mode is True or (now - self.start >= self.after and now - self.last >= self.every):
            self.last = now
            sys.stderr.write(f"hierlm: {self.n} evaluations, {self.what} {val:.10g}, "
                             f"{(now - self.start) / self.n:.3g} s per evaluation\n")
            sys.stderr.flush()
        return val


# Seconds per evaluation (estimated) from which a fit first optimizes on a
# subsample of the second term's levels (see subsample_start).
SUBSAMPLE_START_SECONDS = 0.5
SUBSAMPLE_START_LEVELS = 400  # fewest levels of the second term to subsample


def subsample_start(design, reml: bool, fraction: float = 0.25, seed: int = 0) -> np.ndarray:
    """Starting theta for a big crossed fit: the optimum on the rows of a
    random ``fraction`` of the second term's levels.

    The dense block of the factor is made of the terms after the first, so a
    quarter of the second term's levels makes each evaluation some 30 times
    cheaper (1/64 of the Cholesky, 1/16 of the products); its optimum is
    within a few percent of the full one (each level's variance is estimated
    from as many rows as before), from where the full fit needs about half
    the evaluations.  The result is the full data's optimum all the same:
    only the path to it changes.
    """
    rng = np.random.default_rng(seed)
    r2 = design.remats[1]
    keep_levels = rng.random(r2.nlevels) < fraction
    rows = np.flatnonzero(keep_levels[r2.codes])
    remats = []
    for r in design.remats:
        codes, used = compact_codes(r.codes[rows], r.nlevels)
        sub = copy.copy(r)
        sub.codes, sub.levels, sub.Xt = codes.astype(np.intp), r.levels[used], r.Xt[rows]
        sub.builder = None
        remats.append(sub)
    if min(r.nlevels for r in remats) < 2:
        return single_term_start(design, reml)
    small = replace(design, y=design.y[rows], X=design.X[rows], remats=remats,
                    weights=None if design.weights is None else design.weights[rows],
                    offset=None if design.offset is None else design.offset[rows])
    dev = make_deviance(small)
    x0 = single_term_start(small, reml)
    res = bobyqa(lambda x: dev.objective(x, reml), x0, np.concatenate([r.theta_lower() for r in remats]),
                 step=np.maximum(0.25 * np.abs(x0), 0.01), xtol_abs=1e-5, ftol_abs=0.0)
    return res.x if np.isfinite(res.fun) else x0


def check_lmm_control(control: dict | None) -> dict:
    """The REML/ML engine's options over :data:`DEFAULT_CONTROL` (unknown keys are an error)."""
    out = check_control(dict(control or {}), DEFAULT_CONTROL, " for a REML/ML fit")
    if out["progress"] not in (None, True, False):
        raise HierlmError(f"control option progress must be None, True or False, not {out['progress']!r}")
    return out


def optimize_theta(dev: ProfiledDeviance, reml: bool, control: dict) -> tuple[np.ndarray, OptInfo]:
    """Minimize the profiled deviance over theta; run lme4's convergence checks.

    ``control`` is a checked control dict (:func:`check_lmm_control`).
    """
    remats = dev.design.remats
    lower = np.concatenate([r.theta_lower() for r in remats])
    start = control["start"]
    step = None
    cost = dev.cost
    if (start is None and cost is not None and cost.seconds_per_eval >= SUBSAMPLE_START_SECONDS
            and not dev.design.rows_free and len(remats) > 1 and remats[1].nlevels >= SUBSAMPLE_START_LEVELS):
        theta0 = subsample_start(dev.design, reml)
        step = np.maximum(0.05 * np.abs(theta0), 0.005)
    elif start is None and len(remats) > 1 and dev.m >= WARM_START_MIN_M:
        theta0 = single_term_start(dev.design, reml)
        step = np.maximum(0.25 * np.abs(theta0), 0.01)
    elif start is None:
        theta0 = np.concatenate([r.theta_init() for r in remats])
    else:
        try:
            theta0 = np.asarray(start, dtype=float).ravel()
        except (TypeError, ValueError):
            raise HierlmError(f"start must be numbers (theta, lme4's order), not {start!r}") from None
        if theta0.shape != lower.shape:
            raise HierlmError(f"start must have {lower.size} values (theta, lme4's order), not {theta0.size}")
        if not np.all(np.isfinite(theta0)):
            raise HierlmError(f"start must be finite, not {theta0.tolist()}")
    what = "REML criterion" if reml else "deviance"
    objective = Progress(lambda x: dev.objective(x, reml), control["progress"], what)
    res = bobyqa(objective, np.maximum(theta0, lower), lower, step=step,
                 xtol_abs=control["xtol_abs"], ftol_abs=control["ftol_abs"], ftol_rel=control["ftol_rel"],
                 maxeval=control["maxeval"])
    theta = res.x
    if not np.isfinite(res.fun):
        scale = dev.ymax
        hint = (f"; the response reaches {scale:.3g}, beyond what double precision can square and sum: "
                "rescale it (e.g. divide by a power of 10)") if scale > 1e100 else \
            "; check the data for extreme values or a degenerate design"
        raise ModelError(f"the profiled deviance is not finite at any theta the optimizer tried{hint}")
    info = OptInfo(feval=res.feval)
    info.record_status(res.status, control["maxeval"])
    info.check_singular(theta, lower, control["check_singular_tol"])
    calc = control["calc_derivs"]
    if calc is None:
        calc = dev.n < 10000
    if calc and not info.singular:  # lme4 skips the derivatives of a singular fit
        info.check_derivatives(*deriv12(lambda xs: dev.objective_many(xs, reml), theta), control)
    return theta, info
