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




def expected_failed_checks(estimator):
    """The one check known to fail, and why (scikit-learn marks it xfail).

    It fits 15 rows and 30 columns: rank deficient, with more columns than
    distinct rows, so which columns are kept is decided by rounding.  A
    sparse X's cross-products are centred after the sparse products (X is
    never densified), whose rounding can keep another, equally valid, set of
    columns for the weighted rows than for the repeated ones; the two
    interpolants then differ on the rows of weight zero.  The dense version
    of the check passes, and tests/test_sparse.py checks sparse == dense.
    """
    if isinstance(estimator, MixedLinearRegressor):
        return {
            "check_sample_weight_equivalence_on_sparse_data": (
                "rank-deficient X (30 columns, 9 distinct rows): the kept "
                "columns of a sparse X may differ by rounding"
            )
        }
    return {}


# The checks call fit(X, y) without groups: the estimators then warn that the
# model has no grouping (and the mixed model with random_slopes that the
# slopes are unused), which is expected here.
@pytest.mark.filterwarnings("ignore::UserWarning")
@parametrize_with_checks(ESTIMATORS, expected_failed_checks=expected_failed_checks)
def test_sklearn_compatible_estimator(estimator, check):
    check(estimator)
