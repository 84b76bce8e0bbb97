"""scikit-learn's estimator checks on the three estimators."""

import pytest
from sklearn.utils.estimator_checks import parametrize_with_checks

from skmixed import CompletePoolingRegressor, MixedLinearRegressor, NoPoolingRegressor

ESTIMATORS = [
    MixedLinearRegressor(),
    MixedLinearRegressor(random_slopes=[0], covariance="diagonal"),
    CompletePoolingRegressor(),
    CompletePoolingRegressor(fit_intercept=False),
    NoPoolingRegressor(),
    NoPoolingRegressor(group_slopes=[0], unseen="error"),
]


# The checks call fit(X, y) without groups: the estimators then warn that the
# model has no grouping (and the mixed model with random_slopes that the
# slopes are unused), which is expected here.
@pytest.mark.filterwarnings("ignore::UserWarning")
@parametrize_with_checks(ESTIMATORS)
def test_sklearn_compatible_estimator(estimator, check):
    check(estimator)
