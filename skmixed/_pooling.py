"""The two extremes a mixed model sits between: complete and no pooling.

``CompletePoolingRegressor`` ignores the groups (one least-squares line for
everyone); ``NoPoolingRegressor`` gives every group its own intercept, and its
own slopes for chosen columns, as fixed effects (lme4's ``lmList``, or R's
``lm(y ~ x * g)`` when every slope varies).  A mixed model's predicted random
effects shrink each group from the complete-pooling towards the no-pooling
line, more for small groups; comparing the three under cross-validation
(:func:`skmixed.compare_pooling`) shows what the shrinkage buys.

Both are solved on per-group sufficient statistics, as the mixed model: the
group columns are profiled out level by level (Frisch-Waugh-Lovell), which
needs one small ``q x q`` Cholesky factor per group and never an
``n x (m q)`` design matrix.
"""

import warnings

import numpy as np
import pandas as pd
from sklearn.base import BaseEstimator, RegressorMixin
from sklearn.metrics import r2_score
from sklearn.utils.validation import validate_data

from ._design import INTERCEPT, RANK_TOLERANCE, block_cross_products, make_scaling
from ._groups import check_groups, encode_levels, lookup_levels
from ._linalg import gram, solve_lower, solve_upper_transposed
from ._sklearn import (
    no_column_frame_as_array,
    split_group_columns,
    validate_predict_input,
)
from ._validation import InstanceOf, Options, column_indices, validate_params

_GROUP_COLUMN = [
    InstanceOf(str, list, tuple, description="a str or a list of str"),
    Options(None),
]


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
# Estimators
# --------------------------------------------------------------------------


class _GroupedLinearModel(RegressorMixin, BaseEstimator):
    """What the baselines share: ``groups`` and ``group_column``, validation, R^2."""

    def _validate_fit_data(self, X, y, groups):
        validate_params(self)
        X, groups = split_group_columns(X, groups, self.group_column)
        X, y = validate_data(
            self,
            no_column_frame_as_array(X),
            y,
            y_numeric=True,
            dtype=np.float64,
            ensure_min_features=0 if groups is not None else 1,
        )
        return X, y, None if groups is None else check_groups(groups, X.shape[0])

    def _validate_predict_data(self, X, groups):
        X, groups = validate_predict_input(self, X, groups)
        return X, None if groups is None else check_groups(groups, X.shape[0])

    def _feature_names(self, n_features):
        if hasattr(self, "feature_names_in_"):
            return [str(c) for c in self.feature_names_in_]
        return [f"x{j}" for j in range(n_features)]

    def score(self, X, y, groups=None, sample_weight=None):
        """R^2 of ``predict(X, groups)``.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
        y : array-like of shape (n_samples,)
        groups : array-like of shape (n_samples,), default=None
            Group labels as in ``predict``.
        sample_weight : array-like of shape (n_samples,), default=None

        Returns
        -------
        score : float
        """
        return r2_score(y, self.predict(X, groups=groups), sample_weight=sample_weight)

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.input_tags.allow_nan = False
        return tags


class CompletePoolingRegressor(_GroupedLinearModel):
    """Ordinary least squares that ignores the groups (complete pooling).

    One regression line for every group: the baseline a mixed model improves
    on when groups differ.  It takes ``groups`` in ``fit``, ``predict`` and
    ``score`` (checked, then ignored) so that it drops into any workflow
    built for :class:`MixedLinearRegressor`.

    Parameters
    ----------
    fit_intercept : bool, default=True
        Include an intercept.
    group_column : str or list of str, default=None
        Column(s) of a DataFrame ``X`` that hold the group labels; they are
        taken out of ``X`` (and ignored) in ``fit``, ``predict`` and
        ``score``, as in :class:`MixedLinearRegressor`.

    Attributes
    ----------
    intercept_ : float
        The intercept (0.0 when ``fit_intercept=False``).
    coef_ : ndarray of shape (n_features_in_,)
        The slopes; 0.0 for columns dropped as linearly dependent.
    n_features_in_ : int
        Number of features, not counting the ``group_column`` columns.
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
    """

    _parameter_constraints = {
        "fit_intercept": [InstanceOf(bool)],
        "group_column": _GROUP_COLUMN,
    }

    def __init__(self, *, fit_intercept=True, group_column=None):
        self.fit_intercept = fit_intercept
        self.group_column = group_column

    def fit(self, X, y, groups=None):
        """Fit the least-squares line, ignoring the groups.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
        y : array-like of shape (n_samples,)
        groups : array-like of shape (n_samples,) or (n_samples, n_factors)
            Group labels; checked (length, no missing labels), then ignored.
            Must be None when ``group_column`` is set.

        Returns
        -------
        self : CompletePoolingRegressor
        """
        X, y, _ = self._validate_fit_data(X, y, groups)
        if self.fit_intercept:
            lines, _, dropped = fit_group_lines(X, y, np.zeros(len(y), np.intp), 1, [])
            line = lines[0]
        else:
            line, dropped = fit_line_through_origin(X, y)
        names = self._feature_names(X.shape[1])
        _warn_dropped(dropped, names, "the model matrix is rank deficient")
        self.intercept_ = float(line[0])
        self.coef_ = line[1:]
        return self

    def predict(self, X, groups=None):
        """Predict with the single line.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
        groups : array-like of shape (n_samples,) or (n_samples, n_factors)
            Group labels; checked, then ignored.

        Returns
        -------
        y_pred : ndarray of shape (n_samples,)
        """
        X, _ = self._validate_predict_data(X, groups)
        return self.intercept_ + X @ self.coef_


class NoPoolingRegressor(_GroupedLinearModel):
    """A separate regression line per group, as fixed effects (no pooling).

    Every level of the grouping factor gets its own intercept, and its own
    slope for each column in ``group_slopes``; the other columns have one
    slope shared by all levels.  This is lme4's ``lmList(y ~ x | g)`` when
    every column has a group slope, and R's ``lm(y ~ x + g)`` (or
    ``y ~ x * g``) in general.  It is the limit of a mixed model whose
    random-effect variances are infinite: nothing is shrunk.

    Parameters
    ----------
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
    group_coef_ : DataFrame of shape (n_levels, 1 + n_features_in_)
        Each level's line: column ``"Intercept"`` and one column per feature
        (a shared slope is repeated in every row), indexed by level, like
        lme4's ``coef()``.  A slope that a level cannot estimate (fewer rows
        than its parameters, or a column constant within the level) is the
        complete-pooling slope, with a warning.
    intercept_ : float
        Mean of the levels' intercepts (lme4's ``fixef()`` of an ``lmList``).
    coef_ : ndarray of shape (n_features_in_,)
        Mean of the levels' slopes over the levels that estimate them; for a
        shared column its within-group slope (0.0 when it is constant within
        every level, then absorbed by the intercepts).
    pooled_intercept_ : float
    pooled_coef_ : ndarray of shape (n_features_in_,)
        The complete-pooling line, for unseen levels.
    groups_ : dict of str to Index
        The grouping factor's levels seen in ``fit`` (empty without groups).
    n_groups_ : dict of str to int
        Number of levels.
    n_features_in_ : int
        Number of features, not counting the ``group_column`` column.
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
    e.g. ``a.astype(str) + ":" + b.astype(str)``.  Without ``groups`` in
    ``fit`` the model is the complete-pooling one (with a warning), as
    ``fit(X, y)`` in scikit-learn's checks needs.

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
    """

    _parameter_constraints = {
        "group_slopes": [
            InstanceOf(list, tuple, str, int, description="a list, str, int"),
            Options(None),
        ],
        "unseen": [Options("pooled", "error")],
        "group_column": _GROUP_COLUMN,
    }

    def __init__(self, *, group_slopes=None, unseen="pooled", group_column=None):
        self.group_slopes = group_slopes
        self.unseen = unseen
        self.group_column = group_column

    def fit(self, X, y, groups=None):
        """Fit one line per group.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            With ``groups``, ``X`` may have no columns (group means).
        y : array-like of shape (n_samples,)
        groups : array-like of shape (n_samples,)
            Group labels of a single grouping factor.  None fits the
            complete-pooling line (with a warning).  Must be None when
            ``group_column`` is set.

        Returns
        -------
        self : NoPoolingRegressor
        """
        X, y, frame = self._validate_fit_data(X, y, groups)
        names = self._feature_names(X.shape[1])
        slopes = column_indices(
            self.group_slopes,
            getattr(self, "feature_names_in_", []),
            X.shape[1],
            parameter="group_slopes",
        )
        pooled, _, dropped = fit_group_lines(X, y, np.zeros(len(y), np.intp), 1, [])
        self.pooled_intercept_, self.pooled_coef_ = float(pooled[0, 0]), pooled[0, 1:]
        if frame is None:
            warnings.warn(
                "fit() was called without groups: the model is the complete-pooling "
                "regression. Pass groups=... to fit one line per group.",
                UserWarning,
                stacklevel=2,
            )
            _warn_dropped(dropped, names, "the model matrix is rank deficient")
            self._set_lines(None, pd.Index([]), pooled[:0], names)
            self.intercept_, self.coef_ = self.pooled_intercept_, self.pooled_coef_
            return self
        labels = _single_factor(frame)
        codes, levels = encode_levels(labels)
        lines, estimable, dropped = fit_group_lines(
            X, y, codes, len(levels), slopes, reference=pooled[0]
        )
        _warn_dropped(
            dropped, names, "some columns are constant within every group or collinear"
        )
        _warn_not_estimable(estimable, [names[j] for j in slopes])
        self._set_lines(labels.name, levels, lines, names)
        self._set_means(lines, estimable, slopes)
        return self

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

    def predict(self, X, groups=None):
        """Predict with each group's own line.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
        groups : array-like of shape (n_samples,)
            Group labels.  Levels not seen in ``fit`` (and every row, when
            ``groups`` is None) get the complete-pooling prediction, or a
            ValueError with ``unseen="error"``.  Must be None when
            ``group_column`` is set.

        Returns
        -------
        y_pred : ndarray of shape (n_samples,)
        """
        X, frame = self._validate_predict_data(X, groups)
        y_pred = self.pooled_intercept_ + X @ self.pooled_coef_
        if not self.groups_:  # fitted without groups: one line for everyone
            return y_pred
        codes = np.full(X.shape[0], -1, dtype=np.intp)
        if frame is not None:
            codes = lookup_levels(_single_factor(frame), self.group_coef_.index)
        if self.unseen == "error" and np.any(codes < 0):
            raise ValueError(_unseen_message(frame, codes))
        lines = self.group_coef_.to_numpy()
        seen = codes >= 0
        own = lines[codes[seen]]
        y_pred[seen] = own[:, 0] + np.einsum("ij,ij->i", X[seen], own[:, 1:])
        return y_pred


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
