"""The benchmark scenarios: a model, how its data are simulated, who can fit it.

Every scenario is a linear mixed model fitted by REML. Its data are drawn from
known parameters (``truth``) so that the estimates can be read against them;
the same rows go to every package. A scenario names the packages that cannot
fit it at all (``infeasible``, with the reason: they are not run unless asked)
and those that take minutes (``slow``: left out by ``--skip-slow``).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import partial

import numpy as np


@dataclass(frozen=True)
class Scenario:
    name: str
    title: str
    n_rows: int
    simulate: Callable[[int], dict[str, np.ndarray]]  # seed -> columns
    warmup: Callable[[int], dict[str, np.ndarray]]  # a small data set alike
    fixed: list[str]  # numeric fixed-effect columns (the intercept is implicit)
    factors: dict[str, list[str]]  # grouping factor -> its random slopes
    truth: dict[str, float] = field(default_factory=dict)
    slow: dict[str, str] = field(default_factory=dict)
    infeasible: dict[str, str] = field(default_factory=dict)
    timeout: float | None = None  # seconds per process for the other packages
    nested_in: dict[str, str] = field(default_factory=dict)  # inner -> outer
    # GPBoost's rows get an exact ML deviance and lme4's ML fit to compare
    # with (both untimed); off where those alone would take too long.
    ml_reference: bool = True

    @property
    def formula(self) -> str:
        """The model in lme4's syntax (also mixedlm's)."""
        fixed = " + ".join(self.fixed) or "1"
        terms = [
            f"({' + '.join(['1', *slopes])} | {factor})"
            for factor, slopes in self.factors.items()
        ]
        return f"y ~ {fixed} + {' + '.join(terms)}"

    def columns(self) -> dict[str, str]:
        """Column name -> file kind, for reading the data back."""
        kinds = {"y": "f64", **dict.fromkeys(self.fixed, "f64")}
        return {**kinds, **dict.fromkeys(self.factors, "i32")}


# Packages that cannot fit a correlated random slope at all.
CORRELATED_SLOPES = {
    "gpboost": "GPBoost's random coefficients are independent of the intercept "
    "(no correlated slopes)",
    "gpboost-cholesky": "GPBoost's random coefficients are independent of the "
    "intercept (no correlated slopes)",
}

# ---------------------------------------------------------------- simulators


def _correlated(rng, n_levels, sd, corr):
    sd = np.asarray(sd, dtype=float)
    cov = np.outer(sd, sd) * (corr + (1 - corr) * np.eye(sd.size))
    return rng.multivariate_normal(np.zeros(sd.size), cov, n_levels)


def simulate_slopes(seed, n_rows, n_groups, n_fixed=2, n_slopes=1, corr=0.3):
    """``y ~ x1 + ... + (1 + x1 + ... | g)``: one factor, correlated slopes."""
    rng = np.random.default_rng(seed)
    sd = [1.0] + [0.5] * n_slopes
    b = _correlated(rng, n_groups, sd, corr)
    g = rng.integers(0, n_groups, size=n_rows, dtype=np.int32)
    x = rng.standard_normal((n_rows, n_fixed))
    beta = np.linspace(0.5, -0.3, n_fixed) if n_fixed > 1 else np.array([0.5])
    y = 1.0 + x @ beta + b[g, 0] + rng.standard_normal(n_rows)
    y += np.einsum("ij,ij->i", b[g, 1:], x[:, :n_slopes])
    data = {"y": y, **{f"x{j + 1}": x[:, j] for j in range(n_fixed)}}
    return {**data, "g": g}


def simulate_insteval(seed, n_rows, n_students, n_lecturers, n_departments):
    """InstEval's shape: students and lecturers crossed, department x service.

    Each lecturer belongs to one department; each rating is of a lecture that
    is a service course or not. Parameters near lme4's fit of InstEval.
    """
    rng = np.random.default_rng(seed)
    s = rng.integers(0, n_students, n_rows, dtype=np.int32)
    d = rng.integers(0, n_lecturers, n_rows, dtype=np.int32)
    dept = rng.integers(0, n_departments, n_lecturers)[d]
    service = rng.integers(0, 2, n_rows)
    dept_service = (2 * dept + service).astype(np.int32)
    y = 3.22 - 0.07 * service + rng.standard_normal(n_rows) * 1.18
    y += 0.32 * rng.standard_normal(n_students)[s]
    y += 0.52 * rng.standard_normal(n_lecturers)[d]
    y += 0.08 * rng.standard_normal(2 * n_departments)[dept_service]
    return {
        "y": y,
        "service": service.astype(float),
        "s": s,
        "d": d,
        "dept_service": dept_service,
    }


def simulate_crossed_slopes(seed, n_subjects, n_items, corr=0.3):
    """Subjects x items, fully crossed (one row per pair), each factor with a
    random intercept (SD 1) and a random slope of ``x`` (SD 0.5), correlated."""
    rng = np.random.default_rng(seed)
    s = np.repeat(np.arange(n_subjects, dtype=np.int32), n_items)
    i = np.tile(np.arange(n_items, dtype=np.int32), n_subjects)
    x = rng.standard_normal(s.size)
    bs = _correlated(rng, n_subjects, [1.0, 0.5], corr)
    bi = _correlated(rng, n_items, [1.0, 0.5], corr)
    y = 1.0 + 0.5 * x + rng.standard_normal(s.size)
    y += bs[s, 0] + bs[s, 1] * x + bi[i, 0] + bi[i, 1] * x
    return {"y": y, "x": x, "s": s, "i": i}


def simulate_nested_slopes(seed, n_rows, n_outer, n_inner, corr=0.3):
    """``a`` with a correlated random intercept (SD 1) and slope (SD 0.5);
    ``a:b`` nested in it (coded ``a_b``, unique across ``a``) with a random
    intercept (SD 0.5). Every ``a`` has at least one ``a:b`` level and every
    level at least one row; the rest are drawn at random (unbalanced)."""
    rng = np.random.default_rng(seed)
    extra = rng.integers(0, n_outer, n_inner - n_outer)
    parent = np.sort(np.concatenate([np.arange(n_outer), extra])).astype(np.int32)
    more = rng.integers(0, n_inner, n_rows - n_inner)
    a_b = rng.permutation(np.concatenate([np.arange(n_inner), more]))
    a_b = a_b.astype(np.int32)
    a = parent[a_b]
    x = rng.standard_normal(n_rows)
    ba = _correlated(rng, n_outer, [1.0, 0.5], corr)
    y = 1.0 + 0.5 * x + ba[a, 0] + ba[a, 1] * x + rng.standard_normal(n_rows)
    y += 0.5 * rng.standard_normal(n_inner)[a_b]
    return {"y": y, "x": x, "a": a, "a_b": a_b}


def simulate_two_way(seed, n_rows, n_users, n_items):
    """Ratings: a random intercept per user and per item, crossed."""
    rng = np.random.default_rng(seed)
    user = rng.integers(0, n_users, n_rows, dtype=np.int32)
    item = rng.integers(0, n_items, n_rows, dtype=np.int32)
    y = 3.5 + 0.8 * rng.standard_normal(n_users)[user]
    y += 0.5 * rng.standard_normal(n_items)[item] + rng.standard_normal(n_rows)
    return {"y": y, "user": user, "item": item}


def simulate_three_way(seed, n_rows, n_users, n_items, n_contexts):
    """Ratings with three crossed random intercepts: users, items, contexts."""
    rng = np.random.default_rng(seed)
    user = rng.integers(0, n_users, n_rows, dtype=np.int32)
    item = rng.integers(0, n_items, n_rows, dtype=np.int32)
    context = rng.integers(0, n_contexts, n_rows, dtype=np.int32)
    y = 3.5 + 0.8 * rng.standard_normal(n_users)[user]
    y += 0.5 * rng.standard_normal(n_items)[item]
    y += 0.3 * rng.standard_normal(n_contexts)[context] + rng.standard_normal(n_rows)
    return {"y": y, "user": user, "item": item, "context": context}


# ----------------------------------------------------------------- scenarios


def slopes(n_rows: int, n_groups: int, name: str | None = None) -> Scenario:
    slow = {"statsmodels": "about a minute per fit"} if n_rows >= 500_000 else {}
    return Scenario(
        name=name or f"slopes-{n_rows}x{n_groups}",
        title="one factor, correlated random slope",
        n_rows=n_rows,
        simulate=partial(simulate_slopes, n_rows=n_rows, n_groups=n_groups),
        warmup=partial(simulate_slopes, n_rows=2_000, n_groups=50),
        fixed=["x1", "x2"],
        factors={"g": ["x1"]},
        truth={
            "Intercept": 1.0,
            "x1": 0.5,
            "x2": -0.3,
            "g:Intercept": 1.0,
            "g:x1": 0.5,
            "g:Intercept:x1": 0.3,
            "sigma": 1.0,
        },
        slow=slow,
        infeasible=CORRELATED_SLOPES,
    )


def insteval() -> Scenario:
    n_rows, sizes = 73_421, dict(n_students=2_972, n_lecturers=1_128, n_departments=14)
    dense_gib = n_rows * (2_972 + 1_128 + 28) * 8 / 2**30
    return Scenario(
        name="insteval",
        title="InstEval shape: 3 crossed factors",
        n_rows=n_rows,
        simulate=partial(simulate_insteval, n_rows=n_rows, **sizes),
        warmup=partial(
            simulate_insteval,
            n_rows=3_000,
            n_students=200,
            n_lecturers=80,
            n_departments=14,
        ),
        fixed=["service"],
        factors={"s": [], "d": [], "dept_service": []},
        truth={
            "Intercept": 3.22,
            "service": -0.07,
            "s:Intercept": 0.32,
            "d:Intercept": 0.52,
            "dept_service:Intercept": 0.08,
            "sigma": 1.18,
        },
        infeasible={
            "statsmodels": "crossed factors need one dummy group: a dense "
            f"{n_rows:,} x 4,128 design ({dense_gib:.1f} GiB)"
        },
    )


def recsys() -> Scenario:
    n_rows, n_users, n_items = 1_000_000, 50_000, 5_000
    dense_gib = n_rows * (n_users + n_items) * 8 / 2**30
    return Scenario(
        name="recsys",
        title="users x items, random intercepts",
        n_rows=n_rows,
        simulate=partial(
            simulate_two_way, n_rows=n_rows, n_users=n_users, n_items=n_items
        ),
        warmup=partial(simulate_two_way, n_rows=5_000, n_users=500, n_items=100),
        fixed=[],
        factors={"user": [], "item": []},
        truth={
            "Intercept": 3.5,
            "user:Intercept": 0.8,
            "item:Intercept": 0.5,
            "sigma": 1.0,
        },
        infeasible={
            "statsmodels": "crossed factors need one dummy group: a dense "
            f"{n_rows:,} x {n_users + n_items:,} design ({dense_gib:,.0f} GiB)"
        },
        timeout=120.0,
    )


def two_way(n_rows: int, n_users: int, n_items: int, name: str) -> Scenario:
    """``recsys`` at any size; the exact path's dense item block is n_items^2."""
    dense_gib = n_rows * (n_users + n_items) * 8 / 2**30
    block_gib = n_items**2 * 8 / 2**30
    infeasible = {
        "statsmodels": "crossed factors need one dummy group: a dense "
        f"{n_rows:,} x {n_users + n_items:,} design ({dense_gib:,.0f} GiB)"
    }
    if block_gib > 4:
        infeasible["skmixed-cholesky"] = (
            f"a dense {n_items:,} x {n_items:,} block ({block_gib:,.0f} GiB, "
            "several copies) factored at every evaluation"
        )
    return Scenario(
        name=name,
        title="users x items, random intercepts",
        n_rows=n_rows,
        simulate=partial(
            simulate_two_way, n_rows=n_rows, n_users=n_users, n_items=n_items
        ),
        warmup=partial(simulate_two_way, n_rows=5_000, n_users=500, n_items=100),
        fixed=[],
        factors={"user": [], "item": []},
        truth={
            "Intercept": 3.5,
            "user:Intercept": 0.8,
            "item:Intercept": 0.5,
            "sigma": 1.0,
        },
        infeasible=infeasible,
        timeout=300.0,
        ml_reference=n_rows <= 1_000_000,
    )


def three_way() -> Scenario:
    n_rows, sizes = 1_000_000, dict(n_users=50_000, n_items=5_000, n_contexts=200)
    return Scenario(
        name="recsys-3f",
        title="users x items x contexts, random intercepts",
        n_rows=n_rows,
        simulate=partial(simulate_three_way, n_rows=n_rows, **sizes),
        warmup=partial(
            simulate_three_way, n_rows=5_000, n_users=500, n_items=100, n_contexts=20
        ),
        fixed=[],
        factors={"user": [], "item": [], "context": []},
        truth={
            "Intercept": 3.5,
            "user:Intercept": 0.8,
            "item:Intercept": 0.5,
            "context:Intercept": 0.3,
            "sigma": 1.0,
        },
        infeasible={"statsmodels": "crossed factors need one dummy group"},
        timeout=300.0,
        ml_reference=False,
    )


def insteval_200k() -> Scenario:
    """InstEval's shape at 200,000 rows, 20,000 students x 2,000 lecturers."""
    n_rows = 200_000
    sizes = dict(n_students=20_000, n_lecturers=2_000, n_departments=14)
    return Scenario(
        name="insteval-200k",
        title="InstEval shape at 200k rows: 3 crossed factors",
        n_rows=n_rows,
        simulate=partial(simulate_insteval, n_rows=n_rows, **sizes),
        warmup=partial(
            simulate_insteval,
            n_rows=3_000,
            n_students=200,
            n_lecturers=80,
            n_departments=14,
        ),
        fixed=["service"],
        factors={"s": [], "d": [], "dept_service": []},
        truth={
            "Intercept": 3.22,
            "service": -0.07,
            "s:Intercept": 0.32,
            "d:Intercept": 0.52,
            "dept_service:Intercept": 0.08,
            "sigma": 1.18,
        },
        infeasible={"statsmodels": "crossed factors need one dummy group"},
        timeout=300.0,
    )


def wide() -> Scenario:
    n_fixed, n_slopes = 20, 3
    fixed = [f"x{j + 1}" for j in range(n_fixed)]
    return Scenario(
        name="wide",
        title="20 fixed effects, 3 correlated random slopes",
        n_rows=100_000,
        simulate=partial(
            simulate_slopes,
            n_rows=100_000,
            n_groups=1_000,
            n_fixed=n_fixed,
            n_slopes=n_slopes,
        ),
        warmup=partial(
            simulate_slopes,
            n_rows=3_000,
            n_groups=50,
            n_fixed=n_fixed,
            n_slopes=n_slopes,
        ),
        fixed=fixed,
        factors={"g": fixed[:n_slopes]},
        truth={
            "Intercept": 1.0,
            "g:Intercept": 1.0,
            "g:x1": 0.5,
            "g:x2": 0.5,
            "g:x3": 0.5,
            "sigma": 1.0,
        },
        infeasible=CORRELATED_SLOPES,
        timeout=150.0,
    )


def crossed_slopes(n_subjects: int, n_items: int, name: str) -> Scenario:
    return Scenario(
        name=name,
        title="subjects x items crossed, a correlated random slope on each",
        n_rows=n_subjects * n_items,
        simulate=partial(
            simulate_crossed_slopes, n_subjects=n_subjects, n_items=n_items
        ),
        warmup=partial(simulate_crossed_slopes, n_subjects=30, n_items=20),
        fixed=["x"],
        factors={"s": ["x"], "i": ["x"]},
        truth={
            "Intercept": 1.0,
            "x": 0.5,
            **{f"{f}:Intercept": 1.0 for f in ("s", "i")},
            **{f"{f}:x": 0.5 for f in ("s", "i")},
            **{f"{f}:Intercept:x": 0.3 for f in ("s", "i")},
            "sigma": 1.0,
        },
        infeasible={
            "statsmodels": "crossed factors are variance components, independent "
            "of each other: no correlated intercept and slope per factor",
            **CORRELATED_SLOPES,
        },
    )


def nested_slopes(n_rows: int, n_outer: int, n_inner: int, name: str) -> Scenario:
    return Scenario(
        name=name,
        title="a with a correlated random slope, a:b nested in it",
        n_rows=n_rows,
        simulate=partial(
            simulate_nested_slopes, n_rows=n_rows, n_outer=n_outer, n_inner=n_inner
        ),
        warmup=partial(simulate_nested_slopes, n_rows=300, n_outer=12, n_inner=40),
        fixed=["x"],
        factors={"a": ["x"], "a_b": []},
        truth={
            "Intercept": 1.0,
            "x": 0.5,
            "a:Intercept": 1.0,
            "a:x": 0.5,
            "a:Intercept:x": 0.3,
            "a_b:Intercept": 0.5,
            "sigma": 1.0,
        },
        infeasible=CORRELATED_SLOPES,
        nested_in={"a_b": "a"},
    )


SCENARIOS = {
    "slopes-10k": lambda: slopes(10_000, 200, "slopes-10k"),
    "slopes-100k": lambda: slopes(100_000, 2_000, "slopes-100k"),
    "slopes-1m": lambda: slopes(1_000_000, 10_000, "slopes-1m"),
    "insteval": insteval,
    "recsys": recsys,
    "recsys-5m": lambda: two_way(5_000_000, 500_000, 50_000, "recsys-5m"),
    "recsys-3f": three_way,
    "insteval-200k": insteval_200k,
    "wide": wide,
    "crossed-slopes-small": lambda: crossed_slopes(60, 40, "crossed-slopes-small"),
    "crossed-slopes": lambda: crossed_slopes(500, 100, "crossed-slopes"),
    "nested-slopes-small": lambda: nested_slopes(330, 15, 56, "nested-slopes-small"),
    "nested-slopes": lambda: nested_slopes(50_000, 200, 2_000, "nested-slopes"),
}


def get_scenario(name: str) -> Scenario:
    """A scenario by name; ``slopes-ROWSxGROUPS`` makes a single-factor one."""
    if name in SCENARIOS:
        return SCENARIOS[name]()
    match = re.fullmatch(r"slopes-(\d+)x(\d+)", name)
    if match:
        return slopes(int(match[1]), int(match[2]))
    raise KeyError(f"unknown scenario {name!r}; known: {', '.join(SCENARIOS)}")
