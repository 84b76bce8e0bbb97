"""skmixed: linear mixed-effects models (lme4's lmer) as scikit-learn estimators."""

from ._mixed import MixedLinearRegressor

__version__ = "0.1.0"

__all__ = ["MixedLinearRegressor", "__version__"]
