"""Formula models: the same fits as the array front end, and everything downstream.

``MixedLinearRegressor(formula=...)`` builds its design from a raw data frame.
The hypothesis tests build the equivalent numeric ``X`` by hand (R's dummy
coding, R's column names) and check that the array model fitted to it is the
same model.  The other tests run scikit-learn's tools on raw frames without
metadata routing, ``predict(random_effects=...)``, the errors, missing values
and the inference and reporting methods on formula models.
"""

import pickle

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from numpy.testing import assert_allclose
from sklearn.base import clone
from sklearn.compose import make_column_transformer
from sklearn.ensemble import StackingRegressor, VotingRegressor
from sklearn.linear_model import LinearRegression
from sklearn.metrics import r2_score
from sklearn.model_selection import (
    GridSearchCV,
    KFold,
    cross_val_predict,
    cross_validate,
)
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import OneHotEncoder

import skmixed
from skmixed import MixedLinearRegressor

# Small fits warn about few levels or a singular fit; these tests check numbers.
pytestmark = [
    pytest.mark.filterwarnings("ignore::UserWarning"),
    pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning"),
]

# --------------------------------------------------------------------------- #
# Data                                                                         #
# --------------------------------------------------------------------------- #


def _plots(seed=0, n_sites=10, per_site=8):
    """A raw frame: numeric x, string treatment, string site and plot labels."""
    rng = np.random.default_rng(seed)
    n = n_sites * per_site
    site = np.repeat([f"site{i:02d}" for i in range(n_sites)], per_site)
    plot = np.tile(["p1", "p2"], n // 2)
    x = rng.normal(size=n)
    treatment = rng.choice(["control", "low", "high"], size=n)
    site_code = np.repeat(np.arange(n_sites), per_site)
    plot_code = site_code * 2 + (plot == "p2")
    effect = {"control": 0.0, "low": 0.7, "high": 1.5}
    y = (
        3.0
        + 0.8 * x
        + np.vectorize(effect.get)(treatment)
        + rng.normal(0, 1.2, n_sites)[site_code]
        + rng.normal(0, 0.5, n_sites)[site_code] * x
        + rng.normal(0, 0.4, 2 * n_sites)[plot_code]
        + rng.normal(0, 0.4, n)
    )
    return pd.DataFrame(
        {"yield": y, "x": x, "treatment": treatment, "site": site, "plot": plot}
    )


@pytest.fixture(scope="module")
def plots():
    return _plots()


FORMULA = "yield ~ x + treatment + (1 + x | site)"


@pytest.fixture(scope="module")
def fitted(plots):
    return MixedLinearRegressor(formula=FORMULA).fit(plots)


# --------------------------------------------------------------------------- #
# The formula model equals the array model on the equivalent design            #
# --------------------------------------------------------------------------- #

X2_TRANSFORMS = {  # how x2 enters: R's name -> its values (x, training mean, SD)
    "x2": lambda x, mean, sd: x,
    "I(x2^2)": lambda x, mean, sd: x**2,
    "log(x2 + 2)": lambda x, mean, sd: np.log(x + 2),
    "scale(x2)": lambda x, mean, sd: (x - mean) / sd,
}
F_LEVELS = ["a", "b", "c"]
H_LEVELS = ["u", "v"]
POLY3 = np.array(
    [
        [-1 / np.sqrt(2), 1 / np.sqrt(6)],
        [0.0, -2 / np.sqrt(6)],
        [1 / np.sqrt(2), 1 / np.sqrt(6)],
    ]
)


@st.composite
def designs(draw):
    """A random lme4 model: the formula and what the array model needs."""
    intercept = draw(st.booleans())
    random_intercept = draw(st.booleans())
    numeric = [v for v in ("x1", "x2") if draw(st.booleans())]
    if not random_intercept and "x1" not in numeric:
        numeric = ["x1", *numeric]  # a slope for the terms without intercept
    categorical = [v for v in ("f", "h") if draw(st.booleans())]
    mains = numeric + categorical
    pairs = [(a, b) for i, a in enumerate(mains) for b in mains[i + 1 :]]
    interactions = [p for p in pairs if draw(st.booleans())]
    f_coding = draw(st.sampled_from(["sorted", "categories", "ordered"]))
    second = draw(st.sampled_from([None, "crossed", "nested"]))
    # random slopes of g1: numeric x1, and f when both intercepts are there
    candidates = ["x1"] * ("x1" in numeric)
    if intercept and random_intercept and "f" in categorical:
        candidates.append("f")
    slopes = [v for v in candidates if draw(st.booleans())]
    if not random_intercept:
        slopes = sorted(set(slopes) | {"x1"}, key=candidates.index)
    correlated = "f" in slopes or draw(st.booleans())
    g2_slopes = []
    if second == "crossed" and (
        not random_intercept or ("x1" in numeric and draw(st.booleans()))
    ):
        g2_slopes = ["x1"]
    return dict(
        intercept=intercept,
        random_intercept=random_intercept,
        numeric=numeric,
        x2=draw(st.sampled_from(list(X2_TRANSFORMS))),
        categorical=categorical,
        interactions=interactions,
        f_coding=f_coding,
        second=second,
        slopes=slopes,
        correlated=correlated,
        g2_slopes=g2_slopes,
        seed=draw(st.integers(0, 2**31 - 1)),
        method=draw(st.sampled_from(["reml", "ml"])),
    )


def _lhs(random_intercept, slopes):
    return " + ".join(["1" if random_intercept else "0", *slopes])


def _text(d, variable):
    """How the formula writes a variable (x2 may be transformed)."""
    return d.get("x2", "x2") if variable == "x2" else variable


def _formula(d):
    mains = [_text(d, v) for v in d["numeric"] + d["categorical"]]
    fixed = ["1" if d["intercept"] else "0", *mains]
    fixed += [f"{_text(d, a)}:{_text(d, b)}" for a, b in d["interactions"]]
    bar = "|" if d["correlated"] else "||"
    lhs = _lhs(d["random_intercept"], d["slopes"])
    if d["second"] == "nested":
        random = [f"({lhs} {bar} g1/g2)"]
    else:
        random = [f"({lhs} {bar} g1)"]
    if d["second"] == "crossed":
        random.append(f"({_lhs(d['random_intercept'], d['g2_slopes'])} | g2)")
    return "y ~ " + " + ".join(fixed + random)


def _raw_frame(d, rng, n_g1=8, per=15):
    n = n_g1 * per
    frame = pd.DataFrame(
        {
            "x1": rng.normal(size=n),
            "x2": rng.uniform(-1, 2, size=n),
            "f": rng.permutation(np.resize(F_LEVELS, n)),
            "h": rng.choice(H_LEVELS, size=n),
            "g1": np.repeat([f"A{i}" for i in range(n_g1)], per),
        }
    )
    frame["g2"] = (
        rng.choice([f"c{i}" for i in range(6)], size=n)
        if d["second"] == "crossed"
        else np.tile([f"b{i}" for i in range(3)], n // 3)
    )
    if d["f_coding"] == "categories":  # R's level order is the categories'
        frame["f"] = pd.Categorical(frame["f"], categories=["c", "a", "b"])
    elif d["f_coding"] == "ordered":  # an ordered factor: contr.poly
        frame["f"] = pd.Categorical(frame["f"], categories=F_LEVELS, ordered=True)
    return frame


def _coded(d, frame, train, name, indicators=False):
    """R's columns of one variable: {name: values} (contrasts or indicators).

    ``scale(x2)`` centres and scales by the training rows' mean and SD.
    """
    if name == "x2":
        x2, known = frame["x2"].to_numpy(dtype=float), train["x2"]
        values = X2_TRANSFORMS[d.get("x2", "x2")](x2, known.mean(), known.std())
        return {_text(d, name): values}
    if name in d["numeric"]:
        return {name: frame[name].to_numpy(dtype=float)}
    values = frame[name].astype(str).to_numpy()
    levels = H_LEVELS if name == "h" else F_LEVELS
    if name == "f" and d["f_coding"] == "categories":
        levels = ["c", "a", "b"]
    if indicators:
        return {f"{name}{lev}": (values == lev).astype(float) for lev in levels}
    if name == "f" and d["f_coding"] == "ordered":
        rows = np.searchsorted(F_LEVELS, values)
        return {"f.L": POLY3[rows, 0], "f.Q": POLY3[rows, 1]}
    return {f"{name}{lev}": (values == lev).astype(float) for lev in levels[1:]}


def _model_matrix(d, frame, train=None):
    """R's model.matrix of the fixed part, without the intercept column.

    ``train``: the rows the model was fitted to (``frame`` itself if None).
    """
    train = frame if train is None else train
    columns = {}
    first_factor = next((v for v in d["categorical"]), None)
    for name in d["numeric"] + d["categorical"]:
        indicators = not d["intercept"] and name == first_factor
        columns.update(_coded(d, frame, train, name, indicators))
    for a, b in d["interactions"]:  # the first variable varies fastest
        for nb, vb in _coded(d, frame, train, b).items():
            for na, va in _coded(d, frame, train, a).items():
                columns[f"{na}:{nb}"] = va * vb
    return pd.DataFrame(columns, index=frame.index)


def _slope_columns(d, slopes):
    """The columns of X that random slopes on these variables read."""
    f_names = {"sorted": ["fb", "fc"], "categories": ["fa", "fb"]}
    names = []
    for v in slopes:
        names += ["x1"] if v == "x1" else f_names.get(d["f_coding"], ["f.L", "f.Q"])
    return names


def _groups(d, frame):
    groups = {"g1": frame["g1"].to_numpy(dtype=object)}
    if d["second"] == "crossed":
        groups["g2"] = frame["g2"].to_numpy(dtype=object)
    elif d["second"] == "nested":  # lme4's g2:g1, labelled "b0:A3"
        groups["g2:g1"] = (frame["g2"] + ":" + frame["g1"]).to_numpy(dtype=object)
    return pd.DataFrame(groups)


def _array_params(d):
    slopes = {"g1": _slope_columns(d, d["slopes"])}
    if d["second"] == "nested":
        slopes["g2:g1"] = slopes["g1"]
    elif d["second"] == "crossed":
        slopes["g2"] = _slope_columns(d, d["g2_slopes"])
    n_g1_terms = d["random_intercept"] + len(slopes["g1"])
    diagonal = not d["correlated"] and n_g1_terms > 1
    covariance = dict.fromkeys(slopes, "unstructured")
    covariance["g1"] = "diagonal" if diagonal else "unstructured"
    if d["second"] == "nested":
        covariance["g2:g1"] = covariance["g1"]
    return dict(
        random_slopes=slopes,
        covariance=covariance,
        random_intercept=d["random_intercept"],
        fit_intercept=d["intercept"],
        method=d["method"],
    )


def _simulate_y(d, X, groups, rng):
    """y from the model: fixed effects, random effects of every term, noise."""
    y = X.to_numpy() @ rng.normal(size=X.shape[1]) + 2.0 * d["intercept"]
    slopes = _array_params(d)["random_slopes"]
    for factor in groups.columns:
        codes, levels = pd.factorize(groups[factor])
        if d["random_intercept"]:
            y += rng.normal(0, 1.0, len(levels))[codes]
        for column in slopes[factor]:
            y += rng.normal(0, 0.6, len(levels))[codes] * X[column].to_numpy()
    return y + rng.normal(0, 0.5, len(y))


def _new_rows(d, frame, rng):
    """Rows to predict: seen levels, and an unseen level of g1."""
    new = frame.sample(12, random_state=int(rng.integers(2**31))).reset_index(drop=True)
    new.loc[:3, "g1"] = "A_new"
    new["x1"] = rng.normal(size=len(new))
    new["x2"] = rng.uniform(-1, 2, size=len(new))
    return new


@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(designs())
def test_formula_model_equals_array_model(d):
    _check_equivalent(d)


def test_formula_model_equals_array_model_on_a_rich_design():
    """One fixed design with every feature at once (a quick regression check)."""
    d = dict(
        intercept=True,
        random_intercept=True,
        numeric=["x1", "x2"],
        x2="scale(x2)",
        categorical=["f", "h"],
        interactions=[("x1", "f"), ("x2", "h"), ("f", "h")],
        f_coding="categories",
        second="crossed",
        slopes=["x1", "f"],
        correlated=True,
        g2_slopes=["x1"],
        seed=3,
        method="reml",
    )
    assert _formula(d) == (
        "y ~ 1 + x1 + scale(x2) + f + h + x1:f + scale(x2):h + f:h "
        "+ (1 + x1 + f | g1) + (1 + x1 | g2)"
    )
    _check_equivalent(d)


def _check_equivalent(d):
    rng = np.random.default_rng(d["seed"])
    frame = _raw_frame(d, rng)
    X = _model_matrix(d, frame)
    groups = _groups(d, frame)
    frame["y"] = _simulate_y(d, X, groups, rng)
    formula = _formula(d)

    by_formula = MixedLinearRegressor(formula=formula, method=d["method"]).fit(frame)
    by_arrays = MixedLinearRegressor(**_array_params(d)).fit(
        X, frame["y"], groups=groups
    )

    assert by_formula.objective_ == pytest.approx(by_arrays.objective_, rel=1e-9)
    names = list(by_arrays.fixed_effects_.index)
    assert list(by_formula.fixed_effects_.index) == names, formula
    tol = dict(rtol=1e-6, atol=1e-7)
    assert_allclose(by_formula.fixed_effects_, by_arrays.fixed_effects_, **tol)
    if not np.allclose(by_formula.theta_, by_arrays.theta_, **tol):
        # A flat optimum (the criteria agree to 1e-9 relative, checked
        # above): where the search stops along it depends on the last bits
        # of the model matrix, which the formula and this test build apart
        # (seen: theta 2e-4 apart on a correlated slope of an ordered factor,
        # criteria 3.4e-9 apart, 1.4e-11 relative).  What follows from theta,
        # to that scale.
        tol = dict(rtol=1e-3, atol=1e-5)
    assert_allclose(by_formula.theta_, by_arrays.theta_, **tol)
    assert by_formula.sigma_ == pytest.approx(by_arrays.sigma_, rel=1e-6)
    assert list(by_formula.random_effects_) == list(groups.columns)
    for factor, ranef in by_arrays.random_effects_.items():
        ours = by_formula.random_effects_[factor]
        assert list(ours.columns) == list(ranef.columns)
        assert_allclose(ours.loc[ranef.index], ranef, **tol)
    assert_allclose(by_formula.fitted_values_, by_arrays.fitted_values_, **tol)

    new = _new_rows(d, frame, rng)
    X_new, groups_new = _model_matrix(d, new, frame), _groups(d, new)
    for which in ("all", "none", ["g1"]):
        assert_allclose(
            by_formula.predict(new, random_effects=which),
            by_arrays.predict(X_new, groups=groups_new, random_effects=which),
            **tol,
        )


def test_hand_built_model_matrix_has_r_s_names():
    """The builder's names, on one case, are those R's model.matrix gives."""
    d = dict(
        intercept=True,
        numeric=["x1"],
        categorical=["f", "h"],
        interactions=[("x1", "f"), ("f", "h")],
        f_coding="sorted",
        second=None,
    )
    frame = _raw_frame(d, np.random.default_rng(1))
    names = list(_model_matrix(d, frame).columns)
    assert names == ["x1", "fb", "fc", "hv", "x1:fb", "x1:fc", "fb:hv", "fc:hv"]
    d = dict(d, intercept=False, f_coding="ordered")
    names = list(
        _model_matrix(
            d,
            frame.assign(
                f=pd.Categorical(frame["f"], categories=F_LEVELS, ordered=True)
            ),
        ).columns
    )
    assert names[:4] == ["x1", "fa", "fb", "fc"]
    assert names[5:7] == ["x1:f.L", "x1:f.Q"]


# --------------------------------------------------------------------------- #
# scikit-learn's tools on raw frames, without metadata routing                 #
# --------------------------------------------------------------------------- #


def _population(model, frame):
    """The fixed part by hand: R's treatment coding of ``treatment``."""
    beta = model.fixed_effects_
    return (
        beta["Intercept"]
        + beta["x"] * frame["x"].to_numpy()
        + beta["treatmenthigh"] * (frame["treatment"] == "high").to_numpy()
        + beta["treatmentlow"] * (frame["treatment"] == "low").to_numpy()
    )


def _linear_pipeline():
    encode = make_column_transformer(
        (OneHotEncoder(drop="first"), ["treatment"]), ("passthrough", ["x"])
    )
    return make_pipeline(encode, LinearRegression())


def test_cross_validate_kfold_conditional_beats_population(plots):
    """KFold: test sites were seen in training, so the BLUPs help every fold."""
    cv = KFold(4, shuffle=True, random_state=0)
    model = MixedLinearRegressor(formula=FORMULA)
    scores = cross_validate(
        model,
        plots,
        plots["yield"],
        cv=cv,
        return_estimator=True,
        return_indices=True,
    )
    for score, estimator, test in zip(
        scores["test_score"], scores["estimator"], scores["indices"]["test"]
    ):
        rows = plots.iloc[test]
        population = r2_score(
            rows["yield"], estimator.predict(rows, random_effects="none")
        )
        assert score == pytest.approx(estimator.score(rows, rows["yield"]))
        assert score > population + 0.1


def test_cross_val_predict_equals_the_fold_fits(plots):
    cv = KFold(4, shuffle=True, random_state=1)
    model = MixedLinearRegressor(formula=FORMULA)
    predicted = cross_val_predict(model, plots, plots["yield"], cv=cv)
    expected = np.empty(len(plots))
    for train, test in cv.split(plots):
        fold = clone(model).fit(plots.iloc[train])
        expected[test] = fold.predict(plots.iloc[test])
    assert_allclose(predicted, expected, rtol=1e-10)


def test_grid_search_over_method_and_over_formulas(plots):
    cv = KFold(3, shuffle=True, random_state=0)
    model = MixedLinearRegressor(formula=FORMULA)
    by_method = GridSearchCV(model, {"method": ["reml", "ml"]}, cv=cv)
    by_method.fit(plots, plots["yield"])
    assert by_method.best_estimator_.formula == FORMULA
    assert np.isfinite(by_method.cv_results_["mean_test_score"]).all()

    formulas = ["yield ~ x + (1 + x | site)", FORMULA]
    by_formula = GridSearchCV(model, {"formula": formulas}, cv=cv)
    by_formula.fit(plots, plots["yield"])
    assert by_formula.best_params_ == {"formula": FORMULA}  # treatment matters
    refit = MixedLinearRegressor(formula=FORMULA).fit(plots)
    assert_allclose(by_formula.predict(plots), refit.predict(plots), rtol=1e-10)


def test_stacking_and_voting_with_a_formula_model(plots):
    train, test = plots.iloc[:60], plots.iloc[60:]
    estimators = [
        ("mixed", MixedLinearRegressor(formula=FORMULA)),
        ("linear", _linear_pipeline()),
    ]
    voting = VotingRegressor(estimators).fit(train, train["yield"])
    mixed, linear = voting.estimators_
    assert_allclose(
        voting.predict(test), (mixed.predict(test) + linear.predict(test)) / 2
    )
    stacking = StackingRegressor(
        estimators, final_estimator=LinearRegression(), cv=KFold(3)
    ).fit(train, train["yield"])
    assert stacking.estimators_[0].formula == FORMULA
    # the mixed model's conditional predictions carry most of the weight
    weights = stacking.final_estimator_.coef_
    assert weights[0] > weights[1]
    assert stacking.score(test, test["yield"]) > voting.estimators_[1].score(
        test, test["yield"]
    )


def test_clone_and_pickle(plots, fitted):
    unfitted = clone(fitted)
    assert unfitted.get_params() == fitted.get_params()
    assert not hasattr(unfitted, "coef_")
    assert_allclose(unfitted.fit(plots).predict(plots), fitted.predict(plots))
    again = pickle.loads(pickle.dumps(fitted))
    new = plots.head(5).assign(site=["site01", "elsewhere", "site03", "x", "site09"])
    assert_allclose(again.predict(new), fitted.predict(new), rtol=0, atol=0)
    assert str(again.summary()) == str(fitted.summary())


def test_polars_frames(plots, fitted):
    pl = pytest.importorskip("polars")
    frame = pl.DataFrame({c: plots[c].to_list() for c in plots.columns})
    model = MixedLinearRegressor(formula=FORMULA).fit(frame)
    assert model.objective_ == pytest.approx(fitted.objective_, rel=1e-12)
    assert list(model.fixed_effects_.index) == list(fitted.fixed_effects_.index)
    assert_allclose(model.predict(frame), fitted.predict(plots), rtol=1e-10)
    assert_allclose(model.predict(frame.head(7)), fitted.predict(plots.head(7)))


# --------------------------------------------------------------------------- #
# predict(random_effects=...)                                                  #
# --------------------------------------------------------------------------- #

TWO_FACTORS = "yield ~ x + treatment + (1 + x | site) + (1 | site:plot)"


@pytest.fixture(scope="module")
def two_factors(plots):
    return MixedLinearRegressor(formula=TWO_FACTORS).fit(plots)


def _contribution(model, factor, labels, x):
    """A factor's BLUP contribution to each row, read off random_effects_."""
    blups = model.random_effects_[factor].reindex(labels).fillna(0.0)
    out = blups["Intercept"].to_numpy()
    if "x" in blups:
        out = out + blups["x"].to_numpy() * x
    return out


def test_random_effects_none_is_the_population_prediction(plots, two_factors):
    assert_allclose(
        two_factors.predict(plots, random_effects="none"),
        _population(two_factors, plots),
        rtol=1e-12,
    )


def test_random_effects_list_picks_factors(plots, two_factors):
    new = plots.sample(10, random_state=0).reset_index(drop=True)
    new.loc[0, "site"] = "new_site"  # unseen: contributes nothing
    new.loc[1, "plot"] = "p9"
    assert list(two_factors.random_effects_) == ["site", "site:plot"]
    none = two_factors.predict(new, random_effects="none")
    x = new["x"].to_numpy()
    site = _contribution(two_factors, "site", new["site"], x)
    plot = _contribution(two_factors, "site:plot", new["site"] + ":" + new["plot"], x)
    assert site[0] == 0 and plot[0] == 0 and plot[1] == 0 and site[1] != 0
    by_site = two_factors.predict(new, random_effects=["site"])
    assert_allclose(by_site - none, site, atol=1e-12)
    by_plot = two_factors.predict(new, random_effects=["site:plot"])
    assert_allclose(by_plot - none, plot, atol=1e-12)
    assert_allclose(two_factors.predict(new), none + site + plot, atol=1e-12)
    both = two_factors.predict(new, random_effects=("site:plot", "site"))
    assert_allclose(both, two_factors.predict(new, random_effects="all"))


@pytest.mark.parametrize(
    "random_effects", [["plot"], ["site", "nope"], "site", None, 3, "All"]
)
def test_random_effects_unknown_is_an_error(two_factors, plots, random_effects):
    with pytest.raises(ValueError, match="random_effects"):
        two_factors.predict(plots, random_effects=random_effects)


def test_random_effects_of_an_array_model(plots, two_factors):
    """The same choices with groups= (and an array model's factor names)."""
    X = pd.DataFrame(
        {
            "x": plots["x"],
            "treatmenthigh": (plots["treatment"] == "high").astype(float),
            "treatmentlow": (plots["treatment"] == "low").astype(float),
        }
    )
    groups = pd.DataFrame(
        {"site": plots["site"], "site:plot": plots["site"] + ":" + plots["plot"]}
    )
    model = MixedLinearRegressor(random_slopes={"site": ["x"], "site:plot": []})
    model.fit(X, plots["yield"], groups=groups)
    assert model.objective_ == pytest.approx(two_factors.objective_, rel=1e-9)
    for which in ("all", "none", ["site"], ["site:plot"]):
        assert_allclose(
            model.predict(X, groups=groups, random_effects=which),
            two_factors.predict(plots, random_effects=which),
            rtol=1e-7,
        )
    # without groups every choice is the population prediction
    assert_allclose(
        model.predict(X, random_effects=["site"]),
        model.predict(X, groups=groups, random_effects="none"),
    )
    with pytest.raises(ValueError, match="unknown grouping factor"):
        model.predict(X, groups=groups, random_effects=["plot"])


# --------------------------------------------------------------------------- #
# Errors                                                                       #
# --------------------------------------------------------------------------- #


@pytest.mark.parametrize(
    "params",
    [
        {"random_slopes": ["x"]},
        {"group_column": "site"},
        {"covariance": "diagonal"},
        {"random_intercept": False},
        {"fit_intercept": False},
    ],
    ids=lambda p: next(iter(p)),
)
def test_formula_refuses_array_parameters(plots, params):
    (name,) = params
    model = MixedLinearRegressor(formula=FORMULA, **params)
    with pytest.raises(ValueError, match=rf"with a formula, \['{name}'\] must"):
        model.fit(plots)


def test_formula_refuses_groups(plots, fitted):
    with pytest.raises(ValueError, match="groups must be None"):
        MixedLinearRegressor(formula=FORMULA).fit(plots, groups=plots["site"])
    with pytest.raises(ValueError, match="groups must be None"):
        fitted.predict(plots, groups=plots["site"])


def test_formula_needs_a_data_frame(plots, fitted):
    numeric = plots[["yield", "x"]].to_numpy()
    with pytest.raises(TypeError, match="pandas or polars DataFrame"):
        MixedLinearRegressor(formula=FORMULA).fit(numeric)
    with pytest.raises(TypeError, match="pandas or polars DataFrame"):
        fitted.predict(numeric)


def test_formula_without_response_needs_y(plots):
    one_sided = "~ x + treatment + (1 + x | site)"
    with pytest.raises(ValueError, match="no response"):
        MixedLinearRegressor(formula=one_sided).fit(plots)
    model = MixedLinearRegressor(formula=one_sided).fit(plots, plots["yield"])
    reference = MixedLinearRegressor(formula=FORMULA).fit(plots)
    assert model.objective_ == pytest.approx(reference.objective_, rel=1e-12)


def test_a_column_missing_from_x(plots, fitted):
    with pytest.raises(ValueError, match="'dose'.* not a column"):
        MixedLinearRegressor(formula="yield ~ x + dose + (1 | site)").fit(plots)
    with pytest.raises(ValueError, match="'block'"):
        MixedLinearRegressor(formula="yield ~ x + (1 | block)").fit(plots)
    with pytest.raises(ValueError, match="'treatment'.* not a column"):
        fitted.predict(plots.drop(columns="treatment"))
    with pytest.raises(ValueError, match="'site'"):
        fitted.predict(plots.drop(columns="site"))


def test_unseen_fixed_effect_level_at_predict(plots, fitted):
    new = plots.head(3).assign(treatment=["low", "extreme", "high"])
    with pytest.raises(ValueError, match="'extreme', not seen when fitting"):
        fitted.predict(new)


@pytest.mark.parametrize(
    "formula, match",
    [
        ("yield ~ x + (1 | site + plot)", r"\(1 \| g1 \+ g2\)"),
        ("yield ~ x + offset(x) + (1 | site)", "offset"),
        ("yield ~ ns(x, 3) + (1 | site)", "spline"),
        ("yield ~ x + treatment + (1 + x | site) + (0 + treatment | site)", "one col"),
        ("yield ~ x + (1 + x | site", "unbalanced"),
    ],
)
def test_unsupported_formulas(plots, formula, match):
    model = MixedLinearRegressor(formula=formula)
    with pytest.raises(ValueError, match=match):
        model.fit(plots)


# --------------------------------------------------------------------------- #
# Missing values                                                               #
# --------------------------------------------------------------------------- #


def test_incomplete_rows_are_dropped_with_a_warning(plots):
    holes = plots.copy()
    holes.loc[[2, 11], "x"] = np.nan
    holes["treatment"] = holes["treatment"].astype(object)
    holes.loc[20, "treatment"] = None
    holes.loc[33, "site"] = None
    holes.loc[40, "yield"] = np.nan
    holes["unused"] = np.nan  # a column the formula does not use
    model = MixedLinearRegressor(formula=FORMULA)
    with pytest.warns(UserWarning, match=r"^5 row\(s\) with a missing value"):
        model.fit(holes)
    complete = MixedLinearRegressor(formula=FORMULA).fit(
        plots.drop(index=[2, 11, 20, 33, 40])
    )
    assert model.objective_ == pytest.approx(complete.objective_, rel=1e-12)
    assert_allclose(model.fixed_effects_, complete.fixed_effects_, rtol=1e-10)
    assert len(model.fitted_values_) == len(plots) - 5

    predicted = model.predict(holes)
    # the response is not needed to predict: row 40 gets a prediction; a
    # missing site (row 33) is a new level: the population prediction
    assert np.flatnonzero(np.isnan(predicted)).tolist() == [2, 11, 20]
    assert_allclose(
        predicted[~np.isnan(predicted)],
        complete.predict(holes.drop(index=[2, 11, 20])),
        rtol=1e-10,
    )


def test_missing_y_passed_separately_is_an_error(plots):
    y = plots["yield"].copy()
    y.iloc[3] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        MixedLinearRegressor(formula=FORMULA).fit(plots.drop(columns="yield"), y)


# --------------------------------------------------------------------------- #
# Downstream: summary, inference, simulation, anova                            #
# --------------------------------------------------------------------------- #

SMALL = "yield ~ x + (1 | site)"


def _array_twin(plots):
    """The array model of FORMULA's design."""
    X = pd.DataFrame(
        {
            "x": plots["x"],
            "treatmenthigh": (plots["treatment"] == "high").astype(float),
            "treatmentlow": (plots["treatment"] == "low").astype(float),
        }
    )
    return X, MixedLinearRegressor(random_slopes=["x"]).fit(
        X, plots["yield"], groups=plots["site"]
    )


def test_summary_shows_the_formula_and_r_names(fitted):
    summary = fitted.summary()
    text = str(summary)
    assert f"Formula: {FORMULA}\n" in text
    assert "treatmenthigh" in text and "treatmentlow" in text
    assert list(summary.fixed_effects.index) == [
        "Intercept",
        "x",
        "treatmenthigh",
        "treatmentlow",
    ]
    assert "site" in text and "Number of obs: 80, groups:  site, 10" in text
    assert FORMULA in summary._repr_html_()


def test_confint_wald_and_profile(plots, fitted):
    wald = fitted.confint()
    assert list(wald.index[-4:]) == list(fitted.fixed_effects_.index)
    X, twin = _array_twin(plots)
    assert_allclose(wald.to_numpy(), twin.confint().to_numpy(), rtol=1e-6)

    small = MixedLinearRegressor(formula=SMALL).fit(plots)
    profile = small.confint(method="profile")
    assert list(profile.index) == ["sd_Intercept|site", "sigma", "Intercept", "x"]
    assert (profile["lower"] < profile["upper"]).all()
    beta = small.fixed_effects_
    assert (profile.loc[beta.index, "lower"] < beta).all()
    assert (beta < profile.loc[beta.index, "upper"]).all()
    twin = MixedLinearRegressor().fit(plots[["x"]], plots["yield"], plots["site"])
    assert_allclose(profile, twin.confint(method="profile"), rtol=1e-5)


def test_bootstrap_equals_the_array_model(plots, fitted):
    def statistic(model):
        return model.fixed_effects_.to_numpy()

    result = fitted.bootstrap(statistic, n_boot=4, random_state=0, progress=False)
    assert result.replicates.shape == (4, 4)
    assert np.isfinite(result.replicates).all()
    _, twin = _array_twin(plots)
    expected = twin.bootstrap(statistic, n_boot=4, random_state=0, progress=False)
    assert_allclose(result.replicates, expected.replicates, rtol=1e-6, atol=1e-8)


def test_sample_posterior_uses_r_names(fitted):
    sample = fitted.sample_posterior(n_draws=50, random_state=0)
    assert list(sample.fixed_effects.columns) == list(fitted.fixed_effects_.index)
    assert sample.random_effects["site"].shape == (50, 10, 2)
    assert sample.sigma.shape == (50,)


def test_simulate_and_predict_interval(plots, fitted):
    new = plots.head(6).assign(site=["site01"] * 3 + ["unseen"] * 3)
    simulated = fitted.simulate(new, n=3, random_state=0)
    assert simulated.shape == (6, 3)
    X, twin = _array_twin(plots)
    X_new = X.head(6)
    for use_re in ("new", "fitted"):
        assert_allclose(
            fitted.simulate(new, n=3, random_state=1, use_re=use_re),
            twin.simulate(X_new, new["site"], n=3, random_state=1, use_re=use_re),
            rtol=1e-6,
        )
    interval = fitted.predict_interval(new, n_draws=200, random_state=0)
    assert list(interval.columns) == ["fit", "lower", "upper"]
    assert_allclose(interval["fit"], fitted.predict(new))
    assert (interval["lower"] < interval["fit"]).all()
    assert (interval["fit"] < interval["upper"]).all()
    # unseen sites: wider intervals (new random effects)
    width = (interval["upper"] - interval["lower"]).to_numpy()
    assert width[3:].mean() > width[:3].mean()
    with pytest.raises(ValueError, match="groups must be None"):
        fitted.simulate(new, groups=new["site"])


def test_anova_of_nested_formula_models(plots, fitted):
    smaller = MixedLinearRegressor(formula="yield ~ x + (1 + x | site)").fit(plots)
    table = skmixed.anova(smaller, fitted, names=["x", "x + treatment"])
    assert list(table.index) == ["x", "x + treatment"]
    assert table["npar"].tolist() == [6, 8]
    assert table.loc["x + treatment", "Df"] == 2
    assert table.loc["x + treatment", "Pr(>Chisq)"] < 0.05
    X, twin = _array_twin(plots)
    twin_small = MixedLinearRegressor(random_slopes=["x"]).fit(
        X[["x"]], plots["yield"], groups=plots["site"]
    )
    expected = skmixed.anova(twin_small, twin, names=["x", "x + treatment"])
    assert_allclose(table.to_numpy(float), expected.to_numpy(float), rtol=1e-6)


def test_a_formula_without_random_effects_is_refused():
    # lme4: "No random effects terms specified in formula".
    frame = pd.DataFrame({"y": [1.0, 2.0, 3.0, 4.0], "x": [0.0, 1.0, 2.0, 3.0]})
    with pytest.raises(ValueError, match="no random-effects terms"):
        MixedLinearRegressor(formula="y ~ x").fit(frame)
