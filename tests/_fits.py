"""Fitted reference models, shared by the inference and reporting tests.

Each (case, method) is fitted once per test session; tests must not modify
the models they get (take a ``copy.copy`` to change attributes).
"""

import functools
import warnings

from skmixed import MixedLinearRegressor

from .conftest import REFERENCE_CASES, load_case

METHODS = ["REML", "ML"]
CASES = [(name, method) for name in REFERENCE_CASES for method in METHODS]


@functools.cache
def fitted_case(name, method):
    """The lme4 reference case ``name`` and our fit of it by ``method``."""
    case = load_case(name)
    model = MixedLinearRegressor(**case.estimator_params(method))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # few levels, singular fits: tested elsewhere
        model.fit(case.X, case.y, groups=case.groups)
    return case, model
