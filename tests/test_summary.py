"""summary(): lme4's printed layout and figures, HTML, and the DataFrames.

The golden outputs in data/lme4_summaries/ are lme4 1.1-31 + lmerTest
3.1-3's ``print(summary(m))`` of every reference fit (make_summaries.R
regenerates them), from the criterion line on and with ``(Intercept)``
renamed ``Intercept``.  Three checks:

- layout: fed lme4's own numbers (the reference JSON), our text is the golden
  text character for character;
- figures: from our fit, every figure lme4 prints agrees at its printed
  precision up to the optimiser's last digits (our optimum is at least as
  low as lme4's; the 5th-6th significant digits of a flat optimum differ);
- biomass, the tutorial's data: every figure agrees to 4 significant digits.
"""

import copy
import dataclasses
import re
import warnings

import numpy as np
import pandas as pd
import pytest
from sklearn.exceptions import NotFittedError

from skmixed import MixedLinearRegressor
from skmixed.reporting import Summary
from skmixed.reporting._rformat import (
    abbreviate,
    format_pval,
    format_real,
    zapsmall,
)

from ._fits import CASES, fitted_case
from .conftest import DATA, as_list

GOLDEN = DATA / "lme4_summaries"
N_HEADER = 3  # title, formula, blank line: they name R objects in lme4


def golden(name, method):
    return (GOLDEN / f"{name}_{method}.txt").read_text().splitlines()


def without_messages(lines, prefixes):
    """Drop the closing fit messages (their wording is lme4's or ours)."""
    lines = [line for line in lines if not line.startswith(prefixes)]
    while lines and not lines[-1]:
        lines.pop()
    return lines


def body(summary):
    return without_messages(str(summary).splitlines()[N_HEADER:], ("boundary",))


def golden_body(name, method):
    return without_messages(golden(name, method), ("optimizer (", "boundary"))


# -- layout: our formatting of lme4's numbers is lme4's text ------------------


def lme4_numbers_summary(name, method):
    """Our summary of the fit, with every number replaced by lme4's."""
    case, model = fitted_case(name, method)
    ref = case.fit_reference(method)
    lme4_model = copy.copy(model)
    lme4_model.random_effects_cov_ = {}
    for r in as_list(ref["random"]):
        sd = np.asarray(as_list(r["sd"]), dtype=float)
        corr = np.asarray(r["corr"], dtype=float).reshape(sd.size, sd.size)
        terms = model.random_effects_cov_[r["group"]].index
        cov = np.outer(sd, sd) * corr
        lme4_model.random_effects_cov_[r["group"]] = pd.DataFrame(
            cov, index=terms, columns=terms
        )
    lme4_model.sigma_ = ref["sigma"]
    summary = lme4_model.summary()
    names = list(ref["fixef"])
    estimate = np.array([ref["fixef"][n] for n in names])
    se = np.array([ref["fixef_se"][n] for n in names])
    fixed = pd.DataFrame(
        {
            "estimate": estimate,
            "std_error": se,
            "t_value": estimate / se,
            "df": as_list(ref["satterthwaite_df"]),
            "p_value": as_list(ref["satterthwaite_p"]),
        },
        index=summary.fixed_effects.index,
    )
    vcov = np.asarray(ref["vcov"], dtype=float).reshape(len(names), len(names))
    corr = vcov / np.sqrt(np.outer(np.diag(vcov), np.diag(vcov)))
    if method == "REML":
        criteria = pd.Series({"REML": ref["objective"]})
    else:
        criteria = pd.Series(
            {
                "AIC": ref["aic"],
                "BIC": ref["bic"],
                "logLik": ref["loglik"],
                "deviance": ref["objective"],
                "df.resid": ref["nobs"] - ref["df"],
            }
        )
    return dataclasses.replace(
        summary,
        criteria=criteria,
        residual_quantiles=pd.Series(
            ref["scaled_resid_quantiles"], index=summary.residual_quantiles.index
        ),
        fixed_effects=fixed,
        fixed_effects_corr=pd.DataFrame(corr, index=fixed.index, columns=fixed.index),
    )


@pytest.mark.parametrize("name,method", CASES)
def test_layout_is_lme4s(name, method):
    assert body(lme4_numbers_summary(name, method)) == golden_body(name, method)


# -- figures: our fit prints lme4's figures -----------------------------------

NUMBER = re.compile(r"^-?\d+(\.\d+)?(e[-+]\d+)?$")


def tokens(lines):
    return [t for line in lines for t in line.split()]


def last_digit(token):
    """The value of one unit in the last printed digit of a number token."""
    mantissa, _, exponent = token.partition("e")
    decimals = len(mantissa.partition(".")[2])
    return 10.0 ** (int(exponent or 0) - decimals)


def assert_same_figures(ours, lme4, rtol):
    """Same words, and numbers equal to rtol plus one unit in the last digit."""
    ours, lme4 = tokens(ours), tokens(lme4)
    assert [t if not NUMBER.match(t) else "#" for t in ours] == [
        t if not NUMBER.match(t) else "#" for t in lme4
    ]
    for mine, theirs in zip(ours, lme4):
        if NUMBER.match(theirs):
            tol = rtol * abs(float(theirs)) + 1.01 * last_digit(theirs)
            assert abs(float(mine) - float(theirs)) <= tol, (mine, theirs)


@pytest.mark.parametrize("name,method", CASES)
def test_figures_are_lme4s(name, method):
    _, model = fitted_case(name, method)
    assert_same_figures(body(model.summary()), golden_body(name, method), 1e-4)


def significant(x, digits):
    return float(f"{float(x):.{digits - 1}e}")


@pytest.mark.parametrize("method", ["REML", "ML"])
def test_biomass_every_printed_figure(method):
    # The tutorial's data: every figure lme4 prints, to 4 significant
    # digits (the figures printed with fewer digits, as they are printed).
    _, model = fitted_case("biomass", method)
    ours = [t for t in tokens(body(model.summary())) if NUMBER.match(t)]
    lme4 = [t for t in tokens(golden_body("biomass", method)) if NUMBER.match(t)]
    assert len(ours) == len(lme4) >= 36
    for mine, theirs in zip(ours, lme4):
        assert significant(mine, 4) == significant(theirs, 4), (mine, theirs)


def test_biomass_figures_from_the_reference_json():
    # The brief's check: lme4's numbers rebuilt from the reference JSON, at
    # the precision lme4 prints them, all appear in our summary.
    case, model = fitted_case("biomass", "REML")
    ref = case.fit_reference("REML")
    text = str(model.summary())
    ours = [float(t) for t in tokens(text.splitlines()) if NUMBER.match(t)]

    def appears(value, digits=4, decimals=None):
        if decimals is not None:
            return any(round(t, decimals) == round(value, decimals) for t in ours)
        return any(significant(t, digits) == significant(value, digits) for t in ours)

    random = as_list(ref["random"])[0]
    sd = np.asarray(random["sd"])
    fixef = np.array(list(ref["fixef"].values()))
    se = np.array(list(ref["fixef_se"].values()))
    vcov = np.asarray(ref["vcov"])
    corr = vcov / np.sqrt(np.outer(np.diag(vcov), np.diag(vcov)))
    assert "REML criterion at convergence: 327.2" in text
    for value in [*ref["scaled_resid_quantiles"], *sd**2, *sd, ref["sigma"] ** 2]:
        assert appears(value), value
    assert appears(ref["sigma"])
    assert appears(random["corr"][1][0], decimals=2)
    for value in [*fixef, *se, *ref["satterthwaite_df"]]:
        assert appears(value), value
    for value in fixef / se:  # t values: 3 decimals
        assert appears(value, decimals=3), value
    assert appears(ref["satterthwaite_p"][1], digits=3)
    assert text.count("<2e-16") == 2  # the other two p-values
    for value in corr[np.tril_indices(3, -1)]:
        assert appears(value, decimals=3), value
    assert "Number of obs: 100, groups:  Site, 20" in text


# -- R's formatting functions, against R 4.2 ---------------------------------


@pytest.mark.parametrize(
    "values,digits,nsmall,expected",
    [
        ([1.0701466, 0.5088636, 0.7681132], 4, 0, ["1.0701", "0.5089", "0.7681"]),
        ([612.0897, 35.07, 654.9414], 4, 0, ["612.09", " 35.07", "654.94"]),
        ([0, 13.81], 4, 0, [" 0.00", "13.81"]),
        ([-2027.494, 0.006], 3, 0, ["-2027.494", "    0.006"]),
        (
            [23457792.922728, -865528.523758989, 74.2446249875067],
            2,
            0,
            ["23457793", " -865529", "      74"],
        ),
        (
            [999.999, 0.99, -0.09999, -0.0099, 0.649869652585494],
            2,
            1,
            [" 1.0e+03", " 9.9e-01", "-1.0e-01", "-9.9e-03", " 6.5e-01"],
        ),
        ([-0.000999999, -99.999, 0.999], 3, 0, ["  -0.001", " -99.999", "   0.999"]),
        (
            [0.00912899205301793, -0.000280412144294724, 0.380250757708878],
            7,
            0,
            [" 0.0091289921", "-0.0002804121", " 0.3802507577"],
        ),
        ([-0.2, 1, np.nan], 7, 2, ["-0.20", " 1.00", "  NaN"]),
        ([-0.0, 3], 3, 0, ["0", "3"]),
        ([1e-300], 4, 0, ["1e-300"]),
        ([123456789012, 1], 4, 0, ["1.235e+11", "1.000e+00"]),
    ],
)
def test_format_real_is_rs_format(values, digits, nsmall, expected):
    assert format_real(values, digits, nsmall) == expected


@pytest.mark.parametrize(
    "pvalues,expected",
    [
        ([0.3905, 2.4e-19], ["0.391", "<2e-16"]),
        ([2.59e-06, 1e-20], ["2.59e-06", "< 2e-16"]),
        ([0.00012, 0.0009], ["0.00012", "0.00090"]),
        ([0.05, 0.0012, 1e-05], ["0.0500", "0.0012", "1e-05"]),
    ],
)
def test_format_pval_is_rs(pvalues, expected):
    assert format_pval(pvalues, 3) == expected


def test_zapsmall_is_r_42s():
    # R 4.2 rounds to digits - log10(max) decimals, itself rounded: 5 here.
    values = [-1.8796413483666, -0.515899190245586, 0.0333829706171064]
    assert zapsmall(values, 5) == [-1.87964, -0.5159, 0.03338]


@pytest.mark.parametrize(
    "names,minlength,expected",
    [
        (
            ["(Intercept)", "Intercept", "Temperature", "nitrogen_level", "my feature"],
            6,
            ["(Intr)", "Intrcp", "Tmprtr", "ntrgn_", "myfetr"],
        ),
        (
            ["Intercept", "Temperature_a", "Temperature_b"],
            11,
            ["Intercept", "Temperatur_", "Temperatr_b"],
        ),
        (["abcdefgh", "abcdefgi", "abcdefgj"], 6, ["abcdfgh", "abcdefg", "abcdfgj"]),
    ],
)
def test_abbreviate_is_rs(names, minlength, expected):
    assert abbreviate(names, minlength) == expected


# -- the summary object --------------------------------------------------------


def test_fixed_effects_frame():
    _, model = fitted_case("biomass", "REML")
    frame = model.summary().fixed_effects
    assert list(frame.columns) == ["estimate", "std_error", "t_value", "df", "p_value"]
    assert list(frame.index) == ["Intercept", "Temp", "N"]
    np.testing.assert_allclose(frame["estimate"], model.fixed_effects_)
    np.testing.assert_allclose(
        frame["std_error"], np.sqrt(np.diag(model.fixed_effects_cov_))
    )


def test_random_effects_frame_is_lme4s_vars_corr():
    case, model = fitted_case("biomass", "REML")
    ref = as_list(case.fit_reference("REML")["random"])[0]
    frame = model.summary().random_effects
    assert list(frame.columns) == ["grp", "var1", "var2", "vcov", "sdcor"]
    assert frame["grp"].tolist() == ["Site"] * 3 + ["Residual"]
    assert frame["var1"].tolist()[:3] == ["Intercept", "Temp", "Intercept"]
    assert frame["var2"].tolist()[2] == "Temp"
    assert frame["var1"].isna().tolist() == [False] * 3 + [True]
    assert frame["var2"].isna().tolist() == [True, True, False, True]
    sd, corr = np.asarray(ref["sd"]), np.asarray(ref["corr"])[1][0]
    sigma = case.fit_reference("REML")["sigma"]
    np.testing.assert_allclose(frame["sdcor"], [*sd, corr, sigma], rtol=5e-4)
    np.testing.assert_allclose(
        frame["vcov"], [*sd**2, corr * sd[0] * sd[1], sigma**2], rtol=1e-3
    )


def test_random_effects_frame_orders_factors_as_lme4():
    _, model = fitted_case("pastes", "REML")
    frame = model.summary().random_effects
    assert frame["grp"].tolist() == ["batch_cask", "batch", "Residual"]
    _, model = fitted_case("sleepstudy_uncorrelated", "REML")
    frame = model.summary().random_effects  # no covariance rows
    assert frame["var1"].tolist()[:2] == ["Intercept", "Days"]
    assert frame["var2"].isna().all() and len(frame) == 3


def test_summary_attributes():
    _, model = fitted_case("penicillin", "ML")
    summary = model.summary()
    assert isinstance(summary, Summary)
    assert summary.n_obs == 144
    assert summary.n_groups == {"plate": 24, "sample": 6}
    assert summary.formula == "diameter ~ 1 + (1 | plate) + (1 | sample)"
    criteria = ["AIC", "BIC", "logLik", "deviance", "df.resid"]
    assert list(summary.criteria.index) == criteria
    assert summary.criteria["deviance"] == model.objective_
    assert repr(summary) == str(summary)


def test_html():
    _, model = fitted_case("biomass", "REML")
    html = model.summary()._repr_html_()
    assert html.count("<table>") == 4  # residuals, random, fixed, correlation
    assert "REML criterion at convergence: 327.2" in html
    assert "&lt;2e-16" in html and "<2e-16" not in html
    for figure in ["10.0915", "0.2509", "18.3373", "40.229", "1.0701", "-0.20"]:
        assert f">{figure}<" in html
    assert "Pr(&gt;|t|)" in html


def test_ml_html_has_the_criteria_table():
    _, model = fitted_case("biomass", "ML")
    html = model.summary()._repr_html_()
    assert html.count("<table>") == 5
    assert ">df.resid<" in html and ">93<" in html


def test_singular_fit_says_so():
    _, model = fitted_case("dyestuff2", "REML")
    text = str(model.summary())
    assert text.endswith("boundary (singular) fit: see is_singular_")


def test_formula_and_title():
    _, model = fitted_case("sleepstudy_uncorrelated", "ML")
    lines = str(model.summary()).splitlines()
    assert lines[0] == (
        "Linear mixed model fit by maximum likelihood. t-tests use "
        "Satterthwaite's method"
    )
    assert lines[1] == "Formula: Reaction ~ Days + (1 + Days || Subject)"


@pytest.mark.filterwarnings("ignore:boundary \\(singular\\) fit")
def test_no_intercept_and_no_random_intercept():
    case, _ = fitted_case("sleepstudy", "REML")
    model = MixedLinearRegressor(
        random_slopes=["Days"], random_intercept=False, fit_intercept=False
    ).fit(case.X, case.y, groups=case.groups)
    summary = model.summary()
    assert summary.formula == "Reaction ~ 0 + Days + (0 + Days | Subject)"
    assert "Correlation of Fixed Effects" not in str(summary)  # one effect


def test_rank_deficient_columns_are_reported():
    case, _ = fitted_case("biomass", "REML")
    X = case.X.assign(Temp2=2 * case.X["Temp"])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model = MixedLinearRegressor().fit(X, case.y, groups=case.groups)
    text = str(model.summary())
    assert "rank deficient so dropping 1 column(s): Temp2" in text
    assert list(model.summary().fixed_effects.index) == ["Intercept", "Temp", "N"]


def test_model_without_random_effects():
    case, _ = fitted_case("biomass", "REML")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model = MixedLinearRegressor().fit(case.X, case.y)
    text = str(model.summary())
    assert "Number of obs: 100\n" in text
    assert " Residual " in text
    np.testing.assert_allclose(model.summary().fixed_effects["df"], 97, rtol=1e-6)


def test_many_fixed_effects_skip_the_correlation_matrix():
    rng = np.random.default_rng(0)
    X = rng.normal(size=(150, 13))
    groups = np.repeat(np.arange(15), 10)
    y = X.sum(axis=1) + rng.normal(size=15)[groups] + rng.normal(size=150)
    model = MixedLinearRegressor().fit(X, y, groups=groups)
    text = str(model.summary())
    assert "Correlation matrix not shown, as p = 14 > 12" in text
    assert "Correlation of Fixed Effects" not in text


# lme4's print for sleepstudy_intercept with "Days" renamed to 50 d's (and
# "(Intercept)" to "Intercept", which leaves the widths unchanged).
WIDE = [
    "Fixed effects:",
    "                                                   Estimate Std. Error       df",
    "Intercept                                          251.4051     9.7467  22.8102",
    "dddddddddddddddddddddddddddddddddddddddddddddddddd  10.4673     0.8042 161.0000",
    "                                                   t value Pr(>|t|)    ",
    "Intercept                                            25.79   <2e-16 ***",
    "dddddddddddddddddddddddddddddddddddddddddddddddddd   13.02   <2e-16 ***",
    "---",
    "Signif. codes:  0 \u2018***\u2019 0.001 \u2018**\u2019 0.01 \u2018*\u2019 "
    "0.05 \u2018.\u2019 0.1 \u2018 \u2019 1",
    "",
    "Correlation of Fixed Effects:",
    "            Intrcp",
    "ddddddddddd -0.371",
]


def test_wide_coefficient_table_wraps_like_r():
    # R continues the columns that do not fit in 80 characters below.
    case, _ = fitted_case("sleepstudy_intercept", "REML")
    X = case.X.rename(columns={"Days": "d" * 50})
    model = MixedLinearRegressor().fit(X, case.y, groups=case.groups)
    text = str(model.summary())
    assert text[text.index("Fixed effects:") :].splitlines() == WIDE


def test_summary_needs_a_fitted_model():
    with pytest.raises(NotFittedError):
        MixedLinearRegressor().summary()


def test_formula_names_an_unnamed_response_y():
    case, _ = fitted_case("sleepstudy", "REML")
    model = MixedLinearRegressor(random_slopes=["Days"]).fit(
        case.X, case.y.to_numpy(), groups=case.groups
    )
    assert model.summary().formula == "y ~ Days + (1 + Days | Subject)"


def test_set_params_after_fit_does_not_relabel_the_fit():
    # Everything after fit reads the fitted state: changing method without
    # refitting leaves the summary and the Satterthwaite df as they were.
    from skmixed.datasets import load_biomass

    X, y, groups = load_biomass(return_X_y_groups=True)
    model = MixedLinearRegressor(random_slopes=["Temp"]).fit(X, y, groups=groups)
    before = str(model.summary())
    df = model.summary().fixed_effects["df"].to_numpy()
    profile = model.confint(method="profile")
    model.set_params(method="ml", max_iter=1, random_slopes=None, fit_intercept=False)
    assert str(model.summary()) == before
    assert before.startswith("Linear mixed model fit by REML")
    np.testing.assert_array_equal(model.summary().fixed_effects["df"], df)
    pd.testing.assert_frame_equal(model.confint(method="profile"), profile)
