"""Linear mixed models by REML or ML (lme4's ``lmer``): the profiled deviance
(:mod:`.deviance`), its optimizer (:mod:`.engine`) and the fit (:mod:`.results`,
entry point :func:`fit_lmm`)."""

from .results import LMMFit, fit_lmm

__all__ = ["LMMFit", "fit_lmm"]
