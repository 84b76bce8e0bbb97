"""Profile-likelihood intervals of a generalised model (glmer's ``confint``).

As lme4's ``confint(profile(m))`` for a ``glmerMod``: each parameter (the
standard deviations and correlations of the random effects, the fixed
effects) is fixed at a value ``x`` while the Laplace (or adaptive
quadrature) deviance is minimised over all the others; the interval is where
``zeta(x) = sign(x - x_hat) sqrt(dev(x) - dev_min)`` reaches ``-+z``.

The deviance at given parameters is penalised IRLS for the conditional
modes (:func:`skmixed._pirls.pirls`, at fixed ``beta``, from zero so that it
is a smooth function of the parameters) and the Laplace approximation
there.  The variance parameters are profiled on lme4's scale of standard
deviations and correlations (the linear model's :class:`VarianceLayout`
maps them to theta), the fixed effects in the units of the data through the
fit's standardisation.  The ends are found as for the linear model (a secant
walk, then Brent's method: :func:`skmixed.inference._profile.profile_end`),
where lme4 interpolates a spline through a grid.
"""

import numpy as np
import pandas as pd
from scipy import optimize, stats

from .._agq_gradient import agq_gradient
from .._covariance import lower_indices
from .._laplace_gradient import has_exact_gradient, laplace_gradient
from .._linalg import single_threaded_blas
from .._pirls import agq_deviance, laplace_deviance, pirls
from ._profile import VarianceLayout, _check_parm, _initial_step, _Zeta, profile_end
from ._wald import lme4_factor_order

FAILED = 1e30  # deviance where PIRLS fails (an invalid parameter vector)
DIFFERENCE_STEP = 1e-5  # forward differences, relative to max(|x|, 1)
JACOBIAN_STEP = 1e-7  # of the map (sd, cor) -> theta: algebra, no noise


def glmm_variance_layout(model):
    """lme4's variance parameters of a generalised model (no ``sigma``).

    A :class:`VarianceLayout` over the fit's factors with a last ``sigma``
    entry that stays 1.  The values are in the fit's units (slopes per unit
    of their column's scale); ``to_original`` maps them to the data's.
    """
    rows = model._rows
    index = {f.name: k for k, f in enumerate(rows.factors)}
    names, entries, to_original, lower, upper = [], [], [], [], []
    for f in lme4_factor_order(model._factors):
        terms = f.term_names
        z_scale = model._z_scale[f.name]
        for r, c in zip(*lower_indices(f.n_terms, f.diagonal)):
            entries.append((index[f.name], r, c))
            if r == c:
                names.append(f"sd_{terms[r]}|{f.name}")
                to_original.append(1.0 / z_scale[r])
                lower.append(0.0)
                upper.append(np.inf)
            else:
                names.append(f"cor_{terms[r]}.{terms[c]}|{f.name}")
                to_original.append(1.0)
                lower.append(-1.0)
                upper.append(1.0)
    return VarianceLayout(
        names + ["sigma"],
        entries + [None],
        list(rows.factors),
        np.array(to_original + [1.0]),
        np.array(lower + [1.0]),
        np.array(upper + [1.0]),
    )


class ProfileDeviance:
    """The deviance as a function of (variance parameters, scaled beta).

    With :meth:`value_and_gradient` its exact gradient where the fit has one
    (:mod:`skmixed._laplace_gradient`, :mod:`skmixed._agq_gradient`),
    carried to the variance parameters through the derivative of their map
    to theta; otherwise the searches take forward differences.
    """

    def __init__(self, model):
        self.rows = model._rows
        self.n_points = model._n_quadrature_points
        self.layout = glmm_variance_layout(model)
        self.k = len(self.layout.names) - 1
        self.J, kept, _ = model._scaling
        self.J = self.J[np.ix_(kept, kept)]  # beta = J beta_scaled
        self.start = np.concatenate(
            [
                self.layout.values(np.asarray(model._theta_scaled, float), 1.0)[:-1],
                model._beta_scaled,
            ]
        )
        self.u0 = None
        self.exact = has_exact_gradient(self.rows, self.n_points)

    def theta(self, values):
        return self.layout.theta(np.append(values, 1.0))

    def warm_start(self, x):
        """Start PIRLS from the modes at ``x`` (one fixed start per search,
        so that the deviance stays a smooth function within it)."""
        self.u0 = None
        theta = self.theta(x[: self.k])
        modes = None if theta is None else pirls(self.rows, theta, x[self.k :])
        self.u0 = None if modes is None else modes.u

    def _modes(self, x):
        theta = self.theta(x[: self.k])
        if theta is None:
            return None, None
        return theta, pirls(self.rows, theta, x[self.k :], self.u0, joint=False)

    def _value(self, modes):
        if modes is None:
            return FAILED
        if self.n_points > 1:
            value = agq_deviance(self.rows, modes, self.n_points)
        else:
            value = laplace_deviance(modes)
        return float(value) if np.isfinite(value) else FAILED

    def __call__(self, x):
        return self._value(self._modes(x)[1])

    def value_and_gradient(self, x):
        """The deviance and its gradient in ``x`` (exact: see the class)."""
        theta, modes = self._modes(x)
        value = self._value(modes)
        if value >= FAILED:
            return value, np.zeros(x.size)
        beta = x[self.k :]
        if self.n_points > 1:
            g = agq_gradient(self.rows, theta, beta, modes, self.n_points)
        else:
            g = laplace_gradient(self.rows, theta, beta, modes)
        D = self._theta_jacobian(x[: self.k])
        return value, np.concatenate([D.T @ g[: theta.size], g[theta.size :]])

    def _theta_jacobian(self, values):
        """``d theta / d values`` by central differences (one-sided at a bound)."""
        theta0 = self.theta(values)
        D = np.zeros((theta0.size, values.size))
        for i in range(values.size):
            h = JACOBIAN_STEP * max(abs(values[i]), 1.0)
            up = min(values[i] + h, self.layout.upper[i])
            down = max(values[i] - h, self.layout.lower[i])
            hi, lo = values.copy(), values.copy()
            hi[i], lo[i] = up, down
            t_hi, t_lo = self.theta(hi), self.theta(lo)
            if t_hi is None or t_lo is None or up == down:
                continue  # an invalid neighbour (a correlation matrix): flat
            D[:, i] = (t_hi - t_lo) / (up - down)
        return D

    @property
    def lower(self):
        p = self.start.size - self.k
        return np.concatenate([self.layout.lower[: self.k], np.full(p, -np.inf)])

    @property
    def upper(self):
        p = self.start.size - self.k
        return np.concatenate([self.layout.upper[: self.k], np.full(p, np.inf)])


def _forward_differences(f, lower, upper, h):
    """``f`` with its forward-difference gradient, steps kept in the box."""

    def value_and_gradient(x):
        value = f(x)
        g = np.empty(x.size)
        for i in range(x.size):
            e = np.zeros(x.size)
            e[i] = h[i] if x[i] + h[i] <= upper[i] else -h[i]
            g[i] = (f(x + e) - value) / e[i]
        return value, g

    return value_and_gradient


def _minimize(fg, x0, lower, upper):
    """L-BFGS-B on ``fg(x) = (value, gradient)`` within box bounds."""
    if x0.size == 0:
        return x0, fg(x0)[0]
    bounds = [
        (lo if np.isfinite(lo) else None, hi if np.isfinite(hi) else None)
        for lo, hi in zip(lower, upper)
    ]
    result = optimize.minimize(
        fg,
        np.clip(x0, lower, upper),
        jac=True,
        method="L-BFGS-B",
        bounds=bounds,
        options={"ftol": 1e-11, "gtol": 1e-4, "maxiter": 500},
    )
    return result.x, float(result.fun)


def _profile_parameter(deviance, base, anchor, free_mask, D, estimate, z, bounds):
    """The interval of one parameter, the others re-optimised.

    With the parameter at ``x`` the full vector is ``anchor * x + D @ free``,
    ``free`` the entries ``free_mask`` of the full vector.
    """
    lower, upper = deviance.lower[free_mask], deviance.upper[free_mask]
    h = DIFFERENCE_STEP * np.maximum(np.abs(deviance.start[free_mask]), 1.0)

    def minimize(x, free0):
        def full(free):
            return anchor * x + D @ free

        deviance.warm_start(full(free0))
        if deviance.exact:

            def fg(free):
                value, g = deviance.value_and_gradient(full(free))
                return value, D.T @ g

        else:
            fg = _forward_differences(lambda f: deviance(full(f)), lower, upper, h)
        free, value = _minimize(fg, free0, lower, upper)
        return value, free

    zeta = _Zeta(minimize, estimate, deviance.start[free_mask], base)
    low, high, step = bounds
    return (
        profile_end(zeta, estimate, -z, low, step),
        profile_end(zeta, estimate, z, high, step),
    )


def variance_interval(deviance, base, i, z):
    """Profile interval of variance parameter ``i`` (lme4's order, fit units)."""
    size = deviance.start.size
    free_mask = np.arange(size) != i
    anchor = np.zeros(size)
    anchor[i] = 1.0
    D = np.eye(size)[:, free_mask]
    estimate = deviance.start[i]
    bounds = (
        deviance.layout.lower[i],
        deviance.layout.upper[i],
        _initial_step(estimate),
    )
    return _profile_parameter(deviance, base, anchor, free_mask, D, estimate, z, bounds)


def fixed_interval(deviance, base, j, z, se):
    """Profile interval of fixed effect ``j`` (data units).

    ``beta_j = J[j] beta_scaled`` is held at ``x`` by solving for the
    scaled coordinate ``l`` with the largest weight in that row; the others
    are free.
    """
    k, row = deviance.k, deviance.J[j]
    size = deviance.start.size
    l_index = int(np.argmax(np.abs(row)))
    free_mask = np.ones(size, dtype=bool)
    free_mask[k + l_index] = False
    anchor = np.zeros(size)
    anchor[k + l_index] = 1.0 / row[l_index]
    D = np.eye(size)
    D[k + l_index, k:] = -row / row[l_index]
    D = D[:, free_mask]
    estimate = float(row @ deviance.start[k:])
    bounds = (-np.inf, np.inf, z * se)
    return _profile_parameter(deviance, base, anchor, free_mask, D, estimate, z, bounds)


def glmm_profile_confint(model, level=0.95, *, parm=None):
    """Profile-likelihood intervals of a generalised model's parameters.

    Parameters
    ----------
    model : MixedLogisticRegression or MixedPoissonRegressor
        A fitted model.
    level : float, default=0.95
    parm : list of str, default=None
        The parameters to profile (lme4's names as in the result); all by
        default.

    Returns
    -------
    DataFrame
        Columns ``lower`` and ``upper``; rows ``sd_<term>|<factor>``,
        ``cor_<term2>.<term1>|<factor>``, then the fixed effects.  A bound
        the profile never crosses (a standard deviation of zero, a
        correlation of +-1) is the end of its interval.
    """
    deviance = ProfileDeviance(model)
    names = deviance.layout.names[:-1] + list(model.fixed_effects_.index)
    wanted = names if parm is None else _check_parm(parm, names)
    z = stats.norm.ppf(0.5 + level / 2.0)
    base = deviance(deviance.start)
    se = np.sqrt(np.diag(model.fixed_effects_cov_.to_numpy()))
    out = pd.DataFrame(np.nan, index=wanted, columns=["lower", "upper"])
    with single_threaded_blas():  # many tiny products: threads only cost
        _profile_all(deviance, base, names, wanted, z, se, out)
    return out


def _profile_all(deviance, base, names, wanted, z, se, out):
    for name in wanted:
        i = names.index(name)
        if i < deviance.k:
            ends = variance_interval(deviance, base, i, z)
            out.loc[name] = np.asarray(ends) * deviance.layout.to_original[i]
        else:
            j = i - deviance.k
            out.loc[name] = fixed_interval(deviance, base, j, z, se[j])
