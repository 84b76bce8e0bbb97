"""F-tests by term (``anova`` of one model, ``drop1``) against lmerTest 3.1-3.

The references are made by ``tests/data/anova/make_anova.R``: lmerTest's
``anova(m, type = 3)``, ``anova(m, type = 1)`` and ``drop1(m)``
(Satterthwaite), and pbkrtest's Kenward-Roger through ``anova(m, ddf =
"Kenward-Roger")`` and ``drop1``, on Oats (REML and ML), Orthodont, cake (an ordered
factor: contr.poly), ChickWeight (``poly(Time, 2) * Diet``) and the biomass
data (fitted here from arrays: each feature its own term), each fitted by
lme4 to its optimum (polished).  F values and denominator df must agree to
1e-4 relative.

Besides the references: type III hypotheses do not depend on the factors'
coding; a one-df F is the square of the Satterthwaite t; type I on a
balanced design with orthogonal terms equals type III.
"""

import functools
import json
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from skmixed import MixedLinearRegressor
from skmixed.datasets import load_biomass
from skmixed.inference._anova_table import AnovaTable
from skmixed.inference._ftest import (
    doolittle,
    drop1,
    f_statistic_ddf,
    term_contrasts,
)
from skmixed.inference._lrt import anova
from skmixed.inference._satterthwaite import satterthwaite

from .test_analyses import load_frame

DATA = Path(__file__).parent / "data" / "anova"
# reference -> the analyses' data it is fitted to (None: biomass from arrays)
ANALYSES = {
    "oats": "oats",
    "oats_ml": "oats",
    "orthodont": "orthodont",
    "cake": "cake",
    "chickweight": "chickweight_poly",
    "biomass": None,
    "biomass_diagonal": None,
}
RTOL = 1e-4


@functools.cache
def reference(name):
    return json.loads((DATA / f"{name}.json").read_text())


def reference_table(ref, key):
    return pd.DataFrame(ref[key]["columns"], index=ref[key]["rows"])


@functools.cache
def fitted(name):
    ref = reference(name)
    method = ref["method"].lower()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        if ANALYSES[name] is None:
            X, y, site = load_biomass(return_X_y_groups=True)
            covariance = "diagonal" if "||" in ref["formula"] else "unstructured"
            model = MixedLinearRegressor(
                random_slopes=["Temp"], covariance=covariance, method=method
            )
            return model.fit(X, y, groups=site)
        model = MixedLinearRegressor(formula=ref["formula"], method=method)
        return model.fit(load_frame(ANALYSES[name]))


def assert_f_table(table, expected):
    assert list(table.columns) == [
        "Sum Sq",
        "Mean Sq",
        "NumDF",
        "DenDF",
        "F value",
        "Pr(>F)",
    ]
    assert list(table.index) == list(expected.index)
    assert np.array_equal(table["NumDF"], expected["NumDF"])
    for column in ["F value", "DenDF", "Sum Sq", "Mean Sq"]:
        np.testing.assert_allclose(table[column], expected[column], rtol=RTOL)
    # the p-values follow (looser: a tail probability amplifies F's error)
    np.testing.assert_allclose(table["Pr(>F)"], expected["Pr(>F)"], rtol=1e-3)


def test_fits_at_the_reference_optimum():
    for name in ANALYSES:
        model, ref = fitted(name), reference(name)
        assert model.objective_ == pytest.approx(ref["criterion"], rel=1e-8), name


@pytest.mark.parametrize("name", ANALYSES)
@pytest.mark.parametrize("kind", ["anova3", "anova1"])
def test_anova_satterthwaite(name, kind):
    table = anova(fitted(name), type=3 if kind == "anova3" else 1)
    assert isinstance(table, AnovaTable)
    assert_f_table(table, reference_table(reference(name), kind))


@pytest.mark.parametrize("name", ANALYSES)
def test_drop1(name):
    assert_f_table(drop1(fitted(name)), reference_table(reference(name), "drop1"))


@pytest.mark.parametrize("name", [n for n in ANALYSES if n != "oats_ml"])
@pytest.mark.parametrize("kind", ["anova3", "anova1"])
def test_anova_kenward_roger(name, kind):
    table = anova(fitted(name), type=3 if kind == "anova3" else 1, ddf="kenward-roger")
    assert table.heading[0].endswith("with Kenward-Roger's method")
    assert_f_table(table, reference_table(reference(name), kind + "_kr"))


@pytest.mark.parametrize("name", [n for n in ANALYSES if n != "oats_ml"])
def test_drop1_kenward_roger(name):
    table = drop1(fitted(name), ddf="kenward-roger")
    assert_f_table(table, reference_table(reference(name), "drop1_kr"))


def test_kenward_roger_needs_reml():
    with pytest.raises(ValueError, match="REML"):
        anova(fitted("oats_ml"), ddf="kenward-roger")


def test_type3_does_not_depend_on_the_coding():
    """cake's temperature is ordered (contr.poly); as a plain factor
    (contr.treatment) the type III hypotheses, so the F tests, are the same."""
    frame = load_frame("cake")
    formula = reference("cake")["formula"]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        poly = MixedLinearRegressor(formula=formula).fit(frame)
        frame["temperature"] = frame["temperature"].cat.as_unordered()
        treatment = MixedLinearRegressor(formula=formula).fit(frame)
        frame["recipe"] = frame["recipe"].cat.as_ordered()  # contr.poly
        both = MixedLinearRegressor(formula=formula).fit(frame)
    assert "temperature.L" in poly.fixed_effects_.index
    assert "temperature185" in treatment.fixed_effects_.index
    expected = anova(poly)
    # up to lmerTest's zapsmall: the map between codings is rounded to 7
    # significant digits
    for other in (treatment, both):
        table = anova(other)
        np.testing.assert_allclose(table["F value"], expected["F value"], rtol=1e-5)
        np.testing.assert_allclose(table["DenDF"], expected["DenDF"], rtol=1e-5)


def test_one_df_f_is_the_squared_t():
    model = fitted("biomass")
    t = satterthwaite(model)
    table = anova(model)
    np.testing.assert_allclose(table["F value"], t.loc[["Temp", "N"], "t_value"] ** 2)
    np.testing.assert_allclose(table["DenDF"], t.loc[["Temp", "N"], "df"])


def test_type3_contrasts_of_oats():
    """lmerTest's show_tests: Variety at nitro = 0 is tested by its two
    treatment contrasts; nitro by the mean slope over the three varieties."""
    model = fitted("oats")
    names = list(model.fixed_effects_.index)
    L = term_contrasts(model, type=3)
    assert set(L) == {"nitro", "Variety", "nitro:Variety"}
    nitro = pd.Series(L["nitro"][0], index=names)
    assert nitro["nitro"] == pytest.approx(1.0)
    assert nitro["nitro:VarietyMarvellous"] == pytest.approx(1 / 3, abs=1e-6)
    assert nitro["nitro:VarietyVictory"] == pytest.approx(1 / 3, abs=1e-6)
    variety = pd.DataFrame(L["Variety"], columns=names)
    assert np.allclose(variety[["VarietyMarvellous", "VarietyVictory"]], np.eye(2))
    assert np.allclose(variety.drop(columns=["VarietyMarvellous", "VarietyVictory"]), 0)


def test_array_model_terms_are_its_features():
    model = fitted("biomass")
    assert list(anova(model).index) == ["Temp", "N"]
    assert list(drop1(model).index) == ["Temp", "N"]
    L = term_contrasts(model, type=3)
    assert np.array_equal(L["Temp"], [[0.0, 1.0, 0.0]])


def test_doolittle_is_an_lu_factor():
    rng = np.random.default_rng(0)
    A = rng.standard_normal((30, 5))
    XtX = A.T @ A
    L = doolittle(XtX)
    assert np.allclose(np.diag(L), 1.0) and np.allclose(np.triu(L, 1), 0.0)
    U = np.linalg.solve(L, XtX)
    assert np.allclose(np.tril(U, -1), 0.0, atol=1e-10)


def test_f_statistic_ddf():
    assert f_statistic_ddf([7.0]) == 7.0
    assert f_statistic_ddf([10.0, 10.0]) == 10.0
    assert f_statistic_ddf([1.5, 30.0]) == 2.0
    nu = np.array([10.0, 40.0])
    E = np.sum(nu / (nu - 2))
    assert f_statistic_ddf(nu) == pytest.approx(2 * E / (E - 2))


def test_printing_as_lmertest():
    text = str(anova(fitted("oats")))
    lines = text.splitlines()
    assert lines[0] == (
        "Type III Analysis of Variance Table with Satterthwaite's method"
    )
    assert lines[1].split() == [
        "Sum",
        "Sq",
        "Mean",
        "Sq",
        "NumDF",
        "DenDF",
        "F",
        "value",
        "Pr(>F)",
    ]
    # as lmerTest prints them
    assert lines[2].split() == [
        "nitro",
        "19536.4",
        "19536.4",
        "1",
        "51.000",
        "115.7713",
        "1.002e-14",
        "***",
    ]
    assert lines[3].split() == [
        "Variety",
        "655.5",
        "327.8",
        "2",
        "21.575",
        "1.9423",
        "0.1676",
    ]
    assert "Signif. codes" in lines[-1]
    html = anova(fitted("oats"))._repr_html_()
    assert "<table" in html and "nitro:Variety" in html


def test_table_is_a_dataframe():
    table = anova(fitted("oats"))
    assert table.loc["nitro", "NumDF"] == 1
    assert type(table[["F value"]]) is pd.DataFrame
    assert type(table.to_frame()) is pd.DataFrame


def test_bad_arguments():
    model = fitted("biomass")
    with pytest.raises(ValueError, match="type must be"):
        anova(model, type=2)
    with pytest.raises(ValueError, match="ddf must be"):
        anova(model, ddf="lme4")


def test_rank_deficient_type3_is_refused():
    frame = load_frame("oats")
    frame["copy"] = frame["nitro"] * 2.0
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        model = MixedLinearRegressor(
            formula="yield ~ nitro + copy + Variety + (1 | Block)"
        ).fit(frame)
    with pytest.raises(NotImplementedError, match="rank deficient"):
        anova(model)
    assert list(anova(model, type=1).index) == ["nitro", "copy", "Variety"]


def test_type1_equals_type3_when_terms_are_orthogonal():
    """A balanced two-factor design without interaction: the sequential and
    the marginal sums of squares coincide."""
    rng = np.random.default_rng(1)
    levels_a, levels_b, groups = ["a1", "a2", "a3"], ["b1", "b2"], 8
    rows = [(a, b, f"g{g}") for g in range(groups) for a in levels_a for b in levels_b]
    frame = pd.DataFrame(rows, columns=["A", "B", "g"])
    effect = frame["A"].map({"a1": 0, "a2": 1, "a3": 2}) + (frame["B"] == "b2")
    g_effect = frame["g"].map({f"g{g}": rng.standard_normal() for g in range(groups)})
    frame["y"] = effect + g_effect + rng.standard_normal(len(frame))
    model = MixedLinearRegressor(formula="y ~ A + B + (1 | g)").fit(frame)
    one, three = anova(model, type=1), anova(model, type=3)
    np.testing.assert_allclose(one["F value"], three["F value"], rtol=1e-8)
    np.testing.assert_allclose(one["DenDF"], three["DenDF"], rtol=1e-6)


def test_hypotheses_as_show_tests():
    """lmerTest's show_tests(anova(m)): L per term, named by the fixed effects."""
    model = fitted("oats")
    table = anova(model)
    assert list(table.hypotheses) == list(table.index)
    nitro = table.hypotheses["nitro"]
    assert list(nitro.columns) == list(model.fixed_effects_.index)
    np.testing.assert_allclose(
        nitro.loc[1, ["nitro", "nitro:VarietyMarvellous", "nitro:VarietyVictory"]],
        [1.0, 1 / 3, 1 / 3],
        atol=1e-6,
    )
    assert drop1(model).hypotheses["nitro:Variety"].shape == (2, 6)


def test_type1_from_the_statistics_when_rows_are_not_kept():
    """A fit without its rows (dask) gets X'X from the sufficient statistics."""
    import copy

    for name in ["oats", "chickweight", "biomass"]:
        model = fitted(name)
        without_rows = copy.copy(model)
        without_rows._train_X = None
        np.testing.assert_allclose(
            anova(without_rows, type=1).to_frame(),
            anova(model, type=1).to_frame(),
            rtol=1e-10,
        )
