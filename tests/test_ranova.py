"""``ranova``: likelihood-ratio tests of the random-effect terms, against lmerTest.

References from ``tests/data/anova/make_anova.R`` (lmerTest 3.1-3's
``ranova(m)``): the terms of nested factors (Oats, REML and ML), a
correlated slope term reduced to its intercept (Orthodont, ChickWeight,
biomass from arrays), the only random term removed, leaving a linear model
(cake), and uncorrelated terms (biomass, ``||``), whose reduction gives lme4
the same intercept twice.  The log-likelihoods and LRT statistics must agree
to 1e-6 relative.
"""

import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from skmixed import MixedLinearRegressor
from skmixed.datasets import load_biomass
from skmixed.inference._anova_table import AnovaTable
from skmixed.inference._ranova import model_bars, ranova

from .test_analyses import load_frame
from .test_anova_terms import ANALYSES, fitted, reference, reference_table


@pytest.mark.parametrize("name", ANALYSES)
def test_ranova_against_lmertest(name):
    table = ranova(fitted(name))
    expected = reference_table(reference(name), "ranova")
    assert isinstance(table, AnovaTable)
    assert list(table.columns) == ["npar", "logLik", "AIC", "LRT", "Df", "Pr(>Chisq)"]
    assert list(table.index) == list(expected.index)
    assert np.array_equal(table["npar"], expected["npar"])
    np.testing.assert_array_equal(table["Df"], expected["Df"])
    for column in ["logLik", "AIC", "LRT"]:
        np.testing.assert_allclose(table[column], expected[column], rtol=1e-6)
    np.testing.assert_allclose(table["Pr(>Chisq)"], expected["Pr(>Chisq)"], rtol=1e-5)


def test_full_model_row_is_the_fit():
    model = fitted("oats")
    table = ranova(model)
    assert table.loc["<none>", "logLik"] == model.loglik_
    assert np.isnan(table.loc["<none>", "LRT"])


def test_reduced_model_is_the_refitted_formula():
    """'age in (age | Subject)' is the model with (1 | Subject), fitted anew."""
    model = fitted("orthodont")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        small = MixedLinearRegressor(
            formula="distance ~ age * Sex + (1 | Subject)"
        ).fit(load_frame("orthodont"))
    table = ranova(model)
    assert table.loc["age in (age | Subject)", "logLik"] == pytest.approx(
        small.loglik_, rel=1e-9
    )


def test_whole_terms_removed_without_reduction():
    table = ranova(fitted("chickweight"), reduce_terms=False)
    assert list(table.index) == ["<none>", "(1 + Time | Chick)"]
    # no random term left: the linear model, npar = fixed effects + sigma
    assert table.loc["(1 + Time | Chick)", "npar"] == 12 + 1


def test_linear_model_log_likelihood():
    """With no random term left the row is lm's REML/ML log-likelihood."""
    X, y, site = load_biomass(return_X_y_groups=True)
    for method in ["reml", "ml"]:
        model = MixedLinearRegressor(method=method).fit(X, y, groups=site)
        row = ranova(model).loc["(1 | Site)"]
        A = np.column_stack([np.ones(len(y)), X])
        beta, rss = np.linalg.lstsq(A, y, rcond=None)[:2]
        n, p = A.shape
        if method == "ml":
            expected = -0.5 * n * (np.log(2 * np.pi * rss[0] / n) + 1)
        else:
            m = n - p
            expected = -0.5 * m * (np.log(2 * np.pi * rss[0] / m) + 1)
            expected -= 0.5 * np.linalg.slogdet(A.T @ A)[1]
        assert row["logLik"] == pytest.approx(expected, rel=1e-10)
        assert row["npar"] == p + 1


def test_formula_bars_in_findbars_order():
    bars = model_bars(fitted("oats"))
    assert [b.text for b in bars] == ["1 | Variety:Block", "1 | Block"]
    bars = model_bars(fitted("chickweight"))
    assert [b.text for b in bars] == ["1 + Time | Chick"]
    assert [label for label, _ in bars[0].lhs_terms] == ["Time"]


def test_several_slopes_reduced_one_at_a_time():
    frame = load_frame("orthodont")
    frame["age2"] = (frame["age"] - 11.0) ** 2
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        model = MixedLinearRegressor(
            formula="distance ~ age + (1 + age + age2 | Subject)"
        ).fit(frame)
        table = ranova(model)
    assert list(table.index) == [
        "<none>",
        "age in (1 + age + age2 | Subject)",
        "age2 in (1 + age + age2 | Subject)",
    ]
    assert (table["Df"].iloc[1:] == 3).all()


def test_printing_as_lmertest():
    text = str(ranova(fitted("oats")))
    lines = text.splitlines()
    assert lines[0] == "ANOVA-like table for random-effects: Single term deletions"
    assert lines[2:4] == ["Model:", "yield ~ nitro * Variety + (1 | Block/Variety)"]
    # lmerTest: (1 | Variety:Block)    8 -285.96 587.93 8.6929  1   0.003194 **
    row = next(line for line in lines if line.startswith("(1 | Variety:Block)"))
    expected = ["8", "-285.96", "587.93", "8.6929", "1", "0.003194", "**"]
    assert row.split()[3:] == expected
    assert "<table" in ranova(fitted("oats"))._repr_html_()


def test_dataframe_underneath():
    table = ranova(fitted("cake"))
    assert type(table.loc[:, ["LRT"]]) is pd.DataFrame
    assert table.loc["(1 | recipe:replicate)", "Df"] == 1.0


def test_prior_weights_as_lmertest():
    """lmer(..., weights = w): the refits and lm's log-likelihood keep the
    weights (lmerTest 3.1-3 on the biomass data, w = 1 + (row %% 3))."""
    frame = pd.read_csv(Path(__file__).parent / "data" / "biomass.csv")
    w = 1 + (np.arange(1, len(frame) + 1) % 3)
    intercept = MixedLinearRegressor(formula="Biomass ~ Temp + N + (1 | Site)")
    table = ranova(intercept.fit(frame, sample_weight=w))
    np.testing.assert_allclose(table["logLik"], [-178.5640036, -189.9093916], rtol=1e-8)
    slope = MixedLinearRegressor(
        formula="Biomass ~ Temp + N + (1 + Temp | Site)", method="ml"
    )
    table = ranova(slope.fit(frame, sample_weight=w))
    np.testing.assert_allclose(table["logLik"], [-162.3976864, -175.6475392], rtol=1e-8)
