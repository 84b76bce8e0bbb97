"""Grouping factors: validate the ``groups`` argument and encode its levels."""

import numbers

import numpy as np
import pandas as pd


def _as_frame(groups):
    """Turn any accepted ``groups`` container into a pandas DataFrame."""
    if type(groups).__module__.startswith("polars."):
        groups = _polars_to_pandas(groups)
    if hasattr(groups, "to_pandas") and not isinstance(groups, pd.DataFrame):
        groups = groups.to_pandas()  # polars Series / DataFrame, pyarrow
    if isinstance(groups, pd.DataFrame):
        frame = groups.copy()
        frame.columns = [str(c) for c in frame.columns]
        return frame.reset_index(drop=True)
    if isinstance(groups, pd.Series):
        name = "group" if groups.name is None else str(groups.name)
        return groups.reset_index(drop=True).to_frame(name)
    if isinstance(groups, pd.Categorical | pd.Index):
        name = getattr(groups, "name", None)
        return pd.Series(groups).to_frame("group" if name is None else str(name))
    try:
        array = np.asarray(groups, dtype=object if _is_ragged(groups) else None)
    except (TypeError, ValueError) as exc:  # pragma: no cover - exotic input
        raise TypeError(f"groups could not be read as an array: {exc}") from exc
    if array.ndim == 1:
        return pd.DataFrame({"group": array})
    if array.ndim == 2:
        return pd.DataFrame({f"group_{j}": array[:, j] for j in range(array.shape[1])})
    raise ValueError(
        f"groups must be 1-D (one grouping factor) or 2-D (one column per factor); "
        f"got an array with {array.ndim} dimensions."
    )


def _polars_to_pandas(groups):
    """Column by column through NumPy: polars' ``to_pandas`` needs pyarrow."""
    if hasattr(groups, "columns"):
        return pd.DataFrame({name: groups[name].to_numpy() for name in groups.columns})
    return pd.Series(groups.to_numpy(), name=groups.name)


def _is_ragged(values):
    return isinstance(values, list | tuple) and any(
        isinstance(v, str) or not isinstance(v, numbers.Number) for v in values
    )


def check_groups(groups, n_samples):
    """Validate ``groups`` and return it as a DataFrame, one column per factor.

    Raises
    ------
    ValueError
        On a length mismatch, missing labels, duplicate factor names or no
        factor at all.
    """
    frame = _as_frame(groups)
    if frame.shape[1] == 0:
        raise ValueError("groups has no columns: give at least one grouping factor.")
    if frame.shape[0] != n_samples:
        raise ValueError(
            f"groups has {frame.shape[0]} rows but X has {n_samples} samples; "
            "they must match."
        )
    if frame.columns.duplicated().any():
        raise ValueError(f"groups has duplicate factor names: {list(frame.columns)}.")
    missing = frame.isna().any()
    if missing.any():
        names = ", ".join(map(repr, frame.columns[missing]))
        raise ValueError(
            f"groups contains missing labels (None/NaN) in factor {names}; every "
            "sample needs a group label."
        )
    return frame


def encode_levels(labels):
    """Integer codes ``0..m-1`` and the level labels of one factor.

    Levels are sorted when they can be, else kept in order of appearance.
    Integer labels with a compact range take a fast path (no hashing).
    """
    values = labels.to_numpy() if isinstance(labels, pd.Series) else labels
    if isinstance(values, np.ndarray) and values.dtype.kind in "iu" and values.size:
        codes, levels = _encode_integers(values)
        if codes is not None:
            return codes, levels
    try:
        codes, levels = pd.factorize(labels, sort=True)
    except TypeError:  # labels that cannot be ordered, e.g. mixed types
        codes, levels = pd.factorize(labels, sort=False)
    return codes.astype(np.intp, copy=False), pd.Index(levels)


def _encode_integers(values):
    low, high = int(values.min()), int(values.max())
    if high - low > 4 * values.size + 1024:
        return None, None
    present = np.bincount(values - low, minlength=high - low + 1) > 0
    position = np.cumsum(present) - 1
    codes = position[values - low].astype(np.intp, copy=False)
    levels = pd.Index(np.flatnonzero(present) + low)
    return codes, levels


def lookup_levels(labels, levels):
    """Codes of ``labels`` in a fitted factor's ``levels``; -1 where unseen."""
    return pd.Index(levels).get_indexer(pd.Index(labels))
