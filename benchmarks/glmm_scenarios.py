"""The GLMM benchmark scenarios: generalised models fitted by Laplace ML.

Each is a :class:`scenarios.Scenario` with a family and, for Poisson, an
offset column (log exposure), simulated from known parameters like the linear
scenarios, and fitted on the same rows by every package (``run_glmm.py``):

- ``logit-20k``, ``logit-1m``: ``y ~ x1 + x2 + (1 + x1 | g)``, Bernoulli with
  the logit link, 20,000 rows / 400 groups and 1,000,000 rows / 10,000 groups;
- ``poisson-100k``: ``y ~ x1 + x2 + (1 | g) + offset(log_t)``, Poisson with the
  log link, 100,000 rows / 2,000 groups, exposure ``t`` uniform on (0.5, 2).
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import partial

import numpy as np
from scenarios import Scenario, _correlated


@dataclass(frozen=True)
class GlmmScenario(Scenario):
    family: str = "binomial"  # "binomial" (0/1 target, logit) or "poisson"
    offset: str | None = None  # a column added to the linear predictor
    max_rounds: int | None = None  # at most this many rounds (--repeats)

    @property
    def lme4_formula(self) -> str:
        """The model in lme4's syntax, the offset as an ``offset()`` term."""
        extra = f" + offset({self.offset})" if self.offset else ""
        return self.formula + extra

    def columns(self) -> dict[str, str]:
        kinds = super().columns()
        if self.offset:
            kinds[self.offset] = "f64"
        return kinds


# ---------------------------------------------------------------- simulators


def simulate_logit_slopes(seed, n_rows, n_groups, corr=0.3):
    """Bernoulli, logit link: intercept -0.5, x1 0.5, x2 -0.3; per group an
    intercept (SD 1) and a slope of x1 (SD 0.5), correlation ``corr``."""
    rng = np.random.default_rng(seed)
    b = _correlated(rng, n_groups, [1.0, 0.5], corr)
    g = rng.integers(0, n_groups, size=n_rows, dtype=np.int32)
    x1, x2 = rng.standard_normal((2, n_rows))
    eta = -0.5 + 0.5 * x1 - 0.3 * x2 + b[g, 0] + b[g, 1] * x1
    y = (rng.random(n_rows) < 1.0 / (1.0 + np.exp(-eta))).astype(float)
    return {"y": y, "x1": x1, "x2": x2, "g": g}


def simulate_poisson_offset(seed, n_rows, n_groups):
    """Counts over an exposure ``t`` ~ U(0.5, 2): log mean = log t + 0.5 +
    0.3 x1 - 0.2 x2 + b_g, b_g ~ N(0, 0.5^2)."""
    rng = np.random.default_rng(seed)
    b = 0.5 * rng.standard_normal(n_groups)
    g = rng.integers(0, n_groups, size=n_rows, dtype=np.int32)
    x1, x2 = rng.standard_normal((2, n_rows))
    log_t = np.log(rng.uniform(0.5, 2.0, n_rows))
    eta = log_t + 0.5 + 0.3 * x1 - 0.2 * x2 + b[g]
    y = rng.poisson(np.exp(eta)).astype(float)
    return {"y": y, "x1": x1, "x2": x2, "log_t": log_t, "g": g}


# ----------------------------------------------------------------- scenarios

NO_OFFSET = {
    "statsmodels": "statsmodels' PoissonBayesMixedGLM takes no offset (nor "
    "exposure): the model cannot be written"
}


def dense_bfgs(n_groups: int, n_terms: int, p: int) -> dict[str, str]:
    """statsmodels' VB fit minimises its ELBO over a mean and an SD per
    parameter with scipy's BFGS (its default), which keeps a dense inverse
    Hessian approximation."""
    n = 2 * (p + n_terms + n_groups * n_terms)
    gib = n * n * 8 / 2**30
    if gib < 1.0:
        return {}
    return {
        "statsmodels": f"fit_vb's BFGS holds a dense {n:,} x {n:,} inverse "
        f"Hessian ({gib:.0f} GiB, several copies while updating it)"
    }


def logit(n_rows: int, n_groups: int, name: str, timeout: float) -> GlmmScenario:
    return GlmmScenario(
        name=name,
        title="Bernoulli (logit), one factor, correlated random slope",
        n_rows=n_rows,
        simulate=partial(simulate_logit_slopes, n_rows=n_rows, n_groups=n_groups),
        warmup=partial(simulate_logit_slopes, n_rows=2_000, n_groups=50),
        fixed=["x1", "x2"],
        factors={"g": ["x1"]},
        truth={
            "Intercept": -0.5,
            "x1": 0.5,
            "x2": -0.3,
            "g:Intercept": 1.0,
            "g:x1": 0.5,
            "g:Intercept:x1": 0.3,
        },
        infeasible=dense_bfgs(n_groups, n_terms=2, p=3),
        timeout=timeout,
        family="binomial",
        max_rounds=1 if n_rows >= 500_000 else None,
    )


def poisson(n_rows: int, n_groups: int, name: str, timeout: float) -> GlmmScenario:
    return GlmmScenario(
        name=name,
        title="Poisson (log) with an offset, random intercept",
        n_rows=n_rows,
        simulate=partial(simulate_poisson_offset, n_rows=n_rows, n_groups=n_groups),
        warmup=partial(simulate_poisson_offset, n_rows=2_000, n_groups=50),
        fixed=["x1", "x2"],
        factors={"g": []},
        truth={"Intercept": 0.5, "x1": 0.3, "x2": -0.2, "g:Intercept": 0.5},
        infeasible=NO_OFFSET,
        timeout=timeout,
        family="poisson",
        offset="log_t",
    )


GLMM_SCENARIOS = {
    "logit-20k": lambda: logit(20_000, 400, "logit-20k", timeout=300.0),
    "poisson-100k": lambda: poisson(100_000, 2_000, "poisson-100k", timeout=300.0),
    "logit-1m": lambda: logit(1_000_000, 10_000, "logit-1m", timeout=600.0),
}


def get_glmm_scenario(name: str) -> GlmmScenario:
    """A scenario by name; ``logit-ROWSxGROUPS`` makes a logistic one of any
    size (peers get 600 s)."""
    if name in GLMM_SCENARIOS:
        return GLMM_SCENARIOS[name]()
    if name.startswith("logit-") and "x" in name:
        rows, groups = name[len("logit-") :].split("x")
        return logit(int(rows), int(groups), name, timeout=600.0)
    raise KeyError(f"unknown scenario {name!r}; known: {', '.join(GLMM_SCENARIOS)}")
