"""Starting values of theta for the optimiser, from the design alone.

Three starts, in the scaled units of the fit:

- lme4's: ``T`` the identity (in the scaled units);
- lme4's start in the units of the data (``T`` the identity there), which
  differs from the first when the random-effect columns were rescaled;
- moment estimates: per level, the least-squares coefficients of the
  random-effect columns on the residuals of the pooled fit; their spread,
  less the part that sampling noise explains, estimates ``Sigma``.

Different starts reach different optima on designs where the deviance has
several (binary or uncentred slope columns, nearly flat ridges); the
optimiser keeps the lowest.
"""

import numpy as np
from scipy import sparse

from ._covariance import factor_to_theta, theta_start

MIN_RELATIVE_VARIANCE = 1e-2  # the moment start stays this far off the boundary


def identity_start(factors):
    """lme4's start: every ``T`` the identity."""
    parts = [theta_start(f.n_terms, f.diagonal) for f in factors]
    return np.concatenate(parts) if parts else np.zeros(0)


def data_units_start(design):
    """lme4's identity start, expressed in the scaled units of the fit."""
    parts = [
        factor_to_theta(np.diag(scale), f.diagonal)
        for f, scale in zip(design.factors, design.scaling.z_scale)
    ]
    return np.concatenate(parts) if parts else np.zeros(0)


def moment_start(design):
    """theta from per-level least squares on the pooled residuals."""
    stats = design.stats
    WtW = stats.WtW
    p = WtW.shape[0] - 1
    beta = _solve(WtW[:p, :p], WtW[:p, p]) if p else np.zeros(0)
    v = np.append(-beta, 1.0)
    rss = float(v @ WtW @ v)
    sigma2 = max(rss / max(stats.n - p, 1), np.finfo(float).tiny)
    parts = []
    for k, f in enumerate(design.factors):
        ZtZ, ZtW = level_blocks(stats, design.factors, k)
        Sigma = _moment_covariance(ZtZ, ZtW @ v, sigma2)
        parts.append(_relative_factor(Sigma, f.n_terms, f.diagonal))
    return np.concatenate(parts) if parts else np.zeros(0)


def level_blocks(stats, factors, k):
    """Per-level ``Z'Z`` (m, q, q) and ``Z'W`` (m, q, p + 1) of factor ``k``."""
    if k == 0:
        first = stats.first
        return first.ZtZ.transpose(2, 0, 1), first.ZtW.transpose(2, 0, 1)
    offset = sum(f.n_levels * f.n_terms for f in factors[1:k])
    f = factors[k]
    index = offset + np.arange(f.n_levels)[:, None] * f.n_terms + np.arange(f.n_terms)
    others = stats.others
    if sparse.issparse(others.Z2tZ2):  # the Krylov path's statistics
        m, q = index.shape
        rows = np.broadcast_to(index[:, :, None], (m, q, q)).ravel()
        cols = np.broadcast_to(index[:, None, :], (m, q, q)).ravel()
        ZtZ = np.asarray(others.Z2tZ2.tocsr()[rows, cols]).reshape(m, q, q)
    else:
        ZtZ = others.Z2tZ2[index[:, :, None], index[:, None, :]]
    return ZtZ, np.asarray(others.Z2tW)[index]


def _moment_covariance(ZtZ, Ztr, sigma2):
    """``Cov(b_g) - sigma^2 mean((Z_g'Z_g)^-1)`` over the levels that allow it.

    In units of ``sigma2``; None when fewer than two levels have a
    well-conditioned ``Z_g'Z_g``.
    """
    q = ZtZ.shape[1]
    eigenvalues = np.linalg.eigvalsh(ZtZ)
    usable = eigenvalues[:, 0] > 1e-8 * np.maximum(eigenvalues[:, -1], 1e-300)
    if usable.sum() < 2:
        return None
    inverse = np.linalg.inv(ZtZ[usable])
    b = np.einsum("mij,mj->mi", inverse, Ztr[usable])
    spread = np.cov(b, rowvar=False).reshape(q, q)
    return (spread - sigma2 * inverse.mean(axis=0)) / sigma2


def _relative_factor(Sigma, q, diagonal):
    """``T`` of a positive definite version of ``Sigma``, as theta."""
    if Sigma is None or not np.all(np.isfinite(Sigma)):
        return theta_start(q, diagonal)
    eigenvalues, vectors = np.linalg.eigh((Sigma + Sigma.T) / 2)
    floor = MIN_RELATIVE_VARIANCE * max(1.0, eigenvalues.max())
    Sigma = (vectors * np.maximum(eigenvalues, floor)) @ vectors.T
    if diagonal:
        return np.sqrt(np.diag(Sigma))
    return factor_to_theta(np.linalg.cholesky(Sigma), diagonal)


def _solve(A, b):
    try:
        return np.linalg.solve(A, b)
    except np.linalg.LinAlgError:
        return np.linalg.lstsq(A, b, rcond=None)[0]
