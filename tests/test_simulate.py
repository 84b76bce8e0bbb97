"""simulate(): the moments of the simulated responses, levels, reproducibility."""

import warnings

import numpy as np
import pandas as pd
import pytest

from skmixed import MixedLinearRegressor
from skmixed.inference import simulate
from skmixed.inference._simulate import seed_sequence

N_SIM = 4000


@pytest.fixture(scope="module")
def model():
    """Random intercept and slope, correlated: Sigma is a full 2 x 2 matrix."""
    rng = np.random.default_rng(0)
    m, per = 15, 8
    groups = np.repeat([f"g{i:02d}" for i in range(m)], per)
    x = rng.normal(size=m * per)
    b = rng.multivariate_normal([0, 0], [[1.0, 0.3], [0.3, 0.5]], size=m)
    codes = np.repeat(np.arange(m), per)
    y = 1 + 2 * x + b[codes, 0] + b[codes, 1] * x + rng.normal(scale=0.5, size=x.size)
    X = pd.DataFrame({"x": x})
    return MixedLinearRegressor(random_slopes=["x"]).fit(X, y, groups=groups)


def sigma_matrix(model):
    return model.random_effects_cov_["group"].to_numpy()


def test_new_effects_give_the_marginal_moments(model):
    # Two rows of level g00, one of g01: mean X beta, covariance
    # z_i' Sigma z_j + sigma^2 [i == j] within a level, 0 across levels.
    X = pd.DataFrame({"x": [0.5, -1.0, 2.0]})
    groups = ["g00", "g00", "g01"]
    sims = simulate(model, X, groups, n=N_SIM, random_state=1)
    assert sims.shape == (3, N_SIM)
    Z = np.column_stack([np.ones(3), X["x"]])
    expected = Z @ sigma_matrix(model) @ Z.T * [[1, 1, 0], [1, 1, 0], [0, 0, 1]]
    expected += model.sigma_**2 * np.eye(3)
    standard_error = np.sqrt(np.diag(expected) / N_SIM)
    assert np.all(np.abs(sims.mean(axis=1) - model.predict(X)) < 4 * standard_error)
    np.testing.assert_allclose(np.cov(sims), expected, rtol=0.1, atol=0.05)


def test_fitted_effects_keep_the_blups(model):
    X = pd.DataFrame({"x": [0.5, -1.0]})
    groups = ["g03", "g03"]
    sims = simulate(model, X, groups, n=N_SIM, random_state=2, use_re="fitted")
    np.testing.assert_allclose(
        sims.mean(axis=1), model.predict(X, groups), atol=4 * model.sigma_ / 60
    )
    np.testing.assert_allclose(
        np.cov(sims), model.sigma_**2 * np.eye(2), rtol=0.1, atol=0.02
    )


def test_unseen_labels_share_a_draw_and_no_groups_means_independent_rows(model):
    X = pd.DataFrame({"x": [0.0, 0.0, 0.0]})
    sd2 = sigma_matrix(model)[0, 0]
    for use_re in ["new", "fitted"]:  # unseen levels are drawn in both modes
        sims = simulate(
            model, X, ["new", "new", "other"], n=N_SIM, random_state=3, use_re=use_re
        )
        cov = np.cov(sims)
        assert cov[0, 1] == pytest.approx(sd2, rel=0.12)
        assert abs(cov[0, 2]) < 0.1 * sd2
    cov = np.cov(simulate(model, X, n=N_SIM, random_state=4))
    np.testing.assert_allclose(np.diag(cov), sd2 + model.sigma_**2, rtol=0.1)
    assert np.abs(cov[np.triu_indices(3, 1)]).max() < 0.1 * sd2


def test_singular_fit_simulates_residual_noise_only():
    rng = np.random.default_rng(5)
    groups = np.repeat(np.arange(6), 5)
    y = 3 + rng.normal(size=30)  # no group effect at all
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model = MixedLinearRegressor().fit(np.empty((30, 0)), y, groups=groups)
    if not model.is_singular_:
        pytest.skip("this sample gave a non-zero group variance")
    sims = simulate(model, np.empty((2, 0)), [0, 1], n=N_SIM, random_state=0)
    np.testing.assert_allclose(np.cov(sims), model.sigma_**2 * np.eye(2), atol=0.1)


def test_reproducible_and_seedable(model):
    X, groups = pd.DataFrame({"x": [0.1, 0.2]}), ["g00", "g05"]
    first = simulate(model, X, groups, n=3, random_state=7)
    np.testing.assert_array_equal(
        first, simulate(model, X, groups, n=3, random_state=7)
    )
    assert not np.array_equal(first, simulate(model, X, groups, n=3, random_state=8))
    np.testing.assert_array_equal(
        first, model.simulate(X, groups, n=3, random_state=np.random.SeedSequence(7))
    )
    generator = np.random.default_rng(0)
    a = simulate(model, X, groups, random_state=generator)
    b = simulate(model, X, groups, random_state=generator)  # it advanced
    assert not np.array_equal(a, b)
    assert simulate(model, X, groups, random_state=np.random.RandomState(0)).shape == (
        2,
        1,
    )


def test_without_random_effects():
    rng = np.random.default_rng(6)
    X = rng.normal(size=(40, 1))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model = MixedLinearRegressor().fit(X, X[:, 0] + rng.normal(size=40))
    sims = simulate(model, X[:2], n=N_SIM, random_state=0)
    np.testing.assert_allclose(sims.std(axis=1), model.sigma_, rtol=0.05)


@pytest.mark.parametrize(
    "kwargs, error, match",
    [
        ({"n": 0}, ValueError, "n must be"),
        ({"n": 1.5}, ValueError, "n must be"),
        ({"use_re": "blup"}, ValueError, "use_re"),
        ({"random_state": "seed"}, TypeError, "random_state"),
    ],
)
def test_errors(model, kwargs, error, match):
    with pytest.raises(error, match=match):
        simulate(model, pd.DataFrame({"x": [0.0]}), ["g00"], **kwargs)


def test_seed_sequence_rejects_bool():
    with pytest.raises(TypeError):
        seed_sequence(True)
