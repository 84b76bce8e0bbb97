"""Data sets for mixed models: a simulator with known parameters and example data.

- :func:`make_grouped_regression` simulates grouped data from a linear mixed
  model (random intercepts, random slopes and their correlation, unbalanced
  groups) and returns the true parameters alongside ``X``, ``y`` and ``groups``.
- :func:`load_biomass` loads the tutorial's plant-biomass data (simulated in R),
  and :func:`simulate_biomass` draws fresh data from the same process.
"""

from ._biomass import load_biomass, simulate_biomass
from ._simulate import make_grouped_regression

__all__ = ["load_biomass", "make_grouped_regression", "simulate_biomass"]
