"""Printed summaries (lme4's layout) and R's number formatting.

:mod:`.format` holds R's formatting rules and the blocks every summary
shares (one ``format_pval``, one ``printCoefmat``); :mod:`.text` the
summary of each fit kind.
"""

from .format import coefmat_lines, format_pval, format_r, format_r_vector, text_table
from .text import LMMSummary, Summary, short_repr, summarize

__all__ = ["LMMSummary", "Summary", "coefmat_lines", "format_pval", "format_r", "format_r_vector", "short_repr",
           "summarize", "text_table"]
