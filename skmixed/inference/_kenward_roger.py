"""Kenward-Roger's adjusted covariance and degrees of freedom, as pbkrtest.

Kenward & Roger (1997), in pbkrtest's implementation (Halekoh & Hojsgaard
2014, ``vcovAdj``, ``Lb_ddf`` and ``KRmodcomp``).  With
``V = sum_i gamma_i G_i`` the covariance of ``y``, linear in the variance
parameters ``gamma`` (the entries of each random-effect term's covariance
matrix and the residual variance) and ``Phi = (X' V^-1 X)^-1``:

    P_i  = -X' V^-1 G_i V^-1 X
    Q_ij =  X' V^-1 G_i V^-1 G_j V^-1 X
    I_ij =  tr(V^-1 G_i V^-1 G_j) - 2 tr(Phi Q_ij) + tr(Phi P_i Phi P_j)
    W    =  2 I^-1
    Phi_A = Phi + 2 Phi (sum_ij W_ij (Q_ij - P_i Phi P_j)) Phi

(``R_ij = 0``: the covariance is linear in ``gamma``).  The denominator
degrees of freedom of a test of ``L beta = 0`` follow from ``Phi``, ``P`` and
``W`` (:func:`_ddf_and_scaling`).

pbkrtest builds the ``n x n`` matrices ``V`` and ``G_i``.  Here nothing of size
``n`` is formed: with ``G_i = Z D_i Z'`` (``D_i`` one symmetric elementary
matrix per level of the term's grouping factor) every quantity above is a
product of ``Psi = Z' V^-1 Z``, ``Xi = Z' V^-1 X`` and the ``D_i``, and those
come from the sufficient statistics through Woodbury's identity
``V^-1 = sigma^-2 (I - Z Lambda M^-1 Lambda' Z')``, ``M = Lambda' Z'Z Lambda + I``.
The residual variance's ``G = I`` is replaced by ``V`` itself, which spans the
same space of covariance matrices (when ``sigma > 0``); ``Phi_A`` and the
degrees of freedom do not depend on the basis of that space, and with ``V``
all its terms are products already at hand (``P = -Phi^-1``,
``Q_iV = -P_i``, ``tr(V^-1 V V^-1 G_i) = tr(V^-1 G_i)``, ``tr(I) = n``).

For one grouping factor ``Psi`` and ``Xi`` are block diagonal (one ``q x q``
and ``q x p`` block per level).  For several, the largest factor is
eliminated level by level and the others enter through ``Q2 x Q2`` matrices
(``Q2`` their random effects together), as in the blocked Cholesky factor of
the objective (:func:`_blocked_parts`): nothing of size ``n``, ``Q x Q`` or
``Q1 x Q2`` is formed.  :func:`_dense_parts` computes the same terms from a
dense ``Q x Q`` ``Psi``, for the tests.  Everything runs in the scaled units
of the fit; ``Phi_A`` is mapped back to the original units and the degrees
of freedom do not depend on them.
"""

from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy import linalg, stats
from sklearn.utils.validation import check_is_fitted

from .._covariance import lower_indices
from .._objective import (
    _mix_rows,
    _shapes,
    blas_threads_for,
    block_diagonal,
    factorize,
    lambda_rows,
)
from ._satterthwaite import t_test_table
from ._wald import check_exact_solver

CONDITION_TOLERANCE = 1e-10  # pbkrtest: below this eigenvalue of I, ginv(I)
ZERO_TOLERANCE = 1e-10  # pbkrtest: V0 = 1 + c1 B set to 0 below this
SCALING_TOLERANCE = 0.01  # pbkrtest: F.scaling = 1 when |ddf - 2| < this


@dataclass
class KenwardRogerParts:
    """What the tests need, in the scaled units of the fit.

    ``Phi`` and ``Phi_A`` (p, p); ``P`` (g, p, p) the ``P_i``; ``W`` (g, g).
    """

    Phi: np.ndarray
    Phi_A: np.ndarray
    P: np.ndarray
    W: np.ndarray


def _check_model(model):
    check_is_fitted(model)
    check_exact_solver(model, "Kenward-Roger's method")
    if model._method != "reml":
        raise ValueError(
            "Kenward-Roger's method is only available for REML fits (as "
            "pbkrtest and lmerTest): refit with method='reml'."
        )
    if not model.sigma_ > 0:
        raise ValueError(
            "Kenward-Roger's method needs a positive residual variance; this "
            "fit is exact (sigma_ = 0)."
        )


def kenward_roger_parts(model):
    """Phi, Phi_A, the P_i and W of a fitted REML model (scaled units).

    Cached on the model (keyed by its theta and sigma), since t-tests,
    F-tests and contrasts all start from it.
    """
    _check_model(model)
    design = model._design
    key = (model._theta_scaled.tobytes(), float(model.sigma_))
    cached = getattr(model, "_kenward_roger_cache", None)
    if cached is not None and cached[0] is design and cached[1] == key:
        return cached[2]
    sigma = model.sigma_ / design.scaling.y_scale
    with blas_threads_for(design.factors):
        parts = _parts_from_statistics(design, model._theta_scaled, sigma)
    model._kenward_roger_cache = (design, key, parts)
    return parts


def _parts_from_statistics(design, theta, sigma):
    """:class:`KenwardRogerParts` from the design's sufficient statistics."""
    stats_, factors = design.stats, design.factors
    p = design.n_fixed
    fact = factorize(stats_, factors, theta)
    RX = fact.R[:p, :p]
    Phi_inv = (RX @ RX.T) / sigma**2  # X' V^-1 X
    Phi = linalg.cho_solve((RX, True), np.eye(p)) * sigma**2
    if not factors:
        random = _RandomParts(
            np.zeros((0, p, p)), np.zeros((0, 0, p, p)), np.zeros((0, 0)), np.zeros(0)
        )
    elif len(factors) == 1:
        random = _one_factor_parts(stats_, factors[0], fact.T[0], p)
    else:
        random = _blocked_parts(stats_, factors, fact.T, p)
    return _assemble(random.scaled(sigma), Phi, Phi_inv, stats_.n)


@dataclass
class _RandomParts:
    """The terms of the random-effect parameters, with sigma = 1.

    ``P`` (g, p, p), ``Q`` (g, g, p, p), ``K`` (g, g) ``tr(Psi D_i Psi D_j)``
    and ``k`` (g,) ``tr(D_i Psi)``, all for ``V / sigma^2``.
    """

    P: np.ndarray
    Q: np.ndarray
    K: np.ndarray
    k: np.ndarray

    def scaled(self, sigma):
        """The same terms for ``V`` (``V^-1`` carries ``sigma^-2``)."""
        s2 = sigma**2
        return _RandomParts(self.P / s2**2, self.Q / s2**3, self.K / s2**2, self.k / s2)


def _parameter_matrices(factor):
    """The symmetric elementary ``E_ab`` (q, q) of a factor's covariance entries.

    In lme4's order (lower triangle by columns, or the diagonal for ``||``);
    any basis of the factor's covariance matrices gives the same result.
    """
    q = factor.n_terms
    rows, cols = lower_indices(q, factor.diagonal)
    E = np.zeros((rows.size, q, q))
    E[np.arange(rows.size), rows, cols] = 1.0
    E[np.arange(rows.size), cols, rows] = 1.0
    return E


def _one_factor_parts(stats_, factor, T, p):
    """One grouping factor: ``Psi`` and ``Xi`` block diagonal, per level.

    ``Psi_r = A_r - A_r K_r A_r`` and ``Xi_r = B_r - A_r K_r B_r`` with
    ``K_r = T M_r^-1 T'`` and ``M_r = T' A_r T + I`` (whose eigenvalues are at
    least 1: its inverse is well conditioned).
    """
    A, B, K_levels = _first_factor_blocks(stats_, T, p)
    AK = A @ K_levels
    Psi = A - AK @ A
    Psi = (Psi + Psi.transpose(0, 2, 1)) / 2.0
    Xi = B - AK @ B
    E = _parameter_matrices(factor)  # (g, q, q)
    EXi = np.einsum("gab,mbk->gmak", E, Xi)  # D_i Xi, per level
    P = -np.einsum("mai,gmaj->gij", Xi, EXi)
    PsiEXi = np.einsum("mab,gmbk->gmak", Psi, EXi)  # Psi D_j Xi
    Q = np.einsum("gmai,hmaj->ghij", EXi, PsiEXi)
    PsiE = np.einsum("mab,gbc->gmac", Psi, E)  # Psi_r E_i
    K = np.einsum("gmab,hmba->gh", PsiE, PsiE)
    k = np.einsum("gmaa->g", PsiE)
    return _RandomParts(P, Q, K, k)


def _first_factor_blocks(stats_, T, p):
    """Per level of the first factor: ``A_r``, ``B_r`` and ``T M_r^-1 T'``."""
    A = np.ascontiguousarray(stats_.first.ZtZ.transpose(2, 0, 1))  # (m, q, q)
    B = np.ascontiguousarray(stats_.first.ZtW[:, :p, :].transpose(2, 0, 1))
    M = np.einsum("ji,mjk,kl->mil", T, A, T) + np.eye(T.shape[0])
    return A, B, np.einsum("ij,mjk,lk->mil", T, np.linalg.inv(M), T)


def _dense_parts(stats_, factors, Ts, p):
    """Any design, with ``Psi`` as a dense ``Q x Q`` matrix (a test reference).

    In the term-major order of :class:`._design.DenseCrossProducts`, where a
    factor's ``Lambda`` is ``T (x) I_m`` and ``D_i`` is ``E_i (x) I_m``.
    """
    shapes = _shapes(factors)
    dense = stats_.dense_cross_products(shapes)
    A, B = dense.ZtZ, dense.ZtW[:, :p]
    LtA = _mix_rows(Ts, dense.shapes, A, transpose=True)  # Lambda' A
    M = _mix_rows(Ts, dense.shapes, np.ascontiguousarray(LtA.T), transpose=True)
    M[np.diag_indices_from(M)] += 1.0
    C = linalg.cholesky(M, lower=True, check_finite=False)
    F = linalg.solve_triangular(C, LtA, lower=True, check_finite=False)
    LtB = _mix_rows(Ts, dense.shapes, np.ascontiguousarray(B), transpose=True)
    G = linalg.solve_triangular(C, LtB, lower=True, check_finite=False)
    Psi = A - F.T @ F
    Xi = B - F.T @ G
    blocks = []  # per parameter: (rows of D_i, its (m, q) layout pieces)
    start = 0
    for f, (m, q) in zip(factors, dense.shapes):
        for E in _parameter_matrices(f):
            blocks.append((start, m, q, E))
        start += m * q
    g = len(blocks)
    DXi = [_apply_D(b, Xi) for b in blocks]
    DPsi = [_apply_D(b, Psi) for b in blocks]  # D_i Psi (rows of the factor)
    P = np.stack([-Xi.T @ d for d in DXi])
    PsiDXi = [Psi @ d for d in DXi]
    Q = np.empty((g, g, p, p))
    K = np.empty((g, g))
    for i in range(g):
        for j in range(g):
            Q[i, j] = DXi[i].T @ PsiDXi[j]
            # tr(Psi D_i Psi D_j) = tr((D_i Psi)(D_j Psi))
            K[i, j] = np.einsum("ab,ba->", DPsi[i], DPsi[j])
    k = np.array([np.trace(d) for d in DPsi])
    return _RandomParts(P, Q, K, k)


def _blocked_parts(stats_, factors, Ts, p):
    """Several grouping factors, by blocks: nothing larger than ``Q2 x Q2``.

    The first (largest) factor's random effects are eliminated first, level
    by level (:func:`_eliminate_first_factor`); the later ones then enter
    through ``Q2 x Q2`` matrices, and every trace over the first factor's
    columns becomes one over ``Q2 x Q2`` matrices such as ``N_i = H D_i H'``
    (sparse products).
    """
    blocks = _eliminate_first_factor(stats_, factors, Ts, p)
    first = _parameter_matrices(factors[0])
    later = []  # (start, m, q, E) in the later factors' level-major rows
    start = 0
    for f in factors[1:]:
        for E in _parameter_matrices(f):
            later.append((start, f.n_levels, f.n_terms, E))
        start += f.n_levels * f.n_terms
    P, Q = _blocked_products(blocks, first, later)
    K, k = _blocked_traces(blocks, first, later)
    return _RandomParts(P, Q, K, k)


@dataclass
class _Blocks:
    """``Psi`` and ``Xi`` by blocks (sigma = 1); see :func:`_eliminate_first_factor`."""

    Psi0: np.ndarray  # (m1, q1, q1)
    H: object  # sparse (Q2, Q1)
    R: np.ndarray  # (Q2, Q2)
    G: np.ndarray  # (Q2, Q2)
    Psi22: np.ndarray  # (Q2, Q2)
    Xi1: np.ndarray  # (Q1, p), level-major
    Xi2: np.ndarray  # (Q2, p)

    def psi_times(self, Y1, Y2):
        """``Psi [Y1; Y2]``, by blocks."""
        m1, q1 = self.Psi0.shape[:2]
        HY1 = self.H @ Y1
        top = (self.Psi0 @ Y1.reshape(m1, q1, -1)).reshape(Y1.shape)
        top += self.H.T @ (self.G.T @ Y2 - self.R @ HY1)
        return top, self.G @ HY1 + self.Psi22 @ Y2


def _eliminate_first_factor(stats_, factors, Ts, p):
    """``Psi = Z' V^-1 Z`` and ``Xi = Z' V^-1 X`` by blocks, for ``V / sigma^2``.

    With ``V1 = I + Z1 Lambda1 Lambda1' Z1'`` (block diagonal by the first
    factor's levels): its blocks ``Psi0_r = Z1r' V1^-1 Z1r``, the sparse
    coupling ``H = Z2' V1^-1 Z1`` (the pattern of ``Z2'Z1``) and the dense
    ``S22 = Z2' V1^-1 Z2``.  The later factors enter through
    ``R = Lambda2 (I + Lambda2' S22 Lambda2)^-1 Lambda2'``:

        Psi11 = Psi0 - H' R H,   Psi21 = G H,   Psi22 = G S22,  G = I - S22 R.
    """
    others = stats_.others
    # K1 = T1 M_r^-1 T1': what V1^-1 removes from each level's cross-products
    A, B1, K1 = _first_factor_blocks(stats_, Ts[0], p)
    m1, q1 = A.shape[:2]
    N = np.eye(q1) - K1 @ A  # H = A21 blockdiag(N_r)
    Psi0 = A @ N
    A21 = others.Z2tZ1.tocsr()
    H = (A21 @ _block_diagonal(N)).tocsr()
    A21K1 = (A21 @ _block_diagonal(K1)).tocsr()
    S22 = _symmetric(others.Z2tZ2 - (A21K1 @ A21.T).toarray())
    Xi20 = others.Z2tW[:, :p] - A21K1 @ B1.reshape(m1 * q1, p)
    R = _later_factors_inverse(Ts[1:], _shapes(factors[1:]), S22)
    G = np.eye(S22.shape[0]) - S22 @ R
    RXi20 = R @ Xi20
    Xi1 = np.einsum("mji,mjk->mik", N, B1).reshape(m1 * q1, p) - H.T @ RXi20
    return _Blocks(
        Psi0=_symmetric(Psi0),
        H=H,
        R=R,
        G=G,
        Psi22=_symmetric(G @ S22),
        Xi1=Xi1,
        Xi2=Xi20 - S22 @ RXi20,
    )


def _later_factors_inverse(Ts, shapes, S22):
    """``R = Lambda2 (I + Lambda2' S22 Lambda2)^-1 Lambda2'`` (no inverse of T)."""
    Lt_S22 = lambda_rows(Ts, shapes, S22, transpose=True)  # Lambda2' S22
    M22 = lambda_rows(Ts, shapes, np.ascontiguousarray(Lt_S22.T), transpose=True)
    M22 = _symmetric(M22)
    M22[np.diag_indices_from(M22)] += 1.0
    C22 = linalg.cholesky(M22, lower=True, check_finite=False)
    P22 = linalg.cho_solve((C22, True), np.eye(S22.shape[0]), check_finite=False)
    R = lambda_rows(Ts, shapes, P22)  # Lambda2 P22
    return _symmetric(lambda_rows(Ts, shapes, np.ascontiguousarray(R.T)))


def _symmetric(X):
    return (X + np.swapaxes(X, -1, -2)) / 2.0


def _block_diagonal(blocks):
    """Sparse block diagonal matrix of an (m, q, q) stack."""
    return block_diagonal(np.ascontiguousarray(blocks.transpose(1, 2, 0)))


def _blocked_products(blocks, first, later):
    """``P_i = -Xi' D_i Xi`` and ``Q_ij = Xi' D_i Psi D_j Xi`` by blocks."""
    Xi1, Xi2 = blocks.Xi1, blocks.Xi2
    m1, q1 = blocks.Psi0.shape[:2]
    p = Xi1.shape[1]
    zeros1, zeros2 = np.zeros_like(Xi1), np.zeros_like(Xi2)
    Xi1_levels = Xi1.reshape(m1, q1, p)
    DXi = [((E @ Xi1_levels).reshape(Xi1.shape), zeros2) for E in first]
    DXi += [(zeros1, _apply_level_major(b, Xi2)) for b in later]
    P = np.stack([-(Xi1.T @ d1 + Xi2.T @ d2) for d1, d2 in DXi])
    PsiDXi = [blocks.psi_times(d1, d2) for d1, d2 in DXi]
    g = len(DXi)
    Q = np.empty((g, g, p, p))
    for i in range(g):
        for j in range(g):
            Q[i, j] = DXi[i][0].T @ PsiDXi[j][0] + DXi[i][1].T @ PsiDXi[j][1]
    return P, Q


def _blocked_traces(blocks, first, later):
    """``K_ij = tr(Psi D_i Psi D_j)`` and ``k_i = tr(D_i Psi)`` by blocks.

    First factor's parameters (``Psi11 = Psi0 - H'RH``, ``N_i = H D_i H'``):

        tr(D_i Psi11)            = sum_r tr(E_i Psi0_r) - <R, N_i>
        tr(Psi11 D_i Psi11 D_j)  = sum_r tr(Psi0_r E_i Psi0_r E_j)
                                   - 2 <R, H D_i Psi0 D_j H'> + tr(R N_i R N_j)

    a first and a later one: ``tr(Psi21 D_i Psi12 D_j) = <G' D_j G, N_i>``;
    two later ones: dense ``tr(Psi22 D_i Psi22 D_j)``.
    """
    H, R, G, Psi0 = blocks.H, blocks.R, blocks.G, blocks.Psi0
    m1 = Psi0.shape[0]
    g1, g = len(first), len(first) + len(later)
    N = [
        (H @ _block_diagonal(np.repeat(E[None], m1, axis=0)) @ H.T).toarray()
        for E in first
    ]
    RN = [R @ N_i for N_i in N]
    PsiE = np.einsum("mab,gbc->gmac", Psi0, first)  # Psi0_r E_i
    K, k = np.empty((g, g)), np.empty(g)
    for i in range(g1):
        k[i] = np.einsum("maa->", PsiE[i]) - np.sum(R * N[i])
        for j in range(i, g1):
            local = np.einsum("mab,mba->", PsiE[i], PsiE[j])
            middle = (H @ _block_diagonal(first[i] @ PsiE[j]) @ H.T).toarray()
            K[i, j] = K[j, i] = (
                local - 2.0 * np.sum(R * middle) + np.sum(RN[i] * RN[j].T)
            )
    DPsi22 = [_apply_level_major(b, blocks.Psi22) for b in later]
    for jj, b in enumerate(later):
        j = g1 + jj
        k[j] = np.trace(DPsi22[jj])
        GDG = G.T @ _apply_level_major(b, G)  # G' D_j G
        for i in range(g1):
            K[i, j] = K[j, i] = np.sum(GDG * N[i])
        for ii in range(jj, len(later)):
            K[j, g1 + ii] = K[g1 + ii, j] = np.sum(DPsi22[jj] * DPsi22[ii].T)
    return K, k


def _apply_level_major(block, X):
    """``D X`` for a parameter of a later factor: ``E`` per level, level-major rows."""
    start, m, q, E = block
    out = np.zeros_like(X)
    rows = X[start : start + m * q].reshape(m, q, -1)
    out[start : start + m * q] = np.einsum("ab,mbk->mak", E, rows).reshape(m * q, -1)
    return out


def _apply_D(block, X):
    """``D_i X`` for one parameter: ``E (x) I_m`` on the factor's rows of X."""
    start, m, q, E = block
    out = np.zeros_like(X)
    rows = X[start : start + m * q].reshape(q, m, -1)
    out[start : start + m * q] = np.einsum("ab,bmk->amk", E, rows).reshape(m * q, -1)
    return out


def _assemble(random, Phi, Phi_inv, n):
    """Add the residual parameter (as ``V`` itself) and apply pbkrtest's formulas."""
    g = random.k.size
    p = Phi.shape[0]
    P = np.concatenate([random.P, -Phi_inv[None]])
    Q = np.empty((g + 1, g + 1, p, p))
    Q[:g, :g] = random.Q
    Q[:g, g] = Q[g, :g] = -random.P
    Q[g, g] = Phi_inv
    K = np.empty((g + 1, g + 1))
    K[:g, :g] = random.K
    K[:g, g] = K[g, :g] = random.k
    K[g, g] = n
    return adjusted_covariance(Phi, P, Q, K)


def adjusted_covariance(Phi, P, Q, K):
    """pbkrtest's ``vcovAdj`` from ``Phi``, ``P_i``, ``Q_ij`` and traces ``K_ij``."""
    PhiP = np.einsum("ab,gbc->gac", Phi, P)  # Phi P_i
    info = K - 2.0 * np.einsum("ab,ghba->gh", Phi, Q)
    info += np.einsum("gab,hba->gh", PhiP, PhiP)
    info = (info + info.T) / 2.0
    W = 2.0 * _inverse(info)
    PPhiP = np.einsum("gab,hbc->ghac", P, PhiP)  # P_i Phi P_j
    U = np.einsum("gh,ghab->ab", W, Q - PPhiP)
    U = (U + U.T) / 2.0
    Phi_A = Phi + 2.0 * Phi @ U @ Phi
    return KenwardRogerParts(Phi, (Phi_A + Phi_A.T) / 2.0, P, W)


def _inverse(info):
    """``I^-1``, or its pseudo-inverse when ``I`` is (near) singular (pbkrtest)."""
    values = np.linalg.eigvalsh(info)
    scale = max(1.0, np.abs(values).max())
    if np.abs(values).min() > CONDITION_TOLERANCE * scale:
        return np.linalg.inv(info)
    return np.linalg.pinv(info, rcond=np.sqrt(np.finfo(float).eps), hermitian=True)


def _scaled_basis(model):
    """``G`` with ``fixed_effects_ = offset + G @ beta_scaled`` (kept columns)."""
    design = model._design
    J, _ = design.scaling.fixed_jacobian(model._spec.fit_intercept)
    kept = design.fixed_kept
    return J[np.ix_(kept, kept)]


def _contrast_matrix(model, L):
    L = np.atleast_2d(np.asarray(L, dtype=float))
    p = model._design.n_fixed
    if L.ndim != 2 or L.shape[1] != p:
        raise ValueError(
            f"L has {L.shape[-1]} columns but the model has {p} fixed effects "
            f"{list(model.fixed_effects_.index)}."
        )
    return L


def kenward_roger_covariance(model):
    """Kenward-Roger's adjusted covariance of the fixed effects (``vcovAdj``).

    Parameters
    ----------
    model : MixedLinearRegressor
        A model fitted by REML.

    Returns
    -------
    cov : DataFrame
        ``Phi_A``, shaped and labelled as ``model.fixed_effects_cov_`` (the
        original units of the data).

    Raises
    ------
    ValueError
        For an ML fit (pbkrtest and lmerTest: REML fits only).

    Examples
    --------
    >>> from skmixed import MixedLinearRegressor
    >>> from skmixed.datasets import load_biomass
    >>> X, y, groups = load_biomass(return_X_y_groups=True)
    >>> model = MixedLinearRegressor(random_slopes=["Temp"]).fit(X, y, groups=groups)
    >>> kenward_roger_covariance(model).round(4)
               Intercept    Temp       N
    Intercept     0.0632 -0.0059 -0.0005
    Temp         -0.0059  0.0368  0.0001
    N            -0.0005  0.0001  0.0093
    """
    parts = kenward_roger_parts(model)
    G = _scaled_basis(model)
    cov = G @ parts.Phi_A @ G.T
    index = model.fixed_effects_cov_.index
    return pd.DataFrame(cov, index=index.copy(), columns=index.copy())


def _ddf_and_scaling(parts, L_scaled):
    """pbkrtest's denominator df and F scaling for ``L beta = 0``.

    ``L_scaled`` (q, p) of full row rank, over the scaled coefficients.
    Returns ``(ddf, F.scaling)``.
    """
    Phi, P, W = parts.Phi, parts.P, parts.W
    L = L_scaled
    q = L.shape[0]
    Theta = L.T @ np.linalg.solve(L @ Phi @ L.T, L)
    u = np.einsum("ab,bc,gcd,de->gae", Theta, Phi, P, Phi)  # Theta Phi P_i Phi
    traces = np.einsum("gaa->g", u)
    A1 = traces @ W @ traces
    A2 = np.einsum("gh,gab,hba->", W, u, u)
    B = (A1 + 6.0 * A2) / (2.0 * q)
    g = ((q + 1) * A1 - (q + 4) * A2) / ((q + 2) * A2)
    denom = 3.0 * q + 2.0 * (1.0 - g)
    c1, c2, c3 = g / denom, (q - g) / denom, (q + 2 - g) / denom
    V0 = 1.0 + c1 * B
    V1 = 1.0 - c2 * B
    V2 = 1.0 - c3 * B
    V0 = 0.0 if abs(V0) < ZERO_TOLERANCE else V0
    x = 1.0 - A2 / q
    ratio = 1.0 if abs(x) < 1e-14 and abs(V1) < 1e-14 else x / V1
    rho = ratio**2 * V0 / V2 / q
    ddf = 4.0 + (q + 2.0) / (q * rho - 1.0)
    scaling = 1.0 if abs(ddf - 2.0) < SCALING_TOLERANCE else ddf * x / (ddf - 2.0)
    return ddf, scaling


def kenward_roger_t(model, L):
    """Kenward-Roger standard errors and df of contrasts ``L beta``.

    lmerTest's ``contest1D(m, l, ddf = "Kenward-Roger")`` for each row: the
    standard error from the adjusted covariance and pbkrtest's ``Lb_ddf``.

    Parameters
    ----------
    model : MixedLinearRegressor
        A model fitted by REML.
    L : array-like of shape (n_contrasts, n_fixed_effects)
        Each row a contrast over ``model.fixed_effects_``.

    Returns
    -------
    se, df : ndarray of shape (n_contrasts,)

    Examples
    --------
    >>> from skmixed import MixedLinearRegressor
    >>> from skmixed.datasets import load_biomass
    >>> X, y, groups = load_biomass(return_X_y_groups=True)
    >>> model = MixedLinearRegressor(random_slopes=["Temp"]).fit(X, y, groups=groups)
    >>> se, df = kenward_roger_t(model, [[0, 1, 0], [0, 1, -1]])
    >>> se.round(4), df.round(2)
    (array([0.1918, 0.2143]), array([17.82, 27.76]))
    """
    L = _contrast_matrix(model, L)
    parts = kenward_roger_parts(model)
    L_scaled = L @ _scaled_basis(model)
    se = np.sqrt(np.einsum("ca,ab,cb->c", L_scaled, parts.Phi_A, L_scaled))
    df = np.array([_ddf_and_scaling(parts, row[None])[0] for row in L_scaled])
    return se, df


def kenward_roger_f_test(model, L):
    """Kenward-Roger F test of ``L beta = 0`` (pbkrtest's ``KRmodcomp``).

    Parameters
    ----------
    model : MixedLinearRegressor
        A model fitted by REML.
    L : array-like of shape (n_rows, n_fixed_effects)
        The hypothesis, over ``model.fixed_effects_``.  Rows that are linear
        combinations of others are dropped (the hypothesis is the same).

    Returns
    -------
    test : dict
        ``F value``: pbkrtest's scaled statistic ``F.scaling * Wald / q``
        (the ``F value`` of lmerTest's ``anova(m, ddf = "Kenward-Roger")``),
        ``NumDF`` (``q``, the rank of ``L``), ``DenDF``, ``F.scaling``,
        ``p_value`` (of the scaled F); ``F unscaled`` (``Wald / q``, with the
        adjusted covariance) and ``p_value unscaled`` (pbkrtest's ``FtestU``);
        ``Mean Sq`` (``F unscaled * sigma^2``) and ``Sum Sq`` (``NumDF`` times
        it), the columns lmerTest prints.

    Examples
    --------
    >>> from skmixed import MixedLinearRegressor
    >>> from skmixed.datasets import load_biomass
    >>> X, y, groups = load_biomass(return_X_y_groups=True)
    >>> model = MixedLinearRegressor(random_slopes=["Temp"]).fit(X, y, groups=groups)
    >>> test = kenward_roger_f_test(model, [[0, 1, 0], [0, 0, 1]])
    >>> round(test["F value"], 2), test["NumDF"], round(test["DenDF"], 2)
    (258.04, 2, 36.37)
    """
    L = _independent_rows(_contrast_matrix(model, L))
    q = L.shape[0]
    parts = kenward_roger_parts(model)
    L_scaled = L @ _scaled_basis(model)
    ddf, scaling = _ddf_and_scaling(parts, L_scaled)
    cov = kenward_roger_covariance(model).to_numpy()
    estimate = L @ model.fixed_effects_.to_numpy()
    wald = float(estimate @ np.linalg.solve(L @ cov @ L.T, estimate))
    unscaled = wald / q
    F = float(scaling * unscaled)
    mean_sq = unscaled * model.sigma_**2
    return {
        "F value": F,
        "NumDF": q,
        "DenDF": float(ddf),
        "F.scaling": float(scaling),
        "p_value": float(stats.f.sf(F, q, ddf)),
        "F unscaled": unscaled,
        "p_value unscaled": float(stats.f.sf(unscaled, q, ddf)),
        "Mean Sq": mean_sq,
        "Sum Sq": q * mean_sq,
    }


def _independent_rows(L, tol=1e-7):
    """A basis of the row space of ``L`` made of its own rows, in order."""
    kept = []
    for i in range(L.shape[0]):
        candidate = L[kept + [i]]
        if np.linalg.matrix_rank(candidate, tol=tol * max(1.0, np.abs(L).max())) > len(
            kept
        ):
            kept.append(i)
    if not kept:
        raise ValueError("L is zero: there is no hypothesis to test.")
    return L[kept]


def kenward_roger(model):
    """Fixed-effect t-tests with Kenward-Roger's SEs and df (lmerTest's summary).

    As :func:`~skmixed.inference.satterthwaite`, with the standard errors of
    the adjusted covariance (pbkrtest's ``vcovAdj``) and pbkrtest's degrees
    of freedom: lmerTest's ``summary(m, ddf = "Kenward-Roger")``.

    Parameters
    ----------
    model : MixedLinearRegressor
        A model fitted by REML.

    Returns
    -------
    table : DataFrame
        Columns ``estimate``, ``std_error``, ``t_value``, ``df``, ``p_value``.

    Examples
    --------
    >>> from skmixed import MixedLinearRegressor
    >>> from skmixed.datasets import load_biomass
    >>> X, y, groups = load_biomass(return_X_y_groups=True)
    >>> model = MixedLinearRegressor(random_slopes=["Temp"]).fit(X, y, groups=groups)
    >>> kenward_roger(model).round(3)
               estimate  std_error  t_value      df  p_value
    Intercept    10.092      0.251   40.150  18.859    0.000
    Temp          0.167      0.192    0.873  17.824    0.394
    N             2.210      0.097   22.878  77.143    0.000
    """
    se, df = kenward_roger_t(model, np.eye(model.fixed_effects_.size))
    return t_test_table(model, se, df)
