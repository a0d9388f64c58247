"""Model matrices from parsed terms via formulaic, named as R names them.

A :class:`MatrixBuilder` takes the structured terms of a formula side
(:class:`hierlm.formula.terms.TermList`) and builds the matrix with
formulaic's machinery: its factors, contrasts (an ordered factor gets
formulaic's polynomial contrasts, R's ``contr.poly``), stateful transforms
(``scale``, ``poly``: re-applied to new data with the fit's values) and the
model spec that rebuilds the same columns for new data.  Column names come
from the same structure: each factor's R label (``Days``, ``I(x^2)``,
```my x```) followed by its contrast column's R name (the level for
treatment contrasts, ``.L``/``.Q`` for polynomial ones, ``1``, ``2`` for sum
and Helmert contrasts or a matrix-valued call such as ``poly``), joined by
``:`` within a term.  lme4's rank check then drops aliased columns of X.
"""

from __future__ import annotations

import functools
import warnings

import numpy as np
import pandas as pd
from scipy.linalg import blas

from ..errors import FormulaError
from ..formula.terms import Factor, TermList

# functions and constants available inside formulas besides formulaic's own
# (log, exp, poly, C, I, ...): what R users write without a prefix
CONTEXT = {
    "sqrt": np.sqrt, "exp": np.exp, "log": np.log, "log2": np.log2, "log10": np.log10,
    "log1p": np.log1p, "expm1": np.expm1, "abs": np.abs, "sin": np.sin, "cos": np.cos,
    "tan": np.tan, "tanh": np.tanh, "round": np.round, "floor": np.floor, "ceiling": np.ceil,
    "TRUE": True, "FALSE": False, "T": True, "F": False, "pi": np.pi, "np": np,
}


@functools.cache
def _context() -> dict:
    """CONTEXT with R's ``scale`` and the logical recoding, which need
    formulaic (imported on first use: it costs time at ``import hierlm``)."""
    from formulaic.utils.stateful_transforms import stateful_transform

    return {**CONTEXT, "scale": stateful_transform(r_scale), "_r_logical": _r_logical}


def r_scale(data, center=True, scale=True, _state=None):
    """R's ``scale`` as a formulaic stateful transform: the mean and
    ``sqrt(sum(x^2) / (n - 1))`` of the non-missing values (R's
    ``colMeans(x, na.rm = TRUE)`` and ``scale.default``), kept for new data.
    formulaic's own ``scale`` takes the mean of every value, so one missing
    value made the whole column missing."""
    x = np.asarray(data, dtype=float)
    state = {} if _state is None else _state
    if "center" not in state:
        state["center"] = float(np.nanmean(x)) if center is True else (float(center) if center is not False else 0.0)
    x = x - state["center"]
    if "scale" not in state:
        if scale is True:
            v = x[~np.isnan(x)]
            state["scale"] = float(np.sqrt(np.sum(v**2) / max(1, v.size - 1)))
        else:
            state["scale"] = float(scale) if scale is not False else 1.0
    return x / state["scale"]


@functools.cache
def _r_materializer():
    """formulaic's pandas materializer with R's rule for coding factors.

    formulaic (like patsy) picks each factor's coding so that the matrix is
    full rank by construction; for a term whose margins are missing
    (``y ~ f:h``) that gives other columns, and other coefficients, than R.
    R's rule (``TermCode`` in R's model.c; Chambers & Hastie 1992, p. 38):
    a factor in a term is coded by contrasts when the term without it is
    empty or contained in a preceding term, by one indicator per level
    otherwise; without an intercept, the first factor of the first term
    holding a factor gets indicators.  The matrix may then be rank
    deficient (``f:h`` with an intercept), and the caller drops columns as
    lme4 does.  formulaic offers no option for this, hence the subclass.
    """
    import operator

    from formulaic.materializers import PandasMaterializer
    from formulaic.materializers.types import ScopedFactor, ScopedTerm
    from formulaic.parser.types import Factor as FFactor
    from interface_meta import override

    class RMaterializer(PandasMaterializer):
        @override
        def _get_scoped_terms(self, terms, ensure_full_rank=True):
            terms = list(terms)
            evaled = []
            for term in terms:
                evaled.append([self.factor_cache[f.expr] for f in term.factors
                               if self.factor_cache[f.expr].values.__wrapped__ is not None])
            intercept = any(ev and all(e.metadata.kind is FFactor.Kind.CONSTANT for e in ev) for ev in evaled)
            dummy_given = intercept
            preceding: list[set] = []
            for term, ev in zip(terms, evaled):
                if not ev:
                    yield term, []
                    continue
                scale = functools.reduce(operator.mul, [e.values for e in ev
                                                        if e.metadata.kind is FFactor.Kind.CONSTANT], 1)
                variables = [e for e in ev if e.metadata.kind is not FFactor.Kind.CONSTANT]
                names = {e.expr for e in variables}
                factors = []
                for e in variables:
                    if not e.metadata.spans_intercept:  # a number or a numeric matrix
                        factors.append(ScopedFactor(e))
                        continue
                    rest = names - {e.expr}
                    contrasts = not rest or any(rest <= p for p in preceding)
                    if not dummy_given:
                        contrasts, dummy_given = False, True
                    factors.append(ScopedFactor(e, reduced=contrasts))
                preceding.append(names)
                yield term, [ScopedTerm(factors=factors, scale=scale)]

    return RMaterializer


def _formulaic_factor(f: Factor, coding: dict):
    """formulaic's factor for one of ours: a column is looked up (an ordered
    factor gets polynomial contrasts, a logical is coded as a factor
    ``FALSE``/``TRUE``), a call is evaluated."""
    from formulaic.parser.types import Factor as FFactor

    if f.kind == "column":
        how = coding.get(f.expr)
        if how == "poly":
            return FFactor(f"C(`{f.expr}`, contr.poly)", eval_method="python")
        if how == "logical":
            return FFactor(f"_r_logical(`{f.expr}`)", eval_method="python")
        if f.expr == "1":  # formulaic reads a term "1" as the intercept
            return FFactor("`1`", eval_method="python")
        return FFactor(f.expr, eval_method="lookup")
    return FFactor(f.expr, eval_method="python")


def _r_logical(x) -> pd.Categorical:
    """A logical column (held as 0/1, see :func:`_numeric_logicals`) as the
    factor R's model matrix makes of it: levels ``FALSE``, ``TRUE``."""
    x = np.asarray(x, dtype=float)
    labels = np.where(x == 1, "TRUE", "FALSE").astype(object)
    labels[np.isnan(x)] = None
    return pd.Categorical(labels, categories=["FALSE", "TRUE"])


def _numeric_logicals(frame: pd.DataFrame, coding: dict) -> pd.DataFrame:
    """``frame`` with its logical columns as R's arithmetic sees them, 0/1
    doubles (missing stays NaN): ``I(b * x)`` multiplies by 0 or 1, and a bare
    ``b`` is recoded as a factor by ``_r_logical``."""
    cols = [c for c, how in coding.items() if how == "logical" and c in frame.columns]
    if not cols:
        return frame
    out = {}
    for c in cols:
        v = frame[c]
        # the fit's frame holds "FALSE"/"TRUE" labels; new data may hold bools
        num = (np.asarray(v, dtype=float) if pd.api.types.is_bool_dtype(v.dtype)
               else np.asarray(v.astype(object).isin(["TRUE", True]), dtype=float))
        num[np.asarray(pd.isna(v))] = np.nan
        out[c] = num
    return frame.assign(**out)


def _split_column(name: str, prefixes: list[str]) -> list[str] | None:
    """formulaic's column name of a term with factors ``prefixes`` -> each
    factor's bracketed suffix (``"f[T.b]:x"`` -> ``["T.b", ""]``); None when it
    does not have that shape."""
    out, pos = [], 0
    for k, pre in enumerate(prefixes):
        if not name.startswith(pre, pos):
            return None
        pos += len(pre)
        suffix = ""
        if pos < len(name) and name[pos] == "[":
            # the suffix ends at the ']' followed by ':' + the next factor (or the end)
            rest = prefixes[k + 1] if k + 1 < len(prefixes) else None
            end = -1
            for j in range(pos + 1, len(name)):
                if name[j] == "]" and (j + 1 == len(name) if rest is None else name.startswith(":" + rest, j + 1)):
                    end = j
                    break
            if end < 0:
                return None
            suffix = name[pos + 1: end]
            pos = end + 1
        out.append(suffix)
        if k + 1 < len(prefixes):
            if not name.startswith(":", pos):
                return None
            pos += 1
    return out if pos == len(name) else None


def _r_level(text: str, levels) -> str:
    """A level as R's ``as.character`` prints it: the double 2 is "2", not "2.0"
    (factor(k) of a numeric column, which the design holds as doubles)."""
    for level in levels:
        if str(level) == text and isinstance(level, (float, np.floating)) and float(level).is_integer():
            return str(int(level))
    return text


def _r_suffix(suffix: str, state, reduced: bool, seen: list[str]) -> str:
    """R's name of one contrast (or matrix) column of a factor, from formulaic's
    suffix, the factor's encoder state and the suffixes of the factor's columns
    (``seen``, in order)."""
    if not suffix:
        return ""
    kind, info = state
    contrasts = info.get("contrasts") if isinstance(info, dict) else None
    if getattr(kind, "value", kind) != "categorical" or contrasts is None:
        # a matrix-valued call (poly): R numbers its columns 1, 2, ...
        return str(seen.index(suffix) + 1)
    cls = type(contrasts.contrasts).__name__
    if not reduced:  # full dummy coding: the levels, as R
        return _r_level(suffix, contrasts.levels)
    if cls == "TreatmentContrasts":  # formulaic's "T.b" is R's "b"
        return _r_level(suffix[2:] if suffix.startswith("T.") else suffix, contrasts.levels)
    if cls == "PolyContrasts":  # ".L", ".Q", ".C", "^4" as R
        return suffix
    return str(seen.index(suffix) + 1)  # contr.sum, contr.helmert: R numbers the columns


class MatrixBuilder:
    """Build (and later rebuild on new data) a model matrix from parsed terms.

    Parameters
    ----------
    terms : TermList
        One side of a formula (``Days``, ``0 + f``, ``a*b``), parsed once by
        :func:`hierlm.formula.terms.parse_terms`.
    frame : pandas.DataFrame
        Coded data (see :func:`hierlm.design.data.prepare_data`).
    coding : dict
        Special columns: ``"poly"`` (ordered factors: polynomial contrasts)
        or ``"logical"`` (R's logicals); see ``PreparedData.coding``.
    formula : str
        Whole formula text, for error messages.
    rows : numpy.ndarray, optional
        The rows of ``frame`` the model keeps: the matrix is evaluated on all
        of ``frame`` (so ``scale()`` and ``poly()`` see every row, as in R's
        model frame) and then restricted to ``rows``.

    Attributes
    ----------
    matrix : numpy.ndarray
        The model matrix of the kept rows.
    names : list of str
        R's column names.
    assign : list of int
        R's ``assign`` attribute: the term of each column (0 for the
        intercept, k for the k-th term of ``terms``).
    numeric : set of str
        The factors (by ``expr``) that are one numeric column, R's
        ``dataClasses`` "numeric" (what lmerTest's containment of terms reads).
    """

    def __init__(self, terms: TermList, frame: pd.DataFrame, coding: dict, formula: str = "",
                 rows: np.ndarray | None = None):
        self.coding = coding
        self.simple = _simple_terms(terms, frame, coding)
        if self.simple is not None:
            intercept, cols = self.simple
            self.spec = None
            self.names = (["(Intercept)"] if intercept else []) + [f.label for f in terms.factors]
            self.assign = [0] * intercept + list(range(1, len(cols) + 1))
            self.numeric = {f.expr for f in terms.factors}
            full = self._simple_matrix(frame)
            self.matrix = full if rows is None else np.ascontiguousarray(full[rows])
            return
        import formulaic
        from formulaic.parser.types import Factor as FFactor
        from formulaic.parser.types import Term as FTerm

        ours: dict[str, Factor] = {}
        fterms = [FTerm([FFactor("1", eval_method="literal")])] if terms.intercept else []
        for t in terms.terms:
            factors = []
            for f in t.factors:
                ff = _formulaic_factor(f, coding)
                ours[ff.expr] = f
                factors.append(ff)
            fterms.append(FTerm(factors))
        if not fterms:
            raise FormulaError("the model matrix has no columns (no intercept and no terms)", formula or None)
        try:
            # log(0) and the like are reported by the callers, naming the rows
            with np.errstate(all="ignore"):
                mm = _r_materializer()(_numeric_logicals(frame, coding), context=_context()).get_model_matrix(
                    formulaic.Formula(fterms), output="pandas", na_action="ignore")
        except Exception as exc:  # formulaic's errors are not ValueErrors
            raise FormulaError(f"cannot build the model matrix for '{terms}': {exc}", formula or None) from exc
        self.spec = mm.model_spec
        self.names = self._r_names(list(mm.columns), ours)
        # R's "assign": the term of each column (0: the intercept, k: the k-th term)
        first = 0 if terms.intercept else 1
        self.assign = [fterms.index(s.term) + first for s in self.spec.structure for _ in s.columns]
        # factors that are one numeric column (R's dataClasses "numeric"; a
        # matrix-valued call such as poly() is not, as in R)
        self.numeric = {f.expr for f in terms.factors if self._is_numeric(_formulaic_factor(f, coding).expr)}
        full = mm.to_numpy(dtype=float)
        self.matrix = np.ascontiguousarray(full if rows is None else full[rows])

    def _is_numeric(self, expr: str) -> bool:
        kind, _ = self.spec.encoder_state.get(expr, (None, {}))
        if getattr(kind, "value", kind) != "numerical":
            return False
        # one column: the factor appears alone in its columns' names, never with a suffix
        return not any(expr + "[" in c for s in self.spec.structure for c in s.columns)

    def _r_names(self, columns: list[str], ours: dict[str, Factor]) -> list[str]:
        """R's names of formulaic's columns, from the model spec's structure."""
        names = []
        for s in self.spec.structure:
            scoped = [st for st in s.scoped_terms if st.factors]
            if not scoped:  # the intercept
                names += ["(Intercept)"] * len(s.columns)
                continue
            parsed = []
            for col in s.columns:
                for st in scoped:
                    parts = _split_column(col, [sf.factor.expr for sf in st.factors])
                    if parts is not None:
                        parsed.append((st, parts))
                        break
                else:  # pragma: no cover  (formulaic names every column factor by factor)
                    raise FormulaError(f"cannot name the model-matrix column {col!r}")
            # each factor's suffixes in order (to number sum/Helmert and matrix columns)
            seen: dict[tuple[int, str], list[str]] = {}
            for st, parts in parsed:
                for sf, suffix in zip(st.factors, parts):
                    lst = seen.setdefault((id(st), sf.factor.expr), [])
                    if suffix not in lst:
                        lst.append(suffix)
            for st, parts in parsed:
                labels = []
                for sf, suffix in zip(st.factors, parts):
                    state = self.spec.encoder_state.get(sf.factor.expr, (None, {}))
                    r_suffix = _r_suffix(suffix, state, sf.reduced, seen[(id(st), sf.factor.expr)])
                    labels.append(ours[sf.factor.expr].label + r_suffix)
                names.append(":".join(labels))
        return names

    def _simple_matrix(self, frame: pd.DataFrame) -> np.ndarray:
        intercept, cols = self.simple
        X = np.empty((len(frame), len(cols) + intercept))
        if intercept:
            X[:, 0] = 1.0
        for j, c in enumerate(cols):
            X[:, j + intercept] = frame[c].to_numpy(dtype=float)
        return X

    def rebuild(self, frame: pd.DataFrame) -> np.ndarray:
        """The same columns for new data (stateful transforms keep their
        training values: ``scale()`` uses the fit's mean and SD)."""
        if self.simple is not None:
            return self._simple_matrix(frame)
        mm = self.spec.get_model_matrix(_numeric_logicals(frame, self.coding), context=_context(), output="pandas",
                                        na_action="ignore")
        return np.ascontiguousarray(mm.to_numpy(dtype=float))


def _simple_terms(terms: TermList, frame: pd.DataFrame, coding: dict) -> tuple[int, list[str]] | None:
    """(intercept, numeric columns) when every term is one numeric column;
    None otherwise.

    These (the common case: ``Days``, ``1``, ``0 + Days``) need no formulaic
    call, which is most of the set-up time of a small model.
    """
    cols = []
    for t in terms.terms:
        if len(t.factors) != 1:
            return None
        f = t.factors[0]
        if f.kind != "column" or f.expr not in frame.columns or f.expr in coding:
            return None
        if frame[f.expr].dtype.kind not in "iuf":
            return None
        cols.append(f.expr)
    return int(terms.intercept), cols


def rank_keep(X: np.ndarray, tol: float = 1e-7) -> np.ndarray:
    """Columns of X to keep so that they are linearly independent.

    Like R's ``qr(X, LAPACK = FALSE)`` (LINPACK ``dqrdc2``) that lme4's
    ``chkRank.drop.cols`` uses: columns are taken left to right and a column
    is dropped when its norm, after projecting out the kept ones, falls below
    ``tol`` times its original norm.  Later columns are thus dropped in favour
    of earlier ones, as in R.
    """
    n, p = X.shape
    Xf = np.asfortranarray(X, dtype=float)  # contiguous columns
    norms = np.sqrt(np.einsum("ij,ij->j", Xf, Xf))
    keep: list[int] = []
    Qall = np.empty((n, p), order="F")

    def project_out(Q, x):
        # x - Q Q'x by scipy's BLAS rather than numpy's (see hierlm.design.gram.crossprod)
        if Q.shape[1] == 0:
            return x.copy()
        return blas.dgemv(-1.0, Q, blas.dgemv(1.0, Q, x, trans=1), beta=1.0, y=x.copy(), overwrite_y=1)

    for j in range(p):
        if norms[j] == 0:
            continue
        Q = Qall[:, : len(keep)]
        v = project_out(Q, Xf[:, j])
        v = project_out(Q, v)  # second Gram-Schmidt pass for stability
        nv = np.sqrt(blas.ddot(v, v))
        if nv > tol * norms[j]:
            Qall[:, len(keep)] = v / nv
            keep.append(j)
    return np.asarray(keep, dtype=int)


def warn_dropped(names: list[str], keep, stacklevel: int) -> list[str]:
    """lme4's warning for the aliased columns not in ``keep``; returns their names."""
    kept = set(np.asarray(keep).tolist())
    dropped = [n for j, n in enumerate(names) if j not in kept]
    if dropped:
        k = len(dropped)
        warnings.warn(
            f"fixed-effect model matrix is rank deficient so dropping {k} column"
            f"{'s' if k > 1 else ''} / coefficient{'s' if k > 1 else ''} ({', '.join(dropped)})",
            UserWarning,
            stacklevel=stacklevel,
        )
    return dropped


def fixed_effects_matrix(builder: MatrixBuilder) -> tuple[np.ndarray, list[str], list[str], list[int]]:
    """X with aliased columns dropped (lme4's message as a warning).

    Returns
    -------
    X, names, dropped_names, kept column positions of the builder's matrix
    """
    X = builder.matrix
    keep = rank_keep(X) if X.shape[1] else np.arange(0)
    dropped = warn_dropped(builder.names, keep, stacklevel=5)
    if dropped:
        X = np.ascontiguousarray(X[:, keep])
    return X, [builder.names[j] for j in keep], dropped, keep.tolist()
