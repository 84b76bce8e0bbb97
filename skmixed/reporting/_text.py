"""lme4's printed summary, block by block (``print.summary.merMod``).

Each ``*_cells`` function turns one block of a :class:`~._summary.Summary`
into the strings lme4 prints (its digits: ``max(3, getOption("digits") -
3) = 4`` significant digits for most numbers); :func:`render_text` lays
them out as R does, and :mod:`._html` puts the same strings in tables.
"""

import numpy as np

from ._rformat import (
    SIGNIF_LEGEND,
    abbreviate,
    coefficient_cells,
    format_real,
    format_single,
    matrix_lines,
    named_vector_lines,
    r_round,
    zapsmall,
)

DIGITS = 4  # lme4: max(3, getOption("digits") - 3)
MAX_CORRELATION = 12  # lme4's option lme4.summary.cor.max


def title(summary):
    how = "REML" if summary.method == "reml" else "maximum likelihood"
    ddf = "Kenward-Roger's" if summary.ddf == "kenward-roger" else "Satterthwaite's"
    return f"Linear mixed model fit by {how}. t-tests use {ddf} method"


def criteria_cells(summary):
    """REML criterion, or the AIC / BIC / logLik / deviance / df.resid row.

    lme4's ``.prt.aictab``: rounded to one decimal, then formatted together
    (df.resid on its own).
    """
    rounded = [r_round(v, 1) for v in summary.criteria]
    names = list(summary.criteria.index)
    if names == ["REML"]:
        return names, [format_single(rounded[0])]
    texts = format_real(rounded)
    texts[names.index("df.resid")] = format_single(rounded[names.index("df.resid")])
    return names, texts


def residual_cells(summary):
    """Scaled-residual quantiles, ``zapsmall`` to 5 digits, printed to 4."""
    values = zapsmall(summary.residual_quantiles.to_numpy(), DIGITS + 1)
    return list(summary.residual_quantiles.index), format_real(values, DIGITS)


def random_cells(summary):
    """lme4's ``formatVC``: column names and columns of the variance table."""
    blocks = summary.variance_blocks
    groups, names = [], []
    for b in blocks:
        groups += [b.group] + [""] * (len(b.terms) - 1)
        names += list(b.terms)
    variance = format_real(np.concatenate([b.variance for b in blocks]), DIGITS)
    sd = format_real(np.concatenate([b.sd for b in blocks]), DIGITS)
    col_names = ["Groups", "Name", "Variance", "Std.Dev."]
    columns = [groups, names, variance, sd]
    longest = max(len(b.terms) for b in blocks)
    if longest > 1:
        corr_columns = [[] for _ in range(longest - 1)]
        for b in blocks:
            texts = _block_correlations(b, longest)
            for j in range(longest - 1):
                corr_columns[j] += [row[j] for row in texts]
        col_names += ["Corr"] + [""] * (longest - 2)
        columns += corr_columns
    return col_names, columns


def _block_correlations(block, longest):
    """Rows of lower-triangle correlations (2 decimals), padded with blanks."""
    q = len(block.terms)
    rows = [[""] * (longest - 1) for _ in range(q)]
    if block.corr is None:
        return rows
    values = [r_round(v, 2) if np.isfinite(v) else v for v in block.corr.ravel()]
    texts = np.array(format_real(values, nsmall=2)).reshape(q, q)
    for i in range(q):
        for j in range(i):
            rows[i][j] = texts[i, j]
    return rows


def groups_line(summary):
    line = f"Number of obs: {summary.n_obs}"
    if summary.n_groups:
        pairs = "; ".join(f"{name}, {m}" for name, m in summary.n_groups.items())
        line += f", groups:  {pairs}"
    return line


def fixed_cells(summary):
    """lmerTest's coefficient table through R's ``printCoefmat``.

    Returns row names, column names, columns and whether the significance
    legend applies.
    """
    table = summary.fixed_effects
    columns, stars = coefficient_cells(
        [
            table["estimate"],
            table["std_error"],
            table["df"],
            table["t_value"],
            table["p_value"],
        ],
        DIGITS,
    )
    col_names = ["Estimate", "Std. Error", "df", "t value", "Pr(>|t|)"]
    with_stars = bool(np.any(table["p_value"].to_numpy() < 0.1))
    if with_stars:
        col_names.append("")
        columns.append(stars)
    return list(table.index), col_names, columns, with_stars


def correlation_cells(summary):
    """Lower triangle of the fixed-effect correlations, 3 decimals.

    Rows abbreviated to 11 characters and columns to 6, as lme4.
    """
    corr = summary.fixed_effects_corr
    names = [str(n) for n in corr.index]
    p = len(names)
    values = [r_round(v, 3) if np.isfinite(v) else v for v in corr.to_numpy().ravel()]
    texts = np.array(format_real(values, nsmall=3)).reshape(p, p)
    rows = abbreviate(names, 11)[1:]
    col_names = abbreviate(names, 6)[:-1]
    columns = [
        [texts[i, j] if i > j else "" for i in range(1, p)] for j in range(p - 1)
    ]
    return rows, col_names, columns


def render_text(summary):
    """The summary in lme4's printed layout."""
    lines = [title(summary), f"Formula: {summary.formula}", ""]
    names, texts = criteria_cells(summary)
    if names == ["REML"]:
        lines.append(f"REML criterion at convergence: {texts[0]}")
    else:
        lines += named_vector_lines(names, texts)
    lines += ["", "Scaled residuals: "]
    lines += named_vector_lines(*residual_cells(summary))
    lines += ["", "Random effects:"]
    col_names, columns = random_cells(summary)
    lines += matrix_lines([""] * len(columns[0]), col_names, columns, right=False)
    lines.append(groups_line(summary))
    if len(summary.fixed_effects):
        rows, col_names, columns, with_stars = fixed_cells(summary)
        lines += ["", "Fixed effects:"]
        lines += matrix_lines(rows, col_names, columns, right=True)
        if with_stars:
            lines += ["---", SIGNIF_LEGEND]
    p = len(summary.fixed_effects)
    if 1 < p <= MAX_CORRELATION:
        lines += ["", "Correlation of Fixed Effects:"]
        lines += matrix_lines(*correlation_cells(summary), right=False)
    elif p > MAX_CORRELATION:
        lines += [
            "",
            f"Correlation matrix not shown, as p = {p} > {MAX_CORRELATION}: "
            "see fixed_effects_corr.",
        ]
    lines += summary.messages
    return "\n".join(lines)
