"""The exact gradient of the adaptive Gauss-Hermite deviance (one scalar effect).

Per level ``j`` the integral is ``I_j = s_j sum_k w_k exp(g_jk)`` with nodes
``v_jk = u_j + s_j t_k`` around the mode ``u_j``, the scale ``s_j = (1 +
lambda^2 A_j)^{-1/2}`` (``A_j = sum_i w_i z_i^2`` in the IRLS weights at the
mode) and ``g_jk = l_j(v_jk) - v_jk^2 / 2`` (see :func:`._pirls.agq_deviance`).
The deviance is ``-2 sum_j log I_j``; its derivative in a parameter ``phi``
(lambda or a fixed effect) is

``d log I_j = ds_j / s_j + sum_k pi_jk dg_jk``, with ``pi_jk`` the nodes'
shares of ``I_j`` and ``dg_jk = dl_j|_v + (lambda S_jk - v_jk) dv_jk``,

where ``S_jk = sum_i score_i z_i`` at node k, ``dv_jk = du_j + t_k ds_j``,
``du_j`` from the mode's stationarity (observed information) and ``ds_j``
from the derivative of the IRLS weights, as in :mod:`._laplace_gradient`.
"""

import numpy as np

from ._laplace_gradient import _row_terms


def _sums(codes, values, m):
    return np.bincount(codes, weights=values, minlength=m)


def _matrix_sums(codes, values, X, m):
    """Per level ``sum_i values_i x_i``: (m, p)."""
    return np.column_stack(
        [_sums(codes, values * X[:, k], m) for k in range(X.shape[1])]
    )


def agq_gradient(rows, theta, beta, modes, n_points):
    """Gradient of :func:`._pirls.agq_deviance` in ``(theta, beta)``."""
    (codes,), (Zcols,), (factor,) = rows.codes, rows.Zs, rows.factors
    m, n, X = factor.n_levels, rows.n, rows.X
    z = np.ones(n) if Zcols[0] is None else Zcols[0]
    lam = float(modes.fact.T[0][0, 0])
    u = modes.u[0][:, 0]
    # At the mode: the scale and the derivatives of the mode and of A_j.
    score, w, w_obs, w_deriv = _row_terms(rows, modes.eta)
    A = _sums(codes, w * z * z, m)
    s = 1.0 / np.sqrt(1.0 + lam * lam * A)
    S_mode = _sums(codes, score * z, m)
    A_obs = _sums(codes, w_obs * z * z, m)
    B_obs = _matrix_sums(codes, w_obs * z, X, m)
    H_obs = 1.0 + lam * lam * A_obs
    C1 = _matrix_sums(codes, w_deriv * z * z, X, m)
    C3 = _sums(codes, w_deriv * z**3, m)
    du_lam = (S_mode - lam * u * A_obs) / H_obs
    du_beta = -lam * B_obs / H_obs[:, None]
    dA_lam = C3 * u + lam * C3 * du_lam
    dA_beta = C1 + lam * C3[:, None] * du_beta
    ds_lam = -0.5 * s**3 * (2.0 * lam * A + lam * lam * dA_lam)
    ds_beta = -0.5 * (s**3)[:, None] * lam * lam * dA_beta
    # At the nodes.
    nodes, weights = np.polynomial.hermite_e.hermegauss(n_points)
    log_weights = np.log(weights / np.sqrt(2.0 * np.pi)) + 0.5 * nodes**2
    fixed = modes.eta - lam * u.take(codes) * z
    g = np.empty((n_points, m))
    dg_lam = np.empty((n_points, m))
    dg_beta = np.empty((n_points, m, X.shape[1]))
    for k, t in enumerate(nodes):
        v = u + s * t
        eta = fixed + lam * v.take(codes) * z
        ll = rows.family.loglik(rows.y, eta, rows.weights)
        g[k] = log_weights[k] + _sums(codes, ll, m) - 0.5 * v * v
        score_k = _row_terms_score(rows, eta)
        S = _sums(codes, score_k * z, m)
        Sx = _matrix_sums(codes, score_k, X, m)
        slope = lam * S - v
        dg_lam[k] = S * v + slope * (du_lam + t * ds_lam)
        dg_beta[k] = Sx + slope[:, None] * (du_beta + t * ds_beta)
    shares = np.exp(g - g.max(axis=0))
    shares /= shares.sum(axis=0)
    d_lam = ds_lam / s + (shares * dg_lam).sum(axis=0)
    d_beta = ds_beta / s[:, None] + np.einsum("km,kmp->mp", shares, dg_beta)
    return -2.0 * np.concatenate([[d_lam.sum()], d_beta.sum(axis=0)])


def _row_terms_score(rows, eta):
    """The score ``d l_i / d eta_i`` alone (see :func:`._row_terms`)."""
    return _row_terms(rows, eta)[0]
