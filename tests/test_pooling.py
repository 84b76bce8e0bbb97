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
