"""Data checks and R-style factor coding.

Before any matrix is built the data frame is reduced to the columns the
formula uses, checked (unknown columns, empty data, infinite values), rows
with missing values are dropped as lme4's ``na.omit`` does (with a warning
that gives the count), and columns are coded as R would code them:

* a pandas ``Categorical`` keeps its category order (first = reference level);
  unused categories are dropped (lme4 uses ``drop.unused.levels = TRUE``);
* an *ordered* ``Categorical`` gets polynomial contrasts (R's ``contr.poly``);
* strings, objects and booleans become factors with sorted levels.
"""

from __future__ import annotations

import difflib
import warnings
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from ..errors import DataError, FormulaError
from ..formula.parse import ParsedFormula
from ..formula.terms import CONSTANTS

def _suggest(name: str, columns) -> str:
    close = difflib.get_close_matches(name, [str(c) for c in columns], n=1, cutoff=0.6)
    if not close:
        lowered = {str(c).lower(): str(c) for c in columns}
        if name.lower() in lowered:
            close = [lowered[name.lower()]]
    if close:
        return f"; did you mean {close[0]!r}?"
    cols = ", ".join(repr(str(c)) for c in list(columns)[:12])
    return f"; the data has columns {cols}{' ...' if len(columns) > 12 else ''}"


def natural_levels(values) -> list:
    """Sorted unique values; numbers (or strings that all look like integers)
    in numeric order, as R's ``factor()`` sorts numbers."""
    uniq = pd.unique(pd.Series(values).dropna())
    try:
        as_int = [int(v) for v in uniq]
        if all(str(v) == str(i) for v, i in zip(uniq, as_int)):
            return [v for _, v in sorted(zip(as_int, uniq))]
    except (TypeError, ValueError):
        pass
    return _sorted_any(uniq)


def as_factor(s: pd.Series) -> pd.Categorical:
    """Code a column as an R factor (see module docstring); booleans become
    levels ``FALSE``, ``TRUE`` as R's logicals do in a model matrix."""
    if pd.api.types.is_bool_dtype(s.dtype):
        return pd.Categorical(s.map({False: "FALSE", True: "TRUE"}), categories=["FALSE", "TRUE"])
    if isinstance(s.dtype, pd.CategoricalDtype):
        return s.cat.remove_unused_categories().array
    if pd.api.types.is_numeric_dtype(s.dtype) and not pd.api.types.is_bool_dtype(s.dtype):
        return pd.Categorical(s, categories=sorted(pd.unique(s.dropna())))
    return pd.Categorical(s, categories=_sorted_any(pd.unique(s.dropna())))


def r_numbers(s: pd.Series, grouping: bool) -> np.ndarray:
    """A numeric column's values as R holds them: doubles, so that formula
    arithmetic on small integer types cannot wrap around; a grouping
    column's integers stay integers (int64), so that its level labels stay
    "1", not "1.0"."""
    if grouping and s.dtype.kind in "iu" and not s.isna().any():
        return s.to_numpy(dtype=np.int64)
    return s.to_numpy(dtype=float)


def as_r_vector(s: pd.Series, col: str) -> pd.Series:
    """A column as R would read it: numbers held as objects are numbers,
    datetimes and durations are numbers (seconds, as R's POSIXct and difftime
    in seconds); an object column mixing numbers and strings that print alike
    (1 and "1") is refused, since its levels could not be told apart."""
    if pd.api.types.is_datetime64_any_dtype(s.dtype):
        ns = s.astype("datetime64[ns]") if not isinstance(s.dtype, pd.DatetimeTZDtype) else s.dt.tz_convert(None)
        return pd.Series((ns - pd.Timestamp(0)).dt.total_seconds().to_numpy(), index=s.index, name=s.name)
    if pd.api.types.is_timedelta64_dtype(s.dtype):
        return pd.Series(s.dt.total_seconds().to_numpy(), index=s.index, name=s.name)
    if s.dtype == object:
        # pandas' vectorized type inference; the element-wise check below only
        # for columns that mix types (a million strings: 0.7 s -> a few ms)
        kind = pd.api.types.infer_dtype(s, skipna=True)
        if kind in ("integer", "floating", "mixed-integer-float", "decimal"):
            return pd.to_numeric(s)
        if not kind.startswith("mixed"):
            return s
        vals = s.dropna()
        labels = vals.astype(str)
        clash = labels[labels.duplicated(keep=False)]
        if len(clash) and vals[clash.index].map(type).nunique() > 1:
            first = clash.iloc[0]
            kinds = sorted({type(v).__name__ for v in vals[labels == first]})
            raise DataError(
                f"column {col!r} holds values of different types that print alike ({first!r} as "
                f"{', '.join(kinds)}): its factor levels could not be told apart; convert the column to "
                "one type first, e.g. data[col].astype(str)")
    return s


def _sorted_any(values) -> list:
    try:
        return sorted(values)
    except TypeError:
        return sorted(values, key=str)


@dataclass
class PreparedData:
    """The rows and columns a model uses, coded for formulaic.

    Attributes
    ----------
    frame : pandas.DataFrame
        Used columns only, rows without missing values, factors coded.
    ordered : set of str
        Columns to be given polynomial contrasts.
    n_dropped : int
        Rows removed for missing values.
    rows : numpy.ndarray
        Positions of the kept rows in the user's data.
    row_index : pandas.Index
        The user's row labels of the kept rows (a copy: fitted values keep
        their labels whatever happens to the data frame afterwards).
    grouping : set of str
        Columns that form grouping factors (their integers stay integers,
        for their level labels).
    logical : set of str
        Columns that were booleans (R's logicals): coded as factors with
        levels FALSE, TRUE, and read as 0/1 where a number is needed (a
        response, or arithmetic such as ``I(b * x)``).
    full : pandas.DataFrame or None
        The coded columns of every row (None when no row was dropped): R
        evaluates a model frame's transforms (``scale``, ``poly``) on all
        rows before dropping the incomplete ones.
    """

    frame: pd.DataFrame
    ordered: set
    n_dropped: int
    rows: np.ndarray
    row_index: pd.Index | None = None
    full: pd.DataFrame | None = None
    logical: set = field(default_factory=set)
    grouping: set = field(default_factory=set)

    @property
    def coding(self) -> dict[str, str]:
        """How the model matrix codes special columns: ``"poly"`` for ordered
        factors (R's ``contr.poly``), ``"logical"`` for R's logicals (a
        factor ``FALSE``/``TRUE`` as a term, 0/1 inside an expression)."""
        return {**{c: "poly" for c in self.ordered}, **{c: "logical" for c in self.logical}}

    def source(self) -> tuple[pd.DataFrame, np.ndarray | None]:
        """(frame to evaluate the model's transforms on, rows of it to keep)."""
        return (self.frame, None) if self.full is None else (self.full, self.rows)


def prepare_data(data, parsed: ParsedFormula, na_action: str = "omit", extra: tuple = ()) -> PreparedData:
    """Check and code the data for a parsed formula.

    Parameters
    ----------
    data : pandas.DataFrame
    parsed : ParsedFormula
    na_action : {"omit", "raise"}
        ``"omit"`` drops incomplete rows with a warning (lme4's ``na.omit``);
        ``"raise"`` refuses them.
    extra : tuple of (str, str)
        Further columns the model uses outside the formula, as
        ``(argument, column)`` pairs (``("weights", "size")``): they are
        checked and kept like the formula's columns (R's model frame holds
        the weights and offset variables too).

    Raises
    ------
    DataError
        Not a data frame, empty, unknown column, missing values under
        ``na_action="raise"``, infinite values, non-numeric response.
    """
    if not isinstance(data, pd.DataFrame):
        if isinstance(data, dict):
            data = pd.DataFrame(data)
        else:
            raise DataError(f"data must be a pandas DataFrame, not {type(data).__name__}")
    if na_action not in ("omit", "raise"):
        raise DataError(f"na_action must be 'omit' or 'raise', not {na_action!r}")
    if data.shape[0] == 0:
        raise DataError("the data has no rows")

    text = parsed.text
    columns = list(data.columns)
    colset = {str(c) for c in columns}
    used: list[str] = []
    # every name the parsed formula reads, with its position in the user's text
    for name, pos in parsed.variables():
        if name not in colset and name in CONSTANTS:
            continue  # TRUE, pi, contr.poly, ... (unless the data has such a column)
        if name not in colset:
            raise FormulaError(f"unknown column {name!r}{_suggest(name, columns)}", text, pos)
        if name not in used:
            used.append(name)
    for arg, name in extra:
        if name not in colset:
            raise DataError(f"{arg}={name!r} is not a column of the data{_suggest(name, columns)}")
        if name not in used:
            used.append(name)
    dup = sorted({str(c) for c in columns if str(c) in used and sum(str(k) == str(c) for k in columns) > 1})
    if dup:
        raise DataError(f"the data has more than one column named {', '.join(repr(c) for c in dup)}; "
                        "give each column a distinct name")
    raw = {str(c): data[c] for c in columns if str(c) in used}
    n = len(data)

    # missing values (lme4: na.omit over every variable of the formula)
    incomplete = np.zeros(n, dtype=bool)
    for col in raw.values():
        incomplete |= np.asarray(pd.isna(col))
    n_drop = int(incomplete.sum())
    if n_drop:
        bad_cols = [c for c, col in raw.items() if col.isna().any()]
        where = ", ".join(f"{c!r} ({int(raw[c].isna().sum())})" for c in bad_cols)
        if na_action == "raise":
            first = np.flatnonzero(incomplete)[:5].tolist()
            raise DataError(
                f"{n_drop} row(s) have missing values in {where}; first row positions {first}. "
                "Remove or impute them, or use na_action='omit' to drop them."
            )
        if n_drop == n:
            raise DataError(f"every row has a missing value (columns {where}); nothing to fit")
        warnings.warn(
            f"dropped {n_drop} of {n} rows with missing values in {where}",
            UserWarning,
            stacklevel=3,
        )
    rows = np.flatnonzero(~incomplete)

    # R's model frame: every variable is coded (and every transform later
    # evaluated) on all rows, then the incomplete rows are dropped; factor
    # levels are those of the rows kept (drop.unused.levels)
    ordered: set[str] = set()
    logical: set[str] = set()
    grouping = {f for t in parsed.random for f in t.factors}
    coded: dict = {}
    for col, s0 in raw.items():
        s = as_r_vector(s0, col)
        if isinstance(s.dtype, pd.CategoricalDtype):
            coded[col] = s.array.remove_unused_categories()
            if s.cat.ordered:
                ordered.add(col)
        elif pd.api.types.is_bool_dtype(s.dtype) or not pd.api.types.is_numeric_dtype(s.dtype):
            coded[col] = as_factor(s)
            if pd.api.types.is_bool_dtype(s.dtype):
                logical.add(col)
        else:
            vals = s.to_numpy(dtype=float)
            if not np.isfinite(vals[rows]).all():
                bad = np.flatnonzero(~np.isfinite(vals[rows]))
                raise DataError(
                    f"column {col!r} has {bad.size} infinite value(s), first at row positions "
                    f"{[int(r) for r in rows[bad[:5]]]}; remove them or set them to NaN to have the rows dropped"
                )
            coded[col] = r_numbers(s, col in grouping)
    if n_drop:
        for col, v in coded.items():  # factor levels of the kept rows only
            if isinstance(v, pd.Categorical):
                coded[col] = v.set_categories(v[rows].remove_unused_categories().categories)
    # arrays into one frame without copying them: cheaper than a pandas
    # sub-frame copy, which dominates small fits' set-up time
    frame = pd.DataFrame(coded, copy=False)
    full = None
    if n_drop:
        full = frame
        frame = frame.iloc[rows].reset_index(drop=True)
    # a copy of the labels (a RangeIndex copies in O(1))
    row_index = data.index.copy() if not n_drop else pd.Index(data.index[rows], copy=True)
    return PreparedData(frame=frame, ordered=ordered, n_dropped=n_drop, rows=rows, row_index=row_index, full=full,
                        logical=logical, grouping=grouping)
