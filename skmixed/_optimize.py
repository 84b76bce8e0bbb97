"""Bounded minimisation of the profiled deviance over theta.

The deviance is smooth in the covariance ``Sigma = T T'`` of each factor but
not in theta alone: it is even in every column of ``T``, so where a diagonal
entry of ``T`` is zero (a variance of zero, a singular ``Sigma``) its
gradient in that entry is exactly zero whatever the optimum.  A gradient
method can therefore stop on a boundary face although the optimum lies off
it.  The search here is built so that this cannot pass silently:

1. L-BFGS-B (exact gradient) from the caller's start (lme4's identity);
   when that run fails, also from the further starts the caller gives
   (lme4's start in the units of the data, moment estimates), keeping the
   best;
2. on every face the best point touches (a factor whose ``Sigma`` is
   singular), the optimality test that ``Sigma`` space allows: the
   criterion's gradient ``G`` in ``Sigma`` must be positive semi-definite
   there.  Each eigenvector of a negative eigenvalue is a way off the face;
   probes along them by steps from small to large, then (when none is lower)
   larger probes along the null directions and their correlations with the
   range, restart L-BFGS-B from any lower point, until none is;
3. a derivative-free bounded polish (Powell) of a run whose line search
   failed;
4. variance parameters within rounding of zero set to exactly zero, and
   ``T`` written in its canonical form (zero columns for a singular
   ``Sigma``) when that is no worse.

Points where the deviance is not finite (a failed factorisation, theta in
the 1e8s) are given a large finite value, so that the line search backs off
instead of computing with infinities.
"""

import warnings
from dataclasses import dataclass, field, replace

import numpy as np
from scipy import linalg, optimize

from ._covariance import ThetaLayout, semidefinite_cholesky
from ._objective import make_deviance, make_deviance_and_gradient
from ._starts import data_units_start, identity_start, moment_start

SINGULAR_TOLERANCE = 1e-4  # lme4's isSingular tolerance on theta
# Moves of Sigma off a face (scaled units), smallest first: the first-order
# gain along a descent direction shows only at steps below the curvature's.
FACE_STEPS = (1e-5, 1e-4, 1e-3, 1e-2, 0.1, 0.5, 2.0)
FAR_STEPS = (0.1, 0.5, 2.0)  # the same, along directions not known to descend
MAX_FACE_ROUNDS = 5
FACE_TRIAL = 3  # iterations of a trial run on a singular face (singular_faces)
IMPROVEMENT = 1e-10  # relative decrease that counts as a better point
INSIDE = 1e-3  # every direction gets this much of a probe's step
PROJECTED_STEPS = (1e-6, 1e-5, 1e-4, 1e-3, 1e-2, 0.1, 1.0)  # a |G| / |Sigma|
NEAR_FACE = 1e-4  # Sigma's smallest eigenvalue, relative, that counts as near a face


@dataclass
class FitLog:
    """Every evaluation of the objective: theta and the value."""

    thetas: list = field(default_factory=list)
    values: list = field(default_factory=list)

    def record(self, deviance):
        """Wrap ``deviance`` (returning a value, or a value and a gradient)."""

        def logged(theta):
            result = deviance(theta)
            self.thetas.append(np.array(theta, dtype=float))
            value = result[0] if isinstance(result, tuple) else result
            self.values.append(float(value))
            return result

        return logged


@dataclass
class OptimizeOutcome:
    theta: np.ndarray
    lower: np.ndarray
    value: float
    converged: bool
    n_iter: int
    message: str
    log: FitLog
    exact_fit: bool = False  # the fixed effects fit y exactly: no optimum


@dataclass
class _Point:
    theta: np.ndarray
    value: float
    converged: bool
    message: str


def optimize_design(design, reml, max_iter=1000, start=None):
    """The minimum of a design's REML criterion or ML deviance over theta.

    The one search every fit goes through (the estimator, refits, the ML
    refits of likelihood-ratio tests and profiles).  It runs from ``start``
    (default lme4's identity start) and, when that run fails, also from
    lme4's identity start, lme4's start in the units of the data and moment
    estimates; the faces of the best point are then checked.
    """
    if design.stats.krylov is not None:  # the Krylov solver path
        from ._objective_krylov import optimize_krylov

        return optimize_krylov(design, reml, max_iter, start)
    layout = ThetaLayout.from_factors(design.factors)
    # Callables: a further start is computed only when it is needed.
    starts = [
        lambda: identity_start(design.factors),
        lambda: data_units_start(design),
        lambda: moment_start(design),
    ]
    if start is None:
        start, starts = identity_start(design.factors), starts[1:]
    return minimize_deviance(
        make_deviance(design, reml),
        start,
        layout.lower,
        gradient=make_deviance_and_gradient(design, reml),
        max_iter=max_iter,
        layout=layout,
        starts=starts,
    )


def minimize_deviance(
    deviance,
    theta0,
    lower,
    *,
    gradient=None,
    max_iter=1000,
    tol=1e-10,
    layout=None,
    starts=(),
):
    """Minimise ``deviance`` over theta subject to ``theta >= lower``.

    Parameters
    ----------
    deviance : callable
        theta -> value (inf where invalid).
    theta0 : ndarray
        The first start.
    lower : ndarray
        Lower bounds (0 for the diagonal entries of ``T``, -inf elsewhere).
    gradient : callable, optional
        theta -> (value, exact gradient); finite differences otherwise.
    max_iter : int
        Iterations of each quasi-Newton run.
    layout : ThetaLayout, optional
        How theta splits into factors; enables the boundary-face checks.
    starts : sequence of ndarray or callable
        Further starts (or functions returning one, called only when the
        start is needed), run when the first run fails; the best point wins.

    Returns
    -------
    OptimizeOutcome
        ``converged`` is False when the best run ran out of iterations or
        failed, never silently.
    """
    log = FitLog()
    theta0 = np.asarray(theta0, dtype=float)
    if theta0.size == 0:
        # No random effects: one direct solve, counted as one iteration.
        value = log.record(deviance)(theta0)
        return OptimizeOutcome(
            theta0, lower, value, True, 1, "no covariance parameters", log
        )
    search = _Search(deviance, gradient, np.asarray(lower, float), max_iter, tol, log)
    # Inside the search, non-finite values are replaced (see _Search.value);
    # NumPy's floating-point warnings there say nothing the user can act on.
    with np.errstate(all="ignore"), warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        best = search.from_starts([theta0])
        if not best.converged:
            best = search.from_starts([theta0, *starts], best)
        if layout is not None:
            best = search.leave_faces(best, layout)
            lower_face = search.singular_faces(best, layout)
            if lower_face is not best:
                best = search.leave_faces(lower_face, layout)
        if not best.converged:
            best = search.polish(best)
        theta, value = snap_to_boundary(search.value, best.theta, best.value, lower)
        if layout is not None:
            theta, value = search.canonical(theta, value, layout)
    return OptimizeOutcome(
        theta,
        np.asarray(lower),
        float(deviance(theta)) if np.isfinite(value) else value,
        best.converged,
        search.n_iter,
        best.message,
        log,
    )


class _Search:
    """The runs of one minimisation: the functions, bounds and counters."""

    def __init__(self, deviance, gradient, lower, max_iter, tol, log):
        self.f = log.record(deviance)
        self.fg = None if gradient is None else log.record(gradient)
        self.lower = lower
        self.bounds = optimize.Bounds(lower, np.full_like(lower, np.inf))
        self.max_iter, self.tol = max_iter, tol
        self.n_iter = 0
        self.barrier = None  # a large finite value standing in for inf

    def value(self, theta):
        return self._finite(self.f(theta))

    def value_and_gradient(self, theta):
        value, grad = self.fg(theta)
        if not np.isfinite(value) or not np.all(np.isfinite(grad)):
            return self._finite(np.inf), np.zeros_like(theta)
        return self._finite(value), grad

    def _finite(self, value):
        if np.isfinite(value):
            if self.barrier is None:
                self.barrier = abs(value) * 1e3 + 1e6
            return float(value)
        return self.barrier if self.barrier is not None else 1e300

    def better(self, candidate, best):
        if best is None:
            return True
        return candidate.value < best.value - IMPROVEMENT * (1.0 + abs(best.value))

    def from_starts(self, starts, best=None):
        """The best of ``best`` and runs from each start (the first is done)."""
        seen = []
        for start in starts:
            start = start() if callable(start) else start
            start = np.maximum(np.asarray(start, dtype=float), self.lower)
            if any(np.allclose(start, s, rtol=1e-3, atol=1e-6) for s in seen):
                continue
            seen.append(start)
            if best is not None and len(seen) == 1:
                continue  # the run from the first start gave ``best``
            point = self.quasi_newton(start)
            if self.better(point, best):
                best = point
        return best

    def quasi_newton(self, theta0, max_iter=None):
        """L-BFGS-B from ``theta0``, polished by Powell if its search failed.

        ``max_iter`` (default the search's) below the search's: a short
        trial run, never polished.
        """
        use_gradient = self.fg is not None
        budget = self.max_iter if max_iter is None else min(max_iter, self.max_iter)
        result = optimize.minimize(
            self.value_and_gradient if use_gradient else self.value,
            theta0,
            jac=use_gradient,
            method="L-BFGS-B",
            bounds=self.bounds,
            options={
                "maxiter": budget,
                "ftol": self.tol,
                "gtol": 1e-7,
                "maxls": 50,
            },
        )
        self.n_iter += int(result.nit)
        point = _Point(
            result.x, float(result.fun), bool(result.success), str(result.message)
        )
        if not point.converged and result.nit < budget == self.max_iter:
            point = self.polish(point)
        return point

    def polish(self, point):
        """Bounded Powell from ``point``: derivative-free, blind to no face."""
        result = optimize.minimize(
            self.value,
            point.theta,
            method="Powell",
            bounds=self.bounds,
            options={"maxiter": self.max_iter, "xtol": 1e-8, "ftol": self.tol},
        )
        self.n_iter += int(result.nit)
        if result.fun <= point.value:
            message = f"{point.message}; Powell: {result.message}"
            converged = point.converged or bool(result.success)
            return _Point(result.x, float(result.fun), converged, message)
        return point

    def leave_faces(self, best, layout):
        """Restart from points off the faces of ``best`` while that lowers f."""
        for _ in range(MAX_FACE_ROUNDS):
            start = self.probe_faces(best, layout)
            if start is None:
                break
            point = self.quasi_newton(start.theta)
            if point.value > start.value:  # the run did not move: keep the start,
                # but its verdict on convergence is the run's
                point = replace(start, converged=point.converged, message=point.message)
            if not self.better(point, best):
                break
            best = point
        return best

    def singular_faces(self, best, layout):
        """The best of ``best`` and runs on the singular face of each factor.

        For a correlated factor whose ``Sigma`` at ``best`` is well inside
        the cone, a run from ``Sigma`` without its smallest eigenvalue (a
        correlation of +-1, a zero column of ``T``): the criterion can have
        a lower optimum on that face than the interior one a search from
        lme4's start stops at, with higher values everywhere between (seen:
        8 groups of 3, ML, 0.33 lower on the face; lme4 stopped inside too).
        On the face the gradient in the zero column vanishes, so the run
        optimises within it unless it leaves for a lower point.
        """
        Ts = layout.split(best.theta)
        found = best
        for k, (T, diagonal) in enumerate(zip(Ts, layout.diagonal)):
            if diagonal or T.shape[0] < 2 or _near_face(T, NEAR_FACE):
                continue
            eigenvalues, vectors = linalg.eigh(T @ T.T)
            kept = vectors[:, 1:] * eigenvalues[1:]
            C = semidefinite_cholesky(kept @ vectors[:, 1:].T, tol=1e-12)
            if C is None:  # pragma: no cover - a projection is semi-definite
                continue
            # A short trial first: most faces are no lower, and a full run
            # on each would double the cost of every correlated fit.
            trial = self.quasi_newton(
                layout.join(Ts[:k] + [C] + Ts[k + 1 :]), FACE_TRIAL
            )
            if not self.better(trial, found):
                continue
            point = self.quasi_newton(trial.theta)
            found = point if self.better(point, trial) else trial
        return found

    def probe_faces(self, best, layout):
        """A start off a face of ``best`` from which f can be lowered, or None.

        First along the descent directions of the criterion's gradient in
        ``Sigma`` (a complete first-order test): the lowest trial, or, when
        the curvature hides the first-order gain at every step, the smallest
        step along the steepest direction (a gradient run from there goes
        down).  Then, when ``G`` shows no descent, larger steps along the
        null directions and their correlations with the range, which can find
        a lower point farther off the face.
        """
        Ts = layout.split(best.theta)
        found, first = None, None
        for directions in (True, False):
            for k, (T, diagonal) in enumerate(zip(Ts, layout.diagonal)):
                # Near a face too: there the theta-gradient shrinks with the
                # small diagonal entry and L-BFGS-B can stall short of the
                # optimum, while the gradient in Sigma still shows the way.
                if not _near_face(T, NEAR_FACE if directions else None):
                    continue
                if directions:
                    trials = self.descent_trials(Ts, k, layout)
                else:
                    trials = _off_face(T @ T.T, diagonal, None, FAR_STEPS)
                for trial in trials:
                    theta = layout.join(Ts[:k] + [trial] + Ts[k + 1 :])
                    point = _Point(theta, self.value(theta), False, "face probe")
                    first = first or point
                    if self.better(point, found or best):
                        found = point
            if found is not None or (directions and first is not None):
                return found or first
        return None

    def sigma_gradient(self, Ts, k, layout):
        """The criterion's gradient ``G`` in factor ``k``'s ``Sigma`` (or None).

        The criterion is smooth in ``Sigma``.  ``G`` is read from the exact
        theta-gradient at a full-rank ``T`` next to the point
        (``df = 2 <G T, dT>``), where ``T`` can be inverted.
        """
        if self.fg is None:
            return None
        Sigma = Ts[k] @ Ts[k].T
        diagonal = layout.diagonal[k]
        nearby = Sigma + 1e-8 * max(1.0, np.trace(Sigma)) * np.eye(len(Sigma))
        T = (
            np.diag(np.sqrt(np.diag(nearby)))
            if diagonal
            else linalg.cholesky(nearby, lower=True)
        )
        _, gradient = self.fg(layout.join(Ts[:k] + [T] + Ts[k + 1 :]))
        return _sigma_gradient(gradient[layout.block(k)], T, diagonal)

    def descent_trials(self, Ts, k, layout):
        """Factors ``T`` of ``Sigma_k`` moved the ways ``G`` says f falls.

        On a face (``Sigma`` singular) a point stationary within the face is
        optimal exactly when ``G`` is positive semi-definite; each eigenvector
        ``u`` of a negative eigenvalue is a way off it (``Sigma + s u u'``).
        Near a face, where the theta-gradient shrinks with a small diagonal
        entry of ``T`` and L-BFGS-B can stall, projected gradient steps in
        ``Sigma`` (``Sigma - a G``, negative eigenvalues clipped) make the
        moves that are short in ``Sigma`` but long in theta.
        """
        G = self.sigma_gradient(Ts, k, layout)
        if G is None:
            return
        Sigma, diagonal = Ts[k] @ Ts[k].T, layout.diagonal[k]
        eigenvalues, vectors = linalg.eigh(G)
        negative = eigenvalues < -1e-8 * max(1.0, np.abs(eigenvalues).max())
        descent = [vectors[:, i] for i in np.flatnonzero(negative)]
        yield from _off_face(Sigma, diagonal, descent, FACE_STEPS)
        yield from _projected_steps(Sigma, G, diagonal)

    def canonical(self, theta, value, layout):
        """``T`` with zero columns where ``Sigma`` is singular, if no worse."""
        Ts = layout.split(theta)
        canonical = []
        for T, diagonal in zip(Ts, layout.diagonal):
            C = None if diagonal else semidefinite_cholesky(T @ T.T, tol=1e-16)
            canonical.append(T if C is None else C)
        trial = layout.join(canonical)
        if np.array_equal(trial, theta):
            return theta, value
        trial_value = self.value(trial)
        if trial_value <= value + 1e-10 * (1.0 + abs(value)):
            return trial, min(value, trial_value)
        return theta, value


def _sigma_gradient(g, T, diagonal):
    """The symmetric ``G`` with ``g = lower entries of 2 G T`` (theta's order).

    None where the system cannot be solved (a non-finite gradient).
    """
    q = T.shape[0]
    if not np.all(np.isfinite(g)):
        return None
    if diagonal:
        return np.diag(g / (2.0 * np.diag(T)))
    rows, cols = np.tril_indices(q)
    order = np.lexsort((rows, cols))  # theta: the lower triangle by columns
    rows, cols = rows[order], cols[order]
    basis = []
    for a, b in zip(rows, cols):
        E = np.zeros((q, q))
        E[a, b] = E[b, a] = 1.0
        basis.append((2.0 * E @ T)[rows, cols])
    solution = np.linalg.lstsq(np.array(basis).T, g, rcond=None)[0]
    G = np.zeros((q, q))
    G[rows, cols] = solution
    G[cols, rows] = solution
    return G


def _off_face(Sigma, diagonal, descent, steps):
    """Lower triangular factors of ``Sigma`` moved off its null space.

    Each trial adds ``step * v v'`` (and a touch of every direction, so that
    the trial lies inside and a gradient run from it can move freely).  The
    directions ``v``: the ``descent`` directions of the criterion's gradient
    in ``Sigma`` (``_Search.descent_trials``) when given; otherwise each
    null direction ``n``, the normalised sums and differences of two, and
    ``n + t r`` for each direction ``r`` of the range and ``t`` of either
    sign, which give the new variance a correlation with the others.
    """
    q = Sigma.shape[0]
    if descent is None:
        null, range_ = _null_space(Sigma)
        descent = _face_directions(null, range_, diagonal) if null.size else []
    for v in descent:
        v = v / np.linalg.norm(v)
        for step in steps:
            # A touch of every direction keeps the trial inside (the step
            # along v must not be paid for by the others: G may be large).
            moved = Sigma + step * (np.outer(v, v) + INSIDE * np.eye(q))
            if diagonal:
                yield np.diag(np.sqrt(np.clip(np.diag(moved), 0.0, None)))
            else:
                yield np.linalg.cholesky(moved)


def _face_directions(null, range_, diagonal):
    """The directions ``v`` of :func:`_off_face`."""
    k = null.shape[1]
    directions = [null[:, i] for i in range(k)]
    for i in range(k):
        for j in range(i):
            directions += [null[:, i] + null[:, j], null[:, i] - null[:, j]]
    if diagonal:  # no correlations to give
        return directions
    for i in range(k):
        for r in range_.T:
            directions += [null[:, i] + t * r for t in (-2.0, -0.5, 0.5, 2.0)]
    return directions


def _projected_steps(Sigma, G, diagonal):
    """``T`` of ``Sigma - a G`` made positive semi-definite, for a range of a."""
    scale = max(1.0, float(np.abs(np.diag(Sigma)).max()))
    norm = float(np.abs(G).max())
    if not np.isfinite(norm) or norm == 0.0:
        return
    q = Sigma.shape[0]
    for fraction in PROJECTED_STEPS:
        moved = Sigma - (fraction * scale / norm) * G
        if diagonal:
            moved = np.diag(np.clip(np.diag(moved), 0.0, None))
        else:
            eigenvalues, vectors = linalg.eigh(moved)
            moved = (vectors * np.clip(eigenvalues, 0.0, None)) @ vectors.T
        moved += 1e-9 * scale * np.eye(q)  # inside, for the gradient runs
        if diagonal:
            yield np.diag(np.sqrt(np.diag(moved)))
            continue
        try:
            yield np.linalg.cholesky(moved)
        except np.linalg.LinAlgError:  # rounding left it not quite definite
            continue


def _null_space(Sigma):
    """The null and range directions of ``Sigma`` (eigenvectors, columns)."""
    eigenvalues, vectors = linalg.eigh(Sigma)
    scale = max(1.0, float(eigenvalues.max(initial=0.0)))
    on_face = eigenvalues <= (SINGULAR_TOLERANCE**2) * scale
    return vectors[:, on_face], vectors[:, ~on_face]


def _near_face(T, tolerance=None):
    """Whether ``Sigma = T T'`` is singular, or nearly (relative ``tolerance``)."""
    eigenvalues = linalg.eigvalsh(T @ T.T)
    tolerance = SINGULAR_TOLERANCE**2 if tolerance is None else tolerance
    return eigenvalues[0] <= tolerance * max(1.0, eigenvalues[-1])


def snap_to_boundary(f, theta, value, lower):
    """Set near-zero variance parameters to exactly zero if that is no worse."""
    theta = np.array(theta, dtype=float)
    near = np.flatnonzero((lower == 0) & (theta < SINGULAR_TOLERANCE) & (theta != 0))
    for i in near:
        trial = theta.copy()
        trial[i] = 0.0
        trial_value = f(trial)
        if trial_value <= value + 1e-10 * max(1.0, abs(value)):
            theta, value = trial, min(value, trial_value)
    return theta, value


def is_singular(theta, lower, tol=SINGULAR_TOLERANCE):
    """lme4's ``isSingular``: a bounded parameter within ``tol`` of its bound."""
    theta = np.asarray(theta)
    return bool(np.any((lower == 0) & (theta < tol)))
