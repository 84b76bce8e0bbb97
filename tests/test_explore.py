"""The model explorer (issue 14): one self-contained HTML page per fitted model.

The page's numbers are checked in Python (what it embeds) and in a real
browser: Debian's chromium driven by Playwright, launched with the system
executable (no browser download).  Without them the browser tests are skipped
with a message saying how to enable them.
"""

import json
import os
import re
import shutil
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from sklearn.exceptions import NotFittedError

from skmixed import MixedLinearRegressor
from skmixed._explore import ExplorerPage, explore
from skmixed.datasets import load_biomass

CHROMIUM = (
    os.environ.get("SKMIXED_CHROMIUM")
    or shutil.which("chromium")
    or ("/usr/bin/chromium")
)
ENABLE = (
    "install playwright (pip install -e '.[test]') and Debian's chromium "
    "(apt-get install chromium), or point SKMIXED_CHROMIUM at a Chromium binary"
)
SECTIONS = [
    "model",
    "fixed-effects",
    "variance-components",
    "random-effects",
    "diagnostics",
    "shrinkage",
    "effects",
    "what-if",
]


@pytest.fixture(scope="module")
def biomass():
    X, y, site = load_biomass(return_X_y_groups=True)
    model = MixedLinearRegressor(random_slopes=["Temp"]).fit(X, y, groups=site)
    return model, X, y, site


def fit_quietly(formula, data):
    """A formula fit; a singular fit's warning is not the point of these tests."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        return MixedLinearRegressor(formula=formula).fit(data)


def mixed_frame(n=160, seed=0):
    """Raw data with numeric, string, categorical, ordered and boolean columns."""
    rng = np.random.default_rng(seed)
    g = rng.integers(0, 12, n)
    h = rng.integers(0, 5, n)
    x = rng.uniform(0.5, 4.0, n)
    w = rng.uniform(1.0, 10.0, n)
    f = rng.choice(["lo", "mid", "hi"], n)
    sizes = ["S", "M", "L"]
    o = pd.Categorical(rng.choice(sizes, n), categories=sizes, ordered=True)
    b = rng.random(n) < 0.4
    y = (
        1
        + 0.5 * x
        - 0.2 * x**2
        + np.log(w)
        + (f == "hi") * 0.8
        + rng.normal(size=12)[g] * (1 + 0.3 * x)
        + rng.normal(size=5)[h]
        + b * 0.3
        + rng.normal(size=n) * 0.5
    )
    return pd.DataFrame(
        {
            "y": y,
            "x": x,
            "w": w,
            "f": f,
            "o": o,
            "b": b,
            "k": rng.integers(1, 4, n),
            "g": [f"G{v}" for v in g],
            "h": [f"H{v}" for v in h],
        }
    )


FORMULAS = [
    "y ~ poly(x, 2) * f + log(w) + (1 + x | g) + (1 | h)",
    "y ~ scale(x) + I(x^2) + C(f, sum) + o + b + factor(k) + (1 | g:h) + (1 | g)",
    "y ~ x * o + sqrt(w) + (1 + x || g)",
    "y ~ 0 + f + x:f + (0 + x | g)",
]


# --------------------------------------------------------------------------- #
# The page as written                                                          #
# --------------------------------------------------------------------------- #


def test_page_is_self_contained_and_small(biomass, tmp_path):
    model, X, y, site = biomass
    path = explore(model, path=tmp_path / "page.html")
    assert path == tmp_path / "page.html"
    text = path.read_text(encoding="utf-8")
    assert path.stat().st_size < 5_000_000
    # every script, style and figure is inline: no URL is fetched
    assert not re.search(r"<(script|link|img|iframe)[^>]*\s(src|href)=", text)
    assert "http://" not in text.replace("http://www.w3.org/2000/svg", "")
    assert "https://" not in text
    for section in SECTIONS:
        assert f'"{section}"' in text or f"'{section}'" in text


def test_page_embeds_the_fitted_numbers(biomass):
    model, X, y, site = biomass
    page = explore(model, X, y, site)
    assert isinstance(page, ExplorerPage)
    data = page.data
    predictor = data["predictor"]
    assert predictor["features"] == ["Temp", "N"]
    assert predictor["link"] == "identity"
    np.testing.assert_array_equal(predictor["coef"], model.coef_)
    assert predictor["intercept"] == model.intercept_
    (site_data,) = data["factors"]
    assert site_data["levels"] == [str(v) for v in model.random_effects_["Site"].index]
    np.testing.assert_array_equal(
        site_data["effects"], model.random_effects_["Site"].to_numpy()
    )
    assert sum(site_data["n_rows"]) == len(y)
    assert data["fixed"]["names"] == ["Intercept", "Temp", "N"]
    assert data["model"]["method"] == "REML"
    assert data["model"]["summary"] == str(model.summary())
    inputs = {i["name"]: i for i in predictor["inputs"]}
    assert inputs["Temp"]["min"] == X["Temp"].min()
    assert inputs["N"]["max"] == X["N"].max()
    # The page's JSON is valid (no NaN) and round-trips exactly.
    assert json.loads(json.dumps(data, allow_nan=False)) == data
    assert "<iframe" in page._repr_html_()


def test_bad_input_gives_clear_errors(biomass):
    model, X, y, site = biomass
    with pytest.raises(NotFittedError):
        explore(MixedLinearRegressor())
    with pytest.raises(TypeError, match="MixedLinearRegressor"):
        explore(object())
    with pytest.raises(ValueError, match="lacks the fitted feature"):
        explore(model, X[["Temp"]], y, site)
    with pytest.raises(ValueError, match="groups|length|rows"):
        explore(model, X, y, site[:50])
    with pytest.raises(ValueError, match="2-D with 2 column"):
        explore(model, X.to_numpy()[:, :1], y, site)
    data = mixed_frame()
    formula = fit_quietly(FORMULAS[0], data)
    with pytest.raises(ValueError, match="needs the data frame"):
        explore(formula)
    with pytest.raises(ValueError, match=r"lacks the column\(s\) \['w'\]"):
        explore(formula, data.drop(columns="w"))


def test_formula_inputs_are_raw_variables():
    data = mixed_frame()
    model = fit_quietly(FORMULAS[1], data)
    inputs = {i["name"]: i for i in explore(model, data).data["predictor"]["inputs"]}
    assert set(inputs) == {"x", "f", "o", "b", "k"}
    assert inputs["x"]["kind"] == "numeric"
    assert inputs["f"]["levels"] == ["hi", "lo", "mid"]  # sorted, as R
    assert inputs["o"]["levels"] == ["S", "M", "L"]  # the categories' order
    assert inputs["b"]["levels"] == ["FALSE", "TRUE"]
    assert inputs["k"]["kind"] == "categorical"  # factor(k) reads it
    points = explore(model, data).data["data"]["x"]
    assert all(v is not None for c in ("f", "o", "b", "k") for v in points[c])


# --------------------------------------------------------------------------- #
# In the browser                                                               #
# --------------------------------------------------------------------------- #


@pytest.fixture(scope="module")
def browser():
    sync_api = pytest.importorskip(
        "playwright.sync_api", reason=f"the browser tests need playwright: {ENABLE}"
    )
    if not Path(CHROMIUM).exists():
        pytest.skip(f"the browser tests need chromium at {CHROMIUM}: {ENABLE}")
    with sync_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=CHROMIUM, args=["--no-sandbox"]
        )
        yield browser
        browser.close()


class Page:
    """An explorer page open in the browser, with its console errors."""

    def __init__(self, browser, path):
        self.page = browser.new_page(viewport={"width": 1280, "height": 900})
        self.errors = []
        self.page.on(
            "console",
            lambda m: self.errors.append(m.text) if m.type == "error" else None,
        )
        self.page.on("pageerror", lambda e: self.errors.append(str(e)))
        self.page.goto(Path(path).resolve().as_uri())
        self.data = self.page.evaluate("window.skmixedExplorer.data")

    def set_row(self, inputs, levels):
        """Set the what-if inputs and level selectors as a user would."""
        page = self.page
        page.click('nav button[data-tab="what-if"]')
        specs = {i["name"]: i for i in self.data["predictor"]["inputs"]}
        for name, value in inputs.items():
            spec = specs[name]
            field = f'[data-section="what-if"] [data-feature="{name}"]'
            if spec["kind"] == "numeric":
                page.fill(field, repr(float(value)))
            else:
                index = spec["levels"].index(value)
                page.select_option(field, value=str(index))
        for factor, level in levels.items():
            selector = f'[data-factor="{factor}"]'
            if level is None:
                page.select_option(selector, value="-1")
            else:
                page.select_option(selector, label=str(level))

    def prediction(self):
        node = self.page.locator('[data-role="prediction"]')
        return float(node.get_attribute("data-value"))

    def interval(self):
        node = self.page.locator('[data-role="interval"]')
        return float(node.get_attribute("data-lower")), float(
            node.get_attribute("data-upper")
        )

    def close(self):
        self.page.close()


def _label(value):
    from skmixed._formula import r_label

    return r_label(value)


def _check_sections(page, tmp_path):
    for name in SECTIONS:
        page.page.click(f'nav button[data-tab="{name}"]')
        section = page.page.locator(f'[data-section="{name}"]')
        assert section.count() == 1 and section.is_visible(), name
        if name in ("diagnostics", "effects", "fixed-effects"):
            assert section.locator("svg").count() >= 1, name
    shot = tmp_path / "explorer.png"
    page.page.screenshot(path=str(shot))
    assert shot.stat().st_size > 10_000


def test_browser_array_model(browser, biomass, tmp_path):
    model, X, y, site = biomass
    page = Page(browser, explore(model, X, y, site, path=tmp_path / "page.html"))
    _check_sections(page, tmp_path)
    rows = [0, 17, 55, 99]
    for i in rows:
        for level in (site.iloc[i], None):
            page.set_row(X.iloc[i].to_dict(), {"Site": level})
            groups = pd.Series([level if level is not None else "a new site"])
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")  # an unseen site, on purpose
                expected = model.predict(X.iloc[[i]], groups=groups)[0]
            assert page.prediction() == pytest.approx(expected, abs=1e-8, rel=0)
            lower, upper = page.interval()
            assert lower < expected < upper
    # A level clicked in the random-effects table is the what-if's level.
    page.page.click('nav button[data-tab="random-effects"]')
    page.page.fill('[data-role="level-search"]', "Site7")
    page.page.click('[data-section="random-effects"] td:text-is("Site7")')
    page.page.click('nav button[data-tab="what-if"]')
    chosen = page.page.locator('[data-factor="Site"] option:checked')
    assert chosen.inner_text() == "Site7"
    expected = model.predict(X.iloc[[99]], groups=["Site7"])[0]
    assert page.prediction() == pytest.approx(expected, abs=1e-8, rel=0)
    assert page.errors == []
    page.close()


def test_browser_interval_is_the_normal_interval(browser, biomass, tmp_path):
    """fit +- z sqrt(x'Vx + z'Cz + sigma^2), and near predict_interval's."""
    model, X, y, site = biomass
    page = Page(browser, explore(model, path=tmp_path / "page.html"))
    row = X.iloc[[3]]
    level = site.iloc[3]
    page.set_row(row.iloc[0].to_dict(), {"Site": level})
    x1 = np.r_[1.0, row.to_numpy()[0]]
    z = np.r_[1.0, row["Temp"].iloc[0]]
    j = list(model.random_effects_["Site"].index).index(level)
    variance = (
        x1 @ model.fixed_effects_cov_.to_numpy() @ x1
        + z @ model.random_effects_cond_cov_["Site"][j] @ z
        + model.sigma_**2
    )
    fit = model.predict(row, groups=[level])[0]
    half = 1.959963984540054 * np.sqrt(variance)
    lower, upper = page.interval()
    assert lower == pytest.approx(fit - half, abs=1e-8)
    assert upper == pytest.approx(fit + half, abs=1e-8)
    simulated = model.predict_interval(
        row, groups=[level], n_draws=4000, random_state=0
    )
    assert simulated["lower"].iloc[0] == pytest.approx(lower, abs=0.15)
    assert simulated["upper"].iloc[0] == pytest.approx(upper, abs=0.15)
    assert page.errors == []
    page.close()


def test_browser_group_column_model(browser, tmp_path):
    X, y, site = load_biomass(return_X_y_groups=True)
    frame = X.assign(Site=site.to_numpy())
    model = MixedLinearRegressor(random_slopes=["Temp"], group_column="Site")
    model.fit(frame, y)
    page = Page(browser, explore(model, frame, y, path=tmp_path / "page.html"))
    assert [i["name"] for i in page.data["predictor"]["inputs"]] == ["Temp", "N"]
    for i in (2, 40):
        page.set_row(X.iloc[i].to_dict(), {"Site": frame["Site"].iloc[i]})
        expected = model.predict(frame.iloc[[i]])[0]
        assert page.prediction() == pytest.approx(expected, abs=1e-8, rel=0)
    assert page.errors == []
    page.close()


@pytest.mark.parametrize("formula", FORMULAS)
def test_browser_formula_model(browser, formula, tmp_path):
    data = mixed_frame()
    model = fit_quietly(formula, data)
    page = Page(browser, explore(model, data, path=tmp_path / "page.html"))
    _check_sections(page, tmp_path)
    inputs = [i["name"] for i in page.data["predictor"]["inputs"]]
    factors = [f.name for f in model._factors]
    rng = np.random.default_rng(1)
    for i in rng.choice(len(data), 4, replace=False):
        row = data.iloc[[i]].copy()
        values = {c: row[c].iloc[0] for c in inputs}
        values = {
            c: v if page_kind(page, c) == "numeric" else _label(v)
            for c, v in values.items()
        }
        for new in (False, True):
            levels = {}
            for factor in factors:
                label = model._spec.matrices.groups(row)[factor].iloc[0]
                levels[factor] = None if new else label
            page.set_row(values, levels)
            if new:
                for factor in factors:
                    for column in factor.split(":"):
                        row[column] = "unseen"
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")  # unseen levels, on purpose
                expected = model.predict(row)[0]
            assert page.prediction() == pytest.approx(expected, abs=1e-8, rel=0), (
                formula,
                i,
                new,
            )
    assert page.errors == []
    page.close()


def page_kind(page, name):
    return next(i for i in page.data["predictor"]["inputs"] if i["name"] == name)[
        "kind"
    ]


# More transforms, through the page's predict() only (no inputs set by hand).
MORE_FORMULAS = [
    "y ~ log(w, base = 2) + exp(x / 4) + center(x) + poly(w, 3, raw = TRUE) + (1 | g)",
    "y ~ I(x * (f == 'hi')) + as.numeric(f == 'lo') + log10(w) * b + (1 | g)",
    "y ~ poly(x, 3) : o + scale(w, center = FALSE) + (1 + poly(x, 2) | g)",
    "y ~ C(f, helmert) * x + C(o, treatment) + (1 | g/h)",
    "y ~ I(x > 2) + abs(x - 2) + sqrt(w) + ordered(k) + (1 | h)",
]


@pytest.mark.parametrize("formula", FORMULAS + MORE_FORMULAS)
def test_browser_formula_many_rows(browser, formula, tmp_path):
    """Every training row of a formula model, through the page's predict()."""
    data = mixed_frame()
    model = fit_quietly(formula, data)
    page = Page(browser, explore(model, data, path=tmp_path / "page.html"))
    specs = page.data["predictor"]["inputs"]
    groups = model._spec.matrices.groups(data)
    states = []
    for i in range(len(data)):
        inputs = {}
        for spec in specs:
            value = data[spec["name"]].iloc[i]
            inputs[spec["name"]] = (
                float(value)
                if spec["kind"] == "numeric"
                else spec["levels"].index(_label(value))
            )
        levels = {
            f["name"]: f["levels"].index(groups[f["name"]].iloc[i])
            for f in page.data["factors"]
        }
        states.append({"inputs": inputs, "levels": levels})
    got = page.page.evaluate(
        "states => states.map(s => window.skmixedExplorer.predict(s).fit)", states
    )
    np.testing.assert_allclose(got, model.predict(data), rtol=0, atol=1e-8)
    np.testing.assert_allclose(got, model.fitted_values_, rtol=0, atol=1e-8)
    page.close()


def test_tutorial_writes_the_explorer(biomass, tmp_path):
    """examples/tutorial.py ends with the explorer of its model."""
    import importlib.util

    script = Path(__file__).resolve().parents[1] / "examples" / "tutorial.py"
    spec = importlib.util.spec_from_file_location("tutorial", script)
    tutorial = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(tutorial)
    model, X, y, site = biomass
    tutorial.explorer(model, X, y, site, tmp_path)
    page = tmp_path / tutorial.EXPLORER
    assert page.is_file() and page.stat().st_size < 5_000_000
    assert 'id="skmixed-data"' in page.read_text(encoding="utf-8")


def test_models_without_features_or_groups(biomass, tmp_path):
    """No random effects, no features, a formula with the intercept only,
    polars data and the estimator's thin method all give a page."""
    model, X, y, site = biomass
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # fit without groups
        no_groups = MixedLinearRegressor().fit(X, y)
    page = explore(no_groups)
    assert page.data["factors"] == [] and len(page.data["predictor"]["inputs"]) == 2
    intercepts = MixedLinearRegressor().fit(np.empty((100, 0)), y, groups=site)
    assert explore(intercepts).data["predictor"]["inputs"] == []
    data = X.assign(Biomass=y, Site=site.to_numpy())
    formula = MixedLinearRegressor(formula="Biomass ~ Temp + N + (Temp | Site)")
    formula.fit(data)
    pl = pytest.importorskip("polars")
    from_polars = explore(formula, pl.from_pandas(data)).data
    assert from_polars == explore(formula, data).data
    path = formula.explore(data, path=tmp_path / "method.html")
    assert path.read_text(encoding="utf-8") == explore(formula, data).html


def test_browser_crossed_factors(browser, biomass, tmp_path):
    """Two grouping factors, each with its own level selector (new or seen)."""
    _, X, y, site = biomass
    rng = np.random.default_rng(0)
    groups = pd.DataFrame(
        {"a": [f"A{v}" for v in rng.integers(0, 8, 100)], "b": rng.integers(0, 6, 100)}
    )
    effects = rng.normal(size=8)[groups["a"].str[1:].astype(int)]
    model = MixedLinearRegressor(random_slopes={"a": ["Temp"], "b": []})
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # a singular fit, maybe
        model.fit(X, y + effects, groups=groups)
    page = Page(browser, explore(model, X, None, groups, path=tmp_path / "page.html"))
    for i, new in [(0, (False, False)), (5, (True, False)), (9, (False, True))]:
        labels = {f: None if n else groups[f].iloc[i] for f, n in zip(["a", "b"], new)}
        page.set_row(X.iloc[i].to_dict(), labels)
        rows = pd.DataFrame({f: ["new" if v is None else v] for f, v in labels.items()})
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # an unseen level, on purpose
            expected = model.predict(X.iloc[[i]], groups=rows)[0]
        assert page.prediction() == pytest.approx(expected, abs=1e-8, rel=0)
    assert page.errors == []
    page.close()


def test_a_model_with_an_offset_warns_that_the_page_has_none(tmp_path):
    rng = np.random.default_rng(11)
    g = np.repeat(np.arange(6), 8)
    X = rng.normal(size=(48, 1))
    offset = rng.normal(size=48)
    y = X[:, 0] + offset + rng.normal(size=6)[g] + rng.normal(size=48)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        model = MixedLinearRegressor().fit(X, y, groups=g, offset=offset)
    with pytest.warns(UserWarning, match="fitted with an offset"):
        explore(model, X, y, g, path=tmp_path / "page.html")
