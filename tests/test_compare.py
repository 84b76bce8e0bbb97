"""compare_pooling: its table, its folds, and the ordering partial pooling must win."""

import numpy as np
import pandas as pd
import polars as pl
import pytest
from numpy.testing import assert_allclose
from sklearn.metrics import (
    make_scorer,
    mean_absolute_error,
    mean_squared_error,
    r2_score,
)
from sklearn.model_selection import GroupKFold, KFold

from skmixed import (
    CompletePoolingRegressor,
    MixedLinearRegressor,
    NoPoolingRegressor,
    compare_pooling,
)
from skmixed.datasets import make_grouped_regression


def _many_small_groups(seed, n_groups=50, size=5, re_sd=0.8):
    """The setting where shrinkage must pay: many small groups, moderate variance."""
    return make_grouped_regression(
        n_groups,
        size,
        random_slopes=(),
        re_sd=re_sd,
        noise_sd=1.0,
        random_state=seed,
        return_X_y_groups=True,
    )


def _by_strategy(results, metric="neg_mean_squared_error"):
    return results[results["metric"] == metric].set_index("strategy")


def test_table_layout():
    X, y, groups = _many_small_groups(0, n_groups=20)
    results = compare_pooling(X, y, groups, cv=3)
    assert list(results.columns) == [
        "strategy",
        "metric",
        "mean",
        "sd",
        "split0",
        "split1",
        "split2",
    ]
    assert results["strategy"].tolist() == [
        "complete pooling",
        "complete pooling",
        "partial pooling",
        "partial pooling",
        "no pooling",
        "no pooling",
    ]
    assert results["metric"].tolist() == ["neg_mean_squared_error", "r2"] * 3
    splits = results[["split0", "split1", "split2"]].to_numpy()
    assert_allclose(results["mean"], splits.mean(axis=1))
    assert_allclose(results["sd"], splits.std(axis=1, ddof=1))


def test_fold_scores_are_each_strategy_on_the_same_folds():
    X, y, groups = _many_small_groups(1, n_groups=20)
    results = compare_pooling(X, y, groups, cv=3, scoring="neg_mean_squared_error")
    folds = list(KFold(3, shuffle=True, random_state=0).split(X))
    table = _by_strategy(results)
    for name, model in [
        ("complete pooling", CompletePoolingRegressor()),
        ("partial pooling", MixedLinearRegressor()),
        ("no pooling", NoPoolingRegressor()),
    ]:
        for k, (train, test) in enumerate(folds):
            model.fit(X.iloc[train], y[train], groups=groups[train])
            predicted = model.predict(X.iloc[test], groups=groups[test])  # conditional
            expected = -mean_squared_error(y[test], predicted)
            assert_allclose(table.loc[name, f"split{k}"], expected, rtol=1e-10)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_partial_pooling_beats_both_extremes_for_seen_groups(seed):
    X, y, groups = _many_small_groups(seed)
    results = compare_pooling(
        X, y, groups, scoring="neg_mean_squared_error", random_state=seed
    )
    mse = -_by_strategy(results)["mean"]
    assert mse["partial pooling"] < mse["no pooling"]
    assert mse["partial pooling"] < mse["complete pooling"]
    # Between-group variance 0.64 against residual 1: pooling everything is
    # the worst here, by a clear margin.
    assert mse["complete pooling"] > 1.2 * mse["partial pooling"]


def test_unseen_groups_no_pooling_is_complete_pooling():
    X, y, groups = _many_small_groups(0)
    results = compare_pooling(X, y, groups, cv=GroupKFold(5))
    for metric in ["neg_mean_squared_error", "r2"]:
        table = _by_strategy(results, metric)
        splits = [f"split{k}" for k in range(5)]
        assert_allclose(
            table.loc["no pooling", splits], table.loc["complete pooling", splits]
        )
        # The mixed model predicts the population line: close to OLS, not equal.
        gap = (
            table.loc["partial pooling", "mean"] - table.loc["complete pooling", "mean"]
        )
        assert 0 < abs(gap) < 0.05 * abs(table.loc["complete pooling", "mean"])


def test_estimators_are_configurable_and_no_pooling_follows_the_slopes():
    X, y, groups = make_grouped_regression(
        20,
        8,
        random_slopes=("x1",),
        re_sd=(1.0, 1.5),
        random_state=0,
        return_X_y_groups=True,
    )
    with_slopes = compare_pooling(
        X,
        y,
        groups,
        cv=3,
        scoring="r2",
        mixed=MixedLinearRegressor(random_slopes=["x1"]),
    )
    explicit = compare_pooling(
        X,
        y,
        groups,
        cv=3,
        scoring="r2",
        mixed=MixedLinearRegressor(random_slopes=["x1"]),
        no_pooling=NoPoolingRegressor(group_slopes=["x1"]),
    )
    pd.testing.assert_frame_equal(with_slopes, explicit)
    intercepts_only = compare_pooling(X, y, groups, cv=3, scoring="r2")
    r2 = _by_strategy(with_slopes, "r2")["mean"]
    assert r2["partial pooling"] > _by_strategy(intercepts_only, "r2")["mean"].max()


def test_scoring_none_dict_and_callable():
    X, y, groups = _many_small_groups(0, n_groups=20)
    default = compare_pooling(X, y, groups, cv=3, scoring=None)
    r2 = compare_pooling(X, y, groups, cv=3, scoring="r2")
    assert default["metric"].unique().tolist() == ["score"]
    assert_allclose(default["mean"], r2["mean"])
    as_dict = compare_pooling(X, y, groups, cv=3, scoring={"R2": "r2"})
    assert as_dict["metric"].unique().tolist() == ["R2"]
    assert_allclose(as_dict["mean"], r2["mean"])
    mae = make_scorer(mean_absolute_error, greater_is_better=False)
    as_callable = compare_pooling(X, y, groups, cv=3, scoring=mae)
    as_string = compare_pooling(X, y, groups, cv=3, scoring="neg_mean_absolute_error")
    assert as_callable["metric"].unique().tolist() == ["score"]
    assert_allclose(as_callable["mean"], as_string["mean"])


def test_arrays_and_polars_give_the_same_table():
    X, y, groups = _many_small_groups(0, n_groups=20)
    reference = compare_pooling(X, y, groups, cv=3)
    as_arrays = compare_pooling(X.to_numpy(), y.to_numpy(), groups.to_numpy(), cv=3)
    as_polars = compare_pooling(
        pl.DataFrame({c: X[c].to_numpy() for c in X.columns}),
        pl.Series("y", y.to_numpy()),
        pl.Series("group", groups.to_numpy().astype(str)),
        cv=3,
    )
    assert_allclose(as_arrays["mean"], reference["mean"], rtol=1e-10)
    assert_allclose(as_polars["mean"], reference["mean"], rtol=1e-10)


def test_group_name_clash_is_an_error():
    X, y, groups = _many_small_groups(0, n_groups=20)
    X = X.assign(group=0.0)
    with pytest.raises(ValueError, match=r"\['group'\] are also columns of X"):
        compare_pooling(X, y, groups)


def test_explicit_splits_are_used_as_given():
    X, y, groups = _many_small_groups(0, n_groups=20)
    n = len(y)
    splits = [(np.arange(n // 2, n), np.arange(n // 2))]
    results = compare_pooling(X, y, groups, cv=splits, scoring="r2")
    assert "split1" not in results.columns and results["sd"].isna().all()


# --------------------------------------------------------------------------
# Formulas on raw data frames
# --------------------------------------------------------------------------


def _raw_schools(seed=0, n_groups=30, size=5):
    """Raw tabular data: a string grouping column and a string treatment."""
    X, y, groups = _many_small_groups(seed, n_groups=n_groups, size=size)
    rng = np.random.default_rng(seed)
    arm = rng.choice(["control", "tutoring"], size=len(y))
    return pd.DataFrame(
        {
            "score": y + 0.5 * (arm == "tutoring"),
            "hours": X["x1"].to_numpy(),
            "arm": arm,
            "school": "school-" + groups.astype(str).to_numpy(),
        }
    )


def test_formula_gives_the_three_strategies_on_raw_data():
    data = _raw_schools()
    formula = "score ~ hours + arm + (1 | school)"
    results = compare_pooling(data, formula=formula, cv=3, scoring="r2")
    assert results["strategy"].tolist() == [
        "complete pooling",
        "partial pooling",
        "no pooling",
    ]
    table = _by_strategy(results, "r2")
    folds = list(KFold(3, shuffle=True, random_state=0).split(data))
    for name, model in [
        ("complete pooling", CompletePoolingRegressor(formula="score ~ hours + arm")),
        ("partial pooling", MixedLinearRegressor(formula=formula)),
        ("no pooling", NoPoolingRegressor(formula=formula)),
    ]:
        for k, (train, test) in enumerate(folds):
            model.fit(data.iloc[train])
            expected = r2_score(
                data["score"].iloc[test], model.predict(data.iloc[test])
            )
            assert_allclose(table.loc[name, f"split{k}"], expected, rtol=1e-10)
    mse = -_by_strategy(compare_pooling(data, formula=formula))["mean"]
    assert mse["partial pooling"] < min(mse["complete pooling"], mse["no pooling"])


def test_formula_matches_the_array_front_end():
    data = _raw_schools(1)
    by_formula = compare_pooling(data, formula="score ~ hours + (1 | school)", cv=4)
    by_arrays = compare_pooling(data[["hours"]], data["score"], data["school"], cv=4)
    assert_allclose(by_formula["mean"], by_arrays["mean"], rtol=1e-9)
    # y given explicitly, and the formula taken from the mixed model.
    from_mixed = compare_pooling(
        data,
        data["score"],
        cv=4,
        mixed=MixedLinearRegressor(formula="score ~ hours + (1 | school)"),
    )
    assert_allclose(from_mixed["mean"], by_formula["mean"], rtol=1e-12)


def test_formula_group_kfold_takes_the_groups_from_the_formula():
    data = _raw_schools()
    results = compare_pooling(
        data, formula="score ~ hours + (1 | school)", cv=GroupKFold(5)
    )
    expected = compare_pooling(
        data[["hours"]], data["score"], data["school"], cv=GroupKFold(5)
    )
    assert_allclose(results["mean"], expected["mean"], rtol=1e-9)
    table = _by_strategy(results)
    splits = [f"split{k}" for k in range(5)]
    # Held-out schools: no pooling falls back to complete pooling.
    assert_allclose(
        table.loc["no pooling", splits], table.loc["complete pooling", splits]
    )


def test_formula_no_pooling_uses_the_first_grouping_factor_and_drops_missing_rows():
    data = _raw_schools()
    data["district"] = data["school"].str[-1]
    data.loc[[0, 7], "hours"] = np.nan
    formula = "score ~ hours + (1 | school) + (1 | district)"
    with pytest.warns(UserWarning, match=r"2 row\(s\) with a missing value"):
        results = compare_pooling(data, formula=formula, cv=3, scoring="r2")
    kept = data.drop(index=[0, 7]).reset_index(drop=True)
    folds = list(KFold(3, shuffle=True, random_state=0).split(kept))
    model = NoPoolingRegressor(formula="score ~ hours + (1 | school)")
    for k, (train, test) in enumerate(folds):
        model.fit(kept.iloc[train])
        expected = r2_score(kept["score"].iloc[test], model.predict(kept.iloc[test]))
        assert_allclose(
            _by_strategy(results, "r2").loc["no pooling", f"split{k}"], expected
        )


def test_formula_errors():
    data = _raw_schools()
    with pytest.raises(ValueError, match="no random-effect term"):
        compare_pooling(data, formula="score ~ hours")
    with pytest.raises(ValueError, match="needs y and groups, or a formula"):
        compare_pooling(data[["hours"]], data["score"])
