"""Caterpillar plot: lme4's ``dotplot(ranef(m, condVar = TRUE))``."""

import numpy as np

from ._base import (
    check_max_levels,
    check_mixed_model,
    level_labels,
    levels_figure_heights,
    panel_axes,
    pyplot,
    resolve_factors,
    set_level_ticks,
    style,
    z_value,
)


class CaterpillarDisplay:
    """Each level's predicted random effect with its conditional interval.

    One panel per (grouping factor, term).  Within a factor the levels are
    sorted by their first term's prediction and every panel of the factor
    shares that order, as lme4's ``dotplot`` does; the bars span
    ``effect +- z * conditional SD`` (``z = 1.96`` for ``level=0.95``).

    A new figure grows with the number of levels (0.2 inch per level, up to
    30 inches in all), so that every level's label is readable; past that,
    or on a given Axes too short for them, every k-th level is labelled.
    For hundreds of levels, ``max_levels`` keeps the levels with the
    largest absolute predicted effect (the caterpillar's two tails).

    Parameters
    ----------
    effects : dict of str to DataFrame
        Per grouping factor, the predicted random effects (levels by terms),
        rows in plotting order (bottom to top).
    cond_sd : dict of str to DataFrame
        Their conditional standard deviations, aligned with ``effects``.
    z : float, default=1.959964
        Multiplier of the conditional SD.

    Attributes
    ----------
    errorbars_ : dict of (str, str) to matplotlib ErrorbarContainer
        Keyed by ``(factor, term)``.
    levels_ : dict of str to Index
        Per grouping factor, the levels drawn, bottom to top.
    axes_ : list of matplotlib Axes
        One per panel, factor by factor, term by term.
    figure_ : matplotlib Figure

    See Also
    --------
    RandomEffectsQQDisplay : QQ plots of the same predictions.

    Examples
    --------
    >>> import matplotlib
    >>> matplotlib.use("Agg")
    >>> import numpy as np
    >>> from skmixed import MixedLinearRegressor
    >>> from skmixed.plotting import CaterpillarDisplay
    >>> rng = np.random.default_rng(0)
    >>> groups = np.repeat(np.arange(10), 20)
    >>> X = rng.normal(size=(200, 1))
    >>> y = 1 + 2 * X[:, 0] + rng.normal(size=10)[groups] + rng.normal(size=200)
    >>> model = MixedLinearRegressor().fit(X, y, groups=groups)
    >>> display = CaterpillarDisplay.from_estimator(model)
    >>> display.axes_[0].get_title()
    'group: Intercept'
    >>> len(display.axes_[0].get_yticklabels())
    10
    """

    def __init__(self, *, effects, cond_sd, z=1.959963984540054):
        self.effects = effects
        self.cond_sd = cond_sd
        self.z = z

    @classmethod
    def from_estimator(
        cls,
        estimator,
        factor=None,
        *,
        level=0.95,
        sort=True,
        sort_by=None,
        max_levels=None,
        ax=None,
        **kwargs,
    ):
        """Caterpillar plot of a fitted model's random effects.

        Parameters
        ----------
        estimator : MixedLinearRegressor or Pipeline
            A fitted model with random effects, or a fitted Pipeline whose
            last step is one.
        factor : str or list of str, default=None
            Grouping factor(s) to plot; all of them if None.
        level : float, default=0.95
            Coverage of the intervals under normality (``z`` is its two-sided
            normal quantile).
        sort : bool, default=True
            Order the levels by their prediction; False keeps the fit's order.
        sort_by : str, default=None
            Term to sort by; the factor's first term if None (lme4's choice).
        max_levels : int, default=None
            Draw at most this many levels of each factor: those whose
            ``sort_by`` term (the first term if None) has the largest
            absolute prediction, in the same order.  None draws every level.
        ax : array of matplotlib Axes, default=None
            One Axes per panel; a new figure if None.
        **kwargs
            Passed to :meth:`plot`.

        Returns
        -------
        display : CaterpillarDisplay
        """
        model = check_mixed_model(estimator)
        effects, cond_sd = {}, {}
        for name in resolve_factors(model, factor):
            ranef = model.random_effects_[name]
            order = _level_order(ranef, sort, sort_by, name)
            effects[name] = ranef.iloc[order]
            cond_sd[name] = model.random_effects_cond_sd_[name].iloc[order]
        display = cls(effects=effects, cond_sd=cond_sd, z=z_value(level))
        return display.plot(ax=ax, max_levels=max_levels, sort_by=sort_by, **kwargs)

    def plot(self, ax=None, *, max_levels=None, sort_by=None, errorbar_kwargs=None):
        """Draw one panel per (factor, term).

        Parameters
        ----------
        ax : array of matplotlib Axes, default=None
            At least one Axes per panel; a new figure (one row per factor,
            one column per term, rows sharing their y axis, each row as tall
            as its levels need) if None.
        max_levels : int, default=None
            At most this many levels per factor: those with the largest
            absolute effect of the ``sort_by`` term, in their stored order.
            The panels' titles say how many of the levels are drawn.
        sort_by : str, default=None
            The term whose effects choose the levels of ``max_levels``; the
            factor's first term if None.
        errorbar_kwargs : dict, default=None
            Passed to ``ax.errorbar``.

        Returns
        -------
        display : CaterpillarDisplay
        """
        self.levels_ = {
            name: _top_levels(frame, max_levels, sort_by, name)
            for name, frame in self.effects.items()
        }
        panels = [(f, t) for f, frame in self.effects.items() for t in frame.columns]
        n_cols = max(frame.shape[1] for frame in self.effects.values())
        axes, heights, fig = self._axes(ax, n_cols)
        defaults = {"fmt": "o", "markersize": 4, "color": "C0", "ecolor": "0.3"}
        self.errorbars_ = {}
        for (name, term), panel in zip(panels, axes):
            levels = self.levels_[name]
            effect = self.effects[name].loc[levels, term].to_numpy()
            sd = self.cond_sd[name].loc[levels, term].to_numpy()
            positions = set_level_ticks(
                panel, level_labels(levels), height=heights.get(name)
            )
            self.errorbars_[name, term] = panel.errorbar(
                effect,
                positions,
                xerr=self.z * sd,
                **style(defaults, errorbar_kwargs),
            )
            panel.axvline(0.0, color="0.6", linestyle="--", linewidth=1)
            title = f"{name}: {term}"
            if len(levels) < len(self.effects[name]):
                title += f" ({len(levels)} of {len(self.effects[name])} levels)"
            panel.set(title=title, xlabel="Random effect")
        self.axes_, self.figure_ = axes, fig
        return self

    def _axes(self, ax, n_cols):
        """Panels one row per factor, padded to ``n_cols`` columns; row heights.

        A new figure's rows are as tall as their levels need (the heights, in
        inches, are returned by factor, for the tick labels); given Axes keep
        their size (no heights).
        """
        if ax is not None:
            n_panels = sum(frame.shape[1] for frame in self.effects.values())
            axes, fig = panel_axes(ax, n_panels, n_cols)
            return axes, {}, fig
        sizes = [frame.shape[1] for frame in self.effects.values()]
        heights = levels_figure_heights([len(v) for v in self.levels_.values()])
        fig, grid = pyplot().subplots(
            len(sizes),
            n_cols,
            squeeze=False,
            sharey="row",
            figsize=(3.5 * n_cols, heights.sum()),
            height_ratios=heights,
            layout="constrained",
        )
        axes = []
        for row, size in enumerate(sizes):
            axes.extend(grid[row, :size])
            for unused in grid[row, size:]:
                unused.set_visible(False)
        return axes, dict(zip(self.levels_, heights)), fig


def _level_order(ranef, sort, sort_by, factor):
    if not sort:
        return np.arange(len(ranef))
    term = _sort_term(ranef, sort_by, factor)
    return np.argsort(ranef[term].to_numpy(), kind="stable")


def _sort_term(ranef, sort_by, factor):
    term = ranef.columns[0] if sort_by is None else sort_by
    if term not in ranef.columns:
        raise ValueError(
            f"sort_by={term!r} is not a term of grouping factor {factor!r}; its "
            f"terms are {list(ranef.columns)}."
        )
    return term


def _top_levels(ranef, max_levels, sort_by, factor):
    """The levels to draw, in ``ranef``'s order: all, or the largest ``|effect|``."""
    if max_levels is None:
        return ranef.index
    check_max_levels(max_levels)
    if max_levels >= len(ranef):
        return ranef.index
    size = np.abs(ranef[_sort_term(ranef, sort_by, factor)].to_numpy())
    keep = np.sort(np.argsort(-size, kind="stable")[:max_levels])
    return ranef.index[keep]
