"""groups in scikit-learn's tools: metadata routing, and group_column for the
tools that routing cannot reach."""

import re
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import sklearn
from numpy.testing import assert_allclose
from sklearn.compose import ColumnTransformer
from sklearn.inspection import permutation_importance
from sklearn.metrics import mean_squared_error, r2_score
from sklearn.model_selection import (
    GridSearchCV,
    GroupKFold,
    KFold,
    RandomizedSearchCV,
    cross_val_score,
    cross_validate,
)
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from skmixed import CompletePoolingRegressor, MixedLinearRegressor, NoPoolingRegressor
from skmixed.datasets import make_grouped_regression

KFOLD = KFold(4, shuffle=True, random_state=0)


@pytest.fixture
def routing():
    """Metadata routing on for one test; the previous config comes back after."""
    with sklearn.config_context(enable_metadata_routing=True):
        yield


@pytest.fixture(scope="module")
def data():
    """A strong random slope on x1, groups seen in every KFold split."""
    return make_grouped_regression(
        30,
        8,
        random_slopes=("x1",),
        re_sd=(1.5, 1.0),
        intercept=3.0,
        random_state=0,
        return_X_y_groups=True,
    )


def _requesting(estimator, fit=True, predict=True, score=True):
    """A clone that requests groups in the methods asked for."""
    return (
        sklearn.clone(estimator)
        .set_fit_request(groups=fit)
        .set_predict_request(groups=predict)
        .set_score_request(groups=score)
    )


def test_routing_fixture_restores_the_config(routing):
    assert sklearn.get_config()["enable_metadata_routing"]


def test_routing_is_off_outside_the_fixture():
    assert not sklearn.get_config()["enable_metadata_routing"]


# --------------------------------------------------------------------------
# Pipeline
# --------------------------------------------------------------------------


def test_pipeline_routes_groups_to_fit_predict_and_score(routing, data):
    X, y, groups = data
    scaler = StandardScaler().set_output(transform="pandas")
    model = _requesting(MixedLinearRegressor(random_slopes=["x1"]))
    pipe = make_pipeline(scaler, model).fit(X, y, groups=groups)
    direct = MixedLinearRegressor(random_slopes=["x1"])
    Xs = StandardScaler().set_output(transform="pandas").fit_transform(X)
    direct.fit(Xs, y, groups=groups)
    assert list(pipe[-1].feature_names_in_) == ["x1", "x2"]
    assert_allclose(pipe.predict(X, groups=groups), direct.predict(Xs, groups=groups))
    assert_allclose(pipe.predict(X), direct.predict(Xs))  # population
    assert_allclose(pipe.score(X, y, groups=groups), direct.score(Xs, y, groups=groups))
    assert pipe.score(X, y, groups=groups) > pipe.score(X, y) + 0.1


@pytest.mark.parametrize(
    "estimator",
    [MixedLinearRegressor(), NoPoolingRegressor(), CompletePoolingRegressor()],
    ids=lambda e: type(e).__name__,
)
def test_every_estimator_takes_routed_groups(routing, data, estimator):
    X, y, groups = data
    pipe = make_pipeline(StandardScaler(), _requesting(estimator))
    pipe.fit(X, y, groups=groups)
    scaled = StandardScaler().fit_transform(X)
    reference = sklearn.clone(estimator).fit(scaled, y, groups=groups)
    assert_allclose(
        pipe.predict(X, groups=groups), reference.predict(scaled, groups=groups)
    )
    assert_allclose(
        pipe.score(X, y, groups=groups), reference.score(scaled, y, groups=groups)
    )


# --------------------------------------------------------------------------
# cross_validate: KFold scores conditional, GroupKFold population predictions
# --------------------------------------------------------------------------


def test_kfold_score_with_routed_groups_is_conditional(routing, data):
    X, y, groups = data
    model = MixedLinearRegressor(random_slopes=["x1"])
    with_groups = cross_validate(
        _requesting(model), X, y, cv=KFOLD, params={"groups": groups}
    )["test_score"]
    without = cross_validate(
        _requesting(model, score=False),
        X,
        y,
        cv=KFOLD,
        params={"groups": groups},
    )["test_score"]
    assert np.all(with_groups > without + 0.05)
    # The routed score is the conditional R^2 of each fold, computed by hand.
    for k, (train, test) in enumerate(KFOLD.split(X)):
        fold = sklearn.clone(model).fit(X.iloc[train], y[train], groups=groups[train])
        conditional = fold.predict(X.iloc[test], groups=groups[test])
        assert_allclose(with_groups[k], r2_score(y[test], conditional))
        assert_allclose(without[k], r2_score(y[test], fold.predict(X.iloc[test])))


@pytest.mark.filterwarnings("ignore::skmixed.exceptions.UnseenLevelsWarning")
@pytest.mark.parametrize("unseen_like", ["mixed", "no pooling"])
def test_group_kfold_score_is_the_population_score(routing, data, unseen_like):
    X, y, groups = data
    cv = GroupKFold(4)
    if unseen_like == "mixed":
        model, population = MixedLinearRegressor(), MixedLinearRegressor()
    else:  # unseen groups get the complete-pooling line
        model, population = NoPoolingRegressor(), CompletePoolingRegressor()
    with_groups = cross_validate(
        _requesting(model), X, y, cv=cv, params={"groups": groups}
    )["test_score"]
    expected = [
        sklearn.clone(population)
        .fit(X.iloc[train], y[train], groups=groups[train])
        .score(X.iloc[test], y[test])
        for train, test in cv.split(X, y, groups)
    ]
    assert_allclose(with_groups, expected, rtol=1e-10)


def test_scorer_strings_never_see_routed_groups(routing, data):
    """scikit-learn issue #27977: scorers call predict(X) without metadata."""
    X, y, groups = data
    model = _requesting(MixedLinearRegressor())
    scores = cross_validate(
        model,
        X,
        y,
        cv=KFOLD,
        params={"groups": groups},
        scoring="neg_mean_squared_error",
    )["test_score"]
    train, test = next(KFOLD.split(X))
    fold = MixedLinearRegressor().fit(X.iloc[train], y[train], groups=groups[train])
    population = fold.predict(X.iloc[test])
    assert_allclose(scores[0], -mean_squared_error(y[test], population))


# --------------------------------------------------------------------------
# Searches over the random-effects structure
# --------------------------------------------------------------------------


@pytest.mark.filterwarnings("ignore:boundary .singular. fit")  # x2: no slope
def test_grid_search_over_random_slopes_in_a_pandas_pipeline(routing, data):
    X, y, groups = data
    pipe = make_pipeline(
        StandardScaler().set_output(transform="pandas"),
        _requesting(MixedLinearRegressor()),
    )
    search = GridSearchCV(
        pipe,
        {"mixedlinearregressor__random_slopes": [None, ["x1"], ["x2"]]},
        cv=KFOLD,
    ).fit(X, y, groups=groups)
    assert search.best_params_ == {"mixedlinearregressor__random_slopes": ["x1"]}
    best = search.best_estimator_[-1]
    assert list(best.feature_names_in_) == ["x1", "x2"]
    assert best.n_groups_ == {"group": 30}
    assert list(best.random_effects_["group"].columns) == ["Intercept", "x1"]
    # search.predict passes no metadata; search.score routes groups to score.
    assert search.score(X, y, groups=groups) > search.score(X, y)


@pytest.mark.filterwarnings("ignore::skmixed.exceptions.UnseenLevelsWarning")
def test_randomized_search_routes_groups_to_the_splitter_and_model(routing, data):
    X, y, groups = data
    search = RandomizedSearchCV(
        _requesting(MixedLinearRegressor()),
        {
            "random_slopes": [None, ["x1"]],
            "covariance": ["unstructured", "diagonal"],
        },
        n_iter=3,
        cv=GroupKFold(3),
        random_state=0,
    ).fit(X, y, groups=groups)
    assert len(search.cv_results_["params"]) == 3
    assert search.best_estimator_.n_groups_ == {"group": 30}
    # GroupKFold holds out whole groups: the scores are population R^2 values.
    assert np.all(np.isfinite(search.cv_results_["mean_test_score"]))


# --------------------------------------------------------------------------
# group_column: the labels travel in X, no routing needed
# --------------------------------------------------------------------------


def _with_group_column(X, groups):
    return pd.concat([X, groups], axis=1)


def test_group_column_with_default_scorer_equals_routed_score(data):
    X, y, groups = data
    frame = _with_group_column(X, groups)
    model = MixedLinearRegressor(random_slopes=["x1"], group_column="group")
    scores = cross_val_score(model, frame, y, cv=KFOLD)
    with sklearn.config_context(enable_metadata_routing=True):
        routed = cross_validate(
            _requesting(MixedLinearRegressor(random_slopes=["x1"])),
            X,
            y,
            cv=KFOLD,
            params={"groups": groups},
        )["test_score"]
    assert_allclose(scores, routed, rtol=1e-10)


@pytest.mark.parametrize(
    "estimator",
    [MixedLinearRegressor(), NoPoolingRegressor(), CompletePoolingRegressor()],
    ids=lambda e: type(e).__name__,
)
def test_group_column_with_a_scorer_string(data, estimator):
    X, y, groups = data
    frame = _with_group_column(X, groups)
    model = sklearn.clone(estimator).set_params(group_column="group")
    scores = cross_val_score(
        model, frame, y, cv=KFOLD, scoring="neg_mean_squared_error"
    )
    train, test = next(KFOLD.split(X))
    fold = sklearn.clone(estimator).fit(X.iloc[train], y[train], groups=groups[train])
    conditional = fold.predict(X.iloc[test], groups=groups[test])
    assert_allclose(scores[0], -mean_squared_error(y[test], conditional))


def test_permutation_importance_sees_the_group_column(data):
    X, y, groups = data
    frame = _with_group_column(X, groups)
    model = MixedLinearRegressor(group_column="group").fit(frame, y)
    assert model.n_features_in_ == 2
    assert list(model.feature_names_in_) == ["x1", "x2"]
    result = permutation_importance(model, frame, y, n_repeats=3, random_state=0)
    importance = dict(zip(frame.columns, result.importances_mean))
    assert importance["group"] > 0.1  # shuffled labels: wrong random effects


def test_group_column_in_a_pipeline_with_a_column_transformer(data):
    X, y, groups = data
    frame = _with_group_column(X, groups)
    scale = ColumnTransformer(
        [("scale", StandardScaler(), ["x1", "x2"])],
        remainder="passthrough",
        verbose_feature_names_out=False,
    ).set_output(transform="pandas")
    pipe = make_pipeline(
        scale, MixedLinearRegressor(random_slopes=["x1"], group_column="group")
    )
    scores = cross_val_score(pipe, frame, y, cv=KFOLD)
    assert np.all(scores > 0.5)
    pipe.fit(frame, y)
    assert list(pipe[-1].feature_names_in_) == ["x1", "x2"]


@pytest.mark.parametrize(
    "estimator",
    [MixedLinearRegressor(), NoPoolingRegressor(), CompletePoolingRegressor()],
    ids=lambda e: type(e).__name__,
)
def test_group_column_matches_groups_argument_and_checks_input(data, estimator):
    X, y, groups = data
    frame = _with_group_column(X, groups)
    by_column = sklearn.clone(estimator).set_params(group_column="group")
    by_column.fit(frame, y)
    by_argument = sklearn.clone(estimator).fit(X, y, groups=groups)
    assert_allclose(by_column.predict(frame), by_argument.predict(X, groups=groups))
    assert by_column.n_features_in_ == 2
    with pytest.raises(ValueError, match="pass one or the other"):
        by_column.predict(frame, groups=groups)
    with pytest.raises(ValueError, match=r"group column\(s\) \['group'\] not found"):
        by_column.predict(X)
    with pytest.raises(TypeError, match="needs X to be a DataFrame"):
        sklearn.clone(by_column).fit(X.to_numpy(), y)
    with pytest.raises(TypeError, match="column name"):
        sklearn.clone(by_column).set_params(group_column=["group", 1]).fit(frame, y)


# --------------------------------------------------------------------------
# The user guide's examples
# --------------------------------------------------------------------------


def test_user_guide_examples_run(tmp_path, monkeypatch):
    """The Python blocks of docs/sklearn_workflows.md, in order, as one script."""
    page = Path(__file__).resolve().parents[1] / "docs" / "sklearn_workflows.md"
    blocks = re.findall(r"```python\n(.*?)```", page.read_text(), flags=re.S)
    monkeypatch.chdir(tmp_path)  # the page saves a joblib file
    namespace = {}
    with sklearn.config_context(), warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # singular fits in the folds
        for block in blocks:
            exec(compile(block, str(page), "exec"), namespace)
    best = namespace["search"].best_params_
    assert best == {"mixedlinearregressor__random_slopes": ["x1"]}
    assert (
        namespace["seen"]["test_score"].mean() > namespace["new"]["test_score"].mean()
    )
    importance = dict(
        zip(namespace["frame"].columns, namespace["importance"].importances_mean)
    )
    assert importance["group"] > importance["x2"]
    table = namespace["table"]
    mse = -table.set_index("strategy")["mean"]
    assert mse["partial pooling"] < min(mse["no pooling"], mse["complete pooling"])
    assert np.array_equal(namespace["model_pl"].feature_names_in_, ["x1", "x2"])
