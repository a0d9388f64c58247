"""Generalized linear mixed models (binomial, Poisson) fit as lme4's ``glmer``:
Laplace approximation or adaptive Gauss-Hermite quadrature, conditional
modes by penalized IRLS (:mod:`.pirls`), lme4's two stages (:mod:`.engine`),
the fit (:mod:`.results`, entry point :func:`fit_glmm`)."""

from .results import GLMMFit, Overdispersion, fit_glmm

__all__ = ["GLMMFit", "Overdispersion", "fit_glmm"]
