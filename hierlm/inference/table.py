"""Tables that print as R prints them (an ``anova`` object, a numeric matrix, AICcmodavg's
``aictab``), never truncated, each a DataFrame with ``.to_frame()``."""

from __future__ import annotations

import re
from typing import ClassVar

import numpy as np
import pandas as pd

from ..rformat import format_pval, format_r_vector, lines_html, starred_table, text_table, zapsmall


class RPrintedTable(pd.DataFrame):
    """A DataFrame whose ``str``/``repr`` is R's printed table (subclasses define ``__str__``);
    ``.to_frame()`` gives the plain DataFrame (numbers, every column)."""

    @property
    def _constructor(self):
        return type(self)

    def __repr__(self) -> str:
        return self.__str__()

    def __str__(self) -> str:
        return "\n".join(self._lines())

    def _repr_html_(self) -> str:
        """What ``print`` shows, its table as an HTML table (not pandas' view of the numbers)."""
        return lines_html(self._lines())

    def _lines(self) -> list[str]:
        raise NotImplementedError

    def to_frame(self) -> pd.DataFrame:
        """The table as a plain DataFrame (numbers, not text)."""
        return pd.DataFrame(self)


class AnovaTable(RPrintedTable):
    """A DataFrame of tests that prints as R's ``print.anova``, heading lines first.

    Used for lme4's likelihood-ratio tables, lmerTest's F tests, ``drop1``
    and Wald chi-square tables.  ``.heading`` holds the lines printed above
    the table; ``.hypotheses`` (where set) the contrast matrix of each row.
    """

    _metadata: ClassVar[list[str]] = ["heading", "hypotheses"]

    def _lines(self) -> list[str]:
        """As R's ``print.anova`` (``printCoefmat`` with 5 digits): test
        statistics (``F value``, ``Chisq``, ...) rounded to 4 digits, ``Df``
        columns as they are, the others zapped (R's ``zapsmall``), each
        column formatted together, p-values by ``format.pval`` with
        significance stars, missing cells blank, never truncated."""
        digits, dig_tst = 5, 4
        cols = [str(c) for c in self.columns]
        nc = len(cols)
        has_p = nc > 0 and re.match(r"^(P|Pr)\(", cols[-1]) is not None
        tst = [j for j, c in enumerate(cols) if c[1:7] == " value" or c in ("F", "Cp", "Chisq")]
        dfs = [j for j, c in enumerate(cols) if c.endswith("Df")]
        cells = []
        for j, c in enumerate(cols):
            if has_p and j == nc - 1:
                continue
            v = self[c].to_numpy(dtype=float)
            ok = ~np.isnan(v)
            col = [""] * v.size
            if j in tst:
                x = np.round(v[ok], dig_tst)
            elif j in dfs:
                x = v[ok]
            else:
                x = zapsmall(v[ok], digits)
            txt = [t.strip() for t in format_r_vector(x, digits)] if x.size else []
            for i, t, xi, vi in zip(np.flatnonzero(ok), txt, x, v[ok]):
                # printCoefmat: a non-zero number that printed as zero is shown to digits - 1
                if j not in tst and vi != 0 and float(t) == 0:
                    t = format_r_vector([vi], digits - 1)[0].strip()
                col[i] = t
            cells.append(col)
        pv = np.full(len(self), np.nan)
        if has_p:
            pv = self[cols[-1]].to_numpy(dtype=float)
            ok = np.isfinite(pv)
            col = [""] * pv.size
            for i, t in zip(np.flatnonzero(ok), format_pval(pv[ok], digits=dig_tst) if ok.any() else []):
                col[i] = t
            cells.append(col)
        rows = [list(r) for r in zip(*cells)]
        lines = starred_table(cols, [str(i) for i in self.index], rows, pv)
        return list(getattr(self, "heading", None) or []) + lines


class RTable(RPrintedTable):
    """A DataFrame of numbers that prints as R prints a numeric matrix (``confint``'s):
    each column formatted together to 7 significant digits (R's ``format``), row
    names left-aligned."""

    def _lines(self) -> list[str]:
        cols = [str(c) for c in self.columns]
        cells = [[t.strip() for t in format_r_vector(self[c].to_numpy(dtype=float), 7)] if len(self) else []
                 for c in self.columns]
        rows = [["", *cols]] + [[str(i), *r] for i, r in zip(self.index, zip(*cells))]
        return text_table(rows, ["l"] + ["r"] * len(cols))


class ModelSelectionTable(RPrintedTable):
    """compare()'s table, printed as AICcmodavg's ``print.aictab``: the heading, then ``K``,
    the criterion, its delta, weight, ``Cum.Wt`` and ``LL`` rounded to 2 decimals
    (``.to_frame()`` has every column)."""

    def _lines(self) -> list[str]:
        crit = str(self.columns[1])
        cols = ["K", crit, f"Delta_{crit}", f"{crit}Wt", "Cum.Wt", "LL"]
        cells = [[t.strip() for t in format_r_vector(np.round(self[c].to_numpy(dtype=float), 2), 7)]
                 for c in cols]
        rows = [["", *cols]] + [[str(i), *r] for i, r in zip(self.index, zip(*cells))]
        return (["", f"Model selection based on {crit}:", ""]
                + text_table(rows, ["l"] + ["r"] * len(cols)) + [""])
