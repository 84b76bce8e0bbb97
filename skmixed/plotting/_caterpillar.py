"""Caterpillar plot: lme4's ``dotplot(ranef(m, condVar = TRUE))``."""

import numpy as np

from ._base import (
    check_mixed_model,
    level_labels,
    panel_axes,
    resolve_factors,
    style,
    z_value,
)


class CaterpillarDisplay:
    """Each level's predicted random effect with its conditional interval.

    One panel per (grouping factor, term).  Within a factor the levels are
    sorted by their first term's prediction and every panel of the factor
    shares that order, as lme4's ``dotplot`` does; the bars span
    ``effect +- z * conditional SD`` (``z = 1.96`` for ``level=0.95``).

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
        ax=None,
        **kwargs,
    ):
        """Caterpillar plot of a fitted model's random effects.

        Parameters
        ----------
        estimator : MixedLinearRegressor
            A fitted model with random effects.
        factor : str or list of str, default=None
            Grouping factor(s) to plot; all of them if None.
        level : float, default=0.95
            Coverage of the intervals under normality (``z`` is its two-sided
            normal quantile).
        sort : bool, default=True
            Order the levels by their prediction; False keeps the fit's order.
        sort_by : str, default=None
            Term to sort by; the factor's first term if None (lme4's choice).
        ax : array of matplotlib Axes, default=None
            One Axes per panel; a new figure if None.
        **kwargs
            Passed to :meth:`plot`.

        Returns
        -------
        display : CaterpillarDisplay
        """
        check_mixed_model(estimator)
        effects, cond_sd = {}, {}
        for name in resolve_factors(estimator, factor):
            ranef = estimator.random_effects_[name]
            order = _level_order(ranef, sort, sort_by, name)
            effects[name] = ranef.iloc[order]
            cond_sd[name] = estimator.random_effects_cond_sd_[name].iloc[order]
        return cls(effects=effects, cond_sd=cond_sd, z=z_value(level)).plot(
            ax=ax, **kwargs
        )

    def plot(self, ax=None, *, errorbar_kwargs=None):
        """Draw one panel per (factor, term).

        Parameters
        ----------
        ax : array of matplotlib Axes, default=None
            At least one Axes per panel; a new figure (one row per factor,
            one column per term, rows sharing their y axis) if None.
        errorbar_kwargs : dict, default=None
            Passed to ``ax.errorbar``.

        Returns
        -------
        display : CaterpillarDisplay
        """
        panels = [(f, t) for f, frame in self.effects.items() for t in frame.columns]
        n_cols = max(frame.shape[1] for frame in self.effects.values())
        axes, fig = self._axes(ax, n_cols)
        defaults = {"fmt": "o", "markersize": 4, "color": "C0", "ecolor": "0.3"}
        self.errorbars_ = {}
        for (name, term), panel in zip(panels, axes):
            frame = self.effects[name]
            positions = np.arange(len(frame))
            self.errorbars_[name, term] = panel.errorbar(
                frame[term].to_numpy(),
                positions,
                xerr=self.z * self.cond_sd[name][term].to_numpy(),
                **style(defaults, errorbar_kwargs),
            )
            panel.axvline(0.0, color="0.6", linestyle="--", linewidth=1)
            panel.set_yticks(positions, level_labels(frame.index))
            panel.set(title=f"{name}: {term}", xlabel="Random effect")
        self.axes_, self.figure_ = axes, fig
        return self

    def _axes(self, ax, n_cols):
        """Panels laid out one row per factor, padded to ``n_cols`` columns."""
        if ax is not None:
            n_panels = sum(frame.shape[1] for frame in self.effects.values())
            return panel_axes(ax, n_panels, n_cols)
        sizes = [frame.shape[1] for frame in self.effects.values()]
        n_levels = max(len(frame) for frame in self.effects.values())
        height = max(2.5, 0.18 * n_levels)
        grid, fig = panel_axes(
            None,
            len(sizes) * n_cols,
            n_cols,
            sharey="row",
            panel_size=(3.5, height),
        )
        axes = []
        for row, size in enumerate(sizes):
            cells = grid[row * n_cols : (row + 1) * n_cols]
            axes.extend(cells[:size])
            for unused in cells[size:]:
                unused.set_visible(False)
        return axes, fig


def _level_order(ranef, sort, sort_by, factor):
    if not sort:
        return np.arange(len(ranef))
    term = ranef.columns[0] if sort_by is None else sort_by
    if term not in ranef.columns:
        raise ValueError(
            f"sort_by={term!r} is not a term of grouping factor {factor!r}; its "
            f"terms are {list(ranef.columns)}."
        )
    return np.argsort(ranef[term].to_numpy(), kind="stable")
