"""Interval plot: confidence intervals of the fixed effects, method by method."""

import numpy as np
import pandas as pd
from sklearn.utils.validation import check_is_fitted

from ._base import level_labels, panel_axes, z_value

METHOD_LABELS = {"wald": "Wald", "profile": "Profile", "bootstrap": "Bootstrap"}


class IntervalDisplay:
    """Intervals for each parameter from several methods, side by side.

    One panel per parameter (each on its own scale, as an intercept and a
    slope rarely share one), one row per method, with the point estimate as
    a marker and a dotted vertical line.

    Parameters
    ----------
    intervals : dict of str to DataFrame
        Method label to a frame with columns ``lower`` and ``upper``,
        indexed by parameter (what ``confint`` returns).
    parameters : list of str
        Parameters to draw, in order.
    estimates : Series or None, default=None
        Point estimates indexed by parameter.

    Attributes
    ----------
    lines_ : dict of str to matplotlib LineCollection
        Per parameter, the interval segments (one per method, top to bottom
        in the order of ``intervals``).
    axes_ : list of matplotlib Axes
        One per parameter.
    figure_ : matplotlib Figure

    Examples
    --------
    >>> import matplotlib
    >>> matplotlib.use("Agg")
    >>> import pandas as pd
    >>> from skmixed.plotting import IntervalDisplay
    >>> wald = pd.DataFrame({"lower": [1.0, 0.5], "upper": [3.0, 1.5]},
    ...                     index=["Intercept", "x"])
    >>> profile = pd.DataFrame({"lower": [1.1, 0.4], "upper": [3.2, 1.5]},
    ...                        index=["Intercept", "x"])
    >>> display = IntervalDisplay.from_intervals({"Wald": wald, "Profile": profile})
    >>> [ax.get_title() for ax in display.axes_]
    ['Intercept', 'x']
    >>> [t.get_text() for t in display.axes_[0].get_yticklabels()]
    ['Wald', 'Profile']
    """

    def __init__(self, *, intervals, parameters, estimates=None):
        self.intervals = intervals
        self.parameters = parameters
        self.estimates = estimates

    @classmethod
    def from_intervals(
        cls, intervals, *, estimates=None, parameters=None, ax=None, **kwargs
    ):
        """Plot intervals computed elsewhere.

        Parameters
        ----------
        intervals : dict of str to DataFrame
            Method label to a frame with columns ``lower`` and ``upper``
            indexed by parameter.
        estimates : Series or dict, default=None
            Point estimates by parameter.
        parameters : list of str, default=None
            Parameters to draw; every parameter of any frame, in order of
            first appearance, if None.
        ax : array of matplotlib Axes, default=None
            One Axes per parameter; a new figure if None.
        **kwargs
            Passed to :meth:`plot`.

        Returns
        -------
        display : IntervalDisplay
        """
        intervals = _check_intervals(intervals)
        if parameters is None:
            parameters = list(
                dict.fromkeys(p for frame in intervals.values() for p in frame.index)
            )
        else:
            parameters = list(parameters)
            known = {p for frame in intervals.values() for p in frame.index}
            unknown = [p for p in parameters if p not in known]
            if unknown:
                raise ValueError(f"no interval is given for parameter(s) {unknown}.")
        if estimates is not None:
            estimates = pd.Series(estimates, dtype=float)
        return cls(
            intervals=intervals, parameters=parameters, estimates=estimates
        ).plot(ax=ax, **kwargs)

    @classmethod
    def from_estimator(
        cls,
        estimator,
        methods=("wald", "profile", "bootstrap"),
        *,
        parameters=None,
        confint_params=None,
        ax=None,
        **kwargs,
    ):
        """Compute intervals with ``estimator.confint`` and plot them.

        Parameters
        ----------
        estimator : MixedLinearRegressor
            A fitted model.
        methods : sequence of str, default=("wald", "profile", "bootstrap")
            Values of ``confint``'s ``method``.  Without a ``confint`` method
            only ``"wald"`` is available, computed from
            ``fixed_effects_cov_``.
        parameters : list of str, default=None
            Parameters to draw; the fixed effects if None.
        confint_params : dict, default=None
            Further keyword arguments of ``confint`` (e.g. ``level``,
            ``n_boot``, ``random_state``).
        ax : array of matplotlib Axes, default=None
        **kwargs
            Passed to :meth:`plot`.

        Returns
        -------
        display : IntervalDisplay
        """
        check_is_fitted(estimator, "fixed_effects_")
        if isinstance(methods, str):
            methods = [methods]
        intervals = {
            METHOD_LABELS.get(m, str(m)): _confint(estimator, m, confint_params or {})
            for m in methods
        }
        if parameters is None:
            parameters = list(estimator.fixed_effects_.index)
        return cls.from_intervals(
            intervals,
            estimates=estimator.fixed_effects_,
            parameters=parameters,
            ax=ax,
            **kwargs,
        )

    def plot(self, ax=None, *, line_kwargs=None, marker_kwargs=None):
        """Draw one panel per parameter.

        Parameters
        ----------
        ax : array of matplotlib Axes, default=None
            At least one Axes per parameter; a new figure (one column) if None.
        line_kwargs : dict, default=None
            Passed to ``ax.hlines``.
        marker_kwargs : dict, default=None
            Passed to ``ax.plot`` for the estimate markers.

        Returns
        -------
        display : IntervalDisplay
        """
        axes, fig = panel_axes(ax, len(self.parameters), 1, panel_size=(5.0, 1.6))
        labels = list(self.intervals)
        positions = np.arange(len(labels))[::-1]  # first method on top
        colors = [f"C{k % 10}" for k in range(len(labels))]
        self.lines_ = {}
        for parameter, panel in zip(self.parameters, axes):
            bounds = np.array(
                [_bounds(self.intervals[m], parameter) for m in labels]
            ).reshape(-1, 2)
            self.lines_[parameter] = panel.hlines(
                positions,
                bounds[:, 0],
                bounds[:, 1],
                **{"colors": colors, "linewidth": 2.5, **(line_kwargs or {})},
            )
            self._draw_estimate(panel, parameter, positions, colors, marker_kwargs)
            panel.set_yticks(positions, labels)
            panel.set_ylim(-0.6, len(labels) - 0.4)
            panel.set_title(parameter)
        self.axes_, self.figure_ = axes, fig
        return self

    def _draw_estimate(self, panel, parameter, positions, colors, marker_kwargs):
        if self.estimates is None or parameter not in self.estimates.index:
            return
        value = self.estimates[parameter]
        panel.axvline(value, color="0.5", linestyle=":", linewidth=1)
        for y, color in zip(positions, colors):
            panel.plot(
                value, y, **{"marker": "o", "color": color, **(marker_kwargs or {})}
            )


def _check_intervals(intervals):
    if not isinstance(intervals, dict) or not intervals:
        raise TypeError(
            "intervals must be a non-empty dict mapping a method label to a "
            "DataFrame with columns 'lower' and 'upper'; got "
            f"{type(intervals).__name__}."
        )
    checked = {}
    for label, frame in intervals.items():
        if not isinstance(frame, pd.DataFrame):
            raise TypeError(
                f"intervals[{label!r}] must be a DataFrame; got {type(frame).__name__}."
            )
        missing = {"lower", "upper"} - set(frame.columns)
        if missing:
            raise ValueError(
                f"intervals[{label!r}] lacks column(s) {sorted(missing)}; it has "
                f"{list(frame.columns)}."
            )
        checked[str(label)] = frame
    return checked


def _bounds(frame, parameter):
    """(lower, upper), NaN when this method has no interval for the parameter."""
    if parameter not in frame.index:
        return np.nan, np.nan
    return float(frame.at[parameter, "lower"]), float(frame.at[parameter, "upper"])


def _confint(estimator, method, params):
    if hasattr(estimator, "confint"):
        return estimator.confint(method=method, **params)
    if method != "wald":
        raise ValueError(
            f"method={method!r} needs an estimator with a confint() method; "
            "without one only 'wald' is available."
        )
    return wald_intervals(estimator, **params)


def wald_intervals(estimator, level=0.95):
    """Wald intervals ``beta +- z SE`` of the fixed effects, as ``confint``'s."""
    z = z_value(level)
    se = np.sqrt(np.diag(estimator.fixed_effects_cov_.to_numpy()))
    beta = estimator.fixed_effects_
    return pd.DataFrame(
        {"lower": beta.to_numpy() - z * se, "upper": beta.to_numpy() + z * se},
        index=pd.Index(level_labels(beta.index)),
    )
