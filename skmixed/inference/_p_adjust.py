"""P-value adjustments of a family of t-tests, as emmeans makes them.

``tukey``: the studentized range of ``k`` means, ``ptukey(sqrt(2) |t|, k,
df)`` with emmeans' rounding of the df; ``dunnettx``: emmeans' approximation
of Dunnett's test; ``sidak``, ``bonferroni`` and ``holm`` over the contrasts
of the family (R's ``p.adjust``).  As emmeans, one contrast is not adjusted
and Tukey's adjustment of contrasts that are not one set of pairwise
comparisons becomes Sidak's.
"""

import numpy as np
from scipy import stats

from ..reporting._rformat import zapsmall


def adjust_p_values(t_value, df, adjust, *, n_means=None, pairwise=True):
    """Two-sided p-values of t statistics, adjusted as emmeans adjusts them.

    Parameters
    ----------
    t_value, df : array-like
        The contrasts' t statistics and degrees of freedom.
    adjust : {"tukey", "dunnettx", "sidak", "bonferroni", "holm", "none"}
    n_means : int, default=None
        The number of means the pairwise comparisons compare (Tukey's family).
    pairwise : bool, default=True
        Whether the contrasts are one family of pairwise comparisons; Tukey's
        adjustment becomes Sidak's otherwise, as in emmeans.

    Returns
    -------
    p_value : ndarray
    adjust : str
        The adjustment used.
    family_size : int
        The means compared (Tukey) or the tests (the others).
    note : str or None
        emmeans' note when it changed the adjustment.

    Examples
    --------
    >>> p, used, size, _ = adjust_p_values([2.0, -3.0, 0.5], [20, 20, 20], "holm")
    >>> p.round(4), used, size
    (array([0.1185, 0.0212, 0.6225]), 'holm', 3)
    """
    t_value = np.asarray(t_value, dtype=float)
    df = np.asarray(df, dtype=float)
    df = np.where(np.isnan(df), np.inf, df)
    n = t_value.size
    raw = 2.0 * stats.t.sf(np.abs(t_value), df)
    note = None
    if n == 1:
        adjust = "none"
    if adjust == "tukey" and not pairwise:
        adjust = "sidak"
        note = (
            'Note: adjust = "tukey" was changed to "sidak" because "tukey" '
            "is only appropriate for one set of pairwise comparisons"
        )
    if adjust == "none":
        return raw, adjust, n, note
    if adjust == "tukey":
        k = n_means if n_means is not None else int(round((1 + np.sqrt(1 + 8 * n)) / 2))
        q = np.sqrt(2.0) * np.abs(t_value)
        p = stats.studentized_range.sf(q, k, _tukey_df(df))
        return np.clip(p, 0.0, 1.0), adjust, k, note
    if adjust == "dunnettx":
        return _dunnettx(np.abs(t_value), n, df), adjust, n, note
    if adjust == "sidak":
        return 1.0 - (1.0 - raw) ** n, adjust, n, note
    if adjust == "bonferroni":
        return np.minimum(1.0, n * raw), adjust, n, note
    return _holm(raw), adjust, n, note


def _dunnettx(x, k, df):
    """emmeans' ``dunnettx``: ``1 - .pdunnx(|t|, k, df)``, a weighted mean
    of Tukey's and Sidak's distribution functions approximating Dunnett's."""
    weight = (k - 1) / k
    tukey = stats.studentized_range.cdf(
        np.sqrt(2.0) * x, (1 + np.sqrt(1 + 8 * k)) / 2, df
    )
    sidak = stats.f.cdf(x**2, 1, df) ** k
    return 1.0 - (weight * tukey + (1.0 - weight) * sidak)


def _tukey_df(df):
    """The df emmeans gives ``ptukey``: ``zapsmall(df)`` (R 4.2), after
    setting missing df (non-estimable contrasts) to Inf, so that their
    presence rounds every df to an integer, as emmeans 1.8.4 does."""
    df = np.asarray(df, dtype=float)
    if np.isinf(df).any():
        return np.round(df)
    return np.asarray(zapsmall(df, 7))


def _holm(p):
    """R's ``p.adjust(p, "holm", n = length(p))``: NaN (a non-estimable
    contrast) stays NaN and counts in the family."""
    n, out = p.size, np.full(p.size, np.nan)
    finite = np.flatnonzero(~np.isnan(p))
    order = finite[np.argsort(p[finite], kind="stable")]
    adjusted = np.maximum.accumulate((n - np.arange(order.size)) * p[order])
    out[order] = np.minimum(1.0, adjusted)
    return out
