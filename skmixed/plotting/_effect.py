"""Effect plot: the population prediction along one variable, with a band."""

import numbers

import numpy as np
import pandas as pd
from sklearn.utils import check_random_state

from .._pooling import _NoPoolingModel, group_design
from ._base import fitted_model, scatter_style, single_axes, style, transform, z_value
from ._generalized import (
    is_generalized,
    link_prediction,
    response_data,
    response_label,
    to_response,
)
from ._inputs import (
    frame_of_array,
    group_columns,
    is_frame,
    model_features,
    pandas_frame,
)

BANDS = ("wald", "posterior", "bootstrap")


class EffectDisplay:
    """Population prediction along one variable, the others at typical values.

    The line is the population prediction (no random effects, lme4's
    ``re.form = ~0``) on a grid of the variable; the band is pointwise,
    from the fixed effects' normal approximation (``"wald"``), from draws of
    the fixed effects (``"posterior"``), from a parametric bootstrap
    (``"bootstrap"``), or from any array of predicted curves the user
    supplies.  For a categorical variable the grid is its levels: one point
    per level, with an interval.  With ``by``, one line (or set of points)
    per level of a second, categorical variable.

    The variables are those of the data the model was fitted on: with
    ``group_column`` the group columns stay in ``X`` (held at their first
    level, which the population prediction ignores); for a fitted Pipeline
    ending with a skmixed model, the Pipeline's raw input columns.  The grid
    is built on the raw columns and goes through the Pipeline's steps before
    the model (``pipeline[:-1].transform``), so a scaled or one-hot encoded
    column is drawn on its own, raw, scale.  The baselines
    :class:`~skmixed.CompletePoolingRegressor` (its line) and
    :class:`~skmixed.NoPoolingRegressor` (the mean of the levels' lines,
    ``intercept_`` and ``coef_``, as lme4's ``fixef`` of an ``lmList``) are
    drawn without a band, or with a band of the user's curves.

    Parameters
    ----------
    grid : ndarray of shape (n_grid,)
        Values of the variable (its levels, when ``categorical``).
    prediction : ndarray of shape (n_grid,) or (n_by, n_grid)
        Population prediction on the grid; one row per level of ``by``.
    lower, upper : ndarray shaped as ``prediction``, or None, default=None
        Pointwise band, or None for no band.
    x_data, y_data : ndarray of shape (n_samples,) or None, default=None
        Data points drawn under the curve (``x_data`` in positions
        ``0 .. n_grid - 1`` for a categorical variable).
    feature_name : str, default="x"
    target_name : str, default="y"
    band_name : str or None, default=None
        How the band was made (legend label).
    categorical : bool, default=False
        Whether the grid holds the levels of a categorical variable.
    by_name : str or None, default=None
        The second variable, one line per level.
    by_levels : list or None, default=None
        Its levels, one per row of ``prediction``.

    Attributes
    ----------
    line_ : matplotlib Line2D
        The (first) prediction: a line, or one marker per level.
    lines_ : list of matplotlib Line2D
        One per level of ``by`` (just ``line_`` without it).
    band_ : matplotlib PolyCollection, LineCollection or None
        The (first) band: a filled area, or a vertical interval per level.
    bands_ : list
        One per level of ``by``.
    scatter_ : matplotlib PathCollection or None
    ax_ : matplotlib Axes
    figure_ : matplotlib Figure

    Examples
    --------
    >>> import matplotlib
    >>> matplotlib.use("Agg")
    >>> import numpy as np
    >>> from skmixed import MixedLinearRegressor
    >>> from skmixed.plotting import EffectDisplay
    >>> rng = np.random.default_rng(0)
    >>> groups = np.repeat(np.arange(10), 20)
    >>> X = rng.normal(size=(200, 2))
    >>> y = 1 + 2 * X[:, 0] + rng.normal(size=10)[groups] + rng.normal(size=200)
    >>> model = MixedLinearRegressor().fit(X, y, groups=groups)
    >>> display = EffectDisplay.from_estimator(model, X, y, 0, band="wald")
    >>> display.ax_.get_xlabel()
    'x0'
    >>> bool(np.all(display.lower < display.upper))
    True

    A formula model, along a raw variable and across a factor's levels:

    >>> import pandas as pd
    >>> data = pd.DataFrame({"y": y, "x": X[:, 0], "g": groups.astype(str),
    ...                      "dose": np.where(X[:, 1] > 0, "high", "low")})
    >>> model = MixedLinearRegressor(formula="y ~ poly(x, 2) * dose + (1 | g)")
    >>> model = model.fit(data)
    >>> display = EffectDisplay.from_estimator(model, data, data["y"], "x",
    ...                                        by="dose")
    >>> display.prediction.shape, display.by_levels
    ((2, 100), ['high', 'low'])
    >>> display = EffectDisplay.from_estimator(model, data, None, "dose")
    >>> list(display.grid), len(display.line_.get_xdata())
    (['high', 'low'], 2)
    """

    def __init__(
        self,
        *,
        grid,
        prediction,
        lower=None,
        upper=None,
        x_data=None,
        y_data=None,
        feature_name="x",
        target_name="y",
        band_name=None,
        categorical=False,
        by_name=None,
        by_levels=None,
    ):
        self.grid = grid
        self.prediction = prediction
        self.lower = lower
        self.upper = upper
        self.x_data = x_data
        self.y_data = y_data
        self.feature_name = feature_name
        self.target_name = target_name
        self.band_name = band_name
        self.categorical = categorical
        self.by_name = by_name
        self.by_levels = by_levels

    @classmethod
    def from_estimator(
        cls,
        estimator,
        X,
        y,
        feature,
        *,
        by=None,
        at=None,
        band=None,
        grid=None,
        grid_resolution=100,
        level=0.95,
        n_draws=1000,
        random_state=None,
        ax=None,
        **kwargs,
    ):
        """Compute the effect of ``feature`` and its band, and plot them.

        Parameters
        ----------
        estimator : MixedLinearRegressor, CompletePoolingRegressor, \
NoPoolingRegressor or Pipeline
            A fitted model, or a fitted Pipeline whose last step is one.
            The generalised models (:class:`~skmixed.MixedLogisticRegression`,
            :class:`~skmixed.MixedPoissonRegressor` and their pooling
            baselines) are drawn on the response scale: the probability of
            ``classes_[1]`` (the expected count) of a group whose random
            effects are zero, the Wald and posterior bands made on the
            link scale and mapped through the inverse link.
        X : array-like of shape (n_samples, n_features)
            Data: gives the grid's range and the other variables' typical
            values.  As in ``fit``: for a formula model the raw data frame,
            with ``group_column`` the group columns among the features, for
            a Pipeline its raw input (pandas or polars DataFrame, or array).
        y : array-like of shape (n_samples,) or None
            Responses drawn as points; None draws none.
        feature : str or int
            Column of ``X`` (a name needs ``X`` fitted with column names);
            for a Pipeline, a column of its input.
            For a formula model, a raw variable the formula reads (``"Time"``
            for ``poly(Time, 2) * Diet``), numeric or categorical: the grid
            goes through the model's formula, so the line follows every
            transform and interaction of the variable.  A categorical
            variable (strings, categories, booleans) is drawn at its levels,
            one point and interval per level.
        by : str, default=None
            A categorical column of ``X``: one line (or set of points) per
            level, the variable set to that level (``"Diet"``).
        at : dict, default=None
            Values at which to hold other columns, overriding the typical
            values: the mean of a numeric column, the first level of a
            categorical one (its reference level under R's treatment
            contrasts; categories in their order, other labels sorted).
            For a formula model the grouping columns are held too, but the
            prediction has no random effects, so their value does not matter.
        band : {"wald", "posterior", "bootstrap"}, array-like or None, \
default=None
            The named bands need a :class:`~skmixed.MixedLinearRegressor`
            (in a Pipeline: its steps are held fixed, the bootstrap refits
            only the model).
            ``"wald"``: ``x beta +- z SE`` from ``fixed_effects_cov_``.
            ``"posterior"``: quantiles of predictions from draws of the
            fixed effects, by ``estimator.sample_posterior`` if it has one,
            else from the normal ``N(fixed_effects_, fixed_effects_cov_)``.
            ``"bootstrap"``: quantiles of the predictions refitted by
            ``estimator.bootstrap``.  An array of shape
            ``(n_draws, n_grid)``: quantiles of these predicted curves (pass
            ``grid`` to say where they were evaluated; with ``by``, the
            columns run through the grid level after level of ``by``).
        grid : array-like of shape (n_grid,), default=None
            Values of the feature; ``grid_resolution`` evenly spaced values
            over the data's range if None (the levels, if categorical).
        grid_resolution : int, default=100
        level : float, default=0.95
            Coverage of the pointwise band.
        n_draws : int, default=1000
            Posterior draws or bootstrap replicates.
        random_state : int, RandomState instance or None, default=None
        ax : matplotlib Axes, default=None
        **kwargs
            Passed to :meth:`plot`.

        Returns
        -------
        display : EffectDisplay
        """
        model, steps = fitted_model(estimator, "coef_")
        frame, as_input = _input_frame(X, estimator, model, steps)
        name = _feature_name(frame, feature)
        categorical = _is_categorical(frame[name])
        if grid is None:
            grid = (
                _levels(frame[name])
                if categorical
                else _span(frame[name], grid_resolution)
            )
        grid = np.asarray(grid, dtype=object if categorical else float).ravel()
        by_name, by_levels = _by_levels(frame, by, name)
        held = [c for c in group_columns(model) if c in frame.columns]
        _check_not_groups(held, name, by_name)
        X_grid = _grid_frame(frame, name, grid, by_name, by_levels, at, held)
        X_grid = transform(steps, as_input(X_grid))  # what the model sees
        prediction = _population_prediction(model, X_grid)
        lower, upper, band_name = _band(
            model, X_grid, band, level, n_draws, random_state, prediction
        )
        shape = (-1, grid.size) if by_name is not None else (grid.size,)
        x_data = frame[name].to_numpy()
        if categorical:
            x_data = pd.Index(grid).get_indexer(x_data).astype(float)
            x_data[x_data < 0] = np.nan
        display = cls(
            grid=grid,
            prediction=prediction.reshape(shape),
            lower=None if lower is None else lower.reshape(shape),
            upper=None if upper is None else upper.reshape(shape),
            x_data=x_data.astype(float),
            y_data=response_data(model, y),
            feature_name=name,
            target_name=response_label(
                model, getattr(y, "name", None) or _response_name(model)
            ),
            band_name=band_name,
            categorical=categorical,
            by_name=by_name,
            by_levels=by_levels if by_name is not None else None,
        )
        return display.plot(ax=ax, **kwargs)

    def plot(self, ax=None, *, line_kwargs=None, band_kwargs=None, scatter_kwargs=None):
        """Draw the data, the band and the prediction.

        Parameters
        ----------
        ax : matplotlib Axes, default=None
        line_kwargs : dict, default=None
            Passed to ``ax.plot``.
        band_kwargs : dict, default=None
            Passed to ``ax.fill_between`` (``ax.vlines`` for a categorical
            variable).
        scatter_kwargs : dict, default=None
            Passed to ``ax.scatter``.

        Returns
        -------
        display : EffectDisplay
        """
        ax, fig = single_axes(ax)
        self.scatter_ = None
        if self.y_data is not None:
            points = scatter_style(self.y_data.size)
            points |= {
                "s": min(points["s"], 10),
                "alpha": min(points["alpha"], 0.5),
                "color": "0.4",
            }
            self.scatter_ = ax.scatter(
                self.x_data, self.y_data, **style(points, scatter_kwargs)
            )
        prediction = np.atleast_2d(self.prediction)
        labels = [None] if self.by_name is None else list(self.by_levels)
        # Points of the levels of `by` side by side, around each level's tick.
        offsets = 0.3 * (np.arange(len(labels)) - (len(labels) - 1) / 2) / len(labels)
        self.lines_, self.bands_ = [], []
        for k, label in enumerate(labels):
            x = (
                np.arange(self.grid.size) + offsets[k]
                if self.categorical
                else self.grid
            )
            line_label = (
                "population prediction"
                if label is None
                else f"{self.by_name} = {label}"
            )
            self.bands_.append(self._draw_band(ax, x, k, band_kwargs))
            (line,) = ax.plot(
                x,
                prediction[k],
                **style(
                    {"color": f"C{k}", "label": line_label}
                    | (
                        {"marker": "o", "linestyle": "none"} if self.categorical else {}
                    ),
                    line_kwargs,
                ),
            )
            self.lines_.append(line)
        self.line_, self.band_ = self.lines_[0], self.bands_[0]
        if self.categorical:
            ax.set_xticks(np.arange(self.grid.size), [str(v) for v in self.grid])
        ax.set(xlabel=self.feature_name, ylabel=self.target_name)
        ax.legend(loc="best", frameon=False)
        self.ax_, self.figure_ = ax, fig
        return self

    def _draw_band(self, ax, x, k, band_kwargs):
        if self.lower is None:
            return None
        lower, upper = np.atleast_2d(self.lower)[k], np.atleast_2d(self.upper)[k]
        label = self.band_name if k == 0 else None
        if self.categorical:
            return ax.vlines(
                x,
                lower,
                upper,
                **style({"color": f"C{k}", "label": label}, band_kwargs),
            )
        return ax.fill_between(
            x,
            lower,
            upper,
            **style({"alpha": 0.3, "color": f"C{k}", "label": label}, band_kwargs),
        )


def _formula_spec(estimator):
    """The fitted formula specification of a formula model, else None."""
    spec = getattr(estimator, "_spec", None)
    return spec if getattr(spec, "matrices", None) is not None else None


def _input_frame(X, estimator, model, steps):
    """The columns the user's estimator reads, and how to hand rows back to it.

    Returns a pandas frame of ``X``'s columns that ``estimator`` reads and a
    function turning rows of such a frame into its input (an array for an
    estimator fitted on arrays).
    """
    if steps is not None:  # a Pipeline: its raw input columns
        return _pipeline_frame(X, estimator)
    spec = _formula_spec(model)
    if spec is not None:  # the raw columns that the formula names
        frame = pandas_frame(X)
        columns = [c for c in spec.matrices.variables if c in frame.columns]
        return frame[columns], _same
    return _as_frame(X, model)


def _same(rows):
    return rows


def _to_array(rows):
    return rows.to_numpy()


def _to_float_array(rows):
    return rows.to_numpy(dtype=float)


def _pipeline_frame(X, pipeline):
    """A Pipeline's input columns (its ``feature_names_in_`` when fitted on names)."""
    if not is_frame(X):
        n_columns = np.shape(X)[1] if np.ndim(X) == 2 else 0
        n_features = getattr(pipeline, "n_features_in_", n_columns)
        return frame_of_array(X, [f"x{j}" for j in range(n_features)]), _to_array
    frame = pandas_frame(X)
    names = getattr(pipeline, "feature_names_in_", None)
    if names is None:
        return frame, _same
    missing = [c for c in names if c not in frame.columns]
    if missing:
        raise ValueError(f"X lacks the Pipeline's input column(s) {missing}.")
    return frame[list(names)], _same


def _check_not_groups(held, feature, by):
    """Refuse a group column as the feature or ``by``: nothing would change."""
    for role, column in [("feature", feature), ("by", by)]:
        if column is not None and column in held:
            raise ValueError(
                f"{role}={column!r} is a group column: the population prediction "
                "does not depend on it. CaterpillarDisplay draws each level's "
                "random effects."
            )


def _response_name(model):
    spec = _formula_spec(model)
    return "y" if spec is None or spec.response is None else spec.response


def _is_categorical(values):
    """Whether a column is drawn at its levels (strings, categories, booleans)."""
    dtype = values.dtype
    return not pd.api.types.is_numeric_dtype(dtype) or pd.api.types.is_bool_dtype(dtype)


def _levels(values):
    """The levels of a categorical column as the formula orders them.

    A categorical's categories that occur, in their order; other labels
    sorted (R's ``factor``), missing values left out.
    """
    values = values.dropna()
    if isinstance(values.dtype, pd.CategoricalDtype):
        present = set(values.tolist())
        return [c for c in values.cat.categories if c in present]
    unique = pd.unique(values.to_numpy(dtype=object)).tolist()
    try:
        return sorted(unique)
    except TypeError:
        return sorted(unique, key=str)


def _span(values, n):
    values = values.to_numpy(dtype=float)
    return np.linspace(np.nanmin(values), np.nanmax(values), n)


def _by_levels(frame, by, feature):
    """The column ``by`` names and its levels; (None, [None]) without it."""
    if by is None:
        return None, [None]
    name = _feature_name(frame, by)
    if name == feature or not _is_categorical(frame[name]):
        raise ValueError(
            f"by={by!r} must name a categorical column of X other than the "
            "feature (strings, categories or booleans); hold a numeric column "
            "at a value with at={...} instead."
        )
    return name, _levels(frame[name])


def _typical_values(frame, at, held=()):
    """Per column: the mean if numeric, else the first level; ``at`` overrides.

    The columns ``held`` (group labels) are at their first level, numeric or
    not.
    """
    values = {
        c: _levels(frame[c])[0]
        if c in held or _is_categorical(frame[c])
        else frame[c].mean()
        for c in frame.columns
    }
    unknown = sorted(set(at or {}) - set(frame.columns))
    if unknown:
        raise ValueError(
            f"at names {unknown}, not among the columns {list(frame.columns)}."
        )
    return values | dict(at or {})


def _grid_frame(frame, feature, grid, by, by_levels, at, held=()):
    """Rows of the grid (level after level of ``by``), other columns typical."""
    n = grid.size * len(by_levels)
    columns = {c: [v] * n for c, v in _typical_values(frame, at, held).items()}
    columns[feature] = np.tile(grid, len(by_levels))
    if by is not None:
        columns[by] = np.repeat(np.asarray(by_levels, dtype=object), grid.size)
    return pd.DataFrame({c: _column_like(frame[c], v) for c, v in columns.items()})


def _column_like(values, new):
    """``new`` values with the kind of the column ``values`` (categories kept)."""
    if isinstance(values.dtype, pd.CategoricalDtype):
        return pd.Categorical(new, dtype=values.dtype)
    if pd.api.types.is_bool_dtype(values.dtype):
        return np.asarray(new, dtype=bool)
    return np.asarray(new, dtype=object if _is_categorical(values) else float)


def _population_prediction(model, X_grid):
    """The prediction without random effects, of the rows the model sees.

    A mixed model's with ``random_effects="none"`` (lme4's ``re.form = NA``;
    its group columns, if any, are ignored), a no-pooling model's mean line
    (``intercept_``, ``coef_``), a complete-pooling model's line.  A
    generalised model's on the response scale: the probability (expected
    count) of a group whose random effects are zero.
    """
    if isinstance(model, _NoPoolingModel):  # no pooling, any target
        return to_response(model, _mean_line(model, X_grid))
    if is_generalized(model):
        return to_response(model, link_prediction(model, X_grid))
    if hasattr(model, "random_effects_"):
        return np.asarray(model.predict(X_grid, random_effects="none"), float)
    return np.asarray(model.predict(X_grid), dtype=float)


def _mean_line(model, X_grid):
    """``intercept_ + x coef_``: the mean of a no-pooling model's level lines."""
    spec = _formula_spec(model)
    if spec is None:
        return model.intercept_ + model_features(model, X_grid)[0] @ model.coef_
    frame = spec.model_frame(X_grid)
    D, _, _ = group_design(spec, frame, spec.terms[0].factor)
    y = np.full(frame.complete.shape[0], np.nan)
    y[frame.complete] = model.intercept_ + D @ model.coef_
    return y


def _as_frame(X, model):
    """A model's features (and group columns) as a frame; how to hand rows back.

    With names (or ``group_column``) the rows go back as a frame, otherwise
    as a float array.
    """
    labels = group_columns(model)
    if is_frame(X) and (hasattr(model, "feature_names_in_") or labels):
        frame = pandas_frame(X)
        names = (
            _model_feature_names(model)
            if hasattr(model, "feature_names_in_")
            else [c for c in frame.columns if c not in labels]
        )
        missing = [c for c in names + labels if c not in frame.columns]
        if missing:
            raise ValueError(f"X lacks the fitted column(s) {missing}.")
        frame = frame[names + labels]
        return frame.astype(dict.fromkeys(names, float)), _same
    # Fitted without names: the user's names if any, else x0, x1, ...
    names = [str(c) for c in X.columns] if is_frame(X) else _model_feature_names(model)
    array = np.asarray(X, dtype=float)
    if array.ndim != 2 or array.shape[1] != len(names):
        raise ValueError(
            f"X must be 2-D with {len(names)} column(s) as in fit; got shape "
            f"{array.shape}."
        )
    return pd.DataFrame(array, columns=names), _to_float_array


def _model_feature_names(estimator):
    if hasattr(estimator, "feature_names_in_"):
        return [str(c) for c in estimator.feature_names_in_]
    return [f"x{j}" for j in range(estimator.n_features_in_)]


def _feature_name(frame, feature):
    if isinstance(feature, numbers.Integral) and not isinstance(feature, bool):
        if not 0 <= feature < frame.shape[1]:
            raise ValueError(
                f"feature index {feature} is out of range for X with "
                f"{frame.shape[1]} column(s)."
            )
        return frame.columns[feature]
    if feature not in frame.columns:
        raise ValueError(
            f"feature {feature!r} is not a column of X: {list(frame.columns)}."
        )
    return feature


def _band(estimator, X_grid, band, level, n_draws, random_state, prediction):
    """Pointwise ``lower``, ``upper`` and a label; Nones for no band."""
    if band is None:
        return None, None, None
    if isinstance(band, str):
        if band not in BANDS:
            raise ValueError(
                f"band must be one of {BANDS}, an array or None; got {band!r}."
            )
        if not hasattr(estimator, "fixed_effects_cov_"):
            raise ValueError(
                f"band={band!r} needs the fixed effects' covariance of a "
                f"MixedLinearRegressor; {type(estimator).__name__} has none. Pass "
                "band=None, or an array of predicted curves."
            )
        if band == "wald":
            z = z_value(level)
            se = _wald_se(estimator, X_grid)
            if is_generalized(estimator):  # on the link scale, then mapped
                eta = link_prediction(estimator, X_grid)
                lower = to_response(estimator, eta - z * se)
                upper = to_response(estimator, eta + z * se)
                return lower, upper, f"{level:.0%} Wald band"
            return prediction - z * se, prediction + z * se, f"{level:.0%} Wald band"
        draws = _draw_curves(estimator, X_grid, band, n_draws, random_state)
        label = f"{level:.0%} {band} band"
    else:
        draws, label = np.asarray(band, dtype=float), f"{level:.0%} band"
    return (*_pointwise_quantiles(draws, prediction.size, level), label)


def _pointwise_quantiles(draws, n_grid, level):
    if draws.ndim != 2 or draws.shape[1] != n_grid:
        raise ValueError(
            f"band draws must have shape (n_draws, n_grid={n_grid}), one predicted "
            f"curve per row; got shape {draws.shape}. Pass grid= to match."
        )
    alpha = (1 - level) / 2
    lower, upper = np.nanquantile(draws, [alpha, 1 - alpha], axis=0)
    return lower, upper


def _fixed_design(estimator, X_grid):
    """Rows of the fixed-effects design on the grid, columns of ``fixed_effects_``."""
    spec = _formula_spec(estimator)
    if spec is not None:  # the formula's model matrix of the raw grid
        frame = pd.DataFrame(spec.model_frame(X_grid).X, columns=spec.features)
    else:
        frame = pd.DataFrame(model_features(estimator, X_grid)[0])
        frame.columns = _model_feature_names(estimator)
    frame.insert(0, "Intercept", 1.0)  # a feature called "Intercept" would clash
    return frame[list(estimator.fixed_effects_.index)].to_numpy()


def _wald_se(estimator, X_grid):
    G = _fixed_design(estimator, X_grid)
    V = estimator.fixed_effects_cov_.to_numpy()
    return np.sqrt(np.clip(np.einsum("ij,jk,ik->i", G, V, G), 0, None))


def _draw_curves(estimator, X_grid, kind, n_draws, random_state):
    """Predicted curves (n_draws, n_grid) from posterior draws or a bootstrap."""
    if kind == "bootstrap":
        if not hasattr(estimator, "bootstrap"):
            raise ValueError(
                "band='bootstrap' needs an estimator with a bootstrap() method; "
                "pass an array of bootstrapped predictions as band= instead."
            )
        result = estimator.bootstrap(
            lambda refit: _population_prediction(refit, X_grid),
            n_boot=n_draws,
            random_state=random_state,
        )
        return _replicates(result)
    names = list(estimator.fixed_effects_.index)
    if hasattr(estimator, "sample_posterior"):
        draws = estimator.sample_posterior(n_draws, random_state=random_state)
        beta = _posterior_fixed_effects(draws.fixed_effects, names)
    else:  # the normal approximation to the fixed effects' posterior
        beta = _normal_draws(
            estimator.fixed_effects_.to_numpy(),
            estimator.fixed_effects_cov_.to_numpy(),
            n_draws,
            check_random_state(random_state),
        )
    return to_response(estimator, beta @ _fixed_design(estimator, X_grid).T)


def _posterior_fixed_effects(fixed_effects, names):
    """Draws as an (n_draws, p) array in the order of ``fixed_effects_``."""
    if isinstance(fixed_effects, pd.DataFrame):
        missing = [n for n in names if n not in fixed_effects.columns]
        if missing:
            raise ValueError(f"the posterior draws lack fixed effect(s) {missing}.")
        return fixed_effects[names].to_numpy(dtype=float)
    beta = np.asarray(fixed_effects, dtype=float)
    if beta.ndim != 2 or beta.shape[1] != len(names):
        raise ValueError(
            f"posterior fixed-effect draws must have {len(names)} columns "
            f"({names}); got shape {beta.shape}."
        )
    return beta


def _normal_draws(mean, cov, n_draws, rng):
    """Draws from N(mean, cov); the eigendecomposition tolerates a singular cov."""
    w, Q = np.linalg.eigh(cov)
    root = Q * np.sqrt(np.clip(w, 0, None))
    return mean + rng.standard_normal((n_draws, mean.size)) @ root.T


def _replicates(result):
    """The (n_boot, n_grid) array inside whatever ``bootstrap`` returned."""
    for attribute in ("replicates", "replicates_", "statistics", "draws"):
        if hasattr(result, attribute):
            result = getattr(result, attribute)
            break
    return np.asarray(result, dtype=float)
