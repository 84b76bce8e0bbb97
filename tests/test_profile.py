"""Profile-likelihood intervals: lme4's references, closed forms, boundaries.

lme4 profiles the ML deviance even for REML fits (``devfun2`` calls
``refitML``), so every reference case has the same ``profile_ci`` for its REML
and ML fits; both are checked.  The contract is agreement within 1% of each
interval's width.
"""

import warnings

import numpy as np
import pandas as pd
import pytest
from scipy import optimize, stats

from skmixed import MixedLinearRegressor
from skmixed._covariance import semidefinite_cholesky
from skmixed._design import random_columns, sufficient_statistics
from skmixed.inference import profile_confint
from skmixed.inference._profile import (
    VarianceLayout,
    constraint_transform,
    ml_optimum,
    original_fixed_basis,
    sdcor_deviance,
    transformed_stats,
)
from skmixed.inference._wald import variance_parameter_names

from .conftest import REFERENCE_CASES, load_case


def fit(case, method):
    model = MixedLinearRegressor(**case.estimator_params(method))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return model.fit(case.X, case.y, groups=case.groups)


@pytest.mark.parametrize("method", ["REML", "ML"])
@pytest.mark.parametrize("name", REFERENCE_CASES)
def test_agrees_with_lme4(name, method):
    case = load_case(name)
    reference = case.fit_reference(method).get("profile_ci")
    if reference is None:
        pytest.skip("lme4 could not profile this case")
    names = [n.replace("(Intercept)", "Intercept") for n in reference["names"]]
    expected = pd.DataFrame(
        {"lower": reference["lower"], "upper": reference["upper"]}, index=names
    )
    got = profile_confint(fit(case, method))
    assert list(got.index) == names
    assert list(got.columns) == ["lower", "upper"]
    width = (expected["upper"] - expected["lower"]).to_numpy()
    error = (got - expected).abs().max(axis=1).to_numpy() / width
    assert error.max() < 0.01, dict(zip(names, error))


def test_reml_and_ml_fits_have_the_same_profile():
    case = load_case("dyestuff")
    reml, ml = profile_confint(fit(case, "REML")), profile_confint(fit(case, "ML"))
    np.testing.assert_allclose(reml.to_numpy(), ml.to_numpy(), rtol=1e-5)


def test_zero_variance_estimate_gives_lower_bound_zero():
    case = load_case("dyestuff2")
    got = profile_confint(fit(case, "REML"))
    assert got.loc["sd_Intercept|Batch", "lower"] == 0.0
    assert got.loc["sd_Intercept|Batch", "upper"] > 0.0


def test_names_match_the_wald_table():
    model = fit(load_case("penicillin"), "REML")
    assert VarianceLayout.from_model(model).names == variance_parameter_names(model)
    assert list(profile_confint(model).index) == list(model.confint().index)


# ---------------------------------------------------------------------------
# Known limit: no random effects, where the profiles have closed forms
# ---------------------------------------------------------------------------


@pytest.fixture(scope="module")
def ols():
    rng = np.random.default_rng(3)
    n = 40
    X = rng.normal(size=(n, 2)) * [1.0, 30.0] + [0.0, 100.0]
    y = 2.0 + X @ [1.5, -0.02] + rng.normal(scale=0.7, size=n)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # no groups: an ordinary regression
        model = MixedLinearRegressor(method="ml").fit(X, y)
    return model, np.column_stack([np.ones(n), X]), y


def test_fixed_effect_profile_in_closed_form(ols):
    # ML: dev(b) - dev_min = n log(RSS(b) / RSS), with
    # RSS(b) = RSS + (b - beta_j)^2 / [(X'X)^-1]_jj.
    model, X1, y = ols
    n = len(y)
    beta, rss = np.linalg.lstsq(X1, y, rcond=None)[:2]
    diag = np.diag(np.linalg.inv(X1.T @ X1))
    z = stats.norm.ppf(0.975)
    half = np.sqrt(rss[0] * (np.exp(z**2 / n) - 1.0) * diag)
    got = profile_confint(model)
    fixed = got.loc[["Intercept", "x0", "x1"]].to_numpy()
    expected = np.column_stack([beta - half, beta + half])
    np.testing.assert_allclose(fixed, expected, rtol=0, atol=1e-4 * half.min())


def test_sigma_profile_in_closed_form(ols):
    # dev(sigma) - dev_min = n (log(s2 / s2_hat) + s2_hat / s2 - 1).
    model, X1, y = ols
    n = len(y)
    s2_hat = np.sum((y - X1 @ np.linalg.lstsq(X1, y, rcond=None)[0]) ** 2) / n
    z = stats.norm.ppf(0.975)

    def rise(sigma):
        ratio = s2_hat / sigma**2
        return n * (-np.log(ratio) + ratio - 1.0) - z**2

    s_hat = np.sqrt(s2_hat)
    lower = optimize.brentq(rise, 1e-3 * s_hat, s_hat)
    upper = optimize.brentq(rise, s_hat, 10 * s_hat)
    got = profile_confint(model).loc["sigma"]
    np.testing.assert_allclose(got, [lower, upper], rtol=1e-5)


# ---------------------------------------------------------------------------
# Pieces
# ---------------------------------------------------------------------------


def test_constrained_statistics_equal_a_direct_data_pass():
    case = load_case("sleepstudy_intercept")
    model = fit(case, "ML")
    design = model._design
    X, y = case.X.to_numpy(dtype=float), case.y.to_numpy(dtype=float)
    codes = [pd.factorize(case.groups, sort=True)[0]]
    b, j = 9.5, 1  # fix the coefficient of Days at 9.5
    G, g_y = original_fixed_basis(design, fit_intercept=True)
    K0, k1 = constraint_transform(G, g_y, design.scaling.y_scale, j)
    K0[:, -1] -= b * k1
    got = transformed_stats(design.stats, K0)
    columns = [None, (y - b * X[:, 0]) / design.scaling.y_scale]
    Zs = [
        random_columns(X, f, s) for f, s in zip(design.factors, design.scaling.z_scale)
    ]
    direct = sufficient_statistics(columns, codes, Zs, design.factors)
    np.testing.assert_allclose(got.WtW, direct.WtW, rtol=1e-10)
    np.testing.assert_allclose(got.first.ZtW, direct.first.ZtW, rtol=1e-10)


def test_layout_round_trip():
    model = fit(load_case("biomass"), "REML")
    layout = VarianceLayout.from_model(model)
    optimum = ml_optimum(model)
    values = layout.values(optimum.theta, optimum.sigma)
    np.testing.assert_allclose(layout.theta(values), optimum.theta, atol=1e-12)
    assert layout.theta(np.r_[values[:1], 1.5, values[2:]]) is None  # cor 1.5


@pytest.mark.parametrize(
    "C, valid",
    [
        (np.array([[1.0, 0.3], [0.3, 1.0]]), True),
        (np.array([[1.0, 1.0], [1.0, 1.0]]), True),  # singular: allowed
        (np.array([[1, 0.9, -0.9], [0.9, 1, 0.9], [-0.9, 0.9, 1]]), False),
    ],
)
def test_semidefinite_cholesky(C, valid):
    L = semidefinite_cholesky(C)
    assert (L is not None) == valid
    if valid:
        np.testing.assert_allclose(L @ L.T, C, atol=1e-12)


def test_options_and_errors():
    model = fit(load_case("dyestuff"), "REML")
    sigma = profile_confint(model, parm="sigma")
    assert list(sigma.index) == ["sigma"]
    wide = profile_confint(model, level=0.99, parm=["sigma"])
    assert wide.loc["sigma", "lower"] < sigma.loc["sigma", "lower"]
    assert wide.loc["sigma", "upper"] > sigma.loc["sigma", "upper"]
    assert sigma.loc["sigma", "lower"] < model.sigma_ < sigma.loc["sigma", "upper"]
    with pytest.raises(ValueError, match="unknown parameter"):
        profile_confint(model, parm=["Days"])
    with pytest.raises(ValueError, match="level"):
        profile_confint(model, level=1.5)
    with pytest.raises(Exception, match="not fitted"):
        profile_confint(MixedLinearRegressor())


def test_three_correlated_terms_end_where_zeta_is_z():
    # With three correlated terms the inner optimisation has six free
    # parameters and an invalid region (non positive semi-definite
    # correlations); each interval end must be where an independent, thorough
    # minimisation (Nelder-Mead) gives zeta = z.
    rng = np.random.default_rng(0)
    n, m = 300, 25
    g = rng.integers(m, size=n)
    X = pd.DataFrame({"a": rng.normal(size=n), "b": rng.normal(size=n)})
    cov = [[1, 0.3, 0.1], [0.3, 0.5, 0.0], [0.1, 0.0, 0.4]]
    b = rng.multivariate_normal([0, 0, 0], cov, size=m)
    y = 3 + X.a - X.b + b[g, 0] + b[g, 1] * X.a + b[g, 2] * X.b + rng.normal(size=n)
    model = MixedLinearRegressor(random_slopes=["a", "b"]).fit(X, y, groups=g)
    names = ["cor_b.Intercept|group", "sigma"]
    got = profile_confint(model, parm=names)
    layout, optimum = VarianceLayout.from_model(model), ml_optimum(model)
    deviance = sdcor_deviance(model._design, layout)
    start = layout.values(optimum.theta, optimum.sigma)
    z = stats.norm.ppf(0.975)
    for name in names:
        i = layout.names.index(name)
        others = np.arange(len(start)) != i
        for end, sign in [("lower", -1), ("upper", 1)]:
            values = start.copy()
            values[i] = got.loc[name, end] / layout.to_original[i]

            def f(free, values=values):
                values[others] = free
                return deviance(values)

            best = optimize.minimize(
                f,
                start[others],
                method="Nelder-Mead",
                options={"xatol": 1e-9, "fatol": 1e-11, "maxfev": 20000},
            )
            zeta = sign * np.sqrt(best.fun - optimum.deviance)
            assert zeta == pytest.approx(sign * z, abs=2e-3), (name, end)
