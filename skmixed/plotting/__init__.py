"""Plots of fitted mixed models, as scikit-learn Display objects.

Each display computes in ``from_estimator`` (or ``from_intervals``), stores
the results, and draws in ``plot(ax=None)``, keeping ``ax_`` (or ``axes_``
for several panels), ``figure_`` and its artists.  Models fitted with a
``formula`` are read through it: the displays take the raw data frame.
matplotlib is imported only when drawing: install it with
``pip install skmixed[plot]``.

- :class:`ResidualsVsFittedDisplay`, :class:`QQDisplay`,
  :class:`RandomEffectsQQDisplay`, and all of them together in
  :class:`ResidualDiagnosticsDisplay` / :func:`plot_diagnostics`.
- :class:`CaterpillarDisplay`: random effects with conditional intervals.
- :class:`EffectDisplay`: population prediction along one feature, with a band
  (for a formula model, along a raw variable or across a factor's levels).
- :class:`IntervalDisplay`: fixed-effect intervals from several methods.
- :class:`ShrinkageDisplay`: no pooling versus partial pooling, level by level.
- Generalised models (:class:`~skmixed.MixedLogisticRegression`,
  :class:`~skmixed.MixedPoissonRegressor`): randomized quantile residuals
  (DHARMa's) in :class:`UniformQQDisplay`,
  :class:`QuantileResidualsVsFittedDisplay` and together in
  :class:`QuantileResidualDiagnosticsDisplay` (what :func:`plot_diagnostics`
  draws for them); :class:`CaterpillarDisplay` and :class:`EffectDisplay`
  (on the response scale) take them too.
"""

from ._caterpillar import CaterpillarDisplay
from ._diagnostics import (
    QQDisplay,
    RandomEffectsQQDisplay,
    ResidualDiagnosticsDisplay,
    ResidualsVsFittedDisplay,
    plot_diagnostics,
)
from ._effect import EffectDisplay
from ._intervals import IntervalDisplay
from ._quantile_residuals import (
    QuantileResidualDiagnosticsDisplay,
    QuantileResidualsVsFittedDisplay,
    UniformQQDisplay,
)
from ._shrinkage import ShrinkageDisplay

__all__ = [
    "CaterpillarDisplay",
    "EffectDisplay",
    "IntervalDisplay",
    "QQDisplay",
    "QuantileResidualDiagnosticsDisplay",
    "QuantileResidualsVsFittedDisplay",
    "RandomEffectsQQDisplay",
    "ResidualDiagnosticsDisplay",
    "ResidualsVsFittedDisplay",
    "ShrinkageDisplay",
    "UniformQQDisplay",
    "plot_diagnostics",
]
