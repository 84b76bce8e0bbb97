"""Six classic analyses fitted from a model formula, against lme4 1.1-31.

Each analysis is fitted as a user would fit it: ``MixedLinearRegressor(formula=...,
method=...).fit(frame)`` on the raw data (categorical columns with R's levels in R's
order, ordered where R's factor is ordered), then compared with what lme4 estimated
and predicted. The references are made by ``tests/data/analyses/make_analyses.R``
(see ``tests/data/analyses/README.md``); each method has two lme4 fits:

* ``lme4``: ``lmer`` as a user runs it (default control): its criterion, messages
  and singularity flag;
* ``polished``: the same model refitted from there with much tighter optimiser
  tolerances.  lme4's default stop can leave SDs 1e-3 and predictions 3e-5
  (relative) from the optimum (Orthodont, REML) while its criterion is within
  1e-5; comparisons at 1e-4 and 1e-6 need the optimum itself.  Everything but
  the criterion check is compared with the polished fit.

Tolerances:

* criterion: ``objective_`` may not exceed lme4's (default fit) by more than 1e-6
  relative (a lower optimum is fine); when lme4 said nothing (no convergence or
  singularity message) it must also be within 1e-3 of lme4's.
* fixed effects: the names exactly R's (``(Intercept)`` written ``Intercept``),
  the values within 1e-3 of the standard errors.
* sigma within 1e-4 relative; random-effect SDs within 1e-3 relative, correlations
  within 1e-3 (skipped where the optimum is singular: a flat ridge).
* predictions (all three kinds): within 1e-6 relative on a well-determined
  analysis.  An analysis is *flat* when, for REML or ML, lme4's own default stop
  moves some prediction by more than 1e-6 relative from the optimum, or a fit is
  singular or lme4 reported a problem (Orthodont, both ChickWeight models,
  InstEval): an optimiser stopping by an ordinary rule cannot be held to 1e-6
  there.  Its tolerance is scaled by
  the fixed-effect SEs: ``max(1e-6 |ref|, 1e-3 * sum_j |x_j| SE_j)``, the bound
  the fixed-effect check (1e-3 SE) implies for ``x' beta``; lme4's default stop
  uses at most a third of it (Orthodont, REML).
"""

import functools
import json
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from skmixed import MixedLinearRegressor

DATA = Path(__file__).parent / "data" / "analyses"
ANALYSES = [
    "cake",
    "oats",
    "orthodont",
    "chickweight_poly",
    "chickweight_linear",
    "machines",
    "insteval",
]
METHODS = ["REML", "ML"]
PREDICTIONS = ["conditional", "population", "partial"]


def as_list(value):
    """JSON writes one-element vectors as scalars: undo that."""
    return value if isinstance(value, list) else [value]


def r_name(name):
    return "Intercept" if name == "(Intercept)" else name


@functools.cache
def reference(name):
    return json.loads((DATA / f"{name}.json").read_text())


def _column(values, spec):
    kind = spec["type"]
    if kind in ("factor", "ordered"):
        return pd.Categorical(
            values, categories=as_list(spec["levels"]), ordered=kind == "ordered"
        )
    if kind == "character":
        return values.astype(object)
    if kind == "logical":
        return values.astype(bool)
    if kind == "integer" and not values.isna().any():
        return values.astype(np.int64)
    return values.astype(float)


def load_frame(name, part="data"):
    """The training rows (``part="data"``) or the new rows (``"newdata"``).

    Factor columns are pandas categoricals with R's levels in R's order; in the new
    rows a grouping factor's categories are the training levels followed by the
    new ones.
    """
    ref = reference(name)
    specs = ref["columns"] if part == "data" else ref["newdata_columns"]
    stem = ref["data"] if part == "data" else f"{ref['data']}_newdata"
    path = DATA / f"{stem}.csv"
    if not path.exists():
        path = DATA / f"{stem}.csv.gz"
    text = [c for c, s in specs.items() if s["type"] in ("factor", "ordered")]
    raw = pd.read_csv(
        path, dtype={c: str for c in text}, keep_default_na=False, na_values=["NA"]
    )
    return pd.DataFrame({c: _column(raw[c], s) for c, s in specs.items()})


@functools.cache
def fit_analysis(name, method):
    ref = reference(name)
    model = MixedLinearRegressor(formula=ref["formula"], method=method.lower())
    with warnings.catch_warnings():
        # lme4's messages (singular, gradient) have UserWarning / ConvergenceWarning
        # counterparts here; a RuntimeWarning stays an error (pyproject.toml)
        warnings.simplefilter("ignore", UserWarning)
        return model.fit(load_frame(name))


@pytest.fixture(
    params=[(a, m) for a in ANALYSES for m in METHODS],
    ids=[f"{a}-{m}" for a in ANALYSES for m in METHODS],
)
def analysis(request):
    """(reference, lme4's default fit, the polished fit, our model)."""
    name, method = request.param
    ref = reference(name)
    fits = ref["fits"][method]
    return ref, fits["lme4"], fits["polished"], fit_analysis(name, method)


def test_objective(analysis):
    _, lme4, _, model = analysis
    expected = lme4["criterion"]
    assert model.objective_ <= expected + 1e-6 * abs(expected)
    if lme4["converged_cleanly"]:
        assert model.objective_ == pytest.approx(expected, abs=1e-3)


def test_fixed_effects(analysis):
    _, _, optimum, model = analysis
    names = [r_name(n) for n in as_list(optimum["fixef"]["names"])]
    assert list(model.fixed_effects_.index) == names
    estimate = np.asarray(as_list(optimum["fixef"]["estimate"]), dtype=float)
    se = np.asarray(as_list(optimum["fixef"]["se"]), dtype=float)
    error = np.abs(model.fixed_effects_.to_numpy(dtype=float) - estimate) / se
    assert np.all(error <= 1e-3), (names[np.argmax(error)], error.max())


def test_sigma(analysis):
    _, _, optimum, model = analysis
    assert model.sigma_ == pytest.approx(optimum["sigma"], rel=1e-4)


def test_variance_components(analysis):
    _, _, optimum, model = analysis
    random = as_list(optimum["random"])
    assert set(model.random_effects_cov_) == {r["group"] for r in random}
    for r in random:
        terms = [r_name(t) for t in as_list(r["terms"])]
        cov = model.random_effects_cov_[r["group"]]
        assert list(cov.columns) == terms and list(cov.index) == terms, r["group"]
    if optimum["is_singular"]:
        pytest.skip("singular optimum: SDs and correlations lie on a flat ridge")
    for r in random:
        cov = model.random_effects_cov_[r["group"]].to_numpy(dtype=float)
        sd = np.sqrt(np.diag(cov))
        expected_sd = np.asarray(as_list(r["sd"]), dtype=float)
        assert np.allclose(sd, expected_sd, rtol=1e-3, atol=0), r["group"]
        if len(sd) > 1:
            corr = cov / np.outer(sd, sd)
            expected = np.asarray(r["corr"], dtype=float).reshape(len(sd), len(sd))
            assert np.allclose(corr, expected, rtol=0, atol=1e-3), r["group"]


def _predict(model, new, kind, ref):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # new levels, missing values
        if kind == "conditional":  # allow.new.levels = TRUE
            return model.predict(new)
        if kind == "population":  # re.form = NA
            return model.predict(new, random_effects="none")
        # re.form = ~(1 | Block) and the like
        return model.predict(new, random_effects=as_list(ref["partial_factors"]))


def _predictions(fit, kind):
    values = as_list(fit["predictions"][kind])
    return np.array([np.nan if v is None else v for v in values], dtype=float)


def _flat_fit(lme4, optimum):
    if lme4["is_singular"] or optimum["is_singular"] or not lme4["converged_cleanly"]:
        return True
    for kind in PREDICTIONS:
        default, best = _predictions(lme4, kind), _predictions(optimum, kind)
        ok = ~np.isnan(best)
        if np.any(np.abs(default - best)[ok] > 1e-6 * np.abs(best[ok])):
            return True
    return False


def is_flat(ref):
    """Whether an ordinary optimiser stop moves the predictions beyond 1e-6.

    Judged on both methods: flatness belongs to the data and model (REML and ML
    criteria have the same shape), and one lme4 stop is a single sample of it.
    """
    return any(_flat_fit(f["lme4"], f["polished"]) for f in ref["fits"].values())


def prediction_tolerance(ref, optimum, kind):
    """Per new row: 1e-6 relative, or on a flat fit 1e-3 of sum_j |x_j| SE_j."""
    if not is_flat(ref):
        return 1e-6 * np.abs(_predictions(optimum, kind))
    X = np.array(
        [[np.nan if v is None else v for v in row] for row in ref["new_fixed_matrix"]],
        dtype=float,
    )
    se = np.asarray(as_list(optimum["fixef"]["se"]), dtype=float)
    expected = np.abs(_predictions(optimum, kind))
    return np.maximum(1e-6 * expected, 1e-3 * (np.abs(X) @ se))


@pytest.mark.parametrize("kind", PREDICTIONS)
def test_predictions(analysis, kind):
    ref, _, optimum, model = analysis
    new = load_frame(ref["name"], "newdata")
    expected = _predictions(optimum, kind)
    predicted = np.asarray(_predict(model, new, kind, ref), dtype=float)
    assert predicted.shape == expected.shape
    missing = np.isnan(expected)  # a missing covariate: NA in R, NaN here
    assert np.array_equal(np.isnan(predicted), missing)
    error = np.abs(predicted - expected)[~missing]
    tolerance = prediction_tolerance(ref, optimum, kind)
    ratio = error / tolerance[~missing]
    assert np.all(ratio <= 1), (int(np.argmax(ratio)), ratio.max())


def test_response_may_be_passed_as_y():
    """``fit(X, y)`` with the response column left out of X: the same fit."""
    ref = reference("oats")
    frame = load_frame("oats")
    model = fit_analysis("oats", "REML")
    again = MixedLinearRegressor(formula=ref["formula"], method="reml")
    again.fit(frame.drop(columns=ref["response"]), frame[ref["response"]])
    assert again.objective_ == pytest.approx(model.objective_, abs=1e-8)
    assert np.allclose(again.fixed_effects_, model.fixed_effects_)
