"""Glue between the estimators' ``groups`` argument and scikit-learn's tools.

Metadata routing brings ``groups`` to ``fit``, ``predict`` and ``score`` in
scikit-learn's meta-estimators, but some tools only ever call ``predict(X)``
(scorers, scikit-learn issue #27977; ``permutation_importance``; plotting
displays).  For those, an estimator's ``group_column`` names the column(s) of
a DataFrame ``X`` that hold the group labels: :func:`split_group_columns`
takes them out of ``X`` before anything else sees it, so the features the
model is fitted on (``n_features_in_``, ``feature_names_in_``) never include
them.
"""

import numpy as np
import pandas as pd


def group_column_names(group_column):
    """``group_column`` as a list of column names (None stays None)."""
    if group_column is None:
        return None
    names = [group_column] if isinstance(group_column, str) else list(group_column)
    if not names or not all(isinstance(name, str) for name in names):
        raise TypeError(
            "group_column must be a column name (str) or a non-empty list of "
            f"column names; got {group_column!r}."
        )
    if len(set(names)) != len(names):
        raise ValueError(f"group_column lists a column twice: {names}.")
    return names


def split_group_columns(X, groups, group_column):
    """Split ``X`` into the features and the groups named by ``group_column``.

    Parameters
    ----------
    X : array-like of shape (n_samples, n_columns)
        A pandas or polars DataFrame when ``group_column`` is set.
    groups : array-like or None
        The ``groups`` argument of the calling method; must be None when
        ``group_column`` is set.
    group_column : str, list of str or None
        The estimator's parameter.

    Returns
    -------
    X : array-like
        ``X`` without the group columns (unchanged when ``group_column`` is
        None).
    groups : DataFrame or array-like or None
        The group columns of ``X`` (one column per grouping factor), or the
        ``groups`` argument when ``group_column`` is None.
    """
    names = group_column_names(group_column)
    if names is None:
        return X, groups
    if groups is not None:
        raise ValueError(
            f"groups were passed although group_column={group_column!r} takes them "
            "from the columns of X; pass one or the other."
        )
    if not hasattr(X, "columns"):
        raise TypeError(
            f"group_column={group_column!r} needs X to be a DataFrame with column "
            f"names; got {type(X).__name__}."
        )
    columns = list(X.columns)
    missing = [name for name in names if name not in columns]
    if missing:
        raise ValueError(
            f"group column(s) {missing} not found in X; X's columns are {columns}."
        )
    if isinstance(X, pd.DataFrame):
        return X.drop(columns=names), X[names]
    return X.drop(names), X.select(names)  # polars


def no_column_frame_as_array(X):
    """A DataFrame without columns (``y ~ 1 + (1 | g)``) as an (n, 0) array.

    scikit-learn's validation cannot infer a dtype from no columns.
    """
    if hasattr(X, "columns") and hasattr(X, "shape") and X.shape[1] == 0:
        return np.empty((X.shape[0], 0))
    return X


def validate_predict_input(estimator, X, groups, *, accept_sparse=False):
    """What every prediction-time method starts with, for a fitted estimator.

    Checks that ``estimator`` is fitted, takes the group columns out of ``X``
    (``group_column``) and validates ``X`` against the features seen in
    ``fit``.  Returns ``(X, groups)``, ``X`` a float array.
    """
    from sklearn.utils.validation import check_is_fitted, validate_data

    check_is_fitted(estimator)
    # The group columns named at fit (set_params after fit must not move them).
    fitted = getattr(estimator, "_group_column", None)
    X, groups = split_group_columns(X, groups, fitted)
    X = validate_data(
        estimator,
        no_column_frame_as_array(X),
        reset=False,
        dtype=np.float64,
        accept_sparse=("csr", "csc") if accept_sparse else False,
        ensure_min_features=0,
    )
    return X, groups
