"""Bad input gets a clear error; awkward-but-valid input a fit and a warning."""

import warnings

import numpy as np
import pandas as pd
import pytest
from sklearn.exceptions import ConvergenceWarning

from skmixed import MixedLinearRegressor

from ._simulate import simulate


@pytest.fixture
def data():
    return simulate(0, n_groups=12, group_size=6)


def fit_quietly(model, X, y, groups):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return model.fit(X, y, groups=groups)


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_non_finite_X(data, bad):
    X, y, g = data
    X = X.copy()
    X.iloc[3, 1] = bad
    with pytest.raises(ValueError, match="(NaN|infinity)"):
        MixedLinearRegressor().fit(X, y, groups=g)


@pytest.mark.parametrize("bad", [np.nan, np.inf])
def test_non_finite_y(data, bad):
    X, y, g = data
    y = y.copy()
    y[5] = bad
    with pytest.raises(ValueError, match="(NaN|infinity)"):
        MixedLinearRegressor().fit(X, y, groups=g)


@pytest.mark.parametrize("missing", [None, np.nan])
def test_missing_group_labels(data, missing):
    X, y, g = data
    g = g.astype(object)
    g.iloc[4] = missing
    with pytest.raises(ValueError, match="missing labels"):
        MixedLinearRegressor().fit(X, y, groups=g)


def test_groups_length_mismatch(data):
    X, y, g = data
    with pytest.raises(ValueError, match="groups has 71 rows but X has 72"):
        MixedLinearRegressor().fit(X, y, groups=g[:-1])


def test_X_y_length_mismatch(data):
    X, y, g = data
    with pytest.raises(ValueError, match="inconsistent numbers of samples"):
        MixedLinearRegressor().fit(X, y[:-1], groups=g)


def test_unknown_slope_column(data):
    X, y, g = data
    with pytest.raises(ValueError, match="random slope column 'x9' is not in X"):
        MixedLinearRegressor(random_slopes=["x9"]).fit(X, y, groups=g)


def test_slope_index_out_of_range(data):
    X, y, g = data
    with pytest.raises(ValueError, match="index 5 is out of range"):
        MixedLinearRegressor(random_slopes=[5]).fit(X, y, groups=g)


def test_slope_name_without_column_names(data):
    X, y, g = data
    with pytest.raises(ValueError, match="X has no column names"):
        MixedLinearRegressor(random_slopes=["x1"]).fit(X.to_numpy(), y, groups=g)


def test_slopes_for_unknown_factor(data):
    X, y, g = data
    with pytest.raises(ValueError, match="unknown grouping factor"):
        MixedLinearRegressor(random_slopes={"school": ["x1"]}).fit(X, y, groups=g)


def test_non_numeric_X(data):
    X, y, g = data
    X = X.assign(x2=["a"] * len(X))
    with pytest.raises(ValueError, match="could not convert string to float"):
        MixedLinearRegressor().fit(X, y, groups=g)


@pytest.mark.parametrize(
    "params, match",
    [
        ({"method": "bayes"}, "'method' parameter"),
        ({"covariance": "toeplitz"}, "'covariance' parameter"),
        ({"covariance": {"g": "toeplitz"}}, "unknown values"),
        ({"max_iter": 0}, "'max_iter' parameter"),
        ({"random_intercept": "yes"}, "'random_intercept' parameter"),
        ({"fit_intercept": 1}, "'fit_intercept' parameter"),
        ({"random_slopes": 1.5}, "'random_slopes' parameter"),
    ],
)
def test_invalid_parameters(data, params, match):
    X, y, g = data
    with pytest.raises(ValueError, match=match):
        MixedLinearRegressor(**params).fit(X, y, groups=g)


def test_no_terms_for_a_factor(data):
    X, y, g = data
    with pytest.raises(ValueError, match="no random-effect terms"):
        MixedLinearRegressor(random_intercept=False).fit(X, y, groups=g)


def test_as_many_levels_as_samples(data):
    X, y, _ = data
    with pytest.raises(ValueError, match="must be < number of observations"):
        MixedLinearRegressor().fit(X, y, groups=np.arange(len(y)))


def test_a_single_level_is_an_error(data):
    X, y, _ = data
    with pytest.raises(ValueError, match="must have > 1 sampled level"):
        MixedLinearRegressor().fit(X, y, groups=np.zeros(len(y)))


def pairs(n_groups=60, seed=0):
    """Groups of exactly two rows, a random intercept and slope per group."""
    rng = np.random.default_rng(seed)
    g = np.repeat(np.arange(n_groups), 2)
    x = rng.normal(size=2 * n_groups)
    b = rng.normal(size=(n_groups, 2))
    y = 1 + x + b[g, 0] + 0.7 * b[g, 1] * x + 0.5 * rng.normal(size=2 * n_groups)
    return pd.DataFrame({"x": x}), y, g


def test_random_effects_are_counted_per_term():
    # lme4's check.nobs.vs.nRE: (1 + x || g) is two terms of m effects each,
    # so groups of two rows are fine; (1 + x | g) is one term of 2m effects.
    X, y, g = pairs()
    model = MixedLinearRegressor(random_slopes=["x"], covariance="diagonal")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        model.fit(X, y, groups=g)
    assert np.isfinite(model.objective_)
    with pytest.raises(ValueError, match=r"\(=120\) for term \(1 \+ x \| group\)"):
        MixedLinearRegressor(random_slopes=["x"]).fit(X, y, groups=g)


def test_groups_with_three_dimensions(data):
    X, y, _ = data
    with pytest.raises(ValueError, match="1-D .* or 2-D"):
        MixedLinearRegressor().fit(X, y, groups=np.zeros((len(y), 1, 1)))


def test_predict_with_wrong_number_of_factors(data):
    X, y, g = data
    model = fit_quietly(MixedLinearRegressor(), X, y, g)
    with pytest.raises(ValueError, match="fitted with 1 grouping factor"):
        model.predict(X, groups=pd.DataFrame({"a": g, "b": g}))


def test_few_levels_warns_but_fits(data):
    X, y, g = simulate(1, n_groups=3, group_size=20)
    with pytest.warns(UserWarning, match="only 3 level"):
        model = MixedLinearRegressor().fit(X, y, groups=g)
    assert np.isfinite(model.objective_)


def test_missing_groups_warns_and_fits_without_random_effects(data):
    X, y, _ = data
    with pytest.warns(UserWarning, match="without groups"):
        model = MixedLinearRegressor().fit(X, y)
    ols = np.linalg.lstsq(np.column_stack([np.ones(len(y)), X]), y, rcond=None)[0]
    assert np.allclose(model.fixed_effects_, ols)
    assert model.random_effects_ == {}


def test_rank_deficient_X_drops_columns(data):
    X, y, g = data
    X = X.assign(x3=2 * X["x1"] - X["x2"], x4=1.0)
    with pytest.warns(UserWarning, match=r"rank deficient so dropping 2 .*'x3', 'x4'"):
        model = MixedLinearRegressor().fit(X, y, groups=g)
    assert list(model.fixed_effects_.index) == ["Intercept", "x1", "x2"]
    assert model.coef_[2:].tolist() == [0.0, 0.0]
    reference = fit_quietly(MixedLinearRegressor(), X[["x1", "x2"]], y, g)
    assert model.objective_ == pytest.approx(reference.objective_, abs=1e-6)
    assert np.allclose(
        model.predict(X, groups=g), reference.predict(X[["x1", "x2"]], g)
    )


def test_no_convergence_is_reported(data):
    X, y, g = data
    with pytest.warns(ConvergenceWarning, match="did not converge"):
        model = MixedLinearRegressor(random_slopes=["x1"], max_iter=1).fit(
            X, y, groups=g
        )
    assert model.converged_ is False


def test_singular_fit_warns():
    rng = np.random.default_rng(3)
    g = np.repeat(np.arange(8), 5)
    noise = rng.normal(size=40)
    noise -= pd.Series(noise).groupby(g).transform("mean").to_numpy()
    with pytest.warns(UserWarning, match="singular"):
        model = MixedLinearRegressor().fit(np.zeros((40, 0)), 3 + noise, groups=g)
    assert model.is_singular_
    assert model.random_effects_cov_["group"].iloc[0, 0] == 0.0


@pytest.mark.parametrize("method", ["reml", "ml"])
def test_badly_scaled_data_fit_as_well_as_scaled(data, method):
    X, y, g = data
    # Millions everywhere; x2 (no random slope) also shifted far from zero.
    big_X = (X * 1e6).assign(x2=X["x2"] * 1e6 + 5e6)
    big_y = y * 1e6 + 3e7
    model = fit_quietly(
        MixedLinearRegressor(random_slopes=["x1"], method=method), X, y, g
    )
    big = fit_quietly(
        MixedLinearRegressor(random_slopes=["x1"], method=method), big_X, big_y, g
    )
    assert big.converged_
    assert big.sigma_ == pytest.approx(1e6 * model.sigma_, rel=1e-5)
    assert np.allclose(big.coef_, model.coef_, rtol=1e-5)
    sd = np.sqrt(np.diag(model.random_effects_cov_["g"]))
    big_sd = np.sqrt(np.diag(big.random_effects_cov_["g"]))
    assert np.allclose(big_sd, sd * [1e6, 1.0], rtol=1e-4)
    expected = 1e6 * model.predict(X, g) + 3e7
    assert np.allclose(big.predict(big_X, g), expected, rtol=0, atol=1e-4 * 1e6)


@pytest.mark.filterwarnings("ignore::skmixed.exceptions.UnseenLevelsWarning")
def test_unseen_levels_get_population_prediction(data):
    X, y, g = data
    model = fit_quietly(MixedLinearRegressor(random_slopes=["x1"]), X, y, g)
    unseen = pd.Series(["new"] * len(y), name="g")
    assert np.allclose(model.predict(X, groups=unseen), model.predict(X))


def test_intercept_only_model_with_empty_X():
    rng = np.random.default_rng(0)
    g = np.repeat(list("abcdef"), 5)
    y = 10 + rng.normal(size=6)[np.repeat(np.arange(6), 5)] + rng.normal(size=30)
    model = fit_quietly(MixedLinearRegressor(), pd.DataFrame(index=range(30)), y, g)
    assert model.coef_.shape == (0,)
    assert model.predict(np.zeros((2, 0))).tolist() == [model.intercept_] * 2


def test_no_fixed_intercept():
    X, y, g = simulate(2, n_groups=12, group_size=6, beta=(0.0, 2.0, -1.0))
    model = fit_quietly(MixedLinearRegressor(fit_intercept=False), X, y, g)
    assert model.intercept_ == 0.0
    assert list(model.fixed_effects_.index) == ["x1", "x2"]
    assert np.allclose(model.coef_, [2.0, -1.0], atol=0.3)


def test_random_slopes_only():
    X, y, g = simulate(4, n_groups=12, group_size=6)
    model = fit_quietly(
        MixedLinearRegressor(random_intercept=False, random_slopes=["x1"]), X, y, g
    )
    assert list(model.random_effects_["g"].columns) == ["x1"]


def test_integer_and_categorical_labels_give_the_same_fit(data):
    X, y, g = data
    codes = pd.factorize(g)[0]
    a = fit_quietly(MixedLinearRegressor(), X, y, g)
    b = fit_quietly(MixedLinearRegressor(), X, y, codes + 1000)
    c = fit_quietly(MixedLinearRegressor(), X, y, g.astype("category"))
    assert a.objective_ == pytest.approx(b.objective_, abs=1e-8)
    assert a.objective_ == pytest.approx(c.objective_, abs=1e-8)


@pytest.mark.parametrize("method", ["reml", "ml"])
def test_one_sample_is_too_few(method):
    X = np.arange(3, dtype=float).reshape(1, 3) ** 1.5
    with pytest.raises(ValueError, match="n_samples=1 is too few"):
        MixedLinearRegressor(method=method).fit(X, np.arange(1, dtype=float))


@pytest.mark.parametrize("method", ["reml", "ml"])
def test_no_more_samples_than_fixed_effects_is_an_exact_fit(method):
    # As LinearRegression: the least-squares interpolation, here with sigma 0
    # and a ConvergenceWarning that says the variances are not identifiable.
    X = np.arange(9, dtype=float).reshape(3, 3) ** 1.5
    y = np.array([1.0, -2.0, 0.5])
    with pytest.warns(ConvergenceWarning, match="fit the response exactly"):
        model = MixedLinearRegressor(method=method).fit(X, y)
    assert model.sigma_ == 0.0 and not model.converged_
    np.testing.assert_allclose(model.predict(X), y, atol=1e-8)


def test_more_columns_than_samples_fit_after_dropping_redundant_ones():
    rng = np.random.default_rng(0)
    g = np.repeat(np.arange(6), 2)
    x = rng.normal(size=12)
    X = np.column_stack([x] + [2.0 * x] * 12)  # 13 columns, rank 1
    y = 1 + x + rng.normal(size=6)[g] + rng.normal(size=12)
    with pytest.warns(UserWarning, match="dropping 12 column"):
        model = MixedLinearRegressor().fit(X, y, groups=g)
    assert model.coef_[1:].tolist() == [0.0] * 12
