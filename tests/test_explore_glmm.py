"""The model explorer of the generalised models (MixedLogisticRegression,
MixedPoissonRegressor): glmer's sections, and what-if predictions in the
browser equal to ``predict_proba(...)[:, 1]`` / ``predict``, conditional for a
seen level and marginal (Gauss-Hermite, probit's closed form, the lognormal
mean) for a new one.

The browser tests use Debian's chromium driven by Playwright, as
``test_explore.py`` (whose fixture and page helper they share); without them
they are skipped.
"""

import json
import warnings

import numpy as np
import pandas as pd
import pytest

from skmixed import (
    MixedLinearRegressor,
    MixedLogisticRegression,
    MixedPoissonRegressor,
    explore,
)
from skmixed.inference import quantile_residuals

from .test_explore import Page, browser  # noqa: F401 (the fixture)

SECTIONS = [
    "model",
    "fixed-effects",
    "variance-components",
    "random-effects",
    "diagnostics",
    "effects",
    "what-if",
]
TOL = 1e-9  # the page's prediction against the model's


def simulate(n=240, n_groups=12, seed=0):
    """x, w and a group with random intercepts and x slopes."""
    rng = np.random.default_rng(seed)
    g = rng.integers(0, n_groups, n)
    X = pd.DataFrame({"x": rng.normal(size=n), "w": rng.uniform(0, 2, n)})
    b0, b1 = rng.normal(size=n_groups), rng.normal(size=n_groups)
    eta = -0.3 + 0.8 * X["x"] + 0.3 * X["w"] + b0[g] + b1[g] * X["x"]
    groups = pd.Series([f"G{v}" for v in g], name="grp")
    return X, eta.to_numpy(), groups, rng


@pytest.fixture(scope="module")
def logistic():
    X, eta, groups, rng = simulate()
    y = pd.Series(np.where(rng.random(len(eta)) < 1 / (1 + np.exp(-eta)), "yes", "no"))
    y.name = "answer"
    model = MixedLogisticRegression(random_slopes=["x"]).fit(X, y, groups=groups)
    return model, X, y, groups


@pytest.fixture(scope="module")
def poisson():
    X, eta, groups, rng = simulate(seed=1)
    f = rng.choice(["lo", "mid", "hi"], len(eta))
    counts = rng.poisson(np.exp(0.5 + 0.6 * eta + 0.4 * (f == "hi")))
    frame = X.assign(count=counts, f=f, grp=groups)
    model = MixedPoissonRegressor(formula="count ~ x + log1p(w) + f + (1 | grp)")
    return model.fit(frame), frame


def quietly(f, *args, **kwargs):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # unseen levels, on purpose
        return f(*args, **kwargs)


# --------------------------------------------------------------------------- #
# The page's data                                                              #
# --------------------------------------------------------------------------- #


def test_logistic_page_follows_glmer(logistic):
    model, X, y, groups = logistic
    page = model.explore(X, y, groups)
    data = page.data
    m = data["model"]
    assert (m["family"], m["link"]) == ("binomial", "logit")
    assert m["method"] == "Laplace approximation"
    assert m["aic"] == model.aic_ and m["bic"] == model.bic_
    assert m["deviance"] == model.deviance_ and m["loglik"] == model.loglik_
    assert m["df_resid"] == model.df_resid_ and m["n_obs"] == len(y)
    assert m["summary"] == str(model.summary())
    fixed = data["fixed"]
    assert fixed["scale"] == "log-odds" and fixed["ratio"] == "odds ratio"
    table = model.summary().fixed_effects
    np.testing.assert_array_equal(fixed["z_value"], table["z_value"])
    np.testing.assert_array_equal(fixed["p_value"], table["p_value"])
    wald = model.confint(level=0.95)
    np.testing.assert_array_equal(fixed["lower"], wald.loc[fixed["names"], "lower"])
    # no residual: the variance section and the predictor say so
    assert data["variance"]["sigma"] is None
    assert data["predictor"]["sigma"] is None
    assert data["predictor"]["link"] == "logit"
    assert data["predictor"]["response"] == "P(answer = yes)"
    (grp,) = data["factors"]
    assert sum(grp["n_rows"]) == len(y) and grp["no_pooling"] is None
    # the labels are the 0/1 of classes_[1] in the effect plots
    assert sorted(set(data["data"]["y"])) == [0.0, 1.0]
    assert data["data"]["y"][:5] == list((y[:5] == "yes").astype(float))
    # diagnostics: the quantile residuals of the training rows (seed 0)
    diagnostics = data["diagnostics"]
    assert diagnostics["kind"] == "quantile"
    u = quantile_residuals(model, random_state=0)
    np.testing.assert_array_equal(diagnostics["residuals"], u)
    np.testing.assert_array_equal(diagnostics["fitted"], model.fitted_values_)
    qq = diagnostics["qq"][0]
    assert qq["uniform"] and qq["sample"] == sorted(u.tolist())
    assert [q["name"] for q in diagnostics["qq"][1:]] == [
        "grp: Intercept",
        "grp: x",
    ]
    assert json.loads(json.dumps(data, allow_nan=False)) == data
    assert "shrinkage" not in page.html.split('id="skmixed-data"')[0]


def test_poisson_formula_page(poisson):
    model, frame = poisson
    data = explore(model, frame).data
    assert data["fixed"]["ratio"] == "rate ratio"
    assert data["fixed"]["scale"] == "log-rate"
    assert data["predictor"]["link"] == "log"
    assert data["predictor"]["response"] == "mean count"
    assert data["data"]["y"] == frame["count"].astype(float).tolist()
    inputs = {i["name"]: i for i in data["predictor"]["inputs"]}
    assert set(inputs) == {"x", "w", "f"}
    assert inputs["f"]["levels"] == ["hi", "lo", "mid"]


def test_generalized_errors(logistic):
    model, X, y, groups = logistic
    with pytest.raises(ValueError, match="needs the rows it describes"):
        explore(model)
    with pytest.raises(TypeError, match="MixedPoissonRegressor"):
        explore("not a model")
    assert explore(model, X, y, groups).data["predictor"]["offset"] is None


@pytest.fixture(scope="module")
def with_offset():
    """Counts with a log-exposure offset (glmer's offset(log(exposure)))."""
    X, eta, groups, rng = simulate(seed=2)
    offset = np.log(rng.uniform(0.5, 4.0, len(eta)))
    counts = rng.poisson(np.exp(offset + 0.5 * eta))
    model = MixedPoissonRegressor().fit(X, counts, groups=groups, offset=offset)
    return model, X, counts, groups, offset


def test_linear_page_is_unchanged_in_kind():
    """The linear model keeps its residual, t-tests and shrinkage."""
    X, eta, groups, rng = simulate()
    y = eta + rng.normal(size=len(eta))
    model = MixedLinearRegressor().fit(X, y, groups=groups)
    data = explore(model).data
    assert data["predictor"]["link"] == "identity"
    assert "marginal" not in data["predictor"]
    assert data["variance"]["sigma"] == model.sigma_
    assert "z_value" not in data["fixed"]
    assert data["factors"][0]["no_pooling"] is not None


# --------------------------------------------------------------------------- #
# In the browser                                                               #
# --------------------------------------------------------------------------- #


def _check_sections(page):
    tabs = "buttons => buttons.map(b => b.dataset.tab)"
    nav = page.page.locator("nav button").evaluate_all(tabs)
    assert nav == SECTIONS
    for name in SECTIONS:
        page.page.click(f'nav button[data-tab="{name}"]')
        section = page.page.locator(f'[data-section="{name}"]')
        assert section.count() == 1 and section.is_visible(), name
        if name in ("diagnostics", "effects", "fixed-effects", "random-effects"):
            assert section.locator("svg").count() >= 1, name


def _states(data, inputs, levels):
    """Page states: each row's inputs and level indices (-1: a new level)."""
    specs = data["predictor"]["inputs"]
    factors = {f["name"]: f["levels"] for f in data["factors"]}
    states = []
    for i in range(len(inputs)):
        values = {
            s["name"]: (
                float(inputs[s["name"]].iloc[i])
                if s["kind"] == "numeric"
                else s["levels"].index(str(inputs[s["name"]].iloc[i]))
            )
            for s in specs
        }
        codes = {
            f: factors[f].index(levels[f].iloc[i])
            if levels[f].iloc[i] in factors[f]
            else -1
            for f in factors
        }
        states.append({"inputs": values, "levels": codes})
    return states


def _page_predictions(page, states):
    return np.array(
        page.page.evaluate(
            "states => states.map(s => window.skmixedExplorer.predict(s).fit)", states
        )
    )


@pytest.mark.parametrize("link", ["logit", "probit", "cloglog"])
def test_browser_logistic_what_if(browser, logistic, link, tmp_path):  # noqa: F811
    model, X, y, groups = logistic
    assert not model.is_singular_  # both variances enter the marginal average
    if link != "logit":
        model = MixedLogisticRegression(random_slopes=["x"], link=link)
        model.fit(X, y, groups=groups)
        assert not model.is_singular_
    page = Page(browser, model.explore(X, y, groups, path=tmp_path / "page.html"))
    # every training row, seen level: the conditional probability
    states = _states(page.data, X, {"grp": groups})
    np.testing.assert_allclose(
        _page_predictions(page, states),
        model.predict_proba(X, groups=groups)[:, 1],
        rtol=0,
        atol=TOL,
    )
    # every row again with a new level: the marginal probability
    new = pd.Series(["unseen"] * len(X))
    expected = quietly(model.predict_proba, X, groups=new)[:, 1]
    got = _page_predictions(page, _states(page.data, X, {"grp": new}))
    np.testing.assert_allclose(got, expected, rtol=0, atol=TOL)
    # not the probability at b = 0: the marginal average matters here
    at_zero = model.predict_proba(X, random_effects="none", marginal=False)[:, 1]
    assert np.max(np.abs(got - at_zero)) > 1e-3
    # as a user sets them: a seen and a new level
    for i, level in [(3, groups.iloc[3]), (8, None)]:
        page.set_row(X.iloc[i].to_dict(), {"grp": level})
        rows = pd.Series([level or "unseen"])
        expected = quietly(model.predict_proba, X.iloc[[i]], groups=rows)[0, 1]
        assert page.prediction() == pytest.approx(expected, abs=TOL, rel=0)
        lower, upper = page.interval()
        assert 0 < lower < upper < 1
    if link == "logit":
        _check_sections(page)
        # the odds ratios: exp of the estimates
        page.page.click('nav button[data-tab="fixed-effects"]')
        page.page.check('[data-role="exponentiate"]')
        cell = page.page.locator('[data-section="fixed-effects"] tbody tr').nth(1)
        shown = float(cell.locator("td").nth(1).inner_text())
        assert shown == pytest.approx(np.exp(model.fixed_effects_["x"]), rel=1e-3)
        header = page.page.locator('[data-section="fixed-effects"] th').nth(1)
        assert header.inner_text() == "odds ratio"
        text = page.page.locator('[data-section="variance-components"]').inner_text()
        assert "Residual" not in text
    assert page.errors == []
    page.close()


def test_browser_poisson_formula(browser, poisson, tmp_path):  # noqa: F811
    model, frame = poisson
    page = Page(browser, explore(model, frame, path=tmp_path / "page.html"))
    _check_sections(page)
    seen = _states(page.data, frame, {"grp": frame["grp"]})
    np.testing.assert_allclose(
        _page_predictions(page, seen), model.predict(frame), rtol=0, atol=TOL
    )
    unseen = frame.assign(grp="unseen")
    got = _page_predictions(page, _states(page.data, unseen, {"grp": unseen["grp"]}))
    expected = quietly(model.predict, unseen)
    np.testing.assert_allclose(got, expected, rtol=0, atol=TOL)
    at_zero = quietly(model.predict, unseen, marginal=False)
    assert np.all(got > at_zero)  # exp(eta + v / 2)
    page.set_row({"x": 0.5, "w": 1.5, "f": "mid"}, {"grp": None})
    row = pd.DataFrame({"x": [0.5], "w": [1.5], "f": ["mid"], "grp": ["unseen"]})
    assert page.prediction() == pytest.approx(
        quietly(model.predict, row)[0], abs=TOL, rel=0
    )
    assert page.errors == []
    page.close()


def test_browser_offset_input(browser, with_offset, tmp_path):  # noqa: F811
    """An offset model's page asks for the offset: predict(X, offset=...)."""
    model, X, counts, groups, offset = with_offset
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no warning: the page has the offset
        path = explore(model, X, counts, groups, path=tmp_path / "page.html")
    page = Page(browser, path)
    spec = page.data["predictor"]["offset"]
    assert spec["min"] == offset.min() and spec["max"] == offset.max()
    for level in (groups, pd.Series(["unseen"] * len(X))):
        states = _states(page.data, X, {"grp": level})
        for state, o in zip(states, offset):
            state["offset"] = o
        expected = quietly(model.predict, X, groups=level, offset=offset)
        got = _page_predictions(page, states)
        np.testing.assert_allclose(got, expected, rtol=1e-14, atol=TOL)
    page.set_row(X.iloc[5].to_dict(), {"grp": groups.iloc[5]})
    page.page.fill('[data-role="offset"]', "1.25")
    expected = model.predict(X.iloc[[5]], groups=groups.iloc[[5]], offset=[1.25])
    assert page.prediction() == pytest.approx(expected[0], abs=TOL, rel=1e-14)
    assert page.errors == []
    page.close()


def test_browser_crossed_factors_one_new(browser, tmp_path):  # noqa: F811
    """A seen level of one factor and a new level of the other: conditional
    on the first, averaged over the second."""
    X, eta, _, rng = simulate(n=300, seed=4)
    groups = pd.DataFrame(
        {"a": [f"A{v}" for v in rng.integers(0, 10, 300)], "b": rng.integers(0, 8, 300)}
    )
    y = rng.random(300) < 1 / (1 + np.exp(-eta - rng.normal(size=8)[groups["b"]]))
    model = quietly(MixedLogisticRegression().fit, X, y, groups=groups)
    page = Page(browser, explore(model, X, y, groups, path=tmp_path / "page.html"))
    for new in ("a", "b"):
        rows = groups.copy()
        rows[new] = "unseen" if new == "a" else -1
        levels = {f: rows[f].astype(str) if f == "b" else rows[f] for f in ("a", "b")}
        got = _page_predictions(page, _states(page.data, X, levels))
        expected = quietly(model.predict_proba, X, groups=rows)[:, 1]
        np.testing.assert_allclose(got, expected, rtol=0, atol=TOL)
    assert page.errors == []
    page.close()
