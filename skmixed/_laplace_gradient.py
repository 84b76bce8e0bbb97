"""The exact gradient of the Laplace deviance, one grouping factor, canonical link.

At the conditional modes ``u_j = T' a_j`` (with ``a_j = sum_i s_i z_i``, the
scores ``s_i = w_i (y_i - mu_i)``) and, per level, ``M_j = T' A_j T + I``
with ``A_j = sum_i w_i z_i z_i'`` in the IRLS weights.  The deviance
``-2 l(u) + |u|^2 + sum_j log |M_j|`` then has the derivative

- of its first two terms: their partial derivative (the modes are
  stationary), ``-2 X's`` in beta and ``-2 sum_j a_j[r] u_j[c]`` in the entry
  ``(r, c)`` of ``T``;
- of the log-determinants: ``2 sum_j (M_j^{-1} T' A_j)[c, r]`` from ``T``
  itself, plus ``sum_i w'_i h_i d eta_i`` from the weights, with the
  leverages ``h_i = z_i' T M_j^{-1} T' z_i`` and ``d eta_i`` including the
  modes' own change ``d u_j = M_j^{-1} (dT' a_j - T' (B_j d beta + A_j dT
  u_j))``, ``B_j = sum_i w_i z_i x_i'`` (implicit differentiation of the
  stationarity condition).

For one factor everything is a sum over rows per level (``bincount``) and a
batch of q x q solves: one pass over the rows, as one PIRLS step.  For several
factors the same formulas hold with ``M`` the whole ``Lambda' Z' W Z Lambda +
I``, taken dense (:func:`_dense_gradient`) while it is small.
"""

import numpy as np
from scipy import linalg, sparse

from . import _linalg as bl
from ._covariance import lower_indices
from ._design import _stacked_columns
from ._family import EPS

# The dense gradient of several factors: Q random effects in all, and the
# (n, Q) leverage products it forms.
DENSE_MAX_EFFECTS = 3000
DENSE_MAX_ENTRIES = 20_000_000


def has_exact_gradient(rows, n_points):
    """Whether :func:`laplace_gradient` applies to this model."""
    if n_points != 1:  # quadrature: one scalar random effect, see _agq_gradient
        return True
    from . import _crossed_gradient as crossed  # it reads _row_terms here

    if len(rows.factors) == 1 or crossed.applies(rows):
        return True
    Q = sum(f.n_levels * f.n_terms for f in rows.factors)
    return Q <= DENSE_MAX_EFFECTS and Q * rows.n <= DENSE_MAX_ENTRIES


def _row_terms(rows, eta):
    """Per row: the score, the IRLS (expected) weights, the observed ones,
    and the derivative of the IRLS weights, all in ``eta``.

    With ``mu' = d mu / d eta``, ``mu''`` and ``V(mu)``: the score is
    ``w (y - mu) mu' / V``, the IRLS weights ``w mu'^2 / V`` (those of the
    Laplace term), the observed information ``w mu'^2 / V - (y - mu) d(mu' /
    V) / d eta`` (that of the modes' stationarity).  For a canonical link
    ``mu' = V`` and the two weights agree.
    """
    family, link = rows.family, rows.family.link
    mu = link.inverse(eta)
    w = rows.weights
    if link.name == family.canonical_link:  # mu' = V: the two weights agree
        V = np.maximum(family.variance(mu), EPS)
        expected = w * V
        return (
            w * (rows.y - mu),
            expected,
            expected,
            expected * family.variance_derivative(mu),
        )
    d1 = link.derivative(eta)
    d2 = link.second_derivative(eta, mu, d1)
    V = np.maximum(family.variance(mu), EPS)
    dV = family.variance_derivative(mu) * d1  # d V / d eta
    ratio = d1 / V
    score = w * (rows.y - mu) * ratio
    expected = w * d1 * ratio
    d_ratio = d2 / V - d1 * dV / (V * V)
    observed = expected - w * (rows.y - mu) * d_ratio
    d_expected = w * (2.0 * d1 * d2 / V - d1 * d1 * dV / (V * V))
    return score, expected, observed, d_expected


def _level_sums(codes, values, m):
    return np.bincount(codes, weights=values, minlength=m)


def laplace_gradient(rows, theta, beta, modes):
    """Gradient of the Laplace deviance in ``(theta, beta)`` at the modes."""
    if len(rows.factors) > 1:
        from . import _crossed_gradient as crossed

        if crossed.applies(rows):
            return crossed.crossed_gradient(rows, modes)
        return _dense_gradient(rows, modes)
    (codes,), (Zcols,), (factor,) = rows.codes, rows.Zs, rows.factors
    m, q = factor.n_levels, factor.n_terms
    n = rows.n
    Z = np.column_stack([np.ones(n) if c is None else c for c in Zcols])  # (n, q)
    X = rows.X
    T = modes.fact.T[0]
    u = modes.u[0]  # (m, q)
    s, w, w_obs, w_deriv = _row_terms(rows, modes.eta)
    a = np.stack([_level_sums(codes, s * Z[:, r], m) for r in range(q)], axis=1)
    A = _level_grams(codes, Z, w, m)  # in the IRLS weights: the Laplace term
    A_obs = A if w_obs is w else _level_grams(codes, Z, w_obs, m)
    H_inv = _spherical_inverse(T, A_obs)  # the modes' stationarity
    M = bl.congruence(T, A)  # T' A_j T
    M[np.arange(q), np.arange(q)] += 1.0
    L = bl.cholesky(M)
    L_inv = bl.inverse_lower(L)
    M_inv = np.einsum("jim,jkm->ikm", L_inv, L_inv)  # (q, q, m)
    # P_j = T M_j^{-1} T' and the leverages h_i = z_i' P_j z_i.
    P = np.einsum("ab,bcm,dc->adm", T, M_inv, T)
    h = np.zeros(n)
    for r in range(q):  # z' P z, P symmetric: each pair once
        for c in range(r + 1):
            pair = Z[:, r] * Z[:, c] * P[r, c].take(codes)
            h += pair if r == c else 2.0 * pair
    c_row = w_deriv * h
    e = np.stack([_level_sums(codes, c_row * Z[:, r], m) for r in range(q)], axis=1)
    # v_j = H_j^{-1} T' e_j, and T v_j.
    Te = e @ T  # rows: (T' e_j)'
    v = np.einsum("abm,mb->ma", H_inv, Te)
    Tv = v @ T.T
    # beta: -2 X's + X'c - sum_j (T v_j)' B_j, with sum_j (T v_j)' B_j the
    # weighted sum over rows of (z_i . T v_j) x_i.
    zTv = sum(Z[:, r] * Tv[:, r].take(codes) for r in range(q))
    grad_beta = X.T @ (-2.0 * s + c_row - w_obs * zTv)
    # theta: per free entry (r, col) of T.
    G = np.einsum("abm,cb,cdm->adm", M_inv, T, A)  # M^{-1} T' A, (q, q, m)
    ATv = np.einsum("abm,mb->ma", A_obs, Tv)  # A_j T v_j, observed weights
    rows_idx, cols_idx = lower_indices(q, factor.diagonal)
    grad_theta = np.empty(rows_idx.size)
    for k, (r, col) in enumerate(zip(rows_idx, cols_idx)):
        grad_theta[k] = (
            -2.0 * np.dot(a[:, r], u[:, col])
            + 2.0 * G[col, r].sum()
            + np.dot(e[:, r], u[:, col])
            + np.dot(v[:, col], a[:, r])
            - np.dot(ATv[:, r], u[:, col])
        )
    return np.concatenate([grad_theta, grad_beta])


def _level_grams(codes, Z, weights, m):
    """Per level ``sum_i w_i z_i z_i'``: (q, q, m)."""
    q = Z.shape[1]
    A = np.empty((q, q, m))
    for r in range(q):
        for c in range(r, q):
            A[r, c] = A[c, r] = _level_sums(codes, weights * Z[:, r] * Z[:, c], m)
    return A


def _spherical_inverse(T, A):
    """Per level ``(T' A_j T + I)^{-1}`` (not necessarily positive definite:
    the observed information of a non-canonical link away from the mode)."""
    q = T.shape[0]
    H = bl.congruence(T, A)
    H[np.arange(q), np.arange(q)] += 1.0
    return np.linalg.inv(H.transpose(2, 0, 1)).transpose(1, 2, 0)


def _dense_gradient(rows, modes):
    """:func:`laplace_gradient` of several factors, with ``M`` dense.

    The random effects are numbered level-major, factor after factor
    (lme4's layout of Z); ``Lambda`` repeats each factor's ``T`` per level.
    """
    n = rows.n
    columns, Q = _stacked_columns(rows.codes, rows.Zs, rows.factors, n)
    Z = sparse.csr_matrix(
        (
            np.concatenate([v for _, v in columns]),
            (
                np.tile(np.arange(n), len(columns)),
                np.concatenate([c for c, _ in columns]),
            ),
        ),
        shape=(n, Q),
    )
    Lam = sparse.block_diag(
        [
            sparse.kron(sparse.identity(f.n_levels), T)
            for f, T in zip(rows.factors, modes.fact.T)
        ],
        format="csr",
    )
    u = np.concatenate([u_f.ravel() for u_f in modes.u])
    s, w, w_obs, w_deriv = _row_terms(rows, modes.eta)
    ZL = (Z @ Lam).tocsr()
    A = (Z.T @ sparse.diags(w) @ Z).toarray()
    LtA = np.asarray(Lam.T @ A)  # Lambda' A, dense
    M = np.asarray(Lam.T @ LtA.T).T + np.eye(Q)  # Lambda' A Lambda + I
    chol = linalg.cho_factor(M, lower=True)
    M_inv = linalg.cho_solve(chol, np.eye(Q))
    # Leverages h_i = z_i' Lambda M^{-1} Lambda' z_i.
    h = np.einsum("nq,nq->n", np.asarray(ZL @ M_inv), ZL.toarray())
    c_row = w_deriv * h
    a = Z.T @ s
    e = Z.T @ c_row
    if w_obs is w:
        A_obs = A
        v = linalg.cho_solve(chol, Lam.T @ e)
    else:  # the modes' stationarity: the observed information
        A_obs = (Z.T @ sparse.diags(w_obs) @ Z).toarray()
        H = np.asarray(Lam.T @ (Lam.T @ A_obs).T).T + np.eye(Q)
        v = np.linalg.solve(H, Lam.T @ e)
    Lv = Lam @ v
    grad_beta = rows.X.T @ (-2.0 * s + c_row - w_obs * (Z @ Lv))
    ALv = A_obs @ Lv
    grads, start = [], 0
    for f in rows.factors:
        q, m = f.n_terms, f.n_levels
        base = start + np.arange(m) * q
        for r, col in zip(*lower_indices(q, f.diagonal)):
            ir, ic = base + r, base + col
            grads.append(
                -2.0 * np.dot(a[ir], u[ic])
                # tr(M^{-1} Lambda' A dLambda): (M^{-1} Lambda' A)[ic, ir] only.
                + 2.0 * np.einsum("ij,ji->", M_inv[ic], LtA[:, ir])
                + np.dot(e[ir], u[ic])
                + np.dot(v[ic], a[ir])
                - np.dot(ALv[ir], u[ic])
            )
        start += m * q
    return np.concatenate([np.asarray(grads), grad_beta])
