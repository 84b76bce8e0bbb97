"""Helpers of the GLMM tests: glmer's reference cases and a small simulator."""

import json
import warnings
from dataclasses import dataclass
from functools import cache
from pathlib import Path

import numpy as np
import pandas as pd

from skmixed import MixedLogisticRegression, MixedPoissonRegressor

GLMER = Path(__file__).parent / "data" / "glmer"
GLMER_CASES = [
    "cbpp_binomial",
    "cbpp_bernoulli",
    "cbpp_agq25",
    "probit",
    "cloglog",
    "grouseticks",
    "contraception",
    "verbagg",
    "poisson_offset",
]


@dataclass
class GlmerCase:
    """One glmer reference fit: the data, the model and lme4's numbers."""

    name: str
    frame: pd.DataFrame
    spec: dict

    @property
    def fit_ref(self):
        return self.spec["fit"]

    @property
    def estimator_class(self):
        if self.spec["family"] == "binomial":
            return MixedLogisticRegression
        return MixedPoissonRegressor

    @property
    def factors(self):
        return [r["group"] for r in self.spec["random"]]

    def params(self, **overrides):
        slopes = {
            r["group"]: [c for c in r["columns"] if c != "Intercept"]
            for r in self.spec["random"]
        }
        params = dict(
            link=self.spec["link"], n_quadrature_points=int(self.spec["nAGQ"])
        )
        if any(slopes.values()):
            params["random_slopes"] = slopes
        params.update(overrides)
        return params

    @property
    def X(self):
        return self.frame[self.spec["fixed_columns"]]

    @property
    def y(self):
        y = self.frame[self.spec["response"]]
        if self.spec["family"] == "binomial" and not self.spec.get("weights"):
            return y.astype(int)
        return y

    @property
    def groups(self):
        frame = self.frame[self.factors].astype(str)
        return frame[self.factors[0]] if len(self.factors) == 1 else frame

    @property
    def sample_weight(self):
        column = self.spec.get("weights")
        return None if column is None else self.frame[column].to_numpy(float)

    @property
    def offset(self):
        column = self.spec.get("offset")
        return None if column is None else self.frame[column].to_numpy(float)

    @property
    def loglik(self):
        """The full log-likelihood (lme4's omits a constant for nAGQ > 1)."""
        return self.fit_ref.get("loglik_full", self.fit_ref["loglik"])

    def fit(self, **overrides):
        model = self.estimator_class(**self.params(**overrides))
        return model.fit(
            self.X,
            self.y,
            groups=self.groups,
            sample_weight=self.sample_weight,
            offset=self.offset,
        )

    def random_reference(self):
        """Per factor: terms, sd, corr, levels, ranef and condsd as arrays."""
        out = {}
        for r in self.fit_ref["random"]:
            levels = [str(v) for v in r["levels"]]
            q = len(r["terms"])
            out[r["group"]] = dict(
                terms=r["terms"],
                sd=np.asarray(r["sd"], dtype=float),
                corr=np.asarray(r["corr"], dtype=float).reshape(q, q),
                levels=levels,
                ranef=np.asarray(r["ranef"], dtype=float).reshape(len(levels), q),
                condsd=np.asarray(r["ranef_condsd"], dtype=float).reshape(
                    len(levels), q
                ),
            )
        return out


def load_glmer_case(name):
    spec = json.loads((GLMER / f"{name}.json").read_text())
    frame = pd.read_csv(GLMER / f"{name}.csv")
    return GlmerCase(name, frame, spec)


@cache
def fitted_glmer_case(name):
    """The case and our fit of it, once per test session (do not mutate).

    The warnings the fit raised are kept in ``case.fit_warnings``.
    """
    case = load_glmer_case(name)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        model = case.fit()
    case.fit_warnings = [(w.category, str(w.message)) for w in caught]
    return case, model


def simulate_glmm(
    seed,
    family="binomial",
    n_groups=20,
    group_size=10,
    beta=(-0.5, 1.0, -0.5),
    re_sd=(1.0,),
    re_corr=0.0,
    link="logit",
):
    """y from a GLMM with X = [1, x1, x2] and random intercept (and x1 slope).

    ``re_sd`` of length 2 adds a random slope of ``x1`` correlated
    ``re_corr`` with the intercept.  Independent of skmixed.
    """
    rng = np.random.default_rng(seed)
    n = n_groups * group_size
    codes = np.repeat(np.arange(n_groups), group_size)
    x = rng.normal(size=(n, 2))
    q = len(re_sd)
    sd = np.asarray(re_sd, dtype=float)
    corr = np.eye(q)
    if q == 2:
        corr[0, 1] = corr[1, 0] = re_corr
    b = rng.multivariate_normal(np.zeros(q), corr * np.outer(sd, sd), size=n_groups)
    eta = beta[0] + x @ np.asarray(beta[1:]) + b[codes, 0]
    if q == 2:
        eta += b[codes, 1] * x[:, 0]
    if family == "binomial":
        if link == "logit":
            mu = 1.0 / (1.0 + np.exp(-eta))
        elif link == "probit":
            from scipy.special import ndtr

            mu = ndtr(eta)
        else:
            mu = -np.expm1(-np.exp(eta))
        y = (rng.random(n) < mu).astype(int)
    else:
        y = rng.poisson(np.exp(eta))
    X = pd.DataFrame(x, columns=["x1", "x2"])
    groups = pd.Series([f"g{g:03d}" for g in codes], name="g")
    return X, y, groups
