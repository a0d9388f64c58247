"""Bayesian fits: PyMC models (non-centered or marginalized), NUTS, MAP.

Only this package imports PyMC, and only when a Bayesian fit is asked for,
so ``import hierlm`` and REML/ML fits stay light.
"""
