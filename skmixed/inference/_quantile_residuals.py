"""Randomized quantile residuals of a generalised mixed model (DHARMa's).

For a continuous response ``u = F(y)`` is uniform when ``F`` is the model's
distribution function of ``y``.  For counts and binary outcomes (Dunn and
Smyth, 1996) ``u`` is drawn uniformly between ``F(y - 1)`` and ``F(y)``:
again exactly uniform under the model, whatever the mean, so that one
reference (the uniform) judges every row, where Pearson or deviance
residuals of 0/1 data fall on two curves.  R's DHARMa gets the same
residuals by simulating from the fitted model; here the distribution
function is evaluated exactly instead.

Each row's distribution is conditional on the predicted random effects of
the levels it names (``random_effects="all"``); the random effects a row
does not know (an unseen level, a factor left out, or every factor with
``random_effects="none"``, DHARMa's default unconditional residuals) are
integrated over their normal distribution by Gauss-Hermite quadrature.
"""

import numpy as np
from scipy import stats

from .._pirls import random_part
from ._simulate import seed_sequence

# Gauss-Hermite nodes of the average over unknown random effects: exact to
# about 1e-10 for the distribution functions at the variances met in practice.
N_NODES = 40
# How far from a whole number a count (or number of trials) may be.
COUNT_TOLERANCE = 1e-6


def quantile_residuals(
    model,
    X=None,
    y=None,
    groups=None,
    *,
    sample_weight=None,
    offset=None,
    random_effects="all",
    random_state=None,
):
    """Randomized quantile residuals (Dunn and Smyth, 1996), uniform under the model.

    Row ``i`` gets ``u_i = F_i(y_i - 1) + V_i (F_i(y_i) - F_i(y_i - 1))``
    with ``F_i`` the fitted distribution function of its count (successes
    of a binomial, events of a Poisson row) and ``V_i`` uniform on (0, 1):
    under the model the ``u_i`` are uniform on (0, 1), as R's DHARMa
    residuals (which simulate ``F_i`` instead of evaluating it).  Too many
    residuals near 0 and 1 mean overdispersion, a trend against the fitted
    values a misspecified mean.

    Parameters
    ----------
    model : MixedLogisticRegression or MixedPoissonRegressor
        A fitted generalised mixed model.
    X : array-like of shape (n_samples, n_features), default=None
        Rows to compute the residuals of, as for the model's ``predict``;
        None: the training rows (those of positive weight), with ``y``,
        ``groups``, ``sample_weight`` and ``offset`` those of ``fit``.
    y : array-like of shape (n_samples,), default=None
        Their outcomes: labels (or proportions of ``sample_weight`` trials)
        for a classifier, counts (or rates of exposure ``sample_weight``)
        for a Poisson model.  Required with ``X``.
    groups : array-like, default=None
        Their group labels, as for ``predict``.
    sample_weight : array-like of shape (n_samples,), default=None
        Trials (binomial proportions) or exposures (Poisson rates), as in
        ``fit``; None is 1.
    offset : array-like of shape (n_samples,), default=None
        As for ``predict``.
    random_effects : "all", "none" or list of str, default="all"
        Factors whose predicted random effects the distributions are
        conditional on; the others (and unseen levels) are integrated over.
        ``"none"`` gives DHARMa's default, unconditional residuals.
    random_state : int, Generator, RandomState or None, default=None
        The uniform draws ``V_i``.

    Returns
    -------
    residuals : ndarray of shape (n_samples,)
        In (0, 1).

    Notes
    -----
    The residuals are uniform for each row; rows of one group share its
    random effect, so unconditional residuals (``"none"``) are correlated
    within groups, and a test of uniformity that assumes independence (a
    Kolmogorov-Smirnov test) rejects too often.  Conditional residuals
    (``"all"``) are nearly independent but use the estimated random
    effects: uniform up to their estimation error.

    References
    ----------
    Dunn, P. K. and Smyth, G. K. (1996). Randomized quantile residuals.
    Journal of Computational and Graphical Statistics 5, 236-244.

    Examples
    --------
    >>> import numpy as np
    >>> from skmixed import MixedPoissonRegressor
    >>> from skmixed.inference import quantile_residuals
    >>> rng = np.random.default_rng(0)
    >>> groups = np.repeat(np.arange(20), 10)
    >>> x = rng.normal(size=(200, 1))
    >>> y = rng.poisson(np.exp(1 + 0.3 * x[:, 0] + rng.normal(0, .5, 20)[groups]))
    >>> model = MixedPoissonRegressor().fit(x, y, groups=groups)
    >>> u = quantile_residuals(model, random_state=0)
    >>> u.shape, bool(np.all((u > 0) & (u < 1)))
    ((200,), True)
    """
    lower, upper, _ = distribution_bounds(
        model, X, y, groups, sample_weight, offset, random_effects
    )
    rng = np.random.default_rng(seed_sequence(random_state))
    return lower + rng.random(lower.shape[0]) * (upper - lower)


def distribution_bounds(model, X, y, groups, sample_weight, offset, random_effects):
    """``F(y - 1)``, ``F(y)`` and the fitted mean of every row.

    The mean is on the response scale (a probability, an expected rate),
    conditional on the random effects the rows know.
    """
    _check_generalized(model)
    if X is None:
        if y is not None or groups is not None:
            raise ValueError(
                "quantile_residuals takes y and groups with X; without X it "
                "uses the training rows (and their y and groups)."
            )
        eta, variance, y, weights = _training_rows(model, random_effects)
    else:
        if y is None:
            raise ValueError("quantile_residuals needs the outcomes y of the rows X.")
        eta, variance = model._linear_predictor(X, groups, random_effects, offset)
        y = _outcomes(model, y, eta.shape[0])
        weights = _weights(sample_weight, eta.shape[0])
    complete = ~np.isnan(eta)  # a formula's rows missing a value
    if not complete.all():
        raise ValueError(
            f"{int((~complete).sum())} row(s) of X lack a value the formula uses; "
            "drop them first."
        )
    lower, upper = _averaged_cdf(model._family, y, weights, eta, variance)
    mean = model._family.link.inverse(eta)
    return lower, upper, mean


def _check_generalized(model):
    if not hasattr(model, "_family"):
        raise TypeError(
            "quantile residuals need a fitted MixedLogisticRegression or "
            f"MixedPoissonRegressor; got {type(model).__name__}."
        )


def _training_rows(model, random_effects):
    """The fit's rows: linear predictor, unknown variance, outcome, weights."""
    rows = model._rows
    included = {f.name for f in model._included_factors(random_effects)}
    eta = np.array(model.fitted_linear_predictor_, dtype=float)
    variance = np.zeros(rows.n)
    for codes, Z, f in zip(rows.codes, rows.Zs, rows.factors):
        if f.name in included:
            continue
        b = model.random_effects_[f.name].to_numpy()
        part = [np.zeros_like(b)] * len(rows.factors)
        part[rows.factors.index(f)] = b
        eta -= random_part(rows, part)
        Zf = np.column_stack(
            [np.ones(rows.n) if z is None else np.asarray(z, float) for z in Z]
        )
        Sigma = model.random_effects_cov_[f.name].to_numpy()
        variance += np.einsum("ni,ij,nj->n", Zf, Sigma, Zf)
    return eta, variance, rows.y, rows.weights


def _outcomes(model, y, n):
    """New outcomes on the fit's scale: 0/1 (or proportions), rates."""
    y = np.asarray(y.to_numpy() if hasattr(y, "to_numpy") else y)
    if y.ndim != 1 or y.shape[0] != n:
        raise ValueError(f"y must have shape ({n},); got {y.shape}.")
    if not hasattr(model, "classes_"):
        return np.asarray(model._check_target(y), dtype=float)
    if getattr(model, "_proportions", False):
        y = y.astype(float)
        if np.any(~np.isfinite(y)) or np.any((y < 0) | (y > 1)):
            raise ValueError("y must hold proportions in [0, 1], as in fit.")
        return y
    unknown = ~np.isin(y, model.classes_)
    if unknown.any():
        raise ValueError(
            f"y has label(s) {list(np.unique(y[unknown]))[:5]} not among the "
            f"model's classes_ {list(model.classes_)}."
        )
    return (y == model.classes_[1]).astype(float)


def _weights(sample_weight, n):
    if sample_weight is None:
        return np.ones(n)
    weights = np.asarray(sample_weight, dtype=float)
    if weights.shape != (n,) or np.any(~np.isfinite(weights)) or np.any(weights <= 0):
        raise ValueError(
            f"sample_weight must be {n} positive finite numbers (trials or exposures)."
        )
    return weights


def _averaged_cdf(family, y, weights, eta, variance):
    """``F(k - 1)`` and ``F(k)``, averaged over the unknown random effects."""
    counts = _whole(weights * y, "counts (sample_weight * y)")
    variance = np.where(np.isfinite(variance), variance, 0.0)
    unknown = variance > 0
    lower, upper = _cdf(family, counts, weights, eta)
    if unknown.any():
        nodes, w = np.polynomial.hermite_e.hermegauss(N_NODES)
        w = w / w.sum()
        sd = np.sqrt(variance[unknown])
        eta_nodes = eta[unknown, None] + sd[:, None] * nodes[None, :]
        lo, up = _cdf(
            family,
            counts[unknown, None],
            weights[unknown, None],
            eta_nodes,
        )
        lower[unknown], upper[unknown] = lo @ w, up @ w
    return lower, upper


def _cdf(family, counts, weights, eta):
    """The count's distribution function at ``counts - 1`` and ``counts``."""
    mu = family.link.inverse(eta)
    if family.name == "binomial":
        trials = _whole(weights, "numbers of trials (sample_weight)")
        dist = stats.binom(trials, np.clip(mu, 0.0, 1.0))
    else:
        dist = stats.poisson(weights * mu)
    return dist.cdf(counts - 1), dist.cdf(counts)


def _whole(values, what):
    rounded = np.round(values)
    if np.any(np.abs(values - rounded) > COUNT_TOLERANCE * np.maximum(1.0, values)):
        raise ValueError(
            f"quantile residuals need whole {what}: the distribution of a "
            "count is defined at whole numbers only."
        )
    return rounded
