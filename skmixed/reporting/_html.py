"""The summary as HTML for notebooks: lme4's blocks, as tables.

The cells are the strings of the text layout (:mod:`._text`), so both show
the same figures.
"""

from html import escape

from ._rformat import SIGNIF_LEGEND
from ._text import (
    MAX_CORRELATION,
    correlation_cells,
    criteria_cells,
    fixed_cells,
    groups_line,
    random_cells,
    residual_cells,
    title,
)

STYLE = (
    "<style>"
    ".skmixed-summary table{border-collapse:collapse;margin:0.2em 0 0.6em 0}"
    ".skmixed-summary th,.skmixed-summary td{padding:0.1em 0.6em;"
    "font-family:monospace;white-space:pre}"
    ".skmixed-summary td.num{text-align:right}"
    ".skmixed-summary p{margin:0.4em 0 0.1em 0}"
    "</style>"
)


def _table(col_names, columns, row_names=None, numeric_from=0):
    """An HTML table; columns from ``numeric_from`` on are right-aligned."""
    head = "".join(f"<th>{escape(c)}</th>" for c in col_names)
    if row_names is not None:
        head = "<th></th>" + head
    body = []
    for i in range(len(columns[0]) if columns else 0):
        cells = [
            f'<td class="num">{escape(col[i].strip())}</td>'
            if j >= numeric_from
            else f"<td>{escape(col[i].strip())}</td>"
            for j, col in enumerate(columns)
        ]
        if row_names is not None:
            cells.insert(0, f"<th>{escape(row_names[i])}</th>")
        body.append("<tr>" + "".join(cells) + "</tr>")
    return f"<table><tr>{head}</tr>{''.join(body)}</table>"


def render_html(summary):
    """The summary as an HTML fragment (``_repr_html_``)."""
    parts = [
        STYLE,
        '<div class="skmixed-summary">',
        f"<p><b>{escape(title(summary))}</b><br>"
        f"Formula: <code>{escape(summary.formula)}</code></p>",
    ]
    names, texts = criteria_cells(summary)
    if names == ["REML"]:
        parts.append(f"<p>REML criterion at convergence: {escape(texts[0])}</p>")
    else:
        parts.append(_table(names, [[t] for t in texts]))
    names, texts = residual_cells(summary)
    parts.append("<p>Scaled residuals:</p>" + _table(names, [[t] for t in texts]))
    col_names, columns = random_cells(summary)
    parts.append("<p>Random effects:</p>" + _table(col_names, columns, numeric_from=2))
    parts.append(f"<p>{escape(groups_line(summary))}</p>")
    p = len(summary.fixed_effects)
    if p:
        rows, col_names, columns, with_stars = fixed_cells(summary)
        parts.append("<p>Fixed effects:</p>" + _table(col_names, columns, rows))
        if with_stars:
            parts.append(f"<p><small>{escape(SIGNIF_LEGEND)}</small></p>")
    if 1 < p <= MAX_CORRELATION:
        rows, col_names, columns = correlation_cells(summary)
        parts.append(
            "<p>Correlation of Fixed Effects:</p>" + _table(col_names, columns, rows)
        )
    for message in summary.messages:
        parts.append(f"<p><i>{escape(message)}</i></p>".replace("\n", "<br>"))
    parts.append("</div>")
    return "".join(parts)
