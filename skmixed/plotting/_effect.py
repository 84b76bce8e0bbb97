"""Effect plot: the population prediction along one feature, with a band."""

import numbers

import numpy as np
import pandas as pd
from sklearn.utils import check_random_state
from sklearn.utils.validation import check_is_fitted

from ._base import single_axes, style, z_value

BANDS = ("wald", "posterior", "bootstrap")


class EffectDisplay:
    """Population prediction along one feature, the others at their means.

    The line is ``predict`` without groups (lme4's ``re.form = ~0``) on a grid
    of the feature; the band is pointwise, from the fixed effects' normal
    approximation (``"wald"``), from draws of the fixed effects
    (``"posterior"``), from a parametric bootstrap (``"bootstrap"``), or from
    any array of predicted curves the user supplies.

    Parameters
    ----------
    grid : ndarray of shape (n_grid,)
        Values of the feature.
    prediction : ndarray of shape (n_grid,)
        Population prediction on the grid.
    lower, upper : ndarray of shape (n_grid,) or None, default=None
        Pointwise band, or None for no band.
    x_data, y_data : ndarray of shape (n_samples,) or None, default=None
        Data points drawn under the curve.
    feature_name : str, default="x"
    target_name : str, default="y"
    band_name : str or None, default=None
        How the band was made (legend label).

    Attributes
    ----------
    line_ : matplotlib Line2D
    band_ : matplotlib PolyCollection or None
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

    @classmethod
    def from_estimator(
        cls,
        estimator,
        X,
        y,
        feature,
        *,
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
        estimator : MixedLinearRegressor
            A fitted model.
        X : array-like of shape (n_samples, n_features)
            Data: gives the grid's range and the other features' means.
        y : array-like of shape (n_samples,) or None
            Responses drawn as points; None draws none.
        feature : str or int
            Column of ``X`` (a name needs ``X`` fitted with column names).
        band : {"wald", "posterior", "bootstrap"}, array-like or None, \
default=None
            ``"wald"``: ``x beta +- z SE`` from ``fixed_effects_cov_``.
            ``"posterior"``: quantiles of predictions from draws of the
            fixed effects, by ``estimator.sample_posterior`` if it has one,
            else from the normal ``N(fixed_effects_, fixed_effects_cov_)``.
            ``"bootstrap"``: quantiles of the predictions refitted by
            ``estimator.bootstrap``.  An array of shape
            ``(n_draws, n_grid)``: quantiles of these predicted curves (pass
            ``grid`` to say where they were evaluated).
        grid : array-like of shape (n_grid,), default=None
            Feature values; ``grid_resolution`` evenly spaced values over the
            data's range if None.
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
        check_is_fitted(estimator, "fixed_effects_")
        frame = _as_frame(X, estimator)
        name = _feature_name(frame, feature)
        if grid is None:
            values = frame[name].to_numpy(dtype=float)
            grid = np.linspace(values.min(), values.max(), grid_resolution)
        grid = np.asarray(grid, dtype=float).ravel()
        # Every other feature at its mean (the "typical values" of an effect plot).
        X_grid = pd.DataFrame(
            np.tile(frame.mean().to_numpy(), (grid.size, 1)), columns=frame.columns
        )
        X_grid[name] = grid
        X_grid = (
            X_grid if hasattr(estimator, "feature_names_in_") else X_grid.to_numpy()
        )
        prediction = np.asarray(estimator.predict(X_grid), dtype=float)
        lower, upper, band_name = _band(
            estimator, X_grid, band, level, n_draws, random_state, prediction
        )
        display = cls(
            grid=grid,
            prediction=prediction,
            lower=lower,
            upper=upper,
            x_data=frame[name].to_numpy(dtype=float),
            y_data=None if y is None else np.asarray(y, dtype=float).ravel(),
            feature_name=name,
            target_name=getattr(y, "name", None) or "y",
            band_name=band_name,
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
            Passed to ``ax.fill_between``.
        scatter_kwargs : dict, default=None
            Passed to ``ax.scatter``.

        Returns
        -------
        display : EffectDisplay
        """
        ax, fig = single_axes(ax)
        self.scatter_ = None
        if self.y_data is not None:
            self.scatter_ = ax.scatter(
                self.x_data,
                self.y_data,
                **style({"s": 10, "alpha": 0.5, "color": "0.4"}, scatter_kwargs),
            )
        self.band_ = None
        if self.lower is not None:
            self.band_ = ax.fill_between(
                self.grid,
                self.lower,
                self.upper,
                **style(
                    {"alpha": 0.3, "color": "C0", "label": self.band_name}, band_kwargs
                ),
            )
        (self.line_,) = ax.plot(
            self.grid,
            self.prediction,
            **style({"color": "C0", "label": "population prediction"}, line_kwargs),
        )
        ax.set(xlabel=self.feature_name, ylabel=self.target_name)
        ax.legend(loc="best", frameon=False)
        self.ax_, self.figure_ = ax, fig
        return self


def _as_frame(X, estimator):
    """``X`` as a DataFrame named as the estimator's features."""
    names = _model_feature_names(estimator)
    if isinstance(X, pd.DataFrame) and hasattr(estimator, "feature_names_in_"):
        missing = [c for c in names if c not in X.columns]
        if missing:
            raise ValueError(f"X lacks the fitted feature(s) {missing}.")
        return X[names].astype(float)
    if isinstance(X, pd.DataFrame):  # fitted without names: keep the user's
        names = [str(c) for c in X.columns]
    array = np.asarray(X, dtype=float)
    if array.ndim != 2 or array.shape[1] != len(names):
        raise ValueError(
            f"X must be 2-D with {len(names)} column(s) as in fit; got shape "
            f"{array.shape}."
        )
    return pd.DataFrame(array, columns=names)


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
        if band == "wald":
            z = z_value(level)
            se = _wald_se(estimator, X_grid)
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
    frame = pd.DataFrame(np.asarray(X_grid, dtype=float))
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
            lambda refit: refit.predict(X_grid),
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
    return beta @ _fixed_design(estimator, X_grid).T


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
