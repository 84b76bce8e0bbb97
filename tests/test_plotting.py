"""Tests of skmixed.plotting: every display is drawn (Agg) and its content checked."""

import json
import subprocess
import sys
import warnings
from pathlib import Path
from types import SimpleNamespace

import matplotlib

matplotlib.use("Agg")  # headless; before pyplot is imported anywhere

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import pytest  # noqa: E402
from numpy.testing import assert_allclose, assert_array_equal  # noqa: E402
from scipy import stats  # noqa: E402

import skmixed  # noqa: E402
from skmixed import MixedLinearRegressor  # noqa: E402
from skmixed.plotting import (  # noqa: E402
    CaterpillarDisplay,
    EffectDisplay,
    IntervalDisplay,
    QQDisplay,
    RandomEffectsQQDisplay,
    ResidualDiagnosticsDisplay,
    ResidualsVsFittedDisplay,
    ShrinkageDisplay,
    _shrinkage,  # noqa: E402
    plot_diagnostics,
)
from skmixed.plotting._diagnostics import loess_smooth  # noqa: E402

DATA = Path(__file__).parent / "data"
Z95 = stats.norm.ppf(0.975)


@pytest.fixture(autouse=True)
def close_figures():
    yield
    plt.close("all")


def _fit(name, columns, response, group, **params):
    frame = pd.read_csv(DATA / f"{name}.csv")
    frame[group] = frame[group].astype(str)
    X = frame[columns] if columns else np.empty((len(frame), 0))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        model = MixedLinearRegressor(**params).fit(X, frame[response], frame[group])
    return SimpleNamespace(model=model, X=X, y=frame[response], groups=frame[group])


@pytest.fixture(scope="module")
def biomass():
    """Biomass ~ Temp + N + (1 + Temp | Site): the tutorial's model."""
    return _fit("biomass", ["Temp", "N"], "Biomass", "Site", random_slopes=["Temp"])


@pytest.fixture(scope="module")
def sleep_intercept():
    """Reaction ~ Days + (1 | Subject)."""
    return _fit("sleepstudy", ["Days"], "Reaction", "Subject")


@pytest.fixture(scope="module")
def dyestuff():
    """Yield ~ 1 + (1 | Batch)."""
    return _fit("dyestuff", [], "Yield", "Batch")


@pytest.fixture(scope="module")
def penicillin():
    """diameter ~ 1 + (1 | plate) + (1 | sample): two crossed factors."""
    frame = pd.read_csv(DATA / "penicillin.csv")
    model = MixedLinearRegressor().fit(
        np.empty((len(frame), 0)), frame["diameter"], frame[["plate", "sample"]]
    )
    return SimpleNamespace(model=model)


def _reference(name):
    return json.loads((DATA / f"{name}.json").read_text())["fits"]["REML"]


class _Proxy:
    """A fitted model seen through a proxy that hides some of its methods.

    Subclasses add methods (a fake ``sample_posterior``, ``bootstrap`` or
    ``confint``), so each path of the displays is tested whatever the
    estimator currently has.
    """

    hidden = ("sample_posterior", "bootstrap", "confint")

    def __init__(self, model):
        self._model = model
        self.calls = []

    def __getattr__(self, name):
        if name in self.hidden:
            raise AttributeError(name)
        return getattr(self._model, name)


class _FixedPosterior(_Proxy):
    """``sample_posterior`` whose every draw is ``beta`` (columns reordered)."""

    def __init__(self, model, beta):
        super().__init__(model)
        self._beta = beta

    def sample_posterior(self, n_draws, random_state=None):
        self.calls.append((n_draws, random_state))
        frame = pd.DataFrame([self._beta] * n_draws)
        return SimpleNamespace(fixed_effects=frame.iloc[:, ::-1], sigma=None)


# --------------------------------------------------------------------------
# matplotlib stays optional
# --------------------------------------------------------------------------


def test_importing_skmixed_and_plotting_does_not_import_matplotlib():
    code = (
        "import sys, skmixed, skmixed.plotting\n"
        "assert 'matplotlib' not in sys.modules, sorted(\n"
        "    m for m in sys.modules if m.startswith('matplotlib'))\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stderr


# --------------------------------------------------------------------------
# Residual diagnostics
# --------------------------------------------------------------------------


def test_residuals_vs_fitted_draws_pearson_residuals(biomass):
    model = biomass.model
    display = ResidualsVsFittedDisplay.from_estimator(model)
    points = display.scatter_.get_offsets()
    assert points.shape == (100, 2)
    assert_allclose(points[:, 0], model.fitted_values_)
    assert_allclose(points[:, 1], model.residuals_ / model.sigma_)
    assert_array_equal(display.zero_line_.get_ydata(), [0, 0])
    x_smooth, y_smooth = display.smooth_line_.get_data()
    assert len(x_smooth) == 80
    assert x_smooth.min() == pytest.approx(model.fitted_values_.min())
    # The smooth of residuals that are centred and unrelated to the fit stays small.
    assert np.max(np.abs(y_smooth)) < 1.0
    assert display.ax_.get_xlabel() == "Fitted values"
    assert display.ax_.get_ylabel() == "Pearson residuals"
    assert display.figure_ is display.ax_.figure


def test_residuals_vs_fitted_without_smooth_and_on_given_axes(biomass):
    _, ax = plt.subplots()
    display = ResidualsVsFittedDisplay.from_estimator(
        biomass.model, smooth=False, ax=ax
    )
    assert display.smooth_line_ is None
    assert display.ax_ is ax
    assert len(ax.lines) == 1  # only the zero line


def test_loess_reproduces_a_line_and_follows_a_curve():
    x = np.linspace(0, 10, 60)
    assert_allclose(
        loess_smooth(x, 3 - 2 * x, [0.5, 5, 9.5]), 3 - 2 * np.array([0.5, 5, 9.5])
    )
    # A local *linear* fit tracks a smooth curve far better than a global line.
    curve = np.sin(x)
    fitted = loess_smooth(x, curve, x, span=0.2)
    assert np.max(np.abs(fitted - curve)) < 0.1
    assert_allclose(loess_smooth(np.ones(5), np.arange(5.0), [1.0]), [2.0])


def test_qq_of_residuals_uses_r_plotting_positions(biomass):
    model = biomass.model
    display = QQDisplay.from_estimator(model)
    n = len(model.residuals_)
    expected_x = stats.norm.ppf((np.arange(1, n + 1) - 0.5) / n)
    points = display.scatter_.get_offsets()
    assert_allclose(points[:, 0], expected_x)
    assert_allclose(points[:, 1], np.sort(model.residuals_ / model.sigma_))
    assert display.ax_.get_xlabel() == "Standard normal quantiles"


def test_qq_reference_line_goes_through_the_quartiles():
    theory = stats.norm.ppf((np.arange(1, 9) - 3 / 8) / (8 + 1 / 4))  # n <= 10
    display = QQDisplay.from_values(1 + 2 * theory, name="x")
    assert_allclose(display.theoretical_quantiles, theory)
    intercept, slope = display.reference_line
    q = np.quantile(1 + 2 * theory, [0.25, 0.75])
    zq = stats.norm.ppf([0.25, 0.75])
    assert_allclose(intercept + slope * zq, q)
    assert display.line_.get_slope() == pytest.approx(slope)


def test_qq_rejects_too_few_or_missing_values():
    with pytest.raises(ValueError, match="at least 2 finite"):
        QQDisplay.from_values([1.0, np.nan, 2.0])
    with pytest.raises(ValueError, match="at least 2 finite"):
        QQDisplay.from_values([1.0])


def test_random_effects_qq_has_one_panel_per_term(biomass):
    model = biomass.model
    display = RandomEffectsQQDisplay.from_estimator(model)
    assert [ax.get_title() for ax in display.axes_] == [
        "Site: Intercept",
        "Site: Temp",
    ]
    for qq, term in zip(display.qq_displays, ["Intercept", "Temp"]):
        points = qq.scatter_.get_offsets()
        assert len(points) == 20
        assert_allclose(points[:, 1], np.sort(model.random_effects_["Site"][term]))


def test_random_effects_qq_rejects_unknown_factor_and_too_few_axes(biomass):
    with pytest.raises(ValueError, match="unknown grouping factor"):
        RandomEffectsQQDisplay.from_estimator(biomass.model, factor="Plot")
    _, ax = plt.subplots()
    with pytest.raises(ValueError, match="2 panel"):
        RandomEffectsQQDisplay.from_estimator(biomass.model, ax=ax)


def test_diagnostics_panel_is_the_tutorial_two_by_two(biomass):
    display = ResidualDiagnosticsDisplay.from_estimator(biomass.model)
    assert len(display.figure_.axes) >= 4
    assert [ax.get_title() for ax in display.axes_] == [
        "Residuals vs fitted",
        "Pearson residuals",
        "Site: Intercept",
        "Site: Temp",
    ]
    geometry = {ax.get_subplotspec().get_geometry()[:2] for ax in display.axes_}
    assert geometry == {(2, 2)}
    assert len(display.residuals_vs_fitted.scatter_.get_offsets()) == 100
    assert display.residuals_vs_fitted.ax_ is display.axes_[0]


def test_plot_diagnostics_function_and_odd_panel_counts(sleep_intercept, penicillin):
    display = plot_diagnostics(sleep_intercept.model)
    assert isinstance(display, ResidualDiagnosticsDisplay)
    assert len(display.axes_) == 3  # residuals, QQ, one random-effect term
    visible = [ax for ax in display.figure_.axes if ax.get_visible()]
    assert len(visible) == 3 and len(display.figure_.axes) == 4
    crossed = plot_diagnostics(penicillin.model)
    assert [ax.get_title() for ax in crossed.axes_[2:]] == [
        "plate: Intercept",
        "sample: Intercept",
    ]


def test_diagnostics_need_random_effects():
    rng = np.random.default_rng(0)
    X = rng.normal(size=(30, 1))
    with pytest.warns(UserWarning):
        model = MixedLinearRegressor().fit(X, X[:, 0] + rng.normal(size=30))
    with pytest.raises(ValueError, match="no random effects"):
        plot_diagnostics(model)


# --------------------------------------------------------------------------
# Caterpillar
# --------------------------------------------------------------------------


def _bars(container):
    """(x lower, x upper, y) of an errorbar container's horizontal bars."""
    segments = np.array(container.lines[2][0].get_segments())
    return segments[:, 0, 0], segments[:, 1, 0], segments[:, 0, 1]


def test_caterpillar_sorted_with_level_tick_labels(biomass):
    model = biomass.model
    display = CaterpillarDisplay.from_estimator(model)
    ranef = model.random_effects_["Site"]
    order = np.argsort(ranef["Intercept"].to_numpy())
    expected_levels = [str(v) for v in ranef.index[order]]
    assert [ax.get_title() for ax in display.axes_] == [
        "Site: Intercept",
        "Site: Temp",
    ]
    first, second = display.axes_
    assert [t.get_text() for t in first.get_yticklabels()] == expected_levels
    assert first.get_shared_y_axes().joined(first, second)  # one order per factor
    # The intercept panel increases bottom to top; the slope panel follows it.
    x_intercept = display.errorbars_["Site", "Intercept"].lines[0].get_xdata()
    assert np.all(np.diff(x_intercept) > 0)
    x_slope = display.errorbars_["Site", "Temp"].lines[0].get_xdata()
    assert_allclose(x_slope, ranef["Temp"].to_numpy()[order])


def test_caterpillar_bars_span_196_conditional_sd(biomass):
    model = biomass.model
    display = CaterpillarDisplay.from_estimator(model)
    assert display.z == pytest.approx(1.96, abs=1e-3)
    ranef = model.random_effects_["Site"]
    sd = model.random_effects_cond_sd_["Site"]
    order = np.argsort(ranef["Intercept"].to_numpy())
    for term in ["Intercept", "Temp"]:
        lower, upper, y = _bars(display.errorbars_["Site", term])
        b, s = ranef[term].to_numpy()[order], sd[term].to_numpy()[order]
        assert_allclose(lower, b - Z95 * s)
        assert_allclose(upper, b + Z95 * s)
        assert_array_equal(y, np.arange(20))


def test_caterpillar_sort_options(biomass):
    model = biomass.model
    ranef = model.random_effects_["Site"]
    unsorted = CaterpillarDisplay.from_estimator(model, sort=False)
    labels = [t.get_text() for t in unsorted.axes_[0].get_yticklabels()]
    assert labels == [str(v) for v in ranef.index]
    by_slope = CaterpillarDisplay.from_estimator(model, sort_by="Temp", level=0.5)
    x_slope = by_slope.errorbars_["Site", "Temp"].lines[0].get_xdata()
    assert np.all(np.diff(x_slope) > 0)
    assert by_slope.z == pytest.approx(stats.norm.ppf(0.75))
    with pytest.raises(ValueError, match="sort_by='N' is not a term"):
        CaterpillarDisplay.from_estimator(model, sort_by="N")
    with pytest.raises(ValueError, match="level must be in"):
        CaterpillarDisplay.from_estimator(model, level=1.5)


def test_caterpillar_one_row_per_crossed_factor(penicillin):
    model = penicillin.model
    display = CaterpillarDisplay.from_estimator(model)
    assert list(display.errorbars_) == [("plate", "Intercept"), ("sample", "Intercept")]
    plate, sample = display.axes_
    assert len(plate.get_yticklabels()) == 24
    assert sorted(t.get_text() for t in sample.get_yticklabels()) == list("ABCDEF")
    only = CaterpillarDisplay.from_estimator(model, "sample")
    assert list(only.errorbars_) == [("sample", "Intercept")]


def test_caterpillar_on_given_axes_labels_every_panel(biomass):
    _, axes = plt.subplots(1, 2)
    display = CaterpillarDisplay.from_estimator(biomass.model, ax=axes)
    assert list(display.axes_) == list(axes)
    for ax in axes:
        assert len(ax.get_yticklabels()) == 20


# --------------------------------------------------------------------------
# Effect plot
# --------------------------------------------------------------------------


def test_effect_line_is_the_population_prediction_at_the_means(biomass):
    model, X, y = biomass.model, biomass.X, biomass.y
    display = EffectDisplay.from_estimator(model, X, y, "Temp", grid_resolution=25)
    grid = np.linspace(X["Temp"].min(), X["Temp"].max(), 25)
    expected = model.intercept_ + grid * model.coef_[0] + X["N"].mean() * model.coef_[1]
    assert_allclose(display.line_.get_xdata(), grid)
    assert_allclose(display.line_.get_ydata(), expected)
    assert len(display.scatter_.get_offsets()) == 100
    assert_allclose(display.scatter_.get_offsets()[:, 1], y)
    assert display.band_ is None
    assert display.ax_.get_xlabel() == "Temp"
    assert display.ax_.get_ylabel() == "Biomass"


def test_effect_wald_band_is_prediction_plus_minus_z_se(sleep_intercept):
    model, X, y = sleep_intercept.model, sleep_intercept.X, sleep_intercept.y
    display = EffectDisplay.from_estimator(model, X, y, 0, band="wald", grid=[0, 9])
    V = model.fixed_effects_cov_.to_numpy()
    G = np.array([[1.0, 0.0], [1.0, 9.0]])
    se = np.sqrt(np.diag(G @ V @ G.T))
    assert_allclose(display.lower, display.prediction - Z95 * se)
    assert_allclose(display.upper, display.prediction + Z95 * se)
    # At Days = 0 the band is the intercept's Wald interval, as lme4's confint.
    assert_allclose(
        [display.lower[0], display.upper[0]],
        _reference("sleepstudy_intercept")["wald_ci"][0],
        rtol=1e-4,
    )
    polygon = display.band_.get_paths()[0].vertices
    assert polygon[:, 1].min() == pytest.approx(display.lower.min())


def test_effect_posterior_band_without_sample_posterior_approximates_wald(biomass):
    model, X, y = _Proxy(biomass.model), biomass.X, biomass.y
    wald = EffectDisplay.from_estimator(model, X, y, "Temp", band="wald")
    draws = EffectDisplay.from_estimator(
        model, X, y, "Temp", band="posterior", n_draws=4000, random_state=0
    )
    width = (wald.upper - wald.lower).max()
    assert_allclose(draws.lower, wald.lower, atol=0.05 * width)
    assert_allclose(draws.upper, wald.upper, atol=0.05 * width)
    assert np.all(draws.lower < draws.prediction)
    again = EffectDisplay.from_estimator(
        model, X, y, "Temp", band="posterior", n_draws=4000, random_state=0
    )
    assert_array_equal(again.lower, draws.lower)


def test_effect_posterior_band_uses_sample_posterior_when_present(biomass):
    model, X, y = biomass.model, biomass.X, biomass.y
    beta = model.fixed_effects_ + pd.Series({"Intercept": 1.0, "Temp": 0.5, "N": 0})
    wrapped = _FixedPosterior(model, beta)
    display = EffectDisplay.from_estimator(
        wrapped, X, y, "Temp", band="posterior", n_draws=7, random_state=3, grid=[0, 1]
    )
    assert wrapped.calls == [(7, 3)]
    expected = (
        beta["Intercept"] + np.array([0, 1]) * beta["Temp"] + X["N"].mean() * beta["N"]
    )
    assert_allclose(display.lower, expected)  # columns matched by name
    assert_allclose(display.upper, expected)


def test_effect_posterior_draws_as_array_or_with_missing_columns(biomass):
    model, X, y = biomass.model, biomass.X, biomass.y

    class ArrayPosterior(_FixedPosterior):
        def sample_posterior(self, n_draws, random_state=None):
            draws = super().sample_posterior(n_draws, random_state)
            in_order = draws.fixed_effects.iloc[:, ::-1]
            return SimpleNamespace(fixed_effects=in_order.to_numpy())

    beta = model.fixed_effects_ * 2
    as_array = ArrayPosterior(model, beta)  # positional columns
    display = EffectDisplay.from_estimator(
        as_array, X, y, "N", band="posterior", n_draws=3, grid=[1.0]
    )
    expected = beta["Intercept"] + X["Temp"].mean() * beta["Temp"] + beta["N"]
    assert_allclose(display.lower, [expected])
    short = _FixedPosterior(model, beta.drop("N"))
    with pytest.raises(ValueError, match=r"lack fixed effect\(s\) \['N'\]"):
        EffectDisplay.from_estimator(short, X, y, "N", band="posterior", n_draws=3)


def test_effect_bootstrap_band_uses_the_bootstrap_method(biomass):
    model, X, y = biomass.model, biomass.X, biomass.y
    calls = []

    class WithBootstrap(_Proxy):
        def bootstrap(self, statistic, n_boot, random_state=None):
            calls.append((n_boot, random_state))
            curve = statistic(self._model)  # the statistic gets a refitted model
            return np.vstack([curve + k for k in range(n_boot)])

    display = EffectDisplay.from_estimator(
        WithBootstrap(model),
        X,
        y,
        "Temp",
        band="bootstrap",
        n_draws=201,
        random_state=1,
        level=0.5,
    )
    assert calls == [(201, 1)]
    assert_allclose(display.lower, display.prediction + 50)
    assert_allclose(display.upper, display.prediction + 150)
    with pytest.raises(ValueError, match="bootstrap\\(\\) method"):
        EffectDisplay.from_estimator(_Proxy(model), X, y, "Temp", band="bootstrap")


def test_effect_band_from_user_draws(sleep_intercept):
    model, X, y = sleep_intercept.model, sleep_intercept.X, sleep_intercept.y
    grid = np.arange(10.0)
    curves = np.random.default_rng(0).normal(size=(500, 10)) + grid
    display = EffectDisplay.from_estimator(
        model, X, None, "Days", band=curves, grid=grid
    )
    assert_allclose(display.lower, np.quantile(curves, 0.025, axis=0))
    assert_allclose(display.upper, np.quantile(curves, 0.975, axis=0))
    assert display.scatter_ is None
    with pytest.raises(ValueError, match="n_grid=100"):
        EffectDisplay.from_estimator(model, X, y, "Days", band=curves)


def test_effect_rejects_bad_feature_and_band(biomass):
    model, X, y = biomass.model, biomass.X, biomass.y
    with pytest.raises(ValueError, match="'Depth' is not a column"):
        EffectDisplay.from_estimator(model, X, y, "Depth")
    with pytest.raises(ValueError, match="out of range"):
        EffectDisplay.from_estimator(model, X, y, 5)
    with pytest.raises(ValueError, match="band must be one of"):
        EffectDisplay.from_estimator(model, X, y, "N", band="jackknife")
    with pytest.raises(ValueError, match="2 column"):
        EffectDisplay.from_estimator(model, X.to_numpy()[:, :1], y, 0)


def test_effect_with_array_input_names_features_x0():
    rng = np.random.default_rng(1)
    groups = np.repeat(np.arange(8), 10)
    X = rng.normal(size=(80, 2))
    y = X @ [1.0, -1.0] + rng.normal(size=8)[groups] + rng.normal(size=80)
    model = MixedLinearRegressor().fit(X, y, groups=groups)
    display = EffectDisplay.from_estimator(model, X, y, "x1", band="wald")
    assert display.ax_.get_xlabel() == "x1"
    slope = np.diff(display.prediction) / np.diff(display.grid)
    assert_allclose(slope, model.coef_[1])


# --------------------------------------------------------------------------
# Interval plot
# --------------------------------------------------------------------------


def _profile_frame(name):
    profile = _reference(name)["profile_ci"]
    names = [n.replace("(Intercept)", "Intercept") for n in profile["names"]]
    return pd.DataFrame(
        {"lower": profile["lower"], "upper": profile["upper"]}, index=names
    )


def test_interval_display_from_intervals(sleep_intercept):
    ref = _reference("sleepstudy_intercept")
    wald = pd.DataFrame(
        ref["wald_ci"], index=["Intercept", "Days"], columns=["lower", "upper"]
    )
    profile = _profile_frame("sleepstudy_intercept")
    display = IntervalDisplay.from_intervals(
        {"Wald": wald, "Profile": profile},
        estimates=sleep_intercept.model.fixed_effects_,
    )
    # Every parameter of any frame, in order of first appearance.
    assert display.parameters == ["Intercept", "Days", "sd_Intercept|Subject", "sigma"]
    assert [ax.get_title() for ax in display.axes_] == display.parameters
    for ax in display.axes_:
        assert [t.get_text() for t in ax.get_yticklabels()] == ["Wald", "Profile"]
    segments = np.array(display.lines_["Days"].get_segments())
    assert_allclose(segments[0][:, 0], wald.loc["Days"])  # Wald on top
    assert_allclose(segments[1][:, 0], profile.loc["Days"])
    assert segments[0][0, 1] > segments[1][0, 1]
    # A parameter only one method has: the other's segment is empty (NaN).
    wald_sigma, profile_sigma = display.lines_["sigma"].get_segments()
    assert wald_sigma.size == 0
    assert_allclose(profile_sigma[:, 0], profile.loc["sigma"])
    markers = display.axes_[1].lines
    assert markers[-1].get_xdata()[0] == pytest.approx(10.467286, rel=1e-5)


def test_interval_display_parameters_and_validation():
    frame = pd.DataFrame({"lower": [0.0, 1.0], "upper": [1.0, 2.0]}, index=["a", "b"])
    display = IntervalDisplay.from_intervals({"M": frame}, parameters=["b"])
    assert len(display.axes_) == 1 and display.axes_[0].get_title() == "b"
    with pytest.raises(ValueError, match="no interval is given"):
        IntervalDisplay.from_intervals({"M": frame}, parameters=["c"])
    with pytest.raises(ValueError, match="lacks column"):
        IntervalDisplay.from_intervals({"M": frame.rename(columns={"upper": "hi"})})
    with pytest.raises(TypeError, match="non-empty dict"):
        IntervalDisplay.from_intervals([frame])
    with pytest.raises(TypeError, match="must be a DataFrame"):
        IntervalDisplay.from_intervals({"M": frame.to_numpy()})


def test_interval_display_from_estimator_wald_matches_lme4(sleep_intercept):
    display = IntervalDisplay.from_estimator(_Proxy(sleep_intercept.model), "wald")
    assert display.parameters == ["Intercept", "Days"]
    assert list(display.intervals) == ["Wald"]
    expected = _reference("sleepstudy_intercept")["wald_ci"]
    assert_allclose(display.intervals["Wald"].to_numpy(), expected, rtol=1e-4)
    segments = np.array(display.lines_["Intercept"].get_segments())
    assert_allclose(segments[0][:, 0], expected[0], rtol=1e-4)
    with pytest.raises(ValueError, match="only 'wald' is available"):
        IntervalDisplay.from_estimator(_Proxy(sleep_intercept.model))


def test_interval_display_from_estimator_calls_confint(sleep_intercept):
    model = sleep_intercept.model
    calls = []

    class WithConfint(_Proxy):
        def confint(self, method="wald", level=0.95):
            calls.append((method, level))
            frame = _profile_frame("sleepstudy_intercept")
            return frame + (0.0 if method == "profile" else 1.0)

    display = IntervalDisplay.from_estimator(
        WithConfint(model),
        methods=("profile", "bootstrap"),
        level=0.9,
    )
    assert calls == [("profile", 0.9), ("bootstrap", 0.9)]
    assert list(display.intervals) == ["Profile", "Bootstrap"]
    # Only the fixed effects by default, though confint returned more.
    assert display.parameters == ["Intercept", "Days"]


# --------------------------------------------------------------------------
# Shrinkage plot
# --------------------------------------------------------------------------


def _between(mixed, no_pooling, population):
    low = np.minimum(no_pooling, population)
    high = np.maximum(no_pooling, population)
    return np.all((mixed >= low - 1e-9) & (mixed <= high + 1e-9))


def test_shrinkage_random_intercept_lies_between(dyestuff):
    model = dyestuff.model
    display = ShrinkageDisplay.from_estimator(
        model, dyestuff.X, dyestuff.y, dyestuff.groups
    )
    means = dyestuff.y.groupby(dyestuff.groups).mean()
    assert_allclose(display.no_pooling, means[display.no_pooling.index])
    assert display.population == pytest.approx(model.intercept_)
    assert _between(
        display.mixed.to_numpy(), display.no_pooling.to_numpy(), display.population
    )
    # Partial pooling really pulls in: strictly closer to the population.
    assert np.all(
        np.abs(display.mixed - display.population)
        < np.abs(display.no_pooling - display.population)
    )
    assert len(display.arrows_) == 6
    labels = [t.get_text() for t in display.ax_.get_yticklabels()]
    assert labels == list(display.no_pooling.sort_values().index)
    for arrow, level in zip(display.arrows_, labels):
        assert arrow.xyann[0] == pytest.approx(display.no_pooling[level])
        assert arrow.xy[0] == pytest.approx(display.mixed[level])
    assert display.population_line_.get_xdata()[0] == pytest.approx(model.intercept_)


def test_shrinkage_with_a_fixed_covariate(sleep_intercept):
    data = sleep_intercept
    display = ShrinkageDisplay.from_estimator(data.model, data.X, data.y, data.groups)
    # Days is balanced (0..9 in every subject): the within slope is the fixed one.
    slope = data.model.coef_[0]
    means = (data.y - slope * data.X["Days"]).groupby(data.groups).mean()
    assert_allclose(display.no_pooling, means[display.no_pooling.index], rtol=1e-6)
    assert _between(
        display.mixed.to_numpy(), display.no_pooling.to_numpy(), display.population
    )
    assert (display.n_obs == 10).all()


def test_shrinkage_of_a_random_slope_matches_per_group_least_squares(biomass):
    data = biomass
    display = ShrinkageDisplay.from_estimator(
        data.model, data.X, data.y, data.groups, term="Temp"
    )
    assert display.population == pytest.approx(data.model.fixed_effects_["Temp"])
    assert_allclose(
        display.mixed,
        data.model.fixed_effects_["Temp"] + data.model.random_effects_["Site"]["Temp"],
    )
    # Brute force: one regression with Site-specific intercepts and Temp slopes
    # and a shared N slope (R's lm(Biomass ~ N + Site / Temp - 1)).
    dummies = pd.get_dummies(data.groups).astype(float)
    design = np.hstack([dummies, dummies.mul(data.X["Temp"], axis=0), data.X[["N"]]])
    coef = np.linalg.lstsq(design, data.y, rcond=None)[0]
    m = dummies.shape[1]
    expected = pd.Series(coef[m : 2 * m], index=dummies.columns)
    assert_allclose(display.no_pooling, expected[display.no_pooling.index], rtol=1e-6)
    assert display.ax_.get_xlabel() == "Temp"


def test_shrinkage_fallback_agrees_with_no_pooling_regressor(biomass, monkeypatch):
    """Both no-pooling paths: skmixed.NoPoolingRegressor and the plain fallback."""
    if not hasattr(skmixed, "NoPoolingRegressor"):
        pytest.skip("skmixed.NoPoolingRegressor is not available")
    data = biomass
    used = []
    regressor = _shrinkage._no_pooling_regressor
    monkeypatch.setattr(
        _shrinkage,
        "_no_pooling_regressor",
        lambda *args: used.append(regressor(*args)) or used[-1],
    )
    first = ShrinkageDisplay.from_estimator(
        data.model, data.X, data.y, data.groups, term="Temp"
    )
    assert used[0] is not None  # the regressor, not the fallback, made `first`
    monkeypatch.setattr(_shrinkage, "_no_pooling_regressor", lambda *args: None)
    second = ShrinkageDisplay.from_estimator(
        data.model, data.X, data.y, data.groups, term="Temp"
    )
    assert_allclose(second.no_pooling, first.no_pooling, rtol=1e-6)


def test_shrinkage_rejects_bad_term_factor_and_data(biomass, penicillin):
    data = biomass
    with pytest.raises(ValueError, match="'N' is not a random-effect term"):
        ShrinkageDisplay.from_estimator(
            data.model, data.X, data.y, data.groups, term="N"
        )
    with pytest.raises(ValueError, match="y has 99 values"):
        ShrinkageDisplay.from_estimator(data.model, data.X, data.y[:99], data.groups)
    with pytest.raises(ValueError, match="choose one with factor"):
        ShrinkageDisplay.from_estimator(
            penicillin.model, np.empty((144, 0)), np.zeros(144), np.zeros((144, 2))
        )


# --------------------------------------------------------------------------
# Formula models: raw variables, factors' levels, the formula's grouping factor
# --------------------------------------------------------------------------


def _chicks(seed=0, n_chicks=24):
    """ChickWeight-like raw data: Time, a string Diet, a Chick per 11 rows."""
    rng = np.random.default_rng(seed)
    times = np.arange(0.0, 21.0, 2.0)
    chick = np.repeat(np.arange(n_chicks), times.size)
    diet = np.array(["A", "B", "C", "D"])[chick % 4]
    time = np.tile(times, n_chicks)
    gain = pd.Series({"A": 6.0, "B": 7.5, "C": 9.0, "D": 8.0})[diet].to_numpy()
    weight = 40 + gain * time + 0.08 * time**2 + rng.normal(0, 15, n_chicks)[chick]
    weight = weight + rng.normal(0, 3, time.size)
    return pd.DataFrame(
        {"weight": weight, "Time": time, "Diet": diet, "Chick": chick.astype(str)}
    )


@pytest.fixture(scope="module")
def chicks():
    data = _chicks()
    model = MixedLinearRegressor(
        formula="weight ~ poly(Time, 2) * Diet + (1 | Chick)"
    ).fit(data)
    return SimpleNamespace(model=model, data=data)


def test_formula_effect_along_a_raw_variable_is_the_population_prediction(chicks):
    model, data = chicks.model, chicks.data
    display = EffectDisplay.from_estimator(model, data, data["weight"], "Time")
    grid = np.linspace(0, 20, 100)
    # Typical values: Diet at its first level, the chick's is irrelevant.
    rows = pd.DataFrame({"Time": grid, "Diet": "A", "Chick": "new"})
    expected = model.predict(rows, random_effects="none")
    assert_allclose(display.line_.get_xdata(), grid)
    assert_allclose(display.line_.get_ydata(), expected)
    assert np.ptp(np.diff(display.prediction, 2)) < 1e-9  # a parabola (poly)
    assert np.diff(display.prediction, 2)[0] > 0
    assert display.ax_.get_xlabel() == "Time"
    assert display.ax_.get_ylabel() == "weight"
    assert len(display.scatter_.get_offsets()) == len(data)
    held = EffectDisplay.from_estimator(model, data, None, "Time", at={"Diet": "C"})
    assert_allclose(
        held.prediction, model.predict(rows.assign(Diet="C"), random_effects="none")
    )


def test_formula_effect_by_a_factor_draws_one_line_per_level(chicks):
    model, data = chicks.model, chicks.data
    display = EffectDisplay.from_estimator(
        model, data, None, "Time", by="Diet", band="wald", grid=[0, 10, 20]
    )
    assert display.by_levels == ["A", "B", "C", "D"]
    assert display.prediction.shape == display.lower.shape == (4, 3)
    assert len(display.lines_) == len(display.bands_) == 4
    for k, diet in enumerate("ABCD"):
        rows = pd.DataFrame({"Time": [0.0, 10, 20], "Diet": diet, "Chick": "1"})
        expected = model.predict(rows, random_effects="none")
        assert_allclose(display.lines_[k].get_ydata(), expected)
    assert np.all(display.lower < display.prediction)
    labels = [t.get_text() for t in display.ax_.get_legend().get_texts()]
    assert "Diet = C" in labels


def test_formula_effect_across_a_factor_has_one_point_per_level():
    data = _chicks(1)
    model = MixedLinearRegressor(formula="weight ~ Time + Diet + (1 | Chick)")
    model.fit(data)
    display = EffectDisplay.from_estimator(
        model, data, data["weight"], "Diet", band="wald"
    )
    assert list(display.grid) == ["A", "B", "C", "D"]
    assert display.categorical
    assert_array_equal(display.line_.get_xdata(), np.arange(4))
    beta = model.fixed_effects_
    # Time at its mean (10), Diet at each level.
    expected = beta["Intercept"] + 10 * beta["Time"]
    expected += np.r_[0, beta[["DietB", "DietC", "DietD"]]]
    assert_allclose(display.line_.get_ydata(), expected)
    # The Wald interval of level k: the SE of Intercept + 10 Time + Diet_k.
    V = model.fixed_effects_cov_.to_numpy()
    G = np.column_stack([np.ones(4), np.full(4, 10.0), np.eye(4)[:, 1:]])
    se = np.sqrt(np.diag(G @ V @ G.T))
    assert_allclose(display.upper - display.prediction, Z95 * se)
    segments = display.band_.get_segments()
    assert len(segments) == 4
    assert_allclose([s[:, 1] for s in segments], np.c_[display.lower, display.upper])
    ticks = [t.get_text() for t in display.ax_.get_xticklabels()]
    assert ticks == ["A", "B", "C", "D"]
    # Each data point sits at its level's position.
    positions = display.scatter_.get_offsets()[:, 0]
    assert_array_equal(positions, pd.Index(list("ABCD")).get_indexer(data["Diet"]))


def test_formula_effect_bands_use_the_population_prediction(chicks):
    model, data = chicks.model, chicks.data

    class WithBootstrap(_Proxy):
        def bootstrap(self, statistic, n_boot, random_state=None):
            curve = statistic(self._model)
            return np.vstack([curve + k for k in range(n_boot)])

    display = EffectDisplay.from_estimator(
        WithBootstrap(model), data, None, "Time", band="bootstrap", n_draws=101
    )
    assert_allclose(display.lower, display.prediction + 2.5)
    wald = EffectDisplay.from_estimator(model, data, None, "Time", band="wald")
    draws = EffectDisplay.from_estimator(
        _Proxy(model),
        data,
        None,
        "Time",
        band="posterior",
        n_draws=4000,
        random_state=0,
    )
    width = (wald.upper - wald.lower).max()
    assert_allclose(draws.lower, wald.lower, atol=0.05 * width)


def test_formula_effect_rejects_bad_by_and_at(chicks):
    model, data = chicks.model, chicks.data
    with pytest.raises(ValueError, match="categorical column of X other than"):
        EffectDisplay.from_estimator(model, data, None, "Diet", by="Time")
    with pytest.raises(ValueError, match=r"at names \['Dose'\]"):
        EffectDisplay.from_estimator(model, data, None, "Time", at={"Dose": 1})
    with pytest.raises(ValueError, match="'Dose' is not a column"):
        EffectDisplay.from_estimator(model, data, None, "Dose")


def test_formula_model_random_effect_and_residual_displays(chicks):
    model = chicks.model
    caterpillar = CaterpillarDisplay.from_estimator(model)
    assert [ax.get_title() for ax in caterpillar.axes_] == ["Chick: Intercept"]
    assert len(caterpillar.axes_[0].get_yticklabels()) == 24
    diagnostics = plot_diagnostics(model)
    assert [ax.get_title() for ax in diagnostics.axes_] == [
        "Residuals vs fitted",
        "Pearson residuals",
        "Chick: Intercept",
    ]
    points = diagnostics.residuals_vs_fitted.scatter_.get_offsets()
    assert_allclose(points[:, 1], model.residuals_ / model.sigma_)
    qq = RandomEffectsQQDisplay.from_estimator(model).qq_displays[0]
    assert_allclose(
        qq.sample_quantiles, np.sort(model.random_effects_["Chick"]["Intercept"])
    )


def test_formula_shrinkage_matches_the_array_model(biomass):
    data = biomass
    raw = data.X.assign(Site=data.groups.to_numpy(), Biomass=data.y.to_numpy())
    model = MixedLinearRegressor(formula="Biomass ~ Temp + N + (Temp | Site)")
    model.fit(raw)
    assert_allclose(model.fixed_effects_, data.model.fixed_effects_, rtol=1e-6)
    for term in ["Intercept", "Temp"]:
        by_formula = ShrinkageDisplay.from_estimator(model, raw, term=term)
        by_arrays = ShrinkageDisplay.from_estimator(
            data.model, data.X, data.y, data.groups, term=term
        )
        assert_allclose(
            by_formula.no_pooling, by_arrays.no_pooling[by_formula.no_pooling.index]
        )
        assert_allclose(
            by_formula.mixed,
            model.fixed_effects_[term] + model.random_effects_["Site"][term],
        )
        assert by_formula.ax_.get_ylabel() == "Site"


def test_formula_shrinkage_of_a_random_intercept_is_the_within_level_means():
    data = _chicks(2)
    model = MixedLinearRegressor(formula="weight ~ Time + (1 | Chick)").fit(data)
    display = ShrinkageDisplay.from_estimator(model, data, data["weight"])
    # Time is balanced (0..20 in every chick): the within slope is the fixed one.
    within = data["weight"] - model.fixed_effects_["Time"] * data["Time"]
    means = within.groupby(data["Chick"]).mean()
    assert_allclose(display.no_pooling, means[display.no_pooling.index])
    assert (display.n_obs == 11).all()
    with pytest.raises(ValueError, match="groups must be None"):
        ShrinkageDisplay.from_estimator(model, data, None, data["Chick"])
