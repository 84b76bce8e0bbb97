"""The summary of a fitted mixed model: numbers first, formatting apart.

:func:`summarize` computes everything lme4's ``summary`` (with lmerTest)
shows and stores it in a :class:`Summary`; its ``__str__`` and
``_repr_html_`` only format those numbers (see :mod:`._text` and
:mod:`._html`), as MixedModels.jl isolates its ``show`` methods.
"""

from dataclasses import dataclass, field

import numpy as np
import pandas as pd
from sklearn.utils.validation import check_is_fitted

from .._covariance import n_theta, sd_and_correlation
from ..inference._kenward_roger import kenward_roger
from ..inference._satterthwaite import satterthwaite
from ..inference._wald import lme4_factor_order

QUANTILES = [0.0, 0.25, 0.5, 0.75, 1.0]
QUANTILE_NAMES = ["Min", "1Q", "Median", "3Q", "Max"]
DDF_METHODS = {"satterthwaite": satterthwaite, "kenward-roger": kenward_roger}


@dataclass
class VarianceBlock:
    """One group of lme4's "Random effects:" table."""

    group: str  # lme4's label ("Subject", "Subject.1", "Residual")
    terms: list  # term names ("" for the residual)
    variance: np.ndarray
    sd: np.ndarray
    corr: np.ndarray | None  # (q, q) when the terms are correlated


@dataclass
class Summary:
    """What lme4's ``summary`` shows for a fitted model.

    Built by :meth:`MixedLinearRegressor.summary`; ``str()`` gives lme4's
    printed layout (with lmerTest's t-tests), and notebooks
    render ``_repr_html_``.

    Attributes
    ----------
    method : {"reml", "ml"}
        How the model was fitted.
    formula : str
        The model in lme4's formula notation (the response is the name of
        ``y`` in ``fit`` when it had one, else ``y``).
    criteria : Series
        REML fits: ``REML`` (the REML criterion at convergence).  ML fits:
        ``AIC``, ``BIC``, ``logLik``, ``deviance`` and ``df.resid``.
    residual_quantiles : Series
        ``Min``, ``1Q``, ``Median``, ``3Q``, ``Max`` of the residuals divided
        by ``sigma`` (lme4's scaled residuals; numpy's default quantiles,
        which are R's type 7).
    random_effects : DataFrame
        The variance components as lme4's ``as.data.frame(VarCorr(m))``:
        columns ``grp`` (grouping factor, or ``"Residual"``), ``var1``,
        ``var2`` (the terms; ``var2`` is missing for a variance, both are
        missing for the residual), ``vcov`` (variance or covariance) and ``sdcor``
        (standard deviation or correlation).  Per factor, variances first
        and then covariances (lower triangle by columns); factors in lme4's
        order (most levels first).  Unlike lme4, the terms of an
        uncorrelated factor keep the factor's name (lme4 writes
        ``Subject.1`` for the second).
    fixed_effects : DataFrame
        Columns ``estimate``, ``std_error``, ``t_value``, ``df`` and
        ``p_value`` (as lmerTest: Satterthwaite's degrees of freedom, or
        Kenward-Roger's standard errors and degrees of freedom), indexed by
        ``Intercept`` and the feature names.
    ddf : {"satterthwaite", "kenward-roger"}
        The method of the t-tests.
    fixed_effects_corr : DataFrame
        Correlation matrix of the fixed-effect estimates.
    n_obs : int
        Number of observations.
    n_groups : dict of str to int
        Number of levels of each grouping factor, in lme4's order.
    messages : list of str
        Warnings about the fit (singular fit, no convergence, dropped
        columns), printed at the end.
    """

    method: str
    formula: str
    criteria: pd.Series
    residual_quantiles: pd.Series
    random_effects: pd.DataFrame
    fixed_effects: pd.DataFrame
    fixed_effects_corr: pd.DataFrame
    n_obs: int
    n_groups: dict
    variance_blocks: list = field(repr=False)
    messages: list = field(default_factory=list)
    ddf: str = "satterthwaite"

    def __str__(self):
        from ._text import render_text

        return render_text(self)

    def __repr__(self):
        return self.__str__()

    def _repr_html_(self):
        from ._html import render_html

        return render_html(self)


def summarize(model, ddf="satterthwaite"):
    """Compute the :class:`Summary` of a fitted :class:`MixedLinearRegressor`.

    Parameters
    ----------
    model : MixedLinearRegressor
        A fitted model.
    ddf : {"satterthwaite", "kenward-roger"}, default="satterthwaite"
        The t-tests of the fixed effects (lmerTest's ``summary(m, ddf =
        ...)``); Kenward-Roger needs a REML fit.

    Returns
    -------
    summary : Summary

    Examples
    --------
    >>> from skmixed import MixedLinearRegressor
    >>> from skmixed.datasets import load_biomass
    >>> from skmixed.reporting import summarize
    >>> X, y, groups = load_biomass(return_X_y_groups=True)
    >>> model = MixedLinearRegressor(random_slopes=["Temp"]).fit(X, y, groups=groups)
    >>> summary = summarize(model)
    >>> summary.random_effects.round(3)
            grp       var1  var2   vcov  sdcor
    0      Site  Intercept   NaN  1.070  1.034
    1      Site       Temp   NaN  0.509  0.713
    2      Site  Intercept  Temp -0.148 -0.200
    3  Residual        NaN   NaN  0.768  0.876
    >>> print(str(summary).splitlines()[9:14])  # doctest: +NORMALIZE_WHITESPACE
    ['Random effects:',
     ' Groups   Name      Variance Std.Dev. Corr ',
     ' Site     Intercept 1.0701   1.0345        ',
     '          Temp      0.5089   0.7133   -0.20',
     ' Residual           0.7681   0.8764        ']
    """
    check_is_fitted(model)
    method = str(ddf).lower()
    if method not in DDF_METHODS:
        raise ValueError(f"ddf must be one of {sorted(DDF_METHODS)}, got {ddf!r}.")
    fixed_effects = DDF_METHODS[method](model)
    factors = lme4_factor_order(model._factors)
    return Summary(
        method=model._method,
        formula=model_formula(model),
        criteria=_criteria(model),
        residual_quantiles=pd.Series(
            np.quantile(_scaled_residuals(model), QUANTILES), index=QUANTILE_NAMES
        ),
        random_effects=_random_effects_frame(model, factors),
        fixed_effects=fixed_effects,
        fixed_effects_corr=_correlation(model.fixed_effects_cov_),
        n_obs=int(model._design.stats.n),
        n_groups={f.name: f.n_levels for f in factors},
        variance_blocks=_variance_blocks(model, factors),
        messages=_messages(model),
        ddf=method,
    )


def _scaled_residuals(model):
    """lme4's scaled Pearson residuals, ``sqrt(w) (y - fitted) / sigma``."""
    if not model.sigma_ > 0:  # an exact fit
        return np.full(len(QUANTILES), np.nan)
    residuals = np.asarray(model.residuals_) / model.sigma_
    weights = getattr(model, "_residual_weights", None)
    return residuals if weights is None else residuals * np.sqrt(weights)


def model_formula(model):
    """The model in lme4's notation, e.g. ``y ~ Temp + N + (1 + Temp | Site)``.

    A formula model's formula as written.
    """
    if model._spec.formula is not None:
        return model._spec.formula
    features = [str(c) for c in model._feature_names(model.n_features_in_)]
    if model._spec.fit_intercept:
        fixed = features or ["1"]
    else:
        fixed = ["0"] + features
    random = []
    for f in model._factors:
        slopes = [t for t in f.term_names[f.intercept :]]
        if not slopes:
            inside = "1"
        else:
            inside = " + ".join(["1" if f.intercept else "0"] + slopes)
        bar = "||" if f.diagonal and f.n_terms > 1 else "|"
        random.append(f"({inside} {bar} {f.name})")
    response = getattr(model, "_response_name", "y")
    return f"{response} ~ " + " + ".join(fixed + random)


def _n_parameters(model):
    design = model._design
    n_cov = sum(n_theta(f.n_terms, f.diagonal) for f in design.factors)
    return design.n_fixed + n_cov + 1


def _criteria(model):
    if model._method == "reml":
        return pd.Series({"REML": model.objective_})
    df_resid = model._design.stats.n - _n_parameters(model)
    return pd.Series(
        {
            "AIC": model.aic_,
            "BIC": model.bic_,
            "logLik": model.loglik_,
            "deviance": model.objective_,
            "df.resid": float(df_resid),
        }
    )


def _random_effects_frame(model, factors):
    """lme4's ``as.data.frame(VarCorr(m))``: one row per (co)variance."""
    rows = []
    for f in factors:
        cov = model.random_effects_cov_[f.name].to_numpy()
        sd, corr = sd_and_correlation(cov)
        terms = f.term_names
        for i, term in enumerate(terms):
            rows.append((f.name, term, None, cov[i, i], sd[i]))
        if not f.diagonal:
            for col in range(len(terms)):
                for row in range(col + 1, len(terms)):
                    rows.append(
                        (f.name, terms[col], terms[row], cov[row, col], corr[row, col])
                    )
    rows.append(("Residual", None, None, model.sigma_**2, model.sigma_))
    return pd.DataFrame(rows, columns=["grp", "var1", "var2", "vcov", "sdcor"])


def _variance_blocks(model, factors):
    """The groups of lme4's printed table, the residual last.

    lme4 writes an uncorrelated factor ``(1 + x || g)`` as separate terms
    ``(1 | g) + (0 + x | g)``, printed as groups ``g`` and ``g.1``.
    """
    blocks = []
    for f in factors:
        cov = model.random_effects_cov_[f.name].to_numpy()
        sd, corr = sd_and_correlation(cov)
        if f.diagonal:
            for i, term in enumerate(f.term_names):
                blocks.append(
                    VarianceBlock(f.name, [term], cov[[i], [i]], sd[[i]], None)
                )
        else:
            blocks.append(
                VarianceBlock(
                    f.name,
                    list(f.term_names),
                    np.diag(cov).copy(),
                    sd,
                    corr if f.n_terms > 1 else None,
                )
            )
    for block, label in zip(blocks, _make_unique([b.group for b in blocks])):
        block.group = label
    sigma = model.sigma_
    blocks.append(
        VarianceBlock("Residual", [""], np.array([sigma**2]), np.array([sigma]), None)
    )
    return blocks


def _make_unique(names):
    """R's ``make.unique``: later duplicates get ``.1``, ``.2``, ..."""
    seen, out = {}, []
    for name in names:
        count = seen.get(name, 0)
        out.append(name if count == 0 else f"{name}.{count}")
        seen[name] = count + 1
    return out


def _correlation(cov):
    values = cov.to_numpy()
    sd = np.sqrt(np.diag(values))
    with np.errstate(invalid="ignore", divide="ignore"):
        corr = values / np.outer(sd, sd)
    np.fill_diagonal(corr, 1.0)
    return pd.DataFrame(corr, index=cov.index.copy(), columns=cov.columns.copy())


def _messages(model):
    messages = []
    names = [str(c) for c in model._feature_names(model.n_features_in_)]
    dropped = [n for n in names if n not in set(model.fixed_effects_.index)]
    if dropped:
        messages.append(
            "fit warnings:\nfixed-effect model matrix is rank deficient so dropping "
            f"{len(dropped)} column(s): {', '.join(dropped)}"
        )
    convergence = model.convergence_
    if not convergence.converged:
        # lme4's .prt.warn: the optimiser's verdict, then checkConv's messages.
        verdict = "0 (OK)"
        if not convergence.optimizer_converged:
            verdict = f"-1 ({convergence.optimizer_message}; see fit_log_)"
        messages.append(f"optimizer (L-BFGS-B) convergence code: {verdict}")
        messages += convergence.messages
    if model.is_singular_:
        messages.append("boundary (singular) fit: see is_singular_")
    se = getattr(model, "objective_se_", 0.0)
    if se > 0:
        what = "REML criterion" if model._method == "reml" else "deviance"
        messages.append(
            f"the {what} is a stochastic estimate (solver='krylov'; standard "
            f"error {se:.2g}, see objective_se_)"
        )
    return messages
