"""Random-effects terms stored compactly (MixedModels.jl's ``ReMat``).

For a term ``(expr | g)`` with ``p`` columns in ``expr`` and ``l`` levels of
``g``, the n x (l p) indicator-expanded block of Z is never formed: a term
keeps the integer level code of each row and the n x p per-row values.
Its relative covariance factor is ``Lambda_k = I_l (x) T_k`` with ``T_k`` the
p x p lower-triangular matrix filled, column by column, from the term's
slice of theta (lme4's layout): for p = 2, ``theta = (T11, T21, T22)``.
The random effects ``b = Lambda u`` are ordered level-major (level 1's p
values, then level 2's ...), as lme4 orders the columns of Z.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from ..errors import ModelError
from ..formula.parse import RandomTerm
from ..formula.terms import parse_terms
from .data import as_factor
from .fixed import MatrixBuilder


def compact_codes(codes: np.ndarray, n: int) -> tuple[np.ndarray, np.ndarray]:
    """Codes ``0..n-1`` renumbered to the values that occur, in order, and
    those values: ``(new_codes, used)``.  A count, not a sort (np.unique is
    ~1 s on a million codes here)."""
    used = np.flatnonzero(np.bincount(codes, minlength=n))
    if used.size == n:
        return codes, used
    lookup = np.zeros(n, dtype=np.int64)
    lookup[used] = np.arange(used.size)
    return lookup[codes], used


def grouping_factor(frame: pd.DataFrame, factors: tuple[str, ...]) -> tuple[np.ndarray, pd.Index]:
    """Integer codes and level labels of the interaction of ``factors``.

    As R's ``a:b`` on factors (``interaction(a, b, lex.order = TRUE)``,
    unused combinations dropped): the first factor varies slowest and a
    level is labelled ``"a_level:b_level"``.
    """
    codes = np.zeros(len(frame), dtype=np.int64)
    cats: list[pd.Index] = []
    for f in factors:
        col = frame[f]
        if isinstance(col.dtype, pd.CategoricalDtype):
            fac = col.array  # unused categories are dropped below
        else:
            fac = as_factor(col)
        codes = codes * len(fac.categories) + fac.codes
        cats.append(fac.categories)
    # keep the combinations that occur, in their (first factor slowest) order
    codes, used = compact_codes(codes, int(np.prod([len(c) for c in cats])))
    parts = []
    rem = used.copy()
    for cat in reversed(cats):
        parts.append(np.asarray(cat.astype(str), dtype=object)[rem % len(cat)])
        rem //= len(cat)
    labels = parts[0]
    for part in parts[1:]:
        labels = part + ":" + labels
    levels = pd.Index(labels, dtype=object)
    return codes.astype(np.intp), levels


class ReMat:
    """One random-effects term.

    Attributes
    ----------
    term : RandomTerm
    group : str
        Grouping factor name as lme4 prints it.
    codes : numpy.ndarray
        Level index of each row (0-based).
    levels : pandas.Index
        Level labels.
    cnames : list of str
        Column names of the term (``["(Intercept)", "Days"]``).
    Xt : numpy.ndarray
        n x p per-row values of the term's columns.
    """

    def __init__(self, term: RandomTerm, frame: pd.DataFrame, coding: dict, formula: str = "",
                 source: tuple[pd.DataFrame, np.ndarray | None] | None = None):
        self.term = term
        self.group = term.group
        self.codes, self.levels = grouping_factor(frame, term.factors)
        #: the term's model matrix, parsed once by the formula layer
        self.terms = term.terms if term.terms is not None else parse_terms(term.expr, formula)
        if self.terms.intercept and not self.terms.terms:
            self.builder = None
            self.Xt = np.ones((len(frame), 1))
            self.cnames = ["(Intercept)"]
        else:
            full, rows = (frame, None) if source is None else source
            self.builder = MatrixBuilder(self.terms, full, coding, formula, rows=rows)
            self.Xt = self.builder.matrix
            self.cnames = self.builder.names
        if self.p == 0:
            raise ModelError(f"the random-effects term {term} has no columns (its model matrix is empty); "
                             "write (1 | group) for a random intercept")
        # lower-triangular positions, column-major (lme4's theta order)
        p = self.p
        self.tril_rows, self.tril_cols = zip(*[(i, j) for j in range(p) for i in range(j, p)])
        self.tril_rows = np.asarray(self.tril_rows)
        self.tril_cols = np.asarray(self.tril_cols)

    @property
    def p(self) -> int:
        """Number of columns (random effects per level)."""
        return self.Xt.shape[1]

    @property
    def nlevels(self) -> int:
        return len(self.levels)

    @property
    def q(self) -> int:
        """Number of random effects of the term (levels x columns)."""
        return self.nlevels * self.p

    @property
    def ntheta(self) -> int:
        return self.p * (self.p + 1) // 2

    def theta_lower(self) -> np.ndarray:
        """lme4's bounds: 0 on the diagonal of T, none elsewhere."""
        return np.where(self.tril_rows == self.tril_cols, 0.0, -np.inf)

    def theta_init(self) -> np.ndarray:
        return np.where(self.tril_rows == self.tril_cols, 1.0, 0.0)

    def T(self, theta_k: np.ndarray) -> np.ndarray:
        """The p x p lower-triangular block of Lambda for this term's theta."""
        T = np.zeros((self.p, self.p))
        T[self.tril_rows, self.tril_cols] = theta_k
        return T

    def Zb(self, b: np.ndarray) -> np.ndarray:
        """Z_k b_k for b_k of shape (levels, p)."""
        return np.einsum("ij,ij->i", self.Xt, b[self.codes]) if self.p > 1 else self.Xt[:, 0] * b[self.codes, 0]

    def sparse(self):
        """The n x (l p) block of Z as a scipy CSR matrix (for setup only)."""
        import scipy.sparse as sp

        n, p = self.Xt.shape
        rows = np.repeat(np.arange(n), p)
        cols = (self.codes[:, None] * p + np.arange(p)).ravel()
        return sp.csr_matrix((self.Xt.ravel(), (rows, cols)), shape=(n, self.q))

    def __repr__(self) -> str:
        return f"ReMat({self.term}, levels={self.nlevels}, columns={self.cnames})"


def term_names(remats) -> list[str]:
    """Group names per term as lme4's ``VarCorr`` prints them: a second term
    on the same grouping factor is ``Subject.1``."""
    seen: dict[str, int] = {}
    out = []
    for r in remats:
        k = seen.get(r.group, 0)
        out.append(r.group if k == 0 else f"{r.group}.{k}")
        seen[r.group] = k + 1
    return out


def lme4_order(remats: list[ReMat]) -> list[ReMat]:
    """Order terms as lme4's ``mkReTrms``: if any term has more levels than the
    one before it, sort by decreasing number of levels (``rev(order(nl))``,
    which also reverses ties)."""
    nl = [r.nlevels for r in remats]
    if any(b > a for a, b in zip(nl, nl[1:])):
        order = np.argsort(nl, kind="stable")[::-1]
        return [remats[i] for i in order]
    return list(remats)


def group_labels(frame: pd.DataFrame, factors: tuple[str, ...]) -> np.ndarray:
    """The level labels of a grouping factor (``a:b`` for an interaction of
    factors), row by row, as the ReMat's ``levels`` name them."""
    parts = [np.asarray(pd.Series(as_factor(frame[f])).astype(str)) for f in factors]
    if len(parts) == 1:
        return parts[0]
    out = parts[0].astype(object)
    for p in parts[1:]:
        out = out + ":" + p
    return out
