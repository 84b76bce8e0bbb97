"""Parametric bootstrap: the fast refit, reproducibility, intervals, errors."""

import io
import warnings

import numpy as np
import pandas as pd
import pytest
from joblib import parallel_config

from skmixed import MixedLinearRegressor
from skmixed.inference import BootstrapResult, bootstrap, bootstrap_confint
from skmixed.inference._bootstrap import (
    ProgressBar,
    model_parameters,
    refit,
    response_statistics,
)
from skmixed.inference._wald import parameter_names

from .conftest import load_case


def fit(case, method="REML", y=None):
    model = MixedLinearRegressor(**case.estimator_params(method))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return model.fit(case.X, case.y if y is None else y, groups=case.groups)


FITTED = [
    "intercept_",
    "coef_",
    "sigma_",
    "theta_",
    "objective_",
    "loglik_",
    "aic_",
    "bic_",
    "is_singular_",
    "fitted_values_",
    "residuals_",
]


def assert_same_fit(a, b, rtol=1e-4):
    """Equal fits, up to the optimiser's tolerance (the starts differ)."""
    scale = np.abs(a.fitted_values_).max()
    for name in FITTED:
        np.testing.assert_allclose(
            getattr(a, name),
            getattr(b, name),
            rtol=rtol,
            atol=rtol * scale,
            err_msg=name,
        )
    pd.testing.assert_series_equal(a.fixed_effects_, b.fixed_effects_, rtol=rtol)
    for factor, frame in a.random_effects_.items():
        pd.testing.assert_frame_equal(frame, b.random_effects_[factor], rtol=1e-4)
        pd.testing.assert_frame_equal(
            a.random_effects_cov_[factor], b.random_effects_cov_[factor], rtol=1e-4
        )


@pytest.mark.parametrize("name", ["sleepstudy", "penicillin", "dyestuff2"])
def test_fast_refit_equals_a_full_fit(name):
    # The y-only statistics spliced into the design give the same model as
    # fitting from scratch, for a new response and for the original one.
    case = load_case(name)
    model = fit(case)
    y = case.y.to_numpy(dtype=float)
    y_new = y + np.random.default_rng(0).normal(scale=0.3 * y.std(), size=y.size)
    Y = np.column_stack([y, y_new])
    stats = list(
        response_statistics(
            model, model._train_X, model._train_Z, model._train_codes, Y
        )
    )
    assert_same_fit(refit(model, stats[0], y), model)
    assert_same_fit(refit(model, stats[1], y_new), fit(case, y=y_new))


@pytest.fixture(scope="module")
def sleepstudy():
    return fit(load_case("sleepstudy_intercept"))


def test_result_shapes(sleepstudy):
    scalar = bootstrap(sleepstudy, lambda m: m.sigma_, n_boot=5, random_state=0)
    assert isinstance(scalar, BootstrapResult)
    assert scalar.replicates.shape == (5,) and scalar.observed.shape == ()
    assert scalar.observed == sleepstudy.sigma_ and scalar.index is None
    grid = pd.DataFrame({"Days": np.linspace(0, 9, 4)})
    band = sleepstudy.bootstrap(lambda m: m.predict(grid), n_boot=5, random_state=0)
    assert band.replicates.shape == (5, 4)
    lower, upper = band.percentile_interval(0.8)
    assert lower.shape == upper.shape == (4,) and np.all(lower <= upper)
    assert band.std_error().shape == (4,) and band.converged.all()
    named = bootstrap(sleepstudy, model_parameters, n_boot=5, random_state=0)
    assert list(named.index) == parameter_names(sleepstudy)


def fixed_effects(model):
    return model.fixed_effects_


def test_reproducible_whatever_the_chunks(sleepstudy):
    # Threads take the parallel code path (other chunk sizes, unordered
    # results) without the cost of starting processes.
    one = bootstrap(sleepstudy, fixed_effects, n_boot=12, random_state=3)
    again = bootstrap(sleepstudy, fixed_effects, n_boot=12, random_state=3)
    with parallel_config(backend="threading"):
        two = bootstrap(sleepstudy, fixed_effects, n_boot=12, random_state=3, n_jobs=2)
    np.testing.assert_array_equal(one.replicates, again.replicates)
    np.testing.assert_array_equal(one.replicates, two.replicates)
    other = bootstrap(sleepstudy, fixed_effects, n_boot=12, random_state=4)
    assert not np.array_equal(one.replicates, other.replicates)


@pytest.mark.slow
def test_reproducible_across_processes(sleepstudy):
    one = bootstrap(sleepstudy, fixed_effects, n_boot=8, random_state=3)
    two = bootstrap(sleepstudy, fixed_effects, n_boot=8, random_state=3, n_jobs=2)
    # equal up to rounding: another process may align its arrays differently,
    # which changes the last bits of SIMD sums
    np.testing.assert_allclose(one.replicates, two.replicates, rtol=1e-12)


def test_standard_errors_match_the_model(sleepstudy):
    # The fixed effects' bootstrap SEs estimate their sampling SDs, which
    # fixed_effects_cov_ also estimates; both include the group variance.
    result = bootstrap(
        sleepstudy, lambda m: m.fixed_effects_, n_boot=150, random_state=1
    )
    se = np.sqrt(np.diag(sleepstudy.fixed_effects_cov_))
    np.testing.assert_allclose(result.std_error(), se, rtol=0.2)
    sigma = bootstrap(sleepstudy, lambda m: m.sigma_, n_boot=60, random_state=2)
    assert np.mean(sigma.replicates) == pytest.approx(sleepstudy.sigma_, rel=0.05)


def test_confint_layout_and_coverage_of_the_estimates():
    model = fit(load_case("sleepstudy"))
    ci = bootstrap_confint(model, n_boot=40, random_state=0)
    assert list(ci.columns) == ["lower", "upper"]
    assert list(ci.index) == list(model.confint().index)
    estimates = model_parameters(model)
    assert ((ci["lower"] < estimates) & (estimates < ci["upper"])).all()
    via_dispatcher = model.confint("bootstrap", n_boot=40, random_state=0)
    pd.testing.assert_frame_equal(ci, via_dispatcher)


def test_model_parameters_match_the_fitted_attributes():
    model = fit(load_case("biomass"))
    params = model_parameters(model)
    cov = model.random_effects_cov_["Site"].to_numpy()
    assert params["sd_Temp|Site"] == pytest.approx(np.sqrt(cov[1, 1]))
    corr = cov[0, 1] / np.sqrt(cov[0, 0] * cov[1, 1])
    assert params["cor_Temp.Intercept|Site"] == pytest.approx(corr)
    assert params["sigma"] == model.sigma_ and params["N"] == model.fixed_effects_["N"]


def test_singular_replicates_and_no_random_effects():
    dyestuff2 = fit(load_case("dyestuff2"))
    ci = bootstrap_confint(dyestuff2, n_boot=20, random_state=0)
    assert ci.loc["sd_Intercept|Batch", "lower"] == 0.0
    rng = np.random.default_rng(0)
    X = rng.normal(size=(30, 1))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ols = MixedLinearRegressor().fit(X, X[:, 0] + rng.normal(size=30))
    result = bootstrap(ols, lambda m: m.coef_[0], n_boot=30, random_state=0)
    se = np.sqrt(ols.fixed_effects_cov_.iloc[1, 1])
    assert result.std_error() == pytest.approx(se, rel=0.35)


def test_progress_bar():
    stream = io.StringIO()
    bar = ProgressBar(3, enabled=True, stream=stream)
    for _ in range(3):
        bar.update(1)
    bar.close()
    assert "3/3" in stream.getvalue() and stream.getvalue().endswith("\n")
    quiet = io.StringIO()
    bar = ProgressBar(3, enabled="auto", stream=quiet)  # not a terminal
    bar.update(3)
    bar.close()
    assert quiet.getvalue() == ""


def test_errors(sleepstudy):
    with pytest.raises(ValueError, match="n_boot"):
        bootstrap(sleepstudy, lambda m: m.sigma_, n_boot=0)
    with pytest.raises(TypeError, match="n_boot"):
        bootstrap(sleepstudy, lambda m: m.sigma_, n_boot=2.5)
    with pytest.raises(ValueError, match="progress"):
        bootstrap(sleepstudy, lambda m: m.sigma_, n_boot=2, progress="yes")
    with pytest.raises(ValueError, match="one shape"):
        bootstrap(sleepstudy, lambda m: np.ones(np.random.randint(2, 9)), n_boot=3)
    with pytest.raises(TypeError, match="unexpected"):
        bootstrap_confint(sleepstudy, n_boot=2, method="bca")
    without_rows = MixedLinearRegressor().set_params()
    without_rows.__dict__.update(sleepstudy.__dict__)
    without_rows._train_X = None
    with pytest.raises(ValueError, match="training rows"):
        bootstrap(without_rows, lambda m: m.sigma_, n_boot=2)
    with pytest.raises(Exception, match="not fitted"):
        bootstrap(MixedLinearRegressor(), lambda m: m.sigma_, n_boot=2)
