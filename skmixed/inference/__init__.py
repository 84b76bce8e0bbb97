"""Inference for fitted mixed models: intervals, tests and simulation.

- :func:`wald_confint`: Wald intervals of the fixed effects (lme4's
  ``confint(method = "Wald")``).
- :func:`satterthwaite`: fixed-effect t-tests with Satterthwaite's degrees of
  freedom (lmerTest's ``summary``).
- :func:`kenward_roger`, :func:`kenward_roger_covariance`,
  :func:`kenward_roger_t`, :func:`kenward_roger_f_test`: Kenward-Roger's
  adjusted covariance, t-tests, contrasts and F-tests (pbkrtest; REML fits).
- :func:`anova`: likelihood-ratio tests between nested models (lme4's
  ``anova``); of one model, F-tests by term (lmerTest's ``anova``).
- :func:`drop1`: F-tests of the marginal fixed terms, :func:`ranova`:
  likelihood-ratio tests of the random-effect terms (lmerTest); both give an
  :class:`AnovaTable`.
- :func:`profile_confint`: profile-likelihood intervals of all parameters
  (lme4's ``confint(profile(m))``).
- :func:`bootstrap`, :func:`bootstrap_confint`: parametric bootstrap of any
  statistic (lme4's ``bootMer``) and percentile intervals of all parameters.
- :func:`sample_posterior`: posterior draws of the fixed and random effects
  and sigma (``arm::sim``); :func:`predict_interval`: prediction intervals
  (``merTools::predictInterval``).
- :func:`simulate`: new responses from a fitted model (lme4's ``simulate``).
- :func:`marginal_means`, :func:`contrasts`: estimated marginal means of a
  formula model and their contrasts (emmeans).
- :func:`quantile_residuals`: randomized quantile residuals of a generalised
  model, uniform under it (DHARMa's residuals).
- :func:`r_squared`, :func:`icc`: Nakagawa's marginal and conditional R² and
  the intraclass correlation (``performance::r2_nakagawa``, ``icc``).
"""

from ._anova_table import AnovaTable
from ._bootstrap import BootstrapResult, bootstrap, bootstrap_confint
from ._ftest import drop1
from ._kenward_roger import (
    kenward_roger,
    kenward_roger_covariance,
    kenward_roger_f_test,
    kenward_roger_t,
)
from ._lrt import anova
from ._marginal_means import Contrasts, MarginalMeans, contrasts, marginal_means
from ._posterior import PosteriorSample, predict_interval, sample_posterior
from ._profile import profile_confint
from ._quantile_residuals import quantile_residuals
from ._r_squared import ICC, RSquared, icc, r_squared
from ._ranova import ranova
from ._satterthwaite import satterthwaite
from ._simulate import simulate
from ._wald import wald_confint

__all__ = [
    "AnovaTable",
    "BootstrapResult",
    "Contrasts",
    "ICC",
    "MarginalMeans",
    "PosteriorSample",
    "RSquared",
    "anova",
    "bootstrap",
    "bootstrap_confint",
    "contrasts",
    "drop1",
    "icc",
    "kenward_roger",
    "kenward_roger_covariance",
    "kenward_roger_f_test",
    "kenward_roger_t",
    "marginal_means",
    "predict_interval",
    "profile_confint",
    "quantile_residuals",
    "r_squared",
    "ranova",
    "sample_posterior",
    "satterthwaite",
    "simulate",
    "wald_confint",
]
