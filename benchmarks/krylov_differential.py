"""The Krylov path against the exact path on random crossed and nested designs.

Each design: 2,000-20,000 rows, two crossed factors (50-2,000 and 100-2,500
levels) and in half of them a third (3-100 levels, crossed, or with the second
factor nested in it), 0-3 covariates, SDs drawn from {0, 0.1, 0.5, 1}, REML or
ML, prior weights in 30 %.  Both solvers fit the same rows; one line per design:
the Krylov criterion minus the exact one, the largest SD difference relative to
max(SD, 0.01 sigma), the largest fixed-effect difference in standard errors,
both verdicts on convergence and both times.

Example::

    python benchmarks/krylov_differential.py --designs 30 --seed 123
"""

from __future__ import annotations

import argparse
import time
import warnings

import numpy as np
import pandas as pd


def design(rng):
    n = int(rng.integers(2000, 20000))
    m1, m2 = int(rng.integers(50, 2000)), int(rng.integers(100, 2500))
    k = int(rng.integers(0, 4))
    x = rng.normal(size=(n, k))
    codes = {"a": rng.integers(0, m1, n), "b": rng.integers(0, m2, n)}
    sd = rng.choice([0.0, 0.1, 0.5, 1.0], size=3)
    y = x @ rng.normal(size=k) + rng.normal(size=n) * rng.uniform(0.5, 2)
    y += sd[0] * rng.normal(size=m1)[codes["a"]]
    y += sd[1] * rng.normal(size=m2)[codes["b"]]
    if rng.random() < 0.5:
        m3 = int(rng.integers(3, 100))
        if rng.random() < 0.5:
            codes["c"] = rng.integers(0, m3, m2)[codes["b"]]  # b nested in c
        else:
            codes["c"] = rng.integers(0, m3, n)
        y += sd[2] * rng.normal(size=m3)[codes["c"]]
    method = str(rng.choice(["reml", "ml"]))
    weights = rng.uniform(0.5, 2, n) if rng.random() < 0.3 else None
    return x, y, pd.DataFrame(codes), method, weights, sd


def compare(index, x, y, groups, method, weights, sd):
    from skmixed import MixedLinearRegressor

    fits, times = [], []
    for solver in ("cholesky", "krylov"):
        model = MixedLinearRegressor(solver=solver, method=method, random_state=index)
        start = time.perf_counter()
        fits.append(model.fit(x, y, groups=groups, sample_weight=weights))
        times.append(time.perf_counter() - start)
    exact, krylov = fits

    def sds(model):
        return np.array(
            [np.sqrt(v.iloc[0, 0]) for v in model.random_effects_cov_.values()]
        )

    d_sd = np.max(
        np.abs(sds(krylov) - sds(exact)) / np.maximum(sds(exact), 1e-2 * exact.sigma_)
    )
    se = np.sqrt(np.diag(exact.fixed_effects_cov_))
    d_beta = np.max(np.abs(krylov.fixed_effects_ - exact.fixed_effects_) / se)
    levels = ",".join(str(groups[c].nunique()) for c in groups)
    d_crit = krylov.objective_ - exact.objective_
    print(
        f"{index:3d} {len(y):6d} rows, levels {levels:<14} {method:4} "
        f"weights={weights is not None!s:5} d crit {d_crit:+.1e} "
        f"rel d sd {d_sd:.1e} d beta/se {d_beta:.1e} "
        f"converged {krylov.converged_}/{exact.converged_} "
        f"time {times[0]:.2f}/{times[1]:.2f} s"
    )


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--designs", type=int, default=30)
    parser.add_argument("--seed", type=int, default=123)
    args = parser.parse_args()
    warnings.simplefilter("ignore")
    seeds = np.random.default_rng(args.seed)
    for index in range(args.designs):
        rng = np.random.default_rng(int(seeds.integers(1e9)))
        compare(index, *design(rng))


if __name__ == "__main__":
    main()
