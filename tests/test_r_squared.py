"""Nakagawa's R² and the ICC against performance 0.10.2 (insight 0.19.0).

References by ``tests/data/emmeans/make_emmeans.R``: ``r2_nakagawa``, ``icc``
and ``insight::get_variance`` of polished REML fits of nlme's Oats (nitro
numeric and a factor), Orthodont (a correlated random slope), lme4's cake,
ChickWeight (``poly(Time, 2)``) and the tutorial's biomass data (a random
slope, fitted here from arrays).  Tolerance 1e-6 relative.  Then the
variance of the random part against its definition on the dense ``Z Sigma
Z'``, and the known limits: no fixed effect beyond the intercept (marginal
R² 0), a singular fit (performance's NaN and warning).
"""

import warnings

import numpy as np
import pandas as pd
import pytest

from skmixed import MixedLinearRegressor
from skmixed.inference import icc, r_squared
from skmixed.inference._r_squared import variance_components

from .test_marginal_means import ANALYSES, DATA, fit, load_frame, reference

RTOL = 1e-6
CASES = [*ANALYSES, "biomass"]


def fitted(name):
    if name != "biomass":
        return fit(name)
    frame = load_frame("biomass")
    return MixedLinearRegressor(random_slopes=["Temp"]).fit(
        frame[["Temp", "N"]], frame["Biomass"], groups=frame["Site"]
    )


def test_slopes_not_in_the_fixed_part_are_left_out():
    """sleepstudy's (Days | Subject) without Days as a fixed effect: as
    performance, only the intercept's variance counts (with a warning).

    The criterion is flat at this optimum: our fit's is 1e-13 (relative) from
    lme4's polished one with theta 3e-6 away, and the R² moves by as much;
    1e-5 here."""
    ref = reference("sleepstudy_slope_only")
    rtol = 1e-5
    with pytest.warns(UserWarning, match="Random slopes not present"):
        r2 = r_squared(fit("sleepstudy_slope_only"))
    assert r2.marginal == pytest.approx(0.0, abs=1e-12)
    assert r2.conditional == pytest.approx(ref["r2_nakagawa"]["conditional"], rel=rtol)
    with pytest.warns(UserWarning, match="Random slopes not present"):
        result = icc(fit("sleepstudy_slope_only"))
    assert result.adjusted == pytest.approx(ref["icc"]["adjusted"], rel=rtol)
    assert result.unadjusted == pytest.approx(ref["icc"]["unadjusted"], rel=rtol)


@pytest.mark.parametrize("name", CASES)
def test_r_squared_is_performance(name):
    ref = reference(name)
    r2 = r_squared(fitted(name))
    assert r2.marginal == pytest.approx(ref["r2_nakagawa"]["marginal"], rel=RTOL)
    assert r2.conditional == pytest.approx(ref["r2_nakagawa"]["conditional"], rel=RTOL)


@pytest.mark.parametrize("name", CASES)
def test_icc_is_performance(name):
    ref = reference(name)
    result = icc(fitted(name))
    assert result.adjusted == pytest.approx(ref["icc"]["adjusted"], rel=RTOL)
    assert result.unadjusted == pytest.approx(ref["icc"]["unadjusted"], rel=RTOL)


@pytest.mark.parametrize("name", CASES)
def test_variance_components_are_insight(name):
    ref = reference(name)["variance"]
    parts = variance_components(fitted(name))
    assert parts.fixed == pytest.approx(ref["fixed"], rel=RTOL)
    assert parts.random == pytest.approx(ref["random"], rel=RTOL)
    assert parts.residual == pytest.approx(ref["residual"], rel=RTOL)


def test_random_variance_is_mean_diagonal_of_z_sigma_z():
    """Orthodont's (age | Subject): mean of diag(Z Sigma Z') over the rows."""
    model = fitted("orthodont")
    age = load_frame("orthodont")["age"].to_numpy()
    Z = np.column_stack([np.ones_like(age), age])
    Sigma = model.random_effects_cov_["Subject"].to_numpy()
    expected = np.mean(np.diag(Z @ Sigma @ Z.T))
    assert variance_components(model).random == pytest.approx(expected, rel=1e-12)
    fixed = model.predict(load_frame("orthodont"), random_effects="none")
    assert variance_components(model).fixed == pytest.approx(
        np.var(fixed, ddof=1), rel=1e-12
    )


def test_intercept_only_model_has_zero_marginal_r_squared():
    rng = np.random.default_rng(1)
    groups = np.repeat(np.arange(10), 6)
    y = 3.0 + rng.normal(size=10)[groups] + rng.normal(size=60)
    model = MixedLinearRegressor().fit(np.zeros((60, 0)), y, groups=groups)
    r2, result = r_squared(model), icc(model)
    assert r2.marginal == 0.0
    assert result.adjusted == pytest.approx(result.unadjusted)
    var = next(iter(model.random_effects_cov_.values())).iloc[0, 0]
    assert r2.conditional == pytest.approx(var / (var + model.sigma_**2), rel=1e-12)


def test_singular_fit_has_no_random_variance():
    """As performance: a variance at zero gives NaN (with a warning)."""
    data = pd.read_csv(DATA / "dyestuff2.csv")
    y = data["Yield"].to_numpy()
    groups = data["Batch"].to_numpy()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        model = MixedLinearRegressor().fit(np.zeros((len(y), 0)), y, groups=groups)
    assert model.is_singular_
    with pytest.warns(UserWarning, match="singular"):
        r2 = r_squared(model)
    assert r2.marginal == pytest.approx(0.0, abs=1e-20) and np.isnan(r2.conditional)
    with pytest.warns(UserWarning, match="singular"):
        assert np.isnan(icc(model).adjusted)


def test_printing():
    r2, result = r_squared(fitted("oats")), icc(fitted("oats"))
    assert str(r2).splitlines() == [
        "# R2 for Mixed Models",
        "",
        "  Conditional R2: 0.787",
        "     Marginal R2: 0.381",
    ]
    assert str(result).splitlines() == [
        "# Intraclass Correlation Coefficient",
        "",
        "    Adjusted ICC: 0.657",
        "  Unadjusted ICC: 0.406",
    ]
    assert "<table" in r2._repr_html_() and "<table" in result._repr_html_()
    assert list(r2.to_series().index) == ["conditional", "marginal"]
    assert list(result.to_series().index) == ["adjusted", "unadjusted"]
