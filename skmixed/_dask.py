"""Fit, predict and score on dask collections: statistics per partition, summed.

``MixedLinearRegressor`` sends dask input here; this module, and dask with
it, is imported only then.  The rows stay where dask keeps them.  Two passes
over the partitions reduce them to what the in-memory stages need:

1. per partition: validation (the errors of the in-memory path), the row
   count, the columns' moments and the distinct labels of each grouping
   factor, combined across partitions by a tree reduction.  They give the
   levels (sorted as :func:`~skmixed._groups.encode_levels` sorts them) and
   the :class:`~skmixed._design.Scaling`;
2. per partition: the codes of the labels among those levels, the scaled
   columns and their :func:`~skmixed._design.sufficient_statistics`, summed
   by :func:`~skmixed._design.add_statistics`.

A formula model (``formula=...`` on a dask DataFrame of raw columns) first
learns its formula on the partitions (:func:`learn_formula`): one pass for the
complete-rows rule, the categorical and grouping levels and ``scale``/``center``
moments, one more per degree of a ``poly`` (R's three-term recurrence, exact);
then both passes above read each partition through the spec's model frame
(fixed columns ``X``, random-effect columns ``Z``, group labels, ``y``).

Only these summaries, of size O(levels), reach the process that called
``fit``; from there the steps are the in-memory ones
(:func:`~skmixed._design.finish_design`, the optimiser, the estimates).  The
passes run on the active dask scheduler: a ``distributed.Client`` if one
exists, else dask's threads.
"""

import functools
from dataclasses import dataclass

import dask
import dask.array as da
import dask.dataframe as dd
import numpy as np
import pandas as pd
from dask import delayed
from sklearn.base import clone
from sklearn.utils.validation import (
    check_array,
    check_consistent_length,
    column_or_1d,
    validate_data,
)

from ._design import (
    INTERCEPT,
    ColumnMoments,
    Scaling,
    add_statistics,
    column_moments,
    finish_design,
    fixed_columns,
    order_factors,
    random_columns,
    scaling_from_moments,
    weighted_statistics,
)
from ._formula import FormulaMatrices, combine_formula_summaries, parse_formula
from ._groups import check_groups, encode_levels, lookup_levels
from ._objective import blas_threads_for
from ._objective_krylov import krylov_options
from ._row_metadata import add_offset, subtract_offset
from ._sklearn import group_column_names, no_column_frame_as_array, split_group_columns
from ._spec import (
    ModelFrame,
    check_formula_spec,
    formula_response,
    positive_weight_rows,
    scored_rows,
    spec_from_matrices,
    warn_incomplete_rows,
    warn_without_groups,
    with_row_metadata,
)

SPLIT_EVERY = 8  # partial results combined by one task of a tree reduction
PREDICT_ATTRIBUTES = (  # all that predict reads: the slim copy sent to workers
    "intercept_",
    "coef_",
    "random_effects_",
    "n_features_in_",
    "feature_names_in_",
    "_factors",
    "_spec",
    "_group_column",
)


# ------------------------------------------------------------------ the inputs


def _is_frame(value):
    return isinstance(value, dd.DataFrame | dd.Series)


def _meta(value):
    """An empty in-memory stand-in with the collection's columns and dtypes."""
    if value is None or _is_frame(value):
        return None if value is None else value._meta
    return np.empty((0, *value.shape[1:]), dtype=value.dtype)


def _check_collections(**values):
    """Every input given is a dask Array, DataFrame or Series."""
    for name, value in values.items():
        if value is None or isinstance(value, da.Array) or _is_frame(value):
            continue
        raise TypeError(
            f"{name} is a {type(value).__name__}, not a dask Array, DataFrame or "
            "Series, but another input is a dask collection: pass X, y, groups "
            "(and sample_weight, offset) all as dask collections partitioned "
            "alike along the rows."
        )


def _split_group_columns(X, groups, group_column):
    """``group_column`` for a dask DataFrame: the in-memory checks, then split."""
    if group_column is None:
        return X, groups
    split_group_columns(_meta(X), groups, group_column)  # raises as in memory
    names = group_column_names(group_column)
    return X.drop(columns=names), X[names]


def _n_partitions(value):
    return value.npartitions if _is_frame(value) else value.numblocks[0]


def _known_rows(value):
    return isinstance(value, da.Array) and not any(np.isnan(value.chunks[0]))


def _check_alignment(X, others):
    """The inputs have the same rows, partitioned alike (else ValueError)."""
    for name, value in others.items():
        if value is None:
            continue
        if _known_rows(X) and _known_rows(value):
            if value.shape[0] != X.shape[0]:
                raise ValueError(
                    "Found input variables with inconsistent numbers of samples: "
                    f"[{X.shape[0]}, {value.shape[0]}] (X and {name})."
                )
            continue  # rechunked to X's row chunks
        if _n_partitions(value) != _n_partitions(X):
            raise ValueError(
                f"X has {_n_partitions(X)} partitions but {name} has "
                f"{_n_partitions(value)}: their rows must be partitioned alike "
                "(take them from one dask DataFrame, or give dask arrays the "
                "same chunks along the rows)."
            )


def _as_row_blocks(value, row_chunks):
    """An array with one chunk along the columns and ``X``'s along the rows."""
    if value.ndim == 2:
        value = value.rechunk({1: -1})
    if row_chunks is not None and _known_rows(value):
        value = value.rechunk({0: row_chunks})
    return value


def _row_blocks(values, row_chunks):
    """Each value's row partitions as delayed objects (None stays None)."""
    arrays = {
        k: _as_row_blocks(v, row_chunks)
        for k, v in enumerate(values)
        if isinstance(v, da.Array)
    }
    # Optimised together, as dask.compute(X, y, groups) would: the tasks keep
    # the form later computations of these arrays give them (a distributed
    # scheduler warns when one key comes with two different tasks).
    arrays = dict(zip(arrays, dask.optimize(*arrays.values())))
    blocks = []
    for k, value in enumerate(values):
        if value is None:
            blocks.append(None)
        elif k in arrays:
            blocks.append(list(arrays[k].to_delayed(optimize_graph=False).ravel()))
        else:
            blocks.append(value.to_delayed())
    return blocks


def _bundle(*parts):
    """One partition of every input, as one object (see :func:`row_partitions`)."""
    bundle = pd.Series([None], dtype=object)
    bundle.iat[0] = parts
    return bundle


def row_partitions(X, **others):
    """The rows, one delayed ``(X, *others)`` tuple per partition of ``X``.

    DataFrames and Series are bundled partition by partition in one
    ``map_partitions`` so that dask's optimiser reads a common source once;
    arrays are rechunked to ``X``'s row chunks.  ``None`` inputs stay None.
    """
    _check_alignment(X, others)
    values = [X, *others.values()]
    if all(v is None or _is_frame(v) for v in values):
        bundles = dd.map_partitions(
            _bundle,
            *values,
            meta=pd.Series(dtype=object),
            align_dataframes=False,
            enforce_metadata=False,
        )
        return bundles.to_delayed()
    blocks = _row_blocks(values, X.chunks[0] if _known_rows(X) else None)
    return [
        tuple(None if b is None else b[k] for b in blocks)
        for k in range(len(blocks[0]))
    ]


def _unpack(rows):
    return rows.iat[0] if isinstance(rows, pd.Series) else rows


def _validated(X, y, groups, estimator_name):
    """One partition checked as ``fit`` checks the whole data."""
    X = check_array(
        no_column_frame_as_array(X),
        dtype=np.float64,
        ensure_min_samples=0,
        ensure_min_features=0,
        estimator=estimator_name,
        input_name="X",
    )
    if y is not None:
        y = check_array(
            y,
            ensure_2d=False,
            dtype=np.float64,
            ensure_min_samples=0,
            estimator=estimator_name,
            input_name="y",
        )
        y = column_or_1d(y)
        check_consistent_length(X, y)
    frame = None if groups is None else check_groups(groups, X.shape[0])
    return X, y, frame


def _partition_rows(rows, estimator_name, model_spec=None, keep_zero_weights=False):
    """``(model frame, rows given)`` of one partition, as ``fit`` builds it.

    Arrays are validated as ``fit`` validates them (``Z`` is ``X``); a
    formula model's raw columns (``model_spec``) go through its model frame,
    which leaves out the incomplete rows.  The prior weights and offset
    follow the rows kept (:func:`~skmixed._spec.with_row_metadata`).
    """
    if model_spec is None:
        X, y, groups, weights, offset = _unpack(rows)
        X, y, labels = _validated(X, y, groups, estimator_name)
        frame = ModelFrame(X, X, labels, y)
        given = X.shape[0]
    else:
        data, y, weights, offset = _unpack(rows)
        frame = model_spec.model_frame(data, with_response=y is None)
        if y is not None:
            frame.y = formula_response(y, frame.complete)
        given = len(frame.complete)
    frame = with_row_metadata(
        frame,
        _vector(weights),
        _vector(offset),
        whole_data=False,
        keep_zero_weights=keep_zero_weights,
    )
    return frame, given


def _vector(values):
    """One partition of a 1-D input as an ndarray (None stays None)."""
    return None if values is None else column_or_1d(np.asarray(values, dtype=float))


# ----------------------------------------------------------- tree reductions


def _reduce_all(combine, items):
    return functools.reduce(combine, items)


def tree_reduce(parts, combine, name):
    """Combine delayed partial results, ``SPLIT_EVERY`` at a time, to one."""
    level = 0
    while len(parts) > 1:
        token = dask.base.tokenize(parts, combine)
        parts = [
            delayed(_reduce_all, pure=True)(
                combine,
                parts[i : i + SPLIT_EVERY],
                dask_key_name=f"skmixed-{name}-{level}-{token}-{i // SPLIT_EVERY}",
            )
            for i in range(0, len(parts), SPLIT_EVERY)
        ]
        level += 1
    return parts[0]


# ------------------------------------------- pass 1: moments and levels


@dataclass
class PartitionSummary:
    """What the first pass learns from some partitions."""

    moments: ColumnMoments
    labels: dict  # factor name -> Series of its distinct labels, first seen first
    lengths: list  # rows with fitted values per partition, in order (a formula's
    # complete rows, those of weight zero included)
    given: int = 0  # rows given, with those a formula leaves out
    z_moments: ColumnMoments | None = None  # a formula's random-effect columns


def combine_moments(a, b):
    """The moments of two sets of rows together (Chan, Golub and LeVeque)."""
    if a.n == 0 or b.n == 0:
        return b if a.n == 0 else a
    n = a.n + b.n
    delta = b.mean - a.mean
    mean = a.mean + delta * (b.n / n)
    var = (a.n * a.var + b.n * b.var + delta**2 * (a.n * b.n / n)) / n
    return ColumnMoments(n, mean, var)


def combine_summaries(a, b):
    labels = {
        name: pd.concat(
            [a.labels[name], b.labels[name]], ignore_index=True
        ).drop_duplicates()
        for name in a.labels
    }
    z_moments = a.z_moments
    if a.z_moments is not None:
        z_moments = combine_moments(a.z_moments, b.z_moments)
    return PartitionSummary(
        combine_moments(a.moments, b.moments),
        labels,
        a.lengths + b.lengths,
        a.given + b.given,
        z_moments,
    )


def _moments(X, y):
    if X.shape[0]:
        return column_moments(X, y)
    return ColumnMoments(0, np.zeros(X.shape[1] + 1), np.zeros(X.shape[1] + 1))


def _summarize_partition(rows, estimator_name, model_spec=None):
    every, given = _partition_rows(rows, estimator_name, model_spec, True)
    frame = positive_weight_rows(every)
    X, Z, y = frame.X, frame.Z, subtract_offset(frame.y, frame.offset)
    lengths = [every.X.shape[0]]
    if model_spec is not None:  # levels learned with the formula
        return PartitionSummary(_moments(X, y), {}, lengths, given, _moments(Z, y))
    groups = frame.groups
    labels = {} if groups is None else {c: groups[c].drop_duplicates() for c in groups}
    return PartitionSummary(_moments(X, y), labels, lengths, given)


def _z_rms(summary):
    """Root mean squares of a formula's random-effect columns (None: X's)."""
    if summary.z_moments is None:
        return None
    mean, var = summary.z_moments.mean[:-1], summary.z_moments.var[:-1]
    return np.sqrt(var + mean**2)


# ----------------------------------------- a formula: levels and transforms


def _formula_summary(rows, matrices):
    return matrices.summarize(_unpack(rows)[0])


def learn_formula(formula, meta, parts):
    """:class:`FormulaMatrices` learned on the partitions, as on all the rows.

    Each pass sends the formula's state to every partition and combines what
    they report (levels, transform sums): one pass for the levels and
    ``scale``/``center``, one more per degree of ``poly`` (fewer when
    nothing is stateful).
    """
    matrices = FormulaMatrices.start(parse_formula(formula), meta)
    while not matrices.fitted:
        state = delayed(matrices, pure=False)
        matrices.learn(
            _compute(
                [delayed(_formula_summary)(rows, state) for rows in parts],
                combine_formula_summaries,
                "formula",
            )
        )
    return matrices


# --------------------------------------------- pass 2: sufficient statistics


@dataclass
class StatisticsSpec:
    """What every partition needs to compute its statistics (sent once)."""

    factors: list  # Factor, optimisation order, with the levels of all rows
    scaling: Scaling
    fit_intercept: bool
    estimator_name: str
    model_spec: object = None  # a formula's ModelSpec: partitions are raw columns
    sparse_others: bool = False  # the Krylov path: Z2'Z2 stays sparse


def _level_codes(frame, factor):
    codes = lookup_levels(frame[factor.name], factor.levels)
    if codes.size and codes.min() < 0:
        raise ValueError(
            f"grouping factor {factor.name!r} has labels in the second pass over "
            "the data that the first pass did not see: the dask collections "
            "must give the same rows each time they are computed."
        )
    return codes


def _partition_statistics(rows, spec):
    frame, _ = _partition_rows(rows, spec.estimator_name, spec.model_spec)
    codes = [_level_codes(frame.groups, f) for f in spec.factors]
    y = subtract_offset(frame.y, frame.offset)
    W = fixed_columns(frame.X, y, spec.fit_intercept, spec.scaling)
    Zs = [
        random_columns(frame.Z, f, s)
        for f, s in zip(spec.factors, spec.scaling.z_scale)
    ]
    return weighted_statistics(
        W,
        codes,
        Zs,
        spec.factors,
        frame.weights,
        n=frame.X.shape[0],
        sparse_others=spec.sparse_others,
    )


# --------------------------------------------------------------------- fit


def fit_dask(model, X, y, groups, sample_weight=None, offset=None):
    """``model.fit(X, y, groups, sample_weight, offset)`` for dask collections.

    Returns ``model``.
    """
    name = type(model).__name__
    _check_collections(sample_weight=sample_weight, offset=offset)
    metadata = {"sample_weight": sample_weight, "offset": offset}
    if model.formula is not None:
        spec, parts = _formula_setup(model, X, y, groups, metadata)
    else:
        spec, parts = _array_setup(model, X, y, groups, metadata)
    model._spec = spec
    formula_spec = spec if model.formula is not None else None

    summary = _compute(
        [delayed(_summarize_partition)(rows, name, formula_spec) for rows in parts],
        combine_summaries,
        "summary",
    )
    n, n_features = summary.moments.n, len(spec.features)
    if formula_spec is not None and summary.given > n:
        warn_incomplete_rows(summary.given - n)
    if n == 0:
        raise ValueError(
            f"Found array with 0 sample(s) (shape=(0, {n_features})) while a "
            f"minimum of 1 is required by {name}."
        )
    model._check_n_samples(n, n_features)
    factors = _factors(model, summary, n)
    ordered = order_factors(factors)
    scaling = scaling_from_moments(
        summary.moments, spec.fit_intercept, ordered, z_rms=_z_rms(summary)
    )
    krylov = krylov_options(model.solver, model.random_state, ordered)
    model.solver_ = "cholesky" if krylov is None else "krylov"
    statistics_spec = StatisticsSpec(
        ordered, scaling, spec.fit_intercept, name, formula_spec, krylov is not None
    )
    statistics_spec = delayed(statistics_spec, pure=True)
    stats = _compute(
        [delayed(_partition_statistics)(rows, statistics_spec) for rows in parts],
        add_statistics,
        "statistics",
    )

    fixed_names = [INTERCEPT] * spec.fit_intercept + list(spec.features)
    design = finish_design(stats, ordered, fixed_names, scaling)
    design.stats.krylov = krylov
    with blas_threads_for(ordered):
        outcome = model._fit_statistics(
            design, spec.factor_names, model.method == "reml"
        )
    model.fitted_values_, model.residuals_ = _lazy_fitted_values(
        model, parts, summary.lengths
    )
    # The rows stay on the cluster: no bootstrap refits from this fit (and no
    # stale rows from an earlier in-memory fit of the same estimator).
    model._train_X = model._train_Z = model._train_codes = None
    model._train_weights = model._train_offset = model._residual_weights = None
    model._warn_about_outcome(outcome)
    return model


def _array_setup(model, X, y, groups, metadata):
    """The checks of ``fit`` on the metadata, the spec and the row partitions."""
    name = type(model).__name__
    if y is None:
        raise ValueError(f"{name} requires y to be passed, but the target y is None.")
    X, groups = _split_group_columns(X, groups, model.group_column)
    _check_collections(X=X, y=y, groups=groups)
    validate_data(
        model,
        no_column_frame_as_array(_meta(X)),
        dtype=np.float64,
        ensure_min_samples=0,
        ensure_min_features=0 if groups is not None else 1,
    )
    if groups is None:
        warn_without_groups(stacklevel=5)
    factor_names = [] if groups is None else list(check_groups(_meta(groups), 0))
    spec = model._array_spec(factor_names, model.n_features_in_)  # before a pass
    return spec, row_partitions(X, y=y, groups=groups, **metadata)


def _formula_setup(model, X, y, groups, metadata):
    """A formula model: the checks, the formula learned on the partitions
    (levels, ``poly``/``scale`` parameters), the spec and the partitions."""
    model._check_formula_params(groups)
    if not isinstance(X, dd.DataFrame):
        raise TypeError(
            "with a formula, X must be a dask DataFrame of the columns the formula "
            f"names; got {type(X).__name__}."
        )
    _check_collections(y=y)
    validate_data(model, X._meta, skip_check_array=True)
    parts = row_partitions(X, y=y, **metadata)
    spec = spec_from_matrices(
        model.formula, learn_formula(model.formula, X._meta, parts)
    )
    check_formula_spec(spec, y)
    model._response_name = spec.response or model._response_name
    return spec, parts


def _compute(partials, combine, name):
    return dask.compute(tree_reduce(partials, combine, name))[0]


def _factors(model, summary, n):
    spec = model._spec
    if not spec.terms:
        return []
    if spec.group_levels:  # a formula's, in lme4's order
        levels = {name: pd.Index(spec.group_levels[name]) for name in spec.factor_names}
    else:
        levels = {
            name: encode_levels(labels.reset_index(drop=True))[1]
            for name, labels in summary.labels.items()
        }
    return model._factors_from_spec(spec, levels, n)


def _slim_copy(model, **params):
    """The fitted model without its statistics: what predict needs, small."""
    slim = clone(model).set_params(**params)
    for attribute in PREDICT_ATTRIBUTES:
        if hasattr(model, attribute):
            setattr(slim, attribute, getattr(model, attribute))
    return slim


def _fitted_partition(rows, slim, estimator_name):
    model_spec = slim._spec if slim._spec.matrices is not None else None
    frame, _ = _partition_rows(rows, estimator_name, model_spec, True)
    groups = frame.groups
    codes = (  # rows of weight zero may have levels the fit did not see
        {}
        if groups is None
        else {f.name: lookup_levels(groups[f.name], f.levels) for f in slim._factors}
    )
    fitted = add_offset(
        slim._predict_conditional(frame.X, frame.Z, codes), frame.offset
    )
    return fitted, frame.y - fitted


def _lazy_fitted_values(model, parts, lengths):
    """Fitted values and residuals as dask arrays, one chunk per partition."""
    slim = delayed(_slim_copy(model, group_column=None), pure=True)
    name = type(model).__name__
    fitted, residuals = [], []
    for rows, length in zip(parts, lengths):
        both = delayed(_fitted_partition, nout=2)(rows, slim, name)
        fitted.append(da.from_delayed(both[0], (length,), dtype=np.float64))
        residuals.append(da.from_delayed(both[1], (length,), dtype=np.float64))
    return da.concatenate(fitted), da.concatenate(residuals)


# ------------------------------------------------------------ predict, score


def _check_predict_inputs(model, X, groups):
    """The checks of ``predict`` on the collections' metadata, before any pass."""
    _check_collections(X=X, groups=groups)
    if model._spec.matrices is not None:  # a formula model: raw columns
        if not isinstance(X, dd.DataFrame):
            raise TypeError(
                "with a formula, X must be a dask DataFrame of the columns the "
                f"formula names; got {type(X).__name__}."
            )
        if groups is not None:
            raise ValueError(
                "a formula model reads its grouping factors from X: groups must "
                "be None."
            )
        return
    features, group_meta = split_group_columns(
        _meta(X), _meta(groups), model._group_column
    )
    validate_data(
        model,
        no_column_frame_as_array(features),
        reset=False,
        dtype=np.float64,
        ensure_min_samples=0,
        ensure_min_features=0,
    )
    if group_meta is not None and model._factors:
        model._match_groups(check_groups(group_meta, 0))


def _predict_rows(slim, X, groups, random_effects, offset=None):
    if X.shape[0] == 0:  # dask partitions may be empty; predict refuses those
        return np.empty(0)
    return slim.predict(X, groups, random_effects=random_effects, offset=offset)


def _predict_frame_partition(X, groups, offset, slim, random_effects):
    y = _predict_rows(slim, X, groups, random_effects, _vector(offset))
    return pd.Series(y, index=X.index, dtype=np.float64)


def _predict_block(rows, slim, random_effects):
    X, groups, offset = _unpack(rows)
    return _predict_rows(slim, X, groups, random_effects, _vector(offset))


def predict_dask(model, X, groups, random_effects="all", offset=None):
    """``model.predict(X, groups, random_effects)`` for dask collections, lazily.

    A dask Series with ``X``'s index and partitions for a dask DataFrame, a
    dask array with ``X``'s row chunks for a dask array.
    """
    _check_predict_inputs(model, X, groups)
    _check_collections(offset=offset)
    slim = delayed(_slim_copy(model), pure=True)
    frames = all(v is None or _is_frame(v) for v in (groups, offset))
    if _is_frame(X) and frames:
        _check_alignment(X, {"groups": groups, "offset": offset})
        return dd.map_partitions(
            _predict_frame_partition,
            X,
            groups,
            offset,
            slim,
            random_effects,
            meta=pd.Series(dtype=np.float64),
            align_dataframes=False,
            enforce_metadata=False,
        )
    arrays = all(v is None or isinstance(v, da.Array) for v in (groups, offset))
    if isinstance(X, da.Array) and arrays:
        parts = row_partitions(X, groups=groups, offset=offset)
        blocks = [
            da.from_delayed(
                delayed(_predict_block)(rows, slim, random_effects),
                (length,),
                dtype=np.float64,
            )
            for rows, length in zip(parts, X.chunks[0])
        ]
        return da.concatenate(blocks)
    raise TypeError(
        f"X is a {type(X).__name__} but groups a {type(groups).__name__}: "
        "pass both as dask DataFrames/Series or both as dask arrays."
    )


@dataclass
class ScoreSums:
    """Weighted moments of y and the residual sum of squares of some rows."""

    weight: float
    mean: float
    m2: float  # sum of w (y - mean)^2
    rss: float  # sum of w (y - y_pred)^2


def combine_score_sums(a, b):
    if a.weight == 0 or b.weight == 0:
        return b if a.weight == 0 else a
    weight = a.weight + b.weight
    delta = b.mean - a.mean
    mean = a.mean + delta * (b.weight / weight)
    m2 = a.m2 + b.m2 + delta**2 * (a.weight * b.weight / weight)
    return ScoreSums(weight, mean, m2, a.rss + b.rss)


def _formula_scored_rows(slim, X, y, w, offset):
    """A formula model's ``score`` rows: those with every value it uses.

    ``(y, y_pred, w)``; y from the formula when None (as in memory).
    """
    y_pred = _predict_rows(slim, X, None, "all", offset)
    return scored_rows(slim._spec, X, y, y_pred, w)


def _score_partition(rows, slim, estimator_name):
    X, y, groups, w, offset = _unpack(rows)
    offset = _vector(offset)
    y_pred = None
    if slim._spec.matrices is not None:
        y, y_pred, w = _formula_scored_rows(slim, X, y, w, offset)
    else:
        y = column_or_1d(check_array(y, ensure_2d=False, ensure_min_samples=0))
        check_consistent_length(X, y)
    w = np.ones(y.shape[0]) if w is None else column_or_1d(np.asarray(w, float))
    check_consistent_length(y, w)
    if y.shape[0] == 0 or w.sum() == 0:
        return ScoreSums(0.0, 0.0, 0.0, 0.0)
    if y_pred is None:
        y_pred = slim.predict(X, groups, offset=offset)
    mean = np.average(y, weights=w)
    return ScoreSums(
        float(w.sum()),
        float(mean),
        float(w @ (y - mean) ** 2),
        float(w @ (y - y_pred) ** 2),
    )


def score_dask(model, X, y, groups, sample_weight, offset=None):
    """R^2 of the predictions, as ``sklearn.metrics.r2_score``; a float.

    The sums are computed per partition: no rows reach this process.
    """
    _check_predict_inputs(model, X, groups)
    _check_collections(y=y, sample_weight=sample_weight, offset=offset)
    slim = delayed(_slim_copy(model), pure=True)
    name = type(model).__name__
    parts = row_partitions(
        X, y=y, groups=groups, sample_weight=sample_weight, offset=offset
    )
    sums = _compute(
        [delayed(_score_partition)(rows, slim, name) for rows in parts],
        combine_score_sums,
        "score",
    )
    if sums.m2 == 0:  # r2_score's force_finite convention
        return 1.0 if sums.rss == 0 else 0.0
    return float(1.0 - sums.rss / sums.m2)
