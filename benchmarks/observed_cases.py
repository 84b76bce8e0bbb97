"""skmixed against lme4 1.1-31 on the observed hard cases, REML and ML.

The cases are ``tests/data/observed/*.json`` (made by ``make_cases.R`` there,
with lme4's numbers and fit times recorded, so R is not needed here).  For
every case and method it prints lme4's criterion (its default fit, and its
best: the default polished by a tight refit), skmixed's criterion and the gap
to lme4's default and best (negative: skmixed is lower), the random-effect
SDs of both, ``converged_``, ``is_singular_`` against lme4's ``isSingular``,
the warnings skmixed emitted (all categories, RuntimeWarning included), and
the fit time of skmixed (median of ``--repeats`` fits) against lme4's
(median of the recorded ``system.time`` repetitions of ``lmer``).

Examples::

    python benchmarks/observed_cases.py
    python benchmarks/observed_cases.py --cases chickweight --repeats 5
"""

from __future__ import annotations

import argparse
import json
import sys
import time
import warnings
from pathlib import Path

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))  # benchmark the checkout this script sits in

from skmixed import MixedLinearRegressor  # noqa: E402

OBSERVED = ROOT / "tests" / "data" / "observed"


def load(name):
    spec = json.loads((OBSERVED / f"{name}.json").read_text())
    frame = pd.read_csv(OBSERVED / spec["data"], dtype={g: str for g in spec["groups"]})
    X = frame[spec["fixed_columns"]]
    groups = frame[spec["groups"]]
    groups = groups[spec["groups"][0]] if len(spec["groups"]) == 1 else groups
    return spec, X, frame[spec["response"]], groups


def fit_once(spec, method, X, y, groups):
    """The fitted model (or the exception), the warnings and the time."""
    model = MixedLinearRegressor(
        random_slopes={g: list(c) for g, c in spec["random_slopes"].items()},
        covariance=dict(spec["covariance"]),
        random_intercept=spec["random_intercept"],
        method=method.lower(),
    )
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        start = time.perf_counter()
        try:
            model.fit(X, y, groups=groups)
        except Exception as exc:  # reported in the table
            model = exc
        elapsed = time.perf_counter() - start
    names = sorted({f"{w.category.__name__}: {str(w.message)[:60]}" for w in caught})
    return model, names, elapsed


def sds(model, groups):
    return "; ".join(
        " ".join(f"{v:.3g}" for v in np.sqrt(np.diag(model.random_effects_cov_[g])))
        for g in groups
    )


def ref_sds(ref):
    return "; ".join(" ".join(f"{v:.3g}" for v in r["sd"]) for r in ref["random"])


def row(name, method, repeats):
    spec, X, y, groups = load(name)
    ref = spec["fits"][method]
    best = min(ref["criterion"], ref["polished"]["criterion"])
    fits = [fit_once(spec, method, X, y, groups) for _ in range(repeats)]
    model, caught, _ = fits[0]
    seconds = float(np.median([f[2] for f in fits]))
    order = [r["group"] for r in ref["random"]]
    out = {
        "case": name,
        "method": method,
        "lme4": f"{ref['criterion']:.3f}",
        "lme4 best": f"{best:.3f}",
        "lme4 SDs": ref_sds(ref),
        "lme4 sing": ref["is_singular"],
        "lme4 s": f"{ref['time_s']:.3f}",
        "skmixed s": f"{seconds:.3f}",
    }
    if isinstance(model, Exception):
        out.update(skmixed=f"{type(model).__name__}", warnings=str(model)[:70])
        return out
    out.update(
        skmixed=f"{model.objective_:.3f}",
        gap=f"{model.objective_ - ref['criterion']:+.4f}",
        gap_best=f"{model.objective_ - best:+.4f}",
        SDs=sds(model, order),
        conv=model.converged_,
        sing=model.is_singular_,
        warnings=" | ".join(caught),
    )
    return out


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cases", default="", help="substring filter on case names")
    parser.add_argument("--methods", default="REML,ML")
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args(argv)
    names = sorted(p.stem for p in OBSERVED.glob("*.json") if args.cases in p.stem)
    rows = [
        row(name, method, args.repeats)
        for name in names
        for method in args.methods.split(",")
    ]
    columns = [
        "case", "method", "lme4", "lme4 best", "skmixed", "gap", "gap_best",
        "lme4 SDs", "SDs", "conv", "lme4 sing", "sing", "lme4 s", "skmixed s",
        "warnings",
    ]  # fmt: skip
    table = pd.DataFrame(rows).reindex(columns=columns).fillna("")
    with pd.option_context("display.max_colwidth", 80, "display.width", 250):
        print(table.to_string(index=False))
    lme4 = sum(spec_time(n, m) for n in names for m in args.methods.split(","))
    ours = sum(float(r["skmixed s"]) for r in rows)
    print(f"\ntotal fit time: skmixed {ours:.2f} s, lme4 {lme4:.2f} s")


def spec_time(name, method):
    return json.loads((OBSERVED / f"{name}.json").read_text())["fits"][method]["time_s"]


if __name__ == "__main__":
    main()
