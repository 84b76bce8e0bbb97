"""Convergence diagnostics at the optimum, as lme4's ``checkConv``.

After the optimiser stops, the gradient (exact) and the Hessian (central
differences of the exact gradient) of the criterion are taken at theta, in
lme4's units (theta of the unscaled data), and checked as lme4 does:

- the scaled gradient ``solve(chol(H), g)``, with lme4's tolerance 2e-3 on
  ``min(|scaled gradient|, |gradient|)``;
- the eigenvalues of the Hessian: a negative or a zero one means that the
  criterion is flat or curving down in some direction, that is, the point
  is not a strict minimum and the parameters along that direction are not
  determined by the data ("the model may not be identifiable").

Unlike lme4, which skips both checks on a boundary (singular) fit, they are
made here on the interior parameters of every fit: those not at a bound and
not in a column of ``T`` that the boundary zeroes (the criterion does not
depend on such a column's direction).  The eigenvalue tests are made in the
scaled units of the fit, relative to the largest eigenvalue, so that the
units of the data (which lme4 asks users to rescale) do not decide them.
"""

from dataclasses import dataclass, field

import numpy as np
from scipy import linalg

from ._covariance import ThetaLayout, lower_indices
from ._optimize import SINGULAR_TOLERANCE

GRADIENT_TOLERANCE = 2e-3  # lme4's check.conv.grad
HESSIAN_TOLERANCE = 1e-6  # lme4's check.conv.hess, here relative
STEP = 1e-4  # lme4's deriv12 delta, relative to max(|theta|, 1) here
LOADING = 0.1  # a parameter is "involved" in an eigenvector above this


@dataclass
class Convergence:
    """The checks of one fit: derivatives, eigenvalues and messages.

    ``gradient`` and ``hessian`` are in lme4's units, over ``parameters``
    (lme4's names of theta); ``interior`` marks the parameters checked.
    """

    parameters: list
    gradient: np.ndarray
    scaled_gradient: np.ndarray
    hessian: np.ndarray
    hessian_eigenvalues: np.ndarray
    interior: np.ndarray
    messages: list = field(default_factory=list)
    ok: bool = True  # passed the checks (the optimiser's own verdict aside)
    optimizer_converged: bool = True
    optimizer_message: str = ""

    @property
    def converged(self):
        """The optimiser reported convergence and the checks passed."""
        return self.optimizer_converged and self.ok

    def to_frame(self):
        """One row per parameter: gradient, scaled gradient, interior."""
        import pandas as pd

        return pd.DataFrame(
            {
                "gradient": self.gradient,
                "scaled_gradient": self.scaled_gradient,
                "interior": self.interior,
            },
            index=pd.Index(self.parameters, name="parameter"),
        )


def check_convergence(value_and_gradient, theta, interior, to_data_units, names):
    """lme4's ``checkConv`` at the scaled ``theta``.

    Parameters
    ----------
    value_and_gradient : callable
        Scaled theta -> (criterion, exact gradient).
    theta : ndarray
        The optimum, in the scaled units of the fit.
    interior : ndarray of bool
        The parameters to check (see the module docstring).
    to_data_units : ndarray
        ``d`` with ``theta_scaled = d * theta_data`` entry by entry.
    names : list of str
        lme4's names of the entries of theta.
    """
    theta = np.asarray(theta, dtype=float)
    _, gradient_s = value_and_gradient(theta)
    hessian_s = _hessian(value_and_gradient, theta, interior)
    d = np.asarray(to_data_units, dtype=float)
    gradient = gradient_s * d
    hessian = hessian_s * np.outer(d, d)
    index = np.flatnonzero(interior)
    scaled = np.full(theta.size, np.nan)
    messages, ok = [], True
    if index.size:
        H, g = hessian[np.ix_(index, index)], gradient[index]
        scaled[index], message = _scaled_gradient(H, g)
        if message:
            messages.append(message)
            ok = False
        eigen_message = _eigenvalue_message(
            hessian_s[np.ix_(index, index)], [names[i] for i in index]
        )
        if eigen_message:
            messages.append(eigen_message)
            ok = False
    eigenvalues = (
        linalg.eigvalsh(hessian[np.ix_(index, index)]) if index.size else np.zeros(0)
    )
    return Convergence(
        list(names), gradient, scaled, hessian, eigenvalues, interior, messages, ok
    )


def _hessian(value_and_gradient, theta, interior):
    """Central differences of the exact gradient in the interior parameters."""
    k = theta.size
    H = np.zeros((k, k))
    for i in np.flatnonzero(interior):
        h = STEP * max(abs(theta[i]), 1.0)
        step = np.zeros(k)
        step[i] = h
        _, up = value_and_gradient(theta + step)
        _, down = value_and_gradient(theta - step)
        H[:, i] = (up - down) / (2.0 * h)
    H = (H + H.T) / 2.0
    mask = np.outer(interior, interior)
    return np.where(mask, H, 0.0)


def _scaled_gradient(H, g):
    """lme4's scaled gradient and its message, if it fails the check."""
    try:
        R = linalg.cholesky(H, lower=False)
        scaled = linalg.solve_triangular(R, g, trans="T", lower=False)
    except (linalg.LinAlgError, ValueError):
        return np.full(g.size, np.nan), "unable to evaluate scaled gradient"
    if not np.all(np.isfinite(scaled)):
        return scaled, "unable to evaluate scaled gradient"
    smallest = np.minimum(np.abs(scaled), np.abs(g))
    if smallest.max() > GRADIENT_TOLERANCE:
        return scaled, (
            f"Model failed to converge with max|grad| = {smallest.max():.6g} "
            f"(tol = {GRADIENT_TOLERANCE:g}, component {int(smallest.argmax()) + 1})"
        )
    return scaled, None


def _eigenvalue_message(H, names):
    """Negative or zero eigenvalues of the Hessian, with the parameters."""
    eigenvalues, vectors = linalg.eigh(H)
    if not np.all(np.isfinite(eigenvalues)):
        return "Problem with Hessian check (infinite or missing values?)"
    tol = HESSIAN_TOLERANCE * max(np.abs(eigenvalues).max(), np.finfo(float).tiny)
    negative = eigenvalues < -tol
    zero = np.abs(eigenvalues) <= tol
    if not (negative.any() or zero.any()):
        return None
    flat = vectors[:, negative | zero]
    involved = [n for n, row in zip(names, np.abs(flat)) if row.max() > LOADING]
    return (
        "Model failed to converge: degenerate Hessian with "
        f"{int(negative.sum())} negative and {int(zero.sum())} zero eigenvalue(s); "
        "the model may not be identifiable (parameters involved: "
        f"{', '.join(involved)})"
    )


def diagnose(design, reml, outcome, value_and_gradient):
    """:func:`check_convergence` for a fitted design at the optimiser's outcome."""
    theta = outcome.theta
    layout = ThetaLayout.from_factors(design.factors)
    names, d = _parameters(design)
    interior = interior_parameters(theta, layout)
    result = check_convergence(value_and_gradient, theta, interior, d, names)
    result.optimizer_converged = outcome.converged
    result.optimizer_message = outcome.message
    return result


def exact_fit_convergence(design, outcome):
    """The checks of a fit whose fixed effects fit y exactly: failed.

    There is no optimum to check (the likelihood grows without bound as
    sigma -> 0); the derivatives are reported as NaN.
    """
    names, _ = _parameters(design)
    k = len(names)
    return Convergence(
        parameters=names,
        gradient=np.full(k, np.nan),
        scaled_gradient=np.full(k, np.nan),
        hessian=np.full((k, k), np.nan),
        hessian_eigenvalues=np.full(k, np.nan),
        interior=np.zeros(k, dtype=bool),
        messages=[
            "the fixed effects fit the response exactly (a constant y, or y a "
            "linear function of X): the residual variance is 0 and the "
            "variance components are not identifiable; sigma_ and the "
            "random-effect variances are set to 0"
        ],
        ok=False,
        optimizer_converged=outcome.converged,
        optimizer_message=outcome.message,
    )


def _parameters(design):
    """lme4's names of theta's entries, and their scales to data units."""
    names, to_data_units = [], []
    for f, z_scale in zip(design.factors, design.scaling.z_scale):
        rows, cols = lower_indices(f.n_terms, f.diagonal)
        for i, j in zip(rows, cols):
            terms = [f.term_names[i]] + ([f.term_names[j]] if i != j else [])
            names.append(".".join([f.name, *terms]))
        to_data_units.append(z_scale[rows])
    d = np.concatenate(to_data_units) if to_data_units else np.zeros(0)
    return names, d


def interior_parameters(theta, layout):
    """Entries of theta off their bound and outside the zero columns of ``T``."""
    interior = []
    for T, q, diagonal in zip(layout.split(theta), layout.sizes, layout.diagonal):
        rows, cols = lower_indices(q, diagonal)
        live = np.diag(T) >= SINGULAR_TOLERANCE
        interior.append(live[cols] & live[rows] if diagonal else live[cols])
    return np.concatenate(interior) if interior else np.zeros(0, dtype=bool)
