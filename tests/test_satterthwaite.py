"""Satterthwaite's degrees of freedom and p-values against lmerTest 3.1-3.

Three ways: lmerTest's numbers on every reference case (REML and ML) within
1%; lmerTest's numbers to 1e-6 when evaluated at lme4's own theta (which
separates the method from the optimiser's last digits); and known limits
(ordinary least squares: n - p and n degrees of freedom).
"""

import copy
import warnings

import numpy as np
import pytest
from scipy import stats

from skmixed import MixedLinearRegressor
from skmixed._covariance import factor_to_theta, theta_to_factor
from skmixed._objective import factorize, penalized_rss
from skmixed.inference import satterthwaite
from skmixed.inference._satterthwaite import (
    contrast_df,
    richardson_hessian,
    richardson_jacobian,
)
from skmixed.inference._wald import lme4_factor_order

from ._fits import CASES, fitted_case
from .conftest import as_list


@pytest.mark.parametrize("name,method", CASES)
def test_matches_lmertest(name, method):
    case, model = fitted_case(name, method)
    ref = case.fit_reference(method)
    table = satterthwaite(model)
    np.testing.assert_allclose(table["df"], as_list(ref["satterthwaite_df"]), rtol=1e-2)
    np.testing.assert_allclose(
        table["p_value"], as_list(ref["satterthwaite_p"]), rtol=1e-2
    )


def lme4_theta_scaled(model, theta):
    """lme4's theta (its factor order, original units) in our scaled units."""
    design = model._design
    theta = np.atleast_1d(np.asarray(theta, dtype=float))
    by_name, start = {}, 0
    for f in lme4_factor_order(model._factors):
        k = f.n_terms if f.diagonal else f.n_terms * (f.n_terms + 1) // 2
        by_name[f.name] = theta_to_factor(
            theta[start : start + k], f.n_terms, f.diagonal
        )
        start += k
    parts = []
    for f, z_scale in zip(design.factors, design.scaling.z_scale):
        parts.append(factor_to_theta(z_scale[:, None] * by_name[f.name], f.diagonal))
    return np.concatenate(parts)


@pytest.mark.parametrize("name,method", CASES)
def test_matches_lmertest_at_lme4_optimum(name, method):
    # Our optimum differs from lme4's in the 6th digit (ours is as low or
    # lower); at lme4's theta the degrees of freedom agree to 1e-6.
    case, fitted = fitted_case(name, method)
    ref = case.fit_reference(method)
    model = copy.copy(fitted)
    model._theta_scaled = lme4_theta_scaled(model, ref["theta"])
    design = model._design
    fact = factorize(design.stats, design.factors, model._theta_scaled)
    dof = design.stats.n - (design.n_fixed if method == "REML" else 0)
    model.sigma_ = np.sqrt(penalized_rss(fact.R) / dof) * design.scaling.y_scale
    np.testing.assert_allclose(model.sigma_, ref["sigma"], rtol=1e-7)
    df = contrast_df(model, np.eye(design.n_fixed))
    np.testing.assert_allclose(df, as_list(ref["satterthwaite_df"]), rtol=1e-6)


def test_table_layout_and_t_statistics():
    _, model = fitted_case("biomass", "REML")
    table = satterthwaite(model)
    assert list(table.columns) == ["estimate", "std_error", "t_value", "df", "p_value"]
    assert list(table.index) == ["Intercept", "Temp", "N"]
    se = np.sqrt(np.diag(model.fixed_effects_cov_))
    np.testing.assert_allclose(table["estimate"], model.fixed_effects_)
    np.testing.assert_allclose(table["t_value"], model.fixed_effects_ / se)
    p = 2 * stats.t.sf(np.abs(table["t_value"]), table["df"])
    np.testing.assert_allclose(table["p_value"], p)


@pytest.mark.parametrize("method,expected", [("reml", 0), ("ml", 1)])
def test_no_random_effects_gives_ols_degrees_of_freedom(method, expected):
    # Known limit: with sigma the only variance parameter the approximation
    # is exact, n - p (REML) or n (ML).
    rng = np.random.default_rng(0)
    X = rng.normal(size=(40, 2))
    y = X @ [1.0, -2.0] + rng.normal(size=40)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model = MixedLinearRegressor(method=method).fit(X, y)
    df = satterthwaite(model)["df"].to_numpy()
    n, p = 40, 3
    np.testing.assert_allclose(df, n - p + expected * p, rtol=1e-6)


def test_invariant_to_units():
    # The degrees of freedom of each fixed effect do not depend on the units
    # of y or of the features (a linear reparametrisation).
    _, model = fitted_case("biomass", "REML")
    case, _ = fitted_case("biomass", "REML")
    X = case.X * [1000.0, 0.01]
    y = case.y * 1e4 + 5e5
    rescaled = MixedLinearRegressor(**case.estimator_params("REML"))
    rescaled.fit(X, y, groups=case.groups)
    np.testing.assert_allclose(
        satterthwaite(rescaled)["df"], satterthwaite(model)["df"], rtol=1e-4
    )


def test_contrast_of_two_effects():
    # The df of a contrast is not a combination of the individual dfs, but
    # a unit vector reproduces the individual ones.
    _, model = fitted_case("biomass", "REML")
    single = contrast_df(model, np.eye(3))
    both = contrast_df(model, [[0.0, 1.0, -1.0], [0.0, 1.0, 0.0]])
    assert both[1] == pytest.approx(single[1], rel=1e-10)
    assert single[1] < both[0] < single[2]


def test_contrast_shape_is_checked():
    _, model = fitted_case("biomass", "REML")
    with pytest.raises(ValueError, match="3 fixed effects"):
        contrast_df(model, np.ones((1, 2)))


def test_richardson_derivatives_are_exact_on_smooth_functions():
    def f(x):
        return np.exp(x[0]) * np.sin(x[1]) + x[0] ** 2 * x[1]

    x = np.array([0.3, 1.2])
    H = richardson_hessian(f, x)
    expected = np.array(
        [
            [
                np.exp(x[0]) * np.sin(x[1]) + 2 * x[1],
                np.exp(x[0]) * np.cos(x[1]) + 2 * x[0],
            ],
            [np.exp(x[0]) * np.cos(x[1]) + 2 * x[0], -np.exp(x[0]) * np.sin(x[1])],
        ]
    )
    np.testing.assert_allclose(H, expected, rtol=1e-8)
    J = richardson_jacobian(lambda v: np.array([np.sin(v[0]) * v[1], v[1] ** 3]), x)
    np.testing.assert_allclose(
        J, [[np.cos(x[0]) * x[1], np.sin(x[0])], [0.0, 3 * x[1] ** 2]], rtol=1e-9
    )
    # At zero numDeriv steps by 1e-4 (lmerTest's singular fits sit there):
    # rounding error limits the second difference to about 1e-6.
    np.testing.assert_allclose(
        richardson_hessian(lambda v: np.cosh(v[0]), np.zeros(1)), [[1.0]], rtol=1e-5
    )


def test_singular_fit_still_gets_degrees_of_freedom():
    # dyestuff2: the between-batch variance is zero; lmerTest reports df
    # n - 1 = 29 (REML) by dropping the flat direction of the Hessian.
    _, model = fitted_case("dyestuff2", "REML")
    assert model.is_singular_
    assert satterthwaite(model)["df"].iloc[0] == pytest.approx(29.0, rel=1e-8)
