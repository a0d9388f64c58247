"""R's number formatting and lme4's printed blocks, shared by every summary.

Numbers are formatted with R's rules for ``format(x, digits = 4)`` (enough
decimals for every element to show 4 significant digits, trailing zeros
dropped), ``format.pval`` and ``printCoefmat`` (estimates and standard
errors share their decimals).  Everything here takes plain values or a
fit's public attributes; nothing imports a fit class.
"""

from __future__ import annotations

import math

import numpy as np

from ..rformat import format_pval, format_r_vector, starred_table, text_table


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


def random_effects_table(fit) -> list[str]:
    """Rows of lme4's 'Random effects:' block."""
    vc = fit.varcorr
    # as lme4's formatVC: a Corr column only when some term has two columns or more
    with_corr = any(r.p > 1 for r in fit.design.remats)
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
    if not with_corr:
        rows = [r[:4] for r in rows]
    return text_table(rows, ["l"] * len(rows[0]), indent=" ")


def _rjust(strings: list[str]) -> list[str]:
    w = max((len(t) for t in strings), default=0)
    return [t.rjust(w) for t in strings]




def coefmat_lines(tab, digits: int = 4) -> list[str]:
    """R's ``printCoefmat`` of a coefficient table (a DataFrame).

    The columns are R's: the coefficient and scale columns (``cs.ind``:
    Estimate, Std. Error and, in lmerTest's table, df), then the test
    statistic (``t value`` or ``z value``), then an optional p-value column
    (``Pr(>|t|)``, ``Pr(>|z|)``).  As R: the ``cs.ind`` columns are rounded
    together to the decimals of their smallest value's ``digits``
    significant digits; a number that is not zero but would print as zero
    is shown with one digit less; the statistic is rounded to 3 decimals;
    p-values go through :func:`format_pval`; stars and their legend when a
    p-value is below 0.1.
    """
    columns = list(tab.columns)
    has_p = columns[-1].startswith("Pr(")
    tst = columns[-2] if has_p else columns[-1]
    cs_cols = columns[: columns.index(tst)]
    names = list(tab.index)
    cs = tab[cs_cols].to_numpy(dtype=float)
    stat = tab[tst].to_numpy(dtype=float)
    nr, nc = cs.shape
    acs = np.abs(cs[np.isfinite(cs) & (cs != 0)])
    digmin = 1 + (math.floor(math.log10(acs.min())) if acs.size else 0)
    rounded = np.round(cs, max(1, digits - digmin))
    cells = np.array(format_r_vector(rounded.T.ravel(), digits), dtype=object).reshape(nc, nr).T
    flat = cs.ravel()
    shown = cells.ravel()
    bad = [i for i in range(flat.size) if np.isfinite(flat[i]) and flat[i] != 0 and float(shown[i]) == 0]
    if bad:
        for i, t in zip(bad, format_r_vector(flat[bad], max(1, digits - 1))):
            shown[i] = t
        cells = shown.reshape(nr, nc)
    stat_s = format_r_vector(np.round(stat, 3), digits)
    if not has_p:
        return starred_table(columns, names, [[*cells[i], stat_s[i]] for i in range(nr)], np.full(nr, np.nan))
    pv = tab[columns[-1]].to_numpy(dtype=float)
    p_s = format_pval(pv, digits=max(1, min(5, digits - 1)))
    return starred_table(columns, names, [[*cells[i], stat_s[i], p_s[i]] for i in range(nr)], pv)


def zapsmall(x: np.ndarray, digits: int) -> np.ndarray:
    """R's ``zapsmall``: round to ``digits`` significant digits of the largest value."""
    mx = np.max(np.abs(x))
    nd = max(0, digits - math.ceil(math.log10(mx))) if mx > 0 else digits
    return np.round(x, nd)


def named_vector(names, strings) -> list[str]:
    """R's print of a named vector: one common, right-justified width."""
    w = max(len(t) for t in list(names) + list(strings))
    return [" ".join(n.rjust(w) for n in names) + " ", " ".join(t.rjust(w) for t in strings) + " "]


def quantile_line(x: np.ndarray) -> list[str]:
    q = zapsmall(np.quantile(x, [0, 0.25, 0.5, 0.75, 1.0]), 5)
    return named_vector(["Min", "1Q", "Median", "3Q", "Max"], format_r(q, 4))


def fixed_corr_lines(fit) -> list[str]:
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
    return ["", "Correlation of Fixed Effects:"] + text_table(rows, ["l"] + ["r"] * (p - 1))


def groups_line(fit) -> str:
    """lme4's 'Number of obs: n, groups:  g, k' line."""
    groups = "; ".join(f"{g}, {n}" for g, n in fit.ngroups.items())
    return f"Number of obs: {fit.nobs}, groups:  {groups}"


def convergence_lines(fit) -> list[str]:
    """The convergence messages every summary ends with (lme4 prints them
    after the fixed effects, one a line), preceded by a blank line."""
    msgs = fit.convergence.messages
    return ["", *msgs] if msgs else []
