"""Helpers shared by the displays: lazy matplotlib, axes grids, normal quantiles.

Nothing here imports matplotlib at module level: ``import skmixed.plotting``
must work (and stay cheap) without it, as the ``plot`` extra is optional.
"""

import numpy as np
from scipy import stats
from sklearn.utils.validation import check_is_fitted


def pyplot():
    """Import and return ``matplotlib.pyplot``, or say how to install it."""
    try:
        import matplotlib.pyplot as plt
    except ImportError as exc:  # pragma: no cover - matplotlib is in the test extra
        raise ImportError(
            "plotting needs matplotlib: install it with `pip install skmixed[plot]`."
        ) from exc
    return plt


def single_axes(ax):
    """``ax`` and its figure; a new figure with one Axes when ``ax`` is None."""
    if ax is None:
        _, ax = pyplot().subplots(layout="constrained")
    return ax, ax.figure


def panel_axes(ax, n_panels, n_cols, *, sharey=False, panel_size=(4.0, 3.2)):
    """A flat list of ``n_panels`` Axes and the figure that holds them.

    With ``ax=None`` a new figure gets a grid of ``n_cols`` columns and the
    unused cells are hidden; otherwise ``ax`` must hold at least ``n_panels``
    Axes (an array or list, as ``plt.subplots`` returns).
    """
    if ax is None:
        n_cols = max(1, min(n_cols, n_panels))
        n_rows = -(-n_panels // n_cols)
        fig, grid = pyplot().subplots(
            n_rows,
            n_cols,
            squeeze=False,
            sharey=sharey,
            figsize=(panel_size[0] * n_cols, panel_size[1] * n_rows),
            layout="constrained",
        )
        axes = list(grid.ravel())
        for unused in axes[n_panels:]:
            unused.set_visible(False)
        return axes[:n_panels], fig
    axes = list(np.asarray(ax, dtype=object).ravel())
    if len(axes) < n_panels:
        raise ValueError(
            f"this plot has {n_panels} panel(s) but ax holds {len(axes)} Axes; pass "
            f"at least {n_panels} (e.g. from plt.subplots) or ax=None."
        )
    return axes[:n_panels], axes[0].figure


def style(defaults, user):
    """Matplotlib keyword arguments: the user's override our defaults."""
    return {**defaults, **(user or {})}


def check_mixed_model(model):
    """Raise unless ``model`` is a fitted mixed model with random effects."""
    check_is_fitted(model, "random_effects_")
    if not model.random_effects_:
        raise ValueError(
            "the model has no random effects (it was fitted without groups); "
            "this plot needs a mixed model."
        )


def resolve_factors(model, factor):
    """The grouping factors to plot: all of them (None), one name, or a list."""
    names = list(model.random_effects_)
    if factor is None:
        return names
    wanted = [factor] if isinstance(factor, str) else list(factor)
    unknown = [f for f in wanted if f not in names]
    if unknown:
        raise ValueError(
            f"unknown grouping factor(s) {unknown}; the model has {names}."
        )
    return wanted


def pearson_residuals(model):
    """Conditional residuals over the residual SD (lme4's ``resid(m, "pearson")``)."""
    check_is_fitted(model, "residuals_")
    return np.asarray(model.residuals_, dtype=float) / model.sigma_


def normal_quantiles(n):
    """Standard normal quantiles at R's ``ppoints(n)`` (what ``qqnorm`` uses)."""
    a = 3.0 / 8.0 if n <= 10 else 0.5
    return stats.norm.ppf((np.arange(1, n + 1) - a) / (n + 1 - 2 * a))


def quartile_line(theoretical, sample):
    """Intercept and slope of R's ``qqline``: through the first and third quartiles."""
    q_sample = np.quantile(sample, [0.25, 0.75])
    q_theory = stats.norm.ppf([0.25, 0.75])
    slope = (q_sample[1] - q_sample[0]) / (q_theory[1] - q_theory[0])
    return float(q_sample[0] - slope * q_theory[0]), float(slope)


def level_labels(index):
    """Level labels as tick-label strings."""
    return [str(v) for v in index]


def z_value(level):
    """Two-sided normal multiplier for a coverage ``level`` in (0, 1)."""
    if not 0 < level < 1:
        raise ValueError(f"level must be in (0, 1); got {level!r}.")
    return float(stats.norm.ppf(0.5 + level / 2))
