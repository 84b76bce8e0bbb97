"""The exact gradient of the profiled deviance equals finite differences.

Checked away from the optimum (where the gradient is large) for every design
that has an exact gradient: one factor with correlated or uncorrelated
terms, and several crossed random-intercept factors; REML and ML.
"""

import warnings

import numpy as np
import pandas as pd
import pytest
from scipy import optimize

from skmixed import MixedLinearRegressor
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
    X = pd.DataFrame({"x": rng.normal(size=n)})
    y = (
        X["x"]
        + rng.normal(size=25)[groups["a"]]
        + 0.5 * rng.normal(size=9)[groups["b"]]
        + rng.normal(size=6)[groups["c"]]
        + rng.normal(size=n)
    )
    return X, y, groups


def fitted(kind, method):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        if kind == "crossed":
            X, y, g = crossed_data()
            return MixedLinearRegressor(method=method).fit(X, y, groups=g)
        X, y, g = simulate(5, n_groups=12, group_size=6)
        covariance = "diagonal" if kind == "diagonal" else "unstructured"
        return MixedLinearRegressor(
            random_slopes=["x1"], covariance=covariance, method=method
        ).fit(X, y, groups=g)


@pytest.mark.parametrize("method", ["reml", "ml"])
@pytest.mark.parametrize("kind", ["unstructured", "diagonal", "crossed"])
def test_gradient_matches_finite_differences(kind, method):
    model = fitted(kind, method)
    design, reml = model._design, method == "reml"
    deviance = make_deviance(design, reml)
    value_and_gradient = make_deviance_and_gradient(design, reml)
    rng = np.random.default_rng(1)
    for _ in range(3):
        theta = model._theta_scaled * rng.uniform(0.5, 1.5, model._theta_scaled.size)
        theta = theta + 0.2 * (theta == 0)  # off the boundary
        value, gradient = value_and_gradient(theta)
        assert value == deviance(theta)
        numeric = optimize.approx_fprime(theta, deviance, 1e-6)
        assert np.allclose(gradient, numeric, rtol=1e-4, atol=1e-4), (gradient, numeric)


def test_no_exact_gradient_for_crossed_slopes():
    X, y, g = crossed_data()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model = MixedLinearRegressor(random_slopes={"a": ["x"]}).fit(X, y, groups=g)
    assert make_deviance_and_gradient(model._design, True) is None
