"""Wald intervals against lme4's ``confint(method = "Wald")``, and confint()."""

import sys
import types

import numpy as np
import pandas as pd
import pytest
from scipy import stats
from sklearn.exceptions import NotFittedError

from skmixed import MixedLinearRegressor
from skmixed.inference import wald_confint

from ._fits import CASES, fitted_case
from .conftest import as_list


@pytest.mark.parametrize("name,method", CASES)
def test_fixed_effects_match_lme4(name, method):
    case, model = fitted_case(name, method)
    ref = np.asarray(case.fit_reference(method)["wald_ci"], dtype=float).reshape(-1, 2)
    table = wald_confint(model)
    fixed = table.loc[list(model.fixed_effects_.index)]
    # Within 0.1% of the standard error (our optimum and lme4's differ in the
    # 6th digit).
    se = np.sqrt(np.diag(model.fixed_effects_cov_))
    np.testing.assert_allclose(fixed["lower"], ref[:, 0], rtol=0, atol=1e-3 * se.min())
    np.testing.assert_allclose(fixed["upper"], ref[:, 1], rtol=0, atol=1e-3 * se.min())


@pytest.mark.parametrize("name,method", CASES)
def test_rows_are_lme4_parameters_with_nan_variances(name, method):
    # The rows and their order are lme4's profile/confint names, with
    # "Intercept" for "(Intercept)"; the variance rows are NaN as lme4's.
    case, model = fitted_case(name, method)
    names = as_list(case.fit_reference(method)["profile_ci"]["names"])
    expected = [n.replace("(Intercept)", "Intercept") for n in names]
    table = wald_confint(model)
    assert list(table.index) == expected
    assert list(table.columns) == ["lower", "upper"]
    n_fixed = len(model.fixed_effects_)
    assert table.iloc[:-n_fixed].isna().all().all()
    assert table.iloc[-n_fixed:].notna().all().all()


def test_formula_and_level():
    _, model = fitted_case("biomass", "REML")
    se = np.sqrt(np.diag(model.fixed_effects_cov_))
    for level in (0.5, 0.9, 0.99):
        table = wald_confint(model, level=level).loc[model.fixed_effects_.index]
        z = stats.norm.ppf((1 + level) / 2)
        np.testing.assert_allclose(table["lower"], model.fixed_effects_ - z * se)
        np.testing.assert_allclose(table["upper"], model.fixed_effects_ + z * se)


@pytest.mark.parametrize("level", [0, 1, 1.5, -0.1])
def test_level_out_of_range(level):
    _, model = fitted_case("dyestuff", "REML")
    with pytest.raises(ValueError, match="level must be in"):
        wald_confint(model, level=level)


@pytest.mark.parametrize("level", ["0.95", None, True])
def test_level_type(level):
    _, model = fitted_case("dyestuff", "REML")
    with pytest.raises(TypeError, match="level must be a number"):
        wald_confint(model, level=level)


def test_confint_default_is_wald():
    _, model = fitted_case("sleepstudy", "REML")
    pd.testing.assert_frame_equal(model.confint(), wald_confint(model))
    pd.testing.assert_frame_equal(
        model.confint("wald", level=0.8), wald_confint(model, level=0.8)
    )


def test_confint_rejects_unknown_method_and_wald_arguments():
    _, model = fitted_case("sleepstudy", "REML")
    with pytest.raises(ValueError, match="'wald', 'profile' or 'bootstrap'"):
        model.confint(method="Wald")
    with pytest.raises(TypeError, match="no further arguments"):
        model.confint(method="wald", n_boot=10)


@pytest.mark.parametrize(
    "method,module,function",
    [
        ("profile", "skmixed.inference._profile", "profile_confint"),
        ("bootstrap", "skmixed.inference._bootstrap", "bootstrap_confint"),
    ],
)
def test_confint_dispatches(monkeypatch, method, module, function):
    # The profile and bootstrap routines get the model, the level and the
    # extra arguments (stand-ins here: those modules are tested on their own).
    calls = []

    def fake(model, level=0.95, **kwargs):
        calls.append((model, level, kwargs))
        return "intervals"

    monkeypatch.setitem(sys.modules, module, types.SimpleNamespace(**{function: fake}))
    _, model = fitted_case("dyestuff", "REML")
    assert model.confint(method, level=0.9, random_state=0) == "intervals"
    assert calls == [(model, 0.9, {"random_state": 0})]


def test_confint_needs_a_fitted_model():
    with pytest.raises(NotFittedError):
        MixedLinearRegressor().confint()
