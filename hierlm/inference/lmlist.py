"""Per-group ordinary least squares fits (lme4's ``lmList``): no pooling.

``hierlm.lmlist("Reaction ~ Days | Subject", data)`` fits the fixed part of
the formula separately within each level of the grouping factor, the
"no pooling" end of the partial-pooling spectrum whose other ends are the
mixed model and the complete-pooling ``lm``.  The model matrix is the
whole data's (R's contrasts and column names), restricted to each group's
rows; a column that is aliased within a group (constant, or a combination of
earlier ones, by R's left-to-right rule) gets NA for that group, as R's
``lm`` gives it.  Standard errors use the pooled residual SD
``sqrt(sum RSS_g / sum (n_g - p))`` and t tests its degrees of freedom, as
lme4's ``summary(lmList(...))`` does by default; like lme4's ``pooledSD``,
``p`` counts every column, aliased ones included (sleepstudy with a column
aliased in one subject: 126 df, not 127).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy import stats

from ..design.build import build_design
from ..design.fixed import rank_keep
from ..errors import DataError, FormulaError


@dataclass
class LmList:
    """Per-group fits.

    Attributes
    ----------
    coef : pandas.DataFrame
        Coefficients, one row per group (lme4's ``coef(lmList(...))``); NaN
        where a column is aliased within the group.
    se : pandas.DataFrame
        Their standard errors with the pooled residual SD.
    sigma : float
        Pooled residual standard error (lme4's ``RSE``).
    df : int
        Its degrees of freedom, ``sum (n_g - p)`` (lme4's ``pooledSD``).
    r2 : pandas.Series
        Each group's R^2 (``summary(lm)$r.squared``).
    nobs : pandas.Series
        Observations per group.
    group : str
        The grouping factor.
    """

    coef: pd.DataFrame
    se: pd.DataFrame
    sigma: float
    df: int
    r2: pd.Series
    nobs: pd.Series
    group: str

    def summary(self) -> pd.DataFrame:
        """One row per group and coefficient: ``Estimate``, ``Std. Error``,
        ``t value``, ``Pr(>|t|)`` (pooled residual SD and df)."""
        est = self.coef.stack(future_stack=True).rename("Estimate")
        se = self.se.stack(future_stack=True).rename("Std. Error")
        out = pd.concat([est, se], axis=1)
        out["t value"] = out["Estimate"] / out["Std. Error"]
        out["Pr(>|t|)"] = 2 * stats.t.sf(np.abs(out["t value"]), self.df)
        out.index.names = [self.group, "term"]
        return out

    def __repr__(self) -> str:
        return (f"LmList: {len(self.coef)} groups of {self.group!r}, coefficients {list(self.coef.columns)}; "
                f"pooled residual SD {self.sigma:.4g} on {self.df} df\n{self.coef}")


def lmlist(formula: str, data: pd.DataFrame, na_action: str = "omit") -> LmList:
    """Fit the formula's fixed part within each group (lme4's ``lmList``).

    Parameters
    ----------
    formula : str
        ``"response ~ terms | group"``, e.g. ``"Reaction ~ Days | Subject"``.
    data : pandas.DataFrame
    na_action : {"omit", "raise"}

    Returns
    -------
    LmList
    """
    if not isinstance(formula, str) or "|" not in formula:
        raise FormulaError("lmlist takes a formula 'response ~ terms | group', e.g. 'Reaction ~ Days | Subject'",
                           str(formula), 0)
    pos = formula.rindex("|")
    fixed, group = formula[:pos].strip(), formula[pos + 1:].strip()
    if not group or "~" not in fixed:
        raise FormulaError("lmlist takes a formula 'response ~ terms | group', e.g. 'Reaction ~ Days | Subject'",
                           formula, pos)
    # the design machinery codes X as R does and the group as lme4 does
    design = build_design(f"{fixed} + (1 | {group})", data, na_action=na_action)
    r = design.remats[0]
    X, y, names = design.X, design.y, list(design.xnames)
    has_int = "(Intercept)" in names
    coef = np.full((r.nlevels, len(names)), np.nan)
    unscaled = np.full((r.nlevels, len(names)), np.nan)
    rss = np.zeros(r.nlevels)
    dfs = np.zeros(r.nlevels, dtype=int)
    r2 = np.full(r.nlevels, np.nan)
    nobs = np.bincount(r.codes, minlength=r.nlevels)
    for g in range(r.nlevels):
        rows = r.codes == g
        Xg, yg = X[rows], y[rows]
        keep = rank_keep(Xg)
        Xk = Xg[:, keep]
        b, *_ = np.linalg.lstsq(Xk, yg, rcond=None)
        resid = yg - Xk @ b
        coef[g, keep] = b
        if keep.size:
            unscaled[g, keep] = np.diag(np.linalg.inv(Xk.T @ Xk))
        rss[g] = resid @ resid
        dfs[g] = rows.sum() - len(names)  # lme4's pooledSD: aliased columns count
        tss = np.sum((yg - yg.mean()) ** 2) if has_int else yg @ yg
        r2[g] = 1.0 - rss[g] / tss if tss > 0 else np.nan
    df = int(dfs.sum())
    if df <= 0:
        raise DataError(f"lmlist: no residual degrees of freedom for a pooled SD ({len(y)} rows, {len(names)} "
                        f"coefficients in each of {r.nlevels} groups of {r.group!r}); use fewer coefficients or "
                        "groups with more rows")
    sigma = float(np.sqrt(rss.sum() / df))
    idx = pd.Index(r.levels, name=r.group)
    return LmList(coef=pd.DataFrame(coef, index=idx, columns=names),
                  se=pd.DataFrame(sigma * np.sqrt(unscaled), index=idx, columns=names), sigma=sigma, df=df,
                  r2=pd.Series(r2, index=idx, name="R2"), nobs=pd.Series(nobs, index=idx, name="n"),
                  group=r.group)
