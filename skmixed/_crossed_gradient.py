"""The exact Laplace gradient of several one-term factors, without a dense M.

Crossed or nested random intercepts (users x items, plants in sites) have
``Lambda`` diagonal, and ``M = Lambda A Lambda + I`` (``A = Z' W Z``) splits
into the first factor's diagonal block ``d1``, its coupling ``M12`` (sparse)
and the later factors' block ``M22``.  The gradient of
:mod:`._laplace_gradient` needs ``M^{-1}`` only on the pattern of ``A`` (for
the leverages and the trace terms) and solves with ``M``: with the Schur
complement ``S = M22 - M21 diag(1/d1) M12``,

- ``M^{-1}[2, 2] = S^{-1}``; ``M^{-1}[1, 2] = -diag(1/d1) M12 S^{-1}``;
- ``M^{-1}[a, a] = 1/d1[a] + (M12 S^{-1} M21)[a, a] / d1[a]^2``,

so the cost is that of ``S^{-1}`` (the later factors' levels, cubed) and of
one product with it per coupling entry, never an (n, Q) or (Q, Q) array.
"""

import numpy as np
from scipy import linalg, sparse

from ._design import _stacked_columns
from ._laplace_gradient import _row_terms

# The first factor's rows of M12 S^{-1} are formed densely: at most this many.
MAX_COUPLING_ENTRIES = 20_000_000
MAX_LATER_LEVELS = 4000  # S^{-1} is dense


def applies(rows):
    """Whether the factors are one-term, several, with few later levels."""
    factors = rows.factors
    if len(factors) < 2 or any(f.n_terms != 1 for f in factors):
        return False
    Q2 = sum(f.n_levels for f in factors[1:])
    return Q2 <= MAX_LATER_LEVELS and factors[0].n_levels * Q2 <= MAX_COUPLING_ENTRIES


class _Blocks:
    """``M = Lambda A Lambda + I`` in blocks, with the Schur complement factored."""

    def __init__(self, Z, lam, weights, m1):
        A = (Z.T @ sparse.diags(weights) @ Z).tocsr()
        self.A11 = A[:m1, :m1].diagonal()
        self.A21 = A[m1:, :m1].tocsr()
        self.A22 = A[m1:, m1:].toarray()
        lam1, lam2 = lam[:m1], lam[m1:]
        self.d1 = lam1 * lam1 * self.A11 + 1.0
        self.M21 = sparse.diags(lam2) @ self.A21 @ sparse.diags(lam1)
        M22 = lam2[:, None] * self.A22 * lam2[None, :]
        M22[np.diag_indices_from(M22)] += 1.0
        M21_scaled = self.M21 @ sparse.diags(1.0 / self.d1)
        S = M22 - (M21_scaled @ self.M21.T).toarray()
        self.S_factor = linalg.cho_factor(S, lower=True)

    def solve(self, r):
        """``M^{-1} r``."""
        m1 = self.d1.size
        r1, r2 = r[:m1], r[m1:]
        x2 = linalg.cho_solve(self.S_factor, r2 - self.M21 @ (r1 / self.d1))
        x1 = (r1 - self.M21.T @ x2) / self.d1
        return np.concatenate([x1, x2])

    def selected_inverse(self):
        """``M^{-1}``'s first-factor diagonal, ``-M^{-1}[1, 2]`` and ``S^{-1}``."""
        Q2 = self.A22.shape[0]
        S_inv = linalg.cho_solve(self.S_factor, np.eye(Q2))
        G12 = (self.M21.T @ S_inv) / self.d1[:, None]  # -M^{-1}[1, 2]
        M12 = self.M21.T.tocsr()
        quad = np.asarray(M12.multiply(G12).sum(axis=1)).ravel()
        D1 = (1.0 + quad) / self.d1
        return D1, G12, S_inv


def _sparse_Z(rows):
    """``Z`` (n x Q), level-major, factor after factor; kept on ``rows``."""
    if rows._sparse_Z is None:
        n = rows.n
        columns, Q = _stacked_columns(rows.codes, rows.Zs, rows.factors, n)
        values = np.concatenate([v for _, v in columns])
        indices = np.concatenate([c for c, _ in columns])
        rows._sparse_Z = sparse.csr_matrix(
            (values, (np.tile(np.arange(n), len(columns)), indices)), shape=(n, Q)
        )
    return rows._sparse_Z


def crossed_gradient(rows, modes):
    """Gradient of the Laplace deviance in ``(theta, beta)`` (see module)."""
    factors = rows.factors
    m1 = factors[0].n_levels
    Z = _sparse_Z(rows)
    lam = np.concatenate(
        [np.full(f.n_levels, T[0, 0]) for f, T in zip(factors, modes.fact.T)]
    )
    u = np.concatenate([u_f.ravel() for u_f in modes.u])
    s, w, w_obs, w_deriv = _row_terms(rows, modes.eta)
    M = _Blocks(Z, lam, w, m1)
    D1, G12, S_inv = M.selected_inverse()
    h = _leverages(Z, lam, m1, D1, G12, S_inv)
    c_row = w_deriv * h
    a = Z.T @ s
    e = Z.T @ c_row
    H = M if w_obs is w else _Blocks(Z, lam, w_obs, m1)
    v = H.solve(lam * e)
    ZLv = Z @ (lam * v)
    grad_beta = rows.X.T @ (-2.0 * s + c_row - w_obs * ZLv)
    ALv = Z.T @ (w_obs * ZLv)
    per_effect = -2.0 * a * u + e * u + v * a - ALv * u
    traces = _traces(M, lam, D1, G12, S_inv)
    grad_theta, start = [], 0
    for f in factors:
        stop = start + f.n_levels
        grad_theta.append(per_effect[start:stop].sum() + 2.0 * traces[start:stop].sum())
        start = stop
    return np.concatenate([grad_theta, grad_beta])


def _leverages(Z, lam, m1, D1, G12, S_inv):
    """``h_i = z_i' Lambda M^{-1} Lambda z_i`` from the selected inverse."""
    ZL = (Z @ sparse.diags(lam)).tocsr()
    first = ZL[:, :m1].tocoo()  # one entry a row: the row's first-factor level
    later = ZL[:, m1:].tocsr()
    n = Z.shape[0]
    h = np.zeros(n)
    h[first.row] = first.data**2 * D1[first.col]
    z1 = np.zeros(n)
    a1 = np.zeros(n, dtype=np.intp)
    z1[first.row], a1[first.row] = first.data, first.col
    later = later.tocoo()
    # Cross terms with the first factor: -2 z1 z_c G12[a, c].
    h -= 2.0 * np.bincount(
        later.row,
        weights=z1[later.row] * later.data * G12[a1[later.row], later.col],
        minlength=n,
    )
    # Later-factor pairs: sum over c, c' of z_c z_c' S^{-1}[c, c'].
    order = np.argsort(later.row, kind="stable")
    r, c, z = later.row[order], later.col[order], later.data[order]
    starts = np.searchsorted(r, np.arange(n))
    counts = np.bincount(r, minlength=n)
    for k in range(counts.max(initial=0)):
        for j in range(counts.max(initial=0)):
            has = (counts > k) & (counts > j)
            rows_k = np.flatnonzero(has)
            i_k, i_j = starts[rows_k] + k, starts[rows_k] + j
            h[rows_k] += z[i_k] * z[i_j] * S_inv[c[i_k], c[i_j]]
    return h


def _traces(M, lam, D1, G12, S_inv):
    """Per random effect j, ``(M^{-1} Lambda A)[j, j]``: the trace terms."""
    m1 = D1.size
    lam1, lam2 = lam[:m1], lam[m1:]
    A21 = M.A21.tocoo()  # entries (c, a)
    coupling = G12[A21.col, A21.row] * A21.data
    first = D1 * lam1 * M.A11 - np.bincount(
        A21.col, weights=coupling * lam2[A21.row], minlength=m1
    )
    later = np.einsum("jk,k,kj->j", S_inv, lam2, M.A22) - np.bincount(
        A21.row, weights=coupling * lam1[A21.col], minlength=lam2.size
    )
    return np.concatenate([first, later])
