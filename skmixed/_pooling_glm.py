"""Complete and no pooling for binary and count targets.

The generalised counterparts of :class:`~skmixed.CompletePoolingRegressor`
and :class:`~skmixed.NoPoolingRegressor`: one logistic (Poisson) regression
for everyone, or a separate one per group (R's ``glm(y ~ x, binomial)`` and
``glm(y ~ x * g, binomial)``), the two limits of
:class:`~skmixed.MixedLogisticRegression` (:class:`~skmixed.MixedPoissonRegressor`)
whose random-effect variances are zero and infinite.  They read their data
as the linear baselines do (``groups``, ``group_column``, formulas); only
the solver differs: iteratively reweighted least squares (R's ``glm.fit``),
each step the linear baselines' weighted least squares with per-group
columns, solved group by group on sufficient statistics.

A group whose outcomes are all 0 (or all 1) has no finite no-pooling
estimate: its intercept runs off to minus (plus) infinity and its fitted
probabilities become numerically 0 (1).  The fit stops where the deviance
stops changing, as R's ``glm`` does, and warns; this is the overfitting
that partial pooling cures.
"""

import warnings
from dataclasses import dataclass

import numpy as np
from scipy import special
from sklearn.base import ClassifierMixin, RegressorMixin
from sklearn.exceptions import ConvergenceWarning
from sklearn.metrics import accuracy_score, d2_tweedie_score

from ._design import block_cross_products
from ._family import make_family
from ._pooling import (
    _CompletePoolingModel,
    _NoPoolingModel,
    _own_coefficients,
    _rank_revealing_cholesky,
    _shared_slopes,
    _solve_normal_equations,
)
from ._row_metadata import check_sample_weight
from ._targets import binary_target, count_target, labels_of
from ._validation import InstanceOf, Interval, Options

# R's glm.control: converged when the deviance changes by less than this
# fraction of itself (plus 0.1).
DEVIANCE_TOLERANCE = 1e-8
MAX_HALVINGS = 30
# A fitted probability this close to 0 or 1 (a rate this close to 0) is
# "numerically 0 or 1" (R's glm.fit uses 10 machine epsilons).
EDGE = 10 * np.finfo(float).eps


@dataclass
class GLMLines:
    """The outcome of :func:`fit_glm_lines`."""

    lines: np.ndarray  # (n_levels, 1 + p): intercept and slopes, data units
    estimable: np.ndarray  # (n_levels, 1 + n_slopes) bool
    dropped: list  # shared columns dropped as dependent
    deviance: float
    converged: bool
    n_iter: int
    edge: bool  # some fitted means numerically at the edge of their range


def fit_glm_lines(
    X,
    y,
    weights,
    codes,
    n_levels,
    slope_columns,
    family,
    *,
    fit_intercept=True,
    reference=None,
    max_iter=100,
):
    """Maximum likelihood with an intercept and some slopes per level (IRLS).

    Fits ``g(E[y]) = a[g] + X[:, S] @ b[g] + X[:, C] @ c`` (``S`` the
    ``slope_columns``, ``C`` the others), by iteratively reweighted least
    squares with step halving, stopping as R's ``glm.fit`` does.  Each step
    is a weighted least-squares problem with per-level columns, solved on
    per-level sufficient statistics (the per-level columns profiled out).

    Parameters
    ----------
    X : ndarray of shape (n, p)
    y : ndarray of shape (n,)
        0/1 or proportions (binomial), counts or rates (Poisson).
    weights : ndarray of shape (n,)
        Prior weights: trials (binomial), exposures (Poisson).
    codes : ndarray of int of shape (n,)
        Level of each row.
    n_levels : int
    slope_columns : list of int
    family : Family
    fit_intercept : bool, default=True
        False (with one level and no slope columns only): no intercept.
    reference : ndarray of shape (1 + p,), default=None
        Slopes for the levels that cannot estimate theirs (see
        :func:`skmixed._pooling.fit_group_lines`); None means 0.
    max_iter : int, default=100

    Returns
    -------
    GLMLines
    """
    p = X.shape[1]
    center = X.mean(axis=0) if fit_intercept and len(y) else np.zeros(p)
    Xs = X - center
    scale = np.sqrt((Xs * Xs).mean(axis=0)) if len(y) else np.ones(p)
    scale = np.where(scale > 0, scale, 1.0)
    Xs = Xs / scale
    slope_columns = list(slope_columns)
    common = [j for j in range(p) if j not in set(slope_columns)]
    ref = np.zeros(1 + len(slope_columns))
    if reference is not None:
        ref[1:] = reference[1:][slope_columns] * scale[slope_columns]

    def solve(z, w):
        if fit_intercept:
            return _weighted_lines(
                Xs, z, w, codes, n_levels, slope_columns, common, ref
            )
        return _weighted_line_through_origin(Xs, z, w)

    def predict(lines):
        own = lines[codes]
        return own[:, 0] + np.einsum("ij,ij->i", Xs, own[:, 1:])

    saturated = _saturated_loglik(family, y, weights)

    def deviance(eta):
        return float(2.0 * (saturated - family.loglik(y, eta, weights).sum()))

    eta = family.link(family.start(y, weights))
    dev, lines, converged, n_iter = deviance(eta), None, False, 0
    for n_iter in range(1, max_iter + 1):
        z, w = family.working(y, eta, weights)
        new, estimable, dropped = solve(z, w)
        eta_new = predict(new)
        dev_new = deviance(eta_new)
        for _ in range(MAX_HALVINGS):
            if lines is None or dev_new <= dev * (1 + 1e-12):
                break
            new = 0.5 * (new + lines)
            eta_new = predict(new)
            dev_new = deviance(eta_new)
        converged = abs(dev_new - dev) < DEVIANCE_TOLERANCE * (abs(dev_new) + 0.1)
        lines, eta, dev = new, eta_new, dev_new
        if converged:
            break
    return GLMLines(
        _unscale(lines, center, scale),
        estimable,
        dropped,
        dev,
        converged,
        n_iter,
        _at_edge(family, eta, weights),
    )


def _weighted_lines(Xs, z, w, codes, n_levels, slopes, common, reference):
    """Weighted least squares with per-level columns, as ``fit_group_lines``."""
    root = np.sqrt(w)
    Z = np.column_stack([root, Xs[:, slopes] * root[:, None]])
    W = np.column_stack([Xs[:, common] * root[:, None], z * root])
    ZtZ, ZtW = block_cross_products(codes, Z, W, n_levels)
    L, estimable = _rank_revealing_cholesky(ZtZ, np.diagonal(ZtZ).T)
    shared, kept = _shared_slopes(ZtW, W.T @ W, L, estimable)
    own = _own_coefficients(ZtZ, ZtW, L, estimable, shared, reference)
    lines = np.zeros((n_levels, 1 + Xs.shape[1]))
    lines[:, 0] = own[0]
    lines[:, [1 + j for j in slopes]] = own[1:].T
    lines[:, [1 + j for j in common]] = shared
    return lines, estimable.T, [common[j] for j in np.flatnonzero(~kept)]


def _weighted_line_through_origin(Xs, z, w):
    """Weighted least squares without an intercept (one level)."""
    root = np.sqrt(w)
    A = Xs * root[:, None]
    G = A.T @ A
    coef, kept = _solve_normal_equations(G, A.T @ (z * root), np.diag(G))
    lines = np.concatenate([[0.0], coef])[None, :]
    return lines, np.ones((1, 1), dtype=bool), list(np.flatnonzero(~kept))


def _unscale(lines, center, scale):
    """Lines fitted on ``(X - center) / scale``, in the units of ``X``."""
    slopes = lines[:, 1:] / scale
    return np.column_stack([lines[:, 0] - slopes @ center, slopes])


def _saturated_loglik(family, y, weights):
    """The log-likelihood (without its constant) at ``mu = y``: deviance 0."""
    if family.name == "binomial":
        return float(
            (weights * (special.xlogy(y, y) + special.xlogy(1 - y, 1 - y))).sum()
        )
    return float((weights * (special.xlogy(y, y) - y)).sum())


def _at_edge(family, eta, weights):
    mu = family.link.inverse(eta)[weights > 0]
    if family.name == "binomial":
        return bool(np.any((mu < EDGE) | (mu > 1 - EDGE)))
    return bool(np.any(mu < EDGE))


# --------------------------------------------------------------------------
# Estimators
# --------------------------------------------------------------------------


class _GeneralizedBaseline:
    """The generalised baselines' family, target, weights, solver, predictions."""

    _family_name = ""

    def _make_family(self):
        return make_family(self._family_name, self.link)

    def _weights(self, sample_weight, complete, n):
        """Prior weights of the rows fitted (a formula's complete rows)."""
        n_given = n if complete is None else complete.shape[0]
        weights = check_sample_weight(sample_weight, n_given)
        if weights is None:
            return np.ones(n)
        return weights if complete is None else weights[complete]

    def _solve_line(self, X, y, weights, fit_intercept):
        zeros = np.zeros(len(y), np.intp)
        fit = self._irls(X, y, weights, zeros, 1, [], None, intercept=fit_intercept)
        return fit.lines[0], fit.dropped

    def _solve_lines(self, X, y, weights, codes, n_levels, slopes, reference):
        fit = self._irls(X, y, weights, codes, n_levels, slopes, reference)
        if n_levels > 1:
            self._warn_alike(y, weights, codes, n_levels)
        return fit.lines, fit.estimable, fit.dropped

    def _warn_alike(self, y, weights, codes, n_levels):
        """Warn of levels whose outcomes are all 0 (or all 1): no finite fit."""
        events = np.bincount(codes, weights * y, n_levels)
        totals = np.bincount(codes, weights, n_levels)
        alike = (totals > 0) & (events <= 0)
        if self._family_name == "binomial":
            alike |= (totals > 0) & (events >= totals)
        if alike.any():
            outcome = "all 0 or all 1" if self._family_name == "binomial" else "all 0"
            warnings.warn(
                f"{int(alike.sum())} of {n_levels} group(s) have outcomes {outcome}: "
                "their no-pooling estimates are infinite (IRLS stops with fitted "
                "means numerically at the edge, as R's glm). A mixed model shrinks "
                "them.",
                UserWarning,
                stacklevel=4,
            )

    def _irls(self, X, y, weights, codes, n_levels, slopes, reference, intercept=True):
        family = self._family = self._make_family()
        fit = fit_glm_lines(
            X,
            y,
            weights,
            codes,
            n_levels,
            slopes,
            family,
            fit_intercept=intercept,
            reference=reference,
            max_iter=self.max_iter,
        )
        self.n_iter_, self.converged_, self.deviance_ = (
            fit.n_iter,
            fit.converged,
            fit.deviance,
        )
        if not fit.converged:
            warnings.warn(
                f"IRLS did not converge in max_iter={self.max_iter} iterations; "
                "increase max_iter.",
                ConvergenceWarning,
                stacklevel=5,
            )
        if fit.edge:
            what = "probabilities" if family.name == "binomial" else "means"
            warnings.warn(
                f"fitted {what} numerically 0 or 1 occurred (R's glm warning): some "
                "outcomes are perfectly predicted (a group whose outcomes are all "
                "alike has no finite no-pooling estimate), so some coefficients "
                "are very large. A mixed model shrinks them.",
                UserWarning,
                stacklevel=5,
            )
        return fit

    def _mean(self, X, groups):
        eta = self._line_prediction(X, groups)
        mean = self._make_family().link.inverse(eta)
        return np.where(np.isnan(eta), np.nan, mean)


class _BinaryBaseline(ClassifierMixin, _GeneralizedBaseline):
    """Labels, probabilities and accuracy of the logistic baselines."""

    _family_name = "binomial"
    _numeric_target = False

    def _check_target(self, y):
        """0/1 from two labels, or proportions in [0, 1] (with trials)."""
        y, self.classes_, self._proportions = binary_target(y, type(self).__name__)
        return y

    def decision_function(self, X, groups=None):
        """The linear predictor (log-odds for the logit link) of each row.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            As in ``fit``.
        groups : array-like of shape (n_samples,), default=None
            Group labels, as in ``predict``.

        Returns
        -------
        eta : ndarray of shape (n_samples,)
            With ``formula``, NaN for rows missing a value the formula uses.
        """
        return self._line_prediction(X, groups)

    def predict_proba(self, X, groups=None):
        """Probabilities of ``classes_[0]`` and ``classes_[1]``.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
        groups : array-like of shape (n_samples,), default=None

        Returns
        -------
        proba : ndarray of shape (n_samples, 2)
        """
        p = self._mean(X, groups)
        return np.column_stack([1.0 - p, p])

    def predict_log_proba(self, X, groups=None):
        """Logarithm of :meth:`predict_proba`."""
        with np.errstate(divide="ignore"):
            return np.log(self.predict_proba(X, groups))

    def predict(self, X, groups=None):
        """The more probable class.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
        groups : array-like of shape (n_samples,), default=None

        Returns
        -------
        labels : ndarray of shape (n_samples,)
            None for a formula's rows missing a value.
        """
        return labels_of(self._mean(X, groups), self.classes_)

    def score(self, X, y, groups=None, sample_weight=None):
        """Accuracy of :meth:`predict` (a formula's complete rows).

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
        y : array-like of shape (n_samples,)
        groups : array-like of shape (n_samples,), default=None
        sample_weight : array-like of shape (n_samples,), default=None

        Returns
        -------
        score : float
        """
        labels = self.predict(X, groups)
        keep = np.array([v is not None for v in labels], dtype=bool)
        weight = None if sample_weight is None else np.asarray(sample_weight)[keep]
        y = np.asarray(y)
        return accuracy_score(
            y[keep], labels[keep].astype(y.dtype, copy=False), sample_weight=weight
        )

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.classifier_tags.multi_class = False
        return tags


class _CountBaseline(RegressorMixin, _GeneralizedBaseline):
    """Expected counts and D^2 of the Poisson baselines."""

    _family_name = "poisson"

    def _check_target(self, y):
        return count_target(y, type(self).__name__)

    def predict(self, X, groups=None):
        """The expected count (rate) of each row.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
        groups : array-like of shape (n_samples,), default=None

        Returns
        -------
        y_pred : ndarray of shape (n_samples,)
        """
        return self._mean(X, groups)

    def score(self, X, y, groups=None, sample_weight=None):
        """D^2, the share of Poisson deviance explained (a formula's complete rows).

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
        y : array-like of shape (n_samples,)
        groups : array-like of shape (n_samples,), default=None
        sample_weight : array-like of shape (n_samples,), default=None

        Returns
        -------
        score : float
        """
        y_pred = self.predict(X, groups)
        keep = ~np.isnan(y_pred)
        weight = None if sample_weight is None else np.asarray(sample_weight)[keep]
        y = np.asarray(y, dtype=float)[keep]
        return d2_tweedie_score(y, y_pred[keep], sample_weight=weight, power=1)

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.target_tags.positive_only = True
        return tags


_COMMON_CONSTRAINTS = {
    "formula": [InstanceOf(str), Options(None)],
    "max_iter": [Interval(int, 1, None)],
    "group_column": [
        InstanceOf(str, list, tuple, description="a str or a list of str"),
        Options(None),
    ],
}
_COMPLETE_CONSTRAINTS = {**_COMMON_CONSTRAINTS, "fit_intercept": [InstanceOf(bool)]}
_NO_POOLING_CONSTRAINTS = {
    **_COMMON_CONSTRAINTS,
    "group_slopes": [
        InstanceOf(list, tuple, str, int, description="a list, str, int"),
        Options(None),
    ],
    "unseen": [Options("pooled", "error")],
}


class _GeneralizedCompletePooling(_CompletePoolingModel):
    def fit(self, X, y=None, groups=None, sample_weight=None):
        """Fit the model by maximum likelihood, ignoring the groups.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            Numeric features; with ``formula``, a data frame of the raw
            columns its fixed part names.
        y : array-like of shape (n_samples,), default=None
            The target (see the class); with ``formula``, None reads it from
            the formula's left-hand side.
        groups : array-like of shape (n_samples,) or (n_samples, n_factors)
            Group labels; checked, then ignored.
        sample_weight : array-like of shape (n_samples,), default=None
            Trials of a proportion target (binomial), exposures of a rate
            (Poisson); for 0/1 or counts, a weight of 2 is the row twice.

        Returns
        -------
        self
        """
        X, y, names, fit_intercept, complete = self._fit_data(X, y, groups)
        y = self._check_target(y)
        weights = self._weights(sample_weight, complete, len(y))
        return self._fit_line(X, y, weights, names, fit_intercept)


class _GeneralizedNoPooling(_NoPoolingModel):
    def fit(self, X, y=None, groups=None, sample_weight=None):
        """Fit one model per group by maximum likelihood.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            With ``groups``, ``X`` may have no columns; with ``formula``, a
            data frame of the raw columns it names.
        y : array-like of shape (n_samples,), default=None
            The target (see the class); with ``formula``, None reads it from
            the formula's left-hand side.
        groups : array-like of shape (n_samples,)
            Group labels of a single grouping factor.  None fits the
            complete-pooling model (with a warning).
        sample_weight : array-like of shape (n_samples,), default=None
            Trials of a proportion target (binomial), exposures of a rate
            (Poisson).

        Returns
        -------
        self
        """
        X, y, names, slopes, labels, levels, complete = self._fit_data(X, y, groups)
        y = self._check_target(y)
        weights = self._weights(sample_weight, complete, len(y))
        return self._fit_groups(X, y, weights, names, slopes, labels, levels)


class CompletePoolingLogisticRegression(_BinaryBaseline, _GeneralizedCompletePooling):
    """Logistic regression that ignores the groups (complete pooling).

    R's ``glm(y ~ x, family = binomial)``: the limit of
    :class:`MixedLogisticRegression` whose random-effect variances are zero.
    It takes ``groups`` (checked, then ignored) so that it drops into any
    workflow built for the mixed model.

    Parameters
    ----------
    formula : str, default=None
        A mixed model's formula in lme4's syntax; ``X`` is then a data
        frame of raw columns.  Only its fixed part is fitted (its bar terms
        are ignored).  ``fit_intercept`` and ``group_column`` must then stay
        at their defaults.
    fit_intercept : bool, default=True
    link : {"logit", "probit", "cloglog"}, default="logit"
    max_iter : int, default=100
        Iterations of IRLS (R's ``glm.fit``, step halving included).
    group_column : str or list of str, default=None
        Column(s) of a DataFrame ``X`` holding the (ignored) group labels.

    Attributes
    ----------
    classes_ : ndarray of shape (2,)
    intercept_ : float
    coef_ : ndarray of shape (n_columns,)
        On the link scale (log-odds for ``"logit"``); 0 for columns dropped
        as linearly dependent.
    deviance_ : float
        The residual deviance (R's ``deviance(glm)``).
    converged_ : bool
    n_iter_ : int
    n_features_in_ : int
    feature_names_in_ : ndarray of str
        Only when ``X`` has string column names.

    See Also
    --------
    NoPoolingLogisticRegression : One logistic regression per group.
    MixedLogisticRegression : Partial pooling, between the two.

    Notes
    -----
    ``sample_weight`` is glmer's ``weights``: with 0/1 targets a weight of 2
    is the row twice; with a proportion target ``y = successes / trials``
    and ``sample_weight = trials``, R's ``cbind(successes, failures)``.

    Examples
    --------
    >>> import numpy as np
    >>> from skmixed import CompletePoolingLogisticRegression
    >>> rng = np.random.default_rng(0)
    >>> X = rng.normal(size=(500, 1))
    >>> y = rng.random(500) < 1 / (1 + np.exp(-(0.5 + X[:, 0])))
    >>> model = CompletePoolingLogisticRegression().fit(X, y)
    >>> model.coef_.round(1), model.predict_proba(X[:2]).shape
    (array([1.]), (2, 2))
    """

    _parameter_constraints = {
        **_COMPLETE_CONSTRAINTS,
        "link": [Options("logit", "probit", "cloglog")],
    }

    def __init__(
        self,
        *,
        formula=None,
        fit_intercept=True,
        link="logit",
        max_iter=100,
        group_column=None,
    ):
        self.formula = formula
        self.fit_intercept = fit_intercept
        self.link = link
        self.max_iter = max_iter
        self.group_column = group_column


class CompletePoolingPoissonRegressor(_CountBaseline, _GeneralizedCompletePooling):
    """Poisson regression that ignores the groups (complete pooling).

    R's ``glm(y ~ x, family = poisson)``: the limit of
    :class:`MixedPoissonRegressor` whose random-effect variances are zero;
    ``groups`` is checked, then ignored.

    Parameters
    ----------
    formula : str, default=None
        As for :class:`CompletePoolingLogisticRegression`.
    fit_intercept : bool, default=True
    link : {"log"}, default="log"
    max_iter : int, default=100
    group_column : str or list of str, default=None

    Attributes
    ----------
    intercept_ : float
    coef_ : ndarray of shape (n_columns,)
        On the log scale.
    deviance_ : float
    converged_ : bool
    n_iter_ : int
    n_features_in_ : int
    feature_names_in_ : ndarray of str

    See Also
    --------
    NoPoolingPoissonRegressor : One Poisson regression per group.
    MixedPoissonRegressor : Partial pooling, between the two.

    Notes
    -----
    ``sample_weight`` is an exposure when ``y`` is a rate (scikit-learn's
    ``PoissonRegressor`` convention): ``y = counts / exposure`` with
    ``sample_weight = exposure`` is R's ``offset(log(exposure))``.

    Examples
    --------
    >>> import numpy as np
    >>> from skmixed import CompletePoolingPoissonRegressor
    >>> rng = np.random.default_rng(0)
    >>> X = rng.normal(size=(500, 1))
    >>> y = rng.poisson(np.exp(1 + 0.3 * X[:, 0]))
    >>> model = CompletePoolingPoissonRegressor().fit(X, y)
    >>> round(model.intercept_, 1), model.coef_.round(1)
    (1.0, array([0.3]))
    """

    _parameter_constraints = {**_COMPLETE_CONSTRAINTS, "link": [Options("log")]}

    def __init__(
        self,
        *,
        formula=None,
        fit_intercept=True,
        link="log",
        max_iter=100,
        group_column=None,
    ):
        self.formula = formula
        self.fit_intercept = fit_intercept
        self.link = link
        self.max_iter = max_iter
        self.group_column = group_column


class NoPoolingLogisticRegression(_BinaryBaseline, _GeneralizedNoPooling):
    """A separate logistic regression per group, as fixed effects (no pooling).

    Every level of the grouping factor gets its own intercept, and its own
    slope for each column in ``group_slopes``; the other columns have one
    slope shared by all levels: R's ``glm(y ~ x + g, binomial)`` (or
    ``y ~ x * g``), the limit of :class:`MixedLogisticRegression` whose
    random-effect variances are infinite.

    Parameters
    ----------
    formula : str, default=None
        A mixed model's formula with one grouping factor, read as by
        :class:`NoPoolingRegressor`.
    group_slopes : list of str or int, str, int or None, default=None
        Columns of ``X`` whose slope differs by group.
    unseen : {"pooled", "error"}, default="pooled"
        Levels not seen in ``fit`` (and rows without ``groups``): the
        complete-pooling model's prediction, or a ValueError.
    link : {"logit", "probit", "cloglog"}, default="logit"
    max_iter : int, default=100
        Iterations of IRLS.
    group_column : str or list of str, default=None
        Column of a DataFrame ``X`` holding the group labels.

    Attributes
    ----------
    classes_ : ndarray of shape (2,)
    group_coef_ : DataFrame of shape (n_levels, 1 + n_columns)
        Each level's intercept and slopes on the link scale.  A group whose
        outcomes are all alike has an intercept of large magnitude (its
        maximum-likelihood estimate is infinite; see Notes).
    intercept_, coef_ : float, ndarray
        Means of the levels' coefficients.
    pooled_intercept_, pooled_coef_ : float, ndarray
        The complete-pooling model, for unseen levels.
    groups_, n_groups_ : dict
    deviance_, converged_, n_iter_ :
        Of the per-group fit.
    n_features_in_ : int
    feature_names_in_ : ndarray of str

    See Also
    --------
    CompletePoolingLogisticRegression : One logistic regression for everyone.
    MixedLogisticRegression : Partial pooling, between the two.

    Notes
    -----
    A group whose outcomes are all 0 (or all 1) has no finite estimate: IRLS
    stops where the deviance stops changing, as R's ``glm`` does, with
    fitted probabilities numerically 0 (1) and a warning.  New rows of such
    a group are predicted with near certainty, which a log loss punishes:
    the overfitting that partial pooling avoids.

    Examples
    --------
    >>> import numpy as np
    >>> from skmixed import NoPoolingLogisticRegression
    >>> rng = np.random.default_rng(0)
    >>> groups = np.repeat(np.arange(5), 100)
    >>> X = rng.normal(size=(500, 1))
    >>> eta = np.array([-1.0, -0.5, 0.0, 0.5, 1.0])[groups] + X[:, 0]
    >>> y = rng.random(500) < 1 / (1 + np.exp(-eta))
    >>> model = NoPoolingLogisticRegression().fit(X, y, groups=groups)
    >>> model.group_coef_.shape
    (5, 2)
    >>> model.predict_proba(X[:2], groups=[0, 99]).shape
    (2, 2)
    """

    _parameter_constraints = {
        **_NO_POOLING_CONSTRAINTS,
        "link": [Options("logit", "probit", "cloglog")],
    }

    def __init__(
        self,
        *,
        formula=None,
        group_slopes=None,
        unseen="pooled",
        link="logit",
        max_iter=100,
        group_column=None,
    ):
        self.formula = formula
        self.group_slopes = group_slopes
        self.unseen = unseen
        self.link = link
        self.max_iter = max_iter
        self.group_column = group_column


class NoPoolingPoissonRegressor(_CountBaseline, _GeneralizedNoPooling):
    """A separate Poisson regression per group, as fixed effects (no pooling).

    R's ``glm(y ~ x + g, poisson)`` (or ``y ~ x * g``): the limit of
    :class:`MixedPoissonRegressor` whose random-effect variances are
    infinite.  A group whose counts are all 0 has no finite estimate (its
    fitted mean is numerically 0, with a warning).

    Parameters
    ----------
    formula, group_slopes, unseen, max_iter, group_column :
        As for :class:`NoPoolingLogisticRegression`.
    link : {"log"}, default="log"

    Attributes
    ----------
    group_coef_ : DataFrame of shape (n_levels, 1 + n_columns)
        Each level's intercept and slopes on the log scale.
    intercept_, coef_, pooled_intercept_, pooled_coef_, groups_, n_groups_,
    deviance_, converged_, n_iter_, n_features_in_, feature_names_in_ :
        As for :class:`NoPoolingLogisticRegression`.

    See Also
    --------
    CompletePoolingPoissonRegressor : One Poisson regression for everyone.
    MixedPoissonRegressor : Partial pooling, between the two.

    Examples
    --------
    >>> import numpy as np
    >>> from skmixed import NoPoolingPoissonRegressor
    >>> rng = np.random.default_rng(0)
    >>> groups = np.repeat(np.arange(4), 200)
    >>> X = rng.normal(size=(800, 1))
    >>> y = rng.poisson(np.exp(np.array([0.0, 0.5, 1.0, 1.5])[groups] + 0.3 * X[:, 0]))
    >>> model = NoPoolingPoissonRegressor().fit(X, y, groups=groups)
    >>> model.group_coef_["Intercept"].round(1).tolist()
    [0.0, 0.5, 1.0, 1.5]
    """

    _parameter_constraints = {**_NO_POOLING_CONSTRAINTS, "link": [Options("log")]}

    def __init__(
        self,
        *,
        formula=None,
        group_slopes=None,
        unseen="pooled",
        link="log",
        max_iter=100,
        group_column=None,
    ):
        self.formula = formula
        self.group_slopes = group_slopes
        self.unseen = unseen
        self.link = link
        self.max_iter = max_iter
        self.group_column = group_column
