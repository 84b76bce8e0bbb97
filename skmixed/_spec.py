"""The model specification, from either front end (lme4's ``lFormula``).

Two front ends describe the same models:

- a formula, ``"yield ~ nitro * Variety + (1 | Block/Variety)"``, on a data
  frame of raw columns (:func:`formula_spec`);
- numeric ``X`` and ``groups`` with the estimator's ``random_slopes``,
  ``random_intercept``, ``covariance`` and ``fit_intercept``
  (:func:`array_spec`).

Both give a :class:`ModelSpec`: the fixed-effect feature columns, the
random-effect terms of each grouping factor (:class:`TermSpec`) and the
names.  Its :meth:`~ModelSpec.model_frame` turns rows into a
:class:`ModelFrame`, the numbers every later stage reads: the fixed-effect
features ``X`` (no intercept column), the random-effect columns ``Z`` that
the terms' slopes index, and the group labels.  For arrays ``Z`` is ``X``
itself (a random slope is a feature); a formula's random terms have columns
of their own (``(poly(Time, 2) | Chick)``).
"""

import warnings
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
from sklearn.utils.validation import column_or_1d

from ._formula import INTERCEPT, FormulaMatrices, parse_formula
from ._row_metadata import check_offset, check_sample_weight
from ._validation import column_indices


@dataclass(frozen=True)
class TermSpec:
    """The random-effect terms of one grouping factor.

    ``names`` are the terms (``Intercept`` first when there is one); each
    slope term reads column ``columns[k]`` of the model frame's ``Z``.
    ``diagonal`` is lme4's ``||`` (uncorrelated terms).
    """

    factor: str
    names: tuple
    columns: tuple
    intercept: bool
    diagonal: bool


@dataclass
class ModelFrame:
    """The numbers of some rows: what the design and predictions read."""

    X: np.ndarray  # (n, p) fixed-effect features, no intercept column
    Z: np.ndarray  # (n, r) random-effect slope columns
    groups: pd.DataFrame | None  # one column of labels per grouping factor
    y: np.ndarray | None = None
    complete: np.ndarray | None = None  # rows kept, of the rows given (formula)
    weights: np.ndarray | None = None  # prior weights, >= 0 (None: all 1)
    offset: np.ndarray | None = None  # known part of the linear predictor


def with_row_metadata(
    frame, sample_weight, offset, *, whole_data=True, keep_zero_weights=False
):
    """``frame`` with its rows' prior weights and offset, checked.

    Both are given for the rows of ``X`` as passed (a formula's incomplete
    rows included) and follow the rows the fit keeps.  Rows of weight zero
    carry no information and are left out (see :mod:`._row_metadata`),
    unless ``keep_zero_weights`` (the rows of the fitted values).
    ``whole_data=False`` for one partition of the data, where all weights
    may be zero.
    """
    n_given = frame.y.shape[0] if frame.complete is None else frame.complete.shape[0]
    weights = check_sample_weight(sample_weight, n_given, whole_data=whole_data)
    offset = check_offset(offset, n_given)
    if frame.complete is not None:
        weights = None if weights is None else weights[frame.complete]
        offset = None if offset is None else offset[frame.complete]
    frame.weights, frame.offset = weights, offset
    return frame if keep_zero_weights else positive_weight_rows(frame)


def positive_weight_rows(frame):
    """The rows of ``frame`` the statistics are computed from (weight > 0)."""
    if frame.weights is None or np.all(frame.weights > 0):
        return frame
    return _select_rows(frame, frame.weights > 0)


def _select_rows(frame, keep):
    groups = frame.groups
    if groups is not None:
        groups = groups[keep].reset_index(drop=True)
    X = frame.X[keep]
    return ModelFrame(
        X,
        X if frame.Z is frame.X else frame.Z[keep],  # arrays: Z is X
        groups,
        None if frame.y is None else frame.y[keep],
        frame.complete,
        None if frame.weights is None else frame.weights[keep],
        None if frame.offset is None else frame.offset[keep],
    )


@dataclass
class ModelSpec:
    """What is fitted: fixed features, random terms per factor, names."""

    features: list  # fixed-effect feature names, without the intercept
    fit_intercept: bool
    terms: list  # TermSpec per grouping factor, in the user's order
    formula: str | None = None
    response: str | None = None
    matrices: FormulaMatrices | None = field(default=None, repr=False)
    group_levels: dict = field(default_factory=dict)  # formula: lme4's orders

    @property
    def factor_names(self):
        return [t.factor for t in self.terms]

    def term(self, factor):
        return next(t for t in self.terms if t.factor == factor)

    def model_frame(
        self, frame, *, with_response=False, new_levels=False, labels=False
    ):
        """The model frame of a data frame's rows (formula models).

        Rows with a missing value in a variable the formula uses are left out
        (``complete`` marks the kept ones, lme4's ``na.omit``), except, with
        ``new_levels`` (predictions), a missing group label: a new level.
        The response is read only ``with_response`` (class labels kept as
        they are with ``labels``); otherwise its column, if any, is ignored,
        so that new rows need not have it.
        """
        matrices = self.matrices
        frame = formula_frame(frame)
        if not with_response and self.response in frame.columns:
            frame = frame.drop(columns=[self.response])
        complete = matrices.complete_rows(frame, new_levels=new_levels)
        rows = frame[complete].reset_index(drop=True)
        X, names = matrices.fixed(rows)
        X = X[:, [j for j, n in enumerate(names) if n != INTERCEPT]]
        Z = [
            block[:, [j for j, n in enumerate(block_names) if n != INTERCEPT]]
            for block, block_names in matrices.random(rows)
        ]
        Z = np.hstack(Z) if Z else np.zeros((len(rows), 0))
        groups = matrices.groups(rows) if self.terms else None
        y = matrices.response(rows, labels) if with_response else None
        return ModelFrame(X, Z, groups, y, complete)


def formula_spec(formula, frame):
    """The specification of an lme4 formula, learned on a training frame."""
    matrices = FormulaMatrices.fit(parse_formula(formula), formula_frame(frame))
    return spec_from_matrices(formula, matrices)


def spec_from_matrices(formula, matrices):
    """The specification of a formula from its fitted :class:`FormulaMatrices`
    (learned on a frame, or on the partitions of a dask DataFrame)."""
    parsed = matrices.parsed
    features = [n for n in matrices.fixed_names if n != INTERCEPT]
    # Z holds the slope columns term after term, in formula order.
    by_factor, start = {}, 0
    for term, names in zip(parsed.random, matrices.random_names):
        slopes = [n for n in names if n != INTERCEPT]
        columns = list(range(start, start + len(slopes)))
        by_factor.setdefault(term.grouping_name, []).append((term, names, columns))
        start += len(slopes)
    terms = [_merge_terms(factor, parts) for factor, parts in by_factor.items()]
    return ModelSpec(
        features=features,
        fit_intercept=matrices.intercept,
        terms=terms,
        formula=formula,
        response=parsed.response,
        matrices=matrices,
        group_levels=dict(matrices.group_levels),
    )


def _merge_terms(factor, parts):
    """One TermSpec from the bar terms ``(term, names, slope columns)`` on a factor.

    A single term is correlated (or one column).  Several terms on the same
    factor (lme4's ``(1 | g) + (0 + x | g)``, what ``||`` expands to) are
    independent of one another: supported when each has one column, as a
    diagonal covariance.
    """
    names = [n for _, term_names, _ in parts for n in term_names]
    if len(set(names)) < len(names):
        raise ValueError(
            f"the grouping factor {factor!r} has the random-effect column(s) "
            f"{sorted({n for n in names if names.count(n) > 1})} in more than one "
            "term: each column may appear in one term only."
        )
    if len(parts) > 1 and any(len(term_names) > 1 for _, term_names, _ in parts):
        written = " + ".join(f"({t.expression} | {factor})" for t, _, _ in parts)
        hint = "Write them as one correlated term, or all with ||."
        if not parts[0][0].correlated:
            # lme4 expands (1 + f || g) with a factor f into (1 | g) +
            # (0 + f | g), the second a correlated block of f's levels.
            hint = (
                "|| with a categorical variable gives such a term; write "
                f"(1 + ... | {factor}) or (1 | {factor}) + (1 | {factor}:f) instead."
            )
        raise ValueError(
            f"{written}: several random-effect terms on one grouping factor are "
            "supported only when each has one column (uncorrelated terms, as "
            f"lme4's ||). {hint}"
        )
    intercept = INTERCEPT in names
    slopes = [n for n in names if n != INTERCEPT]
    columns = tuple(c for _, _, term_columns in parts for c in term_columns)
    diagonal = len(parts) > 1 or (len(names) > 1 and not parts[0][0].correlated)
    # The intercept first, as lme4's model matrix of a term puts it.
    names = (INTERCEPT,) * intercept + tuple(slopes)
    return TermSpec(factor, names, columns, intercept, diagonal)


def array_spec(params, n_features, factor_names, feature_names_in=None):
    """The specification of the array front end.

    ``params`` are the estimator's ``random_slopes``, ``random_intercept``,
    ``covariance`` and ``fit_intercept``; random slopes index the features,
    by name when ``X`` had names (``feature_names_in``), else by position.
    """
    given = [] if feature_names_in is None else [str(c) for c in feature_names_in]
    features = given or [f"x{j}" for j in range(n_features)]
    slopes = _resolve_slopes(params["random_slopes"], factor_names, given, n_features)
    covariance = _resolve_covariance(params["covariance"], factor_names)
    terms = []
    for name in factor_names:
        columns = slopes[name]
        intercept = params["random_intercept"]
        names = [INTERCEPT] * intercept + [features[j] for j in columns]
        if not names:
            raise ValueError(
                f"grouping factor {name!r} has no random-effect terms: with "
                "random_intercept=False give it random_slopes."
            )
        diagonal = covariance[name] == "diagonal"
        terms.append(TermSpec(name, tuple(names), tuple(columns), intercept, diagonal))
    return ModelSpec(features, params["fit_intercept"], terms)


def _resolve_slopes(spec, factor_names, names, n_features):
    """Factor name -> list of feature indices with a random slope."""

    def indices(columns):
        return column_indices(columns, names, n_features, parameter="random_slopes")

    if isinstance(spec, dict):
        unknown = set(spec) - set(factor_names)
        if unknown:
            raise ValueError(
                "random_slopes names unknown grouping factor(s) "
                f"{sorted(unknown)}; the factors are {factor_names}."
            )
        return {f: indices(spec.get(f)) for f in factor_names}
    columns = indices(spec)
    return {f: columns for f in factor_names}


def _resolve_covariance(spec, factor_names):
    if isinstance(spec, str):
        return dict.fromkeys(factor_names, spec)
    unknown = set(spec) - set(factor_names)
    bad = {v for v in spec.values()} - {"unstructured", "diagonal"}
    if unknown or bad:
        raise ValueError(
            "covariance must map grouping factors to 'unstructured' or "
            f"'diagonal'; unknown factors {sorted(unknown)}, unknown values "
            f"{sorted(map(str, bad))}."
        )
    return {f: spec.get(f, "unstructured") for f in factor_names}


def check_formula_spec(spec, y, *, random_terms=True):
    """The checks of every formula fit, once the formula is learned.

    A response (from the formula or ``y``), and random-effect terms for a
    mixed model (lme4 refuses a formula without).
    """
    if y is None and spec.response is None:
        raise ValueError(
            f"the formula {spec.formula!r} has no response: write it as "
            "'y ~ ...' or pass y to fit."
        )
    if random_terms and not spec.terms:
        raise ValueError(
            f"no random-effects terms in the formula {spec.formula!r} (lme4 "
            "refuses this too): add one such as (1 | g), or fit the fixed part "
            "alone with CompletePoolingRegressor(formula=...)."
        )


def training_frame(spec, X, y, stacklevel=2, labels=False):
    """The model frame a formula model is fitted on, ``y`` read or checked.

    Rows missing a value the formula uses are left out with a warning
    (lme4's ``na.action = na.omit``).  ``labels``: a classifier's response,
    class labels kept as they are.
    """
    frame = spec.model_frame(X, with_response=y is None, labels=labels)
    if y is not None:
        frame.y = formula_response(y, frame.complete, labels)
    warn_incomplete_rows(int((~frame.complete).sum()), stacklevel + 1)
    return frame


def warn_without_groups(stacklevel, model="an ordinary linear regression"):
    warnings.warn(
        "fit() was called without groups: the model has no random effects "
        f"({model}). Pass groups=... to fit a mixed model.",
        UserWarning,
        stacklevel=stacklevel,
    )


def warn_incomplete_rows(n_dropped, stacklevel=2):
    if n_dropped:
        warnings.warn(
            f"{n_dropped} row(s) with a missing value in a variable of the "
            "formula were left out of the fit (lme4's na.action = na.omit).",
            UserWarning,
            stacklevel=stacklevel + 1,
        )


def formula_response(y, complete, labels=False):
    """``y`` given to a formula model: numeric and finite on the rows kept.

    ``complete`` marks the rows of ``X`` with every value the formula uses.
    With ``labels`` (a classifier's), class labels of any kind.
    """
    y = column_or_1d(np.asarray(y), warn=True)
    if y.shape[0] != complete.shape[0]:
        raise ValueError(
            f"y has {y.shape[0]} values but X has {complete.shape[0]} rows; they "
            "must match."
        )
    if labels:
        return y[complete]
    try:
        y = y[complete].astype(np.float64)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"y must be numeric: {exc}") from exc
    if not np.all(np.isfinite(y)):
        raise ValueError("y contains NaN or infinity.")
    return y


def scored_rows(spec, X, y, y_pred, sample_weight=None, labels=False):
    """``(y, y_pred, sample_weight)`` on the rows a formula model can score.

    Those with every value the formula uses; ``y`` read from ``X`` when None
    (class labels kept as they are with ``labels``).
    """
    if y is None:
        frame = spec.model_frame(X, with_response=True, new_levels=True, labels=labels)
        keep, y = frame.complete, frame.y
    else:
        keep = np.isfinite(y_pred)
        y = formula_response(y, keep, labels)
    weight = None if sample_weight is None else np.asarray(sample_weight, float)[keep]
    return y, y_pred[keep], weight


def formula_frame(frame):
    """A pandas frame from pandas or polars (a formula model's X)."""
    if type(frame).__module__.startswith("polars"):
        from ._formula import _as_pandas

        return _as_pandas(frame)
    if isinstance(frame, pd.DataFrame):
        return frame.reset_index(drop=True)
    raise TypeError(
        "with a formula, X must be a pandas or polars DataFrame of the columns "
        f"the formula names; got {type(frame).__name__}."
    )
