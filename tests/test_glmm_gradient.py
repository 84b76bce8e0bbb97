"""The exact gradient of the Laplace deviance against central differences."""

from dataclasses import replace

import numpy as np
import pandas as pd
import pytest

from skmixed._agq_gradient import agq_gradient
from skmixed._crossed_gradient import applies as crossed_applies
from skmixed._crossed_gradient import crossed_gradient
from skmixed._design import Factor
from skmixed._family import make_family
from skmixed._glmm_fit import central_gradient
from skmixed._laplace_gradient import (
    _dense_gradient,
    has_exact_gradient,
    laplace_gradient,
)
from skmixed._pirls import Rows, agq_deviance, laplace_deviance, pirls


def _rows(family, link, n_factors, diagonal, seed):
    """Simulated rows: a random slope on the first factor, intercepts after."""
    rng = np.random.default_rng(seed)
    n = 300
    x = rng.normal(size=n)
    X = np.column_stack([np.ones(n), x, rng.normal(size=n)])
    sizes = [12, 7, 5][:n_factors]
    codes = [rng.integers(0, m, n) for m in sizes]
    eta = 0.2 + 0.5 * x
    for c, m in zip(codes, sizes):
        eta = eta + rng.normal(0, 0.7, m)[c]
    family = make_family(family, link)
    if family.name == "binomial":
        y = (rng.random(n) < 1 / (1 + np.exp(-eta))).astype(float)
    else:
        y = rng.poisson(np.exp(eta)).astype(float)
    factors, Zs = [], []
    for k, m in enumerate(sizes):
        slope = k == 0
        names = ["Intercept", "x"] if slope else ["Intercept"]
        levels = pd.Index(np.arange(m))
        factors.append(Factor(f"g{k}", levels, [1] * slope, names, True, diagonal))
        Zs.append([None, x] if slope else [None])
    weights = rng.integers(1, 3, n).astype(float)
    offset = rng.normal(0, 0.1, n)
    log_constant = family.log_constant(y, weights)
    return Rows(X, y, weights, offset, codes, Zs, factors, family, log_constant)


def _parameters(rows, seed):
    rng = np.random.default_rng(seed)
    theta = []
    for f in rows.factors:
        if f.n_terms == 1 or f.diagonal:
            theta += list(rng.uniform(0.3, 1.2, f.n_terms))
        else:  # lower triangle by columns: T11, T21, T22
            theta += [
                rng.uniform(0.3, 1.2),
                rng.uniform(-0.4, 0.4),
                rng.uniform(0.2, 0.8),
            ]
    beta = rng.normal(0, 0.3, rows.X.shape[1])
    return np.asarray(theta), beta


LINKS = [
    ("binomial", "logit"),
    ("poisson", "log"),
    ("binomial", "probit"),
    ("binomial", "cloglog"),
]


@pytest.mark.parametrize("family,link", LINKS)
@pytest.mark.parametrize("n_factors", [1, 3])
@pytest.mark.parametrize("diagonal", [False, True])
def test_gradient_matches_central_differences(family, link, n_factors, diagonal):
    rows = _rows(family, link, n_factors, diagonal, seed=n_factors)
    assert has_exact_gradient(rows, 1)
    theta, beta = _parameters(rows, seed=7)
    k = theta.size

    def deviance(x):
        return laplace_deviance(pirls(rows, x[:k], x[k:]))

    modes = pirls(rows, theta, beta)
    exact = laplace_gradient(rows, theta, beta, modes)
    numeric = central_gradient(deviance, np.concatenate([theta, beta]))
    np.testing.assert_allclose(exact, numeric, rtol=1e-5, atol=1e-5)


def _scalar_rows(family, link):
    """A random intercept only (what quadrature integrates)."""
    rows = _rows(family, link, 1, False, seed=2)
    factor = rows.factors[0]
    rows.factors = [replace(factor, slope_columns=[], term_names=["Intercept"])]
    rows.Zs = [[None]]
    return rows


@pytest.mark.parametrize("family,link", LINKS)
@pytest.mark.parametrize("n_points", [1, 5, 15])
def test_quadrature_gradient_matches_central_differences(family, link, n_points):
    rows = _scalar_rows(family, link)
    assert has_exact_gradient(rows, n_points)
    theta, beta = np.array([0.8]), np.array([0.1, 0.3, -0.2])

    def deviance(x):
        return agq_deviance(rows, pirls(rows, x[:1], x[1:]), n_points)

    modes = pirls(rows, theta, beta)
    exact = agq_gradient(rows, theta, beta, modes, n_points)
    numeric = central_gradient(deviance, np.concatenate([theta, beta]))
    np.testing.assert_allclose(exact, numeric, rtol=1e-5, atol=1e-5)
    if n_points == 1:  # one node: the Laplace approximation (to the modes' 1e-9)
        laplace = laplace_gradient(rows, theta, beta, modes)
        np.testing.assert_allclose(exact, laplace, rtol=1e-7)


@pytest.mark.parametrize("family,link", LINKS)
def test_crossed_gradient_equals_the_dense_one(family, link):
    # Three one-term factors: the selected-inverse path, against the dense
    # one and against central differences.
    rows = _rows(family, link, 3, False, seed=4)
    first = rows.factors[0]
    rows.factors = [replace(first, slope_columns=[], term_names=["Intercept"])]
    rows.factors += _rows(family, link, 3, False, seed=4).factors[1:]
    rows.Zs = [[None]] + rows.Zs[1:]
    assert crossed_applies(rows)
    theta, beta = np.array([0.8, 0.5, 0.3]), np.array([0.1, 0.3, -0.2])
    modes = pirls(rows, theta, beta)
    crossed = crossed_gradient(rows, modes)
    np.testing.assert_allclose(crossed, _dense_gradient(rows, modes), rtol=1e-10)

    def deviance(x):
        return laplace_deviance(pirls(rows, x[:3], x[3:]))

    numeric = central_gradient(deviance, np.concatenate([theta, beta]))
    np.testing.assert_allclose(crossed, numeric, rtol=1e-5, atol=1e-5)
