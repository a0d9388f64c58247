"""lme4-style text (and HTML) summaries, shared by all fit kinds.

The layout follows lme4's ``print.summary.merMod``; numbers are formatted
with R's rules for ``format(x, digits = 4)`` (enough decimals for every
element to show 4 significant digits, trailing zeros dropped) and
``printCoefmat`` (estimates and standard errors share their decimals).
"""

from __future__ import annotations

import html
import math

import numpy as np


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


def summary_lines(fit) -> list[str]:
    """lme4's summary of a REML or ML linear mixed model fit."""
    lines = []
    if fit.reml:
        lines.append("Linear mixed model fit by REML ['lmerMod']")
    else:
        lines.append("Linear mixed model fit by maximum likelihood  ['lmerMod']")
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
    se = np.sqrt(np.diag(fit.vcov.to_numpy()))
    est = fit.fixef.to_numpy()
    lines.extend(coef_table(fit.fixef.index, est, se, est / se, "t value"))
    lines.extend(_fixed_corr(fit))
    if fit.optinfo.messages:
        lines.append("")
        lines.extend(fit.optinfo.messages)
    return lines


class LMMSummary:
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
    """lme4's ``print(fit)``: header, criterion, random effects, fixed effects."""
    lines = [summary_lines(fit)[0], f"Formula: {fit.formula}"]
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
        lines = [f"Bayesian linear mixed model fit by NUTS ({fit.sampler}; {post.sizes['chain']} chains x "
                 f"{post.sizes['draw']} draws; {how})", f"Formula: {fit.formula}"]
        if fit.data_name:
            lines.append(f"   Data: {fit.data_name}")
        re_rows, fe_rows = _posterior_rows(fit)
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
        lines = [f"Mixed model fit by MAP: mode of the marginal {what}, random effects integrated out{beta}",
                 f"Formula: {fit.formula}"]
        if fit.data_name:
            lines.append(f"   Data: {fit.data_name}")
        lines += ["", f"log marginal likelihood at the mode: {fit.loglik:.4f}", "",
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
