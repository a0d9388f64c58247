"""The fitted linear mixed model: lme4's accessors on a REML or ML fit."""

from __future__ import annotations

from dataclasses import replace
from functools import cached_property

import numpy as np
import pandas as pd

from ..errors import HierlmError
from ..family import Family
from ..fit import LikelihoodFit
from ..optimize import OptInfo, warn_all
from .deviance import ProfiledDeviance, gram_of, make_deviance
from .engine import check_lmm_control, optimize_theta

GAUSSIAN = Family("gaussian")


class LMMFit(LikelihoodFit):
    """A linear mixed model fit by REML or ML.

    Created by :func:`hierlm.lmer` or ``Model(...).fit("reml" | "ml")``.
    Names follow lme4: ``fixef``, ``vcov``, ``sigma``, ``theta``, ``varcorr``,
    ``ranef()``, ``coef()``, ``loglik``, ``deviance``, ``reml_criterion``,
    ``aic``, ``bic``, ``nobs``, ``ngroups``, ``fitted()``, ``residuals()``,
    ``predict()``, ``simulate()``, ``summary()``.

    Attributes
    ----------
    theta : numpy.ndarray
        Relative covariance parameters in lme4's order (lower triangles of
        the T blocks, column-major, terms largest first).
    sigma : float
        Residual standard deviation.
    reml : bool
        True for a REML fit.
    optinfo : OptInfo
        Optimizer status, evaluations, gradient and Hessian.
    convergence : hierlm.optimize.Convergence
        ``converged`` and lme4's convergence messages.
    devfun : ProfiledDeviance
        The profiled deviance the fit minimized (lme4's ``devfun``).
    factorization : Factorization
        Its blocked Cholesky factor at theta.

    Created by :func:`hierlm.lmm.fit_lmm` (the engine's entry point); the
    constructor evaluates the fit at a given theta without optimizing.
    """

    kind = "lmm"
    family = GAUSSIAN

    @property
    def fit_label(self) -> str:
        return "REML" if self.reml else "ML"

    def __init__(self, devfun: ProfiledDeviance, theta: np.ndarray, reml: bool, optinfo: OptInfo, *,
                 model=None, data_name: str | None = None):
        self.model = model
        self.design = devfun.design
        self.devfun = devfun
        self.theta = np.asarray(theta, dtype=float)
        self.reml = bool(reml)
        self.optinfo = optinfo
        self.convergence = optinfo.convergence()
        self.data_name = data_name
        f = devfun.factor(self.theta)
        if f is None:
            raise HierlmError("the fitted theta gives a singular system; the model cannot be fit")
        self.factorization = f
        self.beta, self.b = devfun.solve(f)
        d = self.design
        self.sigma = float(np.sqrt(f.pwrss / (d.n - d.p if reml else d.n)))

    def refit(self, newresp, **control) -> "LMMFit":
        """The same model fit to a new response (lme4's ``refit(m, newresp)``).

        Parameters
        ----------
        newresp : array-like
            New response, one value per row used by this fit (e.g. a column
            of :meth:`simulate`); for a fit on a dask DataFrame, the tuple
            ``(Z'y, X'y, y'y)`` of the new response's cross-products.
        **control
            Optimizer settings as for :meth:`hierlm.Model.fit`; the optimizer
            starts from this fit's theta unless ``start`` is given.

        Returns
        -------
        LMMFit
        """
        if self.design.rows_free:
            # the rows are on the cluster: the new response comes as its
            # cross-products (Z'y, X'y, y'y), the other blocks are reused
            try:
                Zty, Xty, yty = newresp
                gram = self.design.gram.with_response(np.asarray(Zty, dtype=float), np.asarray(Xty, dtype=float),
                                                      float(yty))
            except (TypeError, ValueError, IndexError):
                raise HierlmError("a fit on a dask DataFrame is refit to a new response given as its "
                                  "cross-products (Z'y, X'y, y'y) with the model's Z and X (as the "
                                  "parametric bootstrap makes them on the cluster)") from None
            design = replace(self.design, gram=gram)
        else:
            y = np.asarray(newresp, dtype=float).ravel()
            if y.shape != self.design.y.shape:
                raise HierlmError(f"newresp has {y.size} values; the fit used {self.design.n} rows")
            if not np.all(np.isfinite(y)):
                raise HierlmError("newresp has missing or infinite values")
            design = replace(self.design, y=y)
        return fit_lmm(design, self.reml, {"start": self.theta, **control},
                       model=self.model, data_name=self.data_name)

    def refit_ml(self) -> "LMMFit":
        """This model on this response fit by maximum likelihood (lme4's
        ``refitML``); an ML fit returns itself."""
        if not self.reml:
            return self
        # self.design, not self.model: a fit made by refit() carries its own response
        return fit_lmm(self.design, False, model=self.model, data_name=self.data_name)

    def coef_table(self, ddf: str = "satterthwaite") -> pd.DataFrame:
        """Fixed-effect tests as lmerTest's summary table.

        Parameters
        ----------
        ddf : {"satterthwaite", "kenward-roger", "none"}
            Denominator degrees of freedom (lmerTest's default is
            Satterthwaite; Kenward-Roger as pbkrtest, REML fits only;
            ``"none"``: lme4's table without df and p-values).

        Returns
        -------
        pandas.DataFrame
            ``Estimate, Std. Error, df, t value, Pr(>|t|)`` per fixed effect.
        """
        from ..inference.ddf import coef_table

        return coef_table(self, ddf=ddf)

    def confint(self, parm=None, level: float = 0.95, method: str = "profile", nsim: int = 500, seed=None,
                n_jobs: int = 1, client=None, progress=None) -> pd.DataFrame:
        """Confidence intervals, as lme4's ``confint(m, oldNames = FALSE)``.

        Parameters
        ----------
        parm : list of str, optional
            Parameters (lme4's names: ``sd_(Intercept)|Subject``,
            ``cor_Days.(Intercept)|Subject``, ``sigma``, fixed effects);
            default all.
        level : float
            Confidence level in (0, 1).
        method : {"profile", "wald", "boot"}
            Profile likelihood (lme4's default), Wald (fixed effects only;
            NaN for variance parameters) or parametric bootstrap percentiles.
        nsim, seed, n_jobs, client, progress
            For ``method="boot"``: number of refits, seed (results do not
            depend on the number of workers), local processes (``-1``: all
            cores), or a ``dask.distributed.Client`` to run the refits on;
            progress bar (default: for 100 refits or more on a terminal).

        Returns
        -------
        pandas.DataFrame
            Indexed by parameter, columns ``"2.5 %"`` and ``"97.5 %"`` (for
            level 0.95) as R prints them.
        """
        method = str(method).lower()
        if method == "boot":
            from ..inference.boot import confint_boot

            return confint_boot(self, parm=parm, level=level, nsim=nsim, seed=seed, n_jobs=n_jobs, client=client,
                                progress=progress)
        if method not in ("profile", "wald"):
            raise HierlmError(f"confint method must be 'profile', 'wald' or 'boot', not {method!r}")
        from ..inference.profile import confint

        return confint(self, parm=parm, level=level, method=method)


    @cached_property
    def vcov(self) -> pd.DataFrame:
        """Covariance matrix of the fixed-effects estimates."""
        V = self.sigma**2 * self.devfun.vcov_unscaled(self.factorization)
        names = self.design.xnames
        return pd.DataFrame(V, index=names, columns=names)

    # largest q + p for which prediction intervals conditional on random
    # effects factor Henderson's equations densely (about 0.3 GB and a few seconds)
    PREDICTION_MAX_DENSE = 6000

    @cached_property
    def _mme_cholesky(self) -> np.ndarray:
        """Lower Cholesky factor of Henderson's mixed-model equations in the
        spherical scale, ``M = [[Lambda'Z'Z Lambda + I, Lambda'Z'X], [X'Z Lambda, X'X]]``
        (``sigma^2 M^-1`` is the covariance of ``(u^ - u, beta^ - beta)`` at theta)."""
        d = self.design
        q, p = sum(r.q for r in d.remats), d.p
        if q + p > self.PREDICTION_MAX_DENSE:
            raise HierlmError(f"intervals conditional on the random effects need a dense {q + p} x {q + p} "
                              f"system (more than {self.PREDICTION_MAX_DENSE}); use re_form='~0' for intervals "
                              "of population-level predictions")
        A = gram_of(d, dense=True).dense[: q + p, : q + p]
        Lam = np.eye(q + p)
        o = 0
        for r, sl in zip(d.remats, d.theta_slices()):
            Lam[o: o + r.q, o: o + r.q] = np.kron(np.eye(r.nlevels), r.T(self.theta[sl]))
            o += r.q
        M = Lam.T @ A @ Lam
        M[np.arange(q), np.arange(q)] += 1.0
        return np.linalg.cholesky(M)

    def prediction_variance(self, X: np.ndarray, pieces, conditioned: set, new_observation: bool) -> np.ndarray:
        """Variance of each row's prediction error (see :meth:`predict`'s ``interval``).

        ``pieces`` as :meth:`model_rows` gives them for every term; the terms
        in ``conditioned`` enter with their conditional modes (rows of a new
        level excepted), the others at their mean 0.
        """
        d = self.design
        s2 = self.sigma**2
        cond = [(k, c, Xt) for k, c, Xt in pieces if k in conditioned and (c >= 0).any()]
        if not cond:  # population level: x' vcov x
            V = self.vcov.to_numpy()
            var = np.einsum("ij,jk,ik->i", X, V, X)
        else:
            L = self._mme_cholesky
            q = sum(r.q for r in d.remats)
            offs = np.cumsum([0] + [r.q for r in d.remats])
            var = np.empty(X.shape[0])
            for a in range(0, X.shape[0], 1000):  # rows of [Lambda'z; x], a block at a time
                rows = slice(a, a + 1000)
                B = np.zeros((X[rows].shape[0], L.shape[0]))
                B[:, q:] = X[rows]
                for k, codes, Xt in cond:
                    r = d.remats[k]
                    T = r.T(self.theta[d.theta_slices()[k]])
                    c, zt = codes[rows], Xt[rows] @ T  # Lambda' z: T_k' applied to the row's columns
                    seen = np.flatnonzero(c >= 0)
                    cols = offs[k] + c[seen, None] * r.p + np.arange(r.p)
                    B[seen[:, None], cols] = zt[seen]
                W = np.linalg.solve(L, B.T)  # L^-1 [Lambda'z; x]
                var[rows] = s2 * np.einsum("ij,ij->j", W, W)
        if new_observation:
            var = var + self.new_observation_variance(pieces, conditioned)
        return var

    def new_observation_variance(self, pieces, conditioned: set) -> np.ndarray:
        """Variance of a new observation about its predicted mean: ``sigma^2`` (a weight of
        1) plus ``z' Sigma_k z`` for each term not conditioned on (left out, or a new level)."""
        var = np.full(len(pieces[0][1]), self.sigma**2)
        covs = self.covariances()
        for k, codes, Xt in pieces:
            free = np.ones(len(codes), bool) if k not in conditioned else codes < 0
            if free.any():
                var[free] += np.einsum("ia,ab,ib->i", Xt[free], covs[k], Xt[free])
        return var

    def boot_prediction_interval(self, newdata, re_form, allow_new_levels: bool, interval: str, level: float,
                                 nsim: int, seed, n_jobs: int) -> pd.DataFrame:
        """predict(interval=..., method="boot"): percentile intervals from refits to
        simulated responses (see :meth:`predict`)."""
        from ..inference.boot import boot_mer

        if interval not in ("confidence", "prediction"):
            raise HierlmError(f"interval must be 'confidence' or 'prediction' (or None), not {interval!r}")
        if not isinstance(level, (int, float)) or not 0 < level < 1:
            raise HierlmError(f"level must be a number between 0 and 1, not {level!r}")
        keep = self._selected_terms(re_form)
        every = list(range(len(self.design.remats)))
        X, pieces, off, index = self.prediction_rows(newdata, every, keep, allow_new_levels)
        fit = self.linear_predictor(X, [pc for pc in pieces if pc[0] in keep]) + off
        new = interval == "prediction"

        def fun(refit):
            # the refit's prediction and, for a new observation, its error variance
            eta = refit.linear_predictor(X, [pc for pc in pieces if pc[0] in keep]) + off
            extra = refit.new_observation_variance(pieces, set(keep)) if new else np.zeros_like(eta)
            return np.concatenate([eta, extra])

        # rows predicted given a fitted group's random effects are refused: refits to responses
        # with new random effects estimate another group each time, and refits given the modes
        # (lme4's use.u = TRUE) leave out the error of the mode itself (their intervals came out
        # 10-40% of a half-width narrower than the exact ones on sleepstudy)
        n = X.shape[0]
        given = np.ones(n, bool) if keep else np.zeros(n, bool)
        for k, codes, _ in pieces:
            if k in keep:
                given &= codes >= 0
        if given.any():
            raise HierlmError(
                "bootstrap intervals are for population-level predictions (re_form='~0') and new groups "
                f"(allow_new_levels=True); {int(given.sum())} row(s) are predicted given a fitted group's "
                "random effects, whose error a parametric bootstrap does not reproduce: use "
                "method='normal' (Henderson's equations) for those, or re_form='~0'")
        res = boot_mer(self, fun, nsim=nsim, seed=seed, n_jobs=n_jobs)
        t = res.t.to_numpy()
        t = t[np.all(np.isfinite(t), axis=1)]
        if t.shape[0] < 2:
            raise HierlmError("bootstrap prediction intervals: fewer than two refits succeeded")
        draws = t[:, :n]
        if new:  # a new observation of each replicate: its error drawn from that refit's variances
            # a stream of its own: the replicates use spawn keys 0 .. nsim - 1 of the same seed
            rng = np.random.default_rng(np.random.SeedSequence(res.seed, spawn_key=(nsim,)))
            draws = draws + rng.standard_normal(draws.shape) * np.sqrt(t[:, n:])
        lwr, upr = np.quantile(draws, [0.5 - level / 2, 0.5 + level / 2], axis=0)
        return pd.DataFrame({"fit": fit, "lwr": lwr, "upr": upr}, index=index)

    @property
    def df(self) -> int:
        """Number of parameters: fixed effects, theta and sigma."""
        return self.design.p + self.design.ntheta + 1

    @property
    def reml_criterion(self) -> float | None:
        """REML criterion at convergence (-2 REML log-likelihood); None for ML fits."""
        return self.devfun.from_factor(self.factorization, True) if self.reml else None

    @property
    def deviance(self) -> float:
        """-2 log-likelihood at the estimates, profiled over sigma (lme4's
        ``deviance(m, REML = FALSE)``: for REML fits, the ML deviance at the
        REML theta)."""
        return self.devfun.from_factor(self.factorization, False)

    @property
    def loglik(self) -> float:
        """Log-likelihood: the REML log-likelihood for REML fits, as lme4's ``logLik``."""
        return -0.5 * (self.reml_criterion if self.reml else self.deviance)



    @cached_property
    def condvar(self) -> list[np.ndarray]:
        """Conditional covariances of the random effects per term, ``(levels, p_k, p_k)``."""
        return [self.sigma**2 * V for V in self.devfun.condvar_unscaled(self.factorization)]

    def summary(self, ddf: str = "satterthwaite"):
        """lmerTest's ``summary()`` (lme4's layout with ``df`` and ``Pr(>|t|)``
        columns): print it, or show it in a notebook.

        Parameters
        ----------
        ddf : {"satterthwaite", "kenward-roger", "none"}
            Denominator degrees of freedom of the t-tests; ``"none"`` gives
            lme4's own table (no df, no p-values).
        """
        return super().summary(ddf=ddf)


def fit_lmm(design, reml: bool = True, control: dict | None = None, *, model=None,
            data_name: str | None = None) -> LMMFit:
    """Fit a linear mixed model by REML or ML (lme4's ``lmer``): the engine's entry point.

    Parameters
    ----------
    design : hierlm.design.build.Design
    reml : bool
        Restricted (True) or full maximum likelihood.
    control : dict, optional
        ``xtol_abs``, ``ftol_abs``, ``maxeval``, ``calc_derivs``,
        ``check_singular_tol``, ``check_conv_grad_tol``,
        ``check_conv_hess_tol``, ``start`` (theta in lme4's order),
        ``progress`` (None: a line on stderr every 10 s once the fit has run
        10 s; True: every evaluation; False: none); see
        :data:`hierlm.lmm.engine.DEFAULT_CONTROL`.
    model : hierlm.Model, optional
        Kept on the fit (its data for ``to_bambi``).
    data_name : str, optional
        Shown as ``Data:`` in the summary.

    Returns
    -------
    LMMFit
    """
    control = check_lmm_control(control)
    dev = make_deviance(design)
    theta, info = optimize_theta(dev, bool(reml), control)
    warn_all(info.messages, stacklevel=3)
    return LMMFit(dev, theta, bool(reml), info, model=model, data_name=data_name)
