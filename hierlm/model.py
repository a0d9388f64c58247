"""The user-facing model: a formula on a data frame, fit by one of the engines."""

from __future__ import annotations

import pandas as pd

from .design.build import build_design
from .errors import HierlmError

FAMILIES = ("gaussian",)
METHODS = ("reml", "ml")


class Model:
    """A mixed model: an lme4 formula on a data frame.

    Parameters
    ----------
    formula : str
        lme4 formula, e.g. ``"Reaction ~ Days + (Days | Subject)"``.
    data : pandas.DataFrame
    family : str
        ``"gaussian"`` (the linear mixed model).
    na_action : {"omit", "raise"}
        ``"omit"`` drops rows with missing values in the formula's columns
        (with a warning giving the count), as lme4's ``na.omit``.

    Examples
    --------
    >>> import hierlm
    >>> m = hierlm.Model("Reaction ~ Days + (Days | Subject)", hierlm.datasets.load("sleepstudy"))
    >>> fit = m.fit("reml")
    >>> round(fit.fixef["Days"], 3)
    10.467
    """

    def __init__(self, formula: str, data: pd.DataFrame, family: str = "gaussian", na_action: str = "omit"):
        if family not in FAMILIES:
            raise HierlmError(f"family {family!r} is not supported; available: {', '.join(FAMILIES)}")
        self.formula = formula
        self.family = family
        self.design = build_design(formula, data, na_action=na_action, family=family)
        self.data = data if isinstance(data, pd.DataFrame) else pd.DataFrame(data)
        self.data_name: str | None = None

    def fit(self, method: str = "reml", **control):
        """Fit the model.

        Parameters
        ----------
        method : {"reml", "ml"}
            Restricted or full maximum likelihood.
        **control
            Optimizer settings: ``xtol_abs``, ``ftol_abs``, ``maxeval``,
            ``calc_derivs``, ``check_singular_tol``, ``check_conv_grad_tol``,
            ``start`` (theta).

        Returns
        -------
        LMMFit
        """
        from .lmm.deviance import make_deviance
        from .lmm.fit import check_control, optimize_theta
        from .lmm.results import LMMFit

        key = str(method).lower()
        if key not in METHODS:
            raise HierlmError(f"method must be one of {METHODS}, not {method!r}")
        control = check_control(control)
        dev = make_deviance(self.design)
        reml = key == "reml"
        theta, info = optimize_theta(dev, reml, control)
        return LMMFit(self, dev, theta, reml, info, data_name=self.data_name)

    def __repr__(self) -> str:
        d = self.design
        return (f"Model({self.formula!r}, family={self.family!r}: n={d.n}, "
                f"{d.p} fixed effects, groups {d.groups()})")


def lmer(formula: str, data: pd.DataFrame, reml: bool = True, na_action: str = "omit", **control):
    """Fit a linear mixed model by REML (default) or ML, as lme4's ``lmer``.

    Parameters
    ----------
    formula : str
        lme4 formula.
    data : pandas.DataFrame
    reml : bool
        REML (True) or maximum likelihood (False).
    na_action : {"omit", "raise"}
    **control
        Optimizer settings, see :meth:`Model.fit`.

    Returns
    -------
    LMMFit
    """
    return Model(formula, data, na_action=na_action).fit("reml" if reml else "ml", **control)
