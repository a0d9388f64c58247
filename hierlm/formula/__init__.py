"""lme4 formula grammar on top of formulaic: random-effects bars, ``||``, ``/``,
and the terms of each model matrix as structures (:mod:`.terms`)."""

from .parse import ParsedFormula, RandomTerm, parse_formula
from .terms import Factor, Term, TermList, parse_expression, parse_terms

__all__ = ["Factor", "ParsedFormula", "RandomTerm", "Term", "TermList", "parse_expression", "parse_formula",
           "parse_terms"]
