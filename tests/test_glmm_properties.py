"""Properties of the GLMM estimators on simulated data (hypothesis).

Exact properties (invariance to row order and level labels; the Laplace
approximation is adaptive quadrature with one point), limits (quadrature
converges to the integral computed by brute force; a huge random-effect
variance is no pooling) and parameter recovery with a tolerance from the
estimated standard errors.
"""

import warnings

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st
from numpy.testing import assert_allclose
from scipy import special, stats

from skmixed import MixedLogisticRegression, MixedPoissonRegressor
from skmixed._glmm_fit import fit_glmm
from skmixed._pirls import agq_deviance, laplace_deviance, pirls
from tests._glmm_data import simulate_glmm

SETTINGS = settings(
    max_examples=6,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
    derandomize=True,
)
seeds = st.integers(0, 2**31 - 1)
# (family, link) pairs of the two estimators
models = st.sampled_from(
    [
        ("binomial", "logit"),
        ("binomial", "probit"),
        ("binomial", "cloglog"),
        ("poisson", "log"),
    ]
)


def _estimator(family, link, **params):
    if family == "binomial":
        return MixedLogisticRegression(link=link, **params)
    return MixedPoissonRegressor(**params)


def _fit(family, link, X, y, groups, **kwargs):
    params = kwargs.pop("params", {})
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # singular fits, small data
        return _estimator(family, link, **params).fit(X, y, groups=groups, **kwargs)


def _small(seed, family, link, n_groups=8, group_size=8):
    beta = (-0.3, 0.8, -0.5) if family == "binomial" else (0.4, 0.4, -0.3)
    return simulate_glmm(
        seed, family, n_groups, group_size, beta=beta, re_sd=(0.9,), link=link
    )


# --------------------------------------------------------------------------
# Invariances
# --------------------------------------------------------------------------


@SETTINGS
@given(seed=seeds, model=models)
def test_invariant_to_row_order_and_level_labels(seed, model):
    family, link = model
    X, y, groups = _small(seed, family, link)
    reference = _fit(family, link, X, y, groups)
    rng = np.random.default_rng(seed)
    order = rng.permutation(y.size)
    # New labels in a different sorted order: g000 -> "L<reversed number>".
    relabel = {g: f"L{99 - int(g[1:]):02d}" for g in groups.unique()}
    new_groups = groups.map(relabel).iloc[order].reset_index(drop=True)
    moved = _fit(
        family, link, X.iloc[order].reset_index(drop=True), y[order], new_groups
    )
    assert moved.loglik_ == pytest.approx(reference.loglik_, rel=1e-9, abs=1e-9)
    assert_allclose(moved.fixed_effects_, reference.fixed_effects_, atol=1e-4)
    assert_allclose(moved.theta_, reference.theta_, atol=1e-4)
    modes = reference.random_effects_["g"].rename(index=relabel)
    assert_allclose(moved.random_effects_["g"].loc[modes.index], modes, atol=1e-4)
    # The fitted values follow their rows.
    assert_allclose(moved.fitted_values_, reference.fitted_values_[order], atol=1e-5)


# --------------------------------------------------------------------------
# Laplace and adaptive Gauss-Hermite quadrature
# --------------------------------------------------------------------------


def _optimum(model):
    """The model's rows and its optimum in the scaled units of the fit."""
    rows = model._rows
    n_points = model.n_quadrature_points
    return rows, fit_glmm(rows, np.zeros(rows.X.shape[1]), n_points)


def _rows_with_weights_and_offset(seed, family, link):
    """A fitted model, with trials (binomial) or an offset (Poisson)."""
    rng = np.random.default_rng(seed)
    X, y, groups = _small(seed, family, link)
    if family == "binomial":
        trials = rng.integers(1, 6, y.size).astype(float)
        y = rng.binomial(trials.astype(int), 0.3 + 0.4 * y) / trials
        model = _fit(family, link, X, y, groups, sample_weight=trials)
    else:
        offset = rng.normal(0.0, 0.3, y.size)
        model = _fit(family, link, X, y, groups, offset=offset)
    return model


def _exact_deviance(rows, modes):
    """-2 log of the marginal likelihood by brute force (trapezoidal rule).

    The per-row likelihood is scipy's binomial or Poisson pmf (constants
    included); each level's integral runs over a fine grid around its mode.
    """
    lam = float(modes.fact.T[0][0, 0])
    (codes,) = rows.codes
    u = modes.u[0][:, 0]
    fixed = modes.eta - lam * u[codes]
    z = np.linspace(-10.0, 10.0, 2001)
    total = 0.0
    for level in range(u.size):
        mask = codes == level
        eta = fixed[mask, None] + lam * (u[level] + 0.5 * z[None, :])
        mu = rows.family.link.inverse(eta)
        w, y = rows.weights[mask, None], rows.y[mask, None]
        if rows.family.name == "binomial":
            logp = stats.binom.logpmf(np.round(w * y), w, mu)
        else:
            logp = stats.poisson.logpmf(np.round(w * y), w * mu)
        b = u[level] + 0.5 * z
        log_integrand = logp.sum(axis=0) + stats.norm.logpdf(b)
        top = log_integrand.max()
        integral = np.trapezoid(np.exp(log_integrand - top), b)
        total += top + np.log(integral)
    return -2.0 * total


@SETTINGS
@given(
    seed=seeds, model=models, log_theta=st.floats(-2.0, 1.0), shift=st.floats(-0.5, 0.5)
)
def test_laplace_is_quadrature_with_one_point(seed, model, log_theta, shift):
    family, link = model
    fitted = _rows_with_weights_and_offset(seed, family, link)
    rows, optimum = _optimum(fitted)
    modes = pirls(rows, np.array([np.exp(log_theta)]), optimum.beta + shift)
    laplace = laplace_deviance(modes)
    assert agq_deviance(rows, modes, 1) == pytest.approx(laplace, rel=1e-12)
    # ... and the estimator's criterion at its optimum is that value.
    at_optimum = pirls(rows, optimum.theta, optimum.beta)
    assert laplace_deviance(at_optimum) == pytest.approx(fitted.deviance_, rel=1e-10)
    assert agq_deviance(rows, at_optimum, 1) == pytest.approx(
        fitted.deviance_, rel=1e-10
    )


@SETTINGS
@given(seed=seeds, model=models, log_theta=st.floats(-1.0, 1.0))
def test_quadrature_converges_to_the_integral(seed, model, log_theta):
    family, link = model
    fitted = _rows_with_weights_and_offset(seed, family, link)
    rows, optimum = _optimum(fitted)
    modes = pirls(rows, np.array([np.exp(log_theta)]), optimum.beta)
    exact = _exact_deviance(rows, modes)  # our deviance omits no constant
    error = {k: abs(agq_deviance(rows, modes, k) - exact) for k in (1, 3, 5, 9, 15, 25)}
    assert error[25] < 1e-7 * abs(exact) + 1e-8, error
    # Each rule about twice as fine is closer (to the brute force's 1e-8).
    floor = 1e-8
    assert error[5] <= error[1] + floor, error
    assert error[9] <= error[3] + floor, error
    assert error[15] <= error[5] + floor, error
    assert error[25] <= error[9] + floor, error
    assert error[1] > 1e3 * error[25] or error[1] < 1e-6, error  # it does move


def test_quadrature_estimator_on_one_grouping_factor():
    """n_quadrature_points from 1 to 25: logliks converge, 25 is the integral."""
    X, y, groups = _small(11, "binomial", "logit", n_groups=12, group_size=6)
    logliks = []
    for k in (1, 3, 9, 25):
        logliks.append(
            _fit(
                "binomial", "logit", X, y, groups, params=dict(n_quadrature_points=k)
            ).loglik_
        )
    distance = np.abs(np.array(logliks[:-1]) - logliks[-1])
    assert np.all(np.diff(distance) < 0), distance
    model = _fit("binomial", "logit", X, y, groups, params=dict(n_quadrature_points=25))
    rows, optimum = _optimum(model)
    modes = pirls(rows, optimum.theta, optimum.beta)
    assert -0.5 * _exact_deviance(rows, modes) == pytest.approx(model.loglik_, rel=1e-9)


# --------------------------------------------------------------------------
# Known limits
# --------------------------------------------------------------------------


def _newton_glm(D, y, family="binomial", n_iter=50):
    """Unpenalised logistic / Poisson regression by Newton's method."""
    coef = np.zeros(D.shape[1])
    for _ in range(n_iter):
        eta = D @ coef
        mu = special.expit(eta) if family == "binomial" else np.exp(eta)
        var = mu * (1 - mu) if family == "binomial" else mu
        step = np.linalg.solve(D.T @ (var[:, None] * D), D.T @ (y - mu))
        coef += step
        if np.abs(step).max() < 1e-12:
            break
    return coef


@SETTINGS
@given(seed=seeds, family=st.sampled_from(["binomial", "poisson"]))
def test_huge_variance_is_no_pooling_at_fixed_theta(seed, family):
    """theta -> infinity: the modes are the group-dummy GLM's estimates."""
    link = "logit" if family == "binomial" else "log"
    X, y, groups = _small(seed, family, link, n_groups=6, group_size=30)
    by_group = pd.Series(y).groupby(groups.to_numpy())
    # No finite no-pooling estimate for a group of all 0s (or all 1s).
    assume(by_group.max().min() > 0)
    assume(family == "poisson" or by_group.min().max() < 1)
    fitted = _fit(family, link, X, y, groups)
    rows = fitted._rows
    modes = pirls(rows, np.array([1e4]), np.zeros(rows.X.shape[1]), joint=True)
    codes = pd.factorize(groups)[0]
    dummies = np.eye(codes.max() + 1)[codes]
    coef = _newton_glm(np.column_stack([dummies, X.to_numpy()]), y, family)
    eta = np.column_stack([dummies, X.to_numpy()]) @ coef
    assert_allclose(modes.eta, eta, atol=1e-5)


def _shrinkage(size, seed=5):
    """Median over groups and terms of |mixed - no pooling| / |no pooling - fixed|.

    Six groups of ``size`` rows with a wide spread of intercepts and slopes;
    per-group logistic fits against the fixed part plus conditional modes.
    """
    rng = np.random.default_rng(seed)
    n_groups = 6
    codes = np.repeat(np.arange(n_groups), size)
    x = rng.normal(size=codes.size)
    intercepts = np.linspace(-3.0, 3.0, n_groups)
    slopes = rng.permutation(np.linspace(-1.0, 3.0, n_groups))
    eta = intercepts[codes] + slopes[codes] * x
    y = (rng.random(codes.size) < special.expit(eta)).astype(int)
    groups = pd.Series([f"g{c}" for c in codes], name="g")
    model = _fit(
        "binomial", "logit", x[:, None], y, groups, params=dict(random_slopes=[0])
    )
    fixed = model.fixed_effects_.to_numpy()
    mixed = fixed + model.random_effects_["g"].loc[[f"g{k}" for k in range(6)]]
    no_pooling = np.array(
        [
            _newton_glm(np.column_stack([np.ones(size), x[codes == k]]), y[codes == k])
            for k in range(n_groups)
        ]
    )
    return np.median(np.abs(mixed.to_numpy() - no_pooling) / np.abs(no_pooling - fixed))


def test_lots_of_data_per_group_and_a_wide_spread_approach_no_pooling():
    """The shrinkage falls as se^2 / sigma^2, 1/n: 8 times the rows, ~1/8."""
    small, large = _shrinkage(300), _shrinkage(2400)
    assert large < 0.01
    assert large < small / 3


# --------------------------------------------------------------------------
# Recovery of the parameters
# --------------------------------------------------------------------------


@pytest.mark.parametrize("family", ["binomial", "poisson"])
def test_beta_and_sigma_recovered(family):
    """A moderately large simulated set: 120 groups of 25 (binomial) or 15."""
    beta = (-0.5, 1.0, -0.5) if family == "binomial" else (0.5, 0.4, -0.3)
    re_sd, re_corr = (1.0, 0.5), 0.4
    size = 25 if family == "binomial" else 15
    X, y, groups = simulate_glmm(
        2026, family, 120, size, beta=beta, re_sd=re_sd, re_corr=re_corr
    )
    model = _fit(
        family,
        "logit" if family == "binomial" else "log",
        X,
        y,
        groups,
        params=dict(random_slopes=["x1"]),
    )
    assert model.converged_
    se = np.sqrt(np.diag(model.fixed_effects_cov_.to_numpy()))
    z = (model.fixed_effects_.to_numpy() - np.array(beta)) / se
    assert np.all(np.abs(z) < 3.5), z
    Sigma = model.random_effects_cov_["g"].to_numpy()
    sd = np.sqrt(np.diag(Sigma))
    assert_allclose(sd, re_sd, rtol=0.3)
    assert abs(Sigma[0, 1] / (sd[0] * sd[1]) - re_corr) < 0.4
