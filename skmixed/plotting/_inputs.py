"""The data a display reads, as the fitted model sees it.

Displays take the data the user fitted on: a model's ``X`` (with
``group_column``, the group columns among the features) or a Pipeline's raw
``X``, which the steps before the model transform (``base.transform``).
:func:`model_features` then does what the model's ``predict`` does with it:
splits off the group columns named at fit and takes the features seen in
``fit``, as floats.
"""

import numpy as np
import pandas as pd
from scipy import sparse

from .._sklearn import group_column_names, split_group_columns
from .._spec import formula_frame


def pandas_frame(X):
    """A pandas or polars DataFrame as a pandas one (index reset)."""
    return formula_frame(X)


def is_frame(X):
    """Whether ``X`` is a pandas or polars DataFrame (has column names)."""
    return hasattr(X, "columns") and hasattr(X, "shape")


def group_columns(model):
    """The columns of ``X`` the model took its groups from at fit (maybe [])."""
    return group_column_names(getattr(model, "_group_column", None)) or []


def model_features(model, X, groups=None):
    """``X`` as the array of the model's features, and the groups.

    Parameters
    ----------
    model : fitted skmixed estimator (not a formula model)
    X : array-like or DataFrame
        What the model's ``predict`` takes (a Pipeline's ``X`` transformed).
    groups : array-like or None, default=None
        The user's groups; must be None with ``group_column``.

    Returns
    -------
    X : ndarray of shape (n_samples, n_features_in_)
        The features seen in ``fit``, in its order, as floats.
    groups : DataFrame, array-like or None
        The group columns of ``X`` with ``group_column``, else ``groups``.
    """
    X, groups = split_group_columns(X, groups, getattr(model, "_group_column", None))
    names = getattr(model, "feature_names_in_", None)
    if is_frame(X) and names is not None:
        frame = pandas_frame(X)
        missing = [c for c in names if c not in frame.columns]
        if missing:
            raise ValueError(f"X lacks the fitted feature(s) {missing}.")
        X = frame[list(names)]
    if sparse.issparse(X):
        X = _dense_for_plotting(X)
    X = np.asarray(X, dtype=float)
    n_features = model.n_features_in_
    if X.ndim != 2 or X.shape[1] != n_features:
        raise ValueError(
            f"X must be 2-D with {n_features} column(s) as in fit; got shape {X.shape}."
        )
    return X, groups


MAX_DENSE_VALUES = 20_000_000  # 160 MB: a sparse X larger than this is refused


def _dense_for_plotting(X):
    """A sparse X as dense, for the displays' grids and no-pooling fits.

    A plot reads a few columns of a moderate number of rows; beyond
    ``MAX_DENSE_VALUES`` values a clear error asks for a sample of rows.
    """
    if X.shape[0] * X.shape[1] > MAX_DENSE_VALUES:
        raise ValueError(
            f"X is sparse with shape {X.shape}: too large to plot from "
            f"(more than {MAX_DENSE_VALUES:,} values once dense); pass a sample "
            "of its rows."
        )
    return X.toarray()


def frame_of_array(X, names):
    """An array's columns as a frame named ``names``, numbers as numbers."""
    array = np.asarray(X)
    if array.ndim != 2 or array.shape[1] != len(names):
        raise ValueError(
            f"X must be 2-D with {len(names)} column(s) as in fit; got shape "
            f"{array.shape}."
        )
    return pd.DataFrame(array, columns=names).infer_objects()
