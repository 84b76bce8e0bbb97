"""Type I error of t-tests in small samples: Satterthwaite against Kenward-Roger.

Simulates data sets under the null (the tested coefficient is 0), fits each by
REML and counts how often the 5% t-test of that coefficient rejects, with the
degrees of freedom (and, for Kenward-Roger, the adjusted standard error) of
each method; a Wald z-test (infinite df) is shown for contrast.  A calibrated
test rejects about 5% of the time (the Monte-Carlo standard error is printed).

Designs, all with few groups, where the methods differ most:

- ``between``: a group-level covariate, 8 groups of unequal sizes (3 to 10
  rows), random intercepts;
- ``slope``: a within-group covariate with a random slope, 8 groups of 6;
- ``split``: a split plot, 6 blocks x 2 whole-plot treatments x 3 subplots,
  random intercepts for blocks and whole plots; the whole-plot effect tested.

Not part of the test suite: 1,000 data sets per design take a few minutes.

Examples::

    python benchmarks/ddf_type1_error.py
    python benchmarks/ddf_type1_error.py --datasets 300 --designs between,split
"""

import argparse
import sys
import time
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
from scipy import stats

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # this checkout

from skmixed import MixedLinearRegressor  # noqa: E402
from skmixed.inference._satterthwaite import contrast_df  # noqa: E402

DESIGNS = ("between", "slope", "split")


def simulate(design, rng):
    """``(model, X, y, groups, tested column)`` of one data set under the null."""
    if design == "between":
        sizes = np.array([3, 4, 5, 6, 7, 8, 9, 10])
        g = np.repeat(np.arange(8), sizes)
        z = rng.normal(size=8)
        X = pd.DataFrame({"z": z[g], "x": rng.normal(size=g.size)})
        y = 0.5 * X["x"] + rng.normal(size=8)[g] + rng.normal(size=g.size)
        return MixedLinearRegressor(), X, y.to_numpy(), g, "z"
    if design == "slope":
        g = np.repeat(np.arange(8), 6)
        x = rng.normal(size=g.size)
        slopes = 0.7 * rng.normal(size=8)
        y = rng.normal(size=8)[g] + slopes[g] * x + rng.normal(size=g.size)
        X = pd.DataFrame({"x": x})
        return MixedLinearRegressor(random_slopes=["x"]), X, y, g, "x"
    if design == "split":
        block = np.repeat(np.arange(6), 6)
        treatment = np.tile(np.repeat([0.0, 1.0], 3), 6)
        plot = block * 2 + treatment.astype(int)
        sub = np.tile([0.0, 1.0, 2.0], 12)
        y = (
            rng.normal(size=6)[block]
            + 0.8 * rng.normal(size=12)[plot]
            + 0.3 * sub
            + rng.normal(size=36)
        )
        X = pd.DataFrame({"treatment": treatment, "sub": sub})
        groups = pd.DataFrame({"block": block, "plot": plot})
        return MixedLinearRegressor(), X, y, groups, "treatment"
    raise ValueError(design)


def p_values(model, column):
    """Two-sided p-values of the tested coefficient: z, Satterthwaite, KR."""
    names = list(model.fixed_effects_.index)
    L = np.zeros((1, len(names)))
    L[0, names.index(column)] = 1.0
    estimate = model.fixed_effects_[column]
    se = np.sqrt(model.fixed_effects_cov_.loc[column, column])
    t = abs(estimate / se)
    out = {"wald z": 2 * stats.norm.sf(t)}
    out["satterthwaite"] = 2 * stats.t.sf(t, contrast_df(model, L)[0])
    try:
        from skmixed.inference._kenward_roger import kenward_roger_t
    except ImportError:
        return out
    se_kr, df_kr = kenward_roger_t(model, L)
    out["kenward-roger"] = 2 * stats.t.sf(abs(estimate / se_kr[0]), df_kr[0])
    return out


def run(design, n_datasets, seed):
    rng = np.random.default_rng(seed)
    rows = []
    for _ in range(n_datasets):
        model, X, y, groups, column = simulate(design, rng)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            model.fit(X, y, groups=groups)
            rows.append(p_values(model, column))
    return pd.DataFrame(rows)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--datasets", type=int, default=1000)
    parser.add_argument("--designs", default=",".join(DESIGNS))
    parser.add_argument("--seed", type=int, default=2026)
    parser.add_argument("--alpha", type=float, default=0.05)
    args = parser.parse_args(argv)
    table = {}
    for design in args.designs.split(","):
        start = time.perf_counter()
        p = run(design, args.datasets, args.seed)
        rate = (p < args.alpha).mean()
        table[design] = rate
        seconds = time.perf_counter() - start
        print(f"{design}: {args.datasets} fits in {seconds:.0f} s", file=sys.stderr)
    result = pd.DataFrame(table).T
    mc_se = np.sqrt(args.alpha * (1 - args.alpha) / args.datasets)
    print(f"Rejection rate at {args.alpha:.0%} under the null (MC SE {mc_se:.3f}):")
    print(result.round(3).to_string())


if __name__ == "__main__":
    main()
