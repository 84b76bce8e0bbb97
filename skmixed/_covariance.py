"""The relative covariance factor: theta <-> Lambda <-> covariance, and bounds.

For a grouping factor with ``q`` random-effect terms, the covariance of one
level's random effects is ``sigma**2 * T @ T.T`` with ``T`` lower triangular.
``theta`` holds the free entries of ``T`` in lme4's order: the lower triangle
column by column (unstructured covariance), or the diagonal only (diagonal
covariance, lme4's ``||``).  Diagonal entries are bounded below by zero.
"""

import functools
from dataclasses import dataclass

import numpy as np


@functools.lru_cache(maxsize=64)
def lower_indices(q, diagonal):
    """Row and column indices of the free entries of ``T``, in lme4's order.

    Cached (every deviance evaluation asks), so read-only.
    """
    if diagonal:
        rows = cols = np.arange(q)
    else:
        cols, rows = np.triu_indices(q)  # column-major lower triangle
    rows, cols = rows.copy(), cols.copy()
    rows.flags.writeable = cols.flags.writeable = False
    return rows, cols


def n_theta(q, diagonal):
    """Number of free parameters of one factor's ``T``."""
    return q if diagonal else q * (q + 1) // 2


def theta_to_factor(theta, q, diagonal):
    """The ``q x q`` lower triangular ``T`` from its free entries."""
    T = np.zeros((q, q))
    rows, cols = lower_indices(q, diagonal)
    T[rows, cols] = theta
    return T


def factor_to_theta(T, diagonal):
    """Inverse of :func:`theta_to_factor`."""
    rows, cols = lower_indices(T.shape[0], diagonal)
    return T[rows, cols].copy()


def theta_lower_bounds(q, diagonal):
    """Lower bounds of ``theta``: 0 for diagonal entries, -inf elsewhere."""
    rows, cols = lower_indices(q, diagonal)
    return np.where(rows == cols, 0.0, -np.inf)


def theta_start(q, diagonal):
    """lme4's starting value: ``T`` equal to the identity."""
    rows, cols = lower_indices(q, diagonal)
    return (rows == cols).astype(float)


def semidefinite_cholesky(C, tol=1e-10):
    """Lower ``L`` with ``L L' = C`` for a positive semi-definite ``C``.

    A zero pivot (a variance of zero, a correlation of exactly +-1) gives a
    zero column, as lme4's ``safe_chol``; None when ``C`` is not positive
    semi-definite.
    """
    q = C.shape[0]
    L = np.zeros_like(C, dtype=float)
    for j in range(q):
        d = C[j, j] - L[j, :j] @ L[j, :j]
        if d < -tol:
            return None
        if d > tol:
            L[j, j] = np.sqrt(d)
            L[j + 1 :, j] = (C[j + 1 :, j] - L[j + 1 :, :j] @ L[j, :j]) / L[j, j]
        elif np.any(np.abs(C[j + 1 :, j] - L[j + 1 :, :j] @ L[j, :j]) > 1e-8):
            return None  # a zero pivot with a non-zero column: not PSD
    return L


@dataclass(frozen=True)
class ThetaLayout:
    """Where each grouping factor's ``T`` lives in the concatenated theta."""

    sizes: tuple  # q per factor
    diagonal: tuple  # bool per factor

    @classmethod
    def from_factors(cls, factors):
        return cls(
            tuple(f.n_terms for f in factors), tuple(f.diagonal for f in factors)
        )

    @property
    def lower(self):
        parts = [theta_lower_bounds(q, d) for q, d in zip(self.sizes, self.diagonal)]
        return np.concatenate(parts) if parts else np.zeros(0)

    def block(self, k):
        """The slice of theta that holds factor ``k``'s ``T``."""
        sizes = [n_theta(q, d) for q, d in zip(self.sizes, self.diagonal)]
        start = sum(sizes[:k])
        return slice(start, start + sizes[k])

    def split(self, theta):
        """The lower triangular ``T`` of each factor."""
        Ts, start = [], 0
        for q, d in zip(self.sizes, self.diagonal):
            k = n_theta(q, d)
            Ts.append(theta_to_factor(theta[start : start + k], q, d))
            start += k
        return Ts

    def join(self, Ts):
        """Inverse of :meth:`split` (entries outside the pattern are ignored)."""
        parts = [factor_to_theta(T, d) for T, d in zip(Ts, self.diagonal)]
        return np.concatenate(parts) if parts else np.zeros(0)


def sd_and_correlation(cov):
    """Standard deviations and correlation matrix of a covariance matrix.

    Correlations involving a term with zero variance are NaN, as in lme4.
    """
    sd = np.sqrt(np.clip(np.diag(cov), 0.0, None))
    with np.errstate(invalid="ignore", divide="ignore"):
        corr = cov / np.outer(sd, sd)
    np.fill_diagonal(corr, 1.0)
    return sd, corr
