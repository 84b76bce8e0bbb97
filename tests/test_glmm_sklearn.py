"""The GLMM estimators as scikit-learn estimators.

scikit-learn's estimator checks, grouped cross-validation in a Pipeline with
the groups routed as metadata, a grid search over the link, the errors on
bad input, complete separation, and the two ways of giving a Poisson
exposure.
"""

import warnings

import numpy as np
import pandas as pd
import pytest
import sklearn
from numpy.testing import assert_allclose
from sklearn.linear_model import PoissonRegressor
from sklearn.metrics import log_loss, mean_poisson_deviance, roc_auc_score
from sklearn.model_selection import GridSearchCV, GroupKFold, cross_validate
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from sklearn.utils.estimator_checks import parametrize_with_checks

from skmixed import MixedLogisticRegression, MixedPoissonRegressor
from tests._glmm_data import simulate_glmm

# --------------------------------------------------------------------------
# scikit-learn's estimator checks
# --------------------------------------------------------------------------

ESTIMATORS = [
    MixedLogisticRegression(),
    MixedLogisticRegression(random_slopes=[0], covariance="diagonal", max_iter=200),
    MixedLogisticRegression(link="probit", fit_intercept=True),
    MixedPoissonRegressor(),
    MixedPoissonRegressor(n_quadrature_points=3, random_slopes=[1]),
]

# The sample-weight checks fit 15 rows and 30 features: the two classes are
# completely separated, so the maximum-likelihood estimate does not exist
# (the linear predictor diverges).  The logit fits happen to stop at the same
# point with weights as with repeated rows; the probit fits stop where the
# probabilities are 1 - 1e-17 in both, but the linear predictors differ in
# the sixth digit.  Any unpenalised estimator meets this.
SEPARATED = (
    "15 rows, 30 features: completely separated classes, no finite maximum-"
    "likelihood estimate; where the divergent fits stop differs in the sixth digit"
)


def _expected_failures(estimator):
    if estimator.link == "probit":
        return {
            "check_sample_weight_equivalence_on_dense_data": SEPARATED,
            "check_sample_weight_equivalence_on_sparse_data": SEPARATED,
        }
    return {}


# The checks call fit(X, y) without groups: the estimators warn that the
# model has no random effects (and that random_slopes are unused).
@pytest.mark.filterwarnings("ignore::UserWarning")
@parametrize_with_checks(ESTIMATORS, expected_failed_checks=_expected_failures)
def test_sklearn_compatible_estimator(estimator, check):
    check(estimator)


# --------------------------------------------------------------------------
# Grouped cross-validation in a Pipeline, groups routed as metadata
# --------------------------------------------------------------------------


@pytest.fixture
def routing():
    with sklearn.config_context(enable_metadata_routing=True):
        yield


@pytest.fixture(scope="module")
def binary():
    return simulate_glmm(0, "binomial", n_groups=24, group_size=15, re_sd=(1.0,))


@pytest.fixture(scope="module")
def counts():
    return simulate_glmm(
        1, "poisson", n_groups=24, group_size=12, beta=(0.5, 0.4, -0.3), re_sd=(0.6,)
    )


def _requesting(estimator):
    estimator = (
        sklearn.clone(estimator)
        .set_fit_request(groups=True)
        .set_predict_request(groups=True)
        .set_score_request(groups=True)
    )
    if hasattr(estimator, "set_predict_proba_request"):
        estimator.set_predict_proba_request(groups=True)
    return estimator


@pytest.mark.filterwarnings("ignore::skmixed.exceptions.UnseenLevelsWarning")
def test_group_kfold_classifier_in_a_pipeline(routing, binary):
    X, y, groups = binary
    cv = GroupKFold(4)
    pipe = make_pipeline(StandardScaler(), _requesting(MixedLogisticRegression()))
    scores = cross_validate(
        pipe,
        X,
        y,
        cv=cv,
        params={"groups": groups},
        scoring=["neg_log_loss", "roc_auc"],
        return_estimator=True,
    )
    # Scorers call predict_proba(X) without groups: every held-out group is
    # new, so the scores are of the marginal (population) probabilities.
    typical_loss = []
    for k, (train, test) in enumerate(cv.split(X, y, groups)):
        scaler = StandardScaler().fit(X.iloc[train])
        fold = MixedLogisticRegression().fit(
            scaler.transform(X.iloc[train]), y[train], groups=groups[train]
        )
        fitted = scores["estimator"][k][-1]
        assert_allclose(fitted.fixed_effects_, fold.fixed_effects_, rtol=1e-8)
        p = fold.predict_proba(scaler.transform(X.iloc[test]))[:, 1]
        assert_allclose(-scores["test_neg_log_loss"][k], log_loss(y[test], p))
        assert_allclose(scores["test_roc_auc"][k], roc_auc_score(y[test], p))
        typical = fold.predict_proba(scaler.transform(X.iloc[test]), marginal=False)[
            :, 1
        ]
        typical_loss.append(log_loss(y[test], typical))
    # Better than chance, and the marginal probability is calibrated better
    # than the probability of a typical group (random effects at zero).
    assert np.all(scores["test_roc_auc"] > 0.6)
    assert -scores["test_neg_log_loss"].mean() < np.mean(typical_loss)


@pytest.mark.filterwarnings("ignore::skmixed.exceptions.UnseenLevelsWarning")
def test_group_kfold_poisson_in_a_pipeline(routing, counts):
    X, y, groups = counts
    cv = GroupKFold(3)
    pipe = make_pipeline(StandardScaler(), _requesting(MixedPoissonRegressor()))
    scores = cross_validate(
        pipe,
        X,
        y,
        cv=cv,
        params={"groups": groups},
        scoring="neg_mean_poisson_deviance",
    )["test_score"]
    population = cross_validate(
        make_pipeline(StandardScaler(), PoissonRegressor(alpha=0.0)),
        X,
        y,
        cv=cv,
        params={"groups": groups},
        scoring="neg_mean_poisson_deviance",
    )["test_score"]
    for k, (train, test) in enumerate(cv.split(X, y, groups)):
        scaler = StandardScaler().fit(X.iloc[train])
        fold = MixedPoissonRegressor().fit(
            scaler.transform(X.iloc[train]), y[train], groups=groups[train]
        )
        mean = fold.predict(scaler.transform(X.iloc[test]))
        assert_allclose(-scores[k], mean_poisson_deviance(y[test], mean))
    # The marginal mean of a new group, exp(eta + v/2), against a Poisson GLM
    # that ignores the groups: about as good on new groups.
    assert abs(scores.mean() - population.mean()) < 0.25 * abs(population.mean())


def test_routed_groups_reach_fit_predict_and_score(routing, binary):
    X, y, groups = binary
    pipe = make_pipeline(StandardScaler(), _requesting(MixedLogisticRegression()))
    pipe.fit(X, y, groups=groups)
    scaled = StandardScaler().fit_transform(X)
    direct = MixedLogisticRegression().fit(scaled, y, groups=groups)
    assert_allclose(pipe[-1].loglik_, direct.loglik_, rtol=1e-12)
    assert_allclose(
        pipe.predict_proba(X, groups=groups), direct.predict_proba(scaled, groups)
    )
    assert pipe.score(X, y, groups=groups) == direct.score(scaled, y, groups)
    # Conditional on the seen groups' effects: more accurate than without.
    assert pipe.score(X, y, groups=groups) > pipe.score(X, y)


def test_grid_search_over_the_link(routing, binary):
    X, y, groups = binary  # simulated with the logit link
    search = GridSearchCV(
        _requesting(MixedLogisticRegression()),
        {"link": ["logit", "probit", "cloglog"]},
        cv=GroupKFold(3),
        scoring="neg_log_loss",
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # unseen levels
        search.fit(X, y, groups=groups)
    assert len(search.cv_results_["params"]) == 3
    assert np.all(np.isfinite(search.cv_results_["mean_test_score"]))
    assert search.best_estimator_.link == search.best_params_["link"]
    assert search.best_estimator_.n_groups_ == {"g": 24}
    # logit and probit fit nearly equally; cloglog, asymmetric, worse here.
    scores = dict(
        zip(["logit", "probit", "cloglog"], search.cv_results_["mean_test_score"])
    )
    assert scores["cloglog"] < max(scores["logit"], scores["probit"])


# --------------------------------------------------------------------------
# Bad input
# --------------------------------------------------------------------------


def test_classifier_rejects_three_classes(binary):
    X, y, groups = binary
    y3 = np.where(np.arange(y.size) % 7 == 0, 2, y)
    with pytest.raises(ValueError, match="Only binary classification is supported"):
        MixedLogisticRegression().fit(X, y3, groups=groups)
    with pytest.raises(ValueError, match=r"got 3 class\(es\) \[0, 1, 2\]"):
        MixedLogisticRegression().fit(X, y3, groups=groups)
    labels = np.where(y3 == 2, "c", np.where(y3 == 1, "b", "a"))
    with pytest.raises(ValueError, match=r"\['a', 'b', 'c'\]"):
        MixedLogisticRegression().fit(X, labels, groups=groups)


@pytest.mark.parametrize("value", [1.5, -0.2, np.nan, np.inf])
def test_classifier_rejects_proportions_outside_0_1(binary, value):
    X, y, groups = binary
    p = y.astype(float) * 0.5
    p[3] = value
    message = r"proportions in \[0, 1\]" if np.isfinite(value) else "NaN|infinity"
    with pytest.raises(ValueError, match=message):
        MixedLogisticRegression().fit(
            X, p, groups=groups, sample_weight=np.full(y.size, 2.0)
        )


@pytest.mark.parametrize(
    "value, message",
    [
        (-1.0, "non-negative counts"),
        (np.nan, "NaN"),
        (np.inf, "infinity"),
    ],
)
def test_poisson_rejects_negative_or_missing_counts(counts, value, message):
    X, y, groups = counts
    bad = y.astype(float)
    bad[5] = value
    with pytest.raises(ValueError, match=message):
        MixedPoissonRegressor().fit(X, bad, groups=groups)


@pytest.mark.parametrize("value", [np.nan, np.inf, -np.inf])
@pytest.mark.parametrize("estimator", ["binomial", "poisson"])
def test_non_finite_offsets_are_rejected(binary, counts, value, estimator):
    X, y, groups = binary if estimator == "binomial" else counts
    model = (
        MixedLogisticRegression()
        if estimator == "binomial"
        else MixedPoissonRegressor()
    )
    offset = np.zeros(y.size)
    offset[2] = value
    with pytest.raises(ValueError, match="offset"):
        model.fit(X, y, groups=groups, offset=offset)
    fitted = sklearn.clone(model).fit(X, y, groups=groups)
    with pytest.raises(ValueError, match="offset"):
        fitted.linear_predictor(X, groups, offset=offset)


def test_negative_or_missing_weights_are_rejected(counts):
    X, y, groups = counts
    for value in (-1.0, np.nan):
        weights = np.ones(y.size)
        weights[0] = value
        with pytest.raises(ValueError, match="sample_weight|weight"):
            MixedPoissonRegressor().fit(X, y, groups=groups, sample_weight=weights)


# --------------------------------------------------------------------------
# Complete separation
# --------------------------------------------------------------------------


def _fit_recording(model, *args, **kwargs):
    """Fit with every warning recorded: none may be a RuntimeWarning."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        model.fit(*args, **kwargs)
    categories = [w.category for w in caught]
    assert not any(issubclass(c, RuntimeWarning) for c in categories), caught
    return model, caught


def _finite(model):
    assert np.all(np.isfinite(model.fixed_effects_))
    assert np.all(np.isfinite(model.fixed_effects_cov_.to_numpy()))
    assert np.all(np.isfinite(model.theta_))
    assert np.isfinite(model.loglik_)
    for frame in model.random_effects_.values():
        assert np.all(np.isfinite(frame.to_numpy()))


def test_a_group_of_all_ones_is_shrunk_not_infinite(binary):
    X, y, groups = binary
    y = y.copy()
    ones = groups == groups.iloc[0]
    y[ones.to_numpy()] = 1
    model, _ = _fit_recording(MixedLogisticRegression(), X, y, groups=groups)
    _finite(model)
    assert model.converged_
    # Its mode is the largest, and finite: partial pooling.
    modes = model.random_effects_["g"]["Intercept"]
    assert modes.idxmax() == groups.iloc[0]
    assert 0 < modes.max() < 5


@pytest.mark.parametrize(
    "with_groups, n_points, link",
    [
        (True, 1, "logit"),
        (True, 1, "probit"),
        (True, 5, "logit"),
        (True, 5, "cloglog"),
        (False, 1, "logit"),
    ],
)
def test_a_perfectly_separating_feature_gives_finite_estimates_and_a_warning(
    binary, with_groups, n_points, link
):
    X, _, groups = binary
    y = (X["x2"] > 0).astype(int).to_numpy()
    model = MixedLogisticRegression(link=link, n_quadrature_points=n_points)
    model, caught = _fit_recording(model, X, y, groups=groups if with_groups else None)
    _finite(model)
    messages = " ".join(str(w.message) for w in caught)
    assert "numerically 0 or 1" in messages
    # The separating direction dominates; the classes are all predicted.
    assert model.coef_[1] > 10 * abs(model.coef_[0])
    assert model.score(X, y, groups if with_groups else None) == 1.0


def test_a_group_of_all_ones_and_a_separating_feature(binary):
    X, _, groups = binary
    y = np.where(groups == "g003", 1, (X["x2"] > 0).astype(int))
    model, caught = _fit_recording(MixedLogisticRegression(), X, y, groups=groups)
    _finite(model)
    assert any("numerically 0 or 1" in str(w.message) for w in caught)


# --------------------------------------------------------------------------
# Poisson exposure: rate and weights, or counts and offset
# --------------------------------------------------------------------------


def test_exposure_as_weights_equals_log_exposure_offset(counts):
    X, y, groups = counts
    exposure = np.random.default_rng(3).uniform(0.5, 4.0, y.size)
    # Counts on exposures: simulate again with the exposure in the mean.
    rng = np.random.default_rng(4)
    b = rng.normal(0, 0.6, 24)
    codes = pd.factorize(groups)[0]
    mu = exposure * np.exp(0.3 + 0.4 * X["x1"] - 0.2 * X["x2"] + b[codes])
    k = rng.poisson(mu)
    by_offset = MixedPoissonRegressor().fit(
        X, k, groups=groups, offset=np.log(exposure)
    )
    by_weight = MixedPoissonRegressor().fit(
        X, k / exposure, groups=groups, sample_weight=exposure
    )
    assert by_weight.loglik_ == pytest.approx(by_offset.loglik_, rel=1e-10)
    assert_allclose(by_weight.fixed_effects_, by_offset.fixed_effects_, rtol=1e-6)
    assert_allclose(by_weight.theta_, by_offset.theta_, rtol=1e-6)
    assert_allclose(
        by_weight.random_effects_["g"], by_offset.random_effects_["g"], atol=1e-6
    )
    assert_allclose(
        by_weight.fixed_effects_cov_, by_offset.fixed_effects_cov_, rtol=1e-4
    )
    # The rate predicted without offset, times the exposure, is the mean.
    assert_allclose(
        by_weight.predict(X, groups) * exposure,
        by_offset.predict(X, groups, offset=np.log(exposure)),
        rtol=1e-6,
    )
