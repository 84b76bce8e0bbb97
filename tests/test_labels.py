"""Group labels at prediction time: unseen, missing, or of another kind."""

import warnings

import numpy as np
import pandas as pd
import pytest

from skmixed import MixedLinearRegressor
from skmixed.exceptions import UnseenLevelsWarning


@pytest.fixture(scope="module")
def fitted():
    rng = np.random.default_rng(0)
    g = np.repeat(np.arange(10), 8)  # integer labels 0..9
    X = pd.DataFrame({"x": rng.normal(size=80)})
    y = 1 + X["x"] + rng.normal(size=10)[g] + 0.3 * rng.normal(size=80)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        model = MixedLinearRegressor().fit(X, y, groups=g)
    return model, X, g


def test_same_labels_as_strings_warn_of_the_kind(fitted):
    model, X, g = fitted
    with pytest.warns(UnseenLevelsWarning, match="are string but .* numeric labels"):
        as_strings = model.predict(X, groups=g.astype(str))
    np.testing.assert_allclose(as_strings, model.predict(X))  # population


def test_no_label_seen_warns(fitted):
    model, X, g = fitted
    with pytest.warns(UnseenLevelsWarning, match="none of the 80 row"):
        model.predict(X, groups=g + 100)


def test_most_rows_unseen_warns_with_the_share(fitted):
    model, X, g = fitted
    labels = np.where(np.arange(80) < 48, 999, g)  # 60% unseen
    with pytest.warns(UnseenLevelsWarning, match=r"48 of 80 row\(s\) \(60%\)"):
        model.predict(X, groups=labels)


def test_a_few_unseen_rows_do_not_warn(fitted):
    model, X, g = fitted
    labels = np.where(np.arange(80) < 8, 999, g)
    with warnings.catch_warnings():
        warnings.simplefilter("error", UnseenLevelsWarning)
        y = model.predict(X, groups=labels)
    np.testing.assert_allclose(y[:8], model.predict(X[:8]))


def test_missing_label_at_predict_is_a_new_level(fitted):
    model, X, g = fitted
    labels = pd.Series(g, dtype="float").mask(np.arange(80) == 5)
    y = model.predict(X, groups=labels)
    assert np.isfinite(y).all()
    assert y[5] == pytest.approx(model.predict(X.iloc[[5]])[0])
    assert y[6] == pytest.approx(model.predict(X.iloc[[6]], groups=g[[6]])[0])


def test_missing_label_at_fit_is_an_error(fitted):
    _, X, g = fitted
    labels = pd.Series(g, dtype="float").mask(np.arange(80) == 5)
    with pytest.raises(ValueError, match="missing labels"):
        MixedLinearRegressor().fit(X, np.ones(80), groups=labels)


def test_a_single_level_factor_is_an_error_as_in_lme4(fitted):
    _, X, _ = fitted
    y = np.random.default_rng(1).normal(size=80)
    with pytest.raises(ValueError, match="> 1 sampled level|single level|1 level"):
        MixedLinearRegressor().fit(X, y, groups=np.zeros(80, dtype=int))


def test_polars_labels_of_another_kind_warn(fitted):
    pl = pytest.importorskip("polars")
    model, X, g = fitted
    groups = pl.Series("group", [f"{k}" for k in g])
    with pytest.warns(UnseenLevelsWarning, match="are string"):
        model.predict(pl.from_pandas(X) if hasattr(pl, "from_pandas") else X, groups)


def test_formula_model_missing_group_is_a_new_level():
    rng = np.random.default_rng(2)
    frame = pd.DataFrame(
        {
            "x": rng.normal(size=60),
            "site": np.repeat([f"s{k}" for k in range(6)], 10),
        }
    )
    frame["y"] = frame["x"] + rng.normal(size=6)[np.repeat(np.arange(6), 10)]
    frame["y"] += 0.2 * rng.normal(size=60)
    model = MixedLinearRegressor(formula="y ~ x + (1 | site)").fit(frame)
    new = frame.head(3).assign(site=["s0", None, "s9"])
    with pytest.warns(UnseenLevelsWarning, match="2 of 3"):
        y = model.predict(new)
    population = model.predict(new, random_effects="none")
    assert np.isfinite(y).all()
    np.testing.assert_allclose(y[1:], population[1:])
    assert y[0] != pytest.approx(population[0])


def test_unseen_groups_warn_and_grouped_cv_can_silence_it(fitted):
    from sklearn.model_selection import GroupKFold, cross_val_score

    model, X, g = fitted
    y = model.predict(X, groups=g)
    model = MixedLinearRegressor(group_column="g")
    data = X.assign(g=g)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        warnings.simplefilter("error", UnseenLevelsWarning)
        with pytest.raises(UnseenLevelsWarning):
            model.fit(data, y).predict(data.assign(g=g + 50))
        warnings.filterwarnings("ignore", category=UnseenLevelsWarning)
        scores = cross_val_score(model, data, y, groups=g, cv=GroupKFold(5))
    assert np.isfinite(scores).all()


def test_labels_of_mixed_kinds_warn(fitted):
    model, X, g = fitted
    labels = np.array([int(k) if i % 2 else str(k) for i, k in enumerate(g)], object)
    with pytest.warns(UnseenLevelsWarning, match="are mixed-kind but"):
        model.predict(X, groups=labels)


def test_score_warns_only_of_labels_of_another_kind(fitted):
    model, X, g = fitted
    y = model.predict(X, groups=g)
    with warnings.catch_warnings():
        warnings.simplefilter("error", UnseenLevelsWarning)
        model.score(X, y, groups=g + 100)  # new groups: a grouped CV fold
    with pytest.warns(UnseenLevelsWarning, match="are string"):
        model.score(X, y, groups=g.astype(str))


def test_the_warning_points_at_the_callers_line(fitted):
    model, X, g = fitted
    with pytest.warns(UnseenLevelsWarning) as record:
        model.predict(X, groups=g + 100)
    assert record[0].filename == __file__
