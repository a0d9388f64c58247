"""Model matrices from formula text via formulaic, with R's column names.

formulaic builds the matrices (contrasts, ``poly``, ``scale``, interactions,
stateful transforms re-applied to new data).  This module adds what R users
expect on top: column names as R prints them (``(Intercept)``, ``period2``,
``o.L``, ``I(x^2)``, ``poly(x, 2)1``), polynomial contrasts for ordered
factors, numpy functions such as ``sqrt`` and ``exp`` in formulas, and
lme4's rank check that drops aliased columns of X.
"""

from __future__ import annotations

import re
import warnings

import numpy as np
import pandas as pd

from ..errors import FormulaError
from ..formula.parse import to_formulaic

# functions available inside formulas besides formulaic's own (log, exp,
# scale, poly, C, I, ...): what R users write without a prefix
CONTEXT = {
    "sqrt": np.sqrt, "exp": np.exp, "log": np.log, "log2": np.log2, "log10": np.log10,
    "log1p": np.log1p, "expm1": np.expm1, "abs": np.abs, "sin": np.sin, "cos": np.cos,
    "tan": np.tan, "tanh": np.tanh, "round": np.round, "floor": np.floor, "ceiling": np.ceil,
}


def _ordered_to_poly(expr: str, ordered: set) -> str:
    for col in ordered:
        expr = re.sub(rf"(?<![\w.`])({re.escape(col)})(?![\w.`(])", r"C(\1, contr.poly)", expr)
    return expr


def r_name(name: str, used_factor: bool) -> str:
    """formulaic column name -> R's (``f[T.b]`` -> ``fb``, ``Intercept`` -> ``(Intercept)``)."""
    if name == "Intercept":
        return "(Intercept)"
    name = re.sub(r"C\(([^,()]+), contr\.poly\)", r"\1", name)
    name = re.sub(r"\[T\.([^\]]*)\]", r"\1", name)
    name = re.sub(r"\[([^\]]*)\]", r"\1", name)
    if used_factor:
        name = name.replace("C(", "factor(")
    return name.replace(" ** ", "^")


class MatrixBuilder:
    """Build (and later rebuild on new data) a model matrix from R formula text.

    Parameters
    ----------
    expr : str
        Right-hand side in R syntax (``"Days"``, ``"0 + f"``, ``"a*b"``).
    frame : pandas.DataFrame
        Coded data (see :func:`hierlm.design.data.prepare_data`).
    ordered : set of str
        Columns that get polynomial contrasts.
    formula : str
        Whole formula text, for error messages.
    """

    def __init__(self, expr: str, frame: pd.DataFrame, ordered: set, formula: str = ""):
        self.expr = expr
        self.simple = _simple_terms(expr, frame)
        if self.simple is not None:
            intercept, cols = self.simple
            self.spec = None
            self.names = (["(Intercept)"] if intercept else []) + cols
            self.matrix = self._simple_matrix(frame)
            return
        import formulaic

        self._used_factor = bool(re.search(r"(?<![\w.])(?:as\.)?factor\(", expr))
        text = "~ " + _ordered_to_poly(to_formulaic(expr), ordered)
        try:
            # log(0) and the like are reported by the callers, naming the rows
            with np.errstate(all="ignore"):
                mm = formulaic.model_matrix(text, frame, context=CONTEXT, output="pandas")
        except Exception as exc:  # formulaic's errors are not ValueErrors
            raise FormulaError(f"cannot build the model matrix for '{expr}': {exc}", formula) from exc
        self.spec = mm.model_spec
        self.names = [r_name(c, self._used_factor) for c in mm.columns]
        self.matrix = np.ascontiguousarray(mm.to_numpy(dtype=float))

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
        mm = self.spec.get_model_matrix(frame, context=CONTEXT, output="pandas")
        return np.ascontiguousarray(mm.to_numpy(dtype=float))


_PLAIN = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


def _simple_terms(expr: str, frame: pd.DataFrame) -> tuple[int, list[str]] | None:
    """(intercept, numeric columns) when ``expr`` is a sum of plain numeric
    column names, ``1``, ``0`` or ``- 1``; None otherwise.

    These (the common case: ``Days``, ``1``, ``0 + Days``) need no formulaic
    call, which is most of the set-up time of a small model.
    """
    intercept, cols = 1, []
    for k, raw in enumerate(re.split(r"(?=[+-])", expr.replace(" ", ""))):
        sign = "-" if raw.startswith("-") else "+"
        tok = raw.lstrip("+-")
        if tok == "" and k == 0:
            continue
        if tok in ("0", "1"):
            intercept = 0 if (tok == "0") != (sign == "-") else 1
        elif sign == "+" and _PLAIN.fullmatch(tok) and tok in frame.columns and tok not in cols:
            kind = frame[tok].dtype.kind
            if kind not in "iuf":
                return None
            cols.append(tok)
        else:
            return None
    return intercept, cols


def rank_keep(X: np.ndarray, tol: float = 1e-7) -> np.ndarray:
    """Columns of X to keep so that they are linearly independent.

    Like R's ``qr(X, LAPACK = FALSE)`` (LINPACK ``dqrdc2``) that lme4's
    ``chkRank.drop.cols`` uses: columns are taken left to right and a column
    is dropped when its norm, after projecting out the kept ones, falls below
    ``tol`` times its original norm.  Later columns are thus dropped in favour
    of earlier ones, as in R.
    """
    n, p = X.shape
    norms = np.linalg.norm(X, axis=0)
    keep: list[int] = []
    Q = np.empty((n, 0))
    for j in range(p):
        if norms[j] == 0:
            continue
        v = X[:, j] - Q @ (Q.T @ X[:, j])
        v = v - Q @ (Q.T @ v)  # second Gram-Schmidt pass for stability
        nv = np.linalg.norm(v)
        if nv > tol * norms[j]:
            keep.append(j)
            Q = np.column_stack([Q, v / nv])
    return np.asarray(keep, dtype=int)


def fixed_effects_matrix(builder: MatrixBuilder) -> tuple[np.ndarray, list[str], list[str]]:
    """X with aliased columns dropped (lme4's message as a warning).

    Returns
    -------
    X, names, dropped_names
    """
    X = builder.matrix
    keep = rank_keep(X) if X.shape[1] else np.arange(0)
    dropped = [n for j, n in enumerate(builder.names) if j not in set(keep.tolist())]
    if dropped:
        k = len(dropped)
        warnings.warn(
            f"fixed-effect model matrix is rank deficient so dropping {k} column"
            f"{'s' if k > 1 else ''} / coefficient{'s' if k > 1 else ''} ({', '.join(dropped)})",
            UserWarning,
            stacklevel=4,
        )
        X = np.ascontiguousarray(X[:, keep])
    return X, [builder.names[j] for j in keep], dropped
