"""ANOVA-like tables that print as R prints them (``print.anova``).

An :class:`AnovaTable` is a DataFrame (index and columns as lmerTest names
them) with a heading; ``str()`` gives R's layout (``printCoefmat`` with
``print.anova``'s choices of which columns to round), notebooks get HTML.
Formatting only: every number is computed before the table is made.
"""

from html import escape

import numpy as np
import pandas as pd

from ..reporting._rformat import (
    SIGNIF_LEGEND,
    format_pval,
    format_real,
    matrix_lines,
    r_round,
    significance_stars,
    zapsmall,
)

DIGITS = 5  # print.anova: max(getOption("digits") - 2, 3)


class AnovaTable(pd.DataFrame):
    """A DataFrame of tests by term (or model) that prints as R's ``anova``.

    The numbers are the frame's; ``heading`` holds the lines R prints above
    the table.  Selections and arithmetic give plain DataFrames.

    Attributes
    ----------
    heading : list of str
        The title lines (``"Type III Analysis of Variance Table with
        Satterthwaite's method"``, and for ``ranova``/``drop1`` the model).
    hypotheses : dict of str to DataFrame
        F tables: each term's hypothesis matrix ``L`` (the test is of
        ``L beta = 0``), one row per contrast, one column per fixed effect
        (lmerTest's ``show_tests``).  Empty for ``ranova``.
    """

    _metadata = ["heading", "hypotheses"]

    def __init__(self, data=None, *args, heading=(), hypotheses=None, **kwargs):
        super().__init__(data, *args, **kwargs)
        self.heading = list(heading)
        self.hypotheses = dict(hypotheses or {})

    @property
    def _constructor(self):
        return pd.DataFrame

    def to_frame(self):
        """The numbers as a plain DataFrame."""
        return pd.DataFrame(self, copy=True)

    def _cells(self):
        return anova_cells(self.to_frame())

    def __str__(self):
        columns, names, stars, legend = self._cells()
        lines = list(self.heading)
        if columns:
            if stars is not None:
                columns = [*columns, stars]
                names = [*names, ""]
            lines += matrix_lines([str(i) for i in self.index], names, columns)
        if legend:
            lines += ["---", SIGNIF_LEGEND]
        return "\n".join(lines)

    def __repr__(self):
        return str(self)

    def _repr_html_(self):
        columns, names, stars, _ = self._cells()
        head = "".join(f"<th>{escape(c)}</th>" for c in ["", *names])
        if stars is not None:
            head += "<th></th>"
        body = []
        for i, row in enumerate(self.index):
            cells = [f"<th>{escape(str(row))}</th>"]
            cells += [
                f'<td style="text-align:right">{escape(c[i].strip())}</td>'
                for c in columns
            ]
            if stars is not None:
                cells.append(f"<td>{escape(stars[i].strip())}</td>")
            body.append("<tr>" + "".join(cells) + "</tr>")
        title = "<br>".join(escape(h) for h in self.heading if h.strip())
        return (
            f'<div class="skmixed-anova"><p><b>{title}</b></p>'
            f'<table style="font-family:monospace"><tr>{head}</tr>'
            f"{''.join(body)}</table></div>"
        )


def anova_cells(frame):
    """R's ``print.anova`` cells: (columns, names, stars or None, legend?).

    As ``printCoefmat`` is called by ``print.anova``: ``* value`` columns
    rounded to ``dig.tst`` decimals, columns ending in ``Df`` formatted as
    they are, the others zapped to ``digits`` significant digits first; a
    last ``Pr(...)`` column through ``format.pval`` with significance stars
    when some p-value is below 0.1; missing values blank.
    """
    names = [str(c) for c in frame.columns]
    if not names or frame.shape[0] == 0:
        return [], names, None, False
    has_p = names[-1].startswith(("Pr(", "P("))
    dig_tst = max(1, min(5, DIGITS - 1))
    columns = []
    for j, name in enumerate(names):
        values = frame.iloc[:, j].to_numpy(dtype=float)
        ok = np.isfinite(values)
        texts = [""] * len(values)
        if has_p and j == len(names) - 1:
            if ok.any():
                for i, t in zip(np.flatnonzero(ok), format_pval(values[ok], dig_tst)):
                    texts[i] = t
            columns.append(_right(texts))
            continue
        shown = values[ok]
        if name.endswith(" value") or name in ("F", "Cp", "Chisq"):
            shown = [r_round(v, dig_tst) for v in shown]
        elif not name.endswith("Df"):
            shown = zapsmall(shown, DIGITS)
        if ok.any():
            formatted = format_real(list(shown), DIGITS)
            for i, t in zip(np.flatnonzero(ok), formatted):
                texts[i] = t
        columns.append(_right(texts))
    stars, legend = None, False
    if has_p:
        p = frame.iloc[:, -1].to_numpy(dtype=float)
        if np.any(p[np.isfinite(p)] < 0.1):
            stars, legend = significance_stars(p), True
    return columns, names, stars, legend


def _right(texts):
    width = max((len(t) for t in texts), default=0)
    return [t.rjust(width) for t in texts]
