"""Interval plot: confidence intervals of the parameters, method by method."""

import numpy as np
import pandas as pd

from ._base import fitted_model, level_labels, panel_axes, z_value

METHOD_LABELS = {"wald": "Wald", "profile": "Profile", "bootstrap": "Bootstrap"}


class IntervalDisplay:
    """Intervals for each parameter from several methods, side by side.

    One panel per parameter (each on its own scale, as an intercept and a
    slope rarely share one), one row per method, with the point estimate as
    a marker and a dotted vertical line: a fixed effect's, or a variance
    parameter's (``sd_Intercept|Site``, ``cor_Temp.Intercept|Site``,
    ``sigma``: lme4's standard deviations and correlations).

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
        level=0.95,
        confint_params=None,
        ax=None,
        **kwargs,
    ):
        """Compute intervals with ``estimator.confint`` and plot them.

        Parameters
        ----------
        estimator : MixedLinearRegressor or Pipeline
            A fitted model, or a fitted Pipeline whose last step is one (its
            parameters are those of the features the model sees).
        methods : str or sequence of str, default=("wald", "profile", \
"bootstrap")
            Values of ``confint``'s ``method``.  Without a ``confint`` method
            only ``"wald"`` is available, computed from
            ``fixed_effects_cov_``.
        parameters : list of str or "all", default=None
            Parameters to draw; the fixed effects if None; ``"all"``: every
            parameter that some method bounds, the variance parameters
            (``sd_...``, ``cor_...``, ``sigma``; profile and bootstrap only)
            among them.
        level : float, default=0.95
            Confidence level of every method.
        confint_params : dict of str to dict, default=None
            Further keyword arguments of ``confint``, per method: keys are
            methods, values the arguments of that method only, e.g.
            ``{"bootstrap": {"n_boot": 200, "random_state": 0}}``
            (``"wald"`` takes none).  A flat dict of arguments
            (``{"n_boot": 200}``) is refused, as every method would get it.
        ax : array of matplotlib Axes, default=None
        **kwargs
            Passed to :meth:`plot`.

        Returns
        -------
        display : IntervalDisplay

        Examples
        --------
        >>> import matplotlib
        >>> matplotlib.use("Agg")
        >>> from skmixed import MixedLinearRegressor
        >>> from skmixed.datasets import load_biomass
        >>> from skmixed.plotting import IntervalDisplay
        >>> X, y, groups = load_biomass(return_X_y_groups=True)
        >>> model = MixedLinearRegressor().fit(X, y, groups=groups)
        >>> display = IntervalDisplay.from_estimator(
        ...     model, ["wald", "bootstrap"], parameters="all",
        ...     confint_params={"bootstrap": {"n_boot": 20, "random_state": 0}})
        >>> display.parameters
        ['sd_Intercept|Site', 'sigma', 'Intercept', 'Temp', 'N']
        >>> round(float(display.estimates["sigma"]), 3) == round(model.sigma_, 3)
        True
        """
        model, _ = fitted_model(estimator, "fixed_effects_")
        methods = [methods] if isinstance(methods, str) else list(methods)
        params = _method_params(confint_params, methods)
        intervals = {
            METHOD_LABELS.get(m, str(m)): _confint(model, m, level, params.get(m))
            for m in methods
        }
        if parameters is None:
            parameters = list(model.fixed_effects_.index)
        elif isinstance(parameters, str) and parameters == "all":
            parameters = _bounded_parameters(intervals)
        return cls.from_intervals(
            intervals,
            estimates=_estimates(model),
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


def _method_params(confint_params, methods):
    """``confint_params`` checked: per method in ``methods``, a dict of arguments."""
    if confint_params is None:
        return {}
    if not isinstance(confint_params, dict):
        raise TypeError(
            "confint_params must be a dict mapping a method to its confint "
            f"arguments; got {type(confint_params).__name__}."
        )
    not_methods = [k for k in confint_params if k not in methods]
    if not_methods:
        known = [k for k in not_methods if k in METHOD_LABELS]
        if known:
            raise ValueError(
                f"confint_params gives arguments for method(s) {known}, which "
                f"are not among methods={methods}."
            )
        hint = "; pass level= for the level of every method" * ("level" in not_methods)
        raise ValueError(
            f"confint_params takes the arguments of each method apart, keyed by "
            f"method: got {not_methods}, which are not methods among {methods} "
            "(confint(method='wald') takes no argument, profile and bootstrap "
            "their own); write e.g. confint_params={'bootstrap': {'n_boot': "
            f"100, 'random_state': 0}}}}{hint}."
        )
    for method, params in confint_params.items():
        if not isinstance(params, dict):
            raise TypeError(
                f"confint_params[{method!r}] must be a dict of keyword arguments "
                f"of confint(method={method!r}); got {params!r}."
            )
        clash = sorted({"level", "method"} & set(params))
        if clash:
            raise ValueError(
                f"confint_params[{method!r}] sets {clash}: the method is its key "
                "and level= of from_estimator applies to every method."
            )
    return confint_params


def _confint(estimator, method, level, params):
    if not hasattr(estimator, "confint"):
        if method != "wald":
            raise ValueError(
                f"method={method!r} needs an estimator with a confint() method; "
                "without one only 'wald' is available."
            )
        if params:
            raise TypeError(f"the Wald intervals take no arguments; got {params}.")
        return wald_intervals(estimator, level)
    if not params:
        return estimator.confint(method=method, level=level)
    try:
        return estimator.confint(method=method, level=level, **params)
    except TypeError as exc:
        raise TypeError(
            f"confint_params[{method!r}] = {params} does not fit "
            f"confint(method={method!r}): {exc}"
        ) from exc


def _estimates(model):
    """Point estimates of every parameter ``confint`` names, as lme4 names them.

    The variance parameters (standard deviations, correlations, ``sigma``)
    then the fixed effects, for a mixed model; else the fixed effects.
    """
    if not hasattr(model, "random_effects_cov_"):
        return model.fixed_effects_
    from ..inference._bootstrap import model_parameters

    return model_parameters(model)


def _bounded_parameters(intervals):
    """Parameters with a bound from some method, in ``confint``'s order.

    The rows of all frames in order of first appearance (``confint`` gives
    the Wald rows of the variance parameters, as NaN, in their place).
    """
    frames = list(intervals.values())
    names = list(dict.fromkeys(p for frame in frames for p in frame.index))
    bounded = {
        p
        for frame in frames
        for p in frame.index[frame[["lower", "upper"]].notna().any(axis=1)]
    }
    return [p for p in names if p in bounded]


def wald_intervals(estimator, level=0.95):
    """Wald intervals ``beta +- z SE`` of the fixed effects, as ``confint``'s."""
    z = z_value(level)
    se = np.sqrt(np.diag(estimator.fixed_effects_cov_.to_numpy()))
    beta = estimator.fixed_effects_
    return pd.DataFrame(
        {"lower": beta.to_numpy() - z * se, "upper": beta.to_numpy() + z * se},
        index=pd.Index(level_labels(beta.index)),
    )
