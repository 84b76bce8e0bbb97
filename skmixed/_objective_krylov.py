"""The profiled deviance, its gradient and the estimates by Krylov methods.

For models with several grouping factors that each have one random-effect
term (crossed or nested random intercepts, or one slope per factor), with
levels too many for the exact path's dense block of the later factors.
Nothing of size ``Q2 x Q2`` is formed: every product is sparse over the
non-zeros of ``Z'Z``.

With ``Lambda = diag(lambda)`` (one ``lambda_f`` per factor), ``A = Z'Z``
and ``B = Z'W``, the penalised matrix ``M = Lambda A Lambda + I`` has a
diagonal first block ``M11 = D1 = 1 + lambda_1^2 a_1`` (the largest
factor's levels never meet).  It is eliminated exactly: with
``c = lambda_1^2 / D1`` and ``G = A22 - A21 diag(c) A12``, the Schur
complement onto the later factors is ``S = Lambda2 G Lambda2 + I`` and

- ``log|M| = sum log D1 + log|S|``;
- ``M^{-1} Lambda' B`` from solves with ``S`` (block PCG);
- ``log|S|`` by stochastic Lanczos quadrature from the same PCG runs
  (probe columns ``z ~ N(0, P)``);
- its gradient: ``tr(S^{-1} dS)`` by trace estimates with the same solves
  for the first factor; for a later factor f, ``2 (m_f - tr_f(S^{-1})) /
  lambda_f`` with the block trace of ``S^{-1}`` estimated as the diagonal
  (``E[(S^{-1} z - P^{-1} z) * P^{-1} z] = diag(S^{-1} - P^{-1})``), far
  less noisy; exact for the factors with fewest levels (``EXACT_LEVELS``),
  whose ``S^{-1} e_j`` the same PCG run solves for.

The preconditioner of ``S`` is its diagonal ``p`` corrected on a coarse
space ``U`` where ``Lambda Z'`` nearly vanishes, which a diagonal leaves as
outlying small eigenvalues: a constant added to one intercept factor's
effects and taken from another's leaves ``Z b`` unchanged (``U`` holds the
later intercept factors' indicators ``1_f``), and the same within each level
of a small factor that a large one is nested in (its level indicators and
their shares of the large factor's levels; :func:`coarse_basis`).  With
``W`` an orthonormal basis of ``p^{1/2} U`` and ``C = W' p^{-1/2} S p^{-1/2}
W``, ``P = p^{1/2} (I + W (C - I) W') p^{1/2}``.  Both ``tr(P^{-1} S)`` and
``tr(P^{-1} dS)`` are then known exactly and serve as control variates: the
stochastic parts that remain are of second order in ``P^{-1/2} S P^{-1/2} -
I``.  At the optimum the reported criterion's ``log|S|`` is exact when
``S`` is small enough to factor densely (``EXACT_LOG_DET_MAX``).

The probe vectors are drawn once per fit from ``random_state`` (common
random numbers), so the estimated criterion is a deterministic, smooth
function of theta.
"""

from dataclasses import dataclass, field

import numpy as np
from scipy import linalg, sparse

from . import _krylov as kr
from ._linalg import allowed_threads, limited_blas

DEFAULT_PROBES = 16
MAX_PROBES = 256
SOLVE_TOL = 1e-10  # relative residual of the solves with Lambda' B
PROBE_TOL = 1e-4  # relative residual of the probe solves (SLQ, traces)
MAX_CG_ITER = 2000
# At the optimum, the log-determinant of a Schur complement up to this size
# is computed exactly (a dense Cholesky factor, once per fit: 3 s at 5,000
# columns, 200 MB; the reported criterion is then the exact path's).
EXACT_LOG_DET_MAX = 6000
# Larger ones: the reported value's probes (see _more_probes).
REPORT_SE = 6e-4  # the criterion within 1e-3 at 1.7 standard errors
REPORT_MAX_PROBES = 1024
REPORT_BLOCK = 128
# ... while S is small enough for the exact path to run at all (its dense
# block): beyond, the probes would cost several fits (5M rows, 50,000 later
# levels: 90 s on a 26 s fit) for a value nothing can check.
REPORT_MAX_COLUMNS = 10_000
# The optimum's standard error from the probes (the probe noise of the
# gradient through the criterion's curvature) that the probes must reach:
# 1e-4 relative to max(theta, 1), or, where the data say less, 0.5% of
# theta's statistical standard error.  More probes are drawn until it does.
THETA_NOISE = 1e-4
STILL = 1e-5
NOISE_FRACTION = 5e-3


@dataclass
class KrylovOptions:
    """The Krylov path's settings for one fit (attached to the statistics).

    ``seed`` fixes the probe vectors; ``n_probes`` may grow during the fit
    (:func:`optimize_krylov`).  ``n_threads``: the threads its sparse
    products and its one dense factor may take (the user's limit, read
    before the fit sets its own for the exact path's small matrices).
    ``_cache`` keeps the sparse problem built from the statistics, not
    pickled.
    """

    seed: int
    n_threads: int = 1
    n_probes: int = DEFAULT_PROBES
    solve_tol: float = SOLVE_TOL
    probe_tol: float = PROBE_TOL
    max_iter: int = MAX_CG_ITER
    _cache: tuple | None = field(default=None, repr=False, compare=False)

    def __getstate__(self):
        state = self.__dict__.copy()
        state["_cache"] = None
        return state

    def probe_tolerance(self):
        """The probe solves' relative residual at the current number of probes.

        ``probe_tol`` at the default number, tightened as the square root of
        the probes beyond it: the probes' noise falls as one over that root,
        and the solves' truncation error (a bias no probe averages away)
        must stay as far below it.
        """
        return self.probe_tol * min(1.0, np.sqrt(DEFAULT_PROBES / self.n_probes))


# Later factors with at most this many levels span the coarse space of the
# preconditioner (each level, and its share of every larger later factor's
# levels), up to COARSE_MAX vectors in all.
COARSE_LEVELS = 64
COARSE_MAX = 128
# Later factors with levels up to this many in all (among the coarse ones)
# get exact gradients and conditional variances: one more right-hand side
# per level in every PCG run.
EXACT_LEVELS = 64
# A later factor's log-determinant gradient comes from its block trace of
# S^{-1} (divided by lambda_f) from this lambda_f on, else from the forms.
DIAGONAL_FORM_MIN = 1e-2
# Below this lambda_f both estimates are made and combined (see
# logdet_gradient); above it the block trace alone, far less noisy there.
FORMS_MAX = 0.3


def coarse_basis(problem, factors):
    """The coarse space ``U`` (Q2, r) of the preconditioner, or None.

    Where ``Lambda Z'`` nearly vanishes, ``S`` has small eigenvalues that a
    diagonal preconditioner leaves in place: a constant moved from one
    intercept factor to another (the indicator ``1_f`` of a later intercept
    factor), and, when a large later factor is (nearly) nested in a small
    one (InstEval's lecturers in departments), a constant moved between a
    level ``j`` of the small factor and the large factor's levels within it.
    ``U`` holds, for each later factor with at most ``COARSE_LEVELS`` levels,
    its level indicators ``e_j`` and, on every larger later factor, the
    share of each of that factor's levels' rows in level ``j``
    (``A22[b, j] / A22[b, b]``); and ``1_f`` for the other intercept factors.
    """
    bounds, a22 = problem.bounds, problem.a22
    sizes = np.diff(bounds)
    small, total = [], 0
    for f in np.argsort(sizes, kind="stable"):
        width = sizes[f] * (1 + sum(sizes > sizes[f]))
        if sizes[f] <= COARSE_LEVELS and total + width <= COARSE_MAX:
            small.append(f)
            total += width
    columns = []
    A22 = problem.A22.tocsc()
    for f in small:
        cols = np.arange(bounds[f], bounds[f + 1])
        E = np.zeros((problem.Q2, cols.size))
        E[cols, np.arange(cols.size)] = 1.0
        columns.append(E)
        for b in np.flatnonzero(sizes > sizes[f]):
            rows = slice(bounds[b], bounds[b + 1])
            share = np.zeros((problem.Q2, cols.size))
            block = A22[:, cols][rows].toarray()
            share[rows] = block / np.maximum(a22[rows], np.finfo(float).tiny)[:, None]
            columns.append(share)
    for f, factor in enumerate(factors):
        if f not in small and factor.intercept:
            one = np.zeros((problem.Q2, 1))
            one[bounds[f] : bounds[f + 1]] = 1.0
            columns.append(one)
    # The smallest of them (up to EXACT_LEVELS levels in all) get exact
    # gradients and conditional variances from S^{-1} e_j.
    problem.small, exact, total = [], [], 0
    for f in sorted(small, key=lambda f: sizes[f]):
        if total + sizes[f] <= EXACT_LEVELS:
            exact.append(int(f))
            total += sizes[f]
    problem.small = sorted(exact)
    return np.hstack(columns) if columns else None


def supports_krylov(factors):
    """Whether the Krylov path handles these factors (several, one term each)."""
    return len(factors) >= 2 and all(f.n_terms == 1 for f in factors)


def problem_for(stats, factors):
    """The :class:`KrylovProblem` of these statistics (built once, cached)."""
    options = stats.krylov
    key = (id(stats), options.n_probes)
    if options._cache is None or options._cache[0] != key:
        options._cache = (key, KrylovProblem(stats, factors, options), stats)
    return options._cache[1]


class KrylovProblem:
    """Everything that does not depend on theta: sparse ``A``, ``B``, probes."""

    def __init__(self, stats, factors, options):
        first, others = stats.first, stats.others
        self.options = options
        self.n, self.WtW = stats.n, stats.WtW
        self.a1 = first.ZtZ[0, 0].astype(float)  # (Q1,)
        self.B1 = np.ascontiguousarray(first.ZtW[0].T)  # (Q1, k)
        # The coupling's products, every iteration's cost, on the cores the
        # user allows (threads that share a busy core only take turns).
        A21 = sparse.csr_matrix(others.Z2tZ1)
        self.A21 = kr.RowBands(A21, options.n_threads)
        self.A12 = kr.RowBands(A21.T, options.n_threads)
        self.A21_sq = A21.multiply(A21).tocsr()
        self.A12_sq = self.A21_sq.T.tocsr()
        self.A22 = sparse.csr_matrix(others.Z2tZ2)
        self.a22 = self.A22.diagonal()
        self.B2 = np.asarray(others.Z2tW, dtype=float)
        sizes = [f.n_levels for f in factors[1:]]
        self.bounds = np.concatenate([[0], np.cumsum(sizes)])
        self.factor_of = np.repeat(np.arange(len(sizes)), sizes)  # (Q2,)
        self.n_factors = len(factors)
        self.Q2 = int(self.bounds[-1])
        self.U = coarse_basis(self, factors[1:])
        self.small_indicators = np.zeros((self.Q2, 0))
        if self.small:
            cols = np.concatenate(
                [np.arange(self.bounds[f], self.bounds[f + 1]) for f in self.small]
            )
            self.small_indicators = np.zeros((self.Q2, cols.size))
            self.small_indicators[cols, np.arange(cols.size)] = 1.0
        rng = np.random.default_rng(options.seed)
        self.probes = rng.standard_normal((self.Q2, options.n_probes))


@dataclass
class KrylovFactorization:
    """The Krylov path's state at one theta (what :func:`krylov_factorize` gives).

    ``T``, ``R`` and ``logdet_L`` as in :class:`._objective.Factorization`
    (``logdet_L`` is the stochastic estimate of ``log|M|``); the rest is
    kept for the gradient and the estimates.
    """

    T: list
    R: np.ndarray
    logdet_L: float
    logdet_se: float  # standard error of logdet_L from the probes
    V1: np.ndarray  # (Q1, k): M^{-1} Lambda' B, first factor's rows
    V2: np.ndarray  # (Q2, k): the later factors' rows
    lam: np.ndarray  # (n_factors,)
    state: object = None  # _ThetaState
    Xp: np.ndarray | None = None  # (Q2, probes) S^{-1} z
    Wp: np.ndarray | None = None  # (Q2, probes) P^{-1} z
    Xe: np.ndarray | None = None  # (Q2, levels of the small factors) S^{-1} e_j
    n_iter: int = 0


class _ThetaState:
    """The operators at one theta: S, its preconditioner, their pieces."""

    def __init__(self, problem, lam):
        pr = self.problem = problem
        self.lam = lam
        self.l1 = lam[0]
        self.lam2 = lam[1:][pr.factor_of]
        self.D1 = 1.0 + self.l1**2 * pr.a1
        self.c = self.l1**2 / self.D1
        self.diag_G = pr.a22 - pr.A21_sq @ self.c
        self.p = 1.0 + self.lam2**2 * self.diag_G
        self._deflation()

    def G(self, V):
        """``G V`` with ``G = A22 - A21 diag(c) A12``."""
        pr = self.problem
        return pr.A22 @ V - pr.A21 @ (self.c[:, None] * (pr.A12 @ V))

    def S(self, V):
        """``S V = V + Lambda2 G Lambda2 V``."""
        lam2 = self.lam2[:, None]
        return V + lam2 * self.G(lam2 * V)

    def _deflation(self):
        """The coarse correction of the diagonal preconditioner (see module)."""
        pr = self.problem
        self.Y = None
        self.log_det_C = 0.0
        self.trace_offset = 0.0  # tr(P^{-1} S) - Q2
        if pr.U is None:
            return
        root_p = np.sqrt(self.p)
        W, singular, _ = linalg.svd(root_p[:, None] * pr.U, full_matrices=False)
        W = W[:, singular > 1e-10 * singular[0]]  # an orthonormal basis
        Y = W / root_p[:, None]  # p^{-1/2} W
        # S Y by its pieces, kept for the exact traces' Y' dS_f Y.
        self.coarse_products = self._coupling_products(Y)
        C = Y.T @ (Y + self.lam2[:, None] * self.coarse_products[1])
        C = 0.5 * (C + C.T)
        mu, E = linalg.eigh(C)
        if mu.min() <= 0:  # pragma: no cover - S is positive definite
            return
        self.W, self.Y = W, Y
        self.root_p = root_p
        self.C_inv_minus_I = (E / mu) @ E.T - np.eye(mu.size)
        self.C_root_minus_I = (E * np.sqrt(mu)) @ E.T - np.eye(mu.size)
        self.log_det_C = float(np.log(mu).sum())
        self.trace_offset = float(mu.size - mu.sum())

    def P_inv(self, V):
        """``P^{-1} V``."""
        out = V / self.p[:, None]
        if self.Y is not None:
            out += self.Y @ (self.C_inv_minus_I @ (self.Y.T @ V))
        return out

    def P_root(self, G):
        """``R G`` with ``P = R R'``: probes ``z = R g ~ N(0, P)``."""
        if self.Y is None:
            return np.sqrt(self.p)[:, None] * G
        inner = G + self.W @ (self.C_root_minus_I @ (self.W.T @ G))
        return self.root_p[:, None] * inner

    def log_det_P(self):
        return float(np.log(self.p).sum()) + self.log_det_C

    def derivative_forms(self, L, R, later=True):
        """Per factor f, the column-wise forms ``L_i' (dS / d lambda_f) R_i``.

        Returns an array (n_factors, k).  ``dS/d lambda_1 = -Lambda2 A21
        diag(dc) A12 Lambda2`` with ``dc = 2 lambda_1 / D1^2``;
        ``dS/d lambda_f = E_f G Lambda2 + Lambda2 G E_f`` (``E_f`` the
        indicator of factor f's columns).  With ``later=False`` only the
        first factor's row is computed (the others are NaN): the later
        factors' cost two products with ``G``, three times the first's.
        """
        pr, lam2 = self.problem, self.lam2[:, None]
        dc = 2.0 * self.l1 / self.D1**2
        AL, AR = pr.A12 @ (lam2 * L), pr.A12 @ (lam2 * R)
        out = np.full((pr.n_factors, L.shape[1]), np.nan)
        out[0] = -np.einsum("ij,ij->j", AL, dc[:, None] * AR)
        if not later:
            return out
        GL, GR = self.G(lam2 * L), self.G(lam2 * R)
        for f in range(pr.n_factors - 1):
            rows = slice(pr.bounds[f], pr.bounds[f + 1])
            out[f + 1] = np.einsum("ij,ij->j", L[rows], GR[rows]) + np.einsum(
                "ij,ij->j", GL[rows], R[rows]
            )
        return out

    def _coupling_products(self, Y):
        """``(A12 Lambda2 Y, G Lambda2 Y)``: the products both uses of Y need."""
        pr = self.problem
        lam_Y = self.lam2[:, None] * Y
        AY = pr.A12 @ lam_Y
        return AY, pr.A22 @ lam_Y - pr.A21 @ (self.c[:, None] * AY)

    def derivative_matrix_forms(self, Y, products=None):
        """Per factor, the matrix ``Y' dS_f Y`` (n_factors, r, r).

        ``products``: :meth:`_coupling_products` of ``Y``, if known.
        """
        pr = self.problem
        dc = 2.0 * self.l1 / self.D1**2
        AY, GY = self._coupling_products(Y) if products is None else products
        out = np.empty((pr.n_factors, Y.shape[1], Y.shape[1]))
        out[0] = -AY.T @ (dc[:, None] * AY)
        for f in range(pr.n_factors - 1):
            rows = slice(pr.bounds[f], pr.bounds[f + 1])
            half = Y[rows].T @ GY[rows]
            out[f + 1] = half + half.T
        return out

    def exact_preconditioned_traces(self):
        """``tr(P^{-1} dS_f)`` for every factor, exactly."""
        pr = self.problem
        dc = 2.0 * self.l1 / self.D1**2
        traces = np.empty(pr.n_factors)
        traces[0] = -np.sum(self.lam2**2 * (pr.A21_sq @ dc) / self.p)
        for f in range(pr.n_factors - 1):
            rows = slice(pr.bounds[f], pr.bounds[f + 1])
            traces[f + 1] = np.sum(
                2.0 * self.lam[f + 1] * self.diag_G[rows] / self.p[rows]
            )
        if self.Y is not None:
            forms = self.derivative_matrix_forms(self.Y, self.coarse_products)
            traces += np.einsum("ab,fba->f", self.C_inv_minus_I, forms)
        return traces


def krylov_factorize(stats, factors, theta):
    """The Krylov path's :class:`KrylovFactorization` at ``theta`` (or None)."""
    problem = problem_for(stats, factors)
    lam = np.asarray(theta, dtype=float)
    if not np.all(np.isfinite(lam)):
        return None
    st = _ThetaState(problem, lam)
    k = problem.B1.shape[1]
    rhs_W = st.lam2[:, None] * (problem.B2 - problem.A21 @ (st.c[:, None] * problem.B1))
    Z = st.P_root(problem.probes)
    E = problem.small_indicators  # small factors: their S^{-1} e_j exactly
    B = np.hstack([rhs_W, E, Z])
    opts = problem.options
    tol = np.r_[
        np.full(k + E.shape[1], opts.solve_tol),
        np.full(Z.shape[1], opts.probe_tolerance()),
    ]
    result = kr.block_pcg(st.S, st.P_inv, B, tol, max_iter=opts.max_iter)
    V2 = result.X[:, :k]
    l1 = st.l1
    V1 = (l1 * problem.B1 - l1 * (problem.A12 @ (st.lam2[:, None] * V2))) / st.D1[
        :, None
    ]
    CtC = l1 * problem.B1.T @ V1 + (st.lam2[:, None] * problem.B2).T @ V2
    schur = problem.WtW - 0.5 * (CtC + CtC.T)
    R, info = linalg.lapack.dpotrf(schur, lower=1, clean=1)
    if info != 0 or not np.all(np.isfinite(np.diag(R))):
        return None
    start = k + E.shape[1]
    probe_columns = range(start, start + Z.shape[1])
    log_det_hat, samples = kr.stochastic_log_det(
        result, probe_columns, exact_trace_minus_n=st.trace_offset
    )
    logdet = float(np.log(st.D1).sum()) + st.log_det_P() + log_det_hat
    if not np.isfinite(logdet):
        return None
    Xe, Xp = result.X[:, k:start], result.X[:, start:]
    return KrylovFactorization(
        T=[np.array([[v]]) for v in lam],
        R=R,
        logdet_L=logdet,
        logdet_se=float(kr.standard_error(samples)),
        V1=V1,
        V2=V2,
        lam=lam,
        state=st,
        Xp=Xp,
        Wp=st.P_inv(Z),
        Xe=Xe,
        n_iter=result.n_iter,
    )


def logdet_gradient(fact):
    """``d log|M| / d lambda_f`` and its standard error from the probes.

    Stochastic (control-variate trace estimates) for the first factor and
    the large later ones; exact for the smallest later factors (at most
    ``EXACT_LEVELS`` levels in all), whose
    ``S^{-1} e_j`` the PCG run solved for: ``tr(S^{-1} dS_f) = 2 sum_j
    (Lambda2 G e_j)' S^{-1} e_j`` over their levels ``j``.  The small
    factors' information is small, so probe noise there would move their
    estimates most.
    """
    st, pr = fact.state, fact.state.problem
    traces = st.exact_preconditioned_traces()
    # The small later factors take their exact value (below); the forms
    # are needed for the others below FORMS_MAX only.
    later = np.ones(pr.n_factors - 1, dtype=bool)
    later[list(pr.small)] = False
    lam_later = np.asarray(st.lam[1:])
    samples = st.derivative_forms(
        fact.Xp - fact.Wp, fact.Wp, later=bool(np.any(later & (lam_later < FORMS_MAX)))
    )  # (factors, probes)
    # Later factors, a second estimate: d log|M| / d lambda_f = 2 (m_f -
    # tr_f(S^{-1})) / lambda_f (from S^{-1} dS_f = 2 E_f (I - S^{-1}) E_f /
    # lambda_f in trace), with the block trace by the same control-variate
    # diagonal estimate as the conditional variances.  Which is less noisy
    # depends on lambda_f (the second divides by it): measured on three
    # designs, the second was 10 to 100 times less noisy at lambda_f = 1,
    # the forms 10 to 50 times less at 0.02, the two even between 0.1 and
    # 0.3.  Below FORMS_MAX both are computed from the same probes and each
    # probe's samples combined with the weight of least variance.
    diagonal = (fact.Xp - fact.Wp) * fact.Wp  # (Q2, probes)
    diag_P_inv = 1.0 / st.p
    if st.Y is not None:
        diag_P_inv = diag_P_inv + np.einsum("ia,ab,ib->i", st.Y, st.C_inv_minus_I, st.Y)
    for f in np.flatnonzero(later):
        lam = st.lam[f + 1]
        if lam < DIAGONAL_FORM_MIN:
            continue
        rows = slice(pr.bounds[f], pr.bounds[f + 1])
        m = pr.bounds[f + 1] - pr.bounds[f]
        block_trace = diag_P_inv[rows].sum() + diagonal[rows].sum(axis=0)
        by_trace = 2.0 * (m - block_trace) / lam
        if lam < FORMS_MAX:
            by_trace = _least_variance(traces[f + 1] + samples[f + 1], by_trace)
        samples[f + 1] = by_trace
        traces[f + 1] = 0.0
    gradient = traces + samples.mean(axis=1)
    se = kr.standard_error(samples.T)
    gradient[0] += np.sum(2.0 * st.l1 * pr.a1 / st.D1)
    start = 0
    for f in pr.small:
        size = pr.bounds[f + 1] - pr.bounds[f]
        E = pr.small_indicators[:, start : start + size]
        X = fact.Xe[:, start : start + size]
        LGE = st.lam2[:, None] * st.G(E)
        gradient[f + 1] = 2.0 * np.einsum("ij,ij->", LGE, X)
        se[f + 1] = 0.0
        start += size
    return gradient, se


def _least_variance(a, b):
    """Per-probe samples ``w a + (1 - w) b`` with the least variance.

    ``a`` and ``b`` are samples of two unbiased estimates of one quantity
    from the same probes; ``w`` (in [0, 1]) from their sample variances and
    covariance.
    """
    if a.size < 2:
        return 0.5 * (a + b)
    cov = np.cov(a, b)
    spread = cov[0, 0] + cov[1, 1] - 2.0 * cov[0, 1]
    w = 0.5 if spread <= 0 else np.clip((cov[1, 1] - cov[0, 1]) / spread, 0.0, 1.0)
    return w * a + (1.0 - w) * b


def krylov_gradient(fact, reml, n):
    """The criterion's gradient in theta (and the probe noise of it)."""
    from ._objective import _SchurDerivative

    st, pr = fact.state, fact.state.problem
    lam2 = st.lam2[:, None]
    U1 = pr.B1 - (pr.a1[:, None] * (st.l1 * fact.V1) + pr.A12 @ (lam2 * fact.V2))
    U2 = pr.B2 - (pr.A21 @ (st.l1 * fact.V1) + pr.A22 @ (lam2 * fact.V2))
    d_logdet, se = logdet_gradient(fact)
    schur = _SchurDerivative(fact.R, reml, n)
    blocks = [(U1, fact.V1)] + [
        (U2[a:b], fact.V2[a:b]) for a, b in zip(pr.bounds[:-1], pr.bounds[1:])
    ]
    gradient = np.array(
        [schur.scalar_derivative(d, U, V) for d, (U, V) in zip(d_logdet, blocks)]
    )
    return gradient, se


def krylov_estimates(fact, factors, n, reml):
    """beta, sigma, BLUPs (by PCG) and conditional variances (stochastic).

    At the optimum (the one factorisation the estimates are read from), the
    criterion's log-determinant is also refined: exact when the later
    factors' Schur complement is small enough to factor densely
    (:func:`refine_log_det`), so that the reported criterion carries no
    probe noise there.
    """
    from ._objective import Estimates, fixed_effects_from_factor

    refine_log_det(fact)
    beta, sigma2, beta_cov = fixed_effects_from_factor(fact.R, n, reml)
    p = beta.size
    u1 = fact.V1[:, p] - fact.V1[:, :p] @ beta
    u2 = fact.V2[:, p] - fact.V2[:, :p] @ beta
    var1, var2 = conditional_variances(fact)
    pr = fact.state.problem
    us = [u1] + [u2[a:b] for a, b in zip(pr.bounds[:-1], pr.bounds[1:])]
    vs = [var1] + [var2[a:b] for a, b in zip(pr.bounds[:-1], pr.bounds[1:])]
    b = [(lam * u)[:, None] for lam, u in zip(fact.lam, us)]
    cov = [(sigma2 * lam**2 * v)[:, None, None] for lam, v in zip(fact.lam, vs)]
    return Estimates(beta, beta_cov, float(np.sqrt(sigma2)), b, cov)


def refine_log_det(fact):
    """Replace ``fact.logdet_L`` by the exact value if ``S`` is small enough.

    ``S`` (``Q2 x Q2``) is formed by a sparse product and factored densely
    when ``Q2 <= EXACT_LOG_DET_MAX``, once per fit.  Larger ones keep the
    stochastic estimate, refined by more probes (:func:`_more_probes`; its
    standard error is ``fact.logdet_se``).
    """
    st = fact.state
    Q2 = st.problem.Q2
    if fact.logdet_se == 0.0:
        return
    if Q2 > EXACT_LOG_DET_MAX:
        if Q2 <= REPORT_MAX_COLUMNS:
            _more_probes(fact)
        return
    # Factored in single precision, in place, on the threads allowed (its only dense
    # step; four times faster than double): S = I + a positive semi-definite
    # part, so its Cholesky factor is well conditioned and log|S| comes out
    # within about 1e-7 of double precision's (tested against the exact path).
    S = dense_lower_schur(st)
    with limited_blas(st.problem.options.n_threads):
        L, info = linalg.lapack.spotrf(S, lower=1, overwrite_a=1)
    if info != 0:  # pragma: no cover - S is positive definite
        return
    log_diag = np.log(np.diag(L).astype(np.float64))
    fact.logdet_L = float(np.log(st.D1).sum() + 2.0 * log_diag.sum())
    fact.logdet_se = 0.0


def dense_lower_schur(st, chunk=500):
    """The lower triangle of ``S`` as a dense float32 array in Fortran order.

    ``S = I + Lambda2 (A22 - A21 diag(c) A12) Lambda2`` is formed a block
    of columns at a time, each by a sparse product of the rows at and below
    it (its cost is the pairs of later levels that share a first-factor
    level), written straight into the array LAPACK factors: never the whole
    nearly dense product as a sparse matrix (four times slower at 5,000
    columns, and several times the memory).  The blocks are shared among
    the threads allowed.  Only the lower triangle is meaningful (what LAPACK
    reads).
    """
    pr = st.problem
    Q2 = pr.Q2
    scaled = sparse.csr_matrix(sparse.diags(st.lam2) @ pr.A21.matrix)
    right = sparse.csc_matrix(sparse.diags(st.c) @ scaled.T)
    inner = sparse.csc_matrix(sparse.diags(st.lam2) @ pr.A22 @ sparse.diags(st.lam2))
    S = np.zeros((Q2, Q2), dtype=np.float32, order="F")

    def fill(a):
        b = min(a + chunk, Q2)
        block = inner[a:, a:b].toarray() - (scaled[a:] @ right[:, a:b]).toarray()
        S[a:, a:b] = block

    kr.run_threads(fill, range(0, Q2, chunk), pr.options.n_threads)
    S[np.diag_indices(Q2)] += np.float32(1.0)
    return S


def _more_probes(fact):
    """Refine the reported log-determinant with probes of its own, once.

    The fit's probes make the criterion's noise small against the
    differences the optimiser acts on, not against its absolute value: the
    reported criterion gets probes until its standard error is below
    ``REPORT_SE`` (at most ``REPORT_MAX_PROBES``), drawn from the fit's seed
    in blocks of ``REPORT_BLOCK`` (a block solve costs more than linearly in
    its columns), and pooled with the fit's.
    """
    st, pr = fact.state, fact.state.problem
    n_fit = pr.probes.shape[1]
    wanted = int(
        min(REPORT_MAX_PROBES, np.ceil(n_fit * (fact.logdet_se / REPORT_SE) ** 2))
    )
    if wanted <= n_fit:
        return
    opts = pr.options
    rng = np.random.default_rng([opts.seed, 1])  # apart from the fit's probes
    samples = []
    for start in range(n_fit, wanted, REPORT_BLOCK):
        size = min(REPORT_BLOCK, wanted - start)
        Z = st.P_root(rng.standard_normal((pr.Q2, size)))
        tol = np.full(size, opts.probe_tolerance())
        result = kr.block_pcg(st.S, st.P_inv, Z, tol, max_iter=opts.max_iter)
        samples.append(
            kr.stochastic_log_det(
                result, range(size), exact_trace_minus_n=st.trace_offset
            )[1]
        )
    samples = np.concatenate(samples)
    share = samples.size / (n_fit + samples.size)
    fit_part = fact.logdet_L - float(np.log(st.D1).sum()) - st.log_det_P()
    fact.logdet_L += share * (samples.mean() - fit_part)
    fact.logdet_se = float(
        np.hypot((1 - share) * fact.logdet_se, share * kr.standard_error(samples))
    )


def conditional_variances(fact):
    """Stochastic estimates of the diagonal of ``M^{-1}``: first, later rows.

    ``diag(S^{-1}) = diag(P^{-1}) + E[(S^{-1} z - P^{-1} z) * P^{-1} z]``
    for ``z ~ N(0, P)`` (the fit's probes), and for the first factor
    ``1 / D1 + diag(H S^{-1} H')`` with ``H = M11^{-1} M12``, the same way.
    The smallest later factors' (``EXACT_LEVELS``) are exact: ``S^{-1} e_j``
    was solved for.  Clipped at zero.
    """
    st, pr = fact.state, fact.state.problem
    lam2 = st.lam2[:, None]
    D = fact.Xp - fact.Wp
    later = 1.0 / st.p + np.mean(D * fact.Wp, axis=1)
    h = st.l1 / st.D1  # H = diag(h) A12 Lambda2

    def H(V):
        return h[:, None] * (pr.A12 @ (lam2 * V))

    first = 1.0 / st.D1 + h**2 * (pr.A12_sq @ (st.lam2**2 / st.p))
    first += np.mean(H(D) * H(fact.Wp), axis=1)
    if st.Y is not None:
        later += np.einsum("ia,ab,ib->i", st.Y, st.C_inv_minus_I, st.Y)
        HY = H(st.Y)
        first += np.einsum("ia,ab,ib->i", HY, st.C_inv_minus_I, HY)
    if fact.Xe is not None and fact.Xe.shape[1]:  # small factors: exact
        rows = np.flatnonzero(pr.small_indicators.any(axis=1))
        later[rows] = fact.Xe[rows, np.arange(rows.size)]
    return np.clip(first, 0.0, None), np.clip(later, 0.0, None)


# ---------------------------------------------------------------- the search


def _cached_evaluation(design, reml):
    """``theta -> (value, gradient, gradient standard error)``, memoised.

    The convergence checks after the search evaluate the same points as
    the noise check at its end (central differences of the gradient with
    the same steps): they are not recomputed.
    """
    stats, factors = design.stats, design.factors
    problem = problem_for(stats, factors)
    memo = problem.__dict__.setdefault("memo", {})

    def evaluate(theta):
        theta = np.asarray(theta, dtype=float)
        key = (reml, theta.tobytes())
        if key not in memo:
            fact = krylov_factorize(stats, factors, theta)
            if fact is None:
                memo[key] = (np.inf, np.zeros(theta.size), np.zeros(theta.size))
            else:
                from ._objective import objective

                gradient, se = krylov_gradient(fact, reml, stats.n)
                memo[key] = (objective(fact, stats.n, reml), gradient, se)
            if len(memo) > 64:
                memo.pop(next(iter(memo)))
        return memo[key]

    return evaluate


def make_cached_deviance_and_gradient(design, reml):
    """``theta -> (criterion, gradient)`` on the Krylov path, memoised."""
    evaluate = _cached_evaluation(design, reml)

    def value_and_gradient(theta):
        value, gradient, _ = evaluate(theta)
        return value, gradient

    return value_and_gradient


def theta_noise(design, reml, theta):
    """The standard error of the optimum that the probes' noise causes.

    The gradient's probe noise ``se`` (of ``d log|M|``; the rest of the
    gradient is exact) moves the root of the gradient by ``H^{-1} se``,
    with ``H`` the criterion's Hessian (central differences of the
    gradient, the points of the convergence checks).  Returns
    ``(standard errors, H)``; the parameters on their bound count zero.
    """
    from ._convergence import STEP

    evaluate = _cached_evaluation(design, reml)
    theta = np.asarray(theta, dtype=float)
    _, _, se = evaluate(theta)
    k = theta.size
    interior = theta >= 1e-4
    H = np.eye(k)
    for i in np.flatnonzero(interior):
        h = STEP * max(abs(theta[i]), 1.0)
        step = np.zeros(k)
        step[i] = h
        up, down = evaluate(theta + step)[1], evaluate(theta - step)[1]
        H[:, i] = (up - down) / (2.0 * h)
    H = 0.5 * (H + H.T)
    index = np.flatnonzero(interior)
    noise = np.zeros(k)
    if index.size:
        Hi = H[np.ix_(index, index)]
        try:
            H_inv = np.linalg.inv(Hi)
        except np.linalg.LinAlgError:
            return np.full(k, np.inf), H
        noise[index] = np.abs(H_inv) @ se[index]
    return noise, H


class _StillError(Exception):
    """Raised by :class:`_Watched` to end a search that has stopped moving."""


class _Watched:
    """The criterion for L-BFGS-B, watched for a search that stands still.

    Near the optimum the line search can spend many evaluations on moves
    far below the probe-noise target (the stochastic gradient is not
    exactly the criterion's): once three evaluations in a row lie within
    ``STILL`` (relative to ``max(|theta|, 1)``) of each other, the search is
    ended at the best point seen.  Non-finite values become a large one.
    """

    def __init__(self, value_and_gradient):
        self.f = value_and_gradient
        self.points, self.best, self.n_calls = [], None, 0

    def __call__(self, theta):
        self.n_calls += 1
        value, gradient = self.f(theta)
        if not np.isfinite(value):
            value, gradient = 1e300, np.zeros_like(theta)
        theta = np.array(theta, dtype=float)
        if self.best is None or value < self.best[1]:
            self.best = (theta, value)
        self.points = [*self.points[-2:], theta]
        if len(self.points) == 3:
            scale = np.maximum(np.abs(theta), 1.0)
            spread = np.ptp(np.array(self.points), axis=0) / scale
            if spread.max() < STILL:
                raise _StillError
        return value, gradient


def noise_target(theta, H):
    """The probe noise allowed in theta (see ``THETA_NOISE``)."""
    target = THETA_NOISE * np.maximum(np.abs(theta), 1.0)
    try:
        # The criterion is -2 log-likelihood: Var(theta) = 2 H^{-1}.
        se = np.sqrt(np.clip(np.diag(2.0 * np.linalg.inv(H)), 0.0, None))
    except np.linalg.LinAlgError:
        return target
    return np.maximum(target, NOISE_FRACTION * np.nan_to_num(se))


def optimize_krylov(design, reml, max_iter=1000, start=None):
    """Minimise the Krylov path's criterion over theta (all bounds zero).

    L-BFGS-B with the stochastic gradient on the common-random-number
    criterion (:func:`_search_with_probes`), from ``start`` or else the
    lower of lme4's identity start and the moment estimates.
    Then the boundary faces are checked as on the exact path
    (``_optimize._Search.probe_faces``): at a variance of zero the gradient
    in theta vanishes whatever the data say, so a search that reached the
    face stops there even where moving off it lowers the criterion; while a
    probe off a face finds a lower point the search restarts from it (at
    most ``_optimize.MAX_FACE_ROUNDS`` times).  Returns an
    :class:`._optimize.OptimizeOutcome`.
    """
    from ._covariance import ThetaLayout
    from ._optimize import MAX_FACE_ROUNDS, FitLog, OptimizeOutcome, _Point, _Search
    from ._starts import identity_start, moment_start

    options = design.stats.krylov
    lower = np.zeros(len(design.factors))
    log = FitLog()
    if start is None:
        # The lower of lme4's start and the moment estimates: one evaluation
        # more, often many fewer steps (InstEval's shape at 200,000 rows: 14
        # instead of 23); both reach the same optimum on the benchmarks.
        criterion = log.record(make_cached_deviance_and_gradient(design, reml))
        starts = [identity_start(design.factors), moment_start(design)]
        start = min(starts, key=lambda theta: criterion(theta)[0])
    run = _search_with_probes(design, reml, np.asarray(start), max_iter, log)
    layout = ThetaLayout.from_factors(design.factors)
    for _ in range(MAX_FACE_ROUNDS):
        criterion = make_cached_deviance_and_gradient(design, reml)
        search = _Search(lambda t: criterion(t)[0], criterion, lower, max_iter, 0, log)
        best = _Point(run.theta, run.value, run.converged, run.message)
        # Also the faces of where the search stopped, when that is not its
        # best point: a step that lands on a face (where the gradient then
        # vanishes) can end the search there, above a point it passed.
        probe = None
        with np.errstate(all="ignore"):
            for theta in _distinct([run.theta, run.stopped_at]):
                point = _Point(theta, search.value(theta), False, "")
                probe = search.probe_faces(point, layout)
                if probe is not None:
                    break
        if probe is None:
            break
        # The probe itself may be no lower (the curvature hides the gain at
        # every step); a run from it goes down if the face is not optimal.
        moved = _search_with_probes(
            design, reml, probe.theta, max_iter, log, run.n_iter
        )
        if not search.better(_Point(moved.theta, moved.value, True, ""), best):
            break
        run = moved
    message = (
        f"{run.message}; probes {options.n_probes}, theta noise {run.noise.max():.1e}"
    )
    return OptimizeOutcome(
        run.theta, lower, run.value, run.converged, run.n_iter, message, log
    )


@dataclass
class _Run:
    """Where one search with probes ended (:func:`_search_with_probes`)."""

    theta: np.ndarray
    value: float
    converged: bool
    n_iter: int
    message: str
    noise: np.ndarray
    stopped_at: np.ndarray  # the search's last point (may be above theta)


def _distinct(points):
    """``points`` without repeats."""
    out = []
    for point in points:
        if not any(np.array_equal(point, seen) for seen in out):
            out.append(point)
    return out


def _search_with_probes(design, reml, theta, max_iter, log, n_iter=0):
    """L-BFGS-B from ``theta``, with more probes until their noise is small.

    The search is ended early when it stands still (:class:`_Watched`).  At
    its end the optimum's probe noise is checked (:func:`theta_noise`):
    while it exceeds :func:`noise_target` the number of probes grows (up to
    ``MAX_PROBES``) and the search resumes from there.
    """
    from scipy import optimize

    options = design.stats.krylov
    lower = np.zeros(len(design.factors))
    while True:
        watched = _Watched(log.record(make_cached_deviance_and_gradient(design, reml)))
        try:
            result = optimize.minimize(
                watched,
                np.maximum(theta, lower),
                jac=True,
                method="L-BFGS-B",
                bounds=optimize.Bounds(lower, np.full_like(lower, np.inf)),
                options={"maxiter": max_iter, "ftol": 1e-13, "gtol": 1e-6},
            )
            stopped_at = result.x
        except _StillError:
            result = optimize.OptimizeResult(
                x=watched.best[0],
                nit=watched.n_calls,  # iterations unknown: evaluations
                success=True,
                message="steps below the probe noise",
            )
            stopped_at = watched.points[-1]
        theta, n_iter = result.x, n_iter + int(result.nit)
        noise, H = theta_noise(design, reml, theta)
        target = noise_target(theta, H)
        if np.all(noise <= target) or options.n_probes >= MAX_PROBES:
            break
        growth = float(np.max((noise / target) ** 2))
        options.n_probes = int(
            min(MAX_PROBES, options.n_probes * 2 ** np.ceil(np.log2(growth)))
        )
    value = float(make_cached_deviance_and_gradient(design, reml)(theta)[0])
    value = value if np.isfinite(value) else np.inf
    # A line search stopped by the probes' noise is not a failure when the
    # optimum is known to within that noise.
    converged = bool(result.success) or bool(np.all(noise <= target))
    message = str(result.message)
    return _Run(theta, value, converged, n_iter, message, noise, stopped_at)


# ------------------------------------------------------------ choosing it

# solver="auto" takes the Krylov path from this many columns of the exact
# path's dense block (the later factors' levels): see benchmarks/README.md
# ("The auto rule") for the measurements behind it.
KRYLOV_MIN_DENSE = 1500


def dense_block_width(factors):
    """Columns of the exact path's dense block: the later factors' effects."""
    return sum(f.n_levels * f.n_terms for f in factors[1:])


def krylov_options(solver, random_state, factors):
    """The Krylov path's :class:`KrylovOptions` for a fit, or None (exact).

    ``factors`` in optimisation order (largest first).  ``"auto"`` chooses
    Krylov for several one-term factors whose dense block would have at
    least ``KRYLOV_MIN_DENSE`` columns; ``"krylov"`` for other models
    raises ValueError.
    """
    if solver == "cholesky":
        return None
    supported = supports_krylov(factors)
    if solver == "krylov" and not supported:
        raise ValueError(
            "solver='krylov' needs at least two grouping factors, each with one "
            "random-effect term (e.g. (1 | user) + (1 | item)); this model has "
            f"{[(f.name, f.n_terms) for f in factors]} (factor, terms). Use "
            "solver='cholesky' or 'auto'."
        )
    if solver == "auto" and not (
        supported and dense_block_width(factors) >= KRYLOV_MIN_DENSE
    ):
        return None
    from sklearn.utils import check_random_state

    if isinstance(random_state, np.random.Generator):
        seed = int(random_state.integers(2**31 - 1))
    else:
        seed = int(check_random_state(random_state).randint(2**31 - 1))
    return KrylovOptions(seed=seed, n_threads=allowed_threads())


def allow_probe_noise(design, reml, convergence, theta):
    """lme4's gradient check, passed when the gradient is within its noise.

    On the Krylov path the gradient carries the probes' noise; a scaled
    gradient within three times the scaled noise (``se`` through the same
    Cholesky factor of the Hessian) is not a failure to converge.  Other
    messages stay.
    """
    from ._convergence import _parameters

    index = np.flatnonzero(convergence.interior)
    gradient_message = [m for m in convergence.messages if "max|grad|" in m]
    if not index.size or not gradient_message:
        return convergence
    _, _, se = _cached_evaluation(design, reml)(theta)
    _, d = _parameters(design)
    H = convergence.hessian[np.ix_(index, index)]
    try:
        R = linalg.cholesky(H, lower=False)
    except linalg.LinAlgError:
        return convergence
    scaled_noise = np.abs(linalg.solve_triangular(R, (se * d)[index], trans="T"))
    scaled = np.abs(convergence.scaled_gradient[index])
    if np.all(scaled <= np.maximum(3.0 * scaled_noise, 2e-3)):
        convergence.messages = [
            m for m in convergence.messages if m not in gradient_message
        ]
        convergence.ok = not convergence.messages
    return convergence
