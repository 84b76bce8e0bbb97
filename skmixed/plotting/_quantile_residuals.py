"""Diagnostics of generalised models with randomized quantile residuals.

R's DHARMa panels: the residuals against the uniform quantiles
(``plotQQunif``, with a Kolmogorov-Smirnov test) and against the fitted
values (``plotResiduals``, with the residuals' running quartiles, which sit
at 0.25, 0.5 and 0.75 under the model).  The residuals come from
:func:`skmixed.inference.quantile_residuals`; Pearson residuals of 0/1 data
fall on two curves and say little, these are uniform whatever the family.
"""

import numpy as np
from scipy import stats

from ..inference._quantile_residuals import distribution_bounds
from ..inference._simulate import seed_sequence
from ._base import (
    fitted_model,
    panel_axes,
    scatter_style,
    single_axes,
    style,
    transform,
)
from ._diagnostics import RandomEffectsQQDisplay
from ._generalized import is_generalized_mixed

QUARTILES = (0.25, 0.5, 0.75)


def _ppoints(n):
    """R's ``ppoints(n)``: the plotting positions of a QQ plot."""
    a = 3.0 / 8.0 if n <= 10 else 0.5
    return (np.arange(1, n + 1) - a) / (n + 1 - 2 * a)


def _residuals(
    estimator, X, y, groups, sample_weight, offset, random_effects, random_state
):
    """Quantile residuals and response-scale fitted values of a generalised model."""
    if not is_generalized_mixed(estimator):
        raise TypeError(
            "quantile-residual plots need a fitted MixedLogisticRegression or "
            "MixedPoissonRegressor (or a Pipeline ending with one); for "
            "MixedLinearRegressor use ResidualDiagnosticsDisplay."
        )
    model, steps = fitted_model(estimator, "fitted_linear_predictor_")
    if X is not None:
        X = transform(steps, X)
    lower, upper, mean = distribution_bounds(
        model, X, y, groups, sample_weight, offset, random_effects
    )
    rng = np.random.default_rng(seed_sequence(random_state))
    return lower + rng.random(lower.shape[0]) * (upper - lower), mean, model


class UniformQQDisplay:
    """Quantile residuals against uniform quantiles (DHARMa's ``plotQQunif``).

    Under the model the points lie on the diagonal.  An S shape (too many
    residuals near 0 and 1) means overdispersion; the title gives the
    p-value of a Kolmogorov-Smirnov test of uniformity.

    Parameters
    ----------
    theoretical_quantiles : ndarray of shape (n,)
        Uniform quantiles at R's ``ppoints(n)``.
    sample_quantiles : ndarray of shape (n,)
        The sorted residuals.
    ks_pvalue : float
        p-value of the Kolmogorov-Smirnov test against the uniform.

    Attributes
    ----------
    scatter_ : matplotlib PathCollection
    line_ : matplotlib Line2D
        The diagonal.
    ax_ : matplotlib Axes
    figure_ : matplotlib Figure

    See Also
    --------
    skmixed.inference.quantile_residuals : The residuals.
    QuantileResidualDiagnosticsDisplay : All panels together.

    Examples
    --------
    >>> import matplotlib
    >>> matplotlib.use("Agg")
    >>> import numpy as np
    >>> from skmixed import MixedPoissonRegressor
    >>> from skmixed.plotting import UniformQQDisplay
    >>> rng = np.random.default_rng(0)
    >>> groups = np.repeat(np.arange(20), 10)
    >>> x = rng.normal(size=(200, 1))
    >>> y = rng.poisson(np.exp(1 + 0.3 * x[:, 0] + rng.normal(0, .5, 20)[groups]))
    >>> model = MixedPoissonRegressor().fit(x, y, groups=groups)
    >>> display = UniformQQDisplay.from_estimator(model, random_state=0)
    >>> len(display.scatter_.get_offsets())
    200
    """

    def __init__(self, *, theoretical_quantiles, sample_quantiles, ks_pvalue):
        self.theoretical_quantiles = theoretical_quantiles
        self.sample_quantiles = sample_quantiles
        self.ks_pvalue = ks_pvalue

    @classmethod
    def from_estimator(
        cls,
        estimator,
        X=None,
        y=None,
        groups=None,
        *,
        sample_weight=None,
        offset=None,
        random_effects="all",
        random_state=None,
        ax=None,
        **kwargs,
    ):
        """QQ plot of a fitted generalised model's quantile residuals.

        Parameters
        ----------
        estimator : MixedLogisticRegression, MixedPoissonRegressor or Pipeline
            A fitted generalised model, or a fitted Pipeline ending with one.
        X, y, groups, sample_weight, offset : default=None
            Rows to compute the residuals of; None: the training rows.  See
            :func:`skmixed.inference.quantile_residuals`.
        random_effects : "all", "none" or list of str, default="all"
            Conditional on these factors' predicted random effects; the
            others are integrated over (``"none"``: DHARMa's default).
        random_state : int, Generator, RandomState or None, default=None
            The residuals' uniform draws.
        ax : matplotlib Axes, default=None
        **kwargs
            Passed to :meth:`plot`.

        Returns
        -------
        display : UniformQQDisplay
        """
        residuals, _, _ = _residuals(
            estimator, X, y, groups, sample_weight, offset, random_effects, random_state
        )
        return cls.from_values(residuals, ax=ax, **kwargs)

    @classmethod
    def from_values(cls, values, *, ax=None, **kwargs):
        """Uniform QQ plot of any sample in [0, 1].

        Parameters
        ----------
        values : array-like of shape (n,)
        ax : matplotlib Axes, default=None
        **kwargs
            Passed to :meth:`plot`.

        Returns
        -------
        display : UniformQQDisplay
        """
        return cls._compute(values).plot(ax=ax, **kwargs)

    @classmethod
    def _compute(cls, values):
        sample = np.sort(np.asarray(values, dtype=float).ravel())
        if sample.size < 2 or not np.all((sample >= 0) & (sample <= 1)):
            raise ValueError(
                "a uniform QQ plot needs at least 2 values in [0, 1]; got "
                f"{sample.size} value(s)."
            )
        return cls(
            theoretical_quantiles=_ppoints(sample.size),
            sample_quantiles=sample,
            ks_pvalue=float(stats.kstest(sample, "uniform").pvalue),
        )

    def plot(self, ax=None, *, scatter_kwargs=None, line_kwargs=None):
        """Draw the QQ plot and the diagonal.

        Parameters
        ----------
        ax : matplotlib Axes, default=None
        scatter_kwargs : dict, default=None
            Passed to ``ax.scatter``.
        line_kwargs : dict, default=None
            Passed to ``ax.axline`` for the diagonal.

        Returns
        -------
        display : UniformQQDisplay
        """
        ax, fig = single_axes(ax)
        points = scatter_style(self.sample_quantiles.size)
        self.scatter_ = ax.scatter(
            self.theoretical_quantiles,
            self.sample_quantiles,
            **style({"color": "C0"} | points, scatter_kwargs),
        )
        self.line_ = ax.axline(
            (0.0, 0.0),
            slope=1.0,
            **style({"color": "C3", "linewidth": 1}, line_kwargs),
        )
        ax.set(
            xlim=(0, 1),
            ylim=(0, 1),
            xlabel="Uniform quantiles",
            ylabel="Quantile residuals",
            title=f"Uniform QQ (KS test p = {self.ks_pvalue:.3g})",
        )
        self.ax_, self.figure_ = ax, fig
        return self


class QuantileResidualsVsFittedDisplay:
    """Quantile residuals against fitted values (DHARMa's ``plotResiduals``).

    The lines are the residuals' quartiles in bins of the fitted values
    (equal numbers of points); under the model they are flat at 0.25, 0.5
    and 0.75 (the dashed lines).  A trend means a misspecified mean (a
    missing term, a wrong link), quartiles spreading apart overdispersion.

    Parameters
    ----------
    fitted : ndarray of shape (n,)
        Fitted values on the response scale (probabilities, expected
        counts), or their ranks scaled to [0, 1] with ``rank=True``.
    residuals : ndarray of shape (n,)
        Quantile residuals.
    bin_centers : ndarray of shape (n_bins,)
        Median fitted value of each bin.
    bin_quartiles : ndarray of shape (3, n_bins)
        The residuals' 25%, 50% and 75% quantiles in each bin.
    rank : bool, default=True
        Whether ``fitted`` holds ranks (the x label says so).

    Attributes
    ----------
    scatter_ : matplotlib PathCollection
    quartile_lines_ : list of matplotlib Line2D
        The binned quartiles, 25%, 50%, 75%.
    reference_lines_ : list of matplotlib Line2D
        The horizontal lines at 0.25, 0.5, 0.75.
    ax_ : matplotlib Axes
    figure_ : matplotlib Figure

    Examples
    --------
    >>> import matplotlib
    >>> matplotlib.use("Agg")
    >>> import numpy as np
    >>> from skmixed import MixedLogisticRegression
    >>> from skmixed.plotting import QuantileResidualsVsFittedDisplay
    >>> rng = np.random.default_rng(0)
    >>> groups = np.repeat(np.arange(20), 15)
    >>> x = rng.normal(size=(300, 1))
    >>> eta = 0.5 * x[:, 0] + rng.normal(size=20)[groups]
    >>> y = rng.random(300) < 1 / (1 + np.exp(-eta))
    >>> model = MixedLogisticRegression().fit(x, y, groups=groups)
    >>> display = QuantileResidualsVsFittedDisplay.from_estimator(
    ...     model, random_state=0
    ... )
    >>> display.bin_quartiles.shape[0]
    3
    """

    def __init__(self, *, fitted, residuals, bin_centers, bin_quartiles, rank=True):
        self.fitted = fitted
        self.residuals = residuals
        self.bin_centers = bin_centers
        self.bin_quartiles = bin_quartiles
        self.rank = rank

    @classmethod
    def from_estimator(
        cls,
        estimator,
        X=None,
        y=None,
        groups=None,
        *,
        sample_weight=None,
        offset=None,
        random_effects="all",
        rank=True,
        n_bins=None,
        random_state=None,
        ax=None,
        **kwargs,
    ):
        """Quantile residuals of a fitted generalised model against its fit.

        Parameters
        ----------
        estimator : MixedLogisticRegression, MixedPoissonRegressor or Pipeline
        X, y, groups, sample_weight, offset, random_effects, random_state :
            As for :meth:`UniformQQDisplay.from_estimator`.
        rank : bool, default=True
            Plot against the fitted values' ranks (scaled to [0, 1]), which
            spreads the points evenly (DHARMa's default); False: against
            the fitted values.
        n_bins : int, default=None
            Bins of the running quartiles; None: one per 30 points, from 1
            to 10.
        ax : matplotlib Axes, default=None
        **kwargs
            Passed to :meth:`plot`.

        Returns
        -------
        display : QuantileResidualsVsFittedDisplay
        """
        residuals, fitted, _ = _residuals(
            estimator, X, y, groups, sample_weight, offset, random_effects, random_state
        )
        display = cls._compute(residuals, fitted, rank=rank, n_bins=n_bins)
        return display.plot(ax=ax, **kwargs)

    @classmethod
    def _compute(cls, residuals, fitted, *, rank=True, n_bins=None):
        residuals = np.asarray(residuals, dtype=float)
        fitted = np.asarray(fitted, dtype=float)
        if rank:
            fitted = (stats.rankdata(fitted) - 1) / max(fitted.size - 1, 1)
        if n_bins is None:
            n_bins = int(np.clip(fitted.size // 30, 1, 10))
        order = np.argsort(fitted, kind="stable")
        bins = [b for b in np.array_split(order, n_bins) if b.size]
        centers = np.array([np.median(fitted[b]) for b in bins])
        quartiles = np.array([np.quantile(residuals[b], QUARTILES) for b in bins]).T
        return cls(
            fitted=fitted,
            residuals=residuals,
            bin_centers=centers,
            bin_quartiles=quartiles,
            rank=rank,
        )

    def plot(self, ax=None, *, scatter_kwargs=None, line_kwargs=None):
        """Draw the residuals, their binned quartiles and the reference lines.

        Parameters
        ----------
        ax : matplotlib Axes, default=None
        scatter_kwargs : dict, default=None
            Passed to ``ax.scatter``.
        line_kwargs : dict, default=None
            Passed to ``ax.plot`` for the binned quartiles.

        Returns
        -------
        display : QuantileResidualsVsFittedDisplay
        """
        ax, fig = single_axes(ax)
        self.scatter_ = ax.scatter(
            self.fitted,
            self.residuals,
            **style({"color": "C0"} | scatter_style(self.fitted.size), scatter_kwargs),
        )
        self.reference_lines_ = [
            ax.axhline(q, color="0.4", linestyle="--", linewidth=1) for q in QUARTILES
        ]
        self.quartile_lines_ = [
            ax.plot(
                self.bin_centers,
                values,
                **style({"color": "C3", "linewidth": 1.5, "marker": "."}, line_kwargs),
            )[0]
            for values in self.bin_quartiles
        ]
        xlabel = "Fitted values (rank)" if self.rank else "Fitted values"
        ax.set(
            ylim=(0, 1),
            xlabel=xlabel,
            ylabel="Quantile residuals",
            title="Residuals vs fitted",
        )
        self.ax_, self.figure_ = ax, fig
        return self


class QuantileResidualDiagnosticsDisplay:
    """A generalised model's diagnostics: quantile residuals and the random effects.

    The uniform QQ plot and the residuals against the fitted values (one set
    of residuals for both), then a normal QQ plot of each random-effect
    term's conditional modes.  :func:`plot_diagnostics` draws this for a
    generalised model.

    Parameters
    ----------
    qq : UniformQQDisplay
    residuals_vs_fitted : QuantileResidualsVsFittedDisplay
    random_effects_qq : RandomEffectsQQDisplay

    Attributes
    ----------
    axes_ : list of matplotlib Axes
        Uniform QQ, residuals vs fitted, then one per random-effect term.
    figure_ : matplotlib Figure

    Examples
    --------
    >>> import matplotlib
    >>> matplotlib.use("Agg")
    >>> import numpy as np
    >>> from skmixed import MixedPoissonRegressor
    >>> from skmixed.plotting import plot_diagnostics
    >>> rng = np.random.default_rng(0)
    >>> groups = np.repeat(np.arange(20), 10)
    >>> x = rng.normal(size=(200, 1))
    >>> y = rng.poisson(np.exp(1 + 0.3 * x[:, 0] + rng.normal(0, .5, 20)[groups]))
    >>> model = MixedPoissonRegressor().fit(x, y, groups=groups)
    >>> display = plot_diagnostics(model, random_state=0)
    >>> [ax.get_title()[:10] for ax in display.axes_]
    ['Uniform QQ', 'Residuals ', 'group: Int']
    """

    def __init__(self, *, qq, residuals_vs_fitted, random_effects_qq):
        self.qq = qq
        self.residuals_vs_fitted = residuals_vs_fitted
        self.random_effects_qq = random_effects_qq

    @classmethod
    def from_estimator(
        cls,
        estimator,
        X=None,
        y=None,
        groups=None,
        *,
        sample_weight=None,
        offset=None,
        random_effects="all",
        factor=None,
        rank=True,
        random_state=None,
        ax=None,
        n_cols=2,
        **kwargs,
    ):
        """Compute the quantile residuals once and draw every panel.

        Parameters
        ----------
        estimator : MixedLogisticRegression, MixedPoissonRegressor or Pipeline
        X, y, groups, sample_weight, offset, random_effects, random_state :
            As for :meth:`UniformQQDisplay.from_estimator`.
        factor : str or list of str, default=None
            Grouping factor(s) whose random effects get QQ panels; all if None.
        rank : bool, default=True
            As for :meth:`QuantileResidualsVsFittedDisplay.from_estimator`.
        ax : array of matplotlib Axes, default=None
            At least ``2 + n_terms`` Axes; a new figure if None.
        n_cols : int, default=2
        **kwargs
            Passed to :meth:`plot`.

        Returns
        -------
        display : QuantileResidualDiagnosticsDisplay
        """
        residuals, fitted, model = _residuals(
            estimator, X, y, groups, sample_weight, offset, random_effects, random_state
        )
        display = cls(
            qq=UniformQQDisplay._compute(residuals),
            residuals_vs_fitted=QuantileResidualsVsFittedDisplay._compute(
                residuals, fitted, rank=rank
            ),
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
        scatter_kwargs, line_kwargs : dict, default=None
            Passed to every panel's ``plot``.

        Returns
        -------
        display : QuantileResidualDiagnosticsDisplay
        """
        n_panels = 2 + len(self.random_effects_qq.qq_displays)
        axes, fig = panel_axes(ax, n_panels, n_cols)
        styles = dict(scatter_kwargs=scatter_kwargs, line_kwargs=line_kwargs)
        self.qq.plot(ax=axes[0], **styles)
        self.residuals_vs_fitted.plot(ax=axes[1], **styles)
        self.random_effects_qq.plot(ax=axes[2:], **styles)
        self.axes_, self.figure_ = axes, fig
        return self
