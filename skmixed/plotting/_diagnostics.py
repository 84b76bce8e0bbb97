"""Residual diagnostics: residuals against fitted values, normal QQ plots.

These are the panels of lme4's ``plot(m)`` and ``qqmath(ranef(m))``, and
together the tutorial's 2x2 diagnostic figure.  Points get lighter as they
get more numerous (``scatter_style``), so that dense regions still show.
"""

import numpy as np

from ._base import (
    check_mixed_model,
    fitted_model,
    normal_quantiles,
    panel_axes,
    pearson_residuals,
    quartile_line,
    resolve_factors,
    scatter_style,
    single_axes,
    style,
)


def loess_smooth(x, y, x_eval, span=2.0 / 3.0):
    """Local-linear smooth with tricube weights, evaluated at ``x_eval``.

    This is R's ``loess(degree = 1, family = "gaussian")``, what lattice's
    ``type = "smooth"`` draws on lme4's residual plot.  Each evaluation is one
    weighted least-squares line through the ``span`` fraction of nearest
    points, so the cost is O(n) per evaluation point.
    """
    x, y = np.asarray(x, float), np.asarray(y, float)
    k = min(x.size, max(2, int(np.floor(span * x.size))))
    out = np.empty(len(x_eval))
    for i, x0 in enumerate(x_eval):
        d = np.abs(x - x0)
        h = max(np.partition(d, k - 1)[k - 1], np.finfo(float).tiny)
        w = np.clip(1 - (d / h) ** 3, 0, None) ** 3
        out[i] = _weighted_line_at(x, y, w, x0)
    return out


def _weighted_line_at(x, y, w, x0):
    sw = w.sum()
    xm, ym = w @ x / sw, w @ y / sw
    sxx = w @ (x - xm) ** 2
    if sxx <= 1e-12 * max(1.0, xm**2) * sw:  # all neighbours at one x: a mean
        return ym
    return ym + (w @ ((x - xm) * (y - ym)) / sxx) * (x0 - xm)


class ResidualsVsFittedDisplay:
    """Pearson residuals against fitted values, with a zero line and a smooth.

    Create it with :meth:`from_estimator`; the constructor only stores data.

    Parameters
    ----------
    fitted : ndarray of shape (n_samples,)
        Conditional fitted values.
    residuals : ndarray of shape (n_samples,)
        Pearson residuals (``residuals_ / sigma_``).
    smooth : tuple of two ndarrays or None, default=None
        ``(x, y)`` of a smooth through the points, or None for no smooth.

    Attributes
    ----------
    scatter_ : matplotlib PathCollection
        The points.
    zero_line_ : matplotlib Line2D
        The horizontal line at zero.
    smooth_line_ : matplotlib Line2D or None
        The smooth, if any.
    ax_ : matplotlib Axes
    figure_ : matplotlib Figure

    See Also
    --------
    QQDisplay : Normal QQ plot of the residuals.
    ResidualDiagnosticsDisplay : All diagnostic panels in one figure.

    Examples
    --------
    >>> import matplotlib
    >>> matplotlib.use("Agg")
    >>> import numpy as np
    >>> from skmixed import MixedLinearRegressor
    >>> from skmixed.plotting import ResidualsVsFittedDisplay
    >>> rng = np.random.default_rng(0)
    >>> groups = np.repeat(np.arange(10), 20)
    >>> X = rng.normal(size=(200, 1))
    >>> y = 1 + 2 * X[:, 0] + rng.normal(size=10)[groups] + rng.normal(size=200)
    >>> model = MixedLinearRegressor().fit(X, y, groups=groups)
    >>> display = ResidualsVsFittedDisplay.from_estimator(model)
    >>> len(display.scatter_.get_offsets())
    200
    """

    def __init__(self, *, fitted, residuals, smooth=None):
        self.fitted = fitted
        self.residuals = residuals
        self.smooth = smooth

    @classmethod
    def from_estimator(
        cls, estimator, *, smooth=True, span=2.0 / 3.0, n_smooth=80, ax=None, **kwargs
    ):
        """Compute the residuals of a fitted model and plot them.

        Parameters
        ----------
        estimator : MixedLinearRegressor or Pipeline
            A fitted model, or a fitted Pipeline whose last step is one.
        smooth : bool, default=True
            Add a local-linear (loess) smooth through the points.
        span : float, default=2/3
            Fraction of the points in each local fit of the smooth.
        n_smooth : int, default=80
            Number of points at which the smooth is evaluated.
        ax : matplotlib Axes, default=None
            Axes to draw on; a new figure if None.
        **kwargs
            Passed to :meth:`plot`.

        Returns
        -------
        display : ResidualsVsFittedDisplay
        """
        display = cls._compute(estimator, smooth=smooth, span=span, n_smooth=n_smooth)
        return display.plot(ax=ax, **kwargs)

    @classmethod
    def _compute(cls, estimator, *, smooth=True, span=2.0 / 3.0, n_smooth=80):
        model, _ = fitted_model(estimator, "fitted_values_")
        residuals = pearson_residuals(model)
        fitted = np.asarray(model.fitted_values_, dtype=float)
        curve = None
        if smooth and fitted.size > 2 and np.ptp(fitted) > 0:
            grid = np.linspace(fitted.min(), fitted.max(), n_smooth)
            curve = (grid, loess_smooth(fitted, residuals, grid, span))
        return cls(fitted=fitted, residuals=residuals, smooth=curve)

    def plot(self, ax=None, *, scatter_kwargs=None, line_kwargs=None):
        """Draw the residuals.

        Parameters
        ----------
        ax : matplotlib Axes, default=None
            Axes to draw on; a new figure if None.
        scatter_kwargs : dict, default=None
            Passed to ``ax.scatter`` for the points; by default their alpha
            falls from 0.8 (up to 400 points) as ``sqrt(400 / n)``.
        line_kwargs : dict, default=None
            Passed to ``ax.plot`` for the smooth.

        Returns
        -------
        display : ResidualsVsFittedDisplay
        """
        ax, fig = single_axes(ax)
        self.scatter_ = ax.scatter(
            self.fitted,
            self.residuals,
            **style({"color": "C0"} | scatter_style(self.fitted.size), scatter_kwargs),
        )
        self.zero_line_ = ax.axhline(0.0, color="0.4", linestyle="--", linewidth=1)
        self.smooth_line_ = None
        if self.smooth is not None:
            (self.smooth_line_,) = ax.plot(
                *self.smooth, **style({"color": "C3", "linewidth": 1.5}, line_kwargs)
            )
        ax.set(
            xlabel="Fitted values",
            ylabel="Pearson residuals",
            title="Residuals vs fitted",
        )
        self.ax_, self.figure_ = ax, fig
        return self


class QQDisplay:
    """Normal quantile-quantile plot with R's ``qqline`` reference line.

    Parameters
    ----------
    theoretical_quantiles : ndarray of shape (n,)
        Standard normal quantiles at R's ``ppoints(n)``.
    sample_quantiles : ndarray of shape (n,)
        The sorted values.
    reference_line : tuple of float
        ``(intercept, slope)`` of the line through the quartiles.
    name : str, default="Pearson residuals"
        What the values are; the title and y label.

    Attributes
    ----------
    scatter_ : matplotlib PathCollection
    line_ : matplotlib Line2D
        The reference line.
    ax_ : matplotlib Axes
    figure_ : matplotlib Figure

    See Also
    --------
    RandomEffectsQQDisplay : QQ plots of the predicted random effects.

    Examples
    --------
    >>> import matplotlib
    >>> matplotlib.use("Agg")
    >>> import numpy as np
    >>> from skmixed.plotting import QQDisplay
    >>> values = np.random.default_rng(0).normal(size=50)
    >>> display = QQDisplay.from_values(values, name="draws")
    >>> display.ax_.get_ylabel()
    'draws'
    """

    def __init__(
        self,
        *,
        theoretical_quantiles,
        sample_quantiles,
        reference_line,
        name="Pearson residuals",
    ):
        self.theoretical_quantiles = theoretical_quantiles
        self.sample_quantiles = sample_quantiles
        self.reference_line = reference_line
        self.name = name

    @classmethod
    def from_estimator(cls, estimator, *, ax=None, **kwargs):
        """QQ plot of a fitted model's Pearson residuals.

        Parameters
        ----------
        estimator : MixedLinearRegressor or Pipeline
            A fitted model, or a fitted Pipeline whose last step is one.
        ax : matplotlib Axes, default=None
        **kwargs
            Passed to :meth:`plot`.

        Returns
        -------
        display : QQDisplay
        """
        return cls.from_values(
            pearson_residuals(estimator), name="Pearson residuals", ax=ax, **kwargs
        )

    @classmethod
    def from_values(cls, values, *, name="Sample", ax=None, **kwargs):
        """QQ plot of any 1-D sample.

        Parameters
        ----------
        values : array-like of shape (n,)
        name : str, default="Sample"
        ax : matplotlib Axes, default=None
        **kwargs
            Passed to :meth:`plot`.

        Returns
        -------
        display : QQDisplay
        """
        return cls._compute(values, name=name).plot(ax=ax, **kwargs)

    @classmethod
    def _compute(cls, values, *, name):
        sample = np.sort(np.asarray(values, dtype=float).ravel())
        if sample.size < 2 or not np.all(np.isfinite(sample)):
            raise ValueError(
                f"a QQ plot needs at least 2 finite values; {name!r} has "
                f"{sample.size} value(s), {np.sum(~np.isfinite(sample))} not finite."
            )
        theoretical = normal_quantiles(sample.size)
        return cls(
            theoretical_quantiles=theoretical,
            sample_quantiles=sample,
            reference_line=quartile_line(theoretical, sample),
            name=name,
        )

    def plot(self, ax=None, *, scatter_kwargs=None, line_kwargs=None):
        """Draw the QQ plot.

        Parameters
        ----------
        ax : matplotlib Axes, default=None
        scatter_kwargs : dict, default=None
            Passed to ``ax.scatter``; by default the points' alpha falls
            from 0.8 (up to 400 points) as ``sqrt(400 / n)``.
        line_kwargs : dict, default=None
            Passed to ``ax.axline`` for the reference line.

        Returns
        -------
        display : QQDisplay
        """
        ax, fig = single_axes(ax)
        points = scatter_style(self.sample_quantiles.size)
        self.scatter_ = ax.scatter(
            self.theoretical_quantiles,
            self.sample_quantiles,
            **style({"color": "C0"} | points, scatter_kwargs),
        )
        intercept, slope = self.reference_line
        self.line_ = ax.axline(
            (0.0, intercept),
            slope=slope,
            **style({"color": "0.4", "linestyle": "--", "linewidth": 1}, line_kwargs),
        )
        ax.set(xlabel="Standard normal quantiles", ylabel=self.name, title=self.name)
        self.ax_, self.figure_ = ax, fig
        return self


class RandomEffectsQQDisplay:
    """Normal QQ plot of each random-effect term (lme4's ``qqmath(ranef(m))``).

    Parameters
    ----------
    qq_displays : list of QQDisplay
        One per (grouping factor, term), not yet drawn.

    Attributes
    ----------
    axes_ : list of matplotlib Axes
        One per panel, in the order of ``qq_displays``.
    figure_ : matplotlib Figure

    Examples
    --------
    >>> import matplotlib
    >>> matplotlib.use("Agg")
    >>> import numpy as np
    >>> from skmixed import MixedLinearRegressor
    >>> from skmixed.plotting import RandomEffectsQQDisplay
    >>> rng = np.random.default_rng(0)
    >>> groups = np.repeat(np.arange(10), 20)
    >>> X = rng.normal(size=(200, 1))
    >>> y = 1 + 2 * X[:, 0] + rng.normal(size=10)[groups] + rng.normal(size=200)
    >>> model = MixedLinearRegressor(random_slopes=[0]).fit(X, y, groups=groups)
    >>> display = RandomEffectsQQDisplay.from_estimator(model)
    >>> [ax.get_title() for ax in display.axes_]
    ['group: Intercept', 'group: x0']
    """

    def __init__(self, *, qq_displays):
        self.qq_displays = qq_displays

    @classmethod
    def from_estimator(cls, estimator, *, factor=None, ax=None, n_cols=2, **kwargs):
        """QQ plots of a fitted model's predicted random effects (BLUPs).

        Parameters
        ----------
        estimator : MixedLinearRegressor or Pipeline
            A fitted model with random effects, or a fitted Pipeline whose
            last step is one.
        factor : str or list of str, default=None
            Grouping factor(s) to plot; all of them if None.
        ax : array of matplotlib Axes, default=None
            One Axes per panel; a new figure if None.
        n_cols : int, default=2
            Columns of the panel grid of a new figure.
        **kwargs
            Passed to :meth:`plot`.

        Returns
        -------
        display : RandomEffectsQQDisplay
        """
        return cls._compute(estimator, factor=factor).plot(
            ax=ax, n_cols=n_cols, **kwargs
        )

    @classmethod
    def _compute(cls, estimator, *, factor=None):
        model = check_mixed_model(estimator)
        qq = [
            QQDisplay._compute(values, name=f"{name}: {term}")
            for name in resolve_factors(model, factor)
            for term, values in model.random_effects_[name].items()
        ]
        return cls(qq_displays=qq)

    def plot(self, ax=None, *, n_cols=2, scatter_kwargs=None, line_kwargs=None):
        """Draw one QQ panel per random-effect term.

        Parameters
        ----------
        ax : array of matplotlib Axes, default=None
            At least one Axes per panel; a new figure if None.
        n_cols : int, default=2
            Columns of the grid of a new figure.
        scatter_kwargs, line_kwargs : dict, default=None
            Passed to :meth:`QQDisplay.plot`.

        Returns
        -------
        display : RandomEffectsQQDisplay
        """
        axes, fig = panel_axes(ax, len(self.qq_displays), n_cols)
        for qq, panel in zip(self.qq_displays, axes):
            qq.plot(ax=panel, scatter_kwargs=scatter_kwargs, line_kwargs=line_kwargs)
            panel.set_ylabel("Random effect")
        self.axes_, self.figure_ = axes, fig
        return self


class ResidualDiagnosticsDisplay:
    """The diagnostic panels in one figure: residuals, their QQ plot, the BLUPs'.

    For a model with a random intercept and one random slope this is the
    tutorial's 2x2 figure; more terms add panels.

    Parameters
    ----------
    residuals_vs_fitted : ResidualsVsFittedDisplay
    qq : QQDisplay
    random_effects_qq : RandomEffectsQQDisplay

    Attributes
    ----------
    axes_ : list of matplotlib Axes
        Residuals vs fitted, residual QQ, then one per random-effect term.
    figure_ : matplotlib Figure

    See Also
    --------
    plot_diagnostics : The same, as a function.

    Examples
    --------
    >>> import matplotlib
    >>> matplotlib.use("Agg")
    >>> import numpy as np
    >>> from skmixed import MixedLinearRegressor
    >>> from skmixed.plotting import ResidualDiagnosticsDisplay
    >>> rng = np.random.default_rng(0)
    >>> groups = np.repeat(np.arange(10), 20)
    >>> X = rng.normal(size=(200, 1))
    >>> y = 1 + 2 * X[:, 0] + rng.normal(size=10)[groups] + rng.normal(size=200)
    >>> model = MixedLinearRegressor(random_slopes=[0]).fit(X, y, groups=groups)
    >>> display = ResidualDiagnosticsDisplay.from_estimator(model)
    >>> len(display.axes_)
    4
    """

    def __init__(self, *, residuals_vs_fitted, qq, random_effects_qq):
        self.residuals_vs_fitted = residuals_vs_fitted
        self.qq = qq
        self.random_effects_qq = random_effects_qq

    @classmethod
    def from_estimator(
        cls, estimator, *, factor=None, smooth=True, ax=None, n_cols=2, **kwargs
    ):
        """Compute every diagnostic of a fitted model and draw them together.

        Parameters
        ----------
        estimator : MixedLinearRegressor or Pipeline
            A fitted model with random effects, or a fitted Pipeline whose
            last step is one.
        factor : str or list of str, default=None
            Grouping factor(s) whose random effects get QQ panels; all if None.
        smooth : bool, default=True
            Add a smooth to the residuals-vs-fitted panel.
        ax : array of matplotlib Axes, default=None
            At least ``2 + n_terms`` Axes; a new figure if None.
        n_cols : int, default=2
            Columns of the grid of a new figure.
        **kwargs
            Passed to :meth:`plot`.

        Returns
        -------
        display : ResidualDiagnosticsDisplay
        """
        model = check_mixed_model(estimator)
        display = cls(
            residuals_vs_fitted=ResidualsVsFittedDisplay._compute(model, smooth=smooth),
            qq=QQDisplay._compute(pearson_residuals(model), name="Pearson residuals"),
            random_effects_qq=RandomEffectsQQDisplay._compute(model, factor=factor),
        )
        return display.plot(ax=ax, n_cols=n_cols, **kwargs)

    def plot(self, ax=None, *, n_cols=2, scatter_kwargs=None, line_kwargs=None):
        """Draw all panels.

        Parameters
        ----------
        ax : array of matplotlib Axes, default=None
            At least ``2 + n_terms`` Axes; a new figure if None.
        n_cols : int, default=2
            Columns of the grid of a new figure.
        scatter_kwargs, line_kwargs : dict, default=None
            Passed to every panel's ``plot``.

        Returns
        -------
        display : ResidualDiagnosticsDisplay
        """
        n_panels = 2 + len(self.random_effects_qq.qq_displays)
        axes, fig = panel_axes(ax, n_panels, n_cols)
        styles = dict(scatter_kwargs=scatter_kwargs, line_kwargs=line_kwargs)
        self.residuals_vs_fitted.plot(ax=axes[0], **styles)
        self.qq.plot(ax=axes[1], **styles)
        self.random_effects_qq.plot(ax=axes[2:], **styles)
        self.axes_, self.figure_ = axes, fig
        return self


def plot_diagnostics(estimator, **kwargs):
    """Draw a fitted mixed model's residual and random-effect diagnostics.

    Shorthand for :meth:`ResidualDiagnosticsDisplay.from_estimator`; for a
    generalised model (:class:`~skmixed.MixedLogisticRegression`,
    :class:`~skmixed.MixedPoissonRegressor`), for
    :meth:`QuantileResidualDiagnosticsDisplay.from_estimator` (randomized
    quantile residuals, DHARMa's).

    Parameters
    ----------
    estimator : MixedLinearRegressor or Pipeline
        A fitted model with random effects, or a fitted Pipeline whose last
        step is one.
    **kwargs
        Passed to :meth:`ResidualDiagnosticsDisplay.from_estimator`.

    Returns
    -------
    display : ResidualDiagnosticsDisplay

    Examples
    --------
    >>> import matplotlib
    >>> matplotlib.use("Agg")
    >>> import numpy as np
    >>> from skmixed import MixedLinearRegressor
    >>> from skmixed.plotting import plot_diagnostics
    >>> rng = np.random.default_rng(0)
    >>> groups = np.repeat(np.arange(10), 20)
    >>> X = rng.normal(size=(200, 1))
    >>> y = 1 + 2 * X[:, 0] + rng.normal(size=10)[groups] + rng.normal(size=200)
    >>> model = MixedLinearRegressor().fit(X, y, groups=groups)
    >>> display = plot_diagnostics(model)
    >>> [ax.get_title() for ax in display.axes_]
    ['Residuals vs fitted', 'Pearson residuals', 'group: Intercept']
    """
    from ._generalized import is_generalized_mixed

    if is_generalized_mixed(estimator):
        from ._quantile_residuals import QuantileResidualDiagnosticsDisplay

        return QuantileResidualDiagnosticsDisplay.from_estimator(estimator, **kwargs)
    return ResidualDiagnosticsDisplay.from_estimator(estimator, **kwargs)
