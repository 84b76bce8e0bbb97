"""The Krylov solver path: its estimators, its criterion and its fits.

Three ways, as the rest of the suite: the stochastic estimators against
dense computations on small matrices (unbiased, with variance shrinking as
the probes grow), the criterion and gradient against the exact blocked
Cholesky path at the same theta, and whole fits against ``solver="cholesky"``
on small crossed designs.
"""

import numpy as np
import pandas as pd
import pytest
from scipy import linalg, sparse

from skmixed import MixedLinearRegressor
from skmixed import _krylov as kr
from skmixed import _objective_krylov as ok
from skmixed._design import Factor, build_design, order_factors
from skmixed._objective import make_deviance_and_gradient, objective

# ------------------------------------------------------------------ helpers


def _spd(n, seed, spread=10.0):
    """A random symmetric positive definite matrix with eigenvalues in [1, spread]."""
    rng = np.random.default_rng(seed)
    Q, _ = np.linalg.qr(rng.standard_normal((n, n)))
    return (Q * np.linspace(1.0, spread, n)) @ Q.T


def _crossed(n=4000, m1=400, m2=300, m3=None, seed=0):
    """Rows with crossed random intercepts (two or three factors) and one x.

    The second factor has more levels than ``_objective_krylov.COARSE_LEVELS``
    (its probe estimates are stochastic); a third one has fewer (its levels
    are in the preconditioner's coarse space and its gradient is exact).
    """
    rng = np.random.default_rng(seed)
    codes = {"u": rng.integers(0, m1, n), "i": rng.integers(0, m2, n)}
    x = rng.normal(size=(n, 1))
    y = 1.0 + 0.5 * x[:, 0] + rng.normal(size=n)
    y += rng.normal(size=m1)[codes["u"]] + 0.7 * rng.normal(size=m2)[codes["i"]]
    if m3:
        codes["d"] = rng.integers(0, m3, n)
        y += 0.4 * rng.normal(size=m3)[codes["d"]]
    return x, y, pd.DataFrame(codes)


def _designs(x, y, groups, seed=0, n_probes=32):
    """The exact and the Krylov design of the same rows."""
    factors = order_factors(
        [
            Factor(c, pd.Index(np.unique(groups[c])), [], ["Intercept"], True, False)
            for c in groups
        ]
    )
    codes = {c: groups[c].to_numpy() for c in groups}
    names = ["Intercept", "x0"]
    exact = build_design(x, y, codes, factors, names, True)
    krylov = build_design(x, y, codes, factors, names, True, sparse_others=True)
    krylov.stats.krylov = ok.KrylovOptions(seed=seed, n_probes=n_probes)
    return exact, krylov


# ------------------------------------------------- the estimators on matrices


def test_block_pcg_solves_every_column():
    A = _spd(40, 0, spread=1e3)
    B = np.random.default_rng(1).standard_normal((40, 5))
    d = np.diag(A).copy()
    result = kr.block_pcg(lambda V: A @ V, lambda V: V / d[:, None], B, 1e-12)
    assert result.converged.all()
    np.testing.assert_allclose(result.X, np.linalg.solve(A, B), rtol=1e-8, atol=1e-10)


def test_lanczos_quadrature_is_exact_when_cg_runs_to_the_end():
    """Run to convergence on a small matrix, the quadrature is g' log(A) g."""
    A = _spd(12, 2)
    g = np.random.default_rng(3).standard_normal((12, 1))
    result = kr.block_pcg(lambda V: A @ V, lambda V: V, g, 1e-14, max_iter=12)
    quad, linear = kr.lanczos_quadratic_log(
        result.alphas[0], result.betas[0], result.rz0[0]
    )
    g = g[:, 0]
    assert quad == pytest.approx(float(g @ linalg.logm(A).real @ g), rel=1e-8)
    assert linear == pytest.approx(float(g @ A @ g - g @ g), rel=1e-10)


def _slq(A, n_probes, seed, control=False):
    """SLQ estimate of log|A| with identity preconditioner and its samples."""
    G = np.random.default_rng(seed).standard_normal((A.shape[0], n_probes))
    result = kr.block_pcg(lambda V: A @ V, lambda V: V, G, 1e-12)
    exact_trace = np.trace(A) - A.shape[0] if control else None
    return kr.stochastic_log_det(result, range(n_probes), exact_trace)


@pytest.mark.parametrize("control", [False, True])
def test_slq_log_determinant_is_unbiased(control):
    """The mean over many independent probe sets is the dense log|A|."""
    A = _spd(30, 4, spread=3.0)
    exact = np.linalg.slogdet(A)[1]
    estimates = [_slq(A, 8, seed, control)[0] for seed in range(200)]
    se = np.std(estimates, ddof=1) / np.sqrt(len(estimates))
    assert abs(np.mean(estimates) - exact) < 4 * se + 1e-10


def test_slq_variance_shrinks_with_probes_and_with_the_control_variate():
    A = _spd(30, 5, spread=1.5)
    spread = {
        (k, c): np.std([_slq(A, k, s, c)[0] for s in range(100)])
        for k in (4, 64)
        for c in (False, True)
    }
    # 16 times the probes: a quarter of the standard deviation (within noise).
    assert 2.5 < spread[4, False] / spread[64, False] < 6.5
    assert 2.5 < spread[4, True] / spread[64, True] < 6.5
    # The control variate removes the first-order term of log(A).
    assert spread[4, True] < 0.5 * spread[4, False]


def test_trace_estimate_with_preconditioned_probes_is_unbiased():
    """E[(S^{-1} z)' D P^{-1} z] = tr(S^{-1} D) for z ~ N(0, P)."""
    S, D = _spd(25, 6), _spd(25, 7) - 3 * np.eye(25)
    p = np.diag(S).copy()
    exact = np.trace(np.linalg.solve(S, D))
    rng = np.random.default_rng(8)
    samples = []
    for _ in range(40):
        Z = np.sqrt(p)[:, None] * rng.standard_normal((25, 16))
        X = np.linalg.solve(S, Z)
        samples.append(kr.hutchinson(X, D @ (Z / p[:, None])).mean())
    assert abs(np.mean(samples) - exact) < 4 * kr.standard_error(samples)


@pytest.mark.parametrize("n_threads", [1, 2, 3])
def test_row_bands_give_exactly_the_plain_product(monkeypatch, n_threads):
    monkeypatch.setattr(kr, "PARALLEL_MIN_NNZ", 0)
    rng = np.random.default_rng(9)
    A = sparse.random(300, 200, density=0.05, random_state=10, format="csr")
    bands = kr.RowBands(A, n_threads)
    assert len(bands.bands) == (0 if n_threads == 1 else n_threads)
    V = rng.standard_normal((200, 7))
    np.testing.assert_array_equal(bands @ V, A @ V)
    np.testing.assert_array_equal(bands @ V[:, 0], A @ V[:, 0])


def test_threads_follow_the_users_limit():
    from threadpoolctl import threadpool_limits

    from skmixed._linalg import allowed_threads

    with threadpool_limits(1):
        assert allowed_threads() == 1
        assert ok.krylov_options("krylov", 0, _two_factors()).n_threads == 1


def test_probe_tolerance_tightens_as_probes_grow():
    options = ok.KrylovOptions(seed=0)
    assert options.probe_tolerance() == ok.PROBE_TOL
    options.n_probes = 4 * ok.DEFAULT_PROBES
    assert options.probe_tolerance() == pytest.approx(ok.PROBE_TOL / 2)


def _two_factors():
    return [
        Factor(name, pd.Index(range(size)), [], ["Intercept"], True, False)
        for name, size in (("u", 40), ("i", 30))
    ]


@pytest.mark.parametrize("n_threads", [1, 2])
def test_dense_schur_complement_is_s(monkeypatch, n_threads):
    """The lower triangle formed in blocks on threads is S's (three factors)."""
    x, y, groups = _crossed(n=1500, m1=100, m2=80, m3=12)
    _, krylov = _designs(x, y, groups)
    krylov.stats.krylov.n_threads = n_threads
    theta = np.array([0.9, 0.6, 0.3])
    st = ok.krylov_factorize(krylov.stats, krylov.factors, theta).state
    dense = st.S(np.eye(st.problem.Q2))
    lower = ok.dense_lower_schur(st, chunk=7)
    np.testing.assert_allclose(np.tril(lower), np.tril(dense), rtol=1e-6, atol=1e-6)


# --------------------------------------------- the criterion against exact


@pytest.mark.parametrize("m3", [None, 12])
def test_criterion_and_gradient_agree_with_the_exact_path(m3):
    x, y, groups = _crossed(m3=m3)
    exact, krylov = _designs(x, y, groups)
    value_and_gradient = make_deviance_and_gradient(exact, True)
    for theta in ([1.0, 1.0, 1.0], [0.9, 0.5, 0.2], [2.0, 0.1, 0.7]):
        theta = np.array(theta[: len(exact.factors)])
        value, gradient = value_and_gradient(theta)
        fact = ok.krylov_factorize(krylov.stats, krylov.factors, theta)
        k_gradient, se = ok.krylov_gradient(fact, True, krylov.stats.n)
        assert abs(objective(fact, krylov.stats.n, True) - value) < max(
            5e-3, 4 * fact.logdet_se
        )
        assert np.all(np.abs(k_gradient - gradient) < 4 * se + 1e-6 * np.abs(gradient))


def test_criterion_is_unbiased_over_probe_seeds():
    x, y, groups = _crossed()
    exact, _ = _designs(x, y, groups)
    theta = np.array([0.8, 0.6])
    value = make_deviance_and_gradient(exact, True)(theta)[0]
    values = []
    for seed in range(30):
        _, krylov = _designs(x, y, groups, seed=seed, n_probes=4)
        fact = ok.krylov_factorize(krylov.stats, krylov.factors, theta)
        values.append(objective(fact, krylov.stats.n, True))
    assert abs(np.mean(values) - value) < 4 * kr.standard_error(values) + 1e-9


def test_conditional_variances_agree_with_the_exact_path():
    x, y, groups = _crossed(m3=12)
    exact, krylov = _designs(x, y, groups, n_probes=64)
    from skmixed._objective import estimates, factorize

    theta = np.array([0.9, 0.6, 0.3])
    est = estimates(
        factorize(exact.stats, exact.factors, theta), exact.factors, 4000, True
    )
    fact = ok.krylov_factorize(krylov.stats, krylov.factors, theta)
    k_est = ok.krylov_estimates(fact, krylov.factors, 4000, True)
    for a, b in zip(est.random_effects, k_est.random_effects):
        np.testing.assert_allclose(b, a, rtol=1e-6, atol=1e-8)
    # Stochastic for the two large factors: each level's conditional variance
    # from 64 probes (2.8% at most here); exact for the small third factor.
    for a, b in zip(est.conditional_cov[:2], k_est.conditional_cov[:2]):
        np.testing.assert_allclose(b, a, rtol=6e-2)
    np.testing.assert_allclose(
        k_est.conditional_cov[2], est.conditional_cov[2], rtol=1e-6
    )


# ------------------------------------------------------------ whole fits


@pytest.mark.parametrize("m3", [None, 12])
def test_fit_agrees_with_cholesky(m3):
    """SDs and sigma to 1e-3 relative, beta to 1% of its SE, criterion 1e-3."""
    x, y, groups = _crossed(m3=m3)
    exact = MixedLinearRegressor(solver="cholesky").fit(x, y, groups=groups)
    fit = MixedLinearRegressor(solver="krylov", random_state=0).fit(x, y, groups=groups)
    assert exact.solver_ == "cholesky" and fit.solver_ == "krylov"
    assert fit.converged_
    assert abs(fit.objective_ - exact.objective_) < 1e-3
    assert fit.sigma_ == pytest.approx(exact.sigma_, rel=1e-3)
    for name, cov in exact.random_effects_cov_.items():
        sd, k_sd = (
            np.sqrt(cov.iloc[0, 0]),
            np.sqrt(fit.random_effects_cov_[name].iloc[0, 0]),
        )
        assert k_sd == pytest.approx(sd, rel=1e-3)
        np.testing.assert_allclose(
            fit.random_effects_[name], exact.random_effects_[name], atol=1e-3
        )
        np.testing.assert_allclose(
            fit.random_effects_cond_sd_[name],
            exact.random_effects_cond_sd_[name],
            rtol=3e-2,
        )
    se = np.sqrt(np.diag(exact.fixed_effects_cov_))
    assert np.all(np.abs(fit.fixed_effects_ - exact.fixed_effects_) < 0.01 * se)
    np.testing.assert_allclose(np.diag(fit.fixed_effects_cov_), se**2, rtol=1e-3)


def test_threads_do_not_change_the_fit(monkeypatch):
    x, y, groups = _crossed(m3=12)
    monkeypatch.setattr(kr, "PARALLEL_MIN_NNZ", 0)
    fits = []
    for n_threads in (1, 2):
        monkeypatch.setattr(ok, "allowed_threads", lambda n=n_threads: n)
        model = MixedLinearRegressor(solver="krylov", random_state=0)
        fits.append(model.fit(x, y, groups=groups))
    np.testing.assert_array_equal(fits[0].theta_, fits[1].theta_)
    assert abs(fits[0].objective_ - fits[1].objective_) < 1e-6


@pytest.mark.parametrize("seed", [1, 2])
def test_a_search_stopped_on_a_face_moves_off_it(seed):
    """Small SDs against a large sigma: L-BFGS-B's first step from the identity
    start reaches theta = 0, where the gradient vanishes whatever the data say
    (without the face checks these fits stopped there, 3.9 and 9.4 above the
    optimum)."""
    rng = np.random.default_rng(seed)
    n, m1, m2 = 3000, 400, 150
    a, b = rng.integers(0, m1, n), rng.integers(0, m2, n)
    y = 0.1 * rng.normal(size=m1)[a] + 0.1 * rng.normal(size=m2)[b]
    y += 1.5 * rng.normal(size=n)
    groups, x = pd.DataFrame({"a": a, "b": b}), np.empty((n, 0))
    exact = MixedLinearRegressor(solver="cholesky", method="ml").fit(
        x, y, groups=groups
    )
    fit = MixedLinearRegressor(solver="krylov", method="ml", random_state=0)
    fit.fit(x, y, groups=groups)
    assert np.all(exact.theta_ > 0.04)
    assert abs(fit.objective_ - exact.objective_) < 1e-3
    np.testing.assert_allclose(fit.theta_, exact.theta_, rtol=2e-2)


def _random_crossed_design(seed):
    """Two or three crossed or nested factors, SDs from 0 to 1, REML or ML,
    weights or not: the differential designs against the exact path."""
    rng = np.random.default_rng(seed)
    n = int(rng.integers(1500, 4000))
    m1, m2 = int(rng.integers(50, 600)), int(rng.integers(100, 500))
    x = rng.normal(size=(n, int(rng.integers(0, 3))))
    codes = {"a": rng.integers(0, m1, n), "b": rng.integers(0, m2, n)}
    sd = rng.choice([0.0, 0.1, 0.5, 1.0], size=3)
    y = x @ rng.normal(size=x.shape[1]) + rng.normal(size=n) * rng.uniform(0.5, 2)
    y += sd[0] * rng.normal(size=m1)[codes["a"]]
    y += sd[1] * rng.normal(size=m2)[codes["b"]]
    if rng.random() < 0.5:
        m3 = int(rng.integers(3, 40))
        nested = rng.random() < 0.5  # b's levels within c's
        codes["c"] = (
            rng.integers(0, m3, m2)[codes["b"]] if nested else rng.integers(0, m3, n)
        )
        y += sd[2] * rng.normal(size=m3)[codes["c"]]
    weights = rng.uniform(0.5, 2, n) if rng.random() < 0.3 else None
    method = str(rng.choice(["reml", "ml"]))
    return x, y, pd.DataFrame(codes), weights, method


@pytest.mark.filterwarnings("ignore:boundary \\(singular\\) fit")
@pytest.mark.parametrize("seed", range(12))
def test_random_designs_agree_with_the_exact_path(seed):
    x, y, groups, weights, method = _random_crossed_design(seed)
    fits = [
        MixedLinearRegressor(solver=solver, method=method, random_state=0).fit(
            x, y, groups=groups, sample_weight=weights
        )
        for solver in ("cholesky", "krylov")
    ]
    exact, fit = fits
    assert abs(fit.objective_ - exact.objective_) < 1e-3 + 4 * fit.objective_se_
    se = np.sqrt(np.diag(exact.fixed_effects_cov_))
    assert np.all(np.abs(fit.fixed_effects_ - exact.fixed_effects_) < 0.01 * se)


def test_fits_are_reproducible_from_random_state():
    x, y, groups = _crossed()
    fits = [
        MixedLinearRegressor(solver="krylov", random_state=s).fit(x, y, groups=groups)
        for s in (3, 3, 4)
    ]
    assert fits[0].objective_ == fits[1].objective_
    np.testing.assert_array_equal(fits[0].theta_, fits[1].theta_)
    assert fits[0].objective_ != fits[2].objective_


def test_what_follows_from_a_krylov_fit():
    """summary, Wald intervals, predictions (seen and unseen levels)."""
    x, y, groups = _crossed(n=2500, m1=300, m2=270)
    fit = MixedLinearRegressor(solver="krylov", random_state=0).fit(x, y, groups=groups)
    exact = MixedLinearRegressor().fit(x, y, groups=groups)
    summary = fit.summary()
    assert "REML criterion" in str(summary)
    np.testing.assert_allclose(
        summary.fixed_effects["df"],
        exact.summary().fixed_effects["df"],
        rtol=5e-2,
    )
    np.testing.assert_allclose(fit.confint(), exact.confint(), atol=1e-4)
    new = groups.iloc[:5].copy()
    new.loc[new.index[:2], "u"] = -1  # unseen users: no user effect
    pred = fit.predict(x[:5], groups=new)
    np.testing.assert_allclose(pred, exact.predict(x[:5], groups=new), atol=1e-4)
    items = fit.random_effects_["i"].loc[new["i"].iloc[:2]].to_numpy()[:, 0]
    population = fit.predict(x[:2], random_effects="none")
    np.testing.assert_allclose(pred[:2], population + items)


def test_a_stochastic_criterion_says_so(monkeypatch):
    """objective_se_ is 0 where the criterion is exact, else the probes' SE."""
    x, y, groups = _crossed(n=2500, m1=300, m2=270)
    exact = MixedLinearRegressor(solver="cholesky").fit(x, y, groups=groups)
    refined = MixedLinearRegressor(solver="krylov", random_state=0)
    refined.fit(x, y, groups=groups)
    assert exact.objective_se_ == 0.0 and refined.objective_se_ == 0.0
    assert "stochastic" not in str(refined.summary())
    monkeypatch.setattr(ok, "EXACT_LOG_DET_MAX", 10)
    monkeypatch.setattr(ok, "REPORT_MAX_COLUMNS", 10)
    rough = MixedLinearRegressor(solver="krylov", random_state=0)
    rough.fit(x, y, groups=groups)
    assert 0.0 < rough.objective_se_ < 0.1
    assert abs(rough.objective_ - exact.objective_) < 4 * rough.objective_se_ + 1e-3
    assert "a stochastic estimate" in str(rough.summary())


@pytest.mark.parametrize(
    "call, what",
    [
        (lambda m: m.confint(method="profile"), "profile"),
        (lambda m: m.bootstrap(lambda r: r.sigma_, n_boot=2), "bootstrap"),
        (lambda m: m.sample_posterior(10), "posterior"),
        (lambda m: m.summary(ddf="kenward-roger"), "Kenward-Roger"),
    ],
)
def test_exact_only_inference_names_the_solver(call, what):
    x, y, groups = _crossed()
    fit = MixedLinearRegressor(solver="krylov", random_state=0).fit(x, y, groups=groups)
    with pytest.raises(ValueError, match=f"(?s){what}.*solver='krylov'"):
        call(fit)


def test_solver_choice(monkeypatch):
    x, y, groups = _crossed()
    assert MixedLinearRegressor().fit(x, y, groups=groups).solver_ == "cholesky"
    monkeypatch.setattr(ok, "KRYLOV_MIN_DENSE", 30)
    assert MixedLinearRegressor().fit(x, y, groups=groups).solver_ == "krylov"
    one = groups["u"].to_numpy()
    # One factor, or a factor with a slope: the exact path, which auto keeps.
    assert MixedLinearRegressor().fit(x, y, groups=one).solver_ == "cholesky"
    with pytest.raises(ValueError, match="solver='krylov' needs"):
        MixedLinearRegressor(solver="krylov").fit(x, y, groups=one)
    with pytest.raises(ValueError, match="solver='krylov' needs"):
        MixedLinearRegressor(solver="krylov", random_slopes=[0]).fit(
            x, y, groups=groups
        )
    with pytest.raises(ValueError, match="solver"):
        MixedLinearRegressor(solver="lu").fit(x, y, groups=groups)


def test_dask_fit_uses_the_krylov_path():
    """Partitions give the sparse statistics; the fit equals the in-memory one."""
    dd = pytest.importorskip("dask.dataframe")
    x, y, groups = _crossed(n=2500, m1=300, m2=270)
    frame = pd.DataFrame({"x0": x[:, 0], "y": y, **groups})
    parts = dd.from_pandas(frame, npartitions=3)
    model = MixedLinearRegressor(solver="krylov", random_state=0)
    fit = model.fit(parts[["x0"]], parts["y"], groups=parts[["u", "i"]])
    memory = MixedLinearRegressor(solver="krylov", random_state=0).fit(
        frame[["x0"]], y, groups=groups
    )
    assert fit.solver_ == "krylov"
    np.testing.assert_allclose(fit.theta_, memory.theta_, rtol=1e-6)
    np.testing.assert_allclose(fit.fixed_effects_, memory.fixed_effects_, rtol=1e-8)
    assert fit.objective_ == pytest.approx(memory.objective_, abs=1e-6)
