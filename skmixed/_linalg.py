"""Batched kernels for many small matrices at once.

A grouping factor with ``m`` levels and ``q`` random-effect terms gives ``m``
independent ``q x q`` blocks.  ``numpy.linalg`` handles such stacks, but with a
large per-matrix overhead; for the tiny ``q`` of mixed models (1 to a handful)
it is an order of magnitude faster to loop over the ``q`` rows in Python and
vectorise over the ``m`` levels.  Every function here therefore takes stacks
in the "structure of arrays" layout ``(q, q, m)`` (and ``(q, k, m)`` for
right-hand sides): entry ``[i, j]`` is a contiguous vector over the levels.
"""

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
            d = A[j, j] - np.einsum("km,km->m", L[j, :j], L[j, :j])
            L[j, j] = np.sqrt(d)
            for i in range(j + 1, q):
                s = A[i, j] - np.einsum("km,km->m", L[i, :j], L[j, :j])
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
        s = B[i] - np.einsum("jm,jkm->km", L[i, :i], C[:i])
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
        s = C[i] - np.einsum("jm,jkm->km", L[i + 1 :, i], U[i + 1 :])
        U[i] = s / L[i, i]
    return U


def inverse_lower(L):
    """Inverses of a stack of lower triangular blocks, shape (q, q, m)."""
    q, _, m = L.shape
    eye = np.broadcast_to(np.eye(q)[:, :, None], (q, q, m))
    return solve_lower(L, np.ascontiguousarray(eye))


def congruence(T, A):
    """``T.T @ A[:, :, g] @ T`` for every block, with one fixed ``q x q`` T."""
    return np.einsum("ji,jkm,kl->ilm", T, A, T, optimize=True)


def left_multiply_transposed(T, B):
    """``T.T @ B[:, :, g]`` for every block, with one fixed ``q x q`` T."""
    return np.einsum("ji,jkm->ikm", T, B)


def left_multiply(T, B):
    """``T @ B[:, :, g]`` for every block, with one fixed ``q x q`` T."""
    return np.einsum("ij,jkm->ikm", T, B)


def gram(C):
    """``sum_g C[:, :, g].T @ C[:, :, g]``: a ``k x k`` matrix from (q, k, m)."""
    q, k, m = C.shape
    flat = C.transpose(1, 0, 2).reshape(k, q * m)
    return flat @ flat.T


def log_diagonal_sum(L):
    """``sum(log(diag))`` over a stack of blocks, shape (q, q, m)."""
    q = L.shape[0]
    return float(sum(np.log(L[i, i]).sum() for i in range(q)))
