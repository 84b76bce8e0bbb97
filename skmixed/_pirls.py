"""Penalised iteratively reweighted least squares: the conditional modes.

At a given ``theta`` (and, in glmer's second stage, given ``beta``), the
conditional modes ``u`` of the spherical random effects maximise
``log p(y | u) - |u|^2 / 2``.  Each Newton step is a penalised weighted least
squares problem with the IRLS working response and weights: exactly the
linear model's problem, so the step reuses its cross-products
(:func:`._design.sufficient_statistics`) and its blocked Cholesky
factorisation (:func:`._objective.factorize`), one factor block-diagonal and
the others coupled sparsely.  Steps are halved while they do not decrease the
penalised deviance (lme4's ``pwrssUpdate``).

The factor of ``Lambda' Z' W Z Lambda + I`` at the modes gives the Laplace
approximation of the marginal likelihood (:func:`laplace_deviance`) and, for
one scalar random effect, the scale of adaptive Gauss-Hermite quadrature
(:func:`agq_deviance`).
"""

from dataclasses import dataclass

import numpy as np
from scipy import linalg, sparse

from ._design import (
    FirstFactorStats,
    OtherFactorStats,
    SufficientStatistics,
    _stacked_columns,
    block_cross_products,
    column_pair_positions,
    weight_columns,
)
from ._objective import _conditional_modes, factorize, split_theta

PIRLS_TOLERANCE = 1e-12  # relative rise of the penalised deviance a step may make
# Converged when a full Newton step would move no parameter more than this:
# Newton's quadratic convergence puts the modes within its square of exact,
# and the factor (at the weights one step back) within it of the modes'.
STEP_TOLERANCE = 1e-9
PIRLS_MAX_ITER = 100
MAX_HALVINGS = 30


@dataclass
class Rows:
    """The rows of a generalised model, fixed for the whole fit.

    ``X`` holds the fixed-effect columns (the intercept's ones included),
    ``Zs`` per factor its random-effect columns (None: ones), ``codes`` per
    factor the level of each row; factors in optimisation order.
    """

    X: np.ndarray
    y: np.ndarray
    weights: np.ndarray
    offset: np.ndarray
    codes: list
    Zs: list
    factors: list
    family: object
    log_constant: float = 0.0  # the part of log p(y | u) free of the parameters
    _others: object = None  # the later factors' cross-product structure
    _sparse_Z: object = None  # Z (n x Q), for the crossed gradient

    @property
    def n(self):
        return self.y.shape[0]

    def statistics(self, W, root, WtW):
        """The cross-products of ``W`` (weighted columns) at weights ``root^2``.

        The first factor's per-level sums are a few ``bincount``; the later
        factors' sparse products reuse their pattern (:class:`OtherProducts`),
        which does not change from one step of penalised IRLS to the next.
        """
        stats = SufficientStatistics(n=self.n, WtW=WtW, first=None, others=None)
        if not self.factors:
            return stats
        Z1 = weight_columns(self.Zs[0], root)
        stats.first = FirstFactorStats(
            *block_cross_products(self.codes[0], Z1, W, self.factors[0].n_levels)
        )
        if len(self.factors) > 1:
            if self._others is None:
                self._others = OtherProducts(self.codes, self.Zs, self.factors, self.n)
            stats.others = self._others.statistics(W, root)
        return stats


class OtherProducts:
    """``Z2'Z1``, ``Z2'Z2`` and ``Z2'W`` at any row weights, pattern kept.

    Each product is a sum over rows of ``w_i`` times a fixed product of two
    unweighted columns, accumulated into a fixed place: the places are found
    once, and every new set of weights costs one ``bincount`` per matrix.
    """

    def __init__(self, codes, Zs, factors, n):
        first, Q1 = _stacked_columns(codes[:1], Zs[:1], factors[:1], n)
        other, Q2 = _stacked_columns(codes[1:], Zs[1:], factors[1:], n)
        self.Q1, self.Q2, self.n = Q1, Q2, n
        self.other = other
        keys = np.concatenate([r * Q1 + c for r, _ in other for c, _ in first])
        self.values21 = np.concatenate([zr * zc for _, zr in other for _, zc in first])
        unique, self.place21 = np.unique(keys, return_inverse=True)
        self.copies21 = len(other) * len(first)
        counts = np.bincount(unique // Q1, minlength=Q2)
        self.indptr = np.concatenate([[0], np.cumsum(counts)])
        self.indices = (unique % Q1).astype(np.int32)
        self.nnz = unique.size
        keys22 = np.concatenate([r * Q2 + c for r, _ in other for c, _ in other])
        self.values22 = np.concatenate([zr * zc for _, zr in other for _, zc in other])
        self.place22 = keys22
        self.copies22 = len(other) ** 2
        template = sparse.csr_matrix(
            (np.ones(self.nnz), self.indices, self.indptr), shape=(Q2, Q1)
        )
        self.positions = column_pair_positions(template)

    def statistics(self, W, root):
        w = root * root
        data = np.bincount(
            self.place21,
            weights=np.tile(w, self.copies21) * self.values21,
            minlength=self.nnz,
        )
        Z2tZ1 = sparse.csr_matrix(
            (data, self.indices, self.indptr), shape=(self.Q2, self.Q1)
        )
        Z2tZ2 = np.bincount(
            self.place22,
            weights=np.tile(w, self.copies22) * self.values22,
            minlength=self.Q2 * self.Q2,
        ).reshape(self.Q2, self.Q2)
        Z2tW = np.zeros((self.Q2, len(W)))
        for r, zr in self.other:
            zr = root if zr is None else zr * root
            for j, column in enumerate(W):
                Z2tW[:, j] += np.bincount(r, weights=zr * column, minlength=self.Q2)
        others = OtherFactorStats(Z2tZ1, Z2tZ2, Z2tW)
        others._pairs = self.positions.pairs(data)
        return others


@dataclass
class Modes:
    """The outcome of PIRLS at one ``theta``."""

    u: list  # per factor, (m, q) spherical conditional modes
    beta: np.ndarray
    eta: np.ndarray  # linear predictor, offset included
    fact: object  # factorisation at the final weights
    loglik: float  # log p(y | u) at the modes
    penalty: float  # |u|^2
    converged: bool

    @property
    def penalized_deviance(self):
        return -2.0 * self.loglik + self.penalty


def random_part(rows, b):
    """``Z b`` for per-factor random effects ``b`` of shape (m, q)."""
    eta = np.zeros(rows.n)
    for codes, Z, b_f in zip(rows.codes, rows.Zs, b):
        for t, column in enumerate(Z):
            effect = b_f[:, t].take(codes)
            eta += effect if column is None else effect * column
    return eta


def spherical_to_effects(u, fact_T):
    """``b = Lambda u`` per factor."""
    return [u_f @ T.T for u_f, T in zip(u, fact_T)]


def _linear_predictor(rows, beta, u, Ts):
    return rows.X @ beta + rows.offset + random_part(rows, spherical_to_effects(u, Ts))


def _penalized(rows, eta, u):
    """``log p(y | u)`` without its constant, and ``|u|^2``."""
    loglik = float(rows.family.loglik(rows.y, eta, rows.weights).sum())
    penalty = float(sum(np.sum(u_f * u_f) for u_f in u))
    return loglik, penalty


def _weighted_step(rows, theta, eta, beta, joint):
    """One penalised weighted least-squares solve at the weights of ``eta``.

    Returns the factorisation and the full Newton step's ``beta`` and ``u``.
    With ``joint`` the fixed effects are solved for too (glmer's first
    stage); otherwise they stay at ``beta`` and enter as an offset.
    """
    z, w = rows.family.working(rows.y, eta, rows.weights)
    z -= rows.offset
    root = np.sqrt(w)
    if joint:
        W = np.empty((rows.n, rows.X.shape[1] + 1), order="F")
        np.multiply(rows.X, root[:, None], out=W[:, :-1])
        W[:, -1] = z * root
    else:
        W = ((z - rows.X @ beta) * root)[:, None]
    columns = [W[:, j] for j in range(W.shape[1])]  # contiguous: Fortran order
    WtW = W.T @ W
    # Only the residual's diagonal entry decides whether the Schur complement
    # is positive definite, and it changes neither beta nor u: raise it so a
    # perfectly fitted working response cannot fail the factorisation.
    WtW[-1, -1] += 1.0 + abs(WtW[-1, -1])
    stats = rows.statistics(columns, root, WtW)
    fact = factorize(stats, rows.factors, theta)
    if fact is None:
        return None, None, None
    p = fact.R.shape[0] - 1
    new_beta = _solve_beta(fact.R, p) if joint else beta
    if not rows.factors:
        return fact, new_beta, []
    u = _conditional_modes(fact, new_beta if joint else np.zeros(0), rows.factors)
    return fact, new_beta, u


def _solve_beta(R, p):
    return linalg.solve_triangular(R[:p, :p].T, R[p, :p], lower=False)


def pirls(rows, theta, beta, u=None, joint=False, eta=None, tol=PIRLS_TOLERANCE):
    """Conditional modes at ``theta`` by penalised IRLS (lme4's ``pwrssUpdate``).

    Parameters
    ----------
    rows : Rows
    theta : ndarray
        Relative covariance parameters, factors in optimisation order.
    beta : ndarray
        The fixed effects (the start, when ``joint``).
    u : list of ndarray, optional
        Starting modes (a warm start from the previous ``theta``); zero when
        None.
    joint : bool
        Solve for ``beta`` too, as glmer's first stage (``nAGQ = 0``).
    eta : ndarray, optional
        A starting linear predictor for the first step's weights (the
        family's start from the data); by default that of ``beta`` and
        ``u``.

    Returns
    -------
    modes : Modes or None
        None when a factorisation fails (invalid ``theta``).
    """
    Ts = _factor_blocks(rows, theta)
    if u is None:
        u = [np.zeros((f.n_levels, f.n_terms)) for f in rows.factors]
    if eta is None:
        eta = _linear_predictor(rows, beta, u, Ts)
        loglik, penalty = _penalized(rows, eta, u)
        pdev = -2.0 * loglik + penalty
    else:  # a start from the data (glmer's mustart): take the first step
        pdev = np.inf
    converged = False
    fact = None
    for _ in range(PIRLS_MAX_ITER):
        step_fact, beta_full, u_full = _weighted_step(rows, theta, eta, beta, joint)
        if step_fact is None:
            if fact is None:
                return None
            # The weights degenerated (fitted means numerically 0 or 1, as
            # under complete separation): stop at the last point factorised.
            break
        fact = step_fact
        if np.isfinite(pdev) and _negligible(beta_full - beta, u_full, u):
            converged = True  # the factor is at the weights of the modes
            break
        step = 1.0
        for _ in range(MAX_HALVINGS):
            new_beta = beta + step * (beta_full - beta)
            new_u = [a + step * (b - a) for a, b in zip(u, u_full)]
            new_eta = _linear_predictor(rows, new_beta, new_u, Ts)
            new_loglik, new_penalty = _penalized(rows, new_eta, new_u)
            new_pdev = -2.0 * new_loglik + new_penalty
            if np.isfinite(new_pdev) and new_pdev <= pdev + tol * (abs(pdev) + 1.0):
                break
            step /= 2.0
        else:
            break  # no step decreases the penalised deviance: at the modes
        beta, u, eta = new_beta, new_u, new_eta
        loglik, penalty, pdev = new_loglik, new_penalty, new_pdev
    return Modes(u, beta, eta, fact, loglik + rows.log_constant, penalty, converged)


def _negligible(d_beta, u_new, u):
    """Whether a full Newton step would move nothing but rounding."""
    largest = max(
        [float(np.abs(d_beta).max(initial=0.0))]
        + [float(np.abs(a - b).max(initial=0.0)) for a, b in zip(u_new, u)]
    )
    return largest <= STEP_TOLERANCE


def fixed_effect_precision(rows, theta, modes):
    """``R_X R_X'``: the fixed effects' block of the joint PIRLS system.

    Its inverse is the covariance of beta given theta (lme4's ``vcov`` with
    ``use.hessian = FALSE``).
    """
    fact, _, _ = _weighted_step(rows, theta, modes.eta, modes.beta, joint=True)
    p = rows.X.shape[1]
    if fact is None:  # weights degenerate at the modes (complete separation)
        if modes.fact is None or modes.fact.R.shape[0] != p + 1:
            return np.eye(p) * np.finfo(float).eps  # no information
        fact = modes.fact  # the joint factor of the last IRLS step
    RX = fact.R[:p, :p]
    return RX @ RX.T


def _factor_blocks(rows, theta):
    return split_theta(np.asarray(theta, dtype=float), rows.factors)


def laplace_deviance(modes):
    """``-2 log`` of the Laplace approximation of the marginal likelihood.

    ``-2 log p(y | u) + |u|^2 + log |L|^2`` at the conditional modes, lme4's
    ``glmResp::Laplace``.
    """
    return modes.penalized_deviance + modes.fact.logdet_L


def agq_deviance(rows, modes, n_points):
    """``-2 log`` of the marginal likelihood by adaptive Gauss-Hermite.

    For one grouping factor with one term: the integral over each level's
    random effect is centred at its mode and scaled by its conditional SD
    ``1 / L_ii`` (lme4's ``nAGQ``).  One point is the Laplace approximation.
    """
    nodes, weights = np.polynomial.hermite_e.hermegauss(n_points)
    log_weights = np.log(weights / np.sqrt(2.0 * np.pi)) + 0.5 * nodes**2
    (codes,), (Z,), (factor,) = rows.codes, rows.Zs, rows.factors
    lam = float(modes.fact.T[0][0, 0])
    u = modes.u[0][:, 0]
    scale = 1.0 / modes.fact.L11[0, 0, :]
    column = 1.0 if Z[0] is None else Z[0]
    fixed = modes.eta - lam * u.take(codes) * column
    m = factor.n_levels
    terms = np.empty((n_points, m))
    for k, z in enumerate(nodes):
        u_k = u + scale * z
        eta = fixed + lam * u_k.take(codes) * column
        ll = rows.family.loglik(rows.y, eta, rows.weights)  # constant: below
        terms[k] = np.bincount(codes, weights=ll, minlength=m) - 0.5 * u_k**2
    terms += log_weights[:, None]
    # The level's integral, on the log scale; the normal density's constant
    # cancels against the 1/phi(z) of the rule (see log_weights).
    log_integral = np.log(scale) + _logsumexp(terms)
    return float(-2.0 * (log_integral.sum() + rows.log_constant))


def _logsumexp(terms):
    top = terms.max(axis=0)
    return top + np.log(np.exp(terms - top).sum(axis=0))
