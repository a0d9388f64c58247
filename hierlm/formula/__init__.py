"""lme4 formula grammar on top of formulaic: random-effects bars, ``||``, ``/``."""

from .parse import ParsedFormula, RandomTerm, parse_formula

__all__ = ["ParsedFormula", "RandomTerm", "parse_formula"]
