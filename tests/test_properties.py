"""Property-based tests on simulated data (hypothesis).

Each property is exact (invariances, scaling, the dense likelihood) or has a
tolerance that follows from the sample size (parameter recovery), so a wrong
estimator fails them.
"""

import warnings

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from scipy import linalg

from skmixed import MixedLinearRegressor

from ._simulate import simulate

SETTINGS = settings(
    max_examples=12,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)
seeds = st.integers(0, 2**31 - 1)
methods = st.sampled_from(["reml", "ml"])


def fit(X, y, groups, **params):
    params.setdefault("random_slopes", ["x1"])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return MixedLinearRegressor(**params).fit(X, y, groups=groups)


@SETTINGS
@given(seed=seeds, n_groups=st.integers(40, 80), group_size=st.integers(10, 20))
def test_parameters_recovered(seed, n_groups, group_size):
    beta, re_sd, sigma = (1.0, 2.0, -1.0), (1.0, 0.5), 1.0
    X, y, g = simulate(seed, n_groups, group_size, beta, re_sd, 0.3, sigma)
    model = fit(X, y, g)
    se = np.sqrt(np.diag(model.fixed_effects_cov_.to_numpy()))
    # Fixed effects: within 4.5 standard errors (the model's own, checked
    # against lme4 elsewhere); a failure has probability about 1e-5.
    assert np.all(np.abs(model.fixed_effects_.to_numpy() - beta) < 4.5 * se)
    n = n_groups * group_size
    # sigma: its relative SE is about 1 / sqrt(2 (n - p - m q)).
    assert abs(model.sigma_ / sigma - 1) < 5 / np.sqrt(2 * (n - 3 - 2 * n_groups))
    # Random-effect SDs: relative SE about (1 + v / s^2) / sqrt(2 m), with v
    # the mean sampling variance of a group's own estimate (sigma^2 / n_j for
    # the intercept, sigma^2 / S_xx,j for the slope): the noise share.  (The
    # share was once a constant 0.1: a slope SD 0.65 below the truth with
    # share 0.5, 4.3 of these standard errors and equal to lme4's, failed.)
    sd = np.sqrt(np.diag(model.random_effects_cov_["g"].to_numpy()))
    x1 = pd.Series(np.asarray(X)[:, 0]).groupby(np.asarray(g))
    s_xx = x1.apply(lambda v: float(((v - v.mean()) ** 2).sum())).to_numpy()
    share = sigma**2 * np.array([np.mean(1 / x1.size()), np.mean(1 / s_xx)])
    share /= np.asarray(re_sd) ** 2
    bound = 5 * (1 + share) / np.sqrt(2 * n_groups) + 0.05
    assert np.all(np.abs(sd / np.asarray(re_sd) - 1) < bound)


def assert_same_fit(a, b, rtol=1e-6):
    assert a.objective_ == pytest.approx(b.objective_, rel=1e-9, abs=1e-7)
    assert np.allclose(a.fixed_effects_, b.fixed_effects_, rtol=rtol, atol=1e-8)
    assert a.sigma_ == pytest.approx(b.sigma_, rel=rtol)
    for f in a.random_effects_cov_:
        # Optimiser tolerance: entries agree to 1e-4 of the largest variance.
        scale = np.abs(np.diag(a.random_effects_cov_[f])).max() + a.sigma_**2
        assert np.allclose(
            a.random_effects_cov_[f],
            b.random_effects_cov_[f],
            rtol=0,
            atol=1e-4 * scale,
        )


@SETTINGS
@given(seed=seeds, method=methods)
def test_invariant_to_row_order(seed, method):
    X, y, g = simulate(seed, n_groups=15, group_size=6)
    order = np.random.default_rng(seed).permutation(len(y))
    a = fit(X, y, g, method=method)
    b = fit(
        X.iloc[order].reset_index(drop=True), y[order], g.iloc[order], method=method
    )
    assert_same_fit(a, b)
    blups_a = a.random_effects_["g"]
    blups_b = b.random_effects_["g"].loc[blups_a.index]
    assert np.allclose(blups_a, blups_b, rtol=1e-4, atol=1e-6)


@SETTINGS
@given(seed=seeds, method=methods)
def test_invariant_to_relabelling_groups(seed, method):
    X, y, g = simulate(seed, n_groups=15, group_size=6)
    levels = g.unique()
    new_names = np.random.default_rng(seed).permutation(len(levels))
    mapping = dict(zip(levels, [f"z{k}" for k in new_names]))
    a = fit(X, y, g, method=method)
    b = fit(X, y, g.map(mapping), method=method)
    assert_same_fit(a, b)
    renamed = b.random_effects_["g"].loc[
        [mapping[v] for v in a.random_effects_["g"].index]
    ]
    assert np.allclose(a.random_effects_["g"].to_numpy(), renamed.to_numpy(), atol=1e-6)


@SETTINGS
@given(seed=seeds, method=methods, c=st.floats(1e-3, 1e4))
def test_scaling_y_scales_estimates(seed, method, c):
    X, y, g = simulate(seed, n_groups=15, group_size=6)
    a = fit(X, y, g, method=method)
    b = fit(X, c * y, g, method=method)
    assert np.allclose(b.fixed_effects_, c * a.fixed_effects_, rtol=1e-5, atol=1e-8 * c)
    assert b.sigma_ == pytest.approx(c * a.sigma_, rel=1e-5)
    sd_a = np.sqrt(np.diag(a.random_effects_cov_["g"]))
    sd_b = np.sqrt(np.diag(b.random_effects_cov_["g"]))
    assert np.allclose(sd_b, c * sd_a, rtol=1e-4, atol=1e-6 * c)
    n, p = len(y), 3
    shift = (n - p if method == "reml" else n) * np.log(c**2)
    assert b.objective_ == pytest.approx(a.objective_ + shift, abs=1e-6)


@SETTINGS
@given(seed=seeds, c=st.floats(1e-3, 1e3))
def test_scaling_a_feature_scales_its_coefficient(seed, c):
    X, y, g = simulate(seed, n_groups=15, group_size=6)
    a = fit(X, y, g)
    Xc = X.assign(x1=X["x1"] * c)
    b = fit(Xc, y, g)
    assert b.coef_[0] == pytest.approx(a.coef_[0] / c, rel=1e-5)
    assert b.coef_[1] == pytest.approx(a.coef_[1], rel=1e-5)
    assert b.sigma_ == pytest.approx(a.sigma_, rel=1e-5)
    sd_a = np.sqrt(np.diag(a.random_effects_cov_["g"]))
    sd_b = np.sqrt(np.diag(b.random_effects_cov_["g"]))
    assert np.allclose(sd_b, sd_a / [1, c], rtol=1e-4)
    # REML depends on the scaling of X through log|R_X|, exactly so.
    assert b.objective_ == pytest.approx(a.objective_ + 2 * np.log(c), abs=1e-6)


def dense_minus_two_loglik(model, X, y, groups, reml):
    """-2 log-likelihood from the dense n x n marginal covariance."""
    Xf = np.column_stack([np.ones(len(y)), X])
    Z_blocks, covs = [], []
    for f in model.random_effects_cov_:
        levels = model.groups_[f]
        codes = pd.Index(levels).get_indexer(groups)
        terms = model.random_effects_[f].columns
        cols = [np.ones(len(y)) if t == "Intercept" else X[t].to_numpy() for t in terms]
        Z = np.zeros((len(y), len(levels) * len(terms)))
        for t, col in enumerate(cols):
            Z[np.arange(len(y)), codes * len(terms) + t] = col
        Z_blocks.append(Z)
        covs.append(
            np.kron(np.eye(len(levels)), model.random_effects_cov_[f].to_numpy())
        )
    Z = np.hstack(Z_blocks)
    V = Z @ linalg.block_diag(*covs) @ Z.T + model.sigma_**2 * np.eye(len(y))
    beta = model.fixed_effects_.to_numpy()
    r = y - Xf @ beta
    sign, logdet = np.linalg.slogdet(V)
    value = logdet + r @ np.linalg.solve(V, r) + len(y) * np.log(2 * np.pi)
    if reml:
        XtVX = Xf.T @ np.linalg.solve(V, Xf)
        value += np.linalg.slogdet(XtVX)[1] - Xf.shape[1] * np.log(2 * np.pi)
    return value


@SETTINGS
@given(seed=seeds, method=methods)
def test_objective_is_dense_likelihood(seed, method):
    X, y, g = simulate(seed, n_groups=8, group_size=5)
    model = fit(X, y, g, method=method)
    expected = dense_minus_two_loglik(model, X, y, g, method == "reml")
    assert model.objective_ == pytest.approx(expected, rel=1e-9, abs=1e-7)


@SETTINGS
@given(seed=seeds)
def test_zero_variance_gives_ordinary_least_squares(seed):
    rng = np.random.default_rng(seed)
    n_groups, size = 10, 6
    groups = np.repeat(np.arange(n_groups), size)
    X = pd.DataFrame(rng.normal(size=(n_groups * size, 2)), columns=["x1", "x2"])
    noise = rng.normal(size=len(groups))
    # Remove every group's mean from the noise: no between-group variation,
    # so the variance estimate must be exactly zero.
    noise -= pd.Series(noise).groupby(groups).transform("mean").to_numpy()
    X -= X.groupby(groups).transform("mean")
    y = 1 + X.to_numpy() @ [2.0, -1.0] + noise
    model = fit(X, y, groups, random_slopes=None)
    assert model.is_singular_
    assert model.random_effects_cov_["group"].iloc[0, 0] == 0.0
    ols = np.linalg.lstsq(np.column_stack([np.ones(len(y)), X]), y, rcond=None)[0]
    assert np.allclose(model.fixed_effects_.to_numpy(), ols, rtol=1e-8, atol=1e-10)


def test_huge_between_group_variance_is_no_pooling():
    rng = np.random.default_rng(0)
    groups = np.repeat(np.arange(12), 10)
    X = pd.DataFrame({"x1": rng.normal(size=120)})
    means = 1000 * rng.normal(size=12)
    y = means[groups] + 2 * X["x1"].to_numpy() + rng.normal(size=120)
    model = fit(X, y, groups, random_slopes=None)
    # No pooling: group dummies as fixed effects.
    D = (groups[:, None] == np.arange(12)).astype(float)
    coef = np.linalg.lstsq(np.column_stack([D, X]), y, rcond=None)[0]
    assert model.coef_[0] == pytest.approx(coef[-1], rel=1e-4)
    group_means = model.intercept_ + model.random_effects_["group"]["Intercept"]
    assert np.allclose(group_means, coef[:12], atol=1e-3)
