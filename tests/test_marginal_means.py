"""Marginal means and contrasts against emmeans 1.8.4-1 (lme4, lmerTest, pbkrtest).

The references are made by ``tests/data/emmeans/make_emmeans.R`` on seven
fits (nlme's Oats with nitro numeric, a factor column, ``factor(nitro)`` in
the formula and a rank-deficient fit without one cell; Orthodont; lme4's
cake; ChickWeight with ``poly(Time, 2)``), each fitted by REML and polished
to the optimum: per ``emmeans`` call (``specs``, ``at``, ``by``) the
reference grid's linear functions and the means with ``lmer.df =
"satterthwaite"`` and ``"kenward-roger"``, per contrast method and
adjustment emmeans' table, and what emmeans prints.

Tolerances: the linear functions to 1e-10; estimates, SEs, df, bounds, t and
p-values within 1e-4 relative (estimates near zero: 1e-6 of their SE).
R's ``ptukey`` loses relative accuracy on very small p-values (it integrates
to a fixed absolute accuracy), so Tukey-adjusted p-values are compared within
1e-4 relative or 1e-8 absolute (also dunnettx, which uses ptukey).  On the
p-values above 1e-5 the agreement is 3e-6.  (ChickWeight, Diet 1 - 3 at Time
21: R's ptukey gives 4.4e-10, above the Bonferroni bound 1.49e-12 that the
Tukey p-value cannot exceed; scipy's studentized range gives 1.49e-12.)
"""

import functools
import json
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from skmixed import MixedLinearRegressor
from skmixed.inference import contrasts, marginal_means

DATA = Path(__file__).parent / "data"
ANALYSES = [
    "oats",
    "oats_factor",
    "oats_missing_cell",
    "oats_coerced",
    "orthodont",
    "cake",
    "chickweight",
]
RTOL = 1e-4


def as_list(value):
    return value if isinstance(value, list) else [value]


@functools.cache
def reference(name):
    return json.loads((DATA / "emmeans" / f"{name}.json").read_text())


@functools.cache
def load_frame(name):
    """The analysis' data with R's column types (levels in R's order)."""
    ref = reference(name)
    specs = ref["columns"]
    text = [c for c, s in specs.items() if s["type"] != "numeric"]
    raw = pd.read_csv(DATA / ref["data"], dtype=dict.fromkeys(text, str))
    return pd.DataFrame(
        {
            c: pd.Categorical(
                raw[c], categories=as_list(s["levels"]), ordered=s["type"] == "ordered"
            )
            if s["type"] != "numeric"
            else raw[c].astype(float)
            for c, s in specs.items()
        }
    )


@functools.cache
def fit(name):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        return MixedLinearRegressor(formula=reference(name)["formula"]).fit(
            load_frame(name)
        )


def kenward_roger_available():
    try:
        from skmixed.inference._kenward_roger import kenward_roger_t  # noqa: F401
    except ImportError:
        return False
    return True


DDF = [
    "satterthwaite",
    pytest.param(
        "kenward-roger",
        marks=pytest.mark.skipif(
            not kenward_roger_available(), reason="Kenward-Roger not built yet"
        ),
    ),
]

CALLS = [(name, i) for name in ANALYSES for i in range(len(reference(name)["emmeans"]))]
CONTRASTS = [
    (name, i, j)
    for name, i in CALLS
    for j in range(len(as_list(reference(name)["emmeans"][i]["contrasts"])))
]


def call_args(call):
    by = call.get("by") or None  # JSON writes R's NULL as {}
    return dict(
        specs=as_list(call["specs"]),
        at=call["at"] or None,
        by=None if by is None else as_list(by),
    )


def contrast_args(con):
    """method, adjust and the control level (R's ref is 1-based)."""
    return dict(method=con["method"], adjust=con["adjust"], ref=con.get("ref", 1) - 1)


def close(actual, expected, rtol=RTOL, atol=0.0):
    actual = np.asarray(actual, dtype=float)
    expected = np.asarray(as_list(expected), dtype=float)
    np.testing.assert_allclose(actual, expected, rtol=rtol, atol=atol)


def test_fit_is_the_reference_optimum():
    for name in ANALYSES:
        ref, model = reference(name), fit(name)
        se = np.sqrt(np.diag(model.fixed_effects_cov_.to_numpy()))
        estimate = np.asarray(ref["fit"]["fixef"]["estimate"])
        assert np.all(np.abs(model.fixed_effects_.to_numpy() - estimate) <= 1e-6 * se)
        assert model.sigma_ == pytest.approx(ref["fit"]["sigma"], rel=1e-6)


@pytest.mark.parametrize("name, i", CALLS, ids=[f"{n}-{i}" for n, i in CALLS])
def test_reference_grid(name, i):
    """The means' linear functions of the fixed effects are emmeans' linfct."""
    call = reference(name)["emmeans"][i]
    result = marginal_means(fit(name), ddf="satterthwaite", **call_args(call))
    expected = pd.DataFrame(
        np.atleast_2d(np.asarray(call["linfct"], dtype=float)),
        columns=[n.replace("(Intercept)", "Intercept") for n in call["linfct_names"]],
    )
    # a rank-deficient fit: R's linfct also has the dropped column
    expected = expected[list(result.linfct.columns)]
    np.testing.assert_allclose(result.linfct.to_numpy(), expected, atol=1e-10)
    levels = call["means"]["satterthwaite"]["levels"]
    frame = result.to_frame()
    for factor, labels in levels.items():
        assert list(frame[factor].astype(str)) == as_list(labels)


@pytest.mark.parametrize("ddf", DDF)
@pytest.mark.parametrize("name, i", CALLS, ids=[f"{n}-{i}" for n, i in CALLS])
def test_marginal_means(name, i, ddf):
    call = reference(name)["emmeans"][i]
    expected = call["means"][ddf]
    table = marginal_means(fit(name), ddf=ddf, **call_args(call)).table
    for column in ["estimate", "std_error", "df", "lower", "upper"]:
        close(table[column], expected[column])


@pytest.mark.parametrize("ddf", DDF)
@pytest.mark.parametrize(
    "name, i, j", CONTRASTS, ids=[f"{n}-{i}-{j}" for n, i, j in CONTRASTS]
)
def test_contrasts(name, i, j, ddf):
    call = reference(name)["emmeans"][i]
    con = as_list(call["contrasts"])[j]
    expected = con["results"][ddf]
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*changed to .sidak.")
        result = contrasts(
            fit(name),
            **contrast_args(con),
            ddf=ddf,
            **call_args(call),
        )
    table = result.table
    labels = table.index.get_level_values("contrast")
    assert list(labels) == as_list(expected["label"])
    se = np.asarray(as_list(expected["std_error"]), dtype=float)
    close(table["estimate"], expected["estimate"], atol=1e-6 * np.nanmax(se))
    close(table["std_error"], expected["std_error"])
    close(table["df"], expected["df"])
    t_atol = 1e-6 * np.nanmax(np.abs(np.asarray(as_list(expected["t_value"]), float)))
    close(table["t_value"], expected["t_value"], atol=t_atol)
    p_atol = 1e-8 if result.adjust in ("tukey", "dunnettx") else 0.0  # ptukey
    close(table["p_value"], expected["p_value"], atol=p_atol)
    messages = " ".join(as_list(expected.get("messages", [])))
    if result.adjust != "none":
        assert f"P value adjustment: {result.adjust} method" in messages
    else:
        assert "P value adjustment" not in messages


def _printed_lines(text):
    return [line.rstrip() for line in text.strip("\n").splitlines()]


@pytest.mark.parametrize("ddf", DDF)
@pytest.mark.parametrize("name, i", CALLS, ids=[f"{n}-{i}" for n, i in CALLS])
def test_printed_as_emmeans(name, i, ddf):
    """The means and contrasts print as emmeans prints them, figure for figure."""
    call = reference(name)["emmeans"][i]
    mm = marginal_means(fit(name), ddf=ddf, **call_args(call))
    assert _printed_lines(str(mm)) == _printed_lines(
        "\n".join(call["means"][ddf]["printed"])
    )
    for con in as_list(call["contrasts"]):
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message=".*changed to .sidak.")
            result = contrasts(
                fit(name),
                **contrast_args(con),
                ddf=ddf,
                **call_args(call),
            )
        assert _printed_lines(str(result)) == _printed_lines(
            "\n".join(con["results"][ddf]["printed"])
        )


def test_contrast_coefficients_are_emmeans():
    """Pairwise, treatment-vs-control and integer polynomial coefficients."""
    call = reference("cake")["emmeans"][1]  # temperature, 6 levels
    for con in as_list(call["contrasts"]):
        result = contrasts(
            fit("cake"),
            "temperature",
            method=con["method"],
            adjust="none",
            ddf="satterthwaite",
        )
        np.testing.assert_allclose(
            result.linfct.to_numpy(), np.atleast_2d(con["coefficients"]), atol=1e-10
        )


def test_by_groups_are_the_combined_means():
    """``by`` lists the means of specs + by; contrasts stay within a group."""
    model = fit("oats_factor")
    grouped = marginal_means(model, "Variety", by="nitro", ddf="satterthwaite")
    both = marginal_means(model, ["Variety", "nitro"], ddf="satterthwaite")
    np.testing.assert_allclose(grouped.table["estimate"], both.table["estimate"])
    con = contrasts(model, "Variety", by="nitro", ddf="satterthwaite")
    assert con.table.index.names == ["contrast", "nitro"]
    assert con.coefficients.shape == (12, 12)
    assert np.all(con.coefficients.abs().groupby(level="nitro").sum().sum(axis=1) == 6)


def test_tukey_on_other_contrasts_becomes_sidak():
    with pytest.warns(UserWarning, match='changed to "sidak"'):
        result = contrasts(
            fit("oats_factor"),
            "nitro",
            method="trt.vs.ctrl",
            adjust="tukey",
            ddf="satterthwaite",
        )
    assert result.adjust == "sidak"
    assert "sidak" in str(result)


def test_one_contrast_is_not_adjusted():
    result = contrasts(
        fit("orthodont"), "Sex", adjust="bonferroni", ddf="satterthwaite"
    )
    assert result.adjust == "none"
    assert list(result.table.index) == ["Male - Female"]


def test_means_are_averages_of_predictions():
    """A marginal mean is the equal-weight average of the grid's predictions."""
    model = fit("oats_factor")
    mm = marginal_means(model, "Variety", ddf="satterthwaite")
    grid = pd.DataFrame(
        {
            "nitro": pd.Categorical(["0", "0.2", "0.4", "0.6"] * 3),
            "Variety": pd.Categorical(
                np.repeat(["Golden Rain", "Marvellous", "Victory"], 4)
            ),
            "Block": ["new"] * 12,
        }
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        predicted = model.predict(grid, random_effects="none")
    expected = pd.Series(predicted).groupby(grid["Variety"].to_numpy()).mean()
    np.testing.assert_allclose(mm.table["estimate"], expected.to_numpy(), rtol=1e-12)


def test_covariate_means_from_data_and_at():
    """Without ``data`` the covariate means come from the fit (its model
    matrix or poly()'s centre); ``data`` and ``at`` give the same grid."""
    model = fit("chickweight")
    frame = load_frame("chickweight")
    a = marginal_means(model, "Diet", ddf="satterthwaite")
    b = marginal_means(model, "Diet", ddf="satterthwaite", data=frame)
    c = marginal_means(
        model, "Diet", ddf="satterthwaite", at={"Time": frame["Time"].mean()}
    )
    np.testing.assert_allclose(a.table["estimate"], b.table["estimate"], rtol=1e-12)
    np.testing.assert_allclose(a.table["estimate"], c.table["estimate"], rtol=1e-12)
    assert a.covariates["Time"] == pytest.approx(frame["Time"].mean(), rel=1e-12)


def test_several_at_values_are_averaged_or_a_spec():
    model = fit("orthodont")
    both = marginal_means(
        model, ["Sex", "age"], at={"age": [8, 14]}, ddf="satterthwaite"
    )
    averaged = marginal_means(model, "Sex", at={"age": [8, 14]}, ddf="satterthwaite")
    middle = marginal_means(model, "Sex", at={"age": 11}, ddf="satterthwaite")
    assert both.table.shape[0] == 4
    np.testing.assert_allclose(averaged.table["estimate"], middle.table["estimate"])
    assert averaged.averaged_over == ["age"]


def test_printing():
    mm = marginal_means(fit("oats"), "Variety", ddf="satterthwaite")
    text = str(mm)
    assert text.splitlines()[0].split() == [
        "Variety",
        "emmean",
        "SE",
        "df",
        "lower.CL",
        "upper.CL",
    ]
    assert "Degrees-of-freedom method: satterthwaite" in text
    assert "Confidence level used: 0.95" in text
    assert "<table" in mm._repr_html_()
    con = contrasts(fit("oats"), "Variety", ddf="satterthwaite")
    assert "Golden Rain - Marvellous" in str(con)
    family = "P value adjustment: tukey method for comparing a family of 3 estimates"
    assert family in str(con)
    assert "<table" in con._repr_html_()


def test_kenward_roger_needs_reml():
    frame = load_frame("oats")
    model = MixedLinearRegressor(formula=reference("oats")["formula"], method="ml")
    model.fit(frame)
    with pytest.raises(ValueError, match="ddf='satterthwaite'"):
        marginal_means(model, "Variety")
    assert marginal_means(model, "Variety", ddf="satterthwaite").table.shape == (3, 5)


def test_errors():
    model = fit("oats")
    with pytest.raises(ValueError, match="not factors of the fixed part"):
        marginal_means(model, "Block", ddf="satterthwaite")
    with pytest.raises(ValueError, match="ddf must be one of"):
        marginal_means(model, "Variety", ddf="wald")
    with pytest.raises(ValueError, match="at names"):
        marginal_means(model, "Variety", at={"x": 1}, ddf="satterthwaite")
    with pytest.raises(ValueError, match="adjust must be one of"):
        contrasts(model, "Variety", adjust="scheffe", ddf="satterthwaite")
    rng = np.random.default_rng(0)
    X, groups = rng.normal(size=(40, 2)), np.repeat(np.arange(8), 5)
    y = X[:, 0] + rng.normal(size=8)[groups] + rng.normal(size=40)
    array_model = MixedLinearRegressor().fit(X, y, groups=groups)
    with pytest.raises(ValueError, match="formula model"):
        marginal_means(array_model, "x0", ddf="satterthwaite")


def test_covariate_seen_through_a_function_needs_data_or_at():
    """log(x): its mean is not the fit's; data= (or at=) gives it."""
    frame = load_frame("orthodont")
    model = MixedLinearRegressor(
        formula="distance ~ log(age) * Sex + (1 | Subject)"
    ).fit(frame)
    with pytest.raises(ValueError, match="pass the training data"):
        marginal_means(model, "Sex", ddf="satterthwaite")
    a = marginal_means(model, "Sex", ddf="satterthwaite", data=frame)
    b = marginal_means(model, "Sex", ddf="satterthwaite", at={"age": 11.0})
    np.testing.assert_allclose(a.table["estimate"], b.table["estimate"], rtol=1e-12)
    grid = pd.DataFrame(
        {
            "age": [11.0, 11.0],
            "Sex": pd.Categorical(["Male", "Female"]),
            "Subject": "new",
        }
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        expected = model.predict(grid, random_effects="none")
    np.testing.assert_allclose(a.table["estimate"], expected, rtol=1e-12)


def test_repr_is_the_printed_table():
    model = fit("oats")
    means = marginal_means(model, "Variety", ddf="satterthwaite")
    pairs = contrasts(model, "Variety", ddf="satterthwaite")
    assert repr(means) == str(means) and "Variety" in repr(means)
    assert repr(pairs) == str(pairs) and " - " in repr(pairs)
