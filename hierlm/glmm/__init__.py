"""Generalized linear mixed models (binomial, Poisson) fit as lme4's ``glmer``:
Laplace approximation or adaptive Gauss-Hermite quadrature, conditional
modes by penalized IRLS."""

from .family import Family, FamilyError, make_family
from .fit import fit_glmm
from .results import GLMMFit, Overdispersion

__all__ = ["Family", "FamilyError", "GLMMFit", "Overdispersion", "fit_glmm", "make_family"]
