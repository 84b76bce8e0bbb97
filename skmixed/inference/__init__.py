"""Inference for fitted mixed models: intervals, tests and simulation.

- :func:`wald_confint`: Wald intervals of the fixed effects (lme4's
  ``confint(method = "Wald")``).
- :func:`satterthwaite`: fixed-effect t-tests with Satterthwaite's degrees of
  freedom (lmerTest's ``summary``).
- :func:`anova`: likelihood-ratio tests between nested models (lme4's
  ``anova``).
- :func:`profile_confint`: profile-likelihood intervals of all parameters
  (lme4's ``confint(profile(m))``).
"""

from ._lrt import anova
from ._profile import profile_confint
from ._satterthwaite import satterthwaite
from ._wald import wald_confint

__all__ = ["anova", "profile_confint", "satterthwaite", "wald_confint"]
