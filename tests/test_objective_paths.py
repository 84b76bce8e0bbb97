"""The dense and the blocked evaluation of the objective agree.

Models with several factors and few random effects in all are evaluated
with one dense Cholesky factor of the whole ``M`` (``factorize_dense``);
everything else, and everything that reads the blocks of the factor, by the
blocked factorisation.  Both must give the same value and gradient, to
rounding, on every kind of design: crossed or nested, correlated or
diagonal, inside and on the boundary (variances of exactly zero).
"""

import dataclasses
import pickle
import warnings

import numpy as np
import pandas as pd
import pytest

from skmixed import MixedLinearRegressor, _objective
from skmixed._covariance import lower_indices
from skmixed._objective import (
    _dense_gradient,
    _gradient,
    _gradient_scalar_factors,
    factorize,
    factorize_dense,
    make_deviance,
    make_deviance_and_gradient,
    make_varpar_deviance,
    objective,
    uses_dense_path,
)


def random_design(seed, nested, slopes, covariance="unstructured"):
    """A design of two or three factors, crossed or nested, with slopes."""
    rng = np.random.default_rng(seed)
    n = int(rng.integers(150, 300))
    if nested:
        inner = int(rng.integers(20, 40))
        outer = rng.integers(0, int(rng.integers(5, 10)), inner)
        b = rng.permutation(
            np.concatenate([np.arange(inner), rng.integers(0, inner, n - inner)])
        )
        groups = pd.DataFrame({"a": outer[b], "b": b})
    else:
        groups = pd.DataFrame(
            {
                "a": rng.integers(0, int(rng.integers(10, 25)), n),
                "b": rng.integers(0, int(rng.integers(4, 9)), n),
                "c": rng.integers(0, 4, n),
            }
        )
    X = pd.DataFrame({"x": rng.normal(size=n), "z": rng.normal(size=n)})
    y = X["x"] + sum(rng.normal(size=groups[g].max() + 1)[groups[g]] for g in groups)
    y = y + rng.normal(size=n)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model = MixedLinearRegressor(
            random_slopes=slopes, covariance=covariance, max_iter=2
        ).fit(X, y, groups=groups)
    return model._design


def random_thetas(design, rng):
    """A point inside, and one with every other variance exactly zero."""
    diagonal = np.concatenate(
        [np.equal(*lower_indices(f.n_terms, f.diagonal)) for f in design.factors]
    )
    inside = rng.uniform(0.2, 2.0, diagonal.size)
    inside[~diagonal] *= rng.choice([-1.0, 1.0], (~diagonal).sum())
    boundary = inside.copy()
    boundary[np.flatnonzero(diagonal)[int(rng.integers(0, 2)) :: 2]] = 0.0
    return [inside, boundary]


DESIGNS = [
    (False, {"a": ["x"]}, "unstructured"),
    (False, {"b": ["x", "z"], "c": ["x"]}, "unstructured"),
    (False, ["x"], "diagonal"),
    (False, {}, "unstructured"),  # crossed random intercepts
    (True, {"a": ["x"]}, "unstructured"),
    (True, ["x"], {"a": "unstructured", "b": "diagonal"}),
]


@pytest.mark.parametrize("seed", range(3))
@pytest.mark.parametrize("nested, slopes, covariance", DESIGNS)
@pytest.mark.parametrize("reml", [True, False])
def test_dense_equals_blocked(seed, nested, slopes, covariance, reml):
    design = random_design(seed, nested, slopes, covariance)
    stats, factors = design.stats, design.factors
    blocked_gradient = (
        _gradient_scalar_factors if all(f.n_terms == 1 for f in factors) else _gradient
    )
    for theta in random_thetas(design, np.random.default_rng(seed)):
        blocked = factorize(stats, factors, theta)
        dense = factorize_dense(stats, factors, theta)
        value = objective(blocked, stats.n, reml)
        assert objective(dense, stats.n, reml) == pytest.approx(value, rel=1e-12)
        np.testing.assert_allclose(dense.R, blocked.R, rtol=1e-9, atol=1e-12)
        expected = blocked_gradient(blocked, stats, factors, reml)
        np.testing.assert_allclose(
            _dense_gradient(dense, stats, factors, reml),
            expected,
            rtol=1e-9,
            atol=1e-10 * max(1.0, np.abs(expected).max()),
        )


def force_path(monkeypatch, path):
    limit = 10**9 if path == "dense" else 0
    monkeypatch.setattr(_objective, "DENSE_MAX_EFFECTS", limit)
    monkeypatch.setattr(_objective, "DENSE_MAX_EFFECTS_CROSSED", limit)


@pytest.mark.parametrize("nested, slopes, covariance", DESIGNS[:2] + DESIGNS[4:])
def test_objective_functions_equal_on_both_paths(
    nested, slopes, covariance, monkeypatch
):
    """Every objective built on the factorisation: deviance, gradient, varpar."""
    design = random_design(7, nested, slopes, covariance)
    thetas = random_thetas(design, np.random.default_rng(7))
    results = {}
    for path in ("blocked", "dense"):
        force_path(monkeypatch, path)
        assert uses_dense_path(design.stats, design.factors) == (path == "dense")
        deviance = make_deviance(design, reml=True)
        value_and_gradient = make_deviance_and_gradient(design, reml=True)
        varpar = make_varpar_deviance(design, reml=False)
        results[path] = [
            (deviance(t), *value_and_gradient(t), varpar(np.append(t, 0.8)))
            for t in thetas
        ]
    for blocked, dense in zip(results["blocked"], results["dense"]):
        for a, b in zip(blocked, dense):
            np.testing.assert_allclose(b, a, rtol=1e-10, atol=1e-9)


@pytest.mark.parametrize("path", ["blocked", "dense"])
def test_invalid_theta_gives_inf_on_both_paths(path, monkeypatch):
    force_path(monkeypatch, path)
    design = random_design(0, False, {"a": ["x"]})
    k = sum(len(lower_indices(f.n_terms, f.diagonal)[0]) for f in design.factors)
    for theta in (np.full(k, np.nan), np.full(k, np.inf)):
        # inf * 0 warns on the way (the search silences it): only the result
        # is the contract.
        with np.errstate(invalid="ignore", over="ignore"):
            assert make_deviance(design, reml=True)(theta) == np.inf
            value, gradient = make_deviance_and_gradient(design, reml=True)(theta)
        assert value == np.inf
        np.testing.assert_array_equal(gradient, np.zeros(k))


def test_fits_agree_on_both_paths(monkeypatch):
    design_data = random_design(3, True, {"a": ["x"]})  # warm the imports
    del design_data
    rng = np.random.default_rng(11)
    n = 240
    groups = pd.DataFrame({"s": rng.integers(0, 20, n), "i": rng.integers(0, 8, n)})
    X = pd.DataFrame({"x": rng.normal(size=n)})
    y = (
        X["x"]
        + rng.normal(size=20)[groups["s"]] * (1 + 0.4 * X["x"])
        + rng.normal(size=8)[groups["i"]]
        + rng.normal(size=n)
    )
    fits = {}
    for path in ("blocked", "dense"):
        force_path(monkeypatch, path)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            fits[path] = MixedLinearRegressor(random_slopes={"s": ["x"]}).fit(
                X, y, groups=groups
            )
    blocked, dense = fits["blocked"], fits["dense"]
    assert dense.objective_ == pytest.approx(blocked.objective_, rel=1e-9, abs=1e-8)
    np.testing.assert_allclose(dense.theta_, blocked.theta_, rtol=1e-4, atol=1e-5)


def test_the_rule_chooses_by_size_and_coupling():
    nested = random_design(0, True, {"a": ["x"]})
    crossed = random_design(0, False, {"a": ["x"]})
    one_factor = dataclasses.replace(nested, factors=nested.factors[:1])
    assert uses_dense_path(nested.stats, nested.factors)
    assert uses_dense_path(crossed.stats, crossed.factors)
    assert not uses_dense_path(one_factor.stats, one_factor.factors)


def test_dense_statistics_follow_the_statistics():
    """A replaced or unpickled statistics object never reuses a stale cache."""
    design = random_design(1, False, {"a": ["x"]})
    stats, factors = design.stats, design.factors
    shapes = [(f.n_levels, f.n_terms) for f in factors]
    dense = stats.dense_cross_products(shapes)
    assert stats.dense_cross_products(shapes) is dense  # cached
    first = dataclasses.replace(stats.first, ZtW=2.0 * stats.first.ZtW)
    others = dataclasses.replace(stats.others, Z2tW=2.0 * stats.others.Z2tW)
    doubled = dataclasses.replace(stats, first=first, others=others)
    np.testing.assert_allclose(doubled.dense_cross_products(shapes).ZtW, 2 * dense.ZtW)
    restored = pickle.loads(pickle.dumps(stats))
    assert restored._dense is None
    np.testing.assert_array_equal(restored.dense_cross_products(shapes).ZtZ, dense.ZtZ)
