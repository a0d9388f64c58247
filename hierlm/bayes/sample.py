"""NUTS sampling of a mixed model with PyMC, nutpie or numpyro."""

from __future__ import annotations

import importlib.util
import os
import time
import warnings

import numpy as np

from ..errors import HierlmError
from .marginal import nutpie_model

# sampler -> package that provides it
SAMPLERS = {"nutpie": "nutpie", "pymc": "pymc", "numpyro": "numpyro"}
# nutpie compiles the model with numba once and samples all chains in
# threads. Measured on sleepstudy, 4 x 1000 draws, compilation included:
# nutpie 8-9.5 s, numpyro 20 s, pymc 26-51 s (docs/bayesian.md)
DEFAULT_ORDER = ("nutpie", "pymc", "numpyro")


class SamplerError(HierlmError):
    """A sampler that is unknown or not installed, or bad sampling arguments."""


def installed(package: str) -> bool:
    return importlib.util.find_spec(package) is not None


def choose_sampler(sampler: str | None) -> str:
    if sampler is None:
        for s in DEFAULT_ORDER:
            if installed(SAMPLERS[s]):
                return s
        raise SamplerError("no NUTS sampler is installed: pip install 'hierlm[bayes]' (pymc, nutpie)")
    if sampler not in SAMPLERS:
        raise SamplerError(f"unknown sampler {sampler!r}; choose one of {', '.join(SAMPLERS)}")
    if not installed(SAMPLERS[sampler]) or not installed("pymc"):
        pkg = SAMPLERS[sampler] if installed("pymc") else "pymc"
        raise SamplerError(f"sampler {sampler!r} needs the package {pkg!r}: pip install {pkg}")
    return sampler


def check_counts(draws, tune, chains) -> None:
    for name, v, lo in (("draws", draws, 1), ("chains", chains, 1), ("tune", tune, 0)):
        if not isinstance(v, (int, np.integer)) or v < lo:
            raise SamplerError(f"{name} must be an integer >= {lo}, not {v!r}")


def sampler_options(options: dict | None, defaults: dict, what: str) -> dict:
    """A sampler's options over its ``defaults`` (unknown names refused with
    the valid ones), the counts checked."""
    options = dict(options or {})
    unknown = set(options) - set(defaults)
    if unknown:
        raise SamplerError(f"unknown option(s) {sorted(unknown)} for {what}; valid: {', '.join(defaults)}")
    o = {**defaults, **options}
    check_counts(o["draws"], o["tune"], o["chains"])
    return o


# What the chains are extended until (hierlm.bayes.results' convergence check
# uses the same numbers): every R-hat <= RHAT_MAX and every bulk ESS >=
# min(ESS_MIN, 100 per chain)
RHAT_MAX = 1.01
ESS_MIN = 400  # Vehtari et al. (2021): 100 per chain for 4 chains
# shortest interval (seconds) between looks at a running sampler's draws, and
# the first look (a fit that samples faster, sleepstudy's 0.4 s, is looked at
# only when it has finished)
_POLL_MIN = 0.05
_FIRST_LOOK = 0.5
# Most numbers (values a draw x chains x (tune + max_draws)) in a trace whose
# chains are extended.  A look at a running nutpie sampler copies its whole
# trace into a new InferenceData (1.3 s and 0.8 GB for 4 chains x 3,000
# draws x 8,000 values, ad hoc); bigger traces are sampled for ``draws`` and
# warn as before.  grouseticks and InstEval's default model (sampled
# lecturers): 1,182 and 1,136 values a draw, 2.8e7 at 4 x (1000 + 5000).
TRACE_LOOK_MAX = 5e7


def ess_min(chains: int) -> int:
    """The bulk ESS a fit needs: ESS_MIN, or 100 a chain with fewer than 4."""
    return min(ESS_MIN, 100 * chains)


def converged(posterior, names) -> tuple[bool, float, float]:
    """Whether the draws of the variables ``names`` (those present) in the
    ArviZ posterior pass the convergence check: every R-hat <= RHAT_MAX (with
    two chains or more) and every bulk ESS >= min(ESS_MIN, 100 per chain).
    Constant entries (a correlation matrix's diagonal) are skipped.

    Returns (passed, largest R-hat, smallest bulk ESS).
    """
    import arviz as az

    ds = posterior[[v for v in names if v in posterior]]
    chains = ds.sizes["chain"]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # constant entries: ArviZ warns and returns nan
        ess = az.ess(ds, method="bulk")
        rhat = az.rhat(ds) if chains > 1 else None
    flat = lambda d: np.concatenate([np.ravel(d[v].values) for v in d.data_vars]) if d.data_vars else np.array([])
    sd_zero = flat(ds.std(("chain", "draw"))) == 0
    e = flat(ess)[~sd_zero]
    r = flat(rhat)[~sd_zero] if rhat is not None else np.array([])
    e_min = float(np.nanmin(e)) if e.size else np.inf
    r_max = float(np.nanmax(r)) if r.size else 1.0
    return bool(r_max <= RHAT_MAX and e_min >= ess_min(chains)), r_max, e_min


def _complete_draws(idata) -> int:
    """Draws every chain of a running sampler's trace holds (nutpie pads the
    chains behind with NaN)."""
    post = idata.posterior
    if not post.data_vars or post.sizes.get("draw", 0) == 0:
        return 0
    v = next(iter(post.data_vars.values()))
    x = v.values.reshape(v.shape[0], v.shape[1], -1)[:, :, 0]
    return int(np.min(np.sum(~np.isnan(x), axis=1)))


def _first_draws(idata, n: int):
    """The trace with every chain cut to its first ``n`` draws."""
    import arviz as az

    groups = {g: idata[g].isel(draw=slice(0, n)) for g in idata.groups() if "draw" in idata[g].dims}
    return az.InferenceData(**groups)


def nutpie_until_converged(compiled, *, draws: int, max_draws: int, check, **kwargs):
    """nutpie's NUTS, its chains extended past ``draws`` (up to ``max_draws``
    each) until the draws pass the convergence check.

    A fit that ends with R-hat above 1.01 or too few effective draws is a
    fit the user has to run again, longer; here the chains simply go on.
    nutpie runs in the background with ``max_draws`` per chain.  The draws
    are checked (``check(posterior) -> bool``) at fixed counts: ``draws``,
    then every ``max(100, draws // 4)`` more; sampling stops at the first
    count that passes, and every chain keeps exactly that many draws.  The
    counts do not depend on timing, so a seed gives the same draws.
    ``max_draws <= draws`` is plain sampling, and so is a model whose trace
    would exceed :data:`TRACE_LOOK_MAX` numbers.

    Returns the InferenceData (posterior and sample_stats).
    """
    import nutpie

    # a look at a running sampler copies its whole trace, tuning included
    values = getattr(compiled, "n_expanded", 0) * kwargs.get("chains", 4) * (kwargs.get("tune", 0) + max_draws)
    if max_draws <= draws or values > TRACE_LOOK_MAX:
        return nutpie.sample(compiled, draws=draws, **kwargs)
    step = max(100, draws // 4)
    counts = list(range(draws, max_draws, step)) + [max_draws]
    # one thread a chain: nutpie runs a chain to its end on each of its
    # threads (min(chains, cores) of them), so with fewer threads the later
    # chains would start only after the first had drawn max_draws.  (InstEval,
    # 4 chains on 2 cores: 400 draws of every chain in 112 s on 2 threads
    # with max_draws 2000, 60 s on 4; 56 s sampling just 400 on 2.)
    kwargs.setdefault("cores", kwargs.get("chains", 4))
    sampler = nutpie.sample(compiled, draws=max_draws, blocking=False, **kwargs)
    clock = time.perf_counter
    start = clock()
    i, n_seen, t_seen, looks, look_at = 0, 0, start, 0, start + _FIRST_LOOK
    try:
        while True:
            try:
                sampler.is_finished  # nutpie 0.16 raises TimeoutError while it runs
                done = True
            except TimeoutError:
                done = False
            if done:
                trace, n = sampler.wait(), max_draws
            elif clock() >= look_at:
                # A look copies the whole trace so far, so looks are few: at
                # most a sixth of the time; while the chains tune (no draws
                # yet), at a quarter of the time elapsed; then, once two looks
                # have timed the draws' pace, not before the next count is due
                t0 = clock()
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore")  # ArviZ on a trace with no draws yet
                    trace = sampler.inspect()
                n = _complete_draws(trace)
                now = clock()
                looks += 1
                wait = 5.0 * (now - t0) if looks > 1 else 0.0  # the first look imports and converts the most
                if n == 0:
                    wait = max(wait, 0.25 * (now - start))
                elif n > n_seen > 0:  # (the first draws' pace is unknown: tuning came before them)
                    wait = max(wait, 0.8 * (counts[i] - n) * (now - t_seen) / (n - n_seen))
                if n > n_seen:
                    n_seen, t_seen = n, now
                look_at = now + max(_POLL_MIN, wait)
            else:
                time.sleep(0.02)
                continue
            while counts[i] <= n:
                k = counts[i]
                if k == max_draws or check(_first_draws(trace, k).posterior):
                    return _first_draws(trace if done else sampler.abort(), k)
                i += 1
    except BaseException:
        sampler.cancel()  # no sampler threads left running (they outlive the interpreter otherwise)
        raise


def run_nuts(pm_model, sampler: str, draws: int, tune: int, chains: int, random_seed, progressbar: bool,
             target_accept: float, cheap_gradient: bool = False, initial_points: dict | None = None,
             jitter: tuple[str, ...] | None = None, max_draws: int | None = None, check_vars=()):
    """Sample ``pm_model``; returns (InferenceData, seconds).

    nutpie extends the chains past ``draws``, up to ``max_draws``, until the
    variables ``check_vars`` pass the convergence check
    (:func:`nutpie_until_converged`); PyMC and numpyro draw ``draws``.

    ``cheap_gradient``: the model's gradient costs microseconds (the
    marginalized path), so nutpie's numba compilation is most of the wall
    time; LLVM's optimization level is then lowered while compiling
    (restored afterwards), which saves about 1.2 s of 9 on sleepstudy and
    leaves sampling (0.25 s) about as fast.

    ``initial_points``: start values by variable name (None: PyMC's
    defaults, jittered); then only the variables whose names start with one
    of ``jitter`` are jittered (nutpie; PyMC and numpyro start all chains at
    ``initial_points``).
    """
    t0 = time.perf_counter()
    seed = None if random_seed is None else int(random_seed)
    if sampler == "nutpie":
        import numba
        import nutpie

        opt = numba.config.OPT
        if cheap_gradient:
            numba.config.OPT = 0
        try:
            if initial_points is None:
                compiled = nutpie.compile_pymc_model(pm_model)
            else:
                jr = {v for v in pm_model.free_RVs if jitter and v.name.startswith(tuple(jitter))}
                compiled = nutpie.compile_pymc_model(pm_model, initial_points=initial_points, jitter_rvs=jr)
        finally:
            numba.config.OPT = opt
        from threadpoolctl import threadpool_limits
        # when b is sampled, the intercept trades off against the mean of each
        # term's effects (a narrow ridge in one direction); nutpie's low-rank
        # mass-matrix adaptation learns that direction (InstEval: intercept
        # R-hat 1.028 -> 1.00 with 4 x 500 draws, same wall time)
        # one BLAS thread per chain: the gradient's matrices are small, and
        # OpenBLAS's threads on top of nutpie's one thread per chain
        # oversubscribe the cores (InstEval, 2 chains on 2 cores: 108 s -> 24 s)
        with threadpool_limits(limits=1, user_api="blas"):
            idata = nutpie_until_converged(
                compiled, draws=draws, max_draws=max_draws or draws,
                check=lambda post: converged(post, check_vars)[0], tune=tune, chains=chains, seed=seed,
                progress_bar=progressbar, target_accept=target_accept, save_warmup=False,
                low_rank_modified_mass_matrix=not cheap_gradient)
    else:
        import pymc as pm

        kw = {"nuts_sampler": "numpyro"} if sampler == "numpyro" else {"cores": min(chains, os.cpu_count() or 1)}
        if initial_points is not None:
            kw["initvals"] = initial_points
        idata = pm.sample(draws=draws, tune=tune, chains=chains, random_seed=seed, progressbar=progressbar,
                          model=pm_model, target_accept=target_accept, compute_convergence_checks=False,
                          **kw)
    return idata, time.perf_counter() - t0


# log-scale jitter of the chains' starts around the REML estimates: dispersed
# enough for R-hat to see chains that disagree, inside the posterior's bulk
ENGINE_JITTER = 0.5


def run_engine_nuts(post, draws: int, tune: int, chains: int, random_seed, progressbar: bool,
                    target_accept: float, max_draws: int | None = None):
    """NUTS (nutpie) on the engine's marginal posterior
    (:class:`hierlm.bayes.marginal.EnginePosterior`): its analytic gradient,
    compiled once for every model, so nothing is compiled per model.  The
    chains are extended up to ``max_draws`` until the variance parameters
    ``phi`` pass the convergence check (R-hat and ESS are invariant to their
    monotone transforms; the fixed effects and effects are exact draws given
    them).

    Returns (InferenceData with the unconstrained draws ``phi`` and nutpie's
    sample stats, seconds).
    """
    import nutpie
    from threadpoolctl import threadpool_limits

    t0 = time.perf_counter()
    start = post.start()

    def initial_point(seed):
        rng = np.random.default_rng(seed)
        return start + rng.uniform(-ENGINE_JITTER, ENGINE_JITTER, start.size)

    model = nutpie_model(post, initial_point)
    seed = None if random_seed is None else int(random_seed)
    # one BLAS thread: the matrices are small, and threads per chain on top of
    # OpenBLAS's own oversubscribe the cores
    with threadpool_limits(limits=1, user_api="blas"):
        idata = nutpie_until_converged(model, draws=draws, max_draws=max_draws or draws,
                                       check=lambda p: converged(p, ["phi"])[0], tune=tune, chains=chains,
                                       seed=seed, progress_bar=progressbar, target_accept=target_accept,
                                       save_warmup=False)
    return idata, time.perf_counter() - t0
