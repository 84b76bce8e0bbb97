"""The displays in the workflows users build (scikit-learn issue-13 cases).

Models fitted with ``group_column``, Pipelines with a ColumnTransformer
(the group column passed through, or groups routed by metadata routing),
the pooling baselines, pandas and polars frames, per-method ``confint``
arguments, and plots of many levels.
"""

import warnings
from types import SimpleNamespace

import matplotlib

matplotlib.use("Agg")  # headless; before pyplot is imported anywhere

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import polars as pl  # noqa: E402
import pytest  # noqa: E402
import sklearn  # noqa: E402
from numpy.testing import assert_allclose  # noqa: E402
from sklearn.compose import ColumnTransformer  # noqa: E402
from sklearn.exceptions import NotFittedError  # noqa: E402
from sklearn.pipeline import make_pipeline  # noqa: E402
from sklearn.preprocessing import OneHotEncoder, StandardScaler  # noqa: E402

from skmixed import (  # noqa: E402
    CompletePoolingRegressor,
    MixedLinearRegressor,
    NoPoolingRegressor,
)
from skmixed.datasets import load_biomass  # noqa: E402
from skmixed.plotting import (  # noqa: E402
    CaterpillarDisplay,
    EffectDisplay,
    IntervalDisplay,
    QQDisplay,
    RandomEffectsQQDisplay,
    ResidualDiagnosticsDisplay,
    ResidualsVsFittedDisplay,
    ShrinkageDisplay,
    plot_diagnostics,
)


@pytest.fixture(autouse=True)
def close_figures():
    yield
    plt.close("all")


@pytest.fixture(scope="module")
def biomass():
    """Biomass ~ Temp + N + (1 + Temp | Site), fitted on arrays with groups."""
    X, y, groups = load_biomass(return_X_y_groups=True)
    model = MixedLinearRegressor(random_slopes=["Temp"]).fit(X, y, groups=groups)
    frame = pd.concat([X, groups], axis=1)  # columns Temp, N, Site (strings)
    return SimpleNamespace(X=X, y=y, groups=groups, frame=frame, model=model)


def _as(kind, frame):
    return pl.from_pandas(frame) if kind == "polars" else frame


def _scaler(passthrough, output="pandas"):
    """Scale Temp and N; the Site column passes through under its own name."""
    if passthrough == "remainder":
        transformer = ColumnTransformer(
            [("scale", StandardScaler(), ["Temp", "N"])],
            remainder="passthrough",
            verbose_feature_names_out=False,
        )
    else:
        transformer = ColumnTransformer(
            [
                ("scale", StandardScaler(), ["Temp", "N"]),
                ("site", "passthrough", ["Site"]),
            ],
            verbose_feature_names_out=False,
        )
    return transformer.set_output(transform=output)


def _every_display(estimator, X, y, groups=None):
    """Draw every display of a mixed model; return them by name (figures closed)."""
    displays = {
        "effect": EffectDisplay.from_estimator(estimator, X, y, "Temp", band="wald"),
        "shrinkage": ShrinkageDisplay.from_estimator(
            estimator, X, y, groups, term="Temp"
        ),
        "caterpillar": CaterpillarDisplay.from_estimator(estimator),
        "diagnostics": plot_diagnostics(estimator),
        "residuals": ResidualsVsFittedDisplay.from_estimator(estimator),
        "qq": QQDisplay.from_estimator(estimator),
        "ranef_qq": RandomEffectsQQDisplay.from_estimator(estimator),
        "intervals": IntervalDisplay.from_estimator(estimator, "wald"),
    }
    plt.close("all")
    return displays


def _assert_same_displays(got, expected):
    """The same curves, bands and shrinkage as the plain array model's."""
    for key in ["prediction", "lower", "upper", "grid"]:
        assert_allclose(
            getattr(got["effect"], key), getattr(expected["effect"], key), rtol=1e-5
        )
    for key in ["no_pooling", "mixed"]:
        assert_allclose(
            getattr(got["shrinkage"], key),
            getattr(expected["shrinkage"], key),
            rtol=1e-5,
            atol=1e-7,
        )
    assert got["effect"].ax_.get_xlabel() == "Temp"
    assert len(got["caterpillar"].axes_) == 2
    assert len(got["diagnostics"].axes_) == 4


# --------------------------------------------------------------------------
# 1. Models fitted with group_column: X keeps its group column
# --------------------------------------------------------------------------


@pytest.mark.parametrize("kind", ["pandas", "polars"])
def test_every_display_reads_a_group_column_model(biomass, kind):
    frame = _as(kind, biomass.frame)
    model = MixedLinearRegressor(group_column="Site", random_slopes=["Temp"])
    model.fit(frame, biomass.y)
    got = _every_display(model, frame, biomass.y)
    expected = _every_display(biomass.model, biomass.X, biomass.y, biomass.groups)
    _assert_same_displays(got, expected)
    # The Site column is held at its first level: the line is the population one.
    grid = pd.DataFrame({"Temp": got["effect"].grid, "N": biomass.X["N"].mean()})
    population = biomass.model.predict(grid)
    assert_allclose(got["effect"].prediction, population, rtol=1e-5)
    assert got["shrinkage"].ax_.get_ylabel() == "Site"


def test_group_column_model_refuses_groups_twice_and_needs_its_column(biomass):
    model = MixedLinearRegressor(group_column="Site").fit(biomass.frame, biomass.y)
    with pytest.raises(ValueError, match="groups were passed although"):
        ShrinkageDisplay.from_estimator(model, biomass.frame, biomass.y, biomass.groups)
    with pytest.raises(ValueError, match=r"lacks the fitted column\(s\) \['Site'\]"):
        EffectDisplay.from_estimator(model, biomass.X, biomass.y, "Temp")
    with pytest.raises(ValueError, match="feature='Site' is a group column"):
        EffectDisplay.from_estimator(model, biomass.frame, biomass.y, "Site")


# --------------------------------------------------------------------------
# 2. Pipelines: the group column passed through, or groups routed
# --------------------------------------------------------------------------


@pytest.mark.parametrize("kind", ["pandas", "polars"])
@pytest.mark.parametrize("passthrough", ["remainder", "explicit"])
def test_every_display_reads_a_pipeline_with_a_passed_through_group_column(
    biomass, kind, passthrough
):
    frame = _as(kind, biomass.frame)
    pipe = make_pipeline(
        _scaler(passthrough, output=kind),
        MixedLinearRegressor(group_column="Site", random_slopes=["Temp"]),
    ).fit(frame, biomass.y)
    got = _every_display(pipe, frame, biomass.y)
    # Scaling is affine: along raw Temp, the same population line and band
    # as the model fitted on the raw columns (an unstructured covariance
    # is closed under it).
    expected = _every_display(biomass.model, biomass.X, biomass.y, biomass.groups)
    for key in ["prediction", "lower", "upper", "grid"]:
        assert_allclose(
            getattr(got["effect"], key), getattr(expected["effect"], key), rtol=1e-4
        )
    assert_allclose(got["effect"].x_data, biomass.X["Temp"])  # raw, not scaled
    # The shrinkage is that of the features the model sees (scaled Temp).
    sd = biomass.X["Temp"].std(ddof=0)
    assert_allclose(
        got["shrinkage"].no_pooling,
        expected["shrinkage"].no_pooling * sd,
        rtol=1e-4,
    )
    assert_allclose(got["shrinkage"].mixed, expected["shrinkage"].mixed * sd, rtol=1e-4)


def test_displays_read_a_pipeline_whose_groups_are_routed(biomass):
    X, y, groups = biomass.X, biomass.y, biomass.groups
    scale = ColumnTransformer(
        [("scale", StandardScaler(), ["Temp", "N"])], verbose_feature_names_out=False
    ).set_output(transform="pandas")
    with sklearn.config_context(enable_metadata_routing=True):
        model = MixedLinearRegressor(random_slopes=["Temp"]).set_fit_request(
            groups=True
        )
        pipe = make_pipeline(scale, model).fit(X, y, groups=groups)
        inside = _every_display(pipe, X, y, groups)
    outside = _every_display(pipe, X, y, groups)
    expected = _every_display(biomass.model, X, y, groups)
    for got in [inside, outside]:
        assert_allclose(got["effect"].prediction, expected["effect"].prediction, 1e-4)
        assert_allclose(got["effect"].upper, expected["effect"].upper, rtol=1e-4)
        assert_allclose(got["effect"].grid, expected["effect"].grid)
    with pytest.raises(ValueError, match="y and groups are required"):
        ShrinkageDisplay.from_estimator(pipe, X, y)


def test_effect_of_a_pipeline_on_arrays_names_the_inputs_x0(biomass):
    X, y, groups = biomass.X.to_numpy(), biomass.y, biomass.groups
    with sklearn.config_context(enable_metadata_routing=True):
        model = MixedLinearRegressor().set_fit_request(groups=True)
        pipe = make_pipeline(StandardScaler(), model).fit(X, y, groups=groups)
    display = EffectDisplay.from_estimator(pipe, X, y, 0, band="wald")
    assert display.ax_.get_xlabel() == "x0"
    assert_allclose(display.grid[[0, -1]], [X[:, 0].min(), X[:, 0].max()])
    rows = np.column_stack([display.grid, np.full(display.grid.size, X[:, 1].mean())])
    assert_allclose(display.prediction, pipe.predict(rows))


def test_effect_of_a_pipeline_across_an_encoded_categorical_input(biomass):
    frame = biomass.frame.assign(
        Soil=np.where(biomass.X["N"].to_numpy() > 0, "loam", "clay")
    )
    encode = ColumnTransformer(
        [
            ("scale", StandardScaler(), ["Temp", "N"]),
            ("soil", OneHotEncoder(drop="first", sparse_output=False), ["Soil"]),
        ],
        remainder="passthrough",
        verbose_feature_names_out=False,
    ).set_output(transform="pandas")
    pipe = make_pipeline(encode, MixedLinearRegressor(group_column="Site"))
    pipe.fit(frame, biomass.y)
    display = EffectDisplay.from_estimator(pipe, frame, biomass.y, "Soil", band="wald")
    assert display.categorical and list(display.grid) == ["clay", "loam"]
    rows = pd.DataFrame(
        {
            "Temp": biomass.X["Temp"].mean(),
            "N": biomass.X["N"].mean(),
            "Site": "Site1",
            "Soil": ["clay", "loam"],
        }
    )
    expected = pipe[-1].predict(pipe[:-1].transform(rows), random_effects="none")
    assert_allclose(display.prediction, expected)
    assert np.all(display.lower < display.prediction)
    ticks = [t.get_text() for t in display.ax_.get_xticklabels()]
    assert ticks == ["clay", "loam"]


@pytest.mark.parametrize("kind", ["pandas", "polars"])
def test_effect_of_the_pooling_baselines_in_a_pipeline(biomass, kind):
    frame = _as(kind, biomass.frame)
    grid = np.linspace(biomass.X["Temp"].min(), biomass.X["Temp"].max(), 100)
    mean_n = biomass.X["N"].mean()
    complete = make_pipeline(
        _scaler("remainder", kind), CompletePoolingRegressor(group_column="Site")
    ).fit(frame, biomass.y)
    display = EffectDisplay.from_estimator(complete, frame, biomass.y, "Temp")
    ols = CompletePoolingRegressor().fit(biomass.X, biomass.y)
    line = ols.intercept_ + ols.coef_[0] * grid + ols.coef_[1] * mean_n
    assert_allclose(display.prediction, line)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # slopes a level cannot fit
        no_pooling = make_pipeline(
            _scaler("remainder", kind),
            NoPoolingRegressor(group_column="Site", group_slopes=["Temp"]),
        ).fit(frame, biomass.y)
        raw = NoPoolingRegressor(group_slopes=["Temp"]).fit(
            biomass.X, biomass.y, groups=biomass.groups
        )
    display = EffectDisplay.from_estimator(no_pooling, frame, biomass.y, "Temp")
    # The mean of the levels' lines (lme4's fixef of an lmList), in raw units.
    line = raw.intercept_ + raw.coef_[0] * grid + raw.coef_[1] * mean_n
    assert_allclose(display.prediction, line, rtol=1e-6)
    with pytest.raises(ValueError, match="needs the fixed effects' covariance"):
        EffectDisplay.from_estimator(complete, frame, biomass.y, "Temp", band="wald")


def test_displays_refuse_an_unfitted_pipeline_or_one_without_a_model(biomass):
    pipe = make_pipeline(_scaler("remainder"), MixedLinearRegressor())
    for draw in [
        lambda: CaterpillarDisplay.from_estimator(pipe),
        lambda: plot_diagnostics(pipe),
        lambda: EffectDisplay.from_estimator(pipe, biomass.frame, None, "Temp"),
        lambda: IntervalDisplay.from_estimator(pipe, "wald"),
    ]:
        with pytest.raises(NotFittedError):
            draw()
    fitted = make_pipeline(_scaler("remainder"), "passthrough").fit(biomass.frame)
    with pytest.raises(TypeError, match="last step must be a fitted skmixed model"):
        ResidualDiagnosticsDisplay.from_estimator(fitted)


# --------------------------------------------------------------------------
# 3. IntervalDisplay: confint arguments per method, variance parameters
# --------------------------------------------------------------------------


@pytest.fixture(scope="module")
def site_pipeline(biomass):
    pipe = make_pipeline(
        _scaler("remainder"),
        MixedLinearRegressor(group_column="Site", random_slopes=["Temp"]),
    )
    return pipe.fit(biomass.frame, biomass.y)


def test_interval_display_takes_confint_arguments_per_method(site_pipeline):
    model = site_pipeline[-1]
    boot = {"n_boot": 20, "random_state": 0}
    display = IntervalDisplay.from_estimator(
        site_pipeline,
        ["wald", "bootstrap"],
        parameters="all",
        level=0.9,
        confint_params={"bootstrap": boot},
    )
    expected = model.confint(method="bootstrap", level=0.9, **boot)
    assert_allclose(display.intervals["Bootstrap"], expected)
    assert_allclose(display.intervals["Wald"], model.confint(level=0.9))
    assert display.parameters == list(expected.index)  # lme4's order, all of them
    assert display.parameters[:4] == [
        "sd_Intercept|Site",
        "cor_Temp.Intercept|Site",
        "sd_Temp|Site",
        "sigma",
    ]


def test_interval_display_variance_panels_show_the_estimate(site_pipeline):
    model = site_pipeline[-1]
    display = IntervalDisplay.from_estimator(
        site_pipeline,
        ["bootstrap"],
        parameters=["sd_Temp|Site", "cor_Temp.Intercept|Site", "sigma", "Temp"],
        confint_params={"bootstrap": {"n_boot": 10, "random_state": 1}},
    )
    cov = model.random_effects_cov_["Site"]
    sd = np.sqrt(np.diag(cov))
    expected = [sd[1], cov.iloc[1, 0] / (sd[0] * sd[1]), model.sigma_, model.coef_[0]]
    for panel, value in zip(display.axes_, expected):
        marker = panel.lines[-1]  # the estimate's marker, after its dotted line
        assert marker.get_xdata()[0] == pytest.approx(value)


def test_interval_display_refuses_a_flat_confint_params(site_pipeline):
    flat = {"n_boot": 100, "random_state": 0}
    with pytest.raises(ValueError, match=r"got \['n_boot', 'random_state'\], which"):
        IntervalDisplay.from_estimator(site_pipeline, confint_params=flat)
    with pytest.raises(ValueError, match="pass level= for the level"):
        IntervalDisplay.from_estimator(site_pipeline, confint_params={"level": 0.9})
    with pytest.raises(ValueError, match=r"method\(s\) \['bootstrap'\], which are"):
        IntervalDisplay.from_estimator(
            site_pipeline, "wald", confint_params={"bootstrap": {"n_boot": 5}}
        )
    with pytest.raises(TypeError, match=r"confint_params\['wald'\].*method='wald'"):
        IntervalDisplay.from_estimator(
            site_pipeline, "wald", confint_params={"wald": {"n_boot": 5}}
        )
    with pytest.raises(ValueError, match="level= of from_estimator"):
        IntervalDisplay.from_estimator(
            site_pipeline, "wald", confint_params={"wald": {"level": 0.5}}
        )
    with pytest.raises(TypeError, match="must be a dict of keyword arguments"):
        IntervalDisplay.from_estimator(
            site_pipeline, "bootstrap", confint_params={"bootstrap": 100}
        )


# --------------------------------------------------------------------------
# 4. Many levels and many points
# --------------------------------------------------------------------------


def _many_sites(n_sites, n_per_site=4, seed=0):
    """Temp, N and a string Site of ``n_sites`` levels; the response."""
    rng = np.random.default_rng(seed)
    site = np.repeat(np.arange(n_sites), n_per_site)
    n = site.size
    frame = pd.DataFrame(
        {
            "Temp": rng.normal(size=n),
            "N": rng.normal(size=n),
            "Site": [f"site_{s:03d}" for s in site],
        }
    )
    intercepts, slopes = rng.normal(size=(2, n_sites))
    y = 1 + frame["Temp"] * (0.5 + 0.5 * slopes[site]) + intercepts[site]
    y = y + 2 * frame["N"] + rng.normal(scale=0.5, size=n)
    return frame, pd.Series(y, name="Biomass")


def _fit_sites(n_sites, **params):
    frame, y = _many_sites(n_sites)
    pipe = make_pipeline(
        _scaler("remainder"),
        MixedLinearRegressor(group_column="Site", **params),
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # a singular fit is fine here
        pipe.fit(frame, y)
    return pipe, frame, y


def _label_boxes(ax):
    """The window extents of an Axes' visible y tick labels, bottom to top."""
    fig = ax.figure
    fig.canvas.draw()
    renderer = fig.canvas.get_renderer()
    labels = [t for t in ax.get_yticklabels() if t.get_visible() and t.get_text()]
    return sorted(
        (t.get_window_extent(renderer) for t in labels), key=lambda box: box.y0
    )


def _assert_apart_and_inside(boxes, fig):
    for low, high in zip(boxes, boxes[1:]):
        assert low.y1 <= high.y0, (low, high)
    height = fig.get_figheight() * fig.dpi
    assert boxes[0].y0 >= 0 and boxes[-1].y1 <= height


def test_sixty_levels_get_one_readable_label_each():
    pipe, frame, y = _fit_sites(60, random_slopes=["Temp"])
    shrinkage = ShrinkageDisplay.from_estimator(pipe, frame, y)
    boxes = _label_boxes(shrinkage.ax_)
    assert len(boxes) == 60
    _assert_apart_and_inside(boxes, shrinkage.figure_)
    caterpillar = CaterpillarDisplay.from_estimator(pipe)
    boxes = _label_boxes(caterpillar.axes_[0])
    assert len(boxes) == 60
    _assert_apart_and_inside(boxes, caterpillar.figure_)
    assert caterpillar.figure_.get_figheight() > 10  # grown with the levels


def test_levels_on_a_small_given_axes_are_labelled_every_kth():
    pipe, frame, y = _fit_sites(60)
    _, ax = plt.subplots(figsize=(5, 3))
    display = ShrinkageDisplay.from_estimator(pipe, frame, y, ax=ax)
    boxes = _label_boxes(display.ax_)
    assert 5 <= len(boxes) < 60
    _assert_apart_and_inside(boxes, display.figure_)
    assert len(display.arrows_) == 60  # every level is drawn, some unlabelled


def test_max_levels_keeps_the_largest_effects_of_hundreds():
    pipe, frame, y = _fit_sites(300)
    model = pipe[-1]
    ranef = model.random_effects_["Site"]["Intercept"]
    top = set(ranef.abs().sort_values(ascending=False).index[:25])
    shrinkage = ShrinkageDisplay.from_estimator(pipe, frame, y, max_levels=25)
    assert set(shrinkage.levels_) == top
    assert len(shrinkage.arrows_) == 25
    assert "(25 of 300 levels)" in shrinkage.ax_.get_title()
    _assert_apart_and_inside(_label_boxes(shrinkage.ax_), shrinkage.figure_)
    caterpillar = CaterpillarDisplay.from_estimator(pipe, max_levels=25)
    drawn = caterpillar.levels_["Site"]
    assert set(drawn) == top
    assert list(ranef[drawn]) == sorted(ranef[drawn])  # still sorted
    assert caterpillar.axes_[0].get_title() == "Site: Intercept (25 of 300 levels)"
    boxes = _label_boxes(caterpillar.axes_[0])
    assert len(boxes) == 25
    _assert_apart_and_inside(boxes, caterpillar.figure_)
    # All 300 without max_levels: a bounded figure, every k-th level labelled.
    everything = CaterpillarDisplay.from_estimator(pipe)
    assert everything.figure_.get_figheight() <= 30
    boxes = _label_boxes(everything.axes_[0])
    assert len(boxes) < 300
    _assert_apart_and_inside(boxes, everything.figure_)
    with pytest.raises(ValueError, match="at least 1"):
        ShrinkageDisplay.from_estimator(pipe, frame, y, max_levels=0)
    with pytest.raises(TypeError, match="positive int"):
        CaterpillarDisplay.from_estimator(pipe, max_levels=2.5)


def test_residual_scatters_grow_transparent_with_the_number_of_points():
    alphas = []
    for n_sites in [10, 500, 5000]:
        pipe, _, _ = _fit_sites(n_sites)
        display = plot_diagnostics(pipe)
        residuals = display.residuals_vs_fitted.scatter_
        assert len(residuals.get_offsets()) == 4 * n_sites
        assert display.qq.scatter_.get_alpha() == residuals.get_alpha()
        alphas.append(residuals.get_alpha())
    assert alphas[0] >= 0.7  # 40 points: plainly visible
    assert alphas[0] > alphas[1] > alphas[2]
    assert alphas[2] <= 0.15  # 20,000 points
    assert display.residuals_vs_fitted.scatter_.get_rasterized()
    chosen = ResidualsVsFittedDisplay.from_estimator(
        pipe, scatter_kwargs={"alpha": 1.0}
    )
    assert chosen.scatter_.get_alpha() == 1.0


def test_residual_plots_of_a_weighted_fit_are_standardised_by_the_weights(biomass):
    weights = np.linspace(0.5, 2.0, len(biomass.y))
    model = MixedLinearRegressor(group_column="Site").fit(
        biomass.frame, biomass.y, sample_weight=weights
    )
    display = plot_diagnostics(model)
    expected = np.sqrt(weights) * model.residuals_ / model.sigma_  # Var = sigma^2/w
    points = display.residuals_vs_fitted.scatter_.get_offsets()
    assert_allclose(points[:, 1], expected)
    assert_allclose(display.qq.sample_quantiles, np.sort(expected))
