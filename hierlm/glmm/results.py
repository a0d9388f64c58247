"""The fitted GLMM: lme4's accessors on a Laplace or AGQ fit (``glmerMod``)."""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property

import numpy as np
import pandas as pd

from ..errors import DataError, HierlmError
from ..lmm.results import MixedFitBase
from .family import Family
from .fit import GLMMDeviance, GLMMOptInfo
from .pirls import Mode, PirlsSystem


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


class GLMMFit(MixedFitBase):
    """A generalized linear mixed model fit by maximum likelihood (lme4's ``glmerMod``).

    Created by :func:`hierlm.glmer` or ``Model(..., family="binomial").fit()``.
    Names follow lme4: ``fixef``, ``vcov``, ``theta``, ``varcorr``,
    ``ranef(condvar=True)``, ``coef()``, ``loglik``, ``deviance``, ``aic``,
    ``bic``, ``nobs``, ``ngroups``, ``fitted()`` (means), ``predict(type=)``,
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
    optinfo : GLMMOptInfo
        Evaluations, status, lme4's convergence messages, gradient and
        Hessian of the deviance at the optimum.
    """

    sigma = 1.0

    def __init__(self, model, system: PirlsSystem, dev: GLMMDeviance, family: Family, nAGQ: int,
                 theta, beta, fval: float, optinfo: GLMMOptInfo, data_name: str | None = None,
                 mode: Mode | None = None):
        self.model = model
        self.design = model.design
        self.family = family
        self.nAGQ = int(nAGQ)
        self.theta = np.asarray(theta, dtype=float)
        self._beta = np.asarray(beta, dtype=float)
        self._system = system
        self._dev = dev
        self._fval = float(fval)
        self.optinfo = optinfo
        self.data_name = data_name
        if mode is None:
            mode = dev.mode(self.theta, None if nAGQ == 0 else self._beta)
        self._mode = mode
        self._b = system.b_blocks(self.theta, mode.u)

    # ---- criteria ----------------------------------------------------------
    @property
    def loglik(self) -> float:
        """Log-likelihood: minus half the Laplace (or AGQ) deviance, as lme4's
        ``logLik``.  For nAGQ > 1 lme4's value is built from deviance
        residuals and omits the saturated model's constant (so it cannot be
        compared with a Laplace fit's); it is reported the same way here."""
        return -0.5 * self._fval

    @property
    def deviance(self) -> float:
        """Sum of squared deviance residuals at the conditional modes (lme4's
        ``deviance()`` for GLMMs; not ``-2 logLik``, which the summary shows
        under "deviance")."""
        return float(self._system.dev_resid(self._mode.mu).sum())

    @property
    def df(self) -> int:
        """Number of parameters: fixed effects and theta."""
        return self.design.p + self.design.ntheta

    @property
    def df_residual(self) -> int:
        return self.nobs - self.df

    @property
    def aic(self) -> float:
        return -2.0 * self.loglik + 2.0 * self.df

    @property
    def bic(self) -> float:
        return -2.0 * self.loglik + np.log(self.nobs) * self.df

    @property
    def singular(self) -> bool:
        """lme4's ``isSingular``: a bounded theta below 1e-4."""
        return self.optinfo.singular

    @property
    def weights(self) -> pd.Series:
        """Prior weights (for ``cbind(s, f)``: the trials ``s + f``)."""
        return pd.Series(self._system.wt, index=self._index(), name="weights")

    # ---- variance components ------------------------------------------------
    @cached_property
    def varcorr(self) -> pd.DataFrame:
        """Variance components as lme4's ``as.data.frame(VarCorr(m))`` (no residual row)."""
        vc = MixedFitBase.varcorr.func(self)
        return vc[vc["group"] != "Residual"].reset_index(drop=True)

    @cached_property
    def vcov(self) -> pd.DataFrame:
        """Covariance matrix of the fixed effects.

        As lme4's ``vcov`` for ``glmer`` fits: ``2 H^{-1}`` restricted to
        beta, with H the finite-difference Hessian of the deviance over
        (theta, beta) at the optimum (``use.hessian = TRUE``), falling back
        to ``(R_X' R_X)^{-1}`` of the PIRLS system when the Hessian is not
        available (nAGQ = 0, ``calc_derivs=False``) or not positive definite.
        """
        V = None
        H = self.optinfo.hessian
        k = self.design.ntheta
        use = self._dev.control.get("use_hessian")
        if H is not None and use is not False:
            try:
                Vh = np.linalg.inv(H)[k:, k:]
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
            _, w, _ = self._system.moments(self._mode.eta)
            V = self._system.unscaled_vcov(self._mode, w)
        names = self.design.xnames
        return pd.DataFrame(V, index=names, columns=names)

    @cached_property
    def _condvar(self) -> list[np.ndarray]:
        _, w, _ = self._system.moments(self._mode.eta)
        return self._system.condvar(self._mode, w)

    def coef_table(self) -> pd.DataFrame:
        """Wald tests of the fixed effects as glmer's summary:
        ``Estimate, Std. Error, z value, Pr(>|z|)``."""
        from scipy import stats

        est = self.fixef.to_numpy()
        se = np.sqrt(np.diag(self.vcov.to_numpy()))
        z = est / se
        return pd.DataFrame({"Estimate": est, "Std. Error": se, "z value": z,
                             "Pr(>|z|)": 2.0 * stats.norm.sf(np.abs(z))}, index=self.design.xnames)

    # ---- fitted values, predictions, residuals ------------------------------
    def _offset(self) -> np.ndarray:
        return self._system.offset

    def fitted(self) -> pd.Series:
        """Fitted means mu (on the response scale, as lme4's ``fitted``)."""
        return pd.Series(self._mode.mu, index=self._index(), name="fitted")

    def predict(self, newdata: pd.DataFrame | None = None, re_form=None, allow_new_levels: bool = False,
                type: str = "link") -> pd.Series:
        """Predictions on the link or the response scale (lme4's ``predict``).

        Parameters
        ----------
        newdata : pandas.DataFrame, optional
            Rows to predict for (default: the data of the fit).  The
            formula's ``offset()`` terms are evaluated on it; an ``offset=``
            argument of the fit is not (as lme4).
        re_form : None, False or str
            ``None``: all random effects; ``False`` / ``"~0"``: population
            level; ``"~(1|g)"``: only the terms on ``g``.
        allow_new_levels : bool
            New levels get random effect 0 instead of an error.
        type : {"link", "response"}
            Linear predictor, or mean ``g^{-1}(eta)``.

        Returns
        -------
        pandas.Series
        """
        if type not in ("link", "response"):
            raise HierlmError(f"type must be 'link' or 'response', not {type!r}")
        eta = super().predict(newdata=newdata, re_form=re_form, allow_new_levels=allow_new_levels)
        if newdata is None:
            off = self._offset()
        else:
            off = np.zeros(len(newdata))
            d = self.design
            if d.offset_builders:
                frame = self._offset_frame(newdata)
                for b in d.offset_builders:
                    off = off + b.rebuild(frame)[:, 0]
        vals = eta.to_numpy() + off
        if type == "response":
            vals = self.family.linkinv(vals)
        return pd.Series(vals, index=eta.index, name="predicted")

    def _offset_frame(self, newdata: pd.DataFrame) -> pd.DataFrame:
        from ..design.data import referenced_names

        cols = {name for e in self.design.formula.offsets for name, _ in referenced_names(e)}
        missing = sorted(c for c in cols if c not in newdata.columns)
        if missing:
            raise DataError(f"newdata lacks column(s) {missing} used by the offset")
        return newdata[sorted(cols)].reset_index(drop=True)

    def residuals(self, type: str = "deviance", scaled: bool = False) -> pd.Series:
        """Residuals as lme4's ``residuals`` for GLMMs.

        Parameters
        ----------
        type : {"deviance", "pearson", "response", "working"}
            Signed square roots of the deviance residuals (default);
            ``sqrt(wt / V(mu)) (y - mu)``; ``y - mu``; ``(y - mu) / mu_eta``.
        scaled : bool
            Divide by sigma (which is 1 for binomial and Poisson).
        """
        sysm, mu = self._system, self._mode.mu
        y = sysm.y
        if type == "deviance":
            r = np.sign(y - mu) * np.sqrt(np.maximum(sysm.dev_resid(mu), 0.0))
        elif type == "pearson":
            r = np.sqrt(sysm.wt / self.family.variance(mu)) * (y - mu)
        elif type == "response":
            r = y - mu
        elif type == "working":
            r = (y - mu) / self.family.mu_eta(self._mode.eta + sysm.offset)
        else:
            raise HierlmError(f"type must be 'deviance', 'pearson', 'response' or 'working', not {type!r}")
        return pd.Series(r / self.sigma if scaled else r, index=self._index(), name="residuals")

    def simulate(self, nsim: int = 1, seed=None, use_u: bool = False) -> pd.DataFrame:
        """Simulate responses (lme4's ``simulate``): new random effects drawn
        from their fitted distribution (or the conditional modes with
        ``use_u=True``), then responses from the family.

        Returns
        -------
        pandas.DataFrame
            n rows, columns ``sim_1 ... sim_nsim``; binomial responses as
            proportions of the trials (multiply by :attr:`weights` for counts).
        """
        if not isinstance(nsim, (int, np.integer)) or nsim < 1:
            raise HierlmError(f"nsim must be a positive integer, not {nsim!r}")
        rng = np.random.default_rng(seed)
        d, sysm = self.design, self._system
        base = d.X @ self._beta + sysm.offset
        out = np.empty((d.n, nsim))
        for s in range(nsim):
            eta = base.copy()
            for k, (r, sl) in enumerate(zip(d.remats, d.theta_slices())):
                if use_u:
                    b = self._b[k]
                else:
                    b = rng.standard_normal((r.nlevels, r.p)) @ r.T(self.theta[sl]).T
                eta += r.Zb(b)
            out[:, s] = self.family.simulate(self.family.linkinv(eta), sysm.wt, sysm.ntrials, rng)
        return pd.DataFrame(out, index=self._index(), columns=[f"sim_{i + 1}" for i in range(nsim)])

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

        sysm = self._system
        if self.family.name == "binomial" and np.all(np.round(sysm.ntrials) <= 1) and np.all(sysm.wt <= 1):
            raise HierlmError("overdispersion cannot be assessed for a 0/1 (Bernoulli) response; it needs "
                              "counts (Poisson) or binomial trials > 1")
        chisq = float(np.sum(self.residuals("pearson").to_numpy() ** 2))
        rdf = self.df_residual
        return Overdispersion(chisq=chisq, ratio=chisq / rdf, rdf=rdf, p_value=float(stats.chi2.sf(chisq, rdf)),
                              family=self.family.name)

    # ---- not (yet) for GLMMs --------------------------------------------------
    def icc(self):
        """Not available for GLMMs yet (the Gaussian formula would be wrong here)."""
        raise HierlmError("icc() is not available for binomial/Poisson fits yet: their residual variance "
                          "is not sigma^2 (performance::icc uses distribution-specific variances)")

    def r2(self):
        """Not available for GLMMs yet (the Gaussian formula would be wrong here)."""
        raise HierlmError("r2() is not available for binomial/Poisson fits yet: their residual variance "
                          "is not sigma^2 (performance::r2_nakagawa uses distribution-specific variances)")

    def to_bambi(self, **kwargs):
        """Not available for GLMMs yet."""
        raise HierlmError("to_bambi() is not available for binomial/Poisson fits yet")

    # ---- printing -----------------------------------------------------------
    def method_name(self) -> str:
        if self.nAGQ == 0:
            return "Laplace Approximation, nAGQ = 0"
        if self.nAGQ == 1:
            return "Laplace Approximation"
        return f"Adaptive Gauss-Hermite Quadrature, nAGQ = {self.nAGQ}"

    def summary(self):
        """glmer's ``summary()``: print it, or show it in a notebook."""
        from .summary import GLMMSummary

        return GLMMSummary(self)

    def __repr__(self) -> str:
        from .summary import short_repr

        return short_repr(self)

    def _repr_html_(self) -> str:
        return self.summary()._repr_html_()
