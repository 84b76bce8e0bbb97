"""clone, get/set_params, pickle and joblib round-trips; pandas and polars input."""

import pickle

import joblib
import numpy as np
import pandas as pd
import polars as pl
import pytest
from numpy.testing import assert_array_equal
from sklearn.base import clone
from sklearn.exceptions import NotFittedError

from skmixed import CompletePoolingRegressor, MixedLinearRegressor, NoPoolingRegressor
from skmixed.datasets import make_grouped_regression

ESTIMATORS = [
    MixedLinearRegressor(random_slopes=["x1"], covariance="diagonal", method="ml"),
    NoPoolingRegressor(group_slopes=["x1"], unseen="error"),
    CompletePoolingRegressor(fit_intercept=False),
]
IDS = [type(e).__name__ for e in ESTIMATORS]


@pytest.fixture(scope="module")
def data():
    return make_grouped_regression(12, 8, random_state=3, return_X_y_groups=True)


def _predictions(model, X, groups):
    return model.predict(X, groups=groups)


@pytest.mark.parametrize("estimator", ESTIMATORS, ids=IDS)
def test_clone_and_params_round_trip(estimator, data):
    X, y, groups = data
    fitted = clone(estimator).fit(X, y, groups=groups)
    copy = clone(fitted)
    assert copy.get_params() == estimator.get_params()
    with pytest.raises(NotFittedError):
        copy.predict(X)
    rebuilt = type(estimator)(**estimator.get_params())
    assert_array_equal(
        _predictions(rebuilt.fit(X, y, groups=groups), X, groups),
        _predictions(fitted, X, groups),
    )
    changed = clone(estimator).set_params(group_column="group")
    assert changed.get_params()["group_column"] == "group"
    assert clone(changed).get_params() == changed.get_params()


@pytest.mark.parametrize("estimator", ESTIMATORS, ids=IDS)
@pytest.mark.parametrize("how", ["pickle", "joblib"])
def test_fitted_model_survives_a_round_trip(estimator, data, how, tmp_path):
    X, y, groups = data
    fitted = clone(estimator).fit(X, y, groups=groups)
    if how == "pickle":
        restored = pickle.loads(pickle.dumps(fitted))
    else:
        path = tmp_path / "model.joblib"
        joblib.dump(fitted, path)
        restored = joblib.load(path)
    assert_array_equal(
        _predictions(restored, X, groups), _predictions(fitted, X, groups)
    )
    assert restored.get_params() == fitted.get_params()
    assert_array_equal(restored.coef_, fitted.coef_)
    assert restored.score(X, y, groups=groups) == fitted.score(X, y, groups=groups)


@pytest.mark.parametrize("estimator", ESTIMATORS, ids=IDS)
def test_group_column_model_survives_pickle(estimator, data):
    X, y, groups = data
    frame = pd.concat([X, groups], axis=1)
    fitted = clone(estimator).set_params(group_column="group").fit(frame, y)
    restored = pickle.loads(pickle.dumps(fitted))
    assert_array_equal(restored.predict(frame), fitted.predict(frame))


@pytest.mark.parametrize("estimator", ESTIMATORS, ids=IDS)
def test_polars_input_matches_pandas(estimator, data):
    X, y, groups = data
    X_pl = pl.DataFrame({name: X[name].to_numpy() for name in X.columns})
    groups_pl = pl.Series("group", groups.to_numpy().astype(str))
    y_pl = pl.Series("y", np.asarray(y))
    from_pandas = clone(estimator).fit(X, y, groups=groups)
    from_polars = clone(estimator).fit(X_pl, y_pl, groups=groups_pl)
    assert list(from_polars.feature_names_in_) == ["x1", "x2"]
    np.testing.assert_allclose(
        from_polars.predict(X_pl, groups=groups_pl),
        from_pandas.predict(X, groups=groups),
        rtol=1e-12,
    )
    # Groups as a polars DataFrame, and the group column inside a polars X.
    groups_frame = pl.DataFrame({"group": groups.to_numpy().astype(str)})
    np.testing.assert_allclose(
        from_polars.predict(X_pl, groups=groups_frame),
        from_pandas.predict(X, groups=groups),
        rtol=1e-12,
    )
    with_column = X_pl.with_columns(groups_pl)
    by_column = clone(estimator).set_params(group_column="group").fit(with_column, y)
    np.testing.assert_allclose(
        by_column.predict(with_column), from_pandas.predict(X, groups=groups)
    )
