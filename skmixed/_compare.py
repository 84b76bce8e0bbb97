"""Complete, partial and no pooling under the same cross-validation."""

import numbers
import warnings

import numpy as np
import pandas as pd
from sklearn.base import clone
from sklearn.metrics import check_scoring
from sklearn.model_selection import KFold, check_cv

from ._groups import check_groups
from ._mixed import MixedLinearRegressor
from ._pooling import (
    CompletePoolingRegressor,
    NoPoolingRegressor,
    single_factor_formula,
)
from ._spec import _formula_frame, formula_spec

STRATEGIES = ("complete pooling", "partial pooling", "no pooling")


def compare_pooling(
    X,
    y=None,
    groups=None,
    *,
    formula=None,
    cv=5,
    scoring=("neg_mean_squared_error", "r2"),
    mixed=None,
    no_pooling=None,
    complete_pooling=None,
    random_state=0,
):
    """Cross-validate complete, partial (mixed model) and no pooling side by side.

    The three strategies are fitted and scored on exactly the same folds.
    The group labels travel with the data as columns of ``X`` (each
    estimator's ``group_column``), so every scorer sees the predictions with
    each group's own effects: for groups seen in training (``KFold``) they
    are conditional predictions, for held-out groups (``GroupKFold``) the
    mixed model predicts the population line and no pooling falls back to
    complete pooling.

    With a ``formula`` the data are raw tabular data (strings, categories,
    numbers) and the formula says everything: partial pooling is
    ``MixedLinearRegressor(formula=formula)``, complete pooling
    ``CompletePoolingRegressor(formula=formula)`` (the formula's fixed part,
    its bar terms ignored) and no pooling ``NoPoolingRegressor`` on the fixed
    part and the random-effect terms of the formula's first grouping factor
    (the only one, usually; the outermost of ``(1 | a/b)``).  Every
    estimator reads its columns, grouping factor included, from the rows of
    ``X`` in each fold.

    Parameters
    ----------
    X : array-like of shape (n_samples, n_features)
        Features (NumPy array, pandas or polars DataFrame).  Array columns
        are named ``x0, x1, ...``.  With ``formula``: a pandas or polars
        DataFrame of the raw columns the formula names.
    y : array-like of shape (n_samples,), default=None
        The response.  Required without ``formula``; with it, None reads the
        formula's left-hand side from ``X``.
    groups : array-like of shape (n_samples,) or (n_samples, n_factors), \
            default=None
        Group labels.  No pooling needs a single grouping factor; the
        splitter receives the first factor.  Required without ``formula``.
        With ``formula`` the grouping factors are columns of ``X``, and
        ``groups`` only gives the splitter its labels (``GroupKFold``);
        None passes it the labels of the formula's first grouping factor.
    formula : str, default=None
        A mixed model's formula in lme4's syntax, e.g. ``"distance ~ age +
        Sex + (age | Subject)"``; it needs at least one random-effect term.
        Rows missing a value the formula uses are left out of every fold
        (with a warning), as lme4's ``na.omit``.  None: taken from ``mixed``
        when it has a formula, else the estimators are given ``X`` and
        ``groups``.
    cv : int, cross-validation splitter or iterable, default=5
        An int ``k`` is ``KFold(k, shuffle=True, random_state=random_state)``:
        test rows come from groups also in training, which is the question
        "does partial pooling predict new observations of known groups
        better?".  Pass ``GroupKFold(k)`` to ask it for new groups.  Any
        scikit-learn splitter or an iterable of (train, test) indices works;
        the splits are drawn once and reused for all three strategies.
    scoring : str, callable, list, tuple, dict or None, \
            default=("neg_mean_squared_error", "r2")
        scikit-learn scoring: one scorer name or callable, several names, or
        a dict ``{name: scorer}``.  None uses the estimators' ``score`` (R^2).
        A single callable or None is reported as metric ``"score"``.
        As everywhere in scikit-learn, higher is better
        (``neg_mean_squared_error`` is minus the MSE).
    mixed : MixedLinearRegressor, default=None
        The partial-pooling model (cloned); None is
        ``MixedLinearRegressor()``, a random intercept per group.
    no_pooling : NoPoolingRegressor, default=None
        None is ``NoPoolingRegressor`` with ``group_slopes`` set to the mixed
        model's ``random_slopes`` (when that is not a dict), so that both
        let the same slopes vary.
    complete_pooling : CompletePoolingRegressor, default=None
        None is ``CompletePoolingRegressor()``.  With ``formula``, each of the
        three estimators that has no formula of its own is given one: the
        formula (the mixed model, complete pooling) or its first grouping
        factor's part (no pooling).
    random_state : int, RandomState or None, default=0
        Shuffling of the default ``KFold``.

    Returns
    -------
    results : DataFrame
        One row per strategy and metric: columns ``strategy`` (``"complete
        pooling"``, ``"partial pooling"``, ``"no pooling"``), ``metric``,
        ``mean`` and ``sd`` (standard deviation over the folds, ``ddof=1``),
        then the score of every fold, ``split0``, ``split1``, ...

    Raises
    ------
    ValueError
        If a group factor's name is also a column of ``X``; without a
        formula, if ``y`` or ``groups`` is None; with one, if it has no
        random-effect term.

    See Also
    --------
    MixedLinearRegressor, NoPoolingRegressor, CompletePoolingRegressor
    sklearn.model_selection.cross_validate : The single-estimator version.

    Examples
    --------
    >>> import numpy as np
    >>> from skmixed import compare_pooling
    >>> rng = np.random.default_rng(0)
    >>> groups = np.repeat(np.arange(30), 4)
    >>> X = rng.normal(size=(120, 1))
    >>> y = X[:, 0] + rng.normal(size=30)[groups] + rng.normal(size=120)
    >>> results = compare_pooling(X, y, groups, scoring="neg_mean_squared_error")
    >>> results[["strategy", "metric"]]
               strategy                  metric
    0  complete pooling  neg_mean_squared_error
    1   partial pooling  neg_mean_squared_error
    2        no pooling  neg_mean_squared_error
    >>> best = results.loc[results["mean"].idxmax(), "strategy"]
    >>> best
    'partial pooling'

    A formula on raw data, a string column for the groups:

    >>> import pandas as pd
    >>> data = pd.DataFrame({"y": y, "x": X[:, 0], "school": groups.astype(str)})
    >>> results = compare_pooling(
    ...     data, formula="y ~ x + (1 | school)", scoring="neg_mean_squared_error"
    ... )
    >>> results.loc[results["mean"].idxmax(), "strategy"]
    'partial pooling'
    """
    if formula is None and mixed is not None:
        formula = mixed.get_params().get("formula")
    if formula is not None:
        data, y, split_groups = _formula_data(X, y, groups, formula)
        estimators = _formula_strategies(formula, mixed, no_pooling, complete_pooling)
    else:
        data, y, split_groups, estimators = _array_setup(
            X, y, groups, mixed, no_pooling, complete_pooling
        )
    if isinstance(cv, numbers.Integral) and not isinstance(cv, bool):
        cv = KFold(cv, shuffle=True, random_state=random_state)
    splitter = check_cv(cv)
    with warnings.catch_warnings():
        # Splitters that ignore groups (KFold) warn when given them; the
        # group-aware ones (GroupKFold) need them.
        warnings.filterwarnings("ignore", "The groups parameter is ignored")
        splits = list(splitter.split(data, y, split_groups))
    scores = {
        name: _cross_validate(estimator, data, y, splits, scoring)
        for name, estimator in estimators.items()
    }
    return _tidy(scores, len(splits))


def _array_setup(X, y, groups, mixed, no_pooling, complete_pooling):
    """Features and group columns in one frame; estimators reading them."""
    if y is None or groups is None:
        raise ValueError(
            "compare_pooling needs y and groups, or a formula naming the "
            "response and the grouping factor among the columns of X."
        )
    X_frame, y, group_frame = _as_frames(X, y, groups)
    data = pd.concat([X_frame, group_frame], axis=1)
    estimators = _strategies(mixed, no_pooling, complete_pooling)
    for name, estimator in estimators.items():
        estimators[name] = clone(estimator).set_params(
            group_column=list(group_frame.columns)
        )
    return data, y, group_frame.iloc[:, 0].to_numpy(), estimators


def _formula_data(X, y, groups, formula):
    """The complete rows of a raw frame, the response and the splitter's labels."""
    frame = _formula_frame(X)
    spec = formula_spec(formula, frame)
    if not spec.terms:
        raise ValueError(
            f"the formula {formula!r} has no random-effect term (... | g): "
            "compare_pooling needs a grouping factor to pool over."
        )
    model_frame = spec.model_frame(frame, with_response=y is None)
    keep = model_frame.complete
    if y is None:
        y = model_frame.y
    else:
        y = np.asarray(y.to_numpy() if hasattr(y, "to_numpy") else y)
        if y.shape[0] != keep.shape[0]:
            raise ValueError(
                f"y has {y.shape[0]} values but X has {keep.shape[0]} rows."
            )
        y = y[keep]
    if groups is None:
        labels = model_frame.groups.iloc[:, 0].to_numpy()
    else:
        labels = check_groups(groups, keep.shape[0]).iloc[:, 0].to_numpy()[keep]
    if not keep.all():
        warnings.warn(
            f"{int((~keep).sum())} row(s) with a missing value in a variable of "
            "the formula were left out (lme4's na.action = na.omit).",
            UserWarning,
            stacklevel=3,
        )
    return frame[keep].reset_index(drop=True), y, labels


def _formula_strategies(formula, mixed, no_pooling, complete_pooling):
    """The three estimators, each given the formula unless it has its own."""
    given = {
        "complete pooling": (complete_pooling, CompletePoolingRegressor, formula),
        "partial pooling": (mixed, MixedLinearRegressor, formula),
        "no pooling": (no_pooling, NoPoolingRegressor, single_factor_formula(formula)),
    }
    estimators = {}
    for name, (estimator, default, own) in given.items():
        estimator = default() if estimator is None else clone(estimator)
        if estimator.get_params().get("formula") is None:
            estimator.set_params(formula=own)
        estimators[name] = estimator
    return estimators


def _as_frames(X, y, groups):
    """X as a DataFrame (columns ``x0, ...`` for arrays), y as an array."""
    if type(X).__module__.startswith("polars."):
        X = pd.DataFrame({name: X[name].to_numpy() for name in X.columns})
    if isinstance(X, pd.DataFrame):
        X_frame = X.reset_index(drop=True)
    else:
        values = np.asarray(X)
        if values.ndim != 2:
            raise ValueError(f"X must be 2-D; got an array of shape {values.shape}.")
        X_frame = pd.DataFrame(
            values, columns=[f"x{j}" for j in range(values.shape[1])]
        )
    y = np.asarray(y.to_numpy() if hasattr(y, "to_numpy") else y)
    group_frame = check_groups(groups, X_frame.shape[0])
    clash = sorted(set(map(str, X_frame.columns)) & set(group_frame.columns))
    if clash:
        raise ValueError(
            f"grouping factor name(s) {clash} are also columns of X; rename one."
        )
    return X_frame, y, group_frame


def _strategies(mixed, no_pooling, complete_pooling):
    mixed = MixedLinearRegressor() if mixed is None else mixed
    if no_pooling is None:
        slopes = mixed.get_params().get("random_slopes")
        no_pooling = NoPoolingRegressor(
            group_slopes=None if isinstance(slopes, dict) else slopes
        )
    if complete_pooling is None:
        complete_pooling = CompletePoolingRegressor()
    return dict(zip(STRATEGIES, (complete_pooling, mixed, no_pooling)))


def _cross_validate(estimator, data, y, splits, scoring):
    """Per-metric lists of fold scores for one estimator."""
    scorer = check_scoring(estimator, scoring=scoring)
    scores = {}
    for train, test in splits:
        fitted = clone(estimator).fit(data.iloc[train], y[train])
        result = scorer(fitted, data.iloc[test], y[test])
        if not isinstance(result, dict):
            result = {_metric_name(scoring): result}
        for metric, value in result.items():
            scores.setdefault(metric, []).append(float(value))
    return scores


def _metric_name(scoring):
    if scoring is None:
        return "score"
    return (
        scoring if isinstance(scoring, str) else getattr(scoring, "__name__", "score")
    )


def _tidy(scores, n_splits):
    rows = []
    for strategy, by_metric in scores.items():
        for metric, values in by_metric.items():
            values = np.asarray(values)
            row = dict(
                strategy=strategy,
                metric=metric,
                mean=values.mean(),
                sd=values.std(ddof=1) if n_splits > 1 else np.nan,
            )
            row.update({f"split{k}": v for k, v in enumerate(values)})
            rows.append(row)
    return pd.DataFrame(rows)
