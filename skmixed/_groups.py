"""Grouping factors: validate the ``groups`` argument and encode its levels."""

import numbers
import warnings

import numpy as np
import pandas as pd

from .exceptions import UnseenLevelsWarning

MOSTLY_UNSEEN = 0.5  # warn when more than this share of rows is unseen


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


def check_groups(groups, n_samples, *, allow_missing=False):
    """Validate ``groups`` and return it as a DataFrame, one column per factor.

    ``allow_missing`` at prediction time: a missing label is a new level
    (the population prediction), as lme4's ``allow.new.levels``.

    Raises
    ------
    ValueError
        On a length mismatch, missing labels (in ``fit``), duplicate factor
        names or no factor at all.
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
    if missing.any() and not allow_missing:
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


def predict_codes(labels, levels, factor, *, kind_only=False, stacklevel=2):
    """:func:`lookup_levels` for a prediction, warning of unseen labels.

    An :class:`~skmixed.exceptions.UnseenLevelsWarning` when the labels are
    of another kind than the levels (strings for integers, say) and, unless
    ``kind_only``, when no label is a fitted level or most rows are unseen.
    """
    codes = lookup_levels(labels, levels)
    message = _unseen_message(labels, levels, codes, factor, kind_only)
    if message:
        warnings.warn(message, UnseenLevelsWarning, stacklevel=stacklevel + 1)
    return codes


def _unseen_message(labels, levels, codes, factor, kind_only=False):
    n = codes.shape[0]
    unseen = int((codes < 0).sum())
    if n == 0 or unseen == 0:
        return None
    consequence = (
        f"they get no random effect for {factor!r} (the population prediction "
        "for it; silence with warnings.filterwarnings('ignore', "
        "category=UnseenLevelsWarning) where unseen groups are intended)"
    )
    given, fitted = _label_kind(labels), _label_kind(levels)
    if given and fitted in SINGLE_KINDS and given != fitted:
        return (
            f"the labels of grouping factor {factor!r} are {given} but the model "
            f"was fitted with {fitted} labels: {unseen} of {n} row(s) match no "
            f"fitted level and {consequence}. Give the labels as in fit."
        )
    if kind_only:
        return None
    if unseen == n:
        return (
            f"none of the {n} row(s) has a level of grouping factor {factor!r} "
            f"seen in fit: {consequence}."
        )
    if unseen > MOSTLY_UNSEEN * n:
        return (
            f"{unseen} of {n} row(s) ({unseen / n:.0%}) have a level of grouping "
            f"factor {factor!r} not seen in fit: {consequence}."
        )
    return None


SINGLE_KINDS = ("numeric", "string", "boolean")


def _label_kind(values):
    """One of ``SINGLE_KINDS``, "mixed-kind", or None (unknown, no labels)."""
    if isinstance(getattr(values, "dtype", None), pd.CategoricalDtype):
        values = values.dtype.categories
    kind = pd.api.types.infer_dtype(np.asarray(values, dtype=object), skipna=True)
    if kind in ("integer", "floating", "mixed-integer-float", "decimal"):
        return "numeric"
    if kind in ("string", "boolean"):
        return kind
    return "mixed-kind" if kind.startswith("mixed") else None
