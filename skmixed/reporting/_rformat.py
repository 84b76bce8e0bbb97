"""R's number formatting, so that summaries print the figures lme4 prints.

lme4's ``print.summary.merMod`` formats with R's ``format``, ``round``,
``zapsmall``, ``format.pval``, ``abbreviate`` and ``print.default``; each of
them is reproduced here, following R 4.2 (``src/main/format.c``,
``src/library/base/R``, ``src/library/stats/R/lm.R``), the version the lme4
references were produced with.  Everything returns strings: nothing here
changes a number beyond R's rounding for display.
"""

import math

import numpy as np

KP_MAX = 22  # R's format.c: powers of ten it tabulates
PAGE_WIDTH = 80  # R's getOption("width")
DOUBLE_EPS = float(np.finfo(float).eps)


def r_round(x, digits):
    """R's ``round(x, digits)`` (digits rounded half up, as R does)."""
    digits = math.floor(digits + 0.5)
    if not np.isfinite(x):
        return float(x)
    return float(round(float(x), digits))


def zapsmall(values, digits):
    """R 4.2's ``zapsmall``: round to ``digits`` significant digits of the max.

    ``round(x, digits - log10(max|x|))``, where ``round`` rounds its
    (fractional) number of decimals half up.
    """
    values = [float(v) for v in values]
    finite = [abs(v) for v in values if np.isfinite(v)]
    mx = max(finite) if finite else 0.0
    decimals = max(0.0, digits - math.log10(mx)) if mx > 0 else digits
    return [r_round(v, decimals) for v in values]


def _scientific(x, digits):
    """R's ``scientific()``: (negative, exponent, significant digits, widens).

    The number of significant digits (at most ``digits``) that represent
    ``x`` to ``digits`` significant digits, trailing zeros dropped.
    """
    if x == 0:
        return False, 0, 1, False
    mantissa, exponent = f"{abs(x):.{digits - 1}e}".split("e")
    kpower = int(exponent)
    nsig = max(1, len(mantissa.replace(".", "").rstrip("0")))
    # Scientific notation can round up where fixed notation (with the
    # decimals that ``digits`` allows) does not: 9996 is 1e+04 to 3 digits
    # but prints as 9996.  Then the fixed number has one digit fewer.
    decimals = min(max(digits - kpower, 0), KP_MAX)
    fuzz = 0.5 / 10.0**decimals
    widens = 0 < kpower <= KP_MAX and abs(x) < 10.0**kpower - fuzz
    return x < 0, kpower, nsig, widens


def _special(x):
    """How R prints a value that is not a finite number (None is NA)."""
    if x is None:
        return "NA"
    if math.isnan(x):
        return "NaN"
    return "Inf" if x > 0 else "-Inf"


def format_real(values, digits=7, nsmall=0):
    """R's ``format(x, digits = digits, nsmall = nsmall)`` of a numeric vector.

    One common format for all the values (R's ``formatReal``): fixed
    notation with the number of decimals that shows every value to
    ``digits`` significant digits, unless scientific notation is narrower.
    The strings are right-justified to a common width.  ``None`` prints as
    ``NA``, NaN as ``NaN``.
    """
    # -0.0 prints as 0, as in R.
    values = [None if v is None else float(v) + 0.0 for v in values]
    finite = [v for v in values if v is not None and np.isfinite(v)]
    if not finite:
        return _pad_right([_special(v) for v in values])
    neg = any(v < 0 for v in finite)
    rgt = mxsl = mxns = mxl = -(10**9)
    mnl = 10**9
    for v in finite:
        neg_i, kpower, nsig, widens = _scientific(v, digits)
        left = kpower + 1 - widens
        sleft = neg_i + (1 if left <= 0 else left)
        rgt = max(rgt, nsig - left)
        mxl, mnl = max(mxl, left), min(mnl, left)
        mxsl, mxns = max(mxsl, sleft), max(mxns, nsig)
    if mxl < 0:
        mxsl = 1 + neg
    rgt = max(rgt, 0)
    width_fixed = mxsl + rgt + (rgt != 0)  # sleft counted the signs
    exponent_digits = 2 if (mxl > 100 or mnl <= -99) else 1
    mantissa_digits = mxns - 1
    width_sci = neg + (mantissa_digits > 0) + mantissa_digits + 4 + exponent_digits
    if width_fixed <= width_sci:
        decimals = max(rgt, nsmall)
        spec = f".{decimals}f"
        width = mxsl + decimals + (decimals != 0)
    else:
        spec = f".{mantissa_digits}e"
        width = width_sci
    texts = [
        format(v, spec) if v is not None and np.isfinite(v) else _special(v)
        for v in values
    ]
    # R pads to the width it computed, which a value that rounds up in
    # scientific but not in fixed notation can make one wider than needed.
    return [t.rjust(width) for t in _pad_right(texts)]


def format_single(x, digits=7):
    """R's ``format(x)`` (or ``cat(x)``) of one number: no padding."""
    return format_real([x], digits)[0].strip()


def _pad_right(texts):
    width = max((len(t) for t in texts), default=0)
    return [t.rjust(width) for t in texts]


def _pad_left(texts):
    width = max((len(t) for t in texts), default=0)
    return [t.ljust(width) for t in texts]


def format_pval(pvalues, digits, eps=DOUBLE_EPS):
    """R's ``format.pval``: fixed or scientific, ``< eps`` below ``eps``."""
    pvalues = [float(p) for p in pvalues]
    out = [None] * len(pvalues)
    small = [i for i, p in enumerate(pvalues) if p < eps]
    rest = [i for i, p in enumerate(pvalues) if not p < eps]
    if rest:
        expo = {
            i: math.floor(math.log10(pvalues[i] if pvalues[i] > 0 else 1e-50))
            for i in rest
        }
        fixed = [i for i in rest if expo[i] >= -3 or (expo[i] == -4 and digits > 1)]
        sci = [i for i in rest if i not in set(fixed)]
        for group in (fixed, sci):
            if group:
                for i, text in zip(
                    group, format_real([pvalues[i] for i in group], digits)
                ):
                    out[i] = text
    if small:
        digits = max(1, digits - 2)
        if rest:
            width = max(len(out[i]) for i in rest)
            if digits > 1 and digits + 6 > width:
                digits = max(1, width - 7)
            sep = "" if digits == 1 and width <= 6 else " "
        else:
            sep = "" if digits == 1 else " "
        text = "<" + sep + format_single(eps, digits)
        for i in small:
            out[i] = text
    return out


def significance_stars(pvalues):
    """R's ``symnum`` codes of p-values: ``***`` ``**`` ``*`` ``.`` or blank."""
    stars = []
    for p in pvalues:
        if not np.isfinite(p):
            stars.append("")
        elif p <= 0.001:
            stars.append("***")
        elif p <= 0.01:
            stars.append("**")
        elif p <= 0.05:
            stars.append("*")
        elif p <= 0.1:
            stars.append(".")
        else:
            stars.append(" ")
    return _pad_left(stars)


SIGNIF_LEGEND = (
    "Signif. codes:  0 \u2018***\u2019 0.001 \u2018**\u2019 0.01 \u2018*\u2019 "
    "0.05 \u2018.\u2019 0.1 \u2018 \u2019 1"
)


def coefficient_cells(estimates, digits=4):
    """The number columns of R's ``printCoefmat`` (estimate, SE, df, t, p).

    ``estimates`` is a list of columns: the first ``k`` (estimate, standard
    error, and the degrees of freedom when present) share one format, after
    rounding to ``digits`` minus the digits before the point of the
    smallest; the t values round to ``digits - 1`` decimals; the p-values go
    through :func:`format_pval`.  Returns the formatted columns and the
    significance stars.
    """
    *coef_columns, t_values, p_values = [np.asarray(c, dtype=float) for c in estimates]
    block = np.column_stack(coef_columns)
    nonzero = np.abs(block[np.isfinite(block) & (block != 0)])
    digmin = 1 + (np.floor(np.log10(nonzero.min())) if nonzero.size else 0)
    decimals = max(1, digits - int(digmin))
    values = block.ravel(order="F")
    texts = format_real([r_round(v, decimals) for v in values], digits)
    # R: entries that print as zero although they are not get fewer digits.
    wrong = [
        i
        for i, (v, t) in enumerate(zip(values, texts))
        if np.isfinite(v) and (v == 0) != (float(t) == 0)
    ]
    fixed = format_real([values[i] for i in wrong], max(1, digits - 1))
    for i, t in zip(wrong, fixed):
        texts[i] = t
    n = block.shape[0]
    columns = [texts[j * n : (j + 1) * n] for j in range(block.shape[1])]
    dig_tst = max(1, min(5, digits - 1))
    columns.append(format_real([r_round(t, dig_tst) for t in t_values], digits))
    columns.append(format_pval(p_values, dig_tst))
    return columns, significance_stars(p_values)


_VOWELS = set("aeiou")


def _abbreviate_one(name, minlength):
    """R's ``abbreviate`` of one string (C ``stripchars``, use.classes)."""
    chars = list(name.strip())
    if len(chars) <= minlength:
        return "".join(chars)

    def is_space(i):
        return chars[i].isspace()

    def done():
        return len(chars) - sum(c.isspace() for c in chars[1:]) <= minlength

    def first_char(i):
        return is_space(i - 1)

    def last_char(i):
        return not is_space(i - 1) and (i + 1 == len(chars) or is_space(i + 1))

    rules = [
        lambda i: chars[i] in _VOWELS and last_char(i),
        lambda i: chars[i] in _VOWELS and not first_char(i),
        lambda i: chars[i].islower() and last_char(i),
        lambda i: chars[i].islower() and not first_char(i),
        lambda i: not first_char(i) and not is_space(i),
    ]
    for rule in rules:
        if done():
            break
        for i in range(len(chars) - 1, 0, -1):
            if i < len(chars) and rule(i):
                del chars[i]
            if done():
                break
    if len(chars) > minlength:
        chars = [chars[0]] + [c for c in chars[1:] if not c.isspace()]
    return "".join(chars)


def abbreviate(names, minlength):
    """R's ``abbreviate(names, minlength)``: lengthen until unique."""
    names = [str(n).strip() for n in names]
    unique = list(dict.fromkeys(names))
    short = {n: _abbreviate_one(n, minlength) for n in unique}
    length = minlength
    while True:
        values = list(short.values())
        clash = {v for v in values if values.count(v) > 1}
        if not clash or length > max(len(n) for n in unique):
            break
        length += 1
        for n in unique:
            if short[n] in clash:
                short[n] = _abbreviate_one(n, length)
    return [short[n] for n in names]


def named_vector_lines(names, texts, width=PAGE_WIDTH):
    """R's print of a named vector: names over values, common width."""
    w = max(len(t) for t in list(names) + list(texts))
    per_line = max(1, width // (w + 1))
    lines = []
    for start in range(0, len(texts), per_line):
        chunk = slice(start, start + per_line)
        lines.append("".join(n.rjust(w) + " " for n in names[chunk]))
        lines.append("".join(t.rjust(w) + " " for t in texts[chunk]))
    return lines


def matrix_lines(row_names, col_names, columns, right=True, width=PAGE_WIDTH):
    """R's ``print.default`` of a character matrix (``quote = FALSE``).

    Row names left-justified; each column as wide as its widest entry or
    label, after one space, right- or left-justified; columns that do not
    fit in ``width`` continue in a further block, as R wraps them.
    """
    label_width = max((len(r) for r in row_names), default=0)
    widths = [
        max([len(c)] + [len(t) for t in col]) for c, col in zip(col_names, columns)
    ]
    justify = str.rjust if right else str.ljust
    blocks, start = [], 0
    while start < len(columns):
        stop, used = start, label_width
        while stop < len(columns) and (
            stop == start or used + 1 + widths[stop] <= width
        ):
            used += 1 + widths[stop]
            stop += 1
        blocks.append(range(start, stop))
        start = stop
    lines = []
    for block in blocks:
        lines.append(
            " " * label_width
            + "".join(" " + justify(col_names[j], widths[j]) for j in block)
        )
        for i, r in enumerate(row_names):
            lines.append(
                r.ljust(label_width)
                + "".join(" " + justify(columns[j][i], widths[j]) for j in block)
            )
    return lines
