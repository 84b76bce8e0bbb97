"""Quantile residuals and the displays of the generalised models."""

import matplotlib
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import pytest
from scipy import stats

matplotlib.use("Agg")

from skmixed import (  # noqa: E402
    CompletePoolingLogisticRegression,
    MixedLinearRegressor,
    MixedLogisticRegression,
    MixedPoissonRegressor,
    NoPoolingLogisticRegression,
    NoPoolingPoissonRegressor,
)
from skmixed.inference import quantile_residuals  # noqa: E402
from skmixed.plotting import (  # noqa: E402
    CaterpillarDisplay,
    EffectDisplay,
    QuantileResidualDiagnosticsDisplay,
    QuantileResidualsVsFittedDisplay,
    ResidualDiagnosticsDisplay,
    ShrinkageDisplay,
    UniformQQDisplay,
    plot_diagnostics,
)


@pytest.fixture(autouse=True)
def _close_figures():
    yield
    plt.close("all")


def poisson_data(seed, n_groups=30, n_per=10, overdispersion=0.0):
    rng = np.random.default_rng(seed)
    groups = np.repeat(np.arange(n_groups), n_per)
    x = rng.normal(size=(groups.size, 1))
    eta = 1.0 + 0.3 * x[:, 0] + rng.normal(0, 0.5, n_groups)[groups]
    eta = eta + rng.normal(0, overdispersion, groups.size)
    return x, rng.poisson(np.exp(eta)), groups


def binary_data(seed, n_groups=30, n_per=10, labels=(0, 1)):
    rng = np.random.default_rng(seed)
    groups = np.repeat(np.arange(n_groups), n_per)
    x = rng.normal(size=(groups.size, 1))
    eta = 0.8 * x[:, 0] + rng.normal(0, 1.0, n_groups)[groups]
    y = np.where(rng.random(groups.size) < 1 / (1 + np.exp(-eta)), *labels[::-1])
    return x, y, groups


@pytest.fixture(scope="module")
def poisson_fit():
    x, y, groups = poisson_data(0)
    return MixedPoissonRegressor().fit(x, y, groups=groups), x, y, groups


@pytest.fixture(scope="module")
def logistic_fit():
    x, y, groups = binary_data(1, labels=("no", "yes"))
    return MixedLogisticRegression().fit(x, y, groups=groups), x, y, groups


# ----------------------------------------------------------- the residuals


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_residuals_are_uniform_under_the_model(seed):
    x, y, groups = poisson_data(seed)
    model = MixedPoissonRegressor().fit(x, y, groups=groups)
    for random_effects in ("all", "none"):
        u = quantile_residuals(model, random_effects=random_effects, random_state=0)
        assert stats.kstest(u, "uniform").pvalue > 0.01
    x, y, groups = binary_data(seed)
    model = MixedLogisticRegression().fit(x, y, groups=groups)
    u = quantile_residuals(model, random_state=0)
    assert stats.kstest(u, "uniform").pvalue > 0.01


def test_residuals_of_overdispersed_counts_are_not_uniform():
    # Counts with an observation-level effect, fitted without one: too many
    # residuals in the tails.
    x, y, groups = poisson_data(0, overdispersion=0.8)
    model = MixedPoissonRegressor().fit(x, y, groups=groups)
    u = quantile_residuals(model, random_state=0)
    assert stats.kstest(u, "uniform").pvalue < 1e-6
    tails = np.mean((u < 0.05) | (u > 0.95))
    assert tails > 0.2  # 0.1 under the model


def test_conditional_residuals_match_the_distribution_function(poisson_fit):
    # Brute force: each residual lies between the Poisson CDF at y - 1 and y
    # of its fitted mean, and the draws fill that interval uniformly.
    model, x, y, groups = poisson_fit
    u = quantile_residuals(model, random_state=3)
    mu = model.fitted_values_
    lower, upper = stats.poisson.cdf(y - 1, mu), stats.poisson.cdf(y, mu)
    assert np.all((u >= lower - 1e-12) & (u <= upper + 1e-12))
    v = np.random.default_rng(3).random(y.size)
    np.testing.assert_allclose(u, lower + v * (upper - lower), rtol=1e-10)


def test_binary_residuals_match_the_probabilities(logistic_fit):
    model, x, y, groups = logistic_fit
    u = quantile_residuals(model, x, y, groups, random_state=5)
    p = model.predict_proba(x, groups)[:, 1]
    v = np.random.default_rng(5).random(y.size)
    # y = 0: U(0, 1 - p); y = 1: U(1 - p, 1).
    expected = np.where(y == "yes", 1 - p + v * p, v * (1 - p))
    np.testing.assert_allclose(u, expected, rtol=1e-9, atol=1e-12)


def test_unconditional_residuals_integrate_the_random_effects(poisson_fit):
    # random_effects="none": F(y) averaged over b ~ N(0, Sigma) by quadrature,
    # against a Monte Carlo average.
    model, x, y, groups = poisson_fit
    u0 = quantile_residuals(model, x, y, groups, random_effects="none", random_state=1)
    v = np.random.default_rng(1).random(y.size)
    eta = model.linear_predictor(x, groups, random_effects="none")
    sd = np.sqrt(model.random_effects_cov_["group"].iloc[0, 0])
    b = np.random.default_rng(7).normal(0, sd, 20000)
    mu = np.exp(eta[:40, None] + b[None, :])
    lower = stats.poisson.cdf(y[:40, None] - 1, mu).mean(axis=1)
    upper = stats.poisson.cdf(y[:40, None], mu).mean(axis=1)
    np.testing.assert_allclose(u0[:40], lower + v[:40] * (upper - lower), atol=5e-3)
    # Training rows without X: the same residuals.
    np.testing.assert_allclose(
        quantile_residuals(model, random_effects="none", random_state=1), u0
    )


def test_unseen_levels_are_integrated_over(poisson_fit):
    model, x, y, groups = poisson_fit
    new = np.full(groups.size, 999)
    with pytest.warns(UserWarning, match="seen in fit"):
        u_new = quantile_residuals(model, x, y, new, random_state=2)
    u_none = quantile_residuals(
        model, x, y, groups, random_effects="none", random_state=2
    )
    np.testing.assert_allclose(u_new, u_none)


def test_rates_with_exposure_equal_counts_with_offset():
    x, y, groups = poisson_data(4)
    exposure = np.random.default_rng(0).integers(1, 4, y.size).astype(float)
    counts = np.random.default_rng(1).poisson(y * exposure)
    rates = MixedPoissonRegressor().fit(
        x, counts / exposure, groups=groups, sample_weight=exposure
    )
    offset = MixedPoissonRegressor().fit(
        x, counts, groups=groups, offset=np.log(exposure)
    )
    u_rates = quantile_residuals(rates, random_state=0)
    u_offset = quantile_residuals(offset, random_state=0)
    np.testing.assert_allclose(u_rates, u_offset, atol=1e-6)
    u_new = quantile_residuals(
        rates, x, counts / exposure, groups, sample_weight=exposure, random_state=0
    )
    np.testing.assert_allclose(u_new, u_rates, atol=1e-10)


def test_binomial_trials():
    rng = np.random.default_rng(0)
    groups = np.repeat(np.arange(25), 4)
    x = rng.normal(size=(100, 1))
    trials = rng.integers(1, 10, 100).astype(float)
    p = 1 / (1 + np.exp(-(0.5 * x[:, 0] + rng.normal(0, 1, 25)[groups])))
    successes = rng.binomial(trials.astype(int), p)
    model = MixedLogisticRegression().fit(
        x, successes / trials, groups=groups, sample_weight=trials
    )
    u = quantile_residuals(model, random_state=0)
    mu = model.fitted_values_
    lower = stats.binom.cdf(successes - 1, trials, mu)
    upper = stats.binom.cdf(successes, trials, mu)
    assert np.all((u >= lower - 1e-12) & (u <= upper + 1e-12))
    with pytest.raises(ValueError, match="whole"):
        quantile_residuals(
            model, x, successes / trials, groups, sample_weight=trials + 0.5
        )


def test_residual_errors(poisson_fit, logistic_fit):
    model, x, y, groups = poisson_fit
    with pytest.raises(ValueError, match="whole"):
        quantile_residuals(model, x, y + 0.5, groups)
    with pytest.raises(ValueError, match="needs the outcomes"):
        quantile_residuals(model, x)
    with pytest.raises(ValueError, match="with X"):
        quantile_residuals(model, y=y)
    linear = MixedLinearRegressor().fit(x, y.astype(float), groups=groups)
    with pytest.raises(TypeError, match="MixedPoissonRegressor"):
        quantile_residuals(linear)
    model, x, y, groups = logistic_fit
    with pytest.raises(ValueError, match="not among"):
        quantile_residuals(model, x, np.where(y == "yes", "yes", "maybe"), groups)


# ---------------------------------------------------------------- displays


def test_uniform_qq_display(poisson_fit):
    model, x, y, groups = poisson_fit
    display = UniformQQDisplay.from_estimator(model, random_state=0)
    u = quantile_residuals(model, random_state=0)
    np.testing.assert_allclose(display.sample_quantiles, np.sort(u))
    assert display.theoretical_quantiles[0] == pytest.approx(0.5 / u.size)
    assert display.ks_pvalue == pytest.approx(stats.kstest(u, "uniform").pvalue)
    assert f"{display.ks_pvalue:.3g}" in display.ax_.get_title()
    assert len(display.scatter_.get_offsets()) == y.size
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        UniformQQDisplay.from_values([0.2, 1.5])


def test_residuals_vs_fitted_display(logistic_fit):
    model, x, y, groups = logistic_fit
    display = QuantileResidualsVsFittedDisplay.from_estimator(
        model, rank=False, n_bins=4, random_state=0
    )
    np.testing.assert_allclose(display.fitted, model.fitted_values_)
    u = quantile_residuals(model, random_state=0)
    order = np.argsort(model.fitted_values_, kind="stable")
    first = order[: u.size // 4 + (u.size % 4 > 0)]
    np.testing.assert_allclose(
        display.bin_quartiles[:, 0], np.quantile(u[first], [0.25, 0.5, 0.75])
    )
    assert len(display.quartile_lines_) == 3
    assert [line.get_ydata()[0] for line in display.reference_lines_] == [
        0.25,
        0.5,
        0.75,
    ]
    ranked = QuantileResidualsVsFittedDisplay.from_estimator(model, random_state=0)
    assert ranked.fitted.min() == 0 and ranked.fitted.max() == 1
    assert ranked.ax_.get_xlabel() == "Fitted values (rank)"


def test_overdispersion_shows_in_the_quartiles():
    x, y, groups = poisson_data(0, overdispersion=0.8)
    model = MixedPoissonRegressor().fit(x, y, groups=groups)
    display = QuantileResidualsVsFittedDisplay.from_estimator(model, random_state=0)
    spread = display.bin_quartiles[2] - display.bin_quartiles[0]
    assert spread.mean() > 0.6  # 0.5 under the model


def test_diagnostics_dispatch_for_generalised_models(poisson_fit):
    model, x, y, groups = poisson_fit
    display = plot_diagnostics(model, random_state=0)
    assert isinstance(display, QuantileResidualDiagnosticsDisplay)
    assert len(display.axes_) == 3
    assert display.axes_[2].get_title() == "group: Intercept"
    np.testing.assert_allclose(
        display.qq.sample_quantiles, np.sort(display.residuals_vs_fitted.residuals)
    )
    with pytest.raises(TypeError, match="quantile residuals"):
        ResidualDiagnosticsDisplay.from_estimator(model)
    linear = MixedLinearRegressor().fit(x, y.astype(float), groups=groups)
    with pytest.raises(TypeError, match="ResidualDiagnosticsDisplay"):
        UniformQQDisplay.from_estimator(linear)


def test_caterpillar_of_conditional_modes(logistic_fit):
    model, *_ = logistic_fit
    display = CaterpillarDisplay.from_estimator(model)
    modes = model.random_effects_["group"]["Intercept"]
    sd = model.random_effects_cond_sd_["group"]["Intercept"]
    order = np.argsort(modes.to_numpy(), kind="stable")
    np.testing.assert_allclose(display.effects["group"]["Intercept"], modes.iloc[order])
    bars = display.errorbars_["group", "Intercept"]
    segments = bars.lines[2][0].get_segments()
    half_widths = np.array([(s[1, 0] - s[0, 0]) / 2 for s in segments])
    np.testing.assert_allclose(half_widths, 1.959964 * sd.iloc[order], rtol=1e-5)


def test_effect_display_on_the_probability_scale(logistic_fit):
    model, x, y, groups = logistic_fit
    display = EffectDisplay.from_estimator(model, x, y, 0, band="wald")
    grid = display.grid[:, None]
    p = model.predict_proba(grid, random_effects="none", marginal=False)[:, 1]
    np.testing.assert_allclose(display.prediction, p)
    assert np.all((display.lower > 0) & (display.upper < 1))
    assert np.all((display.lower < p) & (p < display.upper))
    # The band is the link-scale Wald band mapped through the inverse link.
    G = np.column_stack([np.ones(grid.shape[0]), grid])
    V = model.fixed_effects_cov_.to_numpy()
    se = np.sqrt(np.einsum("ij,jk,ik->i", G, V, G))
    eta = model.linear_predictor(grid, random_effects="none")
    np.testing.assert_allclose(display.upper, 1 / (1 + np.exp(-(eta + 1.959964 * se))))
    np.testing.assert_array_equal(display.y_data, (y == "yes").astype(float))
    assert display.ax_.get_ylabel() == "P(y = yes)"


def test_effect_display_of_expected_counts(poisson_fit):
    model, x, y, groups = poisson_fit
    display = EffectDisplay.from_estimator(
        model, x, y, 0, band="posterior", n_draws=200, random_state=0
    )
    expected = model.predict(
        display.grid[:, None], random_effects="none", marginal=False
    )
    np.testing.assert_allclose(display.prediction, expected)
    assert np.all(display.lower > 0)
    assert np.all((display.lower < expected) & (expected < display.upper))
    assert display.ax_.get_ylabel() == "E[y]"


def test_effect_display_of_the_generalised_baselines(logistic_fit, poisson_fit):
    _, x, y, groups = logistic_fit
    complete = CompletePoolingLogisticRegression().fit(x, y)
    display = EffectDisplay.from_estimator(complete, x, y, 0)
    np.testing.assert_allclose(
        display.prediction, complete.predict_proba(display.grid[:, None])[:, 1]
    )
    assert display.ax_.get_ylabel() == "P(y = yes)"
    _, x, y, groups = poisson_fit
    no_pooling = NoPoolingPoissonRegressor().fit(x, y, groups=groups)
    display = EffectDisplay.from_estimator(no_pooling, x, y, 0)
    mean_line = np.exp(no_pooling.intercept_ + display.grid * no_pooling.coef_[0])
    np.testing.assert_allclose(display.prediction, mean_line)
    with pytest.raises(ValueError, match="covariance"):
        EffectDisplay.from_estimator(no_pooling, x, y, 0, band="wald")


def test_displays_take_a_pipeline():
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    x, y, groups = poisson_data(5)
    x = 3 * x + 5
    pipeline = make_pipeline(StandardScaler(), MixedPoissonRegressor()).fit(
        x, y, mixedpoissonregressor__groups=groups
    )
    model = pipeline[-1]
    display = plot_diagnostics(pipeline, random_state=0)
    np.testing.assert_allclose(
        display.qq.sample_quantiles,
        np.sort(quantile_residuals(model, random_state=0)),
    )
    # New rows go through the scaler first: the training rows again.
    again = UniformQQDisplay.from_estimator(pipeline, x, y, groups, random_state=0)
    np.testing.assert_allclose(again.sample_quantiles, display.qq.sample_quantiles)
    effect = EffectDisplay.from_estimator(pipeline, x, y, 0)
    assert effect.grid[0] == pytest.approx(x.min())  # on the raw scale
    expected = model.predict(
        pipeline[0].transform(effect.grid[:, None]),
        random_effects="none",
        marginal=False,
    )
    np.testing.assert_allclose(effect.prediction, expected)


def test_shrinkage_of_a_generalised_model(logistic_fit):
    model, x, y, groups = logistic_fit
    y = y.copy()
    y[groups == 0] = "no"  # a group with no finite no-pooling estimate
    model = MixedLogisticRegression().fit(x, y, groups=groups)
    display = ShrinkageDisplay.from_estimator(model, x, y, groups)
    with pytest.warns(UserWarning, match="outcomes all 0 or all 1"):
        no_pooling = NoPoolingLogisticRegression().fit(x, y, groups=groups)
    own = no_pooling.group_coef_["Intercept"].to_numpy()
    share = pd.Series(y == "yes").groupby(groups).mean().to_numpy()
    alike = (share == 0) | (share == 1)
    assert alike[0] and alike.sum() < 5
    np.testing.assert_array_equal(np.isnan(display.no_pooling), alike)
    np.testing.assert_allclose(display.no_pooling[~alike], own[~alike], rtol=1e-8)
    population = model.fixed_effects_["Intercept"]
    assert display.population == population
    moved = np.abs(display.mixed - population)[~alike]
    assert np.all(moved <= np.abs(display.no_pooling - population)[~alike])
    assert len(display.arrows_) == (~alike).sum()
