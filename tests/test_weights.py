"""Prior weights and offsets against lme4 (``lmer(..., weights = w)``, ``offset()``).

References: ``tests/data/weights/make_weights.R``.
"""

import json
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from sklearn.exceptions import ConvergenceWarning
from sklearn.metrics import r2_score

from skmixed import MixedLinearRegressor

DATA = Path(__file__).parent / "data" / "weights"
REFERENCES = json.loads((DATA / "weights.json").read_text())


def _r_name(name):
    return "(Intercept)" if name == "Intercept" else name


def _fit(model, *args, **kwargs):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # few levels, singular fits
        return model.fit(*args, **kwargs)


def _assert_matches_lme4(model, ref):
    assert model.objective_ == pytest.approx(ref["criterion"], rel=1e-7, abs=1e-6)
    se = np.sqrt(np.diag(model.fixed_effects_cov_.to_numpy()))
    for name, r_se in zip(model.fixed_effects_.index, se):
        estimate = model.fixed_effects_[name]
        assert abs(estimate - ref["fixef"][_r_name(name)]) < 1e-4 * r_se
        assert r_se == pytest.approx(ref["se"][_r_name(name)], rel=1e-4)
    assert model.sigma_ == pytest.approx(ref["sigma"], rel=1e-5)
    for factor, table in model.random_effects_.items():
        for term in table.columns:
            expected = np.asarray(ref["ranef"][factor][_r_name(term)])
            scale = np.abs(expected).max()
            np.testing.assert_allclose(table[term], expected, atol=1e-4 * scale)
    np.testing.assert_allclose(model.fitted_values_, ref["fitted"], rtol=1e-6)


@pytest.fixture(scope="module")
def sleepstudy():
    return pd.read_csv(DATA / "sleepstudy_weights.csv")


@pytest.fixture(scope="module")
def penicillin():
    return pd.read_csv(DATA / "penicillin_weights.csv")


@pytest.mark.parametrize("method", ["reml", "ml"])
def test_weighted_formula_fit_equals_lmer(sleepstudy, method):
    model = MixedLinearRegressor(
        formula="Reaction ~ Days + (Days | Subject)", method=method
    )
    _fit(model, sleepstudy, sample_weight=sleepstudy["w"])
    _assert_matches_lme4(model, REFERENCES[f"sleepstudy_{method}"])


@pytest.mark.parametrize("method", ["reml", "ml"])
def test_weighted_array_fit_equals_lmer(sleepstudy, method):
    model = MixedLinearRegressor(random_slopes=["Days"], method=method)
    X, y = sleepstudy[["Days"]], sleepstudy["Reaction"]
    _fit(model, X, y, groups=sleepstudy["Subject"], sample_weight=sleepstudy["w"])
    ref = REFERENCES[f"sleepstudy_{method}"]
    assert model.objective_ == pytest.approx(ref["criterion"], rel=1e-7)
    assert model.coef_[0] == pytest.approx(ref["fixef"]["Days"], rel=1e-6)


@pytest.mark.parametrize("method", ["reml", "ml"])
def test_weights_with_an_offset_equal_lmer(sleepstudy, method):
    model = MixedLinearRegressor(
        formula="Reaction ~ Days + (Days | Subject)", method=method
    )
    _fit(model, sleepstudy, sample_weight=sleepstudy["w"], offset=sleepstudy["off"])
    _assert_matches_lme4(model, REFERENCES[f"sleepstudy_offset_{method}"])
    # predict adds the offset it is given, and only that
    np.testing.assert_allclose(
        model.predict(sleepstudy, offset=sleepstudy["off"]), model.fitted_values_
    )
    np.testing.assert_allclose(
        model.predict(sleepstudy) + sleepstudy["off"], model.fitted_values_
    )


@pytest.mark.parametrize("method", ["reml", "ml"])
def test_weighted_crossed_fit_equals_lmer(penicillin, method):
    model = MixedLinearRegressor(
        formula="diameter ~ x + (1 | plate) + (1 | sample)", method=method
    )
    _fit(model, penicillin, sample_weight=penicillin["w"])
    _assert_matches_lme4(model, REFERENCES[f"penicillin_{method}"])


def test_unit_weights_change_nothing(sleepstudy):
    model = MixedLinearRegressor(formula="Reaction ~ Days + (Days | Subject)")
    plain = _fit(model, sleepstudy)
    weighted = _fit(
        MixedLinearRegressor(formula=model.formula),
        sleepstudy,
        sample_weight=np.ones(len(sleepstudy)),
    )
    assert weighted.objective_ == pytest.approx(plain.objective_, abs=1e-9)
    np.testing.assert_allclose(weighted.coef_, plain.coef_, rtol=1e-9)


def test_zero_weight_rows_are_left_out(sleepstudy):
    w = sleepstudy["w"].to_numpy().copy()
    w[::7] = 0.0
    formula = "Reaction ~ Days + (Days | Subject)"
    weighted = _fit(MixedLinearRegressor(formula=formula), sleepstudy, sample_weight=w)
    kept = sleepstudy[w > 0]
    subset = _fit(MixedLinearRegressor(formula=formula), kept, sample_weight=w[w > 0])
    assert weighted.objective_ == pytest.approx(subset.objective_, rel=1e-10)
    np.testing.assert_allclose(weighted.coef_, subset.coef_, rtol=1e-9)
    # every row given has a fitted value, predicted as predict would
    assert weighted.fitted_values_.shape == (len(sleepstudy),)
    np.testing.assert_allclose(weighted.fitted_values_, weighted.predict(sleepstudy))
    np.testing.assert_allclose(weighted.fitted_values_[w > 0], subset.fitted_values_)


def test_weights_are_precisions_not_frequencies():
    # A weight of 2 is one row twice as precise: the same estimates of beta
    # and theta as the row given twice only when sigma is known; here the
    # residual variance is estimated from n rows, so they differ.
    rng = np.random.default_rng(0)
    g = np.repeat(np.arange(8), 6)
    X = rng.normal(size=(48, 1))
    y = X[:, 0] + rng.normal(size=8)[g] + rng.normal(size=48)
    w = np.full(48, 2.0)
    weighted = _fit(MixedLinearRegressor(), X, y, groups=g, sample_weight=w)
    plain = _fit(MixedLinearRegressor(), X, y, groups=g)
    # Var(e) = sigma^2 / 2 with the same residual variance: sigma^2 doubles
    assert weighted.sigma_ == pytest.approx(np.sqrt(2) * plain.sigma_, rel=1e-6)
    np.testing.assert_allclose(weighted.coef_, plain.coef_, rtol=1e-7)


@pytest.mark.parametrize(
    "weights, message",
    [
        (-np.ones(48), "non-negative"),
        (np.zeros(48), "zero on every row"),
        (np.ones(47), r"shape \(48,\)"),
        (np.full(48, np.nan), "NaN or infinity"),
        (np.array(["a"] * 48), "numeric"),
    ],
)
def test_bad_weights_are_refused_by_name(weights, message):
    rng = np.random.default_rng(1)
    X, y, g = rng.normal(size=(48, 1)), rng.normal(size=48), np.repeat(np.arange(8), 6)
    with pytest.raises(ValueError, match=message):
        MixedLinearRegressor().fit(X, y, groups=g, sample_weight=weights)


def test_offset_shifts_the_response():
    rng = np.random.default_rng(2)
    g = np.repeat(np.arange(8), 6)
    X = rng.normal(size=(48, 1))
    offset = rng.normal(size=48)
    y = 1 + X[:, 0] + rng.normal(size=8)[g] + rng.normal(size=48)
    with_offset = _fit(MixedLinearRegressor(), X, y + offset, groups=g, offset=offset)
    plain = _fit(MixedLinearRegressor(), X, y, groups=g)
    assert with_offset.objective_ == pytest.approx(plain.objective_, abs=1e-8)
    np.testing.assert_allclose(
        with_offset.predict(X, g, offset=offset), plain.predict(X, g) + offset
    )
    expected = r2_score(y + offset, plain.predict(X, g) + offset)
    assert with_offset.score(X, y + offset, g, offset=offset) == pytest.approx(expected)


def test_weighted_bootstrap_simulates_with_the_weights(sleepstudy):
    # Residuals of row i are drawn with SD sigma / sqrt(w_i): the bootstrap
    # distribution of sigma is centred on the weighted fit's sigma.
    model = _fit(
        MixedLinearRegressor(formula="Reaction ~ Days + (Days | Subject)"),
        sleepstudy,
        sample_weight=sleepstudy["w"],
    )
    result = model.bootstrap(lambda m: np.array([m.sigma_]), n_boot=40, random_state=0)
    assert np.nanmean(result.replicates) == pytest.approx(model.sigma_, rel=0.05)


def test_constant_response_is_a_defined_fit_with_a_warning():
    g = np.repeat(np.arange(6), 4)
    X = np.random.default_rng(3).normal(size=(24, 1))
    with pytest.warns(ConvergenceWarning, match="fit the response exactly"):
        model = _fit_warning_free(MixedLinearRegressor(), X, np.full(24, 3.0), g)
    assert model.sigma_ == 0.0 and not model.converged_
    assert model.intercept_ == pytest.approx(3.0)
    assert model.coef_ == pytest.approx([0.0], abs=1e-12)
    np.testing.assert_allclose(model.predict(X, g), 3.0)
    assert "fit the response exactly" in str(model.summary())
    # what needs residual variation is refused by name, with no RuntimeWarning
    from skmixed import anova

    for method in (
        lambda: model.confint(method="profile"),
        lambda: model.bootstrap(lambda m: m.coef_, n_boot=2),
        lambda: model.sample_posterior(5),
        lambda: model.predict_interval(X[:2], g[:2]),
        lambda: anova(model),
        lambda: anova(model, model),
    ):
        with pytest.raises(ValueError, match="not defined for this fit"):
            method()


def test_y_linear_in_x_is_an_exact_fit():
    g = np.repeat(np.arange(6), 4)
    X = np.random.default_rng(5).normal(size=(24, 2))
    with pytest.warns(ConvergenceWarning, match="fit the response exactly"):
        model = _fit_warning_free(MixedLinearRegressor(), X, 1 + X @ [2.0, -1.0], g)
    assert model.sigma_ == 0.0
    np.testing.assert_allclose(model.coef_, [2.0, -1.0])


def _fit_warning_free(model, X, y, groups):
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", "boundary", UserWarning)
        return model.fit(X, y, groups=groups)


def test_dask_weights_and_offset_equal_in_memory(sleepstudy):
    dd = pytest.importorskip("dask.dataframe")
    frame = sleepstudy.assign(w=np.where(np.arange(len(sleepstudy)) % 9 == 0, 0.0, 1.0))
    frame["w"] += sleepstudy["w"] * (frame["w"] > 0)
    ddf = dd.from_pandas(frame, npartitions=4, sort=False)
    formula = "Reaction ~ Days + (Days | Subject)"
    memory = _fit(
        MixedLinearRegressor(formula=formula),
        frame,
        sample_weight=frame["w"],
        offset=frame["off"],
    )
    lazy = _fit(
        MixedLinearRegressor(formula=formula),
        ddf,
        sample_weight=ddf["w"],
        offset=ddf["off"],
    )
    assert lazy.objective_ == pytest.approx(memory.objective_, rel=1e-10)
    np.testing.assert_allclose(lazy.coef_, memory.coef_, rtol=1e-8)
    np.testing.assert_allclose(
        lazy.fitted_values_.compute(), memory.fitted_values_, rtol=1e-8
    )
    predicted = lazy.predict(ddf, offset=ddf["off"]).compute()
    np.testing.assert_allclose(predicted, memory.predict(frame, offset=frame["off"]))
    assert lazy.score(ddf, offset=ddf["off"]) == pytest.approx(
        memory.score(frame, offset=frame["off"])
    )
    # arrays: X, y, groups, weights as dask arrays
    da = pytest.importorskip("dask.array")
    X = da.from_array(frame[["Days"]].to_numpy(), chunks=50)
    arrays = _fit(
        MixedLinearRegressor(random_slopes=[0]),
        X,
        da.from_array(frame["Reaction"].to_numpy(), chunks=50),
        groups=da.from_array(frame["Subject"].to_numpy(), chunks=50),
        sample_weight=da.from_array(frame["w"].to_numpy(), chunks=50),
        offset=da.from_array(frame["off"].to_numpy(), chunks=50),
    )
    assert arrays.objective_ == pytest.approx(memory.objective_, rel=1e-10)


def test_weights_and_offset_are_routed_through_a_pipeline_and_cv(sleepstudy):
    import sklearn
    from sklearn.model_selection import GroupKFold, cross_validate
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    X, y = sleepstudy[["Days"]], sleepstudy["Reaction"]
    g, w, off = sleepstudy["Subject"], sleepstudy["w"], sleepstudy["off"]
    with sklearn.config_context(enable_metadata_routing=True):
        model = (
            MixedLinearRegressor(random_slopes=[0])
            .set_fit_request(groups=True, sample_weight=True, offset=True)
            .set_score_request(groups=True, sample_weight=True, offset=True)
        )
        pipe = make_pipeline(
            StandardScaler().set_fit_request(sample_weight=False), model
        )
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)
            _fit(pipe, X, y, groups=g, sample_weight=w, offset=off)
            scores = cross_validate(
                pipe,
                X,
                y,
                cv=GroupKFold(3),
                params={"groups": g, "sample_weight": w, "offset": off},
            )["test_score"]
    direct = _fit(
        MixedLinearRegressor(random_slopes=[0]),
        StandardScaler().fit_transform(X),
        y,
        groups=g,
        sample_weight=w,
        offset=off,
    )
    assert pipe[-1].objective_ == pytest.approx(direct.objective_, rel=1e-10)
    # each fold's score uses the routed weights and offsets, as by hand
    by_hand = []
    for train, test in GroupKFold(3).split(X, y, g):
        scaler = StandardScaler().fit(X.iloc[train])
        fold = _fit(
            MixedLinearRegressor(random_slopes=[0]),
            scaler.transform(X.iloc[train]),
            y.iloc[train],
            groups=g.iloc[train],
            sample_weight=w.iloc[train],
            offset=off.iloc[train],
        )
        by_hand.append(
            fold.score(
                scaler.transform(X.iloc[test]),
                y.iloc[test],
                g.iloc[test],
                sample_weight=w.iloc[test],
                offset=off.iloc[test],
            )
        )
    np.testing.assert_allclose(scores, by_hand, rtol=1e-10)


def test_simulate_and_predict_interval_add_the_offset():
    rng = np.random.default_rng(4)
    g = np.repeat(np.arange(8), 6)
    X = rng.normal(size=(48, 1))
    offset = rng.normal(size=48) * 5
    y = X[:, 0] + rng.normal(size=8)[g] + rng.normal(size=48) + offset
    model = _fit(MixedLinearRegressor(), X, y, groups=g, offset=offset)
    plain = model.simulate(X, g, n=3, random_state=0)
    shifted = model.simulate(X, g, n=3, random_state=0, offset=offset)
    np.testing.assert_allclose(shifted, plain + offset[:, None])
    a = model.predict_interval(X, g, n_draws=50, random_state=0)
    b = model.predict_interval(X, g, n_draws=50, random_state=0, offset=offset)
    np.testing.assert_allclose(b.to_numpy(), a.to_numpy() + offset[:, None])
    np.testing.assert_allclose(b["fit"], model.predict(X, g, offset=offset))
