"""Batched kernels for many small matrices at once.

A grouping factor with ``m`` levels and ``q`` random-effect terms gives ``m``
independent ``q x q`` blocks.  ``numpy.linalg`` handles such stacks, but with a
large per-matrix overhead; for the tiny ``q`` of mixed models (1 to a handful)
it is an order of magnitude faster to loop over the ``q`` rows in Python and
vectorise over the ``m`` levels.  Every function here therefore takes stacks
in the "structure of arrays" layout ``(q, q, m)`` (and ``(q, k, m)`` for
right-hand sides): entry ``[i, j]`` is a contiguous vector over the levels.
"""

import os

import numpy as np


def cholesky(A):
    """Lower Cholesky factors of a stack of symmetric positive definite blocks.

    Parameters
    ----------
    A : ndarray of shape (q, q, m)
        Only the lower triangle is read.

    Returns
    -------
    L : ndarray of shape (q, q, m)
        Lower triangular, ``A[:, :, g] = L[:, :, g] @ L[:, :, g].T``.  Blocks
        that are not positive definite get NaN entries.
    """
    q = A.shape[0]
    L = np.zeros_like(A)
    with np.errstate(invalid="ignore", divide="ignore"):
        for j in range(q):
            d = A[j, j].copy()
            for k in range(j):
                d -= L[j, k] * L[j, k]
            L[j, j] = np.sqrt(d)
            for i in range(j + 1, q):
                s = A[i, j].copy()
                for k in range(j):
                    s -= L[i, k] * L[j, k]
                L[i, j] = s / L[j, j]
    return L


def solve_lower(L, B):
    """Solve ``L C = B`` block by block (forward substitution).

    Parameters
    ----------
    L : ndarray of shape (q, q, m)
    B : ndarray of shape (q, k, m)

    Returns
    -------
    C : ndarray of shape (q, k, m)
    """
    q = L.shape[0]
    C = np.empty_like(B)
    for i in range(q):
        s = B[i].copy()
        for j in range(i):
            s -= L[i, j] * C[j]
        C[i] = s / L[i, i]
    return C


def solve_upper_transposed(L, C):
    """Solve ``L.T U = C`` block by block (backward substitution).

    Parameters
    ----------
    L : ndarray of shape (q, q, m)
        Lower triangular blocks.
    C : ndarray of shape (q, k, m)

    Returns
    -------
    U : ndarray of shape (q, k, m)
    """
    q = L.shape[0]
    U = np.empty_like(C)
    for i in reversed(range(q)):
        s = C[i].copy()
        for j in range(i + 1, q):
            s -= L[j, i] * U[j]
        U[i] = s / L[i, i]
    return U


def inverse_lower(L):
    """Inverses of a stack of lower triangular blocks, shape (q, q, m)."""
    q, _, m = L.shape
    eye = np.broadcast_to(np.eye(q)[:, :, None], (q, q, m))
    return solve_lower(L, np.ascontiguousarray(eye))


def left_multiply_transposed(T, B):
    """``T.T @ B[:, :, g]`` for every block, with one fixed ``q x q`` T.

    One matrix product of ``T.T`` with ``B`` seen as (q, everything else):
    a single BLAS call, where a loop over the entries of T costs one numpy
    operation (and a temporary) per entry.  For q = 1 a scaling, which BLAS
    does slower.
    """
    q = T.shape[0]
    if q == 1:
        return T[0, 0] * B
    return (T.T @ B.reshape(q, -1)).reshape((q,) + B.shape[1:])


def congruence(T, A):
    """``T.T @ A[:, :, g] @ T`` for every block, with one fixed ``q x q`` T."""
    TtA = left_multiply_transposed(T, A)  # (q, q, m)
    return left_multiply_transposed(T, TtA.transpose(1, 0, 2)).transpose(1, 0, 2)


def gram(C):
    """``sum_g C[:, :, g].T @ C[:, :, g]``: a ``k x k`` matrix from (q, k, m)."""
    return sum(C[i] @ C[i].T for i in range(C.shape[0]))


def log_diagonal_sum(L):
    """``sum(log(diag))`` over a stack of blocks, shape (q, q, m)."""
    q = L.shape[0]
    return float(sum(np.log(L[i, i]).sum() for i in range(q)))


def left_multiply(T, B):
    """``T @ B[:, :, g]`` for every block, with one fixed ``q x q`` T."""
    return left_multiply_transposed(T.T, B)


def multiply(A, B):
    """``A[:, :, g] @ B[:, :, g]`` for two stacks, shapes (q, r, m), (r, k, m).

    ``einsum``'s C loop: several times faster than a Python loop over the
    ``q r`` pairs of rows, at every size measured.
    """
    return np.einsum("icm,ckm->ikm", A, B)


# Kernels on the coupling pattern of the later factors with the first (see
# ``_design.CouplingPattern``): a (Q2, Q1) matrix with the block pattern of
# ``Z2'Z1`` is held as a (q1, n_entries) array, one column per entry.


def pattern_times_blocks(X, blocks, level):
    """Every entry (a row vector of length q1) times its level's block.

    ``X`` (q1, n) on the pattern and ``blocks`` (q1, q1, m1), one per level
    of the first factor: ``X @ blockdiag(blocks)`` on the pattern.
    """
    q = X.shape[0]
    out = np.zeros_like(X)
    for b in range(q):
        for c in range(q):
            out[c] += X[b] * blocks[b, c][level]
    return out


def pattern_lambda_transposed(Ts, bounds, X):
    """``Lambda2' X`` on the pattern: each block's terms mixed by ``T'``.

    The ``q`` entries of a block are consecutive, so a later factor's
    entries reshape to (q1, n_blocks, q) and ``T'`` acts on the last axis.
    """
    out = np.empty_like(X)
    for T, start, stop in zip(Ts, bounds[:-1], bounds[1:]):
        blocks = X[:, start:stop].reshape(-1, T.shape[0])
        out[:, start:stop] = (blocks @ T).reshape(X.shape[0], -1)
    return out


def pattern_gram(X, pattern):
    """``X X'`` (Q2, Q2) for ``X`` on the pattern.

    Only entries of one level of the first factor meet: by dense products
    over chunks of levels, or from the pairs of entries of each level (their
    products land in the lower triangle, then mirrored).
    """
    Q2 = pattern.shape[0]
    if pattern.chunks is not None:
        gram = np.zeros((Q2, Q2))
        for entries, rows, columns, width in pattern.chunks:
            D = _dense_chunk(X, entries, rows, columns, (Q2, width))
            gram += D @ D.T
        return gram
    weights = sum(x[pattern.pair_row] * x[pattern.pair_col] for x in X)
    lower = np.bincount(pattern.pair_flat, weights=weights, minlength=Q2 * Q2)
    lower = lower.reshape(Q2, Q2)
    gram = lower + lower.T
    gram[np.diag_indices(Q2)] -= np.diag(lower)
    return gram


def pattern_sampled_product(P, X, pattern):
    """``P X`` on the pattern only, for a symmetric dense ``P`` (Q2, Q2).

    Entry (s, l) of ``P X`` sums ``P[s, s'] X[s', l]`` over the entries
    ``(s', l)`` of the same level.  From the pairs: each pair serves both
    ways, and the pair of an entry with itself counts once.
    """
    out = np.empty_like(X)
    if pattern.chunks is not None:
        for entries, rows, columns, width in pattern.chunks:
            D = _dense_chunk(X, entries, rows, columns, (P.shape[0], width))
            out[:, entries] = (P @ D)[rows[:, None], columns].T
        return out
    n = X.shape[1]
    p = P.ravel(order="K")[pattern.pair_flat]  # symmetric: any order
    self_weight = np.diag(P)[pattern.row]
    for b, x in enumerate(X):
        out[b] = (
            np.bincount(pattern.pair_row, weights=p * x[pattern.pair_col], minlength=n)
            + np.bincount(
                pattern.pair_col, weights=p * x[pattern.pair_row], minlength=n
            )
            - self_weight * x
        )
    return out


def _dense_chunk(X, entries, rows, columns, shape):
    """The columns of some levels of a pattern matrix, as a dense block."""
    D = np.zeros(shape)
    D[rows[:, None], columns] = X[:, entries].T
    return D


_CONTROLLER = None
# Below this many columns a dense block never gains from BLAS threads.
SMALL_DENSE_BLOCK = 2048


def useful_blas_threads(n_columns):
    """How many BLAS threads a dense block of ``n_columns`` should use.

    One for small blocks.  For large ones, only the cores that are idle
    (the one-minute load average, which counts this process once it has
    run a while, says how many): threads that must share a core with other
    work wait for each other.  Measured on a two-core machine running
    another heavy process, a Cholesky factor of 1,200 columns took 33 ms on
    one thread and 3 s on two (2,256 columns: 0.2 s against 0.6 to 6 s);
    on the idle machine two threads gain at most a factor of 2 (2,256
    columns: 97 ms against 58 ms).  Without a load average, one thread.
    """
    if n_columns <= SMALL_DENSE_BLOCK:
        return 1
    try:
        load = os.getloadavg()[0]
    except (AttributeError, OSError):
        return 1
    cores = allowed_threads()
    return max(1, min(cores, int(cores - load)))


def _available_cores():
    if hasattr(os, "sched_getaffinity"):
        return len(os.sched_getaffinity(0))
    return os.cpu_count() or 1


def allowed_threads():
    """The threads this process may use: its cores, within the BLAS limit.

    The limit in force (``OMP_NUM_THREADS`` and the like, a
    ``threadpoolctl.threadpool_limits`` block, a joblib worker's share) is
    the user's say on how many cores a fit may take; skmixed never raises
    it.
    """
    global _CONTROLLER
    from threadpoolctl import ThreadpoolController

    if _CONTROLLER is None:
        _CONTROLLER = ThreadpoolController()
    limits = [
        lib.num_threads for lib in _CONTROLLER.select(user_api="blas").lib_controllers
    ]
    limit = max(limits) if limits else _available_cores()
    return max(1, min(_available_cores(), limit))


def limited_blas(threads):
    """Context manager limiting BLAS to ``threads`` threads.

    The profiled deviance of most models works on many tiny matrices; BLAS
    threading only adds synchronisation to each tiny call (tenfold slower on
    a busy machine).  The controller is created once: creating it scans the
    loaded libraries.
    """
    global _CONTROLLER
    from threadpoolctl import ThreadpoolController

    if _CONTROLLER is None:
        _CONTROLLER = ThreadpoolController()
    return _CONTROLLER.limit(limits=threads, user_api="blas")


def single_threaded_blas():
    """Context manager limiting BLAS to one thread (see :func:`limited_blas`)."""
    return limited_blas(1)
