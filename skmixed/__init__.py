"""skmixed: linear mixed-effects models (lme4's lmer) as scikit-learn estimators."""

from ._compare import compare_pooling
from ._explore import explore
from ._glmm import MixedLogisticRegression, MixedPoissonRegressor
from ._mixed import MixedLinearRegressor
from ._pooling import CompletePoolingRegressor, NoPoolingRegressor
from ._pooling_glm import (
    CompletePoolingLogisticRegression,
    CompletePoolingPoissonRegressor,
    NoPoolingLogisticRegression,
    NoPoolingPoissonRegressor,
)
from .inference import (
    anova,
    contrasts,
    drop1,
    icc,
    marginal_means,
    r_squared,
    ranova,
)

__version__ = "0.1.0"

__all__ = [
    "CompletePoolingLogisticRegression",
    "CompletePoolingPoissonRegressor",
    "CompletePoolingRegressor",
    "MixedLinearRegressor",
    "MixedLogisticRegression",
    "MixedPoissonRegressor",
    "NoPoolingLogisticRegression",
    "NoPoolingPoissonRegressor",
    "NoPoolingRegressor",
    "__version__",
    "anova",
    "compare_pooling",
    "contrasts",
    "drop1",
    "explore",
    "icc",
    "marginal_means",
    "r_squared",
    "ranova",
]
