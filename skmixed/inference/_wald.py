"""Wald confidence intervals, as lme4's ``confint(method = "Wald")``.

``beta +- z * SE`` for the fixed effects; lme4 gives no Wald interval for
the variance parameters (their sampling distribution is far from normal), and
neither do we: their rows are NaN, so the table has the same rows as the
profile and bootstrap intervals.
"""

import numpy as np
import pandas as pd
from scipy import stats
from sklearn.utils.validation import check_is_fitted

from .._covariance import lower_indices


def lme4_factor_order(factors):
    """Grouping factors in the order lme4 reports them (``mkReTrms``).

    lme4 sorts the random-effect terms by decreasing number of levels: it
    reverses a stable ascending sort, and only when the levels are not
    already non-increasing.
    """
    n_levels = [f.n_levels for f in factors]
    if not any(later > earlier for earlier, later in zip(n_levels, n_levels[1:])):
        return list(factors)
    ascending = sorted(range(len(factors)), key=lambda i: n_levels[i])
    return [factors[i] for i in reversed(ascending)]


def variance_parameter_names(model):
    """lme4's names of the variance parameters, in lme4's order.

    Per grouping factor (lme4's order), the entries of the covariance of
    its random effects in the order of theta (lower triangle by columns):
    ``sd_<term>|<factor>`` on the diagonal and ``cor_<later>.<earlier>|
    <factor>`` below it; then ``sigma``.  ``"Intercept"`` stands for lme4's
    ``"(Intercept)"``.
    """
    names = []
    for f in lme4_factor_order(model._factors):
        terms = f.term_names
        for row, col in zip(*lower_indices(f.n_terms, f.diagonal)):
            if row == col:
                names.append(f"sd_{terms[row]}|{f.name}")
            else:
                names.append(f"cor_{terms[row]}.{terms[col]}|{f.name}")
    return names + ["sigma"]


def parameter_names(model):
    """Every parameter of ``confint``: variance parameters, then fixed effects."""
    return variance_parameter_names(model) + list(model.fixed_effects_.index)


def check_level(level):
    """``level`` must be a number strictly between 0 and 1."""
    if isinstance(level, bool) or not isinstance(level, int | float | np.floating):
        raise TypeError(f"level must be a number in (0, 1); got {level!r}.")
    if not 0 < level < 1:
        raise ValueError(f"level must be in (0, 1); got {level!r}.")
    return float(level)


def check_inference_defined(model, what):
    """Refuse ``what`` on an exact fit (sigma_ = 0: no sampling variation)."""
    if getattr(model, "_exact_fit", False):
        raise ValueError(
            f"{what} is not defined for this fit: the fixed effects fit the "
            "response exactly (sigma_ = 0; see convergence_.messages), so there "
            "is no residual variation to build it from."
        )


def check_exact_solver(model, what):
    """Refuse ``what`` on a fit by the Krylov solver path.

    It needs the exact factorisation (repeated refits or joint draws of all
    random effects), which that path never forms: its factors have too
    many levels for it.
    """
    if getattr(model, "solver_", "cholesky") == "krylov":
        raise ValueError(
            f"{what} is not available for a fit with solver='krylov' (it needs "
            "the exact factorisation of the random effects' penalised system, "
            "which the Krylov path avoids at this size). Wald intervals, "
            "summary(), predictions and the conditional variances are "
            "available; refit with solver='cholesky' if the levels allow it."
        )


def wald_confint(model, level=0.95):
    """Wald confidence intervals of the fixed effects.

    Parameters
    ----------
    model : MixedLinearRegressor
        A fitted model.
    level : float, default=0.95
        Confidence level.

    Returns
    -------
    intervals : DataFrame
        Columns ``lower`` and ``upper``; one row per parameter, as lme4
        names them (``sd_Intercept|Site``, ``cor_Temp.Intercept|Site``, ...,
        ``sigma``, then ``Intercept`` and the features).  The rows of the
        variance parameters are NaN, as lme4's.

    Examples
    --------
    >>> from skmixed import MixedLinearRegressor
    >>> from skmixed.datasets import load_biomass
    >>> X, y, groups = load_biomass(return_X_y_groups=True)
    >>> model = MixedLinearRegressor(random_slopes=["Temp"]).fit(X, y, groups=groups)
    >>> wald_confint(model).round(3)
                              lower   upper
    sd_Intercept|Site           NaN     NaN
    cor_Temp.Intercept|Site     NaN     NaN
    sd_Temp|Site                NaN     NaN
    sigma                       NaN     NaN
    Intercept                 9.600  10.583
    Temp                     -0.206   0.540
    N                         2.025   2.395
    """
    check_is_fitted(model)
    level = check_level(level)
    z = stats.norm.ppf(0.5 + level / 2.0)
    estimate = model.fixed_effects_.to_numpy()
    std_error = np.sqrt(np.diag(model.fixed_effects_cov_.to_numpy()))
    n_variance = len(variance_parameter_names(model))
    lower = np.concatenate([np.full(n_variance, np.nan), estimate - z * std_error])
    upper = np.concatenate([np.full(n_variance, np.nan), estimate + z * std_error])
    return pd.DataFrame(
        {"lower": lower, "upper": upper}, index=pd.Index(parameter_names(model))
    )
