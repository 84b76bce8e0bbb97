"""The profiled REML / ML deviance and the estimates that follow from it.

With ``Lambda(theta)`` the relative covariance factor, the blocked Cholesky
factor ``L`` of ``Lambda' Z'Z Lambda + I`` and the Schur complement of
``W = [X y]`` give the objective with no solve for the coefficients (Bates et
al. 2015, section 3; MixedModels.jl's ``updateL!``).  The largest factor's
block is block-diagonal (one small block per level, handled by the batched
kernels of :mod:`._linalg`); the other factors, if any, form one dense block
whose coupling to the first is sparse.
"""

from dataclasses import dataclass

import numpy as np
from scipy import linalg, sparse
from scipy.linalg import lapack

from . import _linalg as bl
from ._covariance import lower_indices

LOG_2PI = np.log(2 * np.pi)


@dataclass
class Factorization:
    """The blocked factor and its by-products at one value of theta."""

    T: list  # per factor, (q, q) lower triangular
    L11: np.ndarray | None  # (q1, q1, m1)
    L21: sparse.csr_matrix | None  # (Q2, Q1)
    L22: np.ndarray | None  # (Q2, Q2)
    C1: np.ndarray | None  # (q1, p + 1, m1)
    C2: np.ndarray | None  # (Q2, p + 1)
    R: np.ndarray  # (p + 1, p + 1), lower Cholesky of the Schur complement
    logdet_L: float  # log |L|^2
    # Kept for the gradient when a factor has several terms (else None):
    L21_pattern: np.ndarray | None = None  # L21 on the coupling pattern, (q1, n)
    S22: np.ndarray | None = None  # A22 - A21 Lambda1 M11^{-1} Lambda1' A12


def split_theta(theta, factors):
    """The lower triangular factor ``T`` of each grouping factor."""
    Ts, start = [], 0
    for f in factors:
        rows, cols = lower_indices(f.n_terms, f.diagonal)
        T = np.zeros((f.n_terms, f.n_terms))
        T[rows, cols] = theta[start : start + rows.size]
        Ts.append(T)
        start += rows.size
    return Ts


def block_diagonal(blocks):
    """Sparse block-diagonal matrix from a (q, q, m) stack of blocks."""
    q, _, m = blocks.shape
    data = np.ascontiguousarray(blocks.transpose(2, 0, 1))
    return sparse.bsr_matrix(
        (data, np.arange(m), np.arange(m + 1)), shape=(q * m, q * m)
    ).tocsr()


def level_major(C):
    """A (q, k, m) stack as a (m * q, k) matrix, rows ordered level-major."""
    q, k, m = C.shape
    return C.transpose(2, 0, 1).reshape(m * q, k)


def factorize(stats, factors, theta):
    """Blocked Cholesky factorisation at ``theta`` (lme4's ``updateL``).

    Returns None when a block is not positive definite (only possible for
    invalid ``theta`` or a numerically singular fixed-effect matrix).
    Statistics of the Krylov solver path give its factorisation instead.
    """
    if stats.krylov is not None:  # the Krylov solver path
        from ._objective_krylov import krylov_factorize

        return krylov_factorize(stats, factors, theta)
    Ts = split_theta(np.asarray(theta, dtype=float), factors)
    WtW = stats.WtW
    if not factors:
        R = _cholesky_or_none(WtW)
        return (
            None
            if R is None
            else Factorization(Ts, None, None, None, None, None, R, 0.0)
        )
    T1, first = Ts[0], stats.first
    q1 = T1.shape[0]
    M11 = bl.congruence(T1, first.ZtZ)
    M11[np.arange(q1), np.arange(q1)] += 1.0
    L11 = bl.cholesky(M11)
    C1 = bl.solve_lower(L11, bl.left_multiply_transposed(T1, first.ZtW))
    logdet = 2.0 * bl.log_diagonal_sum(L11)
    S = WtW - bl.gram(C1)
    blocks = None
    if stats.others is not None:
        blocks = _factorize_others(stats.others, factors, Ts, L11, C1)
        if blocks.L22 is None:
            return None
        logdet += 2.0 * np.log(np.diag(blocks.L22)).sum()
        S -= blocks.C2.T @ blocks.C2
    if not np.isfinite(logdet):
        return None
    R = _cholesky_or_none(S)
    if R is None:
        return None
    if blocks is None:
        return Factorization(Ts, L11, None, None, C1, None, R, logdet)
    return Factorization(
        Ts,
        L11,
        blocks.L21,
        blocks.L22,
        C1,
        blocks.C2,
        R,
        logdet,
        blocks.L21_pattern,
        blocks.S22,
    )


@dataclass
class _OtherBlocks:
    """The blocks of L (and C) of the factors after the first."""

    L21: sparse.csr_matrix
    L22: np.ndarray | None  # None: M22 is not positive definite
    C2: np.ndarray | None
    L21_pattern: np.ndarray | None = None
    S22: np.ndarray | None = None


def coupling_pattern(others, factors):
    """The (cached) coupling pattern of the later factors with the first."""
    return others.coupling_pattern(factors[0].n_terms, _shapes(factors[1:]))


def _factorize_others(others, factors, Ts, L11, C1):
    """The (2, 1) and (2, 2) blocks of L, and C2, for factors after the first.

    ``L21 = Lambda2' J`` with ``J = A21 Lambda1 L11^{-T}``, on the coupling
    pattern; ``M22 = Lambda2' S22 Lambda2 + I`` with the Schur complement
    ``S22 = A22 - J J'`` of the first factor, which the gradient reuses.
    """
    if all(f.n_terms == 1 for f in factors):
        return _factorize_scalar_others(others, factors, Ts, L11, C1)
    pattern = coupling_pattern(others, factors)
    T1_L11_inv_t = bl.left_multiply(Ts[0], bl.inverse_lower(L11).transpose(1, 0, 2))
    J = bl.pattern_times_blocks(pattern.values, T1_L11_inv_t, pattern.level)
    L21_pattern = bl.pattern_lambda_transposed(Ts[1:], pattern.factor_bounds, J)
    S22 = others.Z2tZ2 - bl.pattern_gram(J, pattern)
    shapes = _shapes(factors[1:])
    Lt_S22 = lambda_rows(Ts[1:], shapes, S22, transpose=True)  # Lambda2' S22
    M22 = lambda_rows(Ts[1:], shapes, Lt_S22.T, transpose=True)  # ... Lambda2
    B2 = lambda_rows(Ts[1:], shapes, others.Z2tW, transpose=True)
    blocks = _finish_others(others, pattern_csr(L21_pattern, pattern), M22, B2, C1)
    blocks.L21_pattern, blocks.S22 = L21_pattern, S22
    return blocks


def _shapes(factors):
    return [(f.n_levels, f.n_terms) for f in factors]


def lambda_rows(Ts, shapes, X, transpose=False):
    """``Lambda2 X`` (or ``Lambda2' X``) for rows stacked level-major.

    ``shapes`` are the (n_levels, n_terms) of the factors whose rows these
    are: each level's ``q`` rows are mixed by ``T`` (or ``T'``).
    """
    out, start = np.zeros(X.shape), 0
    for T, (m, q) in zip(Ts, shapes):
        stop = start + m * q
        T = T.T if transpose else T
        rows, mixed = X[start:stop].reshape(m, q, -1), out[start:stop].reshape(m, q, -1)
        for a in range(q):  # a loop over q: far faster than matmul of m tiny blocks
            for b in range(q):
                if T[a, b] != 0.0:
                    mixed[:, a] += T[a, b] * rows[:, b]
        start = stop
    return out


def pattern_csr(X, pattern):
    """A (q1, n) array on the coupling pattern as a CSR matrix (Q2, Q1)."""
    data = X[:, pattern.csr_order].T.ravel()
    return sparse.csr_matrix(
        (data, pattern.csr_indices, pattern.csr_indptr), shape=pattern.shape
    )


def _factorize_scalar_others(others, factors, Ts, L11, C1):
    """As :func:`_factorize_others` when every factor has one term.

    Lambda and L11 are then diagonal, so every product with them is a scaling
    of rows or columns: no sparse matrix products but the one in L21 L21'.
    """
    row_scale = np.repeat([T[0, 0] for T in Ts[1:]], [f.n_levels for f in factors[1:]])
    col_scale = Ts[0][0, 0] / L11[0, 0]
    A21 = others.Z2tZ1
    rows = np.repeat(np.arange(A21.shape[0]), np.diff(A21.indptr))
    L21 = sparse.csr_matrix(
        (A21.data * row_scale[rows] * col_scale[A21.indices], A21.indices, A21.indptr),
        shape=A21.shape,
    )
    # L21 L21' = R A21 diag(c^2) A21' R with R, c the row and column scales.
    # Only its lower triangle is formed: the Cholesky reads no other.
    pairs = others.column_pairs()
    Q2 = A21.shape[0]
    lower = np.bincount(
        pairs.flat,
        weights=pairs.products * (col_scale**2)[pairs.column],
        minlength=Q2 * Q2,
    ).reshape(Q2, Q2)
    M22 = (others.Z2tZ2 - lower) * np.outer(row_scale, row_scale)
    return _finish_others(others, L21, M22, row_scale[:, None] * others.Z2tW, C1)


def _finish_others(others, L21, M22, B2, C1):
    """Factor ``M22 + I`` (``L21 L21'`` already subtracted); C2 from B2, C1."""
    M22[np.diag_indices_from(M22)] += 1.0
    L22 = _cholesky_or_none(M22)
    if L22 is None:
        return _OtherBlocks(L21, None, None)
    B2 = B2 - L21 @ level_major(C1)
    C2 = linalg.solve_triangular(L22, B2, lower=True, check_finite=False)
    return _OtherBlocks(L21, L22, C2)


def _cholesky_or_none(A, overwrite=False):
    """Lower Cholesky factor of ``A``; None unless positive definite and finite.

    LAPACK directly: scipy's wrapper checks the input for finiteness first,
    a cost that counts at this size.  A non-finite entry of the lower
    triangle reaches a later pivot (NaN), which LAPACK reports.  With
    ``overwrite`` a Fortran-ordered ``A`` is factored in place.
    """
    L, info = lapack.dpotrf(A, lower=1, clean=1, overwrite_a=overwrite)
    if info != 0 or not np.isfinite(np.diagonal(L)).all():
        return None
    return L


def penalized_rss(R):
    """``r^2``: the last diagonal entry of the factor, squared."""
    return max(R[-1, -1] ** 2, np.finfo(float).tiny)


def objective(fact, n, reml):
    """lme4's REML criterion or ML deviance from a factorisation."""
    p = fact.R.shape[0] - 1
    r2 = penalized_rss(fact.R)
    if reml:
        dof = n - p
        logdet_RX = 2.0 * np.log(np.diag(fact.R)[:p]).sum()
        return fact.logdet_L + logdet_RX + dof * (1.0 + LOG_2PI + np.log(r2 / dof))
    return fact.logdet_L + n * (1.0 + LOG_2PI + np.log(r2 / n))


# The dense path.  With few random effects in all, one dense Cholesky of the
# whole ``M = Lambda' A Lambda + I`` costs less than the Python overhead of
# the blocked kernels: a handful of BLAS and LAPACK calls per evaluation,
# whatever the design (one factor, crossed, nested).  Same numbers, to
# rounding, as the blocked path, which everything that reads the blocks of
# the factor (the estimates, inference) keeps using.

# When the dense path is taken: by Q, the number of random effects in all.
# Its cost grows as Q^3 (the Cholesky factor, then the inverse for the
# gradient), the blocked path's with the coupling of the later factors to
# the first.  Measured (value and gradient, one BLAS thread): dense is about
# twice as fast at Q = 86 (nested or crossed), equal to blocked at Q = 280
# for crossed factors with slopes (3.5 times faster for crossed intercepts,
# Q = 300), but half as fast at Q = 230 for nested factors, whose coupling
# is sparse.
DENSE_MAX_EFFECTS = 128  # whatever the coupling
DENSE_MAX_EFFECTS_CROSSED = 256  # when the factors meet densely
CROSSED_DENSITY = 0.25  # the share of (later, first) column pairs that meet


def uses_dense_path(stats, factors):
    """Whether the objective of these factors is evaluated densely.

    Only for several factors: one factor's ``M`` is block diagonal, which the
    batched kernels factor in a few vector operations.
    """
    if len(factors) < 2:
        return False
    Q = sum(f.n_levels * f.n_terms for f in factors)
    if Q <= DENSE_MAX_EFFECTS:
        return True
    coupling = stats.others.Z2tZ1
    density = coupling.nnz / max(1, coupling.shape[0] * coupling.shape[1])
    return Q <= DENSE_MAX_EFFECTS_CROSSED and density >= CROSSED_DENSITY


@dataclass
class DenseFactorization:
    """The Cholesky factor of the whole ``M`` at one theta (term-major)."""

    T: list  # per factor, (q, q) lower triangular
    L: np.ndarray  # (Q, Q) lower Cholesky factor of M
    C: np.ndarray  # (Q, p + 1): L^{-1} Lambda' B
    R: np.ndarray  # (p + 1, p + 1), lower Cholesky of the Schur complement
    logdet_L: float  # log |L|^2
    Lt_A: np.ndarray  # Lambda' A, which the gradient reuses


def factorize_dense(stats, factors, theta):
    """As :func:`factorize`, with dense ``M`` (see :func:`uses_dense_path`).

    In the term-major order of :class:`._design.DenseCrossProducts`, where a
    factor's ``Lambda`` is ``T (x) I``.
    """
    Ts = split_theta(np.asarray(theta, dtype=float), factors)
    dense = stats.dense_cross_products(_shapes(factors))
    Lt_A = _mix_rows(Ts, dense.shapes, dense.ZtZ, transpose=True)
    M = _mix_rows(Ts, dense.shapes, Lt_A.T, transpose=True)  # (A Lambda = (Lambda' A)')
    M[np.diag_indices_from(M)] += 1.0
    # M is symmetric up to rounding: its transpose is the Fortran-ordered
    # matrix LAPACK wants, factored in place (lower triangle of M').
    L = _cholesky_or_none(M.T, overwrite=True)
    if L is None:
        return None
    logdet = 2.0 * np.log(np.diagonal(L)).sum()
    Lt_B = _mix_rows(Ts, dense.shapes, dense.ZtW, transpose=True)
    C = lapack.dtrtrs(L, Lt_B, lower=1)[0]
    R = _cholesky_or_none(stats.WtW - C.T @ C)
    if R is None or not np.isfinite(logdet):
        return None
    return DenseFactorization(Ts, L, C, R, logdet, Lt_A)


def _mix_rows(Ts, shapes, X, transpose=False):
    """``Lambda X`` (or ``Lambda' X``) for term-major rows.

    A factor's rows of ``X`` are a (q, m * k) matrix that ``T`` (or ``T'``)
    multiplies from the left: one small matrix product per factor.
    """
    X = np.ascontiguousarray(X)
    out, start, k = np.empty_like(X), 0, X.shape[1]
    for T, (m, q) in zip(Ts, shapes):
        stop = start + m * q
        block = out[start:stop].reshape(q, m * k)
        np.matmul(T.T if transpose else T, X[start:stop].reshape(q, m * k), out=block)
        start = stop
    return out


def _dense_gradient(fact, stats, factors, reml):
    """The gradient of :func:`make_deviance_and_gradient` on the dense path.

    ``V = M^{-1} Lambda' B = L^{-T} C`` and ``U = B - A Lambda V`` whole;
    per factor, ``d log|M|`` in entry (i, j) of ``T`` is twice the sum over
    levels of ``(A Lambda M^{-1})[(i, l), (j, l)]``, the sum over rows of the
    product of column blocks i of ``Lambda' A`` and j of ``M^{-1}``.
    """
    dense = stats.dense_cross_products(_shapes(factors))
    Q = fact.L.shape[0]
    V = lapack.dtrtrs(fact.L, fact.C, lower=1, trans=1)[0]
    U = dense.ZtW - dense.ZtZ @ _mix_rows(fact.T, dense.shapes, V)
    M_inv = _symmetric_inverse(fact.L)
    schur = _SchurDerivative(fact.R, reml, stats.n)
    parts, start = [], 0
    for f, (m, q) in zip(factors, dense.shapes):
        cols = slice(start, start + m * q)
        H = np.tensordot(
            fact.Lt_A[:, cols].reshape(Q, q, m),
            M_inv[:, cols].reshape(Q, q, m),
            axes=([0, 2], [0, 2]),
        )
        U_f, V_f = U[cols].reshape(q, m, -1), V[cols].reshape(q, m, -1)
        parts.append(_factor_gradient(schur, f, H, U_f, V_f))
        start += m * q
    return np.concatenate(parts)


def _factorizer(stats, factors):
    """theta -> a factorisation (or None): dense for few random effects."""
    if stats.krylov is not None:  # the Krylov solver path
        return lambda theta: factorize(stats, factors, theta)
    if uses_dense_path(stats, factors):
        return lambda theta: factorize_dense(stats, factors, theta)
    return lambda theta: factorize(stats, factors, theta)


def make_deviance(design, reml):
    """The profiled objective as a pure function of theta (inf where invalid)."""
    stats, factorizer = design.stats, _factorizer(design.stats, design.factors)

    def deviance(theta):
        fact = factorizer(theta)
        if fact is None:
            return np.inf
        value = objective(fact, stats.n, reml)
        return value if np.isfinite(value) else np.inf

    return deviance


def objective_at_sigma(fact, n, reml, sigma):
    """The REML criterion or ML deviance at theta and a given ``sigma``.

    Not profiled over ``sigma`` (lmerTest's ``devfun_vp``): with
    ``r^2`` the penalised residual sum of squares at theta,

    - ML: ``log|L|^2 + r^2 / sigma^2 + n log(2 pi sigma^2)``;
    - REML: adds ``log|R_X|^2 - p log(2 pi sigma^2)``.

    At ``sigma^2 = r^2 / n`` (ML) or ``r^2 / (n - p)`` (REML) it equals
    :func:`objective`.
    """
    p = fact.R.shape[0] - 1
    log_2pi_s2 = LOG_2PI + 2.0 * np.log(sigma)
    value = fact.logdet_L + penalized_rss(fact.R) / sigma**2 + n * log_2pi_s2
    if reml:
        value += 2.0 * np.log(np.diag(fact.R)[:p]).sum() - p * log_2pi_s2
    return value


def make_varpar_deviance(design, reml):
    """The objective as a function of ``varpar = (theta, sigma)``.

    In the scaled units of the design; inf where invalid.  Satterthwaite's
    degrees of freedom need its Hessian (lmerTest differentiates the same
    function).
    """
    stats, factorizer = design.stats, _factorizer(design.stats, design.factors)

    def deviance(varpar):
        varpar = np.asarray(varpar, dtype=float)
        sigma = varpar[-1]
        fact = factorizer(varpar[:-1]) if sigma > 0 else None
        if fact is None:
            return np.inf
        value = objective_at_sigma(fact, stats.n, reml, sigma)
        return value if np.isfinite(value) else np.inf

    return deviance


@dataclass
class Estimates:
    """beta, sigma, the random effects and their variances at one theta.

    All in the units of the scaled fit (see :class:`._design.Scaling`).
    """

    beta: np.ndarray
    beta_cov: np.ndarray
    sigma: float
    random_effects: list  # per factor, (m, q): b = Lambda u
    conditional_cov: list  # per factor, (m, q, q): Var(b | y) at the estimates


def fixed_effects_from_factor(R, n, reml):
    """beta, sigma^2 and beta's covariance from the factor ``R`` of ``[X y]``'s
    Schur complement (either solver path's ``R``)."""
    p = R.shape[0] - 1
    RX = R[:p, :p]
    beta = linalg.solve_triangular(RX.T, R[p, :p], lower=False) if p else np.zeros(0)
    sigma2 = penalized_rss(R) / (n - p if reml else n)
    RX_inv = linalg.solve_triangular(RX, np.eye(p), lower=True) if p else RX
    return beta, sigma2, sigma2 * (RX_inv.T @ RX_inv)


def estimates(fact, factors, n, reml):
    """Read beta, sigma and the conditional modes off a factorisation."""
    if not isinstance(fact, Factorization | DenseFactorization):
        from ._objective_krylov import krylov_estimates  # the Krylov path

        return krylov_estimates(fact, factors, n, reml)
    beta, sigma2, beta_cov = fixed_effects_from_factor(fact.R, n, reml)
    if not factors:
        return Estimates(beta, beta_cov, float(np.sqrt(sigma2)), [], [])
    u = _conditional_modes(fact, beta, factors)
    cond = _conditional_variance_blocks(fact, factors)
    b, cov = [], []
    for f, T, u_f, V_f in zip(factors, fact.T, u, cond):
        b.append(u_f @ T.T)
        cov.append(sigma2 * np.einsum("ij,mjk,lk->mil", T, V_f, T))
    return Estimates(beta, beta_cov, float(np.sqrt(sigma2)), b, cov)


def _conditional_modes(fact, beta, factors):
    """Spherical random effects ``u`` per factor, each (m, q)."""
    p = beta.size
    c1 = fact.C1[:, p, :] - np.einsum("qkm,k->qm", fact.C1[:, :p, :], beta)
    if fact.L22 is None:
        u1 = bl.solve_upper_transposed(fact.L11, c1[:, None, :])[:, 0, :]
        return [u1.T]
    c2 = fact.C2[:, p] - fact.C2[:, :p] @ beta
    u2 = linalg.solve_triangular(fact.L22.T, c2, lower=False)
    q1, m1 = c1.shape
    rhs = c1 - (fact.L21.T @ u2).reshape(m1, q1).T
    u1 = bl.solve_upper_transposed(fact.L11, rhs[:, None, :])[:, 0, :]
    return [u1.T] + _split_levels(u2, factors[1:])


def _split_levels(vector, factors):
    """Cut a level-major vector of several factors into (m, q) pieces."""
    pieces, start = [], 0
    for f in factors:
        size = f.n_levels * f.n_terms
        pieces.append(vector[start : start + size].reshape(f.n_levels, f.n_terms))
        start += size
    return pieces


def _conditional_variance_blocks(fact, factors):
    """Diagonal blocks of ``(L L')^{-1}`` per factor and level, (m, q, q)."""
    L11_inv = bl.inverse_lower(fact.L11)  # (q1, q1, m1)
    first = np.einsum("jim,jkm->mik", L11_inv, L11_inv)
    if fact.L22 is None:
        return [first]
    q1, _, m1 = L11_inv.shape
    L22_inv = linalg.solve_triangular(fact.L22, np.eye(fact.L22.shape[0]), lower=True)
    # Off-diagonal part of L^{-1}: -L22^{-1} L21 L11^{-1}, by chunks of levels.
    coupling = fact.L21 @ block_diagonal(L11_inv)
    chunk = max(1, 2_000_000 // max(1, fact.L22.shape[0] * q1))
    for start in range(0, m1, chunk):
        stop = min(m1, start + chunk)
        block = coupling[:, start * q1 : stop * q1].toarray()
        X = L22_inv @ block
        Xb = X.reshape(X.shape[0], stop - start, q1)
        first[start:stop] += np.einsum("kmi,kmj->mij", Xb, Xb)
    blocks, start = [first], 0
    for f in factors[1:]:
        q, m = f.n_terms, f.n_levels
        cols = L22_inv[:, start : start + m * q].reshape(-1, m, q)
        blocks.append(np.einsum("kmi,kmj->mij", cols, cols))
        start += m * q
    return blocks


def make_deviance_and_gradient(design, reml):
    """The objective and its exact gradient in theta, for every design.

    Both follow from differentiating the Schur complement
    ``S(theta) = W'W - B' Lambda M^{-1} Lambda' B`` and ``log |M|`` with
    ``M = Lambda' A Lambda + I`` (``A = Z'Z``, ``B = Z'W``): for a parameter
    moving entries E of Lambda (entry (i, j) of a factor's ``T``, at every
    level), ``dS = -(U' E V + V' E' U)`` with ``V = M^{-1} Lambda' B`` and
    ``U = B - A Lambda V``, and ``d log|M| = 2 tr(M^{-1} Lambda' A E)``: the
    sum over levels of entry (i, j) of the diagonal blocks of
    ``A Lambda M^{-1}`` (see :func:`_logdet_blocks`).  Returns a callable
    ``theta -> (value, gradient)``, ``(inf, zeros)`` where the factorisation
    fails.
    """
    stats, factors = design.stats, design.factors
    if stats.krylov is not None:  # the Krylov solver path
        from ._objective_krylov import make_cached_deviance_and_gradient

        return make_cached_deviance_and_gradient(design, reml)
    factorizer = _factorizer(stats, factors)
    if uses_dense_path(stats, factors):

        def gradient(fact):
            return _dense_gradient(fact, stats, factors, reml)

    elif len(factors) > 1 and all(f.n_terms == 1 for f in factors):

        def gradient(fact):  # the fast path of crossed random intercepts
            return _gradient_scalar_factors(fact, stats, factors, reml)

    else:

        def gradient(fact):
            return _gradient(fact, stats, factors, reml)

    def value_and_gradient(theta):
        fact = factorizer(theta)
        if fact is None:
            return np.inf, np.zeros(len(theta))
        return objective(fact, stats.n, reml), gradient(fact)

    return value_and_gradient


def _gradient(fact, stats, factors, reml):
    """Any design: per factor, the log-determinant and Schur parts."""
    if not factors:
        return np.zeros(0)
    V1, V2 = _spherical_solution(fact)
    U1, U2 = _residual_products(fact, stats, factors, V1, V2)
    H = _logdet_blocks(fact, stats, factors)
    U = [U1] + _level_stacks(U2, factors[1:])
    V = [V1] + _level_stacks(V2, factors[1:])
    schur = _SchurDerivative(fact.R, reml, stats.n)
    parts = [
        _factor_gradient(schur, f, H_f, U_f.transpose(0, 2, 1), V_f.transpose(0, 2, 1))
        for f, H_f, U_f, V_f in zip(factors, H, U, V)
    ]
    return np.concatenate(parts)


def _spherical_solution(fact):
    """``V = M^{-1} Lambda' B = L^{-T} C``, by blocks: (q1, k, m1) and (Q2, k)."""
    if fact.L22 is None:
        return bl.solve_upper_transposed(fact.L11, fact.C1), None
    V2 = linalg.solve_triangular(fact.L22.T, fact.C2, lower=False, check_finite=False)
    q1, k, m1 = fact.C1.shape
    coupled = level_stack(fact.L21.T @ V2, q1)  # L21' V2
    return bl.solve_upper_transposed(fact.L11, fact.C1 - coupled), V2


def _residual_products(fact, stats, factors, V1, V2):
    """``U = B - A Lambda V``, by blocks as V."""
    first, others = stats.first, stats.others
    W1 = bl.left_multiply(fact.T[0], V1)  # Lambda1 V1
    U1 = first.ZtW - bl.multiply(first.ZtZ, W1)
    if others is None:
        return U1, None
    W2 = lambda_rows(fact.T[1:], _shapes(factors[1:]), V2)  # Lambda2 V2
    U1 = U1 - level_stack(others.Z2tZ1.T @ W2, U1.shape[0])
    U2 = others.Z2tW - others.Z2tZ1 @ level_major(W1) - others.Z2tZ2 @ W2
    return U1, U2


def _logdet_blocks(fact, stats, factors):
    """Per factor, ``H_f = sum over levels of the diagonal blocks of A Lambda M^{-1}``.

    Then ``d log|M| = 2 H_f[i, j]`` for entry (i, j) of the factor's ``T``.
    With ``K = L21 L11^{-1}`` and ``P = (L22 L22')^{-1}`` the blocks of
    ``M^{-1}`` are ``M11^{-1} + K' P K``, ``-P K`` and ``P``, which give

    - first factor: ``A11 Lambda1 M11^{-1} - N P K`` with
      ``N = A12 Lambda2 - A11 Lambda1 K'``, read on the coupling pattern
      only (``P K`` is needed there alone);
    - later factors: ``S22 Lambda2 P``, with ``S22`` from the factorisation.

    No inverse of ``T``: it is singular on the boundary.
    """
    T1, first = fact.T[0], stats.first
    L11_inv = bl.inverse_lower(fact.L11)
    M11_inv = bl.multiply(L11_inv.transpose(1, 0, 2), L11_inv)
    H1 = bl.multiply(first.ZtZ, bl.left_multiply(T1, M11_inv)).sum(axis=2)
    if fact.L22 is None:
        return [H1]
    P = _symmetric_inverse(fact.L22)
    H1 = H1 - _coupled_first_block(fact, stats, factors, P, L11_inv)
    return [H1] + _later_blocks(fact, factors, P)


def _symmetric_inverse(L):
    """``(L L')^{-1}``, both triangles, from a lower ``L`` with a zero upper part.

    LAPACK's ``dpotri`` fills the lower triangle and leaves the upper one as
    it found it (zero: the factors here are made with ``clean=1``), so the
    sum with the transpose counts the diagonal twice, and only it.
    """
    P = lapack.dpotri(L, lower=1)[0]
    P += P.T
    P[np.diag_indices_from(P)] *= 0.5
    return P


def _coupled_first_block(fact, stats, factors, P, L11_inv):
    """``sum over levels of the diagonal blocks of N P K`` (see _logdet_blocks)."""
    pattern = coupling_pattern(stats.others, factors)
    Ts, bounds = fact.T, pattern.factor_bounds
    K = bl.pattern_times_blocks(fact.L21_pattern, L11_inv, pattern.level)
    T1t_A11 = bl.left_multiply_transposed(Ts[0], stats.first.ZtZ)
    Nt = bl.pattern_lambda_transposed(Ts[1:], bounds, pattern.values)  # Lambda2' A21
    Nt -= bl.pattern_times_blocks(K, T1t_A11, pattern.level)
    return Nt @ bl.pattern_sampled_product(P, K, pattern).T


def _later_blocks(fact, factors, P):
    """``H_f`` of the later factors: diagonal blocks of ``S22 Lambda2 P``."""
    Lt_S22 = lambda_rows(fact.T[1:], _shapes(factors[1:]), fact.S22, transpose=True)
    blocks, start, Q2 = [], 0, P.shape[0]
    for f in factors[1:]:
        m, q = f.n_levels, f.n_terms
        stop = start + m * q
        # (S22 Lambda2)[r, t] = (Lambda2' S22)[t, r]; sum over t and the levels.
        left = Lt_S22[:, start:stop].reshape(Q2, m, q)
        right = P[:, start:stop].reshape(Q2, m, q)
        blocks.append(np.einsum("tmi,tmj->ij", left, right))
        start = stop
    return blocks


def _level_stacks(X, factors):
    """Cut level-major rows of several factors into (q, k, m) stacks."""
    stacks, start = [], 0
    for f in factors:
        stop = start + f.n_levels * f.n_terms
        stacks.append(level_stack(X[start:stop], f.n_terms))
        start = stop
    return stacks


def level_stack(X, q):
    """A (m * q, k) matrix, rows level-major, as a (q, k, m) stack."""
    return X.reshape(-1, q, X.shape[1]).transpose(1, 2, 0)


def _factor_gradient(schur, factor, H, U, V):
    """The gradient in one factor's theta.

    ``H`` (q, q) as in :func:`_logdet_blocks`; ``U`` and ``V`` (q, m, k):
    the factor's rows of U and V by term and level.
    """
    rows, cols = lower_indices(factor.n_terms, factor.diagonal)
    return schur.entry_derivatives(2.0 * H, U, V)[rows, cols]


class _SchurDerivative:
    """How a change ``dS`` of the Schur complement moves the objective.

    With ``v = [-beta, 1]``: ``d r^2 = v' dS v`` and, for REML,
    ``d log|R_X|^2 = tr(S_XX^{-1} dS_XX)``.  LAPACK directly: these are
    tiny ``p x p`` systems, where scipy's wrappers cost more than the work.
    """

    def __init__(self, R, reml, n):
        p = R.shape[0] - 1
        self.p, self.reml, self.r2 = p, reml and p > 0, penalized_rss(R)
        self.dof = n - p if reml else n
        beta = np.zeros(0)
        if p:
            beta = lapack.dtrtrs(R[:p, :p], R[p, :p], lower=1, trans=1)[0]
        self.v = np.append(-beta, 1.0)
        if self.reml:
            RX_inv = lapack.dtrtri(R[:p, :p], lower=1)[0]
            self.SXX_inv = RX_inv.T @ RX_inv

    def entry_derivatives(self, d_logdet, U, V):
        """The derivative in every entry (i, j) of a factor's ``T``, (q, q).

        ``d_logdet`` (q, q) the derivatives of ``log|M|``; ``U`` and ``V``
        (q, m, k) the factor's rows by term and level: entry (i, j) of ``T``
        moves ``S`` by ``-(U_i' V_j + V_j' U_i)``, summed over the levels.
        """
        q = d_logdet.shape[0]
        Uv, Vv = U @ self.v, V @ self.v  # (q, m)
        G = d_logdet - (2.0 * self.dof / self.r2) * (Uv @ Vv.T)
        if self.reml:
            p = self.p
            U_X = (U[..., :p] @ self.SXX_inv).reshape(q, -1)
            G -= 2.0 * (U_X @ V[..., :p].reshape(q, -1).T)
        return G

    def scalar_derivative(self, d_logdet, U, V):
        """As :meth:`entry_derivatives` for a one-term factor; U, V (m, k)."""
        d_logdet = np.array([[d_logdet]])
        return float(self.entry_derivatives(d_logdet, U[None], V[None])[0, 0])


def _gradient_scalar_factors(fact, stats, factors, reml):
    """Several factors, one term each: Lambda and L11 are diagonal.

    ``d log|M| / d lambda_f = 2 (m_f - tr_f(M^{-1})) / lambda_f`` (from
    ``M^{-1} Lambda' A Lambda = I - M^{-1}``), with the traces of the diagonal
    blocks of ``M^{-1}`` from the blocked factor: ``P = (L22 L22')^{-1}`` for
    the later factors, and ``sum 1 / l11^2 + tr(P K)`` for the first, where
    ``K = (L21 L11^{-1})(L21 L11^{-1})'`` comes from the column pairs.
    """
    others, first = stats.others, stats.first
    lam = np.array([T[0, 0] for T in fact.T])
    sizes = [f.n_levels for f in factors[1:]]
    lam2 = np.repeat(lam[1:], sizes)
    l11 = fact.L11[0, 0]
    # V = L^{-T} C and U = B - A Lambda V, block by block.
    V2 = linalg.solve_triangular(fact.L22.T, fact.C2, lower=False)
    V1 = (fact.C1[0].T - fact.L21.T @ V2) / l11[:, None]
    W1, W2 = lam[0] * V1, lam2[:, None] * V2
    A21 = others.Z2tZ1
    U1 = first.ZtW[0].T - (first.ZtZ[0, 0][:, None] * W1 + A21.T @ W2)
    U2 = others.Z2tW - (A21 @ W1 + others.Z2tZ2 @ W2)
    # Traces of the diagonal blocks of M^{-1}; P's lower triangle only, and
    # tr(P K) summed over the column pairs (K is never formed).
    P = linalg.lapack.dpotri(fact.L22, lower=1)[0]
    pairs = others.column_pairs()
    weights = pairs.symmetric_products * (lam[0] ** 2 / l11**4)[pairs.column]
    diag_P = np.diag(P).copy()
    P *= lam2[:, None]  # in place: P stays in Fortran order, ravel is a view
    P *= lam2[None, :]
    scaled_P = P.ravel(order="F")[pairs.flat_fortran]
    traces = [np.sum(1.0 / l11**2) + weights @ scaled_P]
    bounds = np.concatenate([[0], np.cumsum(sizes)])
    traces += [diag_P[a:b].sum() for a, b in zip(bounds[:-1], bounds[1:])]
    blocks = [(U1, V1)] + [(U2[a:b], V2[a:b]) for a, b in zip(bounds[:-1], bounds[1:])]
    schur = _SchurDerivative(fact.R, reml, stats.n)
    gradient = np.empty(len(factors))
    for k, (f, (U, V)) in enumerate(zip(factors, blocks)):
        d_logdet = 2.0 * (f.n_levels - traces[k]) / lam[k] if lam[k] > 0 else 0.0
        gradient[k] = schur.scalar_derivative(d_logdet, U, V)
    return gradient


def blas_threads_for(factors):
    """BLAS threads for a fit: see :func:`._linalg.useful_blas_threads`.

    Only the dense block of the later factors can be big enough for BLAS
    threads to pay; everything else is many tiny matrices, single passes, or
    (the dense path) a matrix of a few hundred columns.
    """
    dense = sum(f.n_levels * f.n_terms for f in factors[1:])
    return bl.limited_blas(bl.useful_blas_threads(dense))
