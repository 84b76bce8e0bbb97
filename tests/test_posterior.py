"""Posterior simulation (arm::sim) and prediction intervals.

The joint draws of (beta, b) are checked against the dense formula
``Cov(u, beta | sigma) = sigma^2 A^{-1}`` with ``A`` the penalised
cross-product matrix built from the rows, and the prediction intervals by
their coverage of new observations simulated from known parameters.
"""

import warnings

import numpy as np
import pandas as pd
import pytest
from scipy import linalg

from skmixed import MixedLinearRegressor
from skmixed.inference import PosteriorSample, predict_interval, sample_posterior
from skmixed.inference._simulate import relative_factors

from .conftest import load_case

N_DRAWS = 4000


def fit(case, method="REML"):
    model = MixedLinearRegressor(**case.estimator_params(method))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return model.fit(case.X, case.y, groups=case.groups)


def dense_posterior(case, model):
    """Mean and covariance of (b stacked by factor and level, beta), densely."""
    n = len(case.y)
    X1 = np.column_stack([np.ones(n), case.X.to_numpy(dtype=float)])
    Ts = relative_factors(model)
    Zs, lambdas, b_hat = [], [], []
    for f in model._factors:
        labels = case.groups if len(model._factors) == 1 else case.groups[f.name]
        codes = pd.Index(f.levels).get_indexer(labels)
        columns = [np.ones(n)] + [X1[:, 1 + j] for j in f.slope_columns]
        Z = np.zeros((n, f.n_levels * f.n_terms))
        for t, column in enumerate(columns[: f.n_terms]):
            Z[np.arange(n), codes * f.n_terms + t] = column
        Zs.append(Z)
        lambdas.append(np.kron(np.eye(f.n_levels), Ts[f.name]))
        b_hat.append(model.random_effects_[f.name].to_numpy().ravel())
    Z, Lam = np.hstack(Zs), linalg.block_diag(*lambdas)
    ZL = Z @ Lam
    A = np.block([[ZL.T @ ZL + np.eye(ZL.shape[1]), ZL.T @ X1], [X1.T @ ZL, X1.T @ X1]])
    p = X1.shape[1]
    to_b = linalg.block_diag(Lam, np.eye(p))
    dof = n - p
    sigma2 = model.sigma_**2 * dof / (dof - 2)  # E[sigma*^2], scaled inverse chi^2
    cov = sigma2 * to_b @ np.linalg.inv(A) @ to_b.T
    mean = np.concatenate(b_hat + [model.fixed_effects_.to_numpy()])
    return mean, cov


def stacked_draws(model, sample):
    parts = [
        sample.random_effects[f.name].reshape(len(sample.sigma), -1)
        for f in model._factors
    ]
    return np.hstack(parts + [sample.fixed_effects.to_numpy()])


@pytest.mark.parametrize("name", ["sleepstudy", "penicillin"])
def test_joint_draws_match_the_dense_posterior(name):
    # sleepstudy: one factor, correlated slope; penicillin: two crossed
    # factors (the noise then also enters the second block of the factor).
    case = load_case(name)
    model = fit(case)
    sample = sample_posterior(model, N_DRAWS, random_state=0)
    draws = stacked_draws(model, sample)
    mean, cov = dense_posterior(case, model)
    sd = np.sqrt(np.diag(cov))
    assert np.all(np.abs(draws.mean(axis=0) - mean) < 4.5 * sd / np.sqrt(N_DRAWS))
    np.testing.assert_allclose(draws.std(axis=0), sd, rtol=0.06)
    corr = cov / np.outer(sd, sd)
    np.testing.assert_allclose(np.corrcoef(draws.T), corr, atol=0.06)


def test_moments_against_the_fitted_attributes():
    model = fit(load_case("sleepstudy_intercept"))
    sample = model.sample_posterior(n_draws=N_DRAWS, random_state=1)
    assert isinstance(sample, PosteriorSample)
    assert list(sample.fixed_effects.columns) == list(model.fixed_effects_.index)
    n, p = len(model.fitted_values_), len(model.fixed_effects_)
    inflation = np.sqrt((n - p) / (n - p - 2))  # E[sigma*^2] / sigma_hat^2
    se = np.sqrt(np.diag(model.fixed_effects_cov_)) * inflation
    np.testing.assert_allclose(sample.fixed_effects.std(), se, rtol=0.06)
    error = np.abs(sample.fixed_effects.mean() - model.fixed_effects_)
    assert np.all(error < 4 * se / np.sqrt(N_DRAWS))
    assert np.mean(sample.sigma**2) == pytest.approx(
        model.sigma_**2 * inflation**2, rel=0.03
    )
    # The random effects: centred on the BLUPs; spread at least lme4's
    # conditional SD (which holds beta fixed), here not much more.
    b = sample.random_effects["Subject"][:, :, 0]
    condsd = model.random_effects_cond_sd_["Subject"]["Intercept"].to_numpy()
    assert b.shape == (N_DRAWS, 18)
    error = np.abs(b.mean(axis=0) - model.random_effects_["Subject"]["Intercept"])
    assert np.all(error < 4 * b.std(axis=0) / np.sqrt(N_DRAWS))
    ratio = b.std(axis=0) / condsd
    assert np.all(ratio > 0.95) and np.all(ratio < 1.5)


def test_reproducible_and_without_random_effects():
    model = fit(load_case("dyestuff"))
    a = sample_posterior(model, 10, random_state=3)
    b = sample_posterior(model, 10, random_state=3)
    pd.testing.assert_frame_equal(a.fixed_effects, b.fixed_effects)
    np.testing.assert_array_equal(a.random_effects["Batch"], b.random_effects["Batch"])
    rng = np.random.default_rng(0)
    X = rng.normal(size=(30, 1))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ols = MixedLinearRegressor().fit(X, X[:, 0] + rng.normal(size=30))
    sample = sample_posterior(ols, 2000, random_state=0)
    assert sample.random_effects == {}
    np.testing.assert_allclose(
        sample.fixed_effects.std(),
        np.sqrt(np.diag(ols.fixed_effects_cov_) * 28 / 26),
        rtol=0.07,
    )


# ---------------------------------------------------------------------------
# Prediction intervals
# ---------------------------------------------------------------------------


TRUTH = dict(m=40, per=8, sd_b=1.0, sigma=0.8)


def simulate_known(rng, effects, groups):
    x = rng.normal(size=len(groups))
    noise = rng.normal(scale=TRUTH["sigma"], size=len(groups))
    return pd.DataFrame({"x": x}), 1.0 + 0.5 * x + effects[groups] + noise


def known_data(seed):
    """A fit to data from known parameters; new rows of seen and new groups."""
    rng = np.random.default_rng(seed)
    m, per = TRUTH["m"], TRUTH["per"]
    b = rng.normal(scale=TRUTH["sd_b"], size=m)
    groups = np.repeat(np.arange(m), per)
    X, y = simulate_known(rng, b, groups)
    model = MixedLinearRegressor().fit(X, y, groups=groups)
    seen = rng.integers(m, size=1000)
    X_seen, y_seen = simulate_known(rng, b, seen)
    new = np.arange(1000) % 250
    X_new, y_new = simulate_known(rng, rng.normal(scale=TRUTH["sd_b"], size=250), new)
    return model, (X_seen, y_seen, seen), (X_new, y_new, 1000 + new)


@pytest.fixture(scope="module")
def known():
    return known_data(42)


def coverage(intervals, y):
    return np.mean((intervals["lower"] <= y) & (y <= intervals["upper"]))


@pytest.mark.filterwarnings("ignore::skmixed.exceptions.UnseenLevelsWarning")
def test_prediction_intervals_cover_new_observations():
    # Pooled over a few data sets, since the coverage given one fit varies
    # with its estimates.  New groups cover slightly less than 95%: theta is
    # held at its estimate (as arm::sim and merTools do), and the REML
    # standard deviation of few groups tends to be low.
    hits = {"seen": [], "new": []}
    for seed in range(4):
        model, (X_s, y_s, seen), (X_n, y_n, new) = known_data(seed)
        for key, X, y, groups in [("seen", X_s, y_s, seen), ("new", X_n, y_n, new)]:
            intervals = model.predict_interval(X, groups, n_draws=1000, random_state=0)
            np.testing.assert_allclose(intervals["fit"], model.predict(X, groups))
            hits[key].append(coverage(intervals, y))
    assert 0.935 <= np.mean(hits["seen"]) <= 0.965
    assert 0.915 <= np.mean(hits["new"]) <= 0.965


def test_included_sources_of_uncertainty(known):
    model, (X_seen, y_seen, seen), _ = known
    rows = slice(0, 200)
    full = predict_interval(
        model, X_seen[rows], seen[rows], n_draws=500, random_state=1
    )
    mean_only = predict_interval(
        model,
        X_seen[rows],
        seen[rows],
        n_draws=500,
        include=("fixed", "random"),
        random_state=1,
    )
    assert coverage(mean_only, y_seen[rows]) < 0.6  # no residual noise: too narrow
    assert np.all(
        mean_only["upper"] - mean_only["lower"] < full["upper"] - full["lower"]
    )
    nothing = predict_interval(model, X_seen[:5], seen[:5], include=(), n_draws=20)
    np.testing.assert_allclose(nothing["lower"], nothing["fit"])
    np.testing.assert_allclose(nothing["upper"], nothing["fit"])
    # Without groups every row is a new level: wider than for seen levels.
    population = predict_interval(model, X_seen[rows], n_draws=500, random_state=1)
    assert np.mean(population["upper"] - population["lower"]) > np.mean(
        full["upper"] - full["lower"]
    )


@pytest.mark.parametrize(
    "kwargs, error, match",
    [
        ({"include": ("fixed", "noise")}, ValueError, "include"),
        ({"level": 0}, ValueError, "level"),
        ({"n_draws": 0}, ValueError, "n_draws"),
        ({"n_draws": 2.0}, TypeError, "n_draws"),
    ],
)
def test_errors(known, kwargs, error, match):
    model, (X_seen, _, seen), _ = known
    with pytest.raises(error, match=match):
        predict_interval(model, X_seen[:2], seen[:2], **kwargs)
