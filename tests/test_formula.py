"""The formula machinery against R: model.matrix names, order and values, lme4's bars.

The references are made by ``tests/data/formula/make_model_matrices.R``.
"""

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from hypothesis import given
from hypothesis import strategies as st
from numpy.testing import assert_allclose

from skmixed._formula import (
    FormulaMatrices,
    RandomTerm,
    contrast_matrix,
    parse_formula,
    r_deparse,
    r_label,
)

REFERENCE = json.loads(
    (Path(__file__).parent / "data" / "formula" / "model_matrices.json").read_text()
)
CASES = {case["name"][0]: case for case in REFERENCE["cases"]}


def _column(spec):
    values = [np.nan if v is None else v for v in spec["values"]]
    kind = spec["type"][0]
    if kind in ("factor", "ordered"):
        return pd.Categorical(
            spec["values"], categories=spec["levels"], ordered=kind == "ordered"
        )
    if kind == "logical":
        return np.array(values, dtype=bool)
    if kind == "character":
        return np.array(spec["values"], dtype=object)
    return np.array(values, dtype=float)


def _frame(name, part="data"):
    return pd.DataFrame({k: _column(v) for k, v in REFERENCE[part][name].items()})


def _r_names(names):
    return ["Intercept" if n == "(Intercept)" else n for n in names]


def _fit(case):
    return FormulaMatrices.fit(
        parse_formula(f"~ {case['formula'][0]}"), _frame(case["data"][0])
    )


# --------------------------------------------------------------------------- #
# R's model.matrix: one case per contrast kind, transform and term structure  #
# --------------------------------------------------------------------------- #


@pytest.mark.parametrize("name", sorted(CASES))
def test_model_matrix_matches_r(name):
    case = CASES[name]
    matrices = _fit(case)
    X, names = matrices.fixed(_frame(case["data"][0]))
    assert names == _r_names(case["colnames"])
    assert_allclose(X, np.array(case["matrix"]), rtol=1e-10, atol=1e-10)
    assert matrices.intercept == ("(Intercept)" in case["colnames"])


@pytest.mark.parametrize("name", sorted(CASES))
def test_new_rows_match_r_predict(name):
    """Levels, poly and scale parameters learned at fit, reused on new rows."""
    case = CASES[name]
    X, _ = _fit(case).fixed(_frame(case["data"][0], "newdata"))
    assert_allclose(X, np.array(case["new_matrix"]), rtol=1e-10, atol=1e-10)


def test_center_is_scale_without_scaling():
    frame = _frame("misc")
    X, names = FormulaMatrices.fit(parse_formula("~ center(z)"), frame).fixed(frame)
    assert names == ["Intercept", "center(z)"]
    assert_allclose(X[:, 1], np.array(CASES["misc_scale"]["matrix"])[:, 2], atol=1e-12)


def test_contrast_spellings_agree():
    frame = _frame("misc")
    spellings = ["C(a, contr.sum)", "C(a, sum)", "C(a, Sum)", 'C(a, "contr.sum")']
    matrices = [
        FormulaMatrices.fit(parse_formula(f"~ {s}"), frame).fixed(frame)[0]
        for s in spellings
    ]
    for X in matrices[1:]:
        assert_allclose(X, matrices[0])
    _, names = FormulaMatrices.fit(parse_formula("~ C(a, Sum)"), frame).fixed(frame)
    assert names == ["Intercept", "C(a, Sum)1", "C(a, Sum)2"]


def test_contrast_matrices_are_r_s():
    assert_allclose(
        contrast_matrix("helmert", "abcd")[0],
        [[-1, -1, -1], [1, -1, -1], [0, 2, -1], [0, 0, 3]],
    )
    assert_allclose(contrast_matrix("sum", "abc")[0], [[1, 0], [0, 1], [-1, -1]])
    poly, names = contrast_matrix("poly", "abcde")
    assert names == [".L", ".Q", ".C", "^4"]
    assert_allclose(poly.T @ poly, np.eye(4), atol=1e-12)
    assert_allclose(poly[:, 0], np.array([-2, -1, 0, 1, 2]) / np.sqrt(10), atol=1e-15)


def test_r_spellings():
    assert r_deparse("poly(Time,2)") == "poly(Time, 2)"
    assert r_deparse("I((x+1)^2)") == "I((x + 1)^2)"
    assert r_deparse("log(x/2, base=10)") == "log(x/2, base = 10)"
    assert r_deparse("I(-x * 100000)") == "I(-x * 1e+05)"
    assert [r_label(v) for v in (True, 2.0, 1.5, 3, "a")] == [
        "TRUE",
        "2",
        "1.5",
        "3",
        "a",
    ]


# --------------------------------------------------------------------------- #
# lme4's bars: expansion, grouping names and levels, random-term columns       #
# --------------------------------------------------------------------------- #


@pytest.mark.parametrize("case", REFERENCE["lme4"], ids=lambda c: c["formula"][0])
def test_random_terms_match_lformula(case):
    frame = _frame(case["data"][0])
    matrices = FormulaMatrices.fit(parse_formula(case["formula"][0]), frame)
    # lme4 orders the terms by their number of levels; compare as sets
    built = sorted(
        (t.grouping_name, tuple(names))
        for t, names in zip(matrices.parsed.random, matrices.random_names)
    )
    expected = sorted(
        (g, tuple(_r_names(c))) for g, c in zip(case["cnms_groups"], case["cnms"])
    )
    assert built == expected
    assert matrices.group_levels == case["flist"]
    groups = matrices.groups(frame)
    assert set(groups.columns) == set(case["flist_names"])
    for name, levels in case["flist"].items():
        assert set(groups[name]) == set(levels)


def test_nested_grouping_labels():
    frame = _frame("oats")
    parsed = parse_formula("yield ~ nitro * Variety + (1 | Block/Variety)")
    groups = FormulaMatrices.fit(parsed, frame).groups(frame)
    assert list(groups.columns) == ["Block", "Variety:Block"]
    expected = frame["Variety"] + ":" + frame["Block"].astype(str)
    assert groups["Variety:Block"].tolist() == expected.tolist()
    assert "Marvellous:I" in set(groups["Variety:Block"])


def test_random_term_matrices():
    frame = _frame("chick")
    parsed = parse_formula(
        "weight ~ Time + (1 + Diet | Chick) + (poly(Time, 2) | Chick)"
    )
    matrices = FormulaMatrices.fit(parsed, frame)
    (Z1, n1), (Z2, n2) = matrices.random(frame)
    fixed = FormulaMatrices.fit(parse_formula("~ Diet + poly(Time, 2)"), frame)
    X, _ = fixed.fixed(frame)
    assert n1 == ["Intercept", "Diet2", "Diet3", "Diet4"]
    assert n2 == ["Intercept", "poly(Time, 2)1", "poly(Time, 2)2"]
    assert_allclose(Z1, X[:, :4])
    assert_allclose(Z2[:, 1:], X[:, 4:])


@pytest.mark.parametrize(
    ("formula", "expected"),
    [
        ("y ~ x + (1 | g)", [RandomTerm("1", ("g",), "g")]),
        ("y ~ (x | g)", [RandomTerm("x", ("g",), "g")]),
        ("y ~ (0 + x | g)", [RandomTerm("0 + x", ("g",), "g")]),
        (
            "y ~ (1 + x || g)",
            [
                RandomTerm("1", ("g",), "g", False),
                RandomTerm("0 + x", ("g",), "g", False),
            ],
        ),
        ("y ~ (0 + x || g)", [RandomTerm("0 + x", ("g",), "g", False)]),
        (
            "y ~ (1 | a/b)",
            [RandomTerm("1", ("a",), "a"), RandomTerm("1", ("b", "a"), "b:a")],
        ),
        ("y ~ (1 | a:b)", [RandomTerm("1", ("a", "b"), "a:b")]),
        (
            "y ~ (1 | a) + (x | b)",
            [RandomTerm("1", ("a",), "a"), RandomTerm("x", ("b",), "b")],
        ),
    ],
)
def test_bar_expansion(formula, expected):
    assert list(parse_formula(formula).random) == expected


@pytest.mark.parametrize(
    ("formula", "fixed"),
    [
        ("y ~ (1 | g)", "1"),
        ("y ~ 0 + (1 | g)", "0"),
        ("y ~ x + (1 | g) + z", "x + z"),
        ("y ~ (1 | g) + x - 1", "x - 1"),
        ("y ~ log(x) + (poly(t, 2) | g)", "log(x)"),
    ],
)
def test_fixed_part(formula, fixed):
    parsed = parse_formula(formula)
    assert parsed.fixed == fixed
    assert parsed.response == "y"


def test_no_bar_and_no_response():
    parsed = parse_formula("~ a * b")
    assert parsed.response is None
    assert parsed.fixed == "a * b"
    assert parsed.random == ()


@pytest.mark.parametrize(
    ("formula", "match"),
    [
        ("y ~ x + (1 | (1 | g))", "grouping factor"),
        ("y ~ x + ((1 | g) | h)", "bar"),
        ("y ~ x + offset(z) + (1 | g)", r"offset\(\) is not supported"),
        ("y ~ x + (1 | g1 + g2)", r"\(1 \| g1\) \+ \(1 \| g2\)"),
        ("y ~ x + (1 | )", "no grouping factor"),
        ("y ~ x + ( | g)", "nothing left of the bar"),
        ("y ~ x + (1 | g || h)", "more than one bar"),
        ("y ~ x + x | g", "not a random-effect term"),
        ("y ~ x * (1 | g)", "must be added"),
        ("y ~ x - (1 | g)", "must be added"),
        ("y ~ x ~ z", "one '~'"),
        ("y ~ ns(x, 3)", "spline"),
        ("y ~ x + (1 | g", "unbalanced"),
        ("y ~ a %in% b", "not supported"),
        ("y ~ 2 + x", "could not parse"),
    ],
)
def test_unsupported_syntax(formula, match):
    with pytest.raises(ValueError, match=match):
        parse_formula(formula)


_names = st.sampled_from(["g", "h", "Block", "Subject", "plot.id"])
_lhs = st.sampled_from(["1", "x", "1 + x", "0 + x", "0 + x + z", "poly(t, 2)"])


@given(
    terms=st.lists(
        st.tuples(_lhs, st.lists(_names, min_size=1, max_size=3, unique=True)),
        min_size=0,
        max_size=3,
    ),
    fixed=st.sampled_from(["1", "x", "x * f", "0 + x"]),
)
def test_parse_round_trip(terms, fixed):
    """Writing terms into a formula and parsing it gives the terms back."""
    bars = [f"({lhs} | {':'.join(g)})" for lhs, g in terms]
    parsed = parse_formula(" + ".join([f"y ~ {fixed}", *bars]))
    assert parsed.fixed == fixed
    assert [(t.expression, t.grouping, t.grouping_name) for t in parsed.random] == [
        (lhs, tuple(g), ":".join(g)) for lhs, g in terms
    ]


# --------------------------------------------------------------------------- #
# Missing values, new levels, input types                                      #
# --------------------------------------------------------------------------- #


def _small():
    return pd.DataFrame(
        {
            "y": [1.0, 2.0, np.nan, 4.0, 5.0, 6.0, 7.0],
            "x": [0.5, 1.0, 2.0, np.nan, 3.0, 4.0, 5.0],
            "f": ["a", "b", "a", "b", None, "c", "b"],
            "w": [1.0, 2.0, 3.0, 4.0, 5.0, np.nan, 7.0],
            "g": ["u", "u", "v", "v", "w", "w", None],
            "unused": [np.nan] * 7,
        }
    )


def test_complete_rows_covers_every_used_variable():
    frame = _small()
    parsed = parse_formula("y ~ x + f + (0 + w | g)")
    matrices = FormulaMatrices.fit(parsed, frame)
    expected = [True, True, False, False, False, False, False]
    assert matrices.complete_rows(frame).tolist() == expected
    # at predict the response is absent and does not count
    new = frame.drop(columns="y")
    assert matrices.complete_rows(new).tolist()[:3] == [True, True, True]
    assert sorted(matrices.variables) == ["f", "g", "w", "x", "y"]


def test_learned_on_complete_rows_and_nan_where_missing():
    frame = _small()
    parsed = parse_formula("y ~ scale(x) + f + w + (1 | g)")
    matrices = FormulaMatrices.fit(parsed, frame)
    complete = frame[matrices.complete_rows(frame)].reset_index(drop=True)
    again = FormulaMatrices.fit(parsed, complete)
    # 'c' only appears on an incomplete row: dropped, as lme4 drops unused levels
    names = ["Intercept", "scale(x)", "fb", "w"]
    assert matrices.fixed_names == again.fixed_names == names
    X, _ = matrices.fixed(frame)
    assert np.isnan(X[3]).any() and np.isnan(X[4]).any()
    assert_allclose(X[:2], again.fixed(complete)[0][:2])
    assert matrices.groups(frame)["g"].tolist()[-1] is None
    assert_allclose(matrices.response(complete), [1.0, 2.0])


def test_unseen_fixed_level_is_an_error_unseen_group_is_not():
    frame = _frame("oats")
    matrices = FormulaMatrices.fit(
        parse_formula("yield ~ nitro + Variety + (1 | Block)"), frame
    )
    new = pd.DataFrame({"nitro": [0.2], "Variety": ["Golden"], "Block": ["VII"]})
    with pytest.raises(ValueError, match="Variety has the level 'Golden'"):
        matrices.fixed(new)
    assert matrices.groups(new)["Block"].tolist() == ["VII"]


def test_categorical_order_and_unused_categories():
    frame = pd.DataFrame(
        {
            "f": pd.Categorical(
                ["lo", "hi", "lo", "hi"], categories=["mid", "lo", "hi"]
            ),
            "flag": [True, False, False, True],
        }
    )
    matrices = FormulaMatrices.fit(parse_formula("~ f + flag"), frame)
    assert matrices.fixed_names == ["Intercept", "fhi", "flagTRUE"]


def test_polars_frame():
    pl = pytest.importorskip("polars")
    pandas_frame = _frame("oats")
    polars_frame = pl.DataFrame(
        {
            "yield": pandas_frame["yield"].to_numpy(),
            "nitro": pandas_frame["nitro"].to_numpy(),
            "Variety": pandas_frame["Variety"].tolist(),
            "Block": pl.Series(pandas_frame["Block"].astype(str).tolist()).cast(
                pl.Enum(["I", "II", "III", "IV", "V", "VI"])
            ),
        }
    )
    parsed = parse_formula("yield ~ nitro * Variety + (1 | Block/Variety)")
    from_pandas = FormulaMatrices.fit(parsed, pandas_frame)
    from_polars = FormulaMatrices.fit(parsed, polars_frame)
    assert_allclose(
        from_polars.fixed(polars_frame)[0], from_pandas.fixed(pandas_frame)[0]
    )
    assert from_polars.group_levels == from_pandas.group_levels
    assert_allclose(from_polars.response(polars_frame), pandas_frame["yield"])


@pytest.mark.parametrize(
    ("formula", "match"),
    [
        ("~ log(Variety)", "categorical"),
        ("~ missing_column", "not a column"),
        ("~ C(Variety, contr.wrong)", "unknown contrast"),
        ("~ log(nitro)", r"log\(nitro\) is not finite"),
    ],
)
def test_evaluation_errors(formula, match):
    with pytest.raises(ValueError, match=match):
        FormulaMatrices.fit(parse_formula(formula), _frame("oats"))
