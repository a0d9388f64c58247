"""Families and links as R's ``gaussian()``, ``binomial()``, ``poisson()``, ``Gamma()``
and MASS's ``negative.binomial(theta)``.

Every fit has a family, the Gaussian one included (as lme4, where an
``lmerMod`` answers ``family()`` with ``gaussian()``): fitted values,
predictions on the link or response scale, residuals, simulation and the
distribution-specific variance of ICC and R2 all go through it.

Each :class:`Family` carries what penalized IRLS and the Laplace deviance
need: the link and its inverse, ``d mu / d eta``, the variance function,
deviance residuals, the family's ``aic`` term (-2 log-likelihood, with the
saturated-model constants, as R's ``family()$aic``) and R's starting values
(``family$initialize``'s ``mustart``).  The clamps of R's ``make.link`` are
kept so that extreme linear predictors give finite values.

Response checks (:func:`check_response`) name the column and the first
offending rows, as the rest of hierlm's input checks do.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
from scipy import special

from .errors import DataError, HierlmError, where_rows

_EPS = np.finfo(float).eps


def t_logpdf(x, nu, loc=0.0, scale=1.0):
    """Student-t log density in closed form: the same numbers as ``scipy.stats.t.logpdf``
    without its argument checks (about 0.1 ms a call), which cost a fifth of a Student-t
    MAP fit when they ran at every evaluation of the likelihood and the priors."""
    z = (np.asarray(x, dtype=float) - loc) / scale
    return (special.gammaln(0.5 * (nu + 1.0)) - special.gammaln(0.5 * nu) - 0.5 * np.log(nu * np.pi)
            - np.log(scale) - 0.5 * (nu + 1.0) * np.log1p(z * z / nu))


class FamilyError(HierlmError):
    """A family or family/link pair that does not exist."""


@dataclass(frozen=True)
class Link:
    """A link function ``eta = g(mu)`` (R's ``make.link``)."""

    name: str
    linkfun: Callable[[np.ndarray], np.ndarray]
    linkinv: Callable[[np.ndarray], np.ndarray]
    mu_eta: Callable[[np.ndarray], np.ndarray]


_PROBIT_THRESH = -special.ndtri(_EPS)
_CAUCHIT_THRESH = -np.tan(np.pi * (_EPS - 0.5))


def _logit_inv(eta):
    return special.expit(eta)


def _logit_mu_eta(eta):
    # plogis'(eta) = p (1 - p), computed without overflow
    e = np.exp(-np.abs(eta))
    return e / (1.0 + e) ** 2


def _probit_inv(eta):
    return special.ndtr(np.clip(eta, -_PROBIT_THRESH, _PROBIT_THRESH))


def _probit_mu_eta(eta):
    return np.maximum(np.exp(-0.5 * eta * eta) / np.sqrt(2.0 * np.pi), _EPS)


def _cloglog_inv(eta):
    return np.clip(-np.expm1(-np.exp(eta)), _EPS, 1.0 - _EPS)


def _cloglog_mu_eta(eta):
    eta = np.minimum(eta, 700.0)
    return np.maximum(np.exp(eta) * np.exp(-np.exp(eta)), _EPS)


def _cauchit_inv(eta):
    return 0.5 + np.arctan(np.clip(eta, -_CAUCHIT_THRESH, _CAUCHIT_THRESH)) / np.pi


def _cauchit_mu_eta(eta):
    return np.maximum(1.0 / (np.pi * (1.0 + eta * eta)), _EPS)


LINKS = {
    "logit": Link("logit", special.logit, _logit_inv, _logit_mu_eta),
    "probit": Link("probit", special.ndtri, _probit_inv, _probit_mu_eta),
    "cloglog": Link("cloglog", lambda mu: np.log(-np.log1p(-mu)), _cloglog_inv, _cloglog_mu_eta),
    "cauchit": Link("cauchit", lambda mu: np.tan(np.pi * (mu - 0.5)), _cauchit_inv, _cauchit_mu_eta),
    "log": Link("log", np.log, lambda eta: np.maximum(np.exp(eta), _EPS), lambda eta: np.maximum(np.exp(eta), _EPS)),
    "identity": Link("identity", lambda mu: np.asarray(mu, dtype=float), lambda eta: np.asarray(eta, dtype=float),
                     lambda eta: np.ones_like(eta, dtype=float)),
    "sqrt": Link("sqrt", np.sqrt, lambda eta: eta * eta, lambda eta: 2.0 * eta),
    "inverse": Link("inverse", lambda mu: 1.0 / np.asarray(mu, dtype=float),
                    lambda eta: 1.0 / np.asarray(eta, dtype=float), lambda eta: -1.0 / np.asarray(eta, dtype=float) ** 2),
}


class Distribution:
    """What one response distribution contributes (R's ``family()`` object less its link).

    A new family is one subclass: its links (canonical first), variance
    function, deviance residuals, ``aic`` term (-2 log-likelihood given the
    means), R's starting means, the range of its means, simulation and the
    check of its response's support.  Everything else (PIRLS, the Laplace
    deviance, residuals, predictions, summaries) reads it through
    :class:`Family`.
    """

    name = ""
    links: tuple = ()
    #: a free scale parameter sigma (Gaussian; glmer's Gamma)
    has_dispersion = False
    #: parameters the Laplace fit estimates by profiling (positive, searched on the log scale)
    free_params: tuple = ()
    #: the family fit first, whose means start the parameters' search
    base_family: str | None = None
    #: the fit kinds (``Model.fit``'s methods) offered for this family
    fits: tuple = ("laplace", "ml", "map", "nuts")
    #: the posterior variables (besides the mean) its likelihood reads
    posterior_params: tuple = ()
    #: the name of its one family parameter in Bayesian fits, with brms's Gamma(0.01, 0.01)
    #: prior (the negative binomial's and Gamma's ``shape``, the beta's ``phi``); None: none
    param_prior: str | None = None

    @property
    def map_params(self) -> tuple:
        """The parameters a likelihood-based posterior (MAP) carries besides the mean and the
        random effects: those the Laplace fit estimates (:attr:`free_params`), and Gamma's
        shape, which glmer leaves out of its criterion."""
        return self.free_params

    def likelihood(self, family: "Family", sigma: float) -> "Family":
        """The family whose likelihood the MAP maximizes, started from a fit of ``family``
        with residual scale ``sigma``: the family itself (Gamma's and Student's differ)."""
        return family

    #: the MAP's start (a Laplace fit) needs :meth:`likelihood` first, from a Gaussian ML
    #: fit's sigma (the Student-t family: its likelihood has sigma and nu in it)
    scale_from_gaussian = False

    def map_priors(self, priors) -> list:
        """The priors of :attr:`map_params`, in order (the family parameter's, brms's)."""
        return [priors.family_param]

    def sigma(self) -> float:
        """The residual scale a posterior fit reports (:attr:`has_dispersion` families)."""
        raise FamilyError(f"the {self.name} family has no residual scale")

    def draw_logpdf(self, y, mean, trials, wt, **params):
        """Log-likelihood of each observation given posterior draws of the mean (and of
        :attr:`posterior_params`, broadcast against it), as the PyMC model defines it."""
        raise FamilyError(f"the {self.name} log-likelihood of posterior draws is not available")

    def draw_rvs(self, mean, trials, wt, rng, **params):
        """A new response for each posterior draw (brms's ``posterior_predict``)."""
        raise FamilyError(f"posterior predictions of a {self.name} model are not available")

    def __init__(self):
        #: extra parameters, as shown by ``Family``'s repr (negative binomial: theta)
        self.params: dict = {}

    def start_params(self, y, mu, wt) -> dict:
        """Starting values of :attr:`free_params` given the base family's fitted means."""
        return {}

    def base(self, family: "Family", y, wt) -> "Family":
        """The family fit first, whose means start the parameters' search (the negative
        binomial's: Poisson)."""
        return Family(self.base_family, family.link)

    def variance(self, mu):
        raise NotImplementedError

    def dev_resid(self, y, mu, wt):
        raise NotImplementedError

    def aic_constant(self, y, ntrials, wt):
        """The part of each row's ``aic`` term that does not depend on mu (0: none)."""
        return np.zeros(np.shape(y))

    def aic(self, y, ntrials, mu, wt, const) -> float:
        raise NotImplementedError

    def mustart(self, y, wt, ntrials):
        return y + 0.1

    def valid_mu(self, mu) -> bool:
        return bool(np.all(np.isfinite(mu)) and np.all(mu > 0))

    def simulate(self, mu, wt, ntrials, rng, sigma):
        raise FamilyError(f"simulating a {self.name} response from the means alone is not available")

    def cdf_bounds(self, y, mu, ntrials, sigma):
        """``(F(y-), F(y))`` of each observation at its fitted mean (equal for a continuous
        family): what randomized quantile residuals draw between."""
        raise FamilyError(f"the {self.name} distribution function at the fitted means is not available")

    #: ``dev_resid`` gives R's squared deviance residuals (False: only -2 log f, up to a constant)
    deviance_residuals = True
    #: the Laplace fit estimates :attr:`free_params` jointly with theta and beta and takes the
    #: fixed effects' covariance from the Hessian over all of them, as glmmTMB (True), or
    #: profiles them and takes the Hessian at their estimates, as glmer.nb (False)
    joint_params = False

    def working(self, y, mu, mu_eta, wt):
        """PIRLS's working weights ``wt mu_eta^2 / V(mu)`` and residuals ``(y - mu) / mu_eta``
        (R's IRLS): the score and expected information of an exponential family."""
        with np.errstate(divide="ignore", invalid="ignore"):
            return wt * mu_eta * mu_eta / self.variance(mu), (y - mu) / mu_eta

    def observed_weights(self, y, mu, mu_eta, d2mu, wt):
        """Weights of the Laplace approximation's Hessian when they are not PIRLS's
        (None: lme4's, the expected information)."""
        return None

    #: the link names a latent distribution and the fit's "means" are the linear predictor
    #: itself (the ordinal family: its probabilities come from :meth:`probs`)
    eta_is_mean = False

    # How a jointly estimated family parameter meets the optimizer (:attr:`joint_params`):
    # ``pack`` gives free reals for the search, ``natural`` the coordinates of the Hessian
    # the covariances come from.  One positive parameter: its log, for both.
    def pack(self, params: dict) -> np.ndarray:
        """The family's parameters (:attr:`map_params`) as free reals for the joint search."""
        return np.log([float(params[k]) for k in self.map_params])

    def unpack(self, x) -> dict:
        return {k: float(np.exp(v)) for k, v in zip(self.map_params, np.atleast_1d(x))}

    def natural(self, params: dict) -> np.ndarray:
        """The coordinates of the parameters in the fit's Hessian."""
        return self.pack(params)

    def from_natural(self, x) -> dict:
        return self.unpack(x)

    def check(self, y, user_wt, design, rows, lhs):
        """Validate the response; return ``(y, wt, ntrials)`` (see :func:`check_response`)."""
        n = y.shape[0]
        return y, user_wt, np.ones(n)


class _Gaussian(Distribution):
    name, links, has_dispersion = "gaussian", ("identity",), True
    fits = ("reml", "ml", "map", "nuts", "imh")

    def variance(self, mu):
        return np.ones_like(np.asarray(mu, dtype=float))

    def dev_resid(self, y, mu, wt):
        return wt * (y - mu) ** 2

    def valid_mu(self, mu) -> bool:
        return bool(np.all(np.isfinite(mu)))

    posterior_params = ("sigma",)

    def simulate(self, mu, wt, ntrials, rng, sigma):
        return mu + sigma / np.sqrt(wt) * rng.standard_normal(np.shape(mu))

    def cdf_bounds(self, y, mu, ntrials, sigma):
        from scipy import stats

        f = stats.norm.cdf(y, mu, sigma)
        return f, f

    def draw_logpdf(self, y, mean, trials, wt, sigma):
        from scipy import stats

        return stats.norm.logpdf(y, mean, sigma / np.sqrt(wt))  # prior weights: residual SD sigma / sqrt(w)

    def draw_rvs(self, mean, trials, wt, rng, sigma):
        return mean + sigma / np.sqrt(wt) * rng.standard_normal(np.shape(mean))

    def check(self, y, user_wt, design, rows, lhs):
        # a zero weight is a row with infinite residual variance: lme4's deviance is then -Inf
        bad = np.flatnonzero(user_wt == 0)
        if bad.size:
            raise DataError(f"weights of a linear mixed model must be positive; zero in {where_rows(rows, bad)}: "
                            "drop those rows (a zero-weight row carries no information)")
        return y, user_wt, np.ones(y.shape[0])


class _Binomial(Distribution):
    name, links = "binomial", ("logit", "probit", "cloglog", "cauchit", "log")

    def variance(self, mu):
        return mu * (1.0 - mu)

    def dev_resid(self, y, mu, wt):
        return 2.0 * wt * (special.xlogy(y, y / mu) + special.xlogy(1.0 - y, (1.0 - y) / (1.0 - mu)))

    @staticmethod
    def _trials(y, ntrials, wt):
        m = ntrials if np.any(ntrials > 1) else wt
        scale = np.where(m > 0, wt / np.where(m > 0, m, 1.0), 0.0)
        return np.round(m * y), np.round(m), scale

    def aic_constant(self, y, ntrials, wt):
        k, mm, scale = self._trials(y, ntrials, wt)
        return scale * (special.gammaln(mm + 1) - special.gammaln(k + 1) - special.gammaln(mm - k + 1))

    def aic(self, y, ntrials, mu, wt, const) -> float:
        k, mm, scale = self._trials(y, ntrials, wt)
        return float(-2.0 * (const + scale * (special.xlogy(k, mu) + special.xlog1py(mm - k, -mu))).sum())

    def mustart(self, y, wt, ntrials):
        m = ntrials if np.any(ntrials > 1) else wt
        return (m * y + 0.5) / (m + 1.0)

    def valid_mu(self, mu) -> bool:
        return bool(np.all(np.isfinite(mu)) and np.all((mu > 0) & (mu < 1)))

    def simulate(self, mu, wt, ntrials, rng, sigma):
        m = np.round(ntrials if np.any(ntrials > 1) else wt).astype(np.int64)
        draws = rng.binomial(np.maximum(m, 0), np.clip(mu, 0.0, 1.0))
        return np.where(m > 0, draws / np.where(m > 0, m, 1), 0.0)

    def cdf_bounds(self, y, mu, ntrials, sigma):
        from scipy import stats

        n = np.round(np.asarray(ntrials, dtype=float))
        k = np.round(y * n)
        return stats.binom.cdf(k - 1, n, mu), stats.binom.cdf(k, n, mu)

    def draw_logpdf(self, y, mean, trials, wt):  # y: successes out of trials, as the PyMC model observes
        from scipy import stats

        return stats.binom.logpmf(y, trials, mean)

    def draw_rvs(self, mean, trials, wt, rng):
        return rng.binomial(trials, mean).astype(float)

    def check(self, y, user_wt, design, rows, lhs):
        n = y.shape[0]
        if design.counts is not None:
            parts = design.formula.response_parts
            for j, expr in enumerate(parts):
                col = design.counts[:, j]
                bad = np.flatnonzero(col < 0)
                if bad.size:
                    hint = " (successes > trials?)" if j == 1 else ""
                    raise DataError(f"cbind() column {expr!r} has negative counts{hint} in {where_rows(rows, bad)}")
                bad = np.flatnonzero(np.abs(col - np.round(col)) > 1e-7)
                if bad.size:
                    raise DataError(
                        f"cbind() column {expr!r} has non-integer counts in {where_rows(rows, bad)}; "
                        "cbind(successes, failures) takes whole numbers (for proportions use the "
                        "proportion as response with weights=)")
            total = design.counts.sum(axis=1)
            return y, user_wt * total, total
        bad = np.flatnonzero((y < 0) | (y > 1))
        if bad.size:
            hint = " (successes > trials?)" if design.weights is not None and np.any(y > 1) else ""
            raise DataError(
                f"the binomial response {lhs!r} must lie in [0, 1] (a 0/1 outcome or a proportion with "
                f"weights=); it is outside in {where_rows(rows, bad)}{hint}. For counts of successes write "
                "cbind(successes, failures)")
        succ = y * user_wt
        bad = np.flatnonzero(np.abs(succ - np.round(succ)) > 1e-3)
        if bad.size:
            import warnings

            warnings.warn(f"non-integer #successes in a binomial glm! ({lhs!r} times weights, "
                          f"{where_rows(rows, bad)})", UserWarning, stacklevel=7)
        return y, user_wt, np.ones(n)


def _check_counts(y, rows, lhs, what: str) -> None:
    bad = np.flatnonzero(y < 0)
    if bad.size:
        raise DataError(f"the {what} response {lhs!r} must be a count >= 0; it is negative in {where_rows(rows, bad)}")
    bad = np.flatnonzero(np.abs(y - np.round(y)) > 1e-7)
    if bad.size:
        raise DataError(
            f"the {what} response {lhs!r} must be a whole-number count; it is not in {where_rows(rows, bad)}. "
            "For rates use the count as response with offset(log(exposure))")


class _Poisson(Distribution):
    name, links = "poisson", ("log", "identity", "sqrt")

    def variance(self, mu):
        return np.asarray(mu, dtype=float)

    def dev_resid(self, y, mu, wt):
        return 2.0 * wt * (special.xlogy(y, y / mu) - (y - mu))

    def aic_constant(self, y, ntrials, wt):
        return -wt * special.gammaln(y + 1.0)

    def aic(self, y, ntrials, mu, wt, const) -> float:
        return float(-2.0 * (const + wt * (special.xlogy(y, mu) - mu)).sum())

    def simulate(self, mu, wt, ntrials, rng, sigma):
        return rng.poisson(mu).astype(float)

    def cdf_bounds(self, y, mu, ntrials, sigma):
        from scipy import stats

        k = np.round(y)
        return stats.poisson.cdf(k - 1, mu), stats.poisson.cdf(k, mu)

    def draw_logpdf(self, y, mean, trials, wt):
        from scipy import stats

        return stats.poisson.logpmf(y, mean)

    def draw_rvs(self, mean, trials, wt, rng):
        return rng.poisson(mean).astype(float)

    def check(self, y, user_wt, design, rows, lhs):
        _check_counts(y, rows, lhs, "Poisson")
        return y, user_wt, np.ones(y.shape[0])


def _ml_on_log_scale(nll, lo: float, hi: float) -> float:
    """The positive parameter minimizing ``nll(log value)`` over ``[lo, hi]`` (Brent)."""
    from scipy import optimize

    res = optimize.minimize_scalar(nll, bounds=(lo, hi), method="bounded", options={"xatol": 1e-8})
    return float(np.exp(res.x))


class _NegativeBinomial(Distribution):
    """NB2 with shape theta: variance ``mu + mu^2 / theta`` (MASS's
    ``negative.binomial(theta)``, lme4's ``glmer.nb``, glmmTMB's ``nbinom2``)."""

    name, links = "negbinomial", ("log", "sqrt", "identity")
    free_params, base_family = ("theta",), "poisson"

    def __init__(self, theta: float = 1.0):
        theta = float(theta)
        if not np.isfinite(theta) or theta <= 0:
            raise FamilyError(f"the negative binomial shape theta must be a positive number, not {theta!r}")
        self.theta = theta
        self.params = {"theta": theta}

    def variance(self, mu):
        return mu + mu * mu / self.theta

    def dev_resid(self, y, mu, wt):
        th = self.theta
        return 2.0 * wt * (special.xlogy(y, y / mu) - (y + th) * np.log((y + th) / (mu + th)))

    def aic_constant(self, y, ntrials, wt):
        th = self.theta
        return wt * (special.gammaln(th + y) - special.gammaln(th) - special.gammaln(y + 1.0))

    def aic(self, y, ntrials, mu, wt, const) -> float:
        # -2 sum(wt * dnbinom(y, size = theta, mu = mu, log = TRUE)), as MASS's negative.binomial()$aic
        th = self.theta
        ll = const + wt * (th * np.log(th / (th + mu)) + special.xlogy(y, mu / (th + mu)))
        return float(-2.0 * ll.sum())

    def mustart(self, y, wt, ntrials):
        return y + (y == 0) / 6.0  # MASS's negative.binomial()$initialize

    def start_params(self, y, mu, wt) -> dict:
        """MASS's ``theta.ml``: the shape's maximum likelihood given the means (as lme4's
        ``glmer.nb`` starts from the Poisson fit's)."""
        def nll(log_th):
            th = np.exp(log_th)
            return -np.sum(wt * (special.gammaln(th + y) - special.gammaln(th) + th * np.log(th / (th + mu))
                                 + special.xlogy(y, mu / (th + mu))))

        m = np.average((y / mu - 1.0) ** 2, weights=wt)  # MASS's moment start: n / sum((y / mu - 1)^2)
        lo = np.log(1.0 / max(m, 1e-8)) - 10.0
        return {"theta": _ml_on_log_scale(nll, lo, lo + 20.0)}

    def simulate(self, mu, wt, ntrials, rng, sigma):
        th = self.theta
        return rng.negative_binomial(th, th / (th + np.asarray(mu, dtype=float))).astype(float)

    def cdf_bounds(self, y, mu, ntrials, sigma):
        from scipy import stats

        k, p = np.round(y), self.theta / (self.theta + mu)
        return stats.nbinom.cdf(k - 1, self.theta, p), stats.nbinom.cdf(k, self.theta, p)

    posterior_params = ("shape",)
    param_prior = "shape"

    def draw_logpdf(self, y, mean, trials, wt, shape):
        from scipy import stats

        return stats.nbinom.logpmf(y, shape, shape / (shape + mean))

    def draw_rvs(self, mean, trials, wt, rng, shape):
        return rng.negative_binomial(shape, shape / (shape + mean)).astype(float)

    def check(self, y, user_wt, design, rows, lhs):
        _check_counts(y, rows, lhs, "negative binomial")
        return y, user_wt, np.ones(y.shape[0])


class _Gamma(Distribution):
    """Gamma with dispersion (R's ``Gamma(link)``): variance function ``mu^2``;
    its ``aic`` takes the dispersion as ``deviance / sum(wt)``, as R's.

    With a ``shape`` it is the Gamma likelihood itself (glmmTMB's ``Gamma``, brms's
    ``Gamma``): variance ``mu^2 / shape``, deviance residuals scaled by the shape (-2 times
    the log-likelihood ratio), the exact log-likelihood and, as glmmTMB's Laplace
    approximation, the observed information of the random effects.  That is the family a
    MAP fit carries (:meth:`likelihood`); glmer's fit has no shape in its criterion and
    estimates the dispersion after the fit.
    """

    name, links, has_dispersion = "gamma", ("inverse", "log", "identity"), True
    map_params = ("shape",)

    def __init__(self, shape: float | None = None):
        if shape is not None:
            shape = float(shape)
            if not np.isfinite(shape) or shape <= 0:
                raise FamilyError(f"the Gamma shape must be a positive number, not {shape!r}")
        self.shape = shape
        self.params = {} if shape is None else {"shape": shape}

    def likelihood(self, family, sigma):
        """Gamma with shape ``1 / sigma^2`` (glmer's dispersion estimate) as the MAP's start."""
        return family if self.shape is not None else family.with_params(shape=1.0 / sigma**2)

    def sigma(self) -> float:
        """glmmTMB's and brms's sigma of a Gamma model: ``1 / sqrt(shape)``, the coefficient of
        variation."""
        return 1.0 / np.sqrt(self.shape)

    def variance(self, mu):
        return mu * mu if self.shape is None else mu * mu / self.shape

    def dev_resid(self, y, mu, wt):
        d = -2.0 * wt * (np.log(np.where(y == 0, 1.0, y / mu)) - (y - mu) / mu)
        return d if self.shape is None else self.shape * d

    def aic(self, y, ntrials, mu, wt, const) -> float:
        if self.shape is None:
            disp = self.dev_resid(y, mu, wt).sum() / wt.sum()
            shape = 1.0 / disp
        else:
            shape = self.shape
        ll = wt * (shape * np.log(shape / mu) + (shape - 1.0) * np.log(y) - shape * y / mu - special.gammaln(shape))
        # R's Gamma()$aic adds 2 (its scale parameter); the likelihood with a shape is exact
        return float(-2.0 * ll.sum() + (2.0 if self.shape is None else 0.0))

    def observed_weights(self, y, mu, mu_eta, d2mu, wt):
        """``-d^2 log f / d eta^2`` of each row (with a shape; None: glmer's expected
        information): ``shape [(2 y / mu^3 - 1 / mu^2) mu_eta^2 - (y - mu) / mu^2 mu'']``."""
        if self.shape is None:
            return None
        return wt * self.shape * ((2.0 * y / mu - 1.0) * mu_eta * mu_eta - (y - mu) * d2mu) / (mu * mu)

    def mustart(self, y, wt, ntrials):
        return np.asarray(y, dtype=float)

    def simulate(self, mu, wt, ntrials, rng, sigma):
        # R's Gamma()$simulate: shape 1 / dispersion (sigma^2 here), per-row weights scale it
        shape = wt / sigma**2
        return rng.gamma(shape, np.asarray(mu, dtype=float) / shape)

    def cdf_bounds(self, y, mu, ntrials, sigma):
        from scipy import stats

        shape = 1.0 / sigma**2
        f = stats.gamma.cdf(y, shape, scale=mu / shape)
        return f, f

    posterior_params = ("shape",)
    param_prior = "shape"

    def draw_logpdf(self, y, mean, trials, wt, shape):
        from scipy import stats

        return stats.gamma.logpdf(y, shape, scale=mean / shape)

    def draw_rvs(self, mean, trials, wt, rng, shape):
        return rng.gamma(shape, mean / shape)

    def check(self, y, user_wt, design, rows, lhs):
        bad = np.flatnonzero(~(y > 0))
        if bad.size:
            raise DataError(f"the Gamma response {lhs!r} must be positive; it is not in {where_rows(rows, bad)} "
                            "(a Gamma model has no zeros: model zeros separately, or use a Tweedie or hurdle model)")
        return y, user_wt, np.ones(y.shape[0])


def _trigamma_scalar(x):  # pragma: no cover  (compiled by numba)
    if not x > 0.0:
        return np.nan
    acc = 0.0
    while x < 10.0:  # psi'(x) = psi'(x + 1) + 1 / x^2
        acc += 1.0 / (x * x)
        x += 1.0
    z = 1.0 / (x * x)
    # asymptotic series: 1/x + 1/(2 x^2) + sum_k B_2k / x^(2k+1)
    s = z * (1.0 / 6 - z * (1.0 / 30 - z * (1.0 / 42 - z * (1.0 / 30 - z * (5.0 / 66 - z * (691.0 / 2730
                                                                                       - z * 7.0 / 6))))))
    return acc + 1.0 / x + 0.5 * z + s / x


_TRIGAMMA = None


def trigamma(x):
    """psi'(x), elementwise.  scipy's ``polygamma(1, x)`` goes through the Hurwitz zeta
    function (0.25 us a value) and took 60% of a beta GLMM fit; this recurrence plus
    asymptotic series, compiled once by numba (imported only here, when a beta model is
    fit), is ten times faster and agrees with scipy to 2e-15 relative (tested)."""
    global _TRIGAMMA
    if _TRIGAMMA is None:
        import numba

        _TRIGAMMA = numba.vectorize(["float64(float64)"], cache=True)(_trigamma_scalar)
    return _TRIGAMMA(np.asarray(x, dtype=float))


class _Beta(Distribution):
    """Beta with mean mu and precision phi: ``y ~ Beta(mu phi, (1 - mu) phi)``, variance
    ``mu (1 - mu) / (1 + phi)`` (glmmTMB's ``beta_family()``, brms's ``Beta``).

    Unlike the exponential families above, the mean's score is not ``(y - mu) / V(mu)``:
    it is ``phi (y* - mu*)`` with ``y* = logit(y)`` and ``mu* = digamma(mu phi) -
    digamma((1 - mu) phi)`` (Ferrari & Cribari-Neto 2004), so PIRLS takes its working
    weights and residuals from :meth:`working` (Fisher scoring on the beta likelihood),
    and the Laplace approximation uses the observed information of the random effects
    (:meth:`observed_weights`), as glmmTMB's (TMB's) does.
    """

    name, links = "beta", ("logit", "probit", "cloglog")
    free_params, base_family = ("phi",), "beta"
    posterior_params = ("phi",)
    param_prior = "phi"
    joint_params = True  # the reference is glmmTMB
    #: deviance residuals are not defined here (no closed-form saturated model):
    #: ``dev_resid`` is -2 log-density, which PIRLS and the Laplace deviance need
    deviance_residuals = False

    def __init__(self, phi: float = 1.0):
        phi = float(phi)
        if not np.isfinite(phi) or phi <= 0:
            raise FamilyError(f"the beta precision phi must be a positive number, not {phi!r}")
        self.phi = phi
        self.params = {"phi": phi}

    def variance(self, mu):
        return mu * (1.0 - mu) / (1.0 + self.phi)

    def _logpdf(self, y, mu):
        a, b = mu * self.phi, (1.0 - mu) * self.phi
        return (special.gammaln(self.phi) - special.gammaln(a) - special.gammaln(b)
                + (a - 1.0) * np.log(y) + (b - 1.0) * np.log1p(-y))

    def dev_resid(self, y, mu, wt):
        return -2.0 * wt * self._logpdf(y, mu)

    def aic(self, y, ntrials, mu, wt, const) -> float:
        return float(-2.0 * (wt * self._logpdf(y, mu)).sum())

    def mustart(self, y, wt, ntrials):
        return np.asarray(y, dtype=float)

    def valid_mu(self, mu) -> bool:
        return bool(np.all(np.isfinite(mu)) and np.all((mu > 0) & (mu < 1)))

    def working(self, y, mu, mu_eta, wt):
        """PIRLS's working weights and residuals: the expected information of eta and
        the score over it, ``w = wt phi^2 (psi'(mu phi) + psi'((1 - mu) phi)) mu_eta^2``,
        ``res = wt phi (y* - mu*) mu_eta / w``."""
        phi = self.phi
        a, b = mu * phi, (1.0 - mu) * phi
        info_mu = phi * phi * (trigamma(a) + trigamma(b))
        w = wt * info_mu * mu_eta * mu_eta
        score = wt * phi * (np.log(y) - np.log1p(-y) - special.digamma(a) + special.digamma(b)) * mu_eta
        return w, score / w

    def observed_weights(self, y, mu, mu_eta, d2mu, wt):
        """``-d^2 log f / d eta^2`` of each row: the expected information less the
        score times the link's curvature (zero in expectation)."""
        phi = self.phi
        a, b = mu * phi, (1.0 - mu) * phi
        info_mu = phi * phi * (trigamma(a) + trigamma(b))
        dl_dmu = phi * (np.log(y) - np.log1p(-y) - special.digamma(a) + special.digamma(b))
        return wt * (info_mu * mu_eta * mu_eta - dl_dmu * d2mu)

    def start_params(self, y, mu, wt) -> dict:
        """The precision's maximum likelihood given the means."""
        def nll(log_phi):
            return -float((wt * _Beta(float(np.exp(log_phi)))._logpdf(y, mu)).sum())

        return {"phi": _ml_on_log_scale(nll, np.log(1e-3), np.log(1e6))}

    def simulate(self, mu, wt, ntrials, rng, sigma):
        mu = np.asarray(mu, dtype=float)
        return rng.beta(mu * self.phi, (1.0 - mu) * self.phi)

    def draw_logpdf(self, y, mean, trials, wt, phi):
        from scipy import stats

        return stats.beta.logpdf(y, mean * phi, (1.0 - mean) * phi)

    def draw_rvs(self, mean, trials, wt, rng, phi):
        return rng.beta(mean * phi, (1.0 - mean) * phi)

    def cdf_bounds(self, y, mu, ntrials, sigma):
        from scipy import stats

        f = stats.beta.cdf(y, mu * self.phi, (1.0 - mu) * self.phi)
        return f, f

    def check(self, y, user_wt, design, rows, lhs):
        bad = np.flatnonzero(~((y > 0) & (y < 1)))
        if bad.size:
            edge = np.isin(y[bad], (0.0, 1.0))
            what = ("exactly 0 or 1" if edge.all() else "outside (0, 1)")
            raise DataError(
                f"the beta response {lhs!r} must lie strictly between 0 and 1; it is {what} in "
                f"{where_rows(rows, bad)}. For exact 0s and 1s: squeeze the response, "
                "(y * (n - 1) + 0.5) / n with n the number of rows (Smithson & Verkuilen 2006), or use a "
                "zero-one-inflated beta model (brms's zero_one_inflated_beta); for counts out of a total "
                "use family='binomial' with cbind(successes, failures)")
        return y, user_wt, np.ones(y.shape[0])


class _Student(_Gaussian):
    """Student-t errors around the mean (brms's ``student``): location mu, scale sigma and
    degrees of freedom nu, a robust linear mixed model.  Bayesian fits only (NUTS and MAP),
    as in brms: lme4 has no such family.

    Without parameters (a NUTS fit: sigma and nu are in the draws) the mean, its variance
    function and residuals are the Gaussian's.  With ``sigma`` and ``nu`` it is the t
    likelihood itself, which a MAP fit maximizes with the random effects integrated out by
    the Laplace approximation (glmmTMB's ``t_family``): PIRLS with Newton's weights (see
    :meth:`working`), deviance residuals ``(nu + 1) log(1 + r^2 / (nu sigma^2))``, the exact
    log-likelihood and the observed information of the random effects.
    """

    name = "student"
    fits = ("map", "nuts")  # brms's student family; lme4 has none
    posterior_params = ("sigma", "nu")
    map_params = ("sigma", "nu")
    scale_from_gaussian = True
    #: where the MAP's search starts nu: brms's prior Gamma(2, 0.1) has its mode at 10
    NU_START = 10.0

    def __init__(self, sigma: float | None = None, nu: float | None = None):
        if (sigma is None) != (nu is None):
            raise FamilyError("a Student-t family takes both sigma and nu, or neither")
        for name, v in (("sigma", sigma), ("nu", nu)):
            if v is not None and not (np.isfinite(v) and v > 0):
                raise FamilyError(f"the Student-t {name} must be a positive number, not {v!r}")
        self.scale = None if sigma is None else float(sigma)
        self.nu = None if nu is None else float(nu)
        self.params = {} if sigma is None else {"sigma": self.scale, "nu": self.nu}

    def likelihood(self, family, sigma):
        """The t likelihood with the Gaussian fit's sigma and nu = :attr:`NU_START`."""
        return family if self.params else family.with_params(sigma=float(sigma), nu=self.NU_START)

    def map_priors(self, priors) -> list:
        return [priors.sigma, priors.nu]

    def sigma(self) -> float:
        return self.scale

    def variance(self, mu):
        # Pearson residuals r / sigma with parameters (the scale, not the t's variance, which
        # is infinite for nu <= 2)
        one = np.ones_like(np.asarray(mu, dtype=float))
        return one if self.scale is None else self.scale**2 * one

    def working(self, y, mu, mu_eta, wt):
        """PIRLS weights and residuals ``score / weight`` of the t location.  The weights are
        the observed information ``(nu + 1) (c - r^2) / (c + r^2)^2`` (c = nu sigma^2: Newton's
        step, quadratic near the mode) where it is at least a tenth of the EM weight
        ``(nu + 1) / (c + r^2)``, and that tenth for outlying rows, whose observed information
        is small or negative.  Any positive weights have the conditional mode as their fixed
        point; the EM weights alone take dozens of iterations to get there."""
        if self.scale is None:
            return super().working(y, mu, mu_eta, wt)
        r, c = y - mu, self.nu * self.scale**2
        em = (self.nu + 1.0) / (c + r * r)
        w = np.maximum(em * (c - r * r) / (c + r * r), 0.1 * em)
        return wt * mu_eta * mu_eta * w, em * r / (w * mu_eta)

    def observed_weights(self, y, mu, mu_eta, d2mu, wt):
        """``-d^2 log f / d eta^2``: ``(nu + 1) (nu sigma^2 - r^2) / (nu sigma^2 + r^2)^2
        mu_eta^2`` less the score times the link's curvature (None without parameters)."""
        if self.scale is None:
            return None
        r, c = y - mu, self.nu * self.scale**2
        score = (self.nu + 1.0) * r / (c + r * r)
        return wt * ((self.nu + 1.0) * (c - r * r) / (c + r * r) ** 2 * mu_eta * mu_eta - score * d2mu)

    def dev_resid(self, y, mu, wt):
        if self.scale is None:
            return super().dev_resid(y, mu, wt)
        return wt * (self.nu + 1.0) * np.log1p((y - mu) ** 2 / (self.nu * self.scale**2))

    def aic(self, y, ntrials, mu, wt, const) -> float:
        return float(-2.0 * np.sum(wt * t_logpdf(y, self.nu, mu, self.scale)))

    def draw_logpdf(self, y, mean, trials, wt, sigma, nu):
        from scipy import stats

        return stats.t.logpdf(y, nu, mean, sigma)

    def draw_rvs(self, mean, trials, wt, rng, sigma, nu):
        return mean + sigma * rng.standard_t(nu, size=np.shape(mean))

    def simulate(self, mu, wt, ntrials, rng, sigma):
        if self.nu is None:
            raise FamilyError("a Student-t response needs nu, which only the posterior draws have: use "
                              "fit.posterior_predict()")
        return mu + sigma * rng.standard_t(self.nu, size=np.shape(mu))

    def cdf_bounds(self, y, mu, ntrials, sigma):
        if self.nu is None:
            raise FamilyError("the Student-t distribution function needs nu, which only the posterior draws have")
        from scipy import stats

        f = stats.t.cdf(y, self.nu, mu, sigma)
        return f, f

    def check(self, y, user_wt, design, rows, lhs):
        if design.weights is not None:
            raise DataError("a Student-t model does not take prior weights (weights=)")
        return y, user_wt, np.ones(y.shape[0])


def _latent(link: str):
    """The latent distribution of a cumulative link: ``(F, dens, F^-1)``, where ``dens(x)``
    gives the density and its derivative ``(f, f')`` in one pass (0 at +-inf), and
    ``F(-x) = 1 - F(x)`` (both are symmetric)."""
    if link == "logit":
        def dens(x):
            e = special.expit(x)
            f = e * (1.0 - e)
            return f, f * (1.0 - 2.0 * e)

        return special.expit, dens, special.logit

    def dens(x):
        f = np.exp(-0.5 * x * x) / np.sqrt(2.0 * np.pi)
        with np.errstate(invalid="ignore"):
            return f, np.where(np.isfinite(x), -x * f, 0.0)

    return special.ndtr, dens, special.ndtri


class _Ordinal(Distribution):
    r"""Cumulative link model for an ordered response with K categories (ordinal's
    ``clmm``, brms's ``cumulative``): ``P(Y <= k) = F(alpha_k - eta)``, k = 1..K-1, with
    ordered thresholds alpha and F the logistic (``logit``) or normal (``probit``)
    distribution function.  The thresholds take the intercept's place.

    The linear predictor is the model's "mean" here: the link names F, and the fit's
    means are eta itself.  PIRLS steps are Newton steps on the exact log-likelihood
    ``log(F(alpha_y - eta) - F(alpha_{y-1} - eta))`` (concave in eta for both links),
    whose observed information is also what the Laplace approximation uses, as clmm's.
    The thresholds are estimated jointly with theta and beta (:attr:`joint_params`).
    The response holds category codes 0..K-1 (the design's ``response_levels`` name them).
    """

    name, links = "ordinal", ("logit", "probit")
    free_params, base_family = ("cutpoints",), "ordinal"
    joint_params = True
    deviance_residuals = False  # -2 log-likelihood only, as for the beta family
    eta_is_mean = True
    fits = ("laplace", "map", "nuts")
    posterior_params = ("cutpoints",)

    def __init__(self, cutpoints=(-1.0, 1.0), link: str = "logit"):
        a = np.atleast_1d(np.asarray(cutpoints, dtype=float))
        if a.ndim != 1 or a.size < 1 or not np.all(np.isfinite(a)) or np.any(np.diff(a) <= 0):
            raise FamilyError(f"the ordinal thresholds (cutpoints) must be increasing finite numbers, not "
                              f"{np.asarray(cutpoints).tolist()}")
        self.cutpoints = a
        self.link = link
        self.F, self.dens, self.Finv = _latent(link)
        self.params = {"cutpoints": tuple(float(v) for v in a)}

    @property
    def ncat(self) -> int:
        return self.cutpoints.size + 1

    def _bounds(self, y, eta):
        """Lower and upper threshold less eta for each row's category (+-inf at the ends)."""
        k = np.asarray(y, dtype=int)
        a = np.concatenate([[-np.inf], self.cutpoints, [np.inf]])
        return a[k] - eta, a[k + 1] - eta

    def _prob(self, lo, hi):
        # F(hi) - F(lo), by the upper tails F(-lo) - F(-hi) where both are above 0 (no
        # cancellation near 1): the sign s picks the form, two evaluations of F
        s = np.where(lo > 0, -1.0, 1.0)
        return s * (self.F(s * hi) - self.F(s * lo))

    def probs(self, eta) -> np.ndarray:
        """The (n, K) category probabilities at the linear predictor ``eta``."""
        eta = np.asarray(eta, dtype=float)[:, None]
        a = np.concatenate([[-np.inf], self.cutpoints, [np.inf]])
        return self._prob(a[None, :-1] - eta, a[None, 1:] - eta)

    def _logp(self, y, eta):
        """log p of each row's category."""
        return np.log(self._prob(*self._bounds(y, eta)))

    def _derivs(self, y, eta):
        """log p, d log p / d eta and -d^2 log p / d eta^2 of each row."""
        lo, hi = self._bounds(y, eta)
        p = self._prob(lo, hi)
        fl, dl = self.dens(lo)
        fh, dh = self.dens(hi)
        g = (fh - fl) / p
        return np.log(p), -g, g * g - (dh - dl) / p

    def variance(self, mu):
        raise FamilyError("an ordinal response has no variance function, so no Pearson residuals; its "
                          "randomized quantile residuals are in fit.plot('diagnostics')")

    def dev_resid(self, y, mu, wt):
        return -2.0 * wt * self._logp(y, mu)

    def aic(self, y, ntrials, mu, wt, const) -> float:
        return float(-2.0 * (wt * self._logp(y, mu)).sum())

    def mustart(self, y, wt, ntrials):
        return np.zeros(np.shape(y))

    def valid_mu(self, mu) -> bool:
        return bool(np.all(np.isfinite(mu)))

    def working(self, y, mu, mu_eta, wt):
        """Newton's weights and working residuals in eta: the observed information
        ``-d^2 log p / d eta^2`` and ``score / information``."""
        _, score, info = self._derivs(y, mu)
        return wt * info, score / info

    def observed_weights(self, y, mu, mu_eta, d2mu, wt):
        return wt * self._derivs(y, mu)[2]

    def start_params(self, y, mu, wt) -> dict:
        """The thresholds' maximum likelihood given the linear predictor ``mu`` (eta)."""
        from scipy import optimize

        k = np.asarray(y, dtype=int)
        x0 = _pack_increasing(self._proportion_thresholds(k, wt, 1e-6) + np.average(mu, weights=wt))

        def nll(x):
            try:
                d = _Ordinal(_unpack_increasing(x), self.link)
            except FamilyError:
                return np.inf
            return -float((wt * d._logp(k, mu)).sum())

        res = optimize.minimize(nll, x0, method="Nelder-Mead", options={"xatol": 1e-8, "fatol": 1e-10,
                                                                        "maxiter": 20000})
        return self.unpack(res.x)

    def base(self, family, y, wt):
        """The thresholds of the cumulative proportions (eta = 0) start the fit."""
        a = self._proportion_thresholds(np.asarray(y, dtype=int), wt, 1e-4)
        return family.with_params(cutpoints=tuple(a))

    def _proportion_thresholds(self, k: np.ndarray, wt, clip: float) -> np.ndarray:
        """``F^-1`` of the data's cumulative proportions (clipped to ``[clip, 1 - clip]``), the
        thresholds at eta = 0; 1e-3 apart per step so that tied ones stay increasing.  The
        categories are the codes' (the fit's K, whatever the family's default thresholds)."""
        cum = np.cumsum(np.bincount(k, weights=wt, minlength=int(k.max()) + 1))[:-1] / np.sum(wt)
        return self.Finv(np.clip(cum, clip, 1 - clip)) + 1e-3 * np.arange(cum.size)

    def pack(self, params: dict) -> np.ndarray:
        """The thresholds as free reals for the optimizer: alpha_1, log(alpha_k - alpha_{k-1})."""
        return _pack_increasing(np.asarray(params["cutpoints"], dtype=float))

    def unpack(self, x) -> dict:
        return {"cutpoints": tuple(float(v) for v in _unpack_increasing(x))}

    def natural(self, params: dict) -> np.ndarray:
        """The thresholds themselves (the coordinates of the fit's Hessian, as clmm's)."""
        return np.asarray(params["cutpoints"], dtype=float)

    def from_natural(self, x) -> dict:
        return {"cutpoints": tuple(float(v) for v in x)}

    def draw_probs(self, eta, cutpoints):
        """Category probabilities for posterior draws: ``eta (..., n)`` and the draws'
        thresholds ``cutpoints (..., 1, K-1)`` (a row axis of 1, as the other families'
        parameters come) -> ``(..., n, K)``."""
        c = np.asarray(cutpoints, dtype=float)
        e = np.asarray(eta, dtype=float)[..., None]
        inf = np.full(c.shape[:-1] + (1,), np.inf)
        a = np.concatenate([-inf, c, inf], axis=-1)
        return self._prob(a[..., :-1] - e, a[..., 1:] - e)

    def draw_logpdf(self, y, mean, trials, wt, cutpoints):
        P = self.draw_probs(mean, cutpoints)
        k = np.asarray(y, dtype=int)
        return np.log(np.take_along_axis(P, np.broadcast_to(k[:, None], P.shape[:-1] + (1,)), axis=-1)[..., 0])

    def draw_rvs(self, mean, trials, wt, rng, cutpoints):
        P = self.draw_probs(mean, cutpoints)
        u = rng.random(P.shape[:-1])[..., None]
        return (np.cumsum(P, axis=-1) < u).sum(axis=-1)

    def simulate(self, mu, wt, ntrials, rng, sigma):
        P = self.probs(mu)
        u = rng.random(P.shape[0])[:, None]
        return (np.cumsum(P, axis=1) < u).sum(axis=1).astype(float)

    def cdf_bounds(self, y, mu, ntrials, sigma):
        lo, hi = self._bounds(y, mu)
        F = self.F
        return np.where(np.isfinite(lo), F(lo), 0.0), np.where(np.isfinite(hi), F(hi), 1.0)

    def check(self, y, user_wt, design, rows, lhs):
        levels = getattr(design, "response_levels", None)
        if levels is None or len(levels) < 2:
            raise DataError(f"the ordinal response {lhs!r} needs at least two categories")
        return y, user_wt, np.ones(y.shape[0])


def _pack_increasing(a: np.ndarray) -> np.ndarray:
    return np.concatenate([a[:1], np.log(np.diff(a))])


def _unpack_increasing(x) -> np.ndarray:
    x = np.asarray(x, dtype=float)
    return np.concatenate([x[:1], x[0] + np.cumsum(np.exp(x[1:]))])


DISTRIBUTIONS = {d.name: d for d in (_Gaussian, _Binomial, _Poisson, _NegativeBinomial, _Gamma, _Beta,
                                        _Student, _Ordinal)}
#: other spellings of the family names (R's and glmmTMB's)
ALIASES = {"student_t": "student", "studentt": "student", "t": "student", "nbinom2": "negbinomial",
           "negative.binomial": "negbinomial", "negative_binomial": "negbinomial", "nb": "negbinomial",
           "neg_binomial": "negbinomial", "beta_family": "beta", "cumulative": "ordinal", "clmm": "ordinal"}


class Family:
    """A family with its link (R's ``gaussian()``, ``binomial(link)``, ``poisson(link)``,
    ``Gamma(link)``, MASS's ``negative.binomial(theta)``).

    Parameters
    ----------
    name : {"gaussian", "binomial", "poisson", "negbinomial", "gamma", "beta", "student", "ordinal"}
        R's spellings are accepted too (``Gamma``, ``nbinom2``, ``beta_family``, ``cumulative``).
    link : str, optional
        Default: the canonical link (``identity``, ``logit``, ``log``, ``log``, ``inverse``,
        ``logit``, ``identity``, ``logit``).  For ``ordinal`` the link names the latent
        variable's distribution (``logit``, ``probit``); its linear predictor is used as is.
    **params
        The family's parameters (``theta`` of the negative binomial, ``phi`` of the beta,
        the increasing ``cutpoints`` of an ordinal family).

    Attributes
    ----------
    name, link : str
    has_dispersion : bool
        The family has a free scale parameter sigma (Gaussian, Gamma);
        binomial, Poisson and negative binomial have none (sigma is 1).
    dist : Distribution
        The distribution-specific part.
    """

    def __init__(self, name: str, link: str | None = None, **params):
        key = str(name).lower()
        key = ALIASES.get(key, key)
        if key not in DISTRIBUTIONS:
            raise FamilyError(f"family {name!r} is not supported; available: {', '.join(DISTRIBUTIONS)}")
        cls = DISTRIBUTIONS[key]
        link = cls.links[0] if link is None else str(link).lower()
        if link not in cls.links:
            raise FamilyError(
                f"link {link!r} is not available for family {key!r}; use one of "
                f"{', '.join(cls.links)} (as R's {key}(link = ...))"
            )
        try:
            self.dist = cls(link=link, **params) if cls.eta_is_mean else cls(**params)
        except TypeError:
            raise FamilyError(f"family {key!r} takes no parameter(s) {sorted(params)}") from None
        self.name = key
        self.link = link
        lk = LINKS["identity" if cls.eta_is_mean else link]
        self.linkfun, self.linkinv, self.mu_eta = lk.linkfun, lk.linkinv, lk.mu_eta
        self.canonical = link == cls.links[0]
        self.has_dispersion = cls.has_dispersion

    def __reduce__(self):
        # rebuilt from its name, link and parameters: the link functions are not pickled
        return (_family_from, (self.name, self.link, self.params))

    @property
    def params(self) -> dict:
        """The family's parameters (``{"theta": ...}`` for the negative binomial)."""
        return dict(self.dist.params)

    def with_params(self, **params) -> "Family":
        """The same family and link with other parameter values."""
        return Family(self.name, self.link, **{**self.params, **params})

    @property
    def is_gaussian(self) -> bool:
        """The linear mixed model (identity link, Gaussian noise)."""
        return self.name == "gaussian"

    def __eq__(self, other) -> bool:
        return isinstance(other, Family) and (self.name, self.link, self.params) == (other.name, other.link,
                                                                                   other.params)

    def __hash__(self) -> int:
        return hash((self.name, self.link, tuple(sorted(self.params.items()))))

    def __repr__(self) -> str:
        extra = "".join(f", {k}=({', '.join(f'{x:.6g}' for x in v)})" if isinstance(v, tuple) else f", {k}={v:.6g}"
                        for k, v in self.params.items())
        return f"Family({self.name!r}, link={self.link!r}{extra})"

    @property
    def a_name(self) -> str:
        """The family's name with its article, for messages ("a beta", "an ordinal")."""
        return ("an " if self.name[0] in "aeiou" else "a ") + self.name

    @property
    def r_name(self) -> str:
        """As lme4 prints it: ``binomial``, ``Gamma``, ``Negative Binomial(1.234)``."""
        if self.name == "negbinomial":
            return f"Negative Binomial({self.dist.theta:.4g})"
        if self.name == "ordinal":
            return f"cumulative({self.link})"
        return {"gamma": "Gamma"}.get(self.name, self.name)

    # ---- variance, deviance, log-likelihood ---------------------------
    def variance(self, mu: np.ndarray) -> np.ndarray:
        """Variance function V(mu) (R's ``family()$variance``)."""
        return self.dist.variance(mu)

    def dev_resid(self, y: np.ndarray, mu: np.ndarray, wt: np.ndarray) -> np.ndarray:
        """Squared deviance residuals (R's ``family()$dev.resids``)."""
        with np.errstate(divide="ignore", invalid="ignore"):
            return self.dist.dev_resid(y, mu, wt)

    def working(self, y, mu, mu_eta, wt):
        """PIRLS's working weights and working residuals at the means ``mu``."""
        return self.dist.working(y, mu, mu_eta, wt)

    def observed_weights(self, y, eta, wt):
        """Observed-information weights of the Laplace approximation at the linear
        predictor ``eta`` (with offset), or None where the family uses PIRLS's."""
        mu, d = self.linkinv(eta), self.mu_eta(eta)
        if self.link == "logit":
            d2 = d * (1.0 - 2.0 * mu)
        else:  # the link's second derivative by central differences (error ~1e-8 relative)
            h = 1e-4 * (1.0 + np.abs(eta))
            d2 = (self.mu_eta(eta + h) - self.mu_eta(eta - h)) / (2.0 * h)
        return self.dist.observed_weights(y, mu, d, d2, wt)

    def aic_constant(self, y: np.ndarray, ntrials: np.ndarray, wt: np.ndarray) -> np.ndarray:
        """The part of each row's ``aic`` term that does not depend on mu."""
        return self.dist.aic_constant(y, ntrials, wt)

    def aic(self, y, ntrials, mu, wt, const=None) -> float:
        """-2 log-likelihood of the data given mu (R's ``family()$aic``; for
        binomial, Poisson and negative binomial without the 2 p term)."""
        if const is None:
            const = self.aic_constant(y, ntrials, wt)
        with np.errstate(divide="ignore", invalid="ignore"):
            return self.dist.aic(y, ntrials, mu, wt, const)

    def mustart(self, y: np.ndarray, wt: np.ndarray, ntrials: np.ndarray) -> np.ndarray:
        """R's starting means (``family$initialize``)."""
        return self.dist.mustart(y, wt, ntrials)

    def mean(self, eta: np.ndarray) -> np.ndarray:
        """The response's mean at the linear predictor: ``g^{-1}(eta)``; for an ordinal
        family the expected category number, categories numbered 1..K (what the
        teaching plots draw on the response scale)."""
        if self.dist.eta_is_mean:
            P = self.dist.probs(np.asarray(eta, dtype=float))
            return P @ np.arange(1.0, P.shape[1] + 1.0)
        return self.linkinv(eta)

    def valid_eta(self, eta: np.ndarray) -> bool:
        """False where the linear predictor leaves the link's domain (R's ``valideta``)."""
        if self.link in ("sqrt",):
            return bool(np.all(np.isfinite(eta)) and np.all(eta > 0))
        if self.link == "inverse":
            return bool(np.all(np.isfinite(eta)) and np.all(eta != 0))
        return bool(np.all(np.isfinite(eta)))

    def valid_mu(self, mu: np.ndarray) -> bool:
        """False where a mean leaves the family's range (R's ``validmu``)."""
        return self.dist.valid_mu(mu)

    def cdf_bounds(self, y, mu, ntrials, sigma: float = 1.0):
        """``(F(y-), F(y))`` at the fitted means (randomized quantile residuals)."""
        return self.dist.cdf_bounds(np.asarray(y, dtype=float), np.asarray(mu, dtype=float), ntrials, sigma)

    # ---- simulation -----------------------------------------------------
    def simulate(self, mu: np.ndarray, wt: np.ndarray, ntrials: np.ndarray, rng, sigma: float = 1.0) -> np.ndarray:
        """One draw of the response on the model's scale (proportions for
        binomial, counts for Poisson and negative binomial, ``mu + sigma /
        sqrt(wt) * N(0, 1)`` for Gaussian, Gamma with shape ``wt / sigma^2``),
        as R's ``family()$simulate``."""
        return self.dist.simulate(mu, wt, ntrials, rng, sigma)


def _family_from(name: str, link: str, params: dict) -> Family:
    """:class:`Family` from its pickled state (``Family.__reduce__``)."""
    return Family(name, link, **params)


def make_family(family, link: str | None = None) -> Family:
    """A :class:`Family` from a name (``"gaussian"``, ``"binomial"``, ``"poisson"``) or a Family."""
    if isinstance(family, Family):
        if link is not None and link != family.link:
            return Family(family.name, link, **family.params)
        return family
    if not isinstance(family, str):
        raise FamilyError(f"family must be a name such as 'gaussian', 'binomial' or 'poisson', "
                          f"not {type(family).__name__}")
    return Family(family, link)


def check_response(design, family: Family) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Validate the response for ``family``; return ``(y, wt, ntrials)``.

    ``y`` is on the scale the family models (proportions for binomial),
    ``wt`` the prior weights (for ``cbind(s, f)``: ``s + f`` times
    ``weights``), ``ntrials`` R's ``n`` (trials per row for ``cbind``, else 1).

    Raises
    ------
    DataError
        Binomial: a response outside [0, 1], non-integer or negative counts in
        ``cbind``; Poisson and negative binomial: negative or non-integer
        counts; Gamma: a response that is not positive; any family: negative
        weights (Gaussian: zero weights too).  The message names the column
        and the first rows.
    """
    rows = design.prepared.rows
    lhs = design.formula.response
    n = design.y.shape[0]
    user_wt = np.ones(n) if design.weights is None else np.asarray(design.weights, dtype=float)
    bad = np.flatnonzero(user_wt < 0)
    if bad.size:
        raise DataError(f"weights must not be negative; negative in {where_rows(rows, bad)}")
    return family.dist.check(np.asarray(design.y, dtype=float), user_wt, design, rows, lhs)
