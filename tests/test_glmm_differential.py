"""Differential test of the generalised models against glmer (lme4 1.1-31).

The designs (``tests/data/glmer_differential/designs.json`` and
``designs.csv.gz``) come from ``make_glmm_designs.py`` there: Bernoulli rows and
aggregated proportions with their trials under the logit, probit and cloglog
links; Poisson counts with and without an offset or exposure weights (a rate
with ``sample_weight``, given to glmer as the count with
``offset(log(exposure))``); one factor with a random intercept, correlated
(``(1 + x1 | g)``) and diagonal (``(1 + x1 || g)``) random slopes, two crossed
factors, nested factors, an observation-level random effect; 50 to 2,200
rows; true variances near zero (singular fits), near-separation, large
variances, 5 to 8 levels.  ``make_glmer_differential.R`` fitted each with
glmer under a tight control (bobyqa, ``tolPwrss = 1e-10``, ``rhoend =
1e-10``) into ``reference.json``; R is never needed here.

Every design asserts that skmixed's log-likelihood is no lower than glmer's,
up to 1e-6 relative ("never a worse optimum than lme4").  For the probit and
cloglog links lme4's reported log-likelihood is not the exact Laplace value
at its own estimates: its PIRLS uses Fisher scoring weights, and its value
differs from the exact one in either direction: by up to 2.3e-5 on these
designs (~2e-5 on ``tests/data/glmer``), but by up to 1.5e-4 above it in the
larger studies of ``benchmarks/glmm_differential.py``, so these allow
``max(1e-6 relative, 2e-4)`` (lme4's value also falls short of the exact one
by up to 5e-4 for every link).  Each design therefore also compares skmixed's
optimum with the exact Laplace value at glmer's estimates, computed by
skmixed's PIRLS: one objective for both, 1e-6 relative for every link.

Where the two tie and the optimum is well determined (lme4 reports no
convergence problem, neither fit is singular) the estimates must agree too:
fixed effects within 0.005 of lme4's standard error, random-effect SDs within
0.5% (or 0.003 on the link scale), correlations within 0.005.  A
log-likelihood gap ``d`` lets parameters move about ``2 sqrt(d)`` standard
errors, so the tolerances widen with the gap.

The fits run with RuntimeWarning as an error (pyproject.toml) and must emit
no warning but the convergence and singular-fit notes glmer gives too (and,
on data a 0/1 column separates, the warnings of separation).
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
from scipy import linalg
from sklearn.exceptions import ConvergenceWarning

from skmixed import MixedLogisticRegression, MixedPoissonRegressor
from skmixed._covariance import factor_to_theta
from skmixed._pirls import laplace_deviance, pirls

# Another suite from ``make_glmm_designs.py --seed N --outdir DIR`` and
# ``make_glmer_differential.R DIR`` runs with SKMIXED_GLMM_DIFFERENTIAL_DIR=DIR.
DEFAULT_DATA = Path(__file__).parent / "data" / "glmer_differential"
DATA = Path(os.environ.get("SKMIXED_GLMM_DIFFERENTIAL_DIR", DEFAULT_DATA))
LOGLIK_RTOL = 1e-6  # skmixed's loglik may fall short of glmer's by this, relative
# lme4's probit/cloglog loglik is off by up to 2.3e-5 here, but by up to 1.5e-4
# above the exact value in the larger studies (benchmarks/glmm_differential.py):
# 2e-4 keeps other seeds' suites from failing on lme4's error; the comparison
# with the exact value at glmer's estimates below stays at 1e-6 relative.
NONCANONICAL_ATOL = 2e-4
# Estimates at a tie: on the committed suite the largest differences are 5e-4
# standard errors (fixed effects), 7e-4 absolute and 2.4e-4 relative (SDs) and
# 2e-5 (correlations); these allow about ten times as much.
FIXEF_SE_TOL = 0.005  # fixed effects: fraction of lme4's standard error
SD_RTOL = 0.005  # random-effect SDs: relative, or ...
SD_ATOL = 0.003  # ... absolute, on the link scale (times the term's RMS)
CORR_ATOL = 0.005
SINGULAR_NOTE = "boundary (singular) fit"
SEPARATION_WARNINGS = (
    "fitted probabilities numerically 0 or 1",
    "the Hessian of the deviance is not positive definite",
)


def as_list(value):
    """JSON writes one-element vectors as scalars and empty ones as {}."""
    if isinstance(value, list):
        return value
    return [] if value is None or value == {} else [value]


@functools.cache
def load_designs():
    return json.loads((DATA / "designs.json").read_text())["designs"]


@functools.cache
def load_reference():
    return json.loads((DATA / "reference.json").read_text())["designs"]


@functools.cache
def load_frames():
    """Every design's own columns, by id, grouping labels as strings."""
    data = pd.read_csv(DATA / "designs.csv.gz", low_memory=False)
    return {
        design: rows.dropna(axis=1, how="all").reset_index(drop=True)
        for design, rows in data.groupby("design", sort=False)
    }


@dataclass
class Case:
    """One design with glmer's fit of it."""

    spec: dict

    @property
    def id(self):
        return self.spec["id"]

    @property
    def reference(self):
        return load_reference()[self.id]["fits"]["fit"]

    @property
    def noncanonical(self):
        return self.spec["link"] in ("probit", "cloglog")

    def data(self):
        """X, y, groups, sample_weight and offset as skmixed takes them."""
        spec, frame = self.spec, load_frames()[self.id]
        groups = frame[[f["name"] for f in spec["factors"]]].astype(str)
        y = frame[spec["response"]]
        if spec["family"] == "binomial" and spec["weights"] is None:
            y = y.astype(int)
        weights = frame[spec["weights"]].to_numpy() if spec["weights"] else None
        offset = frame[spec["offset"]].to_numpy() if spec["offset"] else None
        return frame[spec["fixed_columns"]], y, groups, weights, offset

    def estimator(self):
        factors = self.spec["factors"]
        if self.spec["family"] == "binomial":
            model = MixedLogisticRegression(link=self.spec["link"])
        else:
            model = MixedPoissonRegressor()
        return model.set_params(
            random_slopes={f["name"]: list(f["slopes"]) for f in factors},
            covariance={f["name"]: f["covariance"] for f in factors},
        )

    def fit(self):
        """Fit skmixed; the warnings it emitted, besides the model.

        RuntimeWarning stays an error (pyproject.toml): a NumPy or SciPy
        warning that leaks out of a fit is a bug.
        """
        X, y, groups, weights, offset = self.data()
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            warnings.simplefilter("error", RuntimeWarning)
            model = self.estimator().fit(
                X, y, groups=groups, sample_weight=weights, offset=offset
            )
        return model, [w for w in caught]

    def separated(self):
        """Whether a 0/1 column separates the response (no finite maximum).

        Quasi-complete separation: among the rows where the column is 1, or
        where it is 0, every response is 0 or every one is 1.
        """
        if self.spec["family"] != "binomial":
            return False
        X, y = self.data()[:2]
        y = np.asarray(y, dtype=float)
        for column in X.columns:
            x = X[column].to_numpy()
            if not np.isin(x, (0.0, 1.0)).all():
                continue
            for side in (x == 1, x == 0):
                if side.any() and (np.all(y[side] == 0) or np.all(y[side] == 1)):
                    return True
        return False

    def allowed(self):
        """How far below glmer's log-likelihood skmixed's may end."""
        allowed = LOGLIK_RTOL * max(abs(self.reference["loglik"]), 1.0)
        if self.noncanonical:
            allowed = max(allowed, NONCANONICAL_ATOL)
        return allowed

    def term_scales(self, factor):
        """RMS of each term's column: maps a slope's SD to the link scale."""
        X = self.data()[0]
        f = next(f for f in self.spec["factors"] if f["name"] == factor)
        return np.array([1.0] + [np.sqrt(np.mean(X[c] ** 2)) for c in f["slopes"]])


def factor_root(sd, corr, diagonal):
    """lme4's relative factor ``T`` (lower triangular) of SDs and correlations.

    Closed form for one or two terms (all the suite has), singular ones too:
    where an SD is 0 lme4's correlation is NaN, and any value gives the same
    covariance (the Laplace value depends on ``T T'`` alone).
    """
    sd = np.asarray(sd, dtype=float)
    if diagonal or sd.size == 1:
        return np.diag(sd)
    r = np.nan_to_num(float(np.asarray(corr, dtype=float).reshape(2, 2)[1, 0]))
    return np.array([[sd[0], 0.0], [sd[1] * r, sd[1] * np.sqrt(max(1 - r * r, 0.0))]])


def glmer_exact_loglik(model, ref):
    """The exact Laplace log-likelihood at glmer's estimates, by skmixed's PIRLS.

    glmer's parameters mapped to skmixed's optimisation units (factors in
    its order, slopes per unit of their column's RMS, standardized fixed
    columns); PIRLS run to convergence at them.
    """
    rows = model._rows
    thetas = []
    for f in rows.factors:
        r = ref["random"][f.name]
        T = factor_root(as_list(r["sd"]), r["corr"], f.diagonal)
        thetas.append(factor_to_theta(np.diag(model._z_scale[f.name]) @ T, f.diagonal))
    theta = np.concatenate(thetas)
    J, kept, _ = model._scaling
    beta_user = [ref["fixef"][name] for name in model.fixed_effects_.index]
    beta = linalg.solve(J[np.ix_(kept, kept)], np.asarray(beta_user))
    modes = pirls(rows, theta, beta)
    if modes is not None:  # again from the modes: converged to rounding
        modes = pirls(rows, theta, beta, modes.u)
    if modes is None:  # weights degenerate at once (separated data)
        return -np.inf
    return -0.5 * laplace_deviance(modes)


def lme4_problems(ref):
    """lme4's convergence messages and warnings, but for the singular note."""
    said = as_list(ref["conv_messages"]) + as_list(ref["warnings"])
    return [m for m in said if not m.startswith(SINGULAR_NOTE)]


def unexpected_warnings(caught, model, ref, separated=False):
    """Warnings but the singular-fit note and convergence warnings lme4 shares.

    On ``separated`` data (no finite maximum) skmixed's warnings of
    separation, of a Hessian that is not positive definite and of
    non-convergence are right, though glmer stops silently there.
    """
    out = []
    for w in caught:
        if issubclass(w.category, ConvergenceWarning) and (
            lme4_problems(ref) or separated
        ):
            continue  # glmer warned about this design as well
        if separated and any(s in str(w.message) for s in SEPARATION_WARNINGS):
            continue
        if str(w.message).startswith(SINGULAR_NOTE) and model.is_singular_:
            continue
        out.append(f"{w.category.__name__}: {w.message}")
    return out


def all_cases():
    reference = load_reference()
    return [
        Case(spec)
        for spec in load_designs()
        if "error" not in reference[spec["id"]]["fits"]["fit"]
    ]


CASES = all_cases()


# Designs skmixed is known to fit below glmer, each with its reason: expected
# to fail (strictly, so that a fix shows as an XPASS to remove from here).
KNOWN_FAILURES = {}  # none: f06's huge gradient was fixed in Link.second_derivative


def case_params(cases):
    params = []
    for c in cases:
        reason = KNOWN_FAILURES.get(c.id)
        marks = [pytest.mark.xfail(strict=True, reason=reason)] if reason else []
        params.append(pytest.param(c, id=c.id, marks=marks))
    return params


@pytest.mark.parametrize("case", case_params(CASES))
def test_loglik_and_estimates(case):
    model, caught = case.fit()
    ref = case.reference
    where = f"{case.id} ({case.spec['link']}; {case.spec['formula']})"
    gap = model.loglik_ - ref["loglik"]
    assert gap >= -case.allowed(), (
        f"{where}: skmixed's log-likelihood {model.loglik_:.10g} is below glmer's "
        f"{ref['loglik']:.10g} by {-gap:.3g} (allowed {case.allowed():.2g})"
    )
    # The same comparison on one objective: skmixed's Laplace value at glmer's
    # estimates, exact for every link (lme4's own is not for probit, cloglog).
    at_glmer = glmer_exact_loglik(model, ref)
    exact_allowed = LOGLIK_RTOL * max(abs(at_glmer), 1.0)
    assert model.loglik_ >= at_glmer - exact_allowed, (
        f"{where}: skmixed's log-likelihood {model.loglik_:.10g} is below the exact "
        f"Laplace value at glmer's estimates {at_glmer:.10g} by "
        f"{at_glmer - model.loglik_:.3g}"
    )
    if abs(gap) <= case.allowed() and not (
        lme4_problems(ref) or ref["is_singular"] or model.is_singular_
    ):  # a tie at a well-determined optimum (else glmer's estimates are no
        # reference, or the data do not determine them)
        # lme4's probit/cloglog loglik is off by up to NONCANONICAL_ATOL.
        error = NONCANONICAL_ATOL if case.noncanonical else 0.0
        check_estimates(case, model, ref, abs(gap) + error)
    unexpected = unexpected_warnings(caught, model, ref, case.separated())
    assert not unexpected, f"{where}: {unexpected}"


def check_estimates(case, model, ref, gap):
    where = case.id
    slack = 2.0 * np.sqrt(gap)  # parameter moves a loglik gap allows, in SEs
    for name, value in ref["fixef"].items():
        se = ref["fixef_se"][name]
        diff = abs(model.fixed_effects_[name] - value)
        assert diff <= (FIXEF_SE_TOL + slack) * se, (
            f"{where}: fixed effect {name} {model.fixed_effects_[name]:.8g} vs "
            f"glmer {value:.8g} ({diff / se:.3g} SE apart)"
        )
    for factor, r in ref["random"].items():
        terms = as_list(r["terms"])
        cov = model.random_effects_cov_[factor].loc[terms, terms].to_numpy()
        sd = np.sqrt(np.diag(cov))
        sd_ref = np.asarray(as_list(r["sd"]), dtype=float)
        atol = (SD_ATOL + slack) / case.term_scales(factor)
        assert np.all(np.abs(sd - sd_ref) <= SD_RTOL * sd_ref + atol), (
            f"{where}: SDs of {factor} {terms} {sd} vs glmer {sd_ref}"
        )
        if len(terms) > 1:
            corr = cov / np.outer(sd, sd)
            corr_ref = np.asarray(r["corr"], dtype=float).reshape(len(terms), -1)
            assert np.allclose(corr, corr_ref, atol=CORR_ATOL + slack), (
                f"{where}: correlations of {factor} {corr.round(4).tolist()} vs "
                f"glmer {corr_ref.round(4).tolist()}"
            )


def test_suite_coverage():
    """About sixty designs of every kind; glmer fitted all of ours."""
    if DATA != DEFAULT_DATA:
        pytest.skip("another suite: its size and coverage are its own")
    assert len(CASES) == len(load_designs()) >= 60
    specs = [c.spec for c in CASES]
    assert {s["link"] for s in specs} == {"logit", "probit", "cloglog", "log"}
    assert any(s["weights"] == "trials" for s in specs)
    assert any(s["weights"] == "exposure" for s in specs)
    assert any(s["offset"] for s in specs)
    assert any(
        f["covariance"] == "diagonal" and f["slopes"]
        for s in specs
        for f in s["factors"]
    )
    assert any(len(s["factors"]) == 2 for s in specs)
    assert any(s["n"] > 1500 for s in specs) and any(s["n"] < 100 for s in specs)
    assert sum(bool(c.reference["is_singular"]) for c in CASES) >= 3
