"""Bayesian fits: PyMC models (non-centered or marginalized), NUTS, MAP.

Entry points: :func:`fit_map` (the mode of the marginal posterior, random
effects integrated out by the engines), :func:`fit_nuts` (NUTS, on the
engine's marginal posterior or the PyMC model) and :func:`fit_imh`
(independence Metropolis-Hastings on the marginal posterior of big
Gaussian models).
Only :mod:`.backend` and :mod:`.sample` import PyMC, and only when a
posterior is sampled, so ``import hierlm`` and REML/ML fits stay light.
"""

from .imh import fit_imh
from .map import GLMMMAPFit, MAPFit, fit_map
from .results import BayesFit, fit_nuts

__all__ = ["BayesFit", "GLMMMAPFit", "MAPFit", "fit_imh", "fit_map", "fit_nuts"]
