"""Summaries of fitted models: lme4's printed layout, HTML and DataFrames.

:func:`summarize` (behind :meth:`MixedLinearRegressor.summary`) computes the
numbers; the :class:`Summary` it returns only formats them.
"""

from ._summary import Summary, summarize

__all__ = ["Summary", "summarize"]
