r"""Parametric bootstrap of linear mixed models, with refits in parallel.

* :func:`boot_mer` -- lme4's ``bootMer``: simulate responses from a fit (new
  random effects and residuals, as ``simulate``), refit the model to each and
  apply a function to every refit.
* :func:`confint_boot` -- lme4's ``confint(m, method = "boot", oldNames = FALSE)``:
  percentile intervals of the SDs, correlations, sigma and fixed effects.
* :func:`pb_test` -- pbkrtest's ``PBmodcomp``: likelihood-ratio test of two
  nested models with a parametric-bootstrap p-value.

Reproducibility: replicate ``i`` draws its response from its own generator,
``numpy.random.default_rng(numpy.random.SeedSequence(seed).spawn(nsim)[i])``,
and every refit starts from the fitted theta (not from an earlier replicate),
so the results are identical whether the replicates run in this process, in
``n_jobs`` local processes (joblib's loky backend) or on a Dask cluster
(``client=``).

Scale-out: the replicates are cut into chunks; each chunk is one task, and
the fit travels once per task (on Dask: scattered once to every worker), not
once per replicate.  What travels is the model and design with theta, not
the fitted deviance object (whose precomputed blocks are several times the
size of the data for large crossed models); each task rebuilds that once.
The refits run with one BLAS thread wherever they run (a multi-threaded BLAS
can change the last bits of a large model's refit, and so the optimizer's
path), and the parallelism comes from the workers.
"""

from __future__ import annotations

import itertools
import math
import sys
import time
import warnings
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
from scipy import stats

from ..design.distributed import simulated_responses
from ..errors import ConvergenceWarning, HierlmError
from ..lmm import LMMFit
from ..lmm.deviance import make_deviance
from ..lmm.engine import check_lmm_control
from ..optimize import one_blas_thread
from .profile import check_level, format_perc, profile_estimates, profile_names, select_parameters
from .table import RTable

__all__ = ["BootResult", "PBModComp", "boot_mer", "confint_boot", "pb_test"]

REFIT_MESSAGE = "refitting model(s) with ML (instead of REML)"  # lme4's and compare.anova's wording
_SINGULAR = "boundary (singular) fit"


# ----------------------------------------------------------------------
# argument checks
# ----------------------------------------------------------------------
def _check_nsim(nsim) -> int:
    if isinstance(nsim, bool) or not isinstance(nsim, (int, np.integer)) or nsim < 1:
        raise HierlmError(f"nsim must be a positive integer (the number of bootstrap samples), not {nsim!r}")
    return int(nsim)


def _check_lmm(fit, what: str, arg: str = "fit") -> None:
    if not isinstance(fit, LMMFit):
        raise HierlmError(
            f"{what}: {arg} is a {type(fit).__name__}; the parametric bootstrap refits REML/ML fits "
            "(LMMFit from hierlm.lmer or Model.fit('reml'|'ml'))"
        )


def _seed_sequence(seed) -> np.random.SeedSequence:
    if seed is not None and (isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0):
        raise HierlmError(
            f"seed must be None or a non-negative integer, not {seed!r} (one generator per replicate "
            "is spawned from numpy.random.SeedSequence(seed), so a Generator cannot be used)"
        )
    return np.random.SeedSequence(None if seed is None else int(seed))


def _n_workers(n_jobs) -> int:
    """joblib's convention: 1 = this process, -1 = all cores, -2 = all but one."""
    if isinstance(n_jobs, bool) or not isinstance(n_jobs, (int, np.integer)) or n_jobs == 0:
        raise HierlmError(f"n_jobs must be a non-zero integer (1: no parallelism, -1: all cores), not {n_jobs!r}")
    if n_jobs > 0:
        return int(n_jobs)
    from joblib import cpu_count  # respects CPU affinity and cgroup quotas

    return max(1, cpu_count() + 1 + int(n_jobs))


# ----------------------------------------------------------------------
# what travels to a worker
# ----------------------------------------------------------------------
@dataclass
class _FitSpec:
    """Enough to rebuild an LMMFit: model, design (with its response), theta."""

    model: object
    design: object
    theta: np.ndarray
    reml: bool
    optinfo: object
    data_name: str | None

    @classmethod
    def of(cls, fit) -> _FitSpec:
        return cls(fit.model, fit.design, np.array(fit.theta, dtype=float), fit.reml, fit.optinfo, fit.data_name)

    def build(self):
        # LMMFit's constructor computes beta and sigma from theta exactly as the
        # original fit did, so the rebuilt fit simulates the same numbers
        return LMMFit(make_deviance(self.design), self.theta, self.reml, self.optinfo, model=self.model,
                      data_name=self.data_name)


class _Payload:
    """The fits, the function and the refit settings of one bootstrap.

    Sent once per task (scattered once per worker on Dask).  The rebuilt fits
    are cached on the object and not pickled, so a Dask worker that runs
    several chunks rebuilds them once.
    """

    def __init__(self, specs, sim: int, targets: list[int], fun, control: dict, use_u: bool = False):
        self.specs = specs
        self.sim = sim
        self.targets = targets
        self.fun = fun
        self.control = control
        self.use_u = use_u
        self._fits = None

    def __getstate__(self):
        state = dict(self.__dict__)
        state["_fits"] = None
        return state

    def fits(self):
        if self._fits is None:
            self._fits = [s.build() for s in self.specs]
        return self._fits


def _classify(messages) -> tuple[list[str], bool]:
    conv = [m for m in messages if not m.startswith(_SINGULAR)]
    return conv, len(conv) < len(messages)


def _run_chunk(payload: _Payload, items) -> list[tuple]:
    """Run replicates ``items`` = [(index, SeedSequence), ...]; one tuple per replicate:
    (index, values or None, convergence messages, singular, error message or None)."""
    with one_blas_thread():
        return _run_items(payload, items)


def _run_items(payload: _Payload, items) -> list[tuple]:
    fits = payload.fits()
    sim = fits[payload.sim]
    targets = [fits[j] for j in payload.targets]
    out = []
    with warnings.catch_warnings():
        # counted and reported once by the caller instead
        warnings.simplefilter("ignore", ConvergenceWarning)
        for i, ss, *made in items:
            if made:  # a rows-free fit's responses, made on its cluster: one per target
                ys = made[0]
            else:
                y = sim.simulate(1, seed=np.random.default_rng(ss), use_u=payload.use_u).to_numpy()[:, 0]
                ys = [y] * len(targets)
            try:
                refits = [t.refit(yt, **payload.control) for t, yt in zip(targets, ys)]
                val = np.asarray(payload.fun(*refits), dtype=float).ravel()
            except Exception as exc:  # noqa: BLE001  (lme4's bootMer keeps going: NA row, counted)
                out.append((i, None, [], False, f"{type(exc).__name__}: {exc}"))
                continue
            conv, singular = [], False
            for r in refits:
                c, s = _classify(r.optinfo.messages)
                conv += c
                singular |= s
            out.append((i, val, conv, singular, None))
    return out


# ----------------------------------------------------------------------
# the engine
# ----------------------------------------------------------------------
def _progress_bar(progress, nsim: int, desc: str):
    show = (nsim >= 100 and sys.stderr.isatty()) if progress is None else bool(progress)
    if not show:
        return None
    try:
        from tqdm.auto import tqdm
    except ImportError:
        return None
    return tqdm(total=nsim, desc=desc, unit="refit", file=sys.stderr)


def _chunks(items: list, nchunks: int) -> list[list]:
    nchunks = max(1, min(len(items), nchunks))
    bounds = np.linspace(0, len(items), nchunks + 1).round().astype(int)
    return [items[a:b] for a, b in itertools.pairwise(bounds) if b > a]


def _dask_workers(client) -> int:
    if not (hasattr(client, "submit") and hasattr(client, "scatter")):
        raise HierlmError(
            f"client must be a dask.distributed.Client, not {type(client).__name__} "
            "(e.g. Client(LocalCluster()) or Client('tcp://scheduler:8786'))"
        )
    try:
        n = len(client.scheduler_info().get("workers", {}))
    except Exception:  # noqa: BLE001  (an odd client: fall back to a few chunks)
        n = 0
    return max(1, n)


def _run(payload: _Payload, nsim: int, ss: np.random.SeedSequence, n_jobs, client, progress,
         desc: str) -> list[tuple]:
    items = list(enumerate(ss.spawn(nsim)))
    sim = payload.specs[payload.sim].design
    if sim.rows_free:
        # the rows are on a cluster: every replicate's response is made and
        # reduced there in one pass, and the refits here reuse the model's
        # other Gram blocks
        fit = payload.fits()[payload.sim]  # built once, kept for the refits in this process
        Ts = [fit.sigma * r.T(fit.theta[sl]) for r, sl in zip(sim.remats, sim.theta_slices())]
        made = simulated_responses(sim, fit.beta, Ts, fit.sigma, [s for _, s in items],
                                   [payload.specs[j].design for j in payload.targets])
        items = [(i, s, m) for (i, s), m in zip(items, made)]
    bar = _progress_bar(progress, nsim, desc)
    results: list[tuple] = []

    def collect(chunk_out):
        results.extend(chunk_out)
        if bar is not None:
            bar.update(len(chunk_out))

    try:
        if client is not None:
            from distributed import as_completed

            nw = _dask_workers(client)
            # several chunks per worker: load balance and a moving progress bar
            chunks = _chunks(items, 4 * nw)
            fut = client.scatter(payload, broadcast=True)
            futures = [client.submit(_run_chunk, fut, c, pure=False) for c in chunks]
            for f in as_completed(futures):
                collect(f.result())
            del fut, futures
        else:
            nw = _n_workers(n_jobs)
            if nw == 1:
                for c in _chunks(items, math.ceil(nsim / 10)):
                    collect(_run_chunk(payload, c))
            else:
                from joblib import Parallel, delayed

                chunks = _chunks(items, 4 * nw)
                par = Parallel(n_jobs=nw, backend="loky", return_as="generator_unordered",
                               inner_max_num_threads=1)
                for out in par(delayed(_run_chunk)(payload, c) for c in chunks):
                    collect(out)
    finally:
        if bar is not None:
            bar.close()
    results.sort(key=lambda r: r[0])
    return results


@dataclass
class BootResult:
    """Parametric-bootstrap replicates (lme4's ``bootMer`` object).

    Attributes
    ----------
    t0 : pandas.Series
        The function applied to the original fit.
    t : pandas.DataFrame
        nsim x k: the function applied to each refit (row ``i`` is replicate
        ``i``; NaN where the refit failed).
    seed : int
        Entropy of the root ``numpy.random.SeedSequence``: passing it as
        ``seed`` reproduces the replicates.
    nonconverged : numpy.ndarray
        Replicates whose refit gave a convergence warning (kept in ``t``).
    singular : numpy.ndarray
        Replicates with a singular (boundary) refit (kept in ``t``).
    failed : numpy.ndarray
        Replicates whose refit or function raised (NaN rows of ``t``).
    messages : dict
        Warning and error messages of the refits and how often each occurred.
    seconds : float
        Wall time of the refits.
    """

    t0: pd.Series
    t: pd.DataFrame
    seed: int
    nonconverged: np.ndarray
    singular: np.ndarray
    failed: np.ndarray
    messages: dict = field(default_factory=dict)
    seconds: float = 0.0

    @property
    def nsim(self) -> int:
        return len(self.t)

    def summary(self) -> pd.DataFrame:
        """``original``, ``bias`` (mean of t minus t0) and ``std. error`` (SD of t)
        per statistic, as ``print`` of R's boot object."""
        t = self.t
        return pd.DataFrame({"original": self.t0, "bias": t.mean() - self.t0, "std. error": t.std(ddof=1)})

    def confint(self, level: float = 0.95) -> pd.DataFrame:
        """Percentile intervals, as lme4's ``confint(<bootMer>, type = "perc")``.

        lme4 calls ``boot::boot.ci(type = "perc")``: per statistic, the
        non-finite replicates are dropped and the ends are boot's
        ``norm.inter`` order statistics -- rank ``(R + 1) alpha``, interpolated
        on the normal-quantile scale between neighbouring order statistics
        (not R's default ``quantile`` type 7).

        Parameters
        ----------
        level : float
            In (0, 1).

        Returns
        -------
        pandas.DataFrame
            One row per statistic, columns ``"2.5 %"``, ``"97.5 %"`` (for 0.95).
        """
        lev = check_level(level)
        alpha = np.array([(1.0 - lev) / 2.0, (1.0 + lev) / 2.0])
        out = np.array([_norm_inter(self.t[c].to_numpy(), alpha) for c in self.t.columns]).reshape(-1, 2)
        return RTable(out, index=self.t.columns, columns=format_perc(alpha))

    def __repr__(self) -> str:
        lines = [f"Parametric bootstrap: {self.nsim} replicates, seed {self.seed}, {self.seconds:.2f} s"]
        if len(self.failed):
            lines.append(f"failed: {len(self.failed)}")
        if len(self.nonconverged):
            lines.append(f"not converged (kept): {len(self.nonconverged)}")
        if len(self.singular):
            lines.append(f"singular (kept): {len(self.singular)}")
        return "\n".join(lines + [self.summary().to_string(float_format=lambda v: f"{v:.6g}")])


def _norm_inter(t: np.ndarray, alpha: np.ndarray) -> np.ndarray:
    """boot's ``norm.inter(t, alpha)[, 2]``: the percentile-interval ends."""
    t = np.sort(t[np.isfinite(t)])
    R = t.size
    if R == 0:
        return np.full(alpha.shape, np.nan)
    rk = (R + 1) * alpha
    if not np.all((rk > 1) & (rk < R)):
        warnings.warn("extreme order statistics used as endpoints (too few bootstrap samples for this level)",
                      UserWarning, stacklevel=4)
    k = np.trunc(rk).astype(int)
    out = np.empty(alpha.shape)
    for n, (a, r, kk) in enumerate(zip(alpha, rk, k)):
        if kk == 0:
            out[n] = t[0]
        elif kk >= R:
            out[n] = t[R - 1]
        elif kk == r:
            out[n] = t[kk - 1]
        else:
            z, z1, z2 = stats.norm.ppf([a, kk / (R + 1), (kk + 1) / (R + 1)])
            out[n] = t[kk - 1] + (z - z1) / (z2 - z1) * (t[kk] - t[kk - 1])
    return out


def _bootstrap(sim_fit, targets: list, fun, nsim: int, seed, n_jobs, client, progress, control: dict,
               desc: str, use_u: bool = False) -> BootResult:
    """Simulate from ``sim_fit`` (given its conditional modes with ``use_u``), refit every
    fit of ``targets`` to each response and apply ``fun(*refits)``."""
    ss = _seed_sequence(seed)
    if use_u and sim_fit.design.rows_free:
        raise HierlmError("use_u=True (simulating given the conditional modes) is not offered for a fit on a "
                          "dask DataFrame: its responses are simulated on the cluster with new random effects")
    if control:
        check_lmm_control(control)  # unknown options: an error here, not in every worker
    t0_raw = fun(*targets)
    t0 = np.asarray(t0_raw, dtype=float).ravel()
    if t0.size == 0:
        raise HierlmError("the bootstrap function returned no values for the original fit")
    if isinstance(t0_raw, pd.Series) and len(t0_raw) == t0.size:
        names = [str(v) for v in t0_raw.index]
    else:
        names = [f"t{j + 1}" for j in range(t0.size)]

    # one spec per distinct fit (the simulating fit is often also a target)
    fits, specs = [], []
    for f in [sim_fit, *targets]:
        if not any(f is g for g in fits):
            fits.append(f)
            specs.append(_FitSpec.of(f))
    index = [next(j for j, g in enumerate(fits) if g is f) for f in targets]
    payload = _Payload(specs, 0, index, fun, dict(control or {}), use_u=bool(use_u))

    start = time.perf_counter()
    results = _run(payload, nsim, ss, n_jobs, client, progress, desc)
    seconds = time.perf_counter() - start

    t = np.full((nsim, t0.size), np.nan)
    nonconv, singular, failed, messages = [], [], [], {}
    conv_first = err_first = None
    for i, val, conv, sing, err in results:
        if err is not None:
            err_first = err_first or err
            failed.append(i)
            messages[err] = messages.get(err, 0) + 1
            continue
        if val.size != t0.size:
            raise HierlmError(
                f"the bootstrap function returned {val.size} values for replicate {i} and {t0.size} "
                "for the original fit; it must return the same number each time"
            )
        t[i] = val
        if conv:
            conv_first = conv_first or conv[0]
            nonconv.append(i)
            for m in set(conv):
                messages[m] = messages.get(m, 0) + 1
        if sing:
            singular.append(i)
    if singular:
        messages[_SINGULAR] = len(singular)
    if len(failed) == nsim:
        raise HierlmError(f"all {nsim} bootstrap refits failed; first error: {err_first}")
    if failed:
        warnings.warn(f"some bootstrap runs failed ({len(failed)}/{nsim}); their rows are NaN. "
                      f"First error: {err_first}",
                      UserWarning, stacklevel=3)
    if nonconv:
        warnings.warn(
            f"{len(nonconv)} of {nsim} bootstrap refits gave convergence warnings (e.g. {conv_first!r}); "
            "their results are kept (see .nonconverged)", ConvergenceWarning, stacklevel=3,
        )
    return BootResult(
        t0=pd.Series(t0, index=names, name="t0"),
        t=pd.DataFrame(t, columns=names),
        seed=int(ss.entropy),
        nonconverged=np.asarray(nonconv, dtype=int), singular=np.asarray(singular, dtype=int),
        failed=np.asarray(failed, dtype=int), messages=messages, seconds=seconds,
    )


# ----------------------------------------------------------------------
# public functions
# ----------------------------------------------------------------------
def boot_mer(fit, fun, nsim: int = 1, seed=None, n_jobs: int = 1, client=None, progress=None,
             control: dict | None = None, use_u: bool = False) -> BootResult:
    """Parametric bootstrap of a fit: lme4's ``bootMer(fit, FUN, nsim)``.

    Simulates ``nsim`` responses from the fit (new random effects and new
    residuals, as :meth:`LMMFit.simulate`), refits the model to each with
    :meth:`LMMFit.refit` (starting from the fitted theta, REML stays REML)
    and applies ``fun`` to every refit.

    Parameters
    ----------
    fit : LMMFit
        An REML or ML fit.
    fun : callable
        ``fun(refit)`` -> 1-D array of k numbers (a pandas Series names the
        columns of the result).  Runs in worker processes when ``n_jobs`` is
        not 1 or ``client`` is given: lambdas and closures work (cloudpickle),
        but they must not rely on state of this process.
    nsim : int
        Number of bootstrap samples, >= 1.
    seed : int, optional
        Replicate ``i`` uses ``numpy.random.default_rng(SeedSequence(seed).spawn(nsim)[i])``:
        the results are identical for any ``n_jobs`` and on Dask.  ``None``:
        fresh entropy (recorded in the result's ``seed``).
    n_jobs : int
        Local worker processes (joblib's loky backend): 1 runs in this
        process, -1 uses all cores.  Ignored when ``client`` is given.
    client : dask.distributed.Client, optional
        Run the refits on this Dask cluster; the fit is scattered once to
        every worker and the replicates go in chunks (a few per worker).
    progress : bool, optional
        Progress bar (tqdm, when installed).  Default: shown when
        ``nsim >= 100`` and stderr is a terminal.
    control : dict, optional
        Optimizer settings for the refits (see :meth:`hierlm.Model.fit`).
    use_u : bool
        lme4's ``use.u``: simulate given the fit's conditional modes (new
        residuals only) instead of with new random effects (default).

    Returns
    -------
    BootResult
        ``t0`` (fun of the fit), ``t`` (nsim x k DataFrame), the seed, and
        the replicates that failed, did not converge or were singular.

    Warns
    -----
    ConvergenceWarning
        Once, with the count, when refits gave convergence warnings (their
        results are kept, as lme4's ``bootMer`` keeps them).
    UserWarning
        When some refits raised (their rows are NaN).

    Notes
    -----
    Each refit runs with one BLAS thread (threadpoolctl, when installed), in
    this process too, so that the numbers do not depend on where it ran; use
    ``n_jobs`` (or a cluster) for speed.  Fits travel to the workers as
    model, design and theta, once per chunk of replicates.

    Examples
    --------
    >>> import hierlm
    >>> from hierlm.inference.boot import boot_mer
    >>> fit = hierlm.lmer("Reaction ~ Days + (Days | Subject)", hierlm.datasets.load("sleepstudy"))
    >>> b = boot_mer(fit, lambda f: f.fixef, nsim=20, seed=1)
    >>> b.t.shape
    (20, 2)
    """
    _check_lmm(fit, "boot_mer")
    if not callable(fun):
        raise HierlmError(f"fun must be a function of a fit returning numbers, not {type(fun).__name__}")
    nsim = _check_nsim(nsim)
    return _bootstrap(fit, [fit], fun, nsim, seed, n_jobs, client, progress, control or {}, "bootstrap",
                      use_u=use_u)


def confint_boot(fit, parm=None, level: float = 0.95, nsim: int = 500, seed=None, n_jobs: int = 1,
                 client=None, progress=None) -> pd.DataFrame:
    """Parametric-bootstrap percentile intervals: lme4's
    ``confint(m, method = "boot", oldNames = FALSE)``.

    Each refit gives the SDs and correlations of each random-effects term,
    sigma and the fixed effects (lme4's ``bootFun``); the intervals are the
    percentile intervals of ``boot::boot.ci(type = "perc")`` (see
    :meth:`BootResult.confint`).

    Parameters
    ----------
    fit : LMMFit
    parm : str or list of str, optional
        Parameters to report (names as :func:`hierlm.inference.profile.profile_names`),
        or ``"theta_"`` / ``"beta_"``; default all.  All are bootstrapped.
    level : float
        Confidence level in (0, 1).
    nsim : int
        Number of bootstrap samples (lme4's default 500).
    seed, n_jobs, client, progress
        As :func:`boot_mer`.

    Returns
    -------
    pandas.DataFrame
        Indexed by parameter (``sd_(Intercept)|Subject``,
        ``cor_Days.(Intercept)|Subject``, ``sd_Days|Subject``, ``sigma``,
        ``(Intercept)``, ``Days``), columns ``"2.5 %"``, ``"97.5 %"``.
    """
    _check_lmm(fit, "confint_boot")
    lev = check_level(level)
    nsim = _check_nsim(nsim)
    names = profile_names(fit)
    idx = select_parameters(names, fit.design.ntheta + 1, parm)
    res = _bootstrap(fit, [fit], profile_estimates, nsim, seed, n_jobs, client, progress, {}, "bootstrap")
    return res.confint(lev).iloc[idx]


# ----------------------------------------------------------------------
# parametric-bootstrap model comparison
# ----------------------------------------------------------------------
@dataclass
class PBModComp:
    """Result of :func:`pb_test` (pbkrtest's ``PBmodcomp``).

    Attributes
    ----------
    test : pandas.DataFrame
        Rows ``LRT`` (chi-square reference) and ``PBtest`` (bootstrap
        reference); columns ``stat``, ``df``, ``p.value``.
    ref : numpy.ndarray
        The bootstrap LRT statistics (NaN where a refit failed).
    nsim, npos, n_extreme : int
        Samples requested; those with a positive statistic (pbkrtest uses
        only these); those above the observed statistic.
    formula_large, formula_small : str
    boot : BootResult
    """

    test: pd.DataFrame
    ref: np.ndarray
    nsim: int
    npos: int
    n_extreme: int
    formula_large: str
    formula_small: str
    boot: BootResult

    @property
    def stat(self) -> float:
        return float(self.test.loc["LRT", "stat"])

    @property
    def p_value(self) -> float:
        """The parametric-bootstrap p-value."""
        return float(self.test.loc["PBtest", "p.value"])

    def __repr__(self) -> str:
        lines = [(f"Bootstrap test; time: {self.boot.seconds:.2f} sec; samples: {self.nsim}; "
                 f"extremes: {self.n_extreme};")]
        if self.npos < self.nsim:
            lines.append(f"Requested samples: {self.nsim} Used samples: {self.npos} Extremes: {self.n_extreme}")
        lines += [f"large : {self.formula_large}", f"small : {self.formula_small}"]
        tab = pd.DataFrame({
            "stat": [f"{v:.4g}" for v in self.test["stat"]],
            "df": ["" if pd.isna(v) else f"{v:g}" for v in self.test["df"]],
            "p.value": [f"{v:.4g}" for v in self.test["p.value"]],
        }, index=self.test.index)
        return "\n".join(lines + [tab.to_string()])


def _ml_fit(fit):
    """The same model on the same response, fit by ML (lme4's ``refitML``)."""
    return fit.refit_ml()


def _check_nested_rows_free(big, small) -> None:
    """pb_test's checks for fits on a dask DataFrame: the same frame, rows
    and response, and small's fixed effects among big's (by name: the rows
    are not here to compare the columns)."""
    db, ds = big.design, small.design
    if not (db.rows_free and ds.rows_free and db.rows_source is ds.rows_source):
        raise HierlmError("pb_test: fit both models to the same data: the same dask DataFrame (or both to pandas "
                          "data)")
    if db.n != ds.n or db.formula.response != ds.formula.response:
        raise HierlmError(f"pb_test: the models differ in rows ({db.n}, {ds.n}) or response "
                          f"({db.formula.response!r}, {ds.formula.response!r}); fit both to the same rows and response")
    if small.df >= big.df or not set(ds.xnames) <= set(db.xnames):
        raise HierlmError(f"pb_test: small ({small.formula!r}) must be nested in big ({big.formula!r}): fewer "
                          "parameters, and its fixed effects among big's")


def _check_nested(big, small) -> None:
    db, ds = big.design, small.design
    if db.rows_free or ds.rows_free:
        _check_nested_rows_free(big, small)
        return
    if db.n != ds.n or not np.array_equal(np.asarray(db.prepared.rows), np.asarray(ds.prepared.rows)):
        raise HierlmError(f"pb_test: the models were fit to different rows (big: {db.n}, small: {ds.n} rows); "
                          "fit both to the same data (drop missing values first)")
    if not np.array_equal(db.y, ds.y):
        raise HierlmError(f"pb_test: the models have different responses ({db.formula.response!r} and "
                          f"{ds.formula.response!r}); only models of the same response can be compared")
    if small.df >= big.df:
        raise HierlmError(
            f"pb_test: small ({small.formula!r}, {small.df} parameters) must have fewer parameters than big "
            f"({big.formula!r}, {big.df}); pass the larger model first, and nested models only"
        )
    # small's fixed effects must lie in the column space of big's
    coef, *_ = np.linalg.lstsq(db.X, ds.X, rcond=None)
    resid = np.linalg.norm(ds.X - db.X @ coef) / max(np.linalg.norm(ds.X), 1.0)
    if resid > 1e-8:
        raise HierlmError(
            f"pb_test: the fixed effects of small ({list(ds.xnames)}) are not contained in those of big "
            f"({list(db.xnames)}); the models are not nested"
        )
    missing = sorted({r.group for r in ds.remats} - {r.group for r in db.remats})
    if missing:
        raise HierlmError(f"pb_test: small has random effects on {missing}, which big does not have; "
                          "the models are not nested")


def _lrt_stat(small, big) -> np.ndarray:
    # order (small, big): the refit targets, as passed by pb_test
    return np.array([2.0 * (big.loglik - small.loglik)])


def pb_test(big, small, nsim: int = 1000, seed=None, n_jobs: int = 1, client=None, progress=None) -> PBModComp:
    """Parametric-bootstrap likelihood-ratio test of nested models, as pbkrtest's
    ``PBmodcomp(big, small, nsim)``.

    REML fits are refit by ML first (warned, as lme4's anova says it).  The
    observed statistic is ``LRT = 2 (logLik_big - logLik_small)`` with
    ``df`` = the difference in parameters and its chi-square p-value.  Then
    ``nsim`` responses are simulated from the (ML) small model, both models
    are refit to each and the statistic recomputed.  As pbkrtest, the
    bootstrap p-value uses the ``npos`` positive statistics only:
    ``(1 + #{LRT* > LRT}) / (1 + npos)``.

    Parameters
    ----------
    big, small : LMMFit
        Nested fits of the same response to the same rows; ``small`` has
        fewer parameters and fixed effects within ``big``'s.
    nsim : int
        Number of bootstrap samples, >= 1.
    seed, n_jobs, client, progress
        As :func:`boot_mer` (each sample refits both models).

    Returns
    -------
    PBModComp
        ``.test`` (rows ``LRT``, ``PBtest``; columns ``stat``, ``df``,
        ``p.value``); prints as PBmodcomp.

    Examples
    --------
    >>> import hierlm
    >>> from hierlm.inference.boot import pb_test
    >>> d = hierlm.datasets.load("sleepstudy")
    >>> m1 = hierlm.lmer("Reaction ~ Days + (Days | Subject)", d)
    >>> m2 = hierlm.lmer("Reaction ~ Days + (1 | Subject) + (0 + Days | Subject)", d)
    >>> pb = pb_test(m1, m2, nsim=200, seed=1)  # doctest: +SKIP
    """
    _check_lmm(big, "pb_test", "big")
    _check_lmm(small, "pb_test", "small")
    nsim = _check_nsim(nsim)
    _check_nested(big, small)
    if big.reml or small.reml:
        warnings.warn(REFIT_MESSAGE, UserWarning, stacklevel=2)
        big, small = _ml_fit(big), _ml_fit(small)
    df = big.df - small.df
    res = _bootstrap(small, [small, big], _lrt_stat, nsim, seed, n_jobs, client, progress, {}, "PB test")
    tobs = float(res.t0.iloc[0])
    ref = res.t.iloc[:, 0].to_numpy()
    p_pb, npos, n_extreme = _pb_pvalue(tobs, ref)
    test = pd.DataFrame(
        {"stat": [tobs, tobs], "df": [float(df), np.nan], "p.value": [float(stats.chi2.sf(tobs, df)), p_pb]},
        index=["LRT", "PBtest"],
    )
    return PBModComp(test=test, ref=ref, nsim=nsim, npos=npos, n_extreme=n_extreme,
                     formula_large=big.formula, formula_small=small.formula, boot=res)


def _pb_pvalue(tobs: float, ref: np.ndarray) -> tuple[float, int, int]:
    """pbkrtest's ``.finalizePB``: only positive statistics count (a refit of
    the big model that ends below the small one's likelihood is dropped);
    p = (1 + #{LRT* > LRT}) / (1 + npos)."""
    refpos = ref[ref > 0]  # NaN (failed refits) compare False
    n_extreme = int(np.sum(tobs < refpos))
    return (1 + n_extreme) / (1 + refpos.size), int(refpos.size), n_extreme
