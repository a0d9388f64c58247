"""Model comparison: likelihood-ratio tests (lme4's ``anova``) and
information-criterion tables (AICcmodavg's ``aictab``; ArviZ LOO for
posterior fits)."""

from __future__ import annotations

import inspect
import warnings

import numpy as np
import pandas as pd
from scipy import stats

from ..errors import HierlmError
from ..lmm import LMMFit
from .ftest import single_anova
from .table import AnovaTable, ModelSelectionTable

REFIT_MESSAGE = "refitting model(s) with ML (instead of REML)"


def _caller_names(models: tuple, depth: int) -> list[str | None]:
    """The variable name each positional fit has in the caller's frame, as R
    deparses ``anova(m0, m1)``'s arguments (None where no single name, or
    where the names would repeat)."""
    frame = inspect.currentframe()
    try:
        for _ in range(depth + 1):
            frame = frame.f_back if frame is not None else None
        if frame is None:
            return [None] * len(models)
        names = []
        for m in models:
            name = None
            for scope in (frame.f_locals, frame.f_globals):  # the innermost name first
                hits = [k for k, v in scope.items() if v is m and not k.startswith("_")]
                if hits:
                    name = hits[0] if len(hits) == 1 else None
                    break
            names.append(name)
    finally:
        del frame
    return names if len(set(names)) == len(names) else [None] * len(models)


def _named(models: tuple, named: dict, what: str, depth: int = 2) -> dict:
    """{name: fit} from positional fits (named as the caller's variables, as R
    does, else model1, model2, ...) and keyword fits."""
    out = {}
    for i, (m, name) in enumerate(zip(models, _caller_names(models, depth)), start=1):
        out[name if name and name not in named else f"model{i}"] = m
    dup = set(out) & set(named)
    if dup:
        raise HierlmError(f"{what}: model name(s) {sorted(dup)} given twice")
    out.update(named)
    return out


def _check_same_data(fits: dict, what: str) -> None:
    """Same rows and the same response: otherwise likelihoods are not comparable."""
    names = list(fits)
    ref = fits[names[0]].design
    for name in names[1:]:
        d = fits[name].design
        if d.n != ref.n:
            raise HierlmError(f"{what}: models were fit to different rows ({names[0]}: {ref.n} rows, {name}: "
                              f"{d.n}); fit every model to the same data (drop missing values first)")
        if d.formula.response != ref.formula.response or not np.array_equal(d.y, ref.y):
            raise HierlmError(f"{what}: {name} has a different response ({d.formula.response!r}) from "
                              f"{names[0]} ({ref.formula.response!r}); only models of the same response "
                              "can be compared")
        if not np.array_equal(np.asarray(d.prepared.rows), np.asarray(ref.prepared.rows)):
            raise HierlmError(f"{what}: models were fit to different rows of the data; fit every model to "
                              "the same rows")


def _likelihood_fits(fits: dict, what: str) -> None:
    for name, f in fits.items():
        if not isinstance(f, LMMFit):
            raise HierlmError(f"{what}: {name} is a {type(f).__name__}; likelihood-ratio tests and AIC need "
                              "REML/ML fits (compare posterior fits with hierlm.compare, which uses LOO)")


def _refit_ml(fits: dict) -> dict:
    if any(f.reml for f in fits.values()):
        warnings.warn(REFIT_MESSAGE, UserWarning, stacklevel=3)
        return {k: f.refit_ml() for k, f in fits.items()}
    return fits


def _heading(fits: dict) -> list[str]:
    first = next(iter(fits.values()))
    lines = [f"Data: {first.data_name}"] if first.data_name else []
    return lines + ["Models:"] + [f"{k}: {f.formula}" for k, f in fits.items()]


def anova(*models, refit: bool = True, type=3, ddf: str = "satterthwaite", **named) -> AnovaTable:
    """Tests of one model's terms (lmerTest's ``anova(m)``), or likelihood-ratio tests of
    nested models (lme4's ``anova(m1, m2, ...)``).

    With one fit: F tests of each fixed-effect term of a linear mixed model
    (type III by default, Satterthwaite's or Kenward-Roger's df, lmerTest's
    table), or Wald chi-square tests for a GLMM (car's ``Anova``); see
    :func:`hierlm.inference.ftest.single_anova`.

    With two or more:
    REML fits are refit by maximum likelihood first (lme4's message
    "refitting model(s) with ML (instead of REML)" is issued as a warning),
    models are ordered by their number of parameters, and each row is tested
    against the one above it.

    Parameters
    ----------
    *models : LMMFit or GLMMFit
        One fit, or at least two fits of the same response to the same rows, named in
        the table by the caller's variable names as R does (``anova(m0,
        m1)``: rows ``m0``, ``m1``), or ``model1``, ``model2``, ... when a
        fit has no single name there.
    refit : bool
        Refit REML fits with ML (default, as lme4).  With ``refit=False``
        the REML likelihoods are compared, which is only meaningful for
        models with the same fixed effects.
    **named : LMMFit
        Fits given by keyword take that name in the table
        (``anova(m1=fit1, m2=fit2)``).
    type : {3, 2, 1}
        One model only: the type of the tests (lmerTest's default 3).
    ddf : {"satterthwaite", "kenward-roger", "lme4"}
        One linear mixed model only: the F tests' denominator df.

    Returns
    -------
    AnovaTable
        A DataFrame with lme4's columns ``npar, AIC, BIC, logLik, deviance,
        Chisq, Df, Pr(>Chisq)``, one row per model; ``.heading`` holds
        lme4's "Data:" and "Models:" lines.
    """
    fits = _named(models, named, "anova")
    if len(fits) == 1:
        return single_anova(next(iter(fits.values())), type=type, ddf=ddf)
    if not fits:
        raise HierlmError("anova needs a fit (its terms' tests) or two or more fits (likelihood-ratio tests)")
    _likelihood_fits(fits, "anova")
    _check_same_data(fits, "anova")
    if refit:
        fits = _refit_ml(fits)
    elif len({f.reml for f in fits.values()}) > 1:
        warnings.warn("some models fit with REML, some not", UserWarning, stacklevel=2)
    order = sorted(fits, key=lambda k: fits[k].df)  # stable: ties keep the given order
    fits = {k: fits[k] for k in order}
    npar = np.array([f.df for f in fits.values()], dtype=float)
    llk = np.array([f.loglik for f in fits.values()])
    # lme4: Chisq = 2 * max(0, diff(logLik)); no p-value where Df = 0
    chisq = np.r_[np.nan, 2.0 * np.maximum(0.0, np.diff(llk))]
    dfc = np.r_[np.nan, np.diff(npar)]
    with np.errstate(invalid="ignore"):
        p = np.where(dfc == 0, np.nan, stats.chi2.sf(chisq, np.where(dfc == 0, 1, dfc)))
    table = AnovaTable({
        "npar": npar.astype(int), "AIC": [f.aic for f in fits.values()], "BIC": [f.bic for f in fits.values()],
        "logLik": llk, "deviance": -2.0 * llk, "Chisq": chisq, "Df": dfc, "Pr(>Chisq)": p,
    }, index=pd.Index(list(fits), name="model"))
    table.heading = _heading(fits)
    return table


def aicc(fit) -> float:
    """Second-order AIC: ``AIC + 2K(K+1)/(n-K-1)``, K = ``fit.df`` (as AICcmodavg)."""
    k, n = fit.df, fit.nobs
    if n - k - 1 <= 0:
        return np.inf
    return fit.aic + 2.0 * k * (k + 1) / (n - k - 1)


CRITERIA = ("AICc", "AIC", "BIC", "loo")


def compare(models, criterion: str = "AICc") -> pd.DataFrame:
    """A model-selection table, like AICcmodavg's ``aictab`` (or ArviZ's
    ``compare`` for posterior fits).

    Parameters
    ----------
    models : dict or list
        ``{name: fit}`` or a list of fits (named ``model1``, ...).  REML/ML
        fits, or posterior (NUTS) fits.
    criterion : {"AICc", "AIC", "BIC", "loo"}
        For REML/ML fits one of the first three; posterior fits always use
        PSIS-LOO (``"loo"``).  When REML fits differ in their fixed effects
        they are refit by ML first (their REML likelihoods are not
        comparable; AICcmodavg only warns).

    Returns
    -------
    ModelSelectionTable or pandas.DataFrame
        REML/ML fits (a DataFrame printed as AICcmodavg prints it):
        AICcmodavg's ``aictab`` columns ``K, AICc (or AIC/BIC),
        Delta_<crit>, ModelLik, <crit>Wt, LL, Cum.Wt``, then
        ``evidence_ratio``, ``AIC`` and ``BIC``, sorted best first.  ModelLik
        is ``exp(-Delta/2)``, the weights its normalization (Akaike weights);
        the evidence ratio is the best model's weight over each model's.  Posterior fits:
        ArviZ's ``compare`` table (``elpd_loo, p_loo, elpd_diff, weight, se,
        dse``).
    """
    if isinstance(models, dict):
        fits = dict(models)
    else:
        fits = _named(tuple(models), {}, "compare")
    if len(fits) < 1:
        raise HierlmError("compare needs at least one model")
    bayes = [f.is_posterior for f in fits.values()]
    if any(bayes):
        if not all(bayes):
            raise HierlmError("compare: mix of posterior and REML/ML fits; compare posterior fits by LOO and "
                              "REML/ML fits by AICc separately")
        if criterion not in ("loo", "AICc"):
            raise HierlmError(f"compare: posterior fits are compared by LOO, not {criterion!r}")
        _check_same_data(fits, "compare")
        return _compare_loo(fits)
    if criterion not in CRITERIA[:3]:
        raise HierlmError(f"compare: criterion must be one of {', '.join(CRITERIA)}, not {criterion!r}")
    _likelihood_fits(fits, "compare")
    _check_same_data(fits, "compare")
    if len(fits) > 1 and any(f.reml for f in fits.values()):
        xnames = {tuple(f.design.xnames) for f in fits.values()}
        if len(xnames) > 1 or len({f.reml for f in fits.values()}) > 1:
            fits = _refit_ml(fits)
    value = {"AICc": aicc, "AIC": lambda f: f.aic, "BIC": lambda f: f.bic}[criterion]
    crit = np.array([value(f) for f in fits.values()])
    delta = crit - crit.min()
    w = np.exp(-0.5 * delta)
    w /= w.sum()
    wt = f"{criterion}Wt"
    out = ModelSelectionTable({
        "K": [f.df for f in fits.values()], criterion: crit, f"Delta_{criterion}": delta,
        "ModelLik": np.exp(-0.5 * delta), wt: w, "LL": [f.loglik for f in fits.values()],
    }, index=pd.Index(list(fits), name="model"))
    out = out.sort_values(criterion, kind="stable")
    # AICcmodavg's aictab columns, then the evidence ratio and both criteria
    out["Cum.Wt"] = out[wt].cumsum()
    out["evidence_ratio"] = out[wt].iloc[0] / out[wt]
    out["AIC"] = [fits[k].aic for k in out.index]
    out["BIC"] = [fits[k].bic for k in out.index]
    return out


def _compare_loo(fits: dict) -> pd.DataFrame:
    import arviz as az

    for name, f in fits.items():
        if "log_likelihood" not in f.idata.groups():
            raise HierlmError(f"compare: {name} has no log_likelihood group; refit with log_likelihood=True")
    return az.compare({k: f.idata for k, f in fits.items()}, ic="loo")
