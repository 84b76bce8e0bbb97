"""Shrinkage plot: no pooling, partial pooling (the mixed model), complete pooling."""

import warnings
from dataclasses import replace

import numpy as np
import pandas as pd

from .._groups import check_groups, lookup_levels
from .._pooling import group_design
from ._base import (
    check_max_levels,
    check_mixed_model,
    fitted_model,
    level_labels,
    levels_figure_heights,
    resolve_factors,
    set_level_ticks,
    single_axes,
    style,
    transform,
)
from ._generalized import is_generalized, response_data
from ._inputs import model_features


class ShrinkageDisplay:
    """Per level, the no-pooling estimate of a term and its mixed-model estimate.

    Arrows go from each level's own least-squares estimate (no pooling) to
    its mixed-model estimate (fixed effect + BLUP, partial pooling); the
    vertical line is the population value (the fixed effect).  Levels with
    little data or far from the population move the most.

    A new figure grows with the number of levels (0.2 inch per level, up to
    30 inches), so that every level's label is readable; past that, or on a
    given Axes too short for them, every k-th level is labelled.  For
    hundreds of levels, ``max_levels`` keeps the levels with the largest
    absolute random effect (``|mixed - population|``).

    Parameters
    ----------
    no_pooling : Series
        Per level, the no-pooling estimate of the term (NaN where a level's
        data cannot identify it).
    mixed : Series
        Per level, the mixed-model estimate, indexed as ``no_pooling``.
    population : float
        The fixed effect of the term (0 when the term has no fixed effect).
    n_obs : Series
        Per level, the number of observations.
    term : str
    factor : str

    Attributes
    ----------
    arrows_ : list of matplotlib Annotation
        One per level with a no-pooling estimate, bottom to top.
    no_pooling_scatter_, mixed_scatter_ : matplotlib PathCollection
    population_line_ : matplotlib Line2D
    levels_ : Index
        The levels drawn, bottom to top.
    ax_ : matplotlib Axes
    figure_ : matplotlib Figure

    Notes
    -----
    The no-pooling estimates are those of
    :class:`~skmixed.NoPoolingRegressor` with ``group_slopes`` set to the
    factor's random slopes (lme4's ``lmList`` when every feature has one):
    within each level a least-squares line on the factor's terms, the other
    features with one slope shared by all levels.  For ``y ~ 1 + (1 | g)``
    they are the level means.  Other grouping factors' random effects are
    ignored.  For a generalised model (:class:`~skmixed.MixedLogisticRegression`,
    :class:`~skmixed.MixedPoissonRegressor`, fitted on 0/1 labels or counts)
    both estimates are on the link scale and the no-pooling ones are
    :class:`~skmixed.NoPoolingLogisticRegression`'s (Poisson's); a level
    whose outcomes are all alike has no finite one (no arrow).

    For a formula model (``formula=...``) the data are the raw data frame
    and the grouping factor is the formula's: the no-pooling fit is
    ``NoPoolingRegressor(formula=...)`` on the formula's fixed part and the
    factor's random-effect terms (the term's model-matrix columns vary by
    level, the other fixed-part columns are shared), on the rows the mixed
    model was fitted on.

    A model fitted with ``group_column`` takes its groups from that column
    of ``X``; a Pipeline's steps before the model transform ``X`` first, so
    the terms and features are those the model sees (a scaled ``Temp`` is
    drawn on its scaled axis).

    Examples
    --------
    >>> import matplotlib
    >>> matplotlib.use("Agg")
    >>> import numpy as np
    >>> from skmixed import MixedLinearRegressor
    >>> from skmixed.plotting import ShrinkageDisplay
    >>> rng = np.random.default_rng(0)
    >>> groups = np.repeat(np.arange(10), 5)
    >>> X = rng.normal(size=(50, 1))
    >>> y = 1 + 2 * X[:, 0] + rng.normal(size=10)[groups] + rng.normal(size=50)
    >>> model = MixedLinearRegressor().fit(X, y, groups=groups)
    >>> display = ShrinkageDisplay.from_estimator(model, X, y, groups)
    >>> len(display.arrows_)
    10
    >>> bool(np.all(abs(display.mixed - display.population)
    ...             <= abs(display.no_pooling - display.population)))
    True

    A formula model reads everything from the raw data frame:

    >>> import pandas as pd
    >>> data = pd.DataFrame({"y": y, "x": X[:, 0], "g": groups.astype(str)})
    >>> model = MixedLinearRegressor(formula="y ~ x + (1 | g)").fit(data)
    >>> display = ShrinkageDisplay.from_estimator(model, data)
    >>> len(display.arrows_)
    10
    """

    def __init__(self, *, no_pooling, mixed, population, n_obs, term, factor):
        self.no_pooling = no_pooling
        self.mixed = mixed
        self.population = population
        self.n_obs = n_obs
        self.term = term
        self.factor = factor

    @classmethod
    def from_estimator(
        cls,
        estimator,
        X,
        y=None,
        groups=None,
        *,
        term="Intercept",
        factor=None,
        max_levels=None,
        ax=None,
        **kwargs,
    ):
        """Compute both estimates of ``term`` for each level and plot them.

        Parameters
        ----------
        estimator : MixedLinearRegressor or Pipeline
            A fitted model with random effects, or a fitted Pipeline whose
            last step is one.
        X : array-like of shape (n_samples, n_features)
            The training data, as given to ``fit`` (of the Pipeline, for a
            Pipeline; for a formula model, the raw data frame; with
            ``group_column``, the group columns among the others).
        y : array-like of shape (n_samples,), default=None
            Required for a model fitted on arrays; a formula model reads it
            from ``X`` when None.
        groups : array-like of shape (n_samples,) or (n_samples, n_factors), \
default=None
            Required for a model fitted with ``groups`` (passed or routed by
            metadata routing); must be None for a formula model or one with
            ``group_column`` (the grouping factors are columns of ``X``).
        term : str, default="Intercept"
            A random-effect term of ``factor``: ``"Intercept"`` or a slope's
            feature name (a formula's column name, e.g. ``"Days"``).
        factor : str, default=None
            Grouping factor; may be None when the model has only one.
        max_levels : int, default=None
            Draw at most this many levels: those with the largest absolute
            random effect of ``term`` (``|mixed - population|``).  None draws
            every level.
        ax : matplotlib Axes, default=None
        **kwargs
            Passed to :meth:`plot`.

        Returns
        -------
        display : ShrinkageDisplay
        """
        model, steps = fitted_model(estimator, "random_effects_")
        check_mixed_model(model)
        name = _single_factor(model, factor)
        spec = next(f for f in model._factors if f.name == name)
        if term not in spec.term_names:
            raise ValueError(
                f"term {term!r} is not a random-effect term of {name!r}; its terms "
                f"are {spec.term_names}."
            )
        X = transform(steps, X)
        y = response_data(model, y) if is_generalized(model) else y  # labels: 0/1
        if getattr(getattr(model, "_spec", None), "matrices", None) is not None:
            X, y, codes, spec = _formula_data(model, X, y, groups, spec)
        else:
            X, y, codes = _array_data(model, X, y, groups, spec)
        coef = _no_pooling(spec, X, y, codes, model)
        population = float(model.fixed_effects_.get(term, 0.0))
        display = cls(
            no_pooling=coef[term],
            mixed=population + model.random_effects_[name][term],
            population=population,
            n_obs=pd.Series(
                np.bincount(codes[codes >= 0], minlength=spec.n_levels),
                index=spec.levels,
            ),
            term=term,
            factor=name,
        )
        return display.plot(ax=ax, max_levels=max_levels, **kwargs)

    def plot(self, ax=None, *, sort=True, max_levels=None, arrow_kwargs=None):
        """Draw arrows from the no-pooling to the mixed-model estimates.

        Parameters
        ----------
        ax : matplotlib Axes, default=None
            A new figure, as tall as the levels need, if None.
        sort : bool, default=True
            Order the levels by their no-pooling estimate (bottom to top).
        max_levels : int, default=None
            At most this many levels: those with the largest
            ``|mixed - population|``; the title says how many are drawn.
        arrow_kwargs : dict, default=None
            Passed as ``arrowprops`` to ``ax.annotate``.

        Returns
        -------
        display : ShrinkageDisplay
        """
        levels = _top_levels(self.mixed - self.population, max_levels)
        height = None
        if ax is None:
            height = float(levels_figure_heights([len(levels)], minimum=3.5)[0])
        ax, fig = single_axes(ax, figsize=None if height is None else (6.4, height))
        if sort:  # by the no-pooling estimate, NaN last
            levels = self.no_pooling[levels].sort_values(kind="stable").index
        start = self.no_pooling[levels].to_numpy()
        end = self.mixed[levels].to_numpy()
        positions = set_level_ticks(ax, level_labels(levels), height=height)
        arrowprops = style({"arrowstyle": "->", "color": "0.4"}, arrow_kwargs)
        self.arrows_ = [
            ax.annotate("", xy=(x1, y), xytext=(x0, y), arrowprops=arrowprops)
            for x0, x1, y in zip(start, end, positions)
            if np.isfinite(x0)
        ]
        self.no_pooling_scatter_ = ax.scatter(
            start, positions, facecolors="none", edgecolors="C1", label="no pooling"
        )
        self.mixed_scatter_ = ax.scatter(
            end, positions, color="C0", label="mixed model (partial pooling)"
        )
        self.population_line_ = ax.axvline(
            self.population, color="0.3", linestyle="--", label="population"
        )
        title = f"Shrinkage of {self.term}"
        if len(levels) < len(self.no_pooling):
            title += f" ({len(levels)} of {len(self.no_pooling)} levels)"
        ax.set(xlabel=self.term, ylabel=self.factor, title=title)
        # Outside the axes: inside, it would hide some levels' arrows.
        ax.legend(
            loc="center left",
            bbox_to_anchor=(1.0, 0.5),
            frameon=False,
            fontsize="small",
        )
        self.levels_, self.ax_, self.figure_ = levels, ax, fig
        return self


def _top_levels(effects, max_levels):
    """The index of ``effects``: all of it, or its ``max_levels`` largest ``|.|``."""
    check_max_levels(max_levels)
    if max_levels is None or max_levels >= len(effects):
        return effects.index
    size = np.abs(effects.to_numpy(dtype=float))
    keep = np.sort(np.argsort(-size, kind="stable")[:max_levels])
    return effects.index[keep]


def _single_factor(estimator, factor):
    names = resolve_factors(estimator, factor)
    if len(names) != 1:
        raise ValueError(
            f"the model has grouping factors {names}; choose one with factor=..."
        )
    return names[0]


def _array_data(estimator, X, y, groups, factor):
    """Features, response and level codes of a model fitted on arrays.

    With ``group_column`` the groups are the columns of ``X`` named at fit.
    """
    X, groups = model_features(estimator, X, groups)
    if y is None or groups is None:
        raise ValueError(
            "y and groups are required for a model fitted on arrays (only a "
            "formula model reads them from X, and a model with group_column "
            "its groups)."
        )
    y = _check_y(y, X.shape[0])
    frame = estimator._match_groups(check_groups(groups, X.shape[0]))
    return X, y, lookup_levels(frame[factor.name], factor.levels)


def _formula_data(estimator, X, y, groups, factor):
    """A formula model's no-pooling columns, response and codes by ``factor``.

    The columns are ``group_design``'s (the fixed part, then the factor's
    random slopes not in it); the returned factor's ``slope_columns`` index
    its slopes among them.
    """
    if groups is not None:
        raise ValueError(
            "a formula model reads its grouping factors from X: groups must be None."
        )
    spec = estimator._spec
    frame = spec.model_frame(X, with_response=y is None)
    if y is not None:
        y = _check_y(y, frame.complete.shape[0])[frame.complete]
    D, _, slopes = group_design(spec, frame, factor.name)
    codes = lookup_levels(frame.groups[factor.name], factor.levels)
    return D, frame.y if y is None else y, codes, replace(factor, slope_columns=slopes)


def _check_y(y, n_samples):
    y = np.asarray(y, dtype=float).ravel()
    if y.size != n_samples:
        raise ValueError(f"y has {y.size} values but X has {n_samples} rows.")
    return y


def _no_pooling(spec, X, y, codes, model=None):
    """Each level's own estimates of ``spec``'s terms (levels by terms).

    The no-pooling model ``y = Z b[g] + X_other c + e``: the factor's terms
    ``Z`` (intercept and random-slope columns) per level, the other features
    with one slope shared by all levels, estimated within the levels.  For a
    generalised ``model``, on its link scale (see :func:`_no_pooling_glm`).
    """
    seen = codes >= 0
    X, y, codes = X[seen], y[seen], codes[seen]
    if model is not None and is_generalized(model):
        coef = _no_pooling_glm(spec, X, y, codes, model)
        return pd.DataFrame(coef, index=spec.levels, columns=spec.term_names)
    coef = _no_pooling_regressor(spec, X, y, codes)
    if coef is None:
        coef = _per_level_lines(spec, X, y, codes)
    return pd.DataFrame(coef, index=spec.levels, columns=spec.term_names)


def _no_pooling_regressor(spec, X, y, codes):
    """skmixed's NoPoolingRegressor, or None where it is unavailable or unfit.

    It fits an intercept per level, so it does not describe a factor without
    a random intercept (lme4's ``(0 + x | g)``).
    """
    try:
        from .. import NoPoolingRegressor
    except ImportError:  # an older skmixed: compute it here
        return None
    if not spec.intercept:
        return None
    model = NoPoolingRegressor(group_slopes=list(spec.slope_columns)).fit(
        X, y, groups=pd.Series(codes, name=spec.name)
    )
    table = model.group_coef_.reindex(range(spec.n_levels))
    return table.iloc[:, [0] + [1 + j for j in spec.slope_columns]].to_numpy()


def _no_pooling_glm(spec, X, y, codes, model):
    """A generalised model's no-pooling estimates (logistic, Poisson per level).

    A level whose outcomes are all alike (all 0, or all 1) has no finite
    estimate: NaN, as for a level that cannot identify a term.
    """
    from .._pooling_glm import NoPoolingLogisticRegression, NoPoolingPoissonRegressor

    if not spec.intercept:
        raise ValueError(
            "the shrinkage plot of a generalised model needs a random intercept: "
            "its no-pooling fit gives every level its own intercept."
        )
    baseline = (
        NoPoolingLogisticRegression(link=model.link)
        if hasattr(model, "classes_")
        else NoPoolingPoissonRegressor()
    )
    with warnings.catch_warnings():  # the NaN below say it
        warnings.filterwarnings("ignore", ".* have outcomes all ")
        baseline.set_params(group_slopes=list(spec.slope_columns)).fit(
            X, y, groups=pd.Series(codes, name=spec.name)
        )
    table = baseline.group_coef_.reindex(range(spec.n_levels))
    columns = [0] + [1 + j for j in spec.slope_columns]
    coef = table.iloc[:, columns].to_numpy(dtype=float, copy=True)
    events = np.bincount(codes, weights=y, minlength=spec.n_levels)
    totals = np.bincount(codes, minlength=spec.n_levels)
    alike = events <= 0
    if hasattr(model, "classes_"):
        alike |= events >= totals
    coef[alike] = np.nan
    return coef


def _per_level_lines(spec, X, y, codes):
    """The same fit by plain least squares; NaN rows for unidentified levels.

    The per-level columns are profiled out of the shared ones within each
    level (Frisch-Waugh-Lovell), then each level gets one small least squares
    on what the shared slopes leave.  Without a random intercept the
    intercept is one of the shared columns.
    """
    shared = [j for j in range(X.shape[1]) if j not in spec.slope_columns]
    Z = _random_design(spec, X)
    S = np.column_stack([np.ones(len(y))] * (not spec.intercept) + [X[:, shared]])
    rows = _level_rows(codes, spec.n_levels)
    within = np.vstack(
        [_residualize(Z[r], np.column_stack([S[r], y[r]])) for r in rows]
    )
    c = np.linalg.lstsq(within[:, :-1], within[:, -1], rcond=None)[0]
    response = y - S @ c
    coef = np.full((spec.n_levels, Z.shape[1]), np.nan)
    for level, r in enumerate(rows):
        if _identified(Z[r]):
            coef[level] = np.linalg.lstsq(Z[r], response[r], rcond=None)[0]
    return coef


def _random_design(spec, X):
    columns = [np.ones(X.shape[0])] * spec.intercept + [
        X[:, j] for j in spec.slope_columns
    ]
    return np.column_stack(columns)


def _level_rows(codes, n_levels):
    order = np.argsort(codes, kind="stable")
    bounds = np.searchsorted(codes[order], np.arange(n_levels + 1))
    return [order[bounds[k] : bounds[k + 1]] for k in range(n_levels)]


def _residualize(Zg, A):
    """``A`` minus its least-squares projection on the columns of ``Zg``."""
    return A - Zg @ np.linalg.lstsq(Zg, A, rcond=None)[0]


def _identified(Zg):
    return len(Zg) >= Zg.shape[1] and np.linalg.matrix_rank(Zg) == Zg.shape[1]
