"""glmer's printed summary (``print.summary.merMod`` for a ``glmerMod``)."""

from __future__ import annotations

import html
import math
import textwrap

import numpy as np

from ..summary import (
    _fixed_corr,
    _quantile_line,
    _table,
    format_r,
    format_r_vector,
    named_vector,
    random_effects_table,
    starred_table,
)


def format_pval(pv, digits: int = 3, eps: float = float(np.finfo(float).eps)) -> list[str]:
    """R's (>= 4.0) ``format.pval``: p-values down to 1e-4 (1e-3 when
    ``digits`` is 1) in fixed notation, formatted together, smaller ones
    together in scientific notation, ``< eps`` below ``eps``."""
    pv = np.asarray(pv, dtype=float)
    out = ["NA"] * pv.size
    ok = np.isfinite(pv)
    is0 = ok & (pv < eps)
    rest = np.flatnonzero(ok & ~is0)
    if rest.size:
        expo = np.floor(np.log10(np.where(pv[rest] > 0, pv[rest], 1e-50)))
        fixp = (expo >= -3) | ((expo == -4) & (digits > 1))
        for mask in (fixp, ~fixp):
            if mask.any():
                for i, t in zip(rest[mask], format_r_vector(pv[rest[mask]], digits)):
                    out[i] = t.strip()
    if is0.any():
        dg = max(1, digits - 2)
        if rest.size:
            nc = max(len(out[i]) for i in rest)
            if dg > 1 and dg + 6 > nc:
                dg = max(1, nc - 7)
            sep = "" if (dg == 1 and nc <= 6) else " "
        else:
            sep = "" if dg == 1 else " "
        txt = "<" + sep + format_r_vector([eps], dg)[0].strip()
        for i in np.flatnonzero(is0):
            out[i] = txt
    return out


def glmm_coefmat_lines(tab, digits: int = 4) -> list[str]:
    """R's ``printCoefmat`` of glmer's table (Estimate, Std. Error, z value, Pr(>|z|)).

    Estimate and Std. Error are rounded together to the decimals that give
    their smallest value ``digits`` significant digits; z values to 3
    decimals; p-values by ``format.pval`` with 3 digits; stars and their
    legend when a p-value is below 0.1.
    """
    names = list(tab.index)
    cs = tab[["Estimate", "Std. Error"]].to_numpy(dtype=float)
    zval = tab["z value"].to_numpy(dtype=float)
    pv = tab["Pr(>|z|)"].to_numpy(dtype=float)
    nr = len(names)
    acs = np.abs(cs[np.isfinite(cs) & (cs != 0)])
    digmin = 1 + (math.floor(math.log10(acs.min())) if acs.size else 0)
    rounded = np.round(cs, max(1, digits - digmin))
    cells = np.array(format_r_vector(rounded.T.ravel(), digits), dtype=object).reshape(2, nr).T
    z_s = format_r_vector(np.round(zval, 3), digits)
    p_s = format_pval(pv, digits=max(1, min(5, digits - 1)))
    return starred_table(["Estimate", "Std. Error", "z value", "Pr(>|z|)"], names,
                         [[*cells[i], z_s[i], p_s[i]] for i in range(nr)], pv)


def _title(text: str, cls: str = "glmerMod", width: int = 80) -> list[str]:
    """lme4's ``.prt.methTit``: a title too long for the width is wrapped
    (``strwrap``, indent 2) and the class follows without quotes."""
    if len(text) + 5 + len(cls) > width:
        lines = textwrap.wrap(text, width=width - 3, subsequent_indent="  ", break_on_hyphens=False)
        lines[-1] += f" [{cls}]"
        return lines
    return [f"{text} ['{cls}']"]


def _header(fit) -> list[str]:
    lines = _title(f"Generalized linear mixed model fit by maximum likelihood ({fit.method_name()})")
    lines += [f" Family: {fit.family.name}  ( {fit.family.link} )", f"Formula: {fit.formula}"]
    if fit.data_name:
        lines.append(f"   Data: {fit.data_name}")
    return lines


def _random_lines(fit) -> list[str]:
    rows = random_effects_table(fit)
    # no correlations: R prints no Corr column
    if not (fit.varcorr["var2"].notna().any()):
        rows = [r.replace(" Corr", "", 1).rstrip() if i == 0 else r for i, r in enumerate(rows)]
    groups = "; ".join(f"{g}, {n}" for g, n in fit.ngroups.items())
    return rows + [f"Number of obs: {fit.nobs}, groups:  {groups}"]


def summary_lines(fit) -> list[str]:
    """glmer's summary of a Laplace or AGQ fit."""
    lines = _header(fit) + [""]
    vals = [fit.aic, fit.bic, fit.loglik, -2.0 * fit.loglik]
    lines += named_vector(["AIC", "BIC", "logLik", "deviance", "df.resid"],
                          [f"{v:.1f}" for v in vals] + [str(fit.df_residual)])
    lines += ["", "Scaled residuals: "]
    lines += _quantile_line(fit.residuals("pearson", scaled=True).to_numpy())
    lines += ["", "Random effects:"] + _random_lines(fit)
    lines += ["", "Fixed effects:"] + glmm_coefmat_lines(fit.coef_table())
    lines += _fixed_corr(fit)
    if fit.optinfo.messages:
        lines += ["", *fit.optinfo.messages]
    return lines


class GLMMSummary:
    """Printable summary; ``print(fit.summary())`` or display it in a notebook."""

    def __init__(self, fit):
        self.fit = fit
        self.text = "\n".join(summary_lines(fit))

    def __str__(self) -> str:
        return self.text

    def __repr__(self) -> str:
        return self.text

    def _repr_html_(self) -> str:
        return f"<pre style='font-family: monospace'>{html.escape(self.text)}</pre>"


def short_repr(fit) -> str:
    """glmer's ``print(fit)``: header, criteria, random-effect SDs, fixed effects."""
    lines = _header(fit)
    vals = [fit.aic, fit.bic, fit.loglik, -2.0 * fit.loglik]
    lines += named_vector(["AIC", "BIC", "logLik", "deviance", "df.resid"],
                          [f"{v:.4f}" for v in vals] + [str(fit.df_residual)])
    lines.append("Random effects:")
    vc = fit.varcorr
    rows = [["Groups", "Name", "Std.Dev."]]
    sds = format_r(vc.loc[vc["var2"].isna(), "sdcor"], 4)
    k = 0
    last = None
    for _, row in vc[vc["var2"].isna()].iterrows():
        rows.append([row["group"] if row["group"] != last else "", str(row["var1"]), sds[k]])
        last = row["group"]
        k += 1
    lines += [" " + x for x in _table(rows, ["l", "l", "l"])]
    groups = "; ".join(f"{g}, {n}" for g, n in fit.ngroups.items())
    lines.append(f"Number of obs: {fit.nobs}, groups:  {groups}")
    lines.append("Fixed Effects:")
    fe = fit.fixef
    lines += _table([list(fe.index), format_r(fe.to_numpy(), 4)], ["r"] * len(fe))
    if fit.optinfo.messages:
        lines += fit.optinfo.messages
    return "\n".join(lines)
