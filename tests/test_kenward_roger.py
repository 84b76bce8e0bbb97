"""Kenward-Roger against pbkrtest 0.5.2 and lmerTest 3.1-3, and against itself.

Three ways, as the other inference tests:

* golden references (``tests/data/kenward_roger/make_kr.R``): pbkrtest's
  ``vcovAdj``, lmerTest's ``summary(ddf = "Kenward-Roger")`` SEs and df and its
  type III ``anova(ddf = "Kenward-Roger")`` F tests, on Oats, Orthodont, cake,
  ChickWeight (polynomial and linear), Machines, sleepstudy with ``||`` and
  InstEval's department 7: within 1e-4 relative at our optimum, and to 1e-8 at
  lme4's own theta (which separates the method from the optimiser's last
  digits);
* a brute-force reference: pbkrtest's algorithm written out with the ``n x n``
  matrices ``V`` and ``G_i`` in the original units (:func:`dense_vcov_adj`),
  which the structured computation matches to 1e-10 on one factor with slopes,
  diagonal covariance, crossed and nested factors, no intercept and a singular
  fit; and the two structured paths (per-level blocks, ``Q x Q``) agree;
* limits: REML only (an ML fit is an error), and the adjustment vanishes as
  the data grow.
"""

import copy
import json
import time
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from skmixed import MixedLinearRegressor
from skmixed._objective import factorize, penalized_rss
from skmixed.inference._kenward_roger import (
    _assemble,
    _blocked_parts,
    _dense_parts,
    _one_factor_parts,
    kenward_roger,
    kenward_roger_covariance,
    kenward_roger_f_test,
    kenward_roger_parts,
    kenward_roger_t,
)

from .test_analyses import load_frame
from .test_satterthwaite import lme4_theta_scaled

DATA = Path(__file__).parent / "data"
KR = DATA / "kenward_roger"
ANALYSES = {  # reference -> the data set of tests/data/analyses it reads
    "oats": "oats",
    "orthodont": "orthodont",
    "cake": "cake",
    "chickweight_poly": "chickweight_poly",
    "chickweight_linear": "chickweight_linear",
    "machines": "machines",
    "sleepstudy_uncorrelated": None,
    "insteval_dept7": None,
}


def reference(name):
    return json.loads((KR / f"{name}.json").read_text())


def as_array(value):
    return np.atleast_1d(np.asarray(value, dtype=float))


def load_data(name):
    if ANALYSES[name] is not None:
        return load_frame(ANALYSES[name])
    if name == "sleepstudy_uncorrelated":
        frame = pd.read_csv(DATA / "sleepstudy.csv", dtype={"Subject": str})
        frame["Subject"] = pd.Categorical(frame["Subject"])
        return frame
    frame = pd.read_csv(KR / "insteval_dept7.csv", dtype=str)
    frame["y"] = frame["y"].astype(float)
    for column in ["service", "s", "d"]:
        frame[column] = pd.Categorical(frame[column])
    return frame


_FITS = {}


def fitted(name):
    if name not in _FITS:
        ref = reference(name)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)
            model = MixedLinearRegressor(formula=ref["formula"]).fit(load_data(name))
        _FITS[name] = model
    return _FITS[name]


def at_lme4_theta(model, ref):
    """A copy of ``model`` moved to lme4's (polished) theta and sigma."""
    model = copy.copy(model)
    model._theta_scaled = lme4_theta_scaled(model, ref["theta"])
    design = model._design
    fact = factorize(design.stats, design.factors, model._theta_scaled)
    dof = design.stats.n - design.n_fixed
    model.sigma_ = np.sqrt(penalized_rss(fact.R) / dof) * design.scaling.y_scale
    np.testing.assert_allclose(model.sigma_, ref["sigma"], rtol=1e-7)
    model._kenward_roger_cache = None
    return model


def relative(a, b):
    a, b = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    return np.max(np.abs(a - b) / np.abs(b))


@pytest.mark.parametrize("name", list(ANALYSES))
def test_t_tests_match_lmertest(name):
    ref = reference(name)
    model = fitted(name)
    names = [n if n != "(Intercept)" else "Intercept" for n in ref["fixef"]["names"]]
    assert list(model.fixed_effects_.index) == names
    table = kenward_roger(model)
    kr = ref["kr_summary"]
    assert relative(table["std_error"], as_array(kr["se"])) < 1e-4
    assert relative(table["df"], as_array(kr["df"])) < 1e-4
    cov = kenward_roger_covariance(model).to_numpy()
    expected = np.atleast_2d(np.asarray(ref["vcov_adj"], dtype=float))
    assert np.max(np.abs(cov - expected)) < 1e-4 * np.max(np.abs(np.diag(expected)))


@pytest.mark.parametrize("name", list(ANALYSES))
def test_matches_pbkrtest_at_lme4_theta(name):
    # At lme4's own optimum the method alone is compared: to rounding.
    ref = reference(name)
    model = at_lme4_theta(fitted(name), ref)
    se, df = kenward_roger_t(model, np.eye(model._design.n_fixed))
    np.testing.assert_allclose(se, as_array(ref["kr_summary"]["se"]), rtol=1e-8)
    np.testing.assert_allclose(df, as_array(ref["kr_summary"]["df"]), rtol=1e-8)
    expected = np.atleast_2d(np.asarray(ref["vcov_adj"], dtype=float))
    np.testing.assert_allclose(
        kenward_roger_covariance(model).to_numpy(),
        expected,
        atol=1e-9 * np.max(np.abs(expected)),
    )


@pytest.mark.parametrize("name", list(ANALYSES))
def test_f_tests_match_pbkrtest_and_lmertest(name):
    ref = reference(name)
    model = fitted(name)
    for term in ref["kr_terms"]:
        L = np.atleast_2d(np.asarray(term["L"], dtype=float))
        test = kenward_roger_f_test(model, L)
        assert test["NumDF"] == term["ndf"]
        for key, expected in [
            ("F value", term["F_scaled"]),
            ("F unscaled", term["F_unscaled"]),
            ("F.scaling", term["F_scaling"]),
            ("DenDF", term["ddf"]),
            ("Mean Sq", term["mean_sq"]),
            ("Sum Sq", term["sum_sq"]),
        ]:
            assert relative(test[key], expected) < 1e-4, (term["term"], key)
        assert test["p_value"] == pytest.approx(term["p_value"], rel=1e-3, abs=1e-12)
    table = ref["kr_anova_type3"]
    if table:  # lmerTest's printed anova: the same numbers as pbkrtest's
        for k, term in enumerate(ref["kr_terms"]):
            assert table["terms"][k] == term["term"]
            assert table["F_value"][k] == pytest.approx(term["F_scaled"], rel=1e-10)
            assert table["DenDF"][k] == pytest.approx(term["ddf"], rel=1e-10)


def test_ml_fit_is_refused():
    ref = reference("oats")
    model = MixedLinearRegressor(formula=ref["formula"], method="ml")
    model.fit(load_data("oats"))
    for call in (
        lambda: kenward_roger_covariance(model),
        lambda: kenward_roger_t(model, np.eye(6)),
        lambda: kenward_roger_f_test(model, np.eye(6)[1:2]),
        lambda: model.summary(ddf="kenward-roger"),
    ):
        with pytest.raises(ValueError, match="only available for REML"):
            call()


def test_contrasts_and_f_test_with_redundant_rows():
    model = fitted("oats")
    L = np.zeros((3, 6))
    L[0, 2], L[1, 3] = 1.0, 1.0
    L[2] = L[0] - L[1]  # adds nothing to the hypothesis
    full = kenward_roger_f_test(model, L[:2])
    assert kenward_roger_f_test(model, L) == pytest.approx(full)
    # a single-row hypothesis: F = t^2, the same df
    se, df = kenward_roger_t(model, L[2:])
    test = kenward_roger_f_test(model, L[2:])
    estimate = L[2] @ model.fixed_effects_.to_numpy()
    assert test["F value"] == pytest.approx((estimate / se[0]) ** 2, rel=1e-10)
    assert test["DenDF"] == pytest.approx(df[0], rel=1e-10)
    with pytest.raises(ValueError, match="columns"):
        kenward_roger_t(model, np.eye(5))


# The brute-force reference: pbkrtest's vcovAdj (KR-vcovAdj.R) and Lb_ddf, with
# explicit n x n matrices, in the original units and pbkrtest's parametrisation
# (the entries of each term's covariance matrix, then the residual variance).


def dense_design(X, groups, slopes, fit_intercept=True):
    """X (with the intercept) and, per factor, Z (level-major) and its terms."""
    X = np.asarray(X, dtype=float)
    Xf = np.column_stack([np.ones(len(X)), X]) if fit_intercept else X
    Zs = {}
    for name in groups:
        codes, levels = pd.factorize(groups[name], sort=True)
        columns = [np.ones(len(X))] + [X[:, j] for j in slopes.get(name, [])]
        Z = np.zeros((len(X), len(levels) * len(columns)))
        for a, column in enumerate(columns):
            Z[np.arange(len(X)), codes * len(columns) + a] = column
        Zs[name] = (Z, len(levels), len(columns))
    return Xf, Zs


def dense_vcov_adj(Xf, Zs, covs, sigma2, diagonal, weights=None):
    """pbkrtest's vcovAdj, line by line; returns (PhiA, Phi, P, W).

    With prior weights the residual term is ``sigma^2 diag(1 / w)``.
    """
    n = len(Xf)
    G, gamma = [], []
    for name, (Z, m, q) in Zs.items():
        cov = covs[name]
        pairs = (
            [(a, a) for a in range(q)]
            if diagonal[name]
            else [(a, b) for b in range(q) for a in range(b, q)]
        )
        for a, b in pairs:
            E = np.zeros((q, q))
            E[a, b] = E[b, a] = 1.0
            G.append(Z @ np.kron(np.eye(m), E) @ Z.T)
            gamma.append(cov[a, b])
    G.append(np.eye(n) if weights is None else np.diag(1.0 / weights))
    gamma.append(sigma2)
    Sigma = sum(g * Gi for g, Gi in zip(gamma, G))
    SigmaInv = np.linalg.inv(Sigma)
    Phi = np.linalg.inv(Xf.T @ SigmaInv @ Xf)
    k = len(G)
    TT = SigmaInv @ Xf
    HH = [Gi @ SigmaInv for Gi in G]
    OO = [H @ Xf for H in HH]
    PP = [-(Ok.T @ TT) for Ok in OO]
    PP = [(P + P.T) / 2 for P in PP]
    QQ = [[OO[r].T @ SigmaInv @ OO[s] for s in range(k)] for r in range(k)]
    Ktrace = np.array([[np.sum(HH[r].T * HH[s]) for s in range(k)] for r in range(k)])
    IE2 = np.empty((k, k))
    for i in range(k):
        for j in range(k):
            IE2[i, j] = (
                Ktrace[i, j]
                - 2 * np.sum(Phi * QQ[i][j])
                + np.sum((Phi @ PP[i]) * (PP[j] @ Phi))
            )
    WW = 2 * np.linalg.inv(IE2)
    UU = np.zeros_like(Phi)
    for i in range(k):
        for j in range(i + 1, k):
            UU += WW[i, j] * (QQ[i][j] - PP[i] @ Phi @ PP[j])
    UU = UU + UU.T
    for i in range(k):
        UU += WW[i, i] * (QQ[i][i] - PP[i] @ Phi @ PP[i])
    return Phi + 2 * Phi @ UU @ Phi, Phi, PP, WW


def dense_lb_ddf(L, Phi, P, W):
    """pbkrtest's Lb_ddf for one contrast vector."""
    L = np.atleast_2d(L)
    q = L.shape[0]
    Theta = L.T @ np.linalg.solve(L @ Phi @ L.T, L)
    A1 = A2 = 0.0
    for i in range(len(P)):
        for j in range(len(P)):
            ui = Theta @ Phi @ P[i] @ Phi
            uj = Theta @ Phi @ P[j] @ Phi
            A1 += W[i, j] * np.trace(ui) * np.trace(uj)
            A2 += W[i, j] * np.sum(ui * uj.T)
    B = (A1 + 6 * A2) / (2 * q)
    g = ((q + 1) * A1 - (q + 4) * A2) / ((q + 2) * A2)
    c1 = g / (3 * q + 2 * (1 - g))
    c2 = (q - g) / (3 * q + 2 * (1 - g))
    c3 = (q + 2 - g) / (3 * q + 2 * (1 - g))
    rho = 1 / q * ((1 - A2 / q) / (1 - c2 * B)) ** 2 * (1 + c1 * B) / (1 - c3 * B)
    return 4 + (q + 2) / (q * rho - 1)


def simulated(design, seed=0):
    """Small designs: (X, y, groups DataFrame, estimator params, slopes by factor)."""
    rng = np.random.default_rng(seed)
    if design == "one_factor_slopes":
        n, m = 90, 9
        g = rng.integers(0, m, n)
        X = rng.normal(size=(n, 2))
        b = rng.normal(size=(m, 2)) * [1.0, 0.6]
        y = 1 + X @ [0.5, -0.3] + b[g, 0] + b[g, 1] * X[:, 0] + rng.normal(size=n)
        groups = pd.DataFrame({"g": g})
        return X, y, groups, {"random_slopes": [0]}, {"g": [0]}, {"g": False}
    if design == "diagonal":
        X, y, groups, _, slopes, _ = simulated("one_factor_slopes", seed)
        params = {"random_slopes": [0, 1], "covariance": "diagonal"}
        return X, y, groups, params, {"g": [0, 1]}, {"g": True}
    if design == "crossed":
        n = 120
        a, b = rng.integers(0, 8, n), rng.integers(0, 6, n)
        X = rng.normal(size=(n, 2))
        y = (
            X @ [1.0, 0.5]
            + rng.normal(size=8)[a]
            + 0.7 * rng.normal(size=6)[b]
            + rng.normal(size=8)[a] * 0.5 * X[:, 1]
            + rng.normal(size=n)
        )
        groups = pd.DataFrame({"a": a, "b": b})
        params = {"random_slopes": {"a": [1]}}
        return X, y, groups, params, {"a": [1]}, {"a": False, "b": False}
    if design == "nested":
        n = 100
        a = rng.integers(0, 6, n)
        inner = rng.integers(0, 3, n)
        ab = a * 3 + inner
        X = rng.normal(size=(n, 1))
        y = (
            2 * X[:, 0]
            + rng.normal(size=6)[a]
            + 0.8 * rng.normal(size=18)[ab]
            + rng.normal(size=n)
        )
        groups = pd.DataFrame({"a": a, "ab": ab})
        return X, y, groups, {}, {}, {"a": False, "ab": False}
    if design == "no_intercept":
        X, y, groups, params, slopes, diagonal = simulated("one_factor_slopes", seed)
        return X, y, groups, {**params, "fit_intercept": False}, slopes, diagonal
    if design == "singular":
        n, m = 60, 10
        g = rng.integers(0, m, n)
        X = rng.normal(size=(n, 1))
        y = X[:, 0] + rng.normal(size=n)  # no group effect: a zero variance
        groups = pd.DataFrame({"g": g})
        return X, y, groups, {"random_slopes": [0]}, {"g": [0]}, {"g": False}
    raise ValueError(design)


DESIGNS = [
    "one_factor_slopes",
    "diagonal",
    "crossed",
    "nested",
    "no_intercept",
    "singular",
]


@pytest.mark.parametrize("design", DESIGNS)
def test_structured_matches_dense_reference(design):
    X, y, groups, params, slopes, diagonal = simulated(design)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # singular fits, few levels
        model = MixedLinearRegressor(**params).fit(X, y, groups=groups)
    if design == "singular":
        assert model.is_singular_
    Xf, Zs = dense_design(X, groups, slopes, params.get("fit_intercept", True))
    covs = {k: v.to_numpy() for k, v in model.random_effects_cov_.items()}
    PhiA, Phi, P, W = dense_vcov_adj(Xf, Zs, covs, model.sigma_**2, diagonal)
    np.testing.assert_allclose(
        Phi, model.fixed_effects_cov_.to_numpy(), rtol=1e-9, atol=1e-12
    )
    cov = kenward_roger_covariance(model).to_numpy()
    scale = np.max(np.abs(PhiA))
    np.testing.assert_allclose(cov, PhiA, rtol=1e-10, atol=1e-12 * scale)
    p = Phi.shape[0]
    contrasts = np.vstack([np.eye(p), np.ones(p)])
    se, df = kenward_roger_t(model, contrasts)
    expected_se = np.sqrt(np.diag(contrasts @ PhiA @ contrasts.T))
    np.testing.assert_allclose(se, expected_se, rtol=1e-10)
    expected = [dense_lb_ddf(c, Phi, P, W) for c in contrasts]
    np.testing.assert_allclose(df, expected, rtol=1e-10)
    test = kenward_roger_f_test(model, np.eye(p)[p - 2 :])
    expected_ddf = dense_lb_ddf(np.eye(p)[p - 2 :], Phi, P, W)
    assert test["DenDF"] == pytest.approx(expected_ddf, rel=1e-10)


@pytest.mark.parametrize("design", ["one_factor_slopes", "diagonal", "singular"])
def test_one_factor_paths_agree(design):
    # The per-level blocks and the dense Q x Q computation of the same terms.
    X, y, groups, params, _, _ = simulated(design)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model = MixedLinearRegressor(**params).fit(X, y, groups=groups)
    design_ = model._design
    stats_, factors = design_.stats, design_.factors
    fact = factorize(stats_, factors, model._theta_scaled)
    p = design_.n_fixed
    blocks = _one_factor_parts(stats_, factors[0], fact.T[0], p)
    dense = _dense_parts(stats_, factors, fact.T, p)
    for name in ("P", "Q", "K", "k"):
        a, b = getattr(blocks, name), getattr(dense, name)
        np.testing.assert_allclose(a, b, rtol=1e-10, atol=1e-10 * np.abs(b).max())
    RX = fact.R[:p, :p]
    Phi_inv = RX @ RX.T
    parts = _assemble(blocks, np.linalg.inv(Phi_inv), Phi_inv, stats_.n)
    sigma = model.sigma_ / design_.scaling.y_scale  # parts with sigma = 1
    np.testing.assert_allclose(
        parts.Phi_A, kenward_roger_parts(model).Phi_A / sigma**2, rtol=1e-9
    )


def test_adjustment_vanishes_with_many_groups():
    # Phi_A -> Phi and df -> large as the number of groups grows.
    ratios = []
    for m in (10, 400):
        rng = np.random.default_rng(1)
        g = np.repeat(np.arange(m), 5)
        X = rng.normal(size=(g.size, 1))
        y = X[:, 0] + rng.normal(size=m)[g] + rng.normal(size=g.size)
        model = MixedLinearRegressor().fit(X, y, groups=g)
        cov = kenward_roger_covariance(model).to_numpy()
        ratios.append(cov[0, 0] / model.fixed_effects_cov_.to_numpy()[0, 0] - 1)
    assert 0 < ratios[1] < ratios[0] / 10


def test_insteval_department_7_is_fast():
    # lme4 + pbkrtest took 29 s (vcovAdj alone) on this machine, 207 s in the issue.
    model = fitted("insteval_dept7")
    model._kenward_roger_cache = None
    start = time.perf_counter()
    table = kenward_roger(model)
    elapsed = time.perf_counter() - start
    assert elapsed < 5.0
    ref = reference("insteval_dept7")
    assert relative(table["df"], as_array(ref["kr_summary"]["df"])) < 1e-4


def test_summary_with_kenward_roger():
    model = fitted("oats")
    summary = model.summary(ddf="kenward-roger")
    text = str(summary).splitlines()
    assert text[0] == (
        "Linear mixed model fit by REML. t-tests use Kenward-Roger's method"
    )
    pd.testing.assert_frame_equal(summary.fixed_effects, kenward_roger(model))
    # lmerTest's printed rows (summary(m, ddf = "Kenward-Roger") on nlme's Oats)
    for row in [
        "Intercept                 81.900      8.571  12.849   9.556 3.35e-07 ***",
        "VarietyMarvellous          8.517      8.685  21.575   0.981    0.338    ",
    ]:
        assert row in text
    assert "t-tests use Kenward-Roger&#x27;s method" in summary._repr_html_()
    # the default stays Satterthwaite; the correlations stay those of vcov
    default = model.summary()
    assert str(default).startswith(
        "Linear mixed model fit by REML. t-tests use Satterthwaite's method"
    )
    pd.testing.assert_frame_equal(
        summary.fixed_effects_corr, default.fixed_effects_corr
    )
    with pytest.raises(ValueError, match="ddf must be one of"):
        model.summary(ddf="containment")


@pytest.mark.parametrize(
    "name", ["crossed", "nested", "oats", "machines", "insteval_dept7"]
)
def test_blocked_and_dense_paths_agree(name):
    # Several factors: the blocked terms (first factor level by level, the
    # others Q2 x Q2) against the same terms from a dense Q x Q Psi.
    if name in ("crossed", "nested"):
        X, y, groups, params, _, _ = simulated(name)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            model = MixedLinearRegressor(**params).fit(X, y, groups=groups)
    else:
        model = fitted(name)
    design = model._design
    stats_, factors = design.stats, design.factors
    assert len(factors) > 1
    fact = factorize(stats_, factors, model._theta_scaled)
    blocked = _blocked_parts(stats_, factors, fact.T, design.n_fixed)
    dense = _dense_parts(stats_, factors, fact.T, design.n_fixed)
    for part in ("P", "Q", "K", "k"):
        a, b = getattr(blocked, part), getattr(dense, part)
        np.testing.assert_allclose(a, b, rtol=1e-10, atol=1e-10 * np.abs(b).max())


def test_no_random_effects_is_ordinary_least_squares():
    # Only the residual variance: no adjustment and n - p degrees of freedom.
    rng = np.random.default_rng(0)
    X = rng.normal(size=(30, 2))
    y = X @ [1.0, 2.0] + rng.normal(size=30)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # no groups
        model = MixedLinearRegressor().fit(X, y)
    np.testing.assert_allclose(
        kenward_roger_covariance(model), model.fixed_effects_cov_, rtol=1e-12
    )
    np.testing.assert_allclose(kenward_roger(model)["df"], 27.0, rtol=1e-12)


def test_prior_weights_match_dense_reference():
    # Residual covariance sigma^2 W^-1: the rows scaled by sqrt(w), as the fit.
    # (pbkrtest itself ignores the weights in V while vcov uses them.)
    X, y, groups, params, slopes, diagonal = simulated("one_factor_slopes")
    w = np.random.default_rng(3).uniform(0.5, 2.0, size=len(y))
    model = MixedLinearRegressor(**params).fit(X, y, groups=groups, sample_weight=w)
    Xf, Zs = dense_design(X, groups, slopes)
    covs = {k: v.to_numpy() for k, v in model.random_effects_cov_.items()}
    PhiA, Phi, P, W = dense_vcov_adj(Xf, Zs, covs, model.sigma_**2, diagonal, w)
    np.testing.assert_allclose(Phi, model.fixed_effects_cov_.to_numpy(), rtol=1e-9)
    np.testing.assert_allclose(kenward_roger_covariance(model), PhiA, rtol=1e-10)
    _, df = kenward_roger_t(model, np.eye(3))
    expected = [dense_lb_ddf(c, Phi, P, W) for c in np.eye(3)]
    np.testing.assert_allclose(df, expected, rtol=1e-10)
