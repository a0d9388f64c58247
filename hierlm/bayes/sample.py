"""NUTS sampling of a mixed model with PyMC, nutpie or numpyro."""

from __future__ import annotations

import importlib.util
import os
import time

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


def run_nuts(pm_model, sampler: str, draws: int, tune: int, chains: int, random_seed, progressbar: bool,
             target_accept: float, cheap_gradient: bool = False, initial_points: dict | None = None,
             jitter: tuple[str, ...] | None = None):
    """Sample ``pm_model``; returns (InferenceData, seconds).

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
            idata = nutpie.sample(compiled, draws=draws, tune=tune, chains=chains, seed=seed,
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
                    target_accept: float):
    """NUTS (nutpie) on the engine's marginal posterior
    (:class:`hierlm.bayes.marginal.EnginePosterior`): its analytic gradient,
    compiled once for every model, so nothing is compiled per model.

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
        idata = nutpie.sample(model, draws=draws, tune=tune, chains=chains, seed=seed, progress_bar=progressbar,
                              target_accept=target_accept, save_warmup=False)
    return idata, time.perf_counter() - t0
