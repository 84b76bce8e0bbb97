"""Satterthwaite's degrees of freedom for the fixed effects, as lmerTest.

For a contrast ``l`` of the fixed effects the t statistic
``l' beta / sqrt(l' V l)`` has approximately a t distribution with

    df = 2 (l' V l)^2 / (g' A g),

where ``V = Var(beta)`` is seen as a function of the variance parameters
``varpar = (theta, sigma)``, ``g`` is the gradient of ``l' V l`` in
``varpar`` and ``A = 2 H^{-1}`` is the asymptotic covariance of
``varpar``, ``H`` the Hessian of the (not profiled) REML or ML objective
(Kuznetsova, Brockhoff & Christensen 2017, lmerTest).  As lmerTest, both
derivatives are numerical (Richardson extrapolation, numDeriv's defaults) and
``H`` is inverted on its positive eigenvalues only, so that a singular fit
(a variance on its bound) still gets degrees of freedom.

Everything runs in the scaled units of the fit; the degrees of freedom do
not depend on the units of ``varpar``, and the contrasts are taken in the
original parametrisation of the fixed effects (the intercept in original
units is a combination of the scaled coefficients, because ``X`` is centred).
"""

import numpy as np
import pandas as pd
from scipy import linalg, stats
from sklearn.utils.validation import check_is_fitted

from .._objective import blas_threads_for, factorize, make_varpar_deviance

EIGEN_TOLERANCE = 1e-8  # lmerTest: eigenvalues of H below this are dropped
ZERO_TOLERANCE = np.sqrt(np.finfo(float).eps / 7e-7)  # numDeriv's zero.tol


def satterthwaite(model):
    """Fixed-effect t-tests with Satterthwaite's degrees of freedom.

    The table lmerTest's ``summary`` prints for an ``lmer`` fit.

    Parameters
    ----------
    model : MixedLinearRegressor
        A fitted model (REML or ML).

    Returns
    -------
    table : DataFrame
        Indexed by the fixed effects (``"Intercept"`` and the feature names),
        with columns ``estimate``, ``std_error``, ``t_value``, ``df`` and
        ``p_value`` (two-sided, from the t distribution with ``df``).

    Examples
    --------
    >>> from skmixed import MixedLinearRegressor
    >>> from skmixed.datasets import load_biomass
    >>> X, y, groups = load_biomass(return_X_y_groups=True)
    >>> model = MixedLinearRegressor(random_slopes=["Temp"]).fit(X, y, groups=groups)
    >>> satterthwaite(model).round(3)
               estimate  std_error  t_value      df  p_value
    Intercept    10.092      0.251   40.229  18.337    0.000
    Temp          0.167      0.190    0.879  18.652    0.391
    N             2.210      0.094   23.407  77.931    0.000
    """
    check_is_fitted(model)
    n_fixed = model.fixed_effects_.size
    std_error = np.sqrt(np.diag(model.fixed_effects_cov_.to_numpy()))
    return t_test_table(model, std_error, contrast_df(model, np.eye(n_fixed)))


def t_test_table(model, std_error, df):
    """The t-tests of the fixed effects with given SEs and df (any method)."""
    estimate = model.fixed_effects_.to_numpy()
    with np.errstate(divide="ignore", invalid="ignore"):  # an exact fit: SE 0
        t_value = estimate / std_error
    return pd.DataFrame(
        {
            "estimate": estimate,
            "std_error": std_error,
            "t_value": t_value,
            "df": df,
            "p_value": 2.0 * stats.t.sf(np.abs(t_value), df),
        },
        index=model.fixed_effects_.index.copy(),
    )


def contrast_df(model, contrasts):
    """Satterthwaite's degrees of freedom of contrasts of the fixed effects.

    Parameters
    ----------
    model : MixedLinearRegressor
        A fitted model.
    contrasts : array-like of shape (n_contrasts, n_fixed_effects)
        Each row a vector ``l`` over ``model.fixed_effects_`` (original
        units); the degrees of freedom are those of ``l' beta``.

    Returns
    -------
    df : ndarray of shape (n_contrasts,)

    Examples
    --------
    >>> from skmixed import MixedLinearRegressor
    >>> from skmixed.datasets import load_biomass
    >>> X, y, groups = load_biomass(return_X_y_groups=True)
    >>> model = MixedLinearRegressor(random_slopes=["Temp"]).fit(X, y, groups=groups)
    >>> contrast_df(model, [[0, 1, 0], [0, 1, -1]]).round(2)  # Temp, Temp - N
    array([18.65, 28.77])
    """
    design = model._design
    contrasts = np.atleast_2d(np.asarray(contrasts, dtype=float))
    if contrasts.shape[1] != design.n_fixed:
        raise ValueError(
            f"contrasts have {contrasts.shape[1]} columns but the model has "
            f"{design.n_fixed} fixed effects {design.fixed_names}."
        )
    if not model.sigma_ > 0:  # an exact fit: no sampling variance, no df
        return np.full(contrasts.shape[0], np.nan)
    scaled = contrasts @ _scaled_basis(model)  # l' beta = (l' G) beta_scaled
    reml = model._method == "reml"
    varpar = np.append(model._theta_scaled, model.sigma_ / design.scaling.y_scale)
    with blas_threads_for(design.factors):
        A = varpar_covariance(make_varpar_deviance(design, reml), varpar)
        jac = richardson_jacobian(lambda v: _beta_cov(design, v), varpar)  # (p,p,k)
        beta_cov = _beta_cov(design, varpar)
    variance = np.einsum("ci,ij,cj->c", scaled, beta_cov, scaled)
    gradient = np.einsum("ci,ijk,cj->ck", scaled, jac, scaled)
    denominator = np.einsum("ck,kl,cl->c", gradient, A, gradient)
    with np.errstate(divide="ignore"):
        return 2.0 * variance**2 / denominator


def _scaled_basis(model):
    """``G`` with ``fixed_effects_ = offset + G @ beta_scaled`` (kept columns)."""
    design = model._design
    J, _ = design.scaling.fixed_jacobian(model._spec.fit_intercept)
    kept = design.fixed_kept
    return J[np.ix_(kept, kept)]


def _beta_cov(design, varpar):
    """``Var(beta) = sigma^2 (R_X R_X')^{-1}`` at ``varpar = (theta, sigma)``."""
    fact = factorize(design.stats, design.factors, varpar[:-1])
    p = design.n_fixed
    # np.linalg.inv: for these tiny matrices much cheaper than a LAPACK
    # triangular solve through scipy's wrappers.
    RX_inv = np.linalg.inv(fact.R[:p, :p])
    return varpar[-1] ** 2 * (RX_inv.T @ RX_inv)


def varpar_covariance(deviance, varpar):
    """``2 H^{-1}`` over the positive eigenvalues of the Hessian ``H``.

    lmerTest's ``vcov_varpar``: directions of (near) zero or negative
    curvature, which a fit on the boundary can have, are left out.
    """
    values, vectors = linalg.eigh(richardson_hessian(deviance, varpar))
    keep = values > EIGEN_TOLERANCE
    return 2.0 * (vectors[:, keep] / values[keep]) @ vectors[:, keep].T


def _initial_steps(x, d):
    """numDeriv's first steps: ``d |x|``, or ``1e-4`` where ``x`` is ~0."""
    x = np.asarray(x, dtype=float)
    return d * np.abs(x) + 1e-4 * (np.abs(x) < ZERO_TOLERANCE)


def _extrapolate(estimates):
    """Richardson extrapolation of estimates at steps h, h/2, h/4, ...

    Each round removes the leading even power of the step from the error
    (numDeriv's ``v = 2`` halving).
    """
    estimates = list(estimates)
    for m in range(1, len(estimates)):
        factor = 4.0**m
        estimates = [
            (factor * finer - coarser) / (factor - 1.0)
            for coarser, finer in zip(estimates, estimates[1:])
        ]
    return estimates[0]


def richardson_jacobian(f, x, *, d=1e-4, rounds=4):
    """Central differences of ``f`` at ``x``, Richardson-extrapolated.

    Returns an array of shape ``f(x).shape + (x.size,)``; numDeriv's
    ``jacobian`` with its defaults.
    """
    x = np.asarray(x, dtype=float)
    h0 = _initial_steps(x, d)
    columns = []
    for i in range(x.size):
        estimates = []
        for r in range(rounds):
            step = np.zeros_like(x)
            step[i] = h0[i] / 2.0**r
            estimates.append((f(x + step) - f(x - step)) / (2.0 * step[i]))
        columns.append(_extrapolate(estimates))
    return np.stack(columns, axis=-1)


def richardson_hessian(f, x, *, d=0.1, rounds=4):
    """Hessian of a scalar ``f`` at ``x`` (numDeriv's ``hessian``/``genD``).

    Second differences at steps ``h, h/2, ...``, Richardson-extrapolated; the
    off-diagonal entries come from differences along ``e_i + e_j`` minus the
    diagonal terms at the same step.
    """
    x = np.asarray(x, dtype=float)
    k = x.size
    h0 = _initial_steps(x, d)
    f0 = f(x)
    H = np.empty((k, k))
    diagonal = np.empty((rounds, k))
    for i in range(k):
        for r in range(rounds):
            step = np.zeros(k)
            step[i] = h0[i] / 2.0**r
            diagonal[r, i] = (f(x + step) - 2.0 * f0 + f(x - step)) / step[i] ** 2
        H[i, i] = _extrapolate(diagonal[:, i])
    for i in range(k):
        for j in range(i):
            estimates = []
            for r in range(rounds):
                hi, hj = h0[i] / 2.0**r, h0[j] / 2.0**r
                step = np.zeros(k)
                step[i], step[j] = hi, hj
                second = f(x + step) - 2.0 * f0 + f(x - step)
                second -= diagonal[r, i] * hi**2 + diagonal[r, j] * hj**2
                estimates.append(second / (2.0 * hi * hj))
            H[i, j] = H[j, i] = _extrapolate(estimates)
    return H
