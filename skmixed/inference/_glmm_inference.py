"""Simulation, posterior draws, bootstrap and intervals of the generalised models.

For :class:`MixedLogisticRegression` and :class:`MixedPoissonRegressor`:

- :func:`simulate_glmm` (glmer's ``simulate``): new random effects (or the
  predicted ones) for the rows' levels, the linear predictor, then the
  response from the family: binomial successes out of the trials (0/1
  labels without trials), Poisson counts (rates with an exposure);
- :func:`sample_posterior_glmm` (``arm::sim`` of a ``glmerMod``): the fixed
  effects from ``N(beta_hat, vcov)`` and each level's random effects from
  their conditional distribution (mode and conditional covariance);
- :func:`bootstrap_glmm` (``bootMer``): responses simulated at the training
  rows, each refitted from the estimates, any statistic of the refits;
- :func:`glmm_confint`: Wald, profile (:mod:`._glmm_profile`) and bootstrap
  percentile intervals, with lme4's parameter names.

The linear model's pieces are reused: its row checks and random-effect draws
(:mod:`._simulate`, with the residual scale 1 and no residual), its
:class:`~._bootstrap.BootstrapResult` and :class:`~._posterior.PosteriorSample`.
"""

import dataclasses
import numbers
import warnings

import numpy as np
import pandas as pd
from joblib import Parallel, delayed
from scipy import stats
from sklearn.utils.validation import check_is_fitted

from .._covariance import lower_indices, sd_and_correlation
from .._objective import split_theta
from .._pirls import random_part
from .._row_metadata import check_offset, check_sample_weight
from ._bootstrap import BootstrapResult, _check_n_boot
from ._posterior import PosteriorSample, _check_n_draws
from ._simulate import ResponseSimulator, check_rows, check_use_re, seed_sequence
from ._wald import check_level, lme4_factor_order, variance_parameter_names

METHODS = ("wald", "profile", "bootstrap")


# ---------------------------------------------------------------- responses


class _UnitScale:
    """The model seen with ``sigma_ = 1``: the linear simulator's draws of
    the random effects are then on the generalised model's scale."""

    sigma_ = 1.0

    def __init__(self, model):
        self._model = model

    def __getattr__(self, name):
        return getattr(self._model, name)


def draw_response(family, eta, weights, rng):
    """One response per row from the family at linear predictor ``eta``.

    Binomial: successes out of ``weights`` trials, as a proportion; Poisson:
    a count of mean ``weights * mu``, divided by ``weights`` (a rate).
    """
    mu = family.link.inverse(eta)
    if family.name == "binomial":
        trials = np.rint(weights).astype(np.int64)
        successes = rng.binomial(trials, np.clip(mu, 0.0, 1.0))
        with np.errstate(invalid="ignore", divide="ignore"):
            return np.where(trials > 0, successes / np.maximum(trials, 1), 0.0)
    counts = rng.poisson(weights * mu)
    return np.where(weights > 0, counts / np.where(weights > 0, weights, 1.0), 0.0)


def _check_trials(model, weights):
    """Binomial trials must be whole numbers."""
    if model._family.name == "binomial" and not np.allclose(
        weights, np.rint(weights), rtol=0.0, atol=1e-8
    ):
        raise ValueError(
            "simulating a binomial response needs whole numbers of trials in "
            "sample_weight."
        )


def simulate_glmm(
    model,
    X,
    groups=None,
    n=1,
    random_state=None,
    use_re="new",
    offset=None,
    sample_weight=None,
):
    """Responses simulated from a fitted generalised model (glmer's ``simulate``).

    Parameters
    ----------
    model : MixedLogisticRegression or MixedPoissonRegressor
        A fitted model.
    X : array-like of shape (n_samples, n_features)
    groups : array-like of shape (n_samples,) or (n_samples, n_factors)
        Group labels as in ``fit``.  None: every row is a new level.
    n : int, default=1
        Number of simulated responses.
    random_state : None, int, SeedSequence or Generator
    use_re : {"new", "fitted"}, default="new"
        Draw new random effects for every level, or keep the predicted ones
        of the levels seen in ``fit`` (unseen levels get new draws).
    offset : array-like of shape (n_samples,), default=None
        Added to the linear predictor.
    sample_weight : array-like of shape (n_samples,), default=None
        Binomial: whole numbers of trials (the draws are proportions of
        successes); Poisson: exposures (the draws are rates).

    Returns
    -------
    ndarray of shape (n_samples, n)
        Without ``sample_weight``: labels of ``classes_`` (binomial) or
        counts (Poisson).

    Examples
    --------
    >>> import numpy as np
    >>> from skmixed import MixedLogisticRegression
    >>> rng = np.random.default_rng(0)
    >>> groups = np.repeat(np.arange(20), 10)
    >>> x = rng.normal(size=(200, 1))
    >>> y = rng.random(200) < 1 / (1 + np.exp(-x[:, 0] - rng.normal(size=20)[groups]))
    >>> model = MixedLogisticRegression().fit(x, y, groups=groups)
    >>> model.simulate(x, groups, n=3, random_state=0).shape
    (200, 3)
    """
    check_is_fitted(model)
    if isinstance(n, bool) or not isinstance(n, numbers.Integral) or n < 1:
        raise ValueError(f"n must be a positive integer; got {n!r}.")
    check_use_re(use_re)
    X, Z, codes, n_levels = check_rows(model, X, groups)
    rows = X.shape[0]
    offset = check_offset(offset, rows)
    weights = check_sample_weight(sample_weight, rows, whole_data=False)
    if weights is not None:
        _check_trials(model, weights)
    simulator = ResponseSimulator(_UnitScale(model), X, Z, codes, n_levels, use_re)
    simulator.residual_sd = 0.0  # the family's variation replaces the residual
    rng = np.random.default_rng(seed_sequence(random_state))
    family = model._family
    draws = np.empty((rows, n))
    for j in range(n):
        eta = simulator(rng)
        if offset is not None:
            eta = eta + offset
        draws[:, j] = draw_response(
            family, eta, np.ones(rows) if weights is None else weights, rng
        )
    if weights is not None:
        return draws
    if family.name == "binomial":
        return model.classes_[draws.astype(np.int64)]
    return draws


def simulate_training_rows(model, rng):
    """A response at the training rows (new random effects), and its ``Rows``.

    Works on the rows of the fit (standardized X, optimisation order), so a
    refit needs no validation or encoding.
    """
    rows = model._rows
    Ts = split_theta(np.asarray(model._theta_scaled, dtype=float), rows.factors)
    effects = [
        rng.standard_normal((f.n_levels, f.n_terms)) @ T.T
        for f, T in zip(rows.factors, Ts)
    ]
    eta = rows.X @ model._beta_scaled + rows.offset + random_part(rows, effects)
    y = draw_response(rows.family, eta, rows.weights, rng)
    return dataclasses.replace(
        rows, y=y, log_constant=rows.family.log_constant(y, rows.weights)
    )


# ---------------------------------------------------------------- posterior


def sample_posterior_glmm(model, n_draws=1000, random_state=None):
    """Draws of the fixed and random effects, as ``arm::sim`` of a ``glmerMod``.

    Parameters
    ----------
    model : MixedLogisticRegression or MixedPoissonRegressor
        A fitted model.
    n_draws : int, default=1000
    random_state : None, int, SeedSequence or Generator

    Returns
    -------
    PosteriorSample
        ``fixed_effects`` from ``N(fixed_effects_, fixed_effects_cov_)``;
        ``random_effects`` per factor (n_draws, m, q), each level from
        ``N(random_effects_, random_effects_cond_cov_)``, independently of
        the fixed effects (as arm); ``sigma`` is None.
    """
    check_is_fitted(model)
    n_draws = _check_n_draws(n_draws)
    rng = np.random.default_rng(seed_sequence(random_state))
    beta = model.fixed_effects_.to_numpy()
    cov = model.fixed_effects_cov_.to_numpy()
    fixed = beta + rng.standard_normal((n_draws, beta.size)) @ _psd_root(cov).T
    effects = {}
    for f in model._factors:
        mode = model.random_effects_[f.name].to_numpy()  # (m, q)
        roots = _psd_root(model.random_effects_cond_cov_[f.name])  # (m, q, q)
        z = rng.standard_normal((n_draws,) + mode.shape)
        effects[f.name] = mode + np.einsum("mij,dmj->dmi", roots, z)
    frame = pd.DataFrame(fixed, columns=model.fixed_effects_.index.copy())
    return PosteriorSample(frame, effects, None)


def _psd_root(cov):
    """``R`` with ``R R' = cov`` for (stacks of) positive semi-definite ``cov``."""
    values, vectors = np.linalg.eigh(np.asarray(cov, dtype=float))
    return vectors * np.sqrt(np.clip(values, 0.0, None))[..., None, :]


# ---------------------------------------------------------------- bootstrap


def bootstrap_glmm(model, statistic, n_boot=1000, random_state=None, n_jobs=None):
    """Parametric bootstrap of a statistic of a generalised model (``bootMer``).

    Parameters
    ----------
    model : MixedLogisticRegression or MixedPoissonRegressor
        A fitted model.
    statistic : callable
        ``statistic(refitted_model)``: a scalar, an array or a Series of
        fixed shape.
    n_boot : int, default=1000
    random_state : None, int, SeedSequence or Generator
        The replicates do not depend on ``n_jobs``.
    n_jobs : int, default=None
        Processes for the refits (joblib).

    Returns
    -------
    BootstrapResult
        NaN replicates (``converged`` False) where a refit failed.
    """
    check_is_fitted(model)
    n_boot = _check_n_boot(n_boot)
    if model._family.name == "binomial":
        _check_trials(model, model._rows.weights)
    first = statistic(model)
    index = first.index if isinstance(first, pd.Series) else None
    observed = np.asarray(first, dtype=float)
    seeds = seed_sequence(random_state).spawn(n_boot)
    if n_jobs is None or n_jobs == 1:
        results = [_replicate(model, statistic, observed.shape, s) for s in seeds]
    else:
        results = Parallel(n_jobs=n_jobs)(
            delayed(_replicate)(model, statistic, observed.shape, s) for s in seeds
        )
    replicates = np.array([value for value, _ in results]).reshape(
        (n_boot,) + observed.shape
    )
    converged = np.array([ok for _, ok in results], dtype=bool)
    return BootstrapResult(observed, replicates, converged, index)


def _replicate(model, statistic, shape, seed):
    """Simulate, refit, evaluate: ``(value, converged)``."""
    rows = simulate_training_rows(model, np.random.default_rng(seed))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # singular or slow refits are expected
        try:
            refitted = model._refit(rows)
        except (ArithmeticError, ValueError, np.linalg.LinAlgError):
            return np.full(shape, np.nan), False
        value = np.asarray(statistic(refitted), dtype=float)
    if value.shape != shape:
        raise ValueError(
            f"statistic returned shape {value.shape} on a replicate but {shape} "
            "on the fitted model; it must keep one shape."
        )
    return value, bool(refitted.converged_)


# ---------------------------------------------------------------- intervals


def glmm_parameter_names(model):
    """lme4's names: ``sd_``/``cor_`` per factor (lme4's order), fixed effects."""
    return variance_parameter_names(model)[:-1] + list(model.fixed_effects_.index)


def glmm_parameters(model):
    """The parameters of ``confint`` as a Series, in lme4's order."""
    values = []
    for f in lme4_factor_order(model._factors):
        sd, corr = sd_and_correlation(model.random_effects_cov_[f.name].to_numpy())
        for r, c in zip(*lower_indices(f.n_terms, f.diagonal)):
            values.append(sd[r] if r == c else corr[r, c])
    values.extend(model.fixed_effects_.to_numpy())
    return pd.Series(values, index=glmm_parameter_names(model), dtype=float)


def glmm_wald_confint(model, level=0.95):
    """Wald intervals of the fixed effects; NaN for the variance parameters."""
    z = stats.norm.ppf(0.5 + level / 2.0)
    est = glmm_parameters(model)
    se = pd.Series(np.nan, index=est.index)
    fixed = model.fixed_effects_.index
    se[fixed] = np.sqrt(np.diag(model.fixed_effects_cov_.to_numpy()))
    return pd.DataFrame({"lower": est - z * se, "upper": est + z * se})


def glmm_confint(model, level=0.95, method="wald", **kwargs):
    """Confidence intervals of a generalised model's parameters (``confint``).

    Parameters
    ----------
    model : MixedLogisticRegression or MixedPoissonRegressor
        A fitted model.
    level : float, default=0.95
    method : {"wald", "profile", "bootstrap"}, default="wald"
    **kwargs
        Profile: ``parm`` (names of the parameters to profile).  Bootstrap:
        ``n_boot`` (default 500), ``random_state``, ``n_jobs``.

    Returns
    -------
    DataFrame
        Columns ``lower`` and ``upper``; rows ``sd_<term>|<factor>``,
        ``cor_<term2>.<term1>|<factor>``, then the fixed effects.
    """
    check_is_fitted(model)
    level = check_level(level)
    if method not in METHODS:
        raise ValueError(
            f"method must be 'wald', 'profile' or 'bootstrap'; got {method!r}."
        )
    if method == "wald":
        if kwargs:
            raise TypeError(
                f"confint(method='wald') takes no further arguments; got "
                f"{sorted(kwargs)}."
            )
        return glmm_wald_confint(model, level)
    if method == "profile":
        from ._glmm_profile import glmm_profile_confint

        return glmm_profile_confint(model, level, **kwargs)
    unknown = set(kwargs) - {"n_boot", "random_state", "n_jobs"}
    if unknown:
        raise TypeError(f"unexpected keyword argument(s) {sorted(unknown)}.")
    result = bootstrap_glmm(
        model,
        glmm_parameters,
        kwargs.get("n_boot", 500),
        kwargs.get("random_state"),
        kwargs.get("n_jobs"),
    )
    lower, upper = result.percentile_interval(level)
    return pd.DataFrame({"lower": lower, "upper": upper}, index=result.index)
