"""Agreement with lme4 1.1-31 on every reference case, REML and ML.

Tolerances are the project's contract: objective within 1e-3 of lme4's (or
lower), fixed effects within 1% of their standard error, random-effect SDs,
correlations and sigma within 0.5%, BLUPs within 1% of their conditional SD,
conditional SDs within 1%.
"""

import functools
import warnings

import numpy as np
import pytest

from skmixed import MixedLinearRegressor

from .conftest import as_list, load_case

METHODS = ["REML", "ML"]


@functools.cache
def fit_case_by_name(name, method):
    return fit_case(load_case(name), method)


def fit_case(case, method):
    model = MixedLinearRegressor(**case.estimator_params(method))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # few levels, singular fits: tested elsewhere
        return model.fit(case.X, case.y, groups=case.groups)


@pytest.fixture(params=METHODS)
def fitted(request, reference_case):
    method = request.param
    return reference_case, method, fit_case_by_name(reference_case.name, method)


def test_objective(fitted):
    case, method, model = fitted
    expected = case.fit_reference(method)["objective"]
    assert model.objective_ <= expected + 1e-3
    assert model.objective_ == pytest.approx(expected, abs=1e-2)


def test_information_criteria(fitted):
    case, method, model = fitted
    ref = case.fit_reference(method)
    assert model.loglik_ == pytest.approx(ref["loglik"], abs=1e-3)
    assert model.aic_ == pytest.approx(ref["aic"], abs=1e-3)
    assert model.bic_ == pytest.approx(ref["bic"], abs=1e-3)


def test_fixed_effects(fitted):
    case, method, model = fitted
    ref = case.fit_reference(method)
    for name, value in ref["fixef"].items():
        se = ref["fixef_se"][name]
        assert abs(model.fixed_effects_[name] - value) <= 0.01 * se, name
        model_se = np.sqrt(model.fixed_effects_cov_.loc[name, name])
        assert model_se == pytest.approx(se, rel=0.005), name
    vcov = np.asarray(ref["vcov"], dtype=float).reshape(len(ref["fixef"]), -1)
    assert np.allclose(model.fixed_effects_cov_.to_numpy(), vcov, rtol=0.01, atol=1e-8)


def test_fixed_effects_attributes_agree(fitted):
    case, _, model = fitted
    expected = model.fixed_effects_.drop("Intercept").to_numpy()
    assert np.allclose(model.coef_, expected)
    assert model.intercept_ == model.fixed_effects_["Intercept"]


def test_sigma_and_variance_components(fitted):
    case, method, model = fitted
    ref = case.fit_reference(method)
    assert model.sigma_ == pytest.approx(ref["sigma"], rel=0.005)
    for factor, r in case.random_reference(method).items():
        cov = model.random_effects_cov_[factor]
        assert list(cov.columns) == r["terms"]
        sd = np.sqrt(np.diag(cov.to_numpy()))
        assert np.allclose(sd, r["sd"], rtol=0.005, atol=1e-6 * ref["sigma"]), factor
        if len(r["terms"]) > 1 and case.covariance == "unstructured":
            corr = cov.to_numpy() / np.outer(sd, sd)
            assert np.allclose(corr, r["corr"], atol=0.005), factor


def test_blups_and_conditional_sds(fitted):
    case, method, model = fitted
    for factor, r in case.random_reference(method).items():
        ranef = model.random_effects_[factor].loc[r["levels"], r["terms"]].to_numpy()
        condsd = (
            model.random_effects_cond_sd_[factor]
            .loc[r["levels"], r["terms"]]
            .to_numpy()
        )
        scale = np.where(r["condsd"] > 0, r["condsd"], 1.0)
        assert np.all(np.abs(ranef - r["ranef"]) <= 0.01 * scale + 1e-8), factor
        assert np.allclose(condsd, r["condsd"], rtol=0.01, atol=1e-8), factor


def test_theta(fitted):
    case, method, model = fitted
    ref = case.fit_reference(method)
    by_factor = {}
    start = 0
    for r in as_list(ref["random"]):  # lme4's order of factors
        q = len(as_list(r["terms"]))
        k = q if case.covariance == "diagonal" else q * (q + 1) // 2
        by_factor[r["group"]] = np.asarray(as_list(ref["theta"])[start : start + k])
        start += k
    expected = np.concatenate([by_factor[f] for f in case.factors])
    assert np.allclose(model.theta_, expected, rtol=0.01, atol=1e-4)


def test_singular_flag(fitted):
    case, method, model = fitted
    assert model.is_singular_ == case.fit_reference(method)["is_singular"]


def test_fitted_values_and_residuals(fitted):
    case, method, model = fitted
    ref = case.fit_reference(method)
    if "fitted" not in ref:
        pytest.skip("no fitted values in this reference")
    sd = ref["sigma"]
    assert np.allclose(model.fitted_values_, ref["fitted"], atol=0.01 * sd)
    assert np.allclose(model.residuals_, ref["resid"], atol=0.01 * sd)
    conditional = model.predict(case.X, groups=case.groups)
    assert np.allclose(conditional, model.fitted_values_)


def test_population_prediction_is_fixed_part(fitted):
    case, _, model = fitted
    population = model.predict(case.X)
    expected = model.intercept_ + case.X.to_numpy() @ model.coef_
    assert np.allclose(population, expected)


def test_converged_and_counts(fitted):
    case, _, model = fitted
    assert model.converged_
    assert model.n_iter_ >= 1
    for factor, r in case.random_reference("REML").items():
        assert model.n_groups_[factor] == len(r["levels"])
        assert set(map(str, model.groups_[factor])) == set(r["levels"])
