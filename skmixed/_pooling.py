"""The two extremes a mixed model sits between: complete and no pooling.

``CompletePoolingRegressor`` ignores the groups (one least-squares line for
everyone); ``NoPoolingRegressor`` gives every group its own intercept, and its
own slopes for chosen columns, as fixed effects (lme4's ``lmList``, or R's
``lm(y ~ x * g)`` when every slope varies).  A mixed model's predicted random
effects shrink each group from the complete-pooling towards the no-pooling
line, more for small groups; comparing the three under cross-validation
(:func:`skmixed.compare_pooling`) shows what the shrinkage buys.

Both take a ``formula`` too, on raw tabular data, read through the spec stage
(:mod:`skmixed._spec`) as the mixed model reads it: complete pooling fits the
formula's fixed part (its bar terms ignored), no pooling the fixed part by the
bar term's grouping factor, the term's columns varying by group.

Both are solved on per-group sufficient statistics, as the mixed model: the
group columns are profiled out level by level (Frisch-Waugh-Lovell), which
needs one small ``q x q`` Cholesky factor per group and never an
``n x (m q)`` design matrix.
"""

import re
import warnings

import numpy as np
import pandas as pd
from sklearn.base import BaseEstimator, RegressorMixin
from sklearn.metrics import r2_score
from sklearn.utils.validation import check_is_fitted, validate_data

from ._design import INTERCEPT, RANK_TOLERANCE, block_cross_products, make_scaling
from ._formula import parse_formula
from ._groups import check_groups, encode_levels, lookup_levels
from ._linalg import gram, solve_lower, solve_upper_transposed
from ._sklearn import (
    no_column_frame_as_array,
    split_group_columns,
    validate_predict_input,
)
from ._spec import check_formula_spec, formula_spec, scored_rows, training_frame
from ._validation import InstanceOf, Options, column_indices, validate_params

_GROUP_COLUMN = [
    InstanceOf(str, list, tuple, description="a str or a list of str"),
    Options(None),
]
_FORMULA = [InstanceOf(str), Options(None)]


# --------------------------------------------------------------------------
# Numerics: least squares with per-group columns, on sufficient statistics
# --------------------------------------------------------------------------


def _rank_revealing_cholesky(A, norms, tol=RANK_TOLERANCE):
    """Cholesky factors of a stack of PSD blocks that skip dependent columns.

    Column ``j`` of block ``g`` is dropped when the part of it not explained
    by the kept columns before it has a squared norm below
    ``tol**2 * norms[j, g]`` (R's ``qr`` with limited pivoting, as
    :func:`skmixed._design.independent_columns`, but batched and with a
    reference norm chosen by the caller).  A dropped column gets a unit
    diagonal and zeros elsewhere, so that ``L`` restricted to the kept
    columns is the Cholesky factor of ``A`` restricted to them.

    Parameters
    ----------
    A : ndarray of shape (q, q, m)
    norms : ndarray of shape (q, m)

    Returns
    -------
    L : ndarray of shape (q, q, m)
    kept : ndarray of bool, shape (q, m)
    """
    q, _, m = A.shape
    L = np.zeros_like(A)
    kept = np.zeros((q, m), dtype=bool)
    for j in range(q):
        d = A[j, j] - sum(L[j, k] ** 2 for k in range(j))
        kept[j] = d > tol**2 * norms[j]
        L[j, :j] *= kept[j]  # a dropped row must not touch the kept columns
        root = np.sqrt(np.where(kept[j], d, 1.0))
        L[j, j] = root
        for i in range(j + 1, q):
            s = A[i, j] - sum(L[i, k] * L[j, k] for k in range(j))
            L[i, j] = np.where(kept[j], s / root, 0.0)
    return L, kept


def _solve_kept(L, kept, rhs):
    """Solve ``A[K, K] x[K] = rhs[K]`` per block, with ``x = 0`` off ``K``.

    ``L`` and ``kept`` come from :func:`_rank_revealing_cholesky`; ``rhs`` and
    the result have shape (q, m).
    """
    B = (rhs * kept)[:, None, :]
    return solve_upper_transposed(L, solve_lower(L, B))[:, 0, :]


def _solve_normal_equations(G, b, norms):
    """Least-squares coefficients from ``G x = b``; 0 for dependent columns."""
    L, kept = _rank_revealing_cholesky(G[:, :, None], norms[:, None])
    return _solve_kept(L, kept, b[:, None])[:, 0], kept[:, 0]


def _unscale_lines(lines, scaling):
    """Lines (intercept, slopes) fitted on scaled data, in original units."""
    slopes = scaling.y_scale * lines[:, 1:] / scaling.x_scale
    intercept = (
        scaling.y_center + scaling.y_scale * lines[:, 0] - slopes @ scaling.x_center
    )
    return np.column_stack([intercept, slopes])


def fit_group_lines(X, y, codes, n_levels, slope_columns, reference=None):
    """Least squares with an intercept and some slopes per level.

    Fits ``y = a[g] + X[:, S] @ b[g] + X[:, C] @ c + e`` where ``S`` are the
    ``slope_columns`` and ``C`` the other columns (slopes shared by all
    levels), by profiling the per-level columns out of the normal equations.

    Parameters
    ----------
    X : ndarray of shape (n, p)
    y : ndarray of shape (n,)
    codes : ndarray of int of shape (n,)
        Level of each row, ``0 .. n_levels - 1``.
    n_levels : int
    slope_columns : list of int
    reference : ndarray of shape (1 + p,), default=None
        A line whose slopes stand in for the slopes a level cannot estimate
        (too few rows, or a column constant within the level): among the
        least-squares solutions, the one with those slopes equal to the
        reference.  None means 0.

    Returns
    -------
    lines : ndarray of shape (n_levels, 1 + p)
        Each level's intercept and slopes of all ``p`` columns (the shared
        ones repeated), in original units.
    estimable : ndarray of bool, shape (n_levels, 1 + len(slope_columns))
        Whether the level's intercept and each of its slopes were estimated.
    dropped : list of int
        Shared columns dropped as linearly dependent on the others and the
        per-level columns (e.g. constant within every level); slope 0.
    """
    p = X.shape[1]
    scaling = make_scaling(X, y, True, [])
    Xs = (X - scaling.x_center) / scaling.x_scale
    ys = (y - scaling.y_center) / scaling.y_scale
    slope_columns = list(slope_columns)
    common = [j for j in range(p) if j not in set(slope_columns)]
    Z = np.column_stack([np.ones(len(ys)), Xs[:, slope_columns]])
    W = np.column_stack([Xs[:, common], ys])
    ZtZ, ZtW = block_cross_products(codes, Z, W, n_levels, intercept=True)
    L, estimable = _rank_revealing_cholesky(ZtZ, np.diagonal(ZtZ).T)
    shared, kept = _shared_slopes(ZtW, W.T @ W, L, estimable)
    ref = np.zeros(Z.shape[1])
    if reference is not None:  # in the scaled units of the fit
        ref[1:] = reference[1:][slope_columns] * scaling.x_scale[slope_columns]
        ref[1:] /= scaling.y_scale
    own = _own_coefficients(ZtZ, ZtW, L, estimable, shared, ref)
    lines = np.zeros((n_levels, 1 + p))
    lines[:, 0] = own[0]
    lines[:, [1 + j for j in slope_columns]] = own[1:].T
    lines[:, [1 + j for j in common]] = shared
    dropped = [common[j] for j in np.flatnonzero(~kept)]
    return _unscale_lines(lines, scaling), estimable.T, dropped


def _shared_slopes(ZtW, WtW, L, estimable):
    """Slopes of the shared columns, with every level's own columns profiled out.

    Frisch-Waugh-Lovell: the normal equations of the parts of ``W = [X_C y]``
    orthogonal to each level's own columns, ``W'W - sum_g C_g' C_g`` with
    ``C_g = L_g^-1 Z_g'W_g``.  A shared column is dropped when that part is
    tiny against its whole (e.g. a column constant within every level).
    """
    S = WtW - gram(solve_lower(L, ZtW * estimable[:, None, :]))
    k = S.shape[0] - 1
    return _solve_normal_equations(S[:k, :k], S[:k, k], np.diag(WtW)[:k])


def _own_coefficients(ZtZ, ZtW, L, estimable, shared, reference):
    """Each level's intercept and slopes given the shared slopes, shape (q, m).

    Least squares on what the shared slopes leave, ``Z_g'(y - X_C c)``, with
    the columns a level cannot estimate held at ``reference``.
    """
    k = ZtW.shape[1] - 1
    rhs = ZtW[:, k, :] - np.einsum("qkm,k->qm", ZtW[:, :k, :], shared)
    rhs -= np.einsum("abm,b->am", ZtZ, reference)
    return reference[:, None] + _solve_kept(L, estimable, rhs)


def fit_line_through_origin(X, y):
    """Least squares without an intercept; 0 for dependent columns."""
    scaling = make_scaling(X, y, False, [])
    W = np.column_stack([X / scaling.x_scale, y / scaling.y_scale])
    WtW = W.T @ W
    p = X.shape[1]
    coef, kept = _solve_normal_equations(WtW[:p, :p], WtW[:p, p], np.diag(WtW)[:p])
    line = _unscale_lines(np.concatenate([[0.0], coef])[None, :], scaling)[0]
    return line, [j for j in range(p) if not kept[j]]


def _warn_dropped(dropped, names, why):
    if dropped:
        warnings.warn(
            f"{why} so dropping {len(dropped)} column(s): "
            f"{[names[j] for j in dropped]}. Their coefficients are set to 0.",
            UserWarning,
            stacklevel=3,
        )


# --------------------------------------------------------------------------
# The formula front end: the fixed part, and the fixed part by group
# --------------------------------------------------------------------------


def fixed_formula(formula):
    """The formula without its random-effect terms (lme4's ``nobars``).

    Examples
    --------
    >>> fixed_formula("distance ~ age * Sex + (age | Subject)")
    'distance ~ age * Sex'
    >>> fixed_formula("Yield ~ (1 | Batch)")
    'Yield ~ 1'
    """
    parsed = parse_formula(formula)
    return f"{parsed.response or ''} ~ {parsed.fixed}".lstrip()


def single_factor_formula(formula, factor=None):
    """The fixed part and the random-effect terms of one grouping factor.

    ``factor`` is lme4's name of one of the formula's grouping factors
    (``"b:a"`` for the inner factor of ``(1 | a/b)``); None is the first.

    Examples
    --------
    >>> single_factor_formula("y ~ x + (1 + x | g) + (1 | h)")
    'y ~ x + (1 + x | g)'
    >>> single_factor_formula("y ~ x + (1 | a/b)", "b:a")
    'y ~ x + (1 | b:a)'
    """
    parsed = parse_formula(formula)
    names = list(dict.fromkeys(t.grouping_name for t in parsed.random))
    if not names:
        raise ValueError(
            f"the formula {formula!r} has no random-effect term (... | g): it "
            "names no grouping factor."
        )
    factor = names[0] if factor is None else factor
    if factor not in names:
        raise ValueError(
            f"{factor!r} is not a grouping factor of {formula!r}; its factors are "
            f"{names}."
        )
    bars = [
        f"({t.expression} | {':'.join(map(_r_symbol, t.grouping))})"
        for t in parsed.random
        if t.grouping_name == factor
    ]
    return " + ".join([fixed_formula(formula), *bars])


def _r_symbol(name):
    return name if re.fullmatch(r"[A-Za-z.][A-Za-z0-9._]*", name) else f"`{name}`"


def group_design(spec, frame, factor):
    """The columns of a formula's no-pooling fit by one grouping factor.

    Parameters
    ----------
    spec : ModelSpec
        A formula's specification.
    frame : ModelFrame
        Its model frame (``X`` the fixed features, ``Z`` the random slopes).
    factor : str
        The grouping factor.

    Returns
    -------
    D : ndarray of shape (n_samples, n_columns)
        The fixed-effect features (no intercept), then the factor's random
        slopes that are not fixed features (``y ~ 1 + (x | g)``).
    names : list of str
        R's names of the columns of ``D``.
    slope_columns : list of int
        The columns of ``D`` that are the factor's random slopes, in the
        order of its terms: each group's own slopes.
    """
    term = spec.term(factor)
    slopes = [n for n in term.names if n != INTERCEPT]
    features = list(spec.features)
    names = features + [n for n in slopes if n not in features]
    columns = [
        frame.Z[:, term.columns[slopes.index(n)]]
        if n in slopes
        else frame.X[:, features.index(n)]
        for n in names
    ]
    D = np.column_stack(columns) if columns else np.empty((frame.X.shape[0], 0))
    return D, names, [names.index(n) for n in slopes]


def _formula_model_frame(estimator, X, y, groups, formula):
    """The specification and training model frame of a formula fit.

    Rows missing a value the formula uses are left out, with a warning, as
    the mixed model does (lme4's ``na.omit``).
    """
    if groups is not None:
        raise ValueError(
            "with a formula, groups must be None: the grouping factor is a "
            "column of X named in the formula's (... | g) term."
        )
    validate_data(estimator, X, skip_check_array=True)
    spec = formula_spec(formula, X)
    check_formula_spec(spec, y, random_terms=False)
    labels = not estimator._numeric_target  # a classifier's response: labels
    return spec, training_frame(spec, X, y, stacklevel=4, labels=labels)


def _check_formula_params(estimator, defaults):
    """With a formula, the array front end's parameters stay at their defaults."""
    changed = [k for k, v in defaults.items() if getattr(estimator, k) != v]
    if changed:
        raise ValueError(
            f"with a formula, {changed} must be left at their defaults: the "
            "formula gives the columns, the intercept and the grouping factor."
        )


# --------------------------------------------------------------------------
# Estimators
# --------------------------------------------------------------------------


class _GroupedModel(BaseEstimator):
    """What the baselines share: ``groups``, ``group_column``, formulas.

    The linear baselines and the generalised ones
    (:mod:`skmixed._pooling_glm`) differ in the solver (``_solve_line``,
    ``_solve_lines``) and in what they predict from the linear predictor.
    """

    _numeric_target = True  # a classifier keeps its labels

    def _validate_fit_data(self, X, y, groups):
        validate_params(self)
        self._group_column = self.group_column  # what predict splits off X
        X, groups = split_group_columns(X, groups, self.group_column)
        X, y = validate_data(
            self,
            no_column_frame_as_array(X),
            y,
            y_numeric=self._numeric_target,
            dtype=np.float64,
            ensure_min_features=0 if groups is not None else 1,
        )
        self._spec = None
        return X, y, None if groups is None else check_groups(groups, X.shape[0])

    def _validate_predict_data(self, X, groups):
        X, groups = validate_predict_input(self, X, groups)
        return X, None if groups is None else check_groups(groups, X.shape[0])

    def _formula_predict_frame(self, X, groups):
        """The model frame of new rows of a formula fit (raw columns of ``X``)."""
        check_is_fitted(self)
        if groups is not None:
            raise ValueError(
                "a formula model reads its grouping factor from X: groups must be None."
            )
        return self._spec.model_frame(X)

    def _feature_names(self, n_features):
        if hasattr(self, "feature_names_in_"):
            return [str(c) for c in self.feature_names_in_]
        return [f"x{j}" for j in range(n_features)]

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        # A formula model takes raw data frames: strings, categoricals and
        # missing values (rows left out, as lme4's na.omit).
        raw = self.formula is not None
        tags.input_tags.allow_nan = raw
        tags.input_tags.string = raw
        tags.input_tags.categorical = raw
        return tags


class _GroupedLinearModel(RegressorMixin, _GroupedModel):
    """The linear baselines: least squares, scored by R^2."""

    @staticmethod
    def _solve_line(X, y, weights, fit_intercept):
        """One least-squares line and the columns dropped (``weights`` unused)."""
        if fit_intercept:
            lines, _, dropped = fit_group_lines(X, y, np.zeros(len(y), np.intp), 1, [])
            return lines[0], dropped
        return fit_line_through_origin(X, y)

    @staticmethod
    def _solve_lines(X, y, weights, codes, n_levels, slopes, reference):
        """A least-squares line per level (``weights`` unused)."""
        return fit_group_lines(X, y, codes, n_levels, slopes, reference=reference)

    def score(self, X, y=None, groups=None, sample_weight=None):
        """R^2 of ``predict(X, groups)``.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            As in ``predict`` (with ``formula``, the raw data frame).
        y : array-like of shape (n_samples,), default=None
            Required without ``formula``; with it, None reads the response
            from ``X``.  A formula model scores the rows that have every
            value the formula uses.
        groups : array-like of shape (n_samples,), default=None
            Group labels as in ``predict``.
        sample_weight : array-like of shape (n_samples,), default=None

        Returns
        -------
        score : float
        """
        y_pred = self.predict(X, groups=groups)
        if self._spec is None:
            if y is None:
                raise ValueError(
                    "score needs y (only a formula model reads it from X)."
                )
            return r2_score(y, y_pred, sample_weight=sample_weight)
        y, y_pred, weight = scored_rows(self._spec, X, y, y_pred, sample_weight)
        return r2_score(y, y_pred, sample_weight=weight)


def _on_complete_rows(frame, values):
    """Predictions for every row given: NaN where the formula misses a value."""
    y = np.full(frame.complete.shape[0], np.nan)
    y[frame.complete] = values
    return y


class _CompletePoolingModel(_GroupedModel):
    """One line for every group: the data, the fit and the linear predictor."""

    def _fit_data(self, X, y, groups):
        """Features, response, names, intercept and the formula's kept rows."""
        if self.formula is not None:
            return self._formula_data(X, y, groups)
        X, y, _ = self._validate_fit_data(X, y, groups)
        return X, y, self._feature_names(X.shape[1]), self.fit_intercept, None

    def _fit_line(self, X, y, weights, names, fit_intercept):
        line, dropped = self._solve_line(X, y, weights, fit_intercept)
        _warn_dropped(dropped, names, "the model matrix is rank deficient")
        self.intercept_ = float(line[0])
        self.coef_ = line[1:]
        return self

    def _formula_data(self, X, y, groups):
        """The fixed part's model matrix, response, names, intercept, kept rows."""
        validate_params(self)
        _check_formula_params(self, {"fit_intercept": True, "group_column": None})
        spec, frame = _formula_model_frame(
            self, X, y, groups, fixed_formula(self.formula)
        )
        self._spec = spec
        self.feature_names_ = list(spec.features)
        return frame.X, frame.y, self.feature_names_, spec.fit_intercept, frame.complete

    def _line_prediction(self, X, groups):
        """``intercept_ + X coef_`` (NaN for a formula's incomplete rows)."""
        if getattr(self, "_spec", None) is not None:
            frame = self._formula_predict_frame(X, groups)
            return _on_complete_rows(frame, self.intercept_ + frame.X @ self.coef_)
        X, _ = self._validate_predict_data(X, groups)
        return self.intercept_ + X @ self.coef_


class CompletePoolingRegressor(_GroupedLinearModel, _CompletePoolingModel):
    """Ordinary least squares that ignores the groups (complete pooling).

    One regression line for every group: the baseline a mixed model improves
    on when groups differ.  It takes ``groups`` in ``fit``, ``predict`` and
    ``score`` (checked, then ignored) so that it drops into any workflow
    built for :class:`MixedLinearRegressor`.

    Parameters
    ----------
    formula : str, default=None
        A model formula in lme4's syntax; ``X`` is then a pandas or polars
        DataFrame of raw columns, as for :class:`MixedLinearRegressor`.  Only
        its fixed part is fitted: random-effect terms ``(... | g)`` are
        ignored (lme4's ``nobars``), so that the mixed model's formula gives
        its complete-pooling baseline (``"distance ~ age + (age | Subject)"``
        is ``lm(distance ~ age)``), and the grouping columns need not be in
        ``X``.  ``fit_intercept`` and ``group_column`` must then stay at their
        defaults (``0 + ...`` drops the intercept).  None: the model is given
        by ``X``'s numeric columns.
    fit_intercept : bool, default=True
        Include an intercept.
    group_column : str or list of str, default=None
        Column(s) of a DataFrame ``X`` that hold the group labels; they are
        taken out of ``X`` (and ignored) in ``fit``, ``predict`` and
        ``score``, as in :class:`MixedLinearRegressor`.

    Attributes
    ----------
    intercept_ : float
        The intercept (0.0 without one).
    coef_ : ndarray of shape (n_features_in_,)
        The slopes; 0.0 for columns dropped as linearly dependent.  With
        ``formula``, one per column of the fixed part's model matrix (R's
        ``model.matrix`` without the intercept), named by ``feature_names_``.
    feature_names_ : list of str
        Only with ``formula``: R's names of the model-matrix columns of
        ``coef_`` (``"age"``, ``"SexFemale"``, ``"age:SexFemale"``).
    n_features_in_ : int
        Number of features, not counting the ``group_column`` columns (with
        ``formula``, the columns of the raw data frame).
    feature_names_in_ : ndarray of str
        Only when ``X`` has string column names (without ``group_column``).

    See Also
    --------
    NoPoolingRegressor : A separate line per group.
    MixedLinearRegressor : Partial pooling, between the two.
    sklearn.linear_model.LinearRegression : The same fit, without ``groups``.

    Notes
    -----
    The fit is the mixed model's with every random-effect variance fixed at
    zero.  Linearly dependent columns are dropped in order (coefficient 0,
    with a warning), as lme4 and the mixed model do, where
    ``LinearRegression`` returns the minimum-norm solution; the predictions
    agree.  For routing ``groups`` through scikit-learn's meta-estimators,
    see the Notes of :class:`MixedLinearRegressor`.

    With ``formula``, rows missing a value of the fixed part are left out of
    the fit (with a warning) and predicted as NaN.

    Examples
    --------
    >>> import numpy as np
    >>> from skmixed import CompletePoolingRegressor
    >>> rng = np.random.default_rng(0)
    >>> groups = np.repeat(np.arange(10), 20)
    >>> X = rng.normal(size=(200, 1))
    >>> y = 1 + 2 * X[:, 0] + rng.normal(size=10)[groups] + rng.normal(size=200)
    >>> model = CompletePoolingRegressor().fit(X, y, groups=groups)
    >>> model.coef_.round(1)
    array([2.])
    >>> bool(np.allclose(model.predict(X, groups=groups), model.predict(X)))
    True

    A formula on raw columns (its bar terms are ignored):

    >>> import pandas as pd
    >>> df = pd.DataFrame({"y": y, "x": X[:, 0], "g": groups.astype(str)})
    >>> model = CompletePoolingRegressor(formula="y ~ x + (x | g)").fit(df)
    >>> model.feature_names_, model.coef_.round(1)
    (['x'], array([2.]))
    """

    _parameter_constraints = {
        "formula": _FORMULA,
        "fit_intercept": [InstanceOf(bool)],
        "group_column": _GROUP_COLUMN,
    }

    def __init__(self, *, formula=None, fit_intercept=True, group_column=None):
        self.formula = formula
        self.fit_intercept = fit_intercept
        self.group_column = group_column

    def fit(self, X, y=None, groups=None):
        """Fit the least-squares line, ignoring the groups.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            Numeric features; with ``formula``, a data frame of the raw
            columns its fixed part names.
        y : array-like of shape (n_samples,), default=None
            The response.  Required without ``formula``; with it, None reads
            the formula's left-hand side from ``X``.
        groups : array-like of shape (n_samples,) or (n_samples, n_factors)
            Group labels; checked (length, no missing labels), then ignored.
            Must be None when ``group_column`` or ``formula`` is set.

        Returns
        -------
        self : CompletePoolingRegressor
        """
        X, y, names, fit_intercept, _ = self._fit_data(X, y, groups)
        return self._fit_line(X, y, None, names, fit_intercept)

    def predict(self, X, groups=None):
        """Predict with the single line.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            As in ``fit``; with ``formula``, the raw columns (the response is
            not needed).
        groups : array-like of shape (n_samples,) or (n_samples, n_factors)
            Group labels; checked, then ignored.

        Returns
        -------
        y_pred : ndarray of shape (n_samples,)
            With ``formula``, NaN for rows missing a value the formula uses.
        """
        return self._line_prediction(X, groups)


class _NoPoolingModel(_GroupedModel):
    """A line per group: the data, the fit and the linear predictor."""

    def _fit_data(self, X, y, groups):
        """Features, response, names, group-slope columns, labels, levels, rows."""
        if self.formula is not None:
            return self._formula_data(X, y, groups)
        return self._array_data(X, y, groups)

    def _fit_groups(self, X, y, weights, names, slopes, labels, levels):
        """The pooled line, then one line per level (the pooled one without)."""
        self._unseen = self.unseen  # predict reads the fitted choice
        zeros = np.zeros(len(y), np.intp)
        pooled, _, dropped = self._solve_lines(X, y, weights, zeros, 1, [], None)
        self.pooled_intercept_, self.pooled_coef_ = float(pooled[0, 0]), pooled[0, 1:]
        if labels is None:
            warnings.warn(
                "fit() was called without groups: the model is the complete-pooling "
                "regression. Pass groups=... to fit one line per group.",
                UserWarning,
                stacklevel=3,
            )
            _warn_dropped(dropped, names, "the model matrix is rank deficient")
            self._set_lines(None, pd.Index([]), pooled[:0], names)
            self.intercept_, self.coef_ = self.pooled_intercept_, self.pooled_coef_
            return self
        if levels is None:
            codes, levels = encode_levels(labels)
        else:  # a formula's factor: lme4's order of the levels
            codes = lookup_levels(labels, levels)
        lines, estimable, dropped = self._solve_lines(
            X, y, weights, codes, len(levels), slopes, pooled[0]
        )
        _warn_dropped(
            dropped, names, "some columns are constant within every group or collinear"
        )
        _warn_not_estimable(estimable, [names[j] for j in slopes])
        self._set_lines(labels.name, levels, lines, names)
        self._set_means(lines, estimable, slopes)
        return self

    def _array_data(self, X, y, groups):
        """Features, response, names, group-slope columns, labels (or None), None."""
        X, y, frame = self._validate_fit_data(X, y, groups)
        slopes = column_indices(
            self.group_slopes,
            getattr(self, "feature_names_in_", []),
            X.shape[1],
            parameter="group_slopes",
        )
        labels = None if frame is None else _single_factor(frame)
        return X, y, self._feature_names(X.shape[1]), slopes, labels, None, None

    def _formula_data(self, X, y, groups):
        """As ``_array_data`` from a formula, with the factor's levels and rows."""
        validate_params(self)
        _check_formula_params(self, {"group_slopes": None, "group_column": None})
        spec, frame = _formula_model_frame(self, X, y, groups, self.formula)
        factor = _formula_factor(spec)
        self._spec = spec
        D, names, slopes = group_design(spec, frame, factor)
        levels = pd.Index(spec.group_levels[factor])
        labels = frame.groups[factor]
        return D, frame.y, names, slopes, labels, levels, frame.complete

    def _set_lines(self, factor, levels, lines, names):
        self.group_coef_ = pd.DataFrame(
            lines, index=levels, columns=[INTERCEPT, *names]
        )
        self.groups_ = {} if factor is None else {factor: levels}
        self.n_groups_ = {name: len(ix) for name, ix in self.groups_.items()}

    def _set_means(self, lines, estimable, slopes):
        """lmList's ``fixef``: column means over the levels that estimate them."""
        mask = np.ones(lines.shape, dtype=bool)
        mask[:, [1 + j for j in slopes]] = estimable[:, 1:]
        counts = mask.sum(axis=0)
        pooled = np.concatenate([[self.pooled_intercept_], self.pooled_coef_])
        sums = np.where(mask, lines, 0.0).sum(axis=0)
        means = np.where(counts > 0, sums / np.maximum(counts, 1), pooled)
        self.intercept_, self.coef_ = float(means[0]), means[1:]

    def _line_prediction(self, X, groups):
        """Each row's level's line (NaN for a formula's incomplete rows)."""
        spec = getattr(self, "_spec", None)
        if spec is not None:
            frame = self._formula_predict_frame(X, groups)
            factor = spec.terms[0].factor
            D, _, _ = group_design(spec, frame, factor)
            return _on_complete_rows(frame, self._predict_lines(D, frame.groups))
        X, frame = self._validate_predict_data(X, groups)
        return self._predict_lines(X, frame)

    def _predict_lines(self, X, frame):
        """Each row's own level's line; the pooled line for unseen levels."""
        y_pred = self.pooled_intercept_ + X @ self.pooled_coef_
        if not self.groups_:  # fitted without groups: one line for everyone
            return y_pred
        codes = np.full(X.shape[0], -1, dtype=np.intp)
        if frame is not None:
            codes = lookup_levels(_single_factor(frame), self.group_coef_.index)
        if self._unseen == "error" and np.any(codes < 0):
            raise ValueError(_unseen_message(frame, codes))
        lines = self.group_coef_.to_numpy()
        seen = codes >= 0
        own = lines[codes[seen]]
        y_pred[seen] = own[:, 0] + np.einsum("ij,ij->i", X[seen], own[:, 1:])
        return y_pred


class NoPoolingRegressor(_GroupedLinearModel, _NoPoolingModel):
    """A separate regression line per group, as fixed effects (no pooling).

    Every level of the grouping factor gets its own intercept, and its own
    slope for each column in ``group_slopes``; the other columns have one
    slope shared by all levels.  This is lme4's ``lmList(y ~ x | g)`` when
    every column has a group slope, and R's ``lm(y ~ x + g)`` (or
    ``y ~ x * g``) in general.  It is the limit of a mixed model whose
    random-effect variances are infinite: nothing is shrunk.

    Parameters
    ----------
    formula : str, default=None
        The mixed model's formula in lme4's syntax, with one grouping factor;
        ``X`` is then a pandas or polars DataFrame of raw columns.  It maps
        onto the parameters below as the mixed model onto its no-pooling
        limit: the bar term's grouping factor is the grouping factor (a
        column of ``X``, or ``a:b`` for an interaction), each of its levels
        gets its own intercept and its own slope for every random-effect
        column of the term, and the other columns of the fixed part get one
        slope shared by all levels.  ``"distance ~ age + Sex + (age |
        Subject)"`` is ``lm(distance ~ Sex + Subject / age)``: a line per
        Subject, one shared ``SexMale`` shift (absorbed by the intercepts
        when it is constant within every Subject, with a warning).  A random
        slope missing from the fixed part (``y ~ 1 + (x | g)``) is a group
        slope all the same.  The fixed intercept is replaced by the group
        intercepts, so the term must have one (not ``(0 + x | g)``); several
        grouping factors are refused (keep one factor's terms, or group by
        an interaction ``(1 | a:b)``).  ``group_slopes`` and ``group_column``
        must then stay at their defaults.  None: the model is given by them.
    group_slopes : list of str or int, str, int or None, default=None
        Columns of ``X`` whose slope differs by group (names need a
        DataFrame ``X``; integers index its columns).  None gives each group
        only its own intercept, the no-pooling counterpart of a
        random-intercept model.
    unseen : {"pooled", "error"}, default="pooled"
        What ``predict`` does for levels not seen in ``fit`` (and without
        ``groups``): ``"pooled"`` predicts with the complete-pooling line
        (``pooled_intercept_``, ``pooled_coef_``), ``"error"`` raises a
        ValueError.
    group_column : str or list of str, default=None
        Column of a DataFrame ``X`` that holds the group labels, as in
        :class:`MixedLinearRegressor`.

    Attributes
    ----------
    group_coef_ : DataFrame of shape (n_levels, 1 + n_columns)
        Each level's line: column ``"Intercept"`` and one column per feature
        (a shared slope is repeated in every row), indexed by level, like
        lme4's ``coef()``.  A slope that a level cannot estimate (fewer rows
        than its parameters, or a column constant within the level) is the
        complete-pooling slope, with a warning.  With ``formula`` the
        columns are R's model-matrix names (the fixed part's, then the
        random slopes not in it) and the levels are in lme4's order.
    intercept_ : float
        Mean of the levels' intercepts (lme4's ``fixef()`` of an ``lmList``).
    coef_ : ndarray of shape (n_columns,)
        Mean of the levels' slopes over the levels that estimate them; for a
        shared column its within-group slope (0.0 when it is constant within
        every level, then absorbed by the intercepts).
    pooled_intercept_ : float
    pooled_coef_ : ndarray of shape (n_columns,)
        The complete-pooling line, for unseen levels.
    groups_ : dict of str to Index
        The grouping factor's levels seen in ``fit`` (empty without groups).
    n_groups_ : dict of str to int
        Number of levels.
    n_features_in_ : int
        Number of features, not counting the ``group_column`` column (with
        ``formula``, the columns of the raw data frame; ``n_columns`` is
        then the number of model-matrix columns, else ``n_features_in_``).
    feature_names_in_ : ndarray of str
        Only when ``X`` has string column names (without ``group_column``).

    See Also
    --------
    CompletePoolingRegressor : One line for every group.
    MixedLinearRegressor : Partial pooling, between the two.

    Notes
    -----
    Only one grouping factor is supported: for two crossed factors the
    no-pooling fit is not a set of separate lines.  For nested factors
    (``(1 | a/b)`` in lme4), pass their combination as the single factor,
    e.g. ``a.astype(str) + ":" + b.astype(str)`` (with ``formula``,
    ``(1 | a:b)``).  Without ``groups`` in ``fit`` the model is the
    complete-pooling one (with a warning), as ``fit(X, y)`` in
    scikit-learn's checks needs.

    With ``formula``, rows missing a value the formula uses (the grouping
    column included) are left out of the fit (with a warning) and predicted
    as NaN.

    Scoring: with ``groups`` routed to ``score`` (see the Notes of
    :class:`MixedLinearRegressor`), cross-validation over seen groups
    (``KFold``) scores each group's own line, while ``GroupKFold`` only
    holds out unseen groups, which get the complete-pooling line
    (``unseen="pooled"``) or an error.

    Examples
    --------
    >>> import numpy as np
    >>> from skmixed import NoPoolingRegressor
    >>> rng = np.random.default_rng(0)
    >>> groups = np.repeat(["a", "b", "c"], 20)
    >>> X = rng.normal(size=(60, 1))
    >>> slopes = np.array([1.0, 2.0, 3.0])[np.repeat([0, 1, 2], 20)]
    >>> y = slopes * X[:, 0] + rng.normal(scale=0.01, size=60)
    >>> model = NoPoolingRegressor(group_slopes=[0]).fit(X, y, groups=groups)
    >>> model.group_coef_["x0"].round(1).tolist()
    [1.0, 2.0, 3.0]
    >>> model.predict(X[:2], groups=["c", "new"]).shape
    (2,)

    The same model from a formula on raw columns:

    >>> import pandas as pd
    >>> df = pd.DataFrame({"y": y, "x": X[:, 0], "g": groups})
    >>> model = NoPoolingRegressor(formula="y ~ x + (x | g)").fit(df)
    >>> model.group_coef_["x"].round(1).tolist()
    [1.0, 2.0, 3.0]
    """

    _parameter_constraints = {
        "formula": _FORMULA,
        "group_slopes": [
            InstanceOf(list, tuple, str, int, description="a list, str, int"),
            Options(None),
        ],
        "unseen": [Options("pooled", "error")],
        "group_column": _GROUP_COLUMN,
    }

    def __init__(
        self, *, formula=None, group_slopes=None, unseen="pooled", group_column=None
    ):
        self.formula = formula
        self.group_slopes = group_slopes
        self.unseen = unseen
        self.group_column = group_column

    def fit(self, X, y=None, groups=None):
        """Fit one line per group.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            With ``groups``, ``X`` may have no columns (group means).  With
            ``formula``, a data frame of the raw columns it names (the
            grouping factor's among them).
        y : array-like of shape (n_samples,), default=None
            The response.  Required without ``formula``; with it, None reads
            the formula's left-hand side from ``X``.
        groups : array-like of shape (n_samples,)
            Group labels of a single grouping factor.  None fits the
            complete-pooling line (with a warning).  Must be None when
            ``group_column`` or ``formula`` is set.

        Returns
        -------
        self : NoPoolingRegressor
        """
        X, y, names, slopes, labels, levels, _ = self._fit_data(X, y, groups)
        return self._fit_groups(X, y, None, names, slopes, labels, levels)

    def predict(self, X, groups=None):
        """Predict with each group's own line.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            As in ``fit``; with ``formula``, the raw columns including the
            grouping factor's (the response is not needed).
        groups : array-like of shape (n_samples,)
            Group labels.  Levels not seen in ``fit`` (and every row, when
            ``groups`` is None) get the complete-pooling prediction, or a
            ValueError with ``unseen="error"``.  Must be None when
            ``group_column`` or ``formula`` is set.

        Returns
        -------
        y_pred : ndarray of shape (n_samples,)
            With ``formula``, NaN for rows missing a value the formula uses.
        """
        return self._line_prediction(X, groups)


def _formula_factor(spec):
    """The formula's single grouping factor, whose terms have an intercept."""
    names = spec.factor_names
    if len(names) != 1:
        raise ValueError(
            f"NoPoolingRegressor supports one grouping factor; the formula "
            f"{spec.formula!r} has {len(names)}: {names}. Keep one factor's "
            "random-effect terms (compare_pooling keeps the first), or group by "
            "an interaction, (1 | a:b)."
        )
    term = spec.terms[0]
    if not term.intercept:
        raise ValueError(
            f"the random-effect term of {term.factor!r} has no intercept: a "
            "no-pooling fit gives every group its own intercept. Write "
            "(1 + x | g) instead of (0 + x | g)."
        )
    return term.factor


def _single_factor(frame):
    if frame.shape[1] != 1:
        raise ValueError(
            f"NoPoolingRegressor supports one grouping factor; groups has "
            f"{frame.shape[1]}: {list(frame.columns)}. For nested factors pass their "
            "combination, e.g. a.astype(str) + ':' + b.astype(str)."
        )
    return frame.iloc[:, 0]


def _unseen_message(frame, codes):
    if frame is None:
        return "groups are required to predict with unseen='error'."
    unseen = pd.unique(frame.iloc[:, 0].to_numpy()[codes < 0]).tolist()
    shown = ", ".join(map(repr, unseen[:5])) + (", ..." if len(unseen) > 5 else "")
    return (
        f"groups has {len(unseen)} level(s) not seen in fit ({shown}); with "
        "unseen='error' every level must have been seen. Use unseen='pooled' to "
        "predict them with the complete-pooling line."
    )


def _warn_not_estimable(estimable, slope_names):
    missing = ~estimable[:, 1:]
    if missing.any():
        counts = {n: int(c) for n, c in zip(slope_names, missing.sum(axis=0)) if c}
        warnings.warn(
            f"some groups cannot estimate their own slope (too few samples, or the "
            f"column is constant within the group); number of groups per column: "
            f"{counts}. They use the complete-pooling slope.",
            UserWarning,
            stacklevel=3,
        )
