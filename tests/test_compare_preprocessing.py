"""compare_pooling(preprocessor=...): raw tabular data, preprocessed in every fold.

Written as a user meets it: a DataFrame with a string feature, a numeric one
with gaps and a column of store ids, a ColumnTransformer in front of the
three strategies, and the numbers checked against doing it all by hand.
"""

import numpy as np
import pandas as pd
import polars as pl
import pytest
from numpy.testing import assert_allclose
from sklearn.base import BaseEstimator, TransformerMixin, clone
from sklearn.compose import ColumnTransformer
from sklearn.impute import SimpleImputer
from sklearn.metrics import mean_squared_error
from sklearn.model_selection import GroupKFold, KFold
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import FunctionTransformer, OneHotEncoder, StandardScaler

from skmixed import (
    CompletePoolingRegressor,
    MixedLinearRegressor,
    NoPoolingRegressor,
    compare_pooling,
)

STRATEGIES = ["complete pooling", "partial pooling", "no pooling"]


def _shops(seed=0, n_groups=30, size=10):
    """Sales of stores: the city (a string), the price (with gaps), a store id."""
    rng = np.random.default_rng(seed)
    n = n_groups * size
    codes = np.repeat(np.arange(n_groups), size)
    city = rng.choice(["lyon", "nice", "paris"], size=n)
    price = rng.normal(10.0, 2.0, size=n)
    slope = 0.5 + 0.4 * rng.normal(size=n_groups)
    sales = (
        2.0
        + slope[codes] * (price - 10.0)
        + 0.8 * (city == "paris")
        + rng.normal(size=n_groups)[codes]
        + rng.normal(size=n)
    )
    price[rng.choice(n, size=8, replace=False)] = np.nan
    return pd.DataFrame(
        {
            "city": city,
            "price": price,
            "store": [f"store-{k:02d}" for k in codes],
            "sales": sales,
        }
    )


def _preprocessor(**kwargs):
    return ColumnTransformer(
        [
            ("cat", OneHotEncoder(drop="first"), ["city"]),
            ("num", make_pipeline(SimpleImputer(), StandardScaler()), ["price"]),
        ],
        **kwargs,
    )


def _split(data):
    return data[["city", "price"]], data["sales"], data["store"]


def _by_strategy(results, metric="neg_mean_squared_error"):
    return results[results["metric"] == metric].set_index("strategy")


def _by_hand(preprocessor, model, X, y, groups, splits):
    """Fold by fold: fit the preprocessor on the training rows, then the model."""
    scores = []
    for train, test in splits:
        fitted = clone(preprocessor)
        X_train = fitted.fit_transform(X.iloc[train], y.iloc[train])
        names = fitted.get_feature_names_out()
        X_train = pd.DataFrame(X_train, columns=names)
        X_test = pd.DataFrame(fitted.transform(X.iloc[test]), columns=names)
        model = clone(model).fit(X_train, y.iloc[train], groups=groups.iloc[train])
        predicted = model.predict(X_test, groups=groups.iloc[test])
        scores.append(-mean_squared_error(y.iloc[test], predicted))
    return np.array(scores)


@pytest.mark.filterwarnings("ignore::skmixed.exceptions.UnseenLevelsWarning")
@pytest.mark.parametrize("cv", ["kfold", "groupkfold"])
def test_preprocessor_equals_preprocessing_by_hand_in_each_fold(cv):
    X, y, groups = _split(_shops())
    if cv == "kfold":
        splitter = KFold(3, shuffle=True, random_state=0)
        splits = list(splitter.split(X))
    else:
        splitter = GroupKFold(3)
        splits = list(splitter.split(X, y, groups))
    results = compare_pooling(
        X,
        y,
        groups,
        preprocessor=_preprocessor(),
        cv=splitter,
        scoring="neg_mean_squared_error",
        mixed=MixedLinearRegressor(random_slopes=["price"]),
    )
    assert results["strategy"].tolist() == STRATEGIES
    table = _by_strategy(results)
    for name, model in [
        ("complete pooling", CompletePoolingRegressor()),
        ("partial pooling", MixedLinearRegressor(random_slopes=["num__price"])),
        ("no pooling", NoPoolingRegressor(group_slopes=["num__price"])),
    ]:
        expected = _by_hand(_preprocessor(), model, X, y, groups, splits)
        splits_of = [f"split{k}" for k in range(3)]
        assert_allclose(table.loc[name, splits_of], expected, rtol=1e-10)
    if cv == "kfold":  # seen stores, slopes that vary: partial pooling wins
        mse = -table["mean"]
        assert mse["partial pooling"] < min(mse["complete pooling"], mse["no pooling"])


def test_preprocessor_is_fitted_on_the_training_rows_without_the_groups():
    X, y, groups = _split(_shops())
    X = X[["price"]].fillna(10.0)

    class Recorder(TransformerMixin, BaseEstimator):
        fits, transforms = [], []

        def fit(self, X, y=None):
            Recorder.fits.append((len(X), list(X.columns), y is not None))
            return self

        def transform(self, X):
            Recorder.transforms.append(len(X))
            return X

    folds = list(KFold(4, shuffle=True, random_state=0).split(X))
    results = compare_pooling(X, y, groups, preprocessor=Recorder(), cv=folds)
    # Three strategies, four folds, never a row of a test fold in a fit; the
    # test rows transformed once per fold (both scorers share the prediction).
    train_sizes = [len(train) for train, _ in folds] * 3
    assert Recorder.fits == [(n, ["price"], True) for n in train_sizes]
    test_sizes = [len(test) for _, test in folds] * 3
    assert sorted(Recorder.transforms) == sorted(train_sizes + test_sizes)
    # An identity preprocessor changes nothing.
    plain = compare_pooling(X, y, groups, cv=folds)
    assert_allclose(results["mean"], plain["mean"], rtol=1e-12)


def test_slopes_name_a_column_of_X_or_of_the_preprocessor_output():
    X, y, groups = _split(_shops(1))

    def table(preprocessor, slopes, **kwargs):
        mixed = MixedLinearRegressor(random_slopes=slopes)
        return compare_pooling(
            X, y, groups, cv=3, preprocessor=preprocessor, mixed=mixed, **kwargs
        )

    by_output = table(_preprocessor(), ["num__price"])
    assert_allclose(table(_preprocessor(), ["price"])["mean"], by_output["mean"])
    assert_allclose(table(_preprocessor(), "price")["mean"], by_output["mean"])
    per_factor = _by_strategy(table(_preprocessor(), {"store": ["price"]}))
    assert_allclose(
        per_factor.loc["partial pooling", "mean"],
        _by_strategy(by_output).loc["partial pooling", "mean"],
    )
    # No pooling follows the mixed model's slopes, by either name.
    explicit = table(
        _preprocessor(),
        ["price"],
        no_pooling=NoPoolingRegressor(group_slopes=["num__price"]),
    )
    pd.testing.assert_frame_equal(explicit, by_output)
    # verbose_feature_names_out=False: the output columns are X's names.
    short = table(_preprocessor(verbose_feature_names_out=False), ["price"])
    assert_allclose(short["mean"], by_output["mean"], rtol=1e-10)
    # Without slopes the random-intercept models differ from these.
    intercepts = table(_preprocessor(), None)
    assert not np.allclose(intercepts["mean"], by_output["mean"])


@pytest.mark.parametrize(
    "slopes, shown",
    [(["city"], "'city'"), (["cost"], "'cost'"), (["num__cost"], "'num__cost'")],
)
def test_slope_without_a_single_output_column_is_an_error(slopes, shown):
    X, y, groups = _split(_shops())
    with pytest.raises(ValueError, match=rf"random_slopes names {shown}, which is"):
        compare_pooling(
            X,
            y,
            groups,
            preprocessor=_preprocessor(),
            mixed=MixedLinearRegressor(random_slopes=slopes),
        )
    with pytest.raises(ValueError, match=r"group_slopes names 'city'.*cat__city_nice"):
        compare_pooling(
            X,
            y,
            groups,
            preprocessor=_preprocessor(),
            no_pooling=NoPoolingRegressor(group_slopes=["city"]),
        )


def test_polars_frame_reaches_the_preprocessor_and_gives_the_same_table():
    data = _shops(2)
    X, y, groups = _split(data)
    X_pl = pl.DataFrame(
        [
            pl.Series("city", X["city"].tolist()),
            pl.Series("price", X["price"].to_numpy(), nan_to_null=True),
        ]
    )
    assert X_pl["price"].null_count() == 8
    y_pl = pl.Series("sales", y.to_numpy())
    groups_pl = pl.Series("store", groups.tolist())
    mixed = MixedLinearRegressor(random_slopes=["price"])
    reference = compare_pooling(
        X, y, groups, cv=3, preprocessor=_preprocessor(), mixed=mixed
    )
    as_polars = compare_pooling(
        X_pl, y_pl, groups_pl, cv=3, preprocessor=_preprocessor(), mixed=mixed
    )
    pd.testing.assert_frame_equal(as_polars, reference)

    # A preprocessor written in polars: it receives the polars frame.
    def polars_only(frame):
        return frame.select(
            (pl.col("city") == "paris").cast(pl.Float64).alias("paris"),
            pl.col("price").fill_null(10.0).log().alias("log_price"),
        )

    in_polars = compare_pooling(
        X_pl,
        y_pl,
        groups_pl,
        cv=3,
        preprocessor=FunctionTransformer(polars_only),
        mixed=MixedLinearRegressor(random_slopes=["log_price"]),
    )
    by_hand = pd.DataFrame(
        {
            "paris": (X["city"] == "paris").astype(float),
            "log_price": np.log(X["price"].fillna(10.0)),
        }
    )
    mixed = MixedLinearRegressor(random_slopes=["log_price"])
    expected = compare_pooling(by_hand, y, groups, cv=3, mixed=mixed)
    assert_allclose(in_polars["mean"], expected["mean"], rtol=1e-10)


def test_sparse_output_and_output_without_names():
    X, y, groups = _split(_shops(3))
    X = X.assign(price=X["price"].fillna(10.0))
    dense = _preprocessor(sparse_threshold=0.0)
    as_sparse = _preprocessor(sparse_threshold=1.0)  # a sparse matrix out
    reference = compare_pooling(X, y, groups, cv=3, preprocessor=dense)
    assert_allclose(
        compare_pooling(X, y, groups, cv=3, preprocessor=as_sparse)["mean"],
        reference["mean"],
        rtol=1e-12,
    )
    # A transformer without feature names: its columns are x0, x1, ...
    unnamed = make_pipeline(dense, FunctionTransformer(np.asarray))
    by_position = compare_pooling(
        X,
        y,
        groups,
        cv=3,
        preprocessor=unnamed,
        mixed=MixedLinearRegressor(random_slopes=["x2"]),
    )
    by_name = compare_pooling(
        X,
        y,
        groups,
        cv=3,
        preprocessor=dense,
        mixed=MixedLinearRegressor(random_slopes=["price"]),
    )
    assert_allclose(by_position["mean"], by_name["mean"], rtol=1e-12)


def test_arrays_are_preprocessed_as_frames_of_x0_x1():
    X, y, groups = _split(_shops(4))
    values = X[["price"]].fillna(10.0).to_numpy()
    scaled = compare_pooling(
        values, y, groups, cv=3, preprocessor=StandardScaler(), scoring="r2"
    )
    plain = compare_pooling(values, y, groups, cv=3, scoring="r2")
    # Scaling a feature moves no prediction of a linear model.
    assert_allclose(scaled["mean"], plain["mean"], rtol=1e-6)
    picked = ColumnTransformer([("num", StandardScaler(), ["x0"])])
    assert_allclose(
        compare_pooling(values, y, groups, cv=3, preprocessor=picked, scoring="r2")[
            "mean"
        ],
        scaled["mean"],
        rtol=1e-12,
    )


def test_preprocessor_errors():
    data = _shops()
    X, y, groups = _split(data)
    with pytest.raises(ValueError, match="a formula or a preprocessor, not both"):
        compare_pooling(
            data, formula="sales ~ price + (1 | store)", preprocessor=_preprocessor()
        )
    with pytest.raises(ValueError, match="a formula or a preprocessor, not both"):
        compare_pooling(
            data,
            preprocessor=_preprocessor(),
            mixed=MixedLinearRegressor(formula="sales ~ price + (1 | store)"),
        )
    with pytest.raises(ValueError, match=r"\['store'\] are also columns of X"):
        compare_pooling(data, y, groups, preprocessor=_preprocessor())
    renames = FunctionTransformer(
        lambda frame: frame[["price"]].fillna(0.0).rename(columns={"price": "store"})
    )
    with pytest.raises(ValueError, match=r"output has column\(s\) \['store'\]"):
        compare_pooling(X, y, groups, preprocessor=renames)
