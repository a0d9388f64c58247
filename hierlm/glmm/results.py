"""The fitted GLMM: lme4's accessors on a Laplace or AGQ fit (``glmerMod``)."""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property

import numpy as np
import pandas as pd

from ..errors import HierlmError
from ..family import FamilyError, make_family
from ..fit import LikelihoodFit
from ..optimize import one_blas_thread, warn_all
from .engine import GLMMOptimum, check_glmm_control, optimize_glmm, optimize_with_family_params


@dataclass
class Overdispersion:
    """Pearson chi-square check of overdispersion (the GLMM FAQ's ``overdisp_fun``).

    Attributes
    ----------
    chisq : float
        Sum of squared Pearson residuals.
    ratio : float
        ``chisq / rdf``; about 1 without overdispersion.
    rdf : int
        Residual degrees of freedom: observations minus parameters
        (fixed effects and covariance parameters).
    p_value : float
        Upper tail of the chi-square distribution with ``rdf`` df.
    family : str
    """

    chisq: float
    ratio: float
    rdf: int
    p_value: float
    family: str

    @property
    def overdispersed(self) -> bool:
        """True when the ratio exceeds 1 at the 5% level."""
        return bool(self.ratio > 1 and self.p_value < 0.05)

    def message(self) -> str:
        head = (f"Pearson chi-square {self.chisq:.2f} on {self.rdf} residual df: ratio {self.ratio:.3f}, "
                f"p = {self.p_value:.3g}")
        if self.overdispersed:
            return (head + ". The data are overdispersed for a " + self.family + " model: add an "
                    "observation-level random effect, e.g. data['obs'] = range(len(data)) and "
                    "'+ (1 | obs)' in the formula, and check the ratio again.")
        return head + ". No evidence of overdispersion."

    def __str__(self) -> str:
        return self.message()

    def __repr__(self) -> str:
        return (f"Overdispersion(chisq={self.chisq:.4f}, ratio={self.ratio:.4f}, rdf={self.rdf}, "
                f"p_value={self.p_value:.4g})")


class GLMMFit(LikelihoodFit):
    """A generalized linear mixed model fit by maximum likelihood (lme4's ``glmerMod``).

    Created by :func:`fit_glmm` (the engine's entry point), :func:`hierlm.glmer`
    or ``Model(..., family="binomial").fit()``.  Names follow lme4:
    ``fixef``, ``vcov``, ``theta``, ``varcorr``, ``ranef(condvar=True)``,
    ``coef()``, ``loglik``, ``deviance``, ``aic``, ``bic``, ``nobs``,
    ``ngroups``, ``fitted()`` (means), ``predict(type=)``,
    ``residuals(type=)``, ``simulate()``, ``summary()``, plus
    :meth:`overdispersion`.

    Attributes
    ----------
    family : Family
        Family and link (``fit.family.name``, ``fit.family.link``).
    nAGQ : int
        0, 1 (Laplace) or the number of quadrature points.
    theta : numpy.ndarray
        Relative covariance parameters in lme4's order (sigma is 1).
    optinfo : OptInfo
        Evaluations, status, lme4's convergence messages, gradient and
        Hessian of the deviance at the optimum.
    convergence : hierlm.optimize.Convergence
    devfun : GLMMDeviance
        The deviance functions of both stages (lme4's ``devfun``).
    system : PirlsSystem
        The penalized IRLS system (response, weights, offset, family).
    mode : Mode
        PIRLS at the estimates: conditional modes u, eta, mu.
    """

    kind = "glmm"
    sigma = 1.0

    def __init__(self, optimum: GLMMOptimum, nAGQ: int, *, model=None, data_name: str | None = None):
        self.model = model
        self.system = optimum.system
        self.design = self.system.design
        self.family = self.system.family
        self.nAGQ = int(nAGQ)
        self.theta = np.asarray(optimum.theta, dtype=float)
        self.beta = np.asarray(optimum.beta, dtype=float)
        self.devfun = optimum.devfun
        self.control = optimum.control
        self.fval = float(optimum.fval)
        self.optinfo = optimum.info
        self.convergence = optimum.info.convergence()
        self.data_name = data_name
        self.mode = optimum.mode
        self.b = self.system.b_blocks(self.theta, self.mode.u)
        if self.family.has_dispersion:
            # glmer's sigma for a family with a scale (Gamma): sqrt(pwrss / n), the penalized
            # weighted residual sum of squares (squared Pearson residuals plus |u|^2) over n
            sysm, mu = self.system, self.mode.mu
            pwrss = float(np.sum(sysm.wt * (sysm.y - mu) ** 2 / self.family.variance(mu)) + self.mode.u @ self.mode.u)
            self.sigma = float(np.sqrt(pwrss / sysm.n))

    # ---- criteria ----------------------------------------------------------
    @property
    def loglik(self) -> float:
        """Log-likelihood: minus half the Laplace (or AGQ) deviance, as lme4's
        ``logLik``.  For nAGQ > 1 lme4's value is built from deviance
        residuals and omits the saturated model's constant (so it cannot be
        compared with a Laplace fit's); it is reported the same way here."""
        return -0.5 * self.fval

    @property
    def deviance(self) -> float:
        """Sum of squared deviance residuals at the conditional modes (lme4's
        ``deviance()`` for GLMMs; not ``-2 logLik``, which the summary shows
        under "deviance").  Not defined for the beta family."""
        if not self.family.dist.deviance_residuals:
            raise FamilyError(f"the {self.family.name} family has no deviance (no saturated model), as in "
                              "glmmTMB: use -2 * fit.loglik")
        return float(self.system.dev_resid(self.mode.mu).sum())

    @property
    def df(self) -> int:
        """Number of parameters: fixed effects, theta, the family's estimated parameters
        (the negative binomial's shape) and its scale (Gamma's sigma), as lme4 counts them."""
        dist = self.family.dist
        return (self.design.p + self.design.ntheta + (dist.pack(self.family.params).size if dist.free_params else 0)
                + int(self.family.has_dispersion))

    # ---- an ordinal fit's thresholds ---------------------------------------------
    @property
    def thresholds(self) -> pd.Series:
        """The thresholds (cut points) of an ordinal fit, named as clmm's (``1|2``, ...)."""
        if not self.family.dist.eta_is_mean:
            raise FamilyError(f"{self.family.a_name} fit has no thresholds (an ordinal fit has)")
        return pd.Series(self.family.params["cutpoints"], index=self.design.threshold_names(), name="threshold")

    def threshold_table(self) -> pd.DataFrame:
        """clmm's "Threshold coefficients": ``Estimate, Std. Error, z value``, the
        standard errors from the Hessian over theta, beta and the thresholds."""
        a = self.thresholds
        H = self.optinfo.hessian
        if H is None:
            se = np.full(a.size, np.nan)
        else:
            k = self.design.ntheta + self.design.p
            se = np.sqrt(np.diag(2.0 * np.linalg.inv(H))[k:])
        return pd.DataFrame({"Estimate": a.to_numpy(), "Std. Error": se, "z value": a.to_numpy() / se},
                            index=a.index)

    @property
    def weights(self) -> pd.Series:
        """Prior weights (for ``cbind(s, f)``: the trials ``s + f``)."""
        return pd.Series(self.system.wt, index=self.index, name="weights")

    # ---- variance components ------------------------------------------------
    @cached_property
    def vcov(self) -> pd.DataFrame:
        """Covariance matrix of the fixed effects.

        As lme4's ``vcov`` for ``glmer`` fits: ``2 H^{-1}`` restricted to
        beta, with H the finite-difference Hessian of the deviance over
        (theta, beta) at the optimum (``use.hessian = TRUE``; for the beta
        family over the log precision too, as glmmTMB), falling back
        to ``(R_X' R_X)^{-1}`` of the PIRLS system when the Hessian is not
        available (nAGQ = 0, ``calc_derivs=False``) or not positive definite.
        """
        V = None
        H = self.optinfo.hessian
        k = self.design.ntheta
        use = self.control.get("use_hessian")
        if H is not None and use is not False:
            try:
                p = self.design.p  # (a family parameter may follow beta: the beta block only)
                Vh = np.linalg.inv(H)[k:k + p, k:k + p]
                Vh = Vh + Vh.T
                if np.all(np.isfinite(Vh)) and np.linalg.eigvalsh(Vh).min() > 0:
                    V = Vh
            except np.linalg.LinAlgError:
                V = None
            if V is None:
                import warnings

                warnings.warn("variance-covariance matrix computed from finite-difference Hessian is not "
                              "positive definite or contains NA values: falling back to var-cov estimated "
                              "from RX", UserWarning, stacklevel=2)
        elif use is True:
            raise HierlmError("use_hessian=True, but the Hessian is unavailable (calc_derivs=False or nAGQ=0)")
        if V is None:
            _, w, _ = self.system.moments(self.mode.eta)
            V = self.system.unscaled_vcov(self.mode, w)
        names = self.design.xnames
        return pd.DataFrame(V, index=names, columns=names)

    @cached_property
    def condvar(self) -> list[np.ndarray]:
        """Conditional covariances of the random effects per term, ``(levels, p_k, p_k)``."""
        _, w, _ = self.system.moments(self.mode.eta)
        return self.system.condvar(self.mode, w)

    def coef_table(self) -> pd.DataFrame:
        """Wald tests of the fixed effects as glmer's summary:
        ``Estimate, Std. Error, z value, Pr(>|z|)``."""
        from scipy import stats

        est = self.fixef.to_numpy()
        se = np.sqrt(np.diag(self.vcov.to_numpy()))
        z = est / se
        # glmer labels the statistic "t value" for a family with a scale (Gamma), its p-value still normal
        stat = "t value" if self.family.has_dispersion else "z value"
        return pd.DataFrame({"Estimate": est, "Std. Error": se, stat: z,
                             "Pr(>|z|)": 2.0 * stats.norm.sf(np.abs(z))}, index=self.design.xnames)

    def overdispersion(self) -> Overdispersion:
        """Overdispersion check: squared Pearson residuals over the residual df.

        The GLMM FAQ's ``overdisp_fun`` (Bolker): ``chisq = sum(pearson^2)``,
        ``ratio = chisq / rdf`` with ``rdf = nobs - (fixed effects + covariance
        parameters)``, ``p = P(chi2_rdf > chisq)``.  A ratio well above 1
        means more variation than the family allows; the usual remedy is an
        observation-level random effect ``(1 | obs)``.

        Raises
        ------
        HierlmError
            For a 0/1 (Bernoulli) response, whose overdispersion the data
            cannot show.
        """
        from scipy import stats

        sysm = self.system
        if self.family.name == "binomial" and np.all(np.round(sysm.ntrials) <= 1) and np.all(sysm.wt <= 1):
            raise HierlmError("overdispersion cannot be assessed for a 0/1 (Bernoulli) response; it needs "
                              "counts (Poisson) or binomial trials > 1")
        chisq = float(np.sum(self.residuals("pearson").to_numpy() ** 2))
        rdf = self.df_residual
        return Overdispersion(chisq=chisq, ratio=chisq / rdf, rdf=rdf, p_value=float(stats.chi2.sf(chisq, rdf)),
                              family=self.family.name)

    # ---- printing -----------------------------------------------------------
    @property
    def fit_label(self) -> str:
        return "Laplace" if self.nAGQ == 1 else f"nAGQ = {self.nAGQ}"

    @property
    def max_grad(self) -> float:
        """The largest absolute gradient of -logLik over every estimated parameter at
        the optimum (clmm's ``max.grad``; NaN without the derivatives)."""
        g = self.optinfo.gradient
        return float(np.max(np.abs(g)) / 2.0) if g is not None else float("nan")

    def method_name(self) -> str:
        if self.nAGQ == 0:
            return "Laplace Approximation, nAGQ = 0"
        if self.nAGQ == 1:
            return "Laplace Approximation"
        return f"Adaptive Gauss-Hermite Quadrature, nAGQ = {self.nAGQ}"


def fit_glmm(design, family, nAGQ: int = 1, control: dict | None = None, *, model=None,
             data_name: str | None = None) -> GLMMFit:
    """Fit a GLMM as lme4's ``glmer``: the engine's entry point.

    Parameters
    ----------
    design : hierlm.design.build.Design
    family : Family or str
        Binomial or Poisson family (with its link).
    nAGQ : int
        0 (stage 1 only), 1 (Laplace, the default) or up to 25 quadrature
        points (one scalar random-effects term only).
    control : dict, optional
        See :data:`hierlm.glmm.engine.DEFAULT_CONTROL`.
    model : hierlm.Model, optional
        Kept on the fit.
    data_name : str, optional
        Shown as ``Data:`` in the summary.

    Returns
    -------
    GLMMFit
    """
    family = make_family(family)
    if family.is_gaussian:
        raise HierlmError("fit_glmm fits binomial, Poisson, negative binomial and Gamma models; a gaussian "
                          "model is fit by fit_lmm (REML or ML)")
    control = check_glmm_control(control)
    with one_blas_thread():
        if family.dist.free_params:
            optimum = optimize_with_family_params(design, family, nAGQ, control)
        else:
            optimum = optimize_glmm(design, family, nAGQ, control)
        fit = GLMMFit(optimum, nAGQ, model=model, data_name=data_name)
    warn_all(fit.optinfo.messages, stacklevel=3)
    return fit
