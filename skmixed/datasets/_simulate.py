"""Simulate grouped (clustered) regression data with known parameters."""

from __future__ import annotations

import numbers

import numpy as np
import pandas as pd
from sklearn.utils import Bunch

__all__ = ["make_grouped_regression"]

# Tolerance used when checking that a correlation / covariance matrix is valid.
_PSD_TOL = 1e-10


def _check_rng(random_state):
    """Turn ``random_state`` into a :class:`numpy.random.Generator`.

    ``None``, an int, a :class:`numpy.random.SeedSequence` or a ``Generator``
    are passed to :func:`numpy.random.default_rng` (a ``Generator`` is used as
    is, so its state advances).  A legacy :class:`numpy.random.RandomState`, as
    produced by :func:`sklearn.utils.check_random_state`, seeds a new
    ``Generator`` from one of its draws.
    """
    if isinstance(random_state, np.random.RandomState):
        seed = random_state.randint(0, 2**32 - 1, dtype=np.uint32)
        return np.random.default_rng(int(seed))
    if random_state is None or isinstance(
        random_state,
        (numbers.Integral, np.random.Generator, np.random.SeedSequence),
    ):
        return np.random.default_rng(random_state)
    raise ValueError(
        "random_state must be None, an int, a numpy SeedSequence, Generator or "
        f"RandomState; got {random_state!r}"
    )


def _check_int(value, name, minimum):
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise ValueError(f"{name} must be an integer; got {value!r}")
    if value < minimum:
        raise ValueError(f"{name} must be >= {minimum}; got {value}")
    return int(value)


def _check_bool(value, name):
    if not isinstance(value, (bool, np.bool_)):
        raise ValueError(f"{name} must be True or False; got {value!r}")
    return bool(value)


def _check_sd(value, name):
    try:
        value = float(value)
    except (TypeError, ValueError):
        raise ValueError(f"{name} must be a number; got {value!r}") from None
    if not np.isfinite(value) or value < 0:
        raise ValueError(
            f"{name} must be a finite standard deviation >= 0; got {value}"
        )
    return value


def _psd_cholesky(C):
    """Lower-triangular ``L`` with ``L @ L.T == C`` for a PSD matrix ``C``.

    Unlike :func:`numpy.linalg.cholesky` it accepts singular matrices (e.g. a
    correlation of exactly +-1): a zero pivot gives a zero column.
    """
    q = C.shape[0]
    L = np.zeros_like(C, dtype=float)
    for j in range(q):
        d = C[j, j] - L[j, :j] @ L[j, :j]
        if d > _PSD_TOL:
            L[j, j] = np.sqrt(d)
            L[j + 1 :, j] = (C[j + 1 :, j] - L[j + 1 :, :j] @ L[j, :j]) / L[j, j]
    return L


def _min_eigenvalue(C):
    return float(np.linalg.eigvalsh(C).min())


def _check_corr(re_corr, terms):
    """Validate ``re_corr`` (scalar or q x q) and return the q x q matrix."""
    q = len(terms)
    try:
        R = np.array(re_corr, dtype=float)
    except (TypeError, ValueError):
        raise ValueError(
            f"re_corr must be a number or a {q}x{q} matrix; got {re_corr!r}"
        ) from None
    if R.ndim == 0:
        rho = float(R)
        if not (np.isfinite(rho) and -1.0 <= rho <= 1.0):
            raise ValueError(f"re_corr must be a correlation in [-1, 1]; got {rho}")
        R = np.full((q, q), rho)
        np.fill_diagonal(R, 1.0)
        if q > 2 and _min_eigenvalue(R) < -_PSD_TOL:
            raise ValueError(
                f"re_corr={rho} is impossible as a common correlation between "
                f"{q} random-effect terms: it must be at least "
                f"-1/(q-1) = {-1 / (q - 1):.4g}"
            )
        return R
    if R.shape != (q, q):
        raise ValueError(
            f"re_corr must be a number or a {q}x{q} matrix (one row and column per "
            f"random-effect term: {', '.join(terms)}); got shape {R.shape}"
        )
    if not np.all(np.isfinite(R)):
        raise ValueError("re_corr contains non-finite values")
    if not np.allclose(R, R.T, rtol=0, atol=1e-12):
        raise ValueError("re_corr must be a symmetric matrix")
    if not np.allclose(np.diag(R), 1.0, rtol=0, atol=1e-12):
        raise ValueError("re_corr must have ones on its diagonal")
    if np.any(np.abs(R) > 1.0 + 1e-12):
        raise ValueError("re_corr entries must be correlations in [-1, 1]")
    min_eig = _min_eigenvalue(R)
    if min_eig < -_PSD_TOL:
        raise ValueError(
            "re_corr is not a valid correlation matrix: it is not positive "
            f"semi-definite (smallest eigenvalue {min_eig:.4g})"
        )
    return np.clip((R + R.T) / 2, -1.0, 1.0)


def _check_cov(re_cov, terms):
    """Validate a q x q covariance matrix; return (sd, corr)."""
    q = len(terms)
    try:
        S = np.array(re_cov, dtype=float)
    except (TypeError, ValueError):
        raise ValueError(f"re_cov must be a {q}x{q} matrix; got {re_cov!r}") from None
    if S.ndim == 0 and q == 1:
        S = S.reshape(1, 1)
    if S.shape != (q, q):
        raise ValueError(
            f"re_cov must be a {q}x{q} matrix (one row and column per random-effect "
            f"term: {', '.join(terms)}); got shape {S.shape}"
        )
    if not np.all(np.isfinite(S)):
        raise ValueError("re_cov contains non-finite values")
    scale = max(1.0, float(np.abs(S).max()))
    if not np.allclose(S, S.T, rtol=0, atol=1e-12 * scale):
        raise ValueError("re_cov must be a symmetric matrix")
    if np.any(np.diag(S) < 0):
        raise ValueError("re_cov has a negative variance on its diagonal")
    min_eig = _min_eigenvalue(S)
    if min_eig < -_PSD_TOL * scale:
        raise ValueError(
            "re_cov is not a valid covariance matrix: it is not positive "
            f"semi-definite (smallest eigenvalue {min_eig:.4g})"
        )
    sd = np.sqrt(np.diag(S))
    R = np.eye(q)
    pos = sd > 0
    R[np.ix_(pos, pos)] = S[np.ix_(pos, pos)] / np.outer(sd[pos], sd[pos])
    np.fill_diagonal(R, 1.0)
    return sd, np.clip((R + R.T) / 2, -1.0, 1.0)


def _resolve_slopes(random_slopes, feature_names):
    if random_slopes is None:
        return []
    if isinstance(random_slopes, (str, numbers.Integral)):
        random_slopes = [random_slopes]
    p = len(feature_names)
    out = []
    for s in random_slopes:
        if isinstance(s, str):
            if s not in feature_names:
                raise ValueError(
                    f"random_slopes: unknown feature name {s!r}; the features are "
                    f"{feature_names}"
                )
            j = feature_names.index(s)
        elif isinstance(s, numbers.Integral) and not isinstance(s, bool):
            if not 0 <= s < p:
                raise ValueError(
                    f"random_slopes: feature index {s} is out of range for "
                    f"n_features={p} (indices are 0-based"
                    + (
                        "; pass random_slopes=() for no random slopes)"
                        if p == 0
                        else ")"
                    )
                )
            j = int(s)
        else:
            raise ValueError(
                "random_slopes entries must be 0-based feature indices or feature "
                f"names; got {s!r}"
            )
        if j in out:
            raise ValueError(f"random_slopes lists feature {feature_names[j]!r} twice")
        out.append(j)
    return out


def _group_sizes(group_size, n_groups, unbalanced, rng):
    if np.ndim(group_size) == 0:
        g = _check_int(group_size, "group_size", 1)
        if unbalanced:
            # Uniform on {1, ..., 2 * group_size - 1}: mean group_size.
            return rng.integers(1, 2 * g, size=n_groups)
        return np.full(n_groups, g)
    if unbalanced:
        raise ValueError(
            "unbalanced=True draws random group sizes; it cannot be combined with "
            "explicit group sizes in group_size"
        )
    sizes = np.asarray(group_size)
    if sizes.ndim != 1 or sizes.shape[0] != n_groups:
        raise ValueError(
            "group_size must be an integer or a sequence of one size per group "
            f"(n_groups={n_groups}); got shape {sizes.shape}"
        )
    if sizes.dtype.kind not in "iu" and not (
        sizes.dtype.kind == "f" and np.all(sizes == np.round(sizes))
    ):
        raise ValueError("group_size entries must be integers")
    sizes = sizes.astype(np.int64)
    if np.any(sizes < 1):
        raise ValueError(f"group_size entries must be >= 1; got min {sizes.min()}")
    return sizes


def _lme4_formula(response, feature_names, terms, group_name):
    fixed = " + ".join(feature_names) if feature_names else "1"
    if terms[0] == "Intercept":
        rand = " + ".join(["1", *terms[1:]])
    else:
        rand = " + ".join(["0", *terms])
    return f"{response} ~ {fixed} + ({rand} | {group_name})"


def _make_params(intercept, coef, terms, sd, corr, sigma, random_effects):
    """The ``params`` dict shared by the simulators (all labelled with pandas)."""
    sd = pd.Series(sd, index=terms, name="sd", dtype=float)
    corr = pd.DataFrame(corr, index=terms, columns=terms, dtype=float)
    cov = corr * np.outer(sd, sd)
    return {
        "intercept": float(intercept),
        "coef": coef,
        "fixef": pd.concat([pd.Series({"Intercept": float(intercept)}), coef]).rename(
            "fixef"
        ),
        "re_cov": cov,
        "re_sd": sd,
        "re_corr": corr,
        "sigma": float(sigma),
        "random_effects": random_effects,
    }


def make_grouped_regression(
    n_groups=20,
    group_size=10,
    *,
    n_features=2,
    coef=None,
    intercept=0.0,
    random_intercept=True,
    random_slopes=(0,),
    re_sd=None,
    re_corr=None,
    re_cov=None,
    noise_sd=1.0,
    unbalanced=False,
    as_frame=True,
    return_X_y_groups=False,
    random_state=None,
):
    """Generate grouped regression data from a linear mixed model with known parameters.

    Observation ``i`` of group ``j`` follows the model that lme4 writes
    ``y ~ x1 + ... + xp + (1 + x_s1 + ... | group)``::

        y_i = intercept + X_i @ coef + b_j0 + sum_k b_jk * X_i[s_k] + noise_sd * e_i

    where the random effects ``b_j = (b_j0, b_j1, ...)`` of each group are
    independent draws from ``N(0, re_cov)`` and the ``e_i`` are independent
    standard normal.  The features are independent standard normal.

    Parameters
    ----------
    n_groups : int, default=20
        Number of groups (levels of the grouping factor), at least 1.
    group_size : int or array-like of int, default=10
        Number of observations per group.  An int gives every group that size
        (or, with ``unbalanced=True``, the expected size); a sequence of
        ``n_groups`` positive ints gives the size of each group.
    n_features : int, default=2
        Number of features ``x1 ... xp``; 0 gives an intercept-only model (then
        pass ``random_slopes=()``).
    coef : float or array-like of shape (n_features,), default=None
        Fixed-effect slopes.  ``None`` means 1.0 for every feature; a scalar is
        used for every feature.
    intercept : float, default=0.0
        Fixed intercept.
    random_intercept : bool, default=True
        Whether each group gets a random intercept (the ``1`` in ``(1 + x1 |
        group)``).  ``False`` gives lme4's ``(0 + x1 | group)``.
    random_slopes : sequence of int or str, default=(0,)
        Features whose slope varies by group, as 0-based indices into the
        features or as names (``0`` and ``"x1"`` are the same feature).  The
        default gives a random slope for ``x1``; ``()`` gives a random-intercept
        model.  The random-effect *terms* are ``"Intercept"`` (if
        ``random_intercept``) followed by these features, in this order.
    re_sd : float or array-like of shape (q,), default=None
        Standard deviations of the ``q`` random-effect terms, each >= 0 (a zero
        SD gives a singular model).  A scalar is used for every term.  ``None``
        means 1.0, unless ``re_cov`` is given.
    re_corr : float or array-like of shape (q, q), default=None
        Correlation between the random-effect terms: a scalar in [-1, 1] used
        for every pair, or a full correlation matrix (symmetric, unit diagonal,
        positive semi-definite).  ``None`` means 0.0 (independent terms),
        unless ``re_cov`` is given.
    re_cov : array-like of shape (q, q), default=None
        Covariance matrix of the random effects, an alternative to ``re_sd``
        and ``re_corr`` (which must then be left as ``None``).  Must be
        symmetric and positive semi-definite.
    noise_sd : float, default=1.0
        Residual standard deviation ``sigma``, >= 0.
    unbalanced : bool, default=False
        If True, group sizes are drawn independently and uniformly from
        ``1, ..., 2 * group_size - 1`` (mean ``group_size``), so the total
        number of rows is random.  Requires an int ``group_size``.
    as_frame : bool, default=True
        If True, ``X`` is a DataFrame with columns ``x1 ... xp``, ``y`` a Series
        named ``"y"`` and ``groups`` a Series named ``"group"``; otherwise they
        are NumPy arrays.
    return_X_y_groups : bool, default=False
        If True, return the tuple ``(X, y, groups)`` instead of a Bunch.
    random_state : None, int, numpy Generator or RandomState, default=None
        Source of randomness; the same int gives the same data.

    Returns
    -------
    data : :class:`~sklearn.utils.Bunch`
        With attributes

        X : DataFrame or ndarray of shape (n_samples, n_features)
            Features; rows are ordered by group.
        y : Series or ndarray of shape (n_samples,)
            Response.
        groups : Series or ndarray of shape (n_samples,)
            Group labels ``"g00"``, ``"g01"``, ... (zero-padded strings).
        frame : DataFrame or None
            ``X``, ``groups`` and ``y`` side by side (columns ``x1 ... xp``,
            ``group``, ``y``) if ``as_frame``, else None.
        params : dict
            The true parameters, always labelled with pandas:
            ``intercept`` (float), ``coef`` (Series indexed by feature name),
            ``fixef`` (Series: ``Intercept`` then ``coef``), ``re_cov``,
            ``re_corr`` (q x q DataFrames indexed by term), ``re_sd`` (Series),
            ``sigma`` (float, ``noise_sd``) and ``random_effects``, the
            realised random effects (DataFrame of shape (n_groups, q) indexed
            by group label, one column per term).
        feature_names : list of str
            ``["x1", ..., "xp"]``.
        target_name, group_name : str
            ``"y"`` and ``"group"``.
        formula : str
            The lme4 formula of the generating model, e.g.
            ``"y ~ x1 + x2 + (1 + x1 | group)"``.

    (X, y, groups) : tuple
        If ``return_X_y_groups`` is True.

    Raises
    ------
    ValueError
        If an argument is invalid, e.g. a negative standard deviation, a
        correlation outside [-1, 1], a correlation or covariance matrix that
        is not positive semi-definite, or an unknown random-slope feature.

    See Also
    --------
    simulate_biomass : The plant-biomass tutorial's data-generating process.

    Notes
    -----
    Random numbers are drawn in a fixed order -- group sizes (if
    ``unbalanced``), the features, standard-normal variates for the random
    effects, then the noise -- and the normal variates are drawn at unit scale
    and scaled afterwards.  With the same ``random_state`` and the same
    shapes, changing only ``coef``, ``intercept``, ``re_sd``, ``re_corr`` or
    ``noise_sd`` therefore keeps ``X`` identical and changes ``y`` smoothly
    (common random numbers), which is convenient in simulation studies.

    Examples
    --------
    >>> from skmixed.datasets import make_grouped_regression
    >>> data = make_grouped_regression(
    ...     n_groups=30, group_size=8, coef=[2.0, -1.0], intercept=5.0,
    ...     random_slopes=["x1"], re_sd=[1.0, 0.5], re_corr=0.3, noise_sd=0.5,
    ...     random_state=0)
    >>> data.X.shape, data.y.shape, data.groups.nunique()
    ((240, 2), (240,), 30)
    >>> list(data.frame.columns)
    ['x1', 'x2', 'group', 'y']
    >>> data.groups.iloc[0], data.groups.iloc[-1]
    ('g00', 'g29')
    >>> data.formula
    'y ~ x1 + x2 + (1 + x1 | group)'
    >>> data.params["fixef"].to_dict()
    {'Intercept': 5.0, 'x1': 2.0, 'x2': -1.0}
    >>> data.params["re_cov"]
               Intercept    x1
    Intercept       1.00  0.15
    x1              0.15  0.25
    >>> data.params["random_effects"].shape
    (30, 2)

    Unbalanced groups and plain arrays:

    >>> X, y, groups = make_grouped_regression(
    ...     n_groups=5, group_size=4, random_slopes=(), unbalanced=True,
    ...     as_frame=False, return_X_y_groups=True, random_state=1)
    >>> X.dtype, X.shape[1], len(set(groups))
    (dtype('float64'), 2, 5)
    """
    n_groups = _check_int(n_groups, "n_groups", 1)
    n_features = _check_int(n_features, "n_features", 0)
    random_intercept = _check_bool(random_intercept, "random_intercept")
    unbalanced = _check_bool(unbalanced, "unbalanced")
    as_frame = _check_bool(as_frame, "as_frame")
    return_X_y_groups = _check_bool(return_X_y_groups, "return_X_y_groups")
    intercept = float(intercept)
    if not np.isfinite(intercept):
        raise ValueError(f"intercept must be finite; got {intercept}")
    noise_sd = _check_sd(noise_sd, "noise_sd")

    feature_names = [f"x{k + 1}" for k in range(n_features)]
    if coef is None:
        coef = np.ones(n_features)
    else:
        try:
            coef = np.array(coef, dtype=float)
        except (TypeError, ValueError):
            raise ValueError(f"coef must be numeric; got {coef!r}") from None
        if coef.ndim == 0:
            coef = np.full(n_features, float(coef))
        if coef.shape != (n_features,):
            raise ValueError(
                f"coef must be a scalar or have one entry per feature "
                f"(n_features={n_features}); got shape {coef.shape}"
            )
        if not np.all(np.isfinite(coef)):
            raise ValueError("coef contains non-finite values")

    slopes = _resolve_slopes(random_slopes, feature_names)
    terms = (["Intercept"] if random_intercept else []) + [
        feature_names[j] for j in slopes
    ]
    q = len(terms)
    if q == 0:
        raise ValueError(
            "the model has no random effects: set random_intercept=True or give "
            "random_slopes (for zero between-group variance use re_sd=0)"
        )

    if re_cov is not None:
        if re_sd is not None or re_corr is not None:
            raise ValueError("pass either re_cov or re_sd/re_corr, not both")
        sd, R = _check_cov(re_cov, terms)
    else:
        sd = np.array(1.0 if re_sd is None else re_sd, dtype=float)
        if sd.ndim == 0:
            sd = np.full(q, float(sd))
        if sd.shape != (q,):
            raise ValueError(
                f"re_sd must be a scalar or have one entry per random-effect term "
                f"(q={q}: {', '.join(terms)}); got shape {sd.shape}"
            )
        if not np.all(np.isfinite(sd)) or np.any(sd < 0):
            raise ValueError(
                f"re_sd must contain finite standard deviations >= 0; got {sd.tolist()}"
            )
        R = _check_corr(0.0 if re_corr is None else re_corr, terms)

    rng = _check_rng(random_state)

    # --- draws, in a fixed order -------------------------------------------
    sizes = _group_sizes(group_size, n_groups, unbalanced, rng)
    n_samples = int(sizes.sum())
    X = rng.standard_normal((n_samples, n_features))
    z = rng.standard_normal((n_groups, q))
    e = rng.standard_normal(n_samples)

    b = (z @ _psd_cholesky(R).T) * sd  # (n_groups, q), rows ~ N(0, D R D)
    g = np.repeat(np.arange(n_groups), sizes)
    Z = np.column_stack(
        ([np.ones(n_samples)] if random_intercept else []) + [X[:, j] for j in slopes]
    )
    y = intercept + X @ coef + np.einsum("ik,ik->i", Z, b[g]) + noise_sd * e

    width = max(2, len(str(n_groups - 1)))
    levels = [f"g{j:0{width}d}" for j in range(n_groups)]
    labels = np.asarray(levels)[g]

    random_effects = pd.DataFrame(
        b, index=pd.Index(levels, name="group"), columns=list(terms)
    )
    params = _make_params(
        intercept,
        pd.Series(coef, index=feature_names, name="coef", dtype=float),
        terms,
        sd,
        R,
        noise_sd,
        random_effects,
    )

    if as_frame:
        X = pd.DataFrame(X, columns=feature_names)
        y = pd.Series(y, name="y")
        groups = pd.Series(labels, name="group")
        frame = pd.concat([X, groups, y], axis=1)
    else:
        groups = labels
        frame = None

    if return_X_y_groups:
        return X, y, groups
    return Bunch(
        X=X,
        y=y,
        groups=groups,
        frame=frame,
        params=params,
        feature_names=feature_names,
        target_name="y",
        group_name="group",
        formula=_lme4_formula("y", feature_names, terms, "group"),
    )
