"""R's formatting of numbers in printed tables: ``format(x, digits)``,
``format.pval`` and the significance codes.  The lowest layer (no hierlm
imports), so that every stage that prints a table formats as R does."""

from __future__ import annotations

import numpy as np


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
    """R's (>= 4.2) ``format.pval``: p-values down to 1e-4 (1e-3 when
    ``digits`` is 1) in fixed notation, formatted together, smaller ones
    together in scientific notation, ``< eps`` below ``eps``, ``NA`` for
    missing ones."""
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


def zapsmall(x, digits: int) -> np.ndarray:
    """R's (4.2) ``zapsmall``: round to ``digits - log10(max|x|)`` decimals,
    that count itself rounded half up as R's ``round`` does with a
    non-integer ``digits`` (so 1814.8505 becomes 1814.85 at 5 digits, and
    then prints as 1814.8, as lme4's anova tables show it)."""
    x = np.asarray(x, dtype=float)
    fin = x[np.isfinite(x)]
    if fin.size == 0:
        return x
    mx = np.max(np.abs(fin))
    d = digits if mx <= 0 else max(0.0, digits - np.log10(mx))
    return np.round(x, int(np.floor(d + 0.5)))


SIGNIF_LEGEND = "Signif. codes:  0 \u2018***\u2019 0.001 \u2018**\u2019 0.01 \u2018*\u2019 0.05 \u2018.\u2019 0.1 \u2018 \u2019 1"


class TableLine(str):
    """One printed line of a :func:`text_table`.  It is the text R prints, and it
    keeps the table's cells (``cells``: every row, the first the header) so that a
    notebook shows the same table as HTML (:func:`lines_html`)."""

    cells: list[list[str]]
    align: list[str]

    def __new__(cls, text: str, cells: list[list[str]], align: list[str]):
        obj = super().__new__(cls, text)
        obj.cells, obj.align = cells, align
        return obj


def text_table(rows: list[list[str]], align: list[str], indent: str = "") -> list[str]:
    """Columns padded to a common width (``align``: ``"l"`` or ``"r"`` per column), one
    line per row, each a :class:`TableLine` that remembers the table."""
    widths = [max(len(r[j]) for r in rows) for j in range(len(rows[0]))]
    out = []
    for r in rows:
        cells = [c.ljust(w) if a == "l" else c.rjust(w) for c, w, a in zip(r, widths, align)]
        out.append(TableLine(indent + " ".join(cells).rstrip(), rows, align))
    return out


def lines_html(lines: list[str]) -> str:
    """The printed lines as HTML: each table from :func:`text_table` a real ``<table>``
    (header row, cells aligned as printed), the other lines preformatted text, in
    the order printed, so that a notebook shows what ``print`` shows."""
    import html

    out: list[str] = []
    text: list[str] = []

    def flush_text():
        if text:
            out.append("<pre style='margin: 0.2em 0'>" + html.escape("\n".join(text)) + "</pre>")
            text.clear()

    seen = None
    for line in lines:
        if isinstance(line, TableLine):
            if line.cells is seen:
                continue
            flush_text()
            seen = line.cells
            head, *body = line.cells
            style = ["left" if a == "l" else "right" for a in line.align]
            th = "".join(f"<th style='text-align: {s}'>{html.escape(c)}</th>" for c, s in zip(head, style))
            trs = "".join("<tr>" + "".join(f"<td style='text-align: {s}; white-space: pre'>{html.escape(c)}</td>"
                                           for c, s in zip(r, style)) + "</tr>" for r in body)
            out.append(f"<table class='hierlm'><thead><tr>{th}</tr></thead><tbody>{trs}</tbody></table>")
        else:
            seen = None
            text.append(str(line))
    flush_text()
    return "<div class='hierlm-output'>" + "".join(out) + "</div>"


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
    lines = text_table(rows, ["l"] + ["r"] * (len(header) - 1))
    if stars:
        lines += ["---", SIGNIF_LEGEND]
    return lines
