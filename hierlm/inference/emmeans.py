r"""Estimated marginal means and their contrasts, as R's emmeans.

A **reference grid** holds every combination of the levels of the model's
factors, with each numeric covariate at its mean over the fitted rows (or at
values given in ``at=``).  Its rows' model-matrix rows, averaged with equal
weights over the factors not in ``specs``, give one linear function
``l' beta`` per marginal mean, as ``emmeans(fit, specs)`` builds them.
Contrasts of the means (``pairs``, ``trt.vs.ctrl``, ``eff`` or given
coefficients) are linear functions too, ``C L beta``.

Inference on ``l' beta`` (each row):

- linear mixed models: Kenward-Roger (emmeans' default with pbkrtest: the
  adjusted covariance for the SE and pbkrtest's ``Lb_ddf`` for the df) or
  Satterthwaite (lmerTest's df, the model's covariance);
- GLMMs: asymptotic (``df = Inf``, z statistics), on the link scale or
  back-transformed (``type="response"``: the mean through the inverse link,
  its SE by the delta method, the interval's ends transformed; differences
  of logits become odds ratios and of logs ratios, tested on the link scale);
- posterior fits: the same functions of every draw of beta, summarized by
  the median and the 95% highest-density interval (as emmeans for brms).

Multiplicity adjustments are emmeans': Tukey's studentized range for
pairwise comparisons (scipy), Dunnett's approximation ``dunnettx``, Sidak,
and R's ``p.adjust`` methods (statsmodels' ``multipletests``).
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field, replace

import numpy as np
import pandas as pd
from scipy import stats

from ..errors import HierlmError
from ..glmm import GLMMFit
from ..lmm import LMMFit
from ..rformat import format_r_vector, lines_html, text_table, zapsmall
from .ddf import KR_MAX_N, kenward_roger_df, kenward_roger_state, satterthwaite_df

#: R's p.adjust methods -> statsmodels' multipletests names.
_P_ADJUST = {"holm": "holm", "hochberg": "simes-hochberg", "hommel": "hommel", "bonferroni": "bonferroni",
             "bh": "fdr_bh", "fdr": "fdr_bh", "by": "fdr_by", "none": None}
ADJUSTMENTS = ("tukey", "dunnettx", "sidak", *_P_ADJUST)

#: The name of a back-transformed mean, by family (emmeans').
_RESPONSE_NAME = {"binomial": "prob", "poisson": "rate"}


@dataclass
class _Inference:
    """How the rows' estimates are judged: the covariance, the df method and the scale."""

    V: np.ndarray | None          # covariance of beta (None: posterior draws)
    df_method: str                # "kenward-roger", "satterthwaite", "asymptotic" or "posterior"
    notes: list = field(default_factory=list)


def _inference(fit, lmer_df: str | None) -> _Inference:
    if getattr(fit, "is_posterior", False):
        return _Inference(None, "posterior")
    if isinstance(fit, GLMMFit) and fit.family.dist.eta_is_mean:
        return _Inference(_ordinal_vcov(fit), "asymptotic")
    if isinstance(fit, GLMMFit):
        return _Inference(fit.vcov.to_numpy(), "asymptotic")
    if not isinstance(fit, LMMFit):
        raise HierlmError(f"emmeans needs a REML/ML, GLMM or posterior fit, not a {fit.__class__.__name__}")
    method = "kenward-roger" if lmer_df is None else str(lmer_df).lower().replace("_", "-")
    method = {"kr": "kenward-roger", "asymp": "asymptotic"}.get(method, method)
    if method not in ("kenward-roger", "satterthwaite", "asymptotic"):
        raise HierlmError(f"lmer_df must be 'kenward-roger', 'satterthwaite' or 'asymptotic', not {lmer_df!r}")
    notes = []
    weighted = fit.design.weights is not None
    if method == "kenward-roger" and (not fit.reml or weighted or fit.design.n > KR_MAX_N):
        why = ("an ML fit" if not fit.reml else "a fit with prior weights" if weighted
               else f"{fit.design.n} > {KR_MAX_N} observations")
        notes.append(f"Kenward-Roger's method is not used for {why}: Satterthwaite's df instead")
        method = "satterthwaite"
    V = kenward_roger_state(fit).vcov_adj if method == "kenward-roger" else fit.vcov.to_numpy()
    return _Inference(V, method, notes)


def _ordinal_vcov(fit) -> np.ndarray:
    """Covariance of (beta, thresholds) of an ordinal fit: ``2 H^-1`` over them, H the
    Hessian of the deviance over (theta, beta, thresholds), as clmm's ``vcov``."""
    H = fit.optinfo.hessian
    if H is None:
        raise HierlmError("emmeans of an ordinal fit needs the Hessian of its deviance: refit without "
                          "calc_derivs=False")
    k = fit.design.ntheta
    V = np.linalg.inv(H)[k:, k:]
    return V + V.T


def _row_df(fit, inf: _Inference, L: np.ndarray) -> np.ndarray:
    if inf.df_method == "kenward-roger":
        return kenward_roger_df(fit, L)
    if inf.df_method == "satterthwaite":
        return satterthwaite_df(fit, L)
    return np.full(L.shape[0], np.inf)


# ---------------------------------------------------------------------------
# The reference grid
# ---------------------------------------------------------------------------
def _grid_variables(fit, at: dict) -> dict:
    """Each fixed-effect variable -> its values in the reference grid (emmeans'
    ``ref_grid``): a factor's levels, a covariate's mean (or the ``at`` values)."""
    d = fit.design
    frame = d.prepared.frame
    names = [v for v, _ in d.formula.fixed_terms.variables()]
    out = {}
    for v in dict.fromkeys(names):
        col = frame[v]
        if v in at:
            vals = at[v]
            vals = list(vals) if isinstance(vals, (list, tuple, np.ndarray, pd.Series, pd.Index)) else [vals]
            if isinstance(col.dtype, pd.CategoricalDtype):
                bad = [x for x in vals if str(x) not in set(map(str, col.cat.categories))]
                if bad:
                    raise HierlmError(f"at={{{v!r}: ...}}: {bad} not level(s) of {v!r} "
                                      f"(levels: {list(col.cat.categories)[:10]})")
                vals = [str(x) for x in vals]
            out[v] = vals
        elif isinstance(col.dtype, pd.CategoricalDtype):
            out[v] = list(col.cat.categories)
        else:
            out[v] = [float(np.mean(col.to_numpy(dtype=float)))]
    unknown = set(at) - set(out)
    if unknown:
        raise HierlmError(f"at= names {sorted(unknown)}, which are not variables of the fixed effects "
                          f"({', '.join(out)})")
    return out


def _parse_specs(specs, by) -> tuple[list[str], list[str]]:
    """``"Diet"``, ``["A", "B"]``, ``"~ A * B | C"`` -> (spec variables, by variables)."""
    if isinstance(specs, str):
        text = specs.strip().lstrip("~").strip()
        if "|" in text:
            text, by_text = text.split("|", 1)
            by = [b.strip() for b in by_text.replace("*", "+").replace(":", "+").split("+") if b.strip()] + \
                list([] if by is None else [by] if isinstance(by, str) else by)
        spec = [s.strip() for s in text.replace("*", "+").replace(":", "+").split("+") if s.strip()]
    else:
        spec = list(specs)
    by = [] if by is None else [by] if isinstance(by, str) else list(by)
    if not spec:
        raise HierlmError("specs names no variable: give one or more factors, e.g. 'Diet' or '~ Diet | Sex'")
    return spec, by


@dataclass
class EMMGrid:
    """Estimated marginal means (or contrasts of them): linear functions of beta.

    Obtained from :func:`emmeans`; ``.pairs()`` and ``.contrast()`` give
    contrasts; ``.summary()`` (also ``print``) the table with R's columns;
    ``.to_frame()`` the same DataFrame.

    Attributes
    ----------
    L : numpy.ndarray
        One row per estimate, one column per fixed effect.
    labels : pandas.DataFrame
        The label columns of each row (the factors' levels, or
        ``contrast``), the ``by`` variables included.
    by : list of str
    """

    fit: object
    L: np.ndarray
    labels: pd.DataFrame
    by: list
    inference: _Inference
    type: str = "link"
    level: float = 0.95
    is_contrast: bool = False
    adjust: str = "none"
    family_kind: str = ""            # "pairwise" for Tukey's family of pairwise comparisons
    n_means: int = 0                 # means compared (Tukey's family size)
    averaged_over: list = field(default_factory=list)
    ratio: bool = False              # contrasts on the log/logit scale, shown as ratios
    #: the rows in every column of the model matrix (aliased ones included) and a basis of the
    #: null space of the fit's full model matrix: a row with a component in it is not estimable
    L_full: np.ndarray | None = None
    nonest: np.ndarray | None = None
    #: an ordinal fit's rows take the thresholds too (emmeans' "latent" mode): L's columns are
    #: beta's, then one per threshold
    thresholds: bool = False

    def coef(self) -> np.ndarray:
        """The coefficients the rows of L combine: beta (then an ordinal fit's thresholds)."""
        beta = self.fit.fixef.to_numpy()
        return np.concatenate([beta, self.fit.thresholds.to_numpy()]) if self.thresholds else beta

    def coef_draws(self) -> np.ndarray:
        """Posterior draws of :meth:`coef`, one row per draw."""
        post = self.fit.idata.posterior
        beta = post["fixef"].to_numpy().reshape(-1, self.fit.design.p)
        if not self.thresholds:
            return beta
        return np.hstack([beta, post["cutpoints"].to_numpy().reshape(beta.shape[0], -1)])

    def estimable(self) -> np.ndarray:
        """Which rows are estimable (emmeans' ``nonEst`` rows are not): with aliased columns
        dropped from a rank-deficient X, a mean of a cell the data do not have is not a
        function of the estimated coefficients."""
        if self.nonest is None or self.L_full is None or self.nonest.shape[1] == 0:
            return np.ones(self.L.shape[0], dtype=bool)
        scale = np.maximum(1.0, np.max(np.abs(self.L_full), axis=1))
        return np.max(np.abs(self.L_full @ self.nonest), axis=1) < 1e-6 * scale

    # ---- the table ---------------------------------------------------------
    def _scale(self) -> tuple[str, bool]:
        """(name of the estimate column, whether it is back-transformed)."""
        fam = self.fit.family
        back = self.type == "response" and fam.link != "identity"
        if self.inference.df_method == "posterior" and not self.is_contrast:
            return ("emmean" if not back else _RESPONSE_NAME.get(fam.name, "response")), back
        if self.is_contrast:
            if back and self.ratio:
                return ("odds.ratio" if fam.link == "logit" else "ratio"), True
            return "estimate", False
        return ("emmean" if not back else _RESPONSE_NAME.get(fam.name, "response")), back

    def summary(self) -> pd.DataFrame:
        """The table as emmeans' ``summary()``: means with confidence intervals,
        contrasts with tests (adjusted p-values)."""
        name, back = self._scale()
        fam = self.fit.family
        if self.inference.df_method == "posterior":
            return self._posterior_summary(name, back)
        ok = self.estimable()
        est = np.where(ok, self.L @ self.coef(), np.nan)
        se = np.where(ok, np.sqrt(np.einsum("ij,jk,ik->i", self.L, self.inference.V, self.L)), np.nan)
        df = np.full(len(ok), np.nan)
        if ok.any():
            df[ok] = _row_df(self.fit, self.inference, self.L[ok])
        out = self.labels.copy().reset_index(drop=True)
        asym = np.all(np.isinf(df[ok]))
        if not self.is_contrast:
            q = stats.t.ppf(0.5 + self.level / 2, df)
            lo, hi = est - q * se, est + q * se
            if back:
                out[name] = fam.linkinv(est)
                out["SE"] = se * np.abs(fam.mu_eta(est))
                lo, hi = fam.linkinv(lo), fam.linkinv(hi)
            else:
                out[name] = est
                out["SE"] = se
            out["df"] = df
            out["asymp.LCL" if asym else "lower.CL"] = lo
            out["asymp.UCL" if asym else "upper.CL"] = hi
        else:
            tval = est / se
            if back:
                out[name] = np.exp(est)
                out["SE"] = np.exp(est) * se
            else:
                out[name] = est
                out["SE"] = se
            out["df"] = df
            if back:
                out["null"] = 1.0
            out["z.ratio" if asym else "t.ratio"] = tval
            out["p.value"] = self._adjusted_p(tval, df)
        return out

    def _posterior_summary(self, name: str, back: bool) -> pd.DataFrame:
        import arviz as az

        fam = self.fit.family
        draws = self.coef_draws() @ self.L.T
        if back:
            draws = np.exp(draws) if self.is_contrast else fam.linkinv(draws)
        out = self.labels.copy().reset_index(drop=True)
        out[name] = np.median(draws, axis=0)
        hdi = np.array([az.hdi(draws[:, j], hdi_prob=self.level) for j in range(draws.shape[1])])
        out["lower.HPD"], out["upper.HPD"] = hdi[:, 0], hdi[:, 1]
        out.loc[~self.estimable(), [name, "lower.HPD", "upper.HPD"]] = np.nan
        return out

    def _families(self) -> list[np.ndarray]:
        """Row indices of each family of tests: each ``by`` group."""
        if not self.by:
            return [np.arange(len(self.labels))]
        keys = self.labels[self.by].astype(str).agg("\x1f".join, axis=1).to_numpy()
        return [np.flatnonzero(keys == k) for k in dict.fromkeys(keys)]

    def _adjusted_p(self, t: np.ndarray, df: np.ndarray) -> np.ndarray:
        """emmeans' ``.adj.p.value`` for two-sided tests, within each ``by`` family."""
        p_unadj = 2.0 * stats.t.sf(np.abs(t), df)
        out = np.full_like(p_unadj, np.nan)
        adjust = self.adjust
        if adjust == "tukey" and self.family_kind != "pairwise":
            adjust = "sidak"  # emmeans: Tukey is only for one set of pairwise comparisons
        for rows in self._families():
            rows = rows[np.isfinite(t[rows])]  # non-estimable rows (NaN) are no tests
            k = rows.size
            if k == 0:
                continue
            p = p_unadj[rows]
            a = "none" if k == 1 else adjust
            if a == "tukey":
                q = np.sqrt(2.0) * np.abs(t[rows])
                out[rows] = stats.studentized_range.sf(q, self.n_means, zapsmall(df[rows], 7))
            elif a == "dunnettx":
                out[rows] = 1.0 - _pdunnx(np.abs(t[rows]), k, df[rows])
            elif a == "sidak":
                out[rows] = 1.0 - (1.0 - p) ** k
            elif _P_ADJUST[a] is None:
                out[rows] = p
            else:
                from statsmodels.stats.multitest import multipletests

                out[rows] = multipletests(p, method=_P_ADJUST[a])[1]
        return out

    def _notes(self) -> list[str]:
        notes = []
        if self.averaged_over:
            notes.append(f"Results are averaged over the levels of: {', '.join(self.averaged_over)}")
        m = self.inference.df_method
        if m in ("kenward-roger", "satterthwaite"):
            notes.append(f"Degrees-of-freedom method: {m}")
        notes += self.inference.notes
        fam = self.fit.family
        back = self._scale()[1]
        if fam.link != "identity" and not back and not self.thresholds:  # an ordinal fit's: the latent scale
            scale = {"logit": "log odds ratio", "log": "log"}.get(fam.link, fam.link) if self.is_contrast \
                else fam.link
            notes.append(f"Results are given on the {scale} (not the response) scale.")
        if m == "posterior":
            notes.append(f"Point estimate displayed: median; HPD interval probability: {self.level}")
            return notes
        if not self.is_contrast:
            notes.append(f"Confidence level used: {self.level}")
            if back:
                notes.append(f"Intervals are back-transformed from the {fam.link} scale")
        else:
            adjust = self.adjust
            if adjust == "tukey" and self.family_kind != "pairwise":
                adjust = "sidak"
            k = max(len(r) for r in self._families())
            if adjust != "none" and k > 1:
                what = (f"for comparing a family of {self.n_means} estimates" if adjust == "tukey"
                        else f"for {k} tests")
                notes.append(f"P value adjustment: {adjust} method {what}")
            if back:
                scale = "log odds ratio" if fam.link == "logit" else "log"
                notes.append(f"Tests are performed on the {scale} scale")
        return notes

    def to_frame(self) -> pd.DataFrame:
        """The summary table (numbers)."""
        return self.summary()

    def _rows(self) -> tuple[list[list[str]], list[str]]:
        """The printed table's cells (header first) and column alignment, as emmeans prints."""
        tab = self.summary()
        cols = list(tab.columns)
        cells = []
        for c in cols:
            v = tab[c]
            if c == "p.value":
                cells.append([_format_p(x) for x in v])
            elif c == "df":
                x = v.to_numpy(dtype=float)
                cells.append(["Inf" if np.isinf(xi) else t.strip() for xi, t in
                              zip(x, format_r_vector(np.where(np.isinf(x), 0, x), 3))])
            elif pd.api.types.is_numeric_dtype(v.dtype):
                cells.append([t.strip() for t in format_r_vector(v.to_numpy(dtype=float), 4)])
            else:
                cells.append([str(x) for x in v])
        # emmeans marks a mean or contrast that is not estimable "nonEst"
        name = self._scale()[0]
        if name in cols:
            j = cols.index(name)
            cells[j] = ["nonEst" if not e else c for c, e in zip(cells[j], self.estimable())]
        rows = [cols] + [list(r) for r in zip(*cells)]
        align = ["l" if not pd.api.types.is_numeric_dtype(tab[c].dtype) else "r" for c in cols]
        return rows, align

    def _lines(self) -> list[str]:
        rows, align = self._rows()
        return text_table(rows, align, indent=" ") + [""] + self._notes()

    def __str__(self) -> str:
        return "\n".join(self._lines())

    def _repr_html_(self) -> str:
        """What ``print`` shows, its table as an HTML table."""
        return lines_html(self._lines())

    __repr__ = __str__

    # ---- contrasts ---------------------------------------------------------
    def pairs(self, adjust: str = "tukey", reverse: bool = False, type: str | None = None) -> EMMGrid:
        """Pairwise differences of the means within each ``by`` group (emmeans' ``pairs``).

        Parameters
        ----------
        adjust : str
            ``"tukey"`` (default), ``"dunnettx"``, ``"sidak"``, ``"holm"``,
            ``"hochberg"``, ``"hommel"``, ``"bonferroni"``, ``"BH"``/``"fdr"``,
            ``"BY"`` or ``"none"``.
        reverse : bool
            ``"b - a"`` instead of ``"a - b"`` (emmeans' ``revpairwise``).
        type : {"link", "response"}, optional
            As :func:`emmeans`' (default: the means' own).
        """
        return self.contrast("revpairwise" if reverse else "pairwise", adjust=adjust, type=type)

    def contrast(self, method="pairwise", adjust: str | None = None, ref: int = 0,
                 type: str | None = None) -> EMMGrid:
        """Contrasts of the means within each ``by`` group (emmeans' ``contrast``).

        Parameters
        ----------
        method : {"pairwise", "revpairwise", "trt.vs.ctrl", "eff"} or dict
            emmeans' methods (``trt.vs.ctrl``: each level minus the
            reference level ``ref``; ``eff``: each level minus the average of
            all), or ``{name: coefficients}`` with one coefficient per mean
            of a ``by`` group.
        adjust : str, optional
            Multiplicity adjustment (see :meth:`pairs`); default as emmeans:
            Tukey for pairwise, ``dunnettx`` for ``trt.vs.ctrl``, ``fdr`` for
            ``eff``, none for custom contrasts.
        ref : int
            Position of the reference level for ``trt.vs.ctrl``.
        type : {"link", "response"}, optional
            As :func:`emmeans`' (default: the means' own): on the response
            scale, differences of logits are shown as odds ratios and of logs
            as ratios.
        """
        if type is not None and type not in ("link", "response"):
            raise HierlmError(f"type must be 'link' or 'response', not {type!r}")
        if type is not None:
            return replace(self, type=type).contrast(method, adjust=adjust, ref=ref)
        if self.is_contrast:
            raise HierlmError("contrast() of contrasts is not offered: contrast the means (the emmeans result)")
        defaults = {"pairwise": "tukey", "revpairwise": "tukey", "trt.vs.ctrl": "dunnettx", "eff": "fdr"}
        if isinstance(method, str) and method not in defaults:
            raise HierlmError(f"method must be one of {sorted(defaults)} or a dict of coefficients, not {method!r}")
        adjust = (defaults.get(method, "none") if isinstance(method, str) else "none") if adjust is None else adjust
        key = str(adjust).lower()
        if key not in ADJUSTMENTS:
            raise HierlmError(f"adjust must be one of {', '.join(ADJUSTMENTS)}, not {adjust!r}")
        spec = [c for c in self.labels.columns if c not in self.by]
        rows_L, rows_lab, rows_full = [], [], []
        n_means = 0
        for rows in self._families():
            lab = self.labels.iloc[rows]
            names = [_level_label(lab, spec, i) for i in range(len(rows))]
            C, cnames = _contrast_coefficients(method, names, ref, self.type == "response" and self._ratio_scale())
            n_means = max(n_means, len(rows))
            rows_L.append(C @ self.L[rows])
            if self.L_full is not None:
                rows_full.append(C @ self.L_full[rows])
            byvals = {b: lab[b].iloc[0] for b in self.by}
            rows_lab += [{"contrast": c, **byvals} for c in cnames]
        return replace(self, L=np.vstack(rows_L), labels=pd.DataFrame(rows_lab), is_contrast=True, adjust=key,
                       L_full=np.vstack(rows_full) if rows_full else None,
                       family_kind="pairwise" if method in ("pairwise", "revpairwise") else "",
                       n_means=n_means, ratio=self._ratio_scale() and isinstance(method, str) and method != "eff",
                       inference=replace(self.inference))

    def _ratio_scale(self) -> bool:
        return self.fit.family.link in ("log", "logit")

    def confint(self, level: float = 0.95) -> pd.DataFrame:
        """The means with intervals at ``level`` (emmeans' ``confint``)."""
        _check_level(level)
        return replace(self, level=level).summary()


def _check_level(level) -> None:
    if not isinstance(level, (int, float)) or not 0 < level < 1:
        raise HierlmError(f"level must be a number between 0 and 1, not {level!r}")


def _looks_numeric(x: str) -> bool:
    try:
        float(x)
    except ValueError:
        return False
    return True


def _level_label(lab: pd.DataFrame, spec: list[str], i: int) -> str:
    """emmeans' label of a mean: its levels joined by spaces, a numeric-looking level
    prefixed by its variable's name (``Diet1``, ``A``)."""
    parts = []
    for v in spec:
        x = str(lab[v].iloc[i])
        parts.append(f"{v}{x}" if _looks_numeric(x) else x)
    return " ".join(parts)


def _contrast_coefficients(method, names: list[str], ref: int, ratio: bool) -> tuple[np.ndarray, list[str]]:
    k = len(names)
    op = " / " if ratio else " - "
    if isinstance(method, dict):
        C = np.array([np.asarray(c, dtype=float) for c in method.values()])
        if C.ndim != 2 or C.shape[1] != k:
            raise HierlmError(f"each contrast needs {k} coefficients, one per mean ({', '.join(names)})")
        return C, [str(n) for n in method]
    rows, out = [], []
    if method in ("pairwise", "revpairwise"):
        idx = list(range(k)) if method == "pairwise" else list(range(k))[::-1]  # emmeans' revpairwise
        for a, b in itertools.combinations(idx, 2):
            c = np.zeros(k)
            c[a], c[b] = 1.0, -1.0
            rows.append(c)
            out.append(names[a] + op + names[b])
    elif method == "trt.vs.ctrl":
        if not 0 <= ref < k:
            raise HierlmError(f"ref must be a position 0..{k - 1} among the means ({', '.join(names)})")
        for i in range(k):
            if i != ref:
                c = np.zeros(k)
                c[i], c[ref] = 1.0, -1.0
                rows.append(c)
                out.append(names[i] + op + names[ref])
    else:  # eff
        for i in range(k):
            c = np.full(k, -1.0 / k)
            c[i] += 1.0
            rows.append(c)
            out.append(f"{names[i]} effect")
    return np.array(rows), out


def _pdunnx(x: np.ndarray, k: int, df: np.ndarray) -> np.ndarray:
    """emmeans' ``.pdunnx``: Dunnett's distribution approximated by a weighted mix of
    the studentized range and Sidak's bound."""
    twt = (k - 1) / k
    tukey = stats.studentized_range.cdf(np.sqrt(2.0) * x, (1.0 + np.sqrt(1.0 + 8.0 * k)) / 2.0, df)
    sidak = stats.f.cdf(x**2, 1, df) ** k
    return twt * tukey + (1.0 - twt) * sidak


def _format_p(p: float) -> str:
    """emmeans' p-values: four decimals without the leading zero, ``<.0001`` below."""
    if not np.isfinite(p):
        return "NA"
    if p < 1e-4:
        return "<.0001"
    return f"{p:.4f}".lstrip("0") if p < 1 else "1.0000"


def emmeans(fit, specs, by=None, at: dict | None = None, type: str = "link", lmer_df: str | None = None,
            level: float = 0.95) -> EMMGrid:
    """Estimated marginal means of a fit over a reference grid (R's ``emmeans``).

    Parameters
    ----------
    fit : LMMFit, GLMMFit or BayesFit
    specs : str or list of str
        The factors whose means are wanted: ``"Diet"``, ``["A", "B"]`` or
        emmeans' formula ``"~ Product | Information"`` (after ``|``: ``by``).
    by : str or list of str, optional
        Factors within whose levels the means are listed and compared.
    at : dict, optional
        Values of grid variables: ``{"Time": 21}`` (a covariate at 21
        instead of its mean), ``{"Diet": ["1", "3"]}`` (a subset of levels).
    type : {"link", "response"}
        For GLMMs: the linear predictor's scale, or back-transformed (the
        mean probability or rate, contrasts as odds ratios or ratios).  An
        ordinal fit's means are those of the latent variable,
        ``-mean(thresholds) + x'beta`` (emmeans' default "latent" mode for a
        clmm): ``"link"`` only.
    lmer_df : {"kenward-roger", "satterthwaite", "asymptotic"}, optional
        Denominator df for linear mixed models (emmeans' ``lmer.df``);
        Kenward-Roger by default (REML fits of at most 3000 rows, else
        Satterthwaite, said in the table's notes).
    level : float
        Confidence level of the intervals.

    Returns
    -------
    EMMGrid
        Prints as emmeans; ``.summary()``/``.to_frame()`` give the table
        (columns ``emmean`` or ``prob``/``rate``/``response``, ``SE``,
        ``df``, ``lower.CL``/``upper.CL`` or ``asymp.LCL``/``asymp.UCL``);
        ``.pairs()`` and ``.contrast()`` the comparisons.

    Examples
    --------
    >>> m = hierlm.lmer("weight ~ Diet * Time + (Time | Chick)", hierlm.datasets.load("ChickWeight"))
    >>> emm = hierlm.emmeans(m, "Diet", at={"Time": 21})
    >>> emm.pairs()                                                         # doctest: +SKIP
    """
    if type not in ("link", "response"):
        raise HierlmError(f"type must be 'link' or 'response', not {type!r}")
    ordinal = fit.family.dist.eta_is_mean
    if ordinal and type != "link":
        # emmeans' other modes for a clmm (cum.prob, prob, mean.class) are not offered
        raise HierlmError("emmeans of an ordinal fit gives the means of the latent variable (emmeans' default "
                          "mode for clmm, 'latent'); for the category probabilities of a grid use "
                          "fit.predict(newdata, re_form='~0', type='response')")
    _check_level(level)
    at = {} if at is None else dict(at)
    spec, by = _parse_specs(specs, by)
    inf = _inference(fit, lmer_df)
    values = _grid_variables(fit, at)
    frame = fit.design.prepared.frame
    for v in spec + by:
        if v not in values:
            raise HierlmError(f"{v!r} is not a variable of the fixed effects ({', '.join(values)})")
        if not isinstance(frame[v].dtype, pd.CategoricalDtype) and v not in at:
            raise HierlmError(f"{v!r} is a numeric covariate: give the values at which to take means with "
                              f"at={{{v!r}: [...]}} (emmeans' at=), or use a factor")
    if fit.design.offset is not None:
        raise HierlmError("emmeans of a model with an offset is not offered: the means would need the offset "
                          "set on the reference grid; use fit.predict(newdata) on a grid of your own instead")
    names = list(values)
    # the grid, first variable varying fastest (emmeans' order)
    combos = list(itertools.product(*[values[v] for v in reversed(names)]))
    grid = pd.DataFrame([tuple(reversed(c)) for c in combos], columns=names)
    for v in names:
        col = frame[v]
        if isinstance(col.dtype, pd.CategoricalDtype):
            grid[v] = pd.Categorical(grid[v].astype(str), categories=col.cat.categories, ordered=col.cat.ordered)
    X = fit.model_rows(grid, [])[0]
    d = fit.design
    X_full, nonest = None, None
    if len(d.x_keep) < len(d.x_builder.names):  # aliased columns dropped: some cells may not be estimable
        X_full = d.x_builder.rebuild(fit._newdata_frame(grid, []))
        _, sv, vt = np.linalg.svd(d.x_builder.matrix, full_matrices=True)
        rank = int(np.sum(sv > sv[0] * max(d.x_builder.matrix.shape) * np.finfo(float).eps))
        nonest = vt[rank:].T  # estimability's nonest.basis: the null space of the full X
    keys = spec + by
    key_cols = grid[keys].astype(str)
    # rows of the result: the spec (and by) combinations, first spec variable fastest, by groups outermost
    order_vars = by[::-1] + spec[::-1]
    groups = key_cols.drop_duplicates()
    codes = {v: {str(x): i for i, x in enumerate(values[v])} for v in keys}
    groups = groups.assign(**{f"_{v}": groups[v].map(codes[v]) for v in keys}).sort_values(
        [f"_{v}" for v in order_vars])
    L, labels, L_full = [], [], []
    for _, g in groups.iterrows():
        mask = np.ones(len(grid), dtype=bool)
        for v in keys:
            mask &= key_cols[v].to_numpy() == g[v]
        L.append(X[mask].mean(axis=0))
        if X_full is not None:
            L_full.append(X_full[mask].mean(axis=0))
        labels.append({v: g[v] for v in keys})
    averaged = [v for v in names if v not in keys and len(values[v]) > 1 and isinstance(frame[v].dtype,
                                                                                        pd.CategoricalDtype)]
    L = np.array(L)
    L_full = np.array(L_full) if X_full is not None else None
    if ordinal:
        # emmeans' "latent" mode: the latent variable's mean is x'beta less the thresholds' average
        # (P(Y <= k) = F(alpha_k - x'beta)), a linear function of (beta, thresholds)
        K1 = len(fit.design.threshold_names())
        L = np.hstack([L, np.full((L.shape[0], K1), -1.0 / K1)])
        if L_full is not None:
            L_full = np.hstack([L_full, np.full((L_full.shape[0], K1), -1.0 / K1)])
            nonest = np.vstack([nonest, np.zeros((K1, nonest.shape[1]))])
    return EMMGrid(fit, L, pd.DataFrame(labels, columns=keys), by, inf, type=type, level=level,
                   averaged_over=averaged, L_full=L_full, nonest=nonest, thresholds=ordinal)
