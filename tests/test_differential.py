"""Differential test against lme4 1.1-31 on random designs.

The designs (``tests/data/differential/designs.json`` and ``designs.csv.gz``)
come from ``make_designs.py``: one grouping factor with one to three random
slopes (continuous, 0/1 dummies, badly scaled and uncentred columns),
correlated and diagonal (``||``) covariances, crossed and nested factors with
slopes, singleton groups and pairs, true variances of zero and correlations
near +-1, few and many levels.  ``make_reference.R`` fitted each with lme4's
``lmer`` by REML and by ML (default control) into ``reference.json``; R is
never needed here.

Every (design, method) item asserts that skmixed's criterion (REML criterion
or deviance) is no higher than lme4's, up to 1e-6 relative.  When the two tie
(within 1e-6 relative) the estimates must agree as well: fixed effects within
a small fraction of lme4's standard error, sigma within 0.1% and every
random-effect SD within 1% or a thousandth of sigma on the response scale
(correlations too when neither fit is singular, between terms whose SDs
are at least a tenth of sigma on the response scale).  A fit that ties lme4 on
a flat or singular criterion may still differ in the parameters the data do
not identify, so the tolerances widen with the gap (a deviance gap ``d``
allows parameter moves of about ``sqrt(2 d)`` standard errors), singular fits
are held to the fixed effects, sigma and the SDs only, and where lme4 reports
that it did not converge, to the fixed effects and sigma only.
"""

import functools
import json
import os
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from sklearn.exceptions import ConvergenceWarning

from skmixed import MixedLinearRegressor

# Another suite from make_designs.py --seed N --outdir DIR (and make_reference.R
# DIR) runs with SKMIXED_DIFFERENTIAL_DIR=DIR.
DEFAULT_DATA = Path(__file__).parent / "data" / "differential"
DATA = Path(os.environ.get("SKMIXED_DIFFERENTIAL_DIR", DEFAULT_DATA))
METHODS = ("REML", "ML")
CRITERION_RTOL = 1e-6  # skmixed's criterion may exceed lme4's by this, relative
FIXEF_SE_TOL = 1e-3  # fixed effects: fraction of lme4's standard error
SIGMA_RTOL = 1e-3
SD_RTOL = 1e-2  # random-effect SDs: relative, or ...
SD_SIGMA_ATOL = 1e-3  # ... this fraction of sigma on the response scale
CORR_ATOL = 1e-2
CORR_MIN_SD = 0.1  # correlations between terms with SDs of 0.1 sigma or more


def as_list(value):
    """JSON writes one-element vectors as scalars: undo that."""
    return value if isinstance(value, list) else [value]


@functools.cache
def load_designs():
    designs = json.loads((DATA / "designs.json").read_text())["designs"]
    return {d["id"]: d for d in designs}


@functools.cache
def load_reference():
    return json.loads((DATA / "reference.json").read_text())["designs"]


@functools.cache
def load_frames():
    """Every design's rows, by id: only its own columns, labels as strings."""
    data = pd.read_csv(DATA / "designs.csv.gz", low_memory=False)
    frames = {}
    for design_id, rows in data.groupby("design", sort=False):
        spec = load_designs()[design_id]
        factors = [f["name"] for f in spec["factors"]]
        frame = rows[[spec["response"], *spec["fixed_columns"]]].reset_index(drop=True)
        groups = rows[factors].astype(str).reset_index(drop=True)
        frames[design_id] = (frame, groups)
    return frames


@dataclass
class Case:
    """One design fitted by one method, with lme4's numbers for it."""

    spec: dict
    method: str

    @property
    def id(self):
        return self.spec["id"]

    @property
    def category(self):
        return self.spec["category"]

    @property
    def reference(self):
        return load_reference()[self.id]["fits"][self.method]

    def data(self):
        frame, groups = load_frames()[self.id]
        X = frame[self.spec["fixed_columns"]]
        return X, frame[self.spec["response"]], groups

    def estimator(self):
        factors = self.spec["factors"]
        return MixedLinearRegressor(
            random_slopes={f["name"]: list(f["slopes"]) for f in factors},
            covariance={f["name"]: f["covariance"] for f in factors},
            random_intercept=self.spec["random_intercept"],
            method=self.method.lower(),
        )

    def fit(self):
        """Fit skmixed; its convergence and singular-fit warnings are ignored.

        RuntimeWarning stays an error (pyproject.toml): a NumPy or SciPy
        warning that leaks out of a fit is a bug.
        """
        X, y, groups = self.data()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ConvergenceWarning)
            warnings.simplefilter("ignore", UserWarning)
            return self.estimator().fit(X, y, groups=groups)

    def term_scales(self, factor):
        """RMS of each term's column: maps a random-effect SD to the y scale."""
        X, _, _ = self.data()
        f = next(f for f in self.spec["factors"] if f["name"] == factor)
        scales = [1.0] * self.spec["random_intercept"]
        return np.array(scales + [np.sqrt(np.mean(X[c] ** 2)) for c in f["slopes"]])


def all_cases():
    """Every (design, method) lme4 could fit (it refuses none of ours today)."""
    reference = load_reference()
    return [
        Case(spec, method)
        for spec in load_designs().values()
        for method in METHODS
        if "error" not in reference[spec["id"]]["fits"][method]
    ]


def criterion_gap(model, case):
    """skmixed's criterion minus lme4's, and the allowance for ties."""
    expected = case.reference["criterion"]
    return model.objective_ - expected, CRITERION_RTOL * max(abs(expected), 1.0)


CASES = all_cases()


@pytest.mark.parametrize("case", CASES, ids=[f"{c.id}-{c.method}" for c in CASES])
def test_criterion_and_estimates(case):
    model = case.fit()
    ref = case.reference
    gap, allowed = criterion_gap(model, case)
    assert gap <= allowed, (
        f"{case.id} ({case.category}, {case.method}): skmixed's criterion "
        f"{model.objective_:.10g} exceeds lme4's {ref['criterion']:.10g} by "
        f"{gap:.3g} ({gap / abs(ref['criterion']):.2g} relative; allowed "
        f"{CRITERION_RTOL:g}); formula {case.spec['formula']}"
    )
    if abs(gap) > allowed:
        return  # skmixed found a lower optimum: lme4's estimates are no reference
    check_estimates(case, model, ref, abs(gap))


def check_estimates(case, model, ref, gap):
    where = f"{case.id} ({case.category}, {case.method})"
    slack = np.sqrt(2.0 * gap)  # parameter moves a criterion gap allows, in SEs
    for name, value in ref["fixef"].items():
        se = ref["fixef_se"][name]
        diff = abs(model.fixed_effects_[name] - value)
        assert diff <= (FIXEF_SE_TOL + slack) * se, (
            f"{where}: fixed effect {name} {model.fixed_effects_[name]:.8g} vs "
            f"lme4 {value:.8g} ({diff / se:.3g} SE apart)"
        )
    sigma = ref["sigma"]
    assert abs(model.sigma_ - sigma) <= (SIGMA_RTOL + slack) * sigma, (
        f"{where}: sigma {model.sigma_:.8g} vs lme4 {sigma:.8g}"
    )
    if lme4_convergence_problems(ref):
        return  # lme4 stopped short: its variance components are no reference
    singular = bool(ref["is_singular"]) or bool(model.is_singular_)
    for factor, r in ref["random"].items():
        terms = as_list(r["terms"])
        cov = model.random_effects_cov_[factor].loc[terms, terms].to_numpy()
        sd = np.sqrt(np.clip(np.diag(cov), 0, None))
        sd_ref = np.asarray(as_list(r["sd"]), dtype=float)
        scale = case.term_scales(factor)
        atol = (SD_SIGMA_ATOL + slack) * sigma / scale
        assert np.all(np.abs(sd - sd_ref) <= SD_RTOL * sd_ref + atol), (
            f"{where}: SDs of {factor} {terms} {sd} vs lme4 {sd_ref}"
        )
        if singular or len(terms) == 1:
            continue
        # A correlation is identified only between terms of clear variance.
        clear = np.minimum(sd, sd_ref) * scale >= CORR_MIN_SD * sigma
        corr_ref = np.asarray(r["corr"], dtype=float).reshape(len(terms), -1)
        corr = cov / np.outer(sd, sd)
        pairs = np.outer(clear, clear)
        assert np.allclose(corr[pairs], corr_ref[pairs], atol=CORR_ATOL + slack), (
            f"{where}: correlations of {factor} {corr.round(4).tolist()} vs lme4 "
            f"{corr_ref.round(4).tolist()}"
        )


def lme4_convergence_problems(ref):
    """lme4's convergence messages, but for the singular-fit note."""
    messages = as_list(ref["conv_messages"]) if ref["conv_messages"] else []
    return [m for m in messages if not m.startswith("boundary (singular) fit")]


def test_suite_size_and_coverage():
    """At least 200 fits and every category; lme4 refused none of ours."""
    assert len(CASES) >= 200
    if DATA == DEFAULT_DATA:  # other seeds may draw a design lme4 refuses
        assert len(CASES) == 2 * len(load_designs())
    categories = {c.category for c in CASES}
    assert {
        "binary_slope",
        "big_scale",
        "tiny_scale",
        "time_quadratic",
        "three_slopes",
        "diagonal",
        "crossed_slope_both",
        "nested_slope",
        "singletons_pairs",
        "zero_variance",
        "corr_near_one",
    } <= categories
