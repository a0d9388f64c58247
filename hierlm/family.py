"""Families and links as R's ``gaussian()``, ``binomial()`` and ``poisson()``.

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
}


class Family:
    """A family with its link (R's ``gaussian()``, ``binomial(link)``, ``poisson(link)``).

    Parameters
    ----------
    name : {"gaussian", "binomial", "poisson"}
    link : str, optional
        Default: the canonical link (``identity``, ``logit``, ``log``).

    Attributes
    ----------
    name, link : str
    has_dispersion : bool
        The family has a free scale parameter sigma (Gaussian); binomial and
        Poisson have none (sigma is 1).
    """

    #: links available for each family, canonical first (the Gaussian one:
    #: identity only, the linear mixed model)
    ALLOWED = {
        "gaussian": ("identity",),
        "binomial": ("logit", "probit", "cloglog", "cauchit", "log"),
        "poisson": ("log", "identity", "sqrt"),
    }

    def __init__(self, name: str, link: str | None = None):
        key = str(name).lower()
        if key not in self.ALLOWED:
            raise FamilyError(
                f"family {name!r} is not supported; available: {', '.join(self.ALLOWED)}"
            )
        link = self.ALLOWED[key][0] if link is None else str(link).lower()
        if link not in self.ALLOWED[key]:
            raise FamilyError(
                f"link {link!r} is not available for family {key!r}; use one of "
                f"{', '.join(self.ALLOWED[key])} (as R's {key}(link = ...))"
            )
        self.name = key
        self.link = link
        lk = LINKS[link]
        self.linkfun, self.linkinv, self.mu_eta = lk.linkfun, lk.linkinv, lk.mu_eta
        self.canonical = link == self.ALLOWED[key][0]
        self.has_dispersion = key == "gaussian"

    @property
    def is_gaussian(self) -> bool:
        """The linear mixed model (identity link, Gaussian noise)."""
        return self.name == "gaussian"

    def __eq__(self, other) -> bool:
        return isinstance(other, Family) and (self.name, self.link) == (other.name, other.link)

    def __hash__(self) -> int:
        return hash((self.name, self.link))

    def __repr__(self) -> str:
        return f"Family({self.name!r}, link={self.link!r})"

    # ---- variance, deviance, log-likelihood ---------------------------
    def variance(self, mu: np.ndarray) -> np.ndarray:
        """Variance function V(mu) (R's ``family()$variance``)."""
        if self.name == "binomial":
            return mu * (1.0 - mu)
        if self.name == "gaussian":
            return np.ones_like(np.asarray(mu, dtype=float))
        return np.asarray(mu, dtype=float)

    def dev_resid(self, y: np.ndarray, mu: np.ndarray, wt: np.ndarray) -> np.ndarray:
        """Squared deviance residuals (R's ``family()$dev.resids``)."""
        with np.errstate(divide="ignore", invalid="ignore"):
            return self._dev_resid(y, mu, wt)

    def _dev_resid(self, y, mu, wt):
        if self.name == "gaussian":
            return wt * (y - mu) ** 2
        if self.name == "binomial":
            return 2.0 * wt * (special.xlogy(y, y / mu) + special.xlogy(1.0 - y, (1.0 - y) / (1.0 - mu)))
        return 2.0 * wt * (special.xlogy(y, y / mu) - (y - mu))

    def aic_constant(self, y: np.ndarray, ntrials: np.ndarray, wt: np.ndarray) -> np.ndarray:
        """The part of each row's ``aic`` term that does not depend on mu."""
        if self.name == "binomial":
            m = ntrials if np.any(ntrials > 1) else wt
            k = np.round(m * y)
            mm = np.round(m)
            scale = np.where(m > 0, wt / np.where(m > 0, m, 1.0), 0.0)
            return scale * (special.gammaln(mm + 1) - special.gammaln(k + 1) - special.gammaln(mm - k + 1))
        return -wt * special.gammaln(y + 1.0)

    def aic(self, y, ntrials, mu, wt, const=None) -> float:
        """-2 log-likelihood of the data given mu (R's ``family()$aic`` without
        the 2 p term): ``-2 sum(wt/m * dbinom(m y, m, mu, log = TRUE))`` with
        m the number of trials, or ``-2 sum(wt * dpois(y, mu, log = TRUE))``."""
        if const is None:
            const = self.aic_constant(y, ntrials, wt)
        if self.name == "binomial":
            m = ntrials if np.any(ntrials > 1) else wt
            k = np.round(m * y)
            mm = np.round(m)
            scale = np.where(m > 0, wt / np.where(m > 0, m, 1.0), 0.0)
            ll = const + scale * (special.xlogy(k, mu) + special.xlog1py(mm - k, -mu))
        else:
            ll = const + wt * (special.xlogy(y, mu) - mu)
        return float(-2.0 * ll.sum())

    def mustart(self, y: np.ndarray, wt: np.ndarray, ntrials: np.ndarray) -> np.ndarray:
        """R's starting means (``family$initialize``)."""
        if self.name == "binomial":
            m = ntrials if np.any(ntrials > 1) else wt
            return (m * y + 0.5) / (m + 1.0)
        return y + 0.1

    def valid_eta(self, eta: np.ndarray) -> bool:
        """False where the linear predictor leaves the link's domain (R's ``valideta``)."""
        if self.link in ("sqrt",):
            return bool(np.all(np.isfinite(eta)) and np.all(eta > 0))
        return bool(np.all(np.isfinite(eta)))

    def valid_mu(self, mu: np.ndarray) -> bool:
        """False where a mean leaves the family's range (R's ``validmu``)."""
        if not np.all(np.isfinite(mu)):
            return False
        if self.name == "binomial":
            return bool(np.all((mu > 0) & (mu < 1)))
        return bool(np.all(mu > 0))

    # ---- simulation -----------------------------------------------------
    def simulate(self, mu: np.ndarray, wt: np.ndarray, ntrials: np.ndarray, rng, sigma: float = 1.0) -> np.ndarray:
        """One draw of the response on the model's scale (proportions for
        binomial, counts for Poisson, ``mu + sigma / sqrt(wt) * N(0, 1)`` for
        Gaussian), as R's ``family()$simulate``."""
        if self.name == "gaussian":
            return mu + sigma / np.sqrt(wt) * rng.standard_normal(np.shape(mu))
        if self.name == "binomial":
            m = np.round(ntrials if np.any(ntrials > 1) else wt).astype(np.int64)
            draws = rng.binomial(np.maximum(m, 0), np.clip(mu, 0.0, 1.0))
            return np.where(m > 0, draws / np.where(m > 0, m, 1), 0.0)
        return rng.poisson(mu).astype(float)


def make_family(family, link: str | None = None) -> Family:
    """A :class:`Family` from a name (``"gaussian"``, ``"binomial"``, ``"poisson"``) or a Family."""
    if isinstance(family, Family):
        if link is not None and link != family.link:
            return Family(family.name, link)
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
        ``cbind``; Poisson: negative or non-integer counts; any family:
        negative weights (Gaussian: zero weights too).  The message names the column and the first rows.
    """
    rows = design.prepared.rows
    lhs = design.formula.response
    n = design.y.shape[0]
    user_wt = np.ones(n) if design.weights is None else np.asarray(design.weights, dtype=float)
    bad = np.flatnonzero(user_wt < 0)
    if bad.size:
        raise DataError(f"weights must not be negative; negative in {where_rows(rows, bad)}")
    if family.name == "gaussian":
        # a zero weight is a row with infinite residual variance: lme4's deviance is then -Inf
        bad = np.flatnonzero(user_wt == 0)
        if bad.size:
            raise DataError(f"weights of a linear mixed model must be positive; zero in {where_rows(rows, bad)}: "
                            "drop those rows (a zero-weight row carries no information)")
        return np.asarray(design.y, dtype=float), user_wt, np.ones(n)
    y = np.asarray(design.y, dtype=float)
    if family.name == "binomial":
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
                          f"{where_rows(rows, bad)})", UserWarning, stacklevel=6)
        return y, user_wt, np.ones(n)
    # poisson
    bad = np.flatnonzero(y < 0)
    if bad.size:
        raise DataError(f"the Poisson response {lhs!r} must be a count >= 0; it is negative in {where_rows(rows, bad)}")
    bad = np.flatnonzero(np.abs(y - np.round(y)) > 1e-7)
    if bad.size:
        raise DataError(
            f"the Poisson response {lhs!r} must be a whole-number count; it is not in {where_rows(rows, bad)}. "
            "For rates use the count as response with offset(log(exposure))")
    return y, user_wt, np.ones(n)
