"""Priors for Bayesian fits: distributions, brms-like data-scaled defaults, and
the table a model prints as ``model.priors``.

Defaults (Bürkner's brms, and rstanarm's autoscaling for slopes), with
``s = max(2.5, mad(y))`` and R's ``mad`` (scaled by 1.4826):

=====================  ==============================================
parameter              default prior
=====================  ==============================================
``(Intercept)``        Normal(median(y), 2.5 sqrt(s^2 + sd(y)^2 sum_j (mean(x_j) / sd(x_j))^2))
each slope ``x_j``     Normal(0, 2.5 sd(y) / sd(x_j))
each SD ``sd|g``       half-Student-t(3, 0, s)
correlations ``lkj``   LKJ(eta = 1)
``sigma``              half-Student-t(3, 0, s)
=====================  ==============================================

The intercept's scale is brms's 2.5 s widened by what the slope priors imply
for the intercept of uncentered predictors (brms and rstanarm put their
intercept prior on centered predictors; hierlm does not center, so the
prior must allow for ``mean(x_j) * beta_j``).  All fixed-effect priors being
Normal keeps the PyMC graph small (one vector), which makes it compile
faster.

Set them with :meth:`hierlm.Model.set_prior`, e.g.
``model.set_prior("Days", Normal(0, 10))``; targets are ``"fixed"`` (all
coefficients but the intercept), a coefficient name, ``"sd"`` (all SDs),
``"sd|Subject"`` (one grouping factor's SDs), ``"lkj"``, ``"sigma"``,
``"shape"`` (the negative binomial's and the Gamma family's shape), ``"phi"`` (the
beta family's precision), ``"nu"``
(a Student-t model's degrees of freedom, brms's default Gamma(2, 0.1); its
other defaults are the Gaussian model's).
This module does not import PyMC; the backend turns priors into PyMC
distributions.

Binomial and Poisson models (``family`` not ``"gaussian"``) get brms's
defaults on the link scale, which do not depend on the response: the
intercept Student-t(3, 0, 2.5 sqrt(1 + sum_j (mean(x_j) / sd(x_j))^2)) (brms's
student_t(3, 0, 2.5), widened for uncentered predictors as above), each slope
Normal(0, 2.5 / sd(x_j)) (rstanarm's autoscaling for GLMs), each SD
half-Student-t(3, 0, 2.5); there is no ``sigma``.  Negative binomial and
Gamma models add brms's Gamma(0.01, 0.01) on their shape, beta models the same on
their precision phi.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd
from scipy import special, stats

from .design.remat import term_names
from .errors import HierlmError
from .family import make_family, t_logpdf


class PriorError(HierlmError):
    """A prior that cannot be used (bad scale, unknown target)."""


@dataclass(frozen=True)
class Prior:
    """A prior distribution: a family name and its parameters."""

    family: str
    params: dict = field(default_factory=dict)
    positive: bool = False  # a half-distribution, for SDs and sigma

    def __post_init__(self):
        for k, v in self.params.items():
            try:
                finite = bool(np.all(np.isfinite(np.asarray(v, dtype=float))))
            except (TypeError, ValueError):
                finite = False
            if not finite:
                raise PriorError(f"{self.family}: {k} must be a finite number, not {v!r}")
        for k in ("sigma", "beta", "lam", "eta", "nu", "alpha"):
            v = self.params.get(k)
            if v is not None and not np.all(np.isfinite(v) & (np.asarray(v) > 0)):
                raise PriorError(f"{self.family}: {k} must be a positive number, not {v!r}")

    def __str__(self) -> str:
        if self.family == "Flat":
            return "Flat()"
        args = ", ".join(f"{k}={_fmt(v)}" for k, v in self.params.items())
        return f"{self.family}({args})"

    def logpdf(self, x: np.ndarray) -> np.ndarray:
        """Log density (for MAP; half-distributions on x >= 0).  Closed forms, the same numbers
        as scipy.stats' (tested): a MAP fit evaluates every prior at each step, and scipy's
        argument checks (about 0.1 ms a call) were a tenth of a fit."""
        p = self.params
        x = np.asarray(x, dtype=float)
        if self.family == "Flat":
            return np.zeros_like(x)
        log2 = np.log(2.0)
        with np.errstate(divide="ignore"):
            if self.family == "Normal":
                return _normal_logpdf(x, p["mu"], p["sigma"])
            if self.family == "StudentT":
                return t_logpdf(x, p["nu"], p["mu"], p["sigma"])
            if self.family == "HalfNormal":
                return np.where(x >= 0, log2 + _normal_logpdf(x, 0.0, p["sigma"]), -np.inf)
            if self.family == "HalfStudentT":
                return log2 + t_logpdf(x, p["nu"], 0.0, p["sigma"])
            if self.family == "HalfCauchy":
                b = p["beta"]
                return np.where(x >= 0, log2 - np.log(np.pi * b) - np.log1p((x / b) ** 2), -np.inf)
            if self.family == "Exponential":
                lam = p["lam"]
                return np.where(x >= 0, np.log(lam) - lam * x, -np.inf)
            if self.family == "Gamma":
                a, b = p["alpha"], p["beta"]
                return np.where(x >= 0, a * np.log(b) - special.gammaln(a) + special.xlogy(a - 1.0, x) - b * x,
                                -np.inf)
        raise PriorError(f"no density for {self.family}")  # pragma: no cover


def _normal_logpdf(x, mu, sigma):
    z = (x - mu) / sigma
    return -0.5 * z * z - np.log(sigma) - 0.5 * np.log(2.0 * np.pi)


def _fmt(v) -> str:
    return f"{v:.4g}" if isinstance(v, (float, np.floating)) else str(v)


def _num(v, name: str) -> float:
    """A prior parameter as a float; anything else is a PriorError that names it."""
    try:
        return float(v)
    except (TypeError, ValueError):
        raise PriorError(f"the prior parameter {name} must be a number, not {v!r}") from None


def Normal(mu: float = 0.0, sigma: float = 1.0) -> Prior:
    """Normal(mu, sigma) prior for fixed effects."""
    return Prior("Normal", {"mu": _num(mu, "mu"), "sigma": _num(sigma, "sigma")})


def StudentT(nu: float, mu: float = 0.0, sigma: float = 1.0) -> Prior:
    """Student-t(nu, mu, sigma) prior for fixed effects."""
    return Prior("StudentT", {"nu": _num(nu, "nu"), "mu": _num(mu, "mu"), "sigma": _num(sigma, "sigma")})


def HalfNormal(sigma: float = 1.0) -> Prior:
    """Half-normal prior for an SD or sigma."""
    return Prior("HalfNormal", {"sigma": _num(sigma, "sigma")}, positive=True)


def HalfStudentT(nu: float, sigma: float = 1.0) -> Prior:
    """Half-Student-t(nu, 0, sigma) prior for an SD or sigma (brms's default)."""
    return Prior("HalfStudentT", {"nu": _num(nu, "nu"), "sigma": _num(sigma, "sigma")}, positive=True)


def HalfCauchy(beta: float = 1.0) -> Prior:
    """Half-Cauchy prior for an SD or sigma (Gelman 2006)."""
    return Prior("HalfCauchy", {"beta": _num(beta, "beta")}, positive=True)


def Exponential(lam: float = 1.0) -> Prior:
    """Exponential(rate lam) prior for an SD or sigma."""
    return Prior("Exponential", {"lam": _num(lam, "lam")}, positive=True)


def Gamma(alpha: float, beta: float) -> Prior:
    """Gamma(shape alpha, rate beta) prior for a positive family parameter (brms's default
    for the negative binomial's and the Gamma family's shape: Gamma(0.01, 0.01))."""
    return Prior("Gamma", {"alpha": _num(alpha, "alpha"), "beta": _num(beta, "beta")}, positive=True)


def Flat() -> Prior:
    """Improper flat prior (MAP with flat priors is maximum likelihood)."""
    return Prior("Flat", {})


def LKJ(eta: float = 1.0) -> Prior:
    """LKJ prior on a correlation matrix (eta = 1: uniform over correlations)."""
    return Prior("LKJ", {"eta": _num(eta, "eta")})


def r_mad(y: np.ndarray) -> float:
    """R's ``mad``: median absolute deviation scaled by 1.4826."""
    return float(1.4826 * np.median(np.abs(y - np.median(y))))


class PriorSet:
    """The priors of one model: defaults from the data, user overrides on top.

    Parameters
    ----------
    design : hierlm.design.Design
    family : Family or str
        Gaussian (priors scaled by the response) or binomial / Poisson
        (link-scale defaults, no ``sigma``).
    """

    def __init__(self, design, family="gaussian"):
        self.design = design
        self.family = make_family(family)
        self.nu = None
        if not self.family.is_gaussian and self.family.name != "student":
            self._glmm_defaults()
            return
        y = design.y
        s = max(2.5, r_mad(y))
        self.scale = s
        sd_y = float(np.std(y, ddof=1)) if len(y) > 1 else 1.0
        self.fixed: dict[str, Prior] = {}
        shift = 0.0  # sum_j (mean(x_j) / sd(x_j))^2 over the slopes
        for j, name in enumerate(design.xnames):
            if name != "(Intercept)":
                x = design.X[:, j]
                sd_x = float(np.std(x, ddof=1)) if len(x) > 1 else 0.0
                self.fixed[name] = Normal(0.0, 2.5 * sd_y / sd_x if sd_x > 0 else 2.5 * sd_y)
                shift += (float(np.mean(x)) / sd_x) ** 2 if sd_x > 0 else 0.0
        if "(Intercept)" in design.xnames:
            scale = 2.5 * np.sqrt(s**2 + sd_y**2 * shift)
            self.fixed = {"(Intercept)": Normal(float(np.median(y)), float(scale)), **self.fixed}
        self.sd: dict[str, Prior] = {g: HalfStudentT(3, s) for g in self.term_names()}
        self.lkj = LKJ(1.0)
        self.sigma = HalfStudentT(3, s)
        self.family_param = None
        self.thresholds = None
        if self.family.name == "student":
            self.nu = Gamma(2.0, 0.1)  # brms's default for the degrees of freedom of its student family
    def _glmm_defaults(self) -> None:
        """brms/rstanarm defaults on the link scale (module docstring)."""
        design = self.design
        self.scale = 2.5
        self.fixed = {}
        shift = 0.0
        for j, name in enumerate(design.xnames):
            if name != "(Intercept)":
                x = design.X[:, j]
                sd_x = float(np.std(x, ddof=1)) if len(x) > 1 else 0.0
                self.fixed[name] = Normal(0.0, 2.5 / sd_x if sd_x > 0 else 2.5)
                shift += (float(np.mean(x)) / sd_x) ** 2 if sd_x > 0 else 0.0
        if "(Intercept)" in design.xnames:
            self.fixed = {"(Intercept)": StudentT(3, 0.0, 2.5 * np.sqrt(1.0 + shift)), **self.fixed}
        self.sd = {g: HalfStudentT(3, 2.5) for g in self.term_names()}
        self.lkj = LKJ(1.0)
        self.sigma = None  # binomial and Poisson have no residual SD
        # the negative binomial's and the Gamma family's shape, the beta's phi: brms's gamma(0.01, 0.01)
        self.family_param = Gamma(0.01, 0.01) if self.family.dist.param_prior else None
        # an ordinal model's thresholds: brms's student_t(3, 0, 2.5) on each (ordered), those of
        # the centred predictors (brms's Intercept[k]; hierlm.bayes.backend.build_pymc_model)
        self.thresholds = StudentT(3, 0.0, 2.5) if self.family.dist.eta_is_mean else None

    def term_names(self) -> list[str]:
        """lme4's group names per term (``Subject``, ``Subject.1`` for a second term)."""
        return term_names(self.design.remats)

    def targets(self) -> list[str]:
        """Names that :meth:`set` accepts."""
        groups = list(dict.fromkeys(r.group for r in self.design.remats))
        return (["fixed"] + list(self.design.xnames) + ["sd"] + [f"sd|{g}" for g in groups]
                + [f"sd|{t}" for t in self.term_names() if t not in groups] + ["lkj"]
                + (["sigma"] if self.sigma is not None else [])
                + ([self.family.dist.param_prior] if self.family_param is not None else [])
                + (["nu"] if self.nu is not None else [])
                + (["thresholds"] if self.thresholds is not None else []))

    def set(self, target: str, prior) -> None:
        """Set the prior of ``target`` (see the module docstring)."""
        valid = self.targets()
        if target not in valid:
            raise PriorError(f"no parameter {target!r} in this model; valid prior targets: {', '.join(valid)}")
        if target == "lkj":
            if not isinstance(prior, Prior):
                prior = LKJ(prior)
            if prior.family != "LKJ":
                raise PriorError("the 'lkj' target takes LKJ(eta) or a number eta > 0")
            self.lkj = prior
            return
        if not isinstance(prior, Prior):
            raise PriorError(f"a prior must be made by hierlm.priors (Normal, HalfStudentT, ...), not {prior!r}")
        if target in (self.family.dist.param_prior, "nu"):
            if not prior.positive:
                raise PriorError(f"{target} is positive: use Gamma, Exponential, HalfNormal, HalfStudentT or "
                                 f"HalfCauchy, not {prior.family}")
            setattr(self, "nu" if target == "nu" else "family_param", prior)
            return
        if target in ("sigma", "sd") or target.startswith("sd|"):
            if not (prior.positive or prior.family == "Flat"):
                raise PriorError(f"{target} is a standard deviation: use HalfNormal, HalfStudentT, "
                                 f"HalfCauchy, Exponential or Flat, not {prior.family}")
        elif prior.positive or prior.family == "LKJ":
            raise PriorError(f"{target} is a coefficient: use Normal, StudentT or Flat, not {prior.family}")
        if target == "thresholds":
            if prior.family not in ("Normal", "StudentT"):
                raise PriorError(f"the thresholds take a Normal or StudentT prior (each, ordered), not {prior.family}")
            self.thresholds = prior
        elif target == "sigma":
            self.sigma = prior
        elif target == "sd":
            self.sd = {g: prior for g in self.sd}
        elif target.startswith("sd|"):
            g = target[3:]
            for t, r in zip(self.term_names(), self.design.remats):
                if t == g or r.group == g:
                    self.sd[t] = prior
        elif target == "fixed":
            for name in self.fixed:
                if name != "(Intercept)":
                    self.fixed[name] = prior
        else:
            self.fixed[target] = prior

    def table(self) -> pd.DataFrame:
        rows = [("fixed", k, str(v)) for k, v in self.fixed.items()]
        for t, r in zip(self.term_names(), self.design.remats):
            rows.append(("sd", f"{t}: {', '.join(r.cnames)}", str(self.sd[t])))
            if r.p > 1:
                rows.append(("cor", t, str(self.lkj)))
        if self.sigma is not None:
            rows.append(("sigma", "Residual", str(self.sigma)))
        if self.family_param is not None:
            rows.append((self.family.dist.param_prior, self.family.name, str(self.family_param)))
        if self.nu is not None:
            rows.append(("nu", "degrees of freedom", str(self.nu)))
        if self.thresholds is not None:
            rows.append(("thresholds", "each, ordered", str(self.thresholds)))
        return pd.DataFrame(rows, columns=["class", "parameter", "prior"])

    def __repr__(self) -> str:
        return self.table().to_string(index=False)

    def _repr_html_(self) -> str:
        return self.table().to_html(index=False)
