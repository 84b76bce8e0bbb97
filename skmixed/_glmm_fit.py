"""The outer optimisation of a generalised model, in glmer's two stages.

1. ``theta`` alone, with ``beta`` and ``u`` both from penalised IRLS
   (glmer's ``nAGQ = 0`` stage): a cheap, robust start.
2. ``theta`` and ``beta`` together, ``u`` from penalised IRLS at fixed
   ``beta``, on the Laplace (or adaptive Gauss-Hermite) deviance.

Each stage is L-BFGS-B on central-difference gradients: the deviance is a
smooth function of the parameters when the inner loop converges to rounding,
which :func:`._pirls.pirls` does (Newton steps converge quadratically), and
the inner loop is warm-started from the last point.  At the optimum, the
Hessian by second differences (lme4's ``deriv12``) gives the covariance of
the fixed effects (lme4's ``vcov(use.hessian = TRUE)``) and the convergence
checks of :mod:`._convergence`.
"""

from dataclasses import dataclass, field

import numpy as np
from scipy import linalg, optimize

from ._agq_gradient import agq_gradient
from ._convergence import Convergence, _eigenvalue_message, _scaled_gradient
from ._covariance import ThetaLayout, lower_indices
from ._crossed_gradient import applies as crossed_applies
from ._laplace_gradient import has_exact_gradient, laplace_gradient
from ._linalg import single_threaded_blas
from ._optimize import FitLog
from ._pirls import agq_deviance, laplace_deviance, pirls

GRADIENT_STEP = 1e-5  # central differences, relative to max(|x|, 1)
FORWARD_STEP = 1e-6  # forward differences (first stage)
HESSIAN_STEP = 1e-4  # lme4's deriv12 delta
# Parameter vectors whose PIRLS fails (invalid theta) get this penalty.
FAILED = 1e30
# A line-search failure at a point whose scaled gradient is below this is
# convergence (see _stationary).
STATIONARY_TOLERANCE = 1e-4


@dataclass
class GlmmOutcome:
    """The optimum: parameters, modes there, criterion and diagnostics."""

    theta: np.ndarray
    beta: np.ndarray
    value: float  # -2 log-likelihood (Laplace or quadrature)
    modes: object
    converged: bool
    message: str
    n_iter: int
    hessian: np.ndarray | None  # in (theta, beta), scaled units
    gradient: np.ndarray | None
    log: FitLog = field(default_factory=FitLog)


class _Criterion:
    """The deviance at (theta, beta), with the inner loop warm-started.

    The warm start is the modes (and, in the first stage, the fixed effects)
    of the best point so far, not of the last one: a line search's long
    trial step (theta in the hundreds) can put the modes far out, and every
    later evaluation starting there would have to come all the way back.
    """

    def __init__(self, rows, n_points, log):
        self.rows, self.n_points, self.log = rows, n_points, log
        self.k = sum(lower_indices(f.n_terms, f.diagonal)[0].size for f in rows.factors)
        self.u = None
        self.beta = None
        self.best = np.inf

    def start_from(self, modes):
        """Warm-start from ``modes`` (a new stage: its criterion is new)."""
        if modes is not None:
            self.u, self.beta = modes.u, modes.beta
        self.best = np.inf

    def modes(self, theta, beta, joint):
        start = self.beta if joint else beta
        # A line search's long step (theta in the hundreds) can overflow the
        # working weights; such a point's deviance is not finite and FAILED
        # below, so NumPy's overflow warnings are no news for the user.
        with np.errstate(over="ignore", invalid="ignore"):
            return pirls(self.rows, theta, start, self.u, joint=joint)

    def _keep(self, modes, value, joint):
        """The modes of the best point so far start the next evaluations."""
        if value < self.best:
            self.best, self.u = value, modes.u
            if joint:
                self.beta = modes.beta

    def deviance(self, modes):
        if modes is None:
            return FAILED
        if self.n_points > 1:
            value = agq_deviance(self.rows, modes, self.n_points)
        else:
            value = laplace_deviance(modes)
        return value if np.isfinite(value) else FAILED

    def stage1(self, theta):
        modes = self.modes(theta, None, joint=True)
        value = self.deviance(modes)
        self._keep(modes, value, joint=True)
        self._record(theta, value)
        return value

    def stage2(self, x):
        theta, beta = x[: self.k], x[self.k :]
        modes = self.modes(theta, beta, joint=False)
        value = self.deviance(modes)
        self._keep(modes, value, joint=False)
        self._record(theta, value)
        return value

    def stage2_with_gradient(self, x):
        """The deviance and its exact gradient (see :mod:`._laplace_gradient`)."""
        theta, beta = x[: self.k], x[self.k :]
        modes = self.modes(theta, beta, joint=False)
        value = self.deviance(modes)
        self._keep(modes, value, joint=False)
        self._record(theta, value)
        if value >= FAILED:
            return value, np.zeros(x.size)
        if self.n_points > 1:
            return value, agq_gradient(self.rows, theta, beta, modes, self.n_points)
        return value, laplace_gradient(self.rows, theta, beta, modes)

    def _record(self, theta, value):
        self.log.thetas.append(np.array(theta, dtype=float))
        self.log.values.append(float(value))


def central_gradient(f, x, step=GRADIENT_STEP):
    """Central-difference gradient of ``f`` at ``x``."""
    g = np.empty(x.size)
    for i in range(x.size):
        h = step * max(abs(x[i]), 1.0)
        e = np.zeros(x.size)
        e[i] = h
        g[i] = (f(x + e) - f(x - e)) / (2.0 * h)
    return g


def hessian(f, x, step=HESSIAN_STEP):
    """Second differences of ``f`` at ``x`` (lme4's ``deriv12``)."""
    k = x.size
    f0 = f(x)
    h = step * np.maximum(np.abs(x), 1.0)
    H = np.empty((k, k))
    for i in range(k):
        e_i = np.zeros(k)
        e_i[i] = h[i]
        H[i, i] = (f(x + e_i) - 2.0 * f0 + f(x - e_i)) / h[i] ** 2
        for j in range(i):
            e_j = np.zeros(k)
            e_j[j] = h[j]
            H[i, j] = H[j, i] = (
                f(x + e_i + e_j)
                - f(x + e_i - e_j)
                - f(x - e_i + e_j)
                + f(x - e_i - e_j)
            ) / (4.0 * h[i] * h[j])
    return H


def forward_gradient(f, x, f0, step=FORWARD_STEP):
    """Forward-difference gradient of ``f`` at ``x`` where ``f(x) = f0``."""
    g = np.empty(x.size)
    for i in range(x.size):
        h = step * max(abs(x[i]), 1.0)
        e = np.zeros(x.size)
        e[i] = h
        g[i] = (f(x + e) - f0) / h
    return g


def gradient_jacobian(gradient, x, g0, step=HESSIAN_STEP):
    """Forward differences of an exact gradient (``g0`` at ``x``), symmetrised.

    The truncation error, of the order of the step (1e-4), is far below
    what the standard errors read from the Hessian are reported to.
    """
    k = x.size
    H = np.empty((k, k))
    for i in range(k):
        h = step * max(abs(x[i]), 1.0)
        e = np.zeros(k)
        e[i] = h
        H[:, i] = (gradient(x + e) - g0) / h
    return (H + H.T) / 2.0


def _minimize(f, x0, lower, max_iter, rough=False, exact=None):
    """L-BFGS-B on finite-difference gradients; the result.

    ``rough``: forward differences and a looser stop, for glmer's first
    stage, which only finds a start for the second.  ``exact``: a function
    returning the value and the exact gradient, used instead.
    """
    bounds = [(lo if np.isfinite(lo) else None, None) for lo in lower]

    def value_and_gradient(x):
        if exact is not None:
            return exact(x)
        value = f(x)
        if rough:
            return value, forward_gradient(f, x, value)
        return value, central_gradient(f, x)

    options = {"maxiter": max_iter, "ftol": 1e-15, "gtol": 1e-7}
    if rough:
        options.update(ftol=1e-10, gtol=1e-5)
    return optimize.minimize(
        value_and_gradient,
        x0,
        jac=True,
        method="L-BFGS-B",
        bounds=bounds,
        options=options,
    )


# Values a zero diagonal entry of theta is probed at, smallest first.
FACE_PROBES = (1e-3, 1e-2, 0.1, 0.3, 1.0, 3.0)
MAX_FACE_ROUNDS = 3


def _leave_faces(criterion, result, theta_lower, lower, max_iter, exact=None):
    """Restart from off a boundary face when the deviance is lower there.

    The deviance is even in every column of ``T``, so its derivative in a
    diagonal entry of theta is exactly zero where that entry is zero: a
    gradient method that reaches the bound stays there whatever the optimum.
    Probe each such entry at values off the face (beta and the rest of theta
    kept) and restart from the best lower point, as the linear fit does.
    Where the entries below it in its column are not zero, the way off the
    face may be towards a negative entry, which the bound forbids: the same
    point as the positive entry with that column's lower part negated (the
    evenness again), so that is probed too.
    """
    below = _below_diagonal(criterion.rows.factors)
    for _ in range(MAX_FACE_ROUNDS):
        x, value = result.x, result.fun
        on_face = np.flatnonzero(
            np.isfinite(theta_lower) & (np.abs(x[: theta_lower.size]) < 1e-4)
        )
        best = None
        for i in on_face:
            signs = (1.0, -1.0) if np.any(x[below[i]] != 0) else (1.0,)
            for probe in FACE_PROBES:
                for sign in signs:
                    trial = x.copy()
                    trial[i] = probe
                    trial[below[i]] *= sign
                    trial_value = criterion.stage2(trial)
                    if trial_value < value - 1e-8 * (abs(value) + 1.0):
                        best, value = trial, trial_value
        if best is None:
            return result
        result = _minimize(criterion.stage2, best, lower, max_iter, exact=exact)
    return result


def _below_diagonal(factors):
    """Per index of theta: the indices of the entries below it in T's column."""
    below, offset = {}, 0
    for f in factors:
        rows, cols = lower_indices(f.n_terms, f.diagonal)
        for j in range(rows.size):
            below[offset + j] = offset + np.flatnonzero(
                (cols == cols[j]) & (rows > rows[j])
            )
        offset += rows.size
    return below


def fit_glmm(rows, beta0, n_points=1, max_iter=1000):
    """Both stages and the diagnostics at the optimum: a :class:`GlmmOutcome`.

    BLAS runs on one thread: its calls here are many and small (products of a
    few columns), where threads cost more than they save.
    """
    with single_threaded_blas():
        return _fit_glmm(rows, beta0, n_points, max_iter)


def _fit_glmm(rows, beta0, n_points, max_iter):
    log = FitLog()
    criterion = _Criterion(rows, n_points, log)
    p = rows.X.shape[1]
    if not rows.factors:  # a generalised linear model: IRLS alone is exact
        modes = pirls(rows, np.zeros(0), beta0, joint=True)
        value = -2.0 * modes.loglik
        criterion._record(np.zeros(0), value)
        return GlmmOutcome(
            np.zeros(0),
            modes.beta,
            value,
            modes,
            modes.converged,
            "IRLS",
            0,
            None,
            np.zeros(0),
            log,
        )
    layout = ThetaLayout.from_factors(rows.factors)
    theta_lower = layout.lower
    theta0 = np.where(np.isfinite(theta_lower), 1.0, 0.0)
    criterion.beta = beta0
    exact = (
        criterion.stage2_with_gradient if has_exact_gradient(rows, n_points) else None
    )
    if exact is None or (len(rows.factors) > 1 and not crossed_applies(rows)):
        first = _minimize(criterion.stage1, theta0, theta_lower, max_iter, rough=True)
        theta_start, first_iter = first.x, first.nit
    else:
        # With a gradient as cheap as a deviance (one factor, or one-term
        # factors: see _crossed_gradient) the second stage needs no more than
        # a start: the modes and fixed effects of penalised IRLS at theta0.
        # The dense gradient of other designs costs more: the first stage's
        # cheap start pays there.
        theta_start, first_iter = theta0, 0
    criterion.start_from(criterion.modes(theta_start, None, joint=True))
    x0 = np.concatenate([theta_start, criterion.beta])
    lower = np.concatenate([theta_lower, np.full(p, -np.inf)])
    second = _minimize(criterion.stage2, x0, lower, max_iter, exact=exact)
    second = _leave_faces(criterion, second, theta_lower, lower, max_iter, exact)
    x = second.x
    value = criterion.stage2(x)
    modes = criterion.modes(x[: criterion.k], x[criterion.k :], joint=False)
    if exact is None:
        H = hessian(criterion.stage2, x)
        g = central_gradient(criterion.stage2, x)
    else:  # central differences of the exact gradient
        g = exact(x)[1]
        H = gradient_jacobian(lambda z: exact(z)[1], x, g)
    criterion.modes(x[: criterion.k], x[criterion.k :], joint=False)  # restore
    converged, message = bool(second.success), str(second.message)
    if not converged and _stationary(g, H, lower, x):
        # L-BFGS-B's line search fails where the deviance is flat to
        # rounding: at the optimum, which the gradient there confirms.
        converged = True
        message += " (at a stationary point: the scaled gradient is below 1e-4)"
    return GlmmOutcome(
        x[: criterion.k],
        x[criterion.k :],
        value,
        modes,
        converged,
        message,
        int(first_iter + second.nit),
        H,
        g,
        log,
    )


def _stationary(g, H, lower, x, tol=STATIONARY_TOLERANCE):
    """Whether ``x`` is a minimum to the gradient's and Hessian's accuracy.

    The Newton decrement's components ``R^{-T} g`` (``H = R'R``), over the
    parameters off their bounds, are below ``tol`` (lme4's convergence check
    uses 2e-3): the deviance is within ``tol^2`` of its minimum.
    """
    free = ~(np.isfinite(lower) & (x <= lower + 1e-8))
    if not np.any(free):
        return True
    try:
        R = linalg.cholesky(H[np.ix_(free, free)], lower=False)
    except (linalg.LinAlgError, ValueError):
        return False
    scaled = linalg.solve_triangular(R, g[free], trans="T", lower=False)
    return bool(np.all(np.isfinite(scaled)) and np.abs(scaled).max() < tol)


def glmm_convergence(outcome, names, interior, to_data_units):
    """lme4's ``checkConv`` from the outcome's Hessian and a gradient there."""
    H = outcome.hessian
    k = H.shape[0]
    d = np.asarray(to_data_units, dtype=float)
    gradient = outcome.gradient * d
    hessian_data = H * np.outer(d, d)
    index = np.flatnonzero(interior)
    scaled = np.full(k, np.nan)
    messages, ok = [], True
    if index.size:
        scaled[index], message = _scaled_gradient(
            hessian_data[np.ix_(index, index)], gradient[index]
        )
        if message:
            messages.append(message)
            ok = False
        eigen = _eigenvalue_message(H[np.ix_(index, index)], [names[i] for i in index])
        if eigen:
            messages.append(eigen)
            ok = False
    eigenvalues = (
        linalg.eigvalsh(hessian_data[np.ix_(index, index)])
        if index.size
        else np.zeros(0)
    )
    return Convergence(
        list(names),
        gradient,
        scaled,
        hessian_data,
        eigenvalues,
        interior,
        messages,
        ok,
        outcome.converged,
        outcome.message,
    )
