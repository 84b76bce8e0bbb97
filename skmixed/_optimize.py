"""Bounded minimisation of the profiled deviance over theta.

L-BFGS-B with finite-difference gradients does the bulk of the work; a
derivative-free polish (Powell, bounded) follows when L-BFGS-B stops on a
line-search failure, which finite differences can cause near the optimum.
Variance parameters that end up at (or numerically at) their lower bound of
zero are set to exactly zero when that does not increase the objective: the
boundary is a legitimate estimate, reported as a singular fit.
"""

from dataclasses import dataclass, field

import numpy as np
from scipy import optimize

SINGULAR_TOLERANCE = 1e-4  # lme4's isSingular tolerance on theta


@dataclass
class FitLog:
    """Every evaluation of the objective: theta and the value."""

    thetas: list = field(default_factory=list)
    values: list = field(default_factory=list)

    def record(self, deviance):
        """Wrap ``deviance`` (returning a value, or a value and a gradient)."""

        def logged(theta):
            result = deviance(theta)
            self.thetas.append(np.array(theta, dtype=float))
            value = result[0] if isinstance(result, tuple) else result
            self.values.append(float(value))
            return result

        return logged


@dataclass
class OptimizeOutcome:
    theta: np.ndarray
    lower: np.ndarray
    value: float
    converged: bool
    n_iter: int
    message: str
    log: FitLog


def minimize_deviance(
    deviance, theta0, lower, *, gradient=None, max_iter=1000, tol=1e-10
):
    """Minimise ``deviance`` over theta subject to ``theta >= lower``.

    ``gradient``, when given, returns the value and the exact gradient at
    theta; otherwise gradients are taken by finite differences.  Returns an
    :class:`OptimizeOutcome`; ``converged`` is False when the optimiser ran
    out of iterations or failed, never silently.
    """
    log = FitLog()
    f = log.record(deviance)
    fg = None if gradient is None else log.record(gradient)
    theta0 = np.asarray(theta0, dtype=float)
    if theta0.size == 0:
        # No random effects: one direct solve, counted as one iteration.
        value = f(theta0)
        return OptimizeOutcome(
            theta0, lower, value, True, 1, "no covariance parameters", log
        )
    bounds = optimize.Bounds(lower, np.full_like(lower, np.inf))
    theta, value, converged, n_iter, message = _quasi_newton(
        f, fg, theta0, bounds, max_iter, tol
    )
    # A zero diagonal entry of T is a stationary point of the deviance (it is
    # even in that entry), so a gradient method can stop there although the
    # optimum lies inside.  Probe away from the boundary and restart if that
    # helps; lme4's derivative-free BOBYQA does not have this blind spot.
    for _ in range(len(theta)):
        escape = _escape_boundary(f, theta, value, lower)
        if escape is None:
            break
        theta, value, converged, extra, message = _quasi_newton(
            f, fg, escape, bounds, max_iter, tol
        )
        n_iter += extra
    theta, value = snap_to_boundary(f, theta, value, lower)
    return OptimizeOutcome(
        np.asarray(theta), np.asarray(lower), value, converged, n_iter, message, log
    )


def _quasi_newton(f, fg, theta0, bounds, max_iter, tol):
    """L-BFGS-B, polished by bounded Powell if its line search failed."""
    result = optimize.minimize(
        f if fg is None else fg,
        theta0,
        jac=fg is not None,
        method="L-BFGS-B",
        bounds=bounds,
        options={"maxiter": max_iter, "ftol": tol, "gtol": 1e-7, "maxls": 50},
    )
    theta, value, n_iter = result.x, float(result.fun), int(result.nit)
    converged, message = bool(result.success), str(result.message)
    if not converged and n_iter < max_iter:
        polish = optimize.minimize(
            f,
            theta,
            method="Powell",
            bounds=bounds,
            options={"maxiter": max_iter, "xtol": 1e-8, "ftol": tol},
        )
        if polish.fun <= value:
            theta, value = polish.x, float(polish.fun)
        converged = bool(polish.success)
        n_iter += int(polish.nit)
        message = f"L-BFGS-B: {message}; Powell: {polish.message}"
    return theta, value, converged, n_iter, message


ESCAPE_STEPS = (0.01, 0.1, 0.5)


def _escape_boundary(f, theta, value, lower):
    """A better point off the boundary, or None if there is none nearby."""
    best, best_value = None, value - 1e-8 * max(1.0, abs(value))
    for i in np.flatnonzero((lower == 0) & (theta <= SINGULAR_TOLERANCE)):
        for step in ESCAPE_STEPS:
            trial = np.array(theta, dtype=float)
            trial[i] = step
            trial_value = f(trial)
            if trial_value < best_value:
                best, best_value = trial, trial_value
    return best


def snap_to_boundary(f, theta, value, lower):
    """Set near-zero variance parameters to exactly zero if that is no worse."""
    theta = np.array(theta, dtype=float)
    near = np.flatnonzero((lower == 0) & (theta < SINGULAR_TOLERANCE) & (theta != 0))
    for i in near:
        trial = theta.copy()
        trial[i] = 0.0
        trial_value = f(trial)
        if trial_value <= value + 1e-10 * max(1.0, abs(value)):
            theta, value = trial, min(value, trial_value)
    return theta, value


def is_singular(theta, lower, tol=SINGULAR_TOLERANCE):
    """lme4's ``isSingular``: a bounded parameter within ``tol`` of its bound."""
    theta = np.asarray(theta)
    return bool(np.any((lower == 0) & (theta < tol)))
