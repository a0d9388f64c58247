r"""Tests of fixed-effect terms in one model: lmerTest's ``anova(m, type = )`` and
``drop1(m)`` for linear mixed models, car's ``Anova`` Wald chi-square tests for GLMMs.

Each term is tested through a contrast matrix L (one row per degree of
freedom) of the fixed effects, built as lmerTest 3.1 builds it:

- type I (sequential): rows of the transposed unit lower factor of X'X's
  Doolittle decomposition (``get_contrasts_type1``);
- type II: Doolittle of X'X with the term and the terms that contain it
  moved last, for terms contained in others, identity rows otherwise
  (``get_contrasts_type2_unfolded``);
- type III: the term's hypothesis in the over-parameterized ("complete")
  model, its columns orthogonalized against the terms that contain it, in
  treatment coding and then mapped to the model's own coding
  (``get_contrasts_type3``), so that the test does not depend on the
  contrasts used.

A term is contained in another when all its variables are among the
other's and both have the same numeric variables (lmerTest's
``containment``).  The F statistic of ``L beta = 0`` is lmerTest's
``contestMD``: with Satterthwaite's method, L is rotated to the eigenvectors
of ``L V L'``, each rotated contrast gets Satterthwaite's df and the F's
denominator df combines them (``get_Fstat_ddf``); with Kenward-Roger's, it is
pbkrtest's ``KRmodcomp`` on the adjusted covariance (F scaled, df from
``.KR_adjust``).  ``Sum Sq`` is the unscaled F times ``sigma^2`` times NumDF.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy import linalg, stats

from ..design.fixed import MatrixBuilder, rank_keep
from ..errors import HierlmError
from ..formula.terms import TermList
from ..glmm import GLMMFit
from ..lmm import LMMFit
from ..rformat import zapsmall
from .ddf import check_ddf, contest1d, kenward_roger_state, kr_adjust, satterthwaite_state
from .table import AnovaTable

#: Test types as users write them -> lmerTest's names.
_TYPES = {"1": "I", "2": "II", "3": "III", "i": "I", "ii": "II", "iii": "III"}

_DDF_NAMES = {"satterthwaite": "Satterthwaite's", "kenward-roger": "Kenward-Roger's"}

_F_COLUMNS = ["Sum Sq", "Mean Sq", "NumDF", "DenDF", "F value", "Pr(>F)"]


def check_type(type) -> str:
    """``1``, ``"I"``, ``"1"`` ... -> ``"I"``, ``"II"`` or ``"III"``."""
    key = str(type).strip().lower()
    if key not in _TYPES:
        raise HierlmError(f"type must be 1, 2 or 3 (or 'I', 'II', 'III'), not {type!r}")
    return _TYPES[key]


# ---------------------------------------------------------------------------
# Terms and their columns
# ---------------------------------------------------------------------------
@dataclass
class FixedTerms:
    """The fixed-effect terms of a fit as R's ``terms`` object describes them.

    Attributes
    ----------
    labels : list of str
        R's ``term.labels`` (``Product:Information``), in R's order.
    assign : numpy.ndarray
        The term of each column of X (0: intercept, k: ``labels[k - 1]``).
    intercept : bool
    contained : dict
        Term label -> labels of the terms that contain it (lmerTest's
        ``containment``).
    """

    labels: list[str]
    assign: np.ndarray
    intercept: bool
    contained: dict
    order: list[int]

    def columns(self, label: str) -> np.ndarray:
        """Columns of X of a term (``"(Intercept)"`` for the intercept)."""
        k = 0 if label == "(Intercept)" else self.labels.index(label) + 1
        return np.flatnonzero(self.assign == k)


def fixed_terms(fit) -> FixedTerms:
    """The fixed-effect terms of ``fit``, the column -> term map of its X and their containment."""
    d = fit.design
    tl = d.formula.fixed_terms
    labels = [t.label for t in tl.terms]
    assign = np.asarray(d.x_builder.assign)[d.x_keep]
    numeric = d.x_builder.numeric
    variables = [frozenset(f.expr for f in t.factors) for t in tl.terms]
    nums = [frozenset(v for v in vs if v in numeric) for vs in variables]
    contained = {
        labels[i]: [labels[j] for j in range(len(labels))
                    if variables[i] < variables[j] and nums[i] == nums[j]]
        for i in range(len(labels))
    }
    return FixedTerms(labels, assign, bool(tl.intercept), contained, [len(t.factors) for t in tl.terms])


# ---------------------------------------------------------------------------
# Contrast matrices (lmerTest's get_contrasts_*)
# ---------------------------------------------------------------------------
def doolittle(x: np.ndarray, eps: float = 1e-6) -> tuple[np.ndarray, np.ndarray]:
    """lmerTest's ``doolittle``: ``x = L U`` with unit lower L, no pivoting; pivots below
    ``eps`` give zero multipliers and entries below ``eps`` are set to zero (as lmerTest,
    whose contrasts depend on these rules)."""
    n = x.shape[0]
    L, U = np.eye(n), np.zeros((n, n))
    for i in range(n):
        U[i] = x[i] - L[i, :i] @ U[:i]
        if i + 1 < n:
            col = x[i + 1:, i] - L[i + 1:, :i] @ U[:i, i]
            L[i + 1:, i] = 0.0 if abs(U[i, i]) < eps else col / U[i, i]
    L[np.abs(L) < eps] = 0.0
    U[np.abs(U) < eps] = 0.0
    return L, U


def _type1(X: np.ndarray, terms: FixedTerms) -> dict:
    p = X.shape[1]
    if p == 1 and terms.intercept:
        return {t: np.zeros((0, 1)) for t in terms.labels}
    L = np.ones((1, 1)) if p == 1 else doolittle(X.T @ X)[0].T
    return {t: L[terms.columns(t)] for t in terms.labels}


def _marginal(X: np.ndarray, terms: FixedTerms, which) -> dict:
    eye = np.eye(X.shape[1])
    return {t: eye[terms.columns(t)] for t in which}


def _type2(X: np.ndarray, terms: FixedTerms) -> dict:
    if X.shape[1] <= 1 or len(terms.labels) <= 1:
        return _type1(X, terms)
    out = {}
    for t in terms.labels:
        if not terms.contained[t]:
            out.update(_marginal(X, terms, [t]))
            continue
        last = np.concatenate([terms.columns(u) for u in [t, *terms.contained[t]]])
        order = np.r_[np.setdiff1d(np.arange(X.shape[1]), last), last]
        Xn = X[:, order]
        Lc = doolittle(Xn.T @ Xn)[0].T
        rows = np.isin(order, terms.columns(t))
        # back to X's column order
        back = np.empty_like(order)
        back[order] = np.arange(order.size)
        out[t] = Lc[rows][:, back]
    return out


def _treatment_matrix(fit, terms_list: TermList) -> MatrixBuilder:
    """The model matrix of ``terms_list`` on the fit's rows with every factor in
    treatment coding (lmerTest's ``get_model_matrix(type = "remake", contrasts =
    "contr.treatment")``)."""
    d = fit.design
    coding = {k: v for k, v in d.prepared.coding.items() if v != "poly"}
    full, rows = d.prepared.source()
    return MatrixBuilder(terms_list, full, coding, d.formula.text, rows=rows)


def _check_treatment_possible(fit) -> None:
    for f in fit.design.formula.fixed_terms.factors:
        if f.kind == "call" and f.expr.startswith("C(") and f.expr not in fit.design.x_builder.numeric:
            raise HierlmError(
                f"type III tests re-code every factor with treatment contrasts, which cannot be done for "
                f"the call '{f.label}' in the formula: code the factor as a column of the data (set its "
                f"contrasts there), or use type=1 or type=2")


def _type3(fit, X: np.ndarray, terms: FixedTerms) -> dict:
    """lmerTest's ``get_contrasts_type3`` with ``extract_contrasts_type3``."""
    if X.shape[1] <= 1 or len(terms.labels) <= 1:
        return _type1(X, terms)
    _check_treatment_possible(fit)
    d = fit.design
    tl = d.formula.fixed_terms
    # X in treatment coding, full column rank (lmerTest's ensure_full_rank: R's qr, tol 1e-7)
    xb = _treatment_matrix(fit, tl)
    keep = rank_keep(xb.matrix)
    Xt = xb.matrix[:, keep]
    tnames = [xb.names[j] for j in keep]
    tterms = FixedTerms(terms.labels, np.asarray(xb.assign)[keep], terms.intercept, terms.contained, terms.order)
    # the "complete" over-parameterized design: each term coded with indicators of all its levels
    blocks, rd_names = [], []
    if terms.intercept:
        blocks.append(np.ones((d.n, 1)))
        rd_names.append("(Intercept)")
    for t in tl.terms:
        b = _treatment_matrix(fit, TermList(False, (t,)))
        blocks.append(b.matrix)
        rd_names += b.names
    rdX = np.hstack(blocks)
    missing = [n for n, c in zip(rd_names, rdX.T) if not np.any(c != 0)]
    if missing:
        warnings.warn(f"Missing cells for: {', '.join(missing)}. Interpret type III hypotheses with care.",
                      UserWarning, stacklevel=4)
    L = zapsmall((linalg.pinv(Xt) @ rdX).T, 7)
    # orthogonalize the columns of contained terms against those of the terms containing them,
    # higher-order terms first
    for t in sorted(terms.labels, key=lambda u: -terms.order[terms.labels.index(u)]):
        if terms.contained[t]:
            cols = tterms.columns(t)
            basis = L[:, np.concatenate([tterms.columns(u) for u in terms.contained[t]])]
            coef = np.linalg.lstsq(basis, L[:, cols], rcond=None)[0]
            L[:, cols] = zapsmall(L[:, cols] - basis @ coef, 7)
    pos = {n: i for i, n in enumerate(rd_names)}
    try:
        L = L[[pos[n] for n in tnames]]
    except KeyError as exc:  # pragma: no cover  (treatment columns are always among the complete ones)
        raise HierlmError(f"cannot build the type III contrasts: column {exc} not found") from exc
    out = {}
    mapping = zapsmall(linalg.pinv(Xt) @ X, 7)
    for t in terms.labels:
        Lt = L[:, tterms.columns(t)].T
        Lt = Lt[np.sum(np.abs(Lt), axis=1) > 1e-8]
        out[t] = Lt @ mapping
    return out


def contrasts(fit, type="III") -> dict:
    """The contrast matrix of each fixed-effect term for a type I, II or III test.

    Parameters
    ----------
    fit : LMMFit or GLMMFit
    type : {1, 2, 3, "I", "II", "III"}

    Returns
    -------
    dict
        Term label -> DataFrame (one row per degree of freedom, one column
        per fixed effect), as lmerTest's ``attr(anova(m), "hypotheses")``.
    """
    kind = check_type(type)
    X = fit.design.X
    terms = fixed_terms(fit)
    if kind == "I":
        Ls = _type1(X, terms)
    elif kind == "II":
        Ls = _type2(X, terms)
    else:
        Ls = _type3(fit, X, terms)
    names = list(fit.design.xnames)
    return {t: pd.DataFrame(L, columns=names) for t, L in Ls.items()}


# ---------------------------------------------------------------------------
# F tests (lmerTest's contestMD)
# ---------------------------------------------------------------------------
def _fstat_ddf(nu: np.ndarray, tol: float = 1e-8) -> float:
    """lmerTest's ``get_Fstat_ddf``: the df of a mean of q squared t statistics."""
    if nu.size == 1:
        return float(nu[0])
    if np.all(np.abs(np.diff(nu)) < tol):
        return float(np.mean(nu))
    if np.any(nu <= 2):
        return 2.0
    E = np.sum(nu / (nu - 2.0))
    return float(2.0 * E / (E - nu.size))


def _f_row(F: float, ndf: float, ddf: float, sigma: float, scale: float = 1.0) -> list[float]:
    """lmerTest's ``mk_Ftable``: Sum Sq, Mean Sq, NumDF, DenDF, F value, Pr(>F)."""
    ms = F * sigma**2
    F = F * scale
    p = stats.f.sf(F, ndf, ddf) if np.isfinite(F) else np.nan
    return [ms * ndf, ms, ndf, ddf, F, p]


def contest_md(fit, L, ddf: str = "satterthwaite") -> list[float]:
    """F test of ``L beta = 0`` (lmerTest's ``contestMD``).

    Parameters
    ----------
    fit : LMMFit
    L : array-like
        q x p contrast matrix.
    ddf : {"satterthwaite", "kenward-roger"}

    Returns
    -------
    list of float
        ``Sum Sq, Mean Sq, NumDF, DenDF, F value, Pr(>F)`` (all NaN for an
        empty L).
    """
    method = check_ddf(ddf)
    L = np.atleast_2d(np.asarray(L, dtype=float))
    if L.shape[0] == 0 or L.size == 0:
        return [np.nan] * 6
    beta = fit.fixef.to_numpy()
    if method == "kenward-roger":
        s = kenward_roger_state(fit)
        q = int(np.linalg.matrix_rank(L))
        Lb = L @ beta
        wald = float(Lb @ np.linalg.solve(L @ s.vcov_adj @ L.T, Lb))
        df2, scale = kr_adjust(L, s.vcov_beta, s.P, s.W)
        return _f_row(wald / q, q, df2, fit.sigma, scale)
    if L.shape[0] == 1:
        t = contest1d(fit, L, ddf="satterthwaite")
        return _f_row(float(t["t value"].iloc[0]) ** 2, 1, float(t["df"].iloc[0]), fit.sigma)
    s = satterthwaite_state(fit)
    d, P = np.linalg.eigh(L @ s.vcov_beta @ L.T)
    d, P = d[::-1], P[:, ::-1]  # R's eigen: decreasing
    tol = max(np.sqrt(np.finfo(float).eps) * d[0], 0.0)
    q = int(np.sum(d > tol))
    if q == 0:
        return [np.nan] * 6
    PtL = (P.T @ L)[:q]
    if q == 1:
        t = contest1d(fit, PtL, ddf="satterthwaite")
        return _f_row(float(t["t value"].iloc[0]) ** 2, 1, float(t["df"].iloc[0]), fit.sigma)
    F = float(np.sum((PtL @ beta) ** 2 / d[:q]) / q)
    grad = np.einsum("ij,vjk,ik->iv", PtL, s.jac, PtL)
    nu = 2.0 * d[:q] ** 2 / np.einsum("iv,vw,iw->i", grad, s.vcov_varpar, grad)
    return _f_row(F, q, _fstat_ddf(nu), fit.sigma)


def _lme4_table(fit, terms: FixedTerms) -> AnovaTable:
    """lme4's ``anova(m)`` of one model: sequential sums of squares from ``R_X beta``."""
    V = fit.vcov.to_numpy() / fit.sigma**2
    RX = np.linalg.cholesky(np.linalg.inv(V)).T  # R_X' R_X = (X' V^-1 X) / sigma^2, upper
    ss = (RX @ fit.fixef.to_numpy()) ** 2
    rows, names = [], []
    for k in np.unique(terms.assign):
        if k == 0:
            continue
        cols = terms.assign == k
        npar = int(cols.sum())
        s = float(ss[cols].sum())
        rows.append([npar, s, s / npar, s / npar / fit.sigma**2])
        names.append(terms.labels[k - 1])
    table = AnovaTable(rows, index=pd.Index(names), columns=["npar", "Sum Sq", "Mean Sq", "F value"])
    table.heading = ["Analysis of Variance Table"]
    return table


def _wald_chisq(beta: np.ndarray, V: np.ndarray, L: np.ndarray) -> tuple[float, int]:
    Lb = L @ beta
    return float(Lb @ np.linalg.solve(L @ V @ L.T, Lb)), L.shape[0]


def _conj_comp(X: np.ndarray, Z: np.ndarray, ip: np.ndarray) -> np.ndarray:
    """car's ``ConjComp``: the conjugate complement of the projection of X in span(Z) w.r.t. ip."""
    A = Z.T @ ip @ X
    Q, R, _ = linalg.qr(A, pivoting=True)
    rank = int(np.sum(np.abs(np.diag(R)) > 1e-7 * max(abs(R[0, 0]), 1e-300))) if R.size else 0
    if rank == 0:
        return Z
    return Z @ Q[:, rank:]


def wald_tests(beta: np.ndarray, V: np.ndarray, terms: FixedTerms, variables: dict, kind: str) -> pd.DataFrame:
    """car's ``Anova`` Wald chi-square tests of each term, type II or III.

    Type III tests that a term's coefficients are zero (the intercept
    included).  Type II tests a term after the terms that contain it (car's
    ``relatives``: every other term with all its variables), through car's
    conjugate complement of their hypothesis in the metric of ``V``.

    Parameters
    ----------
    beta, V : numpy.ndarray
        Fixed effects and their covariance.
    terms : FixedTerms
    variables : dict
        Term label -> the set of its variables.
    kind : {"II", "III"}

    Returns
    -------
    pandas.DataFrame
        Columns ``Chisq, Df, Pr(>Chisq)``, indexed by term.
    """
    eye = np.eye(beta.size)
    rows, names = [], []
    labels = (["(Intercept)"] if terms.intercept and kind == "III" else []) + terms.labels
    for t in labels:
        cols = terms.columns(t)
        if t == "(Intercept)" and len(cols) == 0:
            continue  # a formula intercept with no column (an ordinal model's thresholds take its place)
        if kind == "III" or t == "(Intercept)":
            H = eye[cols]
        else:
            rel = [u for u in terms.labels if u != t and variables[t] <= variables[u]]
            rel_cols = np.concatenate([terms.columns(u) for u in rel]) if rel else np.zeros(0, dtype=int)
            H = eye[np.r_[rel_cols, cols]]
            if rel_cols.size:
                H = _conj_comp(eye[rel_cols].T, H.T, V).T
            H = H[~np.all(H == 0, axis=1)]
        chisq, df = _wald_chisq(beta, V, H) if H.shape[0] else (np.nan, 0)
        rows.append([chisq, df, stats.chi2.sf(chisq, df) if df else np.nan])
        names.append(t)
    out = pd.DataFrame(rows, index=pd.Index(names), columns=["Chisq", "Df", "Pr(>Chisq)"])
    out["Df"] = out["Df"].astype(int)
    return out


def _glmm_table(fit, terms: FixedTerms, kind: str) -> AnovaTable:
    """car's ``Anova`` of a GLMM: Wald chi-square tests, type II or III."""
    if kind == "I":
        raise HierlmError("type I (sequential) Wald tests are not offered for GLMMs (car's Anova has "
                          "types II and III): use type=2 or type=3")
    table = AnovaTable(wald_tests(fit.fixef.to_numpy(), fit.vcov.to_numpy(), terms, _term_variables(fit), kind))
    table.heading = [f"Analysis of Deviance Table (Type {kind} Wald chisquare tests)", "",
                     f"Response: {fit.design.formula.response}"]
    return table


def single_anova(fit, type="III", ddf: str = "satterthwaite") -> AnovaTable:
    """F tests of the fixed-effect terms of one model (lmerTest's ``anova(m)``); Wald
    chi-square tests for a GLMM (car's ``Anova(m)``).

    Parameters
    ----------
    fit : LMMFit or GLMMFit
    type : {3, 2, 1, "III", "II", "I"}
        Type III (default, as lmerTest): each term adjusted for every other,
        independent of the contrasts used; type II: adjusted for the terms
        that do not contain it; type I: sequential, in the formula's order.
    ddf : {"satterthwaite", "kenward-roger", "lme4"}
        Denominator df of the F tests of an LMM (lmerTest's ``ddf``):
        Satterthwaite's (default) or Kenward-Roger's (REML fits); ``"lme4"``
        gives lme4's table (sequential sums of squares and F values, no df
        or p-values).  Ignored for GLMMs, whose tests are asymptotic.

    Returns
    -------
    AnovaTable
        For an LMM: one row per term, lmerTest's columns ``Sum Sq, Mean
        Sq, NumDF, DenDF, F value, Pr(>F)``; for a GLMM: car's ``Chisq, Df,
        Pr(>Chisq)``.  ``.hypotheses`` holds each term's contrast matrix.
    """
    kind = check_type(type)
    terms = fixed_terms(fit)
    if isinstance(fit, GLMMFit):
        return _glmm_table(fit, terms, kind)
    if not isinstance(fit, LMMFit):
        raise HierlmError(f"anova of one model needs a REML/ML or GLMM fit, not a {fit.__class__.__name__}; "
                          "for a posterior fit look at the fixed effects' intervals (fit.summary()) or "
                          "compare models with hierlm.compare")
    method = check_ddf(ddf)
    if method == "none":
        return _lme4_table(fit, terms)
    Ls = contrasts(fit, kind)
    rows = [contest_md(fit, L.to_numpy(), method) for L in Ls.values()]
    table = AnovaTable(rows, index=pd.Index(list(Ls)), columns=_F_COLUMNS)
    table.heading = [f"Type {kind} Analysis of Variance Table with {_DDF_NAMES[method]} method"]
    table.hypotheses = Ls
    return table


def _term_variables(fit) -> dict:
    return {t.label: frozenset(f.expr for f in t.factors) for t in fit.design.formula.fixed_terms.terms}


def _marginal_terms(fit) -> list[str]:
    """R's ``drop.scope``: the terms whose variables are not all in another term
    (numeric or not: ``Time`` cannot be dropped from ``Diet * Time``)."""
    v = _term_variables(fit)
    return [t for t in v if not any(u != t and v[t] <= v[u] for u in v)]


def drop1(fit, ddf: str = "satterthwaite") -> AnovaTable:
    """F tests of dropping each marginal term (lmerTest's ``drop1(m)``).

    A term can be dropped when no other term contains it (R's
    ``drop.scope``); its test is that its coefficients are zero.

    Parameters
    ----------
    fit : LMMFit
    ddf : {"satterthwaite", "kenward-roger"}

    Returns
    -------
    AnovaTable
        lmerTest's columns ``Sum Sq, Mean Sq, NumDF, DenDF, F value,
        Pr(>F)``, one row per marginal term.
    """
    if not isinstance(fit, LMMFit):
        raise HierlmError(f"drop1 needs a REML or ML fit (LMMFit), not a {type(fit).__name__}; for a "
                          "GLMM use hierlm.anova(fit) (Wald tests) or refit without the term and compare "
                          "the two fits with hierlm.anova(m0, m1)")
    method = check_ddf(ddf)
    if method == "none":
        raise HierlmError("drop1 gives F tests with 'satterthwaite' or 'kenward-roger' df")
    terms = fixed_terms(fit)
    scope = _marginal_terms(fit)
    Ls = _marginal(fit.design.X, terms, scope)
    names = list(fit.design.xnames)
    rows = [contest_md(fit, L, method) for L in Ls.values()]
    table = AnovaTable(rows, index=pd.Index(scope), columns=_F_COLUMNS)
    table.heading = [f"Single term deletions using {_DDF_NAMES[method]} method:", "", "Model:",
                     fit.design.formula.text]
    table.hypotheses = {t: pd.DataFrame(L, columns=names) for t, L in Ls.items()}
    return table
