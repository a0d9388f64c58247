"""The fitted linear mixed model: lme4's accessors on a REML or ML fit."""

from __future__ import annotations

from functools import cached_property

import numpy as np
import pandas as pd

from ..design.data import as_factor, referenced_names
from ..design.remat import term_names
from ..errors import DataError, FormulaError, HierlmError
from ..formula.parse import parse_formula
from .deviance import ProfiledDeviance
from .fit import OptInfo


class MixedFitBase:
    """What every fit of a mixed model offers, given estimates.

    Subclasses set ``design``, ``model``, ``theta``, ``sigma``, ``_beta``
    (fixed effects) and ``_b`` (random effects: one (levels, p) array per
    term), and provide ``_condvar`` (conditional covariance blocks per term).
    """

    # ---- basic quantities -------------------------------------------------
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
        return pd.Series(self._beta, index=self.design.xnames, name="Estimate")

    # ---- variance components ------------------------------------------------
    def _covariances(self) -> list[np.ndarray]:
        """Sigma_k = sigma^2 T_k T_k' per term."""
        out = []
        for r, sl in zip(self.design.remats, self.design.theta_slices()):
            T = r.T(self.theta[sl])
            out.append(self.sigma**2 * T @ T.T)
        return out

    def _term_names(self) -> list[str]:
        """Group names per term, with lme4's ``.1`` suffix for repeated groups."""
        return term_names(self.design.remats)

    @cached_property
    def varcorr(self) -> pd.DataFrame:
        """Variance components in the layout of lme4's ``as.data.frame(VarCorr(m))``.

        Columns ``group, var1, var2, vcov, sdcor``: per term first its
        variances (``var2`` missing; ``sdcor`` = SD), then its covariances
        (``sdcor`` = correlation); the residual row last.
        """
        rows = []
        for name, r, S in zip(self._term_names(), self.design.remats, self._covariances()):
            sd = np.sqrt(np.diag(S))
            for j, c in enumerate(r.cnames):
                rows.append((name, c, None, S[j, j], sd[j]))
            for j in range(r.p):
                for i in range(j + 1, r.p):
                    cor = S[i, j] / (sd[i] * sd[j]) if sd[i] * sd[j] > 0 else np.nan
                    rows.append((name, r.cnames[j], r.cnames[i], S[i, j], cor))
        rows.append(("Residual", None, None, self.sigma**2, self.sigma))
        return pd.DataFrame(rows, columns=["group", "var1", "var2", "vcov", "sdcor"])

    # ---- conditional modes ----------------------------------------------
    def ranef(self, condvar: bool = False) -> dict[str, pd.DataFrame]:
        """Conditional modes of the random effects (the BLUPs).

        Parameters
        ----------
        condvar : bool
            Also return conditional standard deviations (lme4's ``condVar``,
            conditional on beta).

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
            vals = pd.DataFrame(self._b[k], index=r.levels, columns=r.cnames)
            vals.index.name = r.group
            if condvar:
                sds = np.sqrt(np.diagonal(self._condvar[k], axis1=1, axis2=2))
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

    def ranef_frame(self) -> pd.DataFrame:
        """Conditional modes in long form, as lme4's ``as.data.frame(ranef(m, condVar = TRUE))``:
        columns ``grpvar, term, grp, condval, condsd``."""
        parts = []
        for k, r in enumerate(self.design.remats):
            sds = np.sqrt(np.diagonal(self._condvar[k], axis1=1, axis2=2))
            for j, c in enumerate(r.cnames):
                parts.append(pd.DataFrame({
                    "grpvar": r.group, "term": c, "grp": r.levels,
                    "condval": self._b[k][:, j], "condsd": sds[:, j],
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

    # ---- fitted values and predictions ---------------------------------
    def _index(self) -> pd.Index:
        return self.model.data.index[self.design.prepared.rows]

    def _linear(self, X: np.ndarray, terms: list[tuple[int, np.ndarray, np.ndarray]]) -> np.ndarray:
        eta = X @ self._beta
        for k, codes, Xt in terms:
            ok = codes >= 0
            b = self._b[k][np.where(ok, codes, 0)]
            eta = eta + np.where(ok, np.einsum("ij,ij->i", Xt, b), 0.0)
        return eta

    def fitted(self) -> pd.Series:
        """Conditional fitted values X beta + Z b, indexed as the data rows used."""
        d = self.design
        eta = self._linear(d.X, [(k, r.codes, r.Xt) for k, r in enumerate(d.remats)])
        return pd.Series(eta, index=self._index(), name="fitted")

    def residuals(self, type: str = "response", scaled: bool = False) -> pd.Series:  # noqa: A002
        """Residuals y - fitted.

        Parameters
        ----------
        type : {"response", "pearson"}
            ``"pearson"`` divides by sigma (the residual's model SD).
        scaled : bool
            Divide by sigma (lme4's ``scaled = TRUE``); same as ``"pearson"``.
        """
        if type not in ("response", "pearson"):
            raise HierlmError(f"type must be 'response' or 'pearson', not {type!r}")
        r = self.design.y - self.fitted().to_numpy()
        if type == "pearson" or scaled:
            r = r / self.sigma
        return pd.Series(r, index=self._index(), name="residuals")

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

    def predict(self, newdata: pd.DataFrame | None = None, re_form=None,
                allow_new_levels: bool = False) -> pd.Series:
        """Predictions, conditional or population-level.

        Parameters
        ----------
        newdata : pandas.DataFrame, optional
            Rows to predict for; default: the data used in the fit.
        re_form : None, False or str
            ``None``: include all random effects; ``False`` or ``"~0"``:
            population level (fixed effects only); ``"~(1|g)"``: only the
            terms on grouping factor ``g``.
        allow_new_levels : bool
            Levels of a grouping factor not seen in the fit get random effect
            0 (the population value) instead of an error.

        Returns
        -------
        pandas.Series
        """
        keep = self._selected_terms(re_form)
        d = self.design
        if newdata is None:
            terms = [(k, d.remats[k].codes, d.remats[k].Xt) for k in keep]
            return pd.Series(self._linear(d.X, terms), index=self._index(), name="predicted")
        if not isinstance(newdata, pd.DataFrame):
            raise DataError(f"newdata must be a pandas DataFrame, not {type(newdata).__name__}")
        frame = self._newdata_frame(newdata, keep)
        X = d.x_builder.rebuild(frame)[:, d.x_keep]
        terms = []
        for k in keep:
            r = d.remats[k]
            labels = self._group_labels(frame, r.term.factors)
            pos = pd.Index(r.levels).get_indexer(labels)
            if (pos < 0).any() and not allow_new_levels:
                new = pd.unique(labels[pos < 0])[:5]
                raise DataError(
                    f"new level(s) {list(new)} of grouping factor {r.group!r} in newdata; "
                    "use allow_new_levels=True to predict them at the population level"
                )
            Xt = np.ones((len(frame), 1)) if r.builder is None else r.builder.rebuild(frame)
            terms.append((k, pos, Xt))
        return pd.Series(self._linear(X, terms), index=newdata.index, name="predicted")

    def _newdata_frame(self, newdata: pd.DataFrame, keep: list[int]) -> pd.DataFrame:
        d = self.design
        columns = set(d.prepared.frame.columns)
        exprs = [d.formula.fixed] + [d.remats[k].term.expr for k in keep]
        needed = {name for e in exprs for name, _ in referenced_names(e, columns)}
        needed |= {f for k in keep for f in d.remats[k].term.factors}
        group_cols = {f for k in keep for f in d.remats[k].term.factors}
        needed = [c for c in d.prepared.frame.columns if c in needed]
        missing = [c for c in needed if c not in newdata.columns]
        if missing:
            raise DataError(f"newdata lacks column(s) {missing} that the model uses")
        frame = pd.DataFrame(index=range(len(newdata)))
        for c in needed:
            col = newdata[c].reset_index(drop=True)
            fitted_col = d.prepared.frame[c]
            if pd.api.types.is_bool_dtype(col.dtype):
                col = col.map({False: "FALSE", True: "TRUE"})
            if isinstance(fitted_col.dtype, pd.CategoricalDtype) and c not in group_cols:
                col = pd.Categorical(col, categories=fitted_col.cat.categories, ordered=fitted_col.cat.ordered)
            frame[c] = col
        if frame.isna().any().any():
            bad = [c for c in frame.columns if frame[c].isna().any()]
            raise DataError(f"newdata has missing values (or unknown factor levels) in {bad}")
        return frame

    @staticmethod
    def _group_labels(frame: pd.DataFrame, factors: tuple[str, ...]) -> np.ndarray:
        parts = [np.asarray(pd.Series(as_factor(frame[f])).astype(str)) for f in factors]
        if len(parts) == 1:
            return parts[0]
        out = parts[0].astype(object)
        for p in parts[1:]:
            out = out + ":" + p
        return out

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
        from .. import plots

        return plots.plot(self, kind, **kw)

    def icc(self) -> pd.Series:
        """Intraclass correlation (``adjusted``, ``conditional``), as
        ``performance::icc``; see :func:`hierlm.inference.variance.icc`."""
        from ..inference.variance import icc

        return icc(self)

    def r2(self) -> pd.Series:
        """Nakagawa's R2 (``marginal``, ``conditional``), as
        ``performance::r2_nakagawa``; see :func:`hierlm.inference.variance.r2`."""
        from ..inference.variance import r2

        return r2(self)

    def to_bambi(self, **kwargs):
        """The same model as a (not yet fitted) ``bambi.Model``, for bambi's
        ``interpret`` plots.

        Only models bambi can express: bambi's group-specific terms have no
        correlations, so every term must have one column (write
        ``(x || g)`` instead of ``(x | g)``).  Priors are bambi's own.
        ``kwargs`` go to ``bambi.Model``.
        """
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
        terms = " + ".join(f"({r.term.expr} | {r.group})" for r in d.remats)
        formula = f"{d.formula.response} ~ {d.formula.fixed} + {terms}"
        data = self.model.data.iloc[d.prepared.rows]
        return bmb.Model(formula, data, **kwargs)

    def __repr__(self) -> str:
        return str(self.summary())

    def _repr_html_(self) -> str:
        return self.summary()._repr_html_()

    def simulate(self, nsim: int = 1, seed=None) -> pd.DataFrame:
        """Simulate responses from the fitted model (new random effects and
        new residuals, as lme4's ``simulate``).

        Parameters
        ----------
        nsim : int
            Number of simulated response vectors.
        seed : int or numpy.random.Generator, optional

        Returns
        -------
        pandas.DataFrame
            n rows, columns ``sim_1 ... sim_nsim``.
        """
        if not isinstance(nsim, (int, np.integer)) or nsim < 1:
            raise HierlmError(f"nsim must be a positive integer, not {nsim!r}")
        rng = np.random.default_rng(seed)
        d = self.design
        mu = d.X @ self._beta
        out = np.empty((d.n, nsim))
        for s in range(nsim):
            y = mu + self.sigma * rng.standard_normal(d.n)
            for r, sl in zip(d.remats, d.theta_slices()):
                T = r.T(self.theta[sl])
                b = self.sigma * rng.standard_normal((r.nlevels, r.p)) @ T.T
                y += r.Zb(b)
            out[:, s] = y
        return pd.DataFrame(out, index=self._index(), columns=[f"sim_{i + 1}" for i in range(nsim)])


class LMMFit(MixedFitBase):
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
        Optimizer status and convergence messages.
    """

    def __init__(self, model, dev: ProfiledDeviance, theta: np.ndarray, reml: bool, optinfo: OptInfo,
                 data_name: str | None = None):
        self.model = model
        self.design = dev.design
        self._dev = dev
        self.theta = np.asarray(theta, dtype=float)
        self.reml = bool(reml)
        self.optinfo = optinfo
        self.data_name = data_name
        f = dev.factor(self.theta)
        if f is None:
            raise HierlmError("the fitted theta gives a singular system; the model cannot be fit")
        self._factor = f
        self._beta, self._b = dev.solve(f)
        d = self.design
        self.sigma = float(np.sqrt(f.pwrss / (d.n - d.p if reml else d.n)))

    def refit(self, newresp, **control) -> "LMMFit":
        """The same model fit to a new response (lme4's ``refit(m, newresp)``).

        Parameters
        ----------
        newresp : array-like
            New response, one value per row used by this fit (e.g. a column
            of :meth:`simulate`).
        **control
            Optimizer settings as for :meth:`hierlm.Model.fit`; the optimizer
            starts from this fit's theta unless ``start`` is given.

        Returns
        -------
        LMMFit
        """
        import dataclasses

        from .deviance import make_deviance
        from .fit import check_control, optimize_theta

        y = np.asarray(newresp, dtype=float).ravel()
        if y.shape != self.design.y.shape:
            raise HierlmError(f"newresp has {y.size} values; the fit used {self.design.n} rows")
        if not np.all(np.isfinite(y)):
            raise HierlmError("newresp has missing or infinite values")
        control = check_control({"start": self.theta, **control})
        dev = make_deviance(dataclasses.replace(self.design, y=y))
        theta, info = optimize_theta(dev, self.reml, control)
        return LMMFit(self.model, dev, theta, self.reml, info, data_name=self.data_name)

    def refit_ml(self) -> "LMMFit":
        """This model on this response fit by maximum likelihood (lme4's
        ``refitML``); an ML fit returns itself."""
        if not self.reml:
            return self
        from .deviance import make_deviance
        from .fit import check_control, optimize_theta

        # self.design, not self.model: a fit made by refit() carries its own response
        dev = make_deviance(self.design)
        theta, info = optimize_theta(dev, False, check_control({}))
        return LMMFit(self.model, dev, theta, False, info, data_name=self.data_name)

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

    @property
    def singular(self) -> bool:
        """lme4's ``isSingular``: a bounded theta below 1e-4."""
        return self.optinfo.singular

    @cached_property
    def vcov(self) -> pd.DataFrame:
        """Covariance matrix of the fixed-effects estimates."""
        V = self.sigma**2 * self._dev.vcov_unscaled(self._factor)
        names = self.design.xnames
        return pd.DataFrame(V, index=names, columns=names)

    @property
    def df(self) -> int:
        """Number of parameters: fixed effects, theta and sigma."""
        return self.design.p + self.design.ntheta + 1

    @property
    def reml_criterion(self) -> float | None:
        """REML criterion at convergence (-2 REML log-likelihood); None for ML fits."""
        return self._dev.from_factor(self._factor, True) if self.reml else None

    @property
    def deviance(self) -> float:
        """-2 log-likelihood at the estimates, profiled over sigma (lme4's
        ``deviance(m, REML = FALSE)``: for REML fits, the ML deviance at the
        REML theta)."""
        return self._dev.from_factor(self._factor, False)

    @property
    def loglik(self) -> float:
        """Log-likelihood: the REML log-likelihood for REML fits, as lme4's ``logLik``."""
        return -0.5 * (self.reml_criterion if self.reml else self.deviance)

    @property
    def aic(self) -> float:
        return -2.0 * self.loglik + 2.0 * self.df

    @property
    def bic(self) -> float:
        return -2.0 * self.loglik + np.log(self.nobs) * self.df

    @cached_property
    def _condvar(self) -> list[np.ndarray]:
        return [self.sigma**2 * V for V in self._dev.condvar_unscaled(self._factor)]

    def summary(self, ddf: str = "satterthwaite"):
        """lmerTest's ``summary()`` (lme4's layout with ``df`` and ``Pr(>|t|)``
        columns): print it, or show it in a notebook.

        Parameters
        ----------
        ddf : {"satterthwaite", "kenward-roger", "none"}
            Denominator degrees of freedom of the t-tests; ``"none"`` gives
            lme4's own table (no df, no p-values).
        """
        from ..summary import LMMSummary

        return LMMSummary(self, ddf=ddf)

    def __repr__(self) -> str:
        from ..summary import short_repr

        return short_repr(self)
