"""The exact gradient of the profiled deviance equals finite differences.

Every design has an exact gradient: one factor, several factors with one
term each (the crossed random-intercept fast path), and the general blocked
case (several factors, any of them with slopes; crossed or nested;
correlated or diagonal); several factors both by blocks and by the dense
path of models with few random effects.  Checked away from the optimum
(where the gradient is large), on the boundary (variances of exactly zero)
and at negative off-diagonal entries, by REML and ML; and a fit that uses
the gradient ends where a derivative-free minimisation of the same deviance
ends.
"""

import warnings

import numpy as np
import pandas as pd
import pytest
from scipy import optimize

from skmixed import MixedLinearRegressor, _design, _objective
from skmixed._covariance import lower_indices
from skmixed._objective import make_deviance, make_deviance_and_gradient

from ._simulate import simulate


def crossed_data(seed=0, n=300):
    rng = np.random.default_rng(seed)
    groups = pd.DataFrame(
        {
            "a": rng.integers(0, 25, n),
            "b": rng.integers(0, 9, n),
            "c": rng.integers(0, 6, n),
        }
    )
    X = pd.DataFrame({"x": rng.normal(size=n), "z": rng.normal(size=n)})
    y = (
        X["x"]
        + rng.normal(size=25)[groups["a"]]
        + 0.5 * rng.normal(size=9)[groups["b"]] * (1 + X["x"])
        + rng.normal(size=6)[groups["c"]]
        + rng.normal(size=n)
    )
    return X, y, groups


def nested_data(seed=0):
    """15 levels of a, 56 of a:b inside them, about 330 rows."""
    rng = np.random.default_rng(seed)
    a_of_cell = np.repeat(np.arange(15), [4] * 11 + [3] * 4)
    cell = np.repeat(np.arange(56), rng.integers(4, 8, 56))
    a, n = a_of_cell[cell], cell.size
    X = pd.DataFrame({"x": rng.normal(size=n), "z": rng.normal(size=n)})
    y = (
        X["x"]
        + rng.normal(size=15)[a] * (1 + 0.5 * X["x"])
        + 0.7 * rng.normal(size=56)[cell]
        + rng.normal(size=n)
    )
    return X, y, pd.DataFrame({"a": a, "ab": cell})


# name -> (data, estimator parameters)
DESIGNS = {
    "one factor": ("single", {"random_slopes": ["x1"]}),
    "one factor diagonal": (
        "single",
        {"random_slopes": ["x1"], "covariance": "diagonal"},
    ),
    "crossed intercepts": ("crossed3", {}),
    "crossed, slope on the largest": ("crossed2", {"random_slopes": {"a": ["x"]}}),
    "crossed, slope on the smaller": ("crossed2", {"random_slopes": {"b": ["x"]}}),
    "crossed, slopes on both": ("crossed2", {"random_slopes": ["x"]}),
    "crossed, two slopes": ("crossed2", {"random_slopes": {"b": ["x", "z"]}}),
    "crossed, diagonal": (
        "crossed2",
        {"random_slopes": ["x"], "covariance": "diagonal"},
    ),
    "crossed, mixed covariances": (
        "crossed2",
        {"random_slopes": ["x"], "covariance": {"a": "diagonal", "b": "unstructured"}},
    ),
    "three factors": (
        "crossed3",
        {
            "random_slopes": {"a": ["x"], "c": ["x", "z"]},
            "covariance": {"a": "diagonal"},
        },
    ),
    "no random intercept": (
        "crossed2",
        {"random_slopes": ["x", "z"], "random_intercept": False},
    ),
    "nested": ("nested", {"random_slopes": {"a": ["x"]}}),
    "nested, slopes on both": ("nested", {"random_slopes": ["x"]}),
}


def data(kind):
    if kind == "single":
        return simulate(5, n_groups=12, group_size=6)
    if kind == "nested":
        return nested_data()
    X, y, g = crossed_data()
    return (X, y, g[["a", "b"]]) if kind == "crossed2" else (X, y, g)


def design_of(name, method="reml"):
    kind, params = DESIGNS[name]
    X, y, g = data(kind)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model = MixedLinearRegressor(method=method, max_iter=3, **params)
        model.fit(X, y, groups=g)
    return model._design


def central_differences(f, theta, step=1e-6):
    gradient = np.empty_like(theta)
    for k in range(theta.size):
        e = np.zeros_like(theta)
        e[k] = step
        gradient[k] = (f(theta + e) - f(theta - e)) / (2 * step)
    return gradient


def points_to_check(design, rng):
    """Random points inside, then with zero variances and negative covariances."""
    diagonal = np.concatenate(
        [np.equal(*lower_indices(f.n_terms, f.diagonal)) for f in design.factors]
    )
    inside = rng.uniform(0.3, 1.5, diagonal.size)
    inside[~diagonal] *= rng.choice([-1.0, 1.0], (~diagonal).sum())
    boundary = inside.copy()
    boundary[np.flatnonzero(diagonal)[::2]] = 0.0  # every other variance
    boundary[~diagonal] = -np.abs(boundary[~diagonal])
    return [inside, boundary]


def assert_exact_gradient(design, reml):
    deviance = make_deviance(design, reml)
    value_and_gradient = make_deviance_and_gradient(design, reml)
    for theta in points_to_check(design, np.random.default_rng(1)):
        value, gradient = value_and_gradient(theta)
        assert value == deviance(theta)
        numeric = central_differences(deviance, theta)
        scale = max(1.0, np.abs(numeric).max())
        np.testing.assert_allclose(gradient, numeric, rtol=1e-5, atol=1e-5 * scale)


def force_path(monkeypatch, path):
    """Evaluate several factors densely ("dense") or by blocks ("blocked")."""
    limit = 10**9 if path == "dense" else 0
    monkeypatch.setattr(_objective, "DENSE_MAX_EFFECTS", limit)
    monkeypatch.setattr(_objective, "DENSE_MAX_EFFECTS_CROSSED", limit)


@pytest.mark.parametrize("path", ["blocked", "dense"])
@pytest.mark.parametrize("method", ["reml", "ml"])
@pytest.mark.parametrize("name", list(DESIGNS))
def test_gradient_matches_finite_differences(name, method, path, monkeypatch):
    force_path(monkeypatch, path)
    assert_exact_gradient(design_of(name, method), method == "reml")


@pytest.mark.parametrize("dense", [True, False])
@pytest.mark.parametrize(
    "name", ["crossed, slopes on both", "three factors", "nested, slopes on both"]
)
def test_both_ways_of_coupling_factors(name, dense, monkeypatch):
    """Dense chunks of levels and pairs of entries give the same gradient."""
    force_path(monkeypatch, "blocked")
    monkeypatch.setattr(_design, "DENSE_COUPLING_RATIO", np.inf if dense else 0.0)
    monkeypatch.setattr(_design, "CHUNK_ENTRIES", 64)  # several chunks
    design = design_of(name)
    design.stats.others._coupling = None  # built again with the patched rule
    assert_exact_gradient(design, reml=True)
    pattern = design.stats.others._coupling[1]
    assert (pattern.chunks is not None) == dense
    if dense:
        assert len(pattern.chunks) > 1


@pytest.mark.parametrize("path", ["blocked", "dense"])
def test_gradient_where_the_factorisation_fails(path, monkeypatch):
    force_path(monkeypatch, path)
    design = design_of("crossed, slopes on both")
    value_and_gradient = make_deviance_and_gradient(design, True)
    theta = np.full(6, np.nan)
    value, gradient = value_and_gradient(theta)
    assert value == np.inf
    np.testing.assert_array_equal(gradient, np.zeros(6))


@pytest.mark.parametrize("method", ["reml", "ml"])
@pytest.mark.parametrize("name", ["crossed, slopes on both", "nested", "three factors"])
def test_fit_reaches_the_derivative_free_minimum(name, method):
    """The fit (exact gradient) ends where Powell on the deviance alone ends."""
    kind, params = DESIGNS[name]
    X, y, g = data(kind)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model = MixedLinearRegressor(method=method, **params).fit(X, y, groups=g)
    design = model._design
    deviance = make_deviance(design, method == "reml")
    lower = np.concatenate(
        [
            np.where(np.equal(*lower_indices(f.n_terms, f.diagonal)), 0.0, -np.inf)
            for f in design.factors
        ]
    )
    start = (lower == 0).astype(float)
    reference = optimize.minimize(
        deviance,
        start,
        method="Powell",
        bounds=optimize.Bounds(lower, np.inf),
        options={"xtol": 1e-10, "ftol": 1e-14, "maxfev": 100_000},
    )
    fitted = deviance(model._theta_scaled)
    assert fitted <= reference.fun + 1e-6
    assert abs(fitted - reference.fun) < 1e-4
