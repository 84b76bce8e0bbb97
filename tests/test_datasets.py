"""Tests for skmixed.datasets: the grouped-data simulator and the biomass data."""

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from skmixed.datasets import load_biomass, make_grouped_regression, simulate_biomass

BIOMASS_CSV = Path(__file__).parent / "data" / "biomass.csv"


def _corr(a, b):
    return float(np.corrcoef(a, b)[0, 1])


# --------------------------------------------------------------------------
# make_grouped_regression: shapes, names, dtypes
# --------------------------------------------------------------------------


def test_default_bunch_structure():
    data = make_grouped_regression(random_state=0)
    assert data.X.shape == (200, 2)
    assert list(data.X.columns) == ["x1", "x2"]
    assert data.X.dtypes.tolist() == [np.float64, np.float64]
    assert isinstance(data.y, pd.Series) and data.y.name == "y"
    assert data.y.dtype == np.float64
    assert isinstance(data.groups, pd.Series) and data.groups.name == "group"
    assert pd.api.types.is_string_dtype(data.groups)
    assert data.groups.nunique() == 20
    assert (data.groups.value_counts() == 10).all()
    assert data.groups.iloc[0] == "g00" and data.groups.iloc[-1] == "g19"
    assert list(data.frame.columns) == ["x1", "x2", "group", "y"]
    pd.testing.assert_series_equal(data.frame["y"], data.y)
    assert data.feature_names == ["x1", "x2"]
    assert (data.target_name, data.group_name) == ("y", "group")
    assert data.formula == "y ~ x1 + x2 + (1 + x1 | group)"

    p = data.params
    assert set(p) == {
        "intercept",
        "coef",
        "fixef",
        "re_cov",
        "re_sd",
        "re_corr",
        "sigma",
        "random_effects",
    }
    assert p["intercept"] == 0.0 and p["sigma"] == 1.0
    assert p["coef"].to_dict() == {"x1": 1.0, "x2": 1.0}
    assert p["fixef"].to_dict() == {"Intercept": 0.0, "x1": 1.0, "x2": 1.0}
    assert list(p["re_cov"].index) == list(p["re_cov"].columns) == ["Intercept", "x1"]
    np.testing.assert_array_equal(p["re_cov"], np.eye(2))
    re = p["random_effects"]
    assert re.shape == (20, 2) and list(re.columns) == ["Intercept", "x1"]
    assert re.index.name == "group"
    assert list(re.index) == sorted(data.groups.unique())


def test_params_cov_is_sd_corr_sd():
    data = make_grouped_regression(
        random_slopes=["x2", "x1"],
        re_sd=[2.0, 0.5, 3.0],
        re_corr=[[1, 0.2, -0.3], [0.2, 1, 0.4], [-0.3, 0.4, 1]],
        random_state=0,
    )
    p = data.params
    terms = ["Intercept", "x2", "x1"]
    assert list(p["re_cov"].columns) == terms and list(p["re_sd"].index) == terms
    sd = np.array([2.0, 0.5, 3.0])
    corr = np.array([[1, 0.2, -0.3], [0.2, 1, 0.4], [-0.3, 0.4, 1]])
    np.testing.assert_allclose(p["re_cov"], corr * np.outer(sd, sd))
    np.testing.assert_allclose(p["re_corr"], corr)
    np.testing.assert_allclose(p["re_sd"], sd)
    assert data.formula == "y ~ x1 + x2 + (1 + x2 + x1 | group)"


def test_numpy_output():
    data = make_grouped_regression(
        n_groups=3, group_size=4, as_frame=False, random_state=0
    )
    assert isinstance(data.X, np.ndarray) and data.X.shape == (12, 2)
    assert data.X.dtype == np.float64
    assert isinstance(data.y, np.ndarray) and data.y.shape == (12,)
    assert isinstance(data.groups, np.ndarray) and data.groups.shape == (12,)
    assert list(np.unique(data.groups)) == ["g00", "g01", "g02"]
    assert data.frame is None
    # Same draws as the pandas output.
    framed = make_grouped_regression(n_groups=3, group_size=4, random_state=0)
    np.testing.assert_array_equal(data.X, framed.X.to_numpy())
    np.testing.assert_array_equal(data.y, framed.y.to_numpy())
    np.testing.assert_array_equal(data.groups, framed.groups.to_numpy(dtype=str))


def test_return_X_y_groups():
    X, y, groups = make_grouped_regression(return_X_y_groups=True, random_state=3)
    data = make_grouped_regression(random_state=3)
    pd.testing.assert_frame_equal(X, data.X)
    pd.testing.assert_series_equal(y, data.y)
    pd.testing.assert_series_equal(groups, data.groups)


def test_label_padding_and_intercept_only_model():
    data = make_grouped_regression(
        n_groups=150, group_size=1, n_features=0, random_slopes=(), random_state=0
    )
    assert data.X.shape == (150, 0)
    assert data.groups.iloc[0] == "g000" and data.groups.iloc[-1] == "g149"
    assert data.formula == "y ~ 1 + (1 | group)"
    assert list(data.params["random_effects"].columns) == ["Intercept"]


def test_slopes_without_random_intercept():
    data = make_grouped_regression(
        random_intercept=False, random_slopes=[1], re_sd=0.7, random_state=0
    )
    assert data.formula == "y ~ x1 + x2 + (0 + x2 | group)"
    assert list(data.params["re_cov"].columns) == ["x2"]
    # y is exactly the fixed part + group-specific x2 slope + noise: with no
    # noise the within-group slope of x2 is coef + b.
    data = make_grouped_regression(
        random_intercept=False,
        random_slopes=[1],
        re_sd=0.7,
        noise_sd=0.0,
        random_state=0,
    )
    b = data.params["random_effects"]["x2"]
    resid = data.y - data.X["x1"] - data.X["x2"] * (1.0 + b.loc[data.groups].to_numpy())
    np.testing.assert_allclose(resid, 0.0, atol=1e-12)


# --------------------------------------------------------------------------
# make_grouped_regression: the generating process is the requested one
# --------------------------------------------------------------------------


def test_y_decomposes_into_reported_parts():
    """y = intercept + X coef + Z b + noise exactly, with the reported b."""
    data = make_grouped_regression(
        n_groups=400,
        group_size=10,
        n_features=3,
        coef=[1.5, -2.0, 0.25],
        intercept=3.0,
        random_slopes=[0, 2],
        re_sd=[1.0, 0.5, 0.8],
        re_corr=0.3,
        noise_sd=0.7,
        random_state=11,
    )
    X, y, g = data.X, data.y, data.groups
    b = data.params["random_effects"].loc[g].to_numpy()
    fitted = (
        3.0
        + X.to_numpy() @ [1.5, -2.0, 0.25]
        + b[:, 0]
        + b[:, 1] * X["x1"].to_numpy()
        + b[:, 2] * X["x3"].to_numpy()
    )
    noise = y.to_numpy() - fitted
    # The noise is N(0, 0.7^2), independent of X and of the groups.
    n = len(noise)
    assert abs(noise.mean()) < 4 * 0.7 / np.sqrt(n)
    assert noise.std() == pytest.approx(0.7, rel=4 / np.sqrt(2 * n))
    assert abs(_corr(noise, X["x1"])) < 4 / np.sqrt(n)
    group_means = pd.Series(noise).groupby(g.to_numpy()).mean()
    # Group means of pure noise have SD 0.7 / sqrt(10), not more.
    assert group_means.std() == pytest.approx(0.7 / np.sqrt(10), rel=0.15)


@pytest.mark.parametrize("rho", [-0.6, 0.0, 0.8])
def test_random_effects_have_requested_sd_and_corr(rho):
    n_groups = 4000
    sd = np.array([1.5, 0.4])
    data = make_grouped_regression(
        n_groups=n_groups,
        group_size=1,
        re_sd=sd,
        re_corr=rho,
        random_state=1,
    )
    b = data.params["random_effects"].to_numpy()
    # The sample SD has relative standard error ~ 1 / sqrt(2 n).
    np.testing.assert_allclose(
        b.std(axis=0, ddof=1), sd, rtol=5 / np.sqrt(2 * n_groups)
    )
    np.testing.assert_allclose(
        b.mean(axis=0), 0.0, atol=5 * sd.max() / np.sqrt(n_groups)
    )
    se_rho = (1 - rho**2) / np.sqrt(n_groups)
    assert _corr(b[:, 0], b[:, 1]) == pytest.approx(rho, abs=5 * se_rho + 1e-3)


def test_three_term_correlation_matrix():
    corr = np.array([[1.0, 0.5, -0.4], [0.5, 1.0, 0.1], [-0.4, 0.1, 1.0]])
    sd = np.array([1.0, 2.0, 0.5])
    data = make_grouped_regression(
        n_groups=5000,
        group_size=1,
        random_slopes=(0, 1),
        re_sd=sd,
        re_corr=corr,
        random_state=2,
    )
    b = data.params["random_effects"].to_numpy()
    np.testing.assert_allclose(np.corrcoef(b.T), corr, atol=0.05)
    np.testing.assert_allclose(b.std(axis=0), sd, rtol=0.05)


def test_re_cov_alternative_matches_sd_corr():
    sd, rho = np.array([2.0, 0.5]), -0.3
    cov = np.array([[4.0, -0.3], [-0.3, 0.25]])
    a = make_grouped_regression(re_sd=sd, re_corr=rho, random_state=5)
    b = make_grouped_regression(re_cov=cov, random_state=5)
    pd.testing.assert_frame_equal(a.params["re_cov"], b.params["re_cov"])
    np.testing.assert_allclose(a.y, b.y)
    pd.testing.assert_frame_equal(
        a.params["random_effects"], b.params["random_effects"]
    )


def test_singular_covariances_are_allowed():
    # Zero SD: no between-group variation in that term.
    data = make_grouped_regression(re_sd=[0.0, 1.0], random_state=0)
    assert (data.params["random_effects"]["Intercept"] == 0).all()
    # Perfect correlation: slopes are an exact multiple of intercepts.
    data = make_grouped_regression(re_sd=[1.0, 0.5], re_corr=1.0, random_state=0)
    re = data.params["random_effects"]
    np.testing.assert_allclose(re["x1"], 0.5 * re["Intercept"], atol=1e-12)
    data = make_grouped_regression(re_sd=[1.0, 0.5], re_corr=-1.0, random_state=0)
    re = data.params["random_effects"]
    np.testing.assert_allclose(re["x1"], -0.5 * re["Intercept"], atol=1e-12)


def test_fixed_effects_recovered_by_ols():
    # Random effects have mean zero, so OLS of y on [1, X] is consistent.
    data = make_grouped_regression(
        n_groups=1000,
        group_size=10,
        coef=[2.0, -1.0],
        intercept=5.0,
        re_sd=[0.5, 0.3],
        noise_sd=1.0,
        random_state=4,
    )
    A = np.column_stack([np.ones(len(data.y)), data.X.to_numpy()])
    est, *_ = np.linalg.lstsq(A, data.y.to_numpy(), rcond=None)
    np.testing.assert_allclose(est, [5.0, 2.0, -1.0], atol=0.06)


def test_features_standard_normal_and_independent():
    X = make_grouped_regression(
        n_groups=500, group_size=10, n_features=3, random_state=0
    ).X.to_numpy()
    np.testing.assert_allclose(X.mean(axis=0), 0, atol=0.06)
    np.testing.assert_allclose(X.std(axis=0), 1, atol=0.03)
    np.testing.assert_allclose(np.corrcoef(X.T), np.eye(3), atol=0.06)


# --------------------------------------------------------------------------
# make_grouped_regression: group sizes
# --------------------------------------------------------------------------


def test_unbalanced_group_sizes():
    data = make_grouped_regression(
        n_groups=2000, group_size=6, unbalanced=True, random_state=0
    )
    sizes = data.groups.value_counts()
    assert len(sizes) == 2000
    assert sizes.min() == 1 and sizes.max() == 11
    assert sizes.mean() == pytest.approx(6.0, abs=0.2)
    assert len(data.y) == sizes.sum()
    # Rows of a group are contiguous, in group order.
    assert data.groups.is_monotonic_increasing


def test_explicit_group_sizes():
    data = make_grouped_regression(n_groups=3, group_size=[2, 5, 1], random_state=0)
    assert data.groups.value_counts(sort=False).to_dict() == {
        "g00": 2,
        "g01": 5,
        "g02": 1,
    }


# --------------------------------------------------------------------------
# make_grouped_regression: reproducibility
# --------------------------------------------------------------------------


def test_same_seed_same_data_different_seed_different_data():
    a = make_grouped_regression(unbalanced=True, random_state=42)
    b = make_grouped_regression(unbalanced=True, random_state=42)
    c = make_grouped_regression(unbalanced=True, random_state=43)
    pd.testing.assert_frame_equal(a.frame, b.frame)
    pd.testing.assert_frame_equal(
        a.params["random_effects"], b.params["random_effects"]
    )
    assert not np.array_equal(a.X.to_numpy()[:5], c.X.to_numpy()[:5])


def test_generator_and_randomstate_accepted():
    a = make_grouped_regression(random_state=np.random.default_rng(7))
    b = make_grouped_regression(random_state=np.random.default_rng(7))
    pd.testing.assert_frame_equal(a.frame, b.frame)
    c = make_grouped_regression(random_state=np.random.RandomState(7))
    d = make_grouped_regression(random_state=np.random.RandomState(7))
    pd.testing.assert_frame_equal(c.frame, d.frame)


def test_common_random_numbers_across_parameters():
    base = make_grouped_regression(random_state=9)
    other = make_grouped_regression(
        coef=[3.0, 0.0], intercept=1.0, re_sd=2.0, noise_sd=0.1, random_state=9
    )
    pd.testing.assert_frame_equal(base.X, other.X)
    np.testing.assert_allclose(
        other.params["random_effects"], 2.0 * base.params["random_effects"]
    )


# --------------------------------------------------------------------------
# make_grouped_regression: argument validation
# --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"n_groups": 0}, "n_groups must be >= 1"),
        ({"n_groups": 2.5}, "n_groups must be an integer"),
        ({"group_size": 0}, "group_size must be >= 1"),
        ({"group_size": [3, 4]}, r"one size per group \(n_groups=20\)"),
        ({"n_groups": 2, "group_size": [3, 0]}, "group_size entries must be >= 1"),
        (
            {"n_groups": 2, "group_size": [3, 4], "unbalanced": True},
            "cannot be combined with explicit group sizes",
        ),
        ({"n_features": -1}, "n_features must be >= 0"),
        ({"coef": [1.0, 2.0, 3.0]}, r"coef .* one entry per feature"),
        ({"coef": [1.0, np.nan]}, "coef contains non-finite"),
        ({"intercept": np.inf}, "intercept must be finite"),
        ({"noise_sd": -1.0}, "noise_sd must be a finite standard deviation >= 0"),
        ({"re_sd": -0.5}, "re_sd must contain finite standard deviations >= 0"),
        ({"re_sd": [1.0, -0.5]}, "re_sd must contain finite standard deviations"),
        ({"re_sd": [1.0, 2.0, 3.0]}, r"re_sd .* one entry per random-effect term"),
        ({"re_corr": 1.5}, r"re_corr must be a correlation in \[-1, 1\]"),
        ({"re_corr": -1.01}, r"re_corr must be a correlation in \[-1, 1\]"),
        ({"random_slopes": (0, 1), "re_corr": -0.8}, r"at least -1/\(q-1\)"),
        ({"re_corr": [[1, 0.5], [0.4, 1]]}, "re_corr must be a symmetric matrix"),
        ({"re_corr": [[2, 0.5], [0.5, 1]]}, "re_corr must have ones on its diagonal"),
        ({"re_corr": [[1, 1.5], [1.5, 1]]}, r"re_corr entries must be correlations"),
        (
            {
                "random_slopes": (0, 1),
                "re_corr": [[1, 0.9, -0.9], [0.9, 1, 0.9], [-0.9, 0.9, 1]],
            },
            "re_corr is not a valid correlation matrix: it is not positive semi-def",
        ),
        ({"re_corr": np.eye(3)}, r"re_corr must be a number or a 2x2 matrix"),
        (
            {"re_cov": [[1.0, 2.0], [2.0, 1.0]]},
            "re_cov is not a valid covariance matrix: it is not positive semi-def",
        ),
        ({"re_cov": [[-1.0, 0.0], [0.0, 1.0]]}, "re_cov has a negative variance"),
        ({"re_cov": [[1.0, 0.1], [0.2, 1.0]]}, "re_cov must be a symmetric matrix"),
        ({"re_cov": np.eye(3)}, r"re_cov must be a 2x2 matrix"),
        ({"re_cov": np.eye(2), "re_sd": 1.0}, "either re_cov or re_sd/re_corr"),
        ({"random_slopes": [2]}, "feature index 2 is out of range for n_features=2"),
        ({"random_slopes": ["x9"]}, "unknown feature name 'x9'"),
        ({"random_slopes": [0, "x1"]}, "lists feature 'x1' twice"),
        ({"random_slopes": [1.0]}, "0-based feature indices or feature names"),
        ({"n_features": 0}, r"out of range for n_features=0.*random_slopes=\(\)"),
        ({"random_intercept": False, "random_slopes": ()}, "no random effects"),
        ({"random_state": "seed"}, "random_state must be"),
        ({"as_frame": "yes"}, "as_frame must be True or False"),
    ],
)
def test_invalid_arguments(kwargs, match):
    with pytest.raises(ValueError, match=match):
        make_grouped_regression(**kwargs)


# --------------------------------------------------------------------------
# load_biomass / simulate_biomass
# --------------------------------------------------------------------------


def test_load_biomass_matches_csv():
    data = load_biomass()
    csv = pd.read_csv(BIOMASS_CSV)
    assert data.frame.shape == (100, 4)
    assert list(data.frame.columns) == ["Temp", "N", "Site", "Biomass"]
    pd.testing.assert_frame_equal(data.frame, csv, check_dtype=False)
    assert list(data.X.columns) == ["Temp", "N"]
    assert data.X.dtypes.tolist() == [np.float64, np.float64]
    assert data.y.name == "Biomass" and data.y.dtype == np.float64
    assert data.groups.name == "Site"
    assert data.groups.nunique() == 20
    assert (data.groups.value_counts() == 5).all()
    assert set(data.groups) == {f"Site{j}" for j in range(1, 21)}
    assert data.formula == "Biomass ~ Temp + N + (1 + Temp | Site)"
    assert (data.target_name, data.group_name) == ("Biomass", "Site")
    for text in (
        "set.seed(10)",
        "1.2",
        "0.5",
        "Biomass ~ Temp + N + (1 + Temp | Site)",
    ):
        assert text in data.DESCR
    p = data.params
    assert p["fixef"].to_dict() == {"Intercept": 10.0, "Temp": 0.3, "N": 2.2}
    assert p["re_sd"].to_dict() == {"Intercept": 1.2, "Temp": 0.5}
    np.testing.assert_allclose(p["re_cov"], np.diag([1.44, 0.25]))
    assert p["sigma"] == 1.0
    re = p["random_effects"]
    assert re.shape == (20, 2) and list(re.columns) == ["Intercept", "Temp"]
    assert re.index.name == "Site" and list(re.index) == list(data.groups.unique())
    # Given the true random effects, what is left of Biomass is N(0, 1) noise.
    b = re.loc[data.groups].to_numpy()
    X = data.X
    noise = data.y - (10 + b[:, 0] + (0.3 + b[:, 1]) * X["Temp"] + 2.2 * X["N"])
    assert abs(noise.mean()) < 0.3 and 0.75 < noise.std() < 1.25


def _r_set_seed_stream(seed):
    """Replay R's default RNG after set.seed(seed): (runif, rnorm) samplers.

    Mersenne-Twister seeded with R's linear-congruential scrambling; runif is
    the 32-bit output times 2^-32; rnorm is R's INVERSION method.
    """
    from scipy.special import ndtri

    s = seed
    for _ in range(50):
        s = (69069 * s + 1) & 0xFFFFFFFF
    key = []
    for _ in range(625):
        s = (69069 * s + 1) & 0xFFFFFFFF
        key.append(s)
    bitgen = np.random.MT19937()
    bitgen.state = {
        "bit_generator": "MT19937",
        "state": {"key": np.array(key[1:], dtype=np.uint32), "pos": 624},
    }

    def unif_rand():
        return float(bitgen.random_raw()) * 2.3283064365386963e-10

    def runif(n, a, b):
        return np.array([a + (b - a) * unif_rand() for _ in range(n)])

    def rnorm(n, mean, sd):
        big = 134217728  # 2^27
        out = []
        for _ in range(n):
            u = int(big * unif_rand()) + unif_rand()
            out.append(ndtri(u / big))
        return mean + sd * np.array(out)

    return runif, rnorm


def test_load_biomass_random_effects_replay_r():
    """The stored random effects are R's: replaying set.seed(10) gives the CSV."""
    runif, rnorm = _r_set_seed_stream(10)
    temp, nitrogen = runif(100, -2, 2), runif(100, -2, 2)
    rnd_int, rnd_slp = rnorm(20, 0, 1.2), rnorm(20, 0, 0.5)
    site = np.repeat(np.arange(20), 5)
    mus = 10 + rnd_int[site] + (0.3 + rnd_slp[site]) * temp + 2.2 * nitrogen
    biomass = rnorm(100, mus, 1)
    data = load_biomass()
    np.testing.assert_allclose(temp, data.X["Temp"], rtol=0, atol=1e-12)
    np.testing.assert_allclose(nitrogen, data.X["N"], rtol=0, atol=1e-12)
    np.testing.assert_allclose(biomass, data.y, rtol=0, atol=1e-11)
    re = data.params["random_effects"]
    np.testing.assert_allclose(re["Intercept"], rnd_int, rtol=0, atol=1e-12)
    np.testing.assert_allclose(re["Temp"], rnd_slp, rtol=0, atol=1e-12)


def test_load_biomass_numpy_and_tuple():
    data = load_biomass(as_frame=False)
    assert data.frame is None
    assert data.X.shape == (100, 2) and data.X.dtype == np.float64
    assert data.y.shape == (100,) and data.groups.shape == (100,)
    assert data.groups[0] == "Site1"
    X, y, groups = load_biomass(return_X_y_groups=True)
    pd.testing.assert_frame_equal(X, load_biomass().X)
    assert len(y) == len(groups) == 100


def test_simulate_biomass_structure_and_process():
    data = simulate_biomass(n_sites=1000, plants_per_site=5, random_state=0)
    assert data.frame.shape == (5000, 4)
    assert list(data.frame.columns) == ["Temp", "N", "Site", "Biomass"]
    assert data.groups.iloc[0] == "Site1" and data.groups.iloc[-1] == "Site1000"
    assert (data.groups.value_counts() == 5).all()
    assert data.X["Temp"].between(-2, 2).all() and data.X["N"].between(-2, 2).all()
    # Uniform(-2, 2) has SD 4/sqrt(12).
    np.testing.assert_allclose(data.X.std(), 4 / np.sqrt(12), rtol=0.05)
    re = data.params["random_effects"]
    assert re.shape == (1000, 2) and list(re.columns) == ["Intercept", "Temp"]
    assert re.index.name == "Site"
    np.testing.assert_allclose(re.std(), [1.2, 0.5], rtol=0.1)
    assert abs(_corr(re["Intercept"], re["Temp"])) < 0.1
    b = re.loc[data.groups].to_numpy()
    noise = (
        data.y.to_numpy()
        - (
            10 + b[:, 0] + (0.3 + b[:, 1]) * data.X["Temp"] + 2.2 * data.X["N"]
        ).to_numpy()
    )
    assert noise.std() == pytest.approx(1.0, rel=0.04)
    assert abs(noise.mean()) < 0.06
    # Wrong slopes would leave a trace of Temp or N in the "noise".
    assert abs(_corr(noise, data.X["Temp"])) < 0.06
    assert abs(_corr(noise, data.X["N"])) < 0.06


def test_simulate_biomass_reproducible_and_defaults():
    a = simulate_biomass(random_state=1)
    b = simulate_biomass(random_state=1)
    pd.testing.assert_frame_equal(a.frame, b.frame)
    assert a.frame.shape == (100, 4)
    assert not np.allclose(a.frame["Temp"], load_biomass().frame["Temp"])
    X, y, groups = simulate_biomass(
        as_frame=False, return_X_y_groups=True, random_state=1
    )
    np.testing.assert_array_equal(X, a.X.to_numpy())
    with pytest.raises(ValueError, match="n_sites must be >= 1"):
        simulate_biomass(n_sites=0)
    with pytest.raises(ValueError, match="plants_per_site must be an integer"):
        simulate_biomass(plants_per_site=2.5)
