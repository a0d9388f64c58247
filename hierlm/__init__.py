"""hierlm: hierarchical (mixed-effects) models with lme4's formulas and numbers.

>>> import hierlm
>>> fit = hierlm.lmer("Reaction ~ Days + (Days | Subject)", hierlm.datasets.load("sleepstudy"))
>>> print(fit.summary())  # doctest: +SKIP

The stages, from the bottom up: ``formula`` -> ``design`` -> ``family``,
``params``, ``optimize`` -> ``fit`` (the base of every fit) -> the engines
``lmm``, ``glmm``, ``bayes`` -> ``inference`` -> ``summary`` -> ``plots`` ->
``model`` and ``cli`` (docs/architecture.md).
"""

from . import datasets
from .errors import ConvergenceWarning, DataError, FormulaError, HierlmError, ModelError, TooLargeError
from .inference.boot import boot_mer, pb_test
from .inference.compare import anova, compare
from .inference.emmeans import emmeans
from .inference.ftest import drop1
from .inference.lmlist import lmlist
from .model import Model, glmer, lmer

__version__ = "0.1.0"

__all__ = [
    "ConvergenceWarning", "DataError", "FormulaError", "HierlmError", "Model", "ModelError",
    "TooLargeError", "anova", "boot_mer", "compare", "datasets", "drop1", "emmeans", "glmer", "lmer", "lmlist",
    "pb_test", "plots",
    "__version__",
]


def __getattr__(name):
    # hierlm.plots is imported on first use (it imports matplotlib only when drawing)
    if name == "plots":
        import importlib

        return importlib.import_module(".plots", __name__)
    raise AttributeError(f"module 'hierlm' has no attribute {name!r}")
