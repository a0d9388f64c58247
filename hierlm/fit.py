r"""What every fit of a mixed model offers, through its family and offset.

A fit of any kind (REML/ML, Laplace/AGQ, MAP, posterior) holds estimates of

    eta = X beta + Z b + offset,        mu = g^{-1}(eta),        y ~ family(mu[, sigma])

with ``b_k ~ N(0, Sigma_k)``, ``Sigma_k = sigma^2 T_k T_k'`` (sigma = 1 for
binomial and Poisson), and :class:`MixedFit` turns them into lme4's
accessors: ``fixef``, ``varcorr``, ``ranef``, ``coef``, ``fitted``,
``predict(type=)``, ``residuals(type=)``, ``simulate``, ``icc``, ``r2``.
Every one of them goes through ``fit.family`` (the Gaussian one included),
so a binomial fit's ``fitted()`` is a probability whatever engine made it,
and its ``simulate()`` draws binomial counts.

A fit kind sets, in its constructor: ``design``, ``family``, ``theta``,
``sigma``, ``beta``, ``b`` (one ``(levels, p_k)`` array per term),
``convergence`` (a :class:`hierlm.optimize.Convergence`) and optionally
``model`` and ``data_name``; it provides ``condvar`` (per term, the
conditional covariances of its random effects, ``(levels, p_k, p_k)``) and
``summary()``.  Posterior fits override :meth:`MixedFit.parameter_draws`.
"""

from __future__ import annotations

import warnings
from functools import cached_property

import numpy as np
import pandas as pd

from .design.data import as_r_vector, r_numbers
from .design.remat import group_labels, term_names
from .errors import DataError, FormulaError, HierlmError
from .family import Family, FamilyError, check_response
from .formula.parse import parse_formula
from .formula.terms import parse_expression
from .optimize import Convergence  # noqa: F401  (the type of fit.convergence)
from .params import covariances, sd_cor

#: residual types by family: lme4's ``residuals.merMod``
RESIDUAL_TYPES = ("response", "pearson", "deviance", "working")


class MixedFit:
    """Base of every fit: lme4's accessors through the family and the offset.

    Attributes
    ----------
    design : hierlm.design.build.Design
    family : hierlm.family.Family
        Family and link (``gaussian`` for linear mixed models).
    theta : numpy.ndarray
        Relative covariance parameters in lme4's order.
    sigma : float
        Residual SD (1 for binomial and Poisson).
    beta : numpy.ndarray
        Fixed effects (as :attr:`fixef`, unnamed).
    b : list of numpy.ndarray
        Random effects (conditional modes or posterior means), one
        ``(levels, p_k)`` array per term in theta's order.
    convergence : hierlm.optimize.Convergence
        ``converged`` and the messages of the optimizer or sampler.
    """

    model = None
    data_name: str | None = None
    #: "lmm", "glmm", "map" or "posterior": picks the summary layout
    kind = "fit"
    #: posterior fits (draws) set this True
    is_posterior = False

    # ---- basic quantities -------------------------------------------------
    #: how the fit was made, in the words a title uses ("REML", "Laplace", "MAP", "NUTS")
    fit_label = "fit"

    @property
    def formula(self) -> str:
        return self.design.formula.text

    @property
    def nobs(self) -> int:
        """Number of observations used."""
        return self.design.n

    @property
    def ngroups(self) -> dict[str, int]:
        """Levels of each grouping factor (lme4's ``ngrps``)."""
        return self.design.groups()

    @property
    def fixef(self) -> pd.Series:
        """Fixed-effects estimates, named as lme4 names them."""
        return pd.Series(self.beta, index=self.design.xnames, name="Estimate")

    @property
    def converged(self) -> bool:
        """``convergence.converged``: no convergence problem was reported."""
        return self.convergence.converged

    @property
    def term_names(self) -> list[str]:
        """Group names per term, with lme4's ``.1`` suffix for a repeated group."""
        return term_names(self.design.remats)

    # ---- variance components ------------------------------------------------
    def covariances(self) -> list[np.ndarray]:
        """Sigma_k = sigma^2 T_k T_k' per term."""
        return covariances(self.design, self.theta, self.sigma)

    @cached_property
    def varcorr(self) -> pd.DataFrame:
        """Variance components in the layout of lme4's ``as.data.frame(VarCorr(m))``.

        Columns ``group, var1, var2, vcov, sdcor``: per term first its
        variances (``var2`` missing; ``sdcor`` = SD), then its covariances
        (``sdcor`` = correlation); the residual row last, for families with
        a residual SD (Gaussian; binomial and Poisson have none, as glmer).
        """
        rows = []
        for name, r, S in zip(self.term_names, self.design.remats, self.covariances()):
            sd, C = sd_cor(S)
            for j, c in enumerate(r.cnames):
                rows.append((name, c, None, S[j, j], sd[j]))
            for j in range(r.p):
                for i in range(j + 1, r.p):
                    cor = C[i, j] if sd[i] * sd[j] > 0 else np.nan
                    rows.append((name, r.cnames[j], r.cnames[i], S[i, j], cor))
        if self.family.has_dispersion:
            rows.append(("Residual", None, None, self.sigma**2, self.sigma))
        return pd.DataFrame(rows, columns=["group", "var1", "var2", "vcov", "sdcor"])

    def parameter_draws(self) -> tuple[np.ndarray, list[np.ndarray], np.ndarray]:
        """(beta ``(S, p)``, Sigma_k ``(S, p_k, p_k)`` per term, sigma ``(S,)``).

        One "draw" (the estimates) for point fits; posterior fits give every
        draw.  What :mod:`hierlm.inference.variance` computes ICC and R2 from.
        """
        covs = [S[None] for S in self.covariances()]
        return np.asarray(self.beta, dtype=float)[None], covs, np.array([self.sigma], dtype=float)

    # ---- conditional modes ----------------------------------------------
    def ranef(self, condvar: bool = False) -> dict[str, pd.DataFrame]:
        """Conditional modes of the random effects (the BLUPs).

        Parameters
        ----------
        condvar : bool
            Also return conditional standard deviations (lme4's ``condVar``).

        Returns
        -------
        dict
            Grouping factor -> DataFrame (levels x terms).  Terms on the same
            grouping factor share one frame, as in lme4.  With ``condvar``
            the columns are a MultiIndex: ``("condval", term)`` and
            ``("condsd", term)``, so ``re["Subject"]["condsd"]`` are the SDs.
        """
        out: dict[str, list] = {}
        for k, r in enumerate(self.design.remats):
            vals = pd.DataFrame(self.b[k], index=r.levels, columns=r.cnames)
            vals.index.name = r.group
            if condvar:
                sds = np.sqrt(np.diagonal(self.condvar[k], axis1=1, axis2=2))
                sdf = pd.DataFrame(sds, index=r.levels, columns=r.cnames)
                vals = pd.concat({"condval": vals, "condsd": sdf}, axis=1)
            out.setdefault(r.group, []).append(vals)
        res = {}
        for g, frames in out.items():
            if condvar:
                cv = pd.concat([f["condval"] for f in frames], axis=1)
                cs = pd.concat([f["condsd"] for f in frames], axis=1)
                res[g] = pd.concat({"condval": cv, "condsd": cs}, axis=1)
            else:
                res[g] = pd.concat(frames, axis=1)
        return res

    def tidy(self, effects=("ran_pars", "fixed"), conf_int: bool = False, conf_level: float = 0.95,
             **kw) -> pd.DataFrame:
        """The estimates in broom.mixed's long layout (``tidy()``).

        Parameters
        ----------
        effects : sequence of {"fixed", "ran_pars", "ran_vals"}
            Fixed effects (with their tests), the random-effect SDs and
            correlations and the residual SD (``sd__(Intercept)``,
            ``cor__(Intercept).Days``, ``sd__Observation``), the conditional
            modes with their conditional SDs (``level`` column).
        conf_int : bool
            Add ``conf.low``, ``conf.high`` for the fixed effects (Wald: t
            quantiles with the table's df where it has them, else normal;
            posterior fits: quantiles of the draws).
        conf_level : float
        **kw
            Passed to :meth:`coef_table` (e.g. ``ddf="kenward-roger"`` for
            REML fits).

        Returns
        -------
        pandas.DataFrame
            Columns ``effect, group, [level,] term, estimate, std.error,
            [statistic, df, p.value, conf.low, conf.high]`` as broom.mixed
            names them; columns with no value for any row are left out.
        """
        from scipy import stats

        if not isinstance(conf_level, (int, float)) or not 0 < conf_level < 1:
            raise HierlmError(f"conf_level must be a number between 0 and 1, not {conf_level!r}")
        parts = []
        wanted = [effects] if isinstance(effects, str) else list(effects)
        bad = [e for e in wanted if e not in ("fixed", "ran_pars", "ran_vals")]
        if bad:
            raise HierlmError(f"effects must be among 'fixed', 'ran_pars', 'ran_vals', not {bad[0]!r}")
        # rows in broom.mixed's order whatever the order asked
        for e in [e for e in ("fixed", "ran_pars", "ran_vals") if e in wanted]:
            if e == "fixed":
                if self.is_posterior:
                    dg = self.diagnostics.loc[[f"fixef[{n}]" for n in self.design.xnames]]
                    lo, hi = np.quantile(self.draws("fixef"), [0.5 - conf_level / 2, 0.5 + conf_level / 2], axis=0)
                    fx = pd.DataFrame({"term": list(self.design.xnames), "estimate": dg["mean"].to_numpy(),
                                       "std.error": dg["sd"].to_numpy(), "conf.low": lo, "conf.high": hi})
                else:
                    tab = self.coef_table(**kw)
                    fx = pd.DataFrame({"term": list(tab.index), "estimate": tab["Estimate"].to_numpy(),
                                       "std.error": tab["Std. Error"].to_numpy()})
                    stat = [c for c in tab.columns if c.endswith(" value")]
                    if stat:
                        fx["statistic"] = tab[stat[0]].to_numpy()
                    if "df" in tab.columns:
                        fx["df"] = tab["df"].to_numpy()
                    pcol = [c for c in tab.columns if c.startswith("Pr(")]
                    if pcol:
                        fx["p.value"] = tab[pcol[0]].to_numpy()
                    q = (stats.t.ppf(0.5 + conf_level / 2, fx["df"]) if "df" in fx
                         else stats.norm.ppf(0.5 + conf_level / 2))
                    if self.family.dist.eta_is_mean:  # an ordinal fit's thresholds first, as broom's tidy.clmm
                        th = self.threshold_table()
                        fx = pd.concat([pd.DataFrame({"term": list(th.index), "estimate": th["Estimate"].to_numpy(),
                                                      "std.error": th["Std. Error"].to_numpy(),
                                                      "statistic": th["z value"].to_numpy()}), fx],
                                       ignore_index=True)
                    fx["conf.low"] = fx["estimate"] - q * fx["std.error"]
                    fx["conf.high"] = fx["estimate"] + q * fx["std.error"]
                if not conf_int:
                    fx = fx.drop(columns=["conf.low", "conf.high"])
                fx.insert(0, "effect", "fixed")
                fx.insert(1, "group", None)
                parts.append(fx)
            elif e == "ran_pars":
                vc = self.varcorr
                rows = []
                for t, r in zip(term_names(self.design.remats), self.design.remats):
                    sub = vc[vc["group"] == t]
                    sd = dict(zip(sub.loc[sub["var2"].isna(), "var1"], sub.loc[sub["var2"].isna(), "sdcor"]))
                    cor = {(a, b): v for a, b, v in zip(sub["var1"], sub["var2"], sub["sdcor"]) if pd.notna(b)}
                    for j, c in enumerate(r.cnames):  # broom.mixed's order: sd, then its correlations
                        rows.append((t, f"sd__{c}", sd[c]))
                        rows += [(t, f"cor__{c}.{c2}", cor[(c, c2)]) for c2 in r.cnames[j + 1:]]
                if self.family.has_dispersion:
                    rows.append(("Residual", "sd__Observation", float(vc.loc[vc["group"] == "Residual", "sdcor"].iloc[0])))
                rp = pd.DataFrame(rows, columns=["group", "term", "estimate"])
                rp.insert(0, "effect", "ran_pars")
                parts.append(rp)
            elif e == "ran_vals":
                rf = self.ranef_frame()
                rv = pd.DataFrame({"effect": "ran_vals", "group": rf["grpvar"].astype(str), "level": rf["grp"].astype(str),
                                   "term": rf["term"].astype(str), "estimate": rf["condval"].to_numpy(),
                                   "std.error": rf["condsd"].to_numpy()})
                parts.append(rv)
        out = pd.concat(parts, ignore_index=True)
        order = ["effect", "group", "level", "term", "estimate", "std.error", "statistic", "df", "p.value",
                 "conf.low", "conf.high"]
        return out[[c for c in order if c in out.columns]]

    def ranef_frame(self) -> pd.DataFrame:
        """Conditional modes in long form, as lme4's ``as.data.frame(ranef(m, condVar = TRUE))``:
        columns ``grpvar, term, grp, condval, condsd``."""
        parts = []
        for k, r in enumerate(self.design.remats):
            sds = np.sqrt(np.diagonal(self.condvar[k], axis1=1, axis2=2))
            for j, c in enumerate(r.cnames):
                parts.append(pd.DataFrame({
                    "grpvar": r.group, "term": c, "grp": r.levels,
                    "condval": self.b[k][:, j], "condsd": sds[:, j],
                }))
        return pd.concat(parts, ignore_index=True)

    def coef(self) -> dict[str, pd.DataFrame]:
        """Per-group coefficients: fixed effects plus the group's random effects
        (lme4's ``coef``); every fixed effect is a column."""
        fe = self.fixef
        out = {}
        for g, re in self.ranef().items():
            df = pd.DataFrame(np.tile(fe.to_numpy(), (len(re), 1)), index=re.index, columns=fe.index)
            for c in re.columns:
                if c in df.columns:
                    df[c] += re[c]
                else:
                    df[c] = re[c]
            out[g] = df
        return out

    # ---- the linear predictor, the mean and the response ----------------
    def require_rows(self, what: str) -> None:
        """Raise :class:`~hierlm.HierlmError` naming ``what`` when this fit has
        no rows in this process (a fit on a dask DataFrame)."""
        if self.design.rows_free:
            raise HierlmError(
                f"{what} needs the data's rows, and this fit was made from a dask DataFrame whose rows stay on the "
                "cluster; compute them there with predict: ddf.map_partitions(fit.predict) gives the fitted "
                "values, ddf[response] minus those the residuals")

    @property
    def index(self) -> pd.Index:
        """Row labels of the observations used (the user's index)."""
        self.require_rows("the row index")
        prep = self.design.prepared
        if prep.row_index is not None:
            return prep.row_index
        return pd.RangeIndex(self.design.n)

    @property
    def offset(self) -> np.ndarray:
        """The offset of every observation (zeros without one)."""
        d = self.design
        return np.zeros(d.n) if d.offset is None else np.asarray(d.offset, dtype=float)

    @cached_property
    def response(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """``(y, wt, ntrials)`` as the family models them (binomial y a
        proportion of ``ntrials``; Gaussian weights 1)."""
        self.require_rows("the response")
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # its warnings were given when the model was fit
            return check_response(self.design, self.family)

    def linear_predictor(self, X: np.ndarray, terms) -> np.ndarray:
        """``X beta + sum_k Z_k b_k`` (no offset) for given rows.

        Parameters
        ----------
        X : numpy.ndarray
            Fixed-effects model matrix of the rows.
        terms : list of (int, numpy.ndarray, numpy.ndarray)
            ``(term index, level codes, term model matrix)``; a code < 0 (a
            new level) contributes 0.
        """
        eta = X @ self.beta
        for k, codes, Xt in terms:
            ok = codes >= 0
            b = self.b[k][np.where(ok, codes, 0)]
            eta = eta + np.where(ok, np.einsum("ij,ij->i", Xt, b), 0.0)
        return eta

    def _all_terms(self, keep=None):
        d = self.design
        keep = range(len(d.remats)) if keep is None else keep
        return [(k, d.remats[k].codes, d.remats[k].Xt) for k in keep]

    @cached_property
    def eta(self) -> np.ndarray:
        """Linear predictor of the observations: ``X beta + Z b + offset``."""
        self.require_rows("the linear predictor of the observations")
        return self.linear_predictor(self.design.X, self._all_terms()) + self.offset

    def fitted(self, type: str = "response") -> pd.Series:  # noqa: A002
        """Fitted values, conditional on the random effects (lme4's ``fitted``).

        Parameters
        ----------
        type : {"response", "link"}
            The means ``g^{-1}(eta)`` (default, as lme4) or the linear
            predictor ``eta`` (offset included).  The same for Gaussian fits.
        """
        _check_scale(type)
        if type == "response" and self.family.dist.eta_is_mean:
            # ordinal: the probability of each row's observed category (ordinal's fitted.clmm)
            P = self.family.dist.probs(self.eta)
            vals = P[np.arange(P.shape[0]), self.response[0].astype(int)]
        else:
            vals = self.eta if type == "link" else self.family.linkinv(self.eta)
        return pd.Series(vals, index=self.index, name="fitted")

    def residuals(self, type: str | None = None, scaled: bool = False) -> pd.Series:  # noqa: A002
        """Residuals as lme4's ``residuals``.

        Parameters
        ----------
        type : {"response", "pearson", "deviance", "working"}, optional
            ``y - mu``; ``(y - mu) sqrt(wt / V(mu))``; signed square roots of
            the deviance residuals; ``(y - mu) / (d mu / d eta)``.  Default
            ``"deviance"`` for binomial and Poisson (``"response"`` for the
            beta family, which has no deviance residuals), as lme4 for Gaussian
            fits: ``"response"`` for REML and ``"deviance"`` for ML fits (for
            Gaussian fits "response" and "working" are ``y - mu``, "pearson"
            and "deviance" ``sqrt(w) (y - mu)`` with the prior weights w: the
            same without weights).
        scaled : bool
            Divide by sigma (lme4's ``scaled = TRUE``; sigma is 1 for
            binomial and Poisson).
        """
        dev_ok = self.family.dist.deviance_residuals
        if self.family.dist.eta_is_mean:
            raise FamilyError("an ordinal response has no numeric residuals (response, Pearson, deviance or "
                              "working); its randomized quantile residuals are in fit.plot('diagnostics'), and "
                              "fit.fitted() gives each row's probability of its observed category")
        if type is None:
            reml = getattr(self, "reml", False)
            type = "response" if (self.family.is_gaussian and reml) or not dev_ok else "deviance"  # noqa: A001
        if type not in RESIDUAL_TYPES:
            raise HierlmError(f"type must be one of {', '.join(repr(t) for t in RESIDUAL_TYPES)}, not {type!r}")
        if type == "deviance" and not dev_ok:
            raise FamilyError(f"deviance residuals are not defined for the {self.family.name} family (as in "
                              "glmmTMB): use type='pearson' or 'response', or the randomized quantile residuals "
                              "of fit.plot('diagnostics')")
        y, wt, _ = self.response
        fam, eta = self.family, self.eta
        mu = fam.linkinv(eta)
        if fam.is_gaussian:
            r = (y - mu) if type in ("response", "working") else np.sqrt(wt) * (y - mu)
        elif type == "deviance":
            r = np.sign(y - mu) * np.sqrt(np.maximum(fam.dev_resid(y, mu, wt), 0.0))
        elif type == "pearson":
            r = np.sqrt(wt / fam.variance(mu)) * (y - mu)
        elif type == "response":
            r = y - mu
        else:
            r = (y - mu) / fam.mu_eta(eta)
        if scaled:
            r = r / self.sigma
        return pd.Series(r, index=self.index, name="residuals")

    def _selected_terms(self, re_form) -> list[int]:
        """Indices of the random-effects terms included by ``re_form``."""
        if re_form is None:
            return list(range(len(self.design.remats)))
        if re_form is False or (isinstance(re_form, str) and re_form.replace(" ", "") in ("~0", "NA", "0")):
            return []
        if not isinstance(re_form, str):
            raise HierlmError("re_form must be None, False, '~0' or a formula of random terms like '~(1|g)'")
        text = re_form.strip()
        if not text.startswith("~"):
            raise FormulaError("re_form must start with '~', e.g. '~(1 | Subject)' or '~0'", re_form, 0)
        wanted = parse_formula("y " + text).random
        keep = []
        for t in wanted:
            hits = [k for k, r in enumerate(self.design.remats) if r.group == t.group]
            if not hits:
                groups = sorted({r.group for r in self.design.remats})
                raise FormulaError(f"re_form names grouping factor {t.group!r}, not in the model ({groups})")
            keep.extend(h for h in hits if h not in keep)
        return keep

    def predict(self, newdata: pd.DataFrame | None = None, re_form=None, allow_new_levels: bool = False,
                type: str = "link", interval: str | None = None, level: float = 0.95,  # noqa: A002
                method: str = "normal", nsim: int = 500, seed=None, n_jobs: int = 1):
        """Predictions on the link or the response scale (lme4's ``predict``).

        Parameters
        ----------
        newdata : pandas.DataFrame, optional
            Rows to predict for (default: the data of the fit).  The
            formula's ``offset()`` terms are evaluated on it; an ``offset=``
            argument of the fit is not (as lme4).
        re_form : None, False or str
            ``None``: all random effects; ``False`` / ``"~0"``: population
            level (fixed effects only); ``"~(1|g)"``: only the terms on ``g``.
        allow_new_levels : bool
            Levels of a grouping factor not seen in the fit get random effect
            0 (the population value) instead of an error.
        type : {"link", "response"}
            Linear predictor (default, as lme4), or the mean ``g^{-1}(eta)``.
            The same for Gaussian fits.  For an ordinal fit ``"response"``
            gives a DataFrame of each category's probability.
        interval : {None, "confidence", "prediction"}
            REML/ML fits of Gaussian models: an interval at ``level`` around
            each prediction (normal quantiles, theta taken as known).
            ``"confidence"``: for the mean ``x'beta + z'b`` of the terms
            ``re_form`` keeps (their effects as conditional modes, the
            others at 0), from the joint covariance of the estimates and the
            prediction errors of the modes (Henderson's mixed-model
            equations).  ``"prediction"``: for a new observation: adds
            sigma^2 and, for every term not conditioned on (left out by
            ``re_form``, or a new level), the variance ``z' Sigma_k z`` of a
            new group's effects.
        level : float
            Coverage of the interval (default 0.95).
        method : {"normal", "boot"}
            How the interval is made: from the normal approximation above
            (default), or by parametric bootstrap (lme4's ``bootMer``):
            ``nsim`` responses simulated from the fit, the model refit to
            each, and percentiles of the refits' predictions (for
            ``"prediction"``, each plus a draw of a new observation's error
            from that refit's variances), which takes the uncertainty of
            theta into account.  For population-level predictions and new
            groups only: for a fitted group's conditional prediction a
            parametric bootstrap misses the error of its conditional mode
            (an error says so).
        nsim, seed, n_jobs
            For ``method="boot"``: refits, seed (the same numbers for any
            ``n_jobs``), local worker processes (``-1``: all cores).

        Returns
        -------
        pandas.Series, or with ``interval`` a pandas.DataFrame with R's
        columns ``fit``, ``lwr``, ``upr``
        """
        _check_scale(type)
        keep = self._selected_terms(re_form)
        if method not in ("normal", "boot"):
            raise HierlmError(f"method must be 'normal' or 'boot', not {method!r}")
        if interval is not None and method == "boot":
            if not hasattr(self, "boot_prediction_interval"):
                raise HierlmError("bootstrap prediction intervals are for REML/ML fits of linear mixed models")
            out = self.boot_prediction_interval(newdata, re_form, allow_new_levels, interval, level, nsim, seed,
                                                n_jobs)
            return out.apply(self.family.linkinv) if type == "response" else out
        if interval is not None:
            return self._predict_interval(newdata, keep, allow_new_levels, type, interval, level)
        X, terms, off, index = self.prediction_rows(newdata, keep, keep, allow_new_levels)
        eta = self.linear_predictor(X, terms) + off
        if type == "response" and self.family.dist.eta_is_mean:
            # ordinal: each category's probability (brms's posterior_epred of a cumulative model)
            return pd.DataFrame(self.family.dist.probs(eta), index=index, columns=self.design.response_levels)
        vals = self.family.linkinv(eta) if type == "response" else eta
        return pd.Series(vals, index=index, name="predicted")

    def prediction_rows(self, newdata, terms: list[int], keep: list[int], allow_new_levels: bool):
        """What a prediction reads for each row: ``(X, pieces, offset, index)``.

        The fit's own rows when ``newdata`` is None, else the new rows coded
        as the fit's (:meth:`model_rows`); ``pieces`` for the terms in
        ``terms``; unless ``allow_new_levels``, a level of a term in ``keep``
        that the fit has not seen is an error naming it.
        """
        if newdata is None:
            self.require_rows("predicting the fitted rows (newdata=None)")
            return self.design.X, self._all_terms(terms), self.offset, self.index
        X, pieces = self.model_rows(newdata, terms)
        if not allow_new_levels:
            self.check_new_levels(newdata, [pc for pc in pieces if pc[0] in keep])
        return X, pieces, self._newdata_offset(newdata), newdata.index

    def _predict_interval(self, newdata, keep: list[int], allow_new_levels: bool, type: str,  # noqa: A002
                          interval: str, level: float) -> pd.DataFrame:
        """predict(interval=...): the fit and its interval (see :meth:`predict`)."""
        from scipy import stats

        if interval not in ("confidence", "prediction"):
            raise HierlmError(f"interval must be 'confidence' or 'prediction' (or None), not {interval!r}")
        if not isinstance(level, (int, float)) or not 0 < level < 1:
            raise HierlmError(f"level must be a number between 0 and 1, not {level!r}")
        if not hasattr(self, "prediction_variance"):
            raise HierlmError("predict(interval=...) is for REML/ML fits of Gaussian models; for a posterior fit "
                              "take quantiles of posterior_epred() (confidence) or posterior_predict() "
                              "(prediction)")
        every = list(range(len(self.design.remats)))  # the terms left out add their variance
        X, pieces, off, index = self.prediction_rows(newdata, every, keep, allow_new_levels)
        fit = self.linear_predictor(X, [pc for pc in pieces if pc[0] in keep]) + off
        half = stats.norm.ppf(0.5 + level / 2) * np.sqrt(self.prediction_variance(X, pieces, set(keep),
                                                                                 interval == "prediction"))
        out = pd.DataFrame({"fit": fit, "lwr": fit - half, "upr": fit + half}, index=index)
        return out.apply(self.family.linkinv) if type == "response" else out

    def check_new_levels(self, newdata: pd.DataFrame, terms) -> None:
        """Raise DataError naming the grouping levels of ``newdata`` the fit
        has not seen (``terms`` as :meth:`model_rows` gives them)."""
        for k, pos, _ in terms:
            if (pos < 0).any():
                r = self.design.remats[k]
                new = pd.unique(self.new_level_labels(newdata, k, pos))[:5]
                raise DataError(
                    f"new level(s) {list(new)} of grouping factor {r.group!r} in newdata; "
                    "use allow_new_levels=True to predict them at the population level"
                )

    def new_level_labels(self, newdata: pd.DataFrame, k: int, pos: np.ndarray) -> np.ndarray:
        """The grouping labels of the rows of ``newdata`` whose level of term
        ``k`` the fit has not seen (``pos < 0``)."""
        r = self.design.remats[k]
        return group_labels(self._newdata_frame(newdata, [k]), r.term.factors)[pos < 0]

    def model_rows(self, newdata: pd.DataFrame, terms: list[int]):
        """The fixed-effects matrix and the random-effects pieces of new rows.

        Parameters
        ----------
        newdata : pandas.DataFrame
        terms : list of int
            The random-effects terms to include (indices into ``design.remats``).

        Returns
        -------
        X : numpy.ndarray
        pieces : list of (int, numpy.ndarray, numpy.ndarray)
            ``(term, level codes, term model matrix)`` as :meth:`linear_predictor`
            takes them; a level not in the fit has code -1.
        """
        if not isinstance(newdata, pd.DataFrame):
            raise DataError(f"newdata must be a pandas DataFrame, not {type(newdata).__name__}")
        d = self.design
        frame = self._newdata_frame(newdata, terms)
        X = d.x_builder.rebuild(frame)[:, d.x_keep]
        pieces = []
        for k in terms:
            r = d.remats[k]
            pos = pd.Index(r.levels).get_indexer(group_labels(frame, r.term.factors))
            Xt = np.ones((len(frame), 1)) if r.builder is None else r.builder.rebuild(frame)
            pieces.append((k, pos, Xt))
        return X, pieces

    def _newdata_offset(self, newdata: pd.DataFrame) -> np.ndarray:
        """The formula's ``offset()`` terms evaluated on new data."""
        d = self.design
        off = np.zeros(len(newdata))
        if not d.offset_builders:
            return off
        # the columns the offsets read (pi, TRUE, ... are constants, not columns)
        cols = {name for e in d.formula.offsets for name in parse_expression(e).variables
                if name in d.prepared.frame.columns}
        missing = sorted(c for c in cols if c not in newdata.columns)
        if missing:
            raise DataError(f"newdata lacks column(s) {missing} used by the offset")
        frame = newdata[sorted(cols)].reset_index(drop=True)
        for b in d.offset_builders:
            off = off + b.rebuild(frame)[:, 0]
        return off

    def _newdata_frame(self, newdata: pd.DataFrame, keep: list[int]) -> pd.DataFrame:
        d = self.design
        parts = [d.formula.fixed_terms] + [d.remats[k].terms for k in keep]
        group_cols = {f for k in keep for f in d.remats[k].term.factors}
        needed = {name for terms in parts for name, _ in terms.variables()} | group_cols
        needed = [c for c in d.prepared.frame.columns if c in needed]
        missing = [c for c in needed if c not in newdata.columns]
        if missing:
            raise DataError(f"newdata lacks column(s) {missing} that the model uses")
        frame = pd.DataFrame(index=range(len(newdata)))
        for c in needed:
            # coded as prepare_data coded the fit's column: the same numbers
            # (seconds for datetimes, doubles for integers), the same levels
            col = as_r_vector(newdata[c].reset_index(drop=True), c)
            fitted_col = d.prepared.frame[c]
            if pd.api.types.is_bool_dtype(col.dtype):
                col = col.map({False: "FALSE", True: "TRUE"})
            if isinstance(fitted_col.dtype, pd.CategoricalDtype):
                if c not in group_cols:
                    col = pd.Categorical(col, categories=fitted_col.cat.categories, ordered=fitted_col.cat.ordered)
            elif pd.api.types.is_numeric_dtype(col.dtype):
                col = r_numbers(col, c in d.prepared.grouping)
            frame[c] = col
        if frame.isna().any().any():
            bad = [c for c in frame.columns if frame[c].isna().any()]
            raise DataError(f"newdata has missing values (or unknown factor levels) in {bad}")
        return frame

    # ---- simulation ----------------------------------------------------------
    def simulate(self, nsim: int = 1, seed=None, use_u: bool = False) -> pd.DataFrame:
        """Simulate responses from the fitted model (lme4's ``simulate``).

        New random effects from their fitted distribution (or the fitted
        ones with ``use_u=True``), then responses from the family: Gaussian
        noise with SD sigma, binomial or Poisson draws around the means.

        Parameters
        ----------
        nsim : int
            Number of simulated response vectors.
        seed : int or numpy.random.Generator, optional
        use_u : bool
            Keep the random effects at their fitted values (lme4's ``use.u``).

        Returns
        -------
        pandas.DataFrame
            n rows, columns ``sim_1 ... sim_nsim``; binomial responses as
            proportions of the trials (multiply by ``response[1]`` for counts),
            ordinal ones as ordered categoricals of the response's categories.
        """
        if isinstance(nsim, bool) or not isinstance(nsim, (int, np.integer)) or nsim < 1:
            raise HierlmError(f"nsim must be a positive integer, not {nsim!r}")
        rng = np.random.default_rng(seed)
        self.require_rows("simulate()")
        d = self.design
        _, wt, ntrials = self.response
        base = d.X @ self.beta + self.offset
        out = np.empty((d.n, nsim))
        for s in range(nsim):
            eta = base.copy()
            for k, (r, sl) in enumerate(zip(d.remats, d.theta_slices())):
                if use_u:
                    b = self.b[k]
                else:
                    b = self.sigma * rng.standard_normal((r.nlevels, r.p)) @ r.T(self.theta[sl]).T
                eta += r.Zb(b)
            out[:, s] = self.family.simulate(self.family.linkinv(eta), wt, ntrials, rng, sigma=self.sigma)
        cols = [f"sim_{i + 1}" for i in range(nsim)]
        if d.response_levels is not None:  # ordinal: the categories, as the response was given
            return pd.DataFrame({c: pd.Categorical.from_codes(out[:, j].astype(int), d.response_levels, ordered=True)
                                 for j, c in enumerate(cols)}, index=self.index)
        return pd.DataFrame(out, index=self.index, columns=cols)

    # ---- convenience calls into inference and plots ------------------------
    def icc(self) -> pd.Series:
        """Intraclass correlation (``adjusted``, ``conditional``), as
        ``performance::icc``; see :func:`hierlm.inference.variance.icc`."""
        from .inference.variance import icc

        return icc(self)

    def r2(self) -> pd.Series:
        """Nakagawa's R2 (``marginal``, ``conditional``), as
        ``performance::r2_nakagawa``; see :func:`hierlm.inference.variance.r2`."""
        from .inference.variance import r2

        return r2(self)

    def plot(self, kind: str, **kw):
        """Draw one of :mod:`hierlm.plots`' plots of this fit; returns the matplotlib Figure.

        Parameters
        ----------
        kind : str
            ``"shrinkage"``, ``"caterpillar"``, ``"diagnostics"``, ``"facets"``,
            ``"predictions"``; for posterior (NUTS) fits also ``"forest"``,
            ``"ppc"``, ``"trace"``, ``"rank"``.
        **kw
            Passed to the function of that name in :mod:`hierlm.plots`
            (e.g. ``group="Subject"``, ``ax=``).
        """
        from . import plots

        return plots.plot(self, kind, **kw)

    def to_bambi(self, **kwargs):
        """The same model as a (not yet fitted) ``bambi.Model``, for bambi's
        ``interpret`` plots.

        Only Gaussian models bambi can express: bambi's group-specific terms
        have no correlations, so every term must have one column (write
        ``(x || g)`` instead of ``(x | g)``).  Priors are bambi's own.
        ``kwargs`` go to ``bambi.Model``.
        """
        self.require_rows("to_bambi() (bambi fits the rows)")
        if not self.family.is_gaussian:
            raise HierlmError(f"to_bambi() is not available for {self.family.name} fits yet")
        try:
            import bambi as bmb
        except ImportError as exc:
            raise HierlmError("to_bambi needs bambi: pip install 'hierlm[bambi]'") from exc
        d = self.design
        corr = [str(r.term) for r in d.remats if r.p > 1]
        if corr:
            raise HierlmError(
                f"bambi cannot express correlated random effects {corr}: refit with '||' "
                "(uncorrelated terms) to hand the model to bambi"
            )
        if self.model is None:
            raise HierlmError("to_bambi needs the fit's data: fit through hierlm.Model")
        terms = " + ".join(f"({r.term.expr} | {r.group})" for r in d.remats)
        formula = f"{d.formula.response} ~ {d.formula.fixed} + {terms}"
        data = self.model.data.iloc[d.prepared.rows]
        return bmb.Model(formula, data, **kwargs)

    # ---- printing ----------------------------------------------------------
    def summary(self, **kw):
        """The printed summary in lme4's layout: print it, or show it in a notebook."""
        from .summary import summarize

        return summarize(self, **kw)

    def _printed(self):
        """What ``print(fit)`` shows (lme4's ``print`` of a fit), as a Summary."""
        from .summary import short_summary

        return short_summary(self)

    def __repr__(self) -> str:
        return self._printed().text

    def _repr_html_(self) -> str:
        """What ``print(fit)`` shows, its tables as HTML tables (a notebook's display)."""
        return self._printed()._repr_html_()


class LikelihoodFit(MixedFit):
    """A maximum-likelihood fit (REML/ML, Laplace/AGQ): lme4's information
    criteria and singularity check, from ``loglik``, ``df`` and ``optinfo``."""

    @property
    def df_residual(self) -> int:
        """Observations minus parameters (lme4's ``df.residual``)."""
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


def _check_scale(type: str) -> None:  # noqa: A002
    if type not in ("link", "response"):
        raise HierlmError(f"type must be 'link' or 'response', not {type!r}")


__all__ = ["Family", "LikelihoodFit", "MixedFit", "RESIDUAL_TYPES"]
