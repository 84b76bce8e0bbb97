"""Complete, partial and no pooling under the same cross-validation."""

import numbers
import warnings

import numpy as np
import pandas as pd
from scipy import sparse
from sklearn.base import BaseEstimator, TransformerMixin, clone
from sklearn.metrics import check_scoring, d2_tweedie_score, make_scorer
from sklearn.model_selection import KFold, check_cv
from sklearn.pipeline import Pipeline
from sklearn.utils.multiclass import type_of_target
from sklearn.utils.validation import check_is_fitted

from ._glmm import MixedLogisticRegression, MixedPoissonRegressor
from ._groups import check_groups
from ._mixed import MixedLinearRegressor
from ._pooling import (
    CompletePoolingRegressor,
    NoPoolingRegressor,
    single_factor_formula,
)
from ._pooling_glm import (
    CompletePoolingLogisticRegression,
    CompletePoolingPoissonRegressor,
    NoPoolingLogisticRegression,
    NoPoolingPoissonRegressor,
)
from ._sklearn import split_group_columns
from ._spec import formula_frame, formula_spec
from .exceptions import UnseenLevelsWarning

STRATEGIES = ("complete pooling", "partial pooling", "no pooling")
# Per family: the default (mixed, no pooling, complete pooling) estimators.
FAMILIES = {
    "gaussian": (MixedLinearRegressor, NoPoolingRegressor, CompletePoolingRegressor),
    "binomial": (
        MixedLogisticRegression,
        NoPoolingLogisticRegression,
        CompletePoolingLogisticRegression,
    ),
    "poisson": (
        MixedPoissonRegressor,
        NoPoolingPoissonRegressor,
        CompletePoolingPoissonRegressor,
    ),
}
# scoring="auto": the metrics each family is compared on.
AUTO_SCORING = {
    "gaussian": ("neg_mean_squared_error", "r2"),
    "binomial": ("neg_log_loss", "roc_auc"),
    "poisson": {
        "neg_mean_poisson_deviance": "neg_mean_poisson_deviance",
        "d2_poisson": make_scorer(d2_tweedie_score, power=1),
    },
}


def compare_pooling(
    X,
    y=None,
    groups=None,
    *,
    formula=None,
    preprocessor=None,
    cv=5,
    scoring="auto",
    mixed=None,
    no_pooling=None,
    complete_pooling=None,
    family=None,
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

    With a ``preprocessor`` (a ``ColumnTransformer`` that one-hot encodes the
    For a binary target (two distinct values: 0/1, booleans, two labels)
    the three strategies are the logistic ones,
    :class:`CompletePoolingLogisticRegression`,
    :class:`MixedLogisticRegression` and :class:`NoPoolingLogisticRegression`,
    compared on log loss and ROC AUC; for counts (``family="poisson"``, or a
    :class:`MixedPoissonRegressor` as ``mixed``) the Poisson ones, on the
    Poisson deviance and D^2.

    With a ``preprocessor`` (a ``ColumnTransformer`` that one-hot encodes the
    string columns and scales the numeric ones, say) the data are raw
    tabular data too, and each strategy is a ``Pipeline`` of the
    preprocessor and the estimator, refitted on the training rows of every
    fold, as ``cross_validate`` refits a pipeline.

    Parameters
    ----------
    X : array-like of shape (n_samples, n_features)
        Features (NumPy array, pandas or polars DataFrame).  Array columns
        are named ``x0, x1, ...``.  With ``formula``: a pandas or polars
        DataFrame of the raw columns the formula names.  With
        ``preprocessor``: whatever it takes (string columns, missing
        values), the group labels not among them.
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
    preprocessor : transformer, default=None
        A scikit-learn transformer (or ``Pipeline`` of them) applied to the
        features ``X``, never to the group labels, before each of the three
        estimators: each strategy is ``Pipeline([("preprocessor",
        preprocessor), ("model", estimator)])``, cloned and fitted in every
        fold, so the preprocessor learns from the training rows only
        (``fit_transform(X_train, y_train)``, then ``transform(X_test)``).
        It receives ``X`` as given (a pandas or polars DataFrame; an array
        as a pandas DataFrame with columns ``x0, x1, ...``), without the
        group labels, which are passed around it to the estimators.  The
        estimators see its output made dense (a one-hot encoder's sparse
        matrix included), its columns named by ``get_feature_names_out()``
        (``x0, x1, ...`` when it has none).  So ``random_slopes`` and
        ``group_slopes`` name the preprocessor's output columns
        (``"num__price"`` for ``price`` scaled by a ``ColumnTransformer``'s
        step ``"num"``), or a column of ``X`` that it turns into exactly
        one output column (kept, scaled, imputed: ``"price"`` stands for
        ``"num__price"``); a one-hot encoded column becomes several and
        has no single name.  Cannot be combined with ``formula``, which
        builds its own model matrix from the raw columns.
    cv : int, cross-validation splitter or iterable, default=5
        An int ``k`` is ``KFold(k, shuffle=True, random_state=random_state)``:
        test rows come from groups also in training, which is the question
        "does partial pooling predict new observations of known groups
        better?".  Pass ``GroupKFold(k)`` to ask it for new groups.  Any
        scikit-learn splitter or an iterable of (train, test) indices works;
        the splits are drawn once and reused for all three strategies.
    scoring : "auto", str, callable, list, tuple, dict or None, default="auto"
        scikit-learn scoring: one scorer name or callable, several names, or
        a dict ``{name: scorer}``.  ``"auto"``: ``("neg_mean_squared_error",
        "r2")`` for a continuous target, ``("neg_log_loss", "roc_auc")`` for a
        binary one, ``neg_mean_poisson_deviance`` and ``d2_poisson`` (the
        share of Poisson deviance explained) for counts.  None uses the
        estimators' ``score`` (R^2, accuracy, D^2).
        A single callable or None is reported as metric ``"score"``.
        As everywhere in scikit-learn, higher is better
        (``neg_mean_squared_error`` is minus the MSE).
    mixed : MixedLinearRegressor, MixedLogisticRegression or \
            MixedPoissonRegressor, default=None
        The partial-pooling model (cloned); None is the family's mixed model
        with a random intercept per group (``MixedLinearRegressor()`` for a
        continuous target).
    no_pooling : NoPoolingRegressor, NoPoolingLogisticRegression or \
            NoPoolingPoissonRegressor, default=None
        None is the family's no-pooling model with ``group_slopes`` set to
        the mixed model's ``random_slopes`` (when that is not a dict), so
        that both let the same slopes vary, and its ``link``.
    complete_pooling : CompletePoolingRegressor, \
            CompletePoolingLogisticRegression or \
            CompletePoolingPoissonRegressor, default=None
        None is the family's complete-pooling model (with the mixed model's
        ``link``).  With ``formula``, each of the
        three estimators that has no formula of its own is given one: the
        formula (the mixed model, complete pooling) or its first grouping
        factor's part (no pooling).
    family : {"gaussian", "binomial", "poisson"} or None, default=None
        The kind of target, which chooses the default estimators and
        metrics.  None: that of ``mixed`` when given, else ``"binomial"``
        for a target with two distinct values and ``"gaussian"`` otherwise
        (counts need ``family="poisson"`` or a ``MixedPoissonRegressor``).
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
        If a group factor's name is also a column of ``X`` (or of the
        preprocessor's output); without a formula, if ``y`` or ``groups`` is
        None; with one, if it has no random-effect term or a
        ``preprocessor`` is given too; if a slope names no single column of
        the preprocessor's output.

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

    Raw data with a preprocessor, refitted in every fold; the groups are
    passed around it:

    >>> from sklearn.compose import ColumnTransformer
    >>> from sklearn.preprocessing import OneHotEncoder, StandardScaler
    >>> data = pd.DataFrame({"x": X[:, 0], "arm": rng.choice(["a", "b"], 120)})
    >>> preprocessor = ColumnTransformer(
    ...     [
    ...         ("num", StandardScaler(), ["x"]),
    ...         ("cat", OneHotEncoder(drop="first"), ["arm"]),
    ...     ]
    ... )
    >>> results = compare_pooling(
    ...     data, y, groups, preprocessor=preprocessor, scoring="neg_mean_squared_error"
    ... )
    >>> results.loc[results["mean"].idxmax(), "strategy"]
    'partial pooling'

    A binary target: the logistic strategies, on log loss and ROC AUC:

    >>> y_binary = y > 0
    >>> results = compare_pooling(X, y_binary, groups)
    >>> results[["strategy", "metric"]].head(2)
               strategy        metric
    0  complete pooling  neg_log_loss
    1  complete pooling       roc_auc
    """
    if formula is None and mixed is not None:
        formula = mixed.get_params().get("formula")
    if formula is not None and preprocessor is not None:
        raise ValueError(
            "compare_pooling takes a formula or a preprocessor, not both: a "
            "formula builds its own model matrix from the raw columns of X "
            "(contrasts for strings, transforms such as log() or scale()). Pass "
            "formula=None and mixed=None (or a mixed model without a formula) "
            "to preprocess X with the transformer."
        )
    if formula is not None:
        data, y, split_groups = _formula_data(X, y, groups, formula)
        family = _resolve_family(family, mixed, y)
        estimators = _formula_strategies(
            formula, mixed, no_pooling, complete_pooling, family
        )
    else:
        family = _resolve_family(family, mixed, y)
        data, y, split_groups, estimators = _array_setup(
            X, y, groups, mixed, no_pooling, complete_pooling, preprocessor, family
        )
    if isinstance(scoring, str) and scoring == "auto":
        scoring = AUTO_SCORING[family]
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


def _resolve_family(family, mixed, y):
    """The family asked for, that of ``mixed``, or the target's kind."""
    if family is not None and family not in FAMILIES:
        raise ValueError(
            f"family must be one of {list(FAMILIES)} or None; got {family!r}."
        )
    if mixed is not None:
        owners = [n for n, classes in FAMILIES.items() if isinstance(mixed, classes[0])]
        own = owners[0] if owners else None
        if family is not None and own is not None and own != family:
            raise ValueError(
                f"family={family!r} but mixed is a {type(mixed).__name__} "
                f"({own!r}); leave family=None to take the mixed model's."
            )
        family = family or own
    if family is None and y is not None:
        values = np.asarray(y.to_numpy() if hasattr(y, "to_numpy") else y)
        family = "binomial" if type_of_target(values) == "binary" else "gaussian"
    return family or "gaussian"


def _array_setup(
    X, y, groups, mixed, no_pooling, complete_pooling, preprocessor, family
):
    """Features and group columns in one frame; estimators reading them.

    With a preprocessor, a polars ``X`` stays a polars frame (the
    preprocessor may be written for one) and each estimator becomes a
    pipeline behind it.
    """
    if y is None or groups is None:
        raise ValueError(
            "compare_pooling needs y and groups, or a formula naming the "
            "response and the grouping factor among the columns of X."
        )
    X_frame, y, group_frame = _as_frames(X, y, groups, polars=preprocessor is not None)
    data = _with_columns(X_frame, group_frame)
    group_names = list(group_frame.columns)
    estimators = _strategies(mixed, no_pooling, complete_pooling, family)
    for name, estimator in estimators.items():
        estimators[name] = clone(estimator).set_params(group_column=group_names)
    if preprocessor is not None:
        step = _PreprocessFeatures(preprocessor, group_names)
        estimators = _behind(step, estimators, data, y, list(map(str, X_frame.columns)))
    return data, y, group_frame.iloc[:, 0].to_numpy(), estimators


def _formula_data(X, y, groups, formula):
    """The complete rows of a raw frame, the response and the splitter's labels."""
    frame = formula_frame(X)
    spec = formula_spec(formula, frame)
    if not spec.terms:
        raise ValueError(
            f"the formula {formula!r} has no random-effect term (... | g): "
            "compare_pooling needs a grouping factor to pool over."
        )
    # The response as it is (class labels of a binary target too): the
    # estimators check it.
    model_frame = spec.model_frame(frame, with_response=y is None, labels=True)
    keep = model_frame.complete
    if y is None:
        y = model_frame.y
        if y.dtype == object:  # labels: booleans read as objects
            y = pd.Series(y).infer_objects().to_numpy()
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


def _formula_strategies(formula, mixed, no_pooling, complete_pooling, family):
    """The three estimators, each given the formula unless it has its own."""
    mixed_class, no_pooling_class, complete_class = FAMILIES[family]
    link = _link(mixed)
    given = {
        "complete pooling": (complete_pooling, complete_class, formula),
        "partial pooling": (mixed, mixed_class, formula),
        "no pooling": (no_pooling, no_pooling_class, single_factor_formula(formula)),
    }
    estimators = {}
    for name, (estimator, default, own) in given.items():
        estimator = _default(default, link) if estimator is None else clone(estimator)
        if estimator.get_params().get("formula") is None:
            estimator.set_params(formula=own)
        estimators[name] = estimator
    return estimators


def _link(mixed):
    """The mixed model's link, for the baselines (None: the family's default)."""
    return None if mixed is None else mixed.get_params().get("link")


def _default(estimator_class, link, **params):
    """A default baseline, with the mixed model's link when it has one."""
    if link is not None and "link" in estimator_class().get_params():
        params["link"] = link
    return estimator_class(**params)


def _as_frames(X, y, groups, polars=False):
    """X as a DataFrame (columns ``x0, ...`` for arrays), y as an array.

    A polars ``X`` becomes a pandas one unless ``polars`` is True.
    """
    if _is_polars(X) and not polars:
        X = _polars_to_pandas(X)
    if _is_polars(X):
        X_frame = X
    elif isinstance(X, pd.DataFrame):
        X_frame = X.reset_index(drop=True)
    else:
        if sparse.issparse(X):
            raise TypeError(
                "compare_pooling takes dense X (the pooling baselines fit dense "
                "columns): pass X.toarray(), or the raw data with a preprocessor "
                "whose sparse output (a OneHotEncoder, say) is made dense per fold."
            )
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
            f"grouping factor name(s) {clash} are also columns of X; rename one, "
            "or drop the labels from X (groups gives them)."
        )
    return X_frame, y, group_frame


def _strategies(mixed, no_pooling, complete_pooling, family="gaussian"):
    mixed_class, no_pooling_class, complete_class = FAMILIES[family]
    mixed = mixed_class() if mixed is None else mixed
    link = _link(mixed)
    if no_pooling is None:
        slopes = mixed.get_params().get("random_slopes")
        no_pooling = _default(
            no_pooling_class,
            link,
            group_slopes=None if isinstance(slopes, dict) else slopes,
        )
    if complete_pooling is None:
        complete_pooling = _default(complete_class, link)
    return dict(zip(STRATEGIES, (complete_pooling, mixed, no_pooling)))


# --------------------------------------------------------------------------
# A preprocessor in front of the estimators, the group labels around it
# --------------------------------------------------------------------------

_SLOPE_PARAMETERS = ("random_slopes", "group_slopes")


class _PreprocessFeatures(TransformerMixin, BaseEstimator):
    """A preprocessor of the features that passes the group columns through.

    The first step of each strategy's pipeline in :func:`compare_pooling`.
    The group labels travel with the rows as columns of ``X`` (the
    estimators' ``group_column``, so that every scorer sees conditional
    predictions), but they are labels, not features: a ``ColumnTransformer``
    written for the user's ``X`` must not see them (its ``remainder="drop"``
    would drop them, a scaler would scale integer labels).  So this step
    takes them out, runs the preprocessor on the rest and puts them back,
    unchanged and under their own names, beside the preprocessor's output
    made a dense pandas DataFrame named by its ``get_feature_names_out()``.

    Parameters
    ----------
    preprocessor : transformer
        Cloned in ``fit``, and fitted on the features only.
    group_column : list of str
        The columns of ``X`` that hold the group labels.

    Attributes
    ----------
    preprocessor_ : transformer
        The fitted clone.
    """

    def __init__(self, preprocessor, group_column):
        self.preprocessor = preprocessor
        self.group_column = group_column

    def fit(self, X, y=None):
        features, _ = split_group_columns(X, None, self.group_column)
        self.preprocessor_ = clone(self.preprocessor).fit(features, y)
        return self

    def fit_transform(self, X, y=None):
        # The preprocessor's own fit_transform, which a Pipeline calls: it is
        # not always fit().transform() (TargetEncoder cross-fits in it).
        features, labels = split_group_columns(X, None, self.group_column)
        self.preprocessor_ = clone(self.preprocessor)
        return self._frame(self.preprocessor_.fit_transform(features, y), labels)

    def transform(self, X):
        check_is_fitted(self)
        features, labels = split_group_columns(X, None, self.group_column)
        return self._frame(self.preprocessor_.transform(features), labels)

    def _frame(self, output, labels):
        """The preprocessor's output as a named dense frame, then the labels."""
        features = _named_frame(output, self.preprocessor_)
        labels = check_groups(labels, features.shape[0])
        clash = sorted(set(features.columns) & set(labels.columns))
        if clash:
            raise ValueError(
                f"the preprocessor's output has column(s) {clash}, named as "
                "grouping factors; rename the groups (pass them as a named "
                "Series or DataFrame)."
            )
        return pd.concat([features, labels], axis=1)


def _named_frame(output, preprocessor):
    """A transformer's output as a dense pandas DataFrame, str column names."""
    if sparse.issparse(output):
        output = output.toarray()
    if _is_polars(output):
        output = _polars_to_pandas(output)
    if isinstance(output, pd.DataFrame):
        frame = output.reset_index(drop=True)
        frame.columns = [str(c) for c in frame.columns]
        return frame
    output = np.asarray(output)
    if output.ndim != 2:
        raise ValueError(
            f"the preprocessor returned an array of shape {output.shape}; a "
            "transformer's output must be 2-D."
        )
    return pd.DataFrame(output, columns=_names_out(preprocessor, output.shape[1]))


def _names_out(preprocessor, n_columns):
    """``get_feature_names_out()``, or ``x0, x1, ...`` as for arrays."""
    try:
        names = [str(name) for name in preprocessor.get_feature_names_out()]
    except AttributeError:  # e.g. a FunctionTransformer without feature names
        names = []
    return names if len(names) == n_columns else [f"x{j}" for j in range(n_columns)]


def _behind(step, estimators, data, y, raw_columns):
    """Each estimator as a pipeline behind the preprocessing step.

    Slopes may name a column of ``X`` that the preprocessor passes on
    one-to-one (``"price"`` for a ``ColumnTransformer``'s ``"num__price"``):
    a user thinks of the slope of price, not of the step that scaled it.
    The output's names come from one fit of the preprocessor on all rows:
    only its column names are read, never its numbers (the folds refit it),
    and a slope that names nothing fails here, before any fold.
    """
    named = [
        value
        for estimator in estimators.values()
        for value in _slopes(estimator).values()
        if _column_names(value)
    ]
    if named:
        output = [
            name
            for name in clone(step).fit_transform(data, y).columns
            if name not in step.group_column
        ]
        for name, estimator in estimators.items():
            estimators[name] = estimator.set_params(
                **{
                    parameter: _as_output(value, output, raw_columns, parameter)
                    for parameter, value in _slopes(estimator).items()
                }
            )
    return {
        name: Pipeline([("preprocessor", step), ("model", estimator)])
        for name, estimator in estimators.items()
    }


def _slopes(estimator):
    """The estimator's slope parameters that are set."""
    params = estimator.get_params(deep=False)
    return {p: params[p] for p in _SLOPE_PARAMETERS if params.get(p, None) is not None}


def _column_names(value):
    """The str entries of a slopes parameter (a name, a list, a dict of lists)."""
    if isinstance(value, dict):
        return [name for entry in value.values() for name in _column_names(entry)]
    if isinstance(value, str):
        return [value]
    if isinstance(value, list | tuple):
        return [entry for entry in value if isinstance(entry, str)]
    return []


def _as_output(value, output, raw_columns, parameter):
    """A slopes parameter with every column name an output column's."""
    if isinstance(value, dict):
        return {
            factor: _as_output(entry, output, raw_columns, parameter)
            for factor, entry in value.items()
        }
    if isinstance(value, str):
        return _output_column(value, output, raw_columns, parameter)
    if isinstance(value, list | tuple):
        return [_as_output(entry, output, raw_columns, parameter) for entry in value]
    return value


def _output_column(name, output, raw_columns, parameter):
    """The preprocessor's output column that a slope's name stands for."""
    if name in output:
        return name
    # A ColumnTransformer names the output of column c by its step t "t__c"
    # (also nested: "outer__inner__c"); exactly one such column is c's.
    derived = [column for column in output if column.endswith(f"__{name}")]
    if name in raw_columns and len(derived) == 1:
        return derived[0]
    raise ValueError(
        f"{parameter} names {name!r}, which is neither a column of the "
        "preprocessor's output nor a column of X that it turns into exactly "
        f"one output column (such as '<step>__{name}'). The output columns are "
        f"{output}."
    )


def _is_polars(obj):
    return type(obj).__module__.startswith("polars.")


def _polars_to_pandas(frame):
    """Column by column through NumPy: polars' ``to_pandas`` needs pyarrow."""
    return pd.DataFrame({name: frame[name].to_numpy() for name in frame.columns})


def _with_columns(X_frame, group_frame):
    """``X`` with the group columns after its own, in ``X``'s frame type."""
    if _is_polars(X_frame):
        import polars as pl

        return X_frame.with_columns(
            [pl.Series(name, group_frame[name].to_numpy()) for name in group_frame]
        )
    return pd.concat([X_frame, group_frame], axis=1)


def _rows(data, indices):
    return data[indices] if _is_polars(data) else data.iloc[indices]


def _cross_validate(estimator, data, y, splits, scoring):
    """Per-metric lists of fold scores for one estimator."""
    scorer = check_scoring(estimator, scoring=scoring)
    scores = {}
    for train, test in splits:
        with warnings.catch_warnings():
            # A no-pooling fit of small groups meets groups whose outcomes
            # are all alike (infinite estimates): its scores show the cost.
            warnings.filterwarnings("ignore", ".* have outcomes all ")
            warnings.filterwarnings("ignore", "fitted (probabilities|means) numer")
            fitted = clone(estimator).fit(_rows(data, train), y[train])
        with warnings.catch_warnings():
            # Unseen test groups are the point of a grouped comparison.
            warnings.simplefilter("ignore", UnseenLevelsWarning)
            result = scorer(fitted, _rows(data, test), y[test])
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
