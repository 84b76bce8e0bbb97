"""Targets of the generalised models: formula scoring, missing rows, new groups."""

import warnings

import numpy as np
import pandas as pd
import pytest

from skmixed import MixedLogisticRegression, MixedPoissonRegressor


@pytest.fixture(scope="module")
def frame():
    rng = np.random.default_rng(3)
    n_groups, per_group = 12, 15
    group = np.repeat([f"s{j}" for j in range(n_groups)], per_group)
    x = rng.normal(size=group.size)
    effect = rng.normal(0, 0.8, n_groups)[np.repeat(np.arange(n_groups), per_group)]
    eta = 0.3 + 0.9 * x + effect
    passed = np.where(rng.random(group.size) < 1 / (1 + np.exp(-eta)), "yes", "no")
    counts = rng.poisson(np.exp(0.5 + 0.4 * x + effect))
    return pd.DataFrame({"x": x, "group": group, "passed": passed, "n": counts})


def test_formula_classifier_scores_without_y(frame):
    model = MixedLogisticRegression(formula="passed ~ x + (1 | group)").fit(frame)
    expected = np.mean(model.predict(frame) == frame["passed"].to_numpy())
    assert model.score(frame) == pytest.approx(expected)
    assert model.score(frame, frame["passed"]) == pytest.approx(expected)


def test_formula_models_skip_incomplete_rows(frame):
    holes = frame.copy()
    holes.loc[[0, 5], "x"] = np.nan
    model = MixedLogisticRegression(formula="passed ~ x + (1 | group)")
    with pytest.warns(UserWarning, match="missing"):
        model.fit(holes)
    labels = model.predict(holes)
    assert labels[0] is None and labels[5] is None
    complete = holes.drop(index=[0, 5])
    assert model.score(holes) == pytest.approx(model.score(complete))
    counts = MixedPoissonRegressor(formula="n ~ x + (1 | group)").fit(frame)
    assert counts.score(frame) == pytest.approx(counts.score(frame, frame["n"]))


def test_score_of_new_groups_does_not_warn(frame):
    # Grouped cross-validation scores groups the fit never saw, by design.
    train = frame[frame["group"] != "s0"]
    test = frame[frame["group"] == "s0"]
    model = MixedLogisticRegression(formula="passed ~ x + (1 | group)").fit(train)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        model.score(test)
    with pytest.warns(UserWarning, match="level"):
        model.predict(test)


def test_dask_collections_get_a_clear_error(frame):
    dd = pytest.importorskip("dask.dataframe")
    data = dd.from_pandas(frame, npartitions=2)
    model = MixedLogisticRegression(formula="passed ~ x + (1 | group)")
    with pytest.raises(TypeError, match="dask"):
        model.fit(data)


def test_likelihood_ratio_tests_between_glmms_are_glmers():
    # lme4's anova(m0, m1, m2) on mlmRev's Contraception (glmer_anova.json).
    from pathlib import Path

    from skmixed import anova

    data_dir = Path(__file__).parent / "data" / "glmer"
    data = pd.read_csv(data_dir / "contraception.csv")
    ref = pd.read_json(data_dir / "glmer_anova.json", typ="series")
    fixed = "use ~ age + age2 + urbanY"
    livch = " + livch1 + livch2 + livch3plus"
    formulas = [
        fixed + " + (1 | district)",
        fixed + livch + " + (1 | district)",
        fixed + livch + " + (1 + urbanY | district)",
    ]
    models = [MixedLogisticRegression(formula=f).fit(data) for f in formulas]
    table = anova(*models[::-1])  # sorted by npar, as lme4
    np.testing.assert_array_equal(table["npar"], ref["npar"])
    np.testing.assert_allclose(table["logLik"], ref["logLik"], rtol=1e-6)
    np.testing.assert_allclose(table["Chisq"][1:], ref["Chisq"][1:], rtol=1e-4)
    np.testing.assert_allclose(table["Pr(>Chisq)"][1:], ref["p"][1:], rtol=1e-3)
    assert np.all(table["logLik"].to_numpy() >= np.asarray(ref["logLik"]) - 1e-6)
    with pytest.raises(TypeError, match="likelihood ratio"):
        anova(models[0])


def test_cbind_response_is_glmers_binomial():
    # glmer(cbind(incidence, size - incidence) ~ period + (1 | herd), cbpp)
    import json
    from pathlib import Path

    data_dir = Path(__file__).parent / "data" / "glmer"
    data = pd.read_csv(data_dir / "cbpp_binomial.csv")
    data = data.astype({"herd": str, "period": str})  # R factors
    ref = json.loads((data_dir / "cbpp_binomial.json").read_text())["fit"]
    formula = "cbind(incidence, size - incidence) ~ period + (1 | herd)"
    model = MixedLogisticRegression(formula=formula).fit(data)
    assert model.loglik_ >= ref["loglik"] - 1e-6 * abs(ref["loglik"])
    np.testing.assert_allclose(
        model.fixed_effects_, list(ref["fixef"].values()), atol=1e-5
    )
    assert f"Formula: {formula}" in str(model.summary())
    # The same fit as proportions with the trials as weights.
    by_weights = MixedLogisticRegression(formula="prop ~ period + (1 | herd)")
    by_weights.fit(data, sample_weight=data["size"])
    assert model.loglik_ == pytest.approx(by_weights.loglik_, rel=1e-12)
    with pytest.raises(ValueError, match="two counts"):
        MixedLogisticRegression(formula="cbind(incidence) ~ period + (1 | herd)").fit(
            data
        )
