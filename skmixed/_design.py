"""The model's design: random-effect terms, scaling, and sufficient statistics.

This is the only stage that touches the rows.  It turns ``X``, ``y`` and the
grouping factors into the cross-products that the profiled deviance needs
(``Z'Z``, ``Z'W`` and ``W'W`` with ``W = [X y]``), after which every deviance
evaluation costs nothing in the number of rows.

The columns are rescaled first (and centred, when the model has an intercept,
which leaves the fixed-effect column space unchanged) so that data in the
millions fit as well as data near one; :class:`Scaling` maps every estimate
back to the original units.
"""

import warnings
from dataclasses import dataclass, field, fields, replace

import numpy as np
import pandas as pd
from scipy import sparse

INTERCEPT = "Intercept"
# Relative residual sum of squares of an exact fit: a residual SD below 1e-6
# of y's (R^2 > 1 - 1e-12) is rounding, not data.
EXACT_FIT_TOLERANCE = 1e-12
RANK_TOLERANCE = 1e-7  # lme4's default tolerance for a rank-deficient X


@dataclass
class Factor:
    """One grouping factor and its random-effect terms."""

    name: str
    levels: pd.Index
    slope_columns: list  # indices into the random-effect columns Z (X, for arrays)
    term_names: list
    intercept: bool
    diagonal: bool

    @property
    def n_levels(self):
        return len(self.levels)

    @property
    def n_terms(self):
        return len(self.term_names)


def random_terms(factor):
    """lme4's terms of a factor: one bar term, or one per column for ``||``."""
    names = [n if n != INTERCEPT else "1" for n in factor.term_names]
    if factor.diagonal and len(names) > 1:
        return [f"({n if n == '1' else '0 + ' + n} | {factor.name})" for n in names]
    lead = [] if factor.intercept else ["0"]
    return [f"({' + '.join(lead + names)} | {factor.name})"]


def check_identifiable(factor, n_samples, scale_parameter=True):
    """lme4's checks of a grouping factor against the number of samples.

    ``check.nlev.gtr.1``, ``check.nobs.vs.nlev`` and ``check.nobs.vs.nRE``
    (all errors by default in lme4), the last one per term: a ``||`` model
    has one term per column, each with one random effect per level.  The
    last two only with a ``scale_parameter`` (a residual variance): a
    binomial or Poisson model may have one level per row (glmer's
    observation-level random effect, for overdispersion).
    """
    if factor.n_levels < 2:
        raise ValueError(
            f"grouping factor {factor.name!r} has {factor.n_levels} level: grouping "
            "factors must have > 1 sampled level."
        )
    if not scale_parameter:
        return
    if factor.n_levels >= n_samples:
        raise ValueError(
            "number of levels of each grouping factor must be < number of "
            f"observations (problems: {factor.name}; {factor.n_levels} levels, "
            f"{n_samples} observations)."
        )
    terms = random_terms(factor)
    n_effects = factor.n_levels * factor.n_terms // len(terms)
    for term in terms:
        if n_samples <= n_effects:
            raise ValueError(
                f"number of observations (={n_samples}) <= number of random effects "
                f"(={n_effects}) for term {term}; the random-effects parameters and "
                "the residual variance (or scale parameter) are probably "
                "unidentifiable."
            )


@dataclass
class Scaling:
    """Centres and scales applied before fitting; maps estimates back.

    The fit runs on ``y_s = (y - y_center) / y_scale``, fixed-effect columns
    ``(x - x_center) / x_scale`` and random-effect columns ``x / z_scale``.
    """

    y_center: float
    y_scale: float
    x_center: np.ndarray
    x_scale: np.ndarray
    z_scale: list  # per factor, one scale per term (1 for the intercept)

    def fixed_jacobian(self, fit_intercept):
        """``J`` and ``offset`` with ``beta = offset + J @ beta_scaled``.

        Over all candidate fixed-effect columns (intercept first if any).
        """
        inv = 1.0 / self.x_scale
        if fit_intercept:
            J = np.zeros((inv.size + 1, inv.size + 1))
            J[0, 0] = 1.0
            J[0, 1:] = -self.x_center * inv
            J[1:, 1:] = np.diag(inv)
            offset = np.zeros(inv.size + 1)
            offset[0] = self.y_center
        else:
            J, offset = np.diag(inv), np.zeros(inv.size)
        return self.y_scale * J, offset

    def random_effect_scale(self, k):
        """Multipliers that take factor k's random effects to original units."""
        return self.y_scale / self.z_scale[k]

    def objective_shift(self, n, p, kept_features, reml):
        """What the objective gains from undoing the scaling of y and X.

        ``p`` is the number of fixed-effect columns in the fit and
        ``kept_features`` the indices of the feature columns among them.
        """
        log_sy2 = 2.0 * np.log(self.y_scale)
        if not reml:
            return n * log_sy2
        return (n - p) * log_sy2 + 2.0 * np.log(self.x_scale[kept_features]).sum()


@dataclass
class FirstFactorStats:
    """Cross-products of the largest factor: one block per level."""

    ZtZ: np.ndarray  # (q, q, m)
    ZtW: np.ndarray  # (q, p + 1, m)


@dataclass
class OtherFactorStats:
    """Cross-products of the remaining factors, stacked level-major."""

    Z2tZ1: sparse.csr_matrix  # (Q2, Q1), Q1 = m1 * q1
    Z2tZ2: np.ndarray  # (Q2, Q2)
    Z2tW: np.ndarray  # (Q2, p + 1)
    _pairs: tuple | None = None  # cache of column_pairs(), not pickled
    _coupling: tuple | None = None  # cache of coupling_pattern(), not pickled

    def column_pairs(self):
        """Pairs of non-zeros sharing a column of ``Z2tZ1``, for ``A D A'``.

        A :class:`ColumnPairs`: for each column k and each pair of rows
        i >= j with non-zeros in it, the pair's place in the lower triangle
        of a Q2 x Q2 matrix and ``A[i, k] A[j, k]``.  The lower triangle of
        ``A diag(w) A'`` is then one ``bincount``, far cheaper per evaluation
        than a general sparse product.
        """
        if self._pairs is None:
            self._pairs = _column_pairs(self.Z2tZ1)
        return self._pairs

    def coupling_pattern(self, q1, shapes):
        """Where the later factors meet the first: a :class:`CouplingPattern`.

        ``q1`` is the first factor's number of terms and ``shapes`` the
        ``(n_levels, n_terms)`` of each later factor.  Computed once (it
        depends on the data only) and kept for every later evaluation.
        """
        key = (q1, tuple(shapes))
        if self._coupling is None or self._coupling[0] != key:
            self._coupling = (key, _coupling_pattern(self.Z2tZ1, q1, key[1]))
        return self._coupling[1]

    def __getstate__(self):
        state = self.__dict__.copy()
        state["_pairs"] = state["_coupling"] = None
        return state


@dataclass
class SufficientStatistics:
    """Everything the profiled deviance needs; nothing of size n."""

    n: int
    WtW: np.ndarray  # (p + 1, p + 1), y last
    first: FirstFactorStats | None
    others: OtherFactorStats | None
    # sum(log w) over the rows, with prior weights w (0 without): the
    # criterion of weighted rows is that of the rows scaled by sqrt(w), minus
    # it (lme4's ``ldW``).
    log_weights: float = 0.0
    # The Krylov solver path's settings (``_objective_krylov.KrylovOptions``)
    # when the objective is evaluated by it; None: the exact path.
    krylov: object = None
    # Cache of dense_cross_products(): not an argument, so that
    # ``dataclasses.replace`` (new y-parts for a bootstrap replicate, say)
    # starts without it; not pickled.
    _dense: tuple | None = field(default=None, init=False, repr=False, compare=False)

    def dense_cross_products(self, shapes):
        """``Z'Z`` and ``Z'W`` as dense arrays: a :class:`DenseCrossProducts`.

        ``shapes`` are the ``(n_levels, n_terms)`` of every factor.  Only for
        models with few random effects (the arrays are ``Q x Q``); computed
        once and kept for every later evaluation.
        """
        key = tuple(shapes)
        if self._dense is None or self._dense[0] != key:
            self._dense = (key, _dense_cross_products(self, key))
        return self._dense[1]

    def __getstate__(self):
        state = self.__dict__.copy()
        state["_dense"] = None
        return state

    def __setstate__(self, state):
        self.__dict__.update(state)
        self.__dict__.setdefault("_dense", None)


@dataclass
class Design:
    """The validated model: fixed columns, factors (optimisation order), stats."""

    fixed_names: list  # names of the fixed-effect columns in the fit
    fixed_kept: np.ndarray  # indices of the kept columns among all candidates
    factors: list  # Factor, largest first
    scaling: Scaling
    stats: SufficientStatistics

    @property
    def n_fixed(self):
        return len(self.fixed_names)


@dataclass
class ColumnMoments:
    """Count, means and variances (``ddof=0``) of the columns of ``[X y]``.

    All the scaling needs from the rows; partial moments of row blocks
    combine exactly (the dask path sums them across partitions).
    """

    n: int
    mean: np.ndarray  # (p + 1,), y last
    var: np.ndarray  # (p + 1,), y last


def column_moments(X, y):
    """The moments of ``[X y]`` (one pass over each column; X may be sparse)."""
    p = X.shape[1]
    if sparse.issparse(X):
        mean, var = _sparse_moments(X)
    else:
        mean = X.mean(axis=0) if p else np.zeros(0)
        var = X.var(axis=0) if p else np.zeros(0)
    return ColumnMoments(X.shape[0], np.append(mean, y.mean()), np.append(var, y.var()))


def _sparse_moments(X):
    """Column means and variances of a sparse matrix, without densifying.

    Two passes as numpy's ``var``: the squared deviations of the stored
    entries plus ``(n - nnz) mean^2`` for the zeros.
    """
    X = X.tocsc()
    n = X.shape[0]
    mean = np.asarray(X.sum(axis=0)).ravel() / n
    counts = np.diff(X.indptr)
    deviations = X.data - np.repeat(mean, counts)
    stored = np.bincount(
        np.repeat(np.arange(X.shape[1]), counts),
        weights=deviations**2,
        minlength=X.shape[1],
    )
    return mean, (stored + (n - counts) * mean**2) / n


def scaling_from_moments(moments, fit_intercept, factors, z_rms=None):
    """Choose centres and scales from the columns' moments.

    ``z_rms`` are the root mean squares of the random-effect columns that
    the factors' slopes index; None when those are the columns of ``X``.
    """
    x_mean, y_mean = moments.mean[:-1], float(moments.mean[-1])
    x_var, y_var = moments.var[:-1], float(moments.var[-1])
    rms = _safe_scale(np.sqrt(x_var + x_mean**2))
    z_rms = rms if z_rms is None else _safe_scale(z_rms)
    if fit_intercept:
        x_center, x_scale = x_mean, _safe_scale(np.sqrt(x_var))
        y_center, y_scale = y_mean, float(_safe_scale(np.sqrt(y_var)))
    else:
        x_center, x_scale = np.zeros(x_mean.size), rms
        y_center, y_scale = 0.0, float(_safe_scale(np.sqrt(y_var + y_mean**2)))
    z_scale = [
        np.array([1.0] * f.intercept + [z_rms[j] for j in f.slope_columns])
        for f in factors
    ]
    return Scaling(y_center, y_scale, x_center, x_scale, z_scale)


def make_scaling(X, y, fit_intercept, factors, Z=None):
    """Choose centres and scales from the data (one pass over each column)."""
    # Z is X for array models (a random slope is a feature): X's moments.
    z_rms = None if Z is None or Z is X else np.sqrt((Z**2).mean(axis=0))
    return scaling_from_moments(column_moments(X, y), fit_intercept, factors, z_rms)


def _safe_scale(scale):
    scale = np.asarray(scale, dtype=float)
    return np.where(np.isfinite(scale) & (scale > 0), scale, 1.0)


# Columns are kept as a list of 1-D arrays, with None standing for a column
# of ones (the intercept): products with it need no multiplication, and no
# (n, k) matrix is ever stacked.


def fixed_columns(X, y, fit_intercept, scaling):
    """The scaled fixed-effect columns (intercept first), then y, last."""
    columns = [None] if fit_intercept else []
    for j in range(X.shape[1]):
        columns.append((X[:, j] - scaling.x_center[j]) / scaling.x_scale[j])
    columns.append((y - scaling.y_center) / scaling.y_scale)
    return columns


def random_columns(Z, factor, z_scale):
    """The scaled random-effect columns of one factor (None: intercept).

    ``Z`` holds the columns the factor's slopes index (``X`` for models
    whose random slopes are features).
    """
    columns = [None] if factor.intercept else []
    for j, scale in zip(factor.slope_columns, z_scale[factor.intercept :]):
        columns.append(dense_column(Z, j) / scale)
    return columns


def dense_column(A, j):
    """Column j of a dense or sparse matrix as a 1-D array."""
    if sparse.issparse(A):
        return A[:, [j]].toarray().ravel()
    return A[:, j]


def _as_columns(A):
    return [A[:, j] for j in range(A.shape[1])] if isinstance(A, np.ndarray) else A


def _product(a, b):
    """Row-wise product of two columns; None (ones) times b is b itself."""
    if a is None:
        return b
    return a if b is None else a * b


def _dot(a, b, n):
    if a is None and b is None:
        return float(n)
    if a is None or b is None:
        return float((b if a is None else a).sum())
    return float(a @ b)


def cross_product(columns, n):
    """``W'W`` for a list of columns."""
    k = len(columns)
    WtW = np.empty((k, k))
    for a in range(k):
        for b in range(a, k):
            WtW[a, b] = WtW[b, a] = _dot(columns[a], columns[b], n)
    return WtW


def order_factors(factors):
    """Largest factor first (most random-effect columns), as MixedModels.jl."""
    return sorted(factors, key=lambda f: -f.n_levels * f.n_terms)


def build_design(
    X,
    y,
    codes,
    factors,
    fixed_names,
    fit_intercept,
    Z=None,
    weights=None,
    sparse_others=False,
):
    """Validate the fixed part, scale, and reduce the data to statistics.

    Parameters
    ----------
    X : ndarray of shape (n, p_features)
    y : ndarray of shape (n,)
    codes : dict
        Factor name -> integer level codes of shape (n,).
    factors : list of Factor
        In optimisation order (see :func:`order_factors`).
    fixed_names : list of str
        Names of the candidate fixed-effect columns (``Intercept`` first when
        ``fit_intercept``).
    Z : ndarray of shape (n, r), optional
        The columns the factors' random slopes index; ``X`` when None.
    weights : ndarray of shape (n,), optional
        Positive prior weights (see :mod:`skmixed._row_metadata`).
    sparse_others : bool
        Keep the later factors' ``Z2'Z2`` sparse (the Krylov path).
    """
    if sparse.issparse(X) and X.shape[0] * X.shape[1] <= (X.shape[1] + 2) ** 2:
        # No larger dense than the Gram matrix the sparse path builds, and
        # centred exactly: a few rows of many columns are reduced dense.
        dense = X.toarray()
        X, Z = dense, (dense if Z is None or Z is X else Z)
    scaling = make_scaling(X, y, fit_intercept, factors, Z)
    Z = X if Z is None else Z
    Zs = [random_columns(Z, f, s) for f, s in zip(factors, scaling.z_scale)]
    codes = [codes[f.name] for f in factors]
    if sparse.issparse(X):
        stats = sparse_statistics(
            X, y, codes, Zs, factors, scaling, fit_intercept, weights, sparse_others
        )
    else:
        W = fixed_columns(X, y, fit_intercept, scaling)
        stats = weighted_statistics(
            W, codes, Zs, factors, weights, n=X.shape[0], sparse_others=sparse_others
        )
    return finish_design(stats, factors, fixed_names, scaling, stacklevel=4)


def finish_design(stats, factors, fixed_names, scaling, stacklevel=3):
    """The design from statistics over every candidate fixed-effect column.

    Drops the columns that are linear combinations of earlier ones (with a
    warning), as lme4 does; shared by the in-memory and the dask paths,
    which differ only in how they compute ``stats`` and ``scaling``.
    """
    kept = independent_columns(stats.WtW[:-1, :-1])
    dropped = [name for j, name in enumerate(fixed_names) if j not in set(kept)]
    if dropped:
        warnings.warn(
            f"fixed-effect model matrix is rank deficient so dropping "
            f"{len(dropped)} column(s): {dropped}. Their coefficients are set to 0.",
            UserWarning,
            stacklevel=stacklevel,
        )
        stats = select_fixed_columns(stats, kept)
    names = [fixed_names[j] for j in kept]
    return Design(names, np.asarray(kept, dtype=int), factors, scaling, stats)


def select_fixed_columns(stats, kept):
    """The statistics of the fixed-effect columns ``kept`` (and y, last)."""
    columns = list(kept) + [stats.WtW.shape[0] - 1]
    first, others = stats.first, stats.others
    if first is not None:
        first = replace(first, ZtW=first.ZtW[:, columns, :])
    if others is not None:
        others = replace(others, Z2tW=others.Z2tW[:, columns])
    WtW = stats.WtW[np.ix_(columns, columns)]
    return SufficientStatistics(
        stats.n, WtW, first, others, stats.log_weights, stats.krylov
    )


def add_statistics(a, b):
    """The statistics of two disjoint sets of rows together.

    Every field of the statistics is a sum over rows, so the statistics of
    row blocks (partitions) add up, field by field, to those of all rows.
    """
    if a is None or b is None:
        return b if a is None else a
    if isinstance(a, SufficientStatistics | FirstFactorStats | OtherFactorStats):
        # Caches (fields starting with "_") describe one operand only: dropped.
        return type(a)(
            **{
                f.name: add_statistics(getattr(a, f.name), getattr(b, f.name))
                for f in fields(a)
                if not f.name.startswith("_")
            }
        )
    total = a + b
    return total.tocsr() if sparse.issparse(total) else total


def fits_exactly(stats, tol=EXACT_FIT_TOLERANCE):
    """Whether the fixed-effect columns fit y exactly (a constant y, say).

    The residual sum of squares of y on them, relative to ``y'y``, is below
    ``tol``: the residual variance is then zero and the likelihood unbounded.
    """
    WtW = stats.WtW
    p = WtW.shape[0] - 1
    yty = WtW[p, p]
    if yty <= 0:
        return True
    if p == 0:
        return False
    coef = np.linalg.lstsq(WtW[:p, :p], WtW[:p, p], rcond=None)[0]
    return yty - WtW[:p, p] @ coef <= tol * yty


def independent_columns(XtX, tol=RANK_TOLERANCE):
    """Indices of a maximal set of linearly independent columns, in order.

    A column is dropped when the part of it not explained by the columns kept
    before it has a norm below ``tol`` times its own norm (as R's ``qr`` with
    its limited pivoting, which lme4 uses).
    """
    kept = []
    for j in range(XtX.shape[0]):
        norm2 = XtX[j, j]
        if norm2 <= 0:
            continue
        if kept:
            G = XtX[np.ix_(kept, kept)]
            g = XtX[kept, j]
            try:
                explained = g @ np.linalg.solve(G, g)
            except np.linalg.LinAlgError:  # pragma: no cover - kept is independent
                explained = norm2
            residual2 = norm2 - explained
        else:
            residual2 = norm2
        if residual2 > (tol**2) * norm2:
            kept.append(j)
    return kept


def block_cross_products(codes, Z, W, n_levels, intercept=None):
    """Per-level ``Z'Z`` (q, q, m) and ``Z'W`` (q, k, m) blocks.

    ``Z`` and ``W`` are 2-D arrays or lists of columns (None: a column of
    ones).  With ``intercept=True`` the first column of a 2-D ``Z`` is taken
    to be ones, so its products need no multiplication.
    """
    Z, W = _as_columns(Z), _as_columns(W)
    if intercept and Z and Z[0] is not None:
        Z = [None] + list(Z[1:])
    q, k = len(Z), len(W)

    def level_sums(a, b):
        weights = _product(a, b)
        return np.bincount(codes, weights=weights, minlength=n_levels).astype(float)

    ZtZ = np.empty((q, q, n_levels))
    ZtW = np.empty((q, k, n_levels))
    for a in range(q):
        for b in range(a, q):
            ZtZ[a, b] = ZtZ[b, a] = level_sums(Z[a], Z[b])
        for j in range(k):
            ZtW[a, j] = level_sums(Z[a], W[j])
    return ZtZ, ZtW


def sufficient_statistics(
    W, codes, Zs, factors, *, n=None, WtW=None, sparse_others=False
):
    """All cross-products the deviance needs (the one pass over the rows).

    ``W`` and each of ``Zs`` are 2-D arrays or lists of columns (None: ones).
    With ``sparse_others`` the later factors' ``Z2'Z2`` stays sparse (the
    Krylov path, for factors with too many levels for a dense block).
    """
    W = _as_columns(W)
    Zs = [_as_columns(Z) for Z in Zs]
    if n is None:
        n = next(len(c) for c in W if c is not None)
    if WtW is None:
        WtW = cross_product(W, n)
    stats = SufficientStatistics(n=n, WtW=WtW, first=None, others=None)
    if not factors:
        return stats
    first = factors[0]
    stats.first = FirstFactorStats(
        *block_cross_products(codes[0], Zs[0], W, first.n_levels)
    )
    if len(factors) > 1:
        stats.others = _other_factor_stats(W, codes, Zs, factors, n, sparse_others)
    return stats


def weighted_statistics(W, codes, Zs, factors, weights, *, n, sparse_others=False):
    """:func:`sufficient_statistics` of rows with prior weights (None: 1).

    Weighted least squares is least squares on rows scaled by ``sqrt(w)``:
    every column, the intercept's ones included, is scaled, and the
    criterion's ``-sum(log w)`` is kept in ``log_weights``.
    """
    if weights is None:
        return sufficient_statistics(
            W, codes, Zs, factors, n=n, sparse_others=sparse_others
        )
    root = np.sqrt(weights)
    W = weight_columns(W, root)
    Zs = [weight_columns(Z, root) for Z in Zs]
    stats = sufficient_statistics(
        W, codes, Zs, factors, n=n, sparse_others=sparse_others
    )
    stats.log_weights = float(np.log(weights).sum())
    return stats


def sparse_statistics(
    X, y, codes, Zs, factors, scaling, fit_intercept, weights, sparse_others=False
):
    """:func:`weighted_statistics` of a sparse ``X``, never densified.

    Centring would fill the zeros, so the products are taken of the raw
    columns ``[1, X, y]`` (sparse products, the size of their results) and
    mapped to those of the centred and scaled columns by the linear map of
    :func:`_scaling_map`: ``W = [1, X, y] A`` gives ``W'W = A' (.) A``.
    Centring products loses digits where a column's mean is large against
    its spread (machine precision times ``mean^2 / var``), so y and the
    columns that are mostly non-zero (stored as densely as they would be
    dense: a passed-through numeric feature) are centred first, exactly.
    """
    n, p = X.shape
    x_shift = np.zeros(p)
    if fit_intercept:
        filled = np.diff(X.tocsc().indptr) > n / 2
        x_shift[filled] = scaling.x_center[filled]
    X, y = _shift_columns(X, x_shift).tocsr(), y - scaling.y_center
    root = None if weights is None else np.sqrt(weights)
    X = X if root is None else sparse.diags(root) @ X
    ones = np.ones(n) if root is None else root
    y = y if root is None else y * root
    Zs = Zs if root is None else [weight_columns(Z, root) for Z in Zs]
    # The products of the random-effect columns and of [1, y]: as dense.
    base = sufficient_statistics(
        [ones, y], codes, Zs, factors, n=n, sparse_others=sparse_others
    )
    Xt = X.T.tocsr()
    Xt1, Xty = Xt @ ones, Xt @ y
    WtW = np.empty((p + 2, p + 2))
    WtW[np.ix_([0, p + 1], [0, p + 1])] = base.WtW
    WtW[1 : p + 1, 1 : p + 1] = (Xt @ X).toarray()
    WtW[1 : p + 1, 0] = WtW[0, 1 : p + 1] = Xt1
    WtW[1 : p + 1, p + 1] = WtW[p + 1, 1 : p + 1] = Xty
    A = _scaling_map(p, fit_intercept, scaling, x_shift, scaling.y_center)
    stats = SufficientStatistics(n, A.T @ WtW @ A, None, None)
    if factors:
        ends = base.first.ZtW  # (q, 2, m): the products with 1 and y
        middle = _level_products(X, codes[0], Zs[0], factors[0].n_levels)
        ZtW = np.concatenate([ends[:, :1], middle, ends[:, 1:]], axis=1)
        stats.first = replace(base.first, ZtW=np.einsum("qkm,kl->qlm", ZtW, A))
    if len(factors) > 1:
        columns, Q2 = _stacked_columns(codes[1:], Zs[1:], factors[1:], n)
        Z2tX = (_stacked_matrix(columns, n, Q2).T @ X).toarray()
        ends = base.others.Z2tW  # (Q2, 2)
        Z2tW = np.column_stack([ends[:, 0], Z2tX, ends[:, 1]])
        stats.others = replace(base.others, Z2tW=Z2tW @ A)
    if root is not None:
        stats.log_weights = float(np.log(weights).sum())
    return stats


def scaled_fixed_products(X, V, fit_intercept, scaling):
    """``W'V`` of the centred, scaled fixed-effect columns W of a sparse X.

    ``V`` is (n, k) dense; the result is (candidates, k), computed from the
    raw products ``[1, X]'V`` without densifying X.
    """
    p = X.shape[1]
    raw = np.vstack([V.sum(axis=0), X.T @ V])
    A = _scaling_map(p, fit_intercept, scaling)[: p + 1, : p + int(fit_intercept)]
    return A.T @ raw


def _scaling_map(p, fit_intercept, scaling, x_shift=0.0, y_shift=0.0):
    """``A`` with ``[intercept, centred scaled X, scaled y] = [1, X, y] A``.

    ``X`` and ``y`` as given already shifted by ``x_shift`` and ``y_shift``
    (part of their centring, done exactly).
    """
    k = int(fit_intercept)
    A = np.zeros((p + 2, k + p + 1))
    if fit_intercept:
        A[0, 0] = 1.0
    A[1 : p + 1, k : k + p] = np.diag(1.0 / scaling.x_scale)
    A[0, k : k + p] = -(scaling.x_center - x_shift) / scaling.x_scale
    A[p + 1, k + p] = 1.0 / scaling.y_scale
    A[0, k + p] = -(scaling.y_center - y_shift) / scaling.y_scale
    return A


def _shift_columns(X, shift):
    """Sparse ``X`` with ``shift`` subtracted from its columns where non-zero.

    Only mostly non-zero columns are shifted: they are stored as densely as
    they would be as dense columns, so nothing grows much.
    """
    shifted = np.flatnonzero(shift)
    if not shifted.size:
        return X
    X = X.tocsc()
    n = X.shape[0]
    keep = np.ones(X.shape[1])
    keep[shifted] = 0.0
    block = X[:, shifted].toarray() - shift[shifted]
    filled = sparse.csc_matrix(
        (
            block.ravel(order="F"),
            (np.tile(np.arange(n), shifted.size), np.repeat(shifted, n)),
        ),
        shape=X.shape,
    )
    return X @ sparse.diags(keep) + filled


def _level_products(X, codes, Z, n_levels):
    """Per level and term, ``sum z_a x_j`` over the level's rows: (q, p, m)."""
    n = X.shape[0]
    blocks = []
    for column in _as_columns(Z):
        values = np.ones(n) if column is None else column
        G = sparse.csr_matrix((values, (codes, np.arange(n))), shape=(n_levels, n))
        blocks.append((G @ X).toarray().T)
    return np.stack(blocks)


def _stacked_matrix(columns, n, n_columns):
    """The (n, n_columns) sparse matrix of :func:`_stacked_columns` output."""
    rows = np.concatenate([np.arange(n) for _ in columns])
    cols = np.concatenate([c for c, _ in columns])
    values = np.concatenate([v for _, v in columns])
    return sparse.csr_matrix((values, (rows, cols)), shape=(n, n_columns))


def weight_columns(columns, root):
    """A list of columns (None: ones) each multiplied by ``root``."""
    return [root if c is None else c * root for c in _as_columns(columns)]


def _stacked_columns(codes, Zs, factors, n):
    """The columns of Z for some factors as (column index, values) pairs.

    Columns are numbered level-major (``offset + level * q + term``), factor
    after factor, which is lme4's layout of Z.
    """
    columns, offset = [], 0
    for c, Z, f in zip(codes, Zs, factors):
        for a in range(f.n_terms):
            values = np.ones(n) if Z[a] is None else Z[a]
            columns.append((offset + c * f.n_terms + a, values))
        offset += f.n_levels * f.n_terms
    return columns, offset


def _sparse_cross_product(left, right, shape):
    """``sum over rows`` of outer products of stacked columns, as COO input."""
    rows = np.concatenate([r for r, _ in left for _ in right])
    cols = np.concatenate([c for _ in left for c, _ in right])
    vals = np.concatenate([zr * zc for _, zr in left for _, zc in right])
    return sparse.coo_matrix((vals, (rows, cols)), shape=shape)


def _other_factor_stats(W, codes, Zs, factors, n, sparse_others=False):
    first, Q1 = _stacked_columns(codes[:1], Zs[:1], factors[:1], n)
    other, Q2 = _stacked_columns(codes[1:], Zs[1:], factors[1:], n)
    Z2tZ1 = _sparse_cross_product(other, first, (Q2, Q1)).tocsr()
    Z2tZ1.sum_duplicates()
    Z2tZ2 = _sparse_cross_product(other, other, (Q2, Q2))
    Z2tZ2 = Z2tZ2.tocsr() if sparse_others else Z2tZ2.toarray()
    Z2tW = np.zeros((Q2, len(W)))
    for r, zr in other:
        for j, w in enumerate(W):
            weights = _product(zr, w)
            Z2tW[:, j] += np.bincount(r, weights=weights, minlength=Q2)
    return OtherFactorStats(Z2tZ1, Z2tZ2, Z2tW)


@dataclass
class ColumnPairs:
    """See :meth:`OtherFactorStats.column_pairs`."""

    flat: np.ndarray  # i * Q2 + j: the place of (i, j) in C order
    flat_fortran: np.ndarray  # j * Q2 + i: its place in Fortran order
    products: np.ndarray  # A[i, k] A[j, k]
    symmetric_products: np.ndarray  # the same, doubled where i > j
    column: np.ndarray  # k


def _column_pairs(A):
    """See :meth:`OtherFactorStats.column_pairs`."""
    return column_pair_positions(A).pairs(A.data)


@dataclass
class ColumnPairPositions:
    """The pairs of :class:`ColumnPairs` as positions in a CSR matrix's data.

    The pattern of ``Z2'Z1`` does not change with row weights: a model
    refitted at new weights (each step of penalised IRLS) forms the pairs'
    products from the new values without searching the pattern again.
    """

    flat: np.ndarray
    flat_fortran: np.ndarray
    column: np.ndarray
    first: np.ndarray  # position in the data of A[i, k]
    second: np.ndarray  # position in the data of A[j, k]
    diagonal: np.ndarray  # i == j

    def pairs(self, data):
        """The :class:`ColumnPairs` of a matrix of this pattern with ``data``."""
        products = data[self.first] * data[self.second]
        return ColumnPairs(
            flat=self.flat,
            flat_fortran=self.flat_fortran,
            products=products,
            symmetric_products=np.where(self.diagonal, 1.0, 2.0) * products,
            column=self.column,
        )


def column_pair_positions(A):
    """The :class:`ColumnPairPositions` of a CSR matrix ``A``."""
    A = A.tocsr()
    A.sort_indices()
    positions = sparse.csr_matrix(
        (np.arange(A.nnz, dtype=float), A.indices, A.indptr), shape=A.shape
    )
    csc = positions.tocsc()
    csc.sort_indices()
    Q2 = A.shape[0]
    counts = np.diff(csc.indptr)
    row, col, first, second, columns = [], [], [], [], []
    for size in np.unique(counts[counts > 0]):
        # All columns with `size` non-zeros at once: (n_columns, size) blocks.
        cols = np.flatnonzero(counts == size)
        starts = csc.indptr[cols][:, None] + np.arange(size)
        rows, where = csc.indices[starts], csc.data[starts].astype(np.intp)
        a, b = np.triu_indices(size)  # rows sorted: rows[:, b] >= rows[:, a]
        row.append(rows[:, b].ravel())
        col.append(rows[:, a].ravel())
        first.append(where[:, a].ravel())
        second.append(where[:, b].ravel())
        columns.append(np.repeat(cols, len(a)))
    row, col, first, second, columns = (
        np.concatenate(x).astype(np.intp, copy=False) if x else np.zeros(0, np.intp)
        for x in (row, col, first, second, columns)
    )
    return ColumnPairPositions(
        flat=row * Q2 + col,
        flat_fortran=col * Q2 + row,
        column=columns,
        first=first,
        second=second,
        diagonal=row == col,
    )


@dataclass
class CouplingPattern:
    """The level blocks of ``Z2'Z1``: where later factors meet the first's levels.

    An *entry* is one row of ``Z2'Z1`` (a term of a level of a later factor)
    restricted to the ``q1`` columns of one level of the first factor, for
    every pair of levels that share a row of data.  Matrices with the block
    pattern of ``Z2'Z1`` (``L21``, ``L21 L11^{-1}``, the (2, 1) block of
    ``M^{-1}`` wherever the gradient reads it) are then (q1, n_entries)
    arrays.  Entries come by later factor, its level, the first factor's
    level, then term: the ``q`` entries of one block are consecutive (``T'``
    mixes them), and within one level of the first factor rows increase.

    Products of two such matrices over the first factor's columns (``J J'``,
    ``P K`` on the pattern) meet only within a level of the first factor.
    They are computed either from the pairs of entries of each level (cost
    in the number of pairs) or, when the later factors have few columns, by
    dense products over chunks of levels (cost ``Q2^2 Q1``, at BLAS speed);
    ``chunks`` is set for the second, the ``pair_*`` arrays for the first.
    """

    row: np.ndarray  # (n_entries,) row of Z2'Z1
    level: np.ndarray  # (n_entries,) level of the first factor
    factor_bounds: np.ndarray  # entries of later factor f: [bounds[f], bounds[f+1])
    values: np.ndarray  # (q1, n_entries): Z2'Z1 on the entries
    # The CSR layout of a (Q2, Q1) matrix with this pattern.
    csr_order: np.ndarray  # entries in row-major order
    csr_indices: np.ndarray
    csr_indptr: np.ndarray
    shape: tuple
    # Pairs of entries of one level, pair_row >= pair_col (or None).
    pair_row: np.ndarray | None = None
    pair_col: np.ndarray | None = None
    pair_flat: np.ndarray | None = None  # row[pair_row] * Q2 + row[pair_col]
    # Chunks of levels: (entries, their rows, their (n, q1) columns, width).
    chunks: list | None = None


# Dense products are chosen while Q2^2 Q1 is below this many times q1 * pairs:
# a BLAS flop costs a small fraction of a gather and a scatter per pair.
DENSE_COUPLING_RATIO = 200
CHUNK_ENTRIES = 1 << 21  # about 16 MB of float64 per dense chunk


def _coupling_pattern(A, q1, shapes):
    """See :meth:`OtherFactorStats.coupling_pattern`."""
    Q2, Q1 = A.shape
    m1 = Q1 // q1
    block_size = np.repeat([q for _, q in shapes], [m for m, _ in shapes])
    block_start = np.cumsum(block_size) - block_size
    block_of_row = np.repeat(np.arange(block_size.size), block_size)
    coo = A.tocoo()
    coo.sum_duplicates()
    # Whole q x q1 blocks: a zero that happens to be exact is still "there".
    keys = np.unique(block_of_row[coo.row] * m1 + coo.col // q1)
    block, block_level = np.divmod(keys, m1)
    size = block_size[block]
    entry_block = np.repeat(np.arange(keys.size), size)
    term = np.arange(entry_block.size) - np.repeat(np.cumsum(size) - size, size)
    row = block_start[block][entry_block] + term
    level = block_level[entry_block]
    csr_order = np.argsort(row * m1 + level, kind="stable")
    where = np.searchsorted((row * m1 + level)[csr_order], coo.row * m1 + coo.col // q1)
    values = np.zeros((q1, row.size))
    values[coo.col % q1, csr_order[where]] = coo.data
    factor_of_block = np.repeat(np.arange(len(shapes)), [m for m, _ in shapes])
    factor_bounds = np.searchsorted(
        factor_of_block[block][entry_block], np.arange(len(shapes) + 1)
    )
    index = np.int32 if max(Q1, row.size * q1) < 2**31 else np.int64
    counts = np.bincount(row, minlength=Q2) * q1
    indptr = np.concatenate([[0], np.cumsum(counts)]).astype(index)
    indices = ((level[csr_order] * q1)[:, None] + np.arange(q1)).astype(index)
    pattern = CouplingPattern(
        row=row,
        level=level,
        factor_bounds=factor_bounds,
        values=values,
        csr_order=csr_order,
        csr_indices=indices.ravel(),
        csr_indptr=indptr,
        shape=(Q2, Q1),
    )
    per_level = np.bincount(level, minlength=m1)
    n_pairs = np.sum(per_level * (per_level + 1) // 2)
    if float(Q2) ** 2 * Q1 <= DENSE_COUPLING_RATIO * q1 * n_pairs:
        pattern.chunks = _level_chunks(row, level, q1, Q2)
    else:
        pattern.pair_row, pattern.pair_col = _level_pairs(level, per_level)
        pattern.pair_flat = row[pattern.pair_row] * Q2 + row[pattern.pair_col]
    return pattern


def _level_chunks(row, level, q1, Q2):
    """Chunks of consecutive levels of the first factor, for dense products.

    Each chunk is a dense (Q2, levels * q1) block; for its entries, their
    rows and (entries, q1) columns in it.
    """
    m1 = int(level.max()) + 1 if level.size else 0
    by_level = np.argsort(level, kind="stable")
    starts = np.searchsorted(level[by_level], np.arange(m1 + 1))
    step = max(1, CHUNK_ENTRIES // max(1, Q2 * q1))
    chunks = []
    for first in range(0, m1, step):
        entries = by_level[starts[first] : starts[min(m1, first + step)]]
        columns = ((level[entries] - first) * q1)[:, None] + np.arange(q1)
        chunks.append((entries, row[entries], columns, min(step, m1 - first) * q1))
    return chunks


def _level_pairs(level, per_level):
    """Pairs ``(i, j)``, ``i >= j``, of entries with the same level."""
    by_level = np.argsort(level, kind="stable")  # entries stay in row order
    starts = np.cumsum(per_level) - per_level
    rows, cols = [np.zeros(0, np.intp)], [np.zeros(0, np.intp)]
    for size in np.unique(per_level[per_level > 0]):
        # All levels with `size` entries at once: (n_levels, size) blocks.
        members = by_level[starts[per_level == size][:, None] + np.arange(size)]
        a, b = np.triu_indices(size)
        rows.append(members[:, b].ravel())
        cols.append(members[:, a].ravel())
    return np.concatenate(rows), np.concatenate(cols)


@dataclass
class DenseCrossProducts:
    """``Z'Z`` (Q, Q) and ``Z'W`` (Q, p + 1) as dense arrays, term-major.

    Within each factor the columns come term by term, each with all the
    factor's levels (``offset + term * m + level``; lme4's layout is
    level-major).  The factor's part of ``Lambda`` is then the Kronecker
    product ``T (x) I_m``, so multiplying by it is one small matrix product
    over contiguous rows.
    """

    ZtZ: np.ndarray
    ZtW: np.ndarray
    shapes: tuple  # (n_levels, n_terms) per factor


def term_major_order(shapes):
    """``order[t]``: the level-major index of term-major column ``t``."""
    order, offset = [], 0
    for m, q in shapes:
        order.append(offset + (np.arange(m)[None, :] * q + np.arange(q)[:, None]))
        offset += m * q
    return np.concatenate([o.ravel() for o in order]) if order else np.zeros(0, int)


def _dense_cross_products(stats, shapes):
    """See :meth:`SufficientStatistics.dense_cross_products`."""
    first, others = stats.first, stats.others
    q1, k, m1 = first.ZtW.shape
    Q1 = q1 * m1
    Q = sum(m * q for m, q in shapes)
    ZtZ, ZtW = np.zeros((Q, Q)), np.zeros((Q, k))
    # The first factor's blocks, level-major: (level, term) rows and columns.
    levels = np.arange(m1) * q1
    for a in range(q1):
        for b in range(q1):
            ZtZ[levels + a, levels + b] = first.ZtZ[a, b]
    ZtW[:Q1] = first.ZtW.transpose(2, 0, 1).reshape(Q1, k)
    if others is not None:
        Z2tZ1 = others.Z2tZ1.toarray()
        ZtZ[Q1:, :Q1] = Z2tZ1
        ZtZ[:Q1, Q1:] = Z2tZ1.T
        ZtZ[Q1:, Q1:] = others.Z2tZ2
        ZtW[Q1:] = others.Z2tW
    order = term_major_order(shapes)
    return DenseCrossProducts(
        np.ascontiguousarray(ZtZ[np.ix_(order, order)]),
        np.ascontiguousarray(ZtW[order]),
        tuple(shapes),
    )
