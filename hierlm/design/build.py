"""From formula and data to the design of a mixed model: y, X and the ReMats."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from ..errors import DataError, FormulaError, ModelError
from ..formula.parse import ParsedFormula, parse_formula
from .data import PreparedData, prepare_data
from .fixed import MatrixBuilder, fixed_effects_matrix
from .remat import ReMat, lme4_order


@dataclass
class Design:
    """Everything an engine needs, in lme4's layout.

    Attributes
    ----------
    formula : ParsedFormula
    y : numpy.ndarray
        Response (length n).
    X : numpy.ndarray
        Fixed-effects model matrix, n x p, full column rank.
    xnames : list of str
        lme4's names of X's columns.
    remats : list of ReMat
        Random-effects terms in lme4's order (theta's order).
    prepared : PreparedData
        Coded data and the rows kept.
    x_builder : MatrixBuilder
        Rebuilds X (before dropping aliased columns) for new data.
    x_keep : list of int
        Columns of the builder's matrix kept in X.
    """

    formula: ParsedFormula
    y: np.ndarray
    X: np.ndarray
    xnames: list
    remats: list
    prepared: PreparedData
    x_builder: MatrixBuilder
    x_keep: list

    @property
    def n(self) -> int:
        return self.y.shape[0]

    @property
    def p(self) -> int:
        return self.X.shape[1]

    @property
    def ntheta(self) -> int:
        return sum(r.ntheta for r in self.remats)

    def theta_slices(self) -> list[slice]:
        out, start = [], 0
        for r in self.remats:
            out.append(slice(start, start + r.ntheta))
            start += r.ntheta
        return out

    def groups(self) -> dict[str, int]:
        """Grouping factors and their numbers of levels (lme4's ``ngrps``)."""
        out: dict[str, int] = {}
        for r in self.remats:
            out.setdefault(r.group, r.nlevels)
        return out


def _response(parsed: ParsedFormula, prep: PreparedData) -> np.ndarray:
    lhs = parsed.response
    frame = prep.frame
    if lhs in frame.columns and isinstance(frame[lhs].dtype, pd.CategoricalDtype):
        raise DataError(
            f"the response {lhs!r} is not numeric (it holds {frame[lhs].dtype.categories.dtype} "
            "values); a Gaussian mixed model needs a numeric response"
        )
    builder = MatrixBuilder("0 + " + lhs, frame, prep.ordered, parsed.text)
    if builder.matrix.shape[1] != 1:
        raise DataError(f"the response {lhs!r} is not a single numeric column")
    y = builder.matrix[:, 0]
    bad = np.flatnonzero(~np.isfinite(y))
    if bad.size:
        raise DataError(
            f"the response {lhs} is not finite in {bad.size} row(s), first at row positions "
            f"{prep.rows[bad[:5]].tolist()}"
        )
    return y


def build_design(formula: str, data, na_action: str = "omit", family: str = "gaussian") -> Design:
    """Parse ``formula``, check ``data`` and build the model's design.

    Parameters
    ----------
    formula : str
        lme4 formula.
    data : pandas.DataFrame
    na_action : {"omit", "raise"}
    family : str
        Only used for lme4's checks that depend on it.

    Returns
    -------
    Design
    """
    parsed = parse_formula(formula)
    if not parsed.random:
        raise FormulaError(
            "the formula has no random-effects term such as (1 | group); a mixed model needs one. "
            "For ordinary regression use statsmodels.formula.api.ols (or numpy.linalg.lstsq)"
        )
    prep = prepare_data(data, parsed, na_action)
    n = len(prep.frame)
    y = _response(parsed, prep)
    xb = MatrixBuilder(parsed.fixed, prep.frame, prep.ordered, parsed.text)
    X, xnames, dropped = fixed_effects_matrix(xb)
    keep = [j for j, name in enumerate(xb.names) if name not in dropped]
    remats = lme4_order([ReMat(t, prep.frame, prep.ordered, parsed.text) for t in parsed.random])
    for r in remats:
        if family == "gaussian" and r.nlevels >= n:
            raise ModelError(
                f"number of levels of each grouping factor must be < number of observations "
                f"(grouping factor {r.group!r} has {r.nlevels} levels for {n} observations)"
            )
        if family == "gaussian" and r.q >= n:
            raise ModelError(
                f"number of observations (={n}) <= number of random effects (={r.q}) for term "
                f"{r.term}; the random-effects parameters and the residual variance are probably "
                "unidentifiable"
            )
    return Design(parsed, y, X, xnames, remats, prep, xb, keep)
