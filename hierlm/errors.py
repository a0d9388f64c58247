"""Exceptions raised by hierlm.

Every error the package raises on bad input derives from :class:`HierlmError`,
itself a :class:`ValueError`, so ``except ValueError`` keeps working for
callers that do not know hierlm.
"""

from __future__ import annotations


def where_rows(rows, bad) -> str:
    """``"k row(s), first at row positions [...]"`` for the error messages
    that point at data rows.

    Parameters
    ----------
    rows : array of int
        Positions in the user's data of the rows the model keeps.
    bad : array of int
        Offending positions among the kept rows.
    """
    return f"{len(bad)} row(s), first at row positions {[int(rows[i]) for i in bad[:5]]}"


class HierlmError(ValueError):
    """Base class of every hierlm input error."""


class FormulaError(HierlmError):
    """A model formula that cannot be parsed or does not describe a mixed model.

    Parameters
    ----------
    message : str
        What is wrong and what to do.
    formula : str, optional
        The formula text; with ``position`` the message shows a caret under it.
    position : int, optional
        0-based character offset of the problem in ``formula``.
    """

    def __init__(self, message: str, formula: str | None = None, position: int | None = None):
        self.formula = formula
        self.position = position
        #: the message on one line (for the command line)
        self.short = message if position is None else f"{message} (at position {position + 1} of '{formula}')"
        if formula is not None and position is not None:
            message = (
                f"{message} (at position {position + 1})\n  {formula}\n  {' ' * position}^"
            )
        super().__init__(message)


class DataError(HierlmError):
    """Data that cannot be used as given: unknown or unusable columns, missing or
    infinite values, empty data."""


class ModelError(HierlmError):
    """A model the data cannot support (e.g. one level per observation)."""


class TooLargeError(ModelError):
    """A model whose fit would need more memory than the machine has; the
    message gives the estimate and what would make the model smaller."""


class ConvergenceWarning(UserWarning):
    """The optimizer stopped somewhere lme4's convergence checks would flag."""
