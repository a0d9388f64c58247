"""lme4-style text (and HTML) summaries, shared by all fit kinds.

The layout follows lme4's ``print.summary.merMod``; numbers are formatted
with R's rules for ``format(x, digits = 4)`` (enough decimals for every
element to show 4 significant digits, trailing zeros dropped) and
``printCoefmat`` (estimates and standard errors share their decimals).
The summary of a REML or ML fit is lmerTest's: its fixed-effects table has
``df`` and ``Pr(>|t|)`` columns (Satterthwaite's method by default).
"""

from __future__ import annotations

import html
import math

import numpy as np

from .errors import HierlmError


def _decimals_needed(x: float, digits: int) -> int:
    if x == 0 or not np.isfinite(x):
        return 0
    nd = max(0, digits - 1 - math.floor(math.log10(abs(x))))
    s = f"{x:.{nd}f}".rstrip("0")
    return len(s.split(".")[1]) if "." in s else 0


def format_r(values, digits: int = 4) -> list[str]:
    """Format numbers together as R's ``format(x, digits = digits)``."""
    vals = [float(v) for v in values]
    finite = [v for v in vals if np.isfinite(v)]
    nd = max((_decimals_needed(v, digits) for v in finite), default=0)
    return [f"{v:.{nd}f}" if np.isfinite(v) else "NA" for v in vals]


def abbreviate(name: str, minlength: int = 6) -> str:
    """R's ``abbreviate``: drop lower-case vowels from the right, then
    lower-case letters from the right, until ``minlength`` is reached."""
    chars = list(name)
    for pool in ("aeiou", "abcdefghijklmnopqrstuvwxyz"):
        i = len(chars) - 1
        while len(chars) > minlength and i > 0:
            if chars[i] in pool:
                del chars[i]
            i -= 1
    return "".join(chars[: max(minlength, 0)]) if len(chars) > minlength else "".join(chars)


def _table(rows: list[list[str]], align: list[str]) -> list[str]:
    widths = [max(len(r[j]) for r in rows) for j in range(len(rows[0]))]
    out = []
    for r in rows:
        cells = [c.ljust(w) if a == "l" else c.rjust(w) for c, w, a in zip(r, widths, align)]
        out.append(" ".join(cells).rstrip())
    return out


def random_effects_table(fit) -> list[str]:
    """Rows of lme4's 'Random effects:' block."""
    vc = fit.varcorr
    rows = [["Groups", "Name", "Variance", "Std.Dev.", "Corr"]]
    variances = vc[vc["var2"].isna()]
    var_s = _rjust(format_r(variances["vcov"], 4))
    sd_s = _rjust(format_r(variances["sdcor"], 4))
    fmt = dict(zip(variances.index, zip(var_s, sd_s)))
    cw = 5 if (vc.loc[vc["var2"].notna(), "sdcor"] < 0).any() else 4
    for name in dict.fromkeys(vc["group"]):
        block = vc[vc["group"] == name]
        var_rows = block[block["var2"].isna()]
        cors = block[block["var2"].notna()]
        terms = list(var_rows["var1"]) if name != "Residual" else [""]
        for j, (idx, row) in enumerate(var_rows.iterrows()):
            corr = []
            for i in range(j):
                hit = cors[(cors["var1"] == terms[i]) & (cors["var2"] == terms[j])]
                corr.append(f"{hit['sdcor'].iloc[0]:.2f}" if len(hit) else "")
            rows.append([
                name if j == 0 else "",
                "" if name == "Residual" else str(row["var1"]),
                fmt[idx][0],
                fmt[idx][1],
                " ".join(c.rjust(cw) for c in corr),
            ])
    return [" " + line for line in _table(rows, ["l", "l", "l", "l", "l"])]


def _rjust(strings: list[str]) -> list[str]:
    w = max((len(t) for t in strings), default=0)
    return [t.rjust(w) for t in strings]


def coef_table(names, est, se, stat, stat_name: str) -> list[str]:
    """printCoefmat's layout: Estimate and Std. Error share decimals."""
    both = np.abs(np.concatenate([est, se]))
    both = both[np.isfinite(both) & (both > 0)]
    digits = 4
    dig = 3 if both.size == 0 else max(1, min(digits - 1 - math.floor(math.log10(both.min())), 8))
    est_s = [f"{v:.{dig}f}" for v in est]
    se_s = [f"{v:.{dig}f}" for v in se]
    st_s = [f"{v:.3f}" for v in stat]
    header = ["", "Estimate", "Std. Error", stat_name]
    rows = [header] + [[n, e, s, t] for n, e, s, t in zip(names, est_s, se_s, st_s)]
    return _table(rows, ["l"] + ["r"] * (len(rows[0]) - 1))


def format_r_vector(values, digits: int) -> list[str]:
    """R's ``format(x, digits = digits)`` of a numeric vector, fixed or scientific.

    As R's ``formatReal``: each element needs the significant digits (at
    most ``digits``) that show it to ``digits`` digits; all share the most
    decimals needed, and scientific notation is used when the fixed width
    would be wider.  Strings are padded to a common width.
    """
    vals = [float(v) for v in values]
    fin = [v for v in vals if np.isfinite(v)]
    if not fin:
        return ["NA" if np.isnan(v) else ("Inf" if v > 0 else "-Inf") for v in vals]
    neg = int(any(v < 0 for v in fin))
    rgt, mxsl, mxns, mxe, mne = 0, 1, 1, 0, 0
    for v in fin:
        if v == 0:
            kp, nsig = 0, 1
        else:
            mant, ex = f"{abs(v):.{digits - 1}e}".split("e")
            kp = int(ex)
            nsig = len(mant.replace(".", "").rstrip("0")) or 1
        left = kp + 1
        if kp > 0 and abs(v) < 10.0**kp:  # rounding widened the number
            left -= 1
        sleft = (v < 0) + (1 if left <= 0 else left)
        rgt = max(rgt, nsig - left)
        mxsl = max(mxsl, sleft)
        mxns = max(mxns, nsig)
        mxe, mne = max(mxe, kp), min(mne, kp)
    wF = mxsl + rgt + (rgt != 0)
    e = 2 if (mxe >= 100 or mne <= -99) else 1
    d = mxns - 1
    wE = neg + (d > 0) + d + 4 + e
    if wF <= wE:
        out = [f"{v:.{rgt}f}" if np.isfinite(v) else "NA" for v in vals]
    else:
        out = [f"{v:.{d}e}" if np.isfinite(v) else "NA" for v in vals]
    w = max(len(t) for t in out)
    return [t.rjust(w) for t in out]


def format_pval(pv, digits: int = 3, eps: float = float(np.finfo(float).eps)) -> list[str]:
    """R's ``format.pval``: p-values from 1e-3 up are formatted together, smaller ones
    together (scientific when shorter), and those below ``eps`` as ``< 2e-16``."""
    pv = np.asarray(pv, dtype=float)
    out = [""] * pv.size
    is0 = pv < eps
    rr: list[str] = []
    if (~is0).any():
        idx = np.flatnonzero(~is0)
        expo = np.floor(np.log10(np.where(pv[idx] > 0, pv[idx], 1e-50)))
        fixp = (expo >= -3) | (pv[idx] == 0)
        for mask in (fixp, ~fixp):
            if mask.any():
                for i, t in zip(idx[mask], format_r_vector(pv[idx[mask]], digits)):
                    out[i] = t
        rr = [out[i] for i in idx]
    if is0.any():
        dg = max(1, digits - 2)
        if rr:
            nc = max(len(t) for t in rr)
            if dg > 1 and dg + 6 > nc:
                dg = max(1, nc - 7)
            sep = "" if (dg == 1 and nc <= 6) else " "
        else:
            sep = "" if dg == 1 else " "
        txt = "<" + sep + format_r_vector([eps], dg)[0]
        for i in np.flatnonzero(is0):
            out[i] = txt
    return out


SIGNIF_LEGEND = "Signif. codes:  0 \u2018***\u2019 0.001 \u2018**\u2019 0.01 \u2018*\u2019 0.05 \u2018.\u2019 0.1 \u2018 \u2019 1"


def coefmat_lines(tab, digits: int = 4) -> list[str]:
    """R's ``printCoefmat`` of lmerTest's table (Estimate, Std. Error, df, t value, Pr(>|t|)).

    As R: Estimate, Std. Error and df (``cs.ind``) are rounded together to
    the decimals of their smallest value's ``digits`` significant digits;
    t values rounded to 3 decimals; p-values by ``format.pval``; stars and
    their legend when a p-value is below 0.1.
    """
    names = list(tab.index)
    cs = tab[["Estimate", "Std. Error", "df"]].to_numpy(dtype=float)
    tval = tab["t value"].to_numpy(dtype=float)
    pv = tab["Pr(>|t|)"].to_numpy(dtype=float)
    nr = len(names)
    acs = np.abs(cs[np.isfinite(cs) & (cs != 0)])
    digmin = 1 + (math.floor(math.log10(acs.min())) if acs.size else 0)
    rounded = np.round(cs, max(1, digits - digmin))
    cells = np.array(format_r_vector(rounded.T.ravel(), digits), dtype=object).reshape(3, nr).T
    # numbers that are not zero but print as zero: R reformats them with one digit less
    flat = cs.ravel()
    shown = cells.ravel()
    bad = [i for i in range(flat.size) if np.isfinite(flat[i]) and flat[i] != 0 and float(shown[i]) == 0]
    if bad:
        for i, t in zip(bad, format_r_vector(flat[bad], max(1, digits - 1))):
            shown[i] = t
        cells = shown.reshape(nr, 3)
    t_s = format_r_vector(np.round(tval, 3), digits)
    p_s = format_pval(pv, digits=max(1, min(5, digits - 1)))
    return starred_table(["Estimate", "Std. Error", "df", "t value", "Pr(>|t|)"], names,
                         [[*cells[i], t_s[i], p_s[i]] for i in range(nr)], pv)


def starred_table(columns: list[str], names, cells: list[list[str]], pv: np.ndarray) -> list[str]:
    """R's ``printCoefmat`` table: formatted cells per row, then significance
    stars and their legend when some p-value is below 0.1."""
    stars = bool(np.any(np.isfinite(pv) & (pv < 0.1)))
    header = ["", *columns] + ([""] if stars else [])
    rows = [header]
    for n, row, p in zip(names, cells, pv):
        row = [n, *row]
        if stars:
            row.append(("***" if p <= 0.001 else "**" if p <= 0.01 else "*" if p <= 0.05
                        else "." if p <= 0.1 else " ").ljust(3) if np.isfinite(p) else "   ")
        rows.append(row)
    lines = _table(rows, ["l"] + ["r"] * (len(header) - 1))
    if stars:
        lines += ["---", SIGNIF_LEGEND]
    return lines


def zapsmall(x: np.ndarray, digits: int) -> np.ndarray:
    """R's ``zapsmall``: round to ``digits`` significant digits of the largest value."""
    mx = np.max(np.abs(x))
    nd = max(0, digits - math.ceil(math.log10(mx))) if mx > 0 else digits
    return np.round(x, nd)


def named_vector(names, strings) -> list[str]:
    """R's print of a named vector: one common, right-justified width."""
    w = max(len(t) for t in list(names) + list(strings))
    return [" ".join(n.rjust(w) for n in names) + " ", " ".join(t.rjust(w) for t in strings) + " "]


def _quantile_line(x: np.ndarray) -> list[str]:
    q = zapsmall(np.quantile(x, [0, 0.25, 0.5, 0.75, 1.0]), 5)
    return named_vector(["Min", "1Q", "Median", "3Q", "Max"], format_r(q, 4))


def _fixed_corr(fit) -> list[str]:
    V = fit.vcov.to_numpy()
    p = V.shape[0]
    if p < 2:
        return []
    if p > 12:
        return ["", f"Correlation matrix not shown by default, as p = {p} > 12."]
    sd = np.sqrt(np.diag(V))
    C = V / np.outer(sd, sd)
    names = list(fit.vcov.index)
    abbr = [abbreviate(n) for n in names]
    rows = [[""] + abbr[:-1]]
    for i in range(1, p):
        rows.append([abbreviate(names[i], 6) if len(names[i]) > 12 else names[i]]
                    + [f"{C[i, j]:.3f}" for j in range(i)] + [""] * (p - 1 - i))
    return ["", "Correlation of Fixed Effects:"] + _table(rows, ["l"] + ["r"] * (p - 1))


_DDF_TITLE = {"satterthwaite": "Satterthwaite's", "kenward-roger": "Kenward-Roger's"}


def _method_title(fit) -> str:
    """lme4's ``methTitle``: the ML one ends in a space, as lme4 prints it."""
    return "Linear mixed model fit by REML" if fit.reml else "Linear mixed model fit by maximum likelihood "


def summary_lines(fit, ddf: str = "none") -> list[str]:
    """lme4's summary of a REML or ML linear mixed model fit; with ``ddf``
    ``"satterthwaite"`` or ``"kenward-roger"``, lmerTest's (t-tests with df and p-values)."""
    from .inference.ddf import check_ddf
    from .inference.ddf import coef_table as ddf_coef_table

    ddf = check_ddf(ddf)
    tab, note = None, None
    if ddf != "none":
        try:
            tab = ddf_coef_table(fit, ddf)
        except HierlmError as exc:
            if ddf == "kenward-roger":
                raise
            note = f"t-tests not available: {exc}"
            ddf = "none"
    lines = []
    if ddf == "none":
        lines.append(f"{_method_title(fit)} ['lmerMod']")
    else:
        lines.append(f"{_method_title(fit)}. t-tests use {_DDF_TITLE[ddf]} method [lmerModLmerTest]")
    lines.append(f"Formula: {fit.formula}")
    if fit.data_name:
        lines.append(f"   Data: {fit.data_name}")
    lines.append("")
    if fit.reml:
        lines.append(f"REML criterion at convergence: {fit.reml_criterion:.1f}")
    else:
        vals = [fit.aic, fit.bic, fit.loglik, fit.deviance]
        lines.extend(named_vector(["AIC", "BIC", "logLik", "deviance", "df.resid"],
                                  [f"{v:.1f}" for v in vals] + [str(fit.nobs - fit.df)]))
    lines.append("")
    lines.append("Scaled residuals: ")
    lines.extend(_quantile_line(fit.residuals(scaled=True).to_numpy()))
    lines.append("")
    lines.append("Random effects:")
    lines.extend(random_effects_table(fit))
    groups = "; ".join(f"{g}, {n}" for g, n in fit.ngroups.items())
    lines.append(f"Number of obs: {fit.nobs}, groups:  {groups}")
    lines.append("")
    lines.append("Fixed effects:")
    if tab is not None:
        lines.extend(coefmat_lines(tab))
    else:
        se = np.sqrt(np.diag(fit.vcov.to_numpy()))
        est = fit.fixef.to_numpy()
        lines.extend(coef_table(fit.fixef.index, est, se, est / se, "t value"))
    if note:
        lines.append(note)
    lines.extend(_fixed_corr(fit))
    if fit.optinfo.messages:
        lines.append("")
        lines.extend(fit.optinfo.messages)
    return lines


class LMMSummary:
    """Printable summary; ``print(fit.summary())`` or display it in a notebook.

    Parameters
    ----------
    fit : LMMFit
    ddf : {"satterthwaite", "kenward-roger", "none"}
        As lmerTest's ``summary(m, ddf = ...)``: the fixed-effects table gets
        ``df`` and ``Pr(>|t|)`` columns from Satterthwaite's (default) or
        Kenward-Roger's method; ``"none"`` (or ``"lme4"``) prints lme4's summary.
    """

    def __init__(self, fit, ddf: str = "satterthwaite"):
        self.fit = fit
        self.text = "\n".join(summary_lines(fit, ddf))

    def __str__(self) -> str:
        return self.text

    def __repr__(self) -> str:
        return self.text

    def _repr_html_(self) -> str:
        return f"<pre style='font-family: monospace'>{html.escape(self.text)}</pre>"


def short_repr(fit) -> str:
    """lme4's ``print(fit)``: header, criterion, random effects, fixed effects."""
    lines = [f"{_method_title(fit)} ['lmerMod']", f"Formula: {fit.formula}"]
    if fit.reml:
        lines.append(f"REML criterion at convergence: {fit.reml_criterion:.4f}")
    else:
        lines.append(f"     AIC: {fit.aic:.4f}  BIC: {fit.bic:.4f}  logLik: {fit.loglik:.4f}")
    lines.append("Random effects:")
    lines.extend(random_effects_table(fit))
    groups = "; ".join(f"{g}, {n}" for g, n in fit.ngroups.items())
    lines.append(f"Number of obs: {fit.nobs}, groups:  {groups}")
    lines.append("Fixed Effects:")
    fe = fit.fixef
    lines.extend(_table([list(fe.index), format_r(fe.to_numpy(), 4)], ["r"] * len(fe)))
    return "\n".join(lines)


def _posterior_rows(fit) -> tuple[list[list[str]], list[list[str]]]:
    """(random-effects rows, fixed-effects rows) of a posterior summary."""
    dg = fit.diagnostics
    fmt = lambda v: f"{v:.4g}"  # noqa: E731
    re_rows = [["Groups", "Name", "Std.Dev.", "l-95% CI", "u-95% CI", "Rhat", "Bulk_ESS"]]
    for t, r in zip(fit.terms, fit.design.remats):
        for j, c in enumerate(r.cnames):
            row = dg.loc[f"sd_{t}[{c}]"]
            re_rows.append([t if j == 0 else "", c, fmt(row["mean"]), fmt(row["2.5%"]), fmt(row["97.5%"]),
                            f"{row['r_hat']:.3f}", f"{row['ess_bulk']:.0f}"])
        for j in range(r.p):
            for i in range(j + 1, r.p):
                row = dg.loc[f"corr_{t}[{r.cnames[j]},{r.cnames[i]}]"]
                re_rows.append(["", f"cor({r.cnames[j]},{r.cnames[i]})", f"{row['mean']:.3f}",
                                f"{row['2.5%']:.3f}", f"{row['97.5%']:.3f}", f"{row['r_hat']:.3f}",
                                f"{row['ess_bulk']:.0f}"])
    row = dg.loc["sigma"]
    re_rows.append(["Residual", "", fmt(row["mean"]), fmt(row["2.5%"]), fmt(row["97.5%"]),
                    f"{row['r_hat']:.3f}", f"{row['ess_bulk']:.0f}"])
    fe_rows = [["", "Estimate", "Est.Error", "l-95% CI", "u-95% CI", "Rhat", "Bulk_ESS"]]
    for name in fit.design.xnames:
        row = dg.loc[f"fixef[{name}]"]
        fe_rows.append([name] + [fmt(row[k]) for k in ("mean", "sd", "2.5%", "97.5%")]
                       + [f"{row['r_hat']:.3f}", f"{row['ess_bulk']:.0f}"])
    return re_rows, fe_rows


class BayesSummary(LMMSummary):
    """Posterior summary in lme4's layout, with brms's interval and diagnostic columns."""

    def __init__(self, fit):
        self.fit = fit
        post = fit.idata.posterior
        how = fit.plan.describe(fit.terms)
        family = getattr(fit, "family", None)
        kind = "linear" if family is None else "generalized linear"
        lines = [f"Bayesian {kind} mixed model fit by NUTS ({fit.sampler}; {post.sizes['chain']} chains x "
                 f"{post.sizes['draw']} draws; {how})"]
        if family is not None:
            lines.append(f" Family: {family.name}  ( {family.link} )")
        lines.append(f"Formula: {fit.formula}")
        if fit.data_name:
            lines.append(f"   Data: {fit.data_name}")
        if family is None:
            re_rows, fe_rows = _posterior_rows(fit)
        else:
            # no residual SD (as glmer's summary): give _posterior_rows a
            # placeholder sigma row and drop the Residual line it makes
            from types import SimpleNamespace

            import pandas as pd

            dg = fit.diagnostics
            dg = pd.concat([dg, pd.DataFrame([dg.iloc[0]], index=["sigma"])])
            re_rows, fe_rows = _posterior_rows(SimpleNamespace(diagnostics=dg, terms=fit.terms, design=fit.design))
            re_rows = [row for row in re_rows if row[0] != "Residual"]
        lines += ["", "Random effects (posterior mean, 95% interval):"]
        lines += [" " + x for x in _table(re_rows, ["l", "l", "r", "r", "r", "r", "r"])]
        groups = "; ".join(f"{g}, {n}" for g, n in fit.ngroups.items())
        lines += [f"Number of obs: {fit.nobs}, groups:  {groups}", "", "Fixed effects:"]
        lines += _table(fe_rows, ["l"] + ["r"] * 6)
        dg = fit.diagnostics
        lines += ["", f"Sampling: {fit.seconds:.1f} s (compilation included), {fit.divergences} divergent "
                      f"transitions, max R-hat {dg['r_hat'].max():.3f}, min bulk ESS {dg['ess_bulk'].min():.0f}"]
        if fit.warnings:
            lines += ["Warnings:"] + [f"  {w}" for w in fit.warnings]
        self.text = "\n".join(lines)


class MAPSummary(LMMSummary):
    """MAP fit: estimates at the mode with approximate posterior SDs."""

    def __init__(self, fit):
        self.fit = fit
        what = "likelihood (flat priors)" if fit.flat else "posterior"
        beta = "; fixed effects integrated out too (REML)" if fit.reml else ""
        glmm = getattr(fit, "family", None) is not None
        if glmm:
            # random effects integrated out by the Laplace approximation, no sigma
            lines = [f"Generalized linear mixed model fit by MAP: mode of the Laplace-marginal {what}",
                     f" Family: {fit.family.name}  ( {fit.family.link} )",
                     f"Formula: {fit.formula}"]
        else:
            lines = [f"Mixed model fit by MAP: mode of the marginal {what}, random effects integrated out{beta}",
                     f"Formula: {fit.formula}"]
        if fit.data_name:
            lines.append(f"   Data: {fit.data_name}")
        what_ll = "Laplace log-likelihood" if glmm else "log marginal likelihood"
        lines += ["", f"{what_ll} at the mode: {fit.loglik:.4f}", "",
                  "Random effects (mode, approximate posterior SD):"]
        se = fit.se
        rows = [["Groups", "Name", "Std.Dev.", "(SD)", "Corr"]]
        vc = fit.varcorr
        for t, r in zip(fit.model.priors.term_names(), fit.design.remats):
            block = vc[vc["group"] == t]
            for j, c in enumerate(r.cnames):
                sd = block[(block["var1"] == c) & block["var2"].isna()]["sdcor"].iloc[0]
                corr = []
                for i in range(j):
                    hit = block[(block["var1"] == r.cnames[i]) & (block["var2"] == c)]
                    corr.append(f"{hit['sdcor'].iloc[0]:.2f}")
                rows.append([t if j == 0 else "", c, f"{sd:.4g}", f"{se[f'sd_{t}[{c}]']:.3g}", " ".join(corr)])
        if not glmm:
            rows.append(["Residual", "", f"{fit.sigma:.4g}", f"{se['sigma']:.3g}", ""])
        lines += [" " + x for x in _table(rows, ["l", "l", "r", "r", "l"])]
        groups = "; ".join(f"{g}, {n}" for g, n in fit.ngroups.items())
        lines += [f"Number of obs: {fit.nobs}, groups:  {groups}", "", "Fixed effects:"]
        est = fit.fixef.to_numpy()
        s = np.array([se[n] for n in fit.design.xnames])
        lines += coef_table(fit.fixef.index, est, s, est / s, "z value")
        if not fit.converged:
            lines += ["", f"optimizer: {fit.message}"]
        self.text = "\n".join(lines)
