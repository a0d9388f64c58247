"""From formula and data to the design of a mixed model: y, X and the ReMats."""

from __future__ import annotations

import itertools
import warnings
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from ..errors import DataError, FormulaError, ModelError, where_rows
from ..formula.parse import ParsedFormula, parse_formula
from ..formula.terms import Term, TermList, parse_expression
from .data import PreparedData, prepare_data
from .fixed import MatrixBuilder, fixed_effects_matrix
from .gram import Gram
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
    counts : numpy.ndarray or None
        n x 2 successes and failures of a ``cbind(successes, failures)``
        response (then ``y`` is the proportion of successes).
    weights : numpy.ndarray or None
        Prior weights given by ``weights=`` (None: all 1).
    offset : numpy.ndarray or None
        Sum of the formula's ``offset(...)`` terms and ``offset=`` (None: 0).
    offset_builders : list of MatrixBuilder
        Rebuild the formula's offset terms for new data.
    gram : hierlm.design.gram.Gram or None
        For a design whose rows are not here (a ``dask.dataframe`` on a
        cluster, :mod:`hierlm.design.distributed`): the Gram blocks summed
        over its rows; then ``y`` and ``X`` are None and the ReMats hold no
        rows.  None for a design with its rows (the engines make the blocks).
    rows_source : object or None
        Where a rows-free design's rows are (the dask DataFrame), for a later
        pass over them (bootstrap responses).
    response_levels : list of str or None
        The ordered categories of an ordinal response (then ``y`` holds their
        codes 0..K-1 and X has no intercept: the thresholds take its place).
    """

    formula: ParsedFormula
    y: np.ndarray
    X: np.ndarray
    xnames: list
    remats: list
    prepared: PreparedData
    x_builder: MatrixBuilder
    x_keep: list
    counts: np.ndarray | None = None
    weights: np.ndarray | None = None
    offset: np.ndarray | None = None
    offset_builders: list = field(default_factory=list)
    gram: Gram | None = None
    rows_source: object = None
    response_levels: list | None = None

    @property
    def n(self) -> int:
        return self.gram.n if self.y is None else self.y.shape[0]

    @property
    def p(self) -> int:
        return self.gram.p if self.X is None else self.X.shape[1]

    @property
    def rows_free(self) -> bool:
        """True when the rows are not in this process (only their Gram blocks)."""
        return self.y is None

    @property
    def ntheta(self) -> int:
        return sum(r.ntheta for r in self.remats)

    def theta_slices(self) -> list[slice]:
        out, start = [], 0
        for r in self.remats:
            out.append(slice(start, start + r.ntheta))
            start += r.ntheta
        return out

    def threshold_names(self) -> list[str]:
        """An ordinal response's thresholds, named as clmm's (``1|2``, ``2|3``, ...); [] otherwise."""
        lv = self.response_levels or []
        return [f"{a}|{b}" for a, b in itertools.pairwise(lv)]

    def groups(self) -> dict[str, int]:
        """Grouping factors and their numbers of levels (lme4's ``ngrps``)."""
        out: dict[str, int] = {}
        for r in self.remats:
            out.setdefault(r.group, r.nlevels)
        return out


def _expression_column(expr: str, prep: PreparedData, formula: str, what: str) -> tuple[np.ndarray, MatrixBuilder]:
    """One numeric column from an R expression (a column name, ``size - incidence``,
    ``log(size)``) and the builder that rebuilds it for new data."""
    frame = prep.frame
    factor = parse_expression(expr, formula)
    if factor.kind == "column" and factor.expr in frame.columns and isinstance(frame[factor.expr].dtype,
                                                                                pd.CategoricalDtype):
        raise DataError(f"the {what} {expr!r} is not numeric (it is a factor); it must hold numbers")
    full, rows = prep.source()
    builder = MatrixBuilder(TermList(False, (Term((factor,)),)), full, prep.coding, formula, rows=rows)
    if builder.matrix.shape[1] != 1:
        raise DataError(f"the {what} {expr!r} is not a single numeric column")
    col = builder.matrix[:, 0]
    bad = np.flatnonzero(~np.isfinite(col))
    if bad.size:
        raise DataError(f"the {what} {expr} is not finite in {where_rows(prep.rows, bad)}")
    return col, builder


def _cbind_response(parsed: ParsedFormula, prep: PreparedData, family: str):
    """(proportion, n x 2 counts) of a ``cbind(successes, failures)`` response."""
    if family != "binomial":
        raise DataError(
            f"the response {parsed.response!r} (successes and failures) needs family='binomial', "
            f"not {family!r}"
        )
    parts = parsed.response_parts
    cols = [_expression_column(e, prep, parsed.text, "response column")[0] for e in parts]
    counts = np.column_stack(cols)
    total = counts.sum(axis=1)
    # as R's binomial()$initialize: no trials -> proportion 0 (with weight 0)
    with np.errstate(invalid="ignore", divide="ignore"):
        y = np.where(total == 0, 0.0, counts[:, 0] / np.where(total == 0, 1.0, total))
    return y, counts


def _ordinal_response(parsed: ParsedFormula, prep: PreparedData) -> tuple[np.ndarray, list]:
    """Category codes 0..K-1 and the categories of an ordinal response: an (ordered)
    categorical in its order of categories, or integers in increasing order (R's
    ``clmm`` wants an ordered factor; integers such as Likert scores are read as one)."""
    lhs = parsed.response
    frame = prep.frame
    if lhs not in frame.columns:
        raise DataError(f"the ordinal response {lhs!r} must be a column (an ordered categorical or integers), "
                        "not an expression")
    col = frame[lhs]
    if isinstance(col.dtype, pd.CategoricalDtype):
        # (categories with no rows are gone already, as R's model frame drops unused levels:
        # a threshold between two categories needs rows in both)
        cats = col.cat.categories
        if not col.cat.ordered:
            warnings.warn(f"the ordinal response {lhs!r} is an unordered categorical: its categories are taken "
                          f"in the order {[str(c) for c in cats]}; make it ordered (pd.Categorical(..., "
                          "ordered=True)) to say the order yourself", UserWarning, stacklevel=5)
        return col.cat.codes.to_numpy().astype(float), [str(c) for c in cats]
    if lhs in prep.logical:
        y = np.asarray(col.astype(str) == "TRUE", dtype=float)
        return y, ["FALSE", "TRUE"]
    y = col.to_numpy(dtype=float)
    bad = np.flatnonzero(~np.isfinite(y) | (y != np.round(y)))
    if bad.size:
        raise DataError(f"the ordinal response {lhs!r} must hold categories (an ordered categorical) or whole "
                        f"numbers; it is not a whole number in {where_rows(prep.rows, bad)}")
    values = np.unique(y)
    return np.searchsorted(values, y).astype(float), [f"{v:g}" for v in values]


def _response(parsed: ParsedFormula, prep: PreparedData, family: str = "gaussian") -> np.ndarray:
    lhs = parsed.response
    frame = prep.frame
    col = frame[lhs] if lhs in frame.columns else None
    if col is not None and not isinstance(col.dtype, pd.CategoricalDtype):
        # a numeric column (the common case): no expression to evaluate
        y = col.to_numpy(dtype=float)
        bad = np.flatnonzero(~np.isfinite(y))
        if bad.size:
            raise DataError(f"the response {lhs} is not finite in {where_rows(prep.rows, bad)}")
        return y
    if lhs in prep.logical:  # R reads a logical response as 0/1
        return np.asarray(frame[lhs].astype(str) == "TRUE", dtype=float)
    if family == "binomial" and col is not None:
        # R's binomial(): a factor response is 0 for its first level, 1 otherwise
        cats = frame[lhs].cat.categories
        if len(cats) > 2:
            warnings.warn(
                f"the response {lhs!r} has {len(cats)} levels; as R's binomial() the first "
                f"({cats[0]!r}) counts as failure and all others as success",
                UserWarning, stacklevel=4,
            )
        return (frame[lhs].cat.codes.to_numpy() != 0).astype(float)
    if col is not None:  # a factor (a numeric column returned above)
        raise DataError(
            f"the response {lhs!r} is not numeric (it holds {frame[lhs].dtype.categories.dtype} "
            "values); a Gaussian mixed model needs a numeric response"
        )
    # an R expression such as log(Reaction) or incidence/size
    return _expression_column(lhs, prep, parsed.text, "response")[0]


def _column_or_array(value, arg: str, data, prep: PreparedData, formula: str) -> np.ndarray:
    """``weights=``/``offset=`` given as a column name or as one value per data row."""
    if isinstance(value, str):
        return _expression_column(value, prep, formula, f"{arg} column")[0]
    arr = np.asarray(value, dtype=float).ravel() if np.ndim(value) else np.full(len(data), float(value))
    if arr.size != len(data):
        raise DataError(f"{arg} has {arr.size} values but the data has {len(data)} rows; give one per row "
                        "(or the name of a column)")
    arr = arr[prep.rows]
    bad = np.flatnonzero(~np.isfinite(arr))
    if bad.size:
        raise DataError(f"{arg} is missing or infinite in {where_rows(prep.rows, bad)}")
    return arr


def _check_finite(builder: MatrixBuilder, prep: PreparedData, what: str) -> None:
    """A model-matrix column that is NaN or infinite in a row used (log of a
    negative number or of 0) is an error that names it: neither dropping the
    column nor fitting with it would be right."""
    bad = ~np.isfinite(builder.matrix)
    if not bad.any():
        return
    j = int(np.flatnonzero(bad.any(axis=0))[0])
    rows = np.flatnonzero(bad[:, j])
    kind = "NaN" if np.isnan(builder.matrix[rows[0], j]) else "infinite"
    raise DataError(
        f"the {what} model-matrix column {builder.names[j]!r} is {kind} in {where_rows(prep.rows, rows)} (e.g. the log or square root of a negative number, or "
        "the log of 0); remove those rows or change the transformation")


def check_sizes(p: int, remats: list, n: int, family: str) -> None:
    """lme4's checks of the model's size against the rows used: fewer fixed
    effects than rows, ``checkNlevels`` (more than one level; for linear
    mixed models fewer levels and random effects than rows)."""
    if p >= n:
        raise ModelError(
            f"the model has {p} fixed effects for {n} observations: nothing is left to estimate the "
            "variances (a factor with a level per row, such as an ID or a time stamp used as a factor?)")
    for r in remats:
        if r.nlevels < 2:  # lme4's checkNlevels
            raise ModelError(
                f"grouping factors must have > 1 sampled level: {r.group!r} has {r.nlevels} "
                f"(level {r.levels[0]!r}) in the {n} rows used; a random effect needs several groups"
            )
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


def build_design(formula: str, data, na_action: str = "omit", family: str = "gaussian",
                 weights=None, offset=None) -> Design:
    """Parse ``formula``, check ``data`` and build the model's design.

    Parameters
    ----------
    formula : str
        lme4 formula; for a binomial model the response may be
        ``cbind(successes, failures)`` and the fixed part may hold
        ``offset(expr)`` terms.
    data : pandas.DataFrame
    na_action : {"omit", "raise"}
    family : str
        Used for lme4's checks that depend on it and for the response's coding.
    weights, offset : str or array-like, optional
        A column name or one value per row of ``data`` (prior weights; an
        offset added to the formula's ``offset()`` terms).

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
    if family == "gaussian" and parsed.response_parts is not None:
        raise ModelError(
            "cbind() responses are for binomial generalized linear mixed models (family='binomial'); "
            "the linear mixed model (family='gaussian') takes one response column"
        )
    extra = tuple((arg, v) for arg, v in (("weights", weights), ("offset", offset)) if isinstance(v, str))
    prep = prepare_data(data, parsed, na_action, extra=extra)
    n = len(prep.frame)
    counts, levels = None, None
    if parsed.response_parts is not None:
        y, counts = _cbind_response(parsed, prep, family)
    elif family == "ordinal":
        y, levels = _ordinal_response(parsed, prep)
    else:
        y = _response(parsed, prep, family)
    w = None if weights is None else _column_or_array(weights, "weights", data, prep, parsed.text)
    if w is not None and family == "gaussian":
        # residual variance sigma^2 / w: a weight must be positive (GLMMs check theirs with the response)
        bad = np.flatnonzero(w < 0)
        if bad.size:
            raise DataError(f"weights must not be negative; negative in {where_rows(prep.rows, bad)}")
        bad = np.flatnonzero(w == 0)
        if bad.size:
            raise DataError(f"weights of a linear mixed model must be positive; zero in {where_rows(prep.rows, bad)}: "
                            "drop those rows (a zero-weight row carries no information)")
    off, off_builders = None, []
    for expr in parsed.offsets:
        col, builder = _expression_column(expr, prep, parsed.text, "offset")
        off = col if off is None else off + col
        off_builders.append(builder)
    if offset is not None:
        col = _column_or_array(offset, "offset", data, prep, parsed.text)
        off = col if off is None else off + col
    full, rows = prep.source()
    xb = MatrixBuilder(parsed.fixed_terms, full, prep.coding, parsed.text, rows=rows)
    _check_finite(xb, prep, "fixed-effects")
    X, xnames, dropped, keep = fixed_effects_matrix(xb)
    if family == "ordinal" and "(Intercept)" in xnames:
        # the thresholds are the intercepts of a cumulative link model (R's clm drops it too)
        j = xnames.index("(Intercept)")
        X, xnames, keep = np.delete(X, j, axis=1), xnames[:j] + xnames[j + 1:], list(keep[:j]) + list(keep[j + 1:])
    remats = lme4_order([ReMat(t, prep.frame, prep.coding, parsed.text, source=prep.source())
                         for t in parsed.random])
    for r in remats:
        if r.builder is not None:
            _check_finite(r.builder, prep, f"random-effects term {r.term}")
    check_sizes(X.shape[1], remats, n, family)
    return Design(parsed, y, X, xnames, remats, prep, xb, keep, counts=counts, weights=w, offset=off,
                  offset_builders=off_builders, response_levels=levels)
