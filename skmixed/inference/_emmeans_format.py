"""Text and HTML of marginal means and contrasts, as emmeans prints them.

emmeans 1.8.4's ``print.summary_emm``: numeric columns zapsmall-ed, df
rounded to two decimals, t ratios to three, p-values to four (``<.0001``),
the other numbers to the digits its ``.opt.dig`` finds from ``estimate +- 2
SE``; levels left-justified, ``by`` groups listed as ``b = level:`` blocks.
Formatting only: the numbers come from the result objects.
"""

import numpy as np
import pandas as pd

from ..reporting._rformat import format_real, r_round, zapsmall


def emmeans_cells(labels, blocks, numbers, numeric_labels=()):
    """The cells of emmeans' ``print.summary_emm``, as strings by column.

    ``labels``: the level or contrast columns (left-justified, except the
    ``numeric_labels``, numbers in emmeans' grid, formatted as the
    estimates); ``numbers``:
    the estimate (first), ``SE``, ``df``, bounds, ``t.ratio``, ``p.value``.
    Each numeric column is zapsmall-ed, df rounded to 2 decimals, t to 3, p
    to 4 (``<.0001`` where that is 0); the other columns printed to the
    digits that emmeans' ``.opt.dig`` finds from ``estimate +- 2 SE`` (at
    least 3), as emmeans 1.8.4 prints them.
    """
    numbers = {k: [float(v) for v in vals] for k, vals in numbers.items()}
    numbers = {k: _zapsmall_na(vals) for k, vals in numbers.items()}
    estimate = np.asarray(next(iter(numbers.values())))
    cells = {}
    if "SE" in numbers:
        se = np.asarray(numbers["SE"])
        spread = estimate[:, None] + se[:, None] * np.array([-2.0, 0.0, 2.0])
        digits = max(_opt_digits(row) for row in spread)
    else:
        digits = 4
    for name, vals in numbers.items():
        if name == "df":
            cells[name] = format_real(
                [None if np.isnan(v) else r_round(v, 2) for v in vals], digits
            )
        elif name == "t.ratio":  # format(round(t, 3), nsmall = 3, sci = FALSE)
            cells[name] = _fixed([r_round(v, 3) for v in vals], 3)
        elif name == "p.value":
            text = _fixed([r_round(v, 4) for v in vals], 4)
            cells[name] = ["<.0001" if t.strip() == "0.0000" else t for t in text]
        else:
            cells[name] = format_real(
                [None if np.isnan(v) else v for v in vals], digits
            )
    first = next(iter(numbers))
    cells[first] = [
        "nonEst" if np.isnan(v) else t for v, t in zip(numbers[first], cells[first])
    ]
    labels = {
        k: format_real([float(v) for v in vals], digits)
        if k in numeric_labels
        else [str(v) for v in vals]
        for k, vals in labels.items()
    }
    if blocks is not None:  # the by columns: listed as "b = level:" blocks
        shown = {
            b: format_real([float(v) for v in vals], digits)
            if b in numeric_labels
            else vals
            for b, vals in blocks.items()
        }
        rows = {}
        for i in range(len(estimate)):
            header = ", ".join(f"{b} = {shown[b][i]}" for b in shown)
            rows.setdefault(header, []).append(i)
        blocks = list(rows.items())
    return {**labels, **cells}, set(labels) - set(numeric_labels), blocks


def _fixed(values, decimals):
    """R's ``format(x, nsmall = decimals, sci = FALSE)`` of rounded values."""
    texts = [f"{v:.{decimals}f}" if not np.isnan(v) else "NA" for v in values]
    width = max(len(t) for t in texts)
    return [t.rjust(width) for t in texts]


def _zapsmall_na(values):
    """R's ``zapsmall`` over the values that are not NA."""
    values = np.asarray(values, dtype=float)
    ok = ~np.isnan(values)
    if ok.any():
        values[ok] = zapsmall(values[ok], 7)
    return list(values)


def _opt_digits(x):
    """emmeans' ``.opt.dig``: digits to show an interval's ends apart (3 for
    a non-estimable row: R's ``max(NA, 3, na.rm = TRUE)``)."""
    x = np.asarray(x, dtype=float)
    top = np.max(np.abs(x))
    if not np.isfinite(top) or top == 0:
        return 3
    z = np.array([x.min(), x.max()]) / top
    dz = zapsmall([z[1] - z[0], *z], 8)[0]
    if dz <= 0:
        return 3
    return max(int(r_round(1.51 - np.log10(dz), 0)), 3)


def render_text(cells, footer):
    columns, left, blocks = cells
    n = len(next(iter(columns.values())))
    parts = []
    for header, rows in blocks or [(None, range(n))]:
        lines = [[] for _ in range(len(rows) + 1)]
        for name, vals in columns.items():
            shown = [vals[i] for i in rows]
            width = max(len(name), *(len(v) for v in shown))
            pad = str.ljust if name in left else str.rjust
            lines[0].append(pad(name, width))
            for row, v in enumerate(shown, start=1):
                lines[row].append(pad(v, width))
        table = "\n".join(" " + " ".join(line) for line in lines)
        parts.append(table if header is None else f"{header}:\n{table}")
    return "\n\n".join(parts) + "\n\n" + "\n".join(footer)


def render_html(cells, footer):
    columns, _, blocks = cells
    table = pd.DataFrame({k: [v.strip() for v in vals] for k, vals in columns.items()})
    html = ""
    for header, rows in blocks or [(None, range(len(table)))]:
        if header is not None:
            html += f"<p>{header}:</p>"
        html += table.iloc[list(rows)].to_html(index=False, border=0)
    notes = "".join(f"<p>{line}</p>" for line in footer)
    return f"<div>{html}{notes}</div>"
