"""Profile-likelihood confidence intervals, as lme4's ``profile`` + ``confint``.

For each parameter, fix it at a value ``x``, re-optimise all the others and
take the signed square root of the rise in deviance,
``zeta(x) = sign(x - x_hat) * sqrt(dev(x) - dev_min)``; the interval is where
``zeta = -z`` and ``zeta = +z``.  As lme4's ``profile.merMod``:

- the deviance is the **ML** deviance even for a REML fit (``devfun2`` starts
  with ``refitML``), so a REML and an ML fit of the same data have the same
  profile intervals;
- the variance parameters are profiled on the scale of standard deviations and
  correlations of each grouping factor, plus ``sigma``; the deviance at
  fixed ``(sd, cor, sigma)`` is profiled over the fixed effects only
  (``log|L|^2 + r^2 / sigma^2 + n log(2 pi sigma^2)``, with ``theta`` the
  Cholesky factor of the covariance divided by ``sigma``);
- a fixed effect is profiled by fixing it (an offset) and re-optimising
  theta for the remaining columns.  The sufficient statistics of the
  constrained model are a linear transform of the fitted ones
  (``W' = [X without column j, y - b x_j] = W K``), so no pass over the rows
  is needed;
- a bound that the profile never crosses (a standard deviation at zero, a
  correlation at +-1) is the end of the interval.

lme4 interpolates zeta between grid points with a spline; here each end is
solved for directly (a secant walk brackets it, Brent's method refines it),
which gives the same interval within the spline's interpolation error.

Everything runs in the scaled units of the fit (see ``skmixed._design``);
the variance parameters map back by positive factors, and the fixed effects
are profiled in original units through ``K``.
"""

import warnings
from dataclasses import dataclass, replace

import numpy as np
import pandas as pd
from scipy import optimize, stats
from sklearn.utils.validation import check_is_fitted

from .._covariance import (
    factor_to_theta,
    lower_indices,
    sd_and_correlation,
    semidefinite_cholesky,
)
from .._objective import (
    blas_threads_for,
    estimates,
    factorize,
    make_deviance,
    objective_at_sigma,
    split_theta,
)
from .._optimize import optimize_design
from ._wald import (
    check_exact_solver,
    check_inference_defined,
    check_level,
    lme4_factor_order,
)

MAX_STEPS = 60  # secant steps to bracket one end before giving up
MAX_GROWTH = 10.0  # a step at most this many times the previous (lme4's maxmult)


@dataclass
class VarianceLayout:
    """The variance parameters on lme4's profiling scale, and back to theta.

    ``names`` are lme4's (``sd_<term>|<factor>``, ``cor_<term2>.<term1>|
    <factor>``, then ``sigma``), in lme4's order; ``entries[i]`` says which
    design factor and which entry ``(row, col)`` of its covariance the
    ``i``-th parameter is (``None`` for sigma).
    """

    names: list
    entries: list
    factors: list  # design factors (optimisation order)
    to_original: np.ndarray  # multipliers from the scaled units of the fit
    lower: np.ndarray
    upper: np.ndarray

    @classmethod
    def from_model(cls, model):
        design = model._design
        index = {f.name: k for k, f in enumerate(design.factors)}
        y_scale = design.scaling.y_scale
        names, entries, to_original, lower, upper = [], [], [], [], []
        for f in lme4_factor_order(model._factors):
            k = index[f.name]
            z_scale = design.scaling.z_scale[k]
            terms = f.term_names  # "Intercept" where lme4 writes "(Intercept)"
            for r, c in zip(*lower_indices(f.n_terms, f.diagonal)):
                entries.append((k, r, c))
                if r == c:
                    names.append(f"sd_{terms[r]}|{f.name}")
                    to_original.append(y_scale / z_scale[r])
                    lower.append(0.0)
                    upper.append(np.inf)
                else:
                    names.append(f"cor_{terms[r]}.{terms[c]}|{f.name}")
                    to_original.append(1.0)
                    lower.append(-1.0)
                    upper.append(1.0)
        names.append("sigma")
        entries.append(None)
        to_original.append(y_scale)
        lower.append(0.0)
        upper.append(np.inf)
        return cls(
            names,
            entries,
            list(design.factors),
            np.asarray(to_original),
            np.asarray(lower),
            np.asarray(upper),
        )

    def values(self, theta, sigma):
        """The (sd, cor, ..., sigma) vector, scaled units, from theta and sigma.

        Correlations that are undefined (a term with zero variance) are 0.
        """
        sdcor = [
            sd_and_correlation(sigma**2 * (T @ T.T))
            for T in split_theta(theta, self.factors)
        ]
        out = np.empty(len(self.names))
        for i, entry in enumerate(self.entries):
            if entry is None:
                out[i] = sigma
                continue
            k, r, c = entry
            sd, corr = sdcor[k]
            out[i] = sd[r] if r == c else corr[r, c]
        return np.nan_to_num(out, nan=0.0)

    def theta(self, values):
        """Theta (design order, scaled) from the (sd, cor, sigma) vector.

        None when the correlations do not form a valid correlation matrix.
        """
        sigma = values[-1]
        sds = [np.zeros(f.n_terms) for f in self.factors]
        corrs = [np.eye(f.n_terms) for f in self.factors]
        for value, entry in zip(values, self.entries):
            if entry is None:
                continue
            k, r, c = entry
            if r == c:
                sds[k][r] = value
            else:
                corrs[k][r, c] = corrs[k][c, r] = value
        parts = []
        for f, sd, corr in zip(self.factors, sds, corrs):
            chol = semidefinite_cholesky(corr)
            if chol is None:
                return None
            parts.append(factor_to_theta(sd[:, None] * chol / sigma, f.diagonal))
        return np.concatenate(parts) if parts else np.zeros(0)


# ---------------------------------------------------------------------------
# The ML optimum that lme4 profiles around
# ---------------------------------------------------------------------------


@dataclass
class MLOptimum:
    """The ML fit in scaled units: theta, the deviance and the estimates."""

    theta: np.ndarray
    deviance: float
    sigma: float
    beta: np.ndarray  # the kept columns
    beta_cov: np.ndarray


def ml_optimum(model):
    """The ML optimum of the model's design (lme4's ``refitML``)."""
    design = model._design
    deviance = make_deviance(design, reml=False)
    theta = np.asarray(model._theta_scaled, dtype=float)
    if model._method != "ml" and theta.size:
        theta = optimize_design(design, False, model._max_iter, theta).theta
    fact = factorize(design.stats, design.factors, theta)
    est = estimates(fact, design.factors, design.stats.n, reml=False)
    return MLOptimum(theta, float(deviance(theta)), est.sigma, est.beta, est.beta_cov)


# ---------------------------------------------------------------------------
# Deviance on the (sd, cor, sigma) scale and its profile
# ---------------------------------------------------------------------------


def sdcor_deviance(design, layout):
    """The ML deviance as a function of (sd, cor, ..., sigma), scaled units.

    Profiled over the fixed effects only (lme4's ``devfun2``); inf where the
    parameters are invalid.
    """
    stats_, factors, n = design.stats, design.factors, design.stats.n

    def deviance(values):
        sigma = values[-1]
        theta = layout.theta(values) if sigma > 0 else None
        fact = None if theta is None else factorize(stats_, factors, theta)
        if fact is None:
            return np.inf
        value = objective_at_sigma(fact, n, False, sigma)
        return value if np.isfinite(value) else np.inf

    return deviance


def _bounded_minimum(f, x0, lower, upper):
    """Minimise ``f`` within box bounds; returns (x, value).

    SLSQP rather than L-BFGS-B: L-BFGS-B's first trial step has unit length,
    which on the sd/cor scale can land where the correlations are invalid
    (infinite deviance), after which it stops without moving and reports
    success.  Powell polishes when SLSQP itself reports a failure.
    """
    if x0.size == 0:
        return x0, f(x0)
    bounds = optimize.Bounds(lower, upper)
    x0 = np.clip(x0, lower, upper)
    result = optimize.minimize(
        f,
        x0,
        method="SLSQP",
        bounds=bounds,
        options={"ftol": 1e-12, "maxiter": 500},
    )
    x, value = result.x, float(result.fun)
    if not result.success:
        polish = optimize.minimize(
            f, x, method="Powell", bounds=bounds, options={"xtol": 1e-9, "ftol": 1e-13}
        )
        if polish.fun <= value:
            x, value = polish.x, float(polish.fun)
    return x, value


class _Zeta:
    """``zeta(x)`` for one parameter, remembering every evaluation.

    ``minimize(x, start)`` returns ``(value, argmin)`` of the deviance with
    the parameter fixed at ``x``; each new evaluation starts from the
    optimum of the nearest value already evaluated (lme4's "prev" start).
    """

    def __init__(self, minimize, estimate, start, base):
        self.minimize = minimize
        self.estimate = estimate
        self.base = base
        self.cache = {float(estimate): (0.0, start)}

    def __call__(self, x):
        x = float(x)
        if x in self.cache:
            return self.cache[x][0]
        nearest = min(self.cache, key=lambda v: abs(v - x))
        value, argmin = self.minimize(x, self.cache[nearest][1])
        rise = max(value - self.base, 0.0)  # tiny negative rises: rounding
        zeta = np.sign(x - self.estimate) * np.sqrt(rise)
        self.cache[x] = (zeta, argmin)
        return zeta


def profile_end(zeta, estimate, target, bound, step, ztol=1e-4):
    """The value where ``zeta`` reaches ``target``, walking from ``estimate``.

    A secant walk from the estimate (zeta is close to linear in the
    parameter), then Brent's method once the target is bracketed; it stops
    when zeta is within ``ztol`` of the target.  ``bound`` is the
    parameter's bound in the walking direction and the answer when the
    profile stays within the target up to it.  NaN (with a warning) when no
    crossing is found.
    """
    direction = np.sign(target)
    if direction * (bound - estimate) <= 0:
        return float(bound)
    x_prev, z_prev = estimate, 0.0
    x = _clip(estimate + direction * step, estimate, bound)
    for _ in range(MAX_STEPS):
        z = zeta(x)
        if abs(z - target) <= ztol:
            return x
        if direction * (z - target) > 0:
            return _bracketed_root(zeta, target, (x_prev, z_prev), (x, z), ztol)
        if x == bound:
            return float(bound)
        slope = (z - z_prev) / (x - x_prev)
        last = abs(x - x_prev)
        if direction * slope > 0:
            move = min(abs((target - z) / slope), MAX_GROWTH * last)
        else:  # flat or non-monotone here: widen the step
            move = 2.0 * last
        x_prev, z_prev = x, z
        x = _clip(x + direction * move, estimate, bound)
    warnings.warn(
        f"the profile did not reach zeta={target:.3g} within {MAX_STEPS} steps; "
        "the interval end is NaN.",
        UserWarning,
        stacklevel=4,
    )
    return np.nan


def _clip(x, estimate, bound):
    low, high = sorted((estimate, bound))
    return float(min(max(x, low), high))


def _bracketed_root(zeta, target, inside, outside, ztol):
    """Brent's method on ``zeta - target`` between two evaluated points.

    The x tolerance is ``ztol`` translated through the bracket's slope.
    """
    (a, za), (b, zb) = inside, outside
    xtol = ztol * abs(b - a) / max(abs(zb - za), ztol)
    return float(optimize.brentq(lambda x: zeta(x) - target, a, b, xtol=xtol))


def _initial_step(estimate):
    """First trial step: 5% of the estimate, at least 0.01.

    The scaled units of the fit make the variance parameters O(1).
    """
    return max(abs(estimate) * 0.05, 1e-2)


def variance_interval(design, layout, optimum, i, z):
    """Profile interval of variance parameter ``i`` (scaled units).

    The other parameters are re-optimised with sigma on the log scale: near
    its bound of zero the deviance explodes, which derails a quasi-Newton
    line search on the natural scale.
    """
    deviance = sdcor_deviance(design, layout)
    start = layout.values(optimum.theta, optimum.sigma)
    n_par = len(start)
    others = np.arange(n_par) != i
    log_sigma = i != n_par - 1  # sigma is among the free parameters
    lower, upper = layout.lower[others].copy(), layout.upper[others].copy()
    if log_sigma:
        lower[-1], upper[-1] = -np.inf, np.inf

    def minimize(x, free0):
        def f(free):
            values = np.empty(n_par)
            values[i] = x
            values[others] = free
            if log_sigma:
                values[-1] = np.exp(free[-1])
            return deviance(values)

        free, value = _bounded_minimum(f, free0, lower, upper)
        return value, free

    estimate = start[i]
    free0 = start[others]
    if log_sigma:
        free0[-1] = np.log(free0[-1])
    zeta = _Zeta(minimize, estimate, free0, optimum.deviance)
    step = _initial_step(estimate)
    return (
        profile_end(zeta, estimate, -z, layout.lower[i], step),
        profile_end(zeta, estimate, z, layout.upper[i], step),
    )


# ---------------------------------------------------------------------------
# Fixed effects: the constrained model's statistics by a linear transform
# ---------------------------------------------------------------------------


def original_fixed_basis(design, fit_intercept):
    """``G`` and ``g_y`` with ``[X_orig, y] = W [G 0; g_y' y_scale]``.

    ``W = [Xs y_s]`` are the scaled columns of the fit (kept columns only);
    ``X_orig`` the original fixed-effect columns (intercept first).
    """
    scaling, kept = design.scaling, design.fixed_kept
    n_features = scaling.x_scale.size
    if fit_intercept:
        G = np.eye(n_features + 1)
        G[0, 1:] = scaling.x_center
        G[np.arange(1, n_features + 1), np.arange(1, n_features + 1)] = scaling.x_scale
        g_y = np.zeros(n_features + 1)
        g_y[0] = scaling.y_center
    else:
        G = np.diag(scaling.x_scale)
        g_y = np.zeros(n_features)
    return G[np.ix_(kept, kept)], g_y[kept]


def constraint_transform(G, g_y, y_scale, j):
    """``K0`` and ``k1`` such that ``K(b) = K0 - b k1 e_last'`` gives the
    constrained model ``W K(b) = [X_orig without column j, (y - b x_j) / y_scale]``.

    The remaining columns of ``X_orig`` are divided by their scales (which
    leaves the deviance unchanged and keeps them near unit size).
    """
    p = G.shape[0]
    keep = [c for c in range(p) if c != j]
    K0 = np.zeros((p + 1, p))
    K0[:p, : p - 1] = G[:, keep] / np.diag(G)[keep]
    K0[:p, p - 1] = g_y / y_scale
    K0[p, p - 1] = 1.0
    k1 = np.zeros(p + 1)
    k1[:p] = G[:, j] / y_scale
    return K0, k1


def transformed_stats(stats_, K):
    """Sufficient statistics of ``W K`` from those of ``W`` (no data pass).

    Only the products with ``W`` change: ``W'W -> K'W'W K``, ``Z'W -> Z'W K``.
    """
    first, others = stats_.first, stats_.others
    if first is not None:
        first = replace(first, ZtW=np.einsum("qkm,kl->qlm", first.ZtW, K))
    if others is not None:
        others = replace(others, Z2tW=others.Z2tW @ K)
    return replace(stats_, WtW=K.T @ stats_.WtW @ K, first=first, others=others)


def fixed_interval(model, optimum, j, z):
    """Profile interval of fixed effect ``j`` (original units)."""
    design = model._design
    G, g_y = original_fixed_basis(design, model._spec.fit_intercept)
    K0, k1 = constraint_transform(G, g_y, design.scaling.y_scale, j)

    def minimize(b, theta0):
        K = K0.copy()
        K[:, -1] -= b * k1
        constrained = replace(design, stats=transformed_stats(design.stats, K))
        deviance = make_deviance(constrained, reml=False)
        if theta0.size == 0:
            return deviance(theta0), theta0
        outcome = optimize_design(constrained, False, model._max_iter, theta0)
        return outcome.value, outcome.theta

    # beta_orig = G^-1 (g_y + y_scale beta_scaled), and likewise its covariance
    G_inv = np.linalg.inv(G)
    y_scale = design.scaling.y_scale
    estimate = float(G_inv[j] @ (g_y + y_scale * optimum.beta))
    se = y_scale * np.sqrt(G_inv[j] @ optimum.beta_cov @ G_inv[j])
    zeta = _Zeta(minimize, estimate, optimum.theta, optimum.deviance)
    return (
        profile_end(zeta, estimate, -z, -np.inf, se),
        profile_end(zeta, estimate, z, np.inf, se),
    )


# ---------------------------------------------------------------------------
# Public entry point
# ---------------------------------------------------------------------------


def profile_confint(model, level=0.95, *, parm=None):
    """Profile-likelihood confidence intervals, as lme4's ``confint(profile(m))``.

    Parameters
    ----------
    model : MixedLinearRegressor
        A fitted model (REML or ML; both are profiled on the ML deviance, as
        lme4 does).
    level : float, default=0.95
        Confidence level.
    parm : list of str, optional
        Names of the parameters to profile (default all, see Returns).

    Returns
    -------
    DataFrame
        Columns ``lower`` and ``upper``, one row per parameter in lme4's
        order: per grouping factor ``sd_<term>|<factor>`` and
        ``cor_<term2>.<term1>|<factor>``, then ``sigma``, then the fixed
        effects (``Intercept`` and feature names).

    Examples
    --------
    >>> import numpy as np
    >>> from skmixed import MixedLinearRegressor
    >>> from skmixed.inference import profile_confint
    >>> rng = np.random.default_rng(0)
    >>> groups = np.repeat(np.arange(8), 10)
    >>> y = 5 + rng.normal(size=8)[groups] + rng.normal(size=80)
    >>> model = MixedLinearRegressor().fit(np.empty((80, 0)), y, groups=groups)
    >>> ci = profile_confint(model)
    >>> list(ci.index)
    ['sd_Intercept|group', 'sigma', 'Intercept']
    >>> bool((ci["lower"] < ci["upper"]).all())
    True
    """
    check_is_fitted(model)
    check_inference_defined(model, "a profile interval")
    check_exact_solver(model, "a profile interval")
    z = float(stats.norm.ppf(0.5 + check_level(level) / 2))
    layout = VarianceLayout.from_model(model)
    names = layout.names + list(model._design.fixed_names)
    wanted = names if parm is None else _check_parm(parm, names)
    rows = {}
    with blas_threads_for(model._design.factors):
        optimum = ml_optimum(model)
        for i, name in enumerate(layout.names):
            if name in wanted:
                low, high = variance_interval(model._design, layout, optimum, i, z)
                scale = layout.to_original[i]
                rows[name] = (low * scale, high * scale)
        for j, name in enumerate(model._design.fixed_names):
            if name in wanted:
                rows[name] = fixed_interval(model, optimum, j, z)
    order = [n for n in names if n in rows]
    return pd.DataFrame(
        [rows[n] for n in order], index=order, columns=["lower", "upper"]
    )


def _check_parm(parm, names):
    parm = [parm] if isinstance(parm, str) else list(parm)
    unknown = [p for p in parm if p not in names]
    if unknown:
        raise ValueError(f"unknown parameter(s) {unknown}; the parameters are {names}.")
    return parm
