"""Likelihood-ratio tests (lme4's ``anova``) on sleepstudy and biomass.

The expected ML deviances, AIC and BIC are lme4's (the ML fits of the
sleepstudy_intercept and sleepstudy reference cases); lme4 prints for
``anova(lmer(Reaction ~ Days + (1 | Subject)), lmer(Reaction ~ Days + (Days |
Subject)))``: npar 4 and 6, logLik -897.04 and -875.97, Chisq 42.139 on 2 df,
Pr(>Chisq) 7.072e-10.
"""

import warnings

import numpy as np
import pytest
from scipy import stats

from skmixed import MixedLinearRegressor, anova
from skmixed.inference._lrt import COLUMNS, ml_deviance

from ._fits import fitted_case
from .conftest import load_case

# Some reduced biomass models are singular fits: not what is tested here.
pytestmark = pytest.mark.filterwarnings("ignore:boundary \\(singular\\) fit")


def fit(case, method="reml", **params):
    model = MixedLinearRegressor(method=method, **params)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return model.fit(case.X, case.y, groups=case.groups)


@pytest.fixture(scope="module")
def sleepstudy():
    case = load_case("sleepstudy")
    return case, fit(case), fit(case, random_slopes=["Days"])


def test_sleepstudy_matches_lme4(sleepstudy):
    _, small, large = sleepstudy
    table = anova(small, large, names=["a", "b"])
    assert list(table.columns) == COLUMNS
    assert list(table.index) == ["a", "b"]
    refs = [
        load_case(name).fit_reference("ML")
        for name in ("sleepstudy_intercept", "sleepstudy")
    ]
    dev_small, dev_large = (r["objective"] for r in refs)
    np.testing.assert_allclose(table["deviance"], [dev_small, dev_large], rtol=1e-8)
    assert table["npar"].tolist() == [4, 6]
    np.testing.assert_allclose(table["AIC"], [r["aic"] for r in refs], rtol=1e-8)
    np.testing.assert_allclose(table["BIC"], [r["bic"] for r in refs], rtol=1e-8)
    np.testing.assert_allclose(table["logLik"], [-897.04, -875.97], atol=0.005)
    chisq = table["Chisq"].iloc[1]
    assert chisq == pytest.approx(dev_small - dev_large, rel=1e-6)
    assert chisq == pytest.approx(42.139, abs=5e-4)
    assert table["Df"].iloc[1] == 2
    assert table["Pr(>Chisq)"].iloc[1] == pytest.approx(7.072e-10, rel=1e-3)
    assert table.iloc[0, 5:].isna().all()


def test_refit_equals_ml_fit(sleepstudy):
    # Brute force: the ML refit of a REML fit is the ML fit itself.
    case, small, large = sleepstudy
    for reml_model, params in [(small, {}), (large, {"random_slopes": ["Days"]})]:
        ml_model = fit(case, method="ml", **params)
        assert ml_deviance(reml_model) == pytest.approx(ml_model.objective_, rel=1e-9)
    ml_table = anova(
        fit(case, method="ml"), fit(case, method="ml", random_slopes=["Days"])
    )
    np.testing.assert_allclose(
        ml_table.to_numpy(dtype=float),
        anova(small, large).to_numpy(dtype=float),
        rtol=1e-7,
    )


def test_sorted_by_number_of_parameters(sleepstudy):
    _, small, large = sleepstudy
    table = anova(large, small)
    assert list(table.index) == ["m1", "m0"]
    assert table["npar"].tolist() == [4, 6]


def test_three_models_are_tested_in_sequence(sleepstudy):
    case, small, large = sleepstudy
    middle = fit(case, random_slopes=["Days"], covariance="diagonal")
    table = anova(small, middle, large, names=["int", "diag", "corr"])
    assert table["npar"].tolist() == [4, 5, 6]
    chisq = 2 * np.diff(table["logLik"])
    np.testing.assert_allclose(table["Chisq"].iloc[1:], np.maximum(chisq, 0))
    np.testing.assert_allclose(
        table["Pr(>Chisq)"].iloc[1:], stats.chi2.sf(table["Chisq"].iloc[1:], 1)
    )


def test_fixed_effect_test_on_biomass():
    # Dropping the fixed effect N: the full model's ML deviance is lme4's.
    case, full = fitted_case("biomass", "REML")
    reduced = MixedLinearRegressor(random_slopes=["Temp"]).fit(
        case.X[["Temp"]], case.y, groups=case.groups
    )
    table = anova(reduced, full)
    assert table["deviance"].iloc[1] == pytest.approx(
        case.fit_reference("ML")["objective"], rel=1e-8
    )
    assert table["Df"].iloc[1] == 1
    assert table["Pr(>Chisq)"].iloc[1] < 1e-10


def test_against_model_without_random_effects(sleepstudy):
    # As lme4's anova(lmer, lm): the ML deviance of least squares is
    # n log(2 pi RSS / n) + n.
    case, small, _ = sleepstudy
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ols = MixedLinearRegressor().fit(case.X, case.y)
    table = anova(ols, small)
    n = len(case.y)
    X = np.column_stack([np.ones(n), case.X])
    rss = np.sum((case.y - X @ np.linalg.lstsq(X, case.y, rcond=None)[0]) ** 2)
    assert table["deviance"].iloc[0] == pytest.approx(
        n * np.log(2 * np.pi * rss / n) + n, rel=1e-10
    )
    assert table["npar"].tolist() == [3, 4]


def test_refit_false_compares_reml_criteria(sleepstudy):
    _, small, large = sleepstudy
    table = anova(small, large, refit=False)
    np.testing.assert_allclose(table["deviance"], [small.objective_, large.objective_])


def test_refit_false_refuses_different_fixed_effects():
    case, full = fitted_case("biomass", "REML")
    reduced = MixedLinearRegressor(random_slopes=["Temp"]).fit(
        case.X[["Temp"]], case.y, groups=case.groups
    )
    with pytest.raises(ValueError, match="REML criteria"):
        anova(reduced, full, refit=False)
    ml = fitted_case("biomass", "ML")[1]
    with pytest.raises(ValueError, match="same method"):
        anova(ml, full, refit=False)


def test_needs_two_models(sleepstudy):
    # one model gives the F table of its terms (tests/test_anova_terms.py)
    with pytest.raises(ValueError, match="at least two"):
        anova()


def test_not_a_model(sleepstudy):
    _, small, _ = sleepstudy
    with pytest.raises(TypeError, match="not a mixed model of skmixed"):
        anova(small, "model")


def test_names_must_match(sleepstudy):
    _, small, large = sleepstudy
    with pytest.raises(ValueError, match="one distinct label"):
        anova(small, large, names=["a"])
    with pytest.raises(ValueError, match="one distinct label"):
        anova(small, large, names=["a", "a"])


def test_different_data_is_refused(sleepstudy):
    case, small, large = sleepstudy
    fewer = MixedLinearRegressor().fit(
        case.X.iloc[:-18], case.y.iloc[:-18], groups=case.groups.iloc[:-18]
    )
    with pytest.raises(ValueError, match="numbers of observations"):
        anova(fewer, large)
    other_y = MixedLinearRegressor().fit(case.X, case.y * 2, groups=case.groups)
    with pytest.raises(ValueError, match="different response"):
        anova(other_y, large)


def test_same_number_of_parameters_is_refused(sleepstudy):
    case, small, _ = sleepstudy
    other = MixedLinearRegressor().fit(case.X, case.y, groups=case.groups)
    with pytest.raises(ValueError, match="same number of parameters"):
        anova(small, other)


def test_non_nested_models_are_refused():
    case = load_case("biomass")
    only_n = MixedLinearRegressor().fit(case.X[["N"]], case.y, groups=case.groups)
    only_temp_slope = MixedLinearRegressor(random_slopes=["Temp"]).fit(
        case.X[["Temp"]], case.y, groups=case.groups
    )
    # 4 parameters vs 6: fewer, but N is not among the larger one's effects.
    with pytest.raises(ValueError, match=r"lacks fixed effects \['N'\]"):
        anova(only_n, only_temp_slope)
    correlated = MixedLinearRegressor(random_slopes=["Temp"]).fit(
        case.X[["Temp"]], case.y, groups=case.groups
    )
    bigger_diagonal = MixedLinearRegressor(
        random_slopes=["Temp", "N"], covariance="diagonal"
    ).fit(case.X, case.y, groups=case.groups)
    with pytest.raises(ValueError, match="correlations of 'Site'"):
        anova(correlated, bigger_diagonal)
