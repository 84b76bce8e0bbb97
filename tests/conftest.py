"""Shared fixtures: the lme4 reference cases in tests/data/."""

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

DATA = Path(__file__).parent / "data"
REFERENCE_CASES = [
    "biomass",
    "sleepstudy",
    "sleepstudy_uncorrelated",
    "sleepstudy_intercept",
    "dyestuff",
    "dyestuff2",
    "penicillin",
    "pastes",
]


def as_list(value):
    """JSON writes one-element vectors as scalars: undo that."""
    return value if isinstance(value, list) else [value]


@dataclass
class ReferenceCase:
    """One lme4 reference fit: the data, the model spec and lme4's numbers."""

    name: str
    frame: pd.DataFrame
    spec: dict

    @property
    def response(self):
        return self.spec["response"]

    @property
    def fixed_columns(self):
        return as_list(self.spec["fixed_columns"]) if self.spec["fixed_columns"] else []

    @property
    def factors(self):
        return [r["group"] for r in as_list(self.spec["random"])]

    @property
    def slopes(self):
        return {
            r["group"]: [c for c in as_list(r["columns"]) if c != "Intercept"]
            for r in as_list(self.spec["random"])
        }

    @property
    def covariance(self):
        correlated = as_list(self.spec["random"])[0]["correlated"]
        return "unstructured" if correlated else "diagonal"

    @property
    def X(self):
        return self.frame[self.fixed_columns]

    @property
    def y(self):
        return self.frame[self.response]

    @property
    def groups(self):
        names = self.factors
        frame = self.frame[names].astype(str)
        return frame[names[0]] if len(names) == 1 else frame

    def fit_reference(self, method):
        """lme4's numbers for method "REML" or "ML"."""
        return self.spec["fits"][method]

    def estimator_params(self, method):
        return dict(
            random_slopes=self.slopes,
            covariance=self.covariance,
            method=method.lower(),
        )

    def random_reference(self, method):
        """Per factor: terms, sd, corr, levels, ranef, condsd as arrays."""
        out = {}
        for r in as_list(self.fit_reference(method)["random"]):
            levels = [str(v) for v in as_list(r["levels"])]
            q = len(as_list(r["terms"]))
            out[r["group"]] = dict(
                terms=as_list(r["terms"]),
                sd=np.asarray(as_list(r["sd"]), dtype=float),
                corr=np.asarray(r["corr"], dtype=float).reshape(q, q),
                levels=levels,
                ranef=np.asarray(r["ranef"], dtype=float).reshape(len(levels), q),
                condsd=np.asarray(r["ranef_condsd"], dtype=float).reshape(
                    len(levels), q
                ),
            )
        return out


def load_case(name):
    spec = json.loads((DATA / f"{name}.json").read_text())
    frame = pd.read_csv(DATA / f"{name}.csv")
    return ReferenceCase(name, frame, spec)


@pytest.fixture(params=REFERENCE_CASES)
def reference_case(request):
    return load_case(request.param)
