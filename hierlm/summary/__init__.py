"""Printed summaries (lme4's layout) and R's number formatting.

:mod:`hierlm.rformat` holds R's number formatting (``format``,
``format.pval``, ``printCoefmat``'s starred table), :mod:`.format` the blocks
every summary shares; :mod:`.text` the
summary of each fit kind.
"""

from ..rformat import format_pval, format_r_vector, text_table
from .format import coefmat_lines, format_r
from .text import LMMSummary, Summary, short_repr, short_summary, summarize

__all__ = ["LMMSummary", "Summary", "coefmat_lines", "format_pval", "format_r", "format_r_vector", "short_repr", "short_summary",
           "summarize", "text_table"]
