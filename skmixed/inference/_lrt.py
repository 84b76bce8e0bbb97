"""Likelihood-ratio tests between nested models, as lme4's ``anova``.

One model alone gets lmerTest's F table of its fixed-effect terms instead
(:mod:`._ftest`).

REML criteria of models with different fixed effects are not comparable, so
(as lme4) REML fits are refitted by maximum likelihood first.  Generalised
models (``MixedLogisticRegression``, ``MixedPoissonRegressor``) are maximum
likelihood fits already and compare by their Laplace (or quadrature)
log-likelihoods, as glmer's ``anova``.  The refit
needs no data: the sufficient statistics kept by the fit (``model._design``)
define the ML deviance as well, which is re-minimised from the REML
estimates.
"""

import numpy as np
import pandas as pd
from scipy import stats
from sklearn.utils.validation import check_is_fitted

from .._covariance import n_theta
from .._objective import (
    blas_threads_for,
)
from .._optimize import optimize_design
from ._wald import check_inference_defined

COLUMNS = ["npar", "AIC", "BIC", "logLik", "deviance", "Chisq", "Df", "Pr(>Chisq)"]


def anova(*models, names=None, refit=True, type=3, ddf="satterthwaite"):
    """F-tests by term of one model, or likelihood-ratio tests between models.

    With one model: lmerTest's ``anova(m, type, ddf)``, an F-test of each
    fixed-effect term (type III by default, or type I, sequential) with
    Satterthwaite's or Kenward-Roger's denominator degrees of freedom.
    With several: lme4's ``anova(m0, m1, ...)``, the models sorted by their
    number of parameters and each tested against the one before it.

    Parameters
    ----------
    *models : MixedLinearRegressor, MixedLogisticRegression or MixedPoissonRegressor
        One fitted linear model, or two or more models of one kind fitted to
        the same data, each nested in the next (the fixed effects and
        random-effect terms of a smaller model are among those of a larger
        one).
    names : list of str, default=None
        Several models: row labels, in the order of ``models``; default
        ``"m0"``, ``"m1"`` and so on.
    refit : bool, default=True
        Several models: refit REML fits by maximum likelihood before
        comparing them (lme4's default).  With ``False`` the models' own
        criteria are compared, which is valid only for REML fits with the
        same fixed effects.
    type : {3, 1}, default=3
        One model: type III tests (SAS's hypotheses, as lmerTest builds
        them for factors, interactions and polynomial terms in any coding)
        or type I (sequential); ``"III"``/``"I"`` are accepted too.
    ddf : {"satterthwaite", "kenward-roger"}, default="satterthwaite"
        One model: the denominator degrees of freedom (Kenward-Roger also
        scales F, as pbkrtest; REML fits only).

    Returns
    -------
    table : DataFrame
        One model: an :class:`~skmixed.inference.AnovaTable` (a DataFrame
        that prints as lmerTest prints it) indexed by term, with columns
        ``Sum Sq``, ``Mean Sq``, ``NumDF``, ``DenDF``, ``F value`` and
        ``Pr(>F)``.  A formula model's terms are R's (``nitro``,
        ``Variety``, ``nitro:Variety``, ``poly(Time, 2)``); an array
        model's are its features.  ``table.hypotheses`` holds each term's
        hypothesis matrix ``L`` (lmerTest's ``show_tests``).
        Several models: one row per model (sorted by ``npar``) with lme4's
        columns ``npar``, ``AIC``, ``BIC``, ``logLik``, ``deviance`` (ML, or
        REML with ``refit=False``), ``Chisq`` (twice the gain in
        log-likelihood over the previous row, at least 0), ``Df`` (the gain
        in parameters) and ``Pr(>Chisq)``.

    Raises
    ------
    ValueError
        If several models were fitted to different data, or they are not
        nested.

    See Also
    --------
    skmixed.inference.drop1 : F-tests of the marginal terms.
    skmixed.inference.ranova : likelihood-ratio tests of the random terms.

    Examples
    --------
    One model: F-tests by term.

    >>> from skmixed import MixedLinearRegressor, anova
    >>> from skmixed.datasets import load_biomass
    >>> X, y, groups = load_biomass(return_X_y_groups=True)
    >>> m1 = MixedLinearRegressor(random_slopes=["Temp"]).fit(X, y, groups=groups)
    >>> print(anova(m1))
    Type III Analysis of Variance Table with Satterthwaite's method
         Sum Sq Mean Sq NumDF  DenDF  F value Pr(>F)
    Temp   0.59    0.59     1 18.652   0.7728 0.3905
    N    420.86  420.86     1 77.931 547.9067 <2e-16 ***
    ---
    Signif. codes:  0 ‘***’ 0.001 ‘**’ 0.01 ‘*’ 0.05 ‘.’ 0.1 ‘ ’ 1

    Several models: likelihood-ratio tests.

    >>> m0 = MixedLinearRegressor().fit(X, y, groups=groups)
    >>> m1 = MixedLinearRegressor(random_slopes=["Temp"]).fit(X, y, groups=groups)
    >>> table = anova(m0, m1, names=["intercept", "slope"])
    >>> table.round(2)
               npar     AIC     BIC  logLik  deviance  Chisq   Df  Pr(>Chisq)
    intercept     5  353.24  366.26 -171.62    343.24    NaN  NaN         NaN
    slope         7  335.87  354.11 -160.94    321.87  21.36  2.0         0.0
    >>> print(f"{table.loc['slope', 'Pr(>Chisq)']:.3g}")
    2.29e-05
    """
    if len(models) == 1:
        from ._ftest import anova_table

        _check_model_types(models)
        if _generalised(models[0]):
            raise TypeError(
                "F-tests by term are for linear mixed models; for a generalised "
                "one compare nested models by likelihood ratio, anova(m0, m1), "
                "or read the Wald z-tests of summary()."
            )
        check_inference_defined(models[0], "an F test")
        return anova_table(models[0], type=type, ddf=ddf)
    models, names = _check_models(models, names)
    for model in models:
        check_inference_defined(model, "a likelihood-ratio test")
    if not refit:
        _check_comparable_criteria(models)
    deviance = [_deviance(m, refit) for m in models]
    npar = [n_parameters(m) for m in models]
    order = sorted(range(len(models)), key=lambda i: npar[i])
    _check_nested([models[i] for i in order], [names[i] for i in order])
    n = _n_obs(models[0])
    table = pd.DataFrame(
        {
            "npar": [npar[i] for i in order],
            "deviance": [deviance[i] for i in order],
        },
        index=pd.Index([names[i] for i in order]),
    )
    table["AIC"] = table["deviance"] + 2.0 * table["npar"]
    table["BIC"] = table["deviance"] + np.log(n) * table["npar"]
    table["logLik"] = -0.5 * table["deviance"]
    gain = np.diff(table["logLik"].to_numpy())
    table["Chisq"] = np.concatenate([[np.nan], 2.0 * np.maximum(gain, 0.0)])
    table["Df"] = np.concatenate([[np.nan], np.diff(table["npar"].to_numpy())])
    table["Pr(>Chisq)"] = stats.chi2.sf(table["Chisq"], table["Df"])
    return table[COLUMNS]


def n_parameters(model):
    """Fixed effects, covariance parameters and sigma (lme4's ``npar``).

    A generalised model has no sigma (binomial and Poisson: no scale).
    """
    n_cov = sum(n_theta(f.n_terms, f.diagonal) for f in model._factors)
    return len(model.fixed_effects_) + n_cov + (not _generalised(model))


def _generalised(model):
    return hasattr(model, "_family")


def _deviance(model, refit):
    if _generalised(model):
        return float(model.deviance_)
    return ml_deviance(model) if refit else float(model.objective_)


def _n_obs(model):
    return model._rows.n if _generalised(model) else model._design.stats.n


def _response(model):
    """What a model was fitted to: the response (times weights: trials)."""
    if _generalised(model):
        return model._rows.y * model._rows.weights
    return model.fitted_values_ + model.residuals_


def ml_deviance(model):
    """The ML deviance of a model, refitting a REML fit (lme4's ``refitML``).

    The ML deviance is re-minimised over theta on the model's sufficient
    statistics, starting from its estimates; the result is in the units of
    the data, as lme4's ``deviance``.
    """
    if model._method == "ml":
        return float(model.objective_)
    design = model._design
    with blas_threads_for(design.factors):
        start = np.asarray(model._theta_scaled, dtype=float)
        outcome = optimize_design(design, False, model._max_iter, start)
    shift = design.scaling.objective_shift(design.stats.n, design.n_fixed, [], False)
    shift -= design.stats.log_weights  # prior weights: lme4's -sum(log w)
    return float(outcome.value + shift)


def _check_models(models, names):
    if len(models) < 2:
        raise ValueError(
            "anova needs one fitted model (F-tests by term) or at least two "
            f"to compare; got {len(models)}."
        )
    _check_model_types(models)
    names = [f"m{i}" for i in range(len(models))] if names is None else list(names)
    if len(names) != len(models) or len(set(names)) != len(names):
        raise ValueError(
            f"names must give one distinct label per model: got {names} for "
            f"{len(models)} models."
        )
    if len({_generalised(m) for m in models}) > 1:
        raise TypeError(
            "a linear and a generalised model cannot be compared by likelihood "
            "ratio: their likelihoods are of different distributions."
        )
    if len({m._family.name for m in models if _generalised(m)}) > 1:
        raise TypeError("the models are of different families (binomial, Poisson).")
    n = {_n_obs(m) for m in models}
    if len(n) > 1:
        raise ValueError(
            f"the models were fitted to different numbers of observations "
            f"{sorted(n)}; likelihood-ratio tests need the same data."
        )
    y = _response(models[0])
    for name, m in zip(names[1:], models[1:]):
        if not np.allclose(_response(m), y, rtol=1e-8, atol=0):
            raise ValueError(
                f"model {name!r} was fitted to a different response than model "
                f"{names[0]!r}; likelihood-ratio tests need the same data."
            )
    return list(models), names


def _check_model_types(models):
    for i, m in enumerate(models):
        if not hasattr(m, "objective_") or not (
            hasattr(m, "_design") or _generalised(m)
        ):
            raise TypeError(
                f"model {i} is not a mixed model of skmixed (got {type(m).__name__})."
            )
        check_is_fitted(m)


def _check_comparable_criteria(models):
    methods = {m._method for m in models}
    if len(methods) > 1:
        raise ValueError(
            "with refit=False all models must be fitted by the same method; got "
            f"{sorted(methods)}. Use refit=True to compare maximum likelihoods."
        )
    fixed = {tuple(m.fixed_effects_.index) for m in models}
    if methods == {"reml"} and len(fixed) > 1:
        raise ValueError(
            "REML criteria of models with different fixed effects are not "
            "comparable; use refit=True (the default) to refit them by maximum "
            "likelihood."
        )


def _random_terms(model):
    """Factor name -> (set of term names, whether correlated)."""
    return {
        f.name: (set(f.term_names), not f.diagonal and f.n_terms > 1)
        for f in model._factors
    }


def _check_nested(models, names):
    """Each model (sorted by npar) must be nested in the next one."""
    for (small, a), (large, b) in zip(zip(models, names), zip(models[1:], names[1:])):
        if n_parameters(small) == n_parameters(large):
            raise ValueError(
                f"models {a!r} and {b!r} have the same number of parameters "
                f"({n_parameters(small)}), so neither is nested in the other."
            )
        problems = []
        missing = set(small.fixed_effects_.index) - set(large.fixed_effects_.index)
        if missing:
            problems.append(f"fixed effects {sorted(missing)}")
        terms_large = _random_terms(large)
        for factor, (terms, correlated) in _random_terms(small).items():
            other, other_correlated = terms_large.get(factor, (set(), False))
            if not terms <= other:
                problems.append(f"random terms {sorted(terms - other)} of {factor!r}")
            elif correlated and not other_correlated:
                problems.append(f"the correlations of {factor!r}")
        if problems:
            raise ValueError(
                f"model {a!r} is not nested in {b!r}: {b!r} lacks "
                f"{'; '.join(problems)}."
            )
