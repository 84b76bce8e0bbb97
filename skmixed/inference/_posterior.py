"""Posterior simulation (``arm::sim``) and prediction intervals.

With theta held at its estimate, and flat priors on beta and log(sigma):

- ``sigma* = sigma_hat sqrt((n - p) / chi2_{n-p})`` (a scaled inverse-chi^2);
- given sigma*, ``(u, beta)`` are jointly normal with mean ``(u_hat,
  beta_hat)`` and covariance ``sigma*^2 A^{-1}``, where ``A = U'U`` is the
  penalised cross-product matrix of the final factorisation,
  ``U = [[L', C_X], [0, R_X']]`` (the blocked Cholesky factor ``L`` of the
  random effects, ``C_X = L^{-1} Lambda' Z'X`` and ``R_X`` the factor of the
  Schur complement).  A draw solves the triangular system ``U delta =
  sigma* z``: ``beta* = beta_hat + sigma* R_X'^{-1} z_beta`` and
  ``u* = L'^{-1}(c_y - C_X beta* + sigma* z_u)``, the conditional modes with
  ``sigma* z_u`` added to the right-hand side, so the estimator's own solve
  (:func:`skmixed._objective._conditional_modes`) does the work.
  ``b* = Lambda u*``.

The random effects are therefore drawn jointly with the fixed effects: their
spread includes the uncertainty of beta, unlike lme4's conditional variances
(which hold beta at its estimate).

Prediction intervals (``merTools::predictInterval``) simulate new responses
from these draws: fixed part with beta*, random effects b* for levels seen in
``fit`` and new draws from ``N(0, Sigma*)`` for unseen levels, and residual
noise ``N(0, sigma*^2)``.
"""

from dataclasses import dataclass, replace

import numpy as np
import pandas as pd
from scipy import linalg, sparse
from sklearn.utils.validation import check_is_fitted

from .._objective import _conditional_modes, blas_threads_for, estimates, factorize
from .._row_metadata import check_offset
from ._simulate import check_rows, relative_factors, seed_sequence, term_columns
from ._wald import check_exact_solver, check_inference_defined, check_level

INCLUDE = ("fixed", "random", "residual")
VALUES_PER_BLOCK = 2_000_000  # draws x rows held at once in predict_interval


@dataclass
class PosteriorSample:
    """Draws from the approximate posterior of a fitted model (``arm::sim``).

    Attributes
    ----------
    fixed_effects : DataFrame of shape (n_draws, n_fixed)
        Columns as ``fixed_effects_``.
    random_effects : dict of str to ndarray of shape (n_draws, m, q)
        Per grouping factor, levels and terms as ``random_effects_``.
    sigma : ndarray of shape (n_draws,)
        Residual standard deviation.
    """

    fixed_effects: pd.DataFrame
    random_effects: dict
    sigma: np.ndarray


def _check_n_draws(n_draws):
    if isinstance(n_draws, bool) or not isinstance(n_draws, int | np.integer):
        raise TypeError(f"n_draws must be an integer; got {n_draws!r}.")
    if n_draws < 1:
        raise ValueError(f"n_draws must be at least 1; got {n_draws}.")
    return int(n_draws)


def _posterior_draws(model, n_draws, rng):
    """Draws in the scaled units of the fit: (beta, [b per factor], sigma).

    ``beta`` is (n_draws, p), each ``b`` (n_draws, m, q) in the design's
    factor order, ``sigma`` (n_draws,).
    """
    design = model._design
    n, p = design.stats.n, design.n_fixed
    reml = model._method == "reml"
    with blas_threads_for(design.factors):
        fact = factorize(design.stats, design.factors, model._theta_scaled)
        est = estimates(fact, design.factors, n, reml)
        df = n - p
        sigma = est.sigma * np.sqrt(df / rng.chisquare(df, size=n_draws))
        z_beta = rng.standard_normal((n_draws, p))
        RX = fact.R[:p, :p]
        delta = linalg.solve_triangular(RX.T, z_beta.T, lower=False).T if p else z_beta
        beta = est.beta + sigma[:, None] * delta
        effects = [np.empty((n_draws, f.n_levels, f.n_terms)) for f in design.factors]
        for d in range(n_draws if design.factors else 0):
            noisy = _add_noise(fact, _spherical_noise(design, rng), sigma[d])
            u = _conditional_modes(noisy, beta[d], design.factors)
            for k, (u_k, T) in enumerate(zip(u, fact.T)):
                effects[k][d] = u_k @ T.T
    return beta, effects, sigma


def _spherical_noise(design, rng):
    """``z_u ~ N(0, I)``: one block per level of the first factor, then the rest."""
    if not design.factors:
        return None, None
    first = design.factors[0]
    z1 = rng.standard_normal((first.n_terms, first.n_levels))
    Q2 = sum(f.n_levels * f.n_terms for f in design.factors[1:])
    z2 = rng.standard_normal(Q2) if Q2 else None
    return z1, z2


def _add_noise(fact, noise, scale):
    """The factorisation with ``scale * noise`` added to the y column of ``C``."""
    z1, z2 = noise
    if z1 is None:
        return fact
    C1 = fact.C1.copy()
    C1[:, -1, :] += scale * z1
    C2 = fact.C2
    if z2 is not None:
        C2 = C2.copy()
        C2[:, -1] += scale * z2
    return replace(fact, C1=C1, C2=C2)


def sample_posterior(model, n_draws=1000, random_state=None):
    """Draws of the fixed effects, random effects and sigma, as ``arm::sim``.

    sigma is drawn from its scaled inverse-chi^2 distribution with
    ``n - p`` degrees of freedom, then the fixed and random effects jointly
    from their normal distribution given sigma, with the covariance
    parameters theta held at their estimates.

    Parameters
    ----------
    model : MixedLinearRegressor
        A fitted model.
    n_draws : int, default=1000
    random_state : None, int, SeedSequence or Generator

    Returns
    -------
    PosteriorSample
        ``fixed_effects`` (DataFrame, n_draws x p), ``random_effects`` (dict
        factor -> ndarray n_draws x m x q) and ``sigma`` (ndarray).

    Examples
    --------
    >>> import numpy as np
    >>> from skmixed import MixedLinearRegressor
    >>> from skmixed.inference import sample_posterior
    >>> rng = np.random.default_rng(0)
    >>> groups = np.repeat(np.arange(10), 10)
    >>> X = rng.normal(size=(100, 1))
    >>> y = 1 + X[:, 0] + rng.normal(size=10)[groups] + rng.normal(size=100)
    >>> model = MixedLinearRegressor().fit(X, y, groups=groups)
    >>> draws = sample_posterior(model, n_draws=200, random_state=0)
    >>> draws.fixed_effects.shape, draws.random_effects["group"].shape
    ((200, 2), (200, 10, 1))
    """
    check_is_fitted(model)
    check_inference_defined(model, "posterior simulation")
    check_exact_solver(model, "posterior simulation")
    n_draws = _check_n_draws(n_draws)
    rng = np.random.default_rng(seed_sequence(random_state))
    beta_s, effects_s, sigma_s = _posterior_draws(model, n_draws, rng)
    design = model._design
    scaling = design.scaling
    J, offset = scaling.fixed_jacobian(model._spec.fit_intercept)
    kept = design.fixed_kept
    full = np.zeros((n_draws, J.shape[0]))
    full[:, kept] = beta_s
    beta = (offset + full @ J.T)[:, kept]
    by_name = {
        f.name: effects_s[k] * scaling.random_effect_scale(k)
        for k, f in enumerate(design.factors)
    }
    return PosteriorSample(
        fixed_effects=pd.DataFrame(beta, columns=design.fixed_names),
        random_effects={f.name: by_name[f.name] for f in model._factors},
        sigma=sigma_s * scaling.y_scale,
    )


def _check_include(include):
    if isinstance(include, str):
        include = (include,)
    include = tuple(include)
    unknown = [i for i in include if i not in INCLUDE]
    if unknown:
        raise ValueError(
            f"include may hold 'fixed', 'random' and 'residual'; got {unknown}."
        )
    return set(include)


def predict_interval(
    model,
    X,
    groups=None,
    level=0.95,
    n_draws=1000,
    include=INCLUDE,
    random_state=None,
    offset=None,
):
    """Prediction intervals for new observations (``merTools::predictInterval``).

    Simulates the response of each row from the posterior draws of
    :func:`sample_posterior`: the fixed part with the drawn fixed effects,
    the drawn random effects of levels seen in ``fit`` (new draws from
    ``N(0, Sigma)`` for unseen levels, and for every row without
    ``groups``), and new residual noise.

    Parameters
    ----------
    model : MixedLinearRegressor
        A fitted model.
    X : array-like of shape (n_samples, n_features)
    groups : array-like of shape (n_samples,) or (n_samples, n_factors)
        Group labels as in ``predict``.
    level : float, default=0.95
    n_draws : int, default=1000
        Simulated responses per row.
    include : iterable of {"fixed", "random", "residual"}
        Sources of uncertainty in the interval; those left out are held at
        their estimates (the random effects of unseen levels at zero, no
        residual noise).  All three give a prediction interval; ``("fixed",
        "random")`` an interval for the conditional mean.
    random_state : None, int, SeedSequence or Generator
    offset : array-like of shape (n_samples,), default=None
        The rows' offset (for a model fitted with one), added to all three.

    Returns
    -------
    DataFrame
        Columns ``fit`` (``predict(X, groups, offset=offset)``), ``lower``
        and ``upper``.

    Examples
    --------
    >>> import numpy as np
    >>> from skmixed import MixedLinearRegressor
    >>> from skmixed.inference import predict_interval
    >>> rng = np.random.default_rng(0)
    >>> groups = np.repeat(np.arange(10), 10)
    >>> X = rng.normal(size=(100, 1))
    >>> y = 1 + X[:, 0] + rng.normal(size=10)[groups] + rng.normal(size=100)
    >>> model = MixedLinearRegressor().fit(X, y, groups=groups)
    >>> pi = predict_interval(model, X[:3], groups[:3], n_draws=200, random_state=0)
    >>> list(pi.columns)
    ['fit', 'lower', 'upper']
    >>> bool((pi["lower"] < pi["fit"]).all() and (pi["fit"] < pi["upper"]).all())
    True
    """
    level = check_level(level)
    n_draws = _check_n_draws(n_draws)
    include = _check_include(include)
    fit = model.predict(X, groups)
    offset = check_offset(offset, len(fit))
    X, Z, codes, _ = check_rows(model, X, groups)
    rng = np.random.default_rng(seed_sequence(random_state))
    draws = _PredictiveDraws(model, X, Z, codes, n_draws, include, rng)
    probabilities = [(1 - level) / 2, (1 + level) / 2]
    lower, upper = np.empty(len(fit)), np.empty(len(fit))
    rows_per_block = max(1, VALUES_PER_BLOCK // n_draws)
    for start in range(0, len(fit), rows_per_block):
        rows = np.arange(start, min(start + rows_per_block, len(fit)))
        lower[rows], upper[rows] = np.quantile(draws(rows), probabilities, axis=0)
    shift = 0.0 if offset is None else offset
    return pd.DataFrame(
        {"fit": fit + shift, "lower": lower + shift, "upper": upper + shift}
    )


class _PredictiveDraws:
    """Simulated responses for blocks of rows, from one set of posterior draws.

    Calling it with row indices returns an (n_draws, n_rows) array; the
    sources of uncertainty not in ``include`` are held at their estimates.
    """

    def __init__(self, model, X, Z, codes, n_draws, include, rng):
        self.model, self.X, self.Z, self.codes = model, X, Z, codes
        self.include, self.rng = include, rng
        self.posterior = sample_posterior(model, n_draws, rng)
        self.sigma = self.posterior.sigma
        if "fixed" in include:
            self.beta = self.posterior.fixed_effects.to_numpy()
        else:
            self.beta = model.fixed_effects_.to_numpy()[None, :]
        self.Ts = relative_factors(model)

    def __call__(self, rows):
        model, X, Z = self.model, self.X[rows], self.Z[rows]
        if model._spec.fit_intercept:  # stacked as X is: sparse stays sparse
            ones = np.ones((len(rows), 1))
            X = (
                sparse.hstack([ones, X]).tocsr()
                if sparse.issparse(X)
                else np.hstack([ones, X])
            )
        fixed = X[:, model._design.fixed_kept] @ self.beta.T  # (rows, draws)
        y = np.broadcast_to(fixed.T, (len(self.sigma), len(rows))).copy()
        for factor in model._factors:
            effects = self._effects(factor, self.codes[factor.name][rows])
            for t, column in enumerate(term_columns(Z, factor)):
                y += effects[:, :, t] if column is None else effects[:, :, t] * column
        if "residual" in self.include:
            y += self.sigma[:, None] * self.rng.standard_normal(y.shape)
        return y

    def _effects(self, factor, codes):
        """Random effects of one factor for some rows: (n_draws or 1, rows, q).

        Seen levels: the posterior draws (or the BLUPs); unseen levels: new
        draws from ``N(0, sigma*^2 T T')`` (or zero).
        """
        seen = codes < factor.n_levels
        if "random" not in self.include:
            fitted = self.model.random_effects_[factor.name].to_numpy()
            effects = np.zeros((1, len(codes), factor.n_terms))
            effects[0, seen] = fitted[codes[seen]]
            return effects
        n_draws = len(self.sigma)
        effects = np.empty((n_draws, len(codes), factor.n_terms))
        effects[:, seen] = self.posterior.random_effects[factor.name][:, codes[seen]]
        z = self.rng.standard_normal((n_draws, int((~seen).sum()), factor.n_terms))
        effects[:, ~seen] = self.sigma[:, None, None] * (z @ self.Ts[factor.name].T)
        return effects
