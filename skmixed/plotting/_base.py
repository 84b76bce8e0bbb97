"""Helpers shared by the displays: the fitted model, axes, level ticks, quantiles.

Nothing here imports matplotlib at module level: ``import skmixed.plotting``
must work (and stay cheap) without it, as the ``plot`` extra is optional.
"""

import math
import numbers

import numpy as np
from scipy import stats
from sklearn.pipeline import Pipeline
from sklearn.utils.validation import check_is_fitted

# A new figure of levels (shrinkage, caterpillar) gets this much height per
# level, in inches: a 10-point tick label is 0.14 in tall, so labels keep a gap.
LEVEL_PITCH = 0.2
# Height taken by a panel's title, x tick labels and x label, in inches.
PANEL_MARGIN = 1.2
# The tallest figure made for levels; past it only every k-th level is labelled.
MAX_FIGURE_HEIGHT = 30.0


def pyplot():
    """Import and return ``matplotlib.pyplot``, or say how to install it."""
    try:
        import matplotlib.pyplot as plt
    except ImportError as exc:  # pragma: no cover - matplotlib is in the test extra
        raise ImportError(
            "plotting needs matplotlib: install it with `pip install skmixed[plot]`."
        ) from exc
    return plt


def single_axes(ax, figsize=None):
    """``ax`` and its figure; a new figure with one Axes when ``ax`` is None."""
    if ax is None:
        _, ax = pyplot().subplots(figsize=figsize, layout="constrained")
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


def fitted_model(estimator, attributes):
    """The fitted skmixed model in ``estimator`` and the steps that feed it.

    ``estimator`` is a model or a fitted :class:`~sklearn.pipeline.Pipeline`
    whose last step is one.  A Pipeline is checked as scikit-learn checks it
    (``check_is_fitted``: its last step is fitted), then its last step for
    ``attributes``.  Returns ``(model, steps)``: ``steps`` is the Pipeline of
    the steps before the model (what ``pipeline[:-1].transform`` applies),
    None for a model alone or a one-step Pipeline.
    """
    if not isinstance(estimator, Pipeline):
        check_is_fitted(estimator, attributes)
        return estimator, None
    check_is_fitted(estimator)
    model = estimator.steps[-1][1]
    if model is None or isinstance(model, str):
        raise TypeError(
            f"the Pipeline's last step must be a fitted skmixed model; got {model!r}."
        )
    check_is_fitted(model, attributes)
    return model, estimator[:-1] if len(estimator.steps) > 1 else None


def transform(steps, X):
    """``X`` through a Pipeline's steps before the model (as its ``predict`` does)."""
    return X if steps is None else steps.transform(X)


def check_mixed_model(estimator):
    """The fitted mixed model (with random effects) in ``estimator``.

    ``estimator`` is the model or a fitted Pipeline ending with it.
    """
    model, _ = fitted_model(estimator, "random_effects_")
    if not model.random_effects_:
        raise ValueError(
            "the model has no random effects (it was fitted without groups); "
            "this plot needs a mixed model."
        )
    return model


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


def pearson_residuals(estimator):
    """Conditional residuals over their SD (lme4's ``resid(m, "pearson")``).

    ``residuals_ / sigma_``, times ``sqrt(w)`` for a fit with prior weights
    ``w`` (``sample_weight``), whose residual variances are ``sigma^2 / w``.
    """
    from ._generalized import is_generalized_mixed

    if is_generalized_mixed(estimator):
        raise TypeError(
            "a generalised model has no Pearson residuals here: its diagnostics "
            "use randomized quantile residuals (QuantileResidualDiagnosticsDisplay, "
            "or plot_diagnostics)."
        )
    model, _ = fitted_model(estimator, "residuals_")
    if not model.sigma_ > 0:  # an exact fit: no residual variation
        return np.full(np.shape(model.residuals_), np.nan)
    residuals = np.asarray(model.residuals_, dtype=float) / model.sigma_
    weights = getattr(model, "_residual_weights", None)
    if weights is None:
        return residuals
    return residuals * np.sqrt(np.asarray(weights, dtype=float))


def scatter_style(n_points):
    """Marker size and transparency for ``n_points`` that may overplot.

    Opaque enough to see single points when there are few (alpha 0.8 up to
    400 points), lighter as they pile up (``alpha = sqrt(400 / n)``, so that
    where ``n / 400`` points overlap the ink adds up alike, down to 0.05),
    smaller markers past 2,000 points and rasterised past 10,000 (a vector
    file keeps one image, not every marker).
    """
    n = max(int(n_points), 1)
    return {
        "s": 12 if n <= 2000 else 6,
        "alpha": float(np.clip(math.sqrt(400 / n), 0.05, 0.8)),
        "rasterized": n > 10000,
    }


def levels_figure_heights(counts, minimum=2.5):
    """Heights (inches) of panel rows showing ``counts`` levels each.

    ``LEVEL_PITCH`` per level plus ``PANEL_MARGIN``, at least ``minimum``
    per row, scaled down together when the total passes
    ``MAX_FIGURE_HEIGHT``.
    """
    heights = np.maximum(minimum, LEVEL_PITCH * np.asarray(counts) + PANEL_MARGIN)
    return heights * min(1.0, MAX_FIGURE_HEIGHT / heights.sum())


def check_max_levels(max_levels):
    """``max_levels`` must be None or a positive integer."""
    if max_levels is None:
        return
    if isinstance(max_levels, bool) or not isinstance(max_levels, numbers.Integral):
        raise TypeError(
            f"max_levels must be a positive int or None; got {max_levels!r}."
        )
    if max_levels < 1:
        raise ValueError(f"max_levels must be at least 1; got {max_levels}.")


def set_level_ticks(ax, labels, *, height=None):
    """One y position per level (0 at the bottom), with the levels' labels.

    The labels are those of every level while they fit the Axes' height
    without overlapping, else of every k-th level.  ``height`` is the height
    in inches the panel (with its title and x label) was made for; without
    it the Axes' current share of its figure is used.
    """
    positions = np.arange(len(labels))
    if height is None:
        available = ax.get_position().height * ax.figure.get_figheight()
    else:
        available = height - PANEL_MARGIN
    from matplotlib.font_manager import FontProperties

    size = FontProperties(size=pyplot().rcParams["ytick.labelsize"])
    pitch = 1.3 * size.get_size_in_points() / 72  # a label and a gap, inches
    step = max(1, math.ceil(len(labels) * pitch / max(available, pitch)))
    ax.set_yticks(positions[::step], [labels[i] for i in positions[::step]])
    ax.set_ylim(-0.7, len(labels) - 0.3)
    return positions


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
