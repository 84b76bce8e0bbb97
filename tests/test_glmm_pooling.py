"""Complete and no pooling for binary and count targets, and compare_pooling."""

import warnings

import numpy as np
import pandas as pd
import pytest
from sklearn.linear_model import LogisticRegression, PoissonRegressor
from sklearn.metrics import log_loss
from sklearn.model_selection import KFold
from sklearn.utils.estimator_checks import parametrize_with_checks

from skmixed import (
    CompletePoolingLogisticRegression,
    CompletePoolingPoissonRegressor,
    MixedLinearRegressor,
    MixedPoissonRegressor,
    NoPoolingLogisticRegression,
    NoPoolingPoissonRegressor,
    compare_pooling,
)

ESTIMATORS = [
    CompletePoolingLogisticRegression(),
    CompletePoolingLogisticRegression(fit_intercept=False),
    CompletePoolingPoissonRegressor(),
    NoPoolingLogisticRegression(),
    NoPoolingPoissonRegressor(group_slopes=[0], unseen="error"),
]


def _expected_failures(estimator):
    if isinstance(
        estimator, CompletePoolingPoissonRegressor | NoPoolingPoissonRegressor
    ):
        return {}
    # The check's two classes are linearly separable: the maximum-likelihood
    # estimate is infinite, IRLS stops where the deviance stops changing, and
    # two such stops (weights or repeated rows) are not the same point.
    return {
        "check_sample_weight_equivalence_on_dense_data": "separable data: no "
        "finite maximum-likelihood estimate to be equivalent"
    }


# fit(X, y) without groups warns (no pooling is then complete pooling), and
# the checks' separable blobs give fitted probabilities of 0 or 1.
@pytest.mark.filterwarnings("ignore::UserWarning")
@parametrize_with_checks(ESTIMATORS, expected_failed_checks=_expected_failures)
def test_sklearn_compatible_estimator(estimator, check):
    check(estimator)


# ------------------------------------------------------------ the numerics


def binary_data(seed=0, n_groups=8, n_per=60):
    rng = np.random.default_rng(seed)
    groups = np.repeat(np.arange(n_groups), n_per)
    X = rng.normal(size=(groups.size, 2))
    slope = 1.0 + 0.3 * rng.normal(size=n_groups)
    eta = rng.normal(0, 1, n_groups)[groups] + slope[groups] * X[:, 0] - 0.5 * X[:, 1]
    y = rng.random(groups.size) < 1 / (1 + np.exp(-eta))
    return X, y, groups


def count_data(seed=0, n_groups=8, n_per=60):
    rng = np.random.default_rng(seed)
    groups = np.repeat(np.arange(n_groups), n_per)
    X = rng.normal(size=(groups.size, 2))
    eta = 0.5 + rng.normal(0, 0.5, n_groups)[groups] + 0.3 * X[:, 0] - 0.2 * X[:, 1]
    return X, rng.poisson(np.exp(eta)), groups


def one_hot_design(X, groups, slope_column):
    """Per-group intercepts and slopes of one column, then the other columns."""
    levels = np.unique(groups)
    indicators = (groups[:, None] == levels[None, :]).astype(float)
    shared = np.delete(X, slope_column, axis=1)
    return np.column_stack([indicators, indicators * X[:, [slope_column]], shared])


def test_complete_pooling_is_sklearns_unpenalised_fit():
    X, y, groups = binary_data()
    model = CompletePoolingLogisticRegression().fit(X, y, groups=groups)
    reference = LogisticRegression(C=np.inf, tol=1e-12, max_iter=10_000).fit(X, y)
    np.testing.assert_allclose(model.coef_, reference.coef_[0], rtol=1e-6)
    assert model.intercept_ == pytest.approx(reference.intercept_[0], rel=1e-6)
    np.testing.assert_allclose(
        model.predict_proba(X), reference.predict_proba(X), atol=1e-8
    )
    assert model.converged_ and model.n_iter_ < 10
    X, y, groups = count_data()
    model = CompletePoolingPoissonRegressor().fit(X, y, groups=groups)
    reference = PoissonRegressor(alpha=0, tol=1e-12, max_iter=10_000).fit(X, y)
    np.testing.assert_allclose(model.coef_, reference.coef_, rtol=1e-6)
    np.testing.assert_allclose(model.predict(X), reference.predict(X), rtol=1e-7)


def test_no_pooling_is_the_one_hot_fit():
    # Per-group intercepts and slopes of x0, a shared slope of x1: the
    # unpenalised fit on the one-hot design (R's glm(y ~ x1 + g / x0)).
    X, y, groups = binary_data(1)
    model = NoPoolingLogisticRegression(group_slopes=[0]).fit(X, y, groups=groups)
    D = one_hot_design(X, groups, 0)
    reference = LogisticRegression(
        C=np.inf, fit_intercept=False, tol=1e-12, max_iter=100_000
    ).fit(D, y)
    m = len(np.unique(groups))
    np.testing.assert_allclose(
        model.group_coef_["Intercept"], reference.coef_[0, :m], atol=1e-5
    )
    np.testing.assert_allclose(
        model.group_coef_["x0"], reference.coef_[0, m:-1], atol=1e-5
    )
    np.testing.assert_allclose(
        model.group_coef_["x1"], reference.coef_[0, -1], atol=1e-5
    )
    np.testing.assert_allclose(
        model.predict_proba(X, groups), reference.predict_proba(D), atol=1e-6
    )
    X, y, groups = count_data(2)
    model = NoPoolingPoissonRegressor(group_slopes=[0]).fit(X, y, groups=groups)
    reference = PoissonRegressor(
        alpha=0,
        fit_intercept=False,
        tol=1e-12,
        max_iter=10_000,
        solver="newton-cholesky",
    ).fit(one_hot_design(X, groups, 0), y)
    np.testing.assert_allclose(
        model.group_coef_["x0"], reference.coef_[m:-1], atol=1e-6
    )
    np.testing.assert_allclose(
        model.pooled_coef_, CompletePoolingPoissonRegressor().fit(X, y).coef_
    )


def test_weights_are_trials_and_exposures():
    # A proportion of w trials is w Bernoulli rows; a rate of exposure w is
    # scikit-learn's PoissonRegressor with sample_weight = w.
    X, y, groups = binary_data(3, n_groups=6, n_per=40)
    rng = np.random.default_rng(0)
    trials = rng.integers(1, 5, y.size)
    successes = rng.binomial(trials, np.where(y, 0.7, 0.3))
    grouped = NoPoolingLogisticRegression().fit(
        X, successes / trials, groups=groups, sample_weight=trials
    )
    rows = np.repeat(np.arange(y.size), trials)
    outcome = np.concatenate([np.arange(t) < s for t, s in zip(trials, successes)])
    expanded = NoPoolingLogisticRegression().fit(X[rows], outcome, groups=groups[rows])
    np.testing.assert_allclose(grouped.group_coef_, expanded.group_coef_, atol=1e-8)
    np.testing.assert_array_equal(grouped.classes_, [0, 1])
    X, counts, groups = count_data(4)
    exposure = rng.uniform(0.5, 3.0, counts.size)
    model = CompletePoolingPoissonRegressor().fit(
        X, counts / exposure, sample_weight=exposure
    )
    reference = PoissonRegressor(alpha=0, tol=1e-12, max_iter=10_000).fit(
        X, counts / exposure, sample_weight=exposure
    )
    np.testing.assert_allclose(model.coef_, reference.coef_, rtol=1e-6)


def test_groups_with_outcomes_all_alike():
    # No finite estimate: IRLS stops (as R's glm) with the group's
    # probabilities numerically 0, and says so.
    X, y, groups = binary_data(5)
    y[groups == 0] = False
    with pytest.warns(UserWarning, match="1 of 8 group"):
        model = NoPoolingLogisticRegression().fit(X, y, groups=groups)
    assert model.converged_
    assert model.group_coef_["Intercept"].iloc[0] < -10
    assert np.all(model.predict_proba(X[groups == 0], groups[groups == 0])[:, 1] < 1e-4)
    X, counts, groups = count_data(6)
    counts[groups == 3] = 0
    with pytest.warns(UserWarning, match="outcomes all 0"):
        model = NoPoolingPoissonRegressor().fit(X, counts, groups=groups)
    assert np.all(model.predict(X[groups == 3], groups[groups == 3]) < 1e-4)


def test_labels_unseen_levels_and_formula():
    X, y, groups = binary_data(7)
    labels = np.where(y, "yes", "no")
    model = NoPoolingLogisticRegression(group_slopes=[0]).fit(X, labels, groups=groups)
    np.testing.assert_array_equal(model.classes_, ["no", "yes"])
    p = model.predict_proba(X, groups)[:, 1]
    np.testing.assert_array_equal(
        model.predict(X, groups), np.where(p >= 0.5, "yes", "no")
    )
    np.testing.assert_allclose(model.decision_function(X, groups), np.log(p / (1 - p)))
    # Unseen levels: the complete-pooling model; or an error.
    pooled = CompletePoolingLogisticRegression().fit(X, labels)
    new = np.full(5, "new")
    np.testing.assert_allclose(
        model.predict_proba(X[:5], new), pooled.predict_proba(X[:5])
    )
    strict = NoPoolingLogisticRegression(unseen="error").fit(X, labels, groups=groups)
    with pytest.raises(ValueError, match="not seen in fit"):
        strict.predict(X[:5], new)
    # A formula on raw columns: the same fit.
    data = pd.DataFrame(
        {"y": labels, "x0": X[:, 0], "x1": X[:, 1], "g": groups.astype(str)}
    )
    formula = NoPoolingLogisticRegression(formula="y ~ x0 + x1 + (1 + x0 | g)").fit(
        data
    )
    np.testing.assert_allclose(
        formula.group_coef_.to_numpy(), model.group_coef_.to_numpy(), atol=1e-8
    )
    complete = CompletePoolingLogisticRegression(formula="y ~ x0 + x1 + (1 | g)").fit(
        data
    )
    np.testing.assert_allclose(complete.coef_, pooled.coef_, atol=1e-8)
    assert complete.score(data, data["y"]) == pytest.approx(pooled.score(X, labels))


# ----------------------------------------------------------- compare_pooling


def small_groups(seed=0, n_groups=40, n_per=5):
    rng = np.random.default_rng(seed)
    groups = np.repeat(np.arange(n_groups), n_per)
    X = rng.normal(size=(groups.size, 1))
    effects = rng.normal(0, 1.2, n_groups)[groups]
    return rng, X, groups, effects


def test_compare_pooling_binary_target():
    rng, X, groups, effects = small_groups()
    eta = 0.8 * X[:, 0] + effects
    y = np.where(rng.random(groups.size) < 1 / (1 + np.exp(-eta)), "yes", "no")
    results = compare_pooling(X, y, groups, random_state=0)
    assert results["metric"].unique().tolist() == ["neg_log_loss", "roc_auc"]
    log_loss_means = results[results["metric"] == "neg_log_loss"].set_index("strategy")[
        "mean"
    ]
    assert log_loss_means.idxmax() == "partial pooling"
    assert log_loss_means["no pooling"] < log_loss_means["complete pooling"]
    # Fold 0 of complete pooling, by hand.
    train, test = next(KFold(5, shuffle=True, random_state=0).split(X))
    model = CompletePoolingLogisticRegression().fit(X[train], y[train])
    expected = -log_loss(y[test], model.predict_proba(X[test]), labels=["no", "yes"])
    row = results[
        (results["strategy"] == "complete pooling")
        & (results["metric"] == "neg_log_loss")
    ]
    assert row["split0"].iloc[0] == pytest.approx(expected, rel=1e-8)


def test_compare_pooling_count_target():
    rng, X, groups, effects = small_groups(1)
    y = rng.poisson(np.exp(0.5 + 0.3 * X[:, 0] + effects))
    by_family = compare_pooling(X, y, groups, family="poisson")
    by_model = compare_pooling(X, y, groups, mixed=MixedPoissonRegressor())
    pd.testing.assert_frame_equal(by_family, by_model)
    assert by_family["metric"].unique().tolist() == [
        "neg_mean_poisson_deviance",
        "d2_poisson",
    ]
    deviance = by_family[by_family["metric"] == "neg_mean_poisson_deviance"]
    assert deviance.set_index("strategy")["mean"].idxmax() == "partial pooling"
    with pytest.raises(ValueError, match="family='binomial' but mixed"):
        compare_pooling(X, y, groups, mixed=MixedPoissonRegressor(), family="binomial")
    # Integer counts are not taken for a binary or count target by themselves.
    assert compare_pooling(X, y, groups)["metric"].iloc[0] == "neg_mean_squared_error"


def test_compare_pooling_binary_formula_and_gaussian_override():
    rng, X, groups, effects = small_groups(2, n_groups=20, n_per=8)
    y = rng.random(groups.size) < 1 / (1 + np.exp(-(X[:, 0] + effects)))
    data = pd.DataFrame({"y": y, "x": X[:, 0], "g": groups.astype(str)})
    results = compare_pooling(data, formula="y ~ x + (1 | g)", scoring="neg_log_loss")
    arrays = compare_pooling(X, y, groups, scoring="neg_log_loss")
    np.testing.assert_allclose(results["mean"], arrays["mean"], rtol=1e-5)
    with pytest.warns(UserWarning, match="binary target"):
        linear = compare_pooling(X, y.astype(float), groups, family="gaussian")
    assert linear["metric"].iloc[0] == "neg_mean_squared_error"


def test_linear_mixed_model_warns_on_a_binary_target():
    rng, X, groups, effects = small_groups(3)
    y = rng.random(groups.size) < 0.5
    for target in (y, y.astype(float), np.where(y, 2.0, 5.0)):
        with pytest.warns(UserWarning, match="MixedLogisticRegression"):
            MixedLinearRegressor().fit(X, target, groups=groups)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        noise = rng.normal(size=groups.size)
        MixedLinearRegressor().fit(X, X[:, 0] + effects + noise, groups=groups)
