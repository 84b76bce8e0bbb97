"""The pooling baselines: against brute-force least squares, and as the mixed
model's limits."""

import warnings

import numpy as np
import pandas as pd
import pytest
from numpy.testing import assert_allclose
from sklearn.linear_model import LinearRegression

from skmixed import CompletePoolingRegressor, MixedLinearRegressor, NoPoolingRegressor
from skmixed.datasets import make_grouped_regression


def _unbalanced(seed=1, n_groups=25, min_size=2):
    """Unbalanced groups, columns on very different scales and offsets."""
    rng = np.random.default_rng(seed)
    sizes = rng.integers(min_size, 10, size=n_groups)
    groups = np.repeat(np.arange(n_groups), sizes)
    n = groups.size
    X = rng.normal(size=(n, 3)) * [1.0, 100.0, 0.01] + [5.0, 1000.0, 0.0]
    slopes = 1 + rng.normal(size=n_groups)
    y = rng.normal(size=n_groups)[groups] + slopes[groups] * X[:, 0] + 0.01 * X[:, 1]
    y = y + rng.normal(size=n)
    return X, y, groups


def _dummy_design(X, groups, slope_columns):
    """The n x (m q + p_shared) matrix of ``y ~ x_shared + g + g:x_slopes``."""
    codes, levels = pd.factorize(groups, sort=True)
    D = np.zeros((len(codes), len(levels)))
    D[np.arange(len(codes)), codes] = 1.0
    shared = [j for j in range(X.shape[1]) if j not in slope_columns]
    blocks = [D] + [D * X[:, [j]] for j in slope_columns] + [X[:, shared]]
    return np.column_stack(blocks)


def _brute_force_predictions(X, y, groups, slope_columns):
    design = _dummy_design(X, groups, slope_columns)
    coef = np.linalg.lstsq(design, y, rcond=None)[0]
    return design @ coef, coef


# --------------------------------------------------------------------------
# CompletePoolingRegressor
# --------------------------------------------------------------------------


@pytest.mark.parametrize("fit_intercept", [True, False])
def test_complete_pooling_is_least_squares(fit_intercept):
    X, y, groups = _unbalanced()
    model = CompletePoolingRegressor(fit_intercept=fit_intercept)
    model.fit(X, y, groups=groups)
    reference = LinearRegression(fit_intercept=fit_intercept).fit(X, y)
    assert_allclose(model.intercept_, reference.intercept_, atol=1e-9)
    assert_allclose(model.coef_, reference.coef_, rtol=1e-9, atol=1e-12)
    assert_allclose(model.predict(X), reference.predict(X), rtol=1e-10)


def test_complete_pooling_ignores_but_checks_groups():
    X, y, groups = _unbalanced()
    with_groups = CompletePoolingRegressor().fit(X, y, groups=groups)
    without = CompletePoolingRegressor().fit(X, y)
    assert_allclose(with_groups.coef_, without.coef_)
    assert_allclose(with_groups.predict(X, groups=groups), without.predict(X))
    with pytest.raises(ValueError, match="groups has 3 rows but X has"):
        with_groups.predict(X, groups=groups[:3])
    with pytest.raises(ValueError, match="missing labels"):
        CompletePoolingRegressor().fit(X, y, groups=np.r_[[None], groups[1:]])


def test_complete_pooling_drops_dependent_columns():
    X, y, _ = _unbalanced()
    X = np.column_stack([X, 2 * X[:, 0]])
    with pytest.warns(UserWarning, match=r"rank deficient .* \['x3'\]"):
        model = CompletePoolingRegressor().fit(X, y)
    assert model.coef_[3] == 0.0
    reference = LinearRegression().fit(X, y)
    assert_allclose(model.predict(X), reference.predict(X), rtol=1e-9)


# --------------------------------------------------------------------------
# NoPoolingRegressor against brute force
# --------------------------------------------------------------------------


@pytest.mark.parametrize("slope_columns", [[], [0], [0, 2]])
def test_no_pooling_matches_dummy_variable_regression(slope_columns):
    X, y, groups = _unbalanced(min_size=4)
    model = NoPoolingRegressor(group_slopes=slope_columns).fit(X, y, groups=groups)
    expected, coef = _brute_force_predictions(X, y, groups, slope_columns)
    assert_allclose(model.predict(X, groups=groups), expected, rtol=1e-9)
    m = model.n_groups_["group"]
    assert_allclose(model.group_coef_["Intercept"], coef[:m], rtol=1e-8, atol=1e-8)
    for k, j in enumerate(slope_columns):
        assert_allclose(
            model.group_coef_[f"x{j}"], coef[m * (k + 1) : m * (k + 2)], rtol=1e-8
        )


def test_no_pooling_with_every_slope_is_lmlist():
    """Every column varying by group: one separate regression per group."""
    X, y, groups = _unbalanced(n_groups=6)
    keep = np.isin(groups, np.flatnonzero(np.bincount(groups) >= 6))
    X, y, groups = X[keep], y[keep], groups[keep]
    model = NoPoolingRegressor(group_slopes=[0, 1, 2]).fit(X, y, groups=groups)
    for level in np.unique(groups):
        rows = groups == level
        separate = LinearRegression().fit(X[rows], y[rows])
        line = model.group_coef_.loc[level]
        assert_allclose(line["Intercept"], separate.intercept_, rtol=1e-7)
        assert_allclose(line[["x0", "x1", "x2"]], separate.coef_, rtol=1e-7)


def test_no_pooling_attributes():
    X, y, groups = make_grouped_regression(
        8, 10, random_state=0, return_X_y_groups=True
    )
    model = NoPoolingRegressor(group_slopes=["x1"]).fit(X, y, groups=groups)
    assert list(model.group_coef_.columns) == ["Intercept", "x1", "x2"]
    assert list(model.group_coef_.index) == sorted(groups.unique())
    assert model.groups_["group"].equals(model.group_coef_.index)
    assert model.n_groups_ == {"group": 8}
    # x2 is shared: the same slope in every row, and that is coef_.
    assert np.ptp(model.group_coef_["x2"]) == 0.0
    assert_allclose(model.coef_[1], model.group_coef_["x2"].iloc[0])
    # lmList's fixef: means of the group lines.
    assert_allclose(model.intercept_, model.group_coef_["Intercept"].mean())
    assert_allclose(model.coef_[0], model.group_coef_["x1"].mean())
    pooled = CompletePoolingRegressor().fit(X, y)
    assert_allclose(model.pooled_intercept_, pooled.intercept_)
    assert_allclose(model.pooled_coef_, pooled.coef_)


def test_no_pooling_without_columns_gives_group_means():
    rng = np.random.default_rng(0)
    groups = np.repeat(["a", "b", "c"], [2, 3, 4])
    y = rng.normal(size=9)
    model = NoPoolingRegressor().fit(np.empty((9, 0)), y, groups=groups)
    means = pd.Series(y).groupby(groups).mean()
    assert_allclose(model.group_coef_["Intercept"], means.to_numpy())


# --------------------------------------------------------------------------
# Unseen levels, estimability, errors
# --------------------------------------------------------------------------


def test_unseen_levels_pooled_or_error():
    X, y, groups = _unbalanced()
    model = NoPoolingRegressor(group_slopes=[0]).fit(X, y, groups=groups)
    pooled = CompletePoolingRegressor().fit(X, y).predict(X[:4])
    new = np.array([0, 999, 1, 998])
    got = model.predict(X[:4], groups=new)
    assert_allclose(got[[1, 3]], pooled[[1, 3]])
    assert_allclose(got[[0, 2]], model.predict(X[[0, 2]], groups=[0, 1]))
    assert_allclose(model.predict(X[:4]), pooled)  # no groups: all pooled
    strict = NoPoolingRegressor(group_slopes=[0], unseen="error")
    strict.fit(X, y, groups=groups)
    with pytest.raises(ValueError, match=r"2 level\(s\) not seen in fit \(999, 998\)"):
        strict.predict(X[:4], groups=new)
    with pytest.raises(ValueError, match="groups are required"):
        strict.predict(X[:4])


def test_slope_a_group_cannot_estimate_is_the_pooled_slope():
    X, y, groups = _unbalanced()
    groups = groups.copy()
    groups[:3] = [100, 101, 102]  # three groups of one row
    with pytest.warns(UserWarning, match=r"cannot estimate their own slope.*'x0': 3"):
        model = NoPoolingRegressor(group_slopes=[0]).fit(X, y, groups=groups)
    singles = model.group_coef_.loc[[100, 101, 102], "x0"]
    assert_allclose(singles, model.pooled_coef_[0])
    # Still a least-squares solution: the training fit is the brute-force one.
    expected, _ = _brute_force_predictions(X, y, groups, [0])
    assert_allclose(model.predict(X, groups=groups), expected, rtol=1e-9)
    # coef_ averages the slopes over the groups that estimate them.
    estimated = model.group_coef_["x0"].drop([100, 101, 102])
    assert_allclose(model.coef_[0], estimated.mean())


def test_group_constant_column_is_absorbed_by_the_intercepts():
    X, y, groups = _unbalanced()
    rng = np.random.default_rng(5)
    X = np.column_stack([X[:, 0], rng.normal(size=groups.max() + 1)[groups]])
    with pytest.warns(UserWarning, match=r"constant within every group.*\['x1'\]"):
        model = NoPoolingRegressor().fit(X, y, groups=groups)
    assert model.coef_[1] == 0.0
    expected, _ = _brute_force_predictions(X, y, groups, [])
    assert_allclose(model.predict(X, groups=groups), expected, rtol=1e-9)


def test_no_pooling_without_groups_is_complete_pooling():
    X, y, _ = _unbalanced()
    with pytest.warns(UserWarning, match="without groups"):
        model = NoPoolingRegressor().fit(X, y)
    assert model.groups_ == {} and model.group_coef_.shape == (0, 4)
    pooled = CompletePoolingRegressor().fit(X, y)
    assert_allclose(model.predict(X, groups=np.zeros(len(y))), pooled.predict(X))


def test_no_pooling_refuses_several_factors():
    X, y, groups = _unbalanced()
    two = pd.DataFrame({"a": groups, "b": groups % 3})
    with pytest.raises(ValueError, match="supports one grouping factor; groups has 2"):
        NoPoolingRegressor().fit(X, y, groups=two)


@pytest.mark.parametrize(
    "params, error, match",
    [
        (dict(unseen="nearest"), ValueError, "'unseen' parameter"),
        (dict(group_slopes=1.5), ValueError, "'group_slopes' parameter"),
        (dict(group_slopes=["nope"]), ValueError, "group slope column 'nope'"),
        (dict(group_slopes=[5]), ValueError, "index 5 is out of range"),
        (dict(group_slopes=[0, 0]), ValueError, "lists a column twice"),
        (dict(group_slopes=[0.5]), TypeError, "names .str. or indices"),
        (dict(group_column=3), ValueError, "'group_column' parameter"),
    ],
)
def test_no_pooling_parameter_errors(params, error, match):
    X, y, groups = _unbalanced()
    with pytest.raises(error, match=match):
        NoPoolingRegressor(**params).fit(X, y, groups=groups)


def test_complete_pooling_parameter_errors():
    X, y, _ = _unbalanced()
    with pytest.raises(ValueError, match="'fit_intercept' parameter"):
        CompletePoolingRegressor(fit_intercept="yes").fit(X, y)


# --------------------------------------------------------------------------
# The mixed model's limits
# --------------------------------------------------------------------------


@pytest.mark.parametrize("slopes", [None, ["x1"]])
def test_huge_variance_mixed_model_predicts_like_no_pooling(slopes):
    X, y, groups = make_grouped_regression(
        30,
        6,
        random_slopes=() if slopes is None else slopes,
        re_sd=1000.0,
        random_state=0,
        return_X_y_groups=True,
    )
    mixed = MixedLinearRegressor(random_slopes=slopes).fit(X, y, groups=groups)
    assert np.all(np.diag(mixed.random_effects_cov_["group"]) > 1e5)
    none = NoPoolingRegressor(group_slopes=slopes).fit(X, y, groups=groups)
    gap = mixed.predict(X, groups=groups) - none.predict(X, groups=groups)
    assert np.abs(gap).max() < 1e-5 * np.std(y)
    complete = CompletePoolingRegressor().fit(X, y).predict(X)  # far from both
    assert np.abs(complete - none.predict(X, groups=groups)).max() > 0.1 * np.std(y)


def test_zero_variance_mixed_model_predicts_like_complete_pooling():
    """Identical group means: the between-group variance is estimated as zero."""
    rng = np.random.default_rng(0)
    n_groups, size = 20, 6
    x = np.tile(rng.normal(size=size), n_groups)
    groups = np.repeat(np.arange(n_groups), size)
    noise = rng.normal(size=x.size)
    noise -= np.bincount(groups, noise)[groups] / size  # no group signal at all
    y = 1 + 2 * x + noise
    X = x[:, None]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # the boundary (singular) fit
        mixed = MixedLinearRegressor().fit(X, y, groups=groups)
    assert mixed.is_singular_
    assert mixed.random_effects_cov_["group"].iloc[0, 0] == 0.0
    complete = CompletePoolingRegressor().fit(X, y, groups=groups)
    assert_allclose(
        mixed.predict(X, groups=groups), complete.predict(X), rtol=1e-10, atol=1e-12
    )
    none = NoPoolingRegressor().fit(X, y, groups=groups)
    assert_allclose(none.predict(X, groups=groups), complete.predict(X), atol=1e-10)


# --------------------------------------------------------------------------
# Formulas on raw data frames
# --------------------------------------------------------------------------


def _raw_frame(seed=0, n_groups=12, size=8):
    """A raw data frame: numbers, a string factor, string group labels."""
    rng = np.random.default_rng(seed)
    g = np.repeat([f"s{k:02d}" for k in range(n_groups)], size)
    codes = np.repeat(np.arange(n_groups), size)
    x = rng.normal(size=g.size)
    z = rng.normal(size=g.size)
    f = rng.choice(["ctl", "low", "high"], size=g.size)
    shift = pd.Series({"ctl": 0.0, "high": 2.0, "low": 1.0})[f].to_numpy()
    slopes = 1 + rng.normal(size=n_groups)[codes]
    y = rng.normal(size=n_groups)[codes] + slopes * x + 0.5 * z + shift
    y = y + 0.3 * x * (f == "high") + rng.normal(size=g.size)
    return pd.DataFrame({"y": y, "x": x, "z": z, "f": f, "g": g})


def _treatment(values, levels):
    """R's treatment contrasts, written out: one indicator per non-first level."""
    return np.column_stack([(values == lev).astype(float) for lev in levels[1:]])


def test_complete_pooling_formula_is_least_squares_on_the_model_matrix():
    df = _raw_frame()
    model = CompletePoolingRegressor(formula="y ~ x * f + (x | g)").fit(df)
    # R's model.matrix(~ x * f): levels sorted, "ctl" the reference.
    F = _treatment(df["f"].to_numpy(), ["ctl", "high", "low"])
    M = np.column_stack([df["x"], F, F * df[["x"]].to_numpy()])
    assert model.feature_names_ == ["x", "fhigh", "flow", "x:fhigh", "x:flow"]
    reference = LinearRegression().fit(M, df["y"])
    assert_allclose(model.intercept_, reference.intercept_, rtol=1e-10)
    assert_allclose(model.coef_, reference.coef_, rtol=1e-9)
    # New rows need neither the response nor the (ignored) grouping column.
    new = df[["x", "f"]].iloc[:5]
    assert_allclose(model.predict(new), reference.predict(M[:5]), rtol=1e-10)
    assert_allclose(model.score(df), reference.score(M, df["y"]), rtol=1e-10)
    # The mixed model's formula or its fixed part alone: the same fit.
    fixed = CompletePoolingRegressor(formula="y ~ x * f").fit(df)
    assert_allclose(fixed.coef_, model.coef_)


def test_complete_pooling_formula_without_intercept_and_given_y():
    df = _raw_frame()
    model = CompletePoolingRegressor(formula="~ 0 + x + z").fit(df, df["y"] * 2)
    reference = LinearRegression(fit_intercept=False).fit(df[["x", "z"]], df["y"] * 2)
    assert model.intercept_ == 0.0
    assert_allclose(model.coef_, reference.coef_, rtol=1e-10)


def test_formula_rows_with_missing_values_are_left_out_and_predicted_nan():
    df = _raw_frame()
    df.loc[[3, 10], "x"] = np.nan
    df.loc[20, "g"] = None  # only the no-pooling model uses g
    with pytest.warns(UserWarning, match=r"2 row\(s\) with a missing value"):
        complete = CompletePoolingRegressor(formula="y ~ x + (1 | g)").fit(df)
    kept = df.dropna(subset=["x"])
    reference = LinearRegression().fit(kept[["x"]], kept["y"])
    assert_allclose(complete.coef_, reference.coef_, rtol=1e-10)
    predicted = complete.predict(df)
    assert (
        np.isnan(predicted[[3, 10]]).all()
        and np.isfinite(np.delete(predicted, [3, 10])).all()
    )
    with pytest.warns(UserWarning, match=r"3 row\(s\) with a missing value"):
        none = NoPoolingRegressor(formula="y ~ x + (1 | g)").fit(df)
    assert np.isnan(none.predict(df)[[3, 10, 20]]).all()


def test_no_pooling_formula_is_a_least_squares_line_per_group():
    """(x | g): each group's own intercept and x slope, lmList's fit."""
    df = _raw_frame()
    model = NoPoolingRegressor(formula="y ~ x + (x | g)").fit(df)
    assert list(model.group_coef_.columns) == ["Intercept", "x"]
    assert model.n_groups_ == {"g": 12}
    for level, rows in df.groupby("g"):
        separate = LinearRegression().fit(rows[["x"]], rows["y"])
        line = model.group_coef_.loc[level]
        assert_allclose(line["Intercept"], separate.intercept_, rtol=1e-9)
        assert_allclose(line["x"], separate.coef_[0], rtol=1e-9)
    # The same as the array front end with group_slopes.
    arrays = NoPoolingRegressor(group_slopes=["x"]).fit(df[["x"]], df["y"], df["g"])
    assert_allclose(
        model.predict(df), arrays.predict(df[["x"]], groups=df["g"]), rtol=1e-10
    )
    assert_allclose(model.coef_, arrays.coef_)
    assert_allclose(model.score(df), arrays.score(df[["x"]], df["y"], df["g"]))


def test_no_pooling_formula_shares_the_columns_outside_the_bar_term():
    """y ~ x + z + f + (x | g): x per group, z and f's contrasts shared."""
    df = _raw_frame()
    model = NoPoolingRegressor(formula="y ~ x + z + f + (x | g)").fit(df)
    assert list(model.group_coef_.columns) == ["Intercept", "x", "z", "fhigh", "flow"]
    F = _treatment(df["f"].to_numpy(), ["ctl", "high", "low"])
    X = np.column_stack([df["x"], df["z"], F])
    expected, _ = _brute_force_predictions(X, df["y"].to_numpy(), df["g"], [0])
    assert_allclose(model.predict(df), expected, rtol=1e-9)
    for column in ["z", "fhigh", "flow"]:  # shared: one value in every row
        assert np.ptp(model.group_coef_[column]) < 1e-12


def test_no_pooling_formula_random_slope_missing_from_the_fixed_part():
    df = _raw_frame()
    model = NoPoolingRegressor(formula="y ~ z + (0 + 1 + x | g)").fit(df)
    with_x = NoPoolingRegressor(formula="y ~ z + x + (1 + x | g)").fit(df)
    assert list(model.group_coef_.columns) == ["Intercept", "z", "x"]
    assert_allclose(model.predict(df), with_x.predict(df), rtol=1e-10)


def test_no_pooling_formula_levels_unseen_groups_and_interactions():
    df = _raw_frame()
    mixed = MixedLinearRegressor(formula="y ~ x + (x | g)").fit(df)
    model = NoPoolingRegressor(formula="y ~ x + (x | g)").fit(df)
    assert model.group_coef_.index.equals(mixed.random_effects_["g"].index)
    new = df.iloc[:4].assign(g=["s00", "new", "s01", "other"])
    pooled = CompletePoolingRegressor(formula="y ~ x").fit(df).predict(new)
    got = model.predict(new)
    assert_allclose(got[[1, 3]], pooled[[1, 3]])
    lines = model.group_coef_.loc[["s00", "s01"]].to_numpy()
    assert_allclose(got[[0, 2]], lines[:, 0] + lines[:, 1] * new["x"].iloc[[0, 2]])
    strict = NoPoolingRegressor(formula="y ~ x + (x | g)", unseen="error").fit(df)
    with pytest.raises(ValueError, match=r"2 level\(s\) not seen in fit"):
        strict.predict(new)
    by_pair = NoPoolingRegressor(formula="y ~ x + (1 | g:f)").fit(df)
    assert list(by_pair.groups_) == ["g:f"]
    assert by_pair.n_groups_["g:f"] == df.groupby(["g", "f"]).ngroups


def test_pooling_formulas_accept_polars_frames():
    pl = pytest.importorskip("polars")
    df = _raw_frame()
    as_polars = pl.from_dict({c: df[c].to_numpy() for c in df.columns})
    for estimator in [
        CompletePoolingRegressor(formula="y ~ x * f + (1 | g)"),
        NoPoolingRegressor(formula="y ~ x + f + (x | g)"),
    ]:
        expected = estimator.fit(df).predict(df)
        assert_allclose(estimator.fit(as_polars).predict(as_polars), expected)


@pytest.mark.parametrize(
    "estimator, match",
    [
        (
            NoPoolingRegressor(formula="y ~ x + (1 | g) + (1 | f)"),
            "one grouping factor; the formula .* has 2",
        ),
        (NoPoolingRegressor(formula="y ~ x + (0 + x | g)"), "has no intercept"),
        (NoPoolingRegressor(formula="y ~ x"), "has 0"),
        (
            NoPoolingRegressor(formula="y ~ x + (1 | g)", group_slopes=["x"]),
            r"\['group_slopes'\] must be left at their defaults",
        ),
        (
            CompletePoolingRegressor(formula="y ~ x", fit_intercept=False),
            r"\['fit_intercept'\] must be left at their defaults",
        ),
        (CompletePoolingRegressor(formula=3), "'formula' parameter"),
    ],
)
def test_pooling_formula_errors(estimator, match):
    with pytest.raises(ValueError, match=match):
        estimator.fit(_raw_frame())


def test_pooling_formula_refuses_groups_and_arrays():
    df = _raw_frame()
    with pytest.raises(ValueError, match="groups must be None"):
        NoPoolingRegressor(formula="y ~ x + (1 | g)").fit(df, groups=df["g"])
    model = NoPoolingRegressor(formula="y ~ x + (1 | g)").fit(df)
    with pytest.raises(ValueError, match="groups must be None"):
        model.predict(df, groups=df["g"])
    with pytest.raises(TypeError, match="pandas or polars DataFrame"):
        CompletePoolingRegressor(formula="y ~ x").fit(df[["x", "y"]].to_numpy())
    with pytest.raises(ValueError, match="score needs y"):
        CompletePoolingRegressor().fit(df[["x"]], df["y"]).score(df[["x"]])
